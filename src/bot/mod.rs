//! Bot logic, independent of transport and storage backend: parse a command,
//! find the notice, gather receipts, render the reply, deliver it.
//!
//! Depends only on the [`crate::dingtalk::DingTalkApi`] and
//! [`crate::store::Store`] traits, never on axum, reqwest or sled, so the
//! HTTP callback and Stream mode feed the same [`Bot::accept`].

pub mod command;
pub mod receipts;
pub mod send;
pub mod sentences;
pub mod summary;
#[cfg(test)]
mod tests;

use crate::config::BotConfig;
use crate::dingtalk::{DingTalkApi, DingTalkError, GroupSend, OutgoingMessage, Reply};
use crate::domain::{
    now_millis, Incoming, Lang, Notice, OpenConversationId, ProcessQueryKey, Receipts, RobotCode,
    UserId,
};
use crate::render::view::{ErrorView, HelpView};
use crate::render::{RenderError, Renderer};
use crate::store::{Claim, Store, StoreError};
use command::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};

/// Errors of bot operations.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    /// DingTalk refused or failed.
    #[error(transparent)]
    DingTalk(#[from] DingTalkError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A template failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// No such notice is recorded.
    #[error("no notice is recorded under that key")]
    NoticeNotFound,
    /// A send under this idempotency key is in progress, or its outcome was
    /// lost (a crash between DingTalk's answer and the record).
    #[error("a send with this idempotency key is in progress or its outcome is unknown")]
    SendPending,
    /// The idempotency key was used before for a different notice.
    #[error("this idempotency key was used for a different notice")]
    IdempotencyKeyReused,
    /// DingTalk accepted the notice but the store could not record it.
    #[error("the notice was sent (processQueryKey {key}) but could not be recorded")]
    SentNotRecorded {
        /// DingTalk's key of the sent notice.
        key: ProcessQueryKey,
        /// Why it could not be recorded.
        #[source]
        source: StoreError,
    },
}

/// What [`Bot::accept`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// First delivery: a task is answering it.
    Started,
    /// A duplicate of a message being answered or already answered.
    Duplicate,
    /// readbot is shutting down and takes no new work.
    ShuttingDown,
    /// Too many accepted messages are waiting for their answer
    /// (`bot.max_queued_answers`); this one was not claimed.
    Busy,
}

/// A notice to send through the robot.
#[derive(Debug, Clone)]
pub struct NewNotice {
    /// Target group.
    pub group: OpenConversationId,
    /// Title for listings and summaries.
    pub title: String,
    /// What DingTalk should show.
    pub message: OutgoingMessage,
    /// Who asked for it to be sent.
    pub author: Option<UserId>,
    /// Author's display name, if known.
    pub author_name: Option<String>,
}

/// Everything the bot needs.
pub struct BotDeps {
    /// DingTalk.
    pub api: Arc<dyn DingTalkApi>,
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Templates.
    pub renderer: Arc<Renderer>,
    /// Robot code used to send and query.
    pub robot_code: RobotCode,
    /// `coolAppCode`, when configured.
    pub cool_app_code: Option<String>,
    /// Behaviour settings.
    pub cfg: BotConfig,
}

/// An accepted message waiting for a worker, with its tracing span.
struct Job {
    msg: Incoming,
    span: tracing::Span,
}

struct Inner {
    deps: BotDeps,
    accepting: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Accepted messages, answered by [`MAX_CONCURRENT_SUMMARIES`] workers.
    queue: mpsc::Sender<Job>,
    /// Handed to the workers when the first message is accepted (they are
    /// started lazily, so a `Bot` can be built outside a runtime).
    receiver: std::sync::Mutex<Option<mpsc::Receiver<Job>>>,
    workers: std::sync::Once,
    receipts: receipts::ReceiptsCache,
    refused: receipts::RefusedSources,
    bookkept: Arc<receipts::Bookkept>,
}

/// The bot. Cheap to clone.
#[derive(Clone)]
pub struct Bot {
    inner: Arc<Inner>,
}

/// Messages answered at once (claim flush, summary, delivery); more wait
/// their turn (bounds load on DingTalk).
const MAX_CONCURRENT_SUMMARIES: usize = 16;

impl Bot {
    /// Builds a bot.
    pub fn new(deps: BotDeps) -> Self {
        let receipts = receipts::ReceiptsCache::new(deps.cfg.receipts_cache);
        let (queue, receiver) = mpsc::channel(deps.cfg.max_queued_answers.max(1));
        Self {
            inner: Arc::new(Inner {
                receipts,
                refused: receipts::RefusedSources::default(),
                bookkept: Arc::default(),
                deps,
                accepting: AtomicBool::new(true),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                queue,
                receiver: std::sync::Mutex::new(Some(receiver)),
                workers: std::sync::Once::new(),
            }),
        }
    }

    fn deps(&self) -> &BotDeps {
        &self.inner.deps
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.inner.deps.store
    }

    /// Claims the message id and, on first delivery, queues it for an
    /// answer. Returns at once: the claim is taken in memory, not flushed
    /// here; [`Bot::process`] makes it durable before answering. With
    /// `bot.max_queued_answers` messages already waiting, nothing is claimed
    /// and [`Accepted::Busy`] comes back.
    pub async fn accept(&self, msg: Incoming) -> Result<Accepted, StoreError> {
        if !self.inner.accepting.load(Ordering::SeqCst) {
            return Ok(Accepted::ShuttingDown);
        }
        self.start_workers();
        // A place in the queue first, so a refused message is never claimed.
        let Ok(slot) = self.inner.queue.try_reserve() else {
            return Ok(Accepted::Busy);
        };
        match self
            .store()
            .claim_message(&msg.msg_id, now_millis())
            .await?
        {
            Claim::InFlight => {
                crate::metrics::dedup_hit("in_flight");
                return Ok(Accepted::Duplicate);
            }
            Claim::Done => {
                crate::metrics::dedup_hit("done");
                return Ok(Accepted::Duplicate);
            }
            Claim::New => {}
        }
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let span = tracing::info_span!("mention", msg_id = %msg.msg_id);
        slot.send(Job { msg, span });
        Ok(Accepted::Started)
    }

    /// Starts the answering workers once. They hold the bot weakly: when
    /// the last `Bot` is dropped the queue closes and they end.
    fn start_workers(&self) {
        self.inner.workers.call_once(|| {
            let Some(receiver) = self.inner.receiver.lock().ok().and_then(|mut r| r.take()) else {
                return;
            };
            let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
            for _ in 0..MAX_CONCURRENT_SUMMARIES {
                let receiver = receiver.clone();
                let bot = Arc::downgrade(&self.inner);
                tokio::spawn(async move {
                    loop {
                        let job = receiver.lock().await.recv().await;
                        let (Some(job), Some(inner)) = (job, bot.upgrade()) else {
                            return;
                        };
                        let bot = Bot { inner };
                        let Job { msg, span } = job;
                        bot.process_guarded(msg, span).await;
                        if bot.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                            bot.inner.idle.notify_waiters();
                        }
                    }
                });
            }
        });
    }

    /// [`Bot::process`] with a panic caught: a bug (or an absurd value)
    /// hit while answering one message is logged with its msgId and counted
    /// (`readbot_worker_panics_total`), and the worker goes on with the next
    /// message. The message keeps its in-flight mark (at most once: it is
    /// not answered twice) and expires with the other marks.
    async fn process_guarded(&self, msg: Incoming, span: tracing::Span) {
        use futures_util::FutureExt;
        let msg_id = msg.msg_id.clone();
        let run = tracing::Instrument::instrument(self.process(msg), span);
        if let Err(panic) = std::panic::AssertUnwindSafe(run).catch_unwind().await {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text panic".to_owned());
            crate::metrics::worker_panic();
            tracing::error!(msg_id = %msg_id, panic = %what, "answering a message panicked; the worker goes on");
        }
    }

    /// Answers one claimed message and marks it done.
    ///
    /// The claim is made durable first (a group-committed flush shared with
    /// every other claim of the moment): nothing is answered on a claim that
    /// a crash could forget, so a redelivery after a restart is never
    /// answered twice. If the flush fails the message is not answered.
    ///
    /// The bot runs this on [`MAX_CONCURRENT_SUMMARIES`] workers, so at most
    /// that many messages are being answered at a time (flush, summary and
    /// delivery); the rest wait in the queue, and a burst of callbacks is
    /// accepted at once and answered at the pace DingTalk allows.
    pub async fn process(&self, msg: Incoming) {
        if let Err(e) = self.store().make_claim_durable(&msg.msg_id).await {
            crate::metrics::reply("dropped");
            tracing::error!(error = %e.with_causes(), "could not make the claim durable; not answering");
            return;
        }
        let reply =
            match tokio::time::timeout(self.deps().cfg.summary_timeout, self.answer(&msg)).await {
                Ok(r) => r,
                Err(_) => {
                    crate::metrics::summary("chat", "timeout", None);
                    let lang = command::detect_lang(&msg.text);
                    self.error_reply(lang, sentences::too_slow(lang))
                }
            };
        self.deliver(&msg, reply).await;
        if let Err(e) = self.store().finish_message(&msg.msg_id, now_millis()).await {
            tracing::error!(error = %e.with_causes(), "could not mark message as answered");
        }
    }

    /// Computes the reply to a message (without sending it).
    pub async fn answer(&self, msg: &Incoming) -> Reply {
        let parsed = command::parse(&msg.text);
        let lang = parsed.lang;
        if let Some(group) = &msg.group {
            let mut seen: Vec<UserId> = msg.mentioned.clone();
            seen.extend(msg.sender.iter().cloned());
            if !seen.is_empty() {
                if let Err(e) = self
                    .store()
                    .remember_members(group, &seen, now_millis())
                    .await
                {
                    tracing::warn!(error = %e.with_causes(), "could not update learned roster");
                }
            }
        }
        self.remember_asker_name(msg).await;
        let result = match (&parsed.command, &msg.group) {
            (Command::Help(unknown), _) => self.render_reply(
                "help",
                lang,
                &HelpView {
                    unknown: unknown.clone(),
                },
                sentences::help_title(lang),
            ),
            (_, None) => Ok(self.error_reply(lang, sentences::ask_in_group(lang))),
            (Command::List, Some(group)) => self.list_reply(group, lang).await,
            (Command::WhoRead, Some(group)) => self.who_read_reply(msg, group, lang).await,
            (Command::Status(n), Some(group)) => self.status_reply(msg, group, *n, lang).await,
        };
        match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "answering failed");
                let sentence = match &e {
                    BotError::DingTalk(d) => sentences::dingtalk_error(d, lang),
                    BotError::NoticeNotFound => sentences::notice_not_recorded(lang),
                    BotError::Store(_)
                    | BotError::Render(_)
                    | BotError::SendPending
                    | BotError::IdempotencyKeyReused
                    | BotError::SentNotRecorded { .. } => sentences::internal_error(lang),
                };
                self.error_reply(lang, sentence)
            }
        }
    }

    /// The asker's name comes free with the message (`senderNick`): keep it
    /// unless a name is already cached, saving a look-up later.
    async fn remember_asker_name(&self, msg: &Incoming) {
        let Some(sender) = &msg.sender else { return };
        let nick = msg.sender_nick.trim();
        if nick.is_empty() {
            return;
        }
        let store = self.store();
        match store.cached_names(std::slice::from_ref(sender), 0).await {
            Ok(found) if found.is_empty() => {
                let pair = [(sender.clone(), nick.to_owned())];
                if let Err(e) = store.cache_names(&pair, now_millis()).await {
                    tracing::warn!(error = %e.with_causes(), "could not cache the asker's name");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.with_causes(), "name cache unavailable"),
        }
    }

    async fn list_reply(&self, group: &OpenConversationId, lang: Lang) -> Result<Reply, BotError> {
        let notices = self
            .store()
            .notices_in_group(group, self.deps().cfg.list_limit)
            .await?;
        if notices.is_empty() {
            return Ok(self.no_notices(lang));
        }
        self.render_reply(
            "list",
            lang,
            &summary::list_view(&notices),
            sentences::list_title(lang),
        )
    }

    async fn who_read_reply(
        &self,
        msg: &Incoming,
        group: &OpenConversationId,
        lang: Lang,
    ) -> Result<Reply, BotError> {
        let own = match &msg.sender {
            Some(sender) => self.store().last_notice_by(group, sender).await?,
            None => None,
        };
        let (notice, fallback) = match own {
            Some(n) => (n, false),
            None => match self
                .store()
                .notices_in_group(group, 1)
                .await?
                .into_iter()
                .next()
            {
                Some(n) => (n, true),
                None => return Ok(self.no_notices(lang)),
            },
        };
        self.summary_reply(msg, &notice, fallback, lang).await
    }

    async fn status_reply(
        &self,
        msg: &Incoming,
        group: &OpenConversationId,
        n: usize,
        lang: Lang,
    ) -> Result<Reply, BotError> {
        let notices = self
            .store()
            .notices_in_group(group, self.deps().cfg.list_limit.max(n))
            .await?;
        match notices.get(n - 1) {
            Some(notice) => self.summary_reply(msg, notice, false, lang).await,
            None if notices.is_empty() => Ok(self.no_notices(lang)),
            None => Ok(self.error_reply(lang, sentences::no_such_notice(n, notices.len(), lang))),
        }
    }

    async fn summary_reply(
        &self,
        msg: &Incoming,
        notice: &Notice,
        fallback: bool,
        lang: Lang,
    ) -> Result<Reply, BotError> {
        let started = std::time::Instant::now();
        let receipts = self.collect(notice, msg.sender.as_ref()).await;
        let outcome = if receipts.is_ok() { "ok" } else { "error" };
        crate::metrics::summary("chat", outcome, Some(started.elapsed()));
        let receipts = receipts?;
        let markdown = summary::render_summary(
            &self.deps().renderer,
            &receipts,
            lang,
            fallback,
            &msg.sender_nick,
        )?;
        Ok(Reply {
            title: sentences::receipts_title(lang),
            markdown,
            at_user_ids: Vec::new(),
        })
    }

    /// Receipts through the single-flight cache: one pass of DingTalk calls
    /// however many ask about the same notice at once.
    async fn collect(
        &self,
        notice: &Notice,
        asker: Option<&UserId>,
    ) -> Result<Arc<Receipts>, BotError> {
        let d = self.deps();
        let deps = receipts::ReceiptsDeps {
            api: &d.api,
            store: &d.store,
            cfg: &d.cfg,
            cool_app_code: d.cool_app_code.as_deref(),
            robot_code: &d.robot_code,
            refused: &self.inner.refused,
            bookkept: &self.inner.bookkept,
        };
        self.inner
            .receipts
            .get_or_collect(&notice.key, || receipts::collect(&deps, notice, asker))
            .await
    }

    fn no_notices(&self, lang: Lang) -> Reply {
        self.error_reply(lang, sentences::no_notices(lang))
    }

    fn render_reply<T: serde::Serialize>(
        &self,
        name: &str,
        lang: Lang,
        ctx: &T,
        title: String,
    ) -> Result<Reply, BotError> {
        let markdown = self.deps().renderer.render(name, lang, ctx)?;
        Ok(Reply {
            title,
            markdown,
            at_user_ids: Vec::new(),
        })
    }

    fn error_reply(&self, lang: Lang, message: String) -> Reply {
        let markdown = self
            .deps()
            .renderer
            .render(
                "error",
                lang,
                &ErrorView {
                    message: message.clone(),
                },
            )
            .unwrap_or(message);
        Reply {
            title: sentences::error_title(lang),
            markdown,
            at_user_ids: Vec::new(),
        }
    }

    /// Sends a reply: the session webhook while valid (the client refuses any
    /// host but DingTalk's), else the robot's group send.
    pub async fn deliver(&self, msg: &Incoming, reply: Reply) {
        let now = now_millis();
        if let Some(url) = &msg.session_webhook {
            let valid = msg
                .session_webhook_expires_at
                .is_none_or(|exp| exp > now + 3_000);
            if valid {
                match self.deps().api.reply_in_session(url, &reply).await {
                    Ok(()) => {
                        crate::metrics::reply("session");
                        return;
                    }
                    // The reply may have reached the group: a second copy
                    // through the send API would be worse than none.
                    Err(DingTalkError::Timeout) => {
                        crate::metrics::reply("session_timeout");
                        tracing::warn!("session reply timed out; not sending a second copy");
                        return;
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "session reply failed; using the robot send API")
                    }
                }
            }
        }
        let Some(group) = &msg.group else {
            tracing::warn!("no usable session webhook for a 1:1 message; reply dropped");
            crate::metrics::reply("dropped");
            return;
        };
        let send = GroupSend {
            group: group.clone(),
            robot_code: self.deps().robot_code.clone(),
            message: OutgoingMessage::markdown(&reply.title, &reply.markdown),
            cool_app_code: self.deps().cool_app_code.clone(),
        };
        match self.deps().api.send_group_message(&send).await {
            Ok(_) => crate::metrics::reply("group_send"),
            Err(e) => {
                crate::metrics::reply("failed");
                tracing::error!(error = %e, "could not deliver the reply");
            }
        }
    }

    /// Sends a notice through the robot and records it durably, under a
    /// fresh idempotency key (see [`Bot::send_notice_once`]): the intent is
    /// recorded first, so a store failure means nothing is sent.
    pub async fn send_notice(&self, n: NewNotice) -> Result<Notice, BotError> {
        let sent = self.send_notice_once(n, send::generate_key()).await?;
        Ok(sent.notice().clone())
    }

    /// Receipts of a recorded notice.
    pub async fn receipts(&self, key: &ProcessQueryKey) -> Result<Receipts, BotError> {
        let notice = self
            .store()
            .notice(key)
            .await?
            .ok_or(BotError::NoticeNotFound)?;
        let started = std::time::Instant::now();
        let r = self.collect(&notice, None).await.map(Arc::unwrap_or_clone);
        let outcome = if r.is_ok() { "ok" } else { "error" };
        crate::metrics::summary("api", outcome, Some(started.elapsed()));
        r
    }

    // Queries for readbot's HTTP API (handlers call these, never the store).

    /// The notices recorded in `group`, newest first, at most `limit`.
    pub async fn notices(
        &self,
        group: &OpenConversationId,
        limit: usize,
    ) -> Result<Vec<Notice>, BotError> {
        Ok(self.store().notices_in_group(group, limit).await?)
    }

    /// Stops accepting messages and waits (up to `grace`) for in-flight
    /// answers. Returns true when all finished.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.accepting.store(false, Ordering::SeqCst);
        let wait = async {
            loop {
                let notified = self.inner.idle.notified();
                if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(grace, wait).await.is_ok()
    }

    /// Accepted messages not answered yet (queued or being answered).
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }
}
