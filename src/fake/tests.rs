//! Tests of the fake against its own wire format, over real HTTP.

use super::*;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn start() -> (FakeDingTalk, reqwest::Client) {
    let fake = FakeDingTalk::start(FakeConfig::default()).await.unwrap();
    (fake, client())
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn post(
    c: &reqwest::Client,
    fake: &FakeDingTalk,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Answer {
    let mut req = c.post(format!("{}{path}", fake.base_url())).json(&body);
    if let Some(t) = token {
        req = req.header("x-acs-dingtalk-access-token", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

async fn token(c: &reqwest::Client, fake: &FakeDingTalk) -> String {
    let cfg = fake.config();
    let a = post(
        c,
        fake,
        "/v1.0/oauth2/accessToken",
        None,
        json!({ "appKey": cfg.app_key, "appSecret": cfg.app_secret }),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["expireIn"], 7200);
    a.body["accessToken"].as_str().unwrap().to_owned()
}

/// Asserts a new-API error: status, code, `requestid` in body and header.
fn assert_api_err(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["code"], code, "{}", a.body);
    assert!(a.body["message"].is_string());
    let rid = a.body["requestid"].as_str().unwrap();
    assert_eq!(a.headers["x-acs-request-id"].to_str().unwrap(), rid);
}

fn markdown(group: &str, robot: &str) -> Value {
    json!({
        "msgKey": "sampleMarkdown",
        "msgParam": json!({ "title": "周会通知", "text": "### 周会\n明天 10:00" }).to_string(),
        "openConversationId": group,
        "robotCode": robot,
    })
}

#[test]
fn sign_matches_documented_vectors() {
    assert_eq!(
        FakeDingTalk::sign("1577262236757", "this is a secret"),
        "DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA="
    );
    assert_eq!(
        FakeDingTalk::sign("1700000000000", "SECtest0123456789abcdef"),
        "/lfnxUUu80FwVTsIlv2F1cMGBb+PxEKAwYh/bsRxXcc="
    );
}

#[tokio::test]
async fn readbot_env_points_readbot_at_this_fake() {
    let (fake, _) = start().await;
    let env: std::collections::HashMap<&str, String> = fake.readbot_env().into_iter().collect();
    let lookup = move |k: &str| env.get(k).cloned();
    let cfg = crate::config::Config::from_toml_str("", &lookup).unwrap();
    let d = &cfg.dingtalk;
    assert_eq!(d.app_key, fake.config().app_key);
    assert_eq!(d.robot_code.as_str(), fake.config().robot_code);
    for base in [&d.api_base, &d.oapi_base] {
        assert_eq!(base.as_str().trim_end_matches('/'), fake.base_url());
    }
}

#[tokio::test]
async fn token_is_reused_while_valid_and_renewed_after_expiry() {
    let (fake, c) = start().await;
    let t1 = token(&c, &fake).await;
    assert_eq!(token(&c, &fake).await, t1);
    fake.expire_tokens();
    let t2 = token(&c, &fake).await;
    assert_ne!(t2, t1);
    assert_eq!(fake.calls(Api::Token), 3);

    // An expired token is refused by the new API.
    let a = post(
        &c,
        &fake,
        "/v1.0/robot/groupMessages/query",
        Some(&t1),
        json!({"processQueryKey": "x"}),
    )
    .await;
    assert_api_err(&a, 400, "InvalidAuthentication");
    assert_eq!(a.body["message"], "不合法的access_token");
}

#[tokio::test]
async fn zero_ttl_tokens_are_never_reused() {
    let cfg = FakeConfig {
        token_ttl: Duration::ZERO,
        ..FakeConfig::default()
    };
    let fake = FakeDingTalk::start(cfg).await.unwrap();
    let c = client();
    let cfg = fake.config();
    let body = json!({ "appKey": cfg.app_key, "appSecret": cfg.app_secret });
    let a = post(&c, &fake, "/v1.0/oauth2/accessToken", None, body.clone()).await;
    let b = post(&c, &fake, "/v1.0/oauth2/accessToken", None, body).await;
    assert_ne!(a.body["accessToken"], b.body["accessToken"]);
}

#[tokio::test]
async fn token_errors() {
    let (fake, c) = start().await;
    let a = post(
        &c,
        &fake,
        "/v1.0/oauth2/accessToken",
        None,
        json!({ "appKey": fake.config().app_key, "appSecret": "wrong" }),
    )
    .await;
    assert_api_err(&a, 400, "invalidClientIdOrSecret");

    // Form-encoded bodies are refused: JSON is mandatory.
    let resp = c
        .post(format!("{}/v1.0/oauth2/accessToken", fake.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("appKey=dingfakeappkey&appSecret=fake-app-secret-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "Missingbody");
}

#[tokio::test]
async fn missing_token_has_documented_error_shape() {
    let (fake, c) = start().await;
    let a = post(&c, &fake, "/v1.0/robot/groupMessages/send", None, json!({})).await;
    assert_api_err(&a, 400, "InvalidAuthentication");
    let keys: Vec<&String> = a.body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "only code, message, requestid: {}", a.body);
    let a = post(
        &c,
        &fake,
        "/v1.0/robot/groupMessages/send",
        Some("nope"),
        json!({}),
    )
    .await;
    assert_api_err(&a, 400, "InvalidAuthentication");
    // Unknown path: the gateway's 404.
    let a = post(&c, &fake, "/v1.0/robot/nope", None, json!({})).await;
    assert_api_err(&a, 404, "InvalidAction.NotFound");
}

#[tokio::test]
async fn send_records_the_message_and_returns_an_awkward_key() {
    let (fake, c) = start().await;
    fake.add_group("cidA==", GroupKind::Inner, &[("u1", "张三")]);
    let t = token(&c, &fake).await;
    let robot = fake.config().robot_code.clone();
    let a = post(
        &c,
        &fake,
        "/v1.0/robot/groupMessages/send",
        Some(&t),
        markdown("cidA==", &robot),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.headers.contains_key("x-acs-request-id"));
    let key = a.body["processQueryKey"].as_str().unwrap().to_owned();
    assert!(
        key.contains('+') && key.contains('/') && key.ends_with('='),
        "{key}"
    );

    let text = json!({
        "msgKey": "sampleText",
        "msgParam": json!({ "content": "hello" }).to_string(),
        "openConversationId": "cidA==",
        "robotCode": robot,
    });
    let a = post(&c, &fake, "/v1.0/robot/groupMessages/send", Some(&t), text).await;
    assert_eq!(a.status, 200, "{}", a.body);

    let sent = fake.group_view("cidA==");
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0],
        SentMessage {
            group: "cidA==".into(),
            via: Via::OpenApi,
            msg_key_or_type: "sampleMarkdown".into(),
            title: Some("周会通知".into()),
            text: "### 周会\n明天 10:00".into(),
            at_user_ids: vec![],
            process_query_key: Some(key),
        }
    );
    assert_eq!(sent[1].text, "hello");
    assert_eq!(sent[1].title, None);
    assert!(fake.group_view("other").is_empty());
    assert_eq!(fake.sent().len(), 2);
}

#[tokio::test]
async fn send_validation() {
    let (fake, c) = start().await;
    fake.add_group("cidA==", GroupKind::Inner, &[]);
    fake.add_group(
        "cidS==",
        GroupKind::Scene {
            cool_app_code: Some("COOLAPP_1".into()),
        },
        &[],
    );
    let t = token(&c, &fake).await;
    let robot = fake.config().robot_code.clone();
    let send = |body: Value| {
        let (c, fake, t) = (c.clone(), fake.clone(), t.clone());
        async move { post(&c, &fake, "/v1.0/robot/groupMessages/send", Some(&t), body).await }
    };

    let mut b = markdown("cidA==", &robot);
    b["msgParam"] = json!({ "title": "t", "text": "x" });
    assert_api_err(&send(b).await, 400, "invalidParameter.msgParam.invalid");

    let mut b = markdown("cidA==", &robot);
    b["msgParam"] = json!("not json");
    assert_api_err(&send(b).await, 400, "invalidParameter.msgParam.invalid");

    let mut b = markdown("cidA==", &robot);
    b["msgParam"] = json!({ "title": "t", "text": "x".repeat(15_001) })
        .to_string()
        .into();
    assert_api_err(&send(b).await, 400, "invalidParameter.msgParam.tooLong");

    let mut b = markdown("cidA==", &robot);
    b.as_object_mut().unwrap().remove("robotCode");
    assert_api_err(&send(b).await, 400, "invalidParameter.robotCode.missing");

    assert_api_err(
        &send(markdown("cidA==", "dingother")).await,
        400,
        "invalidParameter.robotCode.auth",
    );
    assert_api_err(
        &send(markdown("cidNope==", &robot)).await,
        400,
        "invalid.openConversationId",
    );

    let mut b = markdown("cidA==", &robot);
    b["msgKey"] = json!("sampleNope");
    assert_api_err(&send(b).await, 400, "invalidParameter.msgKey.invalid");

    // A cool-app group needs its coolAppCode.
    assert_api_err(
        &send(markdown("cidS==", &robot)).await,
        400,
        "resource.unavailable",
    );
    let mut b = markdown("cidS==", &robot);
    b["coolAppCode"] = json!("COOLAPP_1");
    assert_eq!(send(b).await.status, 200);

    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.calls(Api::Send), 9);
}

async fn query(c: &reqwest::Client, fake: &FakeDingTalk, t: &str, body: Value) -> Answer {
    post(c, fake, "/v1.0/robot/groupMessages/query", Some(t), body).await
}

#[tokio::test]
async fn query_pages_with_opaque_tokens() {
    let (fake, c) = start().await;
    let key = fake.seed_notice("cidA==", "t", "x");
    let readers: Vec<String> = (0..450).map(|i| format!("user{i:03}")).collect();
    // Read in reverse name order: the fake must keep reading order.
    let refs: Vec<&str> = readers.iter().rev().map(String::as_str).collect();
    assert!(fake.mark_read(&key, &refs));
    assert!(fake.mark_read(&key, &["user000"]), "repeat read is ignored");
    let t = token(&c, &fake).await;
    let robot = fake.config().robot_code.clone();

    let mut got = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let mut body = json!({
            "openConversationId": "cidA==",
            "robotCode": robot,
            "processQueryKey": key,
            "maxResults": 200,
        });
        if let Some(n) = &next {
            body["nextToken"] = json!(n);
        }
        let a = query(&c, &fake, &t, body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["sendStatus"], "SUCCESS");
        let ids = a.body["readUserIds"].as_array().unwrap();
        pages.push(ids.len());
        got.extend(ids.iter().map(|v| v.as_str().unwrap().to_owned()));
        if !a.body["hasMore"].as_bool().unwrap() {
            assert!(a.body.get("nextToken").is_none(), "{}", a.body);
            break;
        }
        let n = a.body["nextToken"].as_str().unwrap().to_owned();
        assert!(
            n.parse::<u64>().is_err(),
            "token must not be a plain offset: {n}"
        );
        next = Some(n);
    }
    assert_eq!(pages, vec![200, 200, 50]);
    let want: Vec<String> = refs.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(got, want);
    assert_eq!(fake.calls(Api::Query), 3);
}

#[tokio::test]
async fn query_errors() {
    let (fake, c) = start().await;
    fake.add_group("cidA==", GroupKind::Inner, &[]);
    fake.add_group("cidB==", GroupKind::Inner, &[]);
    let key = fake.seed_notice("cidA==", "t", "x");
    let other = fake.seed_notice("cidA==", "t2", "y");
    let users: Vec<String> = (0..5).map(|i| format!("u{i}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    fake.mark_read(&key, &refs);
    fake.mark_read(&other, &refs);
    let t = token(&c, &fake).await;

    let first = query(
        &c,
        &fake,
        &t,
        json!({ "processQueryKey": key, "maxResults": 2 }),
    )
    .await;
    assert_eq!(first.body["readUserIds"], json!(["u0", "u1"]));
    let tok = first.body["nextToken"].as_str().unwrap().to_owned();

    // A tampered token.
    let mut chars: Vec<char> = tok.chars().collect();
    chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    let a = query(
        &c,
        &fake,
        &t,
        json!({ "processQueryKey": key, "maxResults": 2, "nextToken": tampered }),
    )
    .await;
    assert_api_err(&a, 400, "invalidParameter.cursor.invalid");
    // A token of another notice, and a guessed offset.
    let a = query(
        &c,
        &fake,
        &t,
        json!({ "processQueryKey": other, "nextToken": tok }),
    )
    .await;
    assert_api_err(&a, 400, "invalidParameter.cursor.invalid");
    let a = query(
        &c,
        &fake,
        &t,
        json!({ "processQueryKey": key, "nextToken": "2" }),
    )
    .await;
    assert_api_err(&a, 400, "invalidParameter.cursor.invalid");
    // The real token still works.
    let a = query(
        &c,
        &fake,
        &t,
        json!({ "processQueryKey": key, "nextToken": tok }),
    )
    .await;
    assert_eq!(a.body["readUserIds"], json!(["u2", "u3", "u4"]));

    let a = query(
        &c,
        &fake,
        &t,
        json!({ "processQueryKey": key, "maxResults": 201 }),
    )
    .await;
    assert_api_err(&a, 400, "invalidParameter.pageSize.invalid");
    let a = query(&c, &fake, &t, json!({ "maxResults": 10 })).await;
    assert_api_err(&a, 400, "invalidParameter.processQueryKey.missing");
    let a = query(&c, &fake, &t, json!({ "processQueryKey": "bm9wZQ==" })).await;
    assert_api_err(&a, 400, "invalid.processQueryKey");
    let a = query(
        &c,
        &fake,
        &t,
        json!({ "processQueryKey": key, "openConversationId": "cidB==" }),
    )
    .await;
    assert_api_err(&a, 400, "invalid.openConversationId");
    let a = query(
        &c,
        &fake,
        &t,
        json!({ "processQueryKey": key, "robotCode": "dingother" }),
    )
    .await;
    assert_api_err(&a, 400, "invalidParameter.robotCode.invalid");
}

#[tokio::test]
async fn query_not_ready_expired_and_recalled() {
    let (fake, c) = start().await;
    let key = fake.seed_notice("cidA==", "t", "x");
    fake.mark_read(&key, &["u1"]);
    let t = token(&c, &fake).await;
    let body = json!({ "processQueryKey": key });

    assert!(fake.set_not_ready(&key, 2));
    for _ in 0..2 {
        let a = query(&c, &fake, &t, body.clone()).await;
        assert_api_err(&a, 400, "processQueryKey.expireTime");
    }
    let a = query(&c, &fake, &t, body.clone()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["readUserIds"], json!(["u1"]));
    assert_eq!(a.body["hasMore"], false);

    assert!(fake.set_send_status(&key, "RECALLED"));
    let a = query(&c, &fake, &t, body.clone()).await;
    assert_eq!(a.body["sendStatus"], "RECALLED");

    assert!(fake.expire_query_data(&key));
    let a = query(&c, &fake, &t, body).await;
    assert_api_err(&a, 400, "processQueryKey.expireTime");

    assert!(!fake.mark_read("unknown", &["u1"]));
}

#[tokio::test]
async fn inner_group_member_list() {
    let (fake, c) = start().await;
    let members: Vec<(String, String)> = (0..5)
        .map(|i| (format!("u{i}"), format!("名{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = members
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    fake.add_group("cidI==", GroupKind::Inner, &refs);
    fake.add_group("cidP==", GroupKind::Plain, &refs);
    let t = token(&c, &fake).await;
    let path = "/v1.0/im/innerGroups/memberLists/query";

    let mut next = json!(0);
    let mut names = Vec::new();
    loop {
        let body = json!({ "openConversationId": "cidI==", "userId": "u3", "maxResults": 2, "nextToken": next });
        let a = post(&c, &fake, path, Some(&t), body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["success"], true);
        for m in a.body["list"].as_array().unwrap() {
            assert!(m["userId"].is_string() && m["nickName"].is_string() && m["icon"].is_string());
            names.push(m["name"].as_str().unwrap().to_owned());
        }
        assert!(a.body["nextToken"].is_u64(), "integer cursor: {}", a.body);
        if !a.body["hasMore"].as_bool().unwrap() {
            break;
        }
        next = a.body["nextToken"].clone();
    }
    assert_eq!(names, vec!["名0", "名1", "名2", "名3", "名4"]);

    let a = post(&c, &fake, path, Some(&t), json!({ "openConversationId": "cidI==", "userId": "u3", "maxResults": 2, "nextToken": "0" })).await;
    assert_api_err(&a, 400, "invalidParameter.nextToken.invalid");
    let a = post(&c, &fake, path, Some(&t), json!({ "openConversationId": "cidI==", "userId": "stranger", "maxResults": 2, "nextToken": 0 })).await;
    assert_api_err(&a, 400, "invalidParameter.userId.notMember");
    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        json!({ "openConversationId": "cidP==", "userId": "u3", "maxResults": 2, "nextToken": 0 }),
    )
    .await;
    assert_api_err(&a, 400, "groupPermissionDenied");
    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        json!({ "openConversationId": "cidX==", "userId": "u3", "maxResults": 2, "nextToken": 0 }),
    )
    .await;
    assert_api_err(&a, 400, "invalid.openConversationId");
}

#[tokio::test]
async fn scene_group_member_list() {
    let (fake, c) = start().await;
    let big: Vec<(String, String)> = (0..1500)
        .map(|i| (format!("s{i:04}"), format!("n{i}")))
        .collect();
    let big_refs: Vec<(&str, &str)> = big.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let scene = |code: Option<&str>| GroupKind::Scene {
        cool_app_code: code.map(str::to_owned),
    };
    fake.add_group("cidSmall==", scene(None), &big_refs[..1000]);
    fake.add_group("cidBig==", scene(None), &big_refs);
    fake.add_group("cidCool==", scene(Some("COOL")), &big_refs[..3]);
    fake.add_group("cidI==", GroupKind::Inner, &big_refs[..3]);
    let t = token(&c, &fake).await;
    let path = "/v1.0/im/sceneGroups/members/batchQuery";

    // ≤1000 members: one page whatever maxResults says.
    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        json!({ "openConversationId": "cidSmall==", "maxResults": 20 }),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["memberUserIds"].as_array().unwrap().len(), 1000);
    assert_eq!(a.body["hasMore"], false);
    assert_eq!(a.body["staffIdNickMap"]["s0007"], "n7");

    // >1000: pages.
    let mut seen = 0;
    let mut next: Option<String> = None;
    loop {
        let mut body = json!({ "openConversationId": "cidBig==", "maxResults": 600 });
        if let Some(n) = &next {
            body["nextToken"] = json!(n);
        }
        let a = post(&c, &fake, path, Some(&t), body).await;
        seen += a.body["memberUserIds"].as_array().unwrap().len();
        if !a.body["hasMore"].as_bool().unwrap() {
            break;
        }
        next = Some(a.body["nextToken"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, 1500);

    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        json!({ "openConversationId": "cidI==", "maxResults": 20 }),
    )
    .await;
    assert_api_err(&a, 400, "groupPermissionDenied");
    assert_eq!(a.body["message"], "该群没有安装群模板");
    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        json!({ "openConversationId": "cidCool==", "coolAppCode": "OTHER", "maxResults": 20 }),
    )
    .await;
    assert_api_err(&a, 400, "coolAppPermissionDenied");
    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        json!({ "openConversationId": "cidCool==", "coolAppCode": "COOL", "maxResults": 20 }),
    )
    .await;
    assert_eq!(a.body["memberUserIds"], json!(["s0000", "s0001", "s0002"]));
    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        json!({ "openConversationId": "cidSmall==" }),
    )
    .await;
    assert_api_err(&a, 400, "invalidParameter.maxResults.missing");
}

#[tokio::test]
async fn scene_group_member_list_refuses_an_unknown_group_as_documented() {
    let (fake, c) = start().await;
    let t = token(&c, &fake).await;
    let a = post(
        &c,
        &fake,
        "/v1.0/im/sceneGroups/members/batchQuery",
        Some(&t),
        json!({ "openConversationId": "cidUnknown==", "maxResults": 20 }),
    )
    .await;
    assert_api_err(&a, 400, "cidEncryptError");
    assert_eq!(a.body["message"], "群ID解析错误");
}

#[tokio::test]
async fn user_get_old_api() {
    let (fake, c) = start().await;
    fake.add_user("manager4220", "张三");
    let t = token(&c, &fake).await;
    let url = |tok: &str| format!("{}/topapi/v2/user/get?access_token={tok}", fake.base_url());
    let get = |tok: String, userid: &str| {
        let req = c
            .post(url(&tok))
            .json(&json!({ "userid": userid, "language": "zh_CN" }));
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "old API is always HTTP 200");
            resp.json::<Value>().await.unwrap()
        }
    };

    let ok = get(t.clone(), "manager4220").await;
    assert_eq!(ok["errcode"], 0);
    assert_eq!(ok["errmsg"], "ok");
    assert!(ok["request_id"].is_string());
    assert_eq!(ok["result"]["userid"], "manager4220");
    assert_eq!(ok["result"]["name"], "张三");
    assert!(ok["result"]["unionid"].is_string());

    let missing = get(t.clone(), "nobody").await;
    assert_eq!(missing["errcode"], 60121);
    assert_eq!(get("bogus".into(), "manager4220").await["errcode"], 40014);

    // Form-encoded works too.
    let form: Value = c
        .post(url(&t))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("userid=manager4220&language=zh_CN")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(form["result"]["name"], "张三");

    fake.expire_tokens();
    assert_eq!(get(t, "manager4220").await["errcode"], 42001);
    assert_eq!(fake.calls(Api::UserGet), 5);
}

async fn post_session(c: &reqwest::Client, url: &str, body: &Value) -> Value {
    let resp = c.post(url).json(body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn send_by_session() {
    let (fake, c) = start().await;
    let (url, expires) = fake.new_session("cidA==", Duration::from_secs(5400));
    assert!(url.starts_with(&format!("{}/robot/sendBySession?session=", fake.base_url())));
    assert!(expires > now_ms());
    let md = json!({
        "msgtype": "markdown",
        "markdown": { "title": "Read receipt", "text": "Unread: @u1" },
        "at": { "atUserIds": ["u1"], "isAtAll": false },
    });
    assert_eq!(
        post_session(&c, &url, &md).await,
        json!({ "errcode": 0, "errmsg": "ok" })
    );
    let text = json!({ "msgtype": "text", "text": { "content": "hi" } });
    assert_eq!(post_session(&c, &url, &text).await["errcode"], 0);

    let view = fake.group_view("cidA==");
    assert_eq!(view.len(), 2);
    assert_eq!(view[0].via, Via::Session);
    assert_eq!(view[0].msg_key_or_type, "markdown");
    assert_eq!(view[0].title.as_deref(), Some("Read receipt"));
    assert_eq!(view[0].text, "Unread: @u1");
    assert_eq!(view[0].at_user_ids, vec!["u1".to_owned()]);
    assert_eq!(view[1].text, "hi");

    // Oversize body.
    let big = json!({ "msgtype": "text", "text": { "content": "x".repeat(20_001) } });
    assert_eq!(post_session(&c, &url, &big).await["errcode"], 460101);
    // Wrong content type.
    let resp: Value = c
        .post(&url)
        .header("content-type", "text/plain")
        .body(text.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["errcode"], 43004);
    // Expired and unknown sessions.
    fake.expire_session(&url);
    let gone = post_session(&c, &url, &text).await;
    assert_eq!(
        gone,
        json!({ "errcode": 300001, "errmsg": "session 不存在" })
    );
    let (short, _) = fake.new_session("cidA==", Duration::ZERO);
    assert_eq!(post_session(&c, &short, &text).await["errcode"], 300001);
    assert_eq!(fake.sent().len(), 2);
    assert_eq!(fake.calls(Api::SendBySession), 6);
}

#[tokio::test]
async fn mention_body_is_the_documented_callback() {
    let (fake, c) = start().await;
    let m = Mention::new("cidA==", "u1", "小钉", "who read?");
    let body = fake.mention_body(&m);
    assert_eq!(body["msgtype"], "text");
    assert_eq!(body["text"]["content"], " who read?");
    assert_eq!(body["msgId"], m.msg_id.as_str());
    assert!(body["createAt"].is_i64());
    assert_eq!(body["conversationType"], "2");
    assert_eq!(body["conversationId"], "cidA==");
    assert_eq!(body["senderStaffId"], "u1");
    assert_eq!(body["senderNick"], "小钉");
    assert_eq!(body["robotCode"], fake.config().robot_code.as_str());
    assert_eq!(body["isInAtList"], true);
    assert_eq!(body["atUsers"][0]["dingtalkId"], body["chatbotUserId"]);
    let expires = body["sessionWebhookExpiredTime"].as_i64().unwrap();
    assert!(expires - body["createAt"].as_i64().unwrap() >= 5_400_000 - 1000);
    // Its session works.
    let url = body["sessionWebhook"].as_str().unwrap();
    let reply = json!({ "msgtype": "text", "text": { "content": "ok" } });
    assert_eq!(post_session(&c, url, &reply).await["errcode"], 0);
    assert_eq!(fake.group_view("cidA==")[0].text, "ok");

    let (ts, sign) = fake.callback_headers();
    assert_eq!(sign, FakeDingTalk::sign(&ts, &fake.config().app_secret));
}

#[tokio::test]
async fn faults_then_normal_answers() {
    let (fake, c) = start().await;
    let t = token(&c, &fake).await;
    let key = fake.seed_notice("cidA==", "t", "x");
    let body = json!({ "processQueryKey": key });
    let url = format!("{}/v1.0/robot/groupMessages/query", fake.base_url());
    let raw = |c: &reqwest::Client| {
        c.post(&url)
            .header("x-acs-dingtalk-access-token", &t)
            .json(&body)
            .send()
    };

    fake.inject(Api::Query, Fault::status(429, "system.busy", "busy"), 1);
    fake.inject(Api::Query, Fault::GatewayTimeout, 1);
    fake.inject(Api::Query, Fault::Truncated, 1);
    fake.inject(Api::Query, Fault::NotJson, 1);
    fake.inject(
        Api::Query,
        Fault::OldApiErr {
            errcode: -1,
            errmsg: "系统繁忙".into(),
        },
        1,
    );
    fake.inject(Api::Query, Fault::Hang(Duration::from_millis(5)), 1);
    fake.inject(Api::Send, Fault::GatewayTimeout, 1); // not for Query

    let a = query(&c, &fake, &t, body.clone()).await;
    assert_api_err(&a, 429, "system.busy");
    let a = query(&c, &fake, &t, body.clone()).await;
    assert_api_err(&a, 504, "GatewayTimeout");
    let text = raw(&c).await.unwrap().text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    let resp = raw(&c).await.unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let a = query(&c, &fake, &t, body.clone()).await;
    assert_eq!((a.status, a.body["errcode"].clone()), (200, json!(-1)));
    // Hang answers normally, and so does the next call.
    for _ in 0..2 {
        let a = query(&c, &fake, &t, body.clone()).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["sendStatus"], "SUCCESS");
    }
    assert_eq!(fake.calls(Api::Query), 7);

    // Api::Any hits every endpoint, old API included.
    fake.inject(
        Api::Any,
        Fault::status(500, "system.error", "Unknown system error"),
        2,
    );
    let a = post(&c, &fake, "/v1.0/oauth2/accessToken", None, json!({})).await;
    assert_api_err(&a, 500, "system.error");
    let (url, _) = fake.new_session("cidA==", Duration::from_secs(60));
    let resp = c.post(&url).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 500);

    assert_eq!(fake.calls(Api::Any), 1 + 7 + 1 + 1);
    fake.reset_calls();
    assert_eq!(fake.calls(Api::Any), 0);
}

#[tokio::test]
async fn latency_still_answers() {
    let (fake, c) = start().await;
    fake.set_latency(Duration::from_millis(2));
    let t = token(&c, &fake).await;
    assert!(!t.is_empty());
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let (fake, _) = start().await;
    let url = format!("{}/v1.0/oauth2/accessToken", fake.base_url());
    fake.shutdown();
    let mut stopped = false;
    for _ in 0..100 {
        // A fresh client each time: no pooled connection survives.
        if client().post(&url).json(&json!({})).send().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stopped);
}

#[tokio::test]
async fn deliver_mention_signs_with_the_app_secret() {
    use axum::http::HeaderMap as AxHeaders;
    let (fake, _) = start().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(AxHeaders, Value)>();
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |h: AxHeaders, axum::Json(v): axum::Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((h, v));
                axum::Json(json!({ "msgtype": "empty" }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let m = Mention::new("cidA==", "u1", "小钉", "who read?");
    let resp = fake
        .deliver_mention(&format!("http://{addr}/cb"), &m)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (headers, body) = rx.recv().await.unwrap();
    let ts = headers["timestamp"].to_str().unwrap();
    let sign = headers["sign"].to_str().unwrap();
    assert_eq!(sign, FakeDingTalk::sign(ts, &fake.config().app_secret));
    assert_eq!(body["msgId"], m.msg_id.as_str());
}

fn direct(users: &[String], robot: &str) -> Value {
    json!({
        "robotCode": robot,
        "userIds": users,
        "msgKey": "sampleMarkdown",
        "msgParam": json!({ "title": "提醒", "text": "请阅读通知" }).to_string(),
    })
}

#[tokio::test]
async fn batch_send_caps_user_ids_and_reports_invalid_and_flow_controlled() {
    let (fake, c) = start().await;
    fake.add_group(
        "cid1",
        GroupKind::Inner,
        &[("u1", "A"), ("u2", "B"), ("u3", "C")],
    );
    fake.set_flow_controlled(&["u2"]);
    fake.set_invalid_users(&["u3"]);
    let t = token(&c, &fake).await;
    let robot = fake.config().robot_code.clone();
    let path = "/v1.0/robot/oToMessages/batchSend";

    let too_many: Vec<String> = (0..21).map(|i| format!("u{i}")).collect();
    let a = post(&c, &fake, path, Some(&t), direct(&too_many, &robot)).await;
    assert_api_err(&a, 400, "invalidParameter.userIds.overMax");
    let a = post(&c, &fake, path, Some(&t), direct(&[], &robot)).await;
    assert_api_err(&a, 400, "invalidParameter.userIds.missing");
    let users: Vec<String> = ["u1", "u2", "u3", "nobody"].map(String::from).to_vec();
    let a = post(&c, &fake, path, Some(&t), direct(&users, "other")).await;
    assert_api_err(&a, 400, "invalidParameter.robotCode.auth");
    let a = post(&c, &fake, path, None, direct(&users, &robot)).await;
    assert_api_err(&a, 400, "InvalidAuthentication");

    let a = post(&c, &fake, path, Some(&t), direct(&users, &robot)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["invalidStaffIdList"], json!(["u3", "nobody"]));
    assert_eq!(a.body["flowControlledStaffIdList"], json!(["u2"]));
    assert!(a.body["processQueryKey"].is_string());
    let batches = fake.direct_batches();
    assert_eq!(batches.len(), 1, "refused calls are not recorded");
    assert_eq!(batches[0].user_ids, users);
    assert_eq!(batches[0].delivered_to, ["u1"]);
    assert_eq!(batches[0].title.as_deref(), Some("提醒"));
    assert_eq!(fake.calls(Api::BatchSend), 5);
}

#[tokio::test]
async fn recall_caps_keys_and_reports_failed_result() {
    let (fake, c) = start().await;
    fake.add_group("cid1", GroupKind::Inner, &[("u1", "A")]);
    let k1 = fake.seed_notice("cid1", "one", "text");
    let k2 = fake.seed_notice("cid1", "two", "text");
    let other = fake.seed_notice("cid2", "elsewhere", "text");
    fake.fail_recall(&k2, "消息已超过撤回时限");
    let t = token(&c, &fake).await;
    let robot = fake.config().robot_code.clone();
    let path = "/v1.0/robot/groupMessages/recall";
    let body = |keys: Vec<String>| json!({ "openConversationId": "cid1", "robotCode": robot, "processQueryKeys": keys });

    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        body((0..21).map(|i| format!("k{i}")).collect()),
    )
    .await;
    assert_api_err(&a, 400, "invalidParameter.processQueryKeys.overMax");

    let a = post(
        &c,
        &fake,
        path,
        Some(&t),
        body(vec![
            k1.clone(),
            k2.clone(),
            other.clone(),
            "unknown".into(),
        ]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["successResult"], json!([k1]));
    let failed = a.body["failedResult"].as_object().unwrap();
    assert_eq!(failed[&k2], "消息已超过撤回时限");
    assert!(failed[&other].is_string());
    assert!(failed["unknown"].is_string());
    assert_eq!(failed.len(), 3);
    assert_eq!(fake.send_status(&k1).as_deref(), Some("RECALLED"));
    assert_eq!(fake.send_status(&k2).as_deref(), Some("SUCCESS"));
    assert_eq!(fake.send_status(&other).as_deref(), Some("SUCCESS"));
}
