//! Operations: `/metrics` counters move after a scenario, `/readyz` follows
//! the store and the DingTalk token.
//!
//! Every app in this binary shares one process-wide metrics recorder, and
//! tests run in parallel: assertions compare a scrape before and after, and
//! only ever ask for "at least this much more".

use crate::helpers::*;
use async_trait::async_trait;
use readbot::app::Application;
use readbot::dingtalk::client::DingTalkClient;
use readbot::domain::{
    BillingMonth, EpochMillis, EventTrust, IdempotencyKey, MsgId, Notice, OpenConversationId,
    ProcessQueryKey, ReadRecord, UserId,
};
use readbot::fake::{Api, Fault, GroupKind};
use readbot::store::memory::MemoryStore;
use readbot::store::{
    Claim, Cutoffs, EntryCounts, Pruned, SendRecord, SignatureUse, Store, StoreError,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

const GROUP: &str = "cidOpsGroup+/==";

/// One sample of the Prometheus text format.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value.parse().expect("numeric sample value");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label pair");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (n.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// Sum of the samples named `name` whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let r = app
        .http
        .get(format!("{}/metrics", app.addr))
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    parse_prometheus(&r.text().await.expect("body"))
}

pub(crate) async fn readyz(addr: &str) -> (u16, Value) {
    let r = http_client()
        .get(format!("{addr}/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = r.status().as_u16();
    (status, r.json().await.expect("readyz json"))
}

#[tokio::test]
async fn metrics_move_after_a_scenario() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(5));
    let before = scrape(&app).await;

    let key = app.notice(GROUP, "Fire drill", "user0001").await;
    app.fake.mark_read(&key, &["user0002", "user0003"]);
    // One transient failure of the read query: retried with backoff.
    app.fake.inject(Api::Query, Fault::GatewayTimeout, 1);
    let body = app.mention("m-ops-1", GROUP, "user0001", "who read my last notice?");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let reply = app.one_reply(GROUP).await;
    assert!(reply.contains("2/5"), "{reply}");
    // The same delivery again: a de-dup hit.
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    // A forged callback.
    let forged = app
        .post_callback_raw(
            Some(&now_ms().to_string()),
            Some("bm9wZQ=="),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(forged.status(), 401);
    // A summary through the API.
    let r = app
        .get(&format!(
            "/api/v1/notices/{}/receipts",
            url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(r.status(), 200);

    let after = scrape(&app).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    for (name, labels) in [
        ("readbot_callbacks_total", vec![("outcome", "accepted")]),
        ("readbot_callbacks_total", vec![("outcome", "duplicate")]),
        (
            "readbot_callbacks_total",
            vec![("outcome", "bad_signature")],
        ),
        ("readbot_dedup_hits_total", vec![]),
        (
            "readbot_summaries_total",
            vec![("via", "chat"), ("outcome", "ok")],
        ),
        (
            "readbot_summaries_total",
            vec![("via", "api"), ("outcome", "ok")],
        ),
        (
            "readbot_summary_duration_seconds_count",
            vec![("via", "chat")],
        ),
        ("readbot_replies_total", vec![("delivery", "session")]),
        ("readbot_notices_sent_total", vec![("outcome", "ok")]),
        (
            "readbot_dingtalk_calls_total",
            vec![("api", "robot.groupMessages.send"), ("outcome", "ok")],
        ),
        (
            "readbot_dingtalk_calls_total",
            vec![("api", "robot.groupMessages.query"), ("outcome", "ok")],
        ),
        (
            "readbot_dingtalk_call_duration_seconds_count",
            vec![("api", "robot.groupMessages.query")],
        ),
        (
            "readbot_dingtalk_call_duration_seconds_bucket",
            vec![("api", "robot.groupMessages.query"), ("le", "+Inf")],
        ),
        (
            "readbot_dingtalk_retries_total",
            vec![("api", "robot.groupMessages.query"), ("reason", "backoff")],
        ),
        (
            "readbot_dingtalk_token_refreshes_total",
            vec![("outcome", "ok")],
        ),
    ] {
        assert!(
            grew(name, &labels) >= 1.0,
            "{name}{labels:?} did not grow: before {}, after {}",
            value(&before, name, &labels),
            value(&after, name, &labels)
        );
    }
    assert_eq!(value(&after, "readbot_build_info", &[]), 1.0);
    assert!(value(&after, "readbot_store_size_bytes", &[]) > 0.0);
    assert!(value(&after, "readbot_store_notices", &[]) >= 1.0);
    assert!(after
        .iter()
        .any(|s| s.name == "readbot_summaries_in_flight"));
    assert!(after.iter().any(|s| s.name == "readbot_dingtalk_in_flight"
        && s.labels.get("api").map(String::as_str) == Some("robot.groupMessages.query")));
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_ready_with_store_and_token_and_healthz_stays_alive_without_a_token() {
    let app = spawn_app().await;
    let (status, body) = readyz(&app.addr).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["store"]["ok"], true);
    assert_eq!(body["checks"]["dingtalk"]["ok"], true);

    // Wrong secret: alive, not ready, and the reason is DingTalk's code.
    let bad = spawn_app_with(&[("DINGTALK_APP_SECRET", "not-the-secret-0000")]).await;
    let (status, body) = readyz(&bad.addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["store"]["ok"], true);
    let why = body["checks"]["dingtalk"]["error"].as_str().unwrap_or("");
    assert!(why.contains("invalidClientIdOrSecret"), "{body}");
    assert!(!body.to_string().contains("not-the-secret-0000"));
    let health = bad
        .http
        .get(format!("{}/healthz", bad.addr))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    app.stop().await;
    bad.stop().await;
}

/// A store that can be made to fail, like a disk that went away
/// (`broken`), a disk that is full (`full`: every durable write fails with
/// ENOSPC, reads work), or sled after its first I/O error (`for_good`).
#[derive(Default)]
pub(crate) struct FlakyStore {
    pub(crate) inner: MemoryStore,
    pub(crate) broken: AtomicBool,
    /// Only `flush` fails (writes land in memory but cannot be made durable).
    pub(crate) flush_broken: AtomicBool,
    /// Durable writes fail with "No space left on device" (os error 28).
    pub(crate) full: AtomicBool,
    /// With `full`: the failure is permanent (as sled 0.34 reports it).
    pub(crate) for_good: AtomicBool,
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
        roster: &readbot::domain::CachedRoster,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.cache_roster(group, roster).await
    }
    async fn cached_roster(
        &self,
        group: &OpenConversationId,
    ) -> Result<Option<readbot::domain::CachedRoster>, StoreError> {
        self.check()?;
        self.inner.cached_roster(group).await
    }
    async fn record_reminder(
        &self,
        key: &ProcessQueryKey,
        reminder: &readbot::domain::Reminder,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_reminder(key, reminder).await
    }
    async fn reminders(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Vec<readbot::domain::Reminder>, StoreError> {
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
    async fn add_follow_ups(&self, list: &[readbot::domain::FollowUp]) -> Result<(), StoreError> {
        self.check_durable()?;
        self.inner.add_follow_ups(list).await
    }
    async fn follow_ups(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Vec<readbot::domain::FollowUp>, StoreError> {
        self.check()?;
        self.inner.follow_ups(key).await
    }
    async fn due_follow_ups(
        &self,
        state: readbot::domain::FollowUpState,
        due_by: EpochMillis,
        limit: usize,
    ) -> Result<Vec<readbot::domain::FollowUp>, StoreError> {
        self.check()?;
        self.inner.due_follow_ups(state, due_by, limit).await
    }
    async fn set_follow_up_state(
        &self,
        key: &ProcessQueryKey,
        id: &readbot::domain::FollowUpId,
        change: readbot::store::StateChange<'_>,
    ) -> Result<Option<readbot::domain::FollowUp>, StoreError> {
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
        self.check_durable()?;
        if self.flush_broken.load(Ordering::SeqCst) {
            return Err(StoreError::message("I/O error: fsync failed"));
        }
        self.inner.probe_write(now).await
    }
}

#[tokio::test]
async fn readyz_fails_while_the_store_fails_and_recovers() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config_for(&fake, &tmp.path().join("data"), &[]);
    let client = DingTalkClient::new(config.dingtalk.clone()).expect("client");
    let store = Arc::new(FlakyStore::default());
    let app = Application::build_with(config, Arc::new(client.clone()), store.clone())
        .await
        .expect("builds")
        .with_token_check(client);
    let addr = format!("http://{}", app.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let (status, body) = readyz(&addr).await;
    assert_eq!(status, 200, "{body}");

    store.broken.store(true, Ordering::SeqCst);
    let (status, body) = readyz(&addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["store"]["ok"], false);
    assert!(
        body["checks"]["store"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("data folder is gone"),
        "{body}"
    );
    assert_eq!(body["checks"]["dingtalk"]["ok"], true);
    // Metrics are still served (without the notice count).
    let m = http_client()
        .get(format!("{addr}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(m.status(), 200);

    store.broken.store(false, Ordering::SeqCst);
    let (status, body) = readyz(&addr).await;
    assert_eq!(status, 200, "{body}");

    let _ = tx.send(());
    served.await.expect("join").expect("served");
}

#[tokio::test]
async fn readyz_without_a_dingtalk_client_checks_only_the_store() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config_for(&fake, &tmp.path().join("data"), &[]);
    let client = DingTalkClient::new(config.dingtalk.clone()).expect("client");
    let app = Application::build_with(config, Arc::new(client), Arc::new(MemoryStore::default()))
        .await
        .expect("builds");
    let addr = format!("http://{}", app.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let (status, body) = readyz(&addr).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["checks"]["dingtalk"]["skipped"].is_string(), "{body}");
    assert_eq!(fake.calls(Api::Token), 0);
    let _ = tx.send(());
    served.await.expect("join").expect("served");
}

/// A claim that cannot be made durable is never acted on: the callback is
/// acknowledged, but nothing is answered on a claim a crash could forget
/// (a redelivery after a restart would be answered a second time).
#[tokio::test]
async fn nothing_is_answered_when_the_claim_cannot_be_made_durable() {
    let fake = start_fake().await;
    add_group(&fake, "cidFsync==", GroupKind::Inner, &members(3));
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config_for(&fake, &tmp.path().join("data"), &[]);
    let client = DingTalkClient::new(config.dingtalk.clone()).expect("client");
    let store = Arc::new(FlakyStore {
        flush_broken: AtomicBool::new(true),
        ..FlakyStore::default()
    });
    let app = Application::build_with(config, Arc::new(client), store.clone())
        .await
        .expect("builds");
    let addr = format!("http://{}", app.local_addr());
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let post = |msg_id: &'static str| {
        let body = fake.mention_body(&readbot::fake::Mention::new(
            "cidFsync==",
            "user0001",
            "Ann",
            "help",
        ));
        let mut body = body;
        body["msgId"] = Value::from(msg_id);
        let ts = now_ms().to_string();
        let sign = readbot::fake::FakeDingTalk::sign(&ts, &fake.config().app_secret);
        let addr = addr.clone();
        async move {
            http_client()
                .post(format!("{addr}/dingtalk/callback"))
                .header("content-type", "application/json")
                .header("timestamp", ts)
                .header("sign", sign)
                .body(body.to_string())
                .send()
                .await
                .expect("callback")
                .status()
        }
    };
    assert_eq!(post("fsync-1").await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        fake.calls(Api::Any),
        0,
        "answered on a claim that is not durable"
    );
    // The claim is held in memory: a redelivery is a duplicate, not answered either.
    assert_eq!(
        store
            .claim_message(&MsgId::parse("fsync-1").expect("id"), now_ms())
            .await
            .expect("claim"),
        Claim::InFlight
    );
    // Once the disk works again, new messages are answered. Until a probe
    // write succeeds (at most one per 5 s) callbacks are refused with 503,
    // as DingTalk retries them: post like DingTalk would, bounded.
    store.flush_broken.store(false, Ordering::SeqCst);
    let mut status = 0;
    for _ in 0..40 {
        status = post("fsync-2").await.as_u16();
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(status, 200);
    let mut answered = false;
    for _ in 0..200 {
        if !fake.group_view("cidFsync==").is_empty() {
            answered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(answered, "no reply once flushing works again");
    let _ = tx.send(());
    served.await.expect("join").expect("served");
}

/// A read event that cannot be stored is acknowledged `LATER` (DingTalk
/// redelivers it); once the store is back, the redelivery is stored and
/// acknowledged `SUCCESS`.
#[tokio::test]
async fn a_read_event_the_store_cannot_take_is_acked_later() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config_for(
        &fake,
        &tmp.path().join("data"),
        &[
            ("READBOT_MODE", "stream"),
            ("READBOT_STREAM_BACKOFF_BASE_MS", "20"),
            ("READBOT_STREAM_BACKOFF_MAX_MS", "200"),
        ],
    );
    let client = DingTalkClient::new(config.dingtalk.clone()).expect("client");
    let store = Arc::new(FlakyStore::default());
    let notice = Notice {
        key: ProcessQueryKey::parse("keyOfANotice==").expect("key"),
        group: OpenConversationId::parse("cidG").expect("group"),
        robot_code: readbot::domain::RobotCode::parse(fake.config().robot_code.clone())
            .expect("robot"),
        title: "t".into(),
        author: None,
        author_name: None,
        msg_key: "sampleMarkdown".into(),
        sent_at: readbot::domain::now_millis(),
    };
    store.record_notice(&notice).await.expect("recorded");
    let app = Application::build_with(config, Arc::new(client), store.clone())
        .await
        .expect("builds");
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let limit = std::time::Duration::from_secs(20);
    assert!(fake.wait_until(limit, |f| f.live_streams() >= 1).await);
    let status = |id: &str| {
        let acks = fake.acks_for(id);
        acks.first().map(|a| {
            let v: Value = serde_json::from_str(&a.data).expect("ack data");
            v["status"].as_str().unwrap_or_default().to_owned()
        })
    };

    store.broken.store(true, Ordering::SeqCst);
    let first = fake
        .push_read_event("keyOfANotice==", Some("u1"), 5, "ev1")
        .expect("up")
        .message_id;
    assert!(
        fake.wait_until(limit, |f| !f.acks_for(&first).is_empty())
            .await
    );
    assert_eq!(status(&first).as_deref(), Some("LATER"));
    assert!(store
        .inner
        .reads(&notice.key)
        .await
        .expect("reads")
        .is_empty());

    store.broken.store(false, Ordering::SeqCst);
    let again = fake
        .push_read_event("keyOfANotice==", Some("u1"), 5, "ev1")
        .expect("up")
        .message_id;
    assert!(
        fake.wait_until(limit, |f| !f.acks_for(&again).is_empty())
            .await
    );
    assert_eq!(status(&again).as_deref(), Some("SUCCESS"));
    assert_eq!(
        store.inner.reads(&notice.key).await.expect("reads").len(),
        1
    );
    let _ = tx.send(());
    let _ = served.await;
}
