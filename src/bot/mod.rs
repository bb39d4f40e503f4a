//! Bot logic, independent of transport and storage backend: parse a command,
//! find the notice, gather receipts, render the reply, deliver it.
//!
//! Depends only on the [`crate::dingtalk::DingTalkApi`] and
//! [`crate::store::Store`] traits, never on axum, reqwest or sled, so the
//! HTTP callback and Stream mode feed the same [`Bot::accept`].

pub mod command;
mod fairness;
pub mod follow_up;
pub mod group_page;
pub mod link;
pub mod page;
pub mod push;
pub mod queued;
pub mod quota;
pub mod receipts;
pub mod remind;
pub mod send;
pub mod sentences;
pub mod summary;
#[cfg(test)]
mod tests;
mod throttle;

use crate::config::BotConfig;
use crate::dingtalk::{DingTalkApi, DingTalkError, GroupSend, OutgoingMessage, Reply};
use crate::domain::{
    now_millis, EpochMillis, Incoming, Lang, Notice, OpenConversationId, ProcessQueryKey, Receipts,
    RobotCode, UserId,
};
use crate::render::view::{ErrorView, HelpView};
use crate::render::{RenderError, Renderer};
use crate::store::{Claim, SignatureUse, Store, StoreError};
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
    /// readbot knows nothing of that group (no notice recorded, no title seen).
    #[error("readbot knows no group with that openConversationId")]
    GroupNotFound,
    /// A reminder or recall was not sent (policy, cooldown, recalled, ...).
    #[error(transparent)]
    Remind(#[from] remind::Stop),
    /// A send under this idempotency key is in progress, or its outcome was
    /// lost (a crash between DingTalk's answer and the record).
    #[error("a send with this idempotency key is in progress or its outcome is unknown")]
    SendPending,
    /// The idempotency key was used before for a different notice.
    #[error("this idempotency key was used for a different notice")]
    IdempotencyKeyReused,
    /// A follow-up cannot be scheduled; `field` is the request's field
    /// (`followUps[1].at`).
    #[error("{field}: {refusal}")]
    InvalidFollowUp {
        /// The field, as the client spells it.
        field: String,
        /// What is wrong.
        refusal: follow_up::Refusal,
    },
    /// No follow-up with that id for that notice.
    #[error("the notice has no follow-up with that id")]
    FollowUpNotFound,
    /// The follow-up is not pending (already firing, fired, skipped or cancelled).
    #[error("the follow-up is {}, not pending", .0.as_str())]
    FollowUpNotPending(crate::domain::FollowUpState),
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
    /// This message's group (or 1:1 sender) already holds its share of the
    /// answer queue ([`Bot::group_share`]); this one was not claimed.
    GroupBusy,
    /// The callback's signature already came with
    /// [`MESSAGES_PER_SIGNATURE`] other messages: a replayed header pair
    /// carrying a forged body. Nothing was claimed or queued.
    Replayed,
}

/// Distinct messages one callback signature may carry. DingTalk's `sign`
/// covers only the millisecond timestamp, so genuine callbacks of the same
/// millisecond share one; a captured pair is worth at most this many bodies.
pub const MESSAGES_PER_SIGNATURE: usize = 3;

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

/// An accepted message waiting for a worker: only what its answer needs
/// (`queued`); its log span is made when a worker takes it.
struct Job {
    msg: queued::Queued,
    /// The message's place in its group's share of the queue, given back
    /// when a worker takes it.
    place: fairness::Place,
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
    /// Per-group places in the queue.
    fair: Arc<fairness::FairShare>,
    /// Rate-limited logs of attack signals.
    replay_log: throttle::LogEvery,
    webhook_log: throttle::LogEvery,
    reminding: remind::InProgress,
    push: push::PushState,
    /// Billable DingTalk calls this month against the budget.
    ledger: Arc<quota::Ledger>,
    /// Page links, once turned on ([`Bot::set_web`]).
    web: std::sync::OnceLock<page::WebLinks>,
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
        let fair = fairness::FairShare::new(fairness::share_of(deps.cfg.max_queued_answers));
        Self {
            inner: Arc::new(Inner {
                fair,
                replay_log: throttle::LogEvery::minute(),
                webhook_log: throttle::LogEvery::minute(),
                receipts,
                refused: receipts::RefusedSources::default(),
                bookkept: Arc::default(),
                reminding: remind::InProgress::default(),
                push: push::PushState::default(),
                ledger: Arc::new(quota::Ledger::new(
                    deps.store.clone(),
                    crate::config::defaults::DINGTALK_MONTHLY_CALL_BUDGET,
                    deps.cfg.timezone.clone(),
                )),
                web: std::sync::OnceLock::new(),
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
        // And a place in the group's share (given back if not queued).
        let Some(place) = self.inner.fair.enter(fairness::Lane::of(&msg)) else {
            return Ok(Accepted::GroupBusy);
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
        slot.send(Job {
            msg: queued::Queued::new(&msg),
            place,
        });
        Ok(Accepted::Started)
    }

    /// [`Bot::accept`] for an HTTP callback whose signature passed:
    /// `timestamp` is its signed millisecond timestamp. The signature is
    /// first bound to the message ([`Store::use_signature`]): a pair that
    /// already came with [`MESSAGES_PER_SIGNATURE`] other msgIds is
    /// [`Accepted::Replayed`], before anything is claimed, queued or sent.
    /// DingTalk's redelivery (same msgId, same headers) goes on to the usual
    /// de-duplication.
    pub async fn accept_signed(
        &self,
        msg: Incoming,
        timestamp: EpochMillis,
    ) -> Result<Accepted, StoreError> {
        if !self.inner.accepting.load(Ordering::SeqCst) {
            return Ok(Accepted::ShuttingDown);
        }
        let now = now_millis();
        match self
            .store()
            .use_signature(timestamp, &msg.msg_id, now, MESSAGES_PER_SIGNATURE)
            .await?
        {
            SignatureUse::Allowed => self.accept(msg).await,
            SignatureUse::Exhausted => {
                if let Some(held_back) = self.inner.replay_log.due(now) {
                    tracing::warn!(
                        held_back,
                        "a callback signature came with more messages than DingTalk sends: \
                         replayed headers with a forged body refused (logged at most once a minute)"
                    );
                }
                Ok(Accepted::Replayed)
            }
        }
    }

    /// How many messages of one group (or 1:1 sender) may wait in the answer
    /// queue at once: `max(8, bot.max_queued_answers / 8)` (never more than
    /// the queue). Those being answered (16 at most) do not count.
    pub fn group_share(&self) -> usize {
        fairness::share_of(self.deps().cfg.max_queued_answers)
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
                        let Job { msg, place } = job;
                        // No longer waiting: the group's place is free.
                        drop(place);
                        let span = tracing::info_span!("mention", msg_id = %msg.msg_id());
                        bot.process_guarded(msg.into_incoming(), span).await;
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
    /// The bot runs this on `MAX_CONCURRENT_SUMMARIES` workers, so at most
    /// that many messages are being answered at a time (flush, summary and
    /// delivery); the rest wait in the queue, and a burst of callbacks is
    /// accepted at once and answered at the pace DingTalk allows.
    pub async fn process(&self, msg: Incoming) {
        match self.store().make_claim_durable(&msg.msg_id).await {
            Ok(()) => {}
            // Another replica took the claim over (this one was thought
            // gone): it answers; not a failure of this one.
            Err(e @ StoreError::ClaimLost { .. }) => {
                crate::metrics::reply("dropped");
                tracing::warn!(error = %e.with_causes(), "another replica took this message over; not answering it here");
                return;
            }
            Err(e) => {
                crate::metrics::reply("dropped");
                tracing::error!(error = %e.with_causes(), "could not make the claim durable; not answering");
                return;
            }
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
        tracing::info!(
            group = msg.group.as_ref().map_or("", |g| g.as_str()),
            sender = msg.sender.as_ref().map_or("", |u| u.as_str()),
            command = parsed.command.name(),
            args = %parsed.command.log_args(),
            "mention accepted"
        );
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
        self.remember_group_title(msg).await;
        let result = match (&parsed.command, &msg.group) {
            (Command::Help(unknown), _) => self.render_reply(
                "help",
                lang,
                &HelpView {
                    // The asker's own text, from an unsigned body.
                    unknown: crate::render::neutralise(unknown),
                },
                sentences::help_title(lang),
            ),
            (Command::Id, group) => Ok(self.ids_reply(group.as_ref(), msg.sender.as_ref(), lang)),
            (_, None) => Ok(self.error_reply(lang, sentences::ask_in_group(lang))),
            (Command::List, Some(group)) => self.list_reply(group, lang).await,
            (Command::WhoRead, Some(group)) => self.who_read_reply(msg, group, lang).await,
            (Command::Status(n), Some(group)) => self.status_reply(msg, group, *n, lang).await,
            (Command::Remind { n, via }, Some(group)) => {
                self.remind_reply(msg, group, *n, *via, lang).await
            }
            (Command::Recall(n), Some(group)) => self.recall_reply(msg, group, *n, lang).await,
            (Command::Schedule { action, when }, Some(group)) => {
                self.schedule_reply(msg, group, *action, *when, lang).await
            }
        };
        match result {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "answering failed");
                let sentence = match &e {
                    BotError::DingTalk(d) => sentences::dingtalk_error(d, lang),
                    BotError::NoticeNotFound => sentences::notice_not_recorded(lang),
                    BotError::Remind(stop) => stop.sentence(lang, &self.deps().cfg.timezone),
                    BotError::Store(_)
                    | BotError::Render(_)
                    | BotError::SendPending
                    | BotError::IdempotencyKeyReused
                    | BotError::SentNotRecorded { .. }
                    | BotError::InvalidFollowUp { .. }
                    | BotError::FollowUpNotFound
                    | BotError::FollowUpNotPending(_)
                    | BotError::GroupNotFound => sentences::internal_error(lang),
                };
                self.error_reply(lang, sentence)
            }
        }
    }

    /// The asker's name comes free with the message (`senderNick`), but the
    /// body is not signed: it is kept only as a callback-learned name, which
    /// never overrides a name from DingTalk's APIs and is shown only when
    /// DingTalk names nobody for that id (name source precedence, in the store).
    async fn remember_asker_name(&self, msg: &Incoming) {
        let Some(sender) = &msg.sender else { return };
        let nick = msg.sender_nick.trim();
        if nick.is_empty() {
            return;
        }
        if let Err(e) = self
            .store()
            .cache_callback_name(sender, nick, now_millis())
            .await
        {
            tracing::warn!(error = %e.with_causes(), "could not cache the asker's name");
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
        let notices = self.with_author_names(notices).await?;
        let cfg = &self.deps().cfg;
        let mut view = summary::list_view(&notices, &cfg.timezone);
        view.group_url = self.group_url(group).unwrap_or_default();
        self.render_reply("list", lang, &view, sentences::list_title(lang))
    }

    /// Fills in the names of authors recorded by id only, through the same
    /// name cache (and DingTalk look-up) as a summary; an author whose name
    /// cannot be found keeps showing as the id.
    async fn with_author_names(&self, mut notices: Vec<Notice>) -> Result<Vec<Notice>, BotError> {
        let mut wanted: Vec<UserId> = notices
            .iter()
            .filter(|n| n.author_name.is_none())
            .filter_map(|n| n.author.clone())
            .collect();
        wanted.sort();
        wanted.dedup();
        let d = self.deps();
        let mut names = std::collections::HashMap::new();
        receipts::resolve_names(&d.api, &d.store, d.cfg.name_ttl, wanted, &mut names).await?;
        for n in &mut notices {
            if n.author_name.is_none() {
                n.author_name = n.author.as_ref().and_then(|a| names.get(a).cloned());
            }
        }
        Ok(notices)
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
        // `bot.ask_policy` (issue 12).
        if !self.may_ask(notice, msg.sender.as_ref()) {
            return Ok(self.error_reply(lang, sentences::summary_not_allowed(lang)));
        }
        let started = std::time::Instant::now();
        let receipts = self.collect(notice, msg.sender.as_ref()).await;
        let outcome = if receipts.is_ok() { "ok" } else { "error" };
        crate::metrics::summary("chat", outcome, Some(started.elapsed()));
        let receipts = receipts?;
        let full_list_url = self.full_list_url(&notice.key);
        let mut layout = summary::Layout::of(&self.deps().cfg);
        layout.full_list_url = full_list_url.as_deref();
        let mut markdown = summary::render_summary(
            &self.deps().renderer,
            &receipts,
            lang,
            fallback,
            &msg.sender_nick,
            layout,
        )?;
        let status = self.remind_status(&notice.key, lang).await;
        if !status.is_empty() {
            markdown = format!("{}\n\n{status}", markdown.trim_end());
        }
        if receipts.reads_from == crate::domain::ReadsFrom::Stored {
            let u = self.inner.ledger.usage();
            let note =
                sentences::budget_saving(u.used, u.budget, &u.month, u.dingtalk_refused, lang);
            markdown = format!("{}\n\n{note}", markdown.trim_end());
        }
        let reply = Reply {
            title: sentences::receipts_title(lang),
            markdown,
            at_user_ids: Vec::new(),
        };
        // `bot.reply_to = "dm"`: to the asker, one line to the group.
        Ok(self.privately(msg, reply, lang).await)
    }

    /// Receipts through the single-flight cache: one pass of DingTalk calls
    /// however many ask about the same notice at once.
    async fn collect(
        &self,
        notice: &Notice,
        asker: Option<&UserId>,
    ) -> Result<Arc<Receipts>, BotError> {
        let d = self.deps();
        let saving_calls = self.inner.ledger.saving();
        let deps = receipts::ReceiptsDeps {
            api: &d.api,
            store: &d.store,
            cfg: &d.cfg,
            cool_app_code: d.cool_app_code.as_deref(),
            robot_code: &d.robot_code,
            refused: &self.inner.refused,
            bookkept: &self.inner.bookkept,
            saving_calls,
            cached_roster: None,
        };
        let push = push::PushDeps {
            api: d.api.as_ref(),
            store: d.store.as_ref(),
            robot: &d.robot_code,
            reconcile_interval: d.cfg.reconcile_interval,
            state: &self.inner.push,
            saving_calls,
        };
        self.inner
            .receipts
            .get_or_collect(&notice.key, || async {
                let mut deps = deps;
                deps.cached_roster = cached_roster_use(&push, notice, d.cfg.roster_cache).await?;
                let mut found = None;
                let reads = async {
                    let (state, from, times) = push::reads(&push, notice).await?;
                    found = Some((from, times));
                    Ok(state)
                };
                let mut r = receipts::collect_with(&deps, notice, asker, reads).await?;
                if let Some((from, times)) = found {
                    r.reads_from = from;
                    r.read_times = times;
                }
                Ok(r)
            })
            .await
    }

    /// The reply to `id`: the ids an operator types into `check` and the send API.
    fn ids_reply(
        &self,
        group: Option<&OpenConversationId>,
        sender: Option<&UserId>,
        lang: Lang,
    ) -> Reply {
        Reply {
            title: sentences::ids_title(lang),
            markdown: sentences::your_ids(
                group.map(OpenConversationId::as_str),
                sender.map(UserId::as_str),
                self.deps().robot_code.as_str(),
                lang,
            ),
            at_user_ids: Vec::new(),
        }
    }

    // Read and recall events (see `push`).

    /// Sets the clock of event intake: since when it has been continuously
    /// up (`None` while down). Without it, summaries always query.
    pub fn set_event_intake(&self, uptime: push::IntakeUptime) {
        self.inner.push.set_uptime(uptime);
    }

    /// Takes one pushed event (Stream `via = "stream"` or HTTP push
    /// `"http"`): stored durably before this returns; `Err` only when the
    /// store failed and the event must be redelivered.
    pub async fn on_event(
        &self,
        event: &crate::dingtalk::events::PushEvent,
        via: &'static str,
    ) -> Result<(), StoreError> {
        push::take(self.store().as_ref(), event, via).await
    }

    /// Stores a `robot_msg_read` durably; a store failure is returned so
    /// that the event is redelivered.
    pub async fn on_read_event(
        &self,
        ev: &crate::dingtalk::events::ReadEvent,
    ) -> Result<push::Intake, StoreError> {
        push::on_read(self.store().as_ref(), ev).await
    }

    /// Marks the notice of a `robot_msg_recall` recalled (durably).
    pub async fn on_recall_event(
        &self,
        ev: &crate::dingtalk::events::RecallEvent,
    ) -> Result<push::Intake, StoreError> {
        push::on_recall(self.store().as_ref(), ev).await
    }

    // The quota ledger (see `quota`).

    /// The ledger of billable DingTalk calls: the application hands it to
    /// the DingTalk client (its `CallLedger` hook) and saves it.
    pub fn call_ledger(&self) -> Arc<quota::Ledger> {
        self.inner.ledger.clone()
    }

    /// Sets `dingtalk.monthly_call_budget` (default 5000).
    pub fn set_call_budget(&self, budget: u64) {
        self.inner.ledger.set_budget(budget);
    }

    /// This month's billable DingTalk calls against the budget.
    pub fn usage(&self) -> quota::Usage {
        self.inner.ledger.usage()
    }

    /// Event intake and its verification, for `/healthz`.
    pub async fn push_status(&self) -> push::PushStatus {
        self.inner.push.status(self.store().as_ref()).await
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
                    // DingTalk never sends such a webhook: the body was forged.
                    Err(DingTalkError::UntrustedWebhook) => {
                        crate::metrics::reply("untrusted_webhook");
                        if let Some(held_back) = self.inner.webhook_log.due(now_millis()) {
                            tracing::warn!(
                                held_back,
                                "a callback named a sessionWebhook outside DingTalk's session endpoint \
                                 (a forged body); refused, using the robot send API (logged at most once a minute)"
                            );
                        }
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

/// When the reads of `notice` come from trusted events and the roster cache
/// is on (`max_age` non-zero): the rule under which the group's cached
/// member list may answer instead of a member-list call.
async fn cached_roster_use(
    push: &push::PushDeps<'_>,
    notice: &Notice,
    max_age: std::time::Duration,
) -> Result<Option<receipts::CachedRosterUse>, BotError> {
    if max_age.is_zero() || push.saving_calls {
        return Ok(None);
    }
    Ok(push::trusted_since(push, notice)
        .await?
        .map(|intake_up_since| receipts::CachedRosterUse {
            max_age,
            intake_up_since,
        }))
}
