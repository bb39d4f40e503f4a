//! Closing the loop on a notice: remind its unread members (real @-mentions
//! through the asker's `sessionWebhook`, or direct robot messages) and
//! recall it.
//!
//! DingTalk lets only a reply through a live `sessionWebhook` @ anyone
//! (`@userId` in the text and the id in the `at` list); the group send and
//! the 1:1 send cannot. So a chat `remind` needs the asker's fresh webhook,
//! and the API (which has none) reminds by direct message only.
//!
//! Policy (`bot.remind_policy`, `bot.admins`), a cooldown per notice
//! (`bot.remind_cooldown_secs`) and the recall mark are checked before any
//! DingTalk call; every reminder sent is recorded in the store (who, when,
//! how many, via) and shown in the summary.

use super::{sentences, Bot, BotError};
use crate::config::{RemindPolicy, ReplyTimeZone};
use crate::dingtalk::{DirectSend, OutgoingMessage, Recall, Reply};
use crate::domain::{
    now_millis, EpochMillis, Incoming, Lang, Member, Notice, OpenConversationId, ProcessQueryKey,
    Receipts, Reminder, ReminderVia, UserId,
};
use std::collections::HashSet;
use std::sync::Mutex;

/// Most @-mentions in one message (documented for webhooks; kept for
/// `sessionWebhook` replies too).
pub const MENTIONS_PER_MESSAGE: usize = 50;

/// A session webhook must stay valid at least this long to be used.
const WEBHOOK_MARGIN_MS: EpochMillis = 3_000;

/// Why a reminder or recall was not sent. Each has a chat sentence and an
/// HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// The policy does not let the asker do this.
    #[error("not allowed by bot.remind_policy")]
    NotAllowed {
        /// The policy in force.
        policy: RemindPolicy,
        /// A recall (else a reminder).
        recall: bool,
    },
    /// The notice was recalled.
    #[error("the notice was recalled")]
    Recalled,
    /// The last reminder was too recent; the next is allowed at `next`.
    #[error("reminded too recently; the next reminder is allowed at {} UTC", ReplyTimeZone::utc().format_minutes(*next))]
    Cooldown {
        /// When the next reminder is allowed.
        next: EpochMillis,
    },
    /// Another reminder of this notice is being sent.
    #[error("a reminder of this notice is being sent right now")]
    InProgress,
    /// No roster: nobody is known to be unread.
    #[error("the group's member list is unknown, so nobody is known to be unread")]
    NoRoster,
    /// DingTalk did not recall the notice (its `failedResult` reason).
    #[error("DingTalk did not recall the notice: {0}")]
    RecallFailed(String),
}

impl Stop {
    /// The sentence the asker reads.
    pub fn sentence(&self, lang: Lang, tz: &ReplyTimeZone) -> String {
        match self {
            Stop::NotAllowed { policy, recall } => sentences::not_allowed(*policy, *recall, lang),
            Stop::Recalled => sentences::remind_recalled(lang),
            Stop::Cooldown { next } => sentences::remind_cooldown(&clock(*next, tz), lang),
            Stop::InProgress => sentences::remind_in_progress(lang),
            Stop::NoRoster => sentences::remind_no_roster(lang),
            Stop::RecallFailed(reason) => sentences::recall_failed(reason, lang),
        }
    }

    fn metric(&self) -> &'static str {
        match self {
            Stop::NotAllowed { .. } => "not_allowed",
            Stop::Recalled => "recalled",
            Stop::Cooldown { .. } => "cooldown",
            Stop::InProgress => "in_progress",
            Stop::NoRoster => "no_roster",
            Stop::RecallFailed(_) => "failed",
        }
    }
}

/// Notices being reminded right now (one reminder of a notice at a time,
/// so two asks cannot both pass the cooldown).
#[derive(Debug, Default)]
pub(super) struct InProgress(Mutex<HashSet<ProcessQueryKey>>);

/// Holds a notice's place in [`InProgress`] until dropped.
struct Slot<'a> {
    set: &'a InProgress,
    key: ProcessQueryKey,
}

impl InProgress {
    fn enter(&self, key: &ProcessQueryKey) -> Option<Slot<'_>> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(key.clone()).then(|| Slot {
            set: self,
            key: key.clone(),
        })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.key);
    }
}

/// `HH:MM` when `ms` is today in `tz`, else `YYYY-MM-DD HH:MM`.
pub fn clock(ms: EpochMillis, tz: &ReplyTimeZone) -> String {
    let full = tz.format_minutes(ms);
    let today = tz.format_minutes(now_millis());
    match (full.split_once(' '), today.split_once(' ')) {
        (Some((day, time)), Some((today, _))) if day == today => time.to_owned(),
        _ => full,
    }
}

/// What a direct-message reminder did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmOutcome {
    /// Unread members when the reminder was sent.
    pub unread: usize,
    /// Members DingTalk accepted the message for.
    pub reminded: Vec<Member>,
    /// Members DingTalk refused as unknown or invalid.
    pub invalid: Vec<Member>,
    /// Members DingTalk held back (flow control).
    pub flow_controlled: Vec<Member>,
    /// Members not sent to because a DingTalk call failed.
    pub unsent: Vec<Member>,
}

/// What a recall did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recalled {
    /// The notice.
    pub notice: Notice,
    /// When readbot recorded the recall.
    pub at: EpochMillis,
}

fn display(m: &Member) -> String {
    m.name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| m.user_id.to_string())
}

fn author_of(n: &Notice) -> String {
    n.author_name
        .clone()
        .or_else(|| n.author.as_ref().map(|a| a.to_string()))
        .unwrap_or_default()
}

impl Bot {
    /// Remembers the title of the group a mention came from (untrusted
    /// `conversationTitle`; the store writes only a change). A failure is
    /// logged, never fatal.
    pub(super) async fn remember_group_title(&self, msg: &Incoming) {
        let (Some(group), Some(title)) = (&msg.group, msg.group_title.as_deref()) else {
            return;
        };
        if let Err(e) = self
            .store()
            .remember_group_title(group, title, now_millis())
            .await
        {
            tracing::warn!(error = %e.with_causes(), "could not remember the group title");
        }
    }

    /// The group's remembered title, if any (a store failure reads as none).
    async fn known_group_title(&self, group: &OpenConversationId) -> Option<String> {
        match self.store().group_title(group).await {
            Ok(title) => title,
            Err(e) => {
                tracing::warn!(error = %e.with_causes(), "could not read the group title");
                None
            }
        }
    }

    pub(super) fn may_manage(
        &self,
        notice: &Notice,
        asker: Option<&UserId>,
        recall: bool,
    ) -> Result<(), Stop> {
        let cfg = &self.deps().cfg;
        let admin = asker.is_some_and(|a| cfg.admins.contains(a));
        let author = asker.is_some() && notice.author.as_ref() == asker;
        let ok = match cfg.remind_policy {
            RemindPolicy::Anyone => asker.is_some(),
            RemindPolicy::Admins => admin,
            RemindPolicy::Author => admin || author,
        };
        if ok {
            Ok(())
        } else {
            Err(Stop::NotAllowed {
                policy: cfg.remind_policy,
                recall,
            })
        }
    }

    /// Recall mark and cooldown, from the store.
    async fn may_remind_now(&self, notice: &Notice) -> Result<Result<(), Stop>, BotError> {
        if self.store().recalled_at(&notice.key).await?.is_some() {
            return Ok(Err(Stop::Recalled));
        }
        let cooldown =
            i64::try_from(self.deps().cfg.remind_cooldown.as_millis()).unwrap_or(i64::MAX);
        if cooldown > 0 {
            if let Some(last) = self.store().reminders(&notice.key).await?.last() {
                let next = last.at.saturating_add(cooldown);
                if now_millis() < next {
                    return Ok(Err(Stop::Cooldown { next }));
                }
            }
        }
        Ok(Ok(()))
    }

    /// The unread members of `notice`, fresh from DingTalk.
    pub(super) async fn unread(
        &self,
        notice: &Notice,
        asker: Option<&UserId>,
    ) -> Result<Result<Receipts, Stop>, BotError> {
        let r = super::Arc::unwrap_or_clone(self.collect(notice, asker).await?);
        if r.member_count == 0 {
            return Ok(Err(Stop::NoRoster));
        }
        Ok(Ok(r))
    }

    async fn record(
        &self,
        key: &ProcessQueryKey,
        by: Option<&UserId>,
        count: usize,
        via: ReminderVia,
    ) {
        let r = Reminder {
            by: by.cloned(),
            at: now_millis(),
            count,
            via,
        };
        if let Err(e) = self.store().record_reminder(key, &r).await {
            tracing::error!(error = %e.with_causes(), key = %key, "reminder sent but not recorded");
        }
    }

    /// The notice a chat command is about: notice `n` of the list, else the
    /// asker's last in the group, else the group's last. `Err` carries the
    /// reply when there is none.
    pub(super) async fn chosen_notice(
        &self,
        msg: &Incoming,
        group: &OpenConversationId,
        n: Option<usize>,
        lang: Lang,
    ) -> Result<Result<Notice, Reply>, BotError> {
        if let Some(n) = n {
            let notices = self
                .store()
                .notices_in_group(group, self.deps().cfg.list_limit.max(n))
                .await?;
            return Ok(match notices.get(n - 1) {
                Some(notice) => Ok(notice.clone()),
                None if notices.is_empty() => Err(self.no_notices(lang)),
                None => {
                    Err(self.error_reply(lang, sentences::no_such_notice(n, notices.len(), lang)))
                }
            });
        }
        let own = match &msg.sender {
            Some(sender) => self.store().last_notice_by(group, sender).await?,
            None => None,
        };
        if let Some(n) = own {
            return Ok(Ok(n));
        }
        Ok(self
            .store()
            .notices_in_group(group, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| self.no_notices(lang)))
    }

    /// Chat `remind` / `remind dm`: every check, then the @-messages (all
    /// but the last sent here; the last is the returned reply) or the
    /// direct messages (the reply is the confirmation).
    pub(super) async fn remind_reply(
        &self,
        msg: &Incoming,
        group: &OpenConversationId,
        n: Option<usize>,
        via: ReminderVia,
        lang: Lang,
    ) -> Result<Reply, BotError> {
        let notice = match self.chosen_notice(msg, group, n, lang).await? {
            Ok(n) => n,
            Err(reply) => return Ok(reply),
        };
        let asker = msg.sender.as_ref();
        match self.remind_checked(&notice, asker, via, msg, lang).await {
            Ok(reply) => Ok(reply),
            Err(BotError::Remind(stop)) => {
                crate::metrics::reminder(via.as_str(), stop.metric());
                Ok(self.error_reply(lang, stop.sentence(lang, &self.deps().cfg.timezone)))
            }
            Err(e) => {
                crate::metrics::reminder(via.as_str(), "failed");
                Err(e)
            }
        }
    }

    async fn remind_checked(
        &self,
        notice: &Notice,
        asker: Option<&UserId>,
        via: ReminderVia,
        msg: &Incoming,
        lang: Lang,
    ) -> Result<Reply, BotError> {
        self.may_manage(notice, asker, false)?;
        let _slot = self
            .inner
            .reminding
            .enter(&notice.key)
            .ok_or(Stop::InProgress)?;
        self.may_remind_now(notice).await??;
        let webhook = match via {
            ReminderVia::Dm => None,
            ReminderVia::Mention => {
                let fresh = msg.session_webhook.as_deref().filter(|_| {
                    msg.session_webhook_expires_at
                        .is_none_or(|exp| exp > now_millis().saturating_add(WEBHOOK_MARGIN_MS))
                });
                match fresh {
                    Some(w) => Some(w),
                    None => {
                        crate::metrics::reminder(via.as_str(), "no_session");
                        return Ok(self.error_reply(lang, sentences::remind_no_session(lang)));
                    }
                }
            }
        };
        let receipts = self.unread(notice, asker).await??;
        if receipts.unread.is_empty() {
            crate::metrics::reminder(via.as_str(), "nobody");
            return Ok(self.error_reply(lang, sentences::remind_nobody(lang)));
        }
        match webhook {
            Some(webhook) => {
                self.remind_by_mention(notice, &receipts, asker, webhook, lang)
                    .await
            }
            None => {
                let out = self
                    .remind_by_dm(notice, &receipts, asker, lang, None)
                    .await?;
                let names = |l: &[Member]| l.iter().map(display).collect::<Vec<_>>();
                let text = sentences::remind_dm_done(
                    out.reminded.len(),
                    out.unread,
                    &names(&out.invalid),
                    &names(&out.flow_controlled),
                    &names(&out.unsent),
                    lang,
                );
                Ok(Reply {
                    title: sentences::remind_title(lang),
                    markdown: text,
                    at_user_ids: Vec::new(),
                })
            }
        }
    }

    /// The @-messages: [`MENTIONS_PER_MESSAGE`] ids each, at most
    /// `bot.remind_max_mentions` in all; all but the last are posted here.
    async fn remind_by_mention(
        &self,
        notice: &Notice,
        receipts: &Receipts,
        asker: Option<&UserId>,
        webhook: &str,
        lang: Lang,
    ) -> Result<Reply, BotError> {
        let max = self.deps().cfg.remind_max_mentions.max(1);
        let unread = &receipts.unread;
        let mentioned: Vec<&Member> = unread.iter().take(max).collect();
        let rest = unread.len() - mentioned.len();
        let chunks: Vec<&[&Member]> = mentioned.chunks(MENTIONS_PER_MESSAGE).collect();
        let header = sentences::remind_header(
            &notice.title,
            &author_of(notice),
            &self.deps().cfg.timezone.format_minutes(notice.sent_at),
            lang,
        );
        let roster =
            sentences::remind_roster(receipts.roster_source, receipts.roster_complete, lang);
        let mut replies = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let mut text = format!("{header}\n\n");
            let ats: Vec<String> = chunk.iter().map(|m| format!("@{}", m.user_id)).collect();
            text.push_str(&ats.join(" "));
            if i + 1 == chunks.len() {
                text.push_str("\n\n");
                text.push_str(&roster);
                if rest > 0 {
                    text.push_str("\n\n");
                    text.push_str(&sentences::remind_more(rest, lang));
                }
            }
            replies.push(Reply {
                title: sentences::remind_title(lang),
                markdown: text,
                at_user_ids: chunk.iter().map(|m| m.user_id.clone()).collect(),
            });
        }
        let last = replies.pop().ok_or(Stop::NoRoster)?;
        let mut reached = 0usize;
        for reply in &replies {
            if let Err(e) = self.deps().api.reply_in_session(webhook, reply).await {
                tracing::warn!(error = %e, reached, "reminder @-message failed; stopping");
                if reached > 0 {
                    self.record(&notice.key, asker, reached, ReminderVia::Mention)
                        .await;
                }
                crate::metrics::reminder("mention", "failed");
                let cause = sentences::dingtalk_error(&e, lang);
                return Ok(self.error_reply(
                    lang,
                    sentences::remind_stopped(reached, mentioned.len(), &cause, lang),
                ));
            }
            crate::metrics::reply("session");
            reached += reply.at_user_ids.len();
        }
        // The last message goes out as the answer (through the same webhook).
        self.record(&notice.key, asker, mentioned.len(), ReminderVia::Mention)
            .await;
        crate::metrics::reminder("mention", if rest > 0 { "partial" } else { "ok" });
        Ok(last)
    }

    /// Direct messages to every unread member, in batches of 20 (the client
    /// splits); records the reminder when anyone was reached.
    pub(super) async fn remind_by_dm(
        &self,
        notice: &Notice,
        receipts: &Receipts,
        by: Option<&UserId>,
        lang: Lang,
        extra: Option<&str>,
    ) -> Result<DmOutcome, BotError> {
        let group_title = self.known_group_title(&notice.group).await;
        let (title, mut text) = sentences::remind_dm(
            &notice.title,
            &author_of(notice),
            &self.deps().cfg.timezone.format_minutes(notice.sent_at),
            group_title.as_deref(),
            lang,
        );
        if let Some(extra) = extra {
            text = format!("{text}\n\n{extra}");
        }
        let req = DirectSend {
            robot_code: self.deps().robot_code.clone(),
            users: receipts.unread.iter().map(|m| m.user_id.clone()).collect(),
            message: OutgoingMessage::markdown(&title, &text),
        };
        let sent = self.deps().api.send_direct_messages(&req).await?;
        let pick = |ids: &[UserId]| -> Vec<Member> {
            receipts
                .unread
                .iter()
                .filter(|m| ids.contains(&m.user_id))
                .cloned()
                .collect()
        };
        let out = DmOutcome {
            unread: receipts.unread.len(),
            reminded: pick(&sent.sent),
            invalid: pick(&sent.invalid),
            flow_controlled: pick(&sent.flow_controlled),
            unsent: pick(&sent.unsent),
        };
        if let Some(e) = &sent.error {
            tracing::warn!(error = %e, unsent = out.unsent.len(), "direct reminders stopped early");
        }
        if !out.reminded.is_empty() {
            self.record(&notice.key, by, out.reminded.len(), ReminderVia::Dm)
                .await;
        }
        let outcome = if out.reminded.len() == out.unread {
            "ok"
        } else if out.reminded.is_empty() {
            "refused"
        } else {
            "partial"
        };
        crate::metrics::reminder("dm", outcome);
        Ok(out)
    }

    /// `POST /api/v1/notices/{key}/reminders` (direct messages: the API has
    /// no session webhook, so no group @). The API token holder is trusted
    /// (no policy check); the recall mark and the cooldown apply.
    pub async fn remind_via_api(&self, key: &ProcessQueryKey) -> Result<DmOutcome, BotError> {
        let notice = self
            .store()
            .notice(key)
            .await?
            .ok_or(BotError::NoticeNotFound)?;
        let result = async {
            let _slot = self
                .inner
                .reminding
                .enter(&notice.key)
                .ok_or(Stop::InProgress)?;
            self.may_remind_now(&notice).await??;
            let receipts = self.unread(&notice, None).await??;
            if receipts.unread.is_empty() {
                crate::metrics::reminder("dm", "nobody");
                return Ok(DmOutcome::default());
            }
            self.remind_by_dm(&notice, &receipts, None, Lang::En, None)
                .await
        }
        .await;
        match &result {
            Err(BotError::Remind(stop)) => crate::metrics::reminder("dm", stop.metric()),
            Err(_) => crate::metrics::reminder("dm", "failed"),
            Ok(_) => {}
        }
        result
    }

    /// Chat `recall` / `撤回`.
    pub(super) async fn recall_reply(
        &self,
        msg: &Incoming,
        group: &OpenConversationId,
        n: Option<usize>,
        lang: Lang,
    ) -> Result<Reply, BotError> {
        let notice = match self.chosen_notice(msg, group, n, lang).await? {
            Ok(n) => n,
            Err(reply) => return Ok(reply),
        };
        let result = match self.may_manage(&notice, msg.sender.as_ref(), true) {
            Ok(()) => self.recall_notice(&notice).await,
            Err(stop) => {
                crate::metrics::recall(stop.metric());
                Err(stop.into())
            }
        };
        match result {
            Ok(r) => Ok(Reply {
                title: sentences::recall_title(lang),
                markdown: sentences::recall_done(&r.notice.title, lang),
                at_user_ids: Vec::new(),
            }),
            Err(BotError::Remind(stop)) => {
                Ok(self.error_reply(lang, stop.sentence(lang, &self.deps().cfg.timezone)))
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE /api/v1/notices/{key}` (the API token holder is trusted).
    pub async fn recall(&self, key: &ProcessQueryKey) -> Result<Recalled, BotError> {
        let notice = self
            .store()
            .notice(key)
            .await?
            .ok_or(BotError::NoticeNotFound)?;
        self.recall_notice(&notice).await
    }

    /// `groupMessages/recall`, then the recall mark (flushed). A notice
    /// already marked is not recalled again.
    async fn recall_notice(&self, notice: &Notice) -> Result<Recalled, BotError> {
        if let Some(at) = self.store().recalled_at(&notice.key).await? {
            crate::metrics::recall("ok");
            return Ok(Recalled {
                notice: notice.clone(),
                at,
            });
        }
        let req = Recall {
            group: notice.group.clone(),
            robot_code: notice.robot_code.clone(),
            keys: vec![notice.key.clone()],
        };
        let out = match self.deps().api.recall_group_messages(&req).await {
            Ok(o) => o,
            Err(e) => {
                crate::metrics::recall("error");
                return Err(e.into());
            }
        };
        if let Some((_, reason)) = out.failed.iter().find(|(k, _)| k == &notice.key) {
            crate::metrics::recall("failed");
            return Err(Stop::RecallFailed(reason.clone()).into());
        }
        let at = now_millis();
        if let Err(e) = self.store().mark_recalled(&notice.key, at).await {
            crate::metrics::recall("error");
            tracing::error!(error = %e.with_causes(), key = %notice.key, "notice recalled but not marked");
            return Err(e.into());
        }
        crate::metrics::recall("ok");
        self.cancel_follow_ups_of_recalled(&notice.key).await;
        Ok(Recalled {
            notice: notice.clone(),
            at,
        })
    }

    /// The summary's closing lines: reminders so far, and the recall mark.
    pub(super) async fn remind_status(&self, key: &ProcessQueryKey, lang: Lang) -> String {
        let mut lines = Vec::new();
        match self.store().reminders(key).await {
            Ok(list) => {
                if let Some(last) = list.last() {
                    lines.push(sentences::reminded_line(
                        list.len(),
                        &clock(last.at, &self.deps().cfg.timezone),
                        lang,
                    ));
                }
            }
            Err(e) => tracing::warn!(error = %e.with_causes(), "cannot read the reminders"),
        }
        match self.store().recalled_at(key).await {
            Ok(Some(at)) => lines.push(sentences::recalled_line(
                &clock(at, &self.deps().cfg.timezone),
                lang,
            )),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e.with_causes(), "cannot read the recall mark"),
        }
        lines.join("\n\n")
    }
}
