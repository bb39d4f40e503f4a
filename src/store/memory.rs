//! In-memory [`Store`] for unit tests: the same semantics as
//! [`super::sled_store::SledStore`], without durability.
//!
//! Orderings match the sled backend exactly: notices are listed by
//! `sent_at` descending, ties broken by key ascending (byte order).

use super::{
    Claim, Cutoffs, EntryCounts, Pruned, SendRecord, SignatureUse, StateChange, Store, StoreError,
};
use crate::domain::CachedRoster;
use crate::domain::{
    BillingMonth, EpochMillis, EventTrust, FollowUp, FollowUpId, FollowUpState, IdempotencyKey,
    MsgId, Notice, OpenConversationId, ProcessQueryKey, ReadRecord, Reminder, UserId,
};
use async_trait::async_trait;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// State of a de-duplication mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    InFlight(EpochMillis),
    Done(EpochMillis),
}

#[derive(Debug, Default)]
struct Inner {
    notices: HashMap<ProcessQueryKey, Notice>,
    dedup: HashMap<MsgId, Mark>,
    /// Name, fetch time, and whether it came from DingTalk's APIs (`true`)
    /// or a callback (`false`).
    names: HashMap<UserId, (String, EpochMillis, bool)>,
    /// Signed timestamp → (last write, message ids it came with).
    signatures: HashMap<EpochMillis, (EpochMillis, Vec<MsgId>)>,
    roster: HashMap<OpenConversationId, BTreeMap<UserId, EpochMillis>>,
    /// Group → (title, last written).
    group_titles: HashMap<OpenConversationId, (String, EpochMillis)>,
    roster_cache: HashMap<OpenConversationId, CachedRoster>,
    reminders: HashMap<ProcessQueryKey, Vec<Reminder>>,
    recalled: HashMap<ProcessQueryKey, EpochMillis>,
    reads: HashMap<ProcessQueryKey, BTreeMap<UserId, ReadRecord>>,
    reconciled: HashMap<ProcessQueryKey, EpochMillis>,
    trust: EventTrust,
    sends: HashMap<IdempotencyKey, SendRecord>,
    /// The quota ledger: (month, API) → calls.
    calls: BTreeMap<(BillingMonth, String), u64>,
    link_key: Option<Vec<u8>>,
    /// Per notice, by id.
    follow_ups: HashMap<ProcessQueryKey, BTreeMap<FollowUpId, FollowUp>>,
}

impl Inner {
    /// Bytes of the ids, texts and times held: an estimate that grows with
    /// what is stored (no allocator or map overhead counted).
    fn estimated_bytes(&self) -> u64 {
        const TIME: usize = std::mem::size_of::<EpochMillis>();
        let notices: usize = self
            .notices
            .values()
            .map(|n| {
                n.key.as_str().len()
                    + n.group.as_str().len()
                    + n.robot_code.as_str().len()
                    + n.title.len()
                    + n.author.as_ref().map_or(0, |a| a.as_str().len())
                    + n.author_name.as_ref().map_or(0, String::len)
                    + n.msg_key.len()
                    + TIME
            })
            .sum();
        let marks: usize = self
            .dedup
            .keys()
            .map(|id| id.as_str().len() + 1 + TIME)
            .sum();
        let names: usize = self
            .names
            .iter()
            .map(|(user, (name, _, _))| user.as_str().len() + name.len() + TIME + 1)
            .sum();
        let signatures: usize = self
            .signatures
            .values()
            .map(|(_, ids)| 2 * TIME + ids.iter().map(|id| id.as_str().len()).sum::<usize>())
            .sum();
        let roster: usize = self
            .roster
            .iter()
            .map(|(group, users)| {
                group.as_str().len() + users.keys().map(|u| u.as_str().len() + TIME).sum::<usize>()
            })
            .sum();
        let reminders: usize = self
            .reminders
            .iter()
            .map(|(key, list)| {
                key.as_str().len()
                    + list
                        .iter()
                        .map(|r| r.by.as_ref().map_or(0, |b| b.as_str().len()) + 2 * TIME + 1)
                        .sum::<usize>()
            })
            .sum();
        let recalled: usize = self.recalled.keys().map(|k| k.as_str().len() + TIME).sum();
        let reads: usize = self
            .reads
            .iter()
            .map(|(key, rs)| {
                key.as_str().len()
                    + rs.keys()
                        .map(|u| u.as_str().len() + TIME + 1)
                        .sum::<usize>()
            })
            .sum();
        let sends: usize = self
            .sends
            .iter()
            .map(|(k, r)| {
                k.as_str().len()
                    + r.fingerprint.len()
                    + TIME
                    + r.notice.as_ref().map_or(0, |n| n.as_str().len())
            })
            .sum();
        (notices + marks + names + signatures + roster + reminders + recalled + reads + sends)
            as u64
    }
}

/// A [`Store`] kept in memory behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::message("memory store mutex poisoned"))
    }
}

/// Newest first, ties by key ascending: the sled index order.
fn listing_order(n: &Notice) -> (Reverse<EpochMillis>, &str) {
    (Reverse(n.sent_at), n.key.as_str())
}

#[async_trait]
impl Store for MemoryStore {
    async fn record_notice(&self, notice: &Notice) -> Result<(), StoreError> {
        self.lock()?
            .notices
            .insert(notice.key.clone(), notice.clone());
        Ok(())
    }

    async fn notice(&self, key: &ProcessQueryKey) -> Result<Option<Notice>, StoreError> {
        Ok(self.lock()?.notices.get(key).cloned())
    }

    async fn notices_in_group(
        &self,
        group: &OpenConversationId,
        limit: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        let inner = self.lock()?;
        let mut found: Vec<&Notice> = inner
            .notices
            .values()
            .filter(|n| &n.group == group)
            .collect();
        found.sort_by(|a, b| listing_order(a).cmp(&listing_order(b)));
        Ok(found.into_iter().take(limit).cloned().collect())
    }

    async fn last_notice_by(
        &self,
        group: &OpenConversationId,
        author: &UserId,
    ) -> Result<Option<Notice>, StoreError> {
        let inner = self.lock()?;
        Ok(inner
            .notices
            .values()
            .filter(|n| &n.group == group && n.author.as_ref() == Some(author))
            .min_by(|a, b| listing_order(a).cmp(&listing_order(b)))
            .cloned())
    }

    async fn notice_count(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.notices.len() as u64)
    }

    async fn claim_message(&self, id: &MsgId, now: EpochMillis) -> Result<Claim, StoreError> {
        let mut inner = self.lock()?;
        Ok(match inner.dedup.get(id) {
            None => {
                inner.dedup.insert(id.clone(), Mark::InFlight(now));
                Claim::New
            }
            Some(Mark::InFlight(_)) => Claim::InFlight,
            Some(Mark::Done(_)) => Claim::Done,
        })
    }

    async fn make_claim_durable(&self, _id: &MsgId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn finish_message(&self, id: &MsgId, now: EpochMillis) -> Result<(), StoreError> {
        self.lock()?.dedup.insert(id.clone(), Mark::Done(now));
        Ok(())
    }

    async fn prune_marks(&self, before: EpochMillis) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let len = inner.dedup.len() + inner.signatures.len();
        inner.dedup.retain(|_, mark| match mark {
            Mark::InFlight(at) | Mark::Done(at) => *at >= before,
        });
        inner.signatures.retain(|_, (at, _)| *at >= before);
        Ok(len - inner.dedup.len() - inner.signatures.len())
    }

    async fn use_signature(
        &self,
        timestamp: EpochMillis,
        id: &MsgId,
        now: EpochMillis,
        limit: usize,
    ) -> Result<SignatureUse, StoreError> {
        let mut inner = self.lock()?;
        let (at, ids) = inner.signatures.entry(timestamp).or_default();
        if ids.contains(id) {
            return Ok(SignatureUse::Allowed);
        }
        if ids.len() >= limit {
            return Ok(SignatureUse::Exhausted);
        }
        ids.push(id.clone());
        *at = now;
        Ok(SignatureUse::Allowed)
    }

    async fn cached_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        let inner = self.lock()?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for user in users {
            if !seen.insert(user) {
                continue;
            }
            if let Some((name, fetched_at, true)) = inner.names.get(user) {
                if *fetched_at >= fresh_since {
                    out.push((user.clone(), name.clone()));
                }
            }
        }
        Ok(out)
    }

    async fn cache_names(
        &self,
        names: &[(UserId, String)],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for (user, name) in names {
            inner.names.insert(user.clone(), (name.clone(), now, true));
        }
        Ok(())
    }

    async fn cache_callback_name(
        &self,
        user: &UserId,
        name: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if !matches!(inner.names.get(user), Some((_, _, true))) {
            inner
                .names
                .insert(user.clone(), (name.to_owned(), now, false));
        }
        Ok(())
    }

    async fn callback_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        let inner = self.lock()?;
        let mut seen = HashSet::new();
        Ok(users
            .iter()
            .filter(|u| seen.insert(*u))
            .filter_map(|u| match inner.names.get(u) {
                Some((name, at, false)) if *at >= fresh_since => Some((u.clone(), name.clone())),
                _ => None,
            })
            .collect())
    }

    async fn remember_members(
        &self,
        group: &OpenConversationId,
        users: &[UserId],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock()?;
        let roster = inner.roster.entry(group.clone()).or_default();
        for user in users {
            roster.insert(user.clone(), now);
        }
        Ok(())
    }

    async fn learned_members(&self, group: &OpenConversationId) -> Result<Vec<UserId>, StoreError> {
        Ok(self
            .lock()?
            .roster
            .get(group)
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn remember_group_title(
        &self,
        group: &OpenConversationId,
        title: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        let title = super::bounded_group_title(title);
        let mut inner = self.lock()?;
        let fresh = inner.group_titles.get(group).is_some_and(|(t, at)| {
            t == title && *at > now.saturating_sub(super::GROUP_TITLE_REFRESH_MS)
        });
        if !fresh {
            inner
                .group_titles
                .insert(group.clone(), (title.to_owned(), now));
        }
        Ok(())
    }

    async fn group_title(&self, group: &OpenConversationId) -> Result<Option<String>, StoreError> {
        Ok(self.lock()?.group_titles.get(group).map(|(t, _)| t.clone()))
    }

    async fn cache_roster(
        &self,
        group: &OpenConversationId,
        roster: &CachedRoster,
    ) -> Result<(), StoreError> {
        self.lock()?
            .roster_cache
            .insert(group.clone(), roster.clone());
        Ok(())
    }

    async fn cached_roster(
        &self,
        group: &OpenConversationId,
    ) -> Result<Option<CachedRoster>, StoreError> {
        Ok(self.lock()?.roster_cache.get(group).cloned())
    }

    async fn record_reminder(
        &self,
        key: &ProcessQueryKey,
        reminder: &Reminder,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let list = inner.reminders.entry(key.clone()).or_default();
        // Time order, a tie after the earlier record (the sled key order).
        let at = list.partition_point(|r| r.at <= reminder.at);
        list.insert(at, reminder.clone());
        Ok(())
    }

    async fn reminders(&self, key: &ProcessQueryKey) -> Result<Vec<Reminder>, StoreError> {
        Ok(self.lock()?.reminders.get(key).cloned().unwrap_or_default())
    }

    async fn add_follow_ups(&self, list: &[FollowUp]) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for f in list {
            inner
                .follow_ups
                .entry(f.key.clone())
                .or_default()
                .entry(f.id.clone())
                .or_insert_with(|| f.clone());
        }
        Ok(())
    }

    async fn follow_ups(&self, key: &ProcessQueryKey) -> Result<Vec<FollowUp>, StoreError> {
        let inner = self.lock()?;
        let mut out: Vec<FollowUp> = inner
            .follow_ups
            .get(key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(out)
    }

    async fn due_follow_ups(
        &self,
        state: FollowUpState,
        due_by: EpochMillis,
        limit: usize,
    ) -> Result<Vec<FollowUp>, StoreError> {
        let inner = self.lock()?;
        let mut out: Vec<FollowUp> = inner
            .follow_ups
            .values()
            .flat_map(|m| m.values())
            .filter(|f| f.state == state && f.at <= due_by)
            .cloned()
            .collect();
        // The sled index order: time, then notice key, then id.
        out.sort_by(|a, b| (a.at, &a.key, &a.id).cmp(&(b.at, &b.key, &b.id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn set_follow_up_state(
        &self,
        key: &ProcessQueryKey,
        id: &FollowUpId,
        change: StateChange<'_>,
    ) -> Result<Option<FollowUp>, StoreError> {
        let mut inner = self.lock()?;
        let Some(f) = inner.follow_ups.get_mut(key).and_then(|m| m.get_mut(id)) else {
            return Ok(None);
        };
        Ok(change.apply(f).then(|| f.clone()))
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.estimated_bytes())
    }

    async fn record_reads(
        &self,
        key: &ProcessQueryKey,
        reads: &[ReadRecord],
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        let stored = inner.reads.entry(key.clone()).or_default();
        let mut changed = 0;
        for r in reads {
            let replace = stored.get(&r.user_id).is_none_or(|old| r.supersedes(old));
            if replace {
                stored.insert(r.user_id.clone(), r.clone());
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn reads(&self, key: &ProcessQueryKey) -> Result<Vec<ReadRecord>, StoreError> {
        let inner = self.lock()?;
        let mut out: Vec<ReadRecord> = inner
            .reads
            .get(key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| (a.at, &a.user_id).cmp(&(b.at, &b.user_id)));
        Ok(out)
    }

    async fn mark_recalled(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        if inner.recalled.contains_key(key) {
            return Ok(false);
        }
        inner.recalled.insert(key.clone(), at);
        Ok(true)
    }

    async fn recalled_at(&self, key: &ProcessQueryKey) -> Result<Option<EpochMillis>, StoreError> {
        Ok(self.lock()?.recalled.get(key).copied())
    }

    async fn reconciled_at(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Option<EpochMillis>, StoreError> {
        Ok(self.lock()?.reconciled.get(key).copied())
    }

    async fn set_reconciled_at(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<(), StoreError> {
        self.lock()?.reconciled.insert(key.clone(), at);
        Ok(())
    }

    async fn event_trust(&self) -> Result<EventTrust, StoreError> {
        Ok(self.lock()?.trust.clone())
    }

    async fn set_event_trust(&self, trust: &EventTrust) -> Result<(), StoreError> {
        self.lock()?.trust = trust.clone();
        Ok(())
    }

    async fn add_calls(
        &self,
        month: &BillingMonth,
        calls: &[(&str, u64)],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        for (api, n) in calls {
            if *n == 0 {
                continue;
            }
            let c = inner
                .calls
                .entry((month.clone(), (*api).to_owned()))
                .or_default();
            *c = c.saturating_add(*n);
        }
        Ok(())
    }

    async fn calls_in_month(&self, month: &BillingMonth) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self
            .lock()?
            .calls
            .iter()
            .filter(|((m, _), _)| m == month)
            .map(|((_, api), n)| (api.clone(), *n))
            .collect())
    }

    async fn link_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.link_key.clone())
    }

    async fn init_link_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .lock()?
            .link_key
            .get_or_insert_with(|| candidate.to_vec())
            .clone())
    }

    async fn begin_send(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: EpochMillis,
    ) -> Result<Option<SendRecord>, StoreError> {
        let mut inner = self.lock()?;
        if let Some(existing) = inner.sends.get(key) {
            return Ok(Some(existing.clone()));
        }
        inner.sends.insert(
            key.clone(),
            SendRecord {
                fingerprint: fingerprint.to_owned(),
                at: now,
                notice: None,
            },
        );
        Ok(None)
    }

    async fn complete_send(&self, key: &IdempotencyKey, notice: &Notice) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let record = inner
            .sends
            .get_mut(key)
            .ok_or_else(|| StoreError::message("no send is reserved under that idempotency key"))?;
        record.notice = Some(notice.key.clone());
        inner.notices.insert(notice.key.clone(), notice.clone());
        Ok(())
    }

    async fn abandon_send(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.sends.get(key).is_some_and(|r| r.notice.is_none()) {
            inner.sends.remove(key);
        }
        Ok(())
    }

    async fn prune_old(&self, cutoffs: Cutoffs) -> Result<Pruned, StoreError> {
        let mut inner = self.lock()?;
        let mut pruned = Pruned::default();
        let gone: Vec<ProcessQueryKey> = inner
            .notices
            .iter()
            .filter(|(_, n)| n.sent_at < cutoffs.notices_before)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &gone {
            inner.notices.remove(key);
            // The notice's own data goes with it.
            inner.reads.remove(key);
            inner.reminders.remove(key);
            inner.recalled.remove(key);
            inner.reconciled.remove(key);
        }
        pruned.notices = gone.len();
        let before = inner.sends.len();
        inner.sends.retain(|_, r| r.at >= cutoffs.notices_before);
        pruned.sends = before - inner.sends.len();
        let before = inner.names.len();
        inner
            .names
            .retain(|_, (_, fetched_at, _)| *fetched_at >= cutoffs.names_before);
        pruned.names = before - inner.names.len();
        for users in inner.roster.values_mut() {
            let before = users.len();
            users.retain(|_, seen| *seen >= cutoffs.roster_before);
            pruned.roster += before - users.len();
        }
        inner.roster.retain(|_, users| !users.is_empty());
        // Group titles expire with the learned roster (not counted).
        inner
            .group_titles
            .retain(|_, (_, at)| *at >= cutoffs.roster_before);
        let before = inner.roster_cache.len();
        inner
            .roster_cache
            .retain(|_, r| r.fetched_at >= cutoffs.roster_before);
        pruned.roster += before - inner.roster_cache.len();
        for list in inner.follow_ups.values_mut() {
            list.retain(|_, f| f.at >= cutoffs.notices_before);
        }
        inner.follow_ups.retain(|_, list| !list.is_empty());
        Ok(pruned)
    }

    async fn entry_counts(&self) -> Result<EntryCounts, StoreError> {
        let inner = self.lock()?;
        Ok(EntryCounts {
            notices: inner.notices.len() as u64,
            marks: inner.dedup.len() as u64,
            names: inner.names.len() as u64,
            roster: inner.roster.values().map(|u| u.len() as u64).sum(),
            sends: inner.sends.len() as u64,
        })
    }

    async fn probe_write(&self, _now: EpochMillis) -> Result<(), StoreError> {
        // Nothing to prove in memory beyond the lock.
        self.lock().map(drop)
    }
}
