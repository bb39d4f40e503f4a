//! Operations: `/metrics` counters move after a scenario, `/readyz` follows
//! the store and the DingTalk token.
//!
//! Every app in this binary shares one process-wide metrics recorder, and
//! tests run in parallel: assertions compare a scrape before and after, and
//! only ever ask for "at least this much more".

use crate::helpers::*;
use readbot::app::Application;
use readbot::dingtalk::client::DingTalkClient;
use readbot::domain::{MsgId, Notice, OpenConversationId, ProcessQueryKey};
use readbot::fake::{Api, Fault, GroupKind};
use readbot::store::memory::MemoryStore;
use readbot::store::{Claim, Store};
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

pub(crate) use readbot::store::flaky::FlakyStore;

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
