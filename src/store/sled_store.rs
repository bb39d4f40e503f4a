//! sled-backed [`Store`]: the production backend.
//!
//! # Layout
//!
//! Ids are non-empty strings without control characters (see
//! [`crate::domain`]), so `0x00` is a safe separator: `cid1 ‖ 0x00` is never
//! a prefix of `cid10 ‖ 0x00`. Times in index keys are "reverse" big-endian
//! `u64`s (`!(t as u64 ^ 1 << 63)`), so an ascending scan yields newest first.
//!
//! | tree        | key                                               | value                          |
//! |-------------|---------------------------------------------------|--------------------------------|
//! | `notices`   | processQueryKey                                   | JSON [`Notice`]                |
//! | `by_group`  | group ‖ 0x00 ‖ rev(sent_at) ‖ key                 | key                            |
//! | `by_author` | group ‖ 0x00 ‖ author ‖ 0x00 ‖ rev(sent_at) ‖ key | key                            |
//! | `dedup`     | msgId                                             | state byte (1 in-flight, 2 done) ‖ i64 BE time |
//! | `names`     | userId                                            | JSON `{name, fetched_at}`      |
//! | `roster`    | group ‖ 0x00 ‖ userId                             | i64 BE last seen               |
//! | `roster_cache` | group                                          | JSON [`CachedRoster`] (a member API's complete list) |
//! | `signatures`| i64 BE signed timestamp                           | JSON `{at, ids}` (≤ limit msgIds) |
//! | `reminders` | key ‖ 0x00 ‖ ord(at) ‖ u64 BE sled id             | JSON [`Reminder`]              |
//! | `recalled`  | processQueryKey                                   | i64 BE recall time             |
//! | `reads`     | processQueryKey ‖ 0x00 ‖ userId                   | i64 BE time ‖ source byte (1 event, 2 query) |
//! | `push_meta` | `c` ‖ processQueryKey (reconciled)                | i64 BE time                    |
//! | `push_meta` | `trust`                                           | JSON [`EventTrust`]            |
//! | `health`    | `probe`                                           | i64 BE time of the last probe write |
//! | `sends`     | idempotency key                                   | JSON [`SendRecord`]            |
//! | `calls`     | month (`YYYY-MM`) ‖ 0x00 ‖ API name               | u64 BE billable calls (quota ledger) |
//! | `keys`      | `link`                                            | the page-link signing key (raw bytes) |
//! | `follow_ups`| processQueryKey ‖ 0x00 ‖ follow-up id             | JSON [`FollowUp`]              |
//! | `follow_ups_due` | state byte (`p` pending, `f` firing) ‖ ord(at) ‖ processQueryKey ‖ 0x00 ‖ id | empty (the scheduler's work list; the rest of the key names the `follow_ups` entry) |
//!
//! A `names` entry carries `verified` (`true`: from DingTalk's member or
//! user APIs; `false` or absent: learned from a callback, or written before
//! readbot kept the source, so it is fetched again once).
//!
//! # Durability
//!
//! `record_notice`, `record_reminder`, `mark_recalled`, `add_follow_ups` and `set_follow_up_state` flush before returning
//! (a follow-up and its work-list entry change in one transaction). A claim (`claim_message`) is
//! taken in memory (`PendingClaims`), visible at once to every later claim in
//! this process; [`Store::make_claim_durable`] (or [`Store::flush`]) writes
//! it to `dedup` and flushes, and the caller awaits that before it acts on
//! the message (the bot does so just before answering). A signature record
//! (`use_signature`) is written on the callback's path and made durable by
//! that same flush, before anything is answered; `finish_message` does not flush (a lost done
//! mark leaves the durable in-flight mark, which de-duplicates just as well
//! and expires at the same time). Concurrent flushes are grouped:
//! one runs at a time, and a caller whose write it covered does not flush
//! again (see `SledStore::durable`). The name cache and the learned
//! roster are not flushed on each write: losing the last few entries in a
//! crash only costs a refetch; sled flushes them periodically, on drop, on
//! [`Store::flush`] and with the next durable write.
//!
//! A notice and its index entries are written in one sled transaction.
//! Readers still verify that an index entry matches the notice it points to
//! and skip entries that do not (defence in depth).

use super::record::{LinkKey, Record};
use super::{
    Claim, Cutoffs, EntryCounts, Pruned, SendRecord, SignatureUse, SledConfig, StateChange, Store,
    StoreError,
};
use crate::domain::CachedRoster;
use crate::domain::{
    BillingMonth, EpochMillis, EventTrust, FollowUp, FollowUpId, FollowUpState, IdempotencyKey,
    MsgId, Notice, OpenConversationId, ProcessQueryKey, ReadRecord, ReadSource, Reminder, UserId,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};
use std::collections::HashSet;
use std::path::Path;

const SEP: u8 = 0x00;
const MARK_IN_FLIGHT: u8 = 1;
const MARK_DONE: u8 = 2;

/// A learned-roster entry is rewritten only when it is older than this:
/// nothing reads the exact last-seen time, and rewriting 10,000 unchanged
/// entries on every summary dominated its CPU time.
const ROSTER_REFRESH_MS: EpochMillis = 60 * 60 * 1000;

/// Group commit: at most one flush runs at a time, and a caller whose write
/// an earlier flush already covered returns without flushing again.
#[derive(Debug, Default)]
struct GroupCommit {
    /// Tickets handed out, one per durable call, each taken *after* its write.
    tickets: std::sync::atomic::AtomicU64,
    /// Every ticket up to this one is durable.
    durable: std::sync::atomic::AtomicU64,
    /// Held while a flush runs (waiters park asynchronously, not on a thread).
    turn: tokio::sync::Mutex<()>,
}

/// Number of [`PendingClaims`] shards (callbacks on different shards never
/// wait for each other).
const PENDING_SHARDS: usize = 16;

/// Claims taken in memory and not yet written to the `dedup` tree. The bot
/// makes each one durable just before answering it
/// ([`Store::make_claim_durable`]); [`Store::flush`] writes all of them. A claim costs a
/// shard lock and one sled read on the callback's path instead of a sled
/// compare-and-swap, which the intake profile showed as the largest single
/// cost of a callback.
///
/// Invariant: for one key, "not pending and not in the tree" is checked and
/// the pending entry inserted under the shard's lock, and the flush writes
/// an entry to the tree and removes it from the shard under the same lock,
/// so a key is always visible in one of the two places once claimed.
#[derive(Debug)]
struct PendingClaims {
    shards: Vec<std::sync::Mutex<std::collections::HashMap<Box<[u8]>, EpochMillis>>>,
}

impl Default for PendingClaims {
    fn default() -> Self {
        Self {
            shards: (0..PENDING_SHARDS).map(|_| Default::default()).collect(),
        }
    }
}

type Shard<'a> = std::sync::MutexGuard<'a, std::collections::HashMap<Box<[u8]>, EpochMillis>>;

impl PendingClaims {
    fn lock_shard(&self, index: usize) -> Result<Shard<'_>, StoreError> {
        self.shards[index]
            .lock()
            .map_err(|_| StoreError::message("pending-claims lock poisoned"))
    }

    /// The locked shard that holds `key`.
    fn lock(&self, key: &[u8]) -> Result<Shard<'_>, StoreError> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        self.lock_shard((h as usize) % PENDING_SHARDS)
    }

    /// Writes `key`'s pending claim (if any) to `dedup`; it leaves the shard
    /// only once written. The caller holds the shard's lock (see the
    /// invariant above).
    fn write_one(shard: &mut Shard<'_>, key: &[u8], dedup: &Tree) -> Result<(), StoreError> {
        if let Some(&at) = shard.get(key) {
            dedup
                .insert(key, &encode_mark(MARK_IN_FLIGHT, at)[..])
                .map_err(sled_write_failed("cannot write a de-dup mark"))?;
            shard.remove(key);
        }
        Ok(())
    }

    /// Writes every pending claim to `dedup` (blocking; call off the runtime).
    fn write_to(&self, dedup: &Tree) -> Result<(), StoreError> {
        for index in 0..PENDING_SHARDS {
            let mut shard = self.lock_shard(index)?;
            let keys: Vec<Box<[u8]>> = shard.keys().cloned().collect();
            for key in keys {
                Self::write_one(&mut shard, &key, dedup)?;
            }
        }
        Ok(())
    }
}

/// The sled-backed store.
#[derive(Clone)]
pub struct SledStore {
    commit: std::sync::Arc<GroupCommit>,
    pending: std::sync::Arc<PendingClaims>,
    /// The folder sled keeps its files in (measured by `size_bytes`).
    dir: std::sync::Arc<Path>,
    db: sled::Db,
    notices: Tree,
    by_group: Tree,
    by_author: Tree,
    dedup: Tree,
    names: Tree,
    roster: Tree,
    /// Group id → last write (8 bytes, big-endian ms) + title (UTF-8).
    group_titles: Tree,
    roster_cache: Tree,
    signatures: Tree,
    reminders: Tree,
    recalled: Tree,
    reads: Tree,
    push_meta: Tree,
    health: Tree,
    sends: Tree,
    calls: Tree,
    keys: Tree,
    follow_ups: Tree,
    follow_ups_due: Tree,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct CachedName {
    name: String,
    fetched_at: EpochMillis,
    /// From DingTalk's APIs (`true`) or learned from a callback.
    #[serde(default)]
    verified: bool,
}

/// A `group_titles` value: (last write, title).
fn decode_group_title(bytes: &[u8]) -> Option<(EpochMillis, &str)> {
    let (at, title) = bytes.split_first_chunk::<8>()?;
    Some((i64::from_be_bytes(*at), std::str::from_utf8(title).ok()?))
}

/// The messages one signed timestamp came with (`signatures` tree).
#[derive(Serialize, Deserialize, Default)]
struct SignatureRecord {
    /// Last write (expiry is counted from it).
    at: EpochMillis,
    /// Distinct msgIds, at most the limit.
    ids: Vec<String>,
}

fn decode_signature(key: &[u8], bytes: &[u8]) -> Result<SignatureRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        record: format!("signature record {key:?}"),
        source: Some(e.into()),
    })
}

fn decode_name(user: &UserId, bytes: &[u8]) -> Result<CachedName, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        record: format!("cached name of {user}"),
        source: Some(e.into()),
    })
}

/// Maps a sled error to [`StoreError::Backend`], saying what was being done.
fn sled_failed(context: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// Maps a sled error met while *writing* (an insert, a transaction, a
/// flush). sled 0.34 records the first I/O error of its log writer as a
/// global error and returns it from every later write until the process
/// restarts, so an I/O (or corruption, or bug) error here is
/// [`StoreError::FailedForGood`]; anything else is [`StoreError::Backend`].
fn sled_write_failed(context: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |e| match e {
        sled::Error::Io(_) | sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => {
            StoreError::FailedForGood {
                context: context.into(),
                source: Some(e.into()),
            }
        }
        other => StoreError::backend(context, other),
    }
}

/// Maps a failed blocking task (panicked or cancelled) to [`StoreError::Backend`].
fn task_failed(context: &'static str) -> impl FnOnce(tokio::task::JoinError) -> StoreError {
    move |e| StoreError::backend(context, e)
}

/// Order-preserving map of `i64` to `u64`, inverted so ascending bytes mean
/// newest first.
fn rev_time(t: EpochMillis) -> [u8; 8] {
    (!((t as u64) ^ (1 << 63))).to_be_bytes()
}

fn group_prefix(group: &OpenConversationId) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.as_str().len() + 1);
    k.extend_from_slice(group.as_str().as_bytes());
    k.push(SEP);
    k
}

fn author_prefix(group: &OpenConversationId, author: &UserId) -> Vec<u8> {
    let mut k = group_prefix(group);
    k.extend_from_slice(author.as_str().as_bytes());
    k.push(SEP);
    k
}

fn group_index_key(n: &Notice) -> Vec<u8> {
    let mut k = group_prefix(&n.group);
    k.extend_from_slice(&rev_time(n.sent_at));
    k.extend_from_slice(n.key.as_str().as_bytes());
    k
}

fn author_index_key(n: &Notice) -> Option<Vec<u8>> {
    let author = n.author.as_ref()?;
    let mut k = author_prefix(&n.group, author);
    k.extend_from_slice(&rev_time(n.sent_at));
    k.extend_from_slice(n.key.as_str().as_bytes());
    Some(k)
}

fn roster_key(group: &OpenConversationId, user: &UserId) -> Vec<u8> {
    let mut k = group_prefix(group);
    k.extend_from_slice(user.as_str().as_bytes());
    k
}

/// `key ‖ 0x00`: the prefix of a notice's reminders.
/// `key ‖ 0x00`: the prefix of a notice's entries in the per-notice trees
/// (`reminders`, `reads`).
fn notice_prefix(key: &ProcessQueryKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.as_str().len() + 1);
    k.extend_from_slice(key.as_str().as_bytes());
    k.push(SEP);
    k
}

/// Order-preserving map of `i64` to big-endian bytes (oldest first).
fn ord_time(t: EpochMillis) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// `key ‖ 0x00 ‖ id`: a follow-up's key in `follow_ups`.
fn follow_up_key(key: &ProcessQueryKey, id: &FollowUpId) -> Vec<u8> {
    let mut k = notice_prefix(key);
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// The state byte of the work list (`None`: final states are not listed).
fn due_state_byte(state: FollowUpState) -> Option<u8> {
    match state {
        FollowUpState::Pending => Some(b'p'),
        FollowUpState::Firing => Some(b'f'),
        FollowUpState::Fired | FollowUpState::Skipped | FollowUpState::Cancelled => None,
    }
}

/// A follow-up's entry in `follow_ups_due`, when its state is listed.
fn due_key(f: &FollowUp) -> Option<Vec<u8>> {
    let state = due_state_byte(f.state)?;
    let mut k = vec![state];
    k.extend_from_slice(&ord_time(f.at));
    k.extend_from_slice(&follow_up_key(&f.key, &f.id));
    Some(k)
}

fn decode_follow_up(key: &[u8], bytes: &[u8]) -> Result<FollowUp, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        record: format!("follow-up {:?}", String::from_utf8_lossy(key).as_ref()),
        source: Some(e.into()),
    })
}

fn encode_follow_up(f: &FollowUp) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(f).map_err(|e| StoreError::backend("cannot encode a follow-up", e))
}

fn decode_notice(key: &[u8], bytes: &[u8]) -> Result<Notice, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        record: format!("notice {:?}", String::from_utf8_lossy(key).as_ref()),
        source: Some(e.into()),
    })
}

/// Bytes of every file under `dir`, nested folders included (0 when it does
/// not exist). Entries that vanish or cannot be read while walking (sled
/// removes files in the background) are skipped.
pub(crate) fn folder_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn read_key(key: &ProcessQueryKey, user: &UserId) -> Vec<u8> {
    let mut k = notice_prefix(key);
    k.extend_from_slice(user.as_str().as_bytes());
    k
}

fn encode_read(r: &ReadRecord) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[..8].copy_from_slice(&r.at.to_be_bytes());
    v[8] = match r.source {
        ReadSource::Event => 1,
        ReadSource::Query => 2,
    };
    v
}

fn decode_read(k: &[u8], prefix_len: usize, v: &[u8]) -> Result<ReadRecord, StoreError> {
    let corrupt = || StoreError::Corrupt {
        record: format!("read {:?}", String::from_utf8_lossy(k).as_ref()),
        source: None,
    };
    let user = k
        .get(prefix_len..)
        .and_then(|u| std::str::from_utf8(u).ok())
        .and_then(|u| UserId::parse(u).ok())
        .ok_or_else(corrupt)?;
    let at: [u8; 8] = v
        .get(..8)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(corrupt)?;
    let source = match v.get(8) {
        Some(1) => ReadSource::Event,
        Some(2) => ReadSource::Query,
        _ => return Err(corrupt()),
    };
    Ok(ReadRecord {
        user_id: user,
        at: i64::from_be_bytes(at),
        source,
    })
}

fn meta_key(tag: u8, key: &ProcessQueryKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.as_str().len() + 1);
    k.push(tag);
    k.extend_from_slice(key.as_str().as_bytes());
    k
}

const META_RECONCILED: u8 = b'c';
const META_TRUST: &[u8] = b"trust";

fn decode_time(k: &[u8], v: &[u8]) -> Result<EpochMillis, StoreError> {
    let t: [u8; 8] = v.try_into().map_err(|_| StoreError::Corrupt {
        record: format!("time {:?}", String::from_utf8_lossy(k).as_ref()),
        source: None,
    })?;
    Ok(i64::from_be_bytes(t))
}

fn encode_mark(state: u8, at: EpochMillis) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[0] = state;
    v[1..].copy_from_slice(&at.to_be_bytes());
    v
}

/// A decoded de-duplication mark: (state, time).
fn decode_mark(key: &[u8], bytes: &[u8]) -> Result<(u8, EpochMillis), StoreError> {
    let corrupt = || StoreError::Corrupt {
        record: format!(
            "dedup mark {:?}: bad value of {} bytes",
            String::from_utf8_lossy(key).as_ref(),
            bytes.len()
        ),
        source: None,
    };
    let (&state, rest) = bytes.split_first().ok_or_else(corrupt)?;
    let time: [u8; 8] = rest.try_into().map_err(|_| corrupt())?;
    if state != MARK_IN_FLIGHT && state != MARK_DONE {
        return Err(corrupt());
    }
    Ok((state, i64::from_be_bytes(time)))
}

/// sled's "the folder is locked" error: its file lock is held (by another
/// process, or by a store of this one still shutting down). sled 0.34 wraps
/// the `WouldBlock` of `flock` in an `Other` error saying "could not acquire
/// lock".
fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// Why `dir` could not be opened: corrupt files ([`StoreError::CorruptFolder`])
/// are told apart from a held lock or an unusable folder
/// ([`StoreError::OpenFolder`]).
pub(crate) fn open_failed(dir: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => {
            StoreError::CorruptFolder {
                dir: dir.to_path_buf(),
                source: e.into(),
            }
        }
        e => StoreError::OpenFolder {
            dir: dir.to_path_buf(),
            source: e.into(),
        },
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with the default settings
    /// (readbot itself opens it through [`crate::store::open`]).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(&SledConfig::new(dir))
    }

    /// Opens (or creates) the store `config` describes.
    ///
    /// Fails with [`StoreError::OpenFolder`], naming the folder, when it
    /// cannot be opened, e.g. because another process holds it or it is not
    /// writable.
    pub fn open_with(config: &SledConfig) -> Result<Self, StoreError> {
        let dir = config.dir.as_path();
        let fail = |e: sled::Error| open_failed(dir, e);
        let db = Self::open_db(dir, config.cache_bytes).map_err(fail)?;
        let tree = |name: &str| db.open_tree(name).map_err(fail);
        Ok(Self {
            notices: tree("notices")?,
            by_group: tree("by_group")?,
            by_author: tree("by_author")?,
            dedup: tree("dedup")?,
            names: tree("names")?,
            roster: tree("roster")?,
            group_titles: tree("group_titles")?,
            roster_cache: tree("roster_cache")?,
            signatures: tree("signatures")?,
            reminders: tree("reminders")?,
            recalled: tree("recalled")?,
            reads: tree("reads")?,
            push_meta: tree("push_meta")?,
            health: tree("health")?,
            sends: tree("sends")?,
            calls: tree("calls")?,
            keys: tree("keys")?,
            follow_ups: tree("follow_ups")?,
            follow_ups_due: tree("follow_ups_due")?,
            commit: Default::default(),
            pending: Default::default(),
            dir: dir.into(),
            db,
        })
    }

    /// Opens sled, waiting briefly while the folder's lock is still held: a
    /// store that was just dropped (a restart in place) releases its lock
    /// from sled's background threads a moment later. Another live readbot
    /// still gets the error, after the wait. Start-up only, so the short
    /// blocking sleep is fine.
    fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
        const ATTEMPTS: u32 = 20;
        let mut attempt = 0;
        loop {
            let result = sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .open();
            match result {
                Err(sled::Error::Io(e)) if is_lock_error(&e) && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// Bytes of sled's own files as sled counts them (its log and blobs; 0
    /// if it cannot be determined). [`Store::size_bytes`] measures the whole
    /// folder instead.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Makes every write so far durable (fsync), sharing one flush among
    /// concurrent callers (group commit).
    ///
    /// Not `flush_async`: in sled 0.34 it runs on sled's own pool of seven
    /// threads, and once seven flushes wait there, the log write they wait
    /// for is queued behind them and never runs (sled issue #1308: readbot's
    /// intake hung for good at 64 concurrent callbacks). A blocking flush on
    /// tokio's blocking pool leaves sled's pool free to write. One flush at a
    /// time also means one sealed log buffer and one fsync per group of
    /// writes instead of one per write: the intake profile showed the
    /// threads busy with many tiny `sync_file_range` calls and handoffs.
    async fn durable(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let c = &self.commit;
        // Our write is complete; any flush that starts after this ticket
        // is taken covers it.
        let ticket = c.tickets.fetch_add(1, SeqCst) + 1;
        let _turn = c.turn.lock().await;
        if c.durable.load(SeqCst) >= ticket {
            return Ok(());
        }
        let covered = c.tickets.load(SeqCst);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(task_failed("flush task failed"))?
            .map_err(sled_write_failed("cannot flush to disk"))?;
        c.durable.fetch_max(covered, SeqCst);
        Ok(())
    }

    /// Loads the notice an index entry points to; `None` when the entry is
    /// stale (notice missing, or `index_of(notice)` no longer equals `index_key`).
    fn resolve(
        &self,
        index_key: &[u8],
        notice_key: &[u8],
        index_of: impl Fn(&Notice) -> Option<Vec<u8>>,
    ) -> Result<Option<Notice>, StoreError> {
        let Some(bytes) = self
            .notices
            .get(notice_key)
            .map_err(sled_failed("cannot read a notice"))?
        else {
            tracing::warn!("skipping index entry pointing to a missing notice");
            return Ok(None);
        };
        let notice = decode_notice(notice_key, &bytes)?;
        if index_of(&notice).as_deref() == Some(index_key) {
            Ok(Some(notice))
        } else {
            tracing::warn!(key = %notice.key, "skipping stale index entry");
            Ok(None)
        }
    }
}

/// A notice's record and index entries, encoded once, written inside a
/// transaction by [`EncodedNotice::write`].
struct EncodedNotice<'a> {
    key: &'a [u8],
    value: Vec<u8>,
    group: Vec<u8>,
    author: Option<Vec<u8>>,
}

impl<'a> EncodedNotice<'a> {
    fn new(notice: &'a Notice) -> Result<Self, StoreError> {
        Ok(Self {
            key: notice.key.as_str().as_bytes(),
            value: serde_json::to_vec(notice)
                .map_err(|e| StoreError::backend("cannot encode the notice", e))?,
            group: group_index_key(notice),
            author: author_index_key(notice),
        })
    }

    /// Writes the notice, replacing an older record's index entries.
    fn write(
        &self,
        n: &sled::transaction::TransactionalTree,
        g: &sled::transaction::TransactionalTree,
        a: &sled::transaction::TransactionalTree,
    ) -> Result<(), ConflictableTransactionError<StoreError>> {
        if let Some(old) = n.get(self.key)? {
            // A corrupt old record cannot tell us its index entries;
            // overwrite it anyway: readers skip mismatching entries.
            if let Ok(old) = serde_json::from_slice::<Notice>(&old) {
                g.remove(group_index_key(&old))?;
                if let Some(k) = author_index_key(&old) {
                    a.remove(k)?;
                }
            }
        }
        n.insert(self.key, self.value.as_slice())?;
        g.insert(self.group.as_slice(), self.key)?;
        if let Some(k) = &self.author {
            a.insert(k.as_slice(), self.key)?;
        }
        Ok(())
    }
}

/// Unwraps a transaction's outcome; a storage failure says `context`.
fn transaction_failed(
    context: &'static str,
) -> impl FnOnce(TransactionError<StoreError>) -> StoreError {
    move |e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => sled_write_failed(context)(e),
    }
}

fn decode_send(key: &[u8], bytes: &[u8]) -> Result<SendRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        record: format!("send record {:?}", String::from_utf8_lossy(key).as_ref()),
        source: Some(e.into()),
    })
}

impl SledStore {
    /// Removes notices sent before `before` with their index entries, each
    /// in one transaction (blocking: call off the runtime). Corrupt records
    /// are left for an operator to see.
    fn prune_notices(&self, before: EpochMillis) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.notices.iter() {
            let (key, value) = entry.map_err(sled_failed("cannot read the notices"))?;
            let Ok(notice) = serde_json::from_slice::<Notice>(&value) else {
                continue;
            };
            if notice.sent_at >= before {
                continue;
            }
            let group = group_index_key(&notice);
            let author = author_index_key(&notice);
            let gone = (&self.notices, &self.by_group, &self.by_author)
                .transaction(|(n, g, a)| {
                    // Only the record just read: a re-recorded notice stays.
                    if n.get(&key)?.as_deref() != Some(&value[..]) {
                        return Ok(false);
                    }
                    n.remove(&key)?;
                    g.remove(group.as_slice())?;
                    if let Some(k) = &author {
                        a.remove(k.as_slice())?;
                    }
                    Ok::<bool, ConflictableTransactionError<StoreError>>(true)
                })
                .map_err(transaction_failed("cannot remove an old notice"))?;
            if gone {
                self.forget_notice_data(&notice.key)?;
            }
            removed += usize::from(gone);
        }
        Ok(removed)
    }

    /// Removes what readbot kept about one notice besides its record: its
    /// reads, reminders, recall and reconciliation marks. Blocking.
    fn forget_notice_data(&self, key: &ProcessQueryKey) -> Result<(), StoreError> {
        let prefix = notice_prefix(key);
        for tree in [&self.reads, &self.reminders] {
            for entry in tree.scan_prefix(&prefix) {
                let (k, _) = entry.map_err(sled_failed("cannot read an old notice's data"))?;
                tree.remove(k)
                    .map_err(sled_write_failed("cannot remove an old notice's data"))?;
            }
        }
        self.recalled
            .remove(key.as_str().as_bytes())
            .map_err(sled_write_failed("cannot remove an old recall mark"))?;
        self.push_meta
            .remove(meta_key(META_RECONCILED, key))
            .map_err(sled_write_failed(
                "cannot remove an old reconciliation mark",
            ))?;
        Ok(())
    }

    /// Removes the entries of `tree` whose time (decoded by `time_of`) is
    /// before `before`; an entry is removed only if unchanged since read.
    /// Undecodable entries are left alone. Blocking.
    fn prune_tree(
        tree: &Tree,
        before: EpochMillis,
        what: &'static str,
        time_of: impl Fn(&[u8]) -> Option<EpochMillis>,
    ) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in tree.iter() {
            let (key, value) = entry.map_err(sled_failed("cannot read entries to prune"))?;
            if time_of(&value).is_some_and(|t| t < before) {
                let cas = tree
                    .compare_and_swap(&key, Some(&value), None::<&[u8]>)
                    .map_err(sled_write_failed(what))?;
                removed += usize::from(cas.is_ok());
            }
        }
        Ok(removed)
    }
}

#[async_trait]
impl Store for SledStore {
    async fn record_notice(&self, notice: &Notice) -> Result<(), StoreError> {
        let encoded = EncodedNotice::new(notice)?;
        (&self.notices, &self.by_group, &self.by_author)
            .transaction(|(n, g, a)| encoded.write(n, g, a))
            .map_err(transaction_failed("cannot record the notice"))?;
        self.durable().await
    }

    async fn notice(&self, key: &ProcessQueryKey) -> Result<Option<Notice>, StoreError> {
        let k = key.as_str().as_bytes();
        match self
            .notices
            .get(k)
            .map_err(sled_failed("cannot read a notice"))?
        {
            Some(bytes) => decode_notice(k, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn notices_in_group(
        &self,
        group: &OpenConversationId,
        limit: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for entry in self.by_group.scan_prefix(group_prefix(group)) {
            let (index_key, notice_key) =
                entry.map_err(sled_failed("cannot read the group index"))?;
            if let Some(n) = self.resolve(&index_key, &notice_key, |n| Some(group_index_key(n)))? {
                out.push(n);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    async fn last_notice_by(
        &self,
        group: &OpenConversationId,
        author: &UserId,
    ) -> Result<Option<Notice>, StoreError> {
        for entry in self.by_author.scan_prefix(author_prefix(group, author)) {
            let (index_key, notice_key) =
                entry.map_err(sled_failed("cannot read the author index"))?;
            if let Some(n) = self.resolve(&index_key, &notice_key, author_index_key)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    async fn notice_count(&self) -> Result<u64, StoreError> {
        let notices = self.notices.clone();
        tokio::task::spawn_blocking(move || notices.len() as u64)
            .await
            .map_err(task_failed("count task failed"))
    }

    async fn claim_message(&self, id: &MsgId, now: EpochMillis) -> Result<Claim, StoreError> {
        let key = id.as_str().as_bytes();
        // See `PendingClaims` for why this lock makes check-and-claim atomic.
        let mut shard = self.pending.lock(key)?;
        if shard.contains_key(key) {
            return Ok(Claim::InFlight);
        }
        if let Some(current) = self
            .dedup
            .get(key)
            .map_err(sled_failed("cannot read a de-dup mark"))?
        {
            let (state, _) = decode_mark(key, &current)?;
            return Ok(if state == MARK_DONE {
                Claim::Done
            } else {
                Claim::InFlight
            });
        }
        shard.insert(key.into(), now);
        Ok(Claim::New)
    }

    async fn make_claim_durable(&self, id: &MsgId) -> Result<(), StoreError> {
        let key = id.as_str().as_bytes();
        {
            let mut shard = self.pending.lock(key)?;
            PendingClaims::write_one(&mut shard, key, &self.dedup)?;
        }
        self.durable().await
    }

    async fn finish_message(&self, id: &MsgId, now: EpochMillis) -> Result<(), StoreError> {
        let key = id.as_str().as_bytes();
        let mut shard = self.pending.lock(key)?;
        self.dedup
            .insert(key, &encode_mark(MARK_DONE, now)[..])
            .map_err(sled_write_failed("cannot write a de-dup mark"))?;
        shard.remove(key);
        Ok(())
    }

    async fn prune_marks(&self, before: EpochMillis) -> Result<usize, StoreError> {
        // Pending claims are written first, so they expire like the rest.
        self.flush().await?;
        let (dedup, signatures) = (self.dedup.clone(), self.signatures.clone());
        let removed = tokio::task::spawn_blocking(move || -> Result<usize, StoreError> {
            let mut removed = 0;
            for entry in signatures.iter() {
                let (key, value) =
                    entry.map_err(sled_failed("cannot read the signature records"))?;
                if decode_signature(&key, &value)?.at < before {
                    let cas = signatures
                        .compare_and_swap(&key, Some(&value), None::<&[u8]>)
                        .map_err(sled_failed("cannot remove a signature record"))?;
                    if cas.is_ok() {
                        removed += 1;
                    }
                }
            }
            for entry in dedup.iter() {
                let (key, value) = entry.map_err(sled_failed("cannot read the de-dup marks"))?;
                let (_, at) = decode_mark(&key, &value)?;
                if at < before {
                    // Only remove the exact value we saw: never a fresh claim.
                    let cas = dedup
                        .compare_and_swap(&key, Some(&value), None::<&[u8]>)
                        .map_err(sled_failed("cannot remove a de-dup mark"))?;
                    if cas.is_ok() {
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
        .await
        .map_err(task_failed("prune task failed"))??;
        if removed > 0 {
            self.durable().await?;
        }
        Ok(removed)
    }

    async fn use_signature(
        &self,
        timestamp: EpochMillis,
        id: &MsgId,
        now: EpochMillis,
        limit: usize,
    ) -> Result<SignatureUse, StoreError> {
        let key = timestamp.to_be_bytes();
        let id = id.as_str();
        // Compare-and-swap until our read is the one replaced (or nothing
        // needs writing): concurrent callers never record more than `limit`.
        let mut current = self
            .signatures
            .get(key)
            .map_err(sled_failed("cannot read a signature record"))?;
        loop {
            let mut record = match &current {
                Some(bytes) => decode_signature(&key, bytes)?,
                None => SignatureRecord::default(),
            };
            if record.ids.iter().any(|known| known == id) {
                return Ok(SignatureUse::Allowed);
            }
            if record.ids.len() >= limit {
                return Ok(SignatureUse::Exhausted);
            }
            record.ids.push(id.to_owned());
            record.at = now;
            let value = serde_json::to_vec(&record)
                .map_err(|e| StoreError::backend("cannot encode a signature record", e))?;
            match self
                .signatures
                .compare_and_swap(key, current.as_deref(), Some(value))
                .map_err(sled_failed("cannot write a signature record"))?
            {
                Ok(()) => return Ok(SignatureUse::Allowed),
                Err(conflict) => current = conflict.current,
            }
        }
    }

    async fn cached_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for user in users {
            if !seen.insert(user) {
                continue;
            }
            let key = user.as_str().as_bytes();
            let Some(bytes) = self
                .names
                .get(key)
                .map_err(sled_failed("cannot read the name cache"))?
            else {
                continue;
            };
            let cached = decode_name(user, &bytes)?;
            if cached.verified && cached.fetched_at >= fresh_since {
                out.push((user.clone(), cached.name));
            }
        }
        Ok(out)
    }

    async fn cache_names(
        &self,
        names: &[(UserId, String)],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        // Plain inserts, not a batch: a batch takes sled's global write lock,
        // which waits for a running flush and meanwhile stalls every other
        // sled call on the runtime's threads. No atomicity is needed here.
        for (user, name) in names {
            let value = serde_json::to_vec(&CachedName {
                name: name.clone(),
                fetched_at: now,
                verified: true,
            })
            .map_err(|e| StoreError::backend("cannot encode a name", e))?;
            self.names
                .insert(user.as_str().as_bytes(), value)
                .map_err(sled_write_failed("cannot write the name cache"))?;
        }
        Ok(())
    }

    async fn cache_callback_name(
        &self,
        user: &UserId,
        name: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        let key = user.as_str().as_bytes();
        let current = self
            .names
            .get(key)
            .map_err(sled_failed("cannot read the name cache"))?;
        if let Some(bytes) = &current {
            // A corrupt entry is overwritten like an unverified one.
            if decode_name(user, bytes).is_ok_and(|c| c.verified) {
                return Ok(());
            }
        }
        let value = serde_json::to_vec(&CachedName {
            name: name.to_owned(),
            fetched_at: now,
            verified: false,
        })
        .map_err(|e| StoreError::backend("cannot encode a name", e))?;
        // Only over what was read: a name DingTalk's APIs wrote meanwhile wins.
        let _ = self
            .names
            .compare_and_swap(key, current, Some(value))
            .map_err(sled_failed("cannot write the name cache"))?;
        Ok(())
    }

    async fn callback_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for user in users {
            if !seen.insert(user) {
                continue;
            }
            let Some(bytes) = self
                .names
                .get(user.as_str().as_bytes())
                .map_err(sled_failed("cannot read the name cache"))?
            else {
                continue;
            };
            let cached = decode_name(user, &bytes)?;
            if !cached.verified && cached.fetched_at >= fresh_since {
                out.push((user.clone(), cached.name));
            }
        }
        Ok(out)
    }

    async fn remember_members(
        &self,
        group: &OpenConversationId,
        users: &[UserId],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        // Plain inserts (see `cache_names`), and only for users not seen
        // within ROSTER_REFRESH_MS: a read is far cheaper than a write.
        for user in users {
            let key = roster_key(group, user);
            let fresh = self
                .roster
                .get(&key)
                .map_err(sled_failed("cannot read the learned roster"))?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .is_some_and(|b| i64::from_be_bytes(b) > now.saturating_sub(ROSTER_REFRESH_MS));
            if !fresh {
                self.roster
                    .insert(key, &now.to_be_bytes()[..])
                    .map_err(sled_write_failed("cannot write the learned roster"))?;
            }
        }
        Ok(())
    }

    async fn learned_members(&self, group: &OpenConversationId) -> Result<Vec<UserId>, StoreError> {
        let prefix = group_prefix(group);
        let mut out = Vec::new();
        for key in self.roster.scan_prefix(&prefix).keys() {
            let key = key.map_err(sled_failed("cannot read the learned roster"))?;
            let user = std::str::from_utf8(&key[prefix.len()..])
                .ok()
                .and_then(|s| UserId::parse(s).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    record: format!("roster entry {:?}", String::from_utf8_lossy(&key).as_ref()),
                    source: None,
                })?;
            out.push(user);
        }
        Ok(out)
    }

    async fn remember_group_title(
        &self,
        group: &OpenConversationId,
        title: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        // A read is far cheaper than a write: write only a changed title or
        // one not written within the refresh period (see `remember_members`).
        let title = super::bounded_group_title(title);
        let key = group.as_str().as_bytes();
        let old = self
            .group_titles
            .get(key)
            .map_err(sled_failed("cannot read a group title"))?;
        let fresh = old
            .as_deref()
            .and_then(decode_group_title)
            .is_some_and(|(at, t)| {
                t == title && at > now.saturating_sub(super::GROUP_TITLE_REFRESH_MS)
            });
        if !fresh {
            let mut value = Vec::with_capacity(8 + title.len());
            value.extend_from_slice(&now.to_be_bytes());
            value.extend_from_slice(title.as_bytes());
            self.group_titles
                .insert(key, value)
                .map_err(sled_write_failed("cannot write a group title"))?;
        }
        Ok(())
    }

    async fn group_title(&self, group: &OpenConversationId) -> Result<Option<String>, StoreError> {
        let Some(bytes) = self
            .group_titles
            .get(group.as_str().as_bytes())
            .map_err(sled_failed("cannot read a group title"))?
        else {
            return Ok(None);
        };
        let (_, title) = decode_group_title(&bytes).ok_or_else(|| StoreError::Corrupt {
            record: format!("group title of {}", group.as_str()),
            source: None,
        })?;
        Ok(Some(title.to_owned()))
    }

    async fn cache_roster(
        &self,
        group: &OpenConversationId,
        roster: &CachedRoster,
    ) -> Result<(), StoreError> {
        // A list of thousands of members: encoded and written off the runtime.
        let (this, group, roster) = (self.clone(), group.clone(), roster.clone());
        tokio::task::spawn_blocking(move || {
            let value = serde_json::to_vec(&roster)
                .map_err(|e| StoreError::backend("cannot encode a member list", e))?;
            this.roster_cache
                .insert(group.as_str().as_bytes(), value)
                .map_err(sled_write_failed("cannot write a cached member list"))?;
            Ok(())
        })
        .await
        .map_err(task_failed("member list task failed"))?
    }

    async fn cached_roster(
        &self,
        group: &OpenConversationId,
    ) -> Result<Option<CachedRoster>, StoreError> {
        let (this, group) = (self.clone(), group.clone());
        tokio::task::spawn_blocking(move || {
            let Some(bytes) = this
                .roster_cache
                .get(group.as_str().as_bytes())
                .map_err(sled_failed("cannot read a cached member list"))?
            else {
                return Ok(None);
            };
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    record: format!("cached member list of {group}"),
                    source: Some(e.into()),
                })
        })
        .await
        .map_err(task_failed("member list task failed"))?
    }

    async fn record_reminder(
        &self,
        key: &ProcessQueryKey,
        reminder: &Reminder,
    ) -> Result<(), StoreError> {
        let value = serde_json::to_vec(reminder)
            .map_err(|e| StoreError::backend("cannot encode the reminder", e))?;
        let id = self
            .db
            .generate_id()
            .map_err(sled_failed("cannot number the reminder"))?;
        let mut k = notice_prefix(key);
        k.extend_from_slice(&ord_time(reminder.at));
        k.extend_from_slice(&id.to_be_bytes());
        self.reminders
            .insert(k, value)
            .map_err(sled_failed("cannot write the reminder"))?;
        self.durable().await
    }

    async fn reminders(&self, key: &ProcessQueryKey) -> Result<Vec<Reminder>, StoreError> {
        let mut out = Vec::new();
        for entry in self.reminders.scan_prefix(notice_prefix(key)) {
            let (k, v) = entry.map_err(sled_failed("cannot read the reminders"))?;
            let r: Reminder = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                record: format!("reminder {:?}", String::from_utf8_lossy(&k).as_ref()),
                source: Some(e.into()),
            })?;
            out.push(r);
        }
        Ok(out)
    }

    async fn mark_recalled(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<bool, StoreError> {
        // Keep the first time: only insert when absent.
        let cas = self
            .recalled
            .compare_and_swap(
                key.as_str().as_bytes(),
                None::<&[u8]>,
                Some(&at.to_be_bytes()[..]),
            )
            .map_err(sled_failed("cannot mark the notice recalled"))?;
        if cas.is_ok() {
            self.durable().await?;
        }
        Ok(cas.is_ok())
    }

    async fn recalled_at(&self, key: &ProcessQueryKey) -> Result<Option<EpochMillis>, StoreError> {
        let k = key.as_str().as_bytes();
        let Some(v) = self
            .recalled
            .get(k)
            .map_err(sled_failed("cannot read the recall mark"))?
        else {
            return Ok(None);
        };
        let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
            record: format!("recall mark {:?}", key.as_str()),
            source: None,
        })?;
        Ok(Some(i64::from_be_bytes(bytes)))
    }

    async fn add_follow_ups(&self, list: &[FollowUp]) -> Result<(), StoreError> {
        let mut encoded = Vec::with_capacity(list.len());
        for f in list {
            encoded.push((
                follow_up_key(&f.key, &f.id),
                due_key(f),
                encode_follow_up(f)?,
            ));
        }
        (&self.follow_ups, &self.follow_ups_due)
            .transaction(|(t, due)| {
                for (k, d, v) in &encoded {
                    if t.get(k.as_slice())?.is_some() {
                        continue;
                    }
                    t.insert(k.as_slice(), v.as_slice())?;
                    if let Some(d) = d {
                        due.insert(d.as_slice(), &[][..])?;
                    }
                }
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(transaction_failed("cannot store the follow-ups"))?;
        self.durable().await
    }

    async fn follow_ups(&self, key: &ProcessQueryKey) -> Result<Vec<FollowUp>, StoreError> {
        let mut out = Vec::new();
        for entry in self.follow_ups.scan_prefix(notice_prefix(key)) {
            let (k, v) = entry.map_err(sled_failed("cannot read the follow-ups"))?;
            out.push(decode_follow_up(&k, &v)?);
        }
        out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(out)
    }

    async fn due_follow_ups(
        &self,
        state: FollowUpState,
        due_by: EpochMillis,
        limit: usize,
    ) -> Result<Vec<FollowUp>, StoreError> {
        let mut out = Vec::new();
        let Some(byte) = due_state_byte(state) else {
            return Ok(out);
        };
        for entry in self.follow_ups_due.scan_prefix([byte]) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry.map_err(sled_failed("cannot read the follow-up work list"))?;
            let at = k
                .get(1..9)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(|b| (u64::from_be_bytes(b) ^ (1 << 63)) as i64);
            let (Some(at), Some(primary)) = (at, k.get(9..)) else {
                continue;
            };
            if at > due_by {
                break;
            }
            let Some(v) = self
                .follow_ups
                .get(primary)
                .map_err(sled_failed("cannot read a follow-up"))?
            else {
                // Pruned with its notice: the work-list entry is stale.
                let _ = self.follow_ups_due.remove(&k);
                continue;
            };
            let f = decode_follow_up(primary, &v)?;
            if f.state == state {
                out.push(f);
            }
        }
        Ok(out)
    }

    async fn set_follow_up_state(
        &self,
        key: &ProcessQueryKey,
        id: &FollowUpId,
        change: StateChange<'_>,
    ) -> Result<Option<FollowUp>, StoreError> {
        let k = follow_up_key(key, id);
        let changed = (&self.follow_ups, &self.follow_ups_due)
            .transaction(|(t, due)| {
                let Some(v) = t.get(k.as_slice())? else {
                    return Ok(None);
                };
                let mut f =
                    decode_follow_up(&k, &v).map_err(ConflictableTransactionError::Abort)?;
                let old_due = due_key(&f);
                if !change.apply(&mut f) {
                    return Ok(None);
                }
                let value = encode_follow_up(&f).map_err(ConflictableTransactionError::Abort)?;
                t.insert(k.as_slice(), value)?;
                if let Some(d) = old_due {
                    due.remove(d)?;
                }
                if let Some(d) = due_key(&f) {
                    due.insert(d, &[][..])?;
                }
                Ok(Some(f))
            })
            .map_err(transaction_failed("cannot change a follow-up"))?;
        if changed.is_some() {
            self.durable().await?;
        }
        Ok(changed)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Pending claims first (on the blocking pool: there may be many).
        let (dedup, pending) = (self.dedup.clone(), self.pending.clone());
        tokio::task::spawn_blocking(move || pending.write_to(&dedup))
            .await
            .map_err(task_failed("flush task failed"))??;
        self.durable().await
    }

    async fn begin_send(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: EpochMillis,
    ) -> Result<Option<SendRecord>, StoreError> {
        let k = key.as_str().as_bytes();
        let value = serde_json::to_vec(&SendRecord {
            fingerprint: fingerprint.to_owned(),
            at: now,
            notice: None,
        })
        .map_err(|e| StoreError::backend("cannot encode a send record", e))?;
        let swapped = self
            .sends
            .compare_and_swap(k, None::<&[u8]>, Some(value))
            .map_err(sled_write_failed("cannot reserve a send"))?;
        match swapped {
            Ok(()) => {
                self.durable().await?;
                Ok(None)
            }
            Err(cas) => match cas.current {
                Some(current) => decode_send(k, &current).map(Some),
                // Unreachable with an expected value of `None`.
                None => Err(StoreError::message("send reservation raced with a removal")),
            },
        }
    }

    async fn complete_send(&self, key: &IdempotencyKey, notice: &Notice) -> Result<(), StoreError> {
        let k = key.as_str().as_bytes();
        let encoded = EncodedNotice::new(notice)?;
        let abort = |e: StoreError| ConflictableTransactionError::Abort(e);
        (&self.notices, &self.by_group, &self.by_author, &self.sends)
            .transaction(|(n, g, a, sends)| {
                let current = sends.get(k)?.ok_or_else(|| {
                    abort(StoreError::message(
                        "no send is reserved under that idempotency key",
                    ))
                })?;
                let mut record = decode_send(k, &current).map_err(abort)?;
                record.notice = Some(notice.key.clone());
                let value = serde_json::to_vec(&record)
                    .map_err(|e| abort(StoreError::backend("cannot encode a send record", e)))?;
                encoded.write(n, g, a)?;
                sends.insert(k, value)?;
                Ok(())
            })
            .map_err(transaction_failed("cannot record the sent notice"))?;
        self.durable().await
    }

    async fn abandon_send(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        let k = key.as_str().as_bytes();
        let Some(current) = self
            .sends
            .get(k)
            .map_err(sled_failed("cannot read a send record"))?
        else {
            return Ok(());
        };
        if decode_send(k, &current)?.notice.is_some() {
            return Ok(());
        }
        // Only the pending record just read: never a completed one.
        self.sends
            .compare_and_swap(k, Some(&current), None::<&[u8]>)
            .map_err(sled_write_failed("cannot forget a send"))?
            .ok();
        self.durable().await
    }

    async fn prune_old(&self, cutoffs: Cutoffs) -> Result<Pruned, StoreError> {
        let this = self.clone();
        let pruned = tokio::task::spawn_blocking(move || -> Result<Pruned, StoreError> {
            // Follow-ups due before the cut-off go with their notices (not
            // counted; a stale work-list entry is dropped when met).
            Self::prune_tree(
                &this.follow_ups,
                cutoffs.notices_before,
                "cannot remove an old follow-up",
                |v| serde_json::from_slice::<FollowUp>(v).ok().map(|f| f.at),
            )?;
            // Group titles expire with the learned roster (not counted).
            Self::prune_tree(
                &this.group_titles,
                cutoffs.roster_before,
                "cannot remove an old group title",
                |v| decode_group_title(v).map(|(at, _)| at),
            )?;
            Ok(Pruned {
                notices: this.prune_notices(cutoffs.notices_before)?,
                sends: Self::prune_tree(
                    &this.sends,
                    cutoffs.notices_before,
                    "cannot remove an old send record",
                    |v| serde_json::from_slice::<SendRecord>(v).ok().map(|r| r.at),
                )?,
                names: Self::prune_tree(
                    &this.names,
                    cutoffs.names_before,
                    "cannot remove an old name",
                    |v| {
                        serde_json::from_slice::<CachedName>(v)
                            .ok()
                            .map(|c| c.fetched_at)
                    },
                )?,
                roster: Self::prune_tree(
                    &this.roster,
                    cutoffs.roster_before,
                    "cannot remove an old roster entry",
                    |v| <[u8; 8]>::try_from(v).ok().map(i64::from_be_bytes),
                )?
                .saturating_add(Self::prune_tree(
                    &this.roster_cache,
                    cutoffs.roster_before,
                    "cannot remove an old cached member list",
                    |v| {
                        serde_json::from_slice::<CachedRoster>(v)
                            .ok()
                            .map(|c| c.fetched_at)
                    },
                )?),
            })
        })
        .await
        .map_err(task_failed("prune task failed"))??;
        if pruned != Pruned::default() {
            self.durable().await?;
        }
        Ok(pruned)
    }

    async fn entry_counts(&self) -> Result<EntryCounts, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || EntryCounts {
            notices: this.notices.len() as u64,
            marks: this.dedup.len() as u64,
            names: this.names.len() as u64,
            roster: this.roster.len() as u64,
            sends: this.sends.len() as u64,
        })
        .await
        .map_err(task_failed("count task failed"))
    }

    async fn probe_write(&self, now: EpochMillis) -> Result<(), StoreError> {
        self.health
            .insert("probe", &now.to_be_bytes()[..])
            .map_err(sled_write_failed("cannot write the health probe"))?;
        self.durable().await
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        // The whole folder, as `du` would count it (sled's own
        // `size_on_disk` leaves out its snapshots and config file).
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || folder_size(&dir))
            .await
            .map_err(task_failed("size task failed"))
    }

    async fn record_reads(
        &self,
        key: &ProcessQueryKey,
        reads: &[ReadRecord],
    ) -> Result<usize, StoreError> {
        let prefix_len = notice_prefix(key).len();
        let mut changed = 0;
        for r in reads {
            let k = read_key(key, &r.user_id);
            let new = encode_read(r);
            let mut replaced = false;
            // Atomic per reader: an event and a query pass may race.
            self.reads
                .fetch_and_update(&k, |old| {
                    let keep_old = old
                        .and_then(|o| decode_read(&k, prefix_len, o).ok())
                        .is_some_and(|o| !r.supersedes(&o));
                    replaced = !keep_old;
                    if keep_old {
                        old.map(<[u8]>::to_vec)
                    } else {
                        Some(new.to_vec())
                    }
                })
                .map_err(sled_failed("cannot record a read"))?;
            if replaced {
                changed += 1;
            }
        }
        if changed > 0 {
            self.durable().await?;
        }
        Ok(changed)
    }

    async fn reads(&self, key: &ProcessQueryKey) -> Result<Vec<ReadRecord>, StoreError> {
        let prefix = notice_prefix(key);
        let mut out = Vec::new();
        for entry in self.reads.scan_prefix(&prefix) {
            let (k, v) = entry.map_err(sled_failed("cannot read the reads"))?;
            out.push(decode_read(&k, prefix.len(), &v)?);
        }
        out.sort_by(|a, b| (a.at, &a.user_id).cmp(&(b.at, &b.user_id)));
        Ok(out)
    }

    async fn reconciled_at(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Option<EpochMillis>, StoreError> {
        let k = meta_key(META_RECONCILED, key);
        match self
            .push_meta
            .get(&k)
            .map_err(sled_failed("cannot read a reconciliation time"))?
        {
            Some(v) => decode_time(&k, &v).map(Some),
            None => Ok(None),
        }
    }

    async fn set_reconciled_at(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<(), StoreError> {
        // Not flushed: a lost time only costs one more pass.
        self.push_meta
            .insert(meta_key(META_RECONCILED, key), &at.to_be_bytes()[..])
            .map_err(sled_failed("cannot write a reconciliation time"))?;
        Ok(())
    }

    async fn event_trust(&self) -> Result<EventTrust, StoreError> {
        match self
            .push_meta
            .get(META_TRUST)
            .map_err(sled_failed("cannot read the event trust"))?
        {
            None => Ok(EventTrust::default()),
            Some(v) => serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                record: "event trust".into(),
                source: Some(e.into()),
            }),
        }
    }

    async fn set_event_trust(&self, trust: &EventTrust) -> Result<(), StoreError> {
        let v = serde_json::to_vec(trust)
            .map_err(|e| StoreError::backend("cannot encode the event trust", e))?;
        self.push_meta
            .insert(META_TRUST, v)
            .map_err(sled_failed("cannot write the event trust"))?;
        self.durable().await
    }

    async fn add_calls(
        &self,
        month: &BillingMonth,
        calls: &[(&str, u64)],
    ) -> Result<(), StoreError> {
        let mut wrote = false;
        for (api, n) in calls {
            if *n == 0 {
                continue;
            }
            let k = calls_key(month, api);
            // Atomic per API: concurrent adds never lose a call.
            self.calls
                .fetch_and_update(&k, |old| {
                    let was = old
                        .and_then(|o| <[u8; 8]>::try_from(o).ok())
                        .map_or(0, u64::from_be_bytes);
                    Some(was.saturating_add(*n).to_be_bytes().to_vec())
                })
                .map_err(sled_write_failed("cannot add to the call ledger"))?;
            wrote = true;
        }
        if wrote {
            self.durable().await?;
        }
        Ok(())
    }

    async fn calls_in_month(&self, month: &BillingMonth) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = calls_key(month, "");
        let mut out = Vec::new();
        for entry in self.calls.scan_prefix(&prefix) {
            let (k, v) = entry.map_err(sled_failed("cannot read the call ledger"))?;
            let corrupt = || StoreError::Corrupt {
                record: format!("call ledger entry {:?}", String::from_utf8_lossy(&k)),
                source: None,
            };
            let api = std::str::from_utf8(&k[prefix.len()..]).map_err(|_| corrupt())?;
            let n = <[u8; 8]>::try_from(&v[..]).map_err(|_| corrupt())?;
            out.push((api.to_owned(), u64::from_be_bytes(n)));
        }
        out.sort();
        Ok(out)
    }

    async fn link_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .keys
            .get(LINK_KEY)
            .map_err(sled_failed("cannot read the link key"))?
            .map(|v| v.to_vec()))
    }

    async fn init_link_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let swapped = self
            .keys
            .compare_and_swap(LINK_KEY, None::<&[u8]>, Some(candidate))
            .map_err(sled_write_failed("cannot store the link key"))?;
        let key = match swapped {
            Ok(()) => candidate.to_vec(),
            Err(cas) => match cas.current {
                Some(current) => current.to_vec(),
                None => return Err(StoreError::message("link key raced with a removal")),
            },
        };
        // Also for a key found stored: it may not be flushed yet.
        self.durable().await?;
        Ok(key)
    }

    fn describe(&self) -> String {
        format!("sled in {}", self.dir.display())
    }
}

/// `calls` key: month ‖ 0x00 ‖ API name (months are all 7 bytes).
fn calls_key(month: &BillingMonth, api: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(month.as_str().len() + 1 + api.len());
    k.extend_from_slice(month.as_str().as_bytes());
    k.push(SEP);
    k.extend_from_slice(api.as_bytes());
    k
}

/// The `keys` entry of the page-link signing key.
const LINK_KEY: &[u8] = b"link";

/// One exported entry's tree and key, for a corrupt record's message.
fn corrupt(tree: &str, key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        record: format!("{tree} entry {:?}", String::from_utf8_lossy(key).as_ref()),
        source: None,
    }
}

/// `bytes` (a key part) as a string id of type `T`.
fn id_of<T, E>(
    tree: &str,
    key: &[u8],
    bytes: &[u8],
    parse: impl Fn(String) -> Result<T, E>,
) -> Result<T, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| parse(s.to_owned()).ok())
        .ok_or_else(|| corrupt(tree, key))
}

/// A key split at its first `0x00` (ids never hold one): (id, rest).
fn split_at_sep<'k>(tree: &str, key: &'k [u8]) -> Result<(&'k [u8], &'k [u8]), StoreError> {
    let at = key
        .iter()
        .position(|&b| b == SEP)
        .ok_or_else(|| corrupt(tree, key))?;
    Ok((&key[..at], &key[at + 1..]))
}

/// Most entries of one notice in one exported record (reads, reminders).
const EXPORT_GROUP: usize = 1000;

/// An id and the entries under it.
type EntryGroup = (Vec<u8>, Vec<(sled::IVec, sled::IVec)>);

/// A tree's entries, consecutive ones with the same id before the first
/// `0x00` together (at most [`EXPORT_GROUP`] a group).
fn grouped(
    tree: &Tree,
    what: &'static str,
) -> impl Iterator<Item = Result<EntryGroup, StoreError>> + Send {
    let mut it = tree.iter().peekable();
    std::iter::from_fn(move || {
        let (k, v) = match it.next()? {
            Ok(kv) => kv,
            Err(e) => return Some(Err(StoreError::backend(what, e))),
        };
        let prefix = match split_at_sep(what, &k) {
            Ok((p, _)) => p.to_vec(),
            Err(e) => return Some(Err(e)),
        };
        let mut group = vec![(k, v)];
        while group.len() < EXPORT_GROUP {
            let same = matches!(it.peek(), Some(Ok((k, _))) if k.starts_with(&prefix) && k.get(prefix.len()) == Some(&SEP));
            if !same {
                break;
            }
            if let Some(Ok(kv)) = it.next() {
                group.push(kv);
            }
        }
        Some(Ok((prefix, group)))
    })
}

type Export = Box<dyn Iterator<Item = Result<Record, StoreError>> + Send>;

/// Every entry of `tree`, each decoded by `decode` (`None`: not exported).
fn each(
    tree: &Tree,
    what: &'static str,
    decode: impl Fn(&[u8], &[u8]) -> Result<Option<Record>, StoreError> + Send + 'static,
) -> Export {
    Box::new(tree.iter().filter_map(move |entry| match entry {
        Ok((k, v)) => decode(&k, &v).transpose(),
        Err(e) => Some(Err(StoreError::backend(what, e))),
    }))
}

fn be_time(tree: &str, key: &[u8], v: &[u8]) -> Result<EpochMillis, StoreError> {
    <[u8; 8]>::try_from(v)
        .map(i64::from_be_bytes)
        .map_err(|_| corrupt(tree, key))
}

impl SledStore {
    /// Every record this store holds, kind by kind, for `readbot store copy`
    /// ([`super::copy`]): notices first (a send record names its notice),
    /// then sends, names, rosters, group titles, cached member lists,
    /// reminders and reads (grouped per notice), recalls, reconciliation
    /// times, event trust, follow-ups, the call ledger, the link key, and
    /// last the de-duplication marks and signature records (all of them:
    /// the copy skips expired ones). Index trees (`by_group`, `by_author`,
    /// `follow_ups_due`) and the health probe are not exported: the target
    /// rebuilds them. Blocking (sled reads): iterate off the runtime.
    pub fn export(&self) -> impl Iterator<Item = Result<Record, StoreError>> + Send + 'static {
        let parts: Vec<Export> = vec![
            each(&self.notices, "cannot read the notices", |k, v| {
                decode_notice(k, v).map(|n| Some(Record::Notice(n)))
            }),
            each(&self.sends, "cannot read the send records", |k, v| {
                let key = id_of("sends", k, k, IdempotencyKey::parse)?;
                let record = decode_send(k, v)?;
                Ok(Some(Record::Send { key, record }))
            }),
            each(&self.names, "cannot read the name cache", |k, v| {
                let user = id_of("names", k, k, UserId::parse)?;
                let c = decode_name(&user, v)?;
                Ok(Some(Record::Name {
                    user,
                    name: c.name,
                    fetched_at: c.fetched_at,
                    verified: c.verified,
                }))
            }),
            each(&self.roster, "cannot read the learned roster", |k, v| {
                let (g, u) = split_at_sep("roster", k)?;
                Ok(Some(Record::RosterEntry {
                    group: id_of("roster", k, g, OpenConversationId::parse)?,
                    user: id_of("roster", k, u, UserId::parse)?,
                    seen_at: be_time("roster", k, v)?,
                }))
            }),
            each(
                &self.group_titles,
                "cannot read the group titles",
                |k, v| {
                    let group = id_of("group_titles", k, k, OpenConversationId::parse)?;
                    let (at, title) =
                        decode_group_title(v).ok_or_else(|| corrupt("group_titles", k))?;
                    Ok(Some(Record::GroupTitle {
                        group,
                        title: title.to_owned(),
                        at,
                    }))
                },
            ),
            each(
                &self.roster_cache,
                "cannot read the cached member lists",
                |k, v| {
                    let group = id_of("roster_cache", k, k, OpenConversationId::parse)?;
                    let roster = serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
                        record: format!("cached member list of {group}"),
                        source: Some(e.into()),
                    })?;
                    Ok(Some(Record::CachedRoster { group, roster }))
                },
            ),
            Box::new(
                grouped(&self.reminders, "cannot read the reminders").map(|g| {
                    let (prefix, entries) = g?;
                    let key = id_of("reminders", &prefix, &prefix, ProcessQueryKey::parse)?;
                    let mut list = Vec::with_capacity(entries.len());
                    for (k, v) in entries {
                        list.push(serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                            record: format!("reminder {:?}", String::from_utf8_lossy(&k).as_ref()),
                            source: Some(e.into()),
                        })?);
                    }
                    Ok(Record::Reminders { key, list })
                }),
            ),
            each(&self.recalled, "cannot read the recall marks", |k, v| {
                Ok(Some(Record::Recalled {
                    key: id_of("recalled", k, k, ProcessQueryKey::parse)?,
                    at: be_time("recalled", k, v)?,
                }))
            }),
            Box::new(grouped(&self.reads, "cannot read the reads").map(|g| {
                let (prefix, entries) = g?;
                let key = id_of("reads", &prefix, &prefix, ProcessQueryKey::parse)?;
                let prefix_len = prefix.len() + 1;
                let reads = entries
                    .iter()
                    .map(|(k, v)| decode_read(k, prefix_len, v))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Record::Reads { key, reads })
            })),
            each(&self.push_meta, "cannot read the push state", |k, v| {
                if k == META_TRUST {
                    let trust = serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
                        record: "event trust".into(),
                        source: Some(e.into()),
                    })?;
                    return Ok(Some(Record::EventTrust(trust)));
                }
                match k.split_first() {
                    Some((&META_RECONCILED, key)) => Ok(Some(Record::ReconciledAt {
                        key: id_of("push_meta", k, key, ProcessQueryKey::parse)?,
                        at: decode_time(k, v)?,
                    })),
                    _ => Ok(None),
                }
            }),
            each(&self.follow_ups, "cannot read the follow-ups", |k, v| {
                decode_follow_up(k, v).map(|f| Some(Record::FollowUp(f)))
            }),
            each(&self.calls, "cannot read the call ledger", |k, v| {
                let (month, api) = split_at_sep("calls", k)?;
                let month = std::str::from_utf8(month)
                    .ok()
                    .and_then(BillingMonth::parse)
                    .ok_or_else(|| corrupt("calls", k))?;
                let api = std::str::from_utf8(api)
                    .map_err(|_| corrupt("calls", k))?
                    .to_owned();
                let calls = <[u8; 8]>::try_from(v)
                    .map(u64::from_be_bytes)
                    .map_err(|_| corrupt("calls", k))?;
                Ok(Some(Record::Calls { month, api, calls }))
            }),
            each(&self.keys, "cannot read the keys", |k, v| {
                Ok((k == LINK_KEY).then(|| Record::LinkKey(LinkKey(v.to_vec()))))
            }),
            each(&self.dedup, "cannot read the de-dup marks", |k, v| {
                let (state, at) = decode_mark(k, v)?;
                Ok(Some(Record::Mark {
                    id: id_of("dedup", k, k, MsgId::parse)?,
                    done: state == MARK_DONE,
                    at,
                }))
            }),
            each(
                &self.signatures,
                "cannot read the signature records",
                |k, v| {
                    let timestamp = be_time("signatures", k, k)?;
                    let record = decode_signature(k, v)?;
                    let ids = record
                        .ids
                        .into_iter()
                        .map(|id| MsgId::parse(id).map_err(|_| corrupt("signatures", k)))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(Some(Record::Signature {
                        timestamp,
                        at: record.at,
                        ids,
                    }))
                },
            ),
        ];
        parts.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RobotCode;
    use crate::store::conformance::{gid, mid, notice, uid};
    use proptest::prelude::*;

    #[tokio::test]
    async fn data_survives_drop_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let n1 = notice("k1", "cid1", Some("alice"), 1_000);
        let n2 = notice("k2", "cid1", None, 2_000);
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.record_notice(&n1).await.unwrap();
            s.record_notice(&n2).await.unwrap();
            assert_eq!(s.claim_message(&mid("done"), 5).await.unwrap(), Claim::New);
            s.finish_message(&mid("done"), 6).await.unwrap();
            assert_eq!(s.claim_message(&mid("busy"), 5).await.unwrap(), Claim::New);
            // What the bot awaits before answering a claimed message.
            s.flush().await.unwrap();
            s.cache_names(&[(uid("alice"), "Alice".into())], 7)
                .await
                .unwrap();
            s.remember_members(&gid("cid1"), &[uid("bob")], 8)
                .await
                .unwrap();
            assert!(s.size_on_disk() > 0);
            assert!(s.size_bytes().await.unwrap() >= s.size_on_disk());
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.notice_count().await.unwrap(), 2);
        assert_eq!(s.notice(&n1.key).await.unwrap(), Some(n1.clone()));
        assert_eq!(
            s.notices_in_group(&gid("cid1"), 10).await.unwrap(),
            vec![n2, n1.clone()]
        );
        assert_eq!(
            s.last_notice_by(&gid("cid1"), &uid("alice")).await.unwrap(),
            Some(n1)
        );
        assert_eq!(s.claim_message(&mid("done"), 9).await.unwrap(), Claim::Done);
        assert_eq!(
            s.claim_message(&mid("busy"), 9).await.unwrap(),
            Claim::InFlight
        );
        assert_eq!(
            s.cached_names(&[uid("alice")], 0).await.unwrap(),
            vec![(uid("alice"), "Alice".to_owned())]
        );
        assert_eq!(
            s.learned_members(&gid("cid1")).await.unwrap(),
            vec![uid("bob")]
        );
    }

    /// Claims taken while flushes move pending claims into the tree: every
    /// id has exactly one winner, and after a flush and a reopening every id
    /// is claimed (nothing fell between memory and the tree).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn claims_racing_flushes_have_one_winner_each() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flusher = {
            let (s, stop) = (s.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        let ids = 2_000;
        let mut set = tokio::task::JoinSet::new();
        for copy in 0..4 {
            for i in 0..ids {
                let s = s.clone();
                set.spawn(async move {
                    let won = s
                        .claim_message(&mid(&format!("race-{i}")), copy)
                        .await
                        .unwrap();
                    (i, won == Claim::New)
                });
            }
        }
        let mut winners = vec![0; ids];
        while let Some(r) = set.join_next().await {
            let (i, won) = r.unwrap();
            winners[i] += usize::from(won);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        flusher.await.unwrap();
        assert!(winners.iter().all(|&w| w == 1), "{winners:?}");
        s.flush().await.unwrap();
        drop(s);
        let s = SledStore::open(dir.path()).unwrap();
        for i in 0..ids {
            assert_eq!(
                s.claim_message(&mid(&format!("race-{i}")), 9)
                    .await
                    .unwrap(),
                Claim::InFlight
            );
        }
    }

    #[test]
    fn open_names_the_folder_when_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _held = SledStore::open(dir.path()).unwrap();
        let err = SledStore::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&dir.path().display().to_string()),
            "error does not name the folder: {err}"
        );
    }

    #[test]
    fn open_failure_keeps_sleds_error_as_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let _held = SledStore::open(dir.path()).unwrap();
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::OpenFolder { .. }), "{err:?}");
        let cause = std::error::Error::source(&err)
            .expect("a cause")
            .to_string();
        assert!(
            !err.to_string().contains(&cause),
            "the cause is not repeated"
        );
        assert!(err.with_causes().ends_with(&cause), "{}", err.with_causes());
        let chain = format!("{:#}", anyhow::Error::new(err));
        assert!(chain.contains("is another readbot using it"), "{chain}");
        assert!(chain.ends_with(&cause), "{chain}");
    }

    /// A corrupt folder is reported as corrupt, not as "another readbot is
    /// using it" (sled reads a garbled `conf` as corruption).
    #[test]
    fn a_corrupt_folder_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        // Wait out sled's background release of the dropped store's lock.
        std::thread::sleep(std::time::Duration::from_millis(200));
        std::fs::write(dir.path().join("conf"), b"garbage\x00\x01").unwrap();
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::CorruptFolder { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("is corrupted"), "{text}");
        assert!(!text.contains("another readbot"), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }

    #[test]
    fn sleds_lock_error_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let _held = sled::open(dir.path()).unwrap();
        match sled::Config::new().path(dir.path()).open() {
            Err(sled::Error::Io(e)) => assert!(is_lock_error(&e), "{e}"),
            other => panic!("expected the lock error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn open_names_the_folder_when_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = SledStore::open(&file).unwrap_err().to_string();
        assert!(err.contains("plain-file"), "{err}");
    }

    #[tokio::test]
    async fn corrupt_records_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let n = notice("k1", "cid1", Some("alice"), 1_000);
        s.record_notice(&n).await.unwrap();
        s.notices.insert("k1", &b"{not json"[..]).unwrap();
        s.dedup.insert("m1", &b"\x07"[..]).unwrap();
        s.names.insert("alice", &b"[]"[..]).unwrap();
        assert!(matches!(
            s.notice(&n.key).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            s.notices_in_group(&gid("cid1"), 5).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            s.claim_message(&mid("m1"), 1).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            s.prune_marks(10).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            s.cached_names(&[uid("alice")], 0).await,
            Err(StoreError::Corrupt { .. })
        ));
        // Re-recording repairs a corrupt notice.
        s.record_notice(&n).await.unwrap();
        assert_eq!(s.notices_in_group(&gid("cid1"), 5).await.unwrap(), vec![n]);
    }

    #[tokio::test]
    async fn dangling_index_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let n = notice("k1", "cid1", Some("alice"), 1_000);
        s.record_notice(&n).await.unwrap();
        // As if a crash had left indexes without their notice.
        let ghost = notice("ghost", "cid1", Some("alice"), 5_000);
        s.by_group.insert(group_index_key(&ghost), "ghost").unwrap();
        s.by_author
            .insert(author_index_key(&ghost).unwrap(), "ghost")
            .unwrap();
        // And an index entry pointing at a notice that does not match it.
        let stale = notice("k1", "cid1", Some("alice"), 9_000);
        s.by_group.insert(group_index_key(&stale), "k1").unwrap();
        assert_eq!(
            s.notices_in_group(&gid("cid1"), 5).await.unwrap(),
            vec![n.clone()]
        );
        assert_eq!(
            s.last_notice_by(&gid("cid1"), &uid("alice")).await.unwrap(),
            Some(n)
        );
    }

    /// sled 0.34's `flush_async` runs on sled's own seven-thread pool, and a
    /// log write queued behind seven waiting flushes never runs (sled issue
    /// #1308): 64 concurrent durable writes mixed with batches hung readbot's
    /// callback intake for good. Flushing on tokio's blocking pool avoids it.
    #[test]
    fn many_concurrent_durable_writes_do_not_deadlock() {
        // The workload runs on its own thread so that a hang fails this test
        // (after a generous bound) instead of hanging the suite: a deadlocked
        // sled blocks the runtime's workers, so no tokio timer would fire.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let learned = rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let s = std::sync::Arc::new(SledStore::open(dir.path()).unwrap());
                let mut set = tokio::task::JoinSet::new();
                for t in 0..64 {
                    let s = s.clone();
                    set.spawn(async move {
                        for i in 0..40 {
                            let id = mid(&format!("m{t}-{i}"));
                            assert_eq!(s.claim_message(&id, 1).await.unwrap(), Claim::New);
                            s.remember_members(&gid("cid1"), &[uid(&format!("u{t}-{i}"))], 2)
                                .await
                                .unwrap();
                            s.finish_message(&id, 3).await.unwrap();
                        }
                    });
                }
                while let Some(j) = set.join_next().await {
                    j.unwrap();
                }
                s.learned_members(&gid("cid1")).await.unwrap().len()
            });
            let _ = done.send(learned);
        });
        let learned = finished
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("64 concurrent durable writers finished (no flush deadlock)");
        assert_eq!(learned, 64 * 40);
    }

    #[tokio::test]
    async fn a_cached_member_list_survives_a_reopen() {
        use crate::domain::{Member, RosterSource};
        let dir = tempfile::tempdir().unwrap();
        let kept = CachedRoster {
            source: RosterSource::SceneGroup,
            members: vec![Member {
                user_id: uid("bob"),
                name: Some("Bob".into()),
            }],
            fetched_at: 42,
        };
        {
            let s = SledStore::open(dir.path()).unwrap();
            s.cache_roster(&gid("cid1"), &kept).await.unwrap();
            s.flush().await.unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.cached_roster(&gid("cid1")).await.unwrap(), Some(kept));
    }

    #[test]
    fn folder_size_sums_nested_files() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        std::fs::write(tmp.path().join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(folder_size(tmp.path()), 15);
        assert_eq!(folder_size(&tmp.path().join("missing")), 0);
    }

    #[test]
    fn reverse_time_orders_newest_first() {
        let times = [i64::MIN, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in times.windows(2) {
            assert!(rev_time(w[0]) > rev_time(w[1]), "{w:?}");
        }
    }

    fn id_strategy() -> impl Strategy<Value = String> {
        // Printable, non-blank, including base64 punctuation and CJK.
        "[A-Za-z0-9+/=_.-][A-Za-z0-9+/=_. 中文-]{0,30}"
    }

    fn notice_strategy() -> impl Strategy<Value = Notice> {
        (
            id_strategy(),
            id_strategy(),
            id_strategy(),
            ".*",
            proptest::option::of(id_strategy()),
            proptest::option::of(".*"),
            ".*",
            any::<i64>(),
        )
            .prop_map(
                |(key, group, robot, title, author, author_name, msg_key, sent_at)| Notice {
                    key: ProcessQueryKey::parse(key).unwrap(),
                    group: OpenConversationId::parse(group).unwrap(),
                    robot_code: RobotCode::parse(robot).unwrap(),
                    title,
                    author: author.map(|a| UserId::parse(a).unwrap()),
                    author_name,
                    msg_key,
                    sent_at,
                },
            )
    }

    #[test]
    fn arbitrary_notices_round_trip() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 64,
            ..ProptestConfig::default()
        });
        runner
            .run(&notice_strategy(), |n| {
                rt.block_on(async {
                    s.record_notice(&n).await.unwrap();
                    prop_assert_eq!(s.notice(&n.key).await.unwrap(), Some(n.clone()));
                    let listed = s.notices_in_group(&n.group, usize::MAX).await.unwrap();
                    prop_assert!(listed.contains(&n));
                    prop_assert!(listed.windows(2).all(|w| w[0].sent_at >= w[1].sent_at));
                    if let Some(author) = &n.author {
                        let last = s.last_notice_by(&n.group, author).await.unwrap().unwrap();
                        prop_assert!(last.sent_at >= n.sent_at);
                        prop_assert_eq!(&last.group, &n.group);
                        prop_assert_eq!(last.author.as_ref(), Some(author));
                    }
                    Ok(())
                })
            })
            .unwrap();
    }
}
