//! Graceful shutdown: on the signal readbot stops accepting callbacks, lets
//! the summaries in flight finish (bounded), flushes sled and exits 0 — in
//! process, and for the real binary on SIGTERM.

use crate::helpers::*;
use crate::reliability::report;
use readbot::domain::{MsgId, ProcessQueryKey};
use readbot::fake::{Api, FakeDingTalk, Fault, GroupKind};
use readbot::store::Claim;
use readbot::store::StoreConfig;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GROUP: &str = "cidShutdown==";

/// Waits (bounded) until the fake has seen `n` calls to `api`.
async fn wait_calls(fake: &FakeDingTalk, api: Api, n: usize) {
    for _ in 0..400 {
        if fake.calls(api) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{api:?} was not called");
}

async fn assert_durable(dir: &std::path::Path, msg_id: &str, key: &str) {
    let store = readbot::store::open(&StoreConfig::sled(dir))
        .await
        .expect("store reopens after shutdown");
    let id = MsgId::parse(msg_id).expect("id");
    assert_eq!(
        store.claim_message(&id, now_ms()).await.unwrap(),
        Claim::Done,
        "the finished summary's mark was not flushed"
    );
    let key = ProcessQueryKey::parse(key).expect("key");
    assert!(store.notice(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn shutdown_refuses_new_callbacks_and_finishes_summaries_in_flight() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let key = app.notice(GROUP, "Closing time", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    app.fake.reset_calls();
    // The summary will be in flight for 1.5 s.
    app.fake
        .inject(Api::Query, Fault::Hang(Duration::from_millis(1500)), 1);
    let body = app.mention("sd-1", GROUP, "user0001", "who read");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    wait_calls(&app.fake, Api::Query, 1).await;
    assert_eq!(app.bot.in_flight(), 1);

    let (fake, addr, dir, secret) = (
        app.fake.clone(),
        app.addr.clone(),
        app.data_dir.clone(),
        app.fake.config().app_secret.clone(),
    );
    let bot = app.bot.clone();
    let stopping = tokio::spawn(app.stop());
    // Once the signal is in, new callbacks are refused (no listener, or 503).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = fake.mention_body(&readbot::fake::Mention::new(
        GROUP, "user0002", "n", "who read",
    ));
    let ts = now_ms().to_string();
    let r = http_client()
        .post(format!("{addr}/dingtalk/callback"))
        .header("timestamp", &ts)
        .header("sign", FakeDingTalk::sign(&ts, &secret))
        .json(&late)
        .send()
        .await;
    match r {
        Err(_) => {}
        Ok(r) => assert_eq!(r.status(), 503, "a callback was accepted while stopping"),
    }
    let (fake, tmp) = tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("shutdown is bounded")
        .expect("join");
    assert_eq!(bot.in_flight(), 0);
    drop(bot); // it holds the store open
    let replies = fake.group_view(GROUP);
    // The notice itself, then exactly the in-flight summary.
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(replies[1].text.contains("1/3"), "{}", replies[1].text);
    assert_durable(&dir, "sd-1", &key).await;
    drop(tmp);
}

/// The real `readbot serve` as a child process.
pub(crate) struct Binary {
    pub(crate) child: Child,
    /// `http://host:port`.
    pub(crate) addr: String,
    /// `host:port`, for raw sockets.
    pub(crate) socket: String,
}

/// Starts the real `readbot serve` against `fake` with `extra` settings, with
/// JSON logs on stderr; returns once it logs its listening address.
pub(crate) fn start_binary(
    fake: &FakeDingTalk,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Binary {
    let mut child = Command::new(env!("CARGO_BIN_EXE_readbot"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("READBOT_LISTEN", "127.0.0.1:0")
        .env("READBOT_DATA_DIR", dir)
        .env("READBOT_API_TOKEN", API_TOKEN)
        .env("READBOT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(fake.readbot_env())
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("readbot binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["fields"]["message"] == "readbot listening" {
                        let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or("").to_string());
                        sent = true;
                    }
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("readbot logs its address");
    Binary {
        child,
        addr: format!("http://{addr}"),
        socket: addr,
    }
}

#[tokio::test]
async fn the_binary_exits_0_on_sigterm_after_finishing_summaries_in_flight() {
    let fake = start_fake().await;
    add_group(&fake, GROUP, GroupKind::Inner, &members(3));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut bin = start_binary(&fake, &dir, &[("DINGTALK_TIMEOUT_SECS", "5")]);
    let http = http_client();
    let r = http
        .post(format!("{}/api/v1/notices", bin.addr))
        .bearer_auth(API_TOKEN)
        .json(&json!({"openConversationId": GROUP, "title": "Last call", "text": "x", "author": "user0001"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.expect("json")["processQueryKey"]
        .as_str()
        .expect("key")
        .to_string();
    fake.mark_read(&key, &["user0002", "user0003"]);
    fake.reset_calls();
    fake.inject(Api::Query, Fault::Hang(Duration::from_millis(1500)), 1);
    let body = fake.mention_body(&readbot::fake::Mention::new(
        GROUP, "user0001", "n", "who read",
    ));
    let msg_id = body["msgId"].as_str().expect("msgId").to_string();
    let ts = now_ms().to_string();
    let r = http
        .post(format!("{}/dingtalk/callback", bin.addr))
        .header("timestamp", &ts)
        .header("sign", FakeDingTalk::sign(&ts, &fake.config().app_secret))
        .json(&body)
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 200);
    wait_calls(&fake, Api::Query, 1).await;

    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &bin.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = loop {
        if let Some(s) = bin.child.try_wait().expect("wait") {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(40) {
            let _ = bin.child.kill();
            panic!("readbot did not exit within 40 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(code.success(), "exit status {code:?}");
    let replies = fake.group_view(GROUP);
    assert_eq!(replies.len(), 2, "{replies:#?}");
    assert!(replies[1].text.contains("2/3"), "{}", replies[1].text);
    assert_durable(&dir, &msg_id, &key).await;
    report("SIGTERM with a summary in flight: summary delivered, marks flushed, exit code 0");
}
