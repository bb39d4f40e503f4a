//! Scheduled follow-ups: a notice's summary posted, or its unread members
//! reminded by direct message, at a time set when it was sent (the send
//! API's `followUps`) or later in chat (`remind at 17:00`, `明天 9:00 汇总`).
//!
//! Fired once: the scheduler ([`Bot::run_follow_ups`]) claims a due
//! follow-up with a durable state change (`pending` → `firing`, one store
//! transaction, flushed) before anything is sent, and records `fired` after
//! DingTalk accepted it. A follow-up found `firing` at start-up was being
//! sent when readbot stopped: it is sent again (the one instant where a
//! repeat is possible: DingTalk's send takes no idempotency key; see
//! RELIABILITY.md). Due while readbot was down, it fires late (and says so)
//! within `bot.follow_up_max_lateness_secs`, else it is skipped with a log
//! line and a metric. A recalled notice's follow-ups are skipped.

use super::{sentences, summary, Bot, BotError};
use crate::config::{AskPolicy, ReplyTo};
use crate::dingtalk::{DingTalkError, DirectSend, GroupSend, OutgoingMessage, Reply};
use crate::domain::{
    now_millis, EpochMillis, FollowUp, FollowUpAction, FollowUpId, FollowUpState, Incoming, Lang,
    Notice, OpenConversationId, ProcessQueryKey, Reminder, UserId, WallClock,
};
use crate::store::StateChange;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Most follow-ups one notice may have waiting (pending), and most in one
/// send request.
pub const MAX_PER_NOTICE: usize = 5;

/// How often the scheduler looks for due follow-ups.
const TICK: Duration = Duration::from_secs(1);

/// Due follow-ups taken per look (the rest wait for the next tick).
const BATCH: usize = 32;

/// How often a running scheduler looks again for follow-ups left `firing`
/// by a replica that died (the store lists only those whose owner is gone:
/// on PostgreSQL, a dead replica's; sled has one process, so none), so a
/// replica that stays up takes them over without waiting for a restart.
const RECOVERY_EVERY: Duration = Duration::from_secs(10);

/// A follow-up fired more than this after its time says it is late.
const LATE_AFTER_MS: EpochMillis = 60_000;

/// First wait before a follow-up whose send failed transiently is tried
/// again (doubling up to [`RETRY_MAX`]).
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// A follow-up asked for in a send request, before it has a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedFollowUp {
    /// When (epoch ms).
    pub at: EpochMillis,
    /// What it does.
    pub action: FollowUpAction,
}

/// Why a follow-up cannot be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Its time has passed.
    #[error("must be in the future")]
    Past,
    /// Its time is after the notice's query window (`bot.notice_retention_secs`).
    #[error(
        "must be within the notice's query window (bot.notice_retention_secs after it is sent: until {} UTC)",
        crate::config::ReplyTimeZone::utc().format_minutes(*until)
    )]
    OutsideWindow {
        /// The end of the window.
        until: EpochMillis,
    },
    /// The notice has [`MAX_PER_NOTICE`] pending follow-ups.
    #[error("a notice has at most {MAX_PER_NOTICE} scheduled follow-ups")]
    TooMany,
}

/// What one firing did, for the state it leaves and the metric.
enum Outcome {
    /// Sent; `note` says how (late, unconfirmed, nobody unread).
    Fired(Option<String>),
    /// Not sent, for good; `reason` is the metric label, `note` the stored why.
    Skipped(&'static str, String),
    /// A transient failure: back to pending, tried again later.
    Retry(DingTalkError),
}

/// A stable id: the same request (or chat message) makes the same ids, so
/// adding them again after a retry changes nothing.
fn follow_up_id(key: &ProcessQueryKey, salt: &str, i: usize) -> Result<FollowUpId, BotError> {
    let digest = Sha256::digest(format!("{key}\u{0}{salt}\u{0}{i}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    FollowUpId::parse(format!("fu-{hex}")).map_err(|_| BotError::FollowUpNotFound)
}

impl Bot {
    /// The end of a notice's query window: it is kept (and can be queried)
    /// for `bot.notice_retention_secs` after it was sent.
    fn window_end(&self, sent_at: EpochMillis) -> EpochMillis {
        let keep = i64::try_from(self.deps().cfg.notice_retention.as_millis()).unwrap_or(i64::MAX);
        sent_at.saturating_add(keep)
    }

    /// Checks follow-ups of a notice about to be sent (`now` ≈ its send
    /// time): each in the future and within the window. `Err` names the
    /// field (`followUps[i].at`).
    pub fn check_follow_ups(&self, planned: &[PlannedFollowUp]) -> Result<(), BotError> {
        let now = now_millis();
        if planned.len() > MAX_PER_NOTICE {
            return Err(BotError::InvalidFollowUp {
                field: "followUps".into(),
                refusal: Refusal::TooMany,
            });
        }
        for (i, p) in planned.iter().enumerate() {
            let refusal = if p.at <= now {
                Refusal::Past
            } else if p.at > self.window_end(now) {
                Refusal::OutsideWindow {
                    until: self.window_end(now),
                }
            } else {
                continue;
            };
            return Err(BotError::InvalidFollowUp {
                field: format!("followUps[{i}].at"),
                refusal,
            });
        }
        Ok(())
    }

    /// Stores the follow-ups of a notice just sent (or replayed: the same
    /// ids, so nothing is added twice). `salt` is the idempotency key.
    pub async fn add_planned_follow_ups(
        &self,
        notice: &Notice,
        planned: &[PlannedFollowUp],
        salt: &str,
    ) -> Result<Vec<FollowUp>, BotError> {
        let now = now_millis();
        let mut list = Vec::with_capacity(planned.len());
        for (i, p) in planned.iter().enumerate() {
            list.push(FollowUp {
                id: follow_up_id(&notice.key, salt, i)?,
                key: notice.key.clone(),
                at: p.at,
                action: p.action,
                state: FollowUpState::Pending,
                by: notice.author.clone(),
                lang: Lang::default(),
                created_at: now,
                changed_at: now,
                note: None,
            });
        }
        if !list.is_empty() {
            self.store().add_follow_ups(&list).await?;
            for _ in &list {
                crate::metrics::follow_up("pending", "scheduled");
            }
        }
        Ok(list)
    }

    /// Chat `remind at 17:00` / `summary at 17:00` / `17:00 提醒` / `明天 9:00 汇总`
    /// on the asker's last notice (the remind policy decides who may).
    pub(super) async fn schedule_reply(
        &self,
        msg: &Incoming,
        group: &OpenConversationId,
        action: FollowUpAction,
        when: WallClock,
        lang: Lang,
    ) -> Result<Reply, BotError> {
        let notice = match self.chosen_notice(msg, group, None, lang).await? {
            Ok(n) => n,
            Err(reply) => return Ok(reply),
        };
        let asker = msg.sender.as_ref();
        let tz = &self.deps().cfg.timezone;
        if let Err(stop) = self.may_manage(&notice, asker, false) {
            return Ok(self.error_reply(lang, stop.sentence(lang, tz)));
        }
        if self.store().recalled_at(&notice.key).await?.is_some() {
            return Ok(self.error_reply(lang, sentences::remind_recalled(lang)));
        }
        let now = now_millis();
        let clock = format!("{:02}:{:02}", when.hour, when.minute);
        let Some(at) = tz.at_clock(now, when.tomorrow, when.hour, when.minute) else {
            return Ok(self.error_reply(lang, sentences::follow_up_past(&clock, lang)));
        };
        if at <= now {
            return Ok(self.error_reply(lang, sentences::follow_up_past(&clock, lang)));
        }
        let until = self.window_end(notice.sent_at);
        if at > until {
            let text = sentences::follow_up_outside_window(&tz.format_minutes(until), lang);
            return Ok(self.error_reply(lang, text));
        }
        let waiting = self
            .store()
            .follow_ups(&notice.key)
            .await?
            .iter()
            .filter(|f| !f.state.is_final())
            .count();
        if waiting >= MAX_PER_NOTICE {
            let text = sentences::follow_up_too_many(MAX_PER_NOTICE, lang);
            return Ok(self.error_reply(lang, text));
        }
        let f = FollowUp {
            id: follow_up_id(&notice.key, msg.msg_id.as_str(), 0)?,
            key: notice.key.clone(),
            at,
            action,
            state: FollowUpState::Pending,
            by: msg.sender.clone(),
            lang,
            created_at: now,
            changed_at: now,
            note: None,
        };
        self.store()
            .add_follow_ups(std::slice::from_ref(&f))
            .await?;
        crate::metrics::follow_up("pending", "scheduled");
        Ok(Reply {
            title: sentences::follow_up_title(lang),
            markdown: sentences::follow_up_scheduled(
                action == FollowUpAction::Remind,
                &tz.format_minutes(at),
                tz.name(),
                &notice.title,
                lang,
            ),
            at_user_ids: Vec::new(),
        })
    }

    /// `GET /api/v1/notices/{key}`: the notice, its reminders, its
    /// follow-ups and its recall time.
    pub async fn notice_detail(&self, key: &ProcessQueryKey) -> Result<NoticeDetail, BotError> {
        let notice = self
            .store()
            .notice(key)
            .await?
            .ok_or(BotError::NoticeNotFound)?;
        Ok(NoticeDetail {
            reminders: self.store().reminders(key).await?,
            follow_ups: self.store().follow_ups(key).await?,
            recalled_at: self.store().recalled_at(key).await?,
            notice,
        })
    }

    /// `DELETE /api/v1/notices/{key}/follow-ups/{id}`: cancels a pending
    /// follow-up. One already firing, fired, skipped or cancelled is
    /// refused with its state.
    pub async fn cancel_follow_up(
        &self,
        key: &ProcessQueryKey,
        id: &FollowUpId,
    ) -> Result<FollowUp, BotError> {
        if self.store().notice(key).await?.is_none() {
            return Err(BotError::NoticeNotFound);
        }
        let change = StateChange {
            from: FollowUpState::Pending,
            to: FollowUpState::Cancelled,
            now: now_millis(),
            note: Some("cancelled through the API"),
        };
        if let Some(f) = self.store().set_follow_up_state(key, id, change).await? {
            crate::metrics::follow_up("cancelled", "api");
            return Ok(f);
        }
        match self
            .store()
            .follow_ups(key)
            .await?
            .into_iter()
            .find(|f| &f.id == id)
        {
            Some(f) => Err(BotError::FollowUpNotPending(f.state)),
            None => Err(BotError::FollowUpNotFound),
        }
    }

    /// Cancels every pending follow-up of a notice readbot just recalled.
    pub(super) async fn cancel_follow_ups_of_recalled(&self, key: &ProcessQueryKey) {
        let list = match self.store().follow_ups(key).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e.with_causes(), "cannot read the follow-ups of a recalled notice");
                return;
            }
        };
        for f in list.iter().filter(|f| f.state == FollowUpState::Pending) {
            let change = StateChange {
                from: FollowUpState::Pending,
                to: FollowUpState::Cancelled,
                now: now_millis(),
                note: Some("the notice was recalled"),
            };
            match self.store().set_follow_up_state(key, &f.id, change).await {
                Ok(Some(_)) => crate::metrics::follow_up("cancelled", "recalled"),
                Ok(None) => {}
                // The scheduler skips it anyway (it checks the recall mark).
                Err(e) => {
                    tracing::warn!(error = %e.with_causes(), "cannot cancel a follow-up of a recalled notice")
                }
            }
        }
    }

    /// The scheduler: first the follow-ups a crash left `firing` (sent
    /// again: the documented instant), then every `TICK` the due
    /// `pending` ones, each claimed durably before it is sent. Runs until
    /// `shutdown` resolves; one follow-up at a time.
    pub async fn run_follow_ups(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut retry: HashMap<FollowUpId, (EpochMillis, Duration)> = HashMap::new();
        // Sent, but the state change after it could not be written: left
        // `firing` in the store, and not sent again while this process runs
        // (a restart does, as documented).
        let mut unrecorded: HashSet<FollowUpId> = HashSet::new();
        // Recovery: bounded passes (each moves what it takes out of `firing`).
        for _ in 0..64 {
            if self.recover_firing(&mut retry, &mut unrecorded).await == 0 {
                break;
            }
        }
        let mut last_recovery = tokio::time::Instant::now();
        let mut backlog = false;
        loop {
            // A full batch means more are due: go on at once (shutdown still wins).
            let pause = if backlog { Duration::ZERO } else { TICK };
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
            if last_recovery.elapsed() >= RECOVERY_EVERY {
                last_recovery = tokio::time::Instant::now();
                self.recover_firing(&mut retry, &mut unrecorded).await;
            }
            let now = now_millis();
            let due = match self
                .store()
                .due_follow_ups(FollowUpState::Pending, now, BATCH)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e.with_causes(), "cannot read due follow-ups");
                    continue;
                }
            };
            // Only a full batch without follow-ups waiting to be retried (those
            // stay first in the work list) is a backlog.
            backlog = due.len() == BATCH && !due.iter().any(|f| retry.contains_key(&f.id));
            for f in due {
                if retry.get(&f.id).is_some_and(|(next, _)| *next > now) {
                    continue;
                }
                let claim = StateChange {
                    from: FollowUpState::Pending,
                    to: FollowUpState::Firing,
                    now: now_millis(),
                    note: None,
                };
                match self.store().set_follow_up_state(&f.key, &f.id, claim).await {
                    Ok(Some(claimed)) => {
                        if !self.fire_claimed(claimed.clone(), &mut retry).await {
                            unrecorded.insert(claimed.id);
                        }
                    }
                    Ok(None) => {} // cancelled meanwhile
                    Err(e) => {
                        tracing::warn!(error = %e.with_causes(), "cannot claim a due follow-up; not sent now");
                    }
                }
            }
        }
    }

    /// One pass over the follow-ups the store lists as left `firing` (a
    /// crash of this process before it started, or of a replica whose owner
    /// lock is gone): each is sent again, the documented instant where a
    /// follow-up may arrive twice. Returns how many were sent again.
    async fn recover_firing(
        &self,
        retry: &mut HashMap<FollowUpId, (EpochMillis, Duration)>,
        unrecorded: &mut HashSet<FollowUpId>,
    ) -> usize {
        let left = match self
            .store()
            .due_follow_ups(FollowUpState::Firing, EpochMillis::MAX, BATCH)
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e.with_causes(), "cannot read follow-ups left firing");
                return 0;
            }
        };
        let mut sent = 0;
        for f in left {
            if unrecorded.contains(&f.id) {
                continue;
            }
            sent += 1;
            tracing::warn!(key = %f.key, id = %f.id, "a follow-up was being sent when its readbot stopped; sending it again (it may arrive twice)");
            let id = f.id.clone();
            if !self.fire_claimed(f, retry).await {
                unrecorded.insert(id);
            }
        }
        sent
    }

    /// Sends one claimed (`firing`) follow-up and records what happened;
    /// false when the new state could not be written (it stays `firing`).
    async fn fire_claimed(
        &self,
        f: FollowUp,
        retry: &mut HashMap<FollowUpId, (EpochMillis, Duration)>,
    ) -> bool {
        let outcome = match self.fire(&f).await {
            Ok(o) => o,
            Err(BotError::DingTalk(e)) => Outcome::Retry(e),
            Err(e) => Outcome::Skipped("failed", format!("failed: {e}")),
        };
        let (to, note, label) = match &outcome {
            Outcome::Fired(note) => (FollowUpState::Fired, note.clone(), "ok"),
            Outcome::Skipped(reason, note) => (FollowUpState::Skipped, Some(note.clone()), *reason),
            Outcome::Retry(_) => (FollowUpState::Pending, None, "retry"),
        };
        if let Outcome::Retry(e) = &outcome {
            let wait = retry
                .get(&f.id)
                .map_or(RETRY_FIRST, |(_, w)| (*w * 2).min(RETRY_MAX));
            let next = now_millis().saturating_add(i64::try_from(wait.as_millis()).unwrap_or(0));
            retry.insert(f.id.clone(), (next, wait));
            tracing::warn!(error = %e, key = %f.key, id = %f.id, retry_in_secs = wait.as_secs(), "follow-up not sent; trying again");
        } else {
            retry.remove(&f.id);
        }
        let change = StateChange {
            from: FollowUpState::Firing,
            to,
            now: now_millis(),
            note: note.as_deref(),
        };
        if let Err(e) = self
            .store()
            .set_follow_up_state(&f.key, &f.id, change)
            .await
        {
            tracing::error!(error = %e.with_causes(), key = %f.key, id = %f.id, "follow-up handled but its state not recorded; a restart sends it again");
            crate::metrics::follow_up(to.as_str(), label);
            return false;
        }
        crate::metrics::follow_up(to.as_str(), label);
        true
    }

    /// The send itself: checks (notice, recall mark, lateness), then the
    /// summary or the direct messages.
    async fn fire(&self, f: &FollowUp) -> Result<Outcome, BotError> {
        let cfg = &self.deps().cfg;
        let tz = &cfg.timezone;
        let Some(notice) = self.store().notice(&f.key).await? else {
            return Ok(Outcome::Skipped(
                "gone",
                "the notice is no longer recorded".into(),
            ));
        };
        if self.store().recalled_at(&f.key).await?.is_some() {
            return Ok(Outcome::Skipped(
                "recalled",
                "the notice was recalled".into(),
            ));
        }
        let now = now_millis();
        let late_ms = now.saturating_sub(f.at);
        let max = i64::try_from(cfg.follow_up_max_lateness.as_millis()).unwrap_or(i64::MAX);
        if late_ms > max {
            tracing::warn!(
                key = %f.key, id = %f.id, late_secs = late_ms / 1000,
                max_secs = cfg.follow_up_max_lateness.as_secs(),
                "follow-up skipped: found due later than bot.follow_up_max_lateness_secs (readbot was not running)"
            );
            let note = format!(
                "too late: due at {} UTC, found {} min late",
                crate::config::ReplyTimeZone::utc().format_minutes(f.at),
                late_ms / 60_000
            );
            return Ok(Outcome::Skipped("too_late", note));
        }
        let late = late_ms > LATE_AFTER_MS;
        let scheduled = tz.format_minutes(f.at);
        let late_note = late.then(|| "late".to_owned());
        match f.action {
            FollowUpAction::Summary => {
                let receipts = self.collect(&notice, None).await?;
                let body = summary::render_summary(
                    &self.deps().renderer,
                    &receipts,
                    f.lang,
                    false,
                    "",
                    summary::Layout::of(cfg),
                )?;
                let now_text = tz.format_minutes(now);
                let header = sentences::follow_up_summary_header(
                    &scheduled,
                    late.then_some(now_text.as_str()),
                    f.lang,
                );
                let status = self.remind_status(&notice.key, f.lang).await;
                let mut text = format!("{header}\n\n{}", body.trim_end());
                if !status.is_empty() {
                    text = format!("{text}\n\n{status}");
                }
                let message = OutgoingMessage::markdown(&sentences::receipts_title(f.lang), &text);
                let sent = match (&f.by, cfg.reply_to) {
                    (Some(by), ReplyTo::Dm) => self.direct_message(by, message).await,
                    _ => self
                        .deps()
                        .api
                        .send_group_message(&GroupSend {
                            group: notice.group.clone(),
                            robot_code: self.deps().robot_code.clone(),
                            message,
                            cool_app_code: self.deps().cool_app_code.clone(),
                        })
                        .await
                        .map(|_| true),
                };
                Ok(self.sent_outcome(sent, late_note))
            }
            FollowUpAction::Remind => {
                let receipts = match self.unread(&notice, None).await? {
                    Ok(r) => r,
                    Err(stop) => {
                        return Ok(Outcome::Skipped("no_roster", stop.to_string()));
                    }
                };
                if receipts.unread.is_empty() {
                    return Ok(Outcome::Fired(Some("nobody was unread".into())));
                }
                let extra = late.then(|| sentences::follow_up_remind_late(&scheduled, f.lang));
                match self
                    .remind_by_dm(&notice, &receipts, f.by.as_ref(), f.lang, extra.as_deref())
                    .await
                {
                    Ok(out) => Ok(Outcome::Fired(Some(format!(
                        "{}reminded {} of {} unread",
                        if late { "late; " } else { "" },
                        out.reminded.len(),
                        out.unread
                    )))),
                    Err(BotError::DingTalk(e)) => Ok(self.sent_outcome(Err(e), None)),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// DingTalk's answer to a send → the follow-up's outcome: a timeout's
    /// outcome is unknown, so it counts as fired (not sent again); a refusal
    /// skips it; anything else is tried again.
    fn sent_outcome(&self, sent: Result<bool, DingTalkError>, note: Option<String>) -> Outcome {
        match sent {
            Ok(true) => Outcome::Fired(note),
            Ok(false) => Outcome::Skipped(
                "refused",
                "DingTalk did not accept the direct message for its recipient".into(),
            ),
            Err(DingTalkError::Timeout) => Outcome::Fired(Some(
                "unconfirmed: DingTalk did not answer in time (not sent again)".into(),
            )),
            Err(e) if e.is_refusal() => {
                Outcome::Skipped("refused", format!("DingTalk refused: {e}"))
            }
            Err(e) => Outcome::Retry(e),
        }
    }

    /// One robot direct message to `user` (`oToMessages/batchSend`):
    /// `Ok(false)` when DingTalk did not take it for that user (an invalid
    /// or flow-controlled id).
    pub(super) async fn direct_message(
        &self,
        user: &UserId,
        message: OutgoingMessage,
    ) -> Result<bool, DingTalkError> {
        let req = DirectSend {
            robot_code: self.deps().robot_code.clone(),
            users: vec![user.clone()],
            message,
        };
        let out = self.deps().api.send_direct_messages(&req).await?;
        match out.error {
            Some(e) if !out.sent.contains(user) => Err(e),
            _ => Ok(out.sent.contains(user)),
        }
    }

    /// `bot.ask_policy`: may `asker` see the summary of `notice`?
    pub(super) fn may_ask(&self, notice: &Notice, asker: Option<&UserId>) -> bool {
        let cfg = &self.deps().cfg;
        match cfg.ask_policy {
            AskPolicy::Anyone => true,
            AskPolicy::AuthorAndAdmins => {
                asker.is_some_and(|a| cfg.admins.contains(a) || notice.author.as_ref() == Some(a))
            }
        }
    }

    /// `bot.reply_to = "dm"`: the summary goes to the asker as a direct
    /// message and the group gets one short line (or, when the direct
    /// message fails, a sentence saying so). Otherwise `reply` as it is.
    pub(super) async fn privately(&self, msg: &Incoming, reply: Reply, lang: Lang) -> Reply {
        let (ReplyTo::Dm, Some(asker), Some(_)) =
            (self.deps().cfg.reply_to, &msg.sender, &msg.group)
        else {
            return reply;
        };
        let message = OutgoingMessage::markdown(&reply.title, &reply.markdown);
        match self.direct_message(asker, message).await {
            Ok(true) => {
                crate::metrics::reply("direct");
                Reply {
                    title: reply.title,
                    markdown: sentences::summary_sent_privately(lang),
                    at_user_ids: Vec::new(),
                }
            }
            Ok(false) => {
                tracing::warn!("DingTalk did not take the summary's direct message for the asker");
                self.error_reply(lang, sentences::summary_dm_failed(lang))
            }
            Err(e) => {
                tracing::warn!(error = %e, "the summary could not be sent as a direct message");
                self.error_reply(lang, sentences::summary_dm_failed(lang))
            }
        }
    }
}

/// A notice with what readbot did about it (`GET /api/v1/notices/{key}`).
#[derive(Debug, Clone)]
pub struct NoticeDetail {
    /// The notice.
    pub notice: Notice,
    /// Reminders sent, oldest first.
    pub reminders: Vec<Reminder>,
    /// Follow-ups, by due time.
    pub follow_ups: Vec<FollowUp>,
    /// When it was recalled, if it was.
    pub recalled_at: Option<EpochMillis>,
}
