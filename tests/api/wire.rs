//! DingTalk's wire edges, end to end: the over-quota signal in both
//! spellings, object fields that arrive as arrays, a `disconnect` with and
//! without `messageId`, and API bases with a path prefix.

use crate::helpers::*;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use readbot::fake::{FakeDingTalk, GroupKind, Mention, Via};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const GROUP: &str = "cidWireGroup+/==";
/// Generous bound for anything to happen (never a speed assertion).
const LIMIT: Duration = Duration::from_secs(20);

const STREAM: &[(&str, &str)] = &[
    ("READBOT_MODE", "stream"),
    ("READBOT_STREAM_BACKOFF_BASE_MS", "20"),
    ("READBOT_STREAM_BACKOFF_MAX_MS", "200"),
    ("READBOT_STREAM_PING_INTERVAL_MS", "200"),
    ("READBOT_STREAM_IDLE_TIMEOUT_MS", "5000"),
];

fn mention(msg_id: &str, text: &str) -> Mention {
    Mention {
        msg_id: msg_id.into(),
        group: GROUP.into(),
        sender: "user0001".into(),
        sender_nick: "nick-user0001".into(),
        text: text.into(),
        session_ttl: Duration::from_secs(5400),
    }
}

/// A mention body as DingTalk sends it when the org's robot quota is used
/// up: no `text`, an error code and message in the given spelling.
fn over_quota(fake: &FakeDingTalk, msg_id: &str, code: &str, message: &str) -> Value {
    let mut body = fake.mention_body(&mention(msg_id, "who read"));
    let obj = body.as_object_mut().expect("object");
    obj.remove("text");
    obj.insert(code.into(), json!(20001));
    obj.insert(
        message.into(),
        json!("受调用量超量影响，当前我的消息服务已经暂停"),
    );
    body
}

/// Waits until the group has seen `n` replies, then a little longer, and
/// returns everything it saw (so a reply too many shows).
async fn replies_settled(app: &TestApp, n: usize) -> Vec<readbot::fake::SentMessage> {
    app.wait_replies(GROUP, n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.replies(GROUP)
}

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

async fn stream_app() -> TestApp {
    let app = spawn_app_with(STREAM).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    connected(&app.fake, 1).await;
    app
}

#[tokio::test]
async fn http_over_quota_is_read_in_both_spellings_and_a_zero_code_is_no_error() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    app.notice(GROUP, "Zero code", "user0001").await;
    for (id, code, message) in [
        ("q-http", "errorCode", "errorMessage"),
        ("q-stream-spelling", "errCode", "errMsg"),
    ] {
        let r = app
            .post_callback_signed(&over_quota(&app.fake, id, code, message))
            .await;
        assert_eq!(r.status(), 200, "{code}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v, json!({"msgtype":"empty"}), "{code}");
    }
    // A message that carries a zero code is a normal message.
    let mut body = app.fake.mention_body(&mention("q-zero", "who read"));
    body["errorCode"] = json!(0);
    body["errorMessage"] = json!("");
    body["errCode"] = json!(0);
    let r = app.post_callback_signed(&body).await;
    assert_eq!(r.status(), 200);
    let seen = replies_settled(&app, 1).await;
    assert_eq!(
        seen.len(),
        1,
        "only the zero-code message is answered: {seen:#?}"
    );
    assert!(
        seen[0].text.contains("Zero code"),
        "a summary expected: {}",
        seen[0].text
    );
}

#[tokio::test]
async fn a_text_or_at_users_array_is_a_400_and_not_answered() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let mut text_array = app.fake.mention_body(&mention("arr-1", "help"));
    text_array["text"] = json!([" help"]);
    let mut at_array = app.fake.mention_body(&mention("arr-2", "help"));
    at_array["atUsers"] = json!([["user0002"]]);
    for body in [text_array, at_array] {
        let r = app.post_callback_signed(&body).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"]["code"], "bad_body", "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let r = app
        .post_callback_signed(&app.fake.mention_body(&mention("arr-ok", "help")))
        .await;
    assert_eq!(r.status(), 200);
    let seen = replies_settled(&app, 1).await;
    assert_eq!(seen.len(), 1, "only the well-formed message: {seen:#?}");
}

#[tokio::test]
async fn stream_over_quota_frames_are_acked_and_not_answered() {
    let app = stream_app().await;
    app.notice(GROUP, "Zero code", "user0001").await;
    let data = over_quota(&app.fake, "sq-1", "errCode", "errMsg").to_string();
    let pushed = app
        .fake
        .push_frame("CALLBACK", "/v1.0/im/bot/messages/get", &[], &data)
        .expect("live");
    assert!(
        app.fake
            .wait_until(LIMIT, |f| !f.acks_for(&pushed.message_id).is_empty())
            .await
    );
    assert_eq!(app.fake.acks_for(&pushed.message_id)[0].code, 200);
    let mut body = app.fake.mention_body(&mention("sq-zero", "who read"));
    body["errCode"] = json!(0);
    body["errMsg"] = json!("");
    let pushed = app
        .fake
        .push_frame(
            "CALLBACK",
            "/v1.0/im/bot/messages/get",
            &[],
            &body.to_string(),
        )
        .expect("live");
    assert!(
        app.fake
            .wait_until(LIMIT, |f| !f.acks_for(&pushed.message_id).is_empty())
            .await
    );
    let seen = replies_settled(&app, 1).await;
    assert_eq!(seen.len(), 1, "only the zero-code message: {seen:#?}");
    assert!(
        seen[0].text.contains("Zero code"),
        "a summary expected: {}",
        seen[0].text
    );
}

#[tokio::test]
async fn a_disconnect_without_message_id_is_acted_on_at_once() {
    let app = stream_app().await;
    // The gateway would only close after a minute: readbot must go by itself.
    app.fake.set_disconnect_grace(Duration::from_secs(60));
    assert_eq!(
        app.fake
            .disconnect_streams_without_message_id("connection is expired"),
        1
    );
    connected(&app.fake, 2).await;
    assert!(
        app.fake
            .wait_until(LIMIT, |f| f.stream_connections()[0].closed)
            .await,
        "readbot closes the old connection itself"
    );
    assert!(
        app.fake.stream_bad_messages().is_empty(),
        "no ack without an id: {:?}",
        app.fake.stream_bad_messages()
    );
    let pushed = app
        .fake
        .push_mention(&mention("after-disconnect", "help"))
        .expect("live");
    assert_ne!(pushed.connection, app.fake.stream_connections()[0].id);
    app.one_reply(GROUP).await;
}

#[tokio::test]
async fn a_disconnect_is_acknowledged_before_the_close() {
    let app = stream_app().await;
    app.fake.set_disconnect_grace(Duration::from_secs(60));
    assert_eq!(app.fake.disconnect_streams("connection is expired"), 1);
    connected(&app.fake, 2).await;
    assert!(
        app.fake
            .wait_until(LIMIT, |f| f.stream_connections()[0].closed)
            .await
    );
    let first = app.fake.stream_connections()[0].id;
    let acks: Vec<_> = app
        .fake
        .stream_acks()
        .into_iter()
        .filter(|a| a.topic.as_deref() == Some("disconnect"))
        .collect();
    assert_eq!(acks.len(), 1, "one ack for the disconnect: {acks:#?}");
    assert_eq!(acks[0].code, 200);
    assert_eq!(acks[0].frame_type.as_deref(), Some("SYSTEM"));
    assert_eq!(
        acks[0].connection, first,
        "acknowledged on the connection it came on, before readbot closed it"
    );
    assert!(app.fake.stream_bad_messages().is_empty());
}

/// A reverse proxy that serves the fake under path prefixes (`/prefix/…` and
/// `/oprefix/…` both go to the fake's `/…`) and answers 404 to anything
/// else; it records every path it was asked for.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<String>>>,
}

const PREFIXES: &[&str] = &["/prefix", "/oprefix"];

async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    p.seen.lock().expect("seen").push(path.clone());
    let Some(rest) = PREFIXES
        .iter()
        .find_map(|pre| path.strip_prefix(pre).filter(|r| r.starts_with('/')))
    else {
        return (StatusCode::NOT_FOUND, "no such prefix").into_response();
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("{}{rest}{query}", p.upstream);
    let method = req.method().clone();
    let headers = req.headers().clone();
    let Ok(body) = to_bytes(req.into_body(), 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut out = p.http.request(method, url).body(body.to_vec());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            out = out.header(k, v);
        }
    }
    let Ok(resp) = out.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut answer = Response::new(Body::from(bytes));
    *answer.status_mut() = status;
    for (k, v) in &headers {
        if k != "content-length" && k != "transfer-encoding" {
            answer.headers_mut().insert(k, v.clone());
        }
    }
    answer
}

/// Starts the proxy in front of `fake`; returns its base URL and the paths seen.
async fn start_proxy(fake: &FakeDingTalk) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let proxy = Proxy {
        upstream: fake.base_url(),
        http: http_client(),
        seen: seen.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn api_bases_with_a_path_prefix_keep_it() {
    let fake = start_fake().await;
    add_group(&fake, GROUP, GroupKind::Inner, &members(3));
    let (proxy, seen) = start_proxy(&fake).await;
    let api = format!("{proxy}/prefix");
    let oapi = format!("{proxy}/oprefix/");
    let tmp = tempfile::tempdir().expect("tempdir");
    let app = spawn_on(
        fake,
        &tmp.path().join("data"),
        &[("DINGTALK_API_BASE", &api), ("DINGTALK_OAPI_BASE", &oapi)],
    )
    .await;
    let key = app.notice(GROUP, "Prefixed", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    // The session webhook, as DingTalk would hand it out on that oapi base.
    let mut body = app.fake.mention_body(&mention("prefix-1", "who read"));
    let webhook = body["sessionWebhook"].as_str().expect("webhook").to_owned();
    body["sessionWebhook"] =
        json!(webhook.replace(&app.fake.base_url(), &format!("{proxy}/oprefix")));
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let seen_replies = app.wait_replies(GROUP, 1).await;
    assert_eq!(seen_replies.len(), 1, "{seen_replies:#?}");
    assert_eq!(seen_replies[0].via, Via::Session);
    assert!(
        seen_replies[0].text.contains("1/3"),
        "{}",
        seen_replies[0].text
    );

    let paths = seen.lock().expect("seen").clone();
    for want in [
        "/prefix/v1.0/oauth2/accessToken",
        "/prefix/v1.0/robot/groupMessages/send",
        "/prefix/v1.0/robot/groupMessages/query",
        "/oprefix/robot/sendBySession",
    ] {
        assert!(paths.iter().any(|p| p == want), "no {want} in {paths:#?}");
    }
    assert!(
        paths
            .iter()
            .all(|p| PREFIXES.iter().any(|pre| p.starts_with(pre))),
        "every call keeps its prefix: {paths:#?}"
    );
}

#[tokio::test]
async fn stream_open_call_keeps_the_api_base_prefix() {
    let fake = start_fake().await;
    add_group(&fake, GROUP, GroupKind::Inner, &members(3));
    let (proxy, seen) = start_proxy(&fake).await;
    let api = format!("{proxy}/prefix");
    let mut env = STREAM.to_vec();
    env.push(("DINGTALK_API_BASE", &api));
    let tmp = tempfile::tempdir().expect("tempdir");
    let app = spawn_on(fake, &tmp.path().join("data"), &env).await;
    connected(&app.fake, 1).await;
    let paths = seen.lock().expect("seen").clone();
    assert!(
        paths
            .iter()
            .any(|p| p == "/prefix/v1.0/gateway/connections/open"),
        "{paths:#?}"
    );
    let pushed = app
        .fake
        .push_mention(&mention("prefix-stream", "help"))
        .expect("live");
    assert!(
        app.fake
            .wait_until(LIMIT, |f| !f.acks_for(&pushed.message_id).is_empty())
            .await
    );
    app.one_reply(GROUP).await;
}
