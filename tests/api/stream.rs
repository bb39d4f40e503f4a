//! Stream mode: readbot dials out to the fake DingTalk's Stream gateway.
//! Every assertion is on what the gateway or the group saw.

use crate::helpers::*;
use readbot::dingtalk::stream::backoff::Backoff;
use readbot::fake::{Api, FakeDingTalk, Fault, GroupKind, Mention, Via};
use serde_json::{json, Value};
use std::time::Duration;

const GROUP: &str = "cidStreamGroup+/==";
/// Generous bound for anything to happen (never a speed assertion).
const LIMIT: Duration = Duration::from_secs(20);

/// Stream mode with tiny delays; the zombie bound is loose so that a busy CI
/// machine does not see false zombies.
const STREAM: &[(&str, &str)] = &[
    ("READBOT_MODE", "stream"),
    ("READBOT_STREAM_BACKOFF_BASE_MS", "20"),
    ("READBOT_STREAM_BACKOFF_MAX_MS", "200"),
    ("READBOT_STREAM_PING_INTERVAL_MS", "200"),
    ("READBOT_STREAM_IDLE_TIMEOUT_MS", "5000"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = STREAM.to_vec();
    v.extend_from_slice(extra);
    v
}

/// Waits until the gateway has seen `n` connections and one is live.
async fn connected(fake: &FakeDingTalk, n: usize) {
    let ok = fake
        .wait_until(LIMIT, |f| {
            f.stream_connections().len() >= n && f.live_streams() >= 1
        })
        .await;
    assert!(
        ok,
        "expected {n} connections, gateway saw {:#?}",
        fake.stream_connections()
    );
}

async fn stream_app(extra: &[(&'static str, &'static str)]) -> TestApp {
    let app = spawn_app_with(&with(extra)).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(5));
    connected(&app.fake, 1).await;
    app
}

fn mention(msg_id: &str, sender: &str, text: &str) -> Mention {
    Mention {
        msg_id: msg_id.into(),
        group: GROUP.into(),
        sender: sender.into(),
        sender_nick: format!("nick-{sender}"),
        text: text.into(),
        session_ttl: Duration::from_secs(5400),
    }
}

async fn healthz(app: &TestApp) -> Value {
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// Polls `/healthz` until `ok` holds (bounded); returns the last answer.
async fn healthz_until(app: &TestApp, ok: impl Fn(&Value) -> bool) -> Value {
    let end = std::time::Instant::now() + LIMIT;
    loop {
        let h = healthz(app).await;
        if ok(&h) || std::time::Instant::now() >= end {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_ack(fake: &FakeDingTalk, message_id: &str) -> readbot::fake::StreamAck {
    let ok = fake
        .wait_until(LIMIT, |f| !f.acks_for(message_id).is_empty())
        .await;
    assert!(
        ok,
        "no ack for {message_id}; acks: {:#?}",
        fake.stream_acks()
    );
    let acks = fake.acks_for(message_id);
    assert_eq!(acks.len(), 1, "exactly one ack per frame: {acks:#?}");
    acks[0].clone()
}

#[tokio::test]
async fn mention_over_the_gateway_is_answered_on_the_session_webhook() {
    let app = stream_app(&[]).await;
    let key = app.notice(GROUP, "Fire drill", "user0001").await;
    app.fake.mark_read(&key, &["user0002", "user0003"]);

    let pushed = app
        .fake
        .push_mention(&mention("s-1", "user0001", "who read my last notice?"))
        .expect("a live connection");
    let ack = wait_ack(&app.fake, &pushed.message_id).await;
    assert_eq!(ack.code, 200);
    assert_eq!(ack.content_type.as_deref(), Some("application/json"));
    assert_eq!(ack.frame_type.as_deref(), Some("CALLBACK"));
    let data: Value = serde_json::from_str(&ack.data).expect("ack data is JSON");
    assert!(data.is_object(), "{data}");

    let replies = app.wait_replies(GROUP, 1).await;
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(replies[0].via, Via::Session);
    assert!(
        replies[0].text.contains("Fire drill"),
        "{}",
        replies[0].text
    );
    assert!(replies[0].text.contains("2/5"), "{}", replies[0].text);

    // The open call as documented.
    let opens = app.fake.stream_opens();
    let open = &opens[0];
    assert_eq!(open.client_id, app.fake.config().app_key);
    assert_eq!(open.accept.as_deref(), Some("application/json"));
    assert!(open.subscriptions.contains(&(
        "CALLBACK".to_string(),
        "/v1.0/im/bot/messages/get".to_string()
    )));
    assert!(open
        .subscriptions
        .contains(&("EVENT".to_string(), "*".to_string())));
    let ua = open.ua.clone().unwrap_or_default();
    assert!(
        ua.contains("readbot") && ua.contains(env!("CARGO_PKG_VERSION")),
        "{ua}"
    );

    // Health shows the connection; the HTTP callback route is off.
    let h = healthz(&app).await;
    assert_eq!(h["mode"], "stream");
    assert_eq!(h["stream"]["state"], "connected", "{h}");
    assert_eq!(h["stream"]["connections"], 1, "{h}");
    assert_eq!(h["stream"]["botMessages"], 1, "{h}");
    let body = app.mention("cb-1", GROUP, "user0001", "help");
    assert_eq!(app.post_callback_signed(&body).await.status(), 404);
    assert!(app.fake.stream_bad_messages().is_empty());
}

#[tokio::test]
async fn pings_are_answered_with_the_same_opaque_data_and_keepalive_pings_flow() {
    let app = stream_app(&[]).await;
    for _ in 0..3 {
        let pings = app.fake.ping_streams();
        assert_eq!(pings.len(), 1);
        let ack = wait_ack(&app.fake, &pings[0].message_id).await;
        assert_eq!(ack.code, 200);
        assert_eq!(ack.frame_type.as_deref(), Some("SYSTEM"));
        assert_eq!(
            ack.data, pings[0].data,
            "the ping's data comes back verbatim"
        );
    }
    // readbot's own WebSocket pings (every 200 ms here).
    assert!(
        app.fake
            .wait_until(LIMIT, |f| f.stream_connections()[0].client_pings >= 2)
            .await
    );
    assert_eq!(app.fake.stream_connections().len(), 1, "no reconnects");
}

#[tokio::test]
async fn a_disconnect_frame_leads_to_a_new_connection_with_a_new_ticket() {
    let app = stream_app(&[]).await;
    // The gateway would only close after a minute: readbot must go by itself.
    app.fake.set_disconnect_grace(Duration::from_secs(60));
    assert_eq!(app.fake.disconnect_streams("connection is expired"), 1);
    connected(&app.fake, 2).await;
    assert!(
        app.fake
            .wait_until(LIMIT, |f| f.stream_connections()[0].closed)
            .await,
        "readbot closes the old connection itself"
    );
    let conns = app.fake.stream_connections();
    let opens = app.fake.stream_opens();
    assert!(opens.len() >= 2);
    let mut tickets: Vec<&str> = conns.iter().map(|c| c.ticket.as_str()).collect();
    tickets.sort();
    tickets.dedup();
    assert_eq!(tickets.len(), conns.len(), "a ticket is never reused");
    assert_eq!(conns[1].ticket, opens[1].ticket);

    let pushed = app
        .fake
        .push_mention(&mention("s-after-disconnect", "user0001", "help"))
        .expect("live");
    assert_ne!(pushed.connection, conns[0].id);
    assert_eq!(wait_ack(&app.fake, &pushed.message_id).await.code, 200);
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("list"), "help expected: {text}");
    let h = healthz(&app).await;
    assert!(
        h["stream"]["lastDisconnect"]
            .as_str()
            .unwrap_or_default()
            .contains("connection is expired"),
        "{h}"
    );
}

#[tokio::test]
async fn a_silent_drop_leads_to_a_new_connection_and_no_lost_command() {
    let app = stream_app(&[]).await;
    assert_eq!(app.fake.drop_streams(), 1);
    connected(&app.fake, 2).await;
    let conns = app.fake.stream_connections();
    assert_ne!(conns[0].ticket, conns[1].ticket);
    let pushed = app
        .fake
        .push_mention(&mention("s-after-drop", "user0002", "help"))
        .expect("live");
    assert_eq!(wait_ack(&app.fake, &pushed.message_id).await.code, 200);
    app.one_reply(GROUP).await;
}

#[tokio::test]
async fn a_zombie_connection_is_detected_and_its_socket_released() {
    let app = stream_app(&[
        ("READBOT_STREAM_PING_INTERVAL_MS", "100"),
        ("READBOT_STREAM_IDLE_TIMEOUT_MS", "600"),
    ])
    .await;
    assert_eq!(app.fake.stall_streams(), 1);
    connected(&app.fake, 2).await;
    // The stalled socket ends only when readbot closes its side.
    assert!(
        app.fake
            .wait_until(LIMIT, |f| f.stream_connections()[0].closed)
            .await,
        "readbot must drop the zombie's socket"
    );
    let h = healthz(&app).await;
    let last = h["stream"]["lastDisconnect"].as_str().unwrap_or_default();
    assert!(last.contains("no frame"), "{h}");
    let pushed = app
        .fake
        .push_mention(&mention("s-after-zombie", "user0003", "help"))
        .expect("live");
    assert_eq!(wait_ack(&app.fake, &pushed.message_id).await.code, 200);
    app.one_reply(GROUP).await;
}

#[tokio::test]
async fn refused_tickets_back_off_instead_of_spinning() {
    let fake = start_fake().await;
    add_group(&fake, GROUP, GroupKind::Inner, &members(3));
    fake.refuse_tickets(4);
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = with(&[
        ("READBOT_STREAM_BACKOFF_BASE_MS", "40"),
        ("READBOT_STREAM_BACKOFF_MAX_MS", "200"),
    ]);
    let app = spawn_on(fake, &tmp.path().join("data"), &env).await;
    connected(&app.fake, 1).await;

    // One open call per attempt, each with a fresh ticket, each refused once.
    let opens = app.fake.stream_opens();
    assert_eq!(opens.len(), 5, "4 refused attempts + 1 good one");
    assert_eq!(app.fake.calls(Api::GatewayOpen), 5);
    assert_eq!(app.fake.refused_handshakes(), 4);
    let mut tickets: Vec<&str> = opens.iter().map(|o| o.ticket.as_str()).collect();
    tickets.sort();
    tickets.dedup();
    assert_eq!(tickets.len(), 5);
    // Lower bounds only: attempt k+1 waits at least half the k-th step
    // (40, 80, 160, 200 ms steps), whatever the machine's speed.
    let b = Backoff::new(Duration::from_millis(40), Duration::from_millis(200));
    for k in 1..opens.len() {
        let gap = opens[k].at.duration_since(opens[k - 1].at);
        let min = b.min_delay(u32::try_from(k).unwrap());
        assert!(gap >= min, "attempt {k}: waited {gap:?} < {min:?}");
    }
    let h = healthz_until(&app, |h| h["stream"]["state"] == "connected").await;
    assert_eq!(h["stream"]["state"], "connected", "{h}");
    assert!(
        h["stream"]["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{h}"
    );
    let pushed = app
        .fake
        .push_mention(&mention("s-after-refusals", "user0001", "help"))
        .expect("live");
    assert_eq!(wait_ack(&app.fake, &pushed.message_id).await.code, 200);
    app.one_reply(GROUP).await;
}

#[tokio::test]
async fn a_healthy_connection_reconnects_at_once_after_disconnect() {
    // A backoff of at least 30 s would show; the healthy connection skips it.
    let app = stream_app(&[
        ("READBOT_STREAM_BACKOFF_BASE_MS", "60000"),
        ("READBOT_STREAM_BACKOFF_MAX_MS", "60000"),
        ("READBOT_STREAM_HEALTHY_AFTER_MS", "1"),
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.fake.disconnect_streams("connection is expired");
    connected(&app.fake, 2).await;
    let h = healthz(&app).await;
    assert_eq!(h["stream"]["consecutiveFailures"], 0, "{h}");
}

#[tokio::test]
async fn the_backoff_starts_over_after_a_healthy_period() {
    let fake = start_fake().await;
    add_group(&fake, GROUP, GroupKind::Inner, &members(3));
    fake.refuse_tickets(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let env = with(&[("READBOT_STREAM_HEALTHY_AFTER_MS", "300")]);
    let app = spawn_on(fake, &tmp.path().join("data"), &env).await;
    connected(&app.fake, 1).await;
    let h = healthz(&app).await;
    assert_eq!(h["stream"]["consecutiveFailures"], 3, "{h}");
    // Up for longer than the healthy period, then dropped: one failure, not four.
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.fake.drop_streams();
    connected(&app.fake, 2).await;
    let h = healthz_until(&app, |h| h["stream"]["connections"] == 2).await;
    assert_eq!(h["stream"]["consecutiveFailures"], 1, "{h}");
    assert_eq!(h["stream"]["connections"], 2, "{h}");
}

#[tokio::test]
async fn open_call_errors_back_off_and_recover() {
    let fake = start_fake().await;
    add_group(&fake, GROUP, GroupKind::Inner, &members(3));
    fake.inject(
        Api::GatewayOpen,
        Fault::status(503, "ServiceUnavailable", "busy"),
        2,
    );
    fake.inject(Api::GatewayOpen, Fault::NotJson, 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let app = spawn_on(fake, &tmp.path().join("data"), STREAM).await;
    connected(&app.fake, 1).await;
    assert_eq!(app.fake.calls(Api::GatewayOpen), 4);
    assert_eq!(app.fake.stream_opens().len(), 1);
    let h = healthz_until(&app, |h| h["stream"]["connections"] == 1).await;
    assert_eq!(h["stream"]["connections"], 1, "{h}");
}

#[tokio::test]
async fn duplicates_are_answered_once_even_across_connections() {
    let app = stream_app(&[]).await;
    let m = mention("s-dup", "user0001", "help");
    for _ in 0..2 {
        let p = app.fake.push_mention(&m).expect("live");
        assert_eq!(wait_ack(&app.fake, &p.message_id).await.code, 200);
    }
    app.fake.drop_streams();
    connected(&app.fake, 2).await;
    let third = app.fake.push_mention(&m).expect("live");
    assert_eq!(wait_ack(&app.fake, &third.message_id).await.code, 200);
    app.wait_replies(GROUP, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.replies(GROUP).len(), 1, "{:#?}", app.replies(GROUP));
}

#[tokio::test]
async fn events_unknown_topics_and_bad_frames_get_the_right_acks() {
    let app = stream_app(&[]).await;
    let ev = app
        .fake
        .push_event(
            "chat_add_member",
            &json!({"openConversationId": GROUP, "userId": ["u9"]}),
        )
        .expect("live");
    let ack = wait_ack(&app.fake, &ev.message_id).await;
    assert_eq!(ack.code, 200);
    let data: Value = serde_json::from_str(&ack.data).expect("json");
    assert_eq!(data["status"], "SUCCESS");

    let card = app
        .fake
        .push_frame("CALLBACK", "/v1.0/card/instances/callback", &[], "{}")
        .expect("live");
    assert_eq!(wait_ack(&app.fake, &card.message_id).await.code, 404);
    let sys = app
        .fake
        .push_frame("SYSTEM", "something-new", &[], "{}")
        .expect("live");
    assert_eq!(wait_ack(&app.fake, &sys.message_id).await.code, 404);
    let bad = app
        .fake
        .push_frame("CALLBACK", "/v1.0/im/bot/messages/get", &[], "not json")
        .expect("live");
    assert_eq!(wait_ack(&app.fake, &bad.message_id).await.code, 400);
    assert!(app.fake.push_raw("this is not a frame"));
    assert!(app.fake.push_raw(r#"{"type":"CALLBACK"}"#));

    // The connection survives all of that.
    let pings = app.fake.ping_streams();
    assert_eq!(wait_ack(&app.fake, &pings[0].message_id).await.code, 200);
    assert_eq!(app.fake.stream_connections().len(), 1);
    assert!(app.replies(GROUP).is_empty());
}

#[tokio::test]
async fn tickets_are_url_encoded() {
    let fake = start_fake().await;
    fake.use_awkward_tickets(true);
    let tmp = tempfile::tempdir().expect("tempdir");
    let app = spawn_on(fake, &tmp.path().join("data"), STREAM).await;
    connected(&app.fake, 1).await;
    let t = &app.fake.stream_connections()[0].ticket;
    assert!(t.contains('+') && t.contains('/') && t.contains('='), "{t}");
    assert_eq!(app.fake.refused_handshakes(), 0);
}

#[tokio::test]
async fn shutdown_closes_the_connection_and_stops_reconnecting() {
    let app = stream_app(&[]).await;
    let (fake, _tmp) = app.stop().await;
    assert!(
        fake.wait_until(LIMIT, |f| f.open_stream_sockets() == 0)
            .await,
        "{:#?}",
        fake.stream_connections()
    );
    let opens = fake.stream_opens().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.stream_opens().len(), opens, "no reconnect after stop");
    assert_eq!(fake.stream_connections().len(), 1);
}

#[tokio::test]
async fn http_mode_reports_its_mode_and_opens_no_stream() {
    let app = spawn_app().await;
    let h = healthz(&app).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["mode"], "http");
    assert!(h.get("stream").is_none(), "{h}");
    // Without HTTP push keys there is no event intake in HTTP mode.
    assert_eq!(h["events"]["intake"], false, "{h}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.fake.calls(Api::GatewayOpen), 0);
}

/// DingTalk's official Python Stream SDK (`dingtalk-stream` on PyPI) against
/// the fake gateway: proves the fake speaks the real protocol.
/// `scripts/stream-sdk-conformance.sh` installs the SDK and runs this.
#[tokio::test]
#[ignore = "needs Python with dingtalk-stream: run scripts/stream-sdk-conformance.sh"]
async fn official_python_sdk_conformance() {
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncBufReadExt as _;

    let python = std::env::var("READBOT_STREAM_SDK_PYTHON")
        .expect("READBOT_STREAM_SDK_PYTHON must name a Python with dingtalk-stream installed");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/stream-sdk-conformance.py"
    );
    let fake = start_fake().await;
    let cfg = fake.config().clone();
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg("--open-url")
        .arg(format!("{}/v1.0/gateway/connections/open", fake.base_url()))
        .arg("--client-id")
        .arg(&cfg.app_key)
        .arg("--client-secret")
        .arg(&cfg.app_secret)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
    let stdout = child.stdout.take().expect("stdout");
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => sink.lock().expect("lines").push(v),
                Err(_) => eprintln!("sdk stdout: {line}"),
            }
        }
    });
    let seen = |kind: &str, key: &str, value: &str| {
        lines
            .lock()
            .expect("lines")
            .iter()
            .find(|v| v["kind"] == kind && v[key] == value)
            .cloned()
    };

    connected(&fake, 1).await;
    // The SDK's open call is accepted as documented.
    let open = fake.stream_opens()[0].clone();
    assert_eq!(open.accept.as_deref(), Some("application/json"));
    assert!(open.subscriptions.contains(&(
        "CALLBACK".to_string(),
        "/v1.0/im/bot/messages/get".to_string()
    )));
    assert!(open
        .subscriptions
        .contains(&("EVENT".to_string(), "*".to_string())));
    assert!(
        open.ua
            .as_deref()
            .unwrap_or_default()
            .starts_with("dingtalk-sdk-python/"),
        "{open:?}"
    );

    // A bot message reaches the SDK's ChatbotHandler and is acked.
    let p = fake
        .push_mention(&mention("sdk-1", "user0001", "who read my last notice?"))
        .expect("live");
    let ack = wait_ack(&fake, &p.message_id).await;
    assert_eq!(ack.code, 200);
    assert_eq!(ack.content_type.as_deref(), Some("application/json"));
    assert!(serde_json::from_str::<Value>(&ack.data).is_ok(), "{ack:?}");
    assert!(
        fake.wait_until(LIMIT, |_| seen("bot", "msgId", "sdk-1").is_some())
            .await
    );
    let got = seen("bot", "msgId", "sdk-1").expect("bot line");
    assert_eq!(got["messageId"], p.message_id.as_str());
    assert_eq!(got["conversationId"], GROUP);
    assert_eq!(got["senderStaffId"], "user0001");
    assert_eq!(got["text"], " who read my last notice?");
    assert!(got["sessionWebhook"]
        .as_str()
        .unwrap_or_default()
        .starts_with(&fake.base_url()));

    // Pings come back with the same data (the SDK re-serialises it).
    let pings = fake.ping_streams();
    let ack = wait_ack(&fake, &pings[0].message_id).await;
    assert_eq!(ack.code, 200);
    let echoed: Value = serde_json::from_str(&ack.data).expect("json");
    let sent: Value = serde_json::from_str(&pings[0].data).expect("json");
    assert_eq!(echoed, sent);

    // Events reach the SDK's event handler and are acked.
    let ev = fake
        .push_event("chat_add_member", &json!({"openConversationId": GROUP}))
        .expect("live");
    assert_eq!(wait_ack(&fake, &ev.message_id).await.code, 200);
    assert!(
        fake.wait_until(LIMIT, |_| seen("event", "eventType", "chat_add_member")
            .is_some())
            .await
    );

    // A read event (issue 15) reaches the SDK with its fields and is acked.
    let key = fake.seed_notice(GROUP, "Read by the SDK", "### Read by the SDK");
    let at = readbot::domain::now_millis();
    let read = fake
        .push_read_event(&key, Some("user0003"), at, "sdk-read-1")
        .expect("live");
    let ack = wait_ack(&fake, &read.message_id).await;
    assert_eq!(ack.code, 200, "{ack:?}");
    assert!(serde_json::from_str::<Value>(&ack.data).is_ok(), "{ack:?}");
    assert!(
        fake.wait_until(LIMIT, |_| seen("event", "eventId", "sdk-read-1").is_some())
            .await
    );
    let got = seen("event", "eventId", "sdk-read-1").expect("read event line");
    assert_eq!(got["eventType"], "robot_msg_read");
    assert_eq!(got["messageId"], read.message_id.as_str());
    assert_eq!(got["read"]["processQueryKey"], key.as_str(), "{got}");
    assert_eq!(got["read"]["userId"], "user0003", "{got}");
    let operat = &got["read"]["operatTime"];
    let operat = operat
        .as_i64()
        .or_else(|| operat.as_str().and_then(|s| s.parse().ok()));
    assert_eq!(operat, Some(at), "{got}");

    // A disconnect makes the SDK open a new connection with a new ticket.
    fake.set_disconnect_grace(Duration::from_secs(60));
    assert_eq!(fake.disconnect_streams("connection is expired"), 1);
    connected(&fake, 2).await;
    let conns = fake.stream_connections();
    assert_ne!(conns[0].ticket, conns[1].ticket);
    assert!(
        fake.wait_until(LIMIT, |f| f.stream_connections()[0].closed)
            .await
    );
    let p = fake
        .push_mention(&mention("sdk-2", "user0002", "help"))
        .expect("live");
    assert_eq!(wait_ack(&fake, &p.message_id).await.code, 200);
    assert!(
        fake.wait_until(LIMIT, |_| seen("bot", "msgId", "sdk-2").is_some())
            .await
    );
    assert!(
        fake.stream_bad_messages().is_empty(),
        "{:?}",
        fake.stream_bad_messages()
    );
    assert!(
        child.try_wait().expect("status").is_none(),
        "the SDK kept running"
    );
    let _ = child.kill().await;
}

/// Open file descriptors of this process (Linux; `None` elsewhere).
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count())
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Soak run (not in CI): `scripts/stream-soak.sh [SECONDS]`. Pushes
/// @mentions for `READBOT_SOAK_SECS` (default 1800) while the gateway
/// randomly sends `disconnect`, drops connections silently, stalls them and
/// pings; then prints connections, pushes, answers, file descriptors and
/// tasks at start and end, and fails on a lost acked message, a double
/// answer, or descriptors or tasks that kept growing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak run: scripts/stream-soak.sh"]
async fn soak() {
    use rand::Rng as _;
    let secs = env_u64("READBOT_SOAK_SECS", 1800);
    let per_sec = env_u64("READBOT_SOAK_PUSHES_PER_SEC", 5).max(1);
    let fake = start_fake().await;
    let people = members(20);
    add_group(&fake, GROUP, GroupKind::Inner, &people);
    // A short grace so the fake also closes what readbot does not.
    fake.set_disconnect_grace(Duration::from_secs(2));
    let tmp = tempfile::tempdir().expect("tempdir");
    let settings = [
        ("READBOT_MODE", "stream"),
        ("READBOT_STREAM_BACKOFF_BASE_MS", "250"),
        ("READBOT_STREAM_BACKOFF_MAX_MS", "5000"),
        ("READBOT_STREAM_HEALTHY_AFTER_MS", "5000"),
        ("READBOT_STREAM_PING_INTERVAL_MS", "2000"),
        ("READBOT_STREAM_IDLE_TIMEOUT_MS", "6000"),
    ];
    let app = spawn_on(fake.clone(), &tmp.path().join("data"), &settings).await;
    let key = app.notice(GROUP, "Soak notice", "user0001").await;
    let readers: Vec<&str> = people[..12].iter().map(|(u, _)| u.as_str()).collect();
    fake.mark_read(&key, &readers);
    connected(&fake, 1).await;
    // Warm up (HTTP pools, token) before the baseline.
    let warm = fake
        .push_mention(&mention("soak-warmup", "user0001", "help"))
        .expect("live");
    wait_ack(&fake, &warm.message_id).await;
    app.wait_replies(GROUP, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fds_start, tasks_start) = (open_fds(), alive_tasks());
    let replies_start = app.replies(GROUP).len();
    println!(
        "soak: {secs} s, {per_sec} pushes/s, settings {settings:?}\n\
         soak: start: fds {fds_start:?}, tasks {tasks_start}"
    );

    let commands = ["who read", "help", "list", "谁没读", "status 1"];
    let mut pushed: Vec<String> = Vec::new();
    let mut lost_no_connection = 0usize;
    let mut duplicates = 0usize;
    let (mut disconnects, mut drops, mut stalls, mut pings) = (0usize, 0usize, 0usize, 0usize);
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / per_sec));
    let mut n = 0u64;
    let mut next_report = 60u64;
    while started.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        n += 1;
        let (cmd, sender, roll) = {
            let mut rng = rand::rng();
            (
                commands[rng.random_range(0..commands.len())],
                people[rng.random_range(0..people.len())].0.clone(),
                rng.random_range(0..1000u32),
            )
        };
        let msg_id = format!("soak-{n}");
        match fake.push_mention(&mention(&msg_id, &sender, cmd)) {
            Some(_) => pushed.push(msg_id.clone()),
            None => lost_no_connection += 1,
        }
        // Now and then DingTalk delivers twice.
        if roll < 20 && fake.push_mention(&mention(&msg_id, &sender, cmd)).is_some() {
            duplicates += 1;
        }
        // Disturbances, per push (5 pushes/s): a disconnect frame and a silent
        // drop about every 30 s each, a stall about every 200 s, gateway pings.
        match roll {
            985..=990 => disconnects += fake.disconnect_streams("connection is expired"),
            991..=996 => drops += fake.drop_streams(),
            997 => stalls += fake.stall_streams(),
            998..=999 => pings += fake.ping_streams().len(),
            _ => {}
        }
        if started.elapsed().as_secs() >= next_report {
            next_report += 60;
            println!(
                "soak: {:>5} s: connections {}, pushed {}, answered {}, fds {:?}, tasks {}",
                started.elapsed().as_secs(),
                fake.stream_connections().len(),
                pushed.len(),
                app.replies(GROUP).len() - replies_start,
                open_fds(),
                alive_tasks()
            );
        }
    }

    // Settle: the connection is back and the answers are in.
    connected(&fake, 1).await;
    let messages: std::collections::HashSet<&String> = pushed.iter().collect();
    let _ = fake
        .wait_until(Duration::from_secs(60), |_| {
            app.replies(GROUP).len() - replies_start >= messages.len()
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answered = app.replies(GROUP).len() - replies_start;
    // Every delivered copy of a bot message is acked once (duplicates included).
    let acked_frames = fake
        .stream_acks()
        .iter()
        .filter(|a| a.code == 200 && a.topic.as_deref() == Some("/v1.0/im/bot/messages/get"))
        .count();
    let (fds_end, tasks_end) = (open_fds(), alive_tasks());
    let conns = fake.stream_connections();
    println!(
        "soak: done after {} s\n\
         soak: connections opened {} (disconnect frames {disconnects}, silent drops {drops}, stalls {stalls}), gateway pings {pings}\n\
         soak: messages pushed {} (+{duplicates} duplicate deliveries, {lost_no_connection} not pushed: no connection up)\n\
         soak: bot frames acked {acked_frames} (duplicates included)\n\
         soak: messages answered {answered}\n\
         soak: fds start {fds_start:?} end {fds_end:?}; tasks start {tasks_start} end {tasks_end}; open gateway sockets {}",
        started.elapsed().as_secs(),
        conns.len(),
        messages.len(),
        fake.open_stream_sockets(),
    );
    assert!(
        answered <= messages.len(),
        "a message was answered twice: {answered} answers for {} messages",
        messages.len()
    );
    // Bot messages are fire-and-forget: only pushes that raced a dropped or
    // stalled connection may go unanswered.
    let lost = messages.len() - answered;
    let lost_limit = (drops + stalls + disconnects) * 2 * usize::try_from(per_sec).unwrap_or(5) + 5;
    assert!(
        lost <= lost_limit,
        "{lost} pushed messages unanswered; disturbances allow at most {lost_limit}"
    );
    if let (Some(a), Some(b)) = (fds_start, fds_end) {
        assert!(b <= a + 8, "file descriptors grew from {a} to {b}");
    }
    assert!(
        tasks_end <= tasks_start + 8,
        "tasks grew from {tasks_start} to {tasks_end}"
    );
    assert!(
        fake.open_stream_sockets() <= 1,
        "gateway still has {} sockets open",
        fake.open_stream_sockets()
    );
    let (_fake, _tmp2) = app.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_is_not_buffered_and_the_connection_is_replaced() {
    let app = stream_app(&[]).await;
    // 2 MiB, twice the frame cap (`frame::MAX_FRAME_BYTES`).
    let big = format!(
        r#"{{"specVersion":"1.0","type":"SYSTEM","headers":{{"topic":"ping","messageId":"big"}},"data":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    assert!(app.fake.push_raw(&big));
    connected(&app.fake, 2).await;
    assert!(
        app.fake.acks_for("big").is_empty(),
        "the oversized frame was read"
    );
    let pushed = app
        .fake
        .push_mention(&mention("s-after-big", "user0002", "help"))
        .expect("live");
    assert_eq!(wait_ack(&app.fake, &pushed.message_id).await.code, 200);
    app.one_reply(GROUP).await;
}
