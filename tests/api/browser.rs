//! The notice page in a real browser: Debian's headless Chromium, driven over
//! the DevTools protocol (`browser/cdp.rs` says why no driver crate), against
//! the real app and the fake DingTalk.
//!
//! Without Chromium the test prints one line and passes, unless
//! `READBOT_REQUIRE_BROWSER=1` (set by `.ci/run`), where it fails.
//! Screenshots go to `target/screenshots/` (`$CARGO_TARGET_DIR/screenshots/`
//! when that is set), overwritten each run; with `READBOT_UPDATE_SCREENSHOTS=1`
//! the sample page's two are also written to `docs/screenshots/` for the
//! README.

mod cdp;

use crate::helpers::*;
use cdp::{Browser, Tab, LIMIT};
use readbot::fake::{FakeDingTalk, GroupKind};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const GROUP: &str = "cidBrowserGroup+/==";
const SAMPLE_GROUP: &str = "cidBrowserSample+/==";
const PUBLIC: &str = "https://readbot.example.com/rb";
const HOSTILE: &str = "<img src=x onerror=alert(1)>";
/// The member whose name is [`HOSTILE`] (unread).
const HOSTILE_ID: &str = "user0777";
const MEMBERS: usize = 1_500;
const READERS: usize = 300;
/// The readers' times run from (just after) the send time to 4 h later.
const SPAN_MS: i64 = 4 * 3600 * 1000;
/// What `bot::summary::timeline` makes of a 4 h span: the shortest interval
/// giving fewer than 48 buckets is 15 min (5 min would need 48), and 4 h of
/// 15 min is 16 intervals plus the one the last read starts: 17 points.
const POINTS: usize = 17;

const APP_ENV: &[(&str, &str)] = &[
    ("READBOT_PUBLIC_URL", PUBLIC),
    ("READBOT_LINK_KEY", "browser-test-link-key-0123456789abcdef"),
    // Read events with their own times come through the Stream gateway.
    ("READBOT_MODE", "stream"),
    ("READBOT_STREAM_BACKOFF_BASE_MS", "20"),
    ("READBOT_STREAM_BACKOFF_MAX_MS", "200"),
];

/// Chromium, or `None` after one printed line; with
/// `READBOT_REQUIRE_BROWSER=1` a missing Chromium fails the test.
fn chromium_or_skip() -> Option<PathBuf> {
    let found = cdp::find_chromium();
    if found.is_none() {
        let required = std::env::var("READBOT_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "READBOT_REQUIRE_BROWSER=1 but chromium was not found on the PATH (install Debian's chromium package)"
        );
        // Straight to stderr, past the test harness's capture.
        let _ = writeln!(
            std::io::stderr(),
            "skipping browser tests: chromium not found (install Debian's chromium package, or run .ci/run)"
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notice_page_works_in_a_real_browser() {
    let Some(binary) = chromium_or_skip() else {
        return;
    };
    let app = spawn_app_with(APP_ENV).await;
    let streaming = app.fake.wait_until(LIMIT, |f| f.live_streams() >= 1).await;
    assert!(streaming, "no stream connection");
    let browser = Browser::launch(&binary).await.expect("chromium starts");
    large_group(&app, &browser).await;
    sample_screenshots(&app, &browser).await;
    assert!(
        browser.events("Page.javascriptDialogOpening").is_empty(),
        "no alert or other dialog fired"
    );
    let errors = browser.events("Runtime.exceptionThrown");
    assert!(errors.is_empty(), "no script error: {errors:?}");
    browser.close().await.expect("no browser process left");
    app.stop().await;
}

/// 1,500 members (one of them named like markup), 300 readers over 4 h.
async fn large_group(app: &TestApp, browser: &Browser) {
    let people: Vec<(String, String)> = members(MEMBERS)
        .into_iter()
        .map(|(id, name)| {
            let name = if id == HOSTILE_ID {
                HOSTILE.into()
            } else {
                name
            };
            (id, name)
        })
        .collect();
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Fire drill on Friday", "user0001").await;
    let start = now_ms();
    let reads: Vec<(String, i64)> = people[..READERS]
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            (
                id.clone(),
                start + SPAN_MS * i as i64 / (READERS as i64 - 1),
            )
        })
        .collect();
    read_with_times(&app.fake, &key, &reads).await;
    let path = app.mint_notice_link(&key, PUBLIC).await;
    let url = format!("{}{path}", app.addr);

    let tab = browser.new_tab().await.expect("a tab");
    tab.viewport(1280, 900).await.expect("viewport");
    tab.goto(&url).await.expect("the page loads");
    let title = tab.eval("document.title").await.expect("title");
    assert!(
        title
            .as_str()
            .unwrap_or_default()
            .starts_with("Fire drill on Friday"),
        "{title}"
    );

    // Every unread name is in the DOM, as text (the hostile one too).
    let unread = tab
        .eval("[...document.querySelectorAll('#unread li')].map(li => li.firstChild.textContent.trim())")
        .await
        .expect("unread names");
    let shown: BTreeSet<&str> = unread
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let expected: BTreeSet<&str> = people[READERS..].iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(unread.as_array().map(Vec::len), Some(MEMBERS - READERS));
    assert_eq!(shown, expected, "every unread name, once");
    assert!(shown.contains(HOSTILE), "the markup name is plain text");
    let read_n = tab
        .eval("document.querySelectorAll('#read li').length")
        .await;
    assert_eq!(read_n, Ok(json!(READERS)));
    assert_eq!(
        tab.eval("document.querySelectorAll('img').length").await,
        Ok(json!(0)),
        "no <img> element was made of the name"
    );
    let heading = tab
        .eval("document.getElementById('unread-h').textContent")
        .await;
    assert_eq!(
        heading,
        Ok(json!(format!("Unread ({})", MEMBERS - READERS)))
    );

    // The chart: one dot per read interval, the last at every reader.
    let r = app
        .get(&format!("/api/v1/notices/{}/receipts", enc(&key)))
        .await;
    let receipts: Value = r.json().await.expect("receipts");
    let buckets = receipts["timeline"]["buckets"].as_array().map(Vec::len);
    assert_eq!(buckets, Some(POINTS), "the API's timeline: {receipts:#}");
    assert_eq!(
        tab.eval("document.querySelectorAll('svg.rb-chart circle.rb-point').length")
            .await,
        Ok(json!(POINTS))
    );
    assert_eq!(
        tab.eval("[...document.querySelectorAll('circle.rb-point title')].pop().textContent")
            .await,
        Ok(json!(READERS.to_string()))
    );
    assert_eq!(
        tab.eval("document.querySelectorAll('.rb-mark').length")
            .await,
        Ok(json!(0)),
        "20% read: neither 50% nor 80% reached"
    );

    screenshot(&tab, "notice-1500-1280.png", false, None).await;
    tab.viewport(375, 812).await.expect("viewport");
    no_sideways_scroll(&tab, 375).await;
    screenshot(&tab, "notice-1500-375.png", false, None).await;
    tab.viewport(1280, 900).await.expect("viewport");

    // Typing narrows both lists at once (the script), by name or id.
    let q = "030";
    let want = |list: &[(String, String)]| {
        list.iter()
            .filter(|(id, n)| format!("{n} {id}").to_lowercase().contains(q))
            .count()
    };
    let (want_read, want_unread) = (want(&people[..READERS]), want(&people[READERS..]));
    assert!(want_read > 0 && want_unread > 0, "both lists keep someone");
    tab.eval("document.getElementById('q').focus()")
        .await
        .expect("focus");
    tab.type_text(q).await.expect("typing");
    let visible = |list: &str| {
        format!(
            "[...document.querySelectorAll('#{list} li')].filter(li => li.getClientRects().length > 0).length"
        )
    };
    assert_eq!(tab.eval(&visible("unread")).await, Ok(json!(want_unread)));
    assert_eq!(tab.eval(&visible("read")).await, Ok(json!(want_read)));

    // With scripts off, typing changes nothing and Enter submits the plain
    // form: the server answers the narrowed lists.
    tab.call(
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": true }),
    )
    .await
    .expect("scripts off");
    tab.goto(&url).await.expect("the page without script");
    tab.eval("document.getElementById('q').focus()")
        .await
        .expect("focus");
    tab.type_text(q).await.expect("typing");
    assert_eq!(
        tab.eval(&visible("unread")).await,
        Ok(json!(MEMBERS - READERS)),
        "no script narrows the list"
    );
    tab.call(
        "Input.dispatchKeyEvent",
        json!({ "type": "keyDown", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r" }),
    )
    .await
    .expect("enter");
    tab.wait_true(&format!(
        "location.search === '?q={q}' && document.readyState === 'complete'"
    ))
    .await
    .expect("the form was submitted");
    let total = |list: &str| format!("document.querySelectorAll('#{list} li').length");
    assert_eq!(tab.eval(&total("unread")).await, Ok(json!(want_unread)));
    assert_eq!(tab.eval(&total("read")).await, Ok(json!(want_read)));
    assert_eq!(
        tab.eval("document.getElementById('q').value").await,
        Ok(json!(q))
    );
    // A link with the search in it works the same (by name, any case).
    tab.goto(&format!("{url}?q=MEMBER+1499"))
        .await
        .expect("searched without script");
    assert_eq!(tab.eval(&total("unread")).await, Ok(json!(1)));
    assert_eq!(tab.eval(&total("read")).await, Ok(json!(0)));
    tab.call(
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": false }),
    )
    .await
    .expect("scripts on");

    // The CSV link downloads a file: BOM, a header and one row per member.
    tab.goto(&url).await.expect("the page again");
    let downloads = tempfile::tempdir().expect("download dir");
    browser
        .allow_downloads(downloads.path())
        .await
        .expect("downloads allowed");
    tab.eval("document.querySelector('a[download]').click()")
        .await
        .expect("click");
    let file = downloads.path().join("readbot-notice.csv");
    let done = cdp::wait_for(LIMIT, || {
        browser
            .events("Browser.downloadProgress")
            .iter()
            .any(|e| e["params"]["state"] == "completed")
            .then_some(())
    })
    .await;
    assert!(done.is_some(), "the download completed");
    let bytes = std::fs::read(&file).expect("the downloaded CSV");
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 BOM");
    let text = String::from_utf8(bytes[3..].to_vec()).expect("UTF-8");
    let rows: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows[0], "userId,name,read,readTime,source");
    assert_eq!(rows.len(), 1 + MEMBERS);
    assert_eq!(
        rows.iter().filter(|r| r.contains(",true,")).count(),
        READERS
    );
}

/// A 30-member sample for the README's screenshots (full page, 375 and
/// 1280 px wide).
async fn sample_screenshots(app: &TestApp, browser: &Browser) {
    const NAMES: [&str; 30] = [
        "Alice Chen",
        "Bo Wang",
        "Carmen Li",
        "David Zhao",
        "Emma Liu",
        "Feng Sun",
        "Grace Zhou",
        "Hao Wu",
        "Iris Xu",
        "Jun Ma",
        "Kai Hu",
        "Lena Guo",
        "Ming He",
        "Nora Lin",
        "Oscar Luo",
        "Ping Gao",
        "Qing Zheng",
        "Rui Liang",
        "Sara Song",
        "Tao Xie",
        "Uma Tang",
        "Victor Han",
        "Wen Feng",
        "Xin Deng",
        "Yan Cao",
        "Zoe Peng",
        "Ada Zeng",
        "Ben Xiao",
        "Cleo Tian",
        "Dan Dong",
    ];
    let people: Vec<(String, String)> = NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("user{:04}", i + 1), n.to_string()))
        .collect();
    add_group(&app.fake, SAMPLE_GROUP, GroupKind::Inner, &people);
    let key = app
        .notice(SAMPLE_GROUP, "Office closed on Monday", "user0001")
        .await;
    // 26 of 30 read within 3 h, most of them early.
    let start = now_ms();
    let minutes = [
        1, 2, 2, 3, 4, 5, 6, 8, 9, 11, 13, 15, 18, 22, 26, 30, 35, 41, 48, 55, 66, 80, 95, 120,
        150, 180,
    ];
    let reads: Vec<(String, i64)> = people
        .iter()
        .zip(minutes)
        .map(|((id, _), m)| (id.clone(), start + m * 60_000))
        .collect();
    read_with_times(&app.fake, &key, &reads).await;
    let path = app.mint_notice_link(&key, PUBLIC).await;
    let tab = browser.new_tab().await.expect("a tab");
    tab.viewport(375, 812).await.expect("viewport");
    tab.goto(&format!("{}{path}", app.addr))
        .await
        .expect("the sample loads");
    no_sideways_scroll(&tab, 375).await;
    let docs = docs_screenshots();
    screenshot(&tab, "notice-375.png", true, docs.as_deref()).await;
    tab.viewport(1280, 900).await.expect("viewport");
    screenshot(&tab, "notice-1280.png", true, docs.as_deref()).await;
}

/// The page is no wider than the viewport (no sideways scrolling).
async fn no_sideways_scroll(tab: &Tab<'_>, width: u32) {
    let w = tab
        .eval("document.documentElement.scrollWidth")
        .await
        .expect("width");
    assert!(
        w.as_u64().is_some_and(|w| w <= u64::from(width)),
        "page is {w} px wide at {width} px"
    );
}

/// `users` read `key` at the given times: the read query shows them and
/// each read event goes through the gateway with its time; returns once
/// readbot acknowledged every event.
async fn read_with_times(fake: &FakeDingTalk, key: &str, users: &[(String, i64)]) {
    let ids: Vec<&str> = users.iter().map(|(u, _)| u.as_str()).collect();
    fake.mark_read(key, &ids);
    let pushed: Vec<String> = users
        .iter()
        .map(|(u, at)| {
            fake.push_read_event(key, Some(u), *at, &format!("ev-{key}-{u}"))
                .expect("connection up")
                .message_id
        })
        .collect();
    let acked = fake
        .wait_until(LIMIT, |f| {
            pushed.iter().all(|id| !f.acks_for(id).is_empty())
        })
        .await;
    assert!(acked, "readbot acknowledged every read event");
}

/// `target/screenshots/` (or `$CARGO_TARGET_DIR/screenshots/`).
fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| root.join(t))
        .unwrap_or_else(|| root.join("target"));
    target.join("screenshots")
}

/// `docs/screenshots/` when `READBOT_UPDATE_SCREENSHOTS=1`.
fn docs_screenshots() -> Option<PathBuf> {
    std::env::var("READBOT_UPDATE_SCREENSHOTS")
        .is_ok_and(|v| v == "1")
        .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots"))
}

/// Writes a PNG of the tab to the screenshot folder (and to `also`).
async fn screenshot(tab: &Tab<'_>, name: &str, full: bool, also: Option<&Path>) {
    let png = tab.screenshot(full).await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    for dir in std::iter::once(screenshot_dir()).chain(also.map(Path::to_path_buf)) {
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        std::fs::write(dir.join(name), &png).expect("screenshot written");
    }
}
