//! How readbot's HTTP surface refuses: every refusal is the JSON error
//! `{"error":{"code","message"}}`, a wrong method included (with its
//! `Allow` header), and a 413 says the limit and the setting that raises it.

use crate::helpers::*;
use readbot::fake::{Api, FakeDingTalk};
use serde_json::Value;

/// The JSON error of `r`, asserting its shape and `status`.
async fn json_error(r: reqwest::Response, status: u16) -> (String, String) {
    assert_eq!(r.status(), status);
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let v: Value = r.json().await.expect("a JSON body");
    let code = v["error"]["code"].as_str().expect("error.code").to_owned();
    let message = v["error"]["message"]
        .as_str()
        .expect("error.message")
        .to_owned();
    (code, message)
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_an_allow_header_on_every_route() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        ("PUT", "/api/v1/notices", "GET,HEAD,POST"),
        ("DELETE", "/api/v1/notices", "GET,HEAD,POST"),
        ("POST", "/api/v1/notices/k1/receipts", "GET,HEAD"),
        ("POST", "/healthz", "GET,HEAD"),
        ("DELETE", "/readyz", "GET,HEAD"),
        ("POST", "/metrics", "GET,HEAD"),
        ("GET", "/dingtalk/callback", "POST"),
    ] {
        let r = app
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", app.addr),
            )
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("request");
        let mut got: Vec<String> = r
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        got.sort();
        assert_eq!(got.join(","), allow, "{method} {path}");
        let (code, message) = json_error(r, 405).await;
        assert_eq!(code, "method_not_allowed", "{method} {path}");
        assert!(message.contains(method), "{method} {path}: {message}");
    }
    assert_eq!(app.fake.calls(Api::Any), 0);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413_naming_the_limit_and_the_setting() {
    let app = spawn_app_with(&[("READBOT_MAX_BODY_BYTES", "2048")]).await;
    let huge = serde_json::json!({
        "openConversationId": "cidX", "title": "t", "msgtype": "text",
        "text": "x".repeat(4096),
    });
    let (code, message) = json_error(app.send_notice(&huge).await, 413).await;
    assert_eq!(code, "body_too_large");
    assert!(message.contains("2048 bytes"), "{message}");
    assert!(
        message.contains("bot.max_body_bytes") && message.contains("READBOT_MAX_BODY_BYTES"),
        "{message}"
    );
    // The signed callback says the same.
    let ts = now_ms().to_string();
    let secret = app.fake.config().app_secret.clone();
    let sign = FakeDingTalk::sign(&ts, &secret);
    let r = app
        .post_callback_raw(Some(&ts), Some(&sign), vec![b' '; 4096])
        .await;
    let (code, message) = json_error(r, 413).await;
    assert_eq!(code, "body_too_large");
    assert!(message.contains("2048 bytes"), "{message}");
    assert_eq!(app.fake.calls(Api::Any), 0);
}
