//! The quota ledger: billable DingTalk calls counted per API and month,
//! kept across restarts, shown by `GET /api/v1/usage` and `/metrics`; past
//! 95 % of `dingtalk.monthly_call_budget` summaries stop querying and say
//! so; DingTalk's own quota refusal names the budget setting.

use crate::helpers::*;
use readbot::fake::{Api, Fault, GroupKind};
use serde_json::Value;

const GROUP: &str = "cidQuotaGroup+/==";
/// Every ask is a fresh pass (no reuse of a result).
const NO_REUSE: (&str, &str) = ("READBOT_RECEIPTS_CACHE_SECS", "0");

async fn usage(app: &TestApp) -> Value {
    let r = app.get("/api/v1/usage").await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// Asks "who read" and returns the reply text.
async fn ask(app: &TestApp, msg_id: &str) -> String {
    let before = app.replies(GROUP).len();
    let body = app.mention(msg_id, GROUP, "user0001", "who read");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let replies = app.wait_replies(GROUP, before + 1).await;
    assert_eq!(replies.len(), before + 1, "{replies:#?}");
    replies[before].text.clone()
}

/// Billable calls the fake saw: every API but the token, user/get and
/// session replies.
fn billable_seen(app: &TestApp) -> u64 {
    [
        Api::Send,
        Api::Query,
        Api::InnerMembers,
        Api::SceneMembers,
        Api::BatchSend,
        Api::Recall,
    ]
    .iter()
    .map(|a| app.fake.calls(*a) as u64)
    .sum()
}

#[tokio::test]
async fn billable_calls_are_counted_per_api_and_survive_a_restart() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let app = spawn_on(fake, &dir, &[NO_REUSE]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(450));
    let key = app.notice(GROUP, "Budget", "user0001").await;
    let readers: Vec<String> = (2..=401).map(|i| format!("user{i:04}")).collect();
    let refs: Vec<&str> = readers.iter().map(String::as_str).collect();
    app.fake.mark_read(&key, &refs);
    ask(&app, "q1").await;

    let u = usage(&app).await;
    assert_eq!(u["calls"]["robot.groupMessages.send"], 1, "{u}");
    let pages = app.fake.calls(Api::Query) as u64;
    assert!(pages >= 2, "400 readers: at least two pages of 200");
    assert_eq!(u["calls"]["robot.groupMessages.query"], pages, "{u}");
    assert_eq!(u["calls"]["im.innerGroups.memberLists.query"], 1, "{u}");
    assert_eq!(
        u["used"],
        billable_seen(&app),
        "the ledger matches what DingTalk saw: {u}"
    );
    assert!(app.fake.calls(Api::Token) >= 1 && app.fake.calls(Api::SendBySession) >= 1);
    assert_eq!(u["budget"], 5000);
    assert_eq!(u["timeZone"], "Asia/Shanghai");
    assert_eq!(
        (u["warning"].clone(), u["saving"].clone()),
        (false.into(), false.into())
    );
    let metrics = app.get("/metrics").await.text().await.expect("text");
    for series in [
        "readbot_dingtalk_billable_calls{api=\"robot.groupMessages.query\"}",
        "readbot_dingtalk_call_budget ",
        "readbot_dingtalk_budget_saving ",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
    let month = u["month"].clone();

    // A restart on the same data folder: the month's count is still there.
    let (fake, _) = app.stop().await;
    let app = spawn_on(fake, &dir, &[NO_REUSE]).await;
    let again = usage(&app).await;
    assert_eq!(again["calls"], u["calls"], "{again}");
    assert_eq!(again["month"], month);
    ask(&app, "q2").await;
    let after = usage(&app).await;
    assert_eq!(
        after["calls"]["robot.groupMessages.query"],
        2 * pages,
        "as many pages again on top of the stored ones: {after}"
    );
    app.stop().await;
    drop(tmp);
}

#[tokio::test]
async fn past_95_percent_summaries_answer_from_stored_reads_and_say_so() {
    // The notice (1 send) and one summary (1 query page + 1 member list)
    // spend the whole budget of 3.
    let app = spawn_app_with(&[NO_REUSE, ("DINGTALK_MONTHLY_CALL_BUDGET", "3")]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(10));
    let key = app.notice(GROUP, "Thin budget", "user0001").await;
    app.fake.mark_read(&key, &["user0002", "user0003"]);
    let first = ask(&app, "b1").await;
    assert!(first.contains("2/10"), "{first}");
    assert!(first.contains("queried just now"), "{first}");
    assert!(!first.contains("monthly_call_budget"), "{first}");
    let u = usage(&app).await;
    assert_eq!(
        (u["used"].clone(), u["saving"].clone()),
        (3.into(), true.into()),
        "{u}"
    );

    // More reads arrive; the next summary spends nothing and says why.
    app.fake.mark_read(&key, &["user0004"]);
    let before = billable_seen(&app);
    let second = ask(&app, "b2").await;
    assert_eq!(billable_seen(&app), before, "no query or member-list call");
    assert!(second.contains("stored, not queried"), "{second}");
    assert!(second.contains("3 of 3 calls"), "{second}");
    assert!(second.contains("dingtalk.monthly_call_budget"), "{second}");
    assert!(
        second.contains("2/"),
        "the reads stored by the last pass (a cached result): {second}"
    );
    let r: Value = app
        .get(&format!(
            "/api/v1/notices/{}/receipts",
            url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
        ))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["readsFrom"], "stored");
    assert_eq!(billable_seen(&app), before, "the API does not query either");
    app.stop().await;
}

#[tokio::test]
async fn dingtalks_quota_refusal_names_the_budget_and_stops_further_queries() {
    let app = spawn_app_with(&[NO_REUSE]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(5));
    let key = app.notice(GROUP, "Refused", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    app.fake.inject(
        Api::Query,
        Fault::status(
            403,
            "Forbidden.AccessDenied.ApiCountLimitForOrg",
            "api count limit",
        ),
        1,
    );
    let refused = ask(&app, "r1").await;
    assert!(refused.contains("monthly API quota"), "{refused}");
    assert!(
        refused.contains("dingtalk.monthly_call_budget"),
        "{refused}"
    );
    let u = usage(&app).await;
    assert_eq!(u["dingtalkRefused"], true, "{u}");
    assert_eq!(u["saving"], true, "{u}");

    let queries = app.fake.calls(Api::Query);
    let next = ask(&app, "r2").await;
    assert_eq!(app.fake.calls(Api::Query), queries, "no more query calls");
    assert!(next.contains("quota is used up"), "{next}");
    app.stop().await;
}

#[tokio::test]
async fn usage_needs_the_api_token() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/api/v1/usage", app.addr))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn check_shows_the_running_readbots_usage() {
    let app = spawn_app_with(&[NO_REUSE]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(5));
    app.notice(GROUP, "Counted", "user0001").await;
    let tmp = tempfile::tempdir().expect("tmp");
    let listen = app.addr.trim_start_matches("http://").to_owned();
    let mut env = crate::cli::dingtalk_env(&app.fake, &tmp.path().join("data"));
    env.push(("READBOT_LISTEN", listen));
    env.push(("READBOT_API_TOKEN", API_TOKEN.to_owned()));
    env.push(("DINGTALK_MONTHLY_CALL_BUDGET", "1000".to_owned()));
    let r = crate::cli::readbot(&["check"], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("dingtalk.monthly_call_budget = 1000"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("billable calls this month (")
            && r.stdout
                .contains("): 1 of 5000 (0%): robot.groupMessages.send 1"),
        "the running readbot's ledger (its own budget): {r:?}"
    );
    app.stop().await;
}
