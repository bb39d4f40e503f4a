//! The first hour of a new user: the `id` chat command, `check` in Stream
//! mode, the interactive sandbox, and the start-up warning of `serve`
//! without an API token.

use crate::cli::{dingtalk_env, readbot, with};
use crate::helpers::*;
use readbot::fake::{Api, Fault, GroupKind};

const GROUP: &str = "cidFirstHour+Group/==";

#[tokio::test]
async fn id_command_replies_with_the_group_the_asker_and_the_robot_code() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let robot = app.fake.config().robot_code.clone();

    let body = app.mention("m-id-en", GROUP, "user0002", "id");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let en = app.one_reply(GROUP).await;
    for part in [GROUP, "user0002", robot.as_str(), "openConversationId"] {
        assert!(en.contains(part), "{part} missing from {en}");
    }

    let body = app.mention("m-id-zh", GROUP, "user0003", "我的id");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let replies = app.wait_replies(GROUP, 2).await;
    assert_eq!(replies.len(), 2, "{replies:#?}");
    let zh = &replies[1].text;
    assert!(zh.contains("本群") && zh.contains(GROUP), "{zh}");
    assert!(
        zh.contains("user0003") && zh.contains(robot.as_str()),
        "{zh}"
    );

    // And help lists it.
    let body = app.mention("m-id-help", GROUP, "user0002", "help");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    let replies = app.wait_replies(GROUP, 3).await;
    assert!(replies[2].text.contains("**id**"), "{:?}", replies[2].text);
}

#[tokio::test]
async fn check_in_stream_mode_opens_a_gateway_connection_and_prints_the_stream_steps() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let env = with(
        dingtalk_env(&fake, &tmp.path().join("data")),
        "READBOT_MODE",
        "stream",
    );
    let r = readbot(&["check"], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let opens = fake.stream_opens();
    assert_eq!(opens.len(), 1, "one open-connection call: {opens:?}");
    assert!(
        opens[0]
            .subscriptions
            .iter()
            .any(|(t, topic)| t == "CALLBACK" && topic == "/v1.0/im/bot/messages/get"),
        "{opens:?}"
    );
    assert!(
        !r.stdout.contains(&opens[0].ticket) && !r.stderr.contains(&opens[0].ticket),
        "the ticket is never printed: {r:?}"
    );
    assert!(
        fake.stream_connections().is_empty(),
        "check opens no WebSocket"
    );
    assert!(
        r.stdout
            .contains("subscription to bot messages (/v1.0/im/bot/messages/get) accepted"),
        "{r:?}"
    );
    assert!(r.stdout.contains("Stream 模式"), "{r:?}");
    assert!(!r.stdout.contains("/dingtalk/callback"), "{r:?}");
    assert!(!r.stdout.contains(&fake.config().app_secret), "{r:?}");

    // A wrong secret: one sentence naming the settings, exit 1.
    let bad = with(env.clone(), "DINGTALK_APP_SECRET", "not-the-secret");
    let r = readbot(&["check"], &bad, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("the Stream gateway rejected the app key or secret"),
        "{r:?}"
    );
    assert!(r.stderr.contains("DINGTALK_APP_SECRET"), "{r:?}");

    // The gateway refuses the subscriptions.
    fake.inject(
        Api::GatewayOpen,
        Fault::status(
            400,
            "invalidParameter.subscriptions.invalid",
            "subscriptions is invalid",
        ),
        1,
    );
    let r = readbot(&["check"], &env, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("the Stream gateway refused the subscription to bot messages"),
        "{r:?}"
    );

    // In HTTP mode (the default) the callback URL is printed and no open call is made.
    let before = fake.stream_opens().len();
    let http = with(env, "READBOT_MODE", "http");
    let r = readbot(&["check"], &http, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("https://readbot.example.com/dingtalk/callback"),
        "{r:?}"
    );
    assert_eq!(fake.stream_opens().len(), before);
}

/// The log lines of `readbot serve` up to "readbot listening"; then SIGTERM.
async fn serve_start_log(env: &[(&'static str, String)]) -> Vec<String> {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_readbot"))
        .arg("serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.expect("read log") {
            let done = line.contains("readbot listening");
            seen.push(line);
            if done {
                return;
            }
        }
        panic!("serve exited before listening: {seen:?}");
    })
    .await
    .expect("serve listens in time");
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let drain = async { while let Ok(Some(_)) = lines.next_line().await {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(90), drain).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await;
    seen
}

#[tokio::test]
async fn serve_warns_at_start_when_the_send_api_is_off() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let env = with(
        with(
            dingtalk_env(&fake, &tmp.path().join("data")),
            "READBOT_LISTEN",
            "127.0.0.1:0",
        ),
        "READBOT_LOG_FORMAT",
        "json",
    );
    let warned = |log: &[String]| {
        log.iter().any(|l| {
            l.contains("WARN") && l.contains("READBOT_API_TOKEN is not set: the send API is off")
        })
    };
    let log = serve_start_log(&env).await;
    assert!(warned(&log), "{log:#?}");

    let with_token = with(env, "READBOT_API_TOKEN", "a-long-enough-api-token-123");
    let log = serve_start_log(&with_token).await;
    assert!(!warned(&log), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("readbot listening")));
}

/// `readbot sandbox` on a free port and a temporary data folder, fed `stdin`.
async fn sandbox(stdin: &str, data: &std::path::Path) -> crate::cli::Run {
    let data = data.display().to_string();
    readbot(
        &["sandbox", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[],
        Some(stdin),
    )
    .await
}

#[tokio::test]
async fn sandbox_line_mode_answers_a_piped_question_in_chinese() {
    let tmp = tempfile::tempdir().expect("tmp");
    let r = sandbox("谁没读？\n/quit\n", &tmp.path().join("sb")).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("panicked"), "{r:?}");
    // The set-up lines for the CLI and for signing callbacks.
    assert!(
        r.stdout.contains("export READBOT_URL=http://127.0.0.1:"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(&format!(
            "export READBOT_API_TOKEN={}",
            readbot::sandbox::SANDBOX_TOKEN
        )),
        "{r:?}"
    );
    let secret = readbot::fake::FakeConfig::default().app_secret;
    assert!(r.stdout.contains(&secret), "{r:?}");
    // The piped question is answered after the demo, in Chinese.
    let (_, chat) = r
        .stdout
        .split_once("张伟 (user001): @readbot 谁没读？")
        .unwrap_or_else(|| panic!("the question is echoed: {r:?}"));
    assert!(chat.contains("已读情况"), "{chat}");
    assert!(chat.contains("**已读：28/40（70%）**"), "{chat}");
    assert!(chat.contains("未读（12）"), "{chat}");
    assert!(chat.contains("曾乐"), "{chat}");
}

#[tokio::test]
async fn sandbox_line_mode_switches_members_sends_reads_and_stops_at_end_of_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let script =
        "/as 王芳\n/send 周会通知 | 明天十点开会\n/read 3\n谁没读？\nid\n/members\n/bogus\n/read\n";
    let r = sandbox(script, &tmp.path().join("sb")).await;
    assert_eq!(r.code, 0, "end of input stops cleanly: {r:?}");
    let (_, chat) = r.stdout.split_once("/quit").expect("help is printed");
    assert!(chat.contains("now speaking as 王芳 (user002)"), "{chat}");
    // The notice went through the send API and reached the group.
    assert!(
        chat.contains("王芳 sent a notice through POST /api/v1/notices"),
        "{chat}"
    );
    assert!(chat.contains("notice in the group: 周会通知"), "{chat}");
    assert!(chat.contains("明天十点开会"), "{chat}");
    assert!(
        chat.contains("3 more read the newest notice (张伟, 王芳, 李娜); now 3 of 40"),
        "{chat}"
    );
    // 王芳's own last notice is the one summarised, with the fresh reads.
    let (_, summary) = chat
        .split_once("王芳 (user002): @readbot 谁没读？")
        .expect("question echoed");
    assert!(summary.contains("周会通知"), "{summary}");
    assert!(summary.contains("**已读：3/40"), "{summary}");
    let (_, ids) = summary
        .split_once("王芳 (user002): @readbot id")
        .expect("id echoed");
    assert!(ids.contains(readbot::sandbox::DEMO_GROUP), "{ids}");
    assert!(ids.contains("you (userId): user002"), "{ids}");
    assert!(ids.contains("* user002  王芳  read"), "{ids}");
    assert!(ids.contains("  user004  刘洋  unread"), "{ids}");
    assert!(ids.contains("unknown command /bogus"), "{ids}");
    assert!(ids.contains("usage: /read <n>"), "{ids}");
}

#[tokio::test]
async fn sandbox_once_stops_cleanly_when_its_reader_goes_away() {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("sb").display().to_string();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_readbot"))
        .args([
            "sandbox",
            "--once",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
        ])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sandbox starts");
    // Like `| head -2`: read two lines, then close the pipe.
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for _ in 0..2 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(90), lines.next_line())
            .await
            .expect("a line in time")
            .expect("read");
        assert!(line.is_some());
    }
    drop(lines);
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the sandbox stops in time")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The README's signed-curl recipe matches the sandbox (secret, group) and,
/// where openssl exists, its shell one-liner computes DingTalk's signature.
#[test]
fn readme_signed_curl_matches_the_sandbox_and_the_signature_rule() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let secret = readbot::fake::FakeConfig::default().app_secret;
    assert!(
        readme.contains(&format!("secret={secret} ")),
        "README secret"
    );
    assert!(
        readme.contains(&format!(
            "\"conversationId\":\"{}\"",
            readbot::sandbox::DEMO_GROUP
        )),
        "README group"
    );
    let line = readme
        .lines()
        .find(|l| l.starts_with("sign=$(printf"))
        .expect("the sign line");
    let pipeline = line
        .trim_start_matches("sign=$(")
        .split(")  ")
        .next()
        .expect("pipeline")
        .trim_end_matches(')');
    let has_openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_openssl {
        eprintln!("openssl not found: the README's sign pipeline is not run");
        return;
    }
    let ts = "1577262236757";
    let out = std::process::Command::new("sh")
        .args(["-c", pipeline])
        .env("ts", ts)
        .env("secret", &secret)
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        readbot::fake::FakeDingTalk::sign(ts, &secret),
        "README pipeline: {pipeline}"
    );
}
