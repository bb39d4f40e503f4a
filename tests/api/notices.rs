//! readbot's own API: send, list, receipts; auth; restart survival.

use crate::helpers::*;
use readbot::fake::{Api, Fault, GroupKind};
use serde_json::{json, Value};

const GROUP: &str = "cidNotices+Group/==";

#[tokio::test]
async fn send_records_and_lists_newest_first() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let r = app
        .send_notice(&json!({"openConversationId": GROUP, "title": "Hello", "text": "**hi**", "msgtype": "markdown", "author": "user0001"}))
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["openConversationId"], GROUP);
    assert!(v["sentAt"].as_str().unwrap().contains('T'));
    let key = v["processQueryKey"].as_str().unwrap().to_string();
    // DingTalk got the documented request and the group saw the notice.
    let seen = app.fake.group_view(GROUP);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].text, "**hi**");
    assert_eq!(seen[0].process_query_key.as_deref(), Some(key.as_str()));

    let r = app
        .send_notice(
            &json!({"openConversationId": GROUP, "msgtype": "text", "text": "plain words"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .get(&format!(
            "/api/v1/notices?openConversationId={}",
            enc(GROUP)
        ))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let list = v["notices"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["title"], "plain words");
    assert_eq!(list[1]["title"], "Hello");
    assert_eq!(list[1]["author"], "user0001");
}

#[tokio::test]
async fn receipts_endpoint_round_trips_base64_keys() {
    let app = spawn_app().await;
    let people = members(5);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let mut key = String::new();
    // Fake keys are random base64; make sure at least one has + / or =.
    for _ in 0..20 {
        key = app.notice(GROUP, "Receipts", "user0001").await;
        if key.contains('+') || key.contains('/') {
            break;
        }
    }
    assert!(
        key.contains('=') || key.contains('+') || key.contains('/'),
        "{key}"
    );
    app.fake.mark_read(&key, &["user0001", "user0004"]);
    let r = app
        .get(&format!("/api/v1/notices/{}/receipts", enc(&key)))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["sendStatus"], "SUCCESS");
    assert_eq!(v["readCount"], 2);
    assert_eq!(v["unreadCount"], 3);
    assert_eq!(v["memberCount"], 5);
    assert_eq!(v["rosterSource"], "inner_group");
    assert_eq!(v["rosterComplete"], true);
    assert_eq!(
        v["read"][0],
        json!({"userId": "user0001", "name": "Member 0001"})
    );
    let unread: Vec<&str> = v["unread"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["userId"].as_str().unwrap())
        .collect();
    assert_eq!(unread, vec!["user0002", "user0003", "user0005"]);

    let r = app
        .get(&format!("/api/v1/notices/{}/receipts", enc("unknownKey==")))
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn auth_validation_and_dingtalk_refusals() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(2));
    let url = format!("{}/api/v1/notices", app.addr);
    let body = json!({"openConversationId": GROUP, "title": "t", "text": "x"});
    // 401 without or with a wrong token.
    let r = app.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .post(&url)
        .bearer_auth("wrong-token-0123456789")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // 400 naming the field, before anything reaches DingTalk.
    app.fake.reset_calls();
    for (bad, field) in [
        (json!({"title": "t", "text": "x"}), "openConversationId"),
        (json!({"openConversationId": GROUP, "text": "x"}), "title"),
        (
            json!({"openConversationId": GROUP, "title": "t", "text": "x", "msgtype": "video"}),
            "msgtype",
        ),
        (
            json!({"openConversationId": GROUP, "title": "t", "text": "x".repeat(15_001)}),
            "text",
        ),
        (
            json!({"openConversationId": "", "title": "t", "text": "x"}),
            "openConversationId",
        ),
    ] {
        let r = app.send_notice(&bad).await;
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{v}"
        );
    }
    let r = app
        .http
        .post(&url)
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(app.fake.calls(Api::Send), 0);
    // 502 carrying DingTalk's code and message.
    let r = app
        .send_notice(&json!({"openConversationId": "cidUnknownGroup==", "title": "t", "text": "x"}))
        .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid.openConversationId");
    app.fake.inject(
        Api::Send,
        Fault::Status {
            status: 400,
            code: "bot.stopped".into(),
            message: "机器人已停用".into(),
        },
        1,
    );
    let r = app.send_notice(&body).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bot.stopped");
    assert_eq!(v["error"]["message"], "机器人已停用");
    // Nothing failed was recorded.
    let r = app
        .get(&format!(
            "/api/v1/notices?openConversationId={}",
            enc(GROUP)
        ))
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["notices"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn api_without_a_token_configured_answers_503() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config_for(&fake, &tmp.path().join("d"), &[]);
    cfg.api_token = None;
    let app = readbot::app::Application::build(cfg).await.unwrap();
    let addr = app.local_addr();
    let h = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let r = http_client()
        .get(format!("http://{addr}/api/v1/notices?openConversationId=c"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("READBOT_API_TOKEN"));
    let r = http_client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    h.abort();
}

#[tokio::test]
async fn notices_survive_a_restart() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let key = app.notice(GROUP, "Durable", "user0001").await;
    let dir = app.data_dir.clone();
    let (fake, tmp) = app.stop().await;
    let app = spawn_on(fake, &dir, &[]).await;
    app.keys.lock().unwrap().insert(key.clone());
    let r = app
        .get(&format!(
            "/api/v1/notices?openConversationId={}",
            enc(GROUP)
        ))
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["notices"][0]["processQueryKey"], key);
    // And it can still be asked about.
    app.fake.mark_read(&key, &["user0002"]);
    app.post_callback_signed(&app.mention("after-restart", GROUP, "user0001", "who read"))
        .await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("Durable") && text.contains("1/3"), "{text}");
    drop(tmp);
}

/// Every route under `/api/v1` is behind the token layer: 401 on each
/// without the token (before the body, the query or the method is looked
/// at); unknown paths are 404 without asking for it.
#[tokio::test]
async fn every_api_route_needs_the_token() {
    let app = spawn_app().await;
    app.fake.reset_calls();
    let url = |p: &str| format!("{}{p}", app.addr);
    for (method, path, body) in [
        ("POST", "/api/v1/notices", "{not json"),
        ("POST", "/api/v1/notices", ""),
        ("GET", "/api/v1/notices", ""),
        ("GET", "/api/v1/notices?limit=0", ""),
        ("GET", "/api/v1/notices/someKey==/receipts", ""),
        ("GET", "/api/v1/notices/%FF%FE/receipts", ""),
    ] {
        let r = app
            .http
            .request(method.parse().unwrap(), url(path))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized", "{method} {path}");
    }
    let r = app.http.get(url("/api/v1/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let r = app
        .http
        .delete(url("/api/v1/notices"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .delete(url("/api/v1/notices"))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // With the token, the query is checked.
    let r = app.get("/api/v1/notices?limit=0").await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.fake.calls(Api::Any), 0);
}

/// The send API takes JSON only: a body without `Content-Type:
/// application/json` is refused with 415 in readbot's error shape, before
/// anything reaches DingTalk (as axum's `Json` extractor does).
#[tokio::test]
async fn send_without_a_json_content_type_is_a_415() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    app.fake.reset_calls();
    let body = json!({"openConversationId": GROUP, "msgtype": "text", "text": "plain words"});
    for content_type in [Some("text/plain"), None] {
        let mut req = app
            .http
            .post(format!("{}/api/v1/notices", app.addr))
            .bearer_auth(API_TOKEN)
            .body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 415, "{content_type:?}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    assert_eq!(app.fake.calls(Api::Send), 0, "nothing reached DingTalk");
    assert!(app.fake.group_view(GROUP).is_empty());
}
