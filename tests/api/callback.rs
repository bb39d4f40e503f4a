//! The signed callback: fail-closed edges, the documented vector, de-duplication,
//! and the sessionWebhook host rule.

use crate::helpers::*;
use readbot::fake::{Api, FakeDingTalk, GroupKind};
use std::time::Duration;

const GROUP: &str = "cidCallbackGroup==";

async fn app_with_group() -> TestApp {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(5));
    app
}

/// Gives a spawned task time to act if it (wrongly) was started.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn documented_signature_vector_is_accepted_end_to_end() {
    // The doc vector is from 2019, and the window is at most DingTalk's hour:
    // the vector itself is refused as stale, and the same secret signing a
    // fresh timestamp (by the fake's own HMAC) is accepted. The vector's HMAC
    // is checked by `dingtalk::signature`'s unit tests.
    let app = spawn_app_with(&[
        ("DINGTALK_APP_SECRET", "this is a secret"),
        ("READBOT_SIGNATURE_WINDOW_SECS", "3600"),
    ])
    .await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(2));
    let body = app.mention("vector-1", GROUP, "user0001", "help");
    let r = app
        .post_callback_raw(
            Some("1577262236757"),
            Some("DJrE6qdyVGCQz9z5r2MDuNcNAhwYnuAkyj13cx169CA="),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status(), 401, "a 2019 timestamp is outside any window");
    let ts = now_ms().to_string();
    let sign = FakeDingTalk::sign(&ts, "this is a secret");
    let r = app
        .post_callback_raw(Some(&ts), Some(&sign), body.to_string().into_bytes())
        .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"msgtype":"empty"}));
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("list"), "help reply expected, got {text}");
}

#[tokio::test]
async fn every_fail_closed_case_is_refused_without_side_effects() {
    let app = app_with_group().await;
    app.fake.reset_calls();
    let secret = app.fake.config().app_secret.clone();
    let body = app
        .mention("fc-1", GROUP, "user0001", "who read")
        .to_string();
    let now = now_ms();
    let ts = now.to_string();
    let good = FakeDingTalk::sign(&ts, &secret);
    let stale = (now - 3_610_000).to_string();
    let future = (now + 3_610_000).to_string();
    let cases: Vec<(Option<String>, Option<String>, &str)> = vec![
        (None, Some(good.clone()), "missing timestamp"),
        (
            Some("not-a-number".into()),
            Some(good.clone()),
            "non-numeric timestamp",
        ),
        (
            Some(format!("{ts}.5")),
            Some(good.clone()),
            "fractional timestamp",
        ),
        (
            Some(stale.clone()),
            Some(FakeDingTalk::sign(&stale, &secret)),
            "stale",
        ),
        (
            Some(future.clone()),
            Some(FakeDingTalk::sign(&future, &secret)),
            "future",
        ),
        (Some(ts.clone()), None, "missing sign"),
        (
            Some(ts.clone()),
            Some(FakeDingTalk::sign(&ts, "wrong secret")),
            "wrong sign",
        ),
        (Some(ts.clone()), Some(String::new()), "empty sign"),
        (
            Some(ts.clone()),
            Some("!!not base64!!".into()),
            "garbage sign",
        ),
        (
            Some((now + 1).to_string()),
            Some(good.clone()),
            "sign of another timestamp",
        ),
    ];
    for (t, s, what) in cases {
        let r = app
            .post_callback_raw(t.as_deref(), s.as_deref(), body.clone().into_bytes())
            .await;
        assert_eq!(r.status(), 401, "{what}");
    }
    // Signed but malformed bodies.
    for bad in [&b"not json"[..], b"[]", b"{\"msgId\": 7}", b"{}"] {
        let ts = now_ms().to_string();
        let sign = FakeDingTalk::sign(&ts, &secret);
        let r = app
            .post_callback_raw(Some(&ts), Some(&sign), bad.to_vec())
            .await;
        assert_eq!(r.status(), 400, "{:?}", String::from_utf8_lossy(bad));
    }
    // Oversized body.
    let ts = now_ms().to_string();
    let sign = FakeDingTalk::sign(&ts, &secret);
    let huge = vec![b' '; 100 * 1024];
    let r = app.post_callback_raw(Some(&ts), Some(&sign), huge).await;
    assert_eq!(r.status(), 413);
    settle().await;
    assert_eq!(app.fake.calls(Api::Any), 0, "no outbound call may happen");
    assert!(app.replies(GROUP).is_empty());
    // The refused msgId was not consumed: the genuine delivery is still answered.
    let r = app
        .post_callback_signed(&app.mention("fc-1", GROUP, "user0001", "help"))
        .await;
    assert_eq!(r.status(), 200);
    app.one_reply(GROUP).await;
}

#[tokio::test]
async fn fifty_concurrent_duplicates_yield_one_reply() {
    let app = app_with_group().await;
    let body = app.mention("dup-1", GROUP, "user0001", "help");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let http = app.http.clone();
        let url = format!("{}/dingtalk/callback", app.addr);
        let secret = app.fake.config().app_secret.clone();
        let body = body.to_string();
        tasks.push(tokio::spawn(async move {
            let ts = now_ms().to_string();
            http.post(url)
                .header("timestamp", &ts)
                .header("sign", FakeDingTalk::sign(&ts, &secret))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    app.wait_replies(GROUP, 1).await;
    settle().await;
    // A late redelivery is ignored too.
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    settle().await;
    assert_eq!(app.replies(GROUP).len(), 1);
}

#[tokio::test]
async fn duplicate_is_still_ignored_after_restart() {
    let app = app_with_group().await;
    let body = app.mention("dup-restart", GROUP, "user0001", "help");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    app.wait_replies(GROUP, 1).await;
    let dir = app.data_dir.clone();
    let (fake, tmp) = app.stop().await;
    let app = spawn_on(fake, &dir, &[]).await;
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    settle().await;
    assert_eq!(app.replies(GROUP).len(), 1);
    drop(tmp);
}

#[tokio::test]
async fn session_webhook_on_a_foreign_host_is_never_called() {
    let app = app_with_group().await;
    // Another server stands in for an attacker's host.
    let evil = start_fake().await;
    add_group(&evil, GROUP, GroupKind::Inner, &members(1));
    let (evil_url, exp) = evil.new_session(GROUP, Duration::from_secs(600));
    let mut body = app.mention("evil-1", GROUP, "user0001", "help");
    body["sessionWebhook"] = serde_json::json!(evil_url);
    body["sessionWebhookExpiredTime"] = serde_json::json!(exp);
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let replies = app.wait_replies(GROUP, 1).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(
        replies[0].via,
        readbot::fake::Via::OpenApi,
        "fallback to the robot send API"
    );
    assert_eq!(evil.calls(Api::Any), 0, "the foreign host got nothing");
}

#[tokio::test]
async fn expired_session_falls_back_to_the_robot_send_api() {
    let app = app_with_group().await;
    let body = app.mention("exp-1", GROUP, "user0001", "help");
    let url = body["sessionWebhook"].as_str().unwrap().to_string();
    app.fake.expire_session(&url);
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let replies = app.wait_replies(GROUP, 1).await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].via, readbot::fake::Via::OpenApi);
}
