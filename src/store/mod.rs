//! Durable state: recorded notices, de-duplication marks, the name cache and
//! the learned roster.
//!
//! Invariant: this module is the only one that touches sled or PostgreSQL.
//! The rest of readbot sees the [`Store`] trait and opens a backend with
//! [`open`] from a [`StoreConfig`] (built by [`crate::config`]). Three
//! backends implement it: [`sled_store::SledStore`] (one process, the
//! default), [`postgres::PgStore`] (several replicas on one database) and
//! [`memory::MemoryStore`] (unit tests); one conformance suite runs against
//! all three. A further backend is a new [`StoreConfig`] variant, an arm in
//! [`open`] and one more `conformance!` line.

pub mod compact;
#[cfg(test)]
mod conformance;
pub mod copy;
#[doc(hidden)]
pub mod flaky;
pub mod health;
pub mod memory;
#[doc(hidden)]
pub mod pg_test_cluster;
pub mod postgres;
pub mod record;
pub mod sled_store;

pub use crate::config::{PgConfig, SledConfig, StoreConfig};
use crate::domain::CachedRoster;
use crate::domain::{
    BillingMonth, EpochMillis, EventTrust, FollowUp, FollowUpId, FollowUpState, IdempotencyKey,
    MsgId, Notice, OpenConversationId, ProcessQueryKey, ReadRecord, Reminder, UserId,
};
use async_trait::async_trait;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

/// The cause of a [`StoreError`], whatever the backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Storage failures. The backend's own error is kept as the
/// [`source`](std::error::Error::source), so `{:#}` of an `anyhow` chain (or
/// [`StoreError::with_causes`]) shows it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store's folder could not be opened (another process holds it,
    /// it is not writable, it is not a folder, ...).
    #[error(
        "cannot open the store in folder {} (is another readbot using it, or is it not writable?)",
        dir.display()
    )]
    OpenFolder {
        /// The folder.
        dir: PathBuf,
        /// Why it could not be opened.
        #[source]
        source: BoxError,
    },
    /// The backend failed (I/O, a lost background task, ...).
    #[error("storage backend error: {context}")]
    Backend {
        /// What was being done.
        context: Cow<'static, str>,
        /// The backend's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// The backend failed in a way it does not recover from while this
    /// process runs (sled 0.34 keeps its first I/O error for good: every
    /// later write fails even once the disk has room again). readbot exits
    /// so that its supervisor restarts it.
    #[error("the store failed for good ({context}); only a restart of readbot clears it")]
    FailedForGood {
        /// What was being done.
        context: Cow<'static, str>,
        /// The backend's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Writes are refused without trying: the store is failing (see
    /// [`health::StoreHealth`]) and no probe write has succeeded since.
    #[error("the store is failing; writes are refused until a probe write succeeds (last error: {last})")]
    Unavailable {
        /// The last store error, on one line.
        last: String,
    },
    /// The store's folder holds data the backend cannot read back: corrupt
    /// files, not a lock held by another process.
    #[error(
        "the store in folder {} is corrupted; restore it from a backup or move it aside (see README, \"Store maintenance\")",
        dir.display()
    )]
    CorruptFolder {
        /// The folder.
        dir: PathBuf,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The database server could not be reached (or refused the login).
    /// Names the host, port and database, never the user or password.
    #[error("cannot reach PostgreSQL at {target}")]
    Unreachable {
        /// `host:port (database name)`.
        target: String,
        /// Why (connection refused, timeout, authentication, ...).
        #[source]
        source: BoxError,
    },
    /// The database was migrated by a newer readbot.
    #[error(
        "the database schema is version {found}, this readbot knows up to {known}; upgrade readbot"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },
    /// A message claim is no longer this process's to answer (on a shared
    /// store another replica took it over); not a write failure.
    #[error(
        "the claim on message {msg_id} is no longer held by this replica; it is not answered here"
    )]
    ClaimLost {
        /// The message.
        msg_id: String,
    },
    /// A stored record could not be decoded.
    #[error("stored record is corrupt: {record}")]
    Corrupt {
        /// Which record.
        record: String,
        /// The decoder's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// The backend failed while doing `context`, because of `source`.
    pub fn backend(context: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The backend failed; `message` says how (no underlying error to keep).
    pub fn message(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Backend {
            context: message.into(),
            source: None,
        }
    }

    /// True when the backend cannot recover while this process runs
    /// ([`StoreError::FailedForGood`]).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::FailedForGood { .. })
    }

    /// True when this failure says the store cannot write (I/O, a lost
    /// task, a permanent failure), as opposed to one bad record or a refusal
    /// that is itself a consequence of an earlier failure.
    pub fn is_write_failure(&self) -> bool {
        matches!(
            self,
            Self::Backend { .. } | Self::FailedForGood { .. } | Self::Unreachable { .. }
        )
    }

    /// This error and its causes on one line (`a: b: c`), for logs and
    /// probes that show a single string.
    pub fn with_causes(&self) -> String {
        crate::domain::error_chain(self)
    }
}

/// Opens the store `config` names: the one place a configuration becomes a
/// backend (`Application::build`, the benchmarks, and the tests that reopen
/// readbot's store; tests of sled itself use `SledStore::open`). PostgreSQL
/// is connected to and migrated here.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Sled(sled) => Ok(Arc::new(sled_store::SledStore::open_with(sled)?)),
        StoreConfig::Postgres(pg) => Ok(Arc::new(postgres::PgStore::connect(pg).await?)),
    }
}

/// Result of trying to claim an incoming message for processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First delivery: the caller now owns it and must call [`Store::finish_message`].
    New,
    /// Another delivery is being processed right now.
    InFlight,
    /// Already answered.
    Done,
}

/// What [`Store::use_signature`] decided for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureUse {
    /// The signature is within its allowance (or this message already used
    /// it: DingTalk's redelivery); go on.
    Allowed,
    /// The signature already came with its allowance of other messages:
    /// a replayed header pair carrying a forged body. Refuse it.
    Exhausted,
}

/// The record of one intended send, kept under its idempotency key (see
/// [`Store::begin_send`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendRecord {
    /// What was asked for (a digest of the request), so a key reused for a
    /// different notice is recognised.
    pub fingerprint: String,
    /// When the send was reserved.
    pub at: EpochMillis,
    /// The notice DingTalk accepted, once recorded; `None` while the send is
    /// pending (in progress, or its outcome was lost in a crash).
    pub notice: Option<ProcessQueryKey>,
}

/// A change of a follow-up's state ([`Store::set_follow_up_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange<'a> {
    /// The state it must be in.
    pub from: FollowUpState,
    /// The state it moves to.
    pub to: FollowUpState,
    /// When.
    pub now: EpochMillis,
    /// Why (skipped, cancelled) or how (late, unconfirmed); `None` keeps
    /// the note it has.
    pub note: Option<&'a str>,
}

impl StateChange<'_> {
    /// Applies the change to `f` when it is in `from`; false otherwise.
    pub fn apply(&self, f: &mut FollowUp) -> bool {
        if f.state != self.from {
            return false;
        }
        f.state = self.to;
        f.changed_at = self.now;
        if let Some(n) = self.note {
            f.note = Some(n.to_owned());
        }
        true
    }
}

/// Cut-off times of [`Store::prune_old`]: what was last written before its
/// cut-off is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Notices sent before this (and the idempotency records of sends
    /// reserved before it).
    pub notices_before: EpochMillis,
    /// Cached names fetched before this.
    pub names_before: EpochMillis,
    /// Learned-roster entries last seen before this.
    pub roster_before: EpochMillis,
}

/// What [`Store::prune_old`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Notices (with their index entries).
    pub notices: usize,
    /// Idempotency records of sends.
    pub sends: usize,
    /// Cached names.
    pub names: usize,
    /// Learned-roster entries.
    pub roster: usize,
}

/// How many entries of each kind the store holds (`/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryCounts {
    /// Recorded notices.
    pub notices: u64,
    /// De-duplication marks (in flight or done).
    pub marks: u64,
    /// Cached names.
    pub names: u64,
    /// Learned-roster entries (group × user).
    pub roster: u64,
    /// Idempotency records of sends.
    pub sends: u64,
}

/// Longest group title a store keeps, in bytes.
pub const GROUP_TITLE_BYTES: usize = 256;

/// How often an unchanged group title is written again (its retention
/// clock restarts): hourly,
/// like the learned roster.
pub const GROUP_TITLE_REFRESH_MS: EpochMillis = 60 * 60 * 1000;

/// `title` cut to [`GROUP_TITLE_BYTES`] on a character boundary.
pub fn bounded_group_title(title: &str) -> &str {
    let mut end = title.len().min(GROUP_TITLE_BYTES);
    while !title.is_char_boundary(end) {
        end -= 1;
    }
    &title[..end]
}

/// Durable state used by readbot.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a sent notice durably (flushed to disk before returning).
    /// Recording the same key again overwrites it.
    async fn record_notice(&self, notice: &Notice) -> Result<(), StoreError>;

    /// The notice with this key, if recorded.
    async fn notice(&self, key: &ProcessQueryKey) -> Result<Option<Notice>, StoreError>;

    /// Notices sent to a group, newest first, at most `limit`.
    async fn notices_in_group(
        &self,
        group: &OpenConversationId,
        limit: usize,
    ) -> Result<Vec<Notice>, StoreError>;

    /// The newest notice `author` sent to `group`.
    async fn last_notice_by(
        &self,
        group: &OpenConversationId,
        author: &UserId,
    ) -> Result<Option<Notice>, StoreError>;

    /// Number of notices recorded.
    async fn notice_count(&self) -> Result<u64, StoreError>;

    /// Atomically claims a message id. The claim is visible at once to
    /// every later claim; it is durable only after
    /// [`Store::make_claim_durable`] (or [`Store::flush`]), which the owner
    /// must await before acting on the message (so nothing is ever answered
    /// on a claim a crash could forget). Every mark, in flight or done, expires after the retention
    /// given to [`Store::prune_marks`], counted from its last write.
    async fn claim_message(&self, id: &MsgId, now: EpochMillis) -> Result<Claim, StoreError>;

    /// Makes the claim of `id` durable: written and flushed (a flush shared
    /// with concurrent callers). Other claims may stay in memory until their
    /// own call, or the next [`Store::flush`]. Await this before acting on
    /// a claimed message.
    async fn make_claim_durable(&self, id: &MsgId) -> Result<(), StoreError>;

    /// Marks a claimed message as answered. Not flushed: losing it in a
    /// crash leaves the (durable) in-flight mark, which still de-duplicates.
    async fn finish_message(&self, id: &MsgId, now: EpochMillis) -> Result<(), StoreError>;

    /// Removes de-duplication marks (in flight or done) and signature
    /// records ([`Store::use_signature`]) last written before `before`;
    /// returns how many were removed.
    async fn prune_marks(&self, before: EpochMillis) -> Result<usize, StoreError>;

    /// Binds a callback signature to the messages it came with. DingTalk's
    /// `sign` depends only on the signed millisecond `timestamp`, so the
    /// timestamp names the (timestamp, sign) pair. The first `limit`
    /// distinct message ids are recorded and [`SignatureUse::Allowed`]; an id
    /// already recorded is allowed again (redelivery); any further id is
    /// [`SignatureUse::Exhausted`] and not recorded. Atomic: concurrent calls
    /// never record more than `limit` ids. Like a claim, the record is
    /// written at once and made durable by the next flush (the one
    /// [`Store::make_claim_durable`] runs before anything is answered); it
    /// expires with the de-duplication marks ([`Store::prune_marks`]),
    /// counted from its last write.
    async fn use_signature(
        &self,
        timestamp: EpochMillis,
        id: &MsgId,
        now: EpochMillis,
        limit: usize,
    ) -> Result<SignatureUse, StoreError>;

    /// Cached display names fetched from DingTalk's member or user APIs at or
    /// after `fresh_since`. Names learned from callbacks
    /// ([`Store::cache_callback_name`]) are not among them.
    async fn cached_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError>;

    /// Caches display names fetched from DingTalk's member or user APIs at
    /// `now` (they replace any name, whatever its source).
    async fn cache_names(
        &self,
        names: &[(UserId, String)],
        now: EpochMillis,
    ) -> Result<(), StoreError>;

    /// Caches a display name learned from a callback (`senderNick`: untrusted,
    /// the body is not signed). Name source precedence: it is written only
    /// where no name from DingTalk's APIs is cached (fresh or not), so it
    /// never overrides one, and [`Store::cached_names`] never returns it.
    async fn cache_callback_name(
        &self,
        user: &UserId,
        name: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError>;

    /// Names learned from callbacks at or after `fresh_since`, for users with
    /// no name from DingTalk's APIs: a last resort when DingTalk names
    /// nobody for them.
    async fn callback_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError>;

    /// Remembers that these users were seen in `group` (learned roster).
    async fn remember_members(
        &self,
        group: &OpenConversationId,
        users: &[UserId],
        now: EpochMillis,
    ) -> Result<(), StoreError>;

    /// Everyone ever seen in `group`, sorted by user id.
    async fn learned_members(&self, group: &OpenConversationId) -> Result<Vec<UserId>, StoreError>;

    /// Remembers `group`'s title (untrusted text from a callback, cut to
    /// [`GROUP_TITLE_BYTES`]). Writes only when the title changed or the
    /// entry is older than the roster's refresh period (it expires with the
    /// learned roster, `Cutoffs::roster_before`).
    async fn remember_group_title(
        &self,
        group: &OpenConversationId,
        title: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError>;

    /// The last title remembered for `group`, if any.
    async fn group_title(&self, group: &OpenConversationId) -> Result<Option<String>, StoreError>;

    /// Keeps `roster`, the complete member list of `group`, replacing the
    /// one kept before (not flushed: a cache).
    async fn cache_roster(
        &self,
        group: &OpenConversationId,
        roster: &CachedRoster,
    ) -> Result<(), StoreError>;

    /// The member list last kept for `group` by [`Store::cache_roster`].
    async fn cached_roster(
        &self,
        group: &OpenConversationId,
    ) -> Result<Option<CachedRoster>, StoreError>;

    /// Records a reminder sent about the notice `key` durably (flushed
    /// before returning). Reminders of one notice are kept in time order.
    async fn record_reminder(
        &self,
        key: &ProcessQueryKey,
        reminder: &Reminder,
    ) -> Result<(), StoreError>;

    /// The reminders recorded for the notice `key`, oldest first.
    async fn reminders(&self, key: &ProcessQueryKey) -> Result<Vec<Reminder>, StoreError>;

    /// Marks the notice `key` as recalled at `at` (by readbot's recall or a
    /// `robot_msg_recall` event), durably (flushed before returning).
    /// Marking it again keeps the first time; returns true when it was not
    /// marked before.
    async fn mark_recalled(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<bool, StoreError>;

    /// When the notice `key` was recalled, if it was.
    async fn recalled_at(&self, key: &ProcessQueryKey) -> Result<Option<EpochMillis>, StoreError>;

    // Scheduled follow-ups (issue 12).

    /// Stores new follow-ups durably (flushed before returning), all or
    /// none. One whose notice already has a follow-up with its id is left
    /// alone (a retried add changes nothing).
    async fn add_follow_ups(&self, list: &[FollowUp]) -> Result<(), StoreError>;

    /// The follow-ups of the notice `key`, by due time then id.
    async fn follow_ups(&self, key: &ProcessQueryKey) -> Result<Vec<FollowUp>, StoreError>;

    /// Follow-ups in `state` due at or before `due_by`, earliest first, at
    /// most `limit` (the scheduler's work list: `pending` ones that are due,
    /// and at start-up the `firing` ones a crash left behind).
    async fn due_follow_ups(
        &self,
        state: FollowUpState,
        due_by: EpochMillis,
        limit: usize,
    ) -> Result<Vec<FollowUp>, StoreError>;

    /// Moves the follow-up `id` of `key` from `from` to `to` (noting `note`,
    /// at `now`), atomically and durably (flushed before returning): the
    /// claim that lets exactly one caller fire it. Returns the updated
    /// follow-up, or `None` when it does not exist or is not in `from`.
    async fn set_follow_up_state(
        &self,
        key: &ProcessQueryKey,
        id: &FollowUpId,
        change: StateChange<'_>,
    ) -> Result<Option<FollowUp>, StoreError>;

    /// Flushes everything written so far to disk (claims included).
    async fn flush(&self) -> Result<(), StoreError>;

    /// Reserves a send under `key` before anything is sent: when no record
    /// exists, writes a pending [`SendRecord`] durably (flushed) and returns
    /// `None`; otherwise returns the existing record untouched (pending, or
    /// sent with its notice's key). Atomic: of concurrent calls with one
    /// key, exactly one gets `None`.
    async fn begin_send(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: EpochMillis,
    ) -> Result<Option<SendRecord>, StoreError>;

    /// Records the notice DingTalk accepted for the send reserved under
    /// `key` and marks that send as done, in one durable step (flushed
    /// before returning): a retry with `key` then finds the notice.
    async fn complete_send(&self, key: &IdempotencyKey, notice: &Notice) -> Result<(), StoreError>;

    /// Forgets the pending send under `key` (DingTalk refused it, so a
    /// retry may send). A sent record is left alone.
    async fn abandon_send(&self, key: &IdempotencyKey) -> Result<(), StoreError>;

    /// Retention: removes notices (and send records), cached names and
    /// learned-roster entries older than `cutoffs`, so a long-running
    /// install stops growing. De-duplication marks have their own
    /// [`Store::prune_marks`].
    async fn prune_old(&self, cutoffs: Cutoffs) -> Result<Pruned, StoreError>;

    /// Entries held, by kind (counted now; `/metrics` shows them).
    async fn entry_counts(&self) -> Result<EntryCounts, StoreError>;

    /// Proves the store can write now: writes a small fixed-size record
    /// (overwriting the previous probe) and makes it durable. Used by the
    /// health checks ([`health::StoreHealth::probe`]), never on a request's
    /// path more than once per [`health::PROBE_INTERVAL`].
    async fn probe_write(&self, now: EpochMillis) -> Result<(), StoreError>;

    /// Bytes the store takes up, measured now (sled: every file of its
    /// folder on disk; memory: an estimate of the data held). `/metrics`
    /// exposes it as `readbot_store_size_bytes`.
    async fn size_bytes(&self) -> Result<u64, StoreError>;

    // Push data (read and recall events, reconciliation; issue 15).

    /// Records reads of the notice `key`, durably (flushed before
    /// returning, shared with concurrent callers). Per reader, a record
    /// replaces the stored one only when it [supersedes](ReadRecord::supersedes)
    /// it, so duplicates and late copies change nothing. Returns how many
    /// records were added or replaced.
    async fn record_reads(
        &self,
        key: &ProcessQueryKey,
        reads: &[ReadRecord],
    ) -> Result<usize, StoreError>;

    /// Every stored read of `key`, by time then user id.
    async fn reads(&self, key: &ProcessQueryKey) -> Result<Vec<ReadRecord>, StoreError>;

    /// When a query pass last reconciled the notice `key` with its events.
    async fn reconciled_at(&self, key: &ProcessQueryKey)
        -> Result<Option<EpochMillis>, StoreError>;

    /// Remembers that a query pass reconciled `key` at `at`.
    async fn set_reconciled_at(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<(), StoreError>;

    /// The stored verification state of event intake (default when never set).
    async fn event_trust(&self) -> Result<EventTrust, StoreError>;

    /// Stores the verification state of event intake (flushed).
    async fn set_event_trust(&self, trust: &EventTrust) -> Result<(), StoreError>;

    // The quota ledger (billable DingTalk calls per API and month; issue 15).

    /// Adds billable DingTalk calls to the ledger of `month`: `(api, calls)`
    /// pairs, each added to that API's count (saturating), durably (flushed
    /// before returning). Atomic per API.
    async fn add_calls(
        &self,
        month: &BillingMonth,
        calls: &[(&str, u64)],
    ) -> Result<(), StoreError>;

    /// The ledger of `month`: calls per API, sorted by API name (APIs
    /// without calls are absent).
    async fn calls_in_month(&self, month: &BillingMonth) -> Result<Vec<(String, u64)>, StoreError>;

    // Page links (issue 13).

    /// The key that signs page links, if one was stored.
    async fn link_key(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `candidate` as the link key unless one is stored already, and
    /// returns the stored key (durably written, flushed, before returning).
    /// Atomic: concurrent callers all get the same key.
    async fn init_link_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Which backend this is and where (`/readyz`, logs): never a secret.
    fn describe(&self) -> String {
        "in memory".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::notice;

    #[tokio::test]
    async fn open_gives_the_configured_sled_store() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::sled(dir.path());
        let n = notice("k1", "cid1", Some("alice"), 1_000);
        {
            let store = open(&config).await.unwrap();
            store.record_notice(&n).await.unwrap();
            let err = open(&config).await.err().expect("the folder is locked");
            assert!(matches!(err, StoreError::OpenFolder { .. }), "{err:?}");
        }
        let store = open(&config).await.unwrap();
        assert_eq!(store.notice(&n.key).await.unwrap(), Some(n));
    }

    #[tokio::test]
    async fn reminders_and_recalls_survive_a_reopen() {
        use crate::domain::{Reminder, ReminderVia};
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig::sled(dir.path());
        let key = ProcessQueryKey::parse("k1").unwrap();
        let r = Reminder {
            by: None,
            at: 7,
            count: 3,
            via: ReminderVia::Dm,
        };
        {
            let store = open(&config).await.unwrap();
            store.record_reminder(&key, &r).await.unwrap();
            store.mark_recalled(&key, 9).await.unwrap();
        }
        let store = open(&config).await.unwrap();
        assert_eq!(store.reminders(&key).await.unwrap(), [r]);
        assert_eq!(store.recalled_at(&key).await.unwrap(), Some(9));
    }
}
