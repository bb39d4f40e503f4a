//! Reminding the unread (real @ through the session webhook, or direct
//! messages) and recalling notices, as the group and the unread see it.

use crate::helpers::*;
use readbot::fake::{Api, GroupKind, Mention, Via};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const GROUP: &str = "cidRemindGroup+/==";

/// A group of `n` members where only the author (user0001) has read the notice.
async fn notice_with_unread(app: &TestApp, n: usize) -> (String, Vec<(String, String)>) {
    let people = members(n);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Fire drill", "user0001").await;
    app.fake.mark_read(&key, &["user0001"]);
    (key, people)
}

async fn say(app: &TestApp, id: &str, sender: &str, text: &str) {
    let body = app.mention(id, GROUP, sender, text);
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
}

async fn post_reminder(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!(
            "{}/api/v1/notices/{}/reminders",
            app.addr,
            urlencoding(key)
        ))
        .bearer_auth(API_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("reminder request")
}

async fn delete_notice(app: &TestApp, key: &str) -> reqwest::Response {
    app.http
        .delete(format!("{}/api/v1/notices/{}", app.addr, urlencoding(key)))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("recall request")
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[tokio::test]
async fn remind_with_120_unread_mentions_them_in_three_messages() {
    let app = spawn_app().await;
    let (_key, people) = notice_with_unread(&app, 121).await;
    say(&app, "m-remind-120", "user0001", "remind").await;
    let replies = app.wait_replies(GROUP, 3).await;
    assert_eq!(replies.len(), 3, "{replies:#?}");
    let sizes: Vec<usize> = replies.iter().map(|m| m.at_user_ids.len()).collect();
    assert_eq!(sizes, [50, 50, 20]);
    let mut all = BTreeSet::new();
    for m in &replies {
        assert_eq!(m.via, Via::Session, "only a session reply can @");
        assert!(m.text.contains("Fire drill"), "{}", m.text);
        for id in &m.at_user_ids {
            assert!(
                m.text.contains(&format!("@{id}")),
                "@{id} not in {}",
                m.text
            );
            assert!(all.insert(id.clone()), "{id} mentioned twice");
        }
    }
    let unread: BTreeSet<String> = people[1..].iter().map(|(u, _)| u.clone()).collect();
    assert_eq!(all, unread);
    let last = &replies[2].text;
    assert!(
        last.contains("group's member list"),
        "roster rule stated: {last}"
    );
    assert!(!last.contains("remind dm"), "nobody left over: {last}");
    assert_eq!(app.fake.calls(Api::BatchSend), 0);

    // The summary shows the reminder.
    say(&app, "m-remind-120-who", "user0001", "who read").await;
    let replies = app.wait_replies(GROUP, 4).await;
    let summary = &replies[3].text;
    assert!(summary.contains("Reminded 1× · last "), "{summary}");
}

#[tokio::test]
async fn remind_stops_at_the_mention_cap_and_suggests_remind_dm() {
    let app = spawn_app_with(&[("READBOT_REMIND_MAX_MENTIONS", "60")]).await;
    notice_with_unread(&app, 71).await;
    say(&app, "m-remind-cap", "user0001", "提醒未读").await;
    let replies = app.wait_replies(GROUP, 2).await;
    let sizes: Vec<usize> = replies.iter().map(|m| m.at_user_ids.len()).collect();
    assert_eq!(sizes, [50, 10]);
    let last = &replies[1].text;
    assert!(last.contains("另有 10 人未读"), "{last}");
    assert!(last.contains("私信提醒"), "{last}");
}

#[tokio::test]
async fn non_author_is_refused_and_admins_may_remind() {
    let app = spawn_app_with(&[("READBOT_ADMINS", "user0009")]).await;
    notice_with_unread(&app, 10).await;
    say(&app, "m-remind-other", "user0002", "remind").await;
    let text = app.one_reply(GROUP).await;
    assert!(
        text.contains("Only the notice's author and readbot's admins"),
        "{text}"
    );
    assert!(app.replies(GROUP)[0].at_user_ids.is_empty());
    // An admin may (remind N picks notice 1 of the list).
    say(&app, "m-remind-admin", "user0009", "remind 1").await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert_eq!(replies[1].at_user_ids.len(), 9, "{:#?}", replies[1]);
}

#[tokio::test]
async fn a_second_reminder_within_the_cooldown_is_refused_with_the_next_time() {
    let app = spawn_app().await;
    notice_with_unread(&app, 5).await;
    say(&app, "m-cool-1", "user0001", "remind dm").await;
    app.wait_replies(GROUP, 1).await;
    say(&app, "m-cool-2", "user0001", "remind").await;
    let replies = app.wait_replies(GROUP, 2).await;
    let text = &replies[1].text;
    assert!(text.contains("The next reminder is allowed at"), "{text}");
    assert!(replies[1].at_user_ids.is_empty());
    assert_eq!(app.fake.direct_batches().len(), 1, "one reminder only");
}

#[tokio::test]
async fn remind_dm_sends_batches_of_twenty_and_names_flow_controlled_members() {
    let app = spawn_app().await;
    notice_with_unread(&app, 46).await;
    app.fake.set_flow_controlled(&["user0003", "user0004"]);
    say(&app, "m-dm-45", "user0001", "remind dm").await;
    let text = app.one_reply(GROUP).await;
    let batches = app.fake.direct_batches();
    let sizes: Vec<usize> = batches.iter().map(|b| b.user_ids.len()).collect();
    assert_eq!(sizes, [20, 20, 5]);
    assert!(
        batches[0].text.contains("Fire drill"),
        "{}",
        batches[0].text
    );
    assert!(
        batches[0]
            .text
            .contains("user0001 sent the notice **Fire drill**"),
        "which notice, sent by whom: {}",
        batches[0].text
    );
    assert!(text.contains("Sent a direct message to 43 of 45"), "{text}");
    assert!(text.contains("flow control"), "{text}");
    assert!(
        text.contains("Member 0003") && text.contains("Member 0004"),
        "{text}"
    );
    let delivered: usize = batches.iter().map(|b| b.delivered_to.len()).sum();
    assert_eq!(delivered, 43);
}

#[tokio::test]
async fn remind_without_a_fresh_session_says_so_and_suggests_remind_dm() {
    let app = spawn_app().await;
    notice_with_unread(&app, 5).await;
    let mut m = Mention::new(GROUP, "user0001", "Member 0001", "remind");
    m.session_ttl = Duration::from_secs(1);
    let body = app.fake.mention_body(&m);
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("remind dm"), "{text}");
    assert!(app.replies(GROUP)[0].at_user_ids.is_empty());
}

#[tokio::test]
async fn recall_via_chat_marks_the_notice_and_stops_reminders() {
    let app = spawn_app().await;
    let (key, _) = notice_with_unread(&app, 5).await;
    say(&app, "m-recall-other", "user0002", "撤回").await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("只有通知的发送人"), "{text}");
    assert_eq!(app.fake.send_status(&key).as_deref(), Some("SUCCESS"));

    say(&app, "m-recall", "user0001", "recall").await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert!(
        replies[1].text.contains("Recalled **Fire drill**"),
        "{}",
        replies[1].text
    );
    assert_eq!(app.fake.send_status(&key).as_deref(), Some("RECALLED"));

    say(&app, "m-recall-remind", "user0001", "remind dm").await;
    let replies = app.wait_replies(GROUP, 3).await;
    assert!(
        replies[2].text.contains("was recalled"),
        "{}",
        replies[2].text
    );
    assert_eq!(app.fake.calls(Api::BatchSend), 0);

    say(&app, "m-recall-who", "user0001", "who read").await;
    let replies = app.wait_replies(GROUP, 4).await;
    assert!(
        replies[3].text.contains("Recalled through readbot at"),
        "{}",
        replies[3].text
    );
}

#[tokio::test]
async fn api_reminders_and_recall() {
    let app = spawn_app().await;
    let (key, _) = notice_with_unread(&app, 8).await;
    app.fake.set_invalid_users(&["user0005"]);

    let r = post_reminder(&app, &key, json!({"via": "mention"})).await;
    assert_eq!(r.status(), 400);
    let r = post_reminder(&app, &key, json!({})).await;
    assert_eq!(r.status(), 400);
    let r = post_reminder(&app, "unknownKey", json!({"via": "dm"})).await;
    assert_eq!(r.status(), 404);

    let r = post_reminder(&app, &key, json!({"via": "dm"})).await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["unreadCount"], 7);
    assert_eq!(v["reminded"].as_array().unwrap().len(), 6);
    assert_eq!(
        v["refused"],
        json!([{"userId": "user0005", "name": "Member 0005", "reason": "invalid"}])
    );

    let r = post_reminder(&app, &key, json!({"via": "dm"})).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "cooldown");

    let r = delete_notice(&app, &key).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["recalled"], true);
    assert_eq!(app.fake.send_status(&key).as_deref(), Some("RECALLED"));
    assert_eq!(delete_notice(&app, &key).await.status(), 200, "idempotent");
    assert_eq!(app.fake.calls(Api::Recall), 1);

    // DingTalk's failedResult reason reaches the caller.
    let other = app.notice(GROUP, "Second", "user0001").await;
    app.fake.fail_recall(&other, "消息已超过可撤回时间");
    let r = delete_notice(&app, &other).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "recall_failed");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("消息已超过可撤回时间"), "{msg}");
}

/// An @mention from the group whose `conversationTitle` is `title`.
async fn say_titled(app: &TestApp, id: &str, sender: &str, text: &str, title: &str) {
    let mut body = app.mention(id, GROUP, sender, text);
    body["conversationTitle"] = json!(title);
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
}

#[tokio::test]
async fn remind_dm_names_the_group_by_the_title_of_its_last_mention() {
    let app = spawn_app().await;
    notice_with_unread(&app, 3).await;
    say_titled(
        &app,
        "m-dm-title",
        "user0001",
        "remind dm",
        "Ops «team» 运维",
    )
    .await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("Sent a direct message to 2 of 2"), "{text}");
    let batches = app.fake.direct_batches();
    assert_eq!(batches.len(), 1);
    assert!(
        batches[0]
            .text
            .contains("**Fire drill** in the group «Ops «team» 运维» on "),
        "which notice, in which group: {}",
        batches[0].text
    );
}

#[tokio::test]
async fn the_api_reminder_uses_the_latest_group_title() {
    let app = spawn_app().await;
    let (key, _) = notice_with_unread(&app, 3).await;
    say_titled(&app, "m-title-old", "user0002", "help", "Old name").await;
    app.wait_replies(GROUP, 1).await;
    say_titled(&app, "m-title-new", "user0002", "help", "New name").await;
    app.wait_replies(GROUP, 2).await;
    let resp = post_reminder(&app, &key, json!({"via": "dm"})).await;
    assert_eq!(resp.status(), 202);
    let batches = app.fake.direct_batches();
    assert_eq!(batches.len(), 1);
    assert!(
        batches[0].text.contains("in the group «New name»"),
        "{}",
        batches[0].text
    );
    assert!(!batches[0].text.contains("Old name"), "{}", batches[0].text);
}

#[tokio::test]
async fn a_hostile_group_title_is_neutralised_in_the_direct_message() {
    let app = spawn_app().await;
    notice_with_unread(&app, 3).await;
    let hostile = "[Win a prize](https://phish.example/x) @all\n# URGENT <b>";
    say_titled(&app, "m-dm-hostile", "user0001", "remind dm", hostile).await;
    app.one_reply(GROUP).await;
    let batches = app.fake.direct_batches();
    assert_eq!(batches.len(), 1);
    let text = &batches[0].text;
    assert!(
        text.contains("Win a prize"),
        "the title is still named: {text}"
    );
    for bad in ["[Win", "](", "https://", "@all", "\n#", "<b>"] {
        assert!(
            !text.contains(bad),
            "{bad:?} reached the direct message: {text}"
        );
    }
}
