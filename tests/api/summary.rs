//! What the group sees when someone asks: summaries, lists, errors.

use crate::helpers::*;
use readbot::bot::sentences::dingtalk_error;
use readbot::dingtalk::{DingTalkError, ErrorCode};
use readbot::domain::Lang;
use readbot::fake::{Api, Fault, GroupKind};

const GROUP: &str = "cidSummaryGroup+/==";

#[tokio::test]
async fn five_hundred_members_four_hundred_fifty_read() {
    let app = spawn_app().await;
    let people = members(500);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Quarterly all-hands", "user0001").await;
    let readers: Vec<&str> = people[..450].iter().map(|(u, _)| u.as_str()).collect();
    app.fake.mark_read(&key, &readers);
    app.fake.reset_calls();

    let body = app.mention("m-500", GROUP, "user0001", "who read my last notice?");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let text = app.one_reply(GROUP).await;

    assert!(text.contains("Quarterly all-hands"), "{text}");
    assert!(text.contains("450/500"), "{text}");
    assert!(text.contains("90%"), "{text}");
    for (_, name) in &people[450..] {
        assert!(
            text.contains(name.as_str()),
            "unread {name} missing from {text}"
        );
    }
    assert_eq!(
        app.fake.calls(Api::Query),
        3,
        "450 readers = three pages of ≤200"
    );
}

#[tokio::test]
async fn chinese_question_gets_a_chinese_answer_with_names_from_user_get() {
    let app = spawn_app().await;
    let people = members(6);
    // A plain group: no member API answers, so the learned roster is used.
    add_group(&app.fake, GROUP, GroupKind::Plain, &people);
    let key = app.notice(GROUP, "周会通知", "user0001").await;
    app.fake.mark_read(&key, &["user0002", "user0003"]);
    let body = app.mention("m-zh", GROUP, "user0001", "谁没读？");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("周会通知"), "{text}");
    assert!(text.contains("已读"), "{text}");
    // Names of readers come from topapi/v2/user/get.
    assert!(text.contains("Member 0002"), "{text}");
    assert!(app.fake.calls(Api::UserGet) >= 2);
}

#[tokio::test]
async fn asker_without_a_notice_gets_the_groups_last_one_and_list_and_status_work() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(10));
    app.notice(GROUP, "First notice", "user0001").await;
    let k2 = app.notice(GROUP, "Second notice", "user0002").await;
    app.fake.mark_read(&k2, &["user0003"]);

    app.post_callback_signed(&app.mention("m-fb", GROUP, "user0009", "who read"))
        .await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("Second notice"), "{text}");
    assert!(text.contains("1/10"), "{text}");

    app.post_callback_signed(&app.mention("m-list", GROUP, "user0009", "list"))
        .await;
    let list = app.wait_replies(GROUP, 2).await;
    let list = &list[1].text;
    let first = list.find("First notice").expect("first listed");
    let second = list.find("Second notice").expect("second listed");
    assert!(second < first, "newest first: {list}");

    app.post_callback_signed(&app.mention("m-status", GROUP, "user0009", "status 2"))
        .await;
    let replies = app.wait_replies(GROUP, 3).await;
    assert!(
        replies[2].text.contains("First notice"),
        "{}",
        replies[2].text
    );

    app.post_callback_signed(&app.mention("m-status9", GROUP, "user0009", "status 9"))
        .await;
    let replies = app.wait_replies(GROUP, 4).await;
    assert!(
        replies[3].text.contains("no notice 9"),
        "{}",
        replies[3].text
    );
}

#[tokio::test]
async fn a_group_without_notices_is_told_so() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    app.post_callback_signed(&app.mention("m-none", GROUP, "user0001", "who read"))
        .await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("No notices"), "{text}");
}

#[tokio::test]
async fn list_shows_author_names_and_the_time_zone() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    // The send API records authors by userId only.
    app.notice(GROUP, "First notice", "user0001").await;
    app.notice(GROUP, "Second notice", "user0002").await;
    app.post_callback_signed(&app.mention("m-names", GROUP, "user0003", "list"))
        .await;
    let list = app.one_reply(GROUP).await;
    assert!(list.contains("**Second notice**, Member 0002, "), "{list}");
    assert!(list.contains("**First notice**, Member 0001, "), "{list}");
    assert!(!list.contains("user000"), "ids instead of names: {list}");
    assert!(list.contains("Ask **status N**"), "{list}");
    assert!(list.ends_with("Times are in Asia/Shanghai."), "{list}");
    assert!(
        !list.contains('`'),
        "no inline code in DingTalk markdown: {list}"
    );
}

#[tokio::test]
async fn unread_comes_first_and_a_long_read_list_is_a_count() {
    let app = spawn_app_with(&[
        ("READBOT_MAX_READ_NAMES", "5"),
        ("READBOT_TIMEZONE", "Europe/Berlin"),
    ])
    .await;
    let people = members(10);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Fire drill", "user0001").await;
    let readers: Vec<&str> = people[..7].iter().map(|(u, _)| u.as_str()).collect();
    app.fake.mark_read(&key, &readers);
    app.post_callback_signed(&app.mention("m-many", GROUP, "user0001", "who read"))
        .await;
    let text = app.one_reply(GROUP).await;
    let unread = text
        .find("**Unread (3):** Member 0008, Member 0009, Member 0010")
        .expect(&text);
    let read = text
        .find("**Read (7):** too many to name here")
        .expect(&text);
    assert!(unread < read, "{text}");
    assert!(!text.contains("Member 0002"), "{text}");
    assert!(text.contains(" (Europe/Berlin)\n"), "{text}");
}

fn sentence(code: &str) -> String {
    dingtalk_error(
        &DingTalkError::Api {
            status: 400,
            code: ErrorCode::parse(code),
            message: String::new(),
            request_id: None,
        },
        Lang::En,
    )
}

#[tokio::test]
async fn each_seed_error_code_becomes_its_sentence_in_the_chat() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(4));
    app.notice(GROUP, "Errors", "user0001").await;
    // system.error (retried) and processQueryKey.expireTime (time-dependent) have their own tests.
    let codes = readbot::dingtalk::error::SEED_ERROR_CODES
        .iter()
        .filter(|c| !matches!(**c, "system.error" | "processQueryKey.expireTime"));
    for (i, code) in codes.enumerate() {
        app.fake.inject(
            Api::Query,
            Fault::Status {
                status: 400,
                code: code.to_string(),
                message: format!("fake {code}"),
            },
            1,
        );
        app.post_callback_signed(&app.mention(&format!("err-{i}"), GROUP, "user0001", "who read"))
            .await;
        let replies = app.wait_replies(GROUP, i + 1).await;
        let text = &replies[i].text;
        assert!(text.contains(&sentence(code)), "{code}: {text}");
    }
}

#[tokio::test]
async fn system_error_is_retried_then_explained() {
    // Both asks are about one notice: without the receipts cache off, the
    // second would be answered from the first one's result.
    let app = spawn_app_with(&[
        ("DINGTALK_DEADLINE_SECS", "2"),
        ("READBOT_RECEIPTS_CACHE_SECS", "0"),
    ])
    .await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(4));
    let key = app.notice(GROUP, "Flaky", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    // One failure is absorbed by a retry.
    app.fake.inject(
        Api::Query,
        Fault::Status {
            status: 500,
            code: "system.error".into(),
            message: "Unknown system error".into(),
        },
        1,
    );
    app.post_callback_signed(&app.mention("sys-1", GROUP, "user0001", "who read"))
        .await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("1/4"), "{text}");
    // Persistent failure ends in the sentence.
    app.fake.inject(
        Api::Query,
        Fault::Status {
            status: 500,
            code: "system.error".into(),
            message: "Unknown system error".into(),
        },
        1000,
    );
    app.post_callback_signed(&app.mention("sys-2", GROUP, "user0001", "who read"))
        .await;
    let replies = app.wait_replies(GROUP, 2).await;
    assert!(
        replies[1].text.contains(&sentence("system.error")),
        "{}",
        replies[1].text
    );
}

#[tokio::test]
async fn not_ready_right_after_sending_is_retried() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let key = app.notice(GROUP, "Fresh", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    app.fake.set_not_ready(&key, 1);
    app.post_callback_signed(&app.mention("nr-1", GROUP, "user0001", "who read"))
        .await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("1/3"), "{text}");
}

#[tokio::test]
async fn expired_read_data_is_explained() {
    let app = spawn_app_with(&[("DINGTALK_NOT_READY_WINDOW_SECS", "1")]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let key = app.notice(GROUP, "Old", "user0001").await;
    app.fake.expire_query_data(&key);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.post_callback_signed(&app.mention("ex-1", GROUP, "user0001", "who read"))
        .await;
    let text = app.one_reply(GROUP).await;
    assert!(
        text.contains(&dingtalk_error(&DingTalkError::Expired, Lang::En)),
        "{text}"
    );
}

#[tokio::test]
async fn a_huge_unread_list_is_cut_under_dingtalks_body_limit() {
    let app = spawn_app().await;
    let people = members(3000);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Everyone please read", "user0001").await;
    app.fake.mark_read(&key, &["user0001"]);
    app.post_callback_signed(&app.mention("huge-1", GROUP, "user0002", "who read"))
        .await;
    let text = app.one_reply(GROUP).await;
    assert!(text.contains("1/3000"), "{}", &text[..200]);
    assert!(
        text.contains("and ") && text.contains(" more"),
        "cut marker missing"
    );
    let envelope =
        serde_json::json!({"msgtype":"markdown","markdown":{"title":"Read receipts","text":text}});
    assert!(
        envelope.to_string().len() < 20_000,
        "reply body is {} bytes",
        envelope.to_string().len()
    );
    // The author's name was resolved for the summary.
    assert!(text.contains("From **Member 0001**"), "author name missing");
}
