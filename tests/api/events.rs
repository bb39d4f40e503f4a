//! Reads by push: read and recall events through the fake's Stream gateway
//! and its encrypted HTTP pusher. Assertions are on what the group sees,
//! what DingTalk was asked (query calls) and readbot's receipts API.

use crate::helpers::*;
use readbot::fake::{Api, EventPusher, FakeDingTalk, GroupKind, Mention};
use serde_json::{json, Value};
use std::time::Duration;

const GROUP: &str = "cidEventsGroup+/==";
/// Generous bound for anything to happen (never a speed assertion).
const LIMIT: Duration = Duration::from_secs(120);

const STREAM: &[(&str, &str)] = &[
    ("READBOT_MODE", "stream"),
    ("READBOT_STREAM_BACKOFF_BASE_MS", "20"),
    ("READBOT_STREAM_BACKOFF_MAX_MS", "200"),
    ("READBOT_STREAM_PING_INTERVAL_MS", "500"),
    ("READBOT_STREAM_IDLE_TIMEOUT_MS", "20000"),
    // Every ask is a fresh pass (no reuse of a result).
    ("READBOT_RECEIPTS_CACHE_SECS", "0"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v = STREAM.to_vec();
    v.extend_from_slice(extra);
    v
}

async fn stream_app(members_n: usize, extra: &[(&'static str, &'static str)]) -> TestApp {
    let app = spawn_app_with(&with(extra)).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(members_n));
    let ok = app.fake.wait_until(LIMIT, |f| f.live_streams() >= 1).await;
    assert!(ok, "no stream connection");
    app
}

/// Waits until every pushed event has an ack; returns their `status`es.
async fn acked(fake: &FakeDingTalk, ids: &[String]) -> Vec<String> {
    let ok = fake
        .wait_until(LIMIT, |f| ids.iter().all(|id| !f.acks_for(id).is_empty()))
        .await;
    assert!(ok, "not every event was acked");
    ids.iter()
        .map(|id| {
            let ack = &fake.acks_for(id)[0];
            let data: Value = serde_json::from_str(&ack.data).expect("ack data");
            data["status"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

/// `n` members read the notice, each with a read event through the gateway.
async fn read_by(app: &TestApp, key: &str, users: impl Iterator<Item = String>) {
    let users: Vec<String> = users.collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    app.fake.mark_read(key, &refs);
    let ids: Vec<String> = users
        .iter()
        .map(|u| {
            app.fake
                .push_read_event(key, Some(u), now_ms(), &format!("ev-{u}"))
                .expect("connection up")
                .message_id
        })
        .collect();
    let statuses = acked(&app.fake, &ids).await;
    assert!(statuses.iter().all(|s| s == "SUCCESS"), "{statuses:?}");
}

/// Asks "who read" over the gateway and returns the reply text.
async fn ask(app: &TestApp, msg_id: &str, asker: &str) -> String {
    let before = app.replies(GROUP).len();
    app.fake
        .push_mention(&Mention {
            msg_id: msg_id.into(),
            group: GROUP.into(),
            sender: asker.into(),
            sender_nick: format!("nick-{asker}"),
            text: "who read".into(),
            session_ttl: Duration::from_secs(5400),
        })
        .expect("connection up");
    let replies = app.wait_replies(GROUP, before + 1).await;
    assert_eq!(replies.len(), before + 1, "{replies:#?}");
    replies[before].text.clone()
}

async fn receipts(app: &TestApp, key: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/notices/{}/receipts", enc(key)))
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

async fn events_health(app: &TestApp) -> Value {
    let h: Value = app.get("/healthz").await.json().await.expect("json");
    h["events"].clone()
}

#[tokio::test]
async fn after_one_verifying_pass_a_10000_member_summary_costs_no_query_call() {
    let app = stream_app(10_000, &[]).await;
    let key = app.notice(GROUP, "Fire drill", "user0001").await;
    read_by(&app, &key, (2..=9_001).map(|i| format!("user{i:04}"))).await;

    // Trust is off (never verified): the normal pages, 45 of 200 readers.
    let before = app.fake.calls(Api::Query);
    let first = ask(&app, "m1", "user0001").await;
    let pages = app.fake.calls(Api::Query) - before;
    assert_eq!(pages, 45, "9,000 readers at 200 a page");
    assert!(first.contains("Read: 9000/10000 (90%)"), "{first}");
    assert!(first.contains("queried just now"), "{first}");
    // That pass found every reader already recorded from events: verified.
    assert_eq!(events_health(&app).await["verified"], true);

    // Now the same summary costs no query call at all.
    let before = app.fake.calls(Api::Query);
    let second = ask(&app, "m2", "user0001").await;
    assert_eq!(app.fake.calls(Api::Query), before, "no query call");
    assert!(second.contains("Read: 9000/10000 (90%)"), "{second}");
    assert!(second.contains("live, from read events"), "{second}");
    assert!(second.contains("50% within 1 min"), "{second}");
    let r = receipts(&app, &key).await;
    assert_eq!(r["readsFrom"], "events");
    assert_eq!(r["readTimes"].as_array().map(Vec::len), Some(9_000));
    assert_eq!(r["readTimes"][0]["source"], "event");
    let total: u64 = r["timeline"]["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["reads"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 9_000);
    app.stop().await;
}

#[tokio::test]
async fn duplicates_out_of_order_and_a_dropped_event_found_by_the_next_reconciliation() {
    let app = stream_app(20, &[("READBOT_RECONCILE_INTERVAL_SECS", "1")]).await;
    // A verifying pass first.
    let warm = app.notice(GROUP, "Warm-up", "user0001").await;
    read_by(&app, &warm, (2..=7).map(|i| format!("user{i:04}"))).await;
    ask(&app, "w1", "user0001").await;
    assert_eq!(events_health(&app).await["verified"], true);

    let key = app.notice(GROUP, "Drill", "user0002").await;
    let t0 = now_ms();
    app.fake.mark_read(&key, &["user0010", "user0011"]);
    let mut ids = Vec::new();
    // Out of order (the later read first), then a redelivery of the same event.
    for (user, at, id) in [
        ("user0011", t0 + 2_000, "e11"),
        ("user0010", t0 + 1_000, "e10"),
        ("user0010", t0 + 1_000, "e10"),
    ] {
        let p = app
            .fake
            .push_read_event(&key, Some(user), at, id)
            .expect("up");
        ids.push(p.message_id);
    }
    // A reader outside the org (no userId) and a read of a message readbot
    // did not send: both acked, neither recorded.
    ids.push(
        app.fake
            .push_read_event(&key, None, t0, "outsider")
            .expect("up")
            .message_id,
    );
    ids.push(
        app.fake
            .push_read_event("notReadbotsKey==", Some("user0012"), t0, "x")
            .expect("up")
            .message_id,
    );
    assert!(acked(&app.fake, &ids).await.iter().all(|s| s == "SUCCESS"));
    // A read whose event is lost.
    app.fake.mark_read(&key, &["user0012"]);

    let before = app.fake.calls(Api::Query);
    let live = ask(&app, "d1", "user0002").await;
    assert_eq!(app.fake.calls(Api::Query), before, "trusted: events alone");
    assert!(live.contains("Read: 2/20"), "{live}");
    let r = receipts(&app, &key).await;
    let times: Vec<(String, i64)> = r["readTimes"]
        .as_array()
        .expect("times")
        .iter()
        .map(|t| {
            (
                t["userId"].as_str().unwrap_or_default().to_owned(),
                t["readAt"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        times,
        [
            ("user0010".to_owned(), t0 + 1_000),
            ("user0011".to_owned(), t0 + 2_000)
        ],
        "one record per reader, with the event's own time"
    );

    // Past the reconcile interval the next summary runs one query pass,
    // which finds the reader whose event was lost: trust goes off.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let reconciled = ask(&app, "d2", "user0002").await;
    assert!(app.fake.calls(Api::Query) > before, "a query pass ran");
    assert!(reconciled.contains("Read: 3/20"), "{reconciled}");
    assert!(reconciled.contains("queried just now"), "{reconciled}");
    let health = events_health(&app).await;
    assert_eq!(health["verified"], false, "{health}");
    assert!(health["lastGapAt"].is_i64(), "{health}");
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(metrics.contains("readbot_event_gaps_total"), "{metrics}");
    assert!(metrics.contains("readbot_event_trust 0"), "{metrics}");

    // Trust off: the next summary queries again.
    let before = app.fake.calls(Api::Query);
    ask(&app, "d3", "user0002").await;
    assert!(app.fake.calls(Api::Query) > before);
    app.stop().await;
}

#[tokio::test]
async fn a_recall_event_marks_the_notice_recalled() {
    let app = stream_app(10, &[]).await;
    let warm = app.notice(GROUP, "Warm-up", "user0001").await;
    read_by(&app, &warm, (2..=7).map(|i| format!("user{i:04}"))).await;
    ask(&app, "w1", "user0001").await;
    assert_eq!(events_health(&app).await["verified"], true);

    let key = app.notice(GROUP, "Oops", "user0003").await;
    let p = app.fake.recall_and_push(&key).expect("up");
    assert_eq!(acked(&app.fake, &[p.message_id]).await, ["SUCCESS"]);
    // Answered from events alone (no query call), so "recalled" can only
    // have come from the event.
    let before = app.fake.calls(Api::Query);
    let reply = ask(&app, "r1", "user0003").await;
    assert_eq!(app.fake.calls(Api::Query), before);
    assert!(reply.contains("recalled by the sender"), "{reply}");
    app.stop().await;
}

// ------------------------------------------------------------ HTTP push

const TOKEN: &str = "event-token-123";
const AES_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";

async fn push(app: &TestApp, query: &str, body: &str) -> reqwest::Response {
    app.http
        .post(format!("{}/dingtalk/events?{query}", app.addr))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("push")
}

#[tokio::test]
async fn http_push_handshake_reads_and_refusals() {
    let app = spawn_app_with(&[
        ("DINGTALK_EVENT_TOKEN", TOKEN),
        ("DINGTALK_EVENT_AES_KEY", AES_KEY),
        ("READBOT_RECEIPTS_CACHE_SECS", "0"),
    ])
    .await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(10));
    let owner = app.fake.config().app_key.clone();
    let pusher = EventPusher::new(TOKEN, AES_KEY, &owner).expect("key");

    // The subscription's URL check.
    let (q, b) = pusher.request(&EventPusher::check_url_payload());
    let r = push(&app, &q, &b).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    assert!(pusher.answer_is_success(&answer), "{answer}");

    let key = app.notice(GROUP, "Drill", "user0001").await;
    let at = now_ms();
    let (q, b) = pusher.request(&EventPusher::read_payload(&key, "user0002", at));
    let r = push(&app, &q, &b).await;
    assert_eq!(r.status(), 200);
    assert!(pusher.answer_is_success(&r.json().await.expect("json")));

    // A wrong signature, and a right signature over a wrong key's ciphertext.
    let (q, b) = pusher.request(&EventPusher::read_payload(&key, "user0003", at));
    let forged = q.replacen("msg_signature=", "msg_signature=0", 1);
    assert_eq!(push(&app, &forged, &b).await.status(), 401);
    let other = EventPusher::new(TOKEN, "1234567890123456789012345678901234567890123", &owner)
        .expect("key");
    let (q, b) = other.request(&EventPusher::read_payload(&key, "user0004", at));
    assert_eq!(push(&app, &q, &b).await.status(), 401);
    let stranger = EventPusher::new(TOKEN, AES_KEY, "dingotherapp").expect("key");
    let (q, b) = stranger.request(&EventPusher::read_payload(&key, "user0005", at));
    assert_eq!(push(&app, &q, &b).await.status(), 401);
    assert_eq!(push(&app, "nonce=1", "{}").await.status(), 400);

    // Only the genuine read is recorded (the query, trust being off, shows
    // nobody: the fake never marked any read).
    let r = receipts(&app, &key).await;
    let readers: Vec<&str> = r["readTimes"]
        .as_array()
        .expect("times")
        .iter()
        .filter_map(|t| t["userId"].as_str())
        .collect();
    assert_eq!(readers, ["user0002"]);
    assert_eq!(r["readTimes"][0]["readAt"], json!(at));
    assert_eq!(r["readTimes"][0]["source"], "event");
    let h: Value = app.get("/healthz").await.json().await.expect("json");
    assert_eq!(h["events"]["intake"], true);
    app.stop().await;
}

#[tokio::test]
async fn http_push_is_off_without_its_keys() {
    let app = spawn_app().await;
    let pusher = EventPusher::new(TOKEN, AES_KEY, "x").expect("key");
    let (q, b) = pusher.request(&EventPusher::check_url_payload());
    let r = push(&app, &q, &b).await;
    assert_eq!(r.status(), 404);
    let h: Value = app.get("/healthz").await.json().await.expect("json");
    assert_eq!(h["events"]["intake"], false);
    app.stop().await;
}

/// Member-list calls so far.
fn member_calls(app: &TestApp) -> usize {
    app.fake.calls(Api::InnerMembers) + app.fake.calls(Api::SceneMembers)
}

/// Asks and returns the reply with the query and member-list calls it cost.
async fn ask_counting(app: &TestApp, msg_id: &str) -> (String, usize, usize) {
    let (q, m) = (app.fake.calls(Api::Query), member_calls(app));
    let reply = ask(app, msg_id, "user0001").await;
    (reply, app.fake.calls(Api::Query) - q, member_calls(app) - m)
}

#[tokio::test]
async fn a_fresh_cached_member_list_spares_the_member_call_until_intake_has_a_gap() {
    let app = stream_app(300, &[]).await;
    let key = app.notice(GROUP, "Drill", "user0001").await;
    read_by(&app, &key, (2..=11).map(|i| format!("user{i:04}"))).await;

    // Trust is off: a query pass and the member list (which is kept).
    let (first, queries, members) = ask_counting(&app, "c1").await;
    assert!(queries > 0 && members > 0, "{queries} {members}");
    assert!(first.contains("Read: 10/300"), "{first}");
    assert!(!first.contains(" ago)"), "fetched just now: {first}");
    assert_eq!(events_health(&app).await["verified"], true);

    // Trusted events and a fresh cached list: no query, no member-list call.
    let users = app.fake.calls(Api::UserGet);
    let (second, queries, members) = ask_counting(&app, "c2").await;
    assert_eq!((queries, members), (0, 0), "{second}");
    assert_eq!(
        app.fake.calls(Api::UserGet),
        users,
        "names came with the list"
    );
    assert!(second.contains("Read: 10/300"), "{second}");
    assert!(second.contains("live, from read events"), "{second}");
    assert!(
        second.contains("group member list (member list from under a minute ago)"),
        "{second}"
    );
    assert!(!second.contains("may be incomplete"), "{second}");
    let r = receipts(&app, &key).await;
    assert_eq!(r["memberCount"], 300, "{r}");

    // A gap in event intake: the next summary queries and fetches again.
    let opens = app.fake.stream_opens().len();
    assert!(app.fake.drop_streams() >= 1);
    let back = app
        .fake
        .wait_until(LIMIT, |f| {
            f.stream_opens().len() > opens && f.live_streams() >= 1
        })
        .await;
    assert!(back, "no reconnection");
    let (third, queries, members) = ask_counting(&app, "c3").await;
    assert!(queries > 0 && members > 0, "{queries} {members}: {third}");
    assert!(!third.contains(" ago)"), "{third}");

    // The list fetched after the gap serves the next one.
    let (fourth, queries, members) = ask_counting(&app, "c4").await;
    assert_eq!((queries, members), (0, 0), "{fourth}");
    assert!(fourth.contains("(member list from "), "{fourth}");
    app.stop().await;
}

#[tokio::test]
async fn an_old_cached_member_list_is_fetched_again_and_zero_turns_the_cache_off() {
    for (setting, wait) in [("1", Duration::from_millis(1_200)), ("0", Duration::ZERO)] {
        let extra: &[(&'static str, &'static str)] = &[("READBOT_ROSTER_CACHE_SECS", setting)];
        let app = stream_app(30, extra).await;
        let key = app.notice(GROUP, "Drill", "user0001").await;
        read_by(&app, &key, (2..=8).map(|i| format!("user{i:04}"))).await;
        let (_, _, members) = ask_counting(&app, "o1").await;
        assert!(members > 0);
        assert_eq!(events_health(&app).await["verified"], true);
        // Let the one-second list grow old.
        tokio::time::sleep(wait).await;
        let (reply, queries, members) = ask_counting(&app, "o2").await;
        assert_eq!(queries, 0, "reads from trusted events: {reply}");
        assert!(
            members > 0,
            "setting {setting}: the list is fetched again: {reply}"
        );
        assert!(!reply.contains(" ago)"), "{reply}");
        assert!(reply.contains("Read: 7/30"), "{reply}");
        app.stop().await;
    }
}
