//! A fault-injecting [`Store`] for tests: a [`MemoryStore`] whose reads and
//! writes can be made to fail the way a vanished or full disk, or sled after
//! its first I/O error, fails. One double for the store's own unit tests and
//! the integration tests (like [`crate::dingtalk::scripted`] for DingTalk),
//! so a new `Store` method is delegated here once.

use super::memory::MemoryStore;
use super::{Claim, Cutoffs, EntryCounts, Pruned, SendRecord, SignatureUse, Store, StoreError};
use crate::domain::{
    BillingMonth, EpochMillis, EventTrust, IdempotencyKey, MsgId, Notice, OpenConversationId,
    ProcessQueryKey, ReadRecord, UserId,
};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A store that can be made to fail, like a disk that went away
/// (`broken`), a disk that is full (`full`: every durable write fails with
/// ENOSPC, reads work), or sled after its first I/O error (`for_good`).
#[derive(Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub broken: AtomicBool,
    /// Only `flush` fails (writes land in memory but cannot be made durable).
    pub flush_broken: AtomicBool,
    /// Durable writes fail with "No space left on device" (os error 28).
    pub full: AtomicBool,
    /// With `full`: the failure is permanent (as sled 0.34 reports it).
    pub for_good: AtomicBool,
    /// Probe writes asked for (failed ones included).
    pub probes: AtomicUsize,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::message("I/O error: the data folder is gone"))
        } else {
            Ok(())
        }
    }

    /// The check of a write that must reach the disk.
    fn check_durable(&self) -> Result<(), StoreError> {
        self.check()?;
        if !self.full.load(Ordering::SeqCst) {
            return Ok(());
        }
        let enospc = std::io::Error::from_raw_os_error(28);
        if self.for_good.load(Ordering::SeqCst) {
            Err(StoreError::FailedForGood {
                context: "cannot flush to disk".into(),
                source: Some(enospc.into()),
            })
        } else {
            Err(StoreError::backend("cannot flush to disk", enospc))
        }
    }
}

#[async_trait]
impl Store for FlakyStore {
    async fn record_notice(&self, notice: &Notice) -> Result<(), StoreError> {
        self.check_durable()?;
        self.inner.record_notice(notice).await
    }
    async fn notice(&self, key: &ProcessQueryKey) -> Result<Option<Notice>, StoreError> {
        self.check()?;
        self.inner.notice(key).await
    }
    async fn notices_in_group(
        &self,
        group: &OpenConversationId,
        limit: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        self.check()?;
        self.inner.notices_in_group(group, limit).await
    }
    async fn last_notice_by(
        &self,
        group: &OpenConversationId,
        author: &UserId,
    ) -> Result<Option<Notice>, StoreError> {
        self.check()?;
        self.inner.last_notice_by(group, author).await
    }
    async fn notice_count(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.notice_count().await
    }
    async fn claim_message(&self, id: &MsgId, now: EpochMillis) -> Result<Claim, StoreError> {
        self.check()?;
        self.inner.claim_message(id, now).await
    }
    async fn make_claim_durable(&self, id: &MsgId) -> Result<(), StoreError> {
        self.check_durable()?;
        if self.flush_broken.load(Ordering::SeqCst) {
            return Err(StoreError::message("I/O error: fsync failed"));
        }
        self.inner.make_claim_durable(id).await
    }
    async fn finish_message(&self, id: &MsgId, now: EpochMillis) -> Result<(), StoreError> {
        self.check()?;
        self.inner.finish_message(id, now).await
    }
    async fn prune_marks(&self, before: EpochMillis) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.prune_marks(before).await
    }
    async fn cached_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        self.check()?;
        self.inner.cached_names(users, fresh_since).await
    }
    async fn cache_names(
        &self,
        names: &[(UserId, String)],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.cache_names(names, now).await
    }
    async fn use_signature(
        &self,
        timestamp: EpochMillis,
        id: &MsgId,
        now: EpochMillis,
        limit: usize,
    ) -> Result<SignatureUse, StoreError> {
        self.check()?;
        self.inner.use_signature(timestamp, id, now, limit).await
    }
    async fn cache_callback_name(
        &self,
        user: &UserId,
        name: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.cache_callback_name(user, name, now).await
    }
    async fn callback_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        self.check()?;
        self.inner.callback_names(users, fresh_since).await
    }
    async fn remember_members(
        &self,
        group: &OpenConversationId,
        users: &[UserId],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.remember_members(group, users, now).await
    }
    async fn learned_members(&self, group: &OpenConversationId) -> Result<Vec<UserId>, StoreError> {
        self.check()?;
        self.inner.learned_members(group).await
    }
    async fn remember_group_title(
        &self,
        group: &OpenConversationId,
        title: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.remember_group_title(group, title, now).await
    }
    async fn group_title(&self, group: &OpenConversationId) -> Result<Option<String>, StoreError> {
        self.check()?;
        self.inner.group_title(group).await
    }
    async fn cache_roster(
        &self,
        group: &OpenConversationId,
        roster: &crate::domain::CachedRoster,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.cache_roster(group, roster).await
    }
    async fn cached_roster(
        &self,
        group: &OpenConversationId,
    ) -> Result<Option<crate::domain::CachedRoster>, StoreError> {
        self.check()?;
        self.inner.cached_roster(group).await
    }
    async fn record_reminder(
        &self,
        key: &ProcessQueryKey,
        reminder: &crate::domain::Reminder,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_reminder(key, reminder).await
    }
    async fn reminders(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Vec<crate::domain::Reminder>, StoreError> {
        self.check()?;
        self.inner.reminders(key).await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.check_durable()?;
        if self.flush_broken.load(Ordering::SeqCst) {
            return Err(StoreError::message("I/O error: fsync failed"));
        }
        self.inner.flush().await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.size_bytes().await
    }
    async fn record_reads(
        &self,
        key: &ProcessQueryKey,
        reads: &[ReadRecord],
    ) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.record_reads(key, reads).await
    }
    async fn reads(&self, key: &ProcessQueryKey) -> Result<Vec<ReadRecord>, StoreError> {
        self.check()?;
        self.inner.reads(key).await
    }
    async fn mark_recalled(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.mark_recalled(key, at).await
    }
    async fn recalled_at(&self, key: &ProcessQueryKey) -> Result<Option<EpochMillis>, StoreError> {
        self.check()?;
        self.inner.recalled_at(key).await
    }
    async fn add_follow_ups(&self, list: &[crate::domain::FollowUp]) -> Result<(), StoreError> {
        self.check_durable()?;
        self.inner.add_follow_ups(list).await
    }
    async fn follow_ups(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Vec<crate::domain::FollowUp>, StoreError> {
        self.check()?;
        self.inner.follow_ups(key).await
    }
    async fn due_follow_ups(
        &self,
        state: crate::domain::FollowUpState,
        due_by: EpochMillis,
        limit: usize,
    ) -> Result<Vec<crate::domain::FollowUp>, StoreError> {
        self.check()?;
        self.inner.due_follow_ups(state, due_by, limit).await
    }
    async fn set_follow_up_state(
        &self,
        key: &ProcessQueryKey,
        id: &crate::domain::FollowUpId,
        change: super::StateChange<'_>,
    ) -> Result<Option<crate::domain::FollowUp>, StoreError> {
        self.check_durable()?;
        self.inner.set_follow_up_state(key, id, change).await
    }
    async fn reconciled_at(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Option<EpochMillis>, StoreError> {
        self.check()?;
        self.inner.reconciled_at(key).await
    }
    async fn set_reconciled_at(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.set_reconciled_at(key, at).await
    }
    async fn event_trust(&self) -> Result<EventTrust, StoreError> {
        self.check()?;
        self.inner.event_trust().await
    }
    async fn set_event_trust(&self, trust: &EventTrust) -> Result<(), StoreError> {
        self.check()?;
        self.inner.set_event_trust(trust).await
    }
    async fn add_calls(
        &self,
        month: &BillingMonth,
        calls: &[(&str, u64)],
    ) -> Result<(), StoreError> {
        self.check_durable()?;
        self.inner.add_calls(month, calls).await
    }
    async fn calls_in_month(&self, month: &BillingMonth) -> Result<Vec<(String, u64)>, StoreError> {
        self.check()?;
        self.inner.calls_in_month(month).await
    }
    async fn link_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.inner.link_key().await
    }
    async fn init_link_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.check_durable()?;
        self.inner.init_link_key(candidate).await
    }
    async fn begin_send(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: EpochMillis,
    ) -> Result<Option<SendRecord>, StoreError> {
        self.check_durable()?;
        self.inner.begin_send(key, fingerprint, now).await
    }
    async fn complete_send(&self, key: &IdempotencyKey, notice: &Notice) -> Result<(), StoreError> {
        self.check_durable()?;
        self.inner.complete_send(key, notice).await
    }
    async fn abandon_send(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.check_durable()?;
        self.inner.abandon_send(key).await
    }
    async fn prune_old(&self, cutoffs: Cutoffs) -> Result<Pruned, StoreError> {
        self.check_durable()?;
        self.inner.prune_old(cutoffs).await
    }
    async fn entry_counts(&self) -> Result<EntryCounts, StoreError> {
        self.check()?;
        self.inner.entry_counts().await
    }
    async fn probe_write(&self, now: EpochMillis) -> Result<(), StoreError> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        self.check_durable()?;
        if self.flush_broken.load(Ordering::SeqCst) {
            return Err(StoreError::message("I/O error: fsync failed"));
        }
        self.inner.probe_write(now).await
    }
}
