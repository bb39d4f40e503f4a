//! The `readbot` binary itself: every subcommand, run as a child process
//! against the fake DingTalk and an in-process readbot. The child gets a
//! cleared environment, so nothing from the developer's shell leaks in.

use crate::helpers::*;
use readbot::fake::{Api, FakeDingTalk, Fault, GroupKind};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_readbot");
/// Upper bound so a hung child fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(90);

pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub(crate) async fn readbot(args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> Run {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("readbot binary starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("readbot finished in time")
        .expect("readbot output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Environment for `check` / `serve` against `fake`.
pub(crate) fn dingtalk_env(fake: &FakeDingTalk, data_dir: &Path) -> Vec<(&'static str, String)> {
    let mut env = fake.readbot_env();
    env.extend([
        ("DINGTALK_TIMEOUT_SECS", "2".into()),
        ("DINGTALK_DEADLINE_SECS", "8".into()),
        ("READBOT_DATA_DIR", data_dir.display().to_string()),
        ("READBOT_PUBLIC_URL", "https://readbot.example.com".into()),
    ]);
    env
}

pub(crate) fn with(
    mut env: Vec<(&'static str, String)>,
    k: &'static str,
    v: &str,
) -> Vec<(&'static str, String)> {
    env.retain(|(key, _)| *key != k);
    env.push((k, v.to_string()));
    env
}

fn one_line(s: &str) -> &str {
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got {s:?}");
    lines[0]
}

#[tokio::test]
async fn every_subcommand_has_help_and_usage_errors_exit_2() {
    for sub in [
        "serve", "sandbox", "check", "send", "receipts", "notices", "render", "health", "remind",
        "recall", "link",
    ] {
        let r = readbot(&[sub, "--help"], &[], None).await;
        assert_eq!(r.code, 0, "{sub}: {r:?}");
        assert!(
            r.stdout.contains(&format!("Usage: readbot {sub}")),
            "{sub}: {r:?}"
        );
    }
    let r = readbot(&["--help"], &[], None).await;
    assert_eq!(r.code, 0);
    for sub in ["check", "send", "receipts", "notices", "render"] {
        assert!(r.stdout.contains(sub), "{r:?}");
    }
    assert_eq!(readbot(&[], &[], None).await.code, 2);
    assert_eq!(readbot(&["frobnicate"], &[], None).await.code, 2);
    assert_eq!(readbot(&["receipts"], &[], None).await.code, 2);
}

#[tokio::test]
async fn check_passes_and_prints_callback_url_and_permissions() {
    let fake = start_fake().await;
    let people = members(5);
    add_group(
        &fake,
        "cidCheckScene+/==",
        GroupKind::Scene {
            cool_app_code: None,
        },
        &people,
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let env = dingtalk_env(&fake, &tmp.path().join("data"));
    let r = readbot(
        &[
            "check",
            "--group",
            "cidCheckScene+/==",
            "--user",
            "user0001",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    for want in [
        "access token obtained",
        "callback URL: https://readbot.example.com/dingtalk/callback",
        "read-status API answers",
        "member list scene_group: 5 member(s)",
        "name look-up (topapi/v2/user/get): user0001 is Member 0001",
        "qyapi_robot_sendmsg",
        "qyapi_chat_manage",
        "qyapi_get_member",
        "No problems found",
    ] {
        assert!(r.stdout.contains(want), "missing {want:?}: {r:?}");
    }
    // inner_group does not work for a scene group: a warning, not a problem.
    assert!(
        r.stdout.contains("member list inner_group: not usable"),
        "{r:?}"
    );
    assert!(!r.stdout.contains(&fake.config().app_secret));
    assert!(fake.calls(Api::Send) == 0, "check must not send anything");
}

#[tokio::test]
async fn check_reports_a_wrong_secret_plainly() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let env = with(
        dingtalk_env(&fake, &tmp.path().join("data")),
        "DINGTALK_APP_SECRET",
        "wrong-secret-value-42",
    );
    let r = readbot(&["check", "--group", "cidWhatever=="], &env, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    let line = one_line(&r.stderr);
    assert!(
        line.starts_with("readbot: check found a problem:"),
        "{line}"
    );
    assert!(line.contains("invalidClientIdOrSecret"), "{line}");
    assert!(line.contains("DINGTALK_APP_SECRET"), "{line}");
    assert!(r.stdout.contains("FAIL"), "{r:?}");
    assert!(r.stdout.contains("group checks skipped"), "{r:?}");
    assert!(
        !r.stdout.contains("wrong-secret-value-42") && !r.stderr.contains("wrong-secret-value-42")
    );
}

#[tokio::test]
async fn check_reports_missing_permissions_plainly() {
    let fake = start_fake().await;
    add_group(
        &fake,
        "cidNoPerm==",
        GroupKind::Scene {
            cool_app_code: None,
        },
        &members(3),
    );
    let denied = || {
        Fault::status(
            403,
            "Forbidden.AccessDenied.AccessTokenPermissionDenied",
            "没有调用该接口的权限",
        )
    };
    fake.inject(Api::SceneMembers, denied(), 1);
    fake.inject(Api::Query, denied(), 1);
    let tmp = tempfile::tempdir().expect("tmp");
    let env = dingtalk_env(&fake, &tmp.path().join("data"));
    let r = readbot(&["check", "-g", "cidNoPerm=="], &env, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    let line = one_line(&r.stderr);
    assert!(
        line.starts_with("readbot: check found 2 problems:"),
        "{line}"
    );
    assert!(
        line.contains("Forbidden.AccessDenied.AccessTokenPermissionDenied"),
        "{line}"
    );
    assert!(line.contains("grant qyapi_chat_manage"), "{line}");
    assert!(line.contains("grant qyapi_robot_sendmsg"), "{line}");
    assert!(r.stdout.contains("2 problems found."), "{r:?}");
}

#[tokio::test]
async fn check_and_serve_report_configuration_errors_with_exit_2() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let env: Vec<_> = dingtalk_env(&fake, &tmp.path().join("data"))
        .into_iter()
        .filter(|(k, _)| *k != "DINGTALK_APP_KEY")
        .collect();
    for args in [&["check"][..], &["serve"][..]] {
        let r = readbot(args, &env, None).await;
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        let line = one_line(&r.stderr);
        assert!(line.contains("DINGTALK_APP_KEY is required"), "{line}");
    }
    let r = readbot(
        &["check"],
        &with(env.clone(), "DINGTALK_APP_KEY", "k"),
        None,
    )
    .await;
    assert_ne!(r.code, 2, "a complete config is no usage error: {r:?}");
    let bad = with(
        with(env, "DINGTALK_APP_KEY", "k"),
        "READBOT_LISTEN",
        "not-an-address",
    );
    let r = readbot(&["check"], &bad, None).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(one_line(&r.stderr).contains("READBOT_LISTEN"), "{r:?}");
}

pub(crate) fn client_env(app: &TestApp) -> Vec<(&'static str, String)> {
    vec![
        ("READBOT_URL", app.addr.clone()),
        ("READBOT_API_TOKEN", API_TOKEN.to_string()),
    ]
}

#[tokio::test]
async fn send_receipts_and_notices_round_trip() {
    let app = spawn_app().await;
    const G: &str = "cidCliGroup+/==";
    add_group(&app.fake, G, GroupKind::Inner, &members(4));
    let env = client_env(&app);

    let r = readbot(
        &["send", "--group", G, "--author", "user0001"],
        &env,
        Some("### Fire drill\nFriday 10:00, everyone outside."),
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let key = r.stdout.trim().to_string();
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    let seen = app.fake.group_view(G);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].title.as_deref(), Some("Fire drill"));
    assert_eq!(seen[0].process_query_key.as_deref(), Some(key.as_str()));
    app.fake.mark_read(&key, &["user0002"]);

    let r = readbot(&["receipts", &key], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("Fire drill\n"), "{r:?}");
    assert!(
        r.stdout.contains("read:    1 of 4 (25%), unread: 3"),
        "{r:?}"
    );
    assert!(r.stdout.contains("inner_group (complete)"), "{r:?}");
    assert!(r.stdout.contains("Member 0002"), "{r:?}");
    let unread = r.stdout.find("unread  user0001").expect("unread row");
    let read = r.stdout.find("read    user0002").expect("read row");
    assert!(unread < read, "{r:?}");

    let r = readbot(&["receipts", &key, "--json"], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["readCount"], 1);
    assert_eq!(v["processQueryKey"], key.as_str());

    // A second notice from a file, as plain text with an explicit title.
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("notice.txt");
    std::fs::write(&file, "Lunch is at noon.").expect("write");
    let r = readbot(
        &[
            "send",
            "-g",
            G,
            "--file",
            &file.display().to_string(),
            "--format",
            "text",
            "--title",
            "Lunch",
            "--json",
        ],
        &env,
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).expect("json");
    let key2 = v["processQueryKey"].as_str().expect("key").to_string();

    let r = readbot(&["notices", "--group", G], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert!(lines[0].starts_with("SENT AT"), "{r:?}");
    assert!(
        lines[1].contains("Lunch") && lines[1].contains(&key2),
        "{r:?}"
    );
    assert!(
        lines[2].contains("Fire drill") && lines[2].contains("user0001"),
        "{r:?}"
    );

    let r = readbot(&["notices", "-g", G, "--limit", "1", "--json"], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let v: Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["notices"].as_array().map(Vec::len), Some(1));

    // Remind the unread of the first notice by direct message, then recall it.
    app.fake.set_flow_controlled(&["user0004"]);
    let r = readbot(&["remind", &key], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .starts_with("direct message sent to 2 of 3 unread members\n"),
        "{r:?}"
    );
    assert!(r.stdout.contains("flow_controlled  user0004"), "{r:?}");
    assert_eq!(app.fake.direct_batches().len(), 1);
    let r = readbot(&["remind", &key], &env, None).await;
    assert_eq!(r.code, 1, "cooldown: {r:?}");
    assert!(
        one_line(&r.stderr).contains("429 Too Many Requests: cooldown"),
        "{r:?}"
    );
    let r = readbot(&["recall", &key], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("recalled at 20"), "{r:?}");
    assert_eq!(app.fake.send_status(&key).as_deref(), Some("RECALLED"));
    app.stop().await;
}

#[tokio::test]
async fn client_errors_are_one_line_with_conventional_exit_codes() {
    let app = spawn_app().await;
    let env = client_env(&app);

    // Wrong token: readbot says 401; the hint names the variable.
    let r = readbot(
        &["notices", "-g", "cid=="],
        &with(env.clone(), "READBOT_API_TOKEN", "wrong-token-0123456789"),
        None,
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    let line = one_line(&r.stderr);
    assert!(
        line.contains("401") && line.contains("READBOT_API_TOKEN"),
        "{line}"
    );

    // No token at all: usage error, nothing attempted.
    let r = readbot(
        &["notices", "-g", "cid=="],
        &[("READBOT_URL", app.addr.clone())],
        None,
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(one_line(&r.stderr).contains("READBOT_API_TOKEN is not set"));

    // Unknown key: readbot's 404, verbatim.
    let r = readbot(&["receipts", "no+such/key="], &env, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(one_line(&r.stderr).contains("404"), "{r:?}");

    // DingTalk refuses the send: readbot's 502 with DingTalk's code.
    let r = readbot(&["send", "-g", "cidUnknown=="], &env, Some("# Hi\nthere")).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(one_line(&r.stderr).contains("502"), "{r:?}");

    // Empty text, and a markdown notice without a title.
    let r = readbot(&["send", "-g", "cid=="], &env, Some("  \n")).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(one_line(&r.stderr).contains("empty"));

    // Nobody listening.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let r = readbot(
        &["notices", "-g", "cid=="],
        &with(
            env.clone(),
            "READBOT_URL",
            &format!("http://127.0.0.1:{closed}"),
        ),
        None,
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    let line = one_line(&r.stderr);
    assert!(
        line.contains("cannot reach readbot at http://127.0.0.1"),
        "{line}"
    );
    assert!(!line.contains(API_TOKEN));

    // Without --url: READBOT_LISTEN decides where to dial.
    let port = app.addr.rsplit(':').next().expect("port").to_string();
    let r = readbot(
        &["health"],
        &[("READBOT_LISTEN", format!("0.0.0.0:{port}"))],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "healthz: ok");
    app.stop().await;
}

#[tokio::test]
async fn render_previews_templates_and_names_the_broken_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let zh = root.join("templates/summary.zh.md.j2");
    let r = readbot(
        &[
            "render",
            "--template",
            &zh.display().to_string(),
            "--sample",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("summary sample 1/4"), "{r:?}");
    assert!(r.stdout.contains("summary sample 4/4"), "{r:?}");
    assert!(r.stdout.contains("Fire drill on Friday"), "{r:?}");
    assert!(r.stdout.contains("已读"), "{r:?}");

    let tmp = tempfile::tempdir().expect("tmp");
    let broken = tmp.path().join("list.en.md.j2");
    std::fs::write(
        &broken,
        "Notices:\n{% for n in notices %}{{ n.titel }}{% endfor %}\n",
    )
    .expect("write");
    let r = readbot(
        &["render", "-t", &broken.display().to_string(), "--sample"],
        &[],
        None,
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    let line = one_line(&r.stderr);
    assert!(
        line.contains("list.en.md.j2") && line.contains(":2"),
        "{line}"
    );
    // The undefined variable is named.
    assert!(line.contains("undefined variable \"n.titel\""), "{line}");

    let odd = tmp.path().join("mine.j2");
    std::fs::write(&odd, "{{ message }}").expect("write");
    let r = readbot(
        &["render", "-t", &odd.display().to_string(), "--sample"],
        &[],
        None,
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    let r = readbot(
        &[
            "render",
            "-t",
            &odd.display().to_string(),
            "--sample",
            "--kind",
            "error",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("DingTalk did not answer"), "{r:?}");

    let data = tmp.path().join("ctx.json");
    std::fs::write(&data, r#"{"message": "custom sentence"}"#).expect("write");
    let r = readbot(
        &[
            "render",
            "-t",
            &odd.display().to_string(),
            "--data",
            &data.display().to_string(),
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "custom sentence");
    // --sample or --data is required.
    let r = readbot(&["render", "-t", &odd.display().to_string()], &[], None).await;
    assert_eq!(r.code, 2, "{r:?}");
}

/// The real binary serving: JSON logs, health, readiness, metrics, a second
/// instance refused on the same data folder, graceful SIGTERM.
#[tokio::test]
async fn serve_binary_logs_json_answers_probes_and_refuses_a_locked_store() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let env = with(
        with(dingtalk_env(&fake, &data), "READBOT_LISTEN", "127.0.0.1:0"),
        "READBOT_LOG_FORMAT",
        "json",
    );
    let mut child = tokio::process::Command::new(BIN)
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
    let addr = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("read log") {
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            assert!(v["level"].is_string(), "{line}");
            if v["fields"]["message"] == "readbot listening" {
                return v["fields"]["addr"].as_str().expect("addr").to_string();
            }
        }
        panic!("serve exited before listening");
    })
    .await
    .expect("serve listens in time");
    // Keep draining the log so the child never blocks on a full pipe.
    let drain = tokio::spawn(async move {
        let mut rest = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });
    let url = format!("http://{addr}");

    let r = readbot(&["health", "--url", &url], &[], None).await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = readbot(&["health", "--ready", "--url", &url], &[], None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), "readyz: ok");
    let metrics = http_client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("readbot_build_info{version=\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("readbot_dingtalk_token_refreshes_total{outcome=\"ok\"} 1"),
        "{metrics}"
    );

    // A second readbot on the same folder cannot open the store: it exits
    // with one clear line naming the folder.
    let second = readbot(
        &["serve"],
        &with(env.clone(), "READBOT_LOG_FORMAT", "human"),
        None,
    )
    .await;
    assert_eq!(second.code, 1, "{second:?}");
    let line = second
        .stderr
        .lines()
        .find(|l| l.starts_with("readbot: "))
        .expect("error line");
    assert!(line.contains("cannot open the store in folder"), "{line}");
    assert!(line.contains(&data.display().to_string()), "{line}");
    assert!(line.contains("another readbot"), "{line}");
    // The first one is unaffected.
    let r = readbot(&["health", "--ready", "--url", &url], &[], None).await;
    assert_eq!(r.code, 0, "{r:?}");

    // SIGTERM: graceful shutdown, exit 0.
    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("serve stops in time")
        .expect("status");
    assert_eq!(status.code(), Some(0));
    let rest = drain.await.expect("drain");
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}

#[tokio::test]
async fn check_fails_when_dingtalk_refuses_the_group_id() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let env = dingtalk_env(&fake, &tmp.path().join("data"));
    for args in [
        &["check", "--group", "cidNoSuchGroup=="][..],
        &["check", "--group", "cidNoSuchGroup==", "--user", "user0001"][..],
    ] {
        let r = readbot(args, &env, None).await;
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        let line = one_line(&r.stderr);
        assert!(
            line.starts_with("readbot: check found a problem:"),
            "one problem, however many APIs refuse the group: {line}"
        );
        assert!(
            line.contains("cidNoSuchGroup== is not a valid group id"),
            "{line}"
        );
        assert!(line.contains("--group"), "{line}");
        assert!(r.stdout.contains("FAIL"), "{r:?}");
        assert!(r.stdout.contains("1 problem found."), "{r:?}");
    }
    assert_eq!(fake.calls(Api::Send), 0, "check must not send anything");
}

#[tokio::test]
async fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let env = with(
        dingtalk_env(&fake, &tmp.path().join("data")),
        "RUST_LOG",
        "debug",
    );
    let r = readbot(&["check"], &env, None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.lines().count() > 1,
        "debug logs expected on stderr: {r:?}"
    );
    assert!(
        !r.stderr.contains('\u{1b}'),
        "no ANSI escape codes in piped logs: {r:?}"
    );
}

/// A taken listen address stops `serve` with exit 1 and one line that says
/// "address already in use" once (the cause is not repeated by the chain).
#[tokio::test]
async fn serve_on_a_taken_address_says_so_once() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let env = with(
        dingtalk_env(&fake, &tmp.path().join("data")),
        "READBOT_LISTEN",
        &addr,
    );
    let r = readbot(&["serve"], &env, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("readbot: "))
        .unwrap_or_else(|| panic!("no error line: {r:?}"));
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert_eq!(
        r.stderr
            .to_lowercase()
            .matches("address already in use")
            .count(),
        1,
        "{r:?}"
    );
    drop(taken);
}

#[tokio::test]
async fn store_copy_moves_an_installation_that_then_answers_from_the_new_store() {
    const GROUP: &str = "cidCopyGroup";
    let tmp = tempfile::tempdir().expect("tmp");
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    let app = spawn_on(start_fake().await, &old, &[]).await;
    let people = members(4);
    add_group(&app.fake, GROUP, GroupKind::Inner, &people);
    let key = app.notice(GROUP, "Fire drill", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    let asked = app.mention("m-before-copy", GROUP, "user0001", "who read?");
    assert_eq!(app.post_callback_signed(&asked).await.status(), 200);
    assert!(app.one_reply(GROUP).await.contains("1/4"));
    let (from, to) = (old.to_str().expect("path"), new.to_str().expect("path"));
    // readbot holds its folder while it runs: the copy is refused.
    let running = readbot(&["store", "copy", "--from", from, "--to", to], &[], None).await;
    assert_eq!(running.code, 1, "{running:?}");
    assert!(running.stderr.contains("still running"), "{running:?}");
    let (fake, _) = app.stop().await;

    let r = readbot(&["store", "copy", "--from", from, "--to", to], &[], None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("-> "), "{r:?}");
    let row = |kind: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(kind))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {kind} row in {r:?}"))
    };
    assert_eq!(row("notices"), 1);
    assert_eq!(row("de-dup marks"), 1);
    assert!(
        r.stdout.contains("skipped (expired): 0 de-dup marks"),
        "{r:?}"
    );

    // The same folder twice, or no data folder, is a usage error.
    let same = readbot(
        &[
            "store",
            "copy",
            "--from",
            old.to_str().expect("path"),
            "--to",
            old.to_str().expect("path"),
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(same.code, 2, "{same:?}");
    assert!(same.stderr.contains("same folder"), "{same:?}");
    let nothing = readbot(
        &[
            "store",
            "copy",
            "--from",
            tmp.path().join("nope").to_str().expect("path"),
            "--to",
            "x",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(nothing.code, 2, "{nothing:?}");

    // Served from the copy: the notice recorded before is summarised, and the
    // message answered before is not answered again.
    let app = spawn_on(fake, &new, &[]).await;
    app.keys.lock().expect("keys").insert(key);
    app.fake.mark_read(
        &app.keys
            .lock()
            .expect("keys")
            .iter()
            .next()
            .expect("key")
            .clone(),
        &["user0003"],
    );
    assert_eq!(app.post_callback_signed(&asked).await.status(), 200);
    let ask = app.mention("m-after-copy", GROUP, "user0001", "who read?");
    assert_eq!(app.post_callback_signed(&ask).await.status(), 200);
    let replies = app.wait_replies(GROUP, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies_now = app.replies(GROUP);
    assert_eq!(
        replies_now.len(),
        2,
        "one reply before, one after: {replies:#?}"
    );
    assert!(
        replies_now[1].text.contains("Fire drill"),
        "{replies_now:#?}"
    );
    assert!(replies_now[1].text.contains("2/4"), "{replies_now:#?}");
    app.stop().await;
}

/// Replicas need a shared store: READBOT_REPLICAS above 1 on sled is a
/// problem `check` names (each replica would answer from its own folder).
#[tokio::test]
async fn check_refuses_replicas_on_a_sled_store() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tmp");
    let env = with(
        dingtalk_env(&fake, &tmp.path().join("data")),
        "READBOT_REPLICAS",
        "2",
    );
    let r = readbot(&["check"], &env, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("READBOT_REPLICAS is 2, but the store is sled in one folder"),
        "{r:?}"
    );
    assert!(r.stdout.contains("READBOT_STORE_URL"), "{r:?}");
}
