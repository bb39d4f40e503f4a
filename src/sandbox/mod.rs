//! `readbot sandbox`: readbot and the fake DingTalk together, with a demo
//! group, a demo notice, some reads and an @mention, printing what the group
//! would see; then it keeps serving so a newcomer can try the API.

use crate::app::{shutdown_signal, Application, StartError};
use crate::config::{Config, ConfigError};
use crate::fake::{FakeConfig, FakeDingTalk, GroupKind, Mention};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Options of the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// readbot's listen address.
    pub listen: String,
    /// sled folder.
    pub data_dir: PathBuf,
    /// Exit after the demo instead of serving.
    pub once: bool,
}

/// Sandbox failures.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The fake could not start.
    #[error("fake DingTalk: {0}")]
    Fake(#[from] std::io::Error),
    /// Bad sandbox config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// readbot could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A demo step failed.
    #[error("demo step failed: {0}")]
    Step(String),
}

/// The sandbox API token (printed; local only).
pub const SANDBOX_TOKEN: &str = "sandbox-token-0123456789";
/// The demo group.
pub const DEMO_GROUP: &str = "cidSandboxDemo+Group/==";

const NAMES: &[&str] = &[
    "张伟",
    "王芳",
    "李娜",
    "刘洋",
    "陈静",
    "杨磊",
    "赵敏",
    "黄强",
    "周杰",
    "吴婷",
    "Alice Chen",
    "Bob Li",
    "Carol Wang",
    "David Zhang",
    "Eve Liu",
    "Frank Zhao",
    "Grace Wu",
    "Henry Xu",
    "Ivy Sun",
    "Jack Ma",
    "郑爽",
    "孙丽",
    "马超",
    "朱琳",
    "胡斌",
    "郭靖",
    "何欢",
    "高远",
    "林峰",
    "罗佳",
    "梁晨",
    "宋雨",
    "谢楠",
    "韩梅",
    "唐宁",
    "冯军",
    "邓超",
    "曹颖",
    "彭飞",
    "曾乐",
];

/// Runs the sandbox.
pub async fn run(opts: SandboxOptions) -> Result<(), SandboxError> {
    let fake = FakeDingTalk::start(FakeConfig::default()).await?;
    let members: Vec<(String, String)> = NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("user{:03}", i + 1), (*n).to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = members
        .iter()
        .map(|(u, n)| (u.as_str(), n.as_str()))
        .collect();
    fake.add_group(DEMO_GROUP, GroupKind::Inner, &refs);

    let fc = fake.config().clone();
    let mut env: HashMap<&str, String> = fake.readbot_env().into_iter().collect();
    env.insert("READBOT_LISTEN", opts.listen.clone());
    env.insert("READBOT_DATA_DIR", opts.data_dir.display().to_string());
    env.insert("READBOT_API_TOKEN", SANDBOX_TOKEN.to_owned());
    let lookup = move |k: &str| env.get(k).cloned();
    let config = Config::from_toml_str("", &lookup)?;

    let app = Application::build(config).await?;
    let addr = app.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        tokio::select! {
            _ = shutdown_signal() => {},
            _ = stop_rx => {},
        }
    }));

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| SandboxError::Step(e.to_string()))?;
    let base = format!("http://{addr}");

    println!("readbot sandbox");
    println!("  readbot:        {base}");
    println!("  fake DingTalk:  {}", fake.base_url());
    println!("  demo group:     {DEMO_GROUP} ({} members)", members.len());
    println!();

    // 1. A team lead sends a notice through readbot's API.
    let resp = http
        .post(format!("{base}/api/v1/notices"))
        .bearer_auth(SANDBOX_TOKEN)
        .json(&serde_json::json!({
            "openConversationId": DEMO_GROUP,
            "msgtype": "markdown",
            "title": "周五团建通知 / Friday team event",
            "text": "### 周五团建通知\n周五 15:00 在一楼大厅集合。\n\nFriday 15:00, meet in the lobby.",
            "author": "user001",
            "authorName": NAMES[0],
        }))
        .send()
        .await
        .map_err(|e| SandboxError::Step(format!("send notice: {e}")))?;
    let status = resp.status();
    let sent: serde_json::Value = resp
        .json()
        .await
        .map_err(|e| SandboxError::Step(format!("send notice answer: {e}")))?;
    if status.as_u16() != 201 {
        return Err(SandboxError::Step(format!(
            "send notice answered {status}: {sent}"
        )));
    }
    let key = sent["processQueryKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!(
        "1. {} sent a notice through POST /api/v1/notices → processQueryKey {key}",
        NAMES[0]
    );

    // 2. Most of the group reads it.
    let readers: Vec<&str> = members.iter().take(28).map(|(u, _)| u.as_str()).collect();
    fake.mark_read(&key, &readers);
    println!("2. {} of {} members read it", readers.len(), members.len());

    // 3. The author @mentions readbot; DingTalk delivers a signed callback.
    let body = fake.mention_body(&Mention {
        msg_id: format!("sandbox-{}", crate::domain::now_millis()),
        group: DEMO_GROUP.to_owned(),
        sender: "user001".to_owned(),
        sender_nick: NAMES[0].to_owned(),
        text: "谁没读？".to_owned(),
        session_ttl: Duration::from_secs(5400),
    });
    let before = fake.group_view(DEMO_GROUP).len();
    let ts = crate::domain::now_millis().to_string();
    let sign = FakeDingTalk::sign(&ts, &fc.app_secret);
    http.post(format!("{base}/dingtalk/callback"))
        .header("timestamp", &ts)
        .header("sign", &sign)
        .json(&body)
        .send()
        .await
        .map_err(|e| SandboxError::Step(format!("callback: {e}")))?;
    println!("3. {} asked \"@readbot 谁没读？\" in the group", NAMES[0]);
    let mut reply = None;
    for _ in 0..200 {
        let view = fake.group_view(DEMO_GROUP);
        if view.len() > before {
            reply = view.last().cloned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = reply.ok_or_else(|| SandboxError::Step("no reply reached the group".into()))?;
    println!("4. readbot replied in the group:\n");
    println!("------------------------------------------------------------");
    println!("{}", reply.text);
    println!("------------------------------------------------------------\n");

    if opts.once {
        let _ = stop_tx.send(());
        let _ = server.await;
        fake.shutdown();
        return Ok(());
    }
    println!("Try the API (Ctrl-C to stop):");
    println!("  curl -s -H 'Authorization: Bearer {SANDBOX_TOKEN}' '{base}/api/v1/notices?openConversationId={}'", urlencode(DEMO_GROUP));
    println!(
        "  curl -s -H 'Authorization: Bearer {SANDBOX_TOKEN}' '{base}/api/v1/notices/{}/receipts'",
        urlencode(&key)
    );
    println!(
        "  curl -s -X POST -H 'Authorization: Bearer {SANDBOX_TOKEN}' -H 'Content-Type: application/json' \\\n    -d '{{\"openConversationId\":\"{DEMO_GROUP}\",\"title\":\"Hello\",\"text\":\"Hello group\"}}' {base}/api/v1/notices"
    );
    let _ = server.await;
    fake.shutdown();
    Ok(())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%2B")
}
