//! Reads by push: read and recall events, and when their data alone may
//! answer a summary.
//!
//! Every `robot_msg_read` for a notice readbot sent is stored per reader
//! with its time ([`on_read`]); `robot_msg_recall` marks the notice recalled
//! ([`on_recall`]). A summary then answers from the stored events alone, at
//! no query call, when that can be complete ([`reads`]):
//!
//! - event intake is **verified** for this app: a query pass over a notice
//!   with at least [`MIN_VERIFYING_READERS`] readers found every one of them
//!   already recorded from events, and no later pass found a gap;
//! - intake had no gap since the notice's data was last complete (sent, or
//!   last reconciled): the Stream connection has been up continuously since
//!   then (HTTP push: the process has);
//! - that was less than `bot.reconcile_interval_secs` ago.
//!
//! Otherwise one query pass runs and reconciles: readers it finds that no
//! event reported are stored ("first seen by a query"), the two sets are
//! merged, and, when intake was up the whole time (so every read should
//! have come as an event), the comparison updates the verification: a miss
//! turns trust off (log line, metric, `/healthz`), a full match over enough
//! readers turns it on.

use super::BotError;
use crate::dingtalk::events::{ReadEvent, RecallEvent};
use crate::dingtalk::{DingTalkApi, ReadQuery, ReadState};
use crate::domain::{
    now_millis, EpochMillis, EventTrust, Notice, ReadRecord, ReadSource, ReadsFrom, RobotCode,
    SendStatus, UserId,
};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Readers a verifying pass must find, all already recorded from events: a
/// pass over fewer proves little (and one over none proves nothing).
pub const MIN_VERIFYING_READERS: usize = 5;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    /// Stored (durably).
    Recorded,
    /// Already known: nothing changed.
    Duplicate,
    /// Not a notice readbot sent: counted and dropped.
    UnknownKey,
    /// A read by someone outside the org (no user id): dropped.
    NoReader,
}

impl Intake {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Intake::Recorded => "recorded",
            Intake::Duplicate => "duplicate",
            Intake::UnknownKey => "unknown_key",
            Intake::NoReader => "no_reader",
        }
    }
}

/// Since when event intake has been continuously up (`None`: down, or not
/// set up). Stream mode: the gateway connection's start; HTTP push: the
/// process start.
pub type IntakeUptime = Arc<dyn Fn() -> Option<EpochMillis> + Send + Sync>;

/// The bot's push state: the intake clock and the cached verification.
#[derive(Default)]
pub struct PushState {
    uptime: OnceLock<IntakeUptime>,
    trust: tokio::sync::Mutex<Option<EventTrust>>,
}

impl std::fmt::Debug for PushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushState").finish_non_exhaustive()
    }
}

/// Event intake as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushStatus {
    /// Whether event intake is set up (Stream mode, or HTTP push keys).
    pub intake: bool,
    /// Since when intake has been continuously up (epoch ms).
    pub intake_up_since: Option<EpochMillis>,
    /// Whether a query pass has verified intake and no later one found a gap.
    pub verified: bool,
    /// When the last reconciliation pass ran.
    pub last_pass_at: Option<EpochMillis>,
    /// When a pass last found reads the events had missed.
    pub last_gap_at: Option<EpochMillis>,
}

impl PushState {
    /// Sets the intake clock (once; later calls are ignored).
    pub fn set_uptime(&self, uptime: IntakeUptime) {
        let _ = self.uptime.set(uptime);
    }

    fn up_since(&self) -> Option<EpochMillis> {
        self.uptime.get().and_then(|f| f())
    }

    async fn trust(&self, store: &dyn Store) -> Result<EventTrust, StoreError> {
        let mut t = self.trust.lock().await;
        if let Some(t) = t.as_ref() {
            return Ok(t.clone());
        }
        let loaded = store.event_trust().await?;
        crate::metrics::event_trust(loaded.verified);
        *t = Some(loaded.clone());
        Ok(loaded)
    }

    /// The status for `/healthz` (reads the store once, then the cache).
    pub async fn status(&self, store: &dyn Store) -> PushStatus {
        let trust = self.trust(store).await.unwrap_or_default();
        PushStatus {
            intake: self.uptime.get().is_some(),
            intake_up_since: self.up_since(),
            verified: trust.verified,
            last_pass_at: trust.last_pass_at,
            last_gap_at: trust.last_gap_at,
        }
    }
}

/// Stores one read event: durable before this returns (the Stream ack and
/// the HTTP answer wait for it). Duplicates change nothing.
pub async fn on_read(store: &dyn Store, ev: &ReadEvent) -> Result<Intake, StoreError> {
    let Some(reader) = &ev.reader else {
        return Ok(Intake::NoReader);
    };
    if store.notice(&ev.key).await?.is_none() {
        return Ok(Intake::UnknownKey);
    }
    let read = ReadRecord {
        user_id: reader.clone(),
        at: ev.at,
        source: ReadSource::Event,
    };
    Ok(match store.record_reads(&ev.key, &[read]).await? {
        0 => Intake::Duplicate,
        _ => Intake::Recorded,
    })
}

/// Marks a notice recalled (durably); only the first recall counts.
pub async fn on_recall(store: &dyn Store, ev: &RecallEvent) -> Result<Intake, StoreError> {
    if store.notice(&ev.key).await?.is_none() {
        return Ok(Intake::UnknownKey);
    }
    Ok(if store.mark_recalled(&ev.key, ev.at).await? {
        Intake::Recorded
    } else {
        Intake::Duplicate
    })
}

/// What [`reads`] needs.
pub struct PushDeps<'a> {
    /// DingTalk (for a query pass).
    pub api: &'a dyn DingTalkApi,
    /// The store.
    pub store: &'a dyn Store,
    /// The robot is never a reader.
    pub robot: &'a RobotCode,
    /// `bot.reconcile_interval_secs`.
    pub reconcile_interval: Duration,
    /// The intake clock and cached verification.
    pub state: &'a PushState,
    /// The month's call budget is nearly spent ([`super::quota`]): answer
    /// from stored reads instead of a query pass.
    pub saving_calls: bool,
}

/// Whether stored events alone answer a summary of `notice` now (verified
/// intake, no gap since its data was last complete, fresh): then since when
/// intake has been continuously up.
pub async fn trusted_since(
    deps: &PushDeps<'_>,
    notice: &Notice,
) -> Result<Option<EpochMillis>, BotError> {
    let (trusted, _) = judge(deps, notice).await?;
    Ok(deps.state.up_since().filter(|_| trusted))
}

/// (trusted, gap-free since the notice's data was last complete).
async fn judge(deps: &PushDeps<'_>, notice: &Notice) -> Result<(bool, bool), BotError> {
    let store = deps.store;
    let trust = deps.state.trust(store).await?;
    let last = store
        .reconciled_at(&notice.key)
        .await?
        .unwrap_or(notice.sent_at)
        .max(notice.sent_at);
    let now = now_millis();
    let up_since = deps.state.up_since();
    let gap_free = up_since.is_some_and(|s| s <= last);
    let interval = i64::try_from(deps.reconcile_interval.as_millis()).unwrap_or(i64::MAX);
    let fresh = now.saturating_sub(last) < interval;
    Ok((trust.verified && gap_free && fresh, gap_free))
}

/// The reads of one notice: the read state, where it came from, and the
/// stored reads (time and source per reader) after any reconciliation.
pub async fn reads(
    deps: &PushDeps<'_>,
    notice: &Notice,
) -> Result<(ReadState, ReadsFrom, Vec<ReadRecord>), BotError> {
    let store = deps.store;
    let (trusted, gap_free) = judge(deps, notice).await?;
    let now = now_millis();
    if trusted || deps.saving_calls {
        let stored = without_robot(store.reads(&notice.key).await?, deps.robot);
        let recalled = store.recalled_at(&notice.key).await?.is_some();
        let state = ReadState {
            send_status: if recalled {
                SendStatus::Recalled
            } else {
                SendStatus::Success
            },
            readers: stored.iter().map(|r| r.user_id.clone()).collect(),
            pages: 0,
            truncated: false,
        };
        let from = if trusted {
            ReadsFrom::Events
        } else {
            ReadsFrom::Stored
        };
        crate::metrics::receipt_reads(from.as_str());
        return Ok((state, from, stored));
    }
    let query = ReadQuery {
        key: notice.key.clone(),
        group: notice.group.clone(),
        robot_code: notice.robot_code.clone(),
        sent_at: notice.sent_at,
    };
    let mut state = deps.api.read_state(&query).await?;
    crate::metrics::receipt_reads("query");
    // Taken after the query: an event that raced it is already stored.
    let stored = store.reads(&notice.key).await?;
    let known: HashSet<&UserId> = stored.iter().map(|r| &r.user_id).collect();
    let robot = deps.robot.as_str();
    let queried: Vec<&UserId> = state
        .readers
        .iter()
        .filter(|u| u.as_str() != robot)
        .collect();
    // Readers a previous pass already saw are not new misses.
    let missed = queried.iter().filter(|u| !known.contains(*u)).count();

    let first_seen: Vec<ReadRecord> = queried
        .iter()
        .filter(|u| !known.contains(*u))
        .map(|u| ReadRecord {
            user_id: (*u).clone(),
            at: now,
            source: ReadSource::Query,
        })
        .collect();
    // Readers only the events know (the query may lag): merged in.
    let in_query: HashSet<&UserId> = state.readers.iter().collect();
    let extra: Vec<UserId> = stored
        .iter()
        .filter(|r| !in_query.contains(&r.user_id) && r.user_id.as_str() != robot)
        .map(|r| r.user_id.clone())
        .collect();
    let queried_count = queried.len();
    if !first_seen.is_empty() {
        store.record_reads(&notice.key, &first_seen).await?;
    }
    state.readers.extend(extra);
    store.set_reconciled_at(&notice.key, now).await?;
    // Only a pass over a stretch with intake up the whole time says anything
    // about the intake: reads while it was down are expected to be missing.
    update_trust(deps.state, store, now, gap_free, queried_count, missed).await?;
    let stored = without_robot(store.reads(&notice.key).await?, deps.robot);
    Ok((state, ReadsFrom::Query, stored))
}

fn without_robot(mut reads: Vec<ReadRecord>, robot: &RobotCode) -> Vec<ReadRecord> {
    reads.retain(|r| r.user_id.as_str() != robot.as_str());
    reads
}

/// Applies one pass's comparison to the verification state.
async fn update_trust(
    state: &PushState,
    store: &dyn Store,
    now: EpochMillis,
    meaningful: bool,
    queried: usize,
    missed: usize,
) -> Result<(), StoreError> {
    // Loaded first, so the lock below always holds a value.
    state.trust(store).await?;
    let mut guard = state.trust.lock().await;
    let mut t = guard.clone().unwrap_or_default();
    let before = t.clone();
    t.last_pass_at = Some(now);
    if meaningful && missed > 0 {
        crate::metrics::event_gap();
        t.last_gap_at = Some(now);
        t.last_gap_missed = missed;
        if t.verified {
            t.verified = false;
            t.changed_at = Some(now);
            tracing::warn!(
                missed,
                readers = queried,
                "read events missed readers a query found: summaries query DingTalk until a later pass verifies the events again"
            );
        } else {
            tracing::debug!(missed, readers = queried, "read events still incomplete");
        }
    } else if meaningful && missed == 0 && queried >= MIN_VERIFYING_READERS && !t.verified {
        t.verified = true;
        t.changed_at = Some(now);
        tracing::info!(
            readers = queried,
            "read events verified: every reader a query found was already recorded; summaries now answer from events"
        );
    }
    let persist = t.verified != before.verified || t.last_gap_at != before.last_gap_at;
    if persist {
        store.set_event_trust(&t).await?;
    }
    crate::metrics::event_trust(t.verified);
    *guard = Some(t);
    Ok(())
}

/// Takes one pushed event from `via` (`stream`, `http`): stores it, counts
/// it and logs what needs a log. `Err` only for a store failure (the event
/// must be redelivered); events readbot cannot use are dropped here.
pub async fn take(
    store: &dyn Store,
    event: &crate::dingtalk::events::PushEvent,
    via: &'static str,
) -> Result<(), StoreError> {
    use crate::dingtalk::events::PushEvent;
    let (kind, result) = match event {
        PushEvent::Read(ev) => ("read", on_read(store, ev).await),
        PushEvent::Recall(ev) => ("recall", on_recall(store, ev).await),
        PushEvent::CheckUrl | PushEvent::Other(_) => {
            crate::metrics::event("other", via, "ignored");
            return Ok(());
        }
    };
    match result {
        Ok(intake) => {
            crate::metrics::event(kind, via, intake.label());
            match (intake, event) {
                (Intake::UnknownKey, _) => {
                    tracing::debug!(kind, "event for a message readbot did not send; dropped")
                }
                (Intake::Recorded, PushEvent::Recall(ev)) => {
                    tracing::info!(key = %ev.key, "notice recalled (event)")
                }
                _ => {}
            }
            Ok(())
        }
        Err(e) => {
            crate::metrics::event(kind, via, "store_error");
            tracing::error!(error = %e.with_causes(), kind, "could not store an event; asking for redelivery");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dingtalk::events::PushEvent;
    use crate::dingtalk::scripted::ScriptedApi;
    use crate::domain::{OpenConversationId, ProcessQueryKey};
    use crate::store::memory::MemoryStore;

    fn notice(key: &str, sent_at: EpochMillis) -> Notice {
        Notice {
            key: ProcessQueryKey::parse(key).unwrap(),
            group: OpenConversationId::parse("cid1").unwrap(),
            robot_code: RobotCode::parse("robot").unwrap(),
            title: "t".into(),
            author: None,
            author_name: None,
            msg_key: "sampleMarkdown".into(),
            sent_at,
        }
    }

    fn read(key: &str, user: Option<&str>, at: EpochMillis) -> PushEvent {
        PushEvent::Read(ReadEvent {
            key: ProcessQueryKey::parse(key).unwrap(),
            reader: user.map(|u| UserId::parse(u).unwrap()),
            at,
            group: None,
            robot_code: None,
            event_id: None,
        })
    }

    #[tokio::test]
    async fn intake_stores_known_reads_once_and_drops_the_rest() {
        let store = MemoryStore::new();
        let n = notice("k", 1);
        store.record_notice(&n).await.unwrap();
        for ev in [
            read("k", Some("a"), 10),
            read("k", Some("a"), 10),
            read("k", Some("b"), 5),
            read("k", None, 5),
            read("other", Some("a"), 5),
        ] {
            take(&store, &ev, "stream").await.unwrap();
        }
        let reads = store.reads(&n.key).await.unwrap();
        let ids: Vec<&str> = reads.iter().map(|r| r.user_id.as_str()).collect();
        assert_eq!(
            ids,
            ["b", "a"],
            "by time; the duplicate, the outsider and the unknown key dropped"
        );
        assert!(reads.iter().all(|r| r.source == ReadSource::Event));
        assert!(store
            .reads(&ProcessQueryKey::parse("other").unwrap())
            .await
            .unwrap()
            .is_empty());
        let recall = PushEvent::Recall(RecallEvent {
            key: n.key.clone(),
            at: 99,
            event_id: None,
        });
        take(&store, &recall, "http").await.unwrap();
        take(&store, &recall, "http").await.unwrap();
        assert_eq!(store.recalled_at(&n.key).await.unwrap(), Some(99));
    }

    struct Fixture {
        api: Arc<ScriptedApi>,
        store: MemoryStore,
        state: PushState,
        robot: RobotCode,
        saving: bool,
    }

    impl Fixture {
        fn new(up_since: Option<EpochMillis>) -> Self {
            let state = PushState::default();
            state.set_uptime(Arc::new(move || up_since));
            Self {
                api: Arc::new(ScriptedApi::new()),
                store: MemoryStore::new(),
                state,
                robot: RobotCode::parse("robot").unwrap(),
                saving: false,
            }
        }

        async fn reads(&self, n: &Notice) -> (ReadState, ReadsFrom, Vec<ReadRecord>) {
            let deps = PushDeps {
                api: self.api.as_ref(),
                store: &self.store,
                robot: &self.robot,
                reconcile_interval: Duration::from_secs(3600),
                state: &self.state,
                saving_calls: self.saving,
            };
            reads(&deps, n).await.unwrap()
        }

        fn answer_query(&self, readers: &[&str]) {
            let readers: Vec<UserId> = readers.iter().map(|u| UserId::parse(*u).unwrap()).collect();
            self.api.on_read_state(move |_| {
                Ok(ReadState {
                    send_status: SendStatus::Success,
                    readers: readers.clone(),
                    pages: 1,
                    truncated: false,
                })
            });
        }
    }

    #[tokio::test]
    async fn a_verifying_pass_then_events_alone_then_a_gap() {
        let f = Fixture::new(Some(0));
        let now = now_millis();
        let n = notice("k", now - 1000);
        f.store.record_notice(&n).await.unwrap();
        let users = ["u1", "u2", "u3", "u4", "u5", "robot"];
        for (i, u) in users.iter().enumerate() {
            take(
                &f.store,
                &read("k", Some(u), now - 900 + i as i64),
                "stream",
            )
            .await
            .unwrap();
        }
        // Not verified yet: one query pass, which finds every reader recorded.
        f.answer_query(&users);
        let (state, from, times) = f.reads(&n).await;
        assert_eq!(from, ReadsFrom::Query);
        assert_eq!(
            state.readers.len(),
            6,
            "the robot is left out later, by the tally"
        );
        assert_eq!(times.len(), 5, "never the robot");
        assert!(f.store.event_trust().await.unwrap().verified);
        let queries = f.api.calls().len();

        // Verified and up since before the last pass: events alone.
        let n2 = notice("k2", now_millis());
        f.store.record_notice(&n2).await.unwrap();
        take(&f.store, &read("k2", Some("u1"), now_millis()), "stream")
            .await
            .unwrap();
        let (state, from, times) = f.reads(&n2).await;
        assert_eq!(from, ReadsFrom::Events);
        assert_eq!(state.readers, [UserId::parse("u1").unwrap()]);
        assert_eq!(state.pages, 0);
        assert_eq!(times[0].source, ReadSource::Event);
        assert_eq!(f.api.calls().len(), queries, "no call at all");
    }

    #[tokio::test]
    async fn a_gap_turns_trust_off_and_marks_first_sightings() {
        let f = Fixture::new(Some(0));
        f.store
            .set_event_trust(&EventTrust {
                verified: true,
                ..EventTrust::default()
            })
            .await
            .unwrap();
        // Past the reconcile interval: a pass runs; one event was dropped.
        let n = notice("k", now_millis() - 2 * 3600 * 1000);
        f.store.record_notice(&n).await.unwrap();
        take(&f.store, &read("k", Some("u1"), n.sent_at + 5), "stream")
            .await
            .unwrap();
        f.answer_query(&["u1", "u2"]);
        let (state, from, times) = f.reads(&n).await;
        assert_eq!(from, ReadsFrom::Query);
        assert_eq!(state.readers.len(), 2);
        assert_eq!(
            times.iter().map(|r| r.source).collect::<Vec<_>>(),
            [ReadSource::Event, ReadSource::Query]
        );
        let t = f.store.event_trust().await.unwrap();
        assert!(!t.verified);
        assert_eq!(t.last_gap_missed, 1);
    }

    #[tokio::test]
    async fn a_pass_over_a_stretch_with_intake_down_proves_nothing() {
        // Intake came up after the notice was sent.
        let f = Fixture::new(Some(now_millis()));
        let n = notice("k", now_millis() - 60_000);
        f.store.record_notice(&n).await.unwrap();
        f.answer_query(&["u1", "u2", "u3", "u4", "u5", "u6"]);
        let (_, from, times) = f.reads(&n).await;
        assert_eq!(from, ReadsFrom::Query);
        assert_eq!(times.len(), 6, "merged as first sightings");
        let t = f.store.event_trust().await.unwrap();
        assert_eq!(
            (t.verified, t.last_gap_at),
            (false, None),
            "neither verified nor a gap"
        );
        // Without intake at all, never trusted.
        let none = Fixture::new(None);
        none.store
            .set_event_trust(&EventTrust {
                verified: true,
                ..EventTrust::default()
            })
            .await
            .unwrap();
        let n = notice("k", now_millis());
        none.store.record_notice(&n).await.unwrap();
        none.answer_query(&[]);
        assert_eq!(none.reads(&n).await.1, ReadsFrom::Query);
    }

    #[tokio::test]
    async fn saving_calls_answers_from_stored_reads_without_a_query() {
        // Never verified, and the data is old: normally a query pass.
        let mut f = Fixture::new(None);
        f.saving = true;
        let n = notice("k", now_millis() - 2 * 3600 * 1000);
        f.store.record_notice(&n).await.unwrap();
        take(&f.store, &read("k", Some("u1"), n.sent_at + 5), "stream")
            .await
            .unwrap();
        f.store
            .record_reads(
                &n.key,
                &[ReadRecord {
                    user_id: UserId::parse("u2").unwrap(),
                    at: n.sent_at + 9,
                    source: ReadSource::Query,
                }],
            )
            .await
            .unwrap();
        let (state, from, times) = f.reads(&n).await;
        assert_eq!(from, ReadsFrom::Stored);
        assert_eq!(state.readers.len(), 2, "events and earlier query passes");
        assert_eq!(times.len(), 2);
        assert!(f.api.calls().is_empty(), "no call at all");
        assert_eq!(f.store.reconciled_at(&n.key).await.unwrap(), None);
    }
}
