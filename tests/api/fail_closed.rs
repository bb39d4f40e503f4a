//! Fail-closed edges, at volume: forged, stale, future-dated, malformed,
//! oversized and replayed callbacks; unauthorised and invalid API requests;
//! random requests on every route. Nothing bad is accepted, nothing reaches
//! DingTalk, nothing is written, and nothing answers 5xx.

use crate::helpers::*;
use crate::reliability::{report, rng, scale, settle};
use rand::rngs::StdRng;
use rand::Rng;
use readbot::domain::MsgId;
use readbot::fake::{Api, FakeDingTalk, GroupKind, Via};
use readbot::store::Claim;
use readbot::store::StoreConfig;
use serde_json::{json, Value};
use std::time::Duration;

const GROUP: &str = "cidFailClosed+/==";
const HOUR_MS: i64 = 3_600_000;

/// A header value as raw bytes (`None`: header absent).
type Header = Option<Vec<u8>>;
/// (what, Authorization, body, expected status, field the message must name)
type BadApiRequest = (String, Option<String>, Vec<u8>, u16, &'static str);

/// One hostile callback: headers (raw bytes, so non-UTF-8 is possible) and body.
struct BadCallback {
    what: String,
    timestamp: Option<Vec<u8>>,
    sign: Option<Vec<u8>>,
    body: Vec<u8>,
    /// The msgId the body carries, when it has a usable one: it must stay unclaimed.
    msg_id: Option<String>,
}

fn random_header_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let n = rng.random_range(0..=max);
    (0..n)
        .map(|_| loop {
            let b: u8 = rng.random();
            // Bytes a header value may carry: visible ASCII, space, obs-text.
            if (0x20..=0x7e).contains(&b) || b >= 0x80 {
                break b;
            }
        })
        .collect()
}

fn flip_bit(sign: &str, rng: &mut StdRng) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut raw = engine.decode(sign).expect("own sign decodes");
    let i = rng.random_range(0..raw.len());
    raw[i] ^= 1 << rng.random_range(0..8);
    engine.encode(raw)
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Signed bodies that must be refused (400 or 413).
fn bad_bodies(app: &TestApp, rng: &mut StdRng, n: usize) -> Vec<(String, Vec<u8>, Option<String>)> {
    let good = app.mention("template", GROUP, "user0001", "who read");
    let mut out: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
    let with = |f: &dyn Fn(&mut Value), id: Option<&str>| {
        let mut v = good.clone();
        v["msgId"] = json!(id.unwrap_or("unused"));
        f(&mut v);
        v.to_string().into_bytes()
    };
    let mut k = 0usize;
    let mut fresh = || {
        k += 1;
        format!("hostile-{k}")
    };
    for round in 0..n {
        // Wrong types for every field readbot reads.
        for (field, val) in [
            ("msgId", json!(12345)),
            ("msgId", json!(["m"])),
            ("msgId", json!({"id": "m"})),
            ("msgId", json!(true)),
            ("msgId", json!("")),
            ("msgId", json!("   ")),
            ("msgId", json!("x".repeat(300))),
            ("msgId", json!("ctl\u{0007}id")),
        ] {
            let b = with(&|v: &mut Value| v[field] = val.clone(), None);
            out.push((format!("{field} = {val:.40}"), b, None));
        }
        for (field, val) in [
            ("conversationId", json!(7)),
            ("conversationId", json!("")),
            ("conversationId", json!("c".repeat(300))),
            ("conversationId", json!("cid\u{0000}x")),
            ("conversationId", Value::Null),
            ("conversationType", json!(2)),
            ("text", json!("plain string")),
            ("text", json!({"content": 5})),
            ("text", json!([1, 2])),
            ("createAt", json!({"t": 1})),
            ("createAt", json!([1])),
            ("sessionWebhookExpiredTime", json!([1])),
            ("sessionWebhook", json!(42)),
            ("senderStaffId", json!({"a": 1})),
            ("senderNick", json!([])),
            ("robotCode", json!(1.5)),
            ("atUsers", json!({"staffId": "u"})),
            ("atUsers", json!([1, 2, 3])),
            ("atUsers", json!([{"staffId": 9}])),
        ] {
            let id = fresh();
            let b = with(
                &|v: &mut Value| {
                    if field == "conversationId" && val.is_null() {
                        v.as_object_mut().expect("object").remove("conversationId");
                    } else {
                        v[field] = val.clone();
                    }
                },
                Some(&id),
            );
            out.push((format!("{field} = {val:.40}"), b, Some(id)));
        }
        // Structure: not an object, nesting beyond any sane depth, duplicates,
        // numbers out of range, invalid UTF-8.
        for (what, b) in [
            ("empty body", Vec::new()),
            ("array", b"[]".to_vec()),
            ("number", b"42".to_vec()),
            ("string", b"\"msgId\"".to_vec()),
            ("null", b"null".to_vec()),
            ("truncated object", b"{\"msgId\":\"m".to_vec()),
            ("trailing garbage", {
                let mut b = with(&|_| {}, None);
                b.extend_from_slice(b"}}garbage");
                b
            }),
            (
                "deep nesting in content",
                format!(r#"{{"msgId":"{}","content":{}}}"#, fresh(), nested(5000)).into_bytes(),
            ),
            (
                "deep nesting in an unknown field",
                format!(r#"{{"msgId":"{}","zzz":{}}}"#, fresh(), nested(5000)).into_bytes(),
            ),
            (
                "deep objects",
                format!(
                    r#"{{"msgId":"{}","content":{}1{}}}"#,
                    fresh(),
                    "{\"a\":".repeat(3000),
                    "}".repeat(3000)
                )
                .into_bytes(),
            ),
            (
                "duplicate msgId",
                br#"{"msgId":"dup-a","msgId":"dup-b","conversationType":"2","conversationId":"c"}"#
                    .to_vec(),
            ),
            (
                "createAt out of range",
                format!(r#"{{"msgId":"{}","createAt":1e400}}"#, fresh()).into_bytes(),
            ),
            ("invalid UTF-8 in a string", {
                let mut b = br#"{"msgId":"m"#.to_vec();
                b.extend_from_slice(&[0xff, 0xfe, 0xc3]);
                b.extend_from_slice(br#"","conversationType":"2","conversationId":"c"}"#);
                b
            }),
            ("UTF-16 body", {
                let s = with(&|_| {}, None);
                let s = String::from_utf8(s).expect("utf8");
                s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
            }),
            ("NaN", br#"{"msgId":"m","createAt":NaN}"#.to_vec()),
        ] {
            out.push((what.to_string(), b, None));
        }
        // Random bytes, some looking like the start of an object.
        for _ in 0..20 {
            let len = rng.random_range(0..2048);
            let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if rng.random_bool(0.5) {
                b.insert(0, b'{');
            }
            // Keep only inputs that are certainly not a valid object.
            if serde_json::from_slice::<Value>(&b).is_ok() {
                continue;
            }
            out.push((format!("random bytes #{round}"), b, None));
        }
        // Random mutations of a good body: truncated at a random point.
        let good_bytes = with(&|_| {}, None);
        for _ in 0..10 {
            let cut = rng.random_range(0..good_bytes.len() - 1);
            out.push((
                format!("body cut at {cut}"),
                good_bytes[..cut].to_vec(),
                None,
            ));
        }
    }
    out
}

fn bad_callbacks(app: &TestApp, rng: &mut StdRng, n: usize) -> Vec<BadCallback> {
    let secret = app.fake.config().app_secret.clone();
    let mut out = Vec::new();
    for i in 0..n {
        let id = format!("forged-{i}");
        let body = app.mention(&id, GROUP, "user0001", "who read").to_string();
        let now = now_ms();
        let ts = now.to_string();
        let sign = FakeDingTalk::sign(&ts, &secret);
        let skew = rng.random_range(1..=10 * HOUR_MS);
        let stale = (now - HOUR_MS - 60_000 - skew).to_string();
        let future = (now + HOUR_MS + 60_000 + skew).to_string();
        let cases: Vec<(String, Header, Header)> = vec![
            ("no headers".into(), None, None),
            ("no timestamp".into(), None, Some(sign.clone().into())),
            ("no sign".into(), Some(ts.clone().into()), None),
            (
                "random timestamp".into(),
                Some(random_header_bytes(rng, 30)),
                Some(sign.clone().into()),
            ),
            (
                "random sign".into(),
                Some(ts.clone().into()),
                Some(random_header_bytes(rng, 60)),
            ),
            (
                "random base64 sign".into(),
                Some(ts.clone().into()),
                Some({
                    use base64::Engine as _;
                    let raw: [u8; 32] = rng.random();
                    base64::engine::general_purpose::STANDARD
                        .encode(raw)
                        .into_bytes()
                }),
            ),
            (
                "one bit flipped".into(),
                Some(ts.clone().into()),
                Some(flip_bit(&sign, rng).into()),
            ),
            (
                "sign of the next millisecond".into(),
                Some(ts.clone().into()),
                Some(FakeDingTalk::sign(&(now + 1).to_string(), &secret).into()),
            ),
            (
                "another secret".into(),
                Some(ts.clone().into()),
                Some(FakeDingTalk::sign(&ts, "not the app secret").into()),
            ),
            (
                "truncated sign".into(),
                Some(ts.clone().into()),
                Some(sign[..sign.len() - 2].to_string().into()),
            ),
            (
                "sign with extra bytes".into(),
                Some(ts.clone().into()),
                Some(format!("{sign}AAAA").into()),
            ),
            (
                "URL-encoded sign".into(),
                Some(ts.clone().into()),
                Some(
                    url::form_urlencoded::byte_serialize(sign.as_bytes())
                        .collect::<String>()
                        .into(),
                ),
            ),
            (
                "stale, correctly signed".into(),
                Some(stale.clone().into()),
                Some(FakeDingTalk::sign(&stale, &secret).into()),
            ),
            (
                "future, correctly signed".into(),
                Some(future.clone().into()),
                Some(FakeDingTalk::sign(&future, &secret).into()),
            ),
            (
                "seconds instead of milliseconds".into(),
                Some((now / 1000).to_string().into()),
                Some(FakeDingTalk::sign(&(now / 1000).to_string(), &secret).into()),
            ),
            (
                "signed timestamp with a leading plus".into(),
                Some(format!("+{ts}").into()),
                Some(FakeDingTalk::sign(&format!("+{ts}"), &secret).into()),
            ),
            (
                "signed timestamp with spaces".into(),
                Some(format!(" {ts} ").into()),
                Some(FakeDingTalk::sign(&format!(" {ts} "), &secret).into()),
            ),
            (
                "huge timestamp".into(),
                Some("99999999999999999999999".into()),
                Some(FakeDingTalk::sign("99999999999999999999999", &secret).into()),
            ),
            (
                "negative timestamp".into(),
                Some("-1".into()),
                Some(FakeDingTalk::sign("-1", &secret).into()),
            ),
        ];
        for (what, t, s) in cases {
            out.push(BadCallback {
                what,
                timestamp: t,
                sign: s,
                body: body.clone().into_bytes(),
                msg_id: Some(id.clone()),
            });
        }
    }
    for (what, body, msg_id) in bad_bodies(app, rng, n) {
        let ts = now_ms().to_string();
        let sign = FakeDingTalk::sign(&ts, &secret);
        out.push(BadCallback {
            what,
            timestamp: Some(ts.into_bytes()),
            sign: Some(sign.into_bytes()),
            body,
            msg_id,
        });
    }
    out
}

async fn post_raw_callback(app: &TestApp, c: &BadCallback) -> u16 {
    let mut req = app
        .http
        .post(format!("{}/dingtalk/callback", app.addr))
        .header("content-type", "application/json; charset=utf-8")
        .body(c.body.clone());
    if let Some(t) = &c.timestamp {
        req = req.header(
            "timestamp",
            reqwest::header::HeaderValue::from_bytes(t).expect("header bytes"),
        );
    }
    if let Some(s) = &c.sign {
        req = req.header(
            "sign",
            reqwest::header::HeaderValue::from_bytes(s).expect("header bytes"),
        );
    }
    req.send()
        .await
        .expect("callback request")
        .status()
        .as_u16()
}

/// Every API request here is invalid; `expect` is the status and the start of
/// the error message (the field at fault).
fn bad_api_requests(n: usize, rng: &mut StdRng) -> Vec<BadApiRequest> {
    let good = json!({"openConversationId": GROUP, "title": "t", "text": "x"});
    let token = Some(API_TOKEN.to_string());
    let mut out = Vec::new();
    for _ in 0..n {
        let body = good.to_string().into_bytes();
        for (what, auth) in [
            ("no Authorization", None),
            ("empty bearer", Some("Bearer ".to_string())),
            ("wrong token", Some("Bearer wrong-token-0123456789".into())),
            (
                "token prefix",
                Some(format!("Bearer {}", &API_TOKEN[..API_TOKEN.len() - 1])),
            ),
            ("token plus suffix", Some(format!("Bearer {API_TOKEN}x"))),
            (
                "token upper-cased",
                Some(format!("Bearer {}", API_TOKEN.to_uppercase())),
            ),
            ("basic scheme", Some(format!("Basic {API_TOKEN}"))),
            ("token without scheme", Some(API_TOKEN.to_string())),
            (
                "random token",
                Some(format!(
                    "Bearer {}",
                    (0..25)
                        .map(|_| rng.random_range(b'a'..=b'z') as char)
                        .collect::<String>()
                )),
            ),
        ] {
            out.push((
                what.to_string(),
                auth,
                body.clone(),
                401,
                "missing or wrong",
            ));
        }
        let big = "x".repeat(15_001);
        let param = json!({"title": "t", "text": "y".repeat(15_000)});
        let auth = || token.as_ref().map(|t| format!("Bearer {t}"));
        for (what, b, field) in [
            ("msgParam over 15,000 bytes", json!({"openConversationId": GROUP, "msgKey": "sampleMarkdown", "msgParam": param}).to_string().into_bytes(), "msgParam"),
            ("text over 15,000 bytes", json!({"openConversationId": GROUP, "title": "t", "text": big}).to_string().into_bytes(), "text"),
            ("unknown msgtype", json!({"openConversationId": GROUP, "title": "t", "text": "x", "msgtype": "video"}).to_string().into_bytes(), "msgtype"),
            ("msgtype of the wrong type", json!({"openConversationId": GROUP, "title": "t", "text": "x", "msgtype": 1}).to_string().into_bytes(), "msgtype"),
            ("empty group id", json!({"openConversationId": "", "title": "t", "text": "x"}).to_string().into_bytes(), "openConversationId"),
            ("blank group id", json!({"openConversationId": "   ", "title": "t", "text": "x"}).to_string().into_bytes(), "openConversationId"),
            ("group id with a control character", json!({"openConversationId": "cid\u{0001}", "title": "t", "text": "x"}).to_string().into_bytes(), "openConversationId"),
            ("group id too long", json!({"openConversationId": "c".repeat(300), "title": "t", "text": "x"}).to_string().into_bytes(), "openConversationId"),
            ("group id a number", json!({"openConversationId": 5, "title": "t", "text": "x"}).to_string().into_bytes(), "openConversationId"),
            ("no group id", json!({"title": "t", "text": "x"}).to_string().into_bytes(), "openConversationId"),
            ("no title", json!({"openConversationId": GROUP, "text": "x"}).to_string().into_bytes(), "title"),
            ("title too long", json!({"openConversationId": GROUP, "title": "t".repeat(201), "text": "x"}).to_string().into_bytes(), "title"),
            ("title with a newline", json!({"openConversationId": GROUP, "title": "a\nb", "text": "x"}).to_string().into_bytes(), "title"),
            ("no text", json!({"openConversationId": GROUP, "title": "t"}).to_string().into_bytes(), "text"),
            ("text an object", json!({"openConversationId": GROUP, "title": "t", "text": {}}).to_string().into_bytes(), "text"),
            ("author with a control character", json!({"openConversationId": GROUP, "title": "t", "text": "x", "author": "u\u{0002}"}).to_string().into_bytes(), "author"),
            ("msgKey with a slash", json!({"openConversationId": GROUP, "msgKey": "../x", "msgParam": {}}).to_string().into_bytes(), "msgKey"),
            ("msgKey without msgParam", json!({"openConversationId": GROUP, "msgKey": "sampleLink"}).to_string().into_bytes(), "msgParam"),
            ("msgParam an array", json!({"openConversationId": GROUP, "msgKey": "sampleLink", "msgParam": [1]}).to_string().into_bytes(), "msgParam"),
            ("msgParam a non-JSON string", json!({"openConversationId": GROUP, "msgKey": "sampleLink", "msgParam": "{oops"}).to_string().into_bytes(), "msgParam"),
            ("non-UTF-8 body", vec![0xff, 0xfe, 0x7b, 0x00], "body"),
            ("non-UTF-8 inside a string", {
                let mut b = br#"{"openConversationId":"c","title":"t","text":""#.to_vec();
                b.extend_from_slice(&[0xc3, 0x28]);
                b.extend_from_slice(br#""}"#);
                b
            }, "body"),
            ("not JSON", b"openConversationId=c&title=t".to_vec(), "body"),
            ("a JSON array", b"[1,2]".to_vec(), "body"),
            ("deeply nested", format!(r#"{{"openConversationId":"c","title":"t","text":"x","extra":{}}}"#, nested(5000)).into_bytes(), "body"),
            ("empty body", Vec::new(), "body"),
        ] {
            out.push((what.to_string(), auth(), b, 400, field));
        }
    }
    out
}

#[tokio::test]
async fn hostile_inputs_are_refused_without_side_effects() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(5));
    let mut rng = rng();
    let n = scale();
    app.fake.reset_calls();

    let mut tried = 0usize;
    let mut accepted = Vec::new();
    let mut server_errors = Vec::new();
    let mut unclaimed = Vec::new();

    for c in bad_callbacks(&app, &mut rng, n) {
        tried += 1;
        let status = post_raw_callback(&app, &c).await;
        if status < 400 {
            accepted.push(format!("callback {}: {status}", c.what));
        } else if status >= 500 {
            server_errors.push(format!("callback {}: {status}", c.what));
        } else if !(status == 400 || status == 401 || status == 413) {
            accepted.push(format!("callback {}: unexpected {status}", c.what));
        }
        unclaimed.extend(c.msg_id);
    }
    // Oversized: 413 whatever the signature.
    for size in [64 * 1024 + 1, 1024 * 1024] {
        tried += 1;
        let ts = now_ms().to_string();
        let sign = FakeDingTalk::sign(&ts, &app.fake.config().app_secret);
        let r = app
            .post_callback_raw(Some(&ts), Some(&sign), vec![b' '; size])
            .await;
        if r.status() != 413 {
            accepted.push(format!(
                "oversized callback of {size} bytes: {}",
                r.status()
            ));
        }
    }

    let url = format!("{}/api/v1/notices", app.addr);
    for (what, auth, body, want, field) in bad_api_requests(n, &mut rng) {
        tried += 1;
        let mut req = app
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.expect("api request");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        let msg = v["error"]["message"].as_str().unwrap_or("").to_string();
        if status < 400 {
            accepted.push(format!("API {what}: {status}"));
        } else if status != want || !msg.starts_with(field) {
            server_errors.push(format!(
                "API {what}: {status} {msg:?} (want {want} naming {field:?})"
            ));
        }
    }
    // Oversized API body.
    tried += 1;
    let r = app
        .http
        .post(&url)
        .bearer_auth(API_TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .expect("api request");
    if r.status() != 413 {
        accepted.push(format!("oversized API body: {}", r.status()));
    }

    settle().await;
    let calls = app.fake.calls(Api::Any);
    let replies = app.replies(GROUP).len();
    report(&format!(
        "bad inputs tried: {tried}, accepted: {}, 5xx or wrong refusal: {}, DingTalk calls: {calls}, replies: {replies}",
        accepted.len(),
        server_errors.len()
    ));
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
    assert!(server_errors.is_empty(), "{server_errors:#?}");
    assert_eq!(calls, 0, "a refused request reached DingTalk");
    assert_eq!(replies, 0);

    // No write: nothing recorded, no refused msgId consumed.
    let dir = app.data_dir.clone();
    let (_fake, tmp) = app.stop().await;
    let store = readbot::store::open(&StoreConfig::sled(&dir))
        .await
        .expect("store reopens");
    assert_eq!(store.notice_count().await.unwrap(), 0);
    unclaimed.sort();
    unclaimed.dedup();
    for id in &unclaimed {
        let id = MsgId::parse(id.as_str()).expect("msg id");
        assert_eq!(
            store.claim_message(&id, now_ms()).await.unwrap(),
            Claim::New,
            "{id} was claimed by a refused request"
        );
    }
    drop(store);
    drop(tmp);
}

fn random_path(rng: &mut StdRng) -> String {
    const PATHS: &[&str] = &[
        "/dingtalk/callback",
        "/api/v1/notices",
        "/api/v1/notices/",
        "/api/v1/notices/abc/receipts",
        "/api/v1/notices/%2B%2F%3D/receipts",
        "/api/v1/notices/%FF%FE/receipts",
        "/api/v1/notices/%00/receipts",
        "/api/v1/notices?openConversationId=",
        "/api/v1/notices?openConversationId=c&limit=0",
        "/api/v1/notices?openConversationId=c&limit=-1",
        "/api/v1/notices?openConversationId=c&limit=99999999999999999999",
        "/api/v1/notices?openConversationId=%FF",
        "/api/v1/notices?openConversationId=a&openConversationId=b",
        "/api/v1/notices?limit=%zz",
        "/healthz",
        "/healthz?x=%",
        "/",
        "/api",
        "/api/v1/notices/x/receipts/extra",
        "/dingtalk/callback/../../api/v1/notices",
    ];
    let mut p = PATHS[rng.random_range(0..PATHS.len())].to_string();
    if rng.random_bool(0.3) {
        let extra: String = (0..rng.random_range(1..20))
            .map(|_| {
                const CH: &[u8] = b"abcXYZ019%/?&=+._~-";
                CH[rng.random_range(0..CH.len())] as char
            })
            .collect();
        p.push_str(&extra);
    }
    p
}

/// Random requests on every route: whatever they carry, readbot answers with
/// a status below 500 (the API token is right half of the time, so validation
/// is reached too) and nothing reaches DingTalk.
#[tokio::test]
async fn random_requests_never_get_a_5xx() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let mut rng = rng();
    app.fake.reset_calls();
    let n = 150 * scale();
    let mut bad = Vec::new();
    for i in 0..n {
        let method =
            ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"][rng.random_range(0..7)];
        let path = random_path(&mut rng);
        let mut req = app.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{}", app.addr, path),
        );
        if rng.random_bool(0.5) {
            req = req.bearer_auth(API_TOKEN);
        }
        if rng.random_bool(0.5) {
            let ts = now_ms().to_string();
            req = req
                .header("sign", FakeDingTalk::sign(&ts, "guess"))
                .header("timestamp", ts);
        }
        for _ in 0..rng.random_range(0..3) {
            let name = [
                "content-type",
                "x-junk",
                "content-encoding",
                "accept",
                "transfer-encoding-x",
            ][rng.random_range(0..5)];
            let value = random_header_bytes(&mut rng, 40);
            if let Ok(v) = reqwest::header::HeaderValue::from_bytes(&value) {
                req = req.header(name, v);
            }
        }
        if method != "GET" && method != "HEAD" && rng.random_bool(0.8) {
            let body: Vec<u8> = match rng.random_range(0..4) {
                0 => (0..rng.random_range(0..512)).map(|_| rng.random()).collect(),
                1 => json!({"openConversationId": random_header_bytes(&mut rng, 10).len(), "title": [], "text": {}}).to_string().into_bytes(),
                2 => json!({"msgId": format!("r{i}"), "conversationType": "2"}).to_string().into_bytes(),
                _ => nested(rng.random_range(1..3000)).into_bytes(),
            };
            req = req.body(body);
        }
        match req.send().await {
            Ok(r) if r.status().as_u16() >= 500 => {
                bad.push(format!("{method} {path}: {}", r.status()))
            }
            // Every refusal (405 included) is readbot's JSON error, never a
            // plain-text framework answer.
            Ok(r) if r.status().is_client_error() && method != "HEAD" => {
                let status = r.status();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if !v["error"]["code"].is_string() || !v["error"]["message"].is_string() {
                    bad.push(format!(
                        "{method} {path}: {status} without the JSON error: {v}"
                    ));
                }
            }
            Ok(_) => {}
            Err(e) => bad.push(format!("{method} {path}: transport error {e}")),
        }
    }
    settle().await;
    // The process is still healthy.
    let r = app
        .http
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    report(&format!(
        "random requests: {n}, 5xx: {}, DingTalk calls: {}",
        bad.len(),
        app.fake.calls(Api::Any)
    ));
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(app.fake.calls(Api::Any), 0);
}

/// DingTalk's signature covers only the timestamp: a captured header pair can
/// carry any body (readbot lets it carry three msgIds, for five minutes:
/// `replay.rs`). Hostile bodies under fresh pairs never make readbot post
/// outside DingTalk's host, nor reply twice to one msgId.
#[tokio::test]
async fn a_captured_header_pair_cannot_steer_readbot() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(5));
    let evil = start_fake().await;
    add_group(&evil, GROUP, GroupKind::Inner, &members(1));
    let (evil_url, exp) = evil.new_session(GROUP, Duration::from_secs(600));
    let base = app.fake.base_url();
    let port = base.rsplit(':').next().expect("port").to_string();
    let (good_url, _) = app.fake.new_session(GROUP, Duration::from_secs(600));
    let session = good_url
        .split("session=")
        .nth(1)
        .expect("session")
        .to_string();
    // The captured pair of the first body (each body has its own pair: one
    // pair carries at most three msgIds).
    let (ts, sign) = app.fake.callback_headers();

    let hostile_webhooks = vec![
        evil_url.clone(),
        format!("http://user:pw@127.0.0.1:{port}/robot/sendBySession?session={session}"),
        format!("https://127.0.0.1:{port}/robot/sendBySession?session={session}"),
        format!("http://localhost:{port}/robot/sendBySession?session={session}"),
        format!(
            "http://127.0.0.1:{port}@{}/robot/sendBySession",
            evil.base_url().trim_start_matches("http://")
        ),
        format!("{base}/v1.0/robot/groupMessages/send?session={session}"),
        format!("{base}/topapi/v2/user/get?session={session}"),
        format!("{base}/robot/sendBySession/../../v1.0/oauth2/accessToken?session={session}"),
        format!("{}?session={session}", "x".repeat(3000)),
        "file:///etc/passwd".to_string(),
        "javascript:alert(1)".to_string(),
        String::new(),
    ];
    let n = hostile_webhooks.len();
    for (i, hook) in hostile_webhooks.iter().enumerate() {
        let mut body = app.mention(&format!("replay-{i}"), GROUP, "user0001", "help");
        body["sessionWebhook"] = json!(hook);
        body["sessionWebhookExpiredTime"] = json!(exp);
        let (ts, sign) = if i == 0 {
            (ts.clone(), sign.clone())
        } else {
            app.fake.callback_headers()
        };
        let r = app
            .post_callback_raw(Some(&ts), Some(&sign), body.to_string().into_bytes())
            .await;
        assert_eq!(r.status(), 200, "{hook}");
    }
    // The same msgId again, with other bodies, sequentially and at once.
    let mut tasks = Vec::new();
    for k in 0..20 {
        let mut body = app.mention("replay-0", GROUP, "user0002", &format!("who read {k}"));
        body["sessionWebhook"] = json!(good_url.clone());
        let (http, addr, ts, sign) = (app.http.clone(), app.addr.clone(), ts.clone(), sign.clone());
        tasks.push(tokio::spawn(async move {
            http.post(format!("{addr}/dingtalk/callback"))
                .header("timestamp", ts)
                .header("sign", sign)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("replay")
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), 200);
    }
    let replies = app.wait_replies(GROUP, n).await;
    settle().await;
    let replies_after = app.replies(GROUP);
    assert_eq!(replies.len(), n, "{replies:#?}");
    assert_eq!(replies_after.len(), n, "a msgId was answered twice");
    // Every reply went through the robot send API, never a hostile webhook,
    // and no session-reply attempt left for a non-session path.
    assert!(replies_after.iter().all(|m| m.via == Via::OpenApi));
    assert_eq!(evil.calls(Api::Any), 0, "the foreign host got a request");
    assert_eq!(app.fake.calls(Api::SendBySession), 0);
    // Nothing but the fallback sends (and one token) reached DingTalk's host:
    // no hostile webhook was posted to another endpoint there.
    assert_eq!(
        app.fake.calls(Api::Send),
        n,
        "a webhook was posted to groupMessages/send"
    );
    assert_eq!(
        app.fake.calls(Api::Token),
        1,
        "a webhook was posted to the token endpoint"
    );
    assert_eq!(
        app.fake.calls(Api::UserGet),
        0,
        "a webhook was posted to user/get"
    );
    report(&format!(
        "replayed header pair with hostile bodies: {}, posts outside DingTalk's session endpoint: 0, msgIds answered twice: 0",
        n + 20
    ));
}
