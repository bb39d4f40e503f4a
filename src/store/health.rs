//! Store health: a full disk or a broken store must not look healthy.
//!
//! [`MonitoredStore`] wraps the configured backend (`Application::build_with`
//! does it once for every store). Every write failure is remembered in
//! [`StoreHealth`]; from then on writes are refused at once with
//! [`StoreError::Unavailable`] (the callback answers 503, so DingTalk or the
//! caller retries; the send API answers 503 before anything is sent) until a
//! probe write ([`Store::probe_write`]: a small record, flushed) succeeds.
//! Probes run at most once per [`PROBE_INTERVAL`]: from `/readyz`, from the
//! first refused write once the interval has passed, and from the app's
//! background probe while the store is failing, so readbot recovers by
//! itself once the disk has room again.
//!
//! A [`StoreError::FailedForGood`] (sled 0.34 keeps its first I/O error for
//! the life of the process) cannot recover: [`StoreHealth::failed_for_good`]
//! resolves, and the app stops and exits non-zero so that its supervisor
//! restarts it.

use super::{
    Claim, Cutoffs, EntryCounts, Pruned, SendRecord, SignatureUse, StateChange, Store, StoreError,
};
use crate::domain::CachedRoster;
use crate::domain::{
    now_millis, BillingMonth, EpochMillis, EventTrust, FollowUp, FollowUpId, FollowUpState,
    IdempotencyKey, MsgId, Notice, OpenConversationId, ProcessQueryKey, ReadRecord, Reminder,
    UserId,
};
use async_trait::async_trait;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// At most one probe write per this interval; a probe's result is reused
/// (by `/readyz`) for as long.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct State {
    /// The last write failure, on one line, while the store is failing.
    failing: Option<String>,
    /// The last write failure seen (kept after recovery, for `/readyz`).
    last_error: Option<(EpochMillis, String)>,
    /// When the last probe ran and what it found.
    last_probe: Option<(Instant, Result<(), String>)>,
    /// Set once the backend reported a failure it cannot recover from.
    fatal: Option<String>,
}

/// What `/readyz` shows about the store's writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Writes are refused right now.
    pub failing: bool,
    /// The last write failure (kept after recovery): when, and what.
    pub last_error: Option<(EpochMillis, String)>,
    /// The failure readbot exits on, if any.
    pub fatal: Option<String>,
    /// The latest probe write's result.
    pub probe: Option<Result<(), String>>,
}

/// Shared record of the store's write health. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth {
    state: Arc<Mutex<State>>,
    /// One probe at a time.
    probing: Arc<tokio::sync::Mutex<()>>,
    fatal: Arc<tokio::sync::Notify>,
}

impl StoreHealth {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a failed write: the store is failing from now on (and for
    /// good when `e` says so).
    pub fn record_failure(&self, e: &StoreError) {
        let line = e.with_causes();
        let newly_failing = {
            let mut st = self.lock();
            let newly = st.failing.is_none();
            st.failing = Some(line.clone());
            st.last_error = Some((now_millis(), line.clone()));
            if e.is_permanent() && st.fatal.is_none() {
                st.fatal = Some(line.clone());
                self.fatal.notify_waiters();
            }
            newly
        };
        crate::metrics::store_write_failed();
        if newly_failing {
            tracing::error!(error = %line, "the store cannot write; refusing work until a probe write succeeds");
        }
    }

    fn record_success(&self) {
        let was = self.lock().failing.take();
        crate::metrics::store_writes_again();
        if let Some(last) = was {
            tracing::info!(last_error = %last, "the store writes again; accepting work");
        }
    }

    /// The last failure while the store is failing (`None` when healthy).
    pub fn failing(&self) -> Option<String> {
        let st = self.lock();
        st.fatal.clone().or_else(|| st.failing.clone())
    }

    /// Snapshot for `/readyz`.
    pub fn report(&self) -> HealthReport {
        let st = self.lock();
        HealthReport {
            failing: st.failing.is_some() || st.fatal.is_some(),
            last_error: st.last_error.clone(),
            fatal: st.fatal.clone(),
            probe: st.last_probe.as_ref().map(|(_, r)| r.clone()),
        }
    }

    /// Resolves (with the failure's sentence) once the store has failed for
    /// good; never otherwise.
    pub async fn failed_for_good(&self) -> String {
        loop {
            let notified = self.fatal.notified();
            if let Some(f) = self.lock().fatal.clone() {
                return f;
            }
            notified.await;
        }
    }

    /// Whether a probe may run now: none ran within [`PROBE_INTERVAL`].
    fn probe_due(&self) -> bool {
        self.lock()
            .last_probe
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= PROBE_INTERVAL)
    }

    /// Proves a write on `store` (the backend itself, never a
    /// [`MonitoredStore`]) unless one ran within [`PROBE_INTERVAL`], whose
    /// result is returned instead. Concurrent callers share one probe.
    pub async fn probe(&self, store: &dyn Store) -> Result<(), String> {
        let _turn = self.probing.lock().await;
        if !self.probe_due() {
            if let Some((_, r)) = &self.lock().last_probe {
                return r.clone();
            }
        }
        let result = store.probe_write(now_millis()).await;
        let out = result.as_ref().map(|_| ()).map_err(StoreError::with_causes);
        match &result {
            Ok(()) if self.lock().fatal.is_none() => self.record_success(),
            Ok(()) => {}
            Err(e) => self.record_failure(e),
        }
        self.lock().last_probe = Some((Instant::now(), out.clone()));
        out
    }
}

/// A [`Store`] that reports every write failure to a [`StoreHealth`] and
/// refuses writes while the store is failing (see the module documentation).
/// Reads pass through untouched.
pub struct MonitoredStore {
    inner: Arc<dyn Store>,
    health: StoreHealth,
}

impl MonitoredStore {
    /// Monitors `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            health: StoreHealth::default(),
        }
    }

    /// The health record (for `/readyz` and the app's probe loop).
    pub fn health(&self) -> StoreHealth {
        self.health.clone()
    }

    /// The wrapped backend (probes go to it directly).
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Refuses a write while the store is failing, after one probe when due.
    async fn gate(&self) -> Result<(), StoreError> {
        if self.health.failing().is_none() {
            return Ok(());
        }
        if self.health.probe_due() {
            let _ = self.health.probe(self.inner.as_ref()).await;
        }
        match self.health.failing() {
            None => Ok(()),
            Some(last) => Err(StoreError::Unavailable { last }),
        }
    }

    /// Runs a write through the gate and records its failure.
    async fn write<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.gate().await?;
        let result = op.await;
        if let Err(e) = &result {
            if e.is_write_failure() {
                self.health.record_failure(e);
            }
        }
        result
    }
}

#[async_trait]
impl Store for MonitoredStore {
    async fn record_notice(&self, notice: &Notice) -> Result<(), StoreError> {
        self.write(self.inner.record_notice(notice)).await
    }

    async fn notice(&self, key: &ProcessQueryKey) -> Result<Option<Notice>, StoreError> {
        self.inner.notice(key).await
    }

    async fn notices_in_group(
        &self,
        group: &OpenConversationId,
        limit: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        self.inner.notices_in_group(group, limit).await
    }

    async fn last_notice_by(
        &self,
        group: &OpenConversationId,
        author: &UserId,
    ) -> Result<Option<Notice>, StoreError> {
        self.inner.last_notice_by(group, author).await
    }

    async fn notice_count(&self) -> Result<u64, StoreError> {
        self.inner.notice_count().await
    }

    async fn claim_message(&self, id: &MsgId, now: EpochMillis) -> Result<Claim, StoreError> {
        self.write(self.inner.claim_message(id, now)).await
    }

    async fn make_claim_durable(&self, id: &MsgId) -> Result<(), StoreError> {
        self.write(self.inner.make_claim_durable(id)).await
    }

    async fn finish_message(&self, id: &MsgId, now: EpochMillis) -> Result<(), StoreError> {
        self.write(self.inner.finish_message(id, now)).await
    }

    async fn prune_marks(&self, before: EpochMillis) -> Result<usize, StoreError> {
        self.write(self.inner.prune_marks(before)).await
    }

    async fn cached_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        self.inner.cached_names(users, fresh_since).await
    }

    async fn cache_names(
        &self,
        names: &[(UserId, String)],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.write(self.inner.cache_names(names, now)).await
    }

    async fn remember_members(
        &self,
        group: &OpenConversationId,
        users: &[UserId],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.write(self.inner.remember_members(group, users, now))
            .await
    }

    async fn learned_members(&self, group: &OpenConversationId) -> Result<Vec<UserId>, StoreError> {
        self.inner.learned_members(group).await
    }

    async fn remember_group_title(
        &self,
        group: &OpenConversationId,
        title: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.write(self.inner.remember_group_title(group, title, now))
            .await
    }

    async fn group_title(&self, group: &OpenConversationId) -> Result<Option<String>, StoreError> {
        self.inner.group_title(group).await
    }

    async fn cache_roster(
        &self,
        group: &OpenConversationId,
        roster: &CachedRoster,
    ) -> Result<(), StoreError> {
        self.write(self.inner.cache_roster(group, roster)).await
    }

    async fn cached_roster(
        &self,
        group: &OpenConversationId,
    ) -> Result<Option<CachedRoster>, StoreError> {
        self.inner.cached_roster(group).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.write(self.inner.flush()).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        self.inner.size_bytes().await
    }

    async fn begin_send(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: EpochMillis,
    ) -> Result<Option<SendRecord>, StoreError> {
        self.write(self.inner.begin_send(key, fingerprint, now))
            .await
    }

    async fn complete_send(&self, key: &IdempotencyKey, notice: &Notice) -> Result<(), StoreError> {
        // Not gated: the notice was sent; recording it is always worth a try.
        let result = self.inner.complete_send(key, notice).await;
        if let Err(e) = &result {
            if e.is_write_failure() {
                self.health.record_failure(e);
            }
        }
        result
    }

    async fn abandon_send(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.write(self.inner.abandon_send(key)).await
    }

    async fn prune_old(&self, cutoffs: Cutoffs) -> Result<Pruned, StoreError> {
        self.write(self.inner.prune_old(cutoffs)).await
    }

    async fn use_signature(
        &self,
        timestamp: EpochMillis,
        id: &MsgId,
        now: EpochMillis,
        limit: usize,
    ) -> Result<SignatureUse, StoreError> {
        self.write(self.inner.use_signature(timestamp, id, now, limit))
            .await
    }

    async fn cache_callback_name(
        &self,
        user: &UserId,
        name: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.write(self.inner.cache_callback_name(user, name, now))
            .await
    }

    async fn callback_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        self.inner.callback_names(users, fresh_since).await
    }

    async fn record_reminder(
        &self,
        key: &ProcessQueryKey,
        reminder: &Reminder,
    ) -> Result<(), StoreError> {
        self.write(self.inner.record_reminder(key, reminder)).await
    }

    async fn reminders(&self, key: &ProcessQueryKey) -> Result<Vec<Reminder>, StoreError> {
        self.inner.reminders(key).await
    }

    async fn mark_recalled(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<bool, StoreError> {
        self.write(self.inner.mark_recalled(key, at)).await
    }

    async fn recalled_at(&self, key: &ProcessQueryKey) -> Result<Option<EpochMillis>, StoreError> {
        self.inner.recalled_at(key).await
    }

    async fn add_follow_ups(&self, list: &[FollowUp]) -> Result<(), StoreError> {
        self.write(self.inner.add_follow_ups(list)).await
    }

    async fn follow_ups(&self, key: &ProcessQueryKey) -> Result<Vec<FollowUp>, StoreError> {
        self.inner.follow_ups(key).await
    }

    async fn due_follow_ups(
        &self,
        state: FollowUpState,
        due_by: EpochMillis,
        limit: usize,
    ) -> Result<Vec<FollowUp>, StoreError> {
        self.inner.due_follow_ups(state, due_by, limit).await
    }

    async fn set_follow_up_state(
        &self,
        key: &ProcessQueryKey,
        id: &FollowUpId,
        change: StateChange<'_>,
    ) -> Result<Option<FollowUp>, StoreError> {
        self.write(self.inner.set_follow_up_state(key, id, change))
            .await
    }

    async fn record_reads(
        &self,
        key: &ProcessQueryKey,
        reads: &[ReadRecord],
    ) -> Result<usize, StoreError> {
        self.write(self.inner.record_reads(key, reads)).await
    }

    async fn reads(&self, key: &ProcessQueryKey) -> Result<Vec<ReadRecord>, StoreError> {
        self.inner.reads(key).await
    }

    async fn reconciled_at(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Option<EpochMillis>, StoreError> {
        self.inner.reconciled_at(key).await
    }

    async fn set_reconciled_at(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<(), StoreError> {
        self.write(self.inner.set_reconciled_at(key, at)).await
    }

    async fn event_trust(&self) -> Result<EventTrust, StoreError> {
        self.inner.event_trust().await
    }

    async fn set_event_trust(&self, trust: &EventTrust) -> Result<(), StoreError> {
        self.write(self.inner.set_event_trust(trust)).await
    }

    async fn add_calls(
        &self,
        month: &BillingMonth,
        calls: &[(&str, u64)],
    ) -> Result<(), StoreError> {
        self.write(self.inner.add_calls(month, calls)).await
    }

    async fn calls_in_month(&self, month: &BillingMonth) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.calls_in_month(month).await
    }

    async fn link_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.link_key().await
    }

    async fn init_link_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.write(self.inner.init_link_key(candidate)).await
    }

    async fn entry_counts(&self) -> Result<EntryCounts, StoreError> {
        self.inner.entry_counts().await
    }

    async fn probe_write(&self, _now: EpochMillis) -> Result<(), StoreError> {
        self.health
            .probe(self.inner.as_ref())
            .await
            .map_err(|last| StoreError::Unavailable { last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{mid, notice};
    use crate::store::flaky::FlakyStore;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn a_failed_write_refuses_writes_until_a_probe_succeeds() {
        let disk = Arc::new(FlakyStore::default());
        let s = MonitoredStore::new(disk.clone());
        let health = s.health();
        s.record_notice(&notice("k1", "cid1", None, 1))
            .await
            .unwrap();
        assert_eq!(health.failing(), None);

        disk.full.store(true, Ordering::SeqCst);
        let err = s
            .record_notice(&notice("k2", "cid1", None, 2))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend { .. }), "{err:?}");
        let last = health.failing().expect("failing after a failed write");
        assert!(last.contains("os error 28"), "{last}");

        // The first refused write probes (none ran yet); it fails, and the
        // next writes within the interval are refused without a probe.
        for _ in 0..5 {
            let err = s.claim_message(&mid("m1"), 3).await.unwrap_err();
            assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        }
        assert_eq!(disk.probes.load(Ordering::SeqCst), 1, "rate-limited probes");
        // Reads still work.
        assert!(s
            .notice(&notice("k1", "cid1", None, 1).key)
            .await
            .unwrap()
            .is_some());

        // Room again: the next probe (once due) clears the failure.
        disk.full.store(false, Ordering::SeqCst);
        health.lock().last_probe = None;
        assert_eq!(s.claim_message(&mid("m1"), 4).await.unwrap(), Claim::New);
        assert_eq!(health.failing(), None);
        let report = health.report();
        assert!(!report.failing);
        assert!(
            report.last_error.is_some(),
            "the last error is still reported"
        );
        assert_eq!(report.probe, Some(Ok(())));
    }

    #[tokio::test]
    async fn a_permanent_failure_is_fatal_and_never_clears() {
        let disk = Arc::new(FlakyStore::default());
        let s = MonitoredStore::new(disk.clone());
        let health = s.health();
        let waiter = tokio::spawn({
            let health = health.clone();
            async move { health.failed_for_good().await }
        });
        disk.full.store(true, Ordering::SeqCst);
        disk.for_good.store(true, Ordering::SeqCst);
        assert!(s.make_claim_durable(&mid("m1")).await.is_err());
        let why = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("fatal is signalled")
            .unwrap();
        assert!(why.contains("only a restart"), "{why}");
        // Even a probe that succeeds does not clear it.
        disk.full.store(false, Ordering::SeqCst);
        health.lock().last_probe = None;
        assert!(matches!(
            s.record_notice(&notice("k", "cid1", None, 1)).await,
            Err(StoreError::Unavailable { .. })
        ));
        assert!(health.report().fatal.is_some());
    }
}
