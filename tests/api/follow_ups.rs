//! Scheduled follow-ups (a summary posted to the group, or direct-message
//! reminders, at a set time), and who may see what (`bot.ask_policy`,
//! `bot.reply_to`), as the group, the unread and the API see them.

use crate::helpers::*;
use readbot::domain::{FollowUp, FollowUpAction, FollowUpId, FollowUpState, Lang, ProcessQueryKey};
use readbot::fake::GroupKind;
use serde_json::{json, Value};
use std::time::Duration;

const GROUP: &str = "cidFollowUps+/==";

async fn say(app: &TestApp, id: &str, sender: &str, text: &str) {
    let body = app.mention(id, GROUP, sender, text);
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
}

async fn detail(app: &TestApp, key: &str) -> Value {
    let r = app.get(&format!("/api/v1/notices/{}", enc(key))).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

fn states(v: &Value) -> Vec<String> {
    v["followUps"]
        .as_array()
        .expect("followUps")
        .iter()
        .map(|f| f["state"].as_str().expect("state").to_owned())
        .collect()
}

/// Waits (bounded) until every follow-up of `key` is in a final state.
async fn wait_settled(app: &TestApp, key: &str) -> Value {
    for _ in 0..200 {
        let v = detail(app, key).await;
        if states(&v).iter().all(|s| s != "pending") {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    detail(app, key).await
}

/// A group of 6 where only the author (user0001) has read.
fn group(app: &TestApp) {
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(6));
}

async fn send_with(app: &TestApp, follow_ups: Value) -> reqwest::Response {
    app.send_notice(&json!({
        "openConversationId": GROUP, "title": "Fire drill", "msgtype": "markdown",
        "text": "### Fire drill\nAt 15:00.", "author": "user0001", "followUps": follow_ups,
    }))
    .await
}

async fn sent_key(app: &TestApp, r: reqwest::Response) -> (String, Value) {
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let v: Value = r.json().await.expect("json");
    let key = v["processQueryKey"].as_str().expect("key").to_owned();
    app.keys.lock().expect("keys").insert(key.clone());
    (key, v)
}

#[tokio::test]
async fn send_api_refuses_bad_follow_ups_naming_the_field_and_sends_nothing() {
    let app = spawn_app().await;
    group(&app);
    let soon = now_ms() + 60_000;
    let cases = [
        (json!("tomorrow"), "followUps:"),
        (
            json!((0..6)
                .map(|_| json!({"at": soon, "action": "summary"}))
                .collect::<Vec<_>>()),
            "at most 5",
        ),
        (
            json!([{"at": now_ms() - 1_000, "action": "summary"}]),
            "followUps[0].at: must be in the future",
        ),
        (
            json!([{"at": soon, "action": "summary"}, {"at": now_ms() + 40 * 86_400_000_i64, "action": "remind"}]),
            "followUps[1].at: must be within the notice's query window",
        ),
        (
            json!([{"at": soon, "action": "ding"}]),
            "followUps[0].action",
        ),
        (
            json!([{"at": "next friday", "action": "summary"}]),
            "followUps[0].at: must be an RFC 3339",
        ),
        (
            json!([{"action": "summary"}]),
            "followUps[0].at: is required",
        ),
        (
            json!([{"at": soon, "action": "summary", "when": 1}]),
            "followUps[0].when: unknown field",
        ),
        (json!([7]), "followUps[0]: must be an object"),
    ];
    for (follow_ups, want) in cases {
        let r = send_with(&app, follow_ups.clone()).await;
        assert_eq!(r.status(), 400, "{follow_ups}");
        let v: Value = r.json().await.expect("json");
        let msg = v["error"]["message"].as_str().expect("message");
        assert!(msg.contains(want), "{follow_ups}: {msg}");
    }
    assert!(app.fake.group_view(GROUP).is_empty(), "nothing was sent");
    // RFC 3339 with an offset is accepted.
    let at = time::OffsetDateTime::from_unix_timestamp(now_ms() / 1000 + 3600)
        .unwrap()
        .to_offset(time::macros::offset!(+8))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (key, v) = sent_key(
        &app,
        send_with(&app, json!([{"at": at, "action": "remind"}])).await,
    )
    .await;
    assert_eq!(v["followUps"][0]["state"], "pending");
    assert_eq!(v["followUps"][0]["action"], "remind");
    assert_eq!(states(&detail(&app, &key).await), ["pending"]);
}

#[tokio::test]
async fn due_follow_ups_post_the_summary_and_remind_the_unread_by_direct_message_once() {
    let app = spawn_app().await;
    group(&app);
    let at = now_ms() + 1_500;
    let (key, _) = sent_key(
        &app,
        send_with(
            &app,
            json!([{"at": at, "action": "summary"}, {"at": at, "action": "remind"}]),
        )
        .await,
    )
    .await;
    app.fake.mark_read(&key, &["user0001", "user0002"]);
    let v = wait_settled(&app, &key).await;
    assert_eq!(states(&v), ["fired", "fired"], "{v:#}");
    let replies = app.replies(GROUP);
    assert_eq!(replies.len(), 1, "one summary in the group: {replies:#?}");
    let text = &replies[0].text;
    assert!(text.contains("Scheduled summary"), "{text}");
    assert!(!text.contains("late"), "on time: {text}");
    assert!(
        replies[0].at_user_ids.is_empty(),
        "a scheduled message cannot @"
    );
    let batches = app.fake.direct_batches();
    assert_eq!(batches.len(), 1, "{batches:#?}");
    let mut to = batches[0].user_ids.clone();
    to.sort();
    assert_eq!(to, ["user0003", "user0004", "user0005", "user0006"]);
    assert!(
        batches[0].text.contains("Fire drill"),
        "{}",
        batches[0].text
    );
    // Nothing fires twice.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(app.replies(GROUP).len(), 1);
    assert_eq!(app.fake.direct_batches().len(), 1);
}

#[tokio::test]
async fn chat_schedules_on_the_askers_last_notice_and_the_api_cancels_it() {
    let app = spawn_app().await;
    group(&app);
    let key = app.notice(GROUP, "Fire drill", "user0001").await;
    say(&app, "m-sched-1", "user0001", "remind tomorrow 9:00").await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("09:00 (Asia/Shanghai)"), "{text}");
    assert!(text.contains("direct message"), "{text}");
    say(&app, "m-sched-2", "user0001", "明天 9:30 汇总").await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert!(
        replies[1].text.contains("09:30（Asia/Shanghai）"),
        "{}",
        replies[1].text
    );
    // Someone else may not (bot.remind_policy = author by default).
    say(&app, "m-sched-3", "user0002", "summary tomorrow 10:00").await;
    let replies = app.wait_replies(GROUP, 3).await;
    assert!(
        replies[2].text.contains("Only the notice's author"),
        "{}",
        replies[2].text
    );

    let v = detail(&app, &key).await;
    assert_eq!(states(&v), ["pending", "pending"], "{v:#}");
    let f = &v["followUps"][0];
    assert_eq!(f["action"], "remind");
    assert_eq!(f["by"], "user0001");
    let tomorrow_9 = readbot::config::ReplyTimeZone::default()
        .at_clock(now_ms(), true, 9, 0)
        .unwrap();
    let at = time::OffsetDateTime::parse(
        f["at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!((at.unix_timestamp_nanos() / 1_000_000) as i64, tomorrow_9);

    let id = f["id"].as_str().unwrap();
    let url = |id: &str| {
        format!(
            "{}/api/v1/notices/{}/follow-ups/{}",
            app.addr,
            enc(&key),
            enc(id)
        )
    };
    let del = |id: String| {
        let url = url(&id);
        let http = app.http.clone();
        async move {
            http.delete(url)
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .expect("delete")
        }
    };
    let r = del(id.to_owned()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["state"], "cancelled");
    let r = del(id.to_owned()).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("cancelled"));
    assert_eq!(del("fu-nope".into()).await.status(), 404);
    assert_eq!(states(&detail(&app, &key).await), ["cancelled", "pending"]);
}

#[tokio::test]
async fn a_recalled_notice_fires_no_follow_up() {
    let app = spawn_app().await;
    group(&app);
    let at = now_ms() + 1_500;
    let (key, _) = sent_key(
        &app,
        send_with(&app, json!([{"at": at, "action": "summary"}])).await,
    )
    .await;
    let r = app
        .http
        .delete(format!("{}/api/v1/notices/{}", app.addr, enc(&key)))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = detail(&app, &key).await;
    assert_eq!(states(&v), ["cancelled"]);
    assert_eq!(v["recalled"], true);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(app.replies(GROUP).is_empty(), "{:#?}", app.replies(GROUP));
}

fn stored(key: &str, id: &str, at: i64, state: FollowUpState) -> FollowUp {
    FollowUp {
        id: FollowUpId::parse(id).unwrap(),
        key: ProcessQueryKey::parse(key).unwrap(),
        at,
        action: FollowUpAction::Summary,
        state,
        by: None,
        lang: Lang::En,
        created_at: at,
        changed_at: at,
        note: None,
    }
}

#[tokio::test]
async fn follow_ups_due_while_readbot_was_stopped_fire_once_late_or_are_skipped_after_restart() {
    let app = spawn_app().await;
    group(&app);
    let at = now_ms() + 1_000;
    let (key, _) = sent_key(
        &app,
        send_with(&app, json!([{"at": at, "action": "summary"}])).await,
    )
    .await;
    let dir = app.data_dir.clone();
    let keys = app.keys.lock().unwrap().clone();
    let (fake, tmp) = app.stop().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // While stopped: one due 2 h ago (late, within 6 h), one 7 h ago (too
    // late), one a crash left "firing" (sent again: the documented instant).
    {
        let store = readbot::store::open(&readbot::store::StoreConfig::sled(&dir))
            .await
            .expect("store");
        let h = 3_600_000;
        store
            .add_follow_ups(&[
                stored(&key, "fu-late", now_ms() - 2 * h, FollowUpState::Pending),
                stored(
                    &key,
                    "fu-too-late",
                    now_ms() - 7 * h,
                    FollowUpState::Pending,
                ),
                stored(&key, "fu-firing", now_ms() - 5_000, FollowUpState::Firing),
            ])
            .await
            .expect("stored");
    }
    let app = spawn_on(fake, &dir, &[]).await;
    *app.keys.lock().unwrap() = keys;
    let v = wait_settled(&app, &key).await;
    let by_id = |id: &str| {
        v["followUps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {v:#}"))
    };
    assert_eq!(by_id("fu-too-late")["state"], "skipped", "{v:#}");
    assert!(by_id("fu-too-late")["note"]
        .as_str()
        .unwrap()
        .contains("too late"));
    assert_eq!(by_id("fu-late")["state"], "fired");
    assert_eq!(by_id("fu-firing")["state"], "fired");
    let scheduled: Vec<&Value> = v["followUps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !["fu-late", "fu-too-late", "fu-firing"].contains(&f["id"].as_str().unwrap()))
        .collect();
    assert_eq!(scheduled.len(), 1, "{v:#}");
    assert_eq!(scheduled[0]["state"], "fired");
    // Three summaries: the one due while stopped, the late one (saying so),
    // the one left firing; none for the too-late one; none twice.
    let replies = app.wait_replies(GROUP, 3).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let replies_after = app.replies(GROUP);
    assert_eq!(replies.len(), 3, "{replies:#?}");
    assert_eq!(replies_after.len(), 3, "{replies_after:#?}");
    let late: Vec<_> = replies
        .iter()
        .filter(|m| m.text.contains("sent late"))
        .collect();
    assert_eq!(late.len(), 1, "{replies:#?}");
    assert!(
        late[0].text.contains("readbot was not running"),
        "{}",
        late[0].text
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"readbot_follow_ups_total{state="skipped",reason="too_late"} 1"#),
        "{metrics}"
    );
    drop(tmp);
}

#[tokio::test]
async fn ask_policy_author_and_admins_answers_others_with_one_sentence() {
    let app = spawn_app_with(&[
        ("READBOT_ASK_POLICY", "author_and_admins"),
        ("READBOT_ADMINS", "user0005"),
    ])
    .await;
    group(&app);
    app.notice(GROUP, "Fire drill", "user0001").await;
    say(&app, "m-ask-1", "user0002", "who read").await;
    let text = app.one_reply(GROUP).await;
    assert!(
        text.contains("Only the notice's author and readbot's admins may see"),
        "{text}"
    );
    assert!(!text.contains("Member 0003"), "{text}");
    say(&app, "m-ask-2", "user0005", "status 1").await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert!(
        replies[1].text.contains("Member 0003"),
        "{}",
        replies[1].text
    );
}

#[tokio::test]
async fn reply_to_dm_sends_the_summary_privately_and_tells_the_group_one_line() {
    let app = spawn_app_with(&[("READBOT_REPLY_TO", "dm")]).await;
    group(&app);
    app.notice(GROUP, "Fire drill", "user0001").await;
    say(&app, "m-dm-1", "user0001", "who read").await;
    let text = app.one_reply(GROUP).await;
    assert_eq!(text.trim(), "I sent you the list privately.");
    let batches = app.fake.direct_batches();
    assert_eq!(batches.len(), 1, "{batches:#?}");
    assert_eq!(batches[0].user_ids, ["user0001"]);
    assert!(
        batches[0].text.contains("Member 0003"),
        "{}",
        batches[0].text
    );
}

#[tokio::test]
async fn a_scheduled_remind_names_the_group_by_its_title() {
    let app = spawn_app().await;
    group(&app);
    let at = now_ms() + 2_500;
    let (key, _) = sent_key(
        &app,
        send_with(&app, json!([{"at": at, "action": "remind"}])).await,
    )
    .await;
    // A mention from the group tells readbot its title before the follow-up fires.
    let mut body = app.mention("m-sched-title", GROUP, "user0002", "help");
    body["conversationTitle"] = json!("Sales «North»");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    app.one_reply(GROUP).await;
    let v = wait_settled(&app, &key).await;
    assert_eq!(states(&v), ["fired"], "{v:#}");
    let batches = app.fake.direct_batches();
    assert_eq!(batches.len(), 1, "{batches:#?}");
    assert!(
        batches[0].text.contains("in the group «Sales «North»»"),
        "{}",
        batches[0].text
    );
}
