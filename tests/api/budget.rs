//! The DingTalk call budget: a warm summary costs exactly the call floor, and
//! repeated asks about one notice share one pass of query calls.

use crate::helpers::*;
use readbot::fake::{Api, GroupKind};
use std::time::Duration;

const GROUP: &str = "cidBudgetGroup+/==";

#[tokio::test]
async fn a_warm_summary_costs_exactly_the_call_floor() {
    let app = spawn_app().await;
    let people = members(2500);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let readers: Vec<&str> = people[..2250].iter().map(|(u, _)| u.as_str()).collect();
    // Warm up the token and the connection with a first notice and summary.
    let k1 = app.notice(GROUP, "First", "user0001").await;
    app.fake.mark_read(&k1, &readers);
    app.post_callback_signed(&app.mention("floor-1", GROUP, "user0001", "who read"))
        .await;
    assert!(app.one_reply(GROUP).await.contains("2250/2500"));

    let k2 = app.notice(GROUP, "Second", "user0001").await;
    app.fake.mark_read(&k2, &readers);
    app.fake.reset_calls();
    app.post_callback_signed(&app.mention("floor-2", GROUP, "user0001", "who read"))
        .await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert!(replies[1].text.contains("2250/2500"), "{}", replies[1].text);
    // ceil(2250 / 200) query pages + ceil(2500 / 1000) roster pages + 1 reply.
    assert_eq!(app.fake.calls(Api::Query), 12);
    assert_eq!(app.fake.calls(Api::InnerMembers), 3);
    assert_eq!(app.fake.calls(Api::SendBySession), 1);
    assert_eq!(app.fake.calls(Api::Token), 0, "the token is still valid");
    assert_eq!(
        app.fake.calls(Api::UserGet),
        0,
        "names came with the roster"
    );
    assert_eq!(app.fake.calls(Api::Any), 16);
}

#[tokio::test]
async fn twenty_concurrent_asks_cost_one_pass_of_query_calls() {
    let app = spawn_app_with(&[("READBOT_RECEIPTS_CACHE_SECS", "60")]).await;
    let people = members(500);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Popular", "user0001").await;
    let readers: Vec<&str> = people[..450].iter().map(|(u, _)| u.as_str()).collect();
    app.fake.mark_read(&key, &readers);
    app.fake.set_latency(Duration::from_millis(30));
    app.fake.reset_calls();

    let bodies: Vec<_> = (0..20)
        .map(|i| {
            let asker = &people[i + 1].0;
            app.mention(&format!("ask-{i}"), GROUP, asker, "who read")
        })
        .collect();
    let posts = bodies.iter().map(|b| app.post_callback_signed(b));
    for r in futures_util::future::join_all(posts).await {
        assert_eq!(r.status(), 200);
    }
    let replies = app.wait_replies(GROUP, 20).await;
    assert_eq!(replies.len(), 20);
    for r in &replies {
        assert!(r.text.contains("450/500"), "{}", r.text);
    }
    assert_eq!(
        app.fake.calls(Api::Query),
        3,
        "one pass of ceil(450/200) pages"
    );
    assert_eq!(app.fake.calls(Api::InnerMembers), 1, "one roster pass");
    assert_eq!(
        app.fake.calls(Api::SendBySession),
        20,
        "everyone got an answer"
    );
}

#[tokio::test]
async fn the_receipts_cache_expires() {
    let app = spawn_app_with(&[("READBOT_RECEIPTS_CACHE_SECS", "1")]).await;
    let people = members(10);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Changing", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    app.fake.reset_calls();
    app.post_callback_signed(&app.mention("exp-1", GROUP, "user0001", "who read"))
        .await;
    assert!(app.one_reply(GROUP).await.contains("1/10"));
    assert_eq!(app.fake.calls(Api::Query), 1);

    // After the window the next ask sees new reads.
    app.fake.mark_read(&key, &["user0003"]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    app.post_callback_signed(&app.mention("exp-2", GROUP, "user0001", "who read"))
        .await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert!(replies[1].text.contains("2/10"), "{}", replies[1].text);
    assert_eq!(app.fake.calls(Api::Query), 2);
}

#[tokio::test]
async fn a_zero_window_turns_reuse_off() {
    let app = spawn_app_with(&[("READBOT_RECEIPTS_CACHE_SECS", "0")]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(10));
    let key = app.notice(GROUP, "Live", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    app.post_callback_signed(&app.mention("zero-1", GROUP, "user0001", "who read"))
        .await;
    assert!(app.one_reply(GROUP).await.contains("1/10"));
    app.fake.mark_read(&key, &["user0003"]);
    app.post_callback_signed(&app.mention("zero-2", GROUP, "user0001", "who read"))
        .await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert!(replies[1].text.contains("2/10"), "{}", replies[1].text);
}

#[tokio::test]
async fn a_plain_group_stops_paying_for_member_apis_that_refused_it() {
    let app = spawn_app().await;
    let people = members(6);
    add_group(&app.fake, GROUP, GroupKind::Plain, &people);
    let k1 = app.notice(GROUP, "One", "user0001").await;
    app.fake.mark_read(&k1, &["user0002"]);
    app.fake.reset_calls();
    app.post_callback_signed(&app.mention("plain-1", GROUP, "user0001", "who read"))
        .await;
    assert!(app.one_reply(GROUP).await.contains("One"));
    assert_eq!(app.fake.calls(Api::InnerMembers), 1, "asked once");
    assert_eq!(app.fake.calls(Api::SceneMembers), 1, "asked once");
    let first_names = app.fake.calls(Api::UserGet);
    assert!(
        first_names >= 1,
        "names of the learned roster come from user/get"
    );

    let k2 = app.notice(GROUP, "Two", "user0001").await;
    app.fake.mark_read(&k2, &["user0002"]);
    app.fake.reset_calls();
    app.post_callback_signed(&app.mention("plain-2", GROUP, "user0001", "who read"))
        .await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert!(replies[1].text.contains("Two"), "{}", replies[1].text);
    assert_eq!(app.fake.calls(Api::InnerMembers), 0, "refusal remembered");
    assert_eq!(app.fake.calls(Api::SceneMembers), 0, "refusal remembered");
    assert_eq!(app.fake.calls(Api::UserGet), 0, "names come from the cache");
    assert_eq!(app.fake.calls(Api::Query), 1);
}
