//! `readbot store copy`: moves a stopped readbot's sled folder into another
//! store (a fresh sled folder, or, with a database backend, the shared
//! database of several replicas).
//!
//! The source is read with [`SledStore::export`] (every kind of record, see
//! [`Record`]); the target is any [`Store`], written only through the trait's
//! own methods, so every backend [`super::open`] knows is a target. Each
//! record is written so that writing it again changes nothing: notices,
//! names, titles, member lists, recalls, reconciliation times, event trust
//! and follow-ups are keyed (rewritten or left alone); reads keep the
//! record that supersedes; reminders are added only where the target holds
//! fewer equal ones; send records are reserved only when absent (and
//! completed when the target's is still pending); the call ledger is raised
//! to the source's count, never added twice; marks and signature records are
//! claimed, which a second claim leaves alone. So a copy run twice gives the
//! same target, and a copy that stopped half-way (a crash, a full disk) is
//! finished by running it again.
//!
//! De-duplication marks and signature records older than the retention
//! (`bot.dedup_retention_secs`) are skipped: readbot would prune them at its
//! next start anyway.

pub use super::record::{LinkKey, Record, KINDS};
use super::sled_store::SledStore;
use super::{Claim, Store, StoreConfig, StoreError};
use crate::domain::EpochMillis;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Entries copied, per kind (every kind of [`KINDS`], in that order).
    pub copied: Vec<(&'static str, u64)>,
    /// De-dup marks skipped because they had expired.
    pub expired_marks: u64,
    /// Signature records skipped because they had expired.
    pub expired_signatures: u64,
    /// Sent send records whose notice is gone from the source: kept pending
    /// in the target (a retry with the key is refused, never sent twice).
    pub sends_left_pending: u64,
    /// The target already held a different page-link key and kept it (links
    /// signed with the source's key stop working).
    pub link_key_kept: bool,
}

impl CopyReport {
    /// Entries copied of `kind`.
    pub fn count(&self, kind: &str) -> u64 {
        self.copied
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    fn add(&mut self, (kind, n): (&'static str, u64)) {
        if let Some((_, c)) = self.copied.iter_mut().find(|(k, _)| *k == kind) {
            *c = c.saturating_add(n);
        }
    }

    /// Every entry copied.
    pub fn total(&self) -> u64 {
        self.copied.iter().fold(0, |t, (_, n)| t.saturating_add(*n))
    }
}

/// Why a copy did not start or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// `--from` is not a sled folder.
    #[error(
        "{} is not a readbot data folder (no sled files in it): --from must name a stopped readbot's READBOT_DATA_DIR",
        dir.display()
    )]
    NotSledFolder {
        /// The folder.
        dir: PathBuf,
    },
    /// `--from` and `--to` name the same folder.
    #[error(
        "--from and --to name the same folder ({}): copy into a new folder or a database",
        dir.display()
    )]
    SameStore {
        /// The folder.
        dir: PathBuf,
    },
    /// `--to` is a URL of a backend this build does not have.
    #[error(
        "--to: this readbot has no store backend for {scheme}:// URLs (a path names a sled folder)"
    )]
    UnsupportedTarget {
        /// The URL's scheme.
        scheme: String,
    },
    /// The source could not be opened (e.g. readbot still runs on it).
    #[error("cannot open the source (is readbot still running on it?)")]
    Source(#[source] StoreError),
    /// The target could not be opened.
    #[error("cannot open the target")]
    Target(#[source] StoreError),
    /// Reading or writing failed part-way.
    #[error("the copy stopped after {copied} entries; run it again to finish (it is idempotent)")]
    Stopped {
        /// Entries copied before the failure.
        copied: u64,
        /// Why.
        #[source]
        source: StoreError,
    },
}

impl CopyError {
    /// True when the arguments are wrong (nothing was attempted).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NotSledFolder { .. } | Self::SameStore { .. } | Self::UnsupportedTarget { .. }
        )
    }

    /// This error and its causes on one line (`a: b: c`).
    pub fn with_causes(&self) -> String {
        crate::domain::error_chain(self)
    }
}

/// How to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// The time of the copy.
    pub now: EpochMillis,
    /// Marks and signature records last written longer ago are skipped.
    pub mark_retention: Duration,
}

/// True when `dir` holds sled's files (its `conf` and `db`).
pub fn is_sled_folder(dir: &Path) -> bool {
    dir.is_dir() && dir.join("conf").is_file() && dir.join("db").is_file()
}

/// The store `--to` names: a `scheme://…` URL names a database backend
/// (none in this build: refused), anything else a sled folder.
pub fn target_config(to: &str) -> Result<StoreConfig, CopyError> {
    if crate::config::PgConfig::is_postgres_url(to) {
        return Ok(StoreConfig::Postgres(crate::config::PgConfig::new(
            to.trim(),
        )));
    }
    if let Some((scheme, _)) = to.split_once("://") {
        let plausible = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if plausible {
            return Err(CopyError::UnsupportedTarget {
                scheme: scheme.to_ascii_lowercase(),
            });
        }
    }
    Ok(StoreConfig::sled(to))
}

/// `--to` for a summary line: a URL loses its password.
pub fn display_target(to: &str) -> String {
    match url::Url::parse(to) {
        Ok(mut u) if to.contains("://") => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        _ => to.to_owned(),
    }
}

/// `path` made absolute and resolved as far as it exists.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            resolved(parent).join(name)
        }
        _ => path.to_path_buf(),
    }
}

/// Copies the sled folder `from` into the store `to` names (see the module
/// docs): checks the arguments, opens both (off the runtime), copies.
pub async fn run(from: &Path, to: &str, options: CopyOptions) -> Result<CopyReport, CopyError> {
    if !is_sled_folder(from) {
        return Err(CopyError::NotSledFolder {
            dir: from.to_path_buf(),
        });
    }
    let target = target_config(to)?;
    // Other backends have no folder to compare.
    match &target {
        StoreConfig::Sled(sled) if resolved(from) == resolved(&sled.dir) => {
            return Err(CopyError::SameStore {
                dir: from.to_path_buf(),
            });
        }
        _ => {}
    }
    let from = from.to_path_buf();
    let source = tokio::task::spawn_blocking(move || SledStore::open(&from))
        .await
        .map_err(|e| CopyError::Source(StoreError::backend("open task failed", e)))?
        .map_err(CopyError::Source)?;
    let target = super::open(&target).await.map_err(CopyError::Target)?;
    copy(&source, target, options).await
}

/// How many records wait between the reading thread and the writer.
const QUEUE: usize = 256;

/// Copies every record of `source` into `target` (see the module docs),
/// then flushes the target.
pub async fn copy(
    source: &SledStore,
    target: Arc<dyn Store>,
    options: CopyOptions,
) -> Result<CopyReport, CopyError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUE);
    let source = source.clone();
    // sled reads block: they run on the blocking pool, the writer here.
    let reader = tokio::task::spawn_blocking(move || {
        for record in source.export() {
            if tx.blocking_send(record).is_err() {
                break; // the writer stopped
            }
        }
    });
    let mut report = CopyReport {
        copied: KINDS.iter().map(|k| (*k, 0)).collect(),
        ..CopyReport::default()
    };
    let stopped = |report: &CopyReport, source| CopyError::Stopped {
        copied: report.total(),
        source,
    };
    while let Some(record) = rx.recv().await {
        let record = record.map_err(|e| stopped(&report, e))?;
        let kind = record.kind();
        if write(target.as_ref(), record, &options, &mut report)
            .await
            .map_err(|e| stopped(&report, e))?
        {
            report.add(kind);
        }
    }
    reader
        .await
        .map_err(|e| stopped(&report, StoreError::backend("the reading task failed", e)))?;
    target.flush().await.map_err(|e| stopped(&report, e))?;
    Ok(report)
}

/// Writes one record into `target`; false when it was skipped (expired).
async fn write(
    target: &dyn Store,
    record: Record,
    options: &CopyOptions,
    report: &mut CopyReport,
) -> Result<bool, StoreError> {
    let retention = i64::try_from(options.mark_retention.as_millis()).unwrap_or(i64::MAX);
    let expired = |at: EpochMillis| at < options.now.saturating_sub(retention);
    match record {
        Record::Notice(n) => target.record_notice(&n).await?,
        Record::Send { key, record } => {
            let existing = target
                .begin_send(&key, &record.fingerprint, record.at)
                .await?;
            let pending_there = existing.as_ref().is_none_or(|r| r.notice.is_none());
            if let (true, Some(sent)) = (pending_there, &record.notice) {
                match target.notice(sent).await? {
                    Some(notice) => target.complete_send(&key, &notice).await?,
                    None => report.sends_left_pending += 1,
                }
            }
        }
        Record::Name {
            user,
            name,
            fetched_at,
            verified: true,
        } => target.cache_names(&[(user, name)], fetched_at).await?,
        Record::Name {
            user,
            name,
            fetched_at,
            verified: false,
        } => target.cache_callback_name(&user, &name, fetched_at).await?,
        Record::RosterEntry {
            group,
            user,
            seen_at,
        } => target.remember_members(&group, &[user], seen_at).await?,
        Record::GroupTitle { group, title, at } => {
            target.remember_group_title(&group, &title, at).await?
        }
        Record::CachedRoster { group, roster } => target.cache_roster(&group, &roster).await?,
        Record::Reminders { key, list } => {
            // Only those the target lacks (counting equal ones): a re-run
            // adds nothing.
            let mut there = target.reminders(&key).await?;
            for r in list {
                match there.iter().position(|t| *t == r) {
                    Some(i) => {
                        there.swap_remove(i);
                    }
                    None => target.record_reminder(&key, &r).await?,
                }
            }
        }
        Record::Recalled { key, at } => {
            target.mark_recalled(&key, at).await?;
        }
        Record::Reads { key, reads } => {
            target.record_reads(&key, &reads).await?;
        }
        Record::ReconciledAt { key, at } => target.set_reconciled_at(&key, at).await?,
        Record::EventTrust(trust) => target.set_event_trust(&trust).await?,
        Record::FollowUp(f) => target.add_follow_ups(&[f]).await?,
        Record::Calls { month, api, calls } => {
            // Raised to the source's count, never added twice.
            let there = target
                .calls_in_month(&month)
                .await?
                .into_iter()
                .find(|(a, _)| *a == api)
                .map_or(0, |(_, n)| n);
            if calls > there {
                target
                    .add_calls(&month, &[(api.as_str(), calls - there)])
                    .await?;
            }
        }
        Record::LinkKey(LinkKey(key)) => {
            if target.init_link_key(&key).await? != key {
                report.link_key_kept = true;
            }
        }
        Record::Mark { id, done, at } => {
            if expired(at) {
                report.expired_marks += 1;
                return Ok(false);
            }
            match target.claim_message(&id, at).await? {
                Claim::New if !done => target.make_claim_durable(&id).await?,
                // A done mark; or ours, left in flight by an interrupted copy.
                Claim::New | Claim::InFlight if done => target.finish_message(&id, at).await?,
                _ => {}
            }
        }
        Record::Signature { timestamp, at, ids } => {
            if expired(at) {
                report.expired_signatures += 1;
                return Ok(false);
            }
            for id in &ids {
                target.use_signature(timestamp, id, at, ids.len()).await?;
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        BillingMonth, CachedRoster, EventTrust, FollowUpState, IdempotencyKey, Member,
        ProcessQueryKey, ReadRecord, ReadSource, Reminder, ReminderVia, RosterSource,
    };
    use crate::store::conformance::{follow_up, gid, mid, notice, uid};
    use crate::store::memory::MemoryStore;
    use crate::store::SignatureUse;

    const NOW: EpochMillis = 1_700_000_000_000;
    const HOUR: EpochMillis = 3_600_000;

    fn options() -> CopyOptions {
        CopyOptions {
            now: NOW,
            mark_retention: Duration::from_secs(48 * 3600),
        }
    }

    fn pqk(s: &str) -> ProcessQueryKey {
        ProcessQueryKey::parse(s).unwrap()
    }

    fn idem(s: &str) -> IdempotencyKey {
        IdempotencyKey::parse(s).unwrap()
    }

    fn month() -> BillingMonth {
        BillingMonth::new(2023, 11).unwrap()
    }

    fn reminder(at: EpochMillis, count: usize) -> Reminder {
        Reminder {
            by: Some(uid("alice")),
            at,
            count,
            via: ReminderVia::Dm,
        }
    }

    fn roster() -> CachedRoster {
        CachedRoster {
            source: RosterSource::InnerGroup,
            members: vec![Member {
                user_id: uid("bob"),
                name: Some("Bob".into()),
            }],
            fetched_at: NOW - 10,
        }
    }

    fn reads() -> Vec<ReadRecord> {
        vec![
            ReadRecord {
                user_id: uid("bob"),
                at: NOW - 50,
                source: ReadSource::Event,
            },
            ReadRecord {
                user_id: uid("carol"),
                at: NOW - 40,
                source: ReadSource::Query,
            },
        ]
    }

    fn trust() -> EventTrust {
        EventTrust {
            verified: true,
            changed_at: Some(NOW - 5),
            ..EventTrust::default()
        }
    }

    /// One or more records of every kind, plus an expired mark and an
    /// expired signature record.
    async fn populate(s: &dyn Store) {
        let k1 = notice("k1", "cid1", Some("alice"), NOW - HOUR);
        let k2 = notice("k2", "cid1", None, NOW - 2 * HOUR);
        s.record_notice(&k1).await.unwrap();
        s.record_notice(&k2).await.unwrap();
        assert_eq!(
            s.begin_send(&idem("sent"), "fp1", NOW - HOUR)
                .await
                .unwrap(),
            None
        );
        s.complete_send(&idem("sent"), &k1).await.unwrap();
        assert_eq!(
            s.begin_send(&idem("pending"), "fp2", NOW - 5)
                .await
                .unwrap(),
            None
        );
        s.cache_names(&[(uid("bob"), "Bob".into())], NOW - 100)
            .await
            .unwrap();
        s.cache_callback_name(&uid("dave"), "nick-dave", NOW - 90)
            .await
            .unwrap();
        s.remember_members(&gid("cid1"), &[uid("bob"), uid("carol")], NOW - 80)
            .await
            .unwrap();
        s.remember_group_title(&gid("cid1"), "Team 一", NOW - 70)
            .await
            .unwrap();
        s.cache_roster(&gid("cid1"), &roster()).await.unwrap();
        // Two equal reminders: both must arrive, once each.
        for r in [
            reminder(NOW - 60, 2),
            reminder(NOW - 30, 1),
            reminder(NOW - 30, 1),
        ] {
            s.record_reminder(&k1.key, &r).await.unwrap();
        }
        s.mark_recalled(&k2.key, NOW - 20).await.unwrap();
        s.record_reads(&k1.key, &reads()).await.unwrap();
        s.set_reconciled_at(&k1.key, NOW - 15).await.unwrap();
        s.set_event_trust(&trust()).await.unwrap();
        let mut fired = follow_up("k1", "fu-fired", NOW - HOUR / 2);
        fired.state = FollowUpState::Fired;
        fired.note = Some("late".into());
        s.add_follow_ups(&[follow_up("k1", "fu-due", NOW + HOUR), fired])
            .await
            .unwrap();
        s.add_calls(&month(), &[("query", 40), ("send", 2)])
            .await
            .unwrap();
        s.init_link_key(b"0123456789abcdef0123456789abcdef")
            .await
            .unwrap();
        // Marks: done, in flight, and one past the retention.
        for (id, at, done) in [
            ("m-done", NOW - HOUR, true),
            ("m-flight", NOW - HOUR, false),
            ("m-old", NOW - 49 * HOUR, true),
        ] {
            assert_eq!(s.claim_message(&mid(id), at).await.unwrap(), Claim::New);
            if done {
                s.finish_message(&mid(id), at).await.unwrap();
            } else {
                s.make_claim_durable(&mid(id)).await.unwrap();
            }
        }
        for id in ["s1", "s2"] {
            s.use_signature(NOW - 1_000, &mid(id), NOW - 1_000, 3)
                .await
                .unwrap();
        }
        s.use_signature(NOW - 49 * HOUR, &mid("s-old"), NOW - 49 * HOUR, 3)
            .await
            .unwrap();
        s.flush().await.unwrap();
    }

    /// The target holds exactly what [`populate`] wrote (nothing twice),
    /// without the expired mark and signature record.
    async fn check(t: &dyn Store) {
        let (k1, k2) = (pqk("k1"), pqk("k2"));
        assert_eq!(
            t.notice(&k1).await.unwrap(),
            Some(notice("k1", "cid1", Some("alice"), NOW - HOUR))
        );
        let group: Vec<String> = t
            .notices_in_group(&gid("cid1"), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.key.as_str().to_owned())
            .collect();
        assert_eq!(group, ["k1", "k2"], "the group index");
        let by_alice = t.last_notice_by(&gid("cid1"), &uid("alice")).await.unwrap();
        assert_eq!(
            by_alice.map(|n| n.key),
            Some(k1.clone()),
            "the author index"
        );
        let sent = t
            .begin_send(&idem("sent"), "fp1", NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((sent.at, sent.notice), (NOW - HOUR, Some(k1.clone())));
        let pending = t
            .begin_send(&idem("pending"), "fp2", NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((pending.at, pending.notice), (NOW - 5, None));
        assert_eq!(
            t.cached_names(&[uid("bob")], NOW - 100).await.unwrap(),
            [(uid("bob"), "Bob".to_owned())]
        );
        assert!(
            t.cached_names(&[uid("bob")], NOW - 99)
                .await
                .unwrap()
                .is_empty(),
            "fetch time kept"
        );
        assert_eq!(
            t.callback_names(&[uid("dave")], NOW - 90).await.unwrap(),
            [(uid("dave"), "nick-dave".to_owned())]
        );
        assert_eq!(
            t.learned_members(&gid("cid1")).await.unwrap(),
            [uid("bob"), uid("carol")]
        );
        assert_eq!(
            t.group_title(&gid("cid1")).await.unwrap().as_deref(),
            Some("Team 一")
        );
        assert_eq!(t.cached_roster(&gid("cid1")).await.unwrap(), Some(roster()));
        assert_eq!(
            t.reminders(&k1).await.unwrap(),
            [
                reminder(NOW - 60, 2),
                reminder(NOW - 30, 1),
                reminder(NOW - 30, 1)
            ]
        );
        assert_eq!(t.recalled_at(&k2).await.unwrap(), Some(NOW - 20));
        assert_eq!(t.recalled_at(&k1).await.unwrap(), None);
        assert_eq!(t.reads(&k1).await.unwrap(), reads());
        assert_eq!(t.reconciled_at(&k1).await.unwrap(), Some(NOW - 15));
        assert_eq!(t.event_trust().await.unwrap(), trust());
        let mut fired = follow_up("k1", "fu-fired", NOW - HOUR / 2);
        fired.state = FollowUpState::Fired;
        fired.note = Some("late".into());
        let due = follow_up("k1", "fu-due", NOW + HOUR);
        assert_eq!(t.follow_ups(&k1).await.unwrap(), [fired, due.clone()]);
        assert_eq!(
            t.due_follow_ups(FollowUpState::Pending, NOW + HOUR, 10)
                .await
                .unwrap(),
            [due],
            "the scheduler's work list"
        );
        assert_eq!(
            t.calls_in_month(&month()).await.unwrap(),
            [("query".to_owned(), 40), ("send".to_owned(), 2)]
        );
        assert_eq!(
            t.link_key().await.unwrap().as_deref(),
            Some(&b"0123456789abcdef0123456789abcdef"[..])
        );
        assert_eq!(
            t.claim_message(&mid("m-done"), NOW).await.unwrap(),
            Claim::Done
        );
        assert_eq!(
            t.claim_message(&mid("m-flight"), NOW).await.unwrap(),
            Claim::InFlight
        );
        // The signature already carries its two messages (its allowance).
        assert_eq!(
            t.use_signature(NOW - 1_000, &mid("s3"), NOW, 2)
                .await
                .unwrap(),
            SignatureUse::Exhausted
        );
        // Expired ones were not copied.
        assert_eq!(
            t.claim_message(&mid("m-old"), NOW).await.unwrap(),
            Claim::New
        );
        assert_eq!(
            t.use_signature(NOW - 49 * HOUR, &mid("s-other"), NOW, 1)
                .await
                .unwrap(),
            SignatureUse::Allowed
        );
    }

    fn expected_counts() -> Vec<(&'static str, u64)> {
        let n = [2, 2, 1, 1, 2, 1, 1, 3, 1, 2, 1, 1, 2, 2, 1, 2, 1];
        KINDS.iter().copied().zip(n).collect()
    }

    async fn sled_source() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&dir.path().join("data")).unwrap();
        populate(&s).await;
        (dir, s)
    }

    #[tokio::test]
    async fn every_kind_round_trips_sled_to_memory_and_a_second_run_changes_nothing() {
        let (_dir, source) = sled_source().await;
        let target: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let first = copy(&source, target.clone(), options()).await.unwrap();
        assert_eq!(first.copied, expected_counts());
        assert_eq!((first.expired_marks, first.expired_signatures), (1, 1));
        assert_eq!((first.sends_left_pending, first.link_key_kept), (0, false));
        let counts = target.entry_counts().await.unwrap();

        let second = copy(&source, target.clone(), options()).await.unwrap();
        assert_eq!(second, first, "same counts");
        assert_eq!(
            target.entry_counts().await.unwrap(),
            counts,
            "nothing duplicated"
        );
        check(target.as_ref()).await;
    }

    #[tokio::test]
    async fn an_interrupted_copy_is_finished_by_running_it_again() {
        let (_dir, source) = sled_source().await;
        let target: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // What a copy stopped half-way leaves: part of the records, a send
        // reserved but not completed, a done mark claimed but not finished,
        // one of three reminders, part of the ledger.
        let mut half = CopyReport::default();
        let mut n = 0;
        for record in source.export() {
            let record = record.unwrap();
            n += 1;
            let partial = matches!(record, Record::Reminders { .. } | Record::Calls { .. });
            if n % 2 == 0 && !partial {
                write(target.as_ref(), record, &options(), &mut half)
                    .await
                    .unwrap();
            }
        }
        target
            .begin_send(&idem("sent"), "fp1", NOW - HOUR)
            .await
            .unwrap();
        target
            .claim_message(&mid("m-done"), NOW - HOUR)
            .await
            .unwrap();
        target
            .record_reminder(&pqk("k1"), &reminder(NOW - 30, 1))
            .await
            .unwrap();
        target.add_calls(&month(), &[("query", 10)]).await.unwrap();

        let report = copy(&source, target.clone(), options()).await.unwrap();
        assert_eq!(report.copied, expected_counts());
        check(target.as_ref()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_to_a_real_postgresql_database_then_again_with_the_same_counts() {
        let Some(pg) = crate::store::pg_test_cluster::fresh_database().await else {
            return;
        };
        let url = pg.url.expose().to_owned();
        let (dir, source) = sled_source().await;
        drop(source); // the copy opens it itself, as the CLI does
        let from = dir.path().join("data");
        // sled releases its lock from a background thread: wait for it.
        let mut first = None;
        for _ in 0..50 {
            match run(&from, &url, options()).await {
                Err(CopyError::Source(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                other => {
                    first = Some(other.unwrap());
                    break;
                }
            }
        }
        let first = first.expect("copied");
        assert_eq!(first.copied, expected_counts());
        assert_eq!((first.expired_marks, first.expired_signatures), (1, 1));
        let target = super::super::open(&StoreConfig::Postgres(pg.clone()))
            .await
            .unwrap();
        let counts = target.entry_counts().await.unwrap();

        let second = run(&from, &url, options()).await.unwrap();
        assert_eq!(second, first, "same counts");
        assert_eq!(
            target.entry_counts().await.unwrap(),
            counts,
            "nothing duplicated"
        );
        check(target.as_ref()).await;
    }

    #[tokio::test]
    async fn sled_to_a_new_folder_through_run_then_again() {
        let (dir, source) = sled_source().await;
        drop(source); // the copy opens it itself, as the CLI does
        let from = dir.path().join("data");
        let to = dir.path().join("copy");
        // sled releases its lock from a background thread: wait for it.
        let mut report = None;
        for _ in 0..50 {
            match run(&from, to.to_str().unwrap(), options()).await {
                Err(CopyError::Source(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                other => {
                    report = Some(other.unwrap());
                    break;
                }
            }
        }
        assert_eq!(report.expect("copied").copied, expected_counts());
        let again = run(&from, to.to_str().unwrap(), options()).await.unwrap();
        assert_eq!(again.copied, expected_counts());
        let target = SledStore::open(&to).unwrap();
        check(&target).await;
        assert!(is_sled_folder(&to));
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_sled_folder_the_same_folder_and_unknown_urls() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        for from in [empty.clone(), dir.path().join("missing")] {
            let err = run(&from, "elsewhere", options()).await.unwrap_err();
            assert!(matches!(err, CopyError::NotSledFolder { .. }), "{err:?}");
            assert!(err.is_usage());
            assert!(
                err.to_string().contains("not a readbot data folder"),
                "{err}"
            );
        }
        assert!(!dir.path().join("missing").exists(), "nothing created");

        let data = dir.path().join("data");
        drop(SledStore::open(&data).unwrap());
        for to in [
            data.clone(),
            data.join("."),
            dir.path().join("empty/../data"),
        ] {
            let err = run(&data, to.to_str().unwrap(), options())
                .await
                .unwrap_err();
            assert!(
                matches!(err, CopyError::SameStore { .. }),
                "{to:?}: {err:?}"
            );
        }
        let err = run(&data, "mysql://readbot:hunter2@db:3306/readbot", options())
            .await
            .unwrap_err();
        assert!(
            matches!(err, CopyError::UnsupportedTarget { .. }),
            "{err:?}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(
            display_target("postgres://readbot:hunter2@db:5432/readbot"),
            "postgres://readbot:***@db:5432/readbot"
        );
        assert_eq!(display_target("/var/lib/readbot"), "/var/lib/readbot");
    }

    #[test]
    fn a_link_key_never_shows_in_debug() {
        let r = Record::LinkKey(LinkKey(b"secret-bytes".to_vec()));
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("secret") && shown.contains("redacted"),
            "{shown}"
        );
    }
}
