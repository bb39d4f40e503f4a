//! Secrets never reach the logs: a full scenario (notices, wrong tokens,
//! forged and genuine callbacks, summaries over session webhooks, an expired
//! session, a revoked access token, old-API calls with `?access_token=`,
//! faults and timeouts) runs with every log at TRACE captured into a buffer,
//! which is then searched for the app secret, every access token, the API
//! token, every session webhook (URL and `session=` value) and every valid
//! callback signature.

use crate::helpers::*;
use crate::reliability::{report, wait_idle};
use readbot::fake::{Api, FakeConfig, FakeDingTalk, Fault, GroupKind};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::Duration;

static CAPTURING: AtomicBool = AtomicBool::new(false);
static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

struct Sink;

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if CAPTURING.load(Ordering::SeqCst) {
            BUFFER
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A process-wide subscriber (also receiving `log` records) that records
/// everything at TRACE while [`CAPTURING`] is set and nothing otherwise, so
/// the other tests of this binary run as before.
fn install_capture() {
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    INSTALL.call_once(|| {
        let filter =
            tracing_subscriber::filter::DynFilterFn::new(|_, _| CAPTURING.load(Ordering::SeqCst));
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(|| Sink)
            .with_ansi(false)
            .with_span_events(FmtSpan::FULL)
            .with_filter(filter);
        // Another subscriber already installed would make the test vacuous.
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("this test binary installs no other global subscriber");
        // `log` records too, but not sled's: sled logs from crossbeam-epoch's
        // thread-exit cleanup, when the fmt layer's thread-local buffer may be
        // gone, and an event there aborts the whole test binary (as readbot's
        // own logging set-up in main.rs does).
        tracing_log::LogTracer::builder()
            .ignore_crate("sled")
            .ignore_crate("crossbeam")
            .init()
            .expect("no other logger");
    });
}

fn session_of(body: &Value) -> (String, String) {
    let url = body["sessionWebhook"]
        .as_str()
        .expect("webhook")
        .to_string();
    let session = url.split("session=").nth(1).expect("session").to_string();
    (url, session)
}

async fn current_token(fake: &FakeDingTalk) -> String {
    let c = fake.config();
    let v: Value = http_client()
        .post(format!("{}/v1.0/oauth2/accessToken", fake.base_url()))
        .json(&json!({"appKey": c.app_key, "appSecret": c.app_secret}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    v["accessToken"].as_str().expect("accessToken").to_string()
}

#[tokio::test]
async fn no_secret_reaches_the_logs_at_any_level() {
    install_capture();
    let app_secret = format!("AppSecret-{}", rand::random::<u64>());
    let api_token = format!("ApiToken-{}", rand::random::<u64>());
    let fake = FakeDingTalk::start(FakeConfig {
        app_secret: app_secret.clone(),
        ..FakeConfig::default()
    })
    .await
    .expect("fake");
    const GROUP: &str = "cidSecrets+/==";
    const PLAIN: &str = "cidSecretsPlain==";
    add_group(&fake, GROUP, GroupKind::Inner, &members(6));
    add_group(&fake, PLAIN, GroupKind::Plain, &members(4));
    let tmp = tempfile::tempdir().expect("tempdir");

    BUFFER.lock().expect("buffer").clear();
    CAPTURING.store(true, Ordering::SeqCst);
    let app = spawn_on(
        fake.clone(),
        &tmp.path().join("data"),
        &[("READBOT_API_TOKEN", api_token.as_str())],
    )
    .await;
    let mut secrets: Vec<(&str, String)> = vec![
        ("app secret", app_secret.clone()),
        ("API token", api_token.clone()),
    ];
    let api = |path: &str| format!("{}{path}", app.addr);

    // Notices through the API, and refused attempts.
    let mut keys = Vec::new();
    for (group, title) in [(GROUP, "Secret drill"), (PLAIN, "Plain drill")] {
        let r = app
            .http
            .post(api("/api/v1/notices"))
            .bearer_auth(&api_token)
            .json(&json!({"openConversationId": group, "title": title, "text": "read me", "author": "user0001"}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("json");
        keys.push(v["processQueryKey"].as_str().expect("key").to_string());
    }
    app.keys.lock().expect("keys").extend(keys.iter().cloned());
    fake.mark_read(&keys[0], &["user0002", "user0003"]);
    fake.mark_read(&keys[1], &["user0002", "user0003"]);
    let r = app
        .http
        .post(api("/api/v1/notices"))
        .bearer_auth(format!("{api_token}-wrong"))
        .json(&json!({"openConversationId": GROUP, "title": "t", "text": "x"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(api(&format!(
            "/api/v1/notices?openConversationId=c&access_token={api_token}"
        )))
        .bearer_auth(&api_token)
        .send()
        .await
        .expect("list");
    assert_eq!(r.status(), 200);
    secrets.push((
        "access token (before revocation)",
        current_token(&fake).await,
    ));

    // Callbacks: forged, then genuine ones answered over session webhooks.
    let forged = app.mention("sec-forged", GROUP, "user0001", "who read");
    let ts = now_ms().to_string();
    let r = app
        .post_callback_raw(
            Some(&ts),
            Some(&FakeDingTalk::sign(&ts, "guessed")),
            forged.to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status(), 401);
    let mut expected_replies = 0;
    let mut deliver = |body: Value, group: &'static str| {
        let (url, session) = session_of(&body);
        secrets.push(("session webhook URL", url));
        secrets.push(("session= value", session));
        let ts = now_ms().to_string();
        let sign = FakeDingTalk::sign(&ts, &app_secret);
        secrets.push(("valid callback sign", sign.clone()));
        expected_replies += 1;
        (body, ts, sign, group)
    };
    let mut runs = Vec::new();
    // 1. A plain summary over the session webhook.
    runs.push(deliver(
        app.mention("sec-1", GROUP, "user0001", "who read"),
        GROUP,
    ));
    // 2. Old-API name look-ups (?access_token=) for a plain group.
    runs.push(deliver(
        app.mention("sec-2", PLAIN, "user0001", "谁没读"),
        PLAIN,
    ));
    for (body, ts, sign, group) in runs.drain(..) {
        let r = app
            .post_callback_raw(Some(&ts), Some(&sign), body.to_string().into_bytes())
            .await;
        assert_eq!(r.status(), 200);
        let _ = group;
    }
    app.wait_replies(GROUP, 1).await;
    app.wait_replies(PLAIN, 1).await;
    assert!(wait_idle(&app).await);

    // 3. A revoked token mid-way, a failing and a slow query, an expired
    //    session and a session webhook that times out.
    fake.expire_tokens();
    fake.inject(
        Api::Query,
        Fault::status(500, "system.error", "Unknown system error"),
        1,
    );
    let b3 = app.mention("sec-3", GROUP, "user0001", "status");
    fake.expire_session(b3["sessionWebhook"].as_str().expect("url"));
    runs.push(deliver(b3, GROUP));
    for (body, ts, sign, _) in runs.drain(..) {
        let r = app
            .post_callback_raw(Some(&ts), Some(&sign), body.to_string().into_bytes())
            .await;
        assert_eq!(r.status(), 200);
    }
    app.wait_replies(GROUP, 2).await;
    assert!(wait_idle(&app).await);
    fake.inject(Api::SendBySession, Fault::Hang(Duration::from_secs(3)), 1);
    fake.inject(
        Api::UserGet,
        Fault::OldApiErr {
            errcode: 42001,
            errmsg: "access_token已过期".into(),
        },
        1,
    );
    runs.push(deliver(
        app.mention("sec-4", PLAIN, "user0004", "who read"),
        PLAIN,
    ));
    for (body, ts, sign, _) in runs.drain(..) {
        let r = app
            .post_callback_raw(Some(&ts), Some(&sign), body.to_string().into_bytes())
            .await;
        assert_eq!(r.status(), 200);
    }
    app.wait_replies(PLAIN, 2).await;
    assert!(wait_idle(&app).await);
    // Receipts through the API (query + roster + names).
    let enc: String = url::form_urlencoded::byte_serialize(keys[0].as_bytes()).collect();
    let r = app
        .http
        .get(api(&format!(
            "/api/v1/notices/{}/receipts",
            enc.replace('+', "%2B")
        )))
        .bearer_auth(&api_token)
        .send()
        .await
        .expect("receipts");
    assert_eq!(r.status(), 200);
    secrets.push((
        "access token (after revocation)",
        current_token(&fake).await,
    ));
    let (_fake, _tmp) = app.stop().await;
    CAPTURING.store(false, Ordering::SeqCst);
    assert_eq!(expected_replies, 4);

    let log = String::from_utf8_lossy(&BUFFER.lock().expect("buffer")).into_owned();
    let lines = log.lines().count();
    // The capture really saw a TRACE-level scenario.
    assert!(log.contains("readbot listening"), "capture is empty");
    assert!(log.contains("TRACE"), "nothing at TRACE was captured");
    assert!(log.contains("dingtalk"), "no DingTalk call was logged");
    let mut found = Vec::new();
    for (what, value) in &secrets {
        assert!(value.len() >= 8, "{what} is too short to search for");
        if let Some(at) = log.find(value.as_str()) {
            let start = log[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = log[at..].find('\n').map_or(log.len(), |i| at + i);
            found.push(format!("{what}: {}", &log[start..end]));
        }
    }
    report(&format!(
        "log lines captured at TRACE: {lines}, secrets searched: {}, found: {}",
        secrets.len(),
        found.len()
    ));
    assert!(
        found.is_empty(),
        "secrets in the logs:\n{}",
        found.join("\n")
    );
}
