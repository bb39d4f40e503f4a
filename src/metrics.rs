//! Prometheus metrics: every name and label readbot exports, and the
//! process-wide recorder behind `GET /metrics`.
//!
//! Instrumented code calls the small functions below (never the `metrics`
//! macros directly), so this file is the one list of what exists. The
//! recorder is installed once per process by [`install`] (idempotent: tests
//! start many apps in one process and they share it). Without it, the
//! functions are no-ops.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `readbot_build_info` | gauge (1) | `version` |
//! | `readbot_callbacks_total` | counter | `outcome`: `accepted`, `duplicate`, `bad_signature`, `replayed` (a signature's msgId allowance used up), `bad_body`, `quota_exhausted`, `shutting_down`, `busy`, `group_busy` (the group's share of the queue is full), `error` |
//! | `readbot_dedup_hits_total` | counter | `state`: `in_flight`, `done` |
//! | `readbot_summaries_total` | counter | `via`: `chat`, `api`, `page`; `outcome`: `ok`, `error`, `timeout` |
//! | `readbot_summary_duration_seconds` | histogram | `via` |
//! | `readbot_summaries_in_flight` | gauge | – |
//! | `readbot_replies_total` | counter | `delivery`: `session`, `session_timeout`, `untrusted_webhook` (a body's sessionWebhook refused: an attack signal; the send API is tried next), `group_send`, `direct` (`bot.reply_to = "dm"`: the summary went to the asker), `failed`, `dropped` |
//! | `readbot_notices_sent_total` | counter | `outcome`: `ok`, `dingtalk_error`, `store_error`, `replayed` (a retry with a used `Idempotency-Key`: nothing sent) |
//! | `readbot_reminders_total` | counter | `via`: `mention`, `dm`; `outcome`: `ok`, `partial`, `refused`, `nobody`, `no_session`, `not_allowed`, `cooldown`, `recalled`, `in_progress`, `no_roster`, `failed` |
//! | `readbot_follow_ups_total` | counter | `state` the follow-up moved to: `pending` (`reason` `scheduled`; `retry` after a transient failure), `fired` (`ok`), `skipped` (`too_late`, `recalled`, `gone`, `refused`, `no_roster`, `failed`), `cancelled` (`api`, `recalled`) |
//! | `readbot_recalls_total` | counter | `outcome`: `ok`, `failed` (DingTalk's `failedResult`), `not_allowed`, `error` |
//! | `readbot_dingtalk_calls_total` | counter | `api`, `outcome` (see [`DINGTALK_OUTCOMES`]) |
//! | `readbot_dingtalk_call_duration_seconds` | histogram | `api` (one logical call, retries included) |
//! | `readbot_dingtalk_retries_total` | counter | `api`; `reason`: `backoff`, `token` |
//! | `readbot_dingtalk_token_refreshes_total` | counter | `outcome`: `ok`, `error` |
//! | `readbot_dingtalk_in_flight` | gauge | `api` (requests on the wire now, measured at scrape) |
//! | `readbot_store_size_bytes` | gauge | – (`Store::size_bytes`: for sled, the bytes of its data folder; measured at scrape) |
//! | `readbot_store_notices` | gauge | – (notices recorded, measured at scrape) |
//! | `readbot_events_total` | counter | `type`: `read`, `recall`, `other`; `via`: `stream`, `http`; `outcome`: `recorded`, `duplicate`, `unknown_key`, `no_reader`, `bad_payload`, `store_error` |
//! | `readbot_event_push_refused_total` | counter | `reason`: `signature`, `decrypt`, `bad_request` |
//! | `readbot_event_trust` | gauge | – (1 while pushed reads are trusted alone) |
//! | `readbot_event_gaps_total` | counter | – (reconciliations that found readers the events had missed) |
//! | `readbot_receipt_reads_total` | counter | `from`: `events`, `query` (where a summary's reads came from) |
//! | `readbot_dingtalk_billable_calls` | gauge | `api` (one of `dingtalk::quota::BILLABLE_APIS`): billable calls this calendar month, earlier runs included (the quota ledger; measured at scrape) |
//! | `readbot_dingtalk_call_budget` | gauge | – (`dingtalk.monthly_call_budget`) |
//! | `readbot_dingtalk_budget_saving` | gauge | – (1 while summaries spend no query or member-list call: past 95 % of the budget, or DingTalk said the quota is used up) |
//! | `readbot_worker_panics_total` | counter | – (answers that panicked; the worker survived) |
//! | `readbot_store_write_failures_total` | counter | – (store writes and probe writes that failed) |
//! | `readbot_store_failing` | gauge | – (1 while writes are refused because the store is failing) |
//! | `readbot_store_entries` | gauge | `kind`: `notices`, `marks`, `names`, `roster`, `sends` (measured at scrape) |
//! | `readbot_store_pruned_total` | counter | `kind`: `notices`, `marks`, `names`, `roster`, `sends` (removed by retention) |

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// `readbot_build_info`.
pub const BUILD_INFO: &str = "readbot_build_info";
/// `readbot_callbacks_total`.
pub const CALLBACKS: &str = "readbot_callbacks_total";
/// `readbot_dedup_hits_total`.
pub const DEDUP_HITS: &str = "readbot_dedup_hits_total";
/// `readbot_summaries_total`.
pub const SUMMARIES: &str = "readbot_summaries_total";
/// `readbot_summary_duration_seconds`.
pub const SUMMARY_DURATION: &str = "readbot_summary_duration_seconds";
/// `readbot_summaries_in_flight`.
pub const SUMMARIES_IN_FLIGHT: &str = "readbot_summaries_in_flight";
/// `readbot_replies_total`.
pub const REPLIES: &str = "readbot_replies_total";
/// `readbot_notices_sent_total`.
pub const NOTICES_SENT: &str = "readbot_notices_sent_total";
/// `readbot_reminders_total`.
pub const REMINDERS: &str = "readbot_reminders_total";
/// `readbot_recalls_total`.
pub const RECALLS: &str = "readbot_recalls_total";
/// `readbot_follow_ups_total`.
pub const FOLLOW_UPS: &str = "readbot_follow_ups_total";
/// `outcome` values of [`REMINDERS`].
pub const REMINDER_OUTCOMES: &[&str] = &[
    "ok",
    "partial",
    "refused",
    "nobody",
    "no_session",
    "not_allowed",
    "cooldown",
    "recalled",
    "in_progress",
    "no_roster",
    "failed",
];
/// `outcome` values of [`RECALLS`].
pub const RECALL_OUTCOMES: &[&str] = &["ok", "failed", "not_allowed", "error"];
/// `readbot_dingtalk_calls_total`.
pub const DINGTALK_CALLS: &str = "readbot_dingtalk_calls_total";
/// `readbot_dingtalk_call_duration_seconds`.
pub const DINGTALK_DURATION: &str = "readbot_dingtalk_call_duration_seconds";
/// `readbot_dingtalk_retries_total`.
pub const DINGTALK_RETRIES: &str = "readbot_dingtalk_retries_total";
/// `readbot_dingtalk_token_refreshes_total`.
pub const TOKEN_REFRESHES: &str = "readbot_dingtalk_token_refreshes_total";
/// `readbot_dingtalk_in_flight`.
pub const DINGTALK_IN_FLIGHT: &str = "readbot_dingtalk_in_flight";
/// `readbot_store_size_bytes`.
pub const STORE_SIZE: &str = "readbot_store_size_bytes";
/// `readbot_store_notices`.
pub const STORE_NOTICES: &str = "readbot_store_notices";

/// `readbot_dingtalk_billable_calls`.
pub const BILLABLE_CALLS: &str = "readbot_dingtalk_billable_calls";
/// `readbot_dingtalk_call_budget`.
pub const CALL_BUDGET: &str = "readbot_dingtalk_call_budget";
/// `readbot_dingtalk_budget_saving`.
pub const BUDGET_SAVING: &str = "readbot_dingtalk_budget_saving";
/// `readbot_worker_panics_total`.
pub const WORKER_PANICS: &str = "readbot_worker_panics_total";
/// `readbot_store_write_failures_total`.
pub const STORE_WRITE_FAILURES: &str = "readbot_store_write_failures_total";
/// `readbot_store_failing`.
pub const STORE_FAILING: &str = "readbot_store_failing";
/// `readbot_store_entries`.
pub const STORE_ENTRIES: &str = "readbot_store_entries";
/// `readbot_store_pruned_total`.
pub const STORE_PRUNED: &str = "readbot_store_pruned_total";

/// Values of the `kind` label of [`STORE_ENTRIES`] and [`STORE_PRUNED`].
pub const STORE_KINDS: &[&str] = &["notices", "marks", "names", "roster", "sends"];

/// Values of the `outcome` label of [`DINGTALK_CALLS`].
pub const DINGTALK_OUTCOMES: &[&str] = &[
    "ok",
    "rejected",
    "throttled",
    "permission_denied",
    "auth_failed",
    "not_ready_or_expired",
    "session_expired",
    "server_error",
    "timeout",
    "transport_error",
    "decode_error",
    "untrusted_webhook",
];

/// Histogram buckets (seconds) for every `*_seconds` metric: DingTalk calls
/// take tens of milliseconds, summaries up to minutes.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder for this process, once; later calls
/// return the same handle. `None` when another recorder was installed
/// first (readbot embedded in a program that has its own): `/metrics` then
/// answers 503 and the instrumentation feeds the other recorder.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE.get_or_init(build_and_install).as_ref()
}

fn build_and_install() -> Option<PrometheusHandle> {
    let builder = match PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
    {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "metrics disabled: bad histogram buckets");
            return None;
        }
    };
    let handle = match builder.install_recorder() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics is disabled");
            return None;
        }
    };
    describe();
    preregister();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("readbot-metrics".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            upkeep.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread did not start; histograms are folded in at scrape time only");
    }
    Some(handle)
}

fn describe() {
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label tells which readbot runs."
    );
    describe_counter!(
        CALLBACKS,
        "DingTalk callbacks received, by outcome (accepted, duplicate, bad_signature, bad_body, quota_exhausted, shutting_down, error)."
    );
    describe_counter!(
        DEDUP_HITS,
        "Messages dropped as duplicates, by the state of the first delivery (in_flight or done)."
    );
    describe_counter!(
        SUMMARIES,
        "Read-receipt summaries produced, by where they were asked for (chat, api, page) and outcome (ok, error, timeout)."
    );
    describe_histogram!(
        SUMMARY_DURATION,
        metrics::Unit::Seconds,
        "Time to gather the receipts of one summary."
    );
    describe_gauge!(
        SUMMARIES_IN_FLIGHT,
        "@mentions being answered right now (measured at scrape)."
    );
    describe_counter!(
        REPLIES,
        "Replies delivered to groups, by path (session, group_send) or failed / dropped."
    );
    describe_counter!(
        NOTICES_SENT,
        "Notices sent through the API, by outcome (ok, dingtalk_error, store_error)."
    );
    describe_counter!(
        REMINDERS,
        "Reminders of a notice's unread members, by via (mention: @ in the group; dm: direct messages) and outcome."
    );
    describe_counter!(
        FOLLOW_UPS,
        "Scheduled follow-ups, by the state they moved to (pending, fired, skipped, cancelled) and reason."
    );
    describe_counter!(
        RECALLS,
        "Notice recalls, by outcome (ok, failed: DingTalk's failedResult, not_allowed, error)."
    );
    describe_counter!(
        DINGTALK_CALLS,
        "Logical DingTalk API calls (one per page; retries not counted), by API and outcome."
    );
    describe_histogram!(
        DINGTALK_DURATION,
        metrics::Unit::Seconds,
        "Duration of one logical DingTalk call, retries and backoff included."
    );
    describe_counter!(
        DINGTALK_RETRIES,
        "DingTalk call retries, by API and reason (backoff: transient failure; token: refused access token)."
    );
    describe_counter!(
        TOKEN_REFRESHES,
        "Access-token requests to DingTalk, by outcome."
    );
    describe_gauge!(
        DINGTALK_IN_FLIGHT,
        "DingTalk requests on the wire right now, by API (measured at scrape)."
    );
    describe_gauge!(
        STORE_SIZE,
        metrics::Unit::Bytes,
        "Bytes used by the data folder (measured at scrape)."
    );
    describe_gauge!(
        STORE_NOTICES,
        "Notices recorded in the store (measured at scrape)."
    );
    describe_health();
    describe_gauge!(
        BILLABLE_CALLS,
        "Billable DingTalk calls this calendar month, by API, earlier runs included (measured at scrape)."
    );
    describe_gauge!(
        CALL_BUDGET,
        "dingtalk.monthly_call_budget: billable DingTalk calls readbot plans to spend a month."
    );
    describe_gauge!(
        BUDGET_SAVING,
        "1 while summaries spend no query or member-list call (past 95% of the budget, or DingTalk refused for the quota)."
    );
}

/// Creates the fixed-label series at zero so dashboards and `rate()` see
/// them before the first event.
fn preregister() {
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for o in [
        "accepted",
        "duplicate",
        "bad_signature",
        "replayed",
        "bad_body",
        "quota_exhausted",
        "shutting_down",
        "busy",
        "group_busy",
        "error",
    ] {
        counter!(CALLBACKS, "outcome" => o).increment(0);
    }
    for s in ["in_flight", "done"] {
        counter!(DEDUP_HITS, "state" => s).increment(0);
    }
    for via in ["chat", "api", "page"] {
        for o in ["ok", "error", "timeout"] {
            counter!(SUMMARIES, "via" => via, "outcome" => o).increment(0);
        }
    }
    for d in [
        "session",
        "session_timeout",
        "untrusted_webhook",
        "group_send",
        "failed",
        "dropped",
    ] {
        counter!(REPLIES, "delivery" => d).increment(0);
    }
    for o in ["ok", "dingtalk_error", "store_error", "replayed"] {
        counter!(NOTICES_SENT, "outcome" => o).increment(0);
    }
    for o in ["ok", "error"] {
        counter!(TOKEN_REFRESHES, "outcome" => o).increment(0);
    }
    for via in ["mention", "dm"] {
        for o in REMINDER_OUTCOMES {
            counter!(REMINDERS, "via" => via, "outcome" => *o).increment(0);
        }
    }
    for o in RECALL_OUTCOMES {
        counter!(RECALLS, "outcome" => *o).increment(0);
    }
    for (state, reason) in [
        ("pending", "scheduled"),
        ("fired", "ok"),
        ("skipped", "too_late"),
        ("skipped", "recalled"),
        ("cancelled", "api"),
    ] {
        counter!(FOLLOW_UPS, "state" => state, "reason" => reason).increment(0);
    }
    preregister_health();
}

/// The current metrics in Prometheus text format, or `None` when the
/// recorder is not readbot's.
pub fn render() -> Option<String> {
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
}

/// One DingTalk callback and what became of it.
pub fn callback(outcome: &'static str) {
    counter!(CALLBACKS, "outcome" => outcome).increment(1);
}

/// A duplicate delivery was dropped; `state` is that of the first one.
pub fn dedup_hit(state: &'static str) {
    counter!(DEDUP_HITS, "state" => state).increment(1);
}

/// One summary finished (or failed) after `took`.
pub fn summary(via: &'static str, outcome: &'static str, took: Option<Duration>) {
    counter!(SUMMARIES, "via" => via, "outcome" => outcome).increment(1);
    if let Some(d) = took {
        histogram!(SUMMARY_DURATION, "via" => via).record(d.as_secs_f64());
    }
}

/// A reply was delivered (`session`, `group_send`), possibly delivered (`session_timeout`), or not (`failed`, `dropped`);
/// `untrusted_webhook`: a forged sessionWebhook was refused (counted besides the path that then carried the reply).
pub fn reply(delivery: &'static str) {
    counter!(REPLIES, "delivery" => delivery).increment(1);
}

/// A notice was sent through the API (or failed to).
pub fn notice_sent(outcome: &'static str) {
    counter!(NOTICES_SENT, "outcome" => outcome).increment(1);
}

/// One reminder (`via`: `mention` or `dm`) ended with `outcome` (see [`REMINDER_OUTCOMES`]).
pub fn reminder(via: &'static str, outcome: &'static str) {
    counter!(REMINDERS, "via" => via, "outcome" => outcome).increment(1);
}

/// A follow-up moved to `state` (see [`FOLLOW_UPS`]) for `reason`.
pub fn follow_up(state: &'static str, reason: &'static str) {
    counter!(FOLLOW_UPS, "state" => state, "reason" => reason).increment(1);
}

/// One recall ended with `outcome` (see [`RECALL_OUTCOMES`]).
pub fn recall(outcome: &'static str) {
    counter!(RECALLS, "outcome" => outcome).increment(1);
}

/// One logical DingTalk call ended.
pub fn dingtalk_call(api: &'static str, outcome: &'static str, took: Duration) {
    counter!(DINGTALK_CALLS, "api" => api, "outcome" => outcome).increment(1);
    histogram!(DINGTALK_DURATION, "api" => api).record(took.as_secs_f64());
}

/// One retry of a DingTalk call.
pub fn dingtalk_retry(api: &'static str, reason: &'static str) {
    counter!(DINGTALK_RETRIES, "api" => api, "reason" => reason).increment(1);
}

/// One access-token request ended.
pub fn token_refresh(ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    counter!(TOKEN_REFRESHES, "outcome" => outcome).increment(1);
}

/// Scrape-time gauges of the store.
pub fn store(size_bytes: u64, notices: Option<u64>) {
    gauge!(STORE_SIZE).set(size_bytes as f64);
    if let Some(n) = notices {
        gauge!(STORE_NOTICES).set(n as f64);
    }
}

/// Scrape-time gauge of DingTalk requests on the wire for one API.
pub fn dingtalk_in_flight(api: &'static str, n: u64) {
    gauge!(DINGTALK_IN_FLIGHT, "api" => api).set(n as f64);
}

/// Scrape-time gauge of @mentions being answered.
pub fn in_flight(n: usize) {
    gauge!(SUMMARIES_IN_FLIGHT).set(n as f64);
}

/// `readbot_events_total`.
pub const EVENTS: &str = "readbot_events_total";
/// `readbot_event_push_refused_total`.
pub const EVENT_PUSH_REFUSED: &str = "readbot_event_push_refused_total";
/// `readbot_event_trust`.
pub const EVENT_TRUST: &str = "readbot_event_trust";
/// `readbot_event_gaps_total`.
pub const EVENT_GAPS: &str = "readbot_event_gaps_total";
/// `readbot_receipt_reads_total`.
pub const RECEIPT_READS: &str = "readbot_receipt_reads_total";

/// One pushed event and what became of it.
pub fn event(kind: &'static str, via: &'static str, outcome: &'static str) {
    counter!(EVENTS, "type" => kind, "via" => via, "outcome" => outcome).increment(1);
}

/// An HTTP event push was refused before its payload was read.
pub fn event_push_refused(reason: &'static str) {
    counter!(EVENT_PUSH_REFUSED, "reason" => reason).increment(1);
}

/// Whether pushed reads are trusted alone right now.
pub fn event_trust(trusted: bool) {
    gauge!(EVENT_TRUST).set(if trusted { 1.0 } else { 0.0 });
}

/// A reconciliation found readers the events had missed.
pub fn event_gap() {
    counter!(EVENT_GAPS).increment(1);
}

/// A set of receipts took its reads from `events` or a `query`.
pub fn receipt_reads(from: &'static str) {
    counter!(RECEIPT_READS, "from" => from).increment(1);
}

// Health: panics survived, store failures, retention.

fn describe_health() {
    describe_counter!(
        WORKER_PANICS,
        "Answers that panicked; the worker logged the msgId and went on."
    );
    describe_counter!(
        STORE_WRITE_FAILURES,
        "Store writes (probe writes included) that failed."
    );
    describe_gauge!(
        STORE_FAILING,
        "1 while the store is failing and readbot refuses work it cannot record (callbacks and sends get 503)."
    );
    describe_gauge!(
        STORE_ENTRIES,
        "Entries held by the store, by kind (measured at scrape)."
    );
    describe_counter!(STORE_PRUNED, "Entries removed by retention, by kind.");
}

fn preregister_health() {
    counter!(WORKER_PANICS).increment(0);
    counter!(STORE_WRITE_FAILURES).increment(0);
    gauge!(STORE_FAILING).set(0.0);
    for kind in STORE_KINDS {
        counter!(STORE_PRUNED, "kind" => *kind).increment(0);
    }
}

/// Scrape-time gauge of the store's entries of one `kind` (one of [`STORE_KINDS`]).
pub fn store_entries(kind: &'static str, n: u64) {
    gauge!(STORE_ENTRIES, "kind" => kind).set(n as f64);
}

/// Retention removed `n` entries of one `kind` (one of [`STORE_KINDS`]).
pub fn store_pruned(kind: &'static str, n: usize) {
    counter!(STORE_PRUNED, "kind" => kind).increment(n as u64);
}

/// A store write failed: the store is failing.
pub fn store_write_failed() {
    counter!(STORE_WRITE_FAILURES).increment(1);
    gauge!(STORE_FAILING).set(1.0);
}

/// A probe write succeeded: the store is no longer failing.
pub fn store_writes_again() {
    gauge!(STORE_FAILING).set(0.0);
}

/// Scrape-time gauge: this month's billable calls of `api`.
pub fn billable_calls(api: &'static str, n: u64) {
    gauge!(BILLABLE_CALLS, "api" => api).set(n as f64);
}

/// Scrape-time gauges: the monthly budget and whether summaries save calls.
pub fn call_budget(budget: u64, saving: bool) {
    gauge!(CALL_BUDGET).set(budget as f64);
    gauge!(BUDGET_SAVING).set(if saving { 1.0 } else { 0.0 });
}

/// Answering one message panicked (the worker survived).
pub fn worker_panic() {
    counter!(WORKER_PANICS).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_renders_known_series() {
        let a = install().map(|h| h as *const _);
        let b = install().map(|h| h as *const _);
        assert_eq!(a, b);
        callback("accepted");
        dingtalk_call("robot.groupMessages.send", "ok", Duration::from_millis(20));
        let text = render().expect("recorder installed");
        assert!(text.contains("readbot_build_info{version="), "{text}");
        assert!(text.contains("readbot_callbacks_total{outcome=\"accepted\"}"));
        assert!(text.contains("readbot_callbacks_total{outcome=\"bad_signature\"} "));
        assert!(text.contains(
            "readbot_dingtalk_call_duration_seconds_bucket{api=\"robot.groupMessages.send\",le=\"0.025\"}"
        ));
    }
}
