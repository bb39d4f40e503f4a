//! The quota ledger: billable DingTalk calls per API and calendar month,
//! against `dingtalk.monthly_call_budget`.
//!
//! The DingTalk client reports every billable request through the
//! [`CallLedger`] hook (which calls count: [`crate::dingtalk::quota`]); the
//! ledger counts them in memory at once (budget checks and `/metrics` see
//! every call) and writes the new counts to the store every
//! [`SAVE_EVERY`] and on shutdown ([`Ledger::save`]), so the month's count
//! survives restarts (a crash loses at most the last few seconds of counts).
//!
//! Months are calendar months in the configured time zone (`bot.timezone`,
//! default `Asia/Shanghai`, DingTalk's own). Thresholds of the month's
//! total against the budget:
//! - [`WARN_PERCENT`] (80 %): one warning log line a month;
//! - [`SAVE_PERCENT`] (95 %): summaries spend no more query or member-list
//!   calls: they answer from stored reads (read events and earlier query
//!   passes) and the learned roster, and say so. So does DingTalk's own
//!   "quota used up" answer, for the rest of the month.

use crate::config::ReplyTimeZone;
use crate::dingtalk::quota::{CallLedger, BILLABLE_APIS};
use crate::domain::{now_millis, BillingMonth, EpochMillis};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often new counts are written to the store.
pub const SAVE_EVERY: Duration = Duration::from_secs(5);
/// A warning is logged once the month's calls reach this share of the budget.
pub const WARN_PERCENT: u64 = 80;
/// Summaries stop spending calls once the month's calls reach this share.
pub const SAVE_PERCENT: u64 = 95;

/// The month's usage, as `GET /api/v1/usage` and `readbot check` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// `YYYY-MM`.
    pub month: String,
    /// The zone the month is counted in.
    pub time_zone: String,
    /// `dingtalk.monthly_call_budget`.
    pub budget: u64,
    /// Billable calls this month, all APIs.
    pub used: u64,
    /// `used` as a whole percentage of the budget (rounded down).
    pub percent: u64,
    /// Calls per billable API (every one listed, zeros included).
    pub calls: BTreeMap<String, u64>,
    /// At or past [`WARN_PERCENT`].
    pub warning: bool,
    /// Summaries are saving calls (past [`SAVE_PERCENT`], or DingTalk
    /// refused a call for the monthly quota).
    pub saving: bool,
    /// DingTalk itself answered "monthly quota used up" this month.
    pub dingtalk_refused: bool,
}

#[derive(Debug)]
struct State {
    month: BillingMonth,
    /// This month's calls (loaded from the store plus counted since).
    counts: BTreeMap<&'static str, u64>,
    /// Counted and not yet written to the store.
    unsaved: BTreeMap<(BillingMonth, &'static str), u64>,
    /// The highest threshold already logged this month (0, 80 or 95).
    logged: u64,
    /// DingTalk refused a call for the quota this month.
    refused: bool,
}

/// The ledger. Cheap to share (`Arc`); implements the client's hook.
pub struct Ledger {
    store: Arc<dyn Store>,
    budget: AtomicU64,
    zone: ReplyTimeZone,
    state: Mutex<State>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("budget", &self.budget())
            .finish_non_exhaustive()
    }
}

/// The month `at` falls in, in `zone` (1970-01 for a time outside the calendar).
fn month_of(zone: &ReplyTimeZone, at: EpochMillis) -> BillingMonth {
    zone.year_month(at)
        .and_then(|(y, m)| BillingMonth::new(y, m))
        .unwrap_or_default()
}

/// `part` as a whole percentage of `whole` (saturating; `whole` ≥ 1).
fn percent(part: u64, whole: u64) -> u64 {
    part.saturating_mul(100) / whole.max(1)
}

impl Ledger {
    /// A ledger over `store` with `budget` calls a month, counted in `zone`.
    /// Call [`Ledger::load`] before the first call is made.
    pub fn new(store: Arc<dyn Store>, budget: u64, zone: ReplyTimeZone) -> Self {
        let month = month_of(&zone, now_millis());
        Self {
            store,
            budget: AtomicU64::new(budget.max(1)),
            zone,
            state: Mutex::new(State {
                month,
                counts: BTreeMap::new(),
                unsaved: BTreeMap::new(),
                logged: 0,
                refused: false,
            }),
        }
    }

    /// Sets the monthly budget (at least 1).
    pub fn set_budget(&self, budget: u64) {
        self.budget.store(budget.max(1), Ordering::Relaxed);
    }

    /// The monthly budget.
    pub fn budget(&self) -> u64 {
        self.budget.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the state to `month` when the calendar turned.
    fn roll(state: &mut State, month: BillingMonth) {
        if state.month != month {
            state.month = month;
            state.counts.clear();
            state.logged = 0;
            state.refused = false;
        }
    }

    /// Adds the stored count of the current month (from earlier runs) to
    /// what was counted since start.
    pub async fn load(&self) -> Result<(), StoreError> {
        let month = month_of(&self.zone, now_millis());
        let stored = self.store.calls_in_month(&month).await?;
        let mut s = self.lock();
        Self::roll(&mut s, month);
        for (api, n) in stored {
            if let Some(api) = BILLABLE_APIS.iter().find(|a| **a == api) {
                let c = s.counts.entry(api).or_default();
                *c = c.saturating_add(n);
            }
        }
        let total = s.counts.values().fold(0u64, |a, b| a.saturating_add(*b));
        drop(s);
        self.log_thresholds(total);
        Ok(())
    }

    /// Writes the counts not yet stored (durably). On a store failure they
    /// are kept for the next try.
    pub async fn save(&self) -> Result<(), StoreError> {
        let unsaved = std::mem::take(&mut self.lock().unsaved);
        if unsaved.is_empty() {
            return self.refresh().await;
        }
        let mut by_month: BTreeMap<&BillingMonth, Vec<(&str, u64)>> = BTreeMap::new();
        for ((month, api), n) in &unsaved {
            by_month.entry(month).or_default().push((api, *n));
        }
        let mut failed = None;
        let mut kept = BTreeMap::new();
        for (month, calls) in by_month {
            if let Err(e) = self.store.add_calls(month, &calls).await {
                for (api, n) in calls {
                    if let Some(api) = BILLABLE_APIS.iter().find(|a| **a == api) {
                        kept.insert((month.clone(), *api), n);
                    }
                }
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            let mut s = self.lock();
            for (k, n) in kept {
                let c = s.unsaved.entry(k).or_default();
                *c = c.saturating_add(n);
            }
            return Err(e);
        }
        self.refresh().await
    }

    /// Re-reads the month's stored total, which other replicas on a shared
    /// store add to, so the 80 %/95 % checks see every replica's calls (as
    /// of this save) plus this one's since: each API's count becomes the
    /// stored count plus what this ledger has not saved yet, never lower
    /// than it was.
    async fn refresh(&self) -> Result<(), StoreError> {
        let month = month_of(&self.zone, now_millis());
        let stored = self.store.calls_in_month(&month).await?;
        let total = {
            let mut s = self.lock();
            Self::roll(&mut s, month.clone());
            for (api, n) in stored {
                if let Some(api) = BILLABLE_APIS.iter().find(|a| **a == api) {
                    let pending = s.unsaved.get(&(month.clone(), *api)).copied().unwrap_or(0);
                    let shared = n.saturating_add(pending);
                    let c = s.counts.entry(api).or_default();
                    *c = (*c).max(shared);
                }
            }
            s.counts.values().fold(0u64, |a, b| a.saturating_add(*b))
        };
        self.log_thresholds(total);
        Ok(())
    }

    /// The current month's usage.
    pub fn usage(&self) -> Usage {
        let month = month_of(&self.zone, now_millis());
        let mut s = self.lock();
        Self::roll(&mut s, month);
        let calls: BTreeMap<String, u64> = BILLABLE_APIS
            .iter()
            .map(|api| ((*api).to_owned(), s.counts.get(api).copied().unwrap_or(0)))
            .collect();
        let used = calls.values().fold(0u64, |a, b| a.saturating_add(*b));
        let pct = percent(used, self.budget());
        Usage {
            month: s.month.to_string(),
            time_zone: self.zone.name().to_owned(),
            budget: self.budget(),
            used,
            percent: pct,
            calls,
            warning: pct >= WARN_PERCENT,
            saving: pct >= SAVE_PERCENT || s.refused,
            dingtalk_refused: s.refused,
        }
    }

    /// True while summaries must not spend calls (see the module doc).
    pub fn saving(&self) -> bool {
        self.usage().saving
    }

    /// Logs the thresholds `total` newly reached this month (once each).
    fn log_thresholds(&self, total: u64) {
        let pct = percent(total, self.budget());
        let level = if pct >= SAVE_PERCENT {
            SAVE_PERCENT
        } else if pct >= WARN_PERCENT {
            WARN_PERCENT
        } else {
            return;
        };
        let (month, first) = {
            let mut s = self.lock();
            let first = s.logged < level;
            if first {
                s.logged = level;
            }
            (s.month.clone(), first)
        };
        if !first {
            return;
        }
        if level >= SAVE_PERCENT {
            tracing::warn!(
                month = %month,
                used = total,
                budget = self.budget(),
                "DingTalk calls this month are past 95% of dingtalk.monthly_call_budget: summaries now answer from stored reads and the learned roster, without query or member-list calls, until the month ends"
            );
        } else {
            tracing::warn!(
                month = %month,
                used = total,
                budget = self.budget(),
                "DingTalk calls this month reached 80% of dingtalk.monthly_call_budget; past 95% summaries stop querying"
            );
        }
    }

    /// Counts one call of `api` at `at` (the hook calls this with now).
    fn record_at(&self, api: &'static str, at: EpochMillis) {
        let month = month_of(&self.zone, at);
        let total = {
            let mut s = self.lock();
            Self::roll(&mut s, month.clone());
            let c = s.counts.entry(api).or_default();
            *c = c.saturating_add(1);
            let u = s.unsaved.entry((month, api)).or_default();
            *u = u.saturating_add(1);
            s.counts.values().fold(0u64, |a, b| a.saturating_add(*b))
        };
        self.log_thresholds(total);
    }

    /// Runs [`Ledger::save`] every [`SAVE_EVERY`] until aborted (the
    /// application saves once more on shutdown).
    pub fn spawn_saver(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let ledger = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAVE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = ledger.save().await {
                    tracing::warn!(error = %e.with_causes(), "could not save the DingTalk call ledger; kept for the next try");
                }
            }
        })
    }
}

impl CallLedger for Ledger {
    fn record(&self, api: &'static str) {
        self.record_at(api, now_millis());
    }

    fn quota_exhausted(&self) {
        let first = {
            let month = month_of(&self.zone, now_millis());
            let mut s = self.lock();
            Self::roll(&mut s, month);
            !std::mem::replace(&mut s.refused, true)
        };
        if first {
            tracing::warn!(
                budget = self.budget(),
                "DingTalk refused a call: the organisation's monthly API quota is used up (ApiCountLimitForOrg); summaries answer from stored reads until the month ends. Set dingtalk.monthly_call_budget to the organisation's real quota"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    const QUERY: &str = "robot.groupMessages.query";
    const SEND: &str = "robot.groupMessages.send";

    fn ledger(store: Arc<dyn Store>, budget: u64) -> Ledger {
        Ledger::new(store, budget, ReplyTimeZone::default())
    }

    #[tokio::test]
    async fn counts_per_api_and_survive_a_new_ledger_over_the_same_store() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let l = ledger(store.clone(), 100);
        l.load().await.unwrap();
        for _ in 0..3 {
            l.record(QUERY);
        }
        l.record(SEND);
        let u = l.usage();
        assert_eq!((u.used, u.calls[QUERY], u.calls[SEND]), (4, 3, 1));
        assert_eq!(u.calls.len(), BILLABLE_APIS.len(), "every API listed");
        assert_eq!(u.time_zone, "Asia/Shanghai");
        l.save().await.unwrap();
        l.save().await.unwrap();

        // A restart: a new ledger over the same store.
        let again = ledger(store.clone(), 100);
        again.record(QUERY);
        again.load().await.unwrap();
        let u = again.usage();
        assert_eq!(
            (u.used, u.calls[QUERY]),
            (5, 4),
            "stored plus counted before the load"
        );
        again.save().await.unwrap();
        let month = BillingMonth::parse(&u.month).unwrap();
        assert_eq!(
            store.calls_in_month(&month).await.unwrap(),
            vec![(QUERY.to_owned(), 4), (SEND.to_owned(), 1)],
            "saved once each, never twice"
        );
    }

    #[tokio::test]
    async fn replicas_on_one_store_see_each_others_calls_after_a_save() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (a, b) = (ledger(store.clone(), 20), ledger(store.clone(), 20));
        a.load().await.unwrap();
        b.load().await.unwrap();
        for _ in 0..12 {
            a.record(QUERY);
        }
        a.save().await.unwrap();
        for _ in 0..4 {
            b.record(SEND);
        }
        assert_eq!(b.usage().used, 4, "before a save B knows only its own");
        assert!(!b.usage().warning);
        // B's save (every 5 s) re-reads the shared total: 12 + 4 = 16 = 80 %.
        b.save().await.unwrap();
        let u = b.usage();
        assert_eq!((u.used, u.calls[QUERY], u.calls[SEND]), (16, 12, 4));
        assert!(u.warning, "the 80 % warning sees both replicas");
        // A saves nothing new but still learns of B's calls; a call counted
        // after the save is kept on top of the stored total.
        a.record(QUERY);
        a.save().await.unwrap();
        b.record(QUERY);
        b.record(QUERY);
        b.save().await.unwrap();
        a.save().await.unwrap();
        assert_eq!(a.usage().used, 19);
        assert_eq!(b.usage().used, 19);
        assert!(b.usage().saving, "95 % of 20 reached across both");
        let month = BillingMonth::parse(&u.month).unwrap();
        assert_eq!(
            store.calls_in_month(&month).await.unwrap(),
            vec![(QUERY.to_owned(), 15), (SEND.to_owned(), 4)],
            "each call stored once"
        );
    }

    #[tokio::test]
    async fn thresholds_warn_at_80_and_save_at_95() {
        let l = ledger(Arc::new(MemoryStore::new()), 20);
        for _ in 0..15 {
            l.record(QUERY);
        }
        let u = l.usage();
        assert_eq!((u.percent, u.warning, u.saving), (75, false, false));
        l.record(QUERY);
        let u = l.usage();
        assert_eq!((u.percent, u.warning, u.saving), (80, true, false));
        for _ in 0..3 {
            l.record(QUERY);
        }
        assert!(l.saving(), "19 of 20 is 95%");
    }

    #[tokio::test]
    async fn dingtalks_own_refusal_saves_calls_whatever_the_count() {
        let l = ledger(Arc::new(MemoryStore::new()), 5000);
        assert!(!l.saving());
        l.quota_exhausted();
        let u = l.usage();
        assert!(u.saving && u.dingtalk_refused && !u.warning);
    }

    #[tokio::test]
    async fn a_new_month_starts_from_zero() {
        let l = ledger(Arc::new(MemoryStore::new()), 10);
        // 2025-01-31 12:00 and 2025-02-01 12:00 in Shanghai.
        let jan = 1_738_296_000_000;
        let feb = jan + 24 * 3600 * 1000;
        for _ in 0..9 {
            l.record_at(QUERY, jan);
        }
        l.record_at(QUERY, feb);
        let s = l.lock();
        assert_eq!(s.month.as_str(), "2025-02");
        assert_eq!(s.counts[QUERY], 1);
        assert_eq!(s.unsaved.len(), 2, "both months are still saved");
    }
}
