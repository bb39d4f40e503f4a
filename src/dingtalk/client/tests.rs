//! Wire-level tests against a wiremock DingTalk on 127.0.0.1.

use super::*;
use crate::config::Secret;
use crate::dingtalk::OutgoingMessage;
use crate::domain::{OpenConversationId, RobotCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "/v1.0/oauth2/accessToken";
const SEND: &str = "/v1.0/robot/groupMessages/send";
const QUERY: &str = "/v1.0/robot/groupMessages/query";
const USER_GET: &str = "/topapi/v2/user/get";
const SESSION: &str = "/robot/sendBySession";
/// Generous upper bound for "finished in time".
const BOUND: Duration = Duration::from_secs(20);

fn cfg(server: &MockServer) -> DingTalkConfig {
    let base = Url::parse(&server.uri()).unwrap();
    DingTalkConfig {
        app_key: "appkey".into(),
        app_secret: Secret::new("s3cret-value".into()),
        robot_code: RobotCode::parse("robot1").unwrap(),
        api_base: base.clone(),
        oapi_base: base,
        cool_app_code: None,
        timeout: Duration::from_secs(5),
        deadline: Duration::from_secs(10),
        rate_limit_per_sec: 1000,
        replicas: 1,
        max_pages: 10,
        not_ready_window: Duration::from_secs(300),
        name_concurrency: 3,
        monthly_call_budget: 5000,
    }
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(20),
        max_retries: 5,
        not_ready_base: Duration::from_millis(10),
        not_ready_budget: Duration::from_secs(2),
    }
}

fn client_with(server: &MockServer, f: impl FnOnce(&mut DingTalkConfig)) -> DingTalkClient {
    let mut c = cfg(server);
    f(&mut c);
    DingTalkClient::with_policy(c, fast()).unwrap()
}

/// Token endpoint answering `tok-1`, `tok-2`, ... in turn.
async fn mount_tokens(server: &MockServer, delay: Duration) {
    let n = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .and(body_partial_json(
            json!({"appKey":"appkey","appSecret":"s3cret-value"}),
        ))
        .respond_with(move |_: &Request| {
            let i = n.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200)
                .set_body_json(json!({"accessToken": format!("tok-{i}"), "expireIn": 7200}))
                .set_delay(delay)
        })
        .mount(server)
        .await;
}

async fn hits(server: &MockServer, p: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == p)
        .count()
}

async fn bodies(server: &MockServer, p: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == p)
        .map(|r| r.body_json::<Value>().unwrap())
        .collect()
}

fn query(sent_at: i64) -> ReadQuery {
    ReadQuery {
        key: ProcessQueryKey::parse("Kna29Ra5+/pdJ==").unwrap(),
        group: OpenConversationId::parse("cidGROUP==").unwrap(),
        robot_code: RobotCode::parse("robot1").unwrap(),
        sent_at,
    }
}

fn one_page() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "sendStatus":"SUCCESS","readUserIds":["u1"],"hasMore":false
    }))
}

fn api_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"code": code, "message": "m", "requestid": "R-1"}))
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

#[tokio::test]
async fn token_is_cached_across_calls() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .and(header("x-acs-dingtalk-access-token", "tok-1"))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json"))
        .respond_with(one_page())
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    for _ in 0..5 {
        let s = c.read_state(&query(now_millis())).await.unwrap();
        assert_eq!(s.readers, vec![uid("u1")]);
        assert_eq!(s.send_status, SendStatus::Success);
    }
    assert_eq!(hits(&server, TOKEN).await, 1);
    assert_eq!(hits(&server, QUERY).await, 5);
    let st = c.stats();
    assert_eq!(st.token_refreshes, 1);
    assert_eq!(st.api("robot.groupMessages.query").unwrap().calls, 5);
}

/// An absurd `expireIn` (i64::MAX seconds, 1e30, a string of digits) once
/// overflowed `Instant` and panicked the caller; now each is clamped to the
/// documented 7200 s and the token is used and cached.
#[tokio::test]
async fn absurd_expire_in_is_clamped_not_a_panic() {
    for expire_in in [
        json!(i64::MAX),
        json!(1e30),
        json!("99999999999999999"),
        json!(u64::MAX),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(TOKEN))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"accessToken": "tok-1", "expireIn": expire_in})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(QUERY))
            .and(header("x-acs-dingtalk-access-token", "tok-1"))
            .respond_with(one_page())
            .mount(&server)
            .await;
        let c = client_with(&server, |_| {});
        for _ in 0..3 {
            let s = c.read_state(&query(now_millis())).await;
            assert!(s.is_ok(), "expireIn {expire_in}: {s:?}");
        }
        assert_eq!(hits(&server, TOKEN).await, 1, "expireIn {expire_in}");
    }
}

#[tokio::test]
async fn token_refresh_is_single_flight() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::from_millis(200)).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(one_page())
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let c = c.clone();
        set.spawn(async move { c.read_state(&query(now_millis())).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(hits(&server, TOKEN).await, 1);
    assert_eq!(hits(&server, QUERY).await, 20);
}

#[tokio::test]
async fn invalid_authentication_refreshes_once_and_continues_the_same_page() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    // Page 1 with tok-1; page 2 refuses tok-1, then works with tok-2.
    Mock::given(method("POST"))
        .and(path(QUERY))
        .and(header("x-acs-dingtalk-access-token", "tok-1"))
        .respond_with(|r: &Request| {
            let b: Value = r.body_json().unwrap();
            if b.get("nextToken").is_none() {
                ResponseTemplate::new(200).set_body_json(json!({
                    "sendStatus":"SUCCESS","readUserIds":["a"],"hasMore":true,"nextToken":"P2=="
                }))
            } else {
                api_error(400, "InvalidAuthentication")
            }
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .and(header("x-acs-dingtalk-access-token", "tok-2"))
        .and(body_partial_json(json!({"nextToken":"P2=="})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "sendStatus":"SUCCESS","readUserIds":["b"],"hasMore":false
        })))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let s = c.read_state(&query(now_millis())).await.unwrap();
    assert_eq!(s.readers, vec![uid("a"), uid("b")]);
    assert_eq!(s.pages, 2);
    assert_eq!(hits(&server, TOKEN).await, 2);
    assert_eq!(hits(&server, QUERY).await, 3);
    assert_eq!(
        c.stats()
            .api("robot.groupMessages.query")
            .unwrap()
            .token_retries,
        1
    );
}

#[tokio::test]
async fn invalid_authentication_twice_is_returned() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(api_error(401, "InvalidAuthentication"))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let e = c.read_state(&query(now_millis())).await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::InvalidAuthentication));
    assert_eq!(hits(&server, QUERY).await, 2);
    assert_eq!(hits(&server, TOKEN).await, 2);
}

#[tokio::test]
async fn query_pages_with_opaque_tokens_until_has_more_is_false() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(|r: &Request| {
            let b: Value = r.body_json().unwrap();
            let page = match b.get("nextToken").and_then(Value::as_str) {
                None => json!({"sendStatus":"PROCESSING","readUserIds":["a","b"],"hasMore":true,"nextToken":"x+/Q=="}),
                Some("x+/Q==") => json!({"sendStatus":"PROCESSING","readUserIds":["b","c"],"hasMore":true,"nextToken":"50"}),
                Some("50") => json!({"sendStatus":"SUCCESS","readUserIds":["d","a"],"hasMore":false,"nextToken":"zzz"}),
                Some(_) => return api_error(400, "invalidParameter.cursor.invalid"),
            };
            ResponseTemplate::new(200).set_body_json(page)
        })
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let s = c.read_state(&query(now_millis())).await.unwrap();
    assert_eq!(s.readers, vec![uid("a"), uid("b"), uid("c"), uid("d")]);
    assert_eq!((s.pages, s.truncated), (3, false));
    assert_eq!(s.send_status, SendStatus::Success);
    let b = bodies(&server, QUERY).await;
    assert_eq!(b.len(), 3);
    assert!(b[0].get("nextToken").is_none());
    assert_eq!(b[0]["maxResults"], 200);
    assert_eq!(b[0]["processQueryKey"], "Kna29Ra5+/pdJ==");
    assert_eq!(b[0]["openConversationId"], "cidGROUP==");
    assert_eq!(b[0]["robotCode"], "robot1");
    assert_eq!(b[2]["nextToken"], "50");
}

#[tokio::test]
async fn page_cap_sets_truncated() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    let n = Arc::new(AtomicUsize::new(0));
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(move |_: &Request| {
            let i = n.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_json(json!({
                "sendStatus":"SUCCESS","readUserIds":[format!("u{i}")],"hasMore":true,"nextToken":i+1
            }))
        })
        .mount(&server)
        .await;
    let c = client_with(&server, |c| c.max_pages = 3);
    let s = c.read_state(&query(now_millis())).await.unwrap();
    assert_eq!((s.pages, s.truncated, s.readers.len()), (3, true, 3));
    assert_eq!(hits(&server, QUERY).await, 3);
}

#[tokio::test]
async fn not_ready_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(api_error(400, "processQueryKey.expireTime"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(one_page())
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let s = c.read_state(&query(now_millis())).await.unwrap();
    assert_eq!(s.readers, vec![uid("u1")]);
    assert_eq!(hits(&server, QUERY).await, 3);
}

#[tokio::test]
async fn not_ready_for_too_long_is_not_ready() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(api_error(400, "processQueryKey.expireTime"))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let t = Instant::now();
    let e = c.read_state(&query(now_millis())).await.unwrap_err();
    assert!(matches!(e, DingTalkError::NotReady), "{e:?}");
    assert!(t.elapsed() < BOUND);
    assert!(hits(&server, QUERY).await >= 2);
}

#[tokio::test]
async fn expire_time_long_after_sending_is_expired() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(api_error(400, "processQueryKey.expireTime"))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let e = c
        .read_state(&query(now_millis() - 86_400_000))
        .await
        .unwrap_err();
    assert!(matches!(e, DingTalkError::Expired), "{e:?}");
    assert_eq!(hits(&server, QUERY).await, 1);
}

#[tokio::test]
async fn server_error_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(api_error(500, "system.error"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(one_page())
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    c.read_state(&query(now_millis())).await.unwrap();
    assert_eq!(hits(&server, QUERY).await, 3);
    assert_eq!(
        c.stats().api("robot.groupMessages.query").unwrap().retries,
        2
    );
}

#[tokio::test]
async fn qps_throttling_is_retried() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({
                "Code":"Forbidden.AccessDenied.QpsLimitForAppkeyAndApi","Message":"qps","RequestId":"R-2"
            })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(one_page())
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    c.read_state(&query(now_millis())).await.unwrap();
    assert_eq!(hits(&server, QUERY).await, 2);
}

#[tokio::test]
async fn retries_are_bounded() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(api_error(429, "system.busy"))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let e = c.read_state(&query(now_millis())).await.unwrap_err();
    assert!(matches!(e.code(), Some(ErrorCode::Throttled(_))), "{e:?}");
    assert_eq!(hits(&server, QUERY).await, 6); // 1 + max_retries
}

#[tokio::test]
async fn non_retryable_400_maps_to_typed_code_with_request_id() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-acs-request-id", "HDR-1")
                .set_body_json(json!({
                    "code":"invalid.processQueryKey","message":"bad key","requestid":"30EE8654"
                })),
        )
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    match c.read_state(&query(now_millis())).await.unwrap_err() {
        DingTalkError::Api {
            status,
            code,
            message,
            request_id,
        } => {
            assert_eq!(status, 400);
            assert_eq!(code, ErrorCode::InvalidProcessQueryKey);
            assert_eq!(message, "bad key");
            assert_eq!(request_id.as_deref(), Some("30EE8654"));
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(hits(&server, QUERY).await, 1);
    assert_eq!(
        c.stats().api("robot.groupMessages.query").unwrap().errors,
        1
    );
}

#[tokio::test]
async fn non_json_and_truncated_bodies_are_decode_errors() {
    for body in ["<html>gateway</html>", "{\"sendStatus\":\"SUCC"] {
        let server = MockServer::start().await;
        mount_tokens(&server, Duration::ZERO).await;
        Mock::given(method("POST"))
            .and(path(QUERY))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&server)
            .await;
        let c = client_with(&server, |_| {});
        let e = c.read_state(&query(now_millis())).await.unwrap_err();
        assert!(matches!(e, DingTalkError::Decode(_)), "{e:?}");
    }
}

#[tokio::test]
async fn slow_answers_time_out_within_the_deadline() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(one_page().set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let c = client_with(&server, |c| {
        c.timeout = Duration::from_millis(100);
        c.deadline = Duration::from_millis(600);
    });
    let t = Instant::now();
    let e = c.read_state(&query(now_millis())).await.unwrap_err();
    assert!(matches!(e, DingTalkError::Timeout), "{e:?}");
    assert!(t.elapsed() < BOUND);
    assert!(hits(&server, QUERY).await <= 6);
}

#[tokio::test]
async fn send_encodes_msg_param_as_a_string_and_is_not_retried_on_500() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .and(header("x-acs-dingtalk-access-token", "tok-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"processQueryKey":"PQK+1="})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(api_error(500, "system.error"))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let req = GroupSend {
        group: OpenConversationId::parse("cidGROUP==").unwrap(),
        robot_code: RobotCode::parse("robot1").unwrap(),
        message: OutgoingMessage::markdown("周会", "### 周会\n明天"),
        cool_app_code: Some("COOLAPP".into()),
    };
    let key = c.send_group_message(&req).await.unwrap();
    assert_eq!(key.as_str(), "PQK+1=");
    let b = &bodies(&server, SEND).await[0];
    let param = b["msgParam"].as_str().expect("msgParam is a string");
    let parsed: Value = serde_json::from_str(param).unwrap();
    assert_eq!(parsed, json!({"title":"周会","text":"### 周会\n明天"}));
    assert_eq!(b["msgKey"], "sampleMarkdown");
    assert_eq!(b["openConversationId"], "cidGROUP==");
    assert_eq!(b["robotCode"], "robot1");
    assert_eq!(b["coolAppCode"], "COOLAPP");

    // A 500 after the request reached DingTalk is not retried (duplicate risk).
    let e = c.send_group_message(&req).await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::SystemError));
    assert_eq!(hits(&server, SEND).await, 2);
}

#[tokio::test]
async fn send_is_retried_on_throttling() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(api_error(403, "Forbidden.AccessDenied.QpsLimitForApi"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"processQueryKey":"K"})))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let req = GroupSend {
        group: OpenConversationId::parse("cidGROUP==").unwrap(),
        robot_code: RobotCode::parse("robot1").unwrap(),
        message: OutgoingMessage::text("hi"),
        cool_app_code: None,
    };
    assert_eq!(c.send_group_message(&req).await.unwrap().as_str(), "K");
    assert!(bodies(&server, SEND).await[0].get("coolAppCode").is_none());
}

#[tokio::test]
async fn session_webhook_on_another_host_is_refused_without_a_request() {
    let server = MockServer::start().await;
    let c = client_with(&server, |_| {});
    let reply = Reply {
        title: "t".into(),
        markdown: "m".into(),
        at_user_ids: vec![],
    };
    let port = server.address().port();
    for url in [
        "https://evil.example.com/robot/sendBySession?session=abc".to_owned(),
        format!("http://localhost:{port}/robot/sendBySession?session=abc"),
        format!("https://127.0.0.1:{port}/robot/sendBySession?session=abc"),
        format!(
            "http://127.0.0.1:{}/robot/sendBySession?session=abc",
            port.wrapping_add(1)
        ),
        format!("http://user@127.0.0.1:{port}/robot/sendBySession?session=abc"),
        "not a url".to_owned(),
    ] {
        let e = c.reply_in_session(&url, &reply).await.unwrap_err();
        assert!(matches!(e, DingTalkError::UntrustedWebhook), "{url}: {e:?}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn session_reply_body_and_expired_session() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .and(query_param("session", "ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"errcode":0,"errmsg":"ok"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .and(query_param("session", "old"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode":300001,"errmsg":"session 不存在"})),
        )
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let ids: Vec<UserId> = (0..60).map(|i| uid(&format!("u{i}"))).collect();
    let reply = Reply {
        title: "Read receipt".into(),
        markdown: "**Unread** @u0".into(),
        at_user_ids: ids,
    };
    let base = server.uri();
    c.reply_in_session(&format!("{base}/robot/sendBySession?session=ok"), &reply)
        .await
        .unwrap();
    let b = &bodies(&server, SESSION).await[0];
    assert_eq!(b["msgtype"], "markdown");
    assert_eq!(b["markdown"]["title"], "Read receipt");
    assert_eq!(b["markdown"]["text"], "**Unread** @u0");
    assert_eq!(b["at"]["atUserIds"].as_array().unwrap().len(), 50);
    assert_eq!(b["at"]["isAtAll"], false);
    let e = c
        .reply_in_session(&format!("{base}/robot/sendBySession?session=old"), &reply)
        .await
        .unwrap_err();
    assert!(matches!(e, DingTalkError::SessionExpired), "{e:?}");
    // No token is ever requested for a session reply.
    assert_eq!(hits(&server, TOKEN).await, 0);
}

#[tokio::test]
async fn session_reply_is_not_retried_on_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode":0}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let c = client_with(&server, |c| c.timeout = Duration::from_millis(100));
    let reply = Reply {
        title: "t".into(),
        markdown: "m".into(),
        at_user_ids: vec![],
    };
    let e = c
        .reply_in_session(
            &format!("{}/robot/sendBySession?session=s", server.uri()),
            &reply,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DingTalkError::Timeout), "{e:?}");
    assert_eq!(hits(&server, SESSION).await, 1);
}

#[tokio::test]
async fn user_names_with_bounded_concurrency_and_skips() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(USER_GET))
        .and(query_param("access_token", "tok-1"))
        .respond_with(|r: &Request| {
            let b: Value = r.body_json().unwrap();
            assert_eq!(b["language"], "zh_CN");
            let id = b["userid"].as_str().unwrap().to_owned();
            let body = match id.as_str() {
                "gone" => json!({"errcode":60121,"errmsg":"找不到该用户"}),
                "bad" => json!({"errcode":33012,"errmsg":"无效的userId"}),
                "str" => json!({"errcode":"0","errmsg":"ok","result":{"name":"字符串","active":"true"}}),
                _ => json!({"errcode":0,"errmsg":"ok","result":{"userid":id,"name":format!("N-{id}")}}),
            };
            ResponseTemplate::new(200)
                .set_body_json(body)
                .set_delay(Duration::from_millis(150))
        })
        .mount(&server)
        .await;
    let c = client_with(&server, |c| c.name_concurrency = 3);
    let users: Vec<UserId> = ["a", "gone", "b", "bad", "str", "c", "d", "a"]
        .iter()
        .map(|s| uid(s))
        .collect();
    let names = c.user_names(&users).await.unwrap();
    let got: Vec<(&str, &str)> = names
        .iter()
        .map(|(u, n)| (u.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", "N-a"),
            ("b", "N-b"),
            ("str", "字符串"),
            ("c", "N-c"),
            ("d", "N-d")
        ]
    );
    assert_eq!(hits(&server, USER_GET).await, 7);
    let st = c.stats();
    let peak = st.api("topapi.v2.user.get").unwrap().peak_in_flight;
    assert!((1..=3).contains(&peak), "peak {peak}");
    assert_eq!(st.token_refreshes, 1);
}

#[tokio::test]
async fn user_names_all_failing_alike_returns_the_error() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(USER_GET))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"errcode":60011,"errmsg":"no permission"})),
        )
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let e = c.user_names(&[uid("a"), uid("b")]).await.unwrap_err();
    assert!(
        matches!(e, DingTalkError::OldApi { errcode: 60011, .. }),
        "{e:?}"
    );
    assert!(c.user_names(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn old_api_invalid_token_refreshes_once() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(USER_GET))
        .and(query_param("access_token", "tok-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode":42001,"errmsg":"expired"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(USER_GET))
        .and(query_param("access_token", "tok-2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode":0,"result":{"name":"张三"}})),
        )
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let names = c.user_names(&[uid("m")]).await.unwrap();
    assert_eq!(names, vec![(uid("m"), "张三".to_owned())]);
    assert_eq!(hits(&server, TOKEN).await, 2);
}

#[tokio::test]
async fn inner_group_roster_pages_with_integer_cursor() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path("/v1.0/im/innerGroups/memberLists/query"))
        .respond_with(|r: &Request| {
            let b: Value = r.body_json().unwrap();
            assert_eq!(b["userId"], "op1");
            assert_eq!(b["maxResults"], 1000);
            let page = match b["nextToken"].as_i64() {
                Some(0) => json!({"success":true,"hasMore":true,"nextToken":1000,
                    "list":[{"userId":"a","name":"甲"},{"userId":"b","name":"","nickName":"乙"}]}),
                Some(1000) => json!({"success":true,"hasMore":false,"nextToken":"2000",
                    "list":[{"userId":"c"},{"userId":"a","name":"甲"}]}),
                _ => return api_error(400, "invalidParameter.param.invalid"),
            };
            ResponseTemplate::new(200).set_body_json(page)
        })
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let r = c
        .roster(&RosterQuery::InnerGroup {
            group: OpenConversationId::parse("cidGROUP==").unwrap(),
            operator: uid("op1"),
        })
        .await
        .unwrap();
    assert!(r.complete);
    let got: Vec<(&str, Option<&str>)> = r
        .members
        .iter()
        .map(|m| (m.user_id.as_str(), m.name.as_deref()))
        .collect();
    assert_eq!(got, vec![("a", Some("甲")), ("b", Some("乙")), ("c", None)]);
}

#[tokio::test]
async fn inner_group_roster_falls_back_to_small_pages_once_refused() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path("/v1.0/im/innerGroups/memberLists/query"))
        .respond_with(|r: &Request| {
            let b: Value = r.body_json().unwrap();
            if b["maxResults"] != 100 {
                return api_error(400, "invalidParameter.maxResults.invalid");
            }
            let page = match b["nextToken"].as_i64() {
                Some(0) => json!({"success":true,"hasMore":true,"nextToken":100,
                    "list":[{"userId":"a","name":"甲"}]}),
                _ => json!({"success":true,"hasMore":false,"nextToken":200,
                    "list":[{"userId":"b","name":"乙"}]}),
            };
            ResponseTemplate::new(200).set_body_json(page)
        })
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let q = RosterQuery::InnerGroup {
        group: OpenConversationId::parse("cidGROUP==").unwrap(),
        operator: uid("op1"),
    };
    let r = c.roster(&q).await.unwrap();
    assert!(r.complete);
    assert_eq!(r.members.len(), 2);
    let sizes = |bodies: Vec<Value>| -> Vec<i64> {
        bodies
            .iter()
            .map(|b| b["maxResults"].as_i64().unwrap())
            .collect()
    };
    let p = "/v1.0/im/innerGroups/memberLists/query";
    assert_eq!(sizes(bodies(&server, p).await), vec![1000, 100, 100]);
    // Remembered: the next roster asks for small pages straight away.
    c.roster(&q).await.unwrap();
    assert_eq!(
        sizes(bodies(&server, p).await),
        vec![1000, 100, 100, 100, 100]
    );
}

#[tokio::test]
async fn scene_group_roster_uses_nick_map_and_cool_app_code() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path("/v1.0/im/sceneGroups/members/batchQuery"))
        .and(body_partial_json(
            json!({"coolAppCode":"CFG","maxResults":1000}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success":true,"memberUserIds":["m1","m2"],"hasMore":false,"nextToken":92233720368u64,
            "staffIdNickMap":{"m1":"张三"}
        })))
        .mount(&server)
        .await;
    let c = client_with(&server, |c| c.cool_app_code = Some("CFG".into()));
    let r = c
        .roster(&RosterQuery::SceneGroup {
            group: OpenConversationId::parse("cidGROUP==").unwrap(),
            cool_app_code: None,
        })
        .await
        .unwrap();
    assert!(r.complete);
    assert_eq!(r.members[0].name.as_deref(), Some("张三"));
    assert_eq!(r.members[1].name, None);
    assert!(
        bodies(&server, "/v1.0/im/sceneGroups/members/batchQuery").await[0]
            .get("nextToken")
            .is_none()
    );
}

#[tokio::test]
async fn access_token_check_and_bad_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(api_error(400, "invalidClientIdOrSecret"))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let e = c.access_token().await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::InvalidClientIdOrSecret));
    assert_eq!(hits(&server, TOKEN).await, 1);
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[tokio::test]
async fn connection_refused_is_a_bounded_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = {
        let server = MockServer::start().await;
        cfg(&server)
    };
    c.api_base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let c = DingTalkClient::with_policy(c, fast()).unwrap();
    let t = Instant::now();
    let e = c.access_token().await.unwrap_err();
    assert!(matches!(e, DingTalkError::Transport(_)), "{e:?}");
    assert!(!e.to_string().contains("127.0.0.1"), "{e}");
    assert!(t.elapsed() < BOUND);
    assert_eq!(c.stats().api("oauth2.accessToken").unwrap().retries, 5);
}

/// Collects formatted log output of the current thread.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_show_token_secret_or_session() {
    let buf = LogBuf::default();
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || w.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(sub);

    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(USER_GET))
        .and(query_param("access_token", "tok-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode":42001,"errmsg":"expired"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(USER_GET))
        .respond_with(ResponseTemplate::new(500).set_body_string("oops"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SESSION))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"errcode":300001,"errmsg":"gone"})),
        )
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let _ = c.user_names(&[uid("a")]).await;
    let reply = Reply {
        title: "t".into(),
        markdown: "m".into(),
        at_user_ids: vec![],
    };
    let _ = c
        .reply_in_session(
            &format!("{}/robot/sendBySession?session=SESSIONSECRET", server.uri()),
            &reply,
        )
        .await;
    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("dingtalk"), "logging is captured: {logs}");
    for needle in [
        "tok-1",
        "tok-2",
        "s3cret-value",
        "SESSIONSECRET",
        "access_token=",
        "session=",
    ] {
        assert!(!logs.contains(needle), "{needle} leaked into logs:\n{logs}");
    }
}

#[tokio::test]
async fn a_failed_refresh_is_shared_by_the_callers_waiting_for_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN))
        .respond_with(
            api_error(400, "invalidClientIdOrSecret").set_delay(Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let c = c.clone();
        set.spawn(async move { c.access_token().await });
    }
    while let Some(r) = set.join_next().await {
        let e = r.unwrap().unwrap_err();
        assert_eq!(e.code(), Some(&ErrorCode::InvalidClientIdOrSecret));
    }
    assert_eq!(hits(&server, TOKEN).await, 1);
}

/// No retry storm: every backoff stays under its ceiling (200 ms × 2ⁿ, capped at
/// 5 s) and is jittered, so callers failing together do not retry together.
#[test]
fn backoff_is_bounded_and_jittered() {
    let p = RetryPolicy::default();
    for n in 0..12u32 {
        let ceiling = (p.base * 2u32.pow(n.min(10))).min(p.cap);
        let waits: std::collections::HashSet<Duration> = (0..64).map(|_| p.backoff(n)).collect();
        assert!(waits.iter().all(|w| *w <= ceiling), "retry {n}: {waits:?}");
        assert!(waits.len() > 8, "retry {n} is not jittered: {waits:?}");
    }
    assert_eq!(p.max_retries, 5);
}

const BATCH_SEND: &str = "/v1.0/robot/oToMessages/batchSend";
const RECALL: &str = "/v1.0/robot/groupMessages/recall";

fn direct_to(n: usize) -> DirectSend {
    DirectSend {
        robot_code: RobotCode::parse("robot1").unwrap(),
        users: (1..=n).map(|i| uid(&format!("u{i}"))).collect(),
        message: OutgoingMessage::markdown("t", "x"),
    }
}

#[tokio::test]
async fn direct_messages_go_in_batches_of_twenty_and_stop_at_a_failing_batch() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    Mock::given(method("POST"))
        .and(path(BATCH_SEND))
        .respond_with(move |_: &Request| match c.fetch_add(1, Ordering::SeqCst) {
            0 => ResponseTemplate::new(200).set_body_json(json!({
                "processQueryKey": "k1", "invalidStaffIdList": ["u2"],
                "flowControlledStaffIdList": ["u3"]
            })),
            1 => api_error(400, "invalidParameter.userIds.overMax"),
            _ => ResponseTemplate::new(200).set_body_json(json!({"processQueryKey": "k"})),
        })
        .mount(&server)
        .await;
    let client = client_with(&server, |_| {});
    let out = client.send_direct_messages(&direct_to(45)).await.unwrap();
    let sizes: Vec<usize> = bodies(&server, BATCH_SEND)
        .await
        .iter()
        .map(|b| b["userIds"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [20, 20], "stops after the failing batch");
    let first = &bodies(&server, BATCH_SEND).await[0];
    assert_eq!(first["robotCode"], "robot1");
    assert_eq!(first["msgKey"], "sampleMarkdown");
    assert!(first["msgParam"].is_string(), "msgParam is a JSON string");
    assert_eq!(out.invalid, [uid("u2")]);
    assert_eq!(out.flow_controlled, [uid("u3")]);
    assert_eq!(out.sent.len(), 18);
    assert_eq!(out.unsent.len(), 25);
    assert_eq!(out.unsent[0], uid("u21"));
    assert!(out.error.is_some());

    // The first batch failing is an error of the whole call.
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(BATCH_SEND))
        .respond_with(api_error(
            403,
            "Forbidden.AccessDenied.AccessTokenPermissionDenied",
        ))
        .mount(&server)
        .await;
    let client = client_with(&server, |_| {});
    assert!(client.send_direct_messages(&direct_to(3)).await.is_err());
}

#[tokio::test]
async fn recall_reads_success_and_failed_results() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    Mock::given(method("POST"))
        .and(path(RECALL))
        .and(body_partial_json(json!({
            "openConversationId": "cidGROUP==", "robotCode": "robot1",
            "processQueryKeys": ["a", "b", "c"]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "successResult": ["a"], "failedResult": {"b": "too late"}
        })))
        .mount(&server)
        .await;
    let client = client_with(&server, |_| {});
    let out = client
        .recall_group_messages(&Recall {
            group: OpenConversationId::parse("cidGROUP==").unwrap(),
            robot_code: RobotCode::parse("robot1").unwrap(),
            keys: ["a", "b", "c"]
                .iter()
                .map(|k| ProcessQueryKey::parse(*k).unwrap())
                .collect(),
        })
        .await
        .unwrap();
    assert_eq!(out.recalled, [ProcessQueryKey::parse("a").unwrap()]);
    assert_eq!(
        out.failed,
        [
            (ProcessQueryKey::parse("b").unwrap(), "too late".to_owned()),
            (ProcessQueryKey::parse("c").unwrap(), String::new()),
        ]
    );
    assert_eq!(hits(&server, RECALL).await, 1);
}

/// A ledger that remembers what the client reported.
#[derive(Default)]
struct Recorded {
    calls: std::sync::Mutex<Vec<&'static str>>,
    exhausted: AtomicUsize,
}

impl crate::dingtalk::quota::CallLedger for Recorded {
    fn record(&self, api: &'static str) {
        self.calls.lock().unwrap().push(api);
    }
    fn quota_exhausted(&self) {
        self.exhausted.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn billable_requests_reach_the_ledger_and_token_and_names_do_not() {
    let server = MockServer::start().await;
    mount_tokens(&server, Duration::ZERO).await;
    // One throttled answer first: the retry is a second billable request.
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(api_error(
            403,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(QUERY))
        .respond_with(one_page())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(USER_GET))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"errcode":0,"errmsg":"ok","result":{"userid":"u1","name":"N"}}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEND))
        .respond_with(api_error(403, "Forbidden.AccessDenied.ApiCountLimitForOrg"))
        .mount(&server)
        .await;
    let c = client_with(&server, |_| {});
    let ledger = Arc::new(Recorded::default());
    assert!(c.set_call_ledger(ledger.clone()));
    assert!(
        !c.set_call_ledger(Arc::new(Recorded::default())),
        "set once"
    );

    c.read_state(&query(now_millis())).await.unwrap();
    c.user_names(&[uid("u1")]).await.unwrap();
    let req = GroupSend {
        group: OpenConversationId::parse("cidGROUP==").unwrap(),
        robot_code: RobotCode::parse("robot1").unwrap(),
        message: OutgoingMessage::text("hi"),
        cool_app_code: None,
    };
    let e = c.send_group_message(&req).await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::MonthlyQuotaExceeded));

    assert_eq!(
        *ledger.calls.lock().unwrap(),
        [
            "robot.groupMessages.query",
            "robot.groupMessages.query",
            "robot.groupMessages.send"
        ],
        "every request to a billable API, retries included; no token or user/get"
    );
    assert_eq!(ledger.exhausted.load(Ordering::SeqCst), 1);
    assert_eq!(hits(&server, TOKEN).await, 1);
}
