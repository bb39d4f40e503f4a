//! The group page behind the `list` reply's "All notices" link, group links
//! from the API and CLI, and what the notice page adds: pending follow-ups
//! and who reminded, by name.

use crate::helpers::*;
use readbot::bot::link::{LinkSigner, LinkTarget};
use readbot::domain::{OpenConversationId, ProcessQueryKey};
use readbot::fake::{Api, GroupKind};
use serde_json::Value;
use std::time::Duration;

const GROUP: &str = "cidGroupPage+/==";
const PUBLIC: &str = "https://readbot.example.com/rb";
const LINK_KEY: &str = "group-page-test-link-key-0123456789";
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// readbot with pages on, a group of 6 and two notices: "Drill" read by 3,
/// then one with a hostile title read by nobody (the newest).
async fn app_with_notices() -> (TestApp, String, String) {
    let app = spawn_app_with(&[
        ("READBOT_PUBLIC_URL", PUBLIC),
        ("READBOT_LINK_KEY", LINK_KEY),
    ])
    .await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(6));
    let drill = app.notice(GROUP, "Drill", "user0001").await;
    app.fake
        .mark_read(&drill, &["user0001", "user0002", "user0003"]);
    let hostile = app.notice(GROUP, HOSTILE, "user0002").await;
    (app, drill, hostile)
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.addr))
        .send()
        .await
        .expect("page")
}

async fn text(app: &TestApp, path: &str) -> String {
    let r = get(app, path).await;
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.expect("body")
}

/// The path (`/g/{token}`) of a group link minted through the API.
async fn mint_group(app: &TestApp, group: &str) -> String {
    let r = app
        .http
        .post(format!("{}/api/v1/groups/{}/links", app.addr, enc(group)))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("links");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["openConversationId"], group);
    assert!(v["expiresAt"].as_str().is_some(), "{v}");
    let url = v["url"].as_str().expect("url");
    let path = url.strip_prefix(PUBLIC).expect("under the public URL");
    assert!(path.starts_with("/g/"), "{url}");
    path.to_string()
}

/// The notice page paths a group page links to, in page order.
fn notice_links(html: &str) -> Vec<String> {
    let html = html.replace("&#x2f;", "/");
    html.split("<a href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter_map(|u| u.strip_prefix(PUBLIC))
        .filter(|p| p.starts_with("/n/"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_list_reply_links_to_a_group_page_of_its_notices_escaped() {
    let (app, _drill, _hostile) = app_with_notices().await;
    let mut body = app.mention("m-glist", GROUP, "user0001", "list");
    body["conversationTitle"] = Value::from(HOSTILE);
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let reply = app.one_reply(GROUP).await;
    let at = reply.find("[All notices](").expect(&reply) + "[All notices](".len();
    let url = &reply[at..at + reply[at..].find(')').expect("link end")];
    let path = url.strip_prefix(PUBLIC).expect(url);
    assert!(path.starts_with("/g/"), "{url}");

    let r = get(&app, path).await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "private, no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-robots-tag"], "noindex");
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = r.text().await.unwrap();
    // The hostile group title (from the callback) and notice title are text.
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    // Both (title and notice) escaped, not rewritten: the page shows the
    // text as it was typed.
    // (the group title is in <title> and the heading, the notice title
    // in its row).
    assert!(
        html.matches("&lt;img src=x onerror=alert(1)&gt;").count() >= 3,
        "{html}"
    );
    assert!(!html.contains("＜img"), "{html}");
    // Newest first, each with read/total, percent and a small chart.
    let hostile_at = html.find("&lt;img src=x").expect(&html);
    let drill_at = html.find(">Drill<").expect(&html);
    assert!(hostile_at < drill_at, "newest first");
    assert!(html.contains("0 / 6 <span>(0%)</span>"), "{html}");
    assert!(html.contains("3 / 6 <span>(50%)</span>"), "{html}");
    assert!(html.contains("From Member 0001"), "author by name: {html}");
    assert_eq!(html.matches("<svg").count(), 2, "{html}");
    assert!(html.contains("<title id=\"rb-spark-2-title\">Read progress</title>"));
    // Each notice's link opens that notice's page.
    let links = notice_links(&html);
    assert_eq!(links.len(), 2, "{html}");
    let first = text(&app, &links[0]).await;
    assert!(first.contains("Unread (6)"), "{first}");
    let second = text(&app, &links[1]).await;
    assert!(second.contains("<h1>Drill</h1>") && second.contains("3 / 6"));
    // In Chinese for a Chinese browser.
    let zh = app
        .http
        .get(format!("{}{path}", app.addr))
        .header("accept-language", "zh-CN")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        zh.contains("3/6 <span>(50%)</span>") && zh.contains("阅读进度"),
        "{zh}"
    );
}

#[tokio::test]
async fn without_a_public_url_the_list_offers_no_group_link_and_no_route() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    app.notice(GROUP, "No pages", "user0001").await;
    let body = app.mention("m-glist-off", GROUP, "user0001", "list");
    app.post_callback_signed(&body).await;
    let reply = app.one_reply(GROUP).await;
    assert!(reply.contains("No pages"), "{reply}");
    assert!(
        !reply.contains("All notices") && !reply.contains("/g/"),
        "{reply}"
    );
    assert_eq!(get(&app, "/g/anything").await.status(), 404);
    let r = app
        .http
        .post(format!("{}/api/v1/groups/{}/links", app.addr, enc(GROUP)))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn bad_expired_and_crossed_tokens_get_the_plain_403() {
    let (app, drill, _) = app_with_notices().await;
    let path = mint_group(&app, GROUP).await;
    let token = path.trim_start_matches("/g/");
    let (payload, sig) = token.split_once('.').unwrap();
    for bad in [
        format!("{payload}.{}", &sig[..sig.len() - 2]),
        format!("{payload}x.{sig}"),
        "nonsense".to_string(),
    ] {
        let r = get(&app, &format!("/g/{bad}")).await;
        assert_eq!(r.status(), 403, "{bad}");
        assert_eq!(r.headers()["cache-control"], "private, no-store");
        let html = r.text().await.unwrap();
        assert!(
            html.contains("invalid") && !html.contains("Drill"),
            "{html}"
        );
    }
    let signer = LinkSigner::new(LINK_KEY.as_bytes());
    let group = LinkTarget::Group(OpenConversationId::parse(GROUP).unwrap());
    let expired = signer.sign(&group, readbot::domain::now_millis() - 1);
    let html = get(&app, &format!("/g/{expired}")).await;
    assert_eq!(html.status(), 403);
    let html = html.text().await.unwrap();
    assert!(
        html.contains("expired") && !html.contains("invalid"),
        "{html}"
    );
    // A notice's token does not open a group page, nor a group's a notice page.
    let notice = signer.sign(
        &LinkTarget::Notice(ProcessQueryKey::parse(drill).unwrap()),
        readbot::domain::now_millis() + 60_000,
    );
    assert_eq!(get(&app, &format!("/n/{notice}")).await.status(), 200);
    let r = get(&app, &format!("/g/{notice}")).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("invalid"));
    for suffix in ["", "/csv", "/json"] {
        let r = get(&app, &format!("/n/{token}{suffix}")).await;
        assert_eq!(r.status(), 403, "{suffix}");
        assert!(r.text().await.unwrap().contains("invalid"));
    }
}

#[tokio::test]
async fn twenty_concurrent_group_page_views_cost_one_pass_of_dingtalk_calls() {
    let (app, _, _) = app_with_notices().await;
    let path = mint_group(&app, GROUP).await;
    app.fake.reset_calls();
    app.fake.set_latency(Duration::from_millis(200));
    let views = (0..20).map(|_| get(&app, &path));
    for r in futures_util::future::join_all(views).await {
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("3 / 6"), "{html}");
    }
    // One pass: one read query and one member list per notice.
    assert_eq!(app.fake.calls(Api::Query), 2, "one query per notice");
    assert_eq!(
        app.fake.calls(Api::InnerMembers),
        2,
        "one member list per notice"
    );
    assert_eq!(
        app.fake.calls(Api::UserGet),
        0,
        "authors named by the member list"
    );
}

#[tokio::test]
async fn a_notice_whose_read_data_is_gone_shows_why_and_the_page_stays_up() {
    let (app, drill, hostile) = app_with_notices().await;
    assert!(app.fake.expire_query_data(&hostile));
    let path = mint_group(&app, GROUP).await;
    let html = text(&app, &path).await;
    assert_eq!(
        html.matches("Read data unavailable:").count(),
        1,
        "only the expired notice: {html}"
    );
    assert!(html.contains("3 / 6 <span>(50%)</span>"), "{html}");
    assert_eq!(notice_links(&html).len(), 2, "both keep their link");
    let _ = drill;
}

#[tokio::test]
async fn the_api_and_cli_mint_group_links_only_for_known_groups() {
    use crate::cli::{client_env, readbot};
    let (app, _, _) = app_with_notices().await;
    let path = mint_group(&app, GROUP).await;
    assert_eq!(get(&app, &path).await.status(), 200);
    let url = |g: &str| format!("{}/api/v1/groups/{}/links", app.addr, enc(g));
    let r = app
        .http
        .post(url("cidUnknown=="))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let r = app.http.post(url(GROUP)).send().await.unwrap();
    assert_eq!(r.status(), 401, "the API token is required");

    let r = readbot(&["link", "--group", GROUP], &client_env(&app), None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let mut lines = r.stdout.lines();
    let link = lines.next().unwrap_or_default();
    assert!(link.starts_with(&format!("{PUBLIC}/g/")), "{r:?}");
    assert!(lines
        .next()
        .unwrap_or_default()
        .starts_with("valid until 20"));
    let html = text(&app, link.strip_prefix(PUBLIC).unwrap()).await;
    assert!(html.contains(">Drill<"), "{html}");
    let r = readbot(&["link"], &client_env(&app), None).await;
    assert_eq!(r.code, 2, "a KEY or --group is needed: {r:?}");
}

#[tokio::test]
async fn the_notice_page_shows_pending_follow_ups_and_who_reminded_by_name() {
    let (app, drill, hostile) = app_with_notices().await;
    let say = |id: &'static str, text: &'static str| {
        let body = app.mention(id, GROUP, "user0002", text);
        let app = &app;
        async move {
            assert_eq!(app.post_callback_signed(&body).await.status(), 200);
        }
    };
    // user0002 wrote the newest notice: a reminder now, a follow-up tomorrow.
    say("m-gp-remind", "remind").await;
    app.wait_replies(GROUP, 1).await;
    say("m-gp-sched", "remind tomorrow 9:00").await;
    let mut scheduled = false;
    for _ in 0..400 {
        if app.replies(GROUP).iter().any(|m| m.text.contains("09:00")) {
            scheduled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(scheduled, "{:#?}", app.replies(GROUP));
    let token = {
        let r = app
            .http
            .post(format!(
                "{}/api/v1/notices/{}/links",
                app.addr,
                enc(&hostile)
            ))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["url"]
            .as_str()
            .unwrap()
            .strip_prefix(PUBLIC)
            .unwrap()
            .to_string()
    };
    let html = text(&app, &token).await;
    assert!(html.contains("asked by Member 0002"), "{html}");
    assert!(!html.contains("asked by user0002"), "{html}");
    assert!(html.contains("Scheduled follow-ups"), "{html}");
    assert!(
        html.contains(
            " 09:00 · direct messages to those who have not read it · scheduled by Member 0002"
        ),
        "{html}"
    );
    // The other notice has neither.
    let signer = LinkSigner::new(LINK_KEY.as_bytes());
    let other = signer.sign(
        &LinkTarget::Notice(ProcessQueryKey::parse(drill).unwrap()),
        readbot::domain::now_millis() + 60_000,
    );
    let html = text(&app, &format!("/n/{other}")).await;
    assert!(!html.contains("Scheduled follow-ups") && !html.contains("asked by"));
}
