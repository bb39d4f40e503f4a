//! Helpers every section uses: statistics, sizes, the readbot stack against
//! the fake, DingTalk call counters.

use readbot::app::Application;
use readbot::bot::Bot;
use readbot::config::Config;
use readbot::dingtalk::client::DingTalkClient;
use readbot::dingtalk::DingTalkApi;
use readbot::domain::{now_millis, Notice, OpenConversationId, ProcessQueryKey, RobotCode, UserId};
use readbot::fake::{Api, FakeConfig, FakeDingTalk, GroupKind};
use readbot::store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn median(v: &[Duration]) -> Duration {
    percentile(v, 50.0)
}

/// Nearest-rank percentile of unsorted samples.
pub(crate) fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub(crate) fn pages(n: usize, per: usize) -> usize {
    n.div_ceil(per).max(1)
}

pub(crate) fn http_client(pool: usize) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("reqwest client")
}

pub(crate) fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub(crate) fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

pub(crate) fn mib(kib_or_bytes: u64, bytes: bool) -> f64 {
    if bytes {
        kib_or_bytes as f64 / (1024.0 * 1024.0)
    } else {
        kib_or_bytes as f64 / 1024.0
    }
}

pub(crate) fn member_list(n: usize) -> Vec<(String, String)> {
    (1..=n)
        .map(|i| (format!("u{i:05}"), format!("Member {i:05}")))
        .collect()
}

fn add_group(fake: &FakeDingTalk, group: &str, kind: GroupKind, people: &[(String, String)]) {
    let refs: Vec<(&str, &str)> = people
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    fake.add_group(group, kind, &refs);
}

/// A fresh fake DingTalk with one group of [`member_list`] people, the first
/// `read_percent` % of whom are the readers of the notices the benchmark
/// seeds.
pub(crate) struct BenchGroup {
    pub(crate) fake: FakeDingTalk,
    pub(crate) group: String,
    pub(crate) people: Vec<(String, String)>,
    /// How many of `people` (the first ones) read a notice.
    pub(crate) readers_n: usize,
}

impl BenchGroup {
    pub(crate) async fn start(
        group: &str,
        kind: GroupKind,
        members: usize,
        read_percent: usize,
    ) -> std::io::Result<BenchGroup> {
        let fake = FakeDingTalk::start(FakeConfig::default()).await?;
        let people = member_list(members);
        add_group(&fake, group, kind, &people);
        Ok(BenchGroup {
            fake,
            group: group.to_owned(),
            people,
            readers_n: members * read_percent / 100,
        })
    }

    /// The readers' user ids.
    pub(crate) fn readers(&self) -> Vec<&str> {
        self.people[..self.readers_n]
            .iter()
            .map(|(u, _)| u.as_str())
            .collect()
    }

    /// The first member, who sends the notice and asks about it.
    pub(crate) fn asker(&self) -> &str {
        &self.people[0].0
    }
}

fn config_for(fake: &FakeDingTalk, data_dir: &Path, extra: &[(&str, String)]) -> Config {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in fake.readbot_env().into_iter().chain([
        ("READBOT_LISTEN", "127.0.0.1:0".to_owned()),
        ("READBOT_DATA_DIR", data_dir.display().to_string()),
        ("READBOT_API_TOKEN", API_TOKEN.to_owned()),
        ("DINGTALK_TIMEOUT_SECS", "10".to_owned()),
        ("DINGTALK_DEADLINE_SECS", "60".to_owned()),
    ]) {
        env.insert(k.to_owned(), v);
    }
    for (k, v) in extra {
        env.insert((*k).to_owned(), v.clone());
    }
    let lookup = move |k: &str| env.get(k).cloned();
    Config::from_toml_str("", &lookup).expect("benchmark config")
}

pub(crate) const API_TOKEN: &str = "bench-api-token-0123456789";

/// readbot serving on 127.0.0.1:0 with its own sled folder.
pub(crate) struct Stack {
    pub(crate) fake: FakeDingTalk,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bot: Bot,
    pub(crate) addr: SocketAddr,
    pub(crate) http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Stack {
    /// readbot with the real HTTP client pointed at `fake`, in a fresh temp folder.
    pub(crate) async fn start(fake: &FakeDingTalk, extra: &[(&str, String)]) -> Stack {
        Self::start_fresh(fake, extra, None).await
    }

    /// readbot in a fresh temp folder; `api` replaces the HTTP client when given.
    pub(crate) async fn start_fresh(
        fake: &FakeDingTalk,
        extra: &[(&str, String)],
        api: Option<Arc<dyn DingTalkApi>>,
    ) -> Stack {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Self::start_in(fake, &dir, extra, api).await;
        s._tmp = Some(tmp);
        s
    }

    /// readbot on `dir`; `api` replaces the HTTP client when given.
    pub(crate) async fn start_in(
        fake: &FakeDingTalk,
        dir: &Path,
        extra: &[(&str, String)],
        api: Option<Arc<dyn DingTalkApi>>,
    ) -> Stack {
        let cfg = config_for(fake, dir, extra);
        let store = readbot::store::open(&cfg.store_config())
            .await
            .expect("store opens");
        let api = match api {
            Some(a) => a,
            None => Arc::new(DingTalkClient::new(cfg.dingtalk.clone()).expect("client")),
        };
        let app = Application::build_with(cfg, api, store.clone())
            .await
            .expect("readbot builds");
        let addr = app.local_addr();
        let bot = app.bot();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Stack {
            fake: fake.clone(),
            store,
            bot,
            addr,
            http: http_client(8),
            stop: Some(tx),
            handle: Some(handle),
            _tmp: None,
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    fn callback_url(&self) -> String {
        format!("http://{}/dingtalk/callback", self.addr)
    }

    pub(crate) async fn post_callback(&self, body: Vec<u8>) -> reqwest::StatusCode {
        let ts = now_millis().to_string();
        let sign = FakeDingTalk::sign(&ts, &self.fake.config().app_secret);
        self.http
            .post(self.callback_url())
            .header("content-type", "application/json; charset=utf-8")
            .header("timestamp", ts)
            .header("sign", sign)
            .body(body)
            .send()
            .await
            .map(|r| r.status())
            .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Records a notice by `author` in the fake and in readbot's store
    /// directly (no Send call, no token fetch: keeps a cold start cold).
    pub(crate) async fn seed_notice(&self, group: &str, author: &str, readers: &[&str]) -> Notice {
        let key = self.fake.seed_notice(
            group,
            "Benchmark notice",
            "### Benchmark notice\nPlease read.",
        );
        self.fake.mark_read(&key, readers);
        let notice = Notice {
            key: ProcessQueryKey::parse(key).expect("key"),
            group: OpenConversationId::parse(group).expect("group"),
            robot_code: RobotCode::parse(self.fake.config().robot_code.clone()).expect("robot"),
            title: "Benchmark notice".to_owned(),
            author: Some(UserId::parse(author).expect("author")),
            author_name: None,
            msg_key: "sampleMarkdown".to_owned(),
            sent_at: now_millis(),
        };
        self.store.record_notice(&notice).await.expect("recorded");
        notice
    }
}

/// Counted DingTalk endpoints, in print order.
pub(crate) const APIS: [(Api, &str); 7] = [
    (Api::Token, "token"),
    (Api::Query, "query"),
    (Api::InnerMembers, "inner"),
    (Api::SceneMembers, "scene"),
    (Api::UserGet, "user/get"),
    (Api::SendBySession, "reply"),
    (Api::Send, "send"),
];

pub(crate) type Calls = BTreeMap<&'static str, usize>;

pub(crate) fn snapshot(fake: &FakeDingTalk) -> Calls {
    APIS.iter().map(|(a, n)| (*n, fake.calls(*a))).collect()
}

pub(crate) fn calls_str(c: &Calls) -> String {
    APIS.iter()
        .map(|(_, n)| c.get(n).copied().unwrap_or(0).to_string())
        .collect::<Vec<_>>()
        .join("/")
}
