//! A stand-alone fake DingTalk for tools outside the Rust test suite
//! (schemathesis, the official-SDK conformance check, manual runs of
//! `readbot serve`).
//!
//! Starts the fake on a free port of `127.0.0.1`, seeds a demo group with members, a notice with some readers, and prints
//! one JSON line on stdout:
//!
//! ```json
//! {"baseUrl": "...", "appKey": "...", "appSecret": "...", "robotCode": "...",
//!  "group": "...", "sceneGroup": "...", "members": [...], "processQueryKey": "...",
//!  "readers": [...], "mentionBody": {...}, "callbackTimestamp": "...", "callbackSign": "..."}
//! ```
//!
//! Then serves until its standard input closes (or it is killed).

use readbot::fake::{FakeConfig, FakeDingTalk, GroupKind, Mention};
use serde_json::json;
use std::io::Read;
use std::time::Duration;

/// The demo group (also the example value in `openapi.yaml`).
const GROUP: &str = "cidReadbotDemo+Group/==";
/// A scene group (for `sceneGroups/members/batchQuery`).
const SCENE_GROUP: &str = "cidReadbotScene+Group/==";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut members_n = 450usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|p| p.parse().ok())) {
            ("--members", Some(n)) => members_n = n,
            _ => {
                eprintln!("usage: fake_dingtalk [--members N]");
                std::process::exit(2);
            }
        }
    }
    let fake = FakeDingTalk::start(FakeConfig::default()).await?;
    let base = fake.base_url();
    let members: Vec<(String, String)> = (1..=members_n)
        .map(|i| (format!("user{i:04}"), format!("Member {i:04}")))
        .collect();
    let refs: Vec<(&str, &str)> = members
        .iter()
        .map(|(u, n)| (u.as_str(), n.as_str()))
        .collect();
    fake.add_group(GROUP, GroupKind::Inner, &refs);
    fake.add_group(
        SCENE_GROUP,
        GroupKind::Scene {
            cool_app_code: None,
        },
        &refs,
    );
    let key = fake.seed_notice(GROUP, "Demo notice", "### Demo notice\nPlease read.");
    let readers: Vec<&str> = members
        .iter()
        .take(members_n * 2 / 3)
        .map(|(u, _)| u.as_str())
        .collect();
    fake.mark_read(&key, &readers);
    let body = fake.mention_body(&Mention {
        msg_id: "msgDemoMention+1==".into(),
        group: GROUP.into(),
        sender: "user0001".into(),
        sender_nick: "Member 0001".into(),
        text: "who read my last notice?".into(),
        session_ttl: Duration::from_secs(5400),
    });
    let (ts, sign) = fake.callback_headers();
    let c = fake.config();
    let info = json!({
        "baseUrl": base,
        "appKey": c.app_key,
        "appSecret": c.app_secret,
        "robotCode": c.robot_code,
        "group": GROUP,
        "sceneGroup": SCENE_GROUP,
        "members": members.iter().map(|(u, _)| u).collect::<Vec<_>>(),
        "processQueryKey": key,
        "readers": readers,
        "mentionBody": body,
        "callbackTimestamp": ts,
        "callbackSign": sign,
    });
    println!("{info}");
    // Serve until stdin closes.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .map_err(std::io::Error::other)?;
    fake.shutdown();
    Ok(())
}
