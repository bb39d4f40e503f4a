//! Gathering the read state of one notice: read-query pages, the roster and
//! names, combined into [`Receipts`].
//!
//! The query pages and the roster are fetched concurrently; names come from
//! the roster answer, then the name cache, then DingTalk (only for unknown ids).
//!
//! [`ReceiptsCache`] sits in front of [`collect`]: concurrent asks about the
//! same notice share one pass of DingTalk calls (single-flight), and a
//! finished pass is reused for a short, configurable time
//! (`READBOT_RECEIPTS_CACHE_SECS`), so twenty people asking at once cost what
//! one does.

use super::BotError;
use crate::config::BotConfig;
use crate::dingtalk::{DingTalkApi, DingTalkError, ReadQuery, ReadState, RosterQuery};
use crate::domain::{
    now_millis, Member, Notice, ProcessQueryKey, Receipts, RobotCode, RosterSource, SendStatus,
    UserId,
};
use crate::store::{Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Most finished results kept at once (each can hold a 10,000-member roster).
const MAX_CACHED: usize = 64;

/// What waiting asks receive from the pass they joined. Errors are shared
/// with them but never cached.
type Shared = Result<Arc<Receipts>, SharedError>;

#[derive(Debug, Clone)]
enum SharedError {
    DingTalk(DingTalkError),
    Other(String),
}

impl SharedError {
    fn of(e: &BotError) -> Self {
        match e {
            BotError::DingTalk(d) => Self::DingTalk(d.clone()),
            // Keep the store's cause in the text the waiting asks receive.
            BotError::Store(s) => Self::Other(s.with_causes()),
            other => Self::Other(other.to_string()),
        }
    }

    fn into_bot(self) -> BotError {
        match self {
            Self::DingTalk(d) => BotError::DingTalk(d),
            // `collect` fails only with DingTalk or store errors.
            Self::Other(m) => BotError::Store(StoreError::message(m)),
        }
    }
}

enum Slot {
    /// A pass is running; its result will be sent here.
    Pending {
        id: u64,
        rx: watch::Receiver<Option<Shared>>,
    },
    /// A finished pass.
    Ready {
        at: Instant,
        receipts: Arc<Receipts>,
    },
}

/// Single-flight plus a short result cache for [`collect`], keyed by notice.
pub struct ReceiptsCache {
    ttl: Duration,
    slots: Mutex<HashMap<ProcessQueryKey, Slot>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for ReceiptsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptsCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

enum Role {
    Hit(Arc<Receipts>),
    Follow(watch::Receiver<Option<Shared>>),
    Lead(u64, watch::Sender<Option<Shared>>),
}

/// The leader's claim on a pending slot. Dropped without [`Self::publish`]
/// (the leader was cancelled, e.g. by the summary timeout), it removes the
/// slot *before* its sender goes, so waiting asks retry instead of spinning.
struct Lead<'a> {
    cache: &'a ReceiptsCache,
    key: &'a ProcessQueryKey,
    id: u64,
    tx: Option<watch::Sender<Option<Shared>>>,
}

impl Lead<'_> {
    fn publish(mut self, result: &Result<Arc<Receipts>, BotError>) {
        {
            let mut slots = self.cache.lock();
            let now = Instant::now();
            match result {
                Ok(r) if !self.cache.ttl.is_zero() => {
                    self.cache.prune(&mut slots, now);
                    slots.insert(
                        self.key.clone(),
                        Slot::Ready {
                            at: now,
                            receipts: r.clone(),
                        },
                    );
                }
                _ => self.cache.remove_pending(&mut slots, self.key, self.id),
            }
        }
        let shared = match result {
            Ok(r) => Ok(r.clone()),
            Err(e) => Err(SharedError::of(e)),
        };
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(shared));
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let mut slots = self.cache.lock();
            self.cache.remove_pending(&mut slots, self.key, self.id);
        }
    }
}

impl ReceiptsCache {
    /// A cache keeping finished results for `ttl` (zero: single-flight only).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slots: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ProcessQueryKey, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove_pending(
        &self,
        slots: &mut HashMap<ProcessQueryKey, Slot>,
        key: &ProcessQueryKey,
        id: u64,
    ) {
        if matches!(slots.get(key), Some(Slot::Pending { id: p, .. }) if *p == id) {
            slots.remove(key);
        }
    }

    /// Drops expired results, then the oldest ones beyond [`MAX_CACHED`].
    fn prune(&self, slots: &mut HashMap<ProcessQueryKey, Slot>, now: Instant) {
        slots.retain(|_, s| match s {
            Slot::Ready { at, .. } => now.duration_since(*at) < self.ttl,
            Slot::Pending { .. } => true,
        });
        while slots.len() >= MAX_CACHED {
            let oldest = slots
                .iter()
                .filter_map(|(k, s)| match s {
                    Slot::Ready { at, .. } => Some((*at, k)),
                    Slot::Pending { .. } => None,
                })
                .min_by_key(|(at, _)| *at)
                .map(|(_, k)| k.clone());
            match oldest {
                Some(k) => {
                    slots.remove(&k);
                }
                None => break,
            }
        }
    }

    fn role(&self, key: &ProcessQueryKey) -> Role {
        let mut slots = self.lock();
        match slots.get(key) {
            Some(Slot::Ready { at, receipts }) if at.elapsed() < self.ttl => {
                return Role::Hit(receipts.clone())
            }
            Some(Slot::Pending { rx, .. }) => return Role::Follow(rx.clone()),
            _ => {}
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        slots.insert(key.clone(), Slot::Pending { id, rx });
        Role::Lead(id, tx)
    }

    /// The receipts of `key`: a fresh cached result, the result of a pass
    /// already running for it, or else the result of `collect` (run here,
    /// and shared with every ask that arrives while it runs).
    pub async fn get_or_collect<F, Fut>(
        &self,
        key: &ProcessQueryKey,
        collect: F,
    ) -> Result<Arc<Receipts>, BotError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Receipts, BotError>>,
    {
        let (id, tx) = loop {
            match self.role(key) {
                Role::Hit(r) => return Ok(r),
                Role::Lead(id, tx) => break (id, tx),
                Role::Follow(mut rx) => {
                    if let Ok(v) = rx.wait_for(Option::is_some).await {
                        if let Some(shared) = v.as_ref() {
                            return shared.clone().map_err(SharedError::into_bot);
                        }
                    }
                    // The pass was abandoned (its ask was cancelled): try again.
                }
            }
        };
        let lead = Lead {
            cache: self,
            key,
            id,
            tx: Some(tx),
        };
        let result = collect().await.map(Arc::new);
        lead.publish(&result);
        result
    }
}

/// What receipts need besides the notice.
pub struct ReceiptsDeps<'a> {
    /// DingTalk.
    pub api: &'a Arc<dyn DingTalkApi>,
    /// The store.
    pub store: &'a Arc<dyn Store>,
    /// Bot settings.
    pub cfg: &'a BotConfig,
    /// `coolAppCode` for scene groups.
    pub cool_app_code: Option<&'a str>,
    /// The robot itself is never counted as a member.
    pub robot_code: &'a RobotCode,
    /// Roster sources that refused a group recently.
    pub refused: &'a RefusedSources,
    /// What the last bookkeeping of each group wrote.
    pub bookkept: &'a Arc<Bookkept>,
    /// The month's call budget is nearly spent ([`super::quota`]): no
    /// member-list call, the learned roster answers.
    pub saving_calls: bool,
    /// The reads come from trusted events: the group's cached member list
    /// may answer instead of a member-list call ([`CachedRosterUse`]).
    pub cached_roster: Option<CachedRosterUse>,
}

/// When a cached member list may answer a summary: it is younger than
/// `max_age` and was fetched while event intake was up (at or after
/// `intake_up_since`), so no member event or read could have been missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedRosterUse {
    /// `bot.roster_cache_secs` (non-zero).
    pub max_age: Duration,
    /// Since when event intake has been continuously up.
    pub intake_up_since: crate::domain::EpochMillis,
}

impl CachedRosterUse {
    /// Whether a list fetched at `fetched_at` may answer at `now`.
    pub fn allows(
        &self,
        fetched_at: crate::domain::EpochMillis,
        now: crate::domain::EpochMillis,
    ) -> bool {
        let max = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        fetched_at >= self.intake_up_since
            && fetched_at <= now
            && now.saturating_sub(fetched_at) < max
    }
}

/// How long a member-list source that refused a group is skipped for it.
pub const REFUSED_SOURCE_TTL: Duration = Duration::from_secs(10 * 60);
/// Most refusals remembered at once.
const MAX_REFUSED: usize = 4096;

type SourceKey = (
    RosterSource,
    crate::domain::OpenConversationId,
    Option<UserId>,
);

/// Member-list sources that refused a group (or answered it with nobody),
/// remembered for [`REFUSED_SOURCE_TTL`]: in a plain group neither member
/// API works, and asking both again on every summary cost two calls each
/// time. The inner-group source is remembered per operator (the asker), as
/// its refusal can be about the operator rather than the group.
#[derive(Debug)]
pub struct RefusedSources {
    ttl: Duration,
    refused: Mutex<HashMap<SourceKey, Instant>>,
}

impl Default for RefusedSources {
    fn default() -> Self {
        Self::new(REFUSED_SOURCE_TTL)
    }
}

impl RefusedSources {
    /// Remembers refusals for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            refused: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SourceKey, Instant>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_refused(&self, key: &SourceKey) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn refuse(&self, key: SourceKey) {
        let mut m = self.lock();
        if m.len() >= MAX_REFUSED {
            let ttl = self.ttl;
            m.retain(|_, at| at.elapsed() < ttl);
            if m.len() >= MAX_REFUSED {
                m.clear();
            }
        }
        m.insert(key, Instant::now());
    }
}

/// A group's member list as one roster source answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterAnswer {
    /// Members, with names where the source carries them (no duplicates).
    pub members: Vec<Member>,
    /// The source that answered.
    pub source: RosterSource,
    /// Whether the source claims to have returned the whole group.
    pub complete: bool,
    /// When the list was fetched, if it came from the cache.
    pub cached_at: Option<crate::domain::EpochMillis>,
}

/// Who should have read a notice and who did, ready to be counted: the
/// robot left out of both, and a learned roster completed with the readers
/// and the author (evidently in the group). Built from DingTalk's answers
/// without any I/O; [`tally`] turns it into [`Receipts`] once the names are
/// known.
#[derive(Debug, Clone, PartialEq)]
pub struct Roll {
    readers: Vec<UserId>,
    members: Vec<Member>,
    source: RosterSource,
    complete: bool,
    cached_at: Option<crate::domain::EpochMillis>,
    send_status: SendStatus,
    pages: usize,
    truncated: bool,
}

impl Roll {
    /// Combines the read state and the roster of a notice by `author`,
    /// sent by the robot `robot`.
    pub fn new(
        state: ReadState,
        roster: RosterAnswer,
        robot: &RobotCode,
        author: Option<&UserId>,
    ) -> Self {
        let robot = robot.as_str();
        let readers: Vec<UserId> = state
            .readers
            .into_iter()
            .filter(|u| u.as_str() != robot)
            .collect();
        let mut members: Vec<Member> = roster
            .members
            .into_iter()
            .filter(|m| m.user_id.as_str() != robot)
            .collect();
        if roster.source == RosterSource::Learned {
            // Whoever read it is evidently in the group, and so is the author.
            let mut have: HashSet<UserId> = members.iter().map(|m| m.user_id.clone()).collect();
            // (Not the robot, even when a notice names it as its author.)
            let author = author.filter(|a| a.as_str() != robot);
            for u in readers.iter().chain(author) {
                if have.insert(u.clone()) {
                    members.push(Member {
                        user_id: u.clone(),
                        name: None,
                    });
                }
            }
            members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        }
        Self {
            readers,
            members,
            source: roster.source,
            complete: roster.complete,
            cached_at: roster.cached_at,
            send_status: state.send_status,
            pages: state.pages,
            truncated: state.truncated,
        }
    }

    /// Everyone seen in the group, for the learned roster: the readers and,
    /// unless the roster is the learned one itself, its members (once each:
    /// readers are mostly members too).
    fn seen(&self) -> Vec<UserId> {
        let mut seen: Vec<UserId> = self.readers.clone();
        if self.source != RosterSource::Learned {
            let reader_ids: HashSet<&UserId> = self.readers.iter().collect();
            seen.extend(
                self.members
                    .iter()
                    .filter(|m| !reader_ids.contains(&m.user_id))
                    .map(|m| m.user_id.clone()),
            );
        }
        seen
    }

    /// The names the roster carried, in roster order (not a map's: the
    /// bookkeeping memo fingerprints this list).
    fn roster_names(&self) -> Vec<(UserId, String)> {
        self.members
            .iter()
            .filter_map(|m| m.name.clone().map(|n| (m.user_id.clone(), n)))
            .collect()
    }

    /// The ids whose names a summary of `notice` shows and `known` lacks,
    /// sorted, once each.
    fn wanted_names(&self, notice: &Notice, known: &HashMap<UserId, String>) -> Vec<UserId> {
        let mut wanted: Vec<UserId> = self
            .members
            .iter()
            .map(|m| m.user_id.clone())
            .chain(self.readers.iter().cloned())
            .chain(
                notice
                    .author
                    .iter()
                    .filter(|_| notice.author_name.is_none())
                    .cloned(),
            )
            .filter(|u| !known.contains_key(u))
            .collect();
        wanted.sort();
        wanted.dedup();
        wanted
    }
}

/// Counts a [`Roll`] into the receipts of `notice`, naming people from
/// `names` (ids without a name stay unnamed):
/// - `read`: every reader, in DingTalk's order (members or not);
/// - `unread`: the members who did not read, in roster order;
/// - with a roster, `read_count` counts the readers who are members and
///   `member_count` the members; without one (no member known at all),
///   `read_count` counts every reader, `member_count` is 0 and the roster is
///   never called complete;
/// - the notice's author name is filled from `names` when it had none.
pub fn tally(roll: Roll, notice: &Notice, names: &HashMap<UserId, String>) -> Receipts {
    let person = |u: &UserId| Member {
        user_id: u.clone(),
        name: names.get(u).cloned(),
    };
    let reader_set: HashSet<&UserId> = roll.readers.iter().collect();
    let member_set: HashSet<&UserId> = roll.members.iter().map(|m| &m.user_id).collect();
    let has_roster = !roll.members.is_empty();
    let read: Vec<Member> = roll.readers.iter().map(person).collect();
    let unread: Vec<Member> = roll
        .members
        .iter()
        .filter(|m| !reader_set.contains(&m.user_id))
        .map(|m| person(&m.user_id))
        .collect();
    let member_count = if has_roster { roll.members.len() } else { 0 };
    let read_count = if has_roster {
        roll.readers
            .iter()
            .filter(|u| member_set.contains(u))
            .count()
    } else {
        roll.readers.len()
    };
    let mut notice = notice.clone();
    if notice.author_name.is_none() {
        notice.author_name = notice.author.as_ref().and_then(|a| names.get(a).cloned());
    }
    Receipts {
        notice,
        send_status: roll.send_status,
        read,
        unread,
        read_count,
        member_count,
        roster_source: roll.source,
        roster_complete: roll.complete && has_roster,
        pages: roll.pages,
        truncated: roll.truncated,
        reads_from: crate::domain::ReadsFrom::Query,
        read_times: Vec::new(),
        roster_cached_at: roll.cached_at,
    }
}

/// Collects the receipts of `notice`; `asker` (when known) is used as the
/// operator for member-list APIs that need one.
pub async fn collect(
    deps: &ReceiptsDeps<'_>,
    notice: &Notice,
    asker: Option<&UserId>,
) -> Result<Receipts, BotError> {
    let query = ReadQuery {
        key: notice.key.clone(),
        group: notice.group.clone(),
        robot_code: notice.robot_code.clone(),
        sent_at: notice.sent_at,
    };
    let reads = async { Ok(deps.api.read_state(&query).await?) };
    collect_with(deps, notice, asker, reads).await
}

/// [`collect`] with the read state coming from `reads` (a query pass, or
/// stored read events), awaited alongside the roster.
pub async fn collect_with(
    deps: &ReceiptsDeps<'_>,
    notice: &Notice,
    asker: Option<&UserId>,
    reads: impl Future<Output = Result<ReadState, BotError>>,
) -> Result<Receipts, BotError> {
    let (state, roster) = tokio::join!(reads, roster(deps, notice, asker));
    let roll = Roll::new(state?, roster?, deps.robot_code, notice.author.as_ref());

    let roster_names = roll.roster_names();
    let mut known: HashMap<UserId, String> = roster_names.iter().cloned().collect();
    let ttl_ms = i64::try_from(deps.cfg.name_ttl.as_millis()).unwrap_or(i64::MAX);
    spawn_bookkeeping(
        deps.store.clone(),
        deps.bookkept.clone(),
        notice.group.clone(),
        roll.seen(),
        roster_names,
        ttl_ms,
    );

    let wanted = roll.wanted_names(notice, &known);
    resolve_names(deps.api, deps.store, deps.cfg.name_ttl, wanted, &mut known).await?;
    Ok(tally(roll, notice, &known))
}

/// Adds the names of `wanted` to `known`: the name cache first (entries
/// younger than `ttl`), then DingTalk's user look-up for the rest (bounded
/// by the client's name concurrency), whose answers are cached. A failed
/// look-up is logged and leaves those ids unnamed (names are a nicety); a
/// failing store is an error.
pub async fn resolve_names(
    api: &Arc<dyn DingTalkApi>,
    store: &Arc<dyn Store>,
    ttl: Duration,
    wanted: Vec<UserId>,
    known: &mut HashMap<UserId, String>,
) -> Result<(), BotError> {
    if wanted.is_empty() {
        return Ok(());
    }
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let cached = store
        .cached_names(&wanted, now_millis().saturating_sub(ttl_ms))
        .await?;
    known.extend(cached);
    let missing: Vec<UserId> = wanted
        .into_iter()
        .filter(|u| !known.contains_key(u))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    match api.user_names(&missing).await {
        Ok(found) => {
            if !found.is_empty() {
                store.cache_names(&found, now_millis()).await?;
            }
            known.extend(found);
        }
        // Names are a nicety: show ids rather than failing the reply.
        Err(e) => tracing::warn!(error = %e, "name look-up failed; showing user ids"),
    }
    // Last resort: names learned from callbacks (untrusted, neutralised when
    // rendered) for ids DingTalk named nobody for.
    let unnamed: Vec<UserId> = missing
        .into_iter()
        .filter(|u| !known.contains_key(u))
        .collect();
    if !unnamed.is_empty() {
        match store
            .callback_names(&unnamed, now_millis().saturating_sub(ttl_ms))
            .await
        {
            Ok(hints) => known.extend(hints),
            Err(e) => tracing::warn!(error = %e.with_causes(), "name cache unavailable"),
        }
    }
    Ok(())
}

/// What a summary learns that its own reply does not need: who was seen in
/// the group (learned roster) and the names that came with the roster (name
/// cache, written only where it lacks them, holds another name, or is past
/// half its lifetime). Done in a task of its own, off the reply's critical
/// path: for 10,000 members it is 20,000 store look-ups, and a failure here
/// must not cost the summary.
fn spawn_bookkeeping(
    store: Arc<dyn Store>,
    bookkept: Arc<Bookkept>,
    group: crate::domain::OpenConversationId,
    seen: Vec<UserId>,
    roster_names: Vec<(UserId, String)>,
    ttl_ms: i64,
) {
    if seen.is_empty() && roster_names.is_empty() {
        return;
    }
    let work = async move {
        let fingerprint = Bookkept::fingerprint(&seen, &roster_names);
        // A quarter of the name TTL at most: the name cache rewrites
        // entries past half their lifetime, which a skip must not delay.
        let window = Bookkept::WINDOW.min(Duration::from_millis(
            u64::try_from(ttl_ms / 4).unwrap_or(0),
        ));
        if bookkept.is_recent(&group, fingerprint, window) {
            return;
        }
        let mut ok = true;
        if !seen.is_empty() {
            if let Err(e) = store.remember_members(&group, &seen, now_millis()).await {
                tracing::warn!(error = %e.with_causes(), "could not update the learned roster");
                ok = false;
            }
        }
        if roster_names.is_empty() {
            if ok {
                bookkept.record(group, fingerprint);
            }
            return;
        }
        let ids: Vec<UserId> = roster_names.iter().map(|(u, _)| u.clone()).collect();
        let cached: HashMap<UserId, String> = match store
            .cached_names(&ids, now_millis().saturating_sub(ttl_ms / 2))
            .await
        {
            Ok(c) => c.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e.with_causes(), "name cache unavailable");
                return;
            }
        };
        let changed: Vec<(UserId, String)> = roster_names
            .into_iter()
            .filter(|(u, n)| cached.get(u) != Some(n))
            .collect();
        if !changed.is_empty() {
            if let Err(e) = store.cache_names(&changed, now_millis()).await {
                tracing::warn!(error = %e.with_causes(), "could not cache names");
                ok = false;
            }
        }
        if ok {
            bookkept.record(group, fingerprint);
        }
    };
    tokio::spawn(tracing::Instrument::in_current_span(work));
}

/// What the last successful bookkeeping of each group wrote (a fingerprint
/// of the members seen and the roster's names) and when. A summary of the
/// same group with the same fingerprint within [`Bookkept::WINDOW`] skips
/// its bookkeeping: the store already holds all of it. For 10,000 members
/// that is 20,000 store look-ups saved, which the profile of a warm summary
/// showed as a third of its CPU time.
#[derive(Debug, Default)]
pub struct Bookkept {
    groups: Mutex<HashMap<crate::domain::OpenConversationId, (Instant, u64)>>,
}

impl Bookkept {
    /// How long a bookkeeping result is trusted (well inside the learned
    /// roster's one-hour refresh).
    pub const WINDOW: Duration = Duration::from_secs(600);
    /// Groups remembered at most; beyond, the memo starts over.
    const MAX_GROUPS: usize = 4096;

    fn fingerprint(seen: &[UserId], names: &[(UserId, String)]) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash, Hasher};
        let mut h = BuildHasherDefault::<DefaultHasher>::default().build_hasher();
        seen.hash(&mut h);
        names.hash(&mut h);
        h.finish()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<crate::domain::OpenConversationId, (Instant, u64)>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_recent(
        &self,
        group: &crate::domain::OpenConversationId,
        fingerprint: u64,
        window: Duration,
    ) -> bool {
        matches!(self.lock().get(group), Some((at, f)) if *f == fingerprint && at.elapsed() < window)
    }

    fn record(&self, group: crate::domain::OpenConversationId, fingerprint: u64) {
        let mut g = self.lock();
        if g.len() >= Self::MAX_GROUPS && !g.contains_key(&group) {
            g.clear();
        }
        g.insert(group, (Instant::now(), fingerprint));
    }
}

/// Tries the configured roster sources in order; the learned roster always answers.
async fn roster(
    deps: &ReceiptsDeps<'_>,
    notice: &Notice,
    asker: Option<&UserId>,
) -> Result<RosterAnswer, BotError> {
    if deps.saving_calls {
        return learned(deps, notice).await;
    }
    if let Some(rule) = deps.cached_roster {
        if let Some(answer) = cached(deps, notice, rule).await {
            return Ok(answer);
        }
    }
    for source in &deps.cfg.roster_sources {
        let query = match source {
            RosterSource::InnerGroup => {
                let Some(operator) = asker.or(notice.author.as_ref()) else {
                    continue;
                };
                RosterQuery::InnerGroup {
                    group: notice.group.clone(),
                    operator: operator.clone(),
                }
            }
            RosterSource::SceneGroup => RosterQuery::SceneGroup {
                group: notice.group.clone(),
                cool_app_code: deps.cool_app_code.map(str::to_owned),
            },
            RosterSource::Learned => return learned(deps, notice).await,
        };
        let key: SourceKey = match &query {
            RosterQuery::InnerGroup { group, operator } => {
                (*source, group.clone(), Some(operator.clone()))
            }
            RosterQuery::SceneGroup { group, .. } => (*source, group.clone(), None),
        };
        if deps.refused.is_refused(&key) {
            continue;
        }
        let asked_at = now_millis();
        match deps.api.roster(&query).await {
            Ok(r) if !r.members.is_empty() => {
                if r.complete && !deps.cfg.roster_cache.is_zero() {
                    keep(deps, notice, *source, &r.members, asked_at).await;
                }
                return Ok(RosterAnswer {
                    members: r.members,
                    source: *source,
                    complete: r.complete,
                    cached_at: None,
                });
            }
            Ok(_) => {
                tracing::info!(
                    source = source.as_str(),
                    "roster source returned no members"
                );
                deps.refused.refuse(key);
            }
            Err(e) => {
                tracing::info!(source = source.as_str(), error = %e, "roster source unavailable");
                if e.is_refusal() {
                    deps.refused.refuse(key);
                }
            }
        }
    }
    // Nothing configured answered: fall back to what readbot has seen.
    learned(deps, notice).await
}

/// The group's cached member list when `rule` allows it and its source is
/// still configured. A store failure is logged and fetches as usual.
async fn cached(
    deps: &ReceiptsDeps<'_>,
    notice: &Notice,
    rule: CachedRosterUse,
) -> Option<RosterAnswer> {
    let kept = match deps.store.cached_roster(&notice.group).await {
        Ok(kept) => kept?,
        Err(e) => {
            tracing::warn!(error = %e.with_causes(), "could not read the cached member list");
            return None;
        }
    };
    let usable = rule.allows(kept.fetched_at, now_millis())
        && deps.cfg.roster_sources.contains(&kept.source)
        && !kept.members.is_empty();
    usable.then_some(RosterAnswer {
        members: kept.members,
        source: kept.source,
        complete: true,
        cached_at: Some(kept.fetched_at),
    })
}

/// Keeps a member API's complete answer as the group's cached member list
/// (a failure is logged: the cache is a nicety).
/// Its time is when the call was made (`asked_at`), the conservative end.
async fn keep(
    deps: &ReceiptsDeps<'_>,
    notice: &Notice,
    source: RosterSource,
    members: &[Member],
    asked_at: crate::domain::EpochMillis,
) {
    let kept = crate::domain::CachedRoster {
        source,
        members: members.to_vec(),
        fetched_at: asked_at,
    };
    if let Err(e) = deps.store.cache_roster(&notice.group, &kept).await {
        tracing::warn!(error = %e.with_causes(), "could not cache the member list");
    }
}

/// Everyone readbot has seen in the group; never complete.
async fn learned(deps: &ReceiptsDeps<'_>, notice: &Notice) -> Result<RosterAnswer, BotError> {
    let users = deps.store.learned_members(&notice.group).await?;
    Ok(RosterAnswer {
        members: users
            .into_iter()
            .map(|user_id| Member {
                user_id,
                name: None,
            })
            .collect(),
        source: RosterSource::Learned,
        complete: false,
        cached_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OpenConversationId, SendStatus};
    use std::sync::atomic::AtomicUsize;

    fn key(s: &str) -> ProcessQueryKey {
        ProcessQueryKey::parse(s).unwrap()
    }

    fn receipts(k: &str, read_count: usize) -> Receipts {
        Receipts {
            notice: Notice {
                key: key(k),
                group: OpenConversationId::parse("cid1").unwrap(),
                robot_code: RobotCode::parse("robot").unwrap(),
                title: "t".into(),
                author: None,
                author_name: None,
                msg_key: "sampleMarkdown".into(),
                sent_at: 0,
            },
            send_status: SendStatus::Success,
            read: Vec::new(),
            unread: Vec::new(),
            read_count,
            member_count: 10,
            roster_source: RosterSource::InnerGroup,
            roster_complete: true,
            pages: 1,
            truncated: false,
            roster_cached_at: None,
            reads_from: crate::domain::ReadsFrom::Query,
            read_times: Vec::new(),
        }
    }

    /// A collector that counts its runs, takes `delay`, and answers with the run number.
    fn counting(
        runs: &Arc<AtomicUsize>,
        delay: Duration,
        k: &'static str,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<Receipts, BotError>> + Send>>
    {
        let runs = runs.clone();
        move || {
            Box::pin(async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                Ok(receipts(k, n))
            })
        }
    }

    #[test]
    fn a_cached_list_is_allowed_only_when_young_and_fetched_while_intake_was_up() {
        let rule = CachedRosterUse {
            max_age: Duration::from_secs(60),
            intake_up_since: 1_000,
        };
        assert!(rule.allows(1_000, 1_000));
        assert!(rule.allows(5_000, 60_999));
        assert!(!rule.allows(5_000, 65_000), "a minute old");
        assert!(!rule.allows(999, 2_000), "fetched before intake came up");
        assert!(!rule.allows(3_000, 2_000), "fetched in the future");
    }

    #[tokio::test]
    async fn twenty_concurrent_asks_share_one_pass() {
        let cache = Arc::new(ReceiptsCache::new(Duration::from_secs(10)));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (cache, runs) = (cache.clone(), runs.clone());
            set.spawn(async move {
                cache
                    .get_or_collect(
                        &key("k1"),
                        counting(&runs, Duration::from_millis(200), "k1"),
                    )
                    .await
                    .unwrap()
                    .read_count
            });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap(), 1, "every ask sees the one pass");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Another notice is another pass.
        cache
            .get_or_collect(&key("k2"), counting(&runs, Duration::ZERO, "k2"))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn results_are_reused_until_the_window_ends() {
        let ttl = Duration::from_secs(2);
        let cache = ReceiptsCache::new(ttl);
        let runs = Arc::new(AtomicUsize::new(0));
        let k = key("k");
        let ask = || cache.get_or_collect(&k, counting(&runs, Duration::ZERO, "k"));
        let started = Instant::now();
        assert_eq!(ask().await.unwrap().read_count, 1);
        let again = ask().await.unwrap().read_count;
        // (Only meaningful if this machine did not stall for the whole window.)
        if started.elapsed() < ttl {
            assert_eq!(again, 1, "still fresh: no second pass");
        }
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;
        let after = ask().await.unwrap().read_count;
        assert!(after >= 2, "expired: a new pass");
        assert_eq!(runs.load(Ordering::SeqCst), after);
    }

    #[tokio::test]
    async fn zero_window_still_shares_concurrent_passes_but_keeps_nothing() {
        let cache = ReceiptsCache::new(Duration::ZERO);
        let runs = Arc::new(AtomicUsize::new(0));
        let k = key("k");
        let slow = || cache.get_or_collect(&k, counting(&runs, Duration::from_millis(50), "k"));
        let (a, b) = tokio::join!(slow(), slow());
        assert_eq!((a.unwrap().read_count, b.unwrap().read_count), (1, 1));
        assert_eq!(slow().await.unwrap().read_count, 2);
        assert!(cache.lock().is_empty());
    }

    #[tokio::test]
    async fn errors_reach_the_waiting_asks_but_are_not_cached() {
        let cache = ReceiptsCache::new(Duration::from_secs(10));
        let runs = Arc::new(AtomicUsize::new(0));
        let failing = || {
            let runs = runs.clone();
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err::<Receipts, _>(BotError::DingTalk(DingTalkError::Timeout))
            }
        };
        let k = key("k");
        let (a, b) = tokio::join!(
            cache.get_or_collect(&k, failing()),
            cache.get_or_collect(&k, failing())
        );
        assert!(matches!(a, Err(BotError::DingTalk(DingTalkError::Timeout))));
        assert!(matches!(b, Err(BotError::DingTalk(DingTalkError::Timeout))));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "the waiting ask shared the failure"
        );
        let ok = cache
            .get_or_collect(&key("k"), counting(&runs, Duration::ZERO, "k"))
            .await
            .unwrap();
        assert_eq!(ok.read_count, 2, "the failure was not cached");
    }

    #[tokio::test]
    async fn a_cancelled_pass_hands_over_to_a_waiting_ask() {
        let cache = Arc::new(ReceiptsCache::new(Duration::from_secs(10)));
        let runs = Arc::new(AtomicUsize::new(0));
        let leader = {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_collect(&key("k"), counting(&runs, Duration::from_secs(60), "k"))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let follower = {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_collect(&key("k"), counting(&runs, Duration::from_millis(10), "k"))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        leader.abort();
        let r = follower.await.unwrap().unwrap();
        assert_eq!(r.read_count, 2, "the follower ran its own pass");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let cache = ReceiptsCache::new(Duration::from_secs(10));
        let runs = Arc::new(AtomicUsize::new(0));
        for i in 0..(MAX_CACHED * 2) {
            let k = key(&format!("k{i}"));
            let runs = runs.clone();
            cache
                .get_or_collect(&k, move || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok(receipts("k", 0))
                })
                .await
                .unwrap();
        }
        assert!(cache.lock().len() <= MAX_CACHED);
    }
    #[test]
    fn bookkeeping_memo_skips_only_the_same_roster_within_the_window() {
        let b = Bookkept::default();
        let g = crate::domain::OpenConversationId::parse("cidMemo==").unwrap();
        let u = |s: &str| UserId::parse(s).unwrap();
        let seen = vec![u("u1"), u("u2")];
        let names = vec![(u("u1"), "Ann".to_owned())];
        let f = Bookkept::fingerprint(&seen, &names);
        assert!(!b.is_recent(&g, f, Bookkept::WINDOW));
        b.record(g.clone(), f);
        assert!(b.is_recent(&g, f, Bookkept::WINDOW));
        // A renamed member, a new member or another group is bookkept again.
        let renamed = Bookkept::fingerprint(&seen, &[(u("u1"), "Anne".to_owned())]);
        let joined = Bookkept::fingerprint(&[u("u1"), u("u2"), u("u3")], &names);
        assert_ne!(renamed, f);
        assert_ne!(joined, f);
        assert!(!b.is_recent(&g, renamed, Bookkept::WINDOW));
        assert!(!b.is_recent(&g, joined, Bookkept::WINDOW));
        let other = crate::domain::OpenConversationId::parse("cidOther==").unwrap();
        assert!(!b.is_recent(&other, f, Bookkept::WINDOW));
        // Past the window (here: a zero window) it is bookkept again.
        assert!(!b.is_recent(&g, f, Duration::ZERO));
        // Bounded: beyond the limit the memo starts over.
        for i in 0..Bookkept::MAX_GROUPS {
            let gi = crate::domain::OpenConversationId::parse(format!("cid{i}")).unwrap();
            b.record(gi, 1);
        }
        assert!(b.lock().len() <= Bookkept::MAX_GROUPS);
    }

    // ------------------------------------------------------------ tally

    const ROBOT: &str = "robot";

    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn state(readers: &[&str]) -> ReadState {
        ReadState {
            send_status: SendStatus::Processing,
            readers: readers.iter().map(|r| u(r)).collect(),
            pages: 3,
            truncated: true,
        }
    }

    fn answer(source: RosterSource, members: &[(&str, Option<&str>)]) -> RosterAnswer {
        RosterAnswer {
            members: members
                .iter()
                .map(|(id, name)| Member {
                    user_id: u(id),
                    name: name.map(str::to_owned),
                })
                .collect(),
            source,
            complete: source != RosterSource::Learned,
            cached_at: None,
        }
    }

    fn ids(list: &[Member]) -> Vec<&str> {
        list.iter().map(|m| m.user_id.as_str()).collect()
    }

    fn names(pairs: &[(&str, &str)]) -> HashMap<UserId, String> {
        pairs
            .iter()
            .map(|(id, n)| (u(id), (*n).to_owned()))
            .collect()
    }

    fn tally_of(
        readers: &[&str],
        roster: RosterAnswer,
        author: Option<&str>,
        known: &HashMap<UserId, String>,
    ) -> Receipts {
        let mut notice = receipts("k", 0).notice;
        notice.author = author.map(u);
        let robot = RobotCode::parse(ROBOT).unwrap();
        let roll = Roll::new(state(readers), roster, &robot, notice.author.as_ref());
        tally(roll, &notice, known)
    }

    #[test]
    fn tally_against_a_member_list() {
        let roster = answer(
            RosterSource::InnerGroup,
            &[("a", Some("Ann")), ("b", None), (ROBOT, None), ("c", None)],
        );
        let known = names(&[("a", "Ann"), ("b", "Bob"), ("x", "Xi"), ("c", "Cy")]);
        let r = tally_of(&["x", "c", ROBOT], roster, Some("a"), &known);
        // Every reader, in DingTalk's order, members or not; never the robot.
        assert_eq!(ids(&r.read), ["x", "c"]);
        assert_eq!(r.read[0].name.as_deref(), Some("Xi"));
        // Members who did not read, in roster order.
        assert_eq!(ids(&r.unread), ["a", "b"]);
        assert_eq!(r.unread[1].name.as_deref(), Some("Bob"));
        // Counts are about members only.
        assert_eq!((r.read_count, r.member_count), (1, 3));
        assert_eq!(r.roster_source, RosterSource::InnerGroup);
        assert!(r.roster_complete);
        // The read state passes through; the author's name is filled in.
        assert_eq!(r.send_status, SendStatus::Processing);
        assert_eq!((r.pages, r.truncated), (3, true));
        assert_eq!(r.notice.author_name.as_deref(), Some("Ann"));
    }

    #[test]
    fn tally_completes_a_learned_roster_with_readers_and_author() {
        let roster = answer(RosterSource::Learned, &[("m", None), ("b", None)]);
        let r = tally_of(&["z", "b"], roster, Some("a"), &HashMap::new());
        assert_eq!(ids(&r.unread), ["a", "m"], "sorted by id");
        assert_eq!(ids(&r.read), ["z", "b"]);
        assert_eq!((r.read_count, r.member_count), (2, 4));
        assert!(!r.roster_complete);
        assert_eq!(r.notice.author_name, None, "no name known");
    }

    #[test]
    fn tally_without_any_member_counts_every_reader() {
        let roster = answer(RosterSource::SceneGroup, &[(ROBOT, Some("Bot"))]);
        let r = tally_of(&["x", "y"], roster, None, &HashMap::new());
        assert_eq!(ids(&r.read), ["x", "y"]);
        assert!(r.unread.is_empty());
        assert_eq!((r.read_count, r.member_count), (2, 0));
        assert!(!r.roster_complete, "no roster is never complete");
    }

    #[test]
    fn tally_keeps_a_recorded_author_name() {
        let mut notice = receipts("k", 0).notice;
        notice.author = Some(u("a"));
        notice.author_name = Some("Given".into());
        let robot = RobotCode::parse(ROBOT).unwrap();
        let roll = Roll::new(
            state(&[]),
            answer(RosterSource::InnerGroup, &[("a", Some("Ann"))]),
            &robot,
            notice.author.as_ref(),
        );
        let r = tally(roll, &notice, &names(&[("a", "Ann")]));
        assert_eq!(r.notice.author_name.as_deref(), Some("Given"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeSet;

        /// Ids from a small pool (so that sets overlap), the robot included.
        fn id() -> impl Strategy<Value = String> {
            prop_oneof![
                9 => (0..12u8).prop_map(|i| format!("u{i}")),
                1 => Just(ROBOT.to_owned()),
            ]
        }

        /// Distinct ids in a random order.
        fn distinct() -> impl Strategy<Value = Vec<String>> {
            proptest::collection::vec(id(), 0..16).prop_map(|mut v| {
                let mut seen = HashSet::new();
                v.retain(|x| seen.insert(x.clone()));
                v
            })
        }

        fn source() -> impl Strategy<Value = RosterSource> {
            prop_oneof![
                Just(RosterSource::InnerGroup),
                Just(RosterSource::SceneGroup),
                Just(RosterSource::Learned),
            ]
        }

        #[derive(Debug, Clone)]
        struct Case {
            readers: Vec<String>,
            roster: Vec<(String, Option<String>)>,
            source: RosterSource,
            complete: bool,
            author: Option<String>,
            names: Vec<(String, String)>,
        }

        fn case() -> impl Strategy<Value = Case> {
            (
                distinct(),
                distinct(),
                proptest::collection::vec(any::<bool>(), 16),
                source(),
                any::<bool>(),
                proptest::option::of(id()),
                proptest::collection::vec((id(), "[A-Z][a-z]{1,5}"), 0..12),
            )
                .prop_map(
                    |(readers, roster, named, source, complete, author, names)| Case {
                        readers,
                        roster: roster
                            .into_iter()
                            .zip(named)
                            .map(|(id, named)| {
                                let name = named.then(|| format!("Roster {id}"));
                                (id, name)
                            })
                            .collect(),
                        source,
                        // The learned roster never claims to be complete.
                        complete: complete && source != RosterSource::Learned,
                        author,
                        names,
                    },
                )
        }

        fn run(c: &Case) -> Receipts {
            let roster = RosterAnswer {
                members: c
                    .roster
                    .iter()
                    .map(|(id, name)| Member {
                        user_id: u(id),
                        name: name.clone(),
                    })
                    .collect(),
                source: c.source,
                complete: c.complete,
                cached_at: None,
            };
            let readers: Vec<&str> = c.readers.iter().map(String::as_str).collect();
            let known: HashMap<UserId, String> =
                c.names.iter().map(|(id, n)| (u(id), n.clone())).collect();
            tally_of(&readers, roster, c.author.as_deref(), &known)
        }

        proptest! {
            #[test]
            fn read_and_unread_split_the_roster_minus_the_robot(c in case()) {
                let r = run(&c);
                let not_robot = |s: &&str| *s != ROBOT;
                let readers: Vec<&str> = c.readers.iter().map(String::as_str).filter(not_robot).collect();
                let mut members: Vec<&str> = c.roster.iter().map(|(id, _)| id.as_str()).filter(not_robot).collect();
                if c.source == RosterSource::Learned {
                    for extra in readers.iter().copied().chain(c.author.as_deref()) {
                        if !members.contains(&extra) {
                            members.push(extra);
                        }
                    }
                    members.sort_unstable();
                }
                let members: Vec<&str> = members.into_iter().filter(not_robot).collect();
                let read = ids(&r.read);
                let unread = ids(&r.unread);

                // The robot is nobody.
                prop_assert!(!read.contains(&ROBOT) && !unread.contains(&ROBOT));
                // Read: the readers, in DingTalk's order.
                prop_assert_eq!(&read, &readers);
                // Unread: the members who did not read, in roster order
                // (by id for the learned roster).
                let expected_unread: Vec<&str> = members.iter().copied().filter(|m| !readers.contains(m)).collect();
                prop_assert_eq!(&unread, &expected_unread);
                // Disjoint, and together everyone in the roster or reading.
                let read_set: BTreeSet<&str> = read.iter().copied().collect();
                let unread_set: BTreeSet<&str> = unread.iter().copied().collect();
                prop_assert!(read_set.is_disjoint(&unread_set));
                let all: BTreeSet<&str> = members.iter().chain(readers.iter()).copied().collect();
                prop_assert_eq!(read_set.union(&unread_set).copied().collect::<BTreeSet<_>>(), all);

                // Counts.
                if members.is_empty() {
                    prop_assert_eq!(r.member_count, 0);
                    prop_assert_eq!(r.read_count, readers.len());
                    prop_assert!(!r.roster_complete);
                } else {
                    prop_assert_eq!(r.member_count, members.len());
                    prop_assert_eq!(r.read_count, readers.iter().filter(|x| members.contains(x)).count());
                    prop_assert_eq!(r.read_count + r.unread.len(), r.member_count);
                    prop_assert_eq!(r.roster_complete, c.complete);
                }
                prop_assert!(r.read_count <= r.read.len());
                prop_assert_eq!(r.roster_source, c.source);
            }

            #[test]
            fn everyone_is_named_from_the_names_given_and_only_from_them(c in case()) {
                let r = run(&c);
                let known: HashMap<&str, &str> = c.names.iter().map(|(id, n)| (id.as_str(), n.as_str())).collect();
                for m in r.read.iter().chain(&r.unread) {
                    prop_assert_eq!(m.name.as_deref(), known.get(m.user_id.as_str()).copied());
                }
                let author_name = c.author.as_deref().and_then(|a| known.get(a).copied());
                prop_assert_eq!(r.notice.author_name.as_deref(), author_name);
            }

            #[test]
            fn the_tally_is_deterministic(c in case()) {
                prop_assert_eq!(run(&c), run(&c));
            }
        }
    }

    #[test]
    fn a_notice_authored_by_the_robot_does_not_make_it_a_member() {
        let robot = RobotCode::parse("robot").unwrap();
        let state = ReadState {
            send_status: SendStatus::Success,
            readers: vec![UserId::parse("u1").unwrap()],
            pages: 1,
            truncated: false,
        };
        let learned = RosterAnswer {
            members: Vec::new(),
            source: RosterSource::Learned,
            complete: false,
            cached_at: None,
        };
        let author = UserId::parse("robot").unwrap();
        let roll = Roll::new(state, learned, &robot, Some(&author));
        let r = tally(roll, &receipts("k", 0).notice, &HashMap::new());
        assert!(r.unread.is_empty(), "{:?}", r.unread);
        assert_eq!((r.read_count, r.member_count), (1, 1));
    }

    /// When the bookkeeping of `group` was last recorded, waiting (up to
    /// 2 s) for the spawned task to record something newer than `after`.
    async fn bookkept_at(
        b: &Bookkept,
        group: &OpenConversationId,
        after: Option<Instant>,
    ) -> Option<(Instant, u64)> {
        for _ in 0..200 {
            let now = b.lock().get(group).copied();
            if now.is_some() && now.map(|(at, _)| at) != after {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        b.lock().get(group).copied()
    }

    #[tokio::test]
    async fn a_second_summary_of_the_same_roster_skips_its_bookkeeping() {
        use crate::dingtalk::scripted::ScriptedApi;
        use crate::dingtalk::Roster;
        let scripted = Arc::new(ScriptedApi::new());
        let names: Vec<Member> = (0..20)
            .map(|i| Member {
                user_id: UserId::parse(format!("u{i}")).unwrap(),
                name: Some(format!("Name {i}")),
            })
            .collect();
        scripted.on_roster(move |_| {
            Ok(Roster {
                members: names.clone(),
                complete: true,
            })
        });
        let api: Arc<dyn DingTalkApi> = scripted;
        let store: Arc<dyn Store> = Arc::new(crate::store::memory::MemoryStore::new());
        let cfg = BotConfig::default();
        let robot = RobotCode::parse("robot").unwrap();
        let (refused, bookkept) = (RefusedSources::default(), Arc::new(Bookkept::default()));
        let deps = ReceiptsDeps {
            api: &api,
            store: &store,
            cfg: &cfg,
            cool_app_code: None,
            robot_code: &robot,
            refused: &refused,
            bookkept: &bookkept,
            saving_calls: false,
            cached_roster: None,
        };
        let mut notice = receipts("k", 0).notice;
        notice.author = Some(UserId::parse("u0").unwrap());
        collect(&deps, &notice, None).await.unwrap();
        let first = bookkept_at(&bookkept, &notice.group, None).await;
        assert!(first.is_some(), "the first summary bookkept");
        collect(&deps, &notice, None).await.unwrap();
        let second = bookkept_at(&bookkept, &notice.group, first.map(|f| f.0)).await;
        assert_eq!(second, first, "same roster, same names: nothing rewritten");
    }
}
