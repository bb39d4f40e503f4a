//! `spawn_app()`: a real readbot (sled in a temp folder, HTTP DingTalk client)
//! pointed at a fresh fake DingTalk.

#![allow(dead_code)]

use readbot::app::Application;
use readbot::config::Config;
use readbot::fake::{FakeConfig, FakeDingTalk, GroupKind, Mention, SentMessage};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::oneshot;

pub const API_TOKEN: &str = "test-api-token-0123456789";

pub struct TestApp {
    pub addr: String,
    pub fake: FakeDingTalk,
    pub http: reqwest::Client,
    pub data_dir: PathBuf,
    pub keys: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The running bot (in-flight count, for "no stuck task" checks).
    pub bot: readbot::bot::Bot,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub async fn start_fake() -> FakeDingTalk {
    FakeDingTalk::start(FakeConfig::default())
        .await
        .expect("fake starts")
}

pub fn config_for(fake: &FakeDingTalk, data_dir: &Path, extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<String, String> = HashMap::new();
    for (k, v) in fake.readbot_env().into_iter().chain([
        ("READBOT_LISTEN", "127.0.0.1:0".to_string()),
        ("READBOT_DATA_DIR", data_dir.display().to_string()),
        ("READBOT_API_TOKEN", API_TOKEN.to_string()),
        ("DINGTALK_TIMEOUT_SECS", "2".to_string()),
        ("DINGTALK_DEADLINE_SECS", "8".to_string()),
        ("DINGTALK_RATE_LIMIT_PER_SEC", "1000".to_string()),
    ]) {
        env.insert(k.to_string(), v);
    }
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let lookup = move |k: &str| env.get(k).cloned();
    Config::from_toml_str("", &lookup).expect("test config")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut app = spawn_on(fake, &dir, extra).await;
    app._tmp = Some(tmp);
    app
}

/// Starts readbot on `data_dir` against an existing fake.
pub async fn spawn_on(fake: FakeDingTalk, data_dir: &Path, extra: &[(&str, &str)]) -> TestApp {
    let config = config_for(&fake, data_dir, extra);
    let app = Application::build(config).await.expect("readbot builds");
    let addr = format!("http://{}", app.local_addr());
    let bot = app.bot();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        fake,
        http: http_client(),
        data_dir: data_dir.to_path_buf(),
        keys: Default::default(),
        bot,
        _tmp: None,
        stop: Some(tx),
        handle: Some(handle),
    }
}

pub fn now_ms() -> i64 {
    readbot::domain::now_millis()
}

impl TestApp {
    /// Stops readbot gracefully and returns the fake and the temp dir holder.
    pub async fn stop(mut self) -> (FakeDingTalk, Option<tempfile::TempDir>) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("join").expect("served");
        }
        (self.fake.clone(), self._tmp.take())
    }

    pub fn mention(&self, msg_id: &str, group: &str, sender: &str, text: &str) -> Value {
        self.fake.mention_body(&Mention {
            msg_id: msg_id.into(),
            group: group.into(),
            sender: sender.into(),
            sender_nick: format!("nick-{sender}"),
            text: text.into(),
            session_ttl: Duration::from_secs(5400),
        })
    }

    /// Posts `body` signed as DingTalk would, with a fresh timestamp (each
    /// call a distinct one: readbot lets one signature carry only three
    /// messages).
    pub async fn post_callback_signed(&self, body: &Value) -> reqwest::Response {
        let ts = readbot::fake::callback_timestamp().to_string();
        let sign = FakeDingTalk::sign(&ts, &self.fake.config().app_secret);
        self.post_callback_raw(Some(&ts), Some(&sign), body.to_string().into_bytes())
            .await
    }

    pub async fn post_callback_raw(
        &self,
        timestamp: Option<&str>,
        sign: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/dingtalk/callback", self.addr))
            .header("content-type", "application/json; charset=utf-8")
            .body(body);
        if let Some(ts) = timestamp {
            req = req.header("timestamp", ts);
        }
        if let Some(s) = sign {
            req = req.header("sign", s);
        }
        req.send().await.expect("callback request")
    }

    pub async fn send_notice(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/notices", self.addr))
            .bearer_auth(API_TOKEN)
            .json(body)
            .send()
            .await
            .expect("send request")
    }

    /// Sends a markdown notice and returns its processQueryKey.
    pub async fn notice(&self, group: &str, title: &str, author: &str) -> String {
        let r = self
            .send_notice(&serde_json::json!({
                "openConversationId": group, "title": title,
                "text": format!("### {title}\nPlease read."), "msgtype": "markdown", "author": author
            }))
            .await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let v: Value = r.json().await.expect("json");
        let key = v["processQueryKey"].as_str().expect("key").to_string();
        self.keys.lock().expect("keys").insert(key.clone());
        key
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.addr, path))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("get")
    }

    /// Waits (bounded) until the group has seen `n` replies.
    pub async fn wait_replies(&self, group: &str, n: usize) -> Vec<SentMessage> {
        for _ in 0..600 {
            let r = self.replies(group);
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.replies(group)
    }

    /// Everything the group saw that is not a notice sent through readbot's API.
    pub fn replies(&self, group: &str) -> Vec<SentMessage> {
        let keys = self.keys.lock().expect("keys").clone();
        self.fake
            .group_view(group)
            .into_iter()
            .filter(|m| {
                m.process_query_key
                    .as_ref()
                    .is_none_or(|k| !keys.contains(k))
            })
            .collect()
    }

    /// Waits for exactly one reply and returns its text.
    pub async fn one_reply(&self, group: &str) -> String {
        let r = self.wait_replies(group, 1).await;
        assert_eq!(r.len(), 1, "expected one reply, group saw {r:#?}");
        r[0].text.clone()
    }
}

pub fn members(n: usize) -> Vec<(String, String)> {
    (1..=n)
        .map(|i| (format!("user{i:04}"), format!("Member {i:04}")))
        .collect()
}

pub fn add_group(fake: &FakeDingTalk, group: &str, kind: GroupKind, people: &[(String, String)]) {
    let refs: Vec<(&str, &str)> = people
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    fake.add_group(group, kind, &refs);
}

/// `s` percent-encoded for one path segment (a `processQueryKey` holds `+`,
/// `/` and `=`).
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl TestApp {
    /// The path (`/n/{token}`) of a notice link minted through the API
    /// (`POST /api/v1/notices/{key}/links`), without its `public` URL.
    pub async fn mint_notice_link(&self, key: &str, public: &str) -> String {
        let r = self
            .http
            .post(format!("{}/api/v1/notices/{}/links", self.addr, enc(key)))
            .bearer_auth(API_TOKEN)
            .send()
            .await
            .expect("links");
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.expect("json");
        assert!(v["expiresAt"].as_str().is_some(), "{v}");
        let url = v["url"].as_str().expect("url");
        let path = url.strip_prefix(public).expect("under the public URL");
        assert!(path.starts_with("/n/"), "{url}");
        path.to_owned()
    }
}
