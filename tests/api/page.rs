//! The notice page behind the summary's "Full list" link: signed links,
//! escaping, search, exports, headers, and one DingTalk pass for many views.

use crate::helpers::*;
use readbot::bot::link::{LinkSigner, LinkTarget};
use readbot::domain::ProcessQueryKey;
use readbot::fake::{Api, GroupKind};
use serde_json::Value;

const GROUP: &str = "cidPageGroup+/==";
const PUBLIC: &str = "https://readbot.example.com/rb";
const LINK_KEY: &str = "page-test-link-key-0123456789abcdef";
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const FORMULA: &str = "=HYPERLINK(\"http://evil\",\"x\")";

/// readbot with pages on, a group of 6 (two hostile names), a notice read by
/// three of them.
async fn app_with_notice(extra: &[(&str, &str)]) -> (TestApp, String) {
    let mut env = vec![
        ("READBOT_PUBLIC_URL", PUBLIC),
        ("READBOT_LINK_KEY", LINK_KEY),
    ];
    env.extend_from_slice(extra);
    let app = spawn_app_with(&env).await;
    let mut people = members(4);
    people.push(("user0005".into(), HOSTILE.into()));
    people.push(("user0006".into(), FORMULA.into()));
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Drill <b>Friday</b>", "user0001").await;
    app.fake
        .mark_read(&key, &["user0001", "user0002", "user0006"]);
    (app, key)
}

async fn page(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .get(format!("{}{path}", app.addr))
        .send()
        .await
        .expect("page")
}

#[tokio::test]
async fn the_summary_links_to_a_page_that_names_everyone_escaped() {
    let (app, _key) = app_with_notice(&[]).await;
    let body = app.mention("m-page", GROUP, "user0001", "who read");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let text = app.one_reply(GROUP).await;
    let at = text.find("[Full list](").expect(&text) + "[Full list](".len();
    let url = &text[at..at + text[at..].find(')').expect("link end")];
    let path = url.strip_prefix(PUBLIC).expect(url);

    let r = page(&app, path).await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "private, no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-robots-tag"], "noindex");
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("a nonce");
    let html = r.text().await.unwrap();
    assert_eq!(
        html.matches(&format!("nonce=\"{nonce}\"")).count(),
        2,
        "the style and the script carry this response's nonce"
    );
    // Hostile names and titles are text, not markup.
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(
        html.contains("Drill &lt;b&gt;Friday&lt;&#x2f;b&gt;")
            || html.contains("Drill &lt;b&gt;Friday&lt;/b&gt;"),
        "{html}"
    );
    // Unread first, then readers with their time and source.
    let unread = html.find("Unread (3)").expect(&html);
    let read = html.find("Read (3)").expect(&html);
    assert!(unread < read, "unread first");
    for name in ["Member 0003", "Member 0004"] {
        let i = html.find(name).expect(name);
        assert!(unread < i && i < read, "{name} is in the unread list");
    }
    assert!(html.contains("first seen by a query at"), "{html}");
    assert!(html.contains("3 / 6"), "{html}");
    assert!(
        html.contains("<svg")
            && html.contains("<title id=\"rb-chart-title\">Read progress</title>")
    );
    // The same page in Chinese for a Chinese browser.
    let zh = app
        .http
        .get(format!("{}{path}", app.addr))
        .header("accept-language", "zh-CN,zh;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(zh.contains("未读 (3)") && zh.contains("阅读进度"), "{zh}");
}

#[tokio::test]
async fn search_narrows_both_lists_without_javascript() {
    let (app, key) = app_with_notice(&[]).await;
    let path = app.mint_notice_link(&key, PUBLIC).await;
    let html = page(&app, &format!("{path}?q=0002"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Member 0002"), "{html}");
    for other in ["Member 0003", "Member 0004"] {
        assert!(!html.contains(other), "{other} filtered out: {html}");
    }
    // Member 0001 wrote the notice: named once, in the "From" line only.
    assert_eq!(html.matches("Member 0001").count(), 1, "{html}");
    assert!(html.contains("value=\"0002\""), "the box keeps the search");
    // By name, case-insensitive; a search for nothing shows everyone.
    let html = page(&app, &format!("{path}?q=MEMBER%200004"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Member 0004") && !html.contains("Member 0003"));
    let html = page(&app, &format!("{path}?q="))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Member 0003") && html.contains("Member 0001"));
}

#[tokio::test]
async fn csv_and_json_exports_have_one_row_per_member_and_neutralise_formulas() {
    let (app, key) = app_with_notice(&[]).await;
    let path = app.mint_notice_link(&key, PUBLIC).await;
    let r = page(&app, &format!("{path}/csv")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    let bytes = r.bytes().await.unwrap();
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 BOM");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "userId,name,read,readTime,source");
    assert_eq!(lines.len(), 1 + 6, "{text}");
    let formula = lines
        .iter()
        .find(|l| l.starts_with("user0006,"))
        .expect("the formula member");
    assert!(
        formula.starts_with("user0006,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",true,"),
        "{formula}"
    );
    assert!(formula.ends_with(",query"), "{formula}");
    let unread = lines.iter().find(|l| l.starts_with("user0003,")).unwrap();
    assert_eq!(*unread, "user0003,Member 0003,false,,");

    let v: Value = page(&app, &format!("{path}/json"))
        .await
        .json()
        .await
        .unwrap();
    let rows = v["members"].as_array().expect("members");
    assert_eq!(rows.len(), 6);
    let r6 = rows.iter().find(|r| r["userId"] == "user0006").unwrap();
    assert_eq!(r6["name"], FORMULA, "JSON keeps the name as it is");
    assert_eq!(r6["read"], true);
    assert_eq!(r6["source"], "query");
    assert!(r6["readTime"].as_str().unwrap().ends_with("+08:00"));
}

#[tokio::test]
async fn tampered_and_expired_links_get_a_plain_403_saying_which() {
    let (app, key) = app_with_notice(&[]).await;
    let path = app.mint_notice_link(&key, PUBLIC).await;
    let token = path.trim_start_matches("/n/");
    let (payload, sig) = token.split_once('.').unwrap();
    // Another notice's key under this signature, a cut signature, junk.
    let other = readbot::bot::link::LinkSigner::new(b"another key");
    let foreign = other.sign(
        &LinkTarget::Notice(ProcessQueryKey::parse(key.clone()).unwrap()),
        readbot::domain::now_millis() + 60_000,
    );
    for bad in [
        format!("{payload}.{}", &sig[..sig.len() - 2]),
        format!("{}x.{sig}", payload),
        foreign,
        "nonsense".to_string(),
    ] {
        for suffix in ["", "/csv", "/json"] {
            let r = page(&app, &format!("/n/{bad}{suffix}")).await;
            assert_eq!(r.status(), 403, "{bad}{suffix}");
            assert_eq!(r.headers()["cache-control"], "private, no-store");
            let html = r.text().await.unwrap();
            assert!(html.contains("invalid"), "{html}");
            assert!(!html.contains("Member 000"), "nothing of the notice leaks");
        }
    }
    // A genuine link whose time is up.
    let signer = LinkSigner::new(LINK_KEY.as_bytes());
    let expired = signer.sign(
        &LinkTarget::Notice(ProcessQueryKey::parse(key.clone()).unwrap()),
        readbot::domain::now_millis() - 1,
    );
    let r = page(&app, &format!("/n/{expired}")).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("expired") && !html.contains("invalid"),
        "{html}"
    );
    // The same key signs links readbot accepts (READBOT_LINK_KEY).
    let fresh = signer.sign(
        &LinkTarget::Notice(ProcessQueryKey::parse(key).unwrap()),
        readbot::domain::now_millis() + 60_000,
    );
    assert_eq!(page(&app, &format!("/n/{fresh}")).await.status(), 200);
}

#[tokio::test]
async fn fifty_concurrent_page_views_cost_one_pass_of_dingtalk_calls() {
    let (app, key) = app_with_notice(&[]).await;
    let path = app.mint_notice_link(&key, PUBLIC).await;
    app.fake.reset_calls();
    app.fake.set_latency(std::time::Duration::from_millis(200));
    let views = (0..50).map(|_| page(&app, &path));
    let answers = futures_util::future::join_all(views).await;
    for r in answers {
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.fake.calls(Api::Query), 1, "one read query for 50 views");
    assert_eq!(app.fake.calls(Api::InnerMembers), 1, "one member list");
}

#[tokio::test]
async fn a_generated_link_key_survives_a_restart() {
    let app = spawn_app_with(&[("READBOT_PUBLIC_URL", PUBLIC)]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let key = app.notice(GROUP, "Kept", "user0001").await;
    let path = app.mint_notice_link(&key, PUBLIC).await;
    assert_eq!(page(&app, &path).await.status(), 200);
    let dir = app.data_dir.clone();
    let (fake, tmp) = app.stop().await;
    let app = spawn_on(fake, &dir, &[("READBOT_PUBLIC_URL", PUBLIC)]).await;
    assert_eq!(
        page(&app, &path).await.status(),
        200,
        "same key after a restart"
    );
    drop(tmp);
}

#[tokio::test]
async fn without_a_public_url_there_is_no_link_and_no_page_route() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let key = app.notice(GROUP, "No pages", "user0001").await;
    let body = app.mention("m-nopage", GROUP, "user0001", "who read");
    app.post_callback_signed(&body).await;
    let text = app.one_reply(GROUP).await;
    assert!(
        !text.contains("Full list") && !text.contains("/n/"),
        "{text}"
    );
    let r = app
        .http
        .post(format!("{}/api/v1/notices/{}/links", app.addr, enc(&key)))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = page(&app, "/n/anything").await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_link_api_wants_the_token_and_a_recorded_notice() {
    let (app, _key) = app_with_notice(&[]).await;
    let r = app
        .http
        .post(format!("{}/api/v1/notices/unknown-key/links", app.addr))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .http
        .post(format!("{}/api/v1/notices/unknown-key/links", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_cli_prints_a_link_or_says_why_it_cannot() {
    use crate::cli::{client_env, readbot};
    let (app, key) = app_with_notice(&[]).await;
    let r = readbot(&["link", &key], &client_env(&app), None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let mut lines = r.stdout.lines();
    let url = lines.next().unwrap_or_default();
    assert!(url.starts_with(&format!("{PUBLIC}/n/")), "{r:?}");
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("valid until 20"),
        "{r:?}"
    );
    let path = url.strip_prefix(PUBLIC).unwrap();
    assert_eq!(page(&app, path).await.status(), 200);

    let off = spawn_app().await;
    let r = readbot(&["link", &key], &client_env(&off), None).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("READBOT_PUBLIC_URL"), "{r:?}");
}
