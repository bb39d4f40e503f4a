//! Shared pieces of the reliability suite (fail-closed edges, exactly-once,
//! faults, shutdown, secrets, rate limits) and the client-side rate-limit test.
//!
//! Each reliability test prints one `RELIABILITY <area line>` to stdout. Under
//! plain `cargo test` the line is captured; `scripts/reliability.sh` runs these
//! tests with `--nocapture` and a larger `READBOT_RELIABILITY_SCALE` and
//! collects the lines.

use crate::helpers::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use readbot::fake::{Api, GroupKind};
use std::time::{Duration, Instant};

/// How many times more inputs/cases to try than the quick default
/// (`READBOT_RELIABILITY_SCALE`, at least 1).
pub fn scale() -> usize {
    std::env::var("READBOT_RELIABILITY_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

/// The seed of the random inputs (`READBOT_RELIABILITY_SEED`, else a fixed one
/// so a failure in CI reproduces).
pub fn seed() -> u64 {
    std::env::var("READBOT_RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_260_001)
}

pub fn rng() -> StdRng {
    StdRng::seed_from_u64(seed())
}

/// Prints one figure line for `scripts/reliability.sh`.
pub fn report(line: &str) {
    println!("RELIABILITY {line}");
}

/// Gives a spawned task time to act if it (wrongly) was started.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Waits (bounded) until the bot has no summary in flight.
pub async fn wait_idle(app: &TestApp) -> bool {
    for _ in 0..600 {
        if app.bot.in_flight() == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// DingTalk documents a QPS limit per app and API; readbot's client keeps
/// every API under `DINGTALK_RATE_LIMIT_PER_SEC` (default 20) in *any*
/// one-second window, as the fake sees the calls arrive.
#[tokio::test]
async fn client_keeps_each_api_under_the_rate_limit_in_any_second() {
    let app = spawn_app_with(&[("DINGTALK_RATE_LIMIT_PER_SEC", "20")]).await;
    const GROUP: &str = "cidRateLimit==";
    // A plain group: names come from user/get, one call per unknown user.
    let people = members(40 * scale());
    add_group(&app.fake, GROUP, GroupKind::Plain, &people);
    let key = app.notice(GROUP, "Rate", "user0001").await;
    let readers: Vec<&str> = people.iter().map(|(u, _)| u.as_str()).collect();
    app.fake.mark_read(&key, &readers);
    app.fake.reset_calls();

    let body = app.mention("rate-1", GROUP, "user0001", "who read");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    // Sample the fake's counter; every pair of samples at most 1 s apart
    // bounds the calls that arrived in a window shorter than a second.
    let mut samples: Vec<(Instant, usize)> = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        samples.push((Instant::now(), app.fake.calls(Api::UserGet)));
        if !app.replies(GROUP).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples.push((Instant::now(), app.fake.calls(Api::UserGet)));
    let total = app.fake.calls(Api::UserGet);
    assert!(
        total >= people.len() - 1,
        "expected a name look-up per reader, got {total}"
    );
    let mut peak = 0;
    for (i, (ti, ci)) in samples.iter().enumerate() {
        for (tj, cj) in &samples[i..] {
            if tj.duration_since(*ti) > Duration::from_secs(1) {
                break;
            }
            peak = peak.max(cj - ci);
        }
    }
    assert!(peak <= 20, "{peak} user/get calls within one second");
    let text = app.one_reply(GROUP).await;
    assert!(
        text.contains(&format!("{}/", people.len())),
        "summary expected: {text}"
    );
    report(&format!(
        "rate limit: {total} user/get calls, peak in any second: {peak} (limit 20)"
    ));
}

/// `openapi.yaml` is valid YAML, documents every route readbot serves, and
/// its example notice is accepted by the running API.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml");
    let doc: serde_json::Value = serde_norway::from_str(&text).expect("valid YAML");
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/api/v1/notices", "post"),
        ("/api/v1/notices", "get"),
        ("/api/v1/notices/{processQueryKey}/receipts", "get"),
        ("/api/v1/notices/{processQueryKey}", "delete"),
        ("/api/v1/notices/{processQueryKey}", "get"),
        (
            "/api/v1/notices/{processQueryKey}/follow-ups/{id}",
            "delete",
        ),
        ("/api/v1/notices/{processQueryKey}/reminders", "post"),
        ("/api/v1/usage", "get"),
        ("/api/v1/notices/{processQueryKey}/links", "post"),
        ("/n/{token}", "get"),
        ("/n/{token}/csv", "get"),
        ("/n/{token}/json", "get"),
        ("/api/v1/groups/{openConversationId}/links", "post"),
        ("/g/{token}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/dingtalk/callback", "post"),
        ("/dingtalk/events", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(doc["paths"].as_object().map(|p| p.len()), Some(17));
    let app = spawn_app().await;
    let example = &doc["paths"]["/api/v1/notices"]["post"]["requestBody"]["content"]
        ["application/json"]["examples"]["markdown"]["value"];
    let group = example["openConversationId"]
        .as_str()
        .expect("example group");
    add_group(&app.fake, group, GroupKind::Inner, &members(2));
    let r = app.send_notice(example).await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}
