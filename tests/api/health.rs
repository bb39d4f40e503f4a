//! A full disk, a broken store or a lost `201` must not look healthy: the
//! store failing makes readbot refuse work it cannot record (503) and say so
//! in `/readyz`, it takes work again by itself once writes succeed, a
//! failure sled keeps for good stops readbot with an error, and a retried
//! send with the same `Idempotency-Key` is not sent twice.

use crate::helpers::*;
use crate::ops::{readyz, FlakyStore};
use readbot::app::Application;
use readbot::dingtalk::client::DingTalkClient;
use readbot::fake::{Api, FakeDingTalk, GroupKind, Mention};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

const GROUP: &str = "cidHealth==";

struct Running {
    addr: String,
    fake: FakeDingTalk,
    store: Arc<FlakyStore>,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _tmp: tempfile::TempDir,
}

async fn start() -> Running {
    let fake = start_fake().await;
    add_group(&fake, GROUP, GroupKind::Inner, &members(3));
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config_for(&fake, &tmp.path().join("data"), &[]);
    let client = DingTalkClient::new(config.dingtalk.clone()).expect("client");
    let store = Arc::new(FlakyStore::default());
    let app = Application::build_with(config, Arc::new(client.clone()), store.clone())
        .await
        .expect("builds")
        .with_token_check(client);
    let addr = format!("http://{}", app.local_addr());
    let (stop, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        fake,
        store,
        stop,
        served,
        _tmp: tmp,
    }
}

impl Running {
    async fn callback(&self, msg_id: &str) -> u16 {
        let mut body = self
            .fake
            .mention_body(&Mention::new(GROUP, "user0001", "Ann", "help"));
        body["msgId"] = Value::from(msg_id);
        let ts = now_ms().to_string();
        let sign = FakeDingTalk::sign(&ts, &self.fake.config().app_secret);
        http_client()
            .post(format!("{}/dingtalk/callback", self.addr))
            .header("content-type", "application/json")
            .header("timestamp", ts)
            .header("sign", sign)
            .body(body.to_string())
            .send()
            .await
            .expect("callback")
            .status()
            .as_u16()
    }

    /// `POST /api/v1/notices` with an optional `Idempotency-Key`:
    /// (status, `Idempotent-Replayed` header, body).
    async fn send(&self, key: Option<&str>, title: &str) -> (u16, String, Value) {
        let mut req = http_client()
            .post(format!("{}/api/v1/notices", self.addr))
            .bearer_auth(API_TOKEN)
            .json(&json!({
                "openConversationId": GROUP, "title": title,
                "text": format!("### {title}"), "msgtype": "markdown"
            }));
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.expect("send");
        let status = r.status().as_u16();
        let replayed = r
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, replayed, r.json().await.expect("json"))
    }

    fn replies(&self) -> usize {
        self.fake
            .group_view(GROUP)
            .iter()
            .filter(|m| m.process_query_key.is_none())
            .count()
    }

    async fn stop(self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.served.await.expect("join")
    }
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..120 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("not within 30 s: {what}");
}

/// The disk fills up: `/readyz` turns 503 with the cause, callbacks and
/// sends are refused with 503 (nothing claimed, nothing sent), `/healthz`
/// stays alive; space returns: readbot takes work again by itself.
#[tokio::test]
async fn a_full_disk_refuses_work_and_recovers_by_itself() {
    let app = start().await;
    let (status, body) = readyz(&app.addr).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, first) = app.send(Some("order-1"), "Before").await;
    assert_eq!(status, 201, "{first}");
    let sends_before = app.fake.calls(Api::Send);

    app.store.full.store(true, Ordering::SeqCst);
    // Within one probe interval readiness proves a write and fails.
    let mut last = Value::Null;
    eventually("readyz reports the full disk", async || {
        let (status, body) = readyz(&app.addr).await;
        last = body;
        status == 503
    })
    .await;
    let store = &last["checks"]["store"];
    assert_eq!(store["ok"], false, "{last}");
    assert!(
        store["error"]
            .as_str()
            .unwrap_or("")
            .contains("No space left on device"),
        "{last}"
    );
    assert!(
        store["last_error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("os error 28"),
        "{last}"
    );

    // Work readbot cannot record is refused, not acknowledged.
    for i in 0..5 {
        assert_eq!(app.callback(&format!("full-{i}")).await, 503);
    }
    let (status, _, body) = app.send(Some("order-2"), "During").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let (status, _, body) = app.send(None, "During, no key").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        app.fake.calls(Api::Send),
        sends_before,
        "nothing is sent while the intent cannot be recorded"
    );
    let health = http_client()
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200, "alive, just not ready");

    // Space returns: ready again without a restart, the last error still shown.
    app.store.full.store(false, Ordering::SeqCst);
    eventually("readyz recovers", async || readyz(&app.addr).await.0 == 200).await;
    let (_, body) = readyz(&app.addr).await;
    assert!(
        body["checks"]["store"]["last_error"]["message"].is_string(),
        "{body}"
    );
    assert_eq!(app.callback("after-1").await, 200);
    eventually("the callback after recovery is answered", async || {
        app.replies() == 1
    })
    .await;
    // The refused callbacks were never claimed: DingTalk's retry is answered.
    assert_eq!(app.callback("full-0").await, 200);
    eventually("the retried callback is answered", async || {
        app.replies() == 2
    })
    .await;
    let (status, _, body) = app.send(Some("order-2"), "During").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(app.fake.calls(Api::Send), sends_before + 1);
    app.stop().await.expect("clean stop");
}

/// A lost `201`: the caller retries with the same key and gets the recorded
/// notice; DingTalk saw one send. A different notice under that key is 422.
#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_is_not_sent_twice() {
    let app = start().await;
    let (status, replayed, first) = app.send(Some("order-7"), "Drill").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(replayed, "false");
    assert_eq!(first["idempotencyKey"], "order-7");
    let (status, replayed, again) = app.send(Some("order-7"), "Drill").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(replayed, "true");
    assert_eq!(again["processQueryKey"], first["processQueryKey"]);
    assert_eq!(again["sentAt"], first["sentAt"]);
    assert_eq!(app.fake.calls(Api::Send), 1);
    assert_eq!(
        app.fake.group_view(GROUP).len(),
        1,
        "the group saw one notice"
    );

    let (status, _, body) = app.send(Some("order-7"), "Another").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    // Without a key each request is its own send, with a generated key.
    let (status, _, body) = app.send(None, "Drill").await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["idempotencyKey"]
            .as_str()
            .is_some_and(|k| k.starts_with("rb-")),
        "{body}"
    );
    // A malformed key is refused before anything is done.
    let (status, _, body) = app.send(Some(&"k".repeat(129)), "Drill").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("Idempotency-Key"),
        "{body}"
    );
    assert_eq!(app.fake.calls(Api::Send), 2);
    app.stop().await.expect("clean stop");
}

/// sled 0.34 keeps its first I/O error for good: readbot stops (refusing
/// work meanwhile) and returns an error naming the cause, so `readbot serve`
/// exits 1 and its supervisor restarts it.
#[tokio::test]
async fn a_failure_the_store_keeps_for_good_stops_readbot_with_an_error() {
    let app = start().await;
    app.store.for_good.store(true, Ordering::SeqCst);
    app.store.full.store(true, Ordering::SeqCst);
    let (status, body) = readyz(&app.addr).await;
    assert_eq!(status, 503, "{body}");
    let Running { served, stop, .. } = app;
    let result = tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("readbot stops by itself")
        .expect("join");
    drop(stop);
    let err = result.expect_err("an error, for exit code 1");
    let text = err.to_string();
    assert!(text.contains("os error 28"), "{text}");
    assert!(text.contains("supervisor restarts it"), "{text}");
}
