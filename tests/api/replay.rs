//! Issue 16, "a captured (timestamp, sign) pair is good for an hour of forged
//! bodies": each observed attack, replayed against readbot. DingTalk's
//! signature covers only the timestamp, so whoever saw one genuine
//! callback's headers can post any body with them; readbot binds a pair to
//! at most three msgIds, accepts it for five minutes, neutralises untrusted
//! text and keeps one group from taking the answer queue.

use crate::helpers::*;
use crate::reliability::report;
use readbot::fake::{Api, FakeDingTalk, GroupKind, Via};
use serde_json::{json, Value};
use std::time::Duration;

/// Gives spawned work time to act if it (wrongly) was started.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// The value of one series in `/metrics` (0 when absent).
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Posts `body` with a captured header pair; returns the status and error code.
async fn replay(app: &TestApp, (ts, sign): &(String, String), body: &Value) -> (u16, String) {
    let r = app
        .post_callback_raw(Some(ts), Some(sign), body.to_string().into_bytes())
        .await;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("").to_owned();
    (status, code)
}

/// (1) A body naming group A with group B's `sessionWebhook` (on DingTalk's
/// own host): A's names were posted into B, once per forged body, for an
/// hour. Now a captured pair carries at most two more bodies besides its own,
/// and a pair older than five minutes carries none.
#[tokio::test]
async fn a_captured_pair_cannot_pour_one_groups_names_into_another() {
    const A: &str = "cidReplayA==";
    const B: &str = "cidReplayB==";
    let app = spawn_app().await;
    add_group(&app.fake, A, GroupKind::Inner, &members(4));
    add_group(&app.fake, B, GroupKind::Inner, &members(2));
    let key = app.notice(A, "Salary review", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);

    // The genuine callback whose headers the attacker sees.
    let pair = app.fake.callback_headers();
    let genuine = app.mention("genuine-1", A, "user0001", "who read");
    assert_eq!(replay(&app, &pair, &genuine).await.0, 200);
    app.wait_replies(A, 1).await;

    let (b_webhook, b_expires) = app.fake.new_session(B, Duration::from_secs(5400));
    let mut statuses = Vec::new();
    for i in 0..10 {
        let mut forged = app.mention(&format!("forged-{i}"), A, "user0001", "who read");
        forged["sessionWebhook"] = json!(b_webhook);
        forged["sessionWebhookExpiredTime"] = json!(b_expires);
        statuses.push(replay(&app, &pair, &forged).await);
    }
    let accepted = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(accepted, 2, "{statuses:?}");
    assert!(
        statuses[2..]
            .iter()
            .all(|(s, c)| *s == 401 && c == "replayed_signature"),
        "{statuses:?}"
    );
    app.wait_replies(B, 2).await;
    settle().await;
    assert_eq!(
        app.replies(B).len(),
        2,
        "B got A's names once per forged body"
    );

    // A pair captured six minutes ago is refused outright (DingTalk's hour
    // no longer applies).
    let old = (now_ms() - 6 * 60 * 1000).to_string();
    let old_pair = (
        old.clone(),
        FakeDingTalk::sign(&old, &app.fake.config().app_secret),
    );
    let mut forged = app.mention("forged-old", A, "user0001", "who read");
    forged["sessionWebhook"] = json!(b_webhook);
    let (status, code) = replay(&app, &old_pair, &forged).await;
    assert_eq!((status, code.as_str()), (401, "bad_signature"));
    settle().await;
    assert_eq!(app.replies(B).len(), 2);
    report("replayed pair with another group's sessionWebhook: 10 forged bodies, accepted: 2 (3 msgIds per pair), replies into the other group: 2 (was 10); a 6-minute-old pair: refused");
}

/// (2) With no webhook, the fallback robot send posted into any group the
/// body named: 50 forged messages made 50 sends into 50 groups. Now one
/// captured pair makes at most three sends; DingTalk's own redelivery (same
/// msgId, same headers) is still de-duplicated, not refused.
#[tokio::test]
async fn a_captured_pair_cannot_fan_out_robot_sends() {
    let app = spawn_app().await;
    let groups: Vec<String> = (0..50).map(|i| format!("cidFanOut{i:02}==")).collect();
    for g in &groups {
        add_group(&app.fake, g, GroupKind::Inner, &members(1));
    }
    let replayed_before = metric(&app, "readbot_callbacks_total{outcome=\"replayed\"}").await;
    app.fake.reset_calls();
    let pair = app.fake.callback_headers();
    let mut bodies = Vec::new();
    let mut statuses = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let mut body = app.mention(&format!("fan-{i}"), g, "user0001", "help");
        body.as_object_mut()
            .expect("object")
            .remove("sessionWebhook");
        statuses.push(replay(&app, &pair, &body).await.0);
        bodies.push(body);
    }
    assert_eq!(&statuses[..3], [200, 200, 200]);
    assert!(statuses[3..].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(app.fake.wait_sent(3, Duration::from_secs(15)).await);
    // DingTalk redelivers an accepted message with its own headers.
    assert_eq!(replay(&app, &pair, &bodies[0]).await.0, 200);
    settle().await;
    assert_eq!(app.fake.calls(Api::Send), 3, "one send per accepted body");
    let reached: usize = groups.iter().map(|g| app.replies(g).len()).sum();
    assert_eq!(reached, 3);
    let replayed = metric(&app, "readbot_callbacks_total{outcome=\"replayed\"}").await;
    assert!(
        replayed - replayed_before >= 47.0,
        "{replayed_before} → {replayed}"
    );
    report("replayed pair naming 50 groups (no webhook): robot sends: 3 (was 50), refused 401: 47, redelivery of an accepted msgId: de-duplicated");
}

/// (3) Forged `senderNick`s were learned as names and shown to the real
/// group later, one a markdown link to a phishing page. Now a callback's
/// name never overrides DingTalk's, and what is shown is plain text.
#[tokio::test]
async fn forged_names_never_reach_a_summary_as_markup() {
    const G: &str = "cidReplayNames==";
    let app = spawn_app().await;
    // A plain group: no member API, so the roster is learned and names come
    // from the name cache and user/get.
    add_group(&app.fake, G, GroupKind::Plain, &members(3));
    let mut forged = app.mention("nick-1", G, "user0002", "help");
    forged["senderNick"] = json!("[IT desk](https://phish.example/login)");
    assert_eq!(app.post_callback_signed(&forged).await.status(), 200);
    // A sender DingTalk does not know, with an image, a heading and @all.
    let mut ghost = app.mention("nick-2", G, "ghost0001", "help");
    ghost["senderNick"] = json!("![logo](https://phish.example/a.png)\n### @all <b>pay</b>");
    assert_eq!(app.post_callback_signed(&ghost).await.status(), 200);
    app.wait_replies(G, 2).await;

    let key = app
        .notice(G, "Fire drill [see](https://phish.example)", "user0001")
        .await;
    app.fake.mark_read(&key, &["user0002"]);
    let ask = app.mention("ask-1", G, "user0001", "who read");
    assert_eq!(app.post_callback_signed(&ask).await.status(), 200);
    let replies = app.wait_replies(G, 3).await;
    let text = &replies.last().expect("a summary").text;
    assert!(text.contains("Member 0002"), "DingTalk's name wins: {text}");
    for markup in ["](", "![", "://phish", "@all", "<b>", "\n### @"] {
        assert!(
            !text.contains(markup),
            "{markup:?} reached the group: {text}"
        );
    }
    // The unknown sender is still listed, under a neutralised name.
    assert!(text.contains("［logo］"), "{text}");
    report("forged senderNicks (link, image, heading, @all, tag): DingTalk's name kept, markup reaching the group: 0");
}

/// (4) 20,000 replays filled the answer queue and a genuine @mention was
/// answered 523 s later. Now one pair carries three bodies, one group holds
/// at most its share of the queue's waiting places (503 `busy` for that group
/// only), and the rest of the tenant is answered at once.
#[tokio::test]
async fn a_flood_into_one_group_leaves_the_others_answered() {
    const A: &str = "cidFloodA==";
    const B: &str = "cidFloodB==";
    // A queue of 32: each group may hold max(8, 32 / 8) = 8 places.
    let app = spawn_app_with(&[("READBOT_MAX_QUEUED_ANSWERS", "32")]).await;
    add_group(&app.fake, A, GroupKind::Inner, &members(3));
    add_group(&app.fake, B, GroupKind::Inner, &members(3));
    let key = app.notice(B, "Town hall", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    // Slow DingTalk: answers take seconds, so the flood piles up (16 being
    // answered, 8 waiting).
    app.fake.set_latency(Duration::from_millis(1000));

    // One captured pair, replayed 200 times.
    let pair = app.fake.callback_headers();
    let mut replays = Vec::new();
    for i in 0..200 {
        let body = app.mention(&format!("flood-r{i}"), A, "user0001", "who read");
        replays.push(replay(&app, &pair, &body).await.0);
    }
    assert_eq!(replays.iter().filter(|s| **s == 200).count(), 3);
    assert_eq!(replays.iter().filter(|s| **s == 401).count(), 197);

    // Many captured pairs (or a compromised relay), all at once.
    let bodies: Vec<Value> = (0..100)
        .map(|i| app.mention(&format!("flood-p{i}"), A, "user0001", "who read"))
        .collect();
    let posts = bodies.iter().map(|b| app.post_callback_signed(b));
    let mut flood = Vec::new();
    for r in futures_util::future::join_all(posts).await {
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        flood.push((status, v["error"]["code"].as_str().unwrap_or("").to_owned()));
    }
    let refused = flood
        .iter()
        .filter(|(s, c)| *s == 503 && c == "busy")
        .count();
    let accepted = flood.iter().filter(|(s, _)| *s == 200).count();
    // At most 16 + 8 of A's at a time (old code: 16 + the whole queue).
    assert!(refused >= 50, "the flooding group is refused: {flood:?}");
    assert_eq!(accepted + refused, 100, "{flood:?}");

    // The rest of the tenant: accepted and answered (within the helper's
    // bound) while A's flood waits.
    let genuine = app.mention("genuine-b", B, "user0001", "who read");
    assert_eq!(app.post_callback_signed(&genuine).await.status(), 200);
    let text = app.one_reply(B).await;
    assert!(text.contains("1/3"), "{text}");
    assert!(app.replies(B).iter().all(|m| m.via == Via::Session));
    report(&format!(
        "flood into one group (queue 32): 200 replays of one pair → 3 accepted; 100 fresh pairs → {accepted} accepted, {refused} refused 503 busy; another group: accepted and answered"
    ));
}
