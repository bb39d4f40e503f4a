//! readbot's performance and API budget (issue 5), measured in one run.
//!
//! ```sh
//! export CARGO_TARGET_DIR=/work/target-shared
//! cargo bench --locked --bench budget                 # everything, full sizes
//! cargo bench --locked --bench budget -- --quick      # smoke run (small sizes, few runs)
//! cargo bench --locked --bench budget -- intake send  # only some sections
//! ```
//!
//! Sections: `summary` (latency against the latency floor, cold and warm, and
//! DingTalk calls per summary against the call floor), `repeat` (20 people
//! asking about the same notice), `intake` (signed callback against a bare
//! axum handler), `send` (send API and the durability step), `memory` (peak
//! RSS and store size, each scenario in a child process of this binary).
//!
//! Every size parameter can be set by `--name value`, `--name=value` or the
//! environment variable `BENCH_NAME` (upper case, `-` → `_`); see [`USAGE`].
//! Everything runs on 127.0.0.1 against readbot's own fake DingTalk; nothing
//! here asserts on time, it prints figures. See BENCHMARKS.md.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Bytes;
use readbot::app::Application;
use readbot::bot::Bot;
use readbot::config::Config;
use readbot::dingtalk::client::DingTalkClient;
use readbot::dingtalk::{
    DingTalkApi, DingTalkError, GroupSend, ReadQuery, ReadState, Reply, Roster, RosterQuery,
};
use readbot::domain::{
    now_millis, Notice, OpenConversationId, ProcessQueryKey, RobotCode, SendStatus, UserId,
};
use readbot::fake::{Api, FakeConfig, FakeDingTalk, GroupKind, Mention};
use readbot::store::sled_store::SledStore;
use readbot::store::Store;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

const USAGE: &str = "\
usage: cargo bench --bench budget -- [--quick] [SECTION...] [--name value ...]
sections: summary repeat intake send memory (default: all)
options (env BENCH_<NAME> works too):
  --sizes 50,500,3000,10000   group sizes for summary latency and calls
  --cold-runs 3               cold summaries per size (fresh readbot each)
  --warm-runs 5               warm summaries per size
  --rtt-ms 20                 simulated DingTalk round trip
  --read-percent 90           share of members who read the notice
  --rate-limits 20,1000       DINGTALK_RATE_LIMIT_PER_SEC values to run (20 = production default)
  --asks 20                   repeated asks about one notice
  --cache-secs 5              READBOT_RECEIPTS_CACHE_SECS in the repeat section
  --concurrency 64            connections for intake and the send API
  --intake-requests 20000     requests per intake round
  --intake-secs 15            time cap per intake round
  --intake-rounds 3           alternating rounds of bare / signed
  --send-requests 2000        notices sent through the API
  --notices 100000            notices stored in the memory section
  --quick                     small sizes and few runs (a smoke run)";

// ----- options -------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Opts {
    sizes: Vec<usize>,
    cold_runs: usize,
    warm_runs: usize,
    rtt: Duration,
    read_percent: usize,
    rate_limits: Vec<u32>,
    asks: usize,
    cache_secs: u64,
    concurrency: usize,
    intake_requests: usize,
    intake_secs: u64,
    intake_rounds: usize,
    send_requests: usize,
    notices: usize,
    sections: HashSet<String>,
}

const KEYS: &[&str] = &[
    "sizes",
    "cold-runs",
    "warm-runs",
    "rtt-ms",
    "read-percent",
    "rate-limits",
    "asks",
    "cache-secs",
    "concurrency",
    "intake-requests",
    "intake-secs",
    "intake-rounds",
    "send-requests",
    "notices",
];
const SECTIONS: &[&str] = &["summary", "repeat", "intake", "send", "memory"];

fn env_name(key: &str) -> String {
    format!("BENCH_{}", key.to_uppercase().replace('-', "_"))
}

fn parse_list<T: std::str::FromStr>(key: &str, v: &str) -> Result<Vec<T>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("--{key}: {s:?} is not a number"))
        })
        .collect()
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    let mut quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true");
    let mut sections: HashSet<String> = HashSet::new();
    for key in KEYS {
        if let Ok(v) = std::env::var(env_name(key)) {
            kv.insert((*key).to_owned(), v);
        }
    }
    if let Ok(v) = std::env::var("BENCH_ONLY") {
        sections.extend(v.split(',').map(|s| s.trim().to_owned()));
    }
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--bench" {
            // cargo bench passes this to harness = false targets.
        } else if a == "--quick" {
            quick = true;
        } else if a == "--help" || a == "-h" {
            return Err(USAGE.to_owned());
        } else if let Some(rest) = a.strip_prefix("--") {
            let (k, v) = match rest.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => {
                    i += 1;
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("--{rest} needs a value\n{USAGE}"))?;
                    (rest.to_owned(), v.clone())
                }
            };
            if !KEYS.contains(&k.as_str()) {
                return Err(format!("unknown option --{k}\n{USAGE}"));
            }
            kv.insert(k, v);
        } else {
            sections.insert(a.clone());
        }
        i += 1;
    }
    sections.retain(|s| !s.is_empty());
    for s in &sections {
        if !SECTIONS.contains(&s.as_str()) {
            return Err(format!("unknown section {s:?}\n{USAGE}"));
        }
    }
    if sections.is_empty() {
        sections = SECTIONS.iter().map(|s| (*s).to_owned()).collect();
    }
    let num = |k: &str, full: usize, q: usize| -> Result<usize, String> {
        match kv.get(k) {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("--{k}: {v:?} is not a number")),
            None => Ok(if quick { q } else { full }),
        }
    };
    let sizes = match kv.get("sizes") {
        Some(v) => parse_list("sizes", v)?,
        None if quick => vec![50, 500],
        None => vec![50, 500, 3000, 10_000],
    };
    let rate_limits = match kv.get("rate-limits") {
        Some(v) => parse_list("rate-limits", v)?,
        None => vec![20, 1000],
    };
    Ok(Opts {
        sizes,
        cold_runs: num("cold-runs", 3, 1)?.max(1),
        warm_runs: num("warm-runs", 5, 2)?.max(1),
        rtt: Duration::from_millis(num("rtt-ms", 20, 20)? as u64),
        read_percent: num("read-percent", 90, 90)?.min(100),
        rate_limits,
        asks: num("asks", 20, 20)?.max(1),
        cache_secs: num("cache-secs", 5, 5)? as u64,
        concurrency: num("concurrency", 64, 64)?.max(1),
        intake_requests: num("intake-requests", 20_000, 2_000)?.max(1),
        intake_secs: num("intake-secs", 15, 5)?.max(1) as u64,
        intake_rounds: num("intake-rounds", 3, 1)?.max(1),
        send_requests: num("send-requests", 2_000, 200)?.max(1),
        notices: num("notices", 100_000, 10_000)?,
        sections,
    })
}

// ----- small helpers ----------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[Duration]) -> Duration {
    percentile(v, 50.0)
}

/// Nearest-rank percentile of unsorted samples.
fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn pages(n: usize, per: usize) -> usize {
    n.div_ceil(per).max(1)
}

fn http_client(pool: usize) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("reqwest client")
}

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn dir_size(p: &Path) -> u64 {
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

fn mib(kib_or_bytes: u64, bytes: bool) -> f64 {
    if bytes {
        kib_or_bytes as f64 / (1024.0 * 1024.0)
    } else {
        kib_or_bytes as f64 / 1024.0
    }
}

fn member_list(n: usize) -> Vec<(String, String)> {
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

const API_TOKEN: &str = "bench-api-token-0123456789";

/// readbot serving on 127.0.0.1:0 with its own sled folder.
struct Stack {
    fake: FakeDingTalk,
    store: Arc<SledStore>,
    bot: Bot,
    addr: SocketAddr,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl Stack {
    /// readbot with the real HTTP client pointed at `fake`, in a fresh temp folder.
    async fn start(fake: &FakeDingTalk, extra: &[(&str, String)]) -> Stack {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let mut s = Self::start_in(fake, &dir, extra, None).await;
        s._tmp = Some(tmp);
        s
    }

    /// readbot on `dir`; `api` replaces the HTTP client when given.
    async fn start_in(
        fake: &FakeDingTalk,
        dir: &Path,
        extra: &[(&str, String)],
        api: Option<Arc<dyn DingTalkApi>>,
    ) -> Stack {
        let cfg = config_for(fake, dir, extra);
        let store = Arc::new(SledStore::open(&cfg.data_dir).expect("sled opens"));
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

    async fn stop(mut self) {
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

    async fn post_callback(&self, body: Vec<u8>) -> reqwest::StatusCode {
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
    async fn seed_notice(&self, group: &str, author: &str, readers: &[&str]) -> Notice {
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
const APIS: [(Api, &str); 7] = [
    (Api::Token, "token"),
    (Api::Query, "query"),
    (Api::InnerMembers, "inner"),
    (Api::SceneMembers, "scene"),
    (Api::UserGet, "user/get"),
    (Api::SendBySession, "reply"),
    (Api::Send, "send"),
];

type Calls = BTreeMap<&'static str, usize>;

fn snapshot(fake: &FakeDingTalk) -> Calls {
    APIS.iter().map(|(a, n)| (*n, fake.calls(*a))).collect()
}

fn calls_str(c: &Calls) -> String {
    APIS.iter()
        .map(|(_, n)| c.get(n).copied().unwrap_or(0).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

// ----- 1 + 2: summary latency and calls per summary ----------------------------------------

struct SummaryRun {
    latency: Duration,
    calls: Calls,
    correct: bool,
}

/// One "who read my last notice?" on a fresh notice; timed from the
/// callback's 200 to the moment the fake records the reply.
async fn one_summary(
    stack: &Stack,
    group: &str,
    asker: &str,
    readers: &[&str],
    expect: &str,
    rtt: Duration,
) -> SummaryRun {
    let fake = &stack.fake;
    stack.seed_notice(group, asker, readers).await;
    let body = fake.mention_body(&Mention::new(
        group,
        asker,
        "Asker",
        "who read my last notice?",
    ));
    let body = serde_json::to_vec(&body).expect("json");
    let before = fake.sent_count();
    fake.reset_calls();
    fake.set_latency(rtt);
    let status = stack.post_callback(body).await;
    let accepted = Instant::now();
    let replied = fake.wait_sent(before + 1, Duration::from_secs(180)).await;
    let latency = accepted.elapsed();
    fake.set_latency(Duration::ZERO);
    let calls = snapshot(fake);
    let correct = status == 200
        && replied
        && fake
            .sent()
            .last()
            .is_some_and(|m| m.group == group && m.text.contains(expect));
    if !correct {
        eprintln!("  ! reply for {group} did not contain {expect:?} (status {status})");
    }
    SummaryRun {
        latency,
        calls,
        correct,
    }
}

/// The latency floor when each query page also needs a slot of the client's
/// per-API limiter (`src/dingtalk/client/limiter.rs`: at most `limit` calls
/// in any 1.1 s window, DingTalk's per-second limit plus a jitter margin):
/// page k starts when the previous page is back and no earlier than 1.1 s
/// after page k - limit started. Plus the reply.
fn quota_floor(query_pages: usize, rtt: Duration, limit: u32) -> Duration {
    const WINDOW: f64 = 1.1;
    let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
    let r = rtt.as_secs_f64();
    let mut starts: Vec<f64> = Vec::with_capacity(query_pages);
    let mut t = 0.0f64;
    for k in 0..query_pages {
        if k >= limit {
            t = t.max(starts[k - limit] + WINDOW);
        }
        starts.push(t);
        t += r;
    }
    Duration::from_secs_f64(t + r)
}

/// What one empty call to the fake really takes at `rtt` (its sleep rounds
/// up to tokio's 1 ms timer tick, plus HTTP on loopback): the round trip a
/// perfect client would pay per page.
async fn effective_rtt(fake: &FakeDingTalk, rtt: Duration) -> Duration {
    let client = http_client(1);
    let url = format!("{}/v1.0/oauth2/accessToken", fake.base_url());
    let c = fake.config();
    let body = json!({ "appKey": c.app_key, "appSecret": c.app_secret });
    fake.set_latency(rtt);
    let mut v = Vec::new();
    for i in 0..14 {
        let t = Instant::now();
        if let Ok(r) = client.post(&url).json(&body).send().await {
            let _ = r.bytes().await;
        }
        if i >= 2 {
            v.push(t.elapsed());
        }
    }
    fake.set_latency(Duration::ZERO);
    median(&v)
}

struct SizeResult {
    eff_rtt: Duration,
    members: usize,
    readers: usize,
    limit: u32,
    cold: Vec<SummaryRun>,
    warm: Vec<SummaryRun>,
}

async fn summary_size(o: &Opts, members: usize, limit: u32) -> SizeResult {
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .expect("fake");
    let group = format!("cidBench{members}+/==");
    let people = member_list(members);
    add_group(&fake, &group, GroupKind::Inner, &people);
    let readers_n = members * o.read_percent / 100;
    let readers: Vec<&str> = people[..readers_n]
        .iter()
        .map(|(u, _)| u.as_str())
        .collect();
    let asker = people[0].0.clone();
    let expect = format!("{readers_n}/{members}");
    let extra = [("DINGTALK_RATE_LIMIT_PER_SEC", limit.to_string())];
    // The client's bucket starts full; let it refill between runs so every
    // run sees a full bucket (an ask right after another would not).
    let per_run = pages(readers_n, 200) + pages(members, 1000) + 2;
    let refill = Duration::from_secs_f64(per_run as f64 / f64::from(limit.max(1)))
        + Duration::from_millis(50);
    let eff_rtt = effective_rtt(&fake, o.rtt).await;
    tokio::time::sleep(refill).await;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut last: Option<Stack> = None;
    for _ in 0..o.cold_runs {
        if let Some(s) = last.take() {
            s.stop().await;
        }
        let stack = Stack::start(&fake, &extra).await;
        cold.push(one_summary(&stack, &group, &asker, &readers, &expect, o.rtt).await);
        last = Some(stack);
    }
    let stack = last.expect("at least one cold run");
    for _ in 0..o.warm_runs {
        tokio::time::sleep(refill).await;
        warm.push(one_summary(&stack, &group, &asker, &readers, &expect, o.rtt).await);
    }
    stack.stop().await;
    fake.shutdown();
    SizeResult {
        eff_rtt,
        members,
        readers: readers_n,
        limit,
        cold,
        warm,
    }
}

/// Calls of one summary in a plain group (learned roster): names come from
/// `user/get` once, then from the name cache.
async fn learned_roster_calls(o: &Opts, members: usize) -> (Calls, Calls, bool) {
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .expect("fake");
    let group = "cidBenchPlain+/==";
    let people = member_list(members);
    add_group(&fake, group, GroupKind::Plain, &people);
    let readers_n = members * o.read_percent / 100;
    let readers: Vec<&str> = people[..readers_n]
        .iter()
        .map(|(u, _)| u.as_str())
        .collect();
    let stack = Stack::start(&fake, &[("DINGTALK_RATE_LIMIT_PER_SEC", "1000".to_owned())]).await;
    let asker = &people[0].0;
    // The learned roster holds whoever readbot has seen: author and readers.
    let expect = format!("{readers_n}/{readers_n}");
    let a = one_summary(&stack, group, asker, &readers, &expect, Duration::ZERO).await;
    let b = one_summary(&stack, group, asker, &readers, &expect, Duration::ZERO).await;
    stack.stop().await;
    fake.shutdown();
    (a.calls, b.calls, a.correct && b.correct)
}

async fn section_summary(o: &Opts) {
    println!(
        "\n## 1. Summary latency (callback accepted -> reply posted), RTT {} ms, {}% read",
        ms(o.rtt),
        o.read_percent
    );
    println!("floor = (ceil(readers/200) + 1) x RTT (nominal); floor* uses RTT* = one empty call to the fake, measured");
    println!("quota* = floor* when each query page also needs a slot of the client's per-API limiter (limit calls per 1.1 s window)");
    println!("x = ratio to the nominal floor; x* = ratio to max(floor*, quota*)");
    println!(
        "{:>7} {:>7} {:>6} {:>5} {:>6} {:>8} {:>8} {:>8} | {:>8} {:>5} {:>5} | {:>8} {:>5} {:>5} {:>8} {:>8}",
        "members", "readers", "limit", "pages", "RTT*", "floor", "floor*", "quota*", "cold p50", "x", "x*", "warm p50", "x", "x*", "warm min", "warm max"
    );
    let mut results = Vec::new();
    for &limit in &o.rate_limits {
        for &n in &o.sizes {
            let r = summary_size(o, n, limit).await;
            let q = pages(r.readers, 200);
            let floor = o.rtt * (q as u32 + 1);
            let floor_eff = r.eff_rtt * (q as u32 + 1);
            let quota_eff = quota_floor(q, r.eff_rtt, limit).max(floor_eff);
            let cold: Vec<Duration> = r.cold.iter().map(|x| x.latency).collect();
            let warm: Vec<Duration> = r.warm.iter().map(|x| x.latency).collect();
            let ratio = |d: Duration, f: Duration| {
                if f.is_zero() {
                    0.0
                } else {
                    d.as_secs_f64() / f.as_secs_f64()
                }
            };
            let wmin = warm.iter().min().copied().unwrap_or_default();
            let wmax = warm.iter().max().copied().unwrap_or_default();
            println!(
                "{:>7} {:>7} {:>6} {:>5} {:>6.1} {:>8.1} {:>8.1} {:>8.1} | {:>8.1} {:>5.2} {:>5.2} | {:>8.1} {:>5.2} {:>5.2} {:>8.1} {:>8.1}{}",
                r.members,
                r.readers,
                r.limit,
                q,
                ms(r.eff_rtt),
                ms(floor),
                ms(floor_eff),
                ms(quota_eff),
                ms(median(&cold)),
                ratio(median(&cold), floor),
                ratio(median(&cold), quota_eff),
                ms(median(&warm)),
                ratio(median(&warm), floor),
                ratio(median(&warm), quota_eff),
                ms(wmin),
                ms(wmax),
                if r.cold.iter().chain(&r.warm).all(|x| x.correct) { "" } else { "  (WRONG REPLY)" }
            );
            results.push(r);
        }
    }

    println!(
        "\n## 2. DingTalk calls per summary, by endpoint ({})",
        APIS.iter().map(|(_, n)| *n).collect::<Vec<_>>().join("/")
    );
    println!("call floor = ceil(readers/200) query + ceil(members/1000) roster pages + 1 reply; +1 token when cold");
    println!(
        "{:>7} {:>6} | {:>28} {:>6} {:>6} | {:>28} {:>6} {:>6} {:>5}",
        "members",
        "limit",
        "cold (each endpoint)",
        "total",
        "floor",
        "warm (each endpoint)",
        "total",
        "floor",
        "=?"
    );
    for r in &results {
        let q = pages(r.readers, 200);
        let roster = pages(r.members, 1000);
        let warm_floor = q + roster + 1;
        let cold_floor = warm_floor + 1;
        let total = |c: &Calls| c.values().sum::<usize>();
        let cold = &r.cold[0].calls;
        let warm = r.warm.last().map(|w| &w.calls).unwrap_or(cold);
        println!(
            "{:>7} {:>6} | {:>28} {:>6} {:>6} | {:>28} {:>6} {:>6} {:>5}",
            r.members,
            r.limit,
            calls_str(cold),
            total(cold),
            cold_floor,
            calls_str(warm),
            total(warm),
            warm_floor,
            if total(warm) == warm_floor && r.warm.iter().all(|w| w.calls == *warm) {
                "yes"
            } else {
                "NO"
            }
        );
    }
    let n = 50;
    let (cold, warm, ok) = learned_roster_calls(o, n).await;
    println!(
        "plain group (learned roster), {n} members, {} read: first ask {} | next ask {}  (names: user/get once, then cache){}",
        n * o.read_percent / 100,
        calls_str(&cold),
        calls_str(&warm),
        if ok { "" } else { "  (WRONG REPLY)" }
    );
}

// ----- 3: repeated asks ------------------------------------------------------------------

async fn section_repeat(o: &Opts) {
    let members = 500;
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .expect("fake");
    let group = "cidBenchRepeat+/==";
    let people = member_list(members);
    add_group(&fake, group, GroupKind::Inner, &people);
    let readers_n = members * o.read_percent / 100;
    let readers: Vec<&str> = people[..readers_n]
        .iter()
        .map(|(u, _)| u.as_str())
        .collect();
    let stack = Stack::start(
        &fake,
        &[("READBOT_RECEIPTS_CACHE_SECS", o.cache_secs.to_string())],
    )
    .await;
    stack.seed_notice(group, &people[0].0, &readers).await;
    let q = pages(readers_n, 200);
    println!(
        "\n## 3. Repeated asks: {} people ask about the same notice ({members} members, {readers_n} read, one pass = {q} query + 1 roster call), RTT {} ms, READBOT_RECEIPTS_CACHE_SECS={}",
        o.asks,
        ms(o.rtt),
        o.cache_secs
    );
    println!(
        "{:<44} {:>7} {:>7} {:>7} {:>9} {:>10}",
        "pattern", "query", "roster", "replies", "passes", "last reply"
    );
    let askers: Vec<String> = people
        .iter()
        .skip(1)
        .take(o.asks)
        .map(|p| p.0.clone())
        .collect();
    let bodies = |text: &str| -> Vec<Vec<u8>> {
        askers
            .iter()
            .map(|a| {
                serde_json::to_vec(&fake.mention_body(&Mention::new(group, a, "Asker", text)))
                    .expect("json")
            })
            .collect()
    };
    let report = |label: &str, started: Instant, before: usize| {
        let c = snapshot(&fake);
        let query = c["query"];
        println!(
            "{:<44} {:>7} {:>7} {:>7} {:>9.1} {:>8.0}ms",
            label,
            query,
            c["inner"],
            fake.sent_count() - before,
            query as f64 / q as f64,
            ms(started.elapsed())
        );
    };
    fake.set_latency(o.rtt);

    // Burst: everyone at once (single-flight).
    let b = bodies("who read");
    fake.reset_calls();
    let before = fake.sent_count();
    let started = Instant::now();
    let mut set = JoinSet::new();
    let stack = Arc::new(stack);
    for body in b {
        let s = stack.clone();
        set.spawn(async move { s.post_callback(body).await });
    }
    while set.join_next().await.is_some() {}
    fake.wait_sent(before + o.asks, Duration::from_secs(120))
        .await;
    report(&format!("burst: {} asks at once", o.asks), started, before);

    // Spread: one ask every 100 ms, all within the cache window.
    let gap = Duration::from_millis(100);
    let b = bodies("谁没读");
    fake.reset_calls();
    let before = fake.sent_count();
    let started = Instant::now();
    for body in b {
        stack.post_callback(body).await;
        tokio::time::sleep(gap).await;
    }
    fake.wait_sent(before + o.asks, Duration::from_secs(120))
        .await;
    report(
        &format!("spread: {} asks, one per {} ms", o.asks, gap.as_millis()),
        started,
        before,
    );

    // After the window: one more pass.
    tokio::time::sleep(Duration::from_secs(o.cache_secs) + Duration::from_millis(500)).await;
    fake.reset_calls();
    let before = fake.sent_count();
    let started = Instant::now();
    let body = bodies("who read").remove(0);
    stack.post_callback(body).await;
    fake.wait_sent(before + 1, Duration::from_secs(120)).await;
    report("1 ask after the cache window", started, before);
    fake.set_latency(Duration::ZERO);
    if let Ok(s) = Arc::try_unwrap(stack) {
        s.stop().await;
    }
    fake.shutdown();
}

// ----- 4: callback intake ------------------------------------------------------------------

/// A DingTalk without I/O: the intake section measures readbot, not the
/// fake. A reply takes `reply_ms` (a DingTalk round trip when set, as every
/// real answer needs at least one); everything else answers at once.
#[derive(Default)]
struct StubApi {
    reply_ms: std::sync::atomic::AtomicU64,
}

impl StubApi {
    fn with_reply_ms(ms: u64) -> Self {
        Self {
            reply_ms: std::sync::atomic::AtomicU64::new(ms),
        }
    }
    fn set_reply_ms(&self, ms: u64) {
        self.reply_ms.store(ms, Ordering::SeqCst);
    }
    async fn round_trip(&self) {
        let ms = self.reply_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

#[async_trait]
impl DingTalkApi for StubApi {
    async fn send_group_message(&self, _req: &GroupSend) -> Result<ProcessQueryKey, DingTalkError> {
        self.round_trip().await;
        ProcessQueryKey::parse(format!("stub{}", now_millis()))
            .map_err(|e| DingTalkError::Decode(e.to_string()))
    }
    async fn read_state(&self, _q: &ReadQuery) -> Result<ReadState, DingTalkError> {
        Ok(ReadState {
            send_status: SendStatus::Other(String::new()),
            readers: Vec::new(),
            pages: 1,
            truncated: false,
        })
    }
    async fn roster(&self, _q: &RosterQuery) -> Result<Roster, DingTalkError> {
        Ok(Roster {
            members: Vec::new(),
            complete: true,
        })
    }
    async fn user_names(&self, _u: &[UserId]) -> Result<Vec<(UserId, String)>, DingTalkError> {
        Ok(Vec::new())
    }
    async fn reply_in_session(&self, _w: &str, _r: &Reply) -> Result<(), DingTalkError> {
        self.round_trip().await;
        Ok(())
    }
}

/// One complete HTTP/1.1 request (head and body), ready to write.
struct SignedReq {
    raw: Vec<u8>,
}

struct LoadResult {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl LoadResult {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Reads one HTTP/1.1 response with a `content-length` body; returns its status.
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    use tokio::io::AsyncReadExt;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `reqs[range]` sent to `addr` by `conc` workers, each on one keep-alive
/// connection of a minimal HTTP/1.1 client (cheaper than reqwest, so the
/// generator takes less of the two cores it shares with the servers),
/// stopping after all are sent or `cap` has passed.
async fn load(
    addr: SocketAddr,
    reqs: Arc<Vec<SignedReq>>,
    range: std::ops::Range<usize>,
    conc: usize,
    cap: Duration,
) -> LoadResult {
    use tokio::io::AsyncWriteExt;
    let end = range.end.min(reqs.len());
    let next = Arc::new(AtomicUsize::new(range.start));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..conc {
        let (reqs, next) = (reqs.clone(), next.clone());
        set.spawn(async move {
            let mut lat = Vec::with_capacity(end / conc + 1);
            let mut errors = 0usize;
            let mut conn: Option<tokio::net::TcpStream> = None;
            let mut buf = Vec::with_capacity(1024);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end || start.elapsed() > cap {
                    break;
                }
                let t = Instant::now();
                if conn.is_none() {
                    match tokio::net::TcpStream::connect(addr).await {
                        Ok(c) => {
                            let _ = c.set_nodelay(true);
                            conn = Some(c);
                        }
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let res = match c.write_all(&reqs[i].raw).await {
                    Ok(()) => read_response(c, &mut buf).await,
                    Err(e) => Err(e),
                };
                match res {
                    Ok(200) => lat.push(t.elapsed()),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = None;
                    }
                }
            }
            (lat, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    while let Some(j) = set.join_next().await {
        if let Ok((l, e)) = j {
            latencies.extend(l);
            errors += e;
        }
    }
    LoadResult {
        ok: latencies.len(),
        errors,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// Serves `app` on an ephemeral port until the sender fires (or is dropped).
async fn serve_router(app: axum::Router) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    (addr, tx)
}

async fn bare_server() -> (SocketAddr, oneshot::Sender<()>) {
    async fn bare(_body: Bytes) -> impl axum::response::IntoResponse {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"msgtype":"empty"}"#,
        )
    }
    let app = axum::Router::new().route("/dingtalk/callback", axum::routing::post(bare));
    serve_router(app).await
}

/// What a ladder handler does on top of the bare one.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Rung {
    /// Read the headers and check the signature.
    Verify,
    /// ... and parse the body into `Incoming`.
    Parse,
    /// ... and claim the msgId in a sled store (in memory + one sled read).
    Claim,
    /// ... and spawn an empty task per new message.
    Spawn,
}

/// A server whose handler does the first steps of readbot's callback (no
/// middleware, no logging): where the gap between bare and signed goes.
async fn ladder_server(
    rung: Rung,
    fake: &FakeDingTalk,
    dir: &Path,
) -> (SocketAddr, oneshot::Sender<()>) {
    struct L {
        rung: Rung,
        verifier: readbot::dingtalk::signature::Verifier,
        store: SledStore,
    }
    async fn handler(
        axum::extract::State(l): axum::extract::State<Arc<L>>,
        headers: axum::http::HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        if l.verifier
            .verify(h("timestamp"), h("sign"), now_millis())
            .is_err()
        {
            return axum::http::StatusCode::UNAUTHORIZED.into_response();
        }
        if l.rung >= Rung::Parse {
            let Ok(msg) = readbot::dingtalk::callback::parse(&body) else {
                return axum::http::StatusCode::BAD_REQUEST.into_response();
            };
            if l.rung >= Rung::Claim {
                let new = l.store.claim_message(&msg.msg_id, now_millis()).await;
                if l.rung >= Rung::Spawn && matches!(new, Ok(readbot::store::Claim::New)) {
                    tokio::spawn(async move { drop(msg) });
                }
            }
        }
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"msgtype":"empty"}"#,
        )
            .into_response()
    }
    let secret = readbot::config::Secret::new(fake.config().app_secret.clone());
    let l = Arc::new(L {
        rung,
        verifier: readbot::dingtalk::signature::Verifier::new(&secret, 3_600_000),
        store: SledStore::open(dir).expect("sled"),
    });
    let app = axum::Router::new()
        .route("/dingtalk/callback", axum::routing::post(handler))
        .with_state(l);
    serve_router(app).await
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn signed_requests(fake: &FakeDingTalk, n: usize, tag: &str) -> Vec<SignedReq> {
    let (ts, sign) = fake.callback_headers();
    let seed = tag.bytes().fold(0u64, |h, b| splitmix64(h ^ u64::from(b)));
    (0..n)
        .map(|i| {
            let m = Mention {
                // DingTalk's msgIds look random; sequential ones would all
                // land in sled's rightmost leaf and overstate its cost.
                msg_id: format!("msg{:016x}{tag}{i}", splitmix64(i as u64 ^ seed)),
                ..Mention::new(
                    "cidBenchIntake+/==",
                    &format!("u{:05}", i % 500 + 1),
                    "Asker",
                    "help",
                )
            };
            let body = serde_json::to_vec(&fake.mention_body(&m)).expect("json");
            let mut raw = format!(
                "POST /dingtalk/callback HTTP/1.1\r\nhost: 127.0.0.1\r\n\
                 content-type: application/json; charset=utf-8\r\n\
                 timestamp: {ts}\r\nsign: {sign}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            raw.extend_from_slice(&body);
            SignedReq { raw }
        })
        .collect()
}

/// The intake sections queue every request of a round: the production
/// default (10,000 waiting answers, then 503) would refuse part of a
/// 20,000-request burst whose answers trickle at DingTalk's pace.
fn intake_env() -> Vec<(&'static str, String)> {
    vec![("READBOT_MAX_QUEUED_ANSWERS", "1000000".to_owned())]
}

/// One row of the intake table.
fn intake_row(handler: &str, round: usize, r: &LoadResult, answered: Option<f64>) {
    println!(
        "{:<12} {:>5} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>11}",
        handler,
        round,
        r.rps(),
        ms(percentile(&r.latencies, 50.0)),
        ms(percentile(&r.latencies, 99.0)),
        ms(percentile(&r.latencies, 100.0)),
        r.errors,
        answered.map_or_else(|| "-".to_owned(), |a| format!("{a:.0}"))
    );
}

async fn section_intake(o: &Opts) {
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .expect("fake");
    let warmup = 1000.min(o.intake_requests);
    let cap = Duration::from_secs(o.intake_secs);
    println!(
        "\n## 4. Callback intake: {} connections, {} requests per round (cap {} s), {} rounds, alternating",
        o.concurrency, o.intake_requests, o.intake_secs, o.intake_rounds
    );
    println!("bare       = an axum handler that reads the body and returns 200 (the floor)");
    println!("signed     = readbot's POST /dingtalk/callback: HMAC check, parse, de-dup claim (in memory after one sled read),");
    println!("             queued for one of 16 workers; a worker writes the claim, flushes (group commit) and answers; a reply");
    println!("             takes one 20 ms DingTalk round trip (stub), so answering goes on beside the intake at 16 replies per");
    println!("             20 ms, as in production");
    println!("dup        = the same requests again: refused as duplicates (signature, parse, de-dup read; no write, no task)");
    println!("signed+ans = like signed, but replies take no time: every answer (claim write + fsync, roster and name bookkeeping, template,");
    println!("             done mark) runs on the same two cores during the measurement; a stress case, not the intake floor");
    println!("answered/s = requests / time from the first request until every answer was delivered (signed: the backlog left");
    println!("             after the measurement drains with replies at 0 ms)");
    println!(
        "{:<12} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11}",
        "handler", "round", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "answered/s"
    );
    let mut bare_rps = Vec::new();
    let mut signed_rps = Vec::new();
    let mut busy_rps = Vec::new();
    let mut bare_p99 = Vec::new();
    let mut signed_p99 = Vec::new();
    let mut signed_p50 = Vec::new();
    let mut busy_p99 = Vec::new();
    let mut dup_rps = Vec::new();
    let bare_reqs = Arc::new(signed_requests(&fake, warmup + o.intake_requests, "bare"));
    for round in 1..=o.intake_rounds {
        // Bare axum handler.
        let (addr, stop) = bare_server().await;
        let total = bare_reqs.len();
        let _ = load(addr, bare_reqs.clone(), 0..warmup, o.concurrency, cap).await;
        let r = load(addr, bare_reqs.clone(), warmup..total, o.concurrency, cap).await;
        let _ = stop.send(());
        intake_row("bare", round, &r, None);
        bare_rps.push(r.rps());
        bare_p99.push(percentile(&r.latencies, 99.0));

        // readbot's signed callback (fresh store each round), replies at 20 ms,
        // then the same requests as duplicates.
        for (label, reply_ms) in [("signed", 20u64), ("signed+ans", 0)] {
            let tmp = tempfile::tempdir().expect("tempdir");
            let stub = Arc::new(StubApi::with_reply_ms(0));
            let stack = Stack::start_in(
                &fake,
                &tmp.path().join("data"),
                &intake_env(),
                Some(stub.clone()),
            )
            .await;
            let addr = stack.addr;
            let reqs = Arc::new(signed_requests(
                &fake,
                warmup + o.intake_requests,
                &format!("{label}{round}"),
            ));
            let total = reqs.len();
            let _ = load(addr, reqs.clone(), 0..warmup, o.concurrency, cap).await;
            wait_idle(&stack.bot).await;
            stub.set_reply_ms(reply_ms);
            let started = Instant::now();
            let r = load(addr, reqs.clone(), warmup..total, o.concurrency, cap).await;
            stub.set_reply_ms(0);
            wait_idle(&stack.bot).await;
            let answered = r.ok as f64 / started.elapsed().as_secs_f64();
            intake_row(label, round, &r, Some(answered));
            if reply_ms > 0 {
                signed_rps.push(r.rps());
                signed_p99.push(percentile(&r.latencies, 99.0));
                signed_p50.push(percentile(&r.latencies, 50.0));
                let d = load(addr, reqs, warmup..total, o.concurrency, cap).await;
                intake_row("dup", round, &d, None);
                dup_rps.push(d.rps());
            } else {
                busy_rps.push(r.rps());
                busy_p99.push(percentile(&r.latencies, 99.0));
            }
            stack.stop().await;
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, s, d, a) = (
        med(&mut bare_rps),
        med(&mut signed_rps),
        med(&mut dup_rps),
        med(&mut busy_rps),
    );
    println!(
        "median: bare {b:.0} req/s (p99 {:.2} ms), signed {s:.0} req/s (p50 {:.2} ms, p99 {:.2} ms); signed/bare = {:.2}",
        ms(median(&bare_p99)),
        ms(median(&signed_p50)),
        ms(median(&signed_p99)),
        s / b
    );
    println!(
        "duplicates (signature + parse + de-dup read only): {d:.0} req/s = {:.2} x bare",
        d / b
    );
    println!(
        "signed with every answer computed during the run: {a:.0} req/s (p99 {:.2} ms) = {:.2} x bare",
        ms(median(&busy_p99)),
        a / b
    );
    fake.shutdown();
}

async fn wait_idle(bot: &Bot) {
    let until = Instant::now() + Duration::from_secs(120);
    while bot.in_flight() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ----- 5: send API and durability -------------------------------------------------------------

async fn send_notice(
    client: reqwest::Client,
    url: String,
    group: &'static str,
    i: usize,
) -> (bool, Duration) {
    let t = Instant::now();
    let r = client
        .post(&url)
        .bearer_auth(API_TOKEN)
        .json(&json!({
            "openConversationId": group, "title": format!("Notice {i}"),
            "text": format!("### Notice {i}\nPlease read."), "author": "u00001"
        }))
        .send()
        .await;
    (r.map(|r| r.status() == 201).unwrap_or(false), t.elapsed())
}

async fn section_send(o: &Opts) {
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .expect("fake");
    let group = "cidBenchSend+/==";
    add_group(&fake, group, GroupKind::Inner, &member_list(10));
    // Lift the client's 20/s limiter: this measures readbot, not DingTalk's quota.
    let stack = Stack::start(
        &fake,
        &[("DINGTALK_RATE_LIMIT_PER_SEC", "1000000".to_owned())],
    )
    .await;
    let url = format!("http://{}/api/v1/notices", stack.addr);
    let client = http_client(o.concurrency);
    let send = move |i: usize| send_notice(client.clone(), url.clone(), group, i);
    for i in 0..20 {
        send(i).await;
    }
    println!(
        "\n## 5. Send API: POST /api/v1/notices -> fake send (0 ms) -> record_notice (sled transaction + flush) -> 201; {} notices, {} connections",
        o.send_requests, o.concurrency
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..o.concurrency {
        let next = next.clone();
        let send = send.clone();
        let total = o.send_requests;
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                out.push(send(i + 100).await);
            }
            out
        });
    }
    let mut lat = Vec::new();
    let mut failed = 0;
    while let Some(Ok(v)) = set.join_next().await {
        for (ok, d) in v {
            if ok {
                lat.push(d);
            } else {
                failed += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let recorded = stack.store.notice_count().await.unwrap_or(0);
    println!(
        "send API: {:.0} notices/s durable, p50 {:.2} ms, p99 {:.2} ms, failed {failed}, recorded {recorded}",
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 99.0)),
    );
    stack.stop().await;
    fake.shutdown();

    // The durability step alone, on a fresh store.
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SledStore::open(tmp.path()).expect("sled"));
    let notice = |i: usize| Notice {
        key: ProcessQueryKey::parse(format!("pqk{i:08}+/=")).expect("key"),
        group: OpenConversationId::parse(format!("cidDur{}", i % 50)).expect("group"),
        robot_code: RobotCode::parse("dingfakeappkey").expect("robot"),
        title: format!("Notice {i}"),
        author: Some(UserId::parse(format!("u{:05}", i % 500)).expect("user")),
        author_name: None,
        msg_key: "sampleMarkdown".to_owned(),
        sent_at: now_millis() + i as i64,
    };
    let seq = 300;
    let mut rec = Vec::new();
    for i in 0..seq {
        let t = Instant::now();
        store.record_notice(&notice(i)).await.expect("record");
        rec.push(t.elapsed());
    }
    let mut write = Vec::new();
    let mut flush = Vec::new();
    for i in 0..seq {
        let pair = [(
            UserId::parse(format!("n{i}")).expect("user"),
            format!("Name {i}"),
        )];
        let t = Instant::now();
        store.cache_names(&pair, now_millis()).await.expect("write");
        write.push(t.elapsed());
        let t = Instant::now();
        store.flush().await.expect("flush");
        flush.push(t.elapsed());
    }
    let conc_n = 4000;
    let next = Arc::new(AtomicUsize::new(seq));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..o.concurrency {
        let (store, next) = (store.clone(), next.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= seq + conc_n {
                    break;
                }
                store.record_notice(&notice(i)).await.expect("record");
            }
        });
    }
    while set.join_next().await.is_some() {}
    let conc_rate = conc_n as f64 / started.elapsed().as_secs_f64();
    println!(
        "record_notice alone: sequential p50 {:.3} ms ({:.0}/s); {} concurrent: {:.0}/s (flushes are shared)",
        ms(median(&rec)),
        1.0 / median(&rec).as_secs_f64(),
        o.concurrency,
        conc_rate
    );
    println!(
        "durability step: flush (fsync) after a one-key write p50 {:.3} ms, p99 {:.3} ms; the same write without flush p50 {:.4} ms -> flush is {:.0}% of a sequential record_notice",
        ms(median(&flush)),
        ms(percentile(&flush, 99.0)),
        ms(median(&write)),
        100.0 * median(&flush).as_secs_f64() / median(&rec).as_secs_f64().max(1e-9)
    );
}

// ----- 6: memory (child processes) ---------------------------------------------------------

fn child(args: &[&str]) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .arg("--child")
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| json!({ "error": format!("child {args:?} failed: {}", out.status) }))
}

fn hwm_mib(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_u64)
        .map(|x| format!("{:.1}", mib(x, false)))
        .unwrap_or_else(|| "?".into())
}

async fn section_memory(o: &Opts) {
    println!(
        "\n## 6. Memory: peak RSS (VmHWM) of a child process per scenario; store size on disk"
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("store");
    let dir_s = dir.display().to_string();
    let idle = child(&["idle"]);
    println!(
        "readbot idle (empty store, fake in process):            peak RSS {} MiB",
        hwm_mib(&idle, "hwm_kib")
    );
    let fill = child(&[
        "fill",
        &o.notices.to_string(),
        &dir_s,
        &o.concurrency.to_string(),
    ]);
    println!(
        "store {} notices ({} writers, each flushed): {:.1} s, peak RSS {} MiB, sled size_on_disk {:.1} MiB, folder {:.1} MiB",
        o.notices,
        o.concurrency,
        fill.get("secs").and_then(Value::as_f64).unwrap_or(0.0),
        hwm_mib(&fill, "hwm_kib"),
        mib(fill.get("size_on_disk").and_then(Value::as_u64).unwrap_or(0), true),
        mib(fill.get("dir_bytes").and_then(Value::as_u64).unwrap_or(0), true),
    );
    let serve = child(&["serve-stored", &dir_s]);
    println!(
        "readbot serving with those {} notices stored: peak RSS after open {} MiB, after listing a group {} MiB, after a 500-member summary {} MiB",
        o.notices,
        hwm_mib(&serve, "hwm_open_kib"),
        hwm_mib(&serve, "hwm_list_kib"),
        hwm_mib(&serve, "hwm_served_kib"),
    );
    println!(
        "  then a scan of all notices (Store::notice_count = {}, not on any serving path): peak RSS {} MiB",
        serve.get("count").and_then(Value::as_u64).unwrap_or(0),
        hwm_mib(&serve, "hwm_kib"),
    );
    let big = o.sizes.iter().copied().max().unwrap_or(10_000).max(1000);
    let sum = child(&["summary", &big.to_string()]);
    println!(
        "{big}-member summary (fake with {big} members in the same process): peak RSS before {} MiB, after cold + warm summary {} MiB",
        hwm_mib(&sum, "hwm_before_kib"),
        hwm_mib(&sum, "hwm_kib"),
    );
    if let Some(e) = [&idle, &fill, &serve, &sum]
        .iter()
        .find_map(|v| v.get("error"))
    {
        println!("  ! {e}");
    }
}

fn emit(v: Value) {
    println!("RESULT {v}");
}

async fn child_main(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| format!("missing child argument {i}"))
    };
    match args.first().map(String::as_str) {
        Some("idle") => {
            let fake = FakeDingTalk::start(FakeConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let s = Stack::start(&fake, &[]).await;
            let r = s
                .http
                .get(format!("http://{}/healthz", s.addr))
                .send()
                .await;
            let ok = r.map(|r| r.status() == 200).unwrap_or(false);
            emit(json!({ "hwm_kib": status_kib("VmHWM:"), "ok": ok }));
            s.stop().await;
        }
        Some("fill") => {
            let n: usize = arg(1)?.parse().map_err(|_| "bad count")?;
            let dir = PathBuf::from(arg(2)?);
            let conc: usize = arg(3)?.parse().map_err(|_| "bad concurrency")?;
            let store = Arc::new(SledStore::open(&dir).map_err(|e| e.to_string())?);
            let started = Instant::now();
            let next = Arc::new(AtomicUsize::new(0));
            let base = now_millis() - 86_400_000;
            let mut set = JoinSet::new();
            for _ in 0..conc {
                let (store, next) = (store.clone(), next.clone());
                set.spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok::<(), String>(());
                        }
                        let notice = Notice {
                            key: ProcessQueryKey::parse(format!("pqkFill{i:08}+/="))
                                .map_err(|e| e.to_string())?,
                            group: OpenConversationId::parse(format!("cidFill{:04}==", i % 1000))
                                .map_err(|e| e.to_string())?,
                            robot_code: RobotCode::parse("dingfakeappkey")
                                .map_err(|e| e.to_string())?,
                            title: format!("Weekly notice number {i}: please read before Friday"),
                            author: Some(
                                UserId::parse(format!("u{:05}", i % 5000 + 1))
                                    .map_err(|e| e.to_string())?,
                            ),
                            author_name: Some(format!("Member {:05}", i % 5000 + 1)),
                            msg_key: "sampleMarkdown".to_owned(),
                            sent_at: base + i as i64,
                        };
                        store
                            .record_notice(&notice)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                });
            }
            while let Some(j) = set.join_next().await {
                j.map_err(|e| e.to_string())??;
            }
            let secs = started.elapsed().as_secs_f64();
            store.flush().await.map_err(|e| e.to_string())?;
            emit(json!({
                "secs": secs,
                "hwm_kib": status_kib("VmHWM:"),
                "size_on_disk": store.size_on_disk(),
                "dir_bytes": dir_size(&dir),
            }));
        }
        Some("serve-stored") => {
            let dir = PathBuf::from(arg(1)?);
            let fake = FakeDingTalk::start(FakeConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let group = "cidFill0007==";
            add_group(&fake, group, GroupKind::Inner, &member_list(500));
            let s = Stack::start_in(&fake, &dir, &[], None).await;
            let hwm_open = status_kib("VmHWM:");
            let list = s
                .http
                .get(format!(
                    "http://{}/api/v1/notices?openConversationId=cidFill0007%3D%3D&limit=500",
                    s.addr
                ))
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let listed = list.status() == 200;
            let hwm_list = status_kib("VmHWM:");
            let people = member_list(500);
            let readers: Vec<&str> = people[..450].iter().map(|(u, _)| u.as_str()).collect();
            let before = fake.sent_count();
            s.seed_notice(group, "u00001", &readers).await;
            let body = serde_json::to_vec(
                &fake.mention_body(&Mention::new(group, "u00001", "A", "who read")),
            )
            .map_err(|e| e.to_string())?;
            s.post_callback(body).await;
            let replied = fake.wait_sent(before + 2, Duration::from_secs(60)).await;
            let hwm_served = status_kib("VmHWM:");
            // Last, separately: a scan of every notice (Store::notice_count;
            // no serving path of readbot does this).
            let count = s.store.notice_count().await.map_err(|e| e.to_string())?;
            emit(json!({
                "hwm_open_kib": hwm_open, "hwm_list_kib": hwm_list, "hwm_served_kib": hwm_served,
                "hwm_kib": status_kib("VmHWM:"), "rss_kib": status_kib("VmRSS:"),
                "count": count, "ok": listed && replied
            }));
            s.stop().await;
        }
        Some("summary") => {
            let n: usize = arg(1)?.parse().map_err(|_| "bad size")?;
            let fake = FakeDingTalk::start(FakeConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let group = "cidMem+/==";
            let people = member_list(n);
            add_group(&fake, group, GroupKind::Inner, &people);
            let readers: Vec<&str> = people[..n * 9 / 10]
                .iter()
                .map(|(u, _)| u.as_str())
                .collect();
            let s =
                Stack::start(&fake, &[("DINGTALK_RATE_LIMIT_PER_SEC", "1000".to_owned())]).await;
            let hwm_before = status_kib("VmHWM:");
            let expect = format!("{}/{n}", readers.len());
            let a = one_summary(&s, group, "u00001", &readers, &expect, Duration::ZERO).await;
            let b = one_summary(&s, group, "u00001", &readers, &expect, Duration::ZERO).await;
            emit(
                json!({ "hwm_before_kib": hwm_before, "hwm_kib": status_kib("VmHWM:"), "ok": a.correct && b.correct }),
            );
            s.stop().await;
        }
        Some("profile-dup") => {
            // For `perf record`: N callbacks once, then the same N again 5 times as duplicates.
            let n: usize = arg(1)?.parse().map_err(|_| "bad count")?;
            let fake = FakeDingTalk::start(FakeConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            let s = Stack::start_in(
                &fake,
                &tmp.path().join("data"),
                &[],
                Some(Arc::new(StubApi::default())),
            )
            .await;
            let reqs = Arc::new(signed_requests(&fake, n, "dup"));
            let _ = load(s.addr, reqs.clone(), 0..n, 64, Duration::from_secs(120)).await;
            wait_idle(&s.bot).await;
            let mut rps = Vec::new();
            for _ in 0..5 {
                let r = load(s.addr, reqs.clone(), 0..n, 64, Duration::from_secs(120)).await;
                rps.push(r.rps());
            }
            emit(json!({ "dup_rps": rps }));
            s.stop().await;
        }
        Some("profile-bare") => {
            // For `perf record`: the bare handler under the same load.
            let n: usize = arg(1)?.parse().map_err(|_| "bad count")?;
            let fake = FakeDingTalk::start(FakeConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let reqs = Arc::new(signed_requests(&fake, n, "bare"));
            let (addr, stop) = bare_server().await;
            let mut rps = Vec::new();
            for _ in 0..5 {
                let r = load(addr, reqs.clone(), 0..n, 64, Duration::from_secs(120)).await;
                rps.push(r.rps());
            }
            let _ = stop.send(());
            emit(json!({ "bare_rps": rps }));
        }
        Some("ladder") => {
            // bare, then each step of the callback added: req/s of each, interleaved rounds.
            let n: usize = arg(1)?.parse().map_err(|_| "bad count")?;
            let rounds: usize = arg(2).ok().and_then(|a| a.parse().ok()).unwrap_or(3);
            let fake = FakeDingTalk::start(FakeConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let names = ["bare", "+verify", "+parse", "+claim", "+spawn", "readbot"];
            let mut rps: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
            for round in 0..rounds {
                for (i, name) in names.iter().enumerate() {
                    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let reqs = Arc::new(signed_requests(&fake, n, &format!("{name}{round}")));
                    let r = match i {
                        0 => {
                            let (addr, stop) = bare_server().await;
                            let r = load(addr, reqs, 0..n, 64, Duration::from_secs(60)).await;
                            let _ = stop.send(());
                            r
                        }
                        1..=4 => {
                            let rung = [Rung::Verify, Rung::Parse, Rung::Claim, Rung::Spawn][i - 1];
                            let (addr, stop) = ladder_server(rung, &fake, tmp.path()).await;
                            let r = load(addr, reqs, 0..n, 64, Duration::from_secs(60)).await;
                            let _ = stop.send(());
                            r
                        }
                        _ => {
                            let stub = Arc::new(StubApi::with_reply_ms(20));
                            let s = Stack::start_in(
                                &fake,
                                &tmp.path().join("data"),
                                &intake_env(),
                                Some(stub.clone()),
                            )
                            .await;
                            let r = load(s.addr, reqs, 0..n, 64, Duration::from_secs(60)).await;
                            stub.set_reply_ms(0);
                            wait_idle(&s.bot).await;
                            s.stop().await;
                            r
                        }
                    };
                    rps[i].push(r.rps());
                }
            }
            let bare = median(
                &rps[0]
                    .iter()
                    .map(|&x| Duration::from_secs_f64(x))
                    .collect::<Vec<_>>(),
            )
            .as_secs_f64();
            for (i, name) in names.iter().enumerate() {
                let m = median(
                    &rps[i]
                        .iter()
                        .map(|&x| Duration::from_secs_f64(x))
                        .collect::<Vec<_>>(),
                )
                .as_secs_f64();
                println!(
                    "{name:<10} {m:>9.0} req/s  {:.2} x bare   runs {:?}",
                    m / bare,
                    rps[i].iter().map(|x| x.round()).collect::<Vec<_>>()
                );
            }
        }
        Some("steps") => {
            // Each intake step alone, single-threaded: where a signed callback's CPU goes.
            let n: usize = arg(1)?.parse().map_err(|_| "bad count")?;
            intake_steps(n).await;
        }
        Some("profile-summary") => {
            // For `perf record`: warm summaries at 0 ms RTT, as CPU-bound as it gets.
            let n: usize = arg(1)?.parse().map_err(|_| "bad size")?;
            let runs: usize = arg(2)?.parse().map_err(|_| "bad runs")?;
            let fake = FakeDingTalk::start(FakeConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            let group = "cidProf+/==";
            let people = member_list(n);
            add_group(&fake, group, GroupKind::Inner, &people);
            let readers: Vec<&str> = people[..n * 9 / 10]
                .iter()
                .map(|(u, _)| u.as_str())
                .collect();
            let s = Stack::start(
                &fake,
                &[("DINGTALK_RATE_LIMIT_PER_SEC", "100000".to_owned())],
            )
            .await;
            let expect = format!("{}/{n}", readers.len());
            let mut lat = Vec::new();
            for _ in 0..runs {
                lat.push(
                    one_summary(&s, group, "u00001", &readers, &expect, Duration::ZERO)
                        .await
                        .latency,
                );
            }
            emit(json!({ "p50_ms": ms(median(&lat)) }));
            s.stop().await;
        }
        Some("profile-intake") => {
            let n: usize = arg(1)?.parse().map_err(|_| "bad count")?;
            let fake = FakeDingTalk::start(FakeConfig::default())
                .await
                .map_err(|e| e.to_string())?;
            // Optional second argument: replies take this many ms during the load.
            let stub = Arc::new(StubApi::with_reply_ms(
                arg(2).ok().and_then(|a| a.parse().ok()).unwrap_or(0),
            ));
            let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
            let s = Stack::start_in(
                &fake,
                &tmp.path().join("data"),
                &intake_env(),
                Some(stub.clone()),
            )
            .await;
            let reqs = signed_requests(&fake, n, "prof");
            let r = load(s.addr, Arc::new(reqs), 0..n, 64, Duration::from_secs(120)).await;
            stub.set_reply_ms(0);
            wait_idle(&s.bot).await;
            emit(json!({ "rps": r.rps(), "p99_ms": ms(percentile(&r.latencies, 99.0)) }));
            s.stop().await;
        }
        other => return Err(format!("unknown child scenario {other:?}")),
    }
    Ok(())
}

/// Times `f` over `n` iterations and prints ns per call.
fn per_call(label: &str, n: usize, mut f: impl FnMut(usize)) {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    println!(
        "{label:<44} {:>9.0} ns",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}

async fn intake_steps(n: usize) {
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .expect("fake");
    let reqs = signed_requests(&fake, n, "steps");
    let (ts, sign) = fake.callback_headers();
    let secret = readbot::config::Secret::new(FakeConfig::default().app_secret.clone());
    let verifier = readbot::dingtalk::signature::Verifier::new(&secret, 3_600_000);
    let bodies: Vec<Vec<u8>> = reqs
        .iter()
        .map(|r| {
            let at = r.raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
            r.raw[at..].to_vec()
        })
        .collect();
    println!("body bytes: {}", bodies[0].len());
    let now = now_millis();
    per_call("signature verify", n, |_| {
        assert!(verifier.verify(Some(&ts), Some(&sign), now).is_ok());
    });
    per_call("callback::parse", n, |i| {
        assert!(readbot::dingtalk::callback::parse(&bodies[i]).is_ok());
    });
    per_call("serde_json IgnoredAny (scan only)", n, |i| {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&bodies[i]).is_ok());
    });
    println!("{}", String::from_utf8_lossy(&bodies[0]));
    per_call("serde_json::Value parse", n, |i| {
        assert!(serde_json::from_slice::<Value>(&bodies[i]).is_ok());
    });
    let dir = tempfile::tempdir().expect("tmp");
    let db = sled::Config::new().path(dir.path()).open().expect("sled");
    let t = db.open_tree("dedup").expect("tree");
    let ids: Vec<String> = (0..n)
        .map(|i| format!("msg{:016x}x{i}", splitmix64(i as u64)))
        .collect();
    per_call("sled compare_and_swap (new key)", n, |i| {
        let _ = t.compare_and_swap(ids[i].as_bytes(), None::<&[u8]>, Some(&b"0123456789"[..]));
    });
    per_call("sled compare_and_swap (existing key)", n, |i| {
        let _ = t.compare_and_swap(ids[i].as_bytes(), None::<&[u8]>, Some(&b"0123456789"[..]));
    });
    per_call("sled insert (existing key)", n, |i| {
        let _ = t.insert(ids[i].as_bytes(), &b"1123456789"[..]);
    });
    per_call("sled get", n, |i| {
        let _ = t.get(ids[i].as_bytes());
    });
    let t2 = db.open_tree("dedup2").expect("tree");
    per_call("sled insert (new key)", n, |i| {
        let _ = t2.insert(ids[i].as_bytes(), &b"0123456789"[..]);
    });
    let mut set = std::collections::HashMap::new();
    let m = std::sync::Mutex::new(());
    per_call("mutex + HashMap insert (new key)", n, |i| {
        let _g = m.lock();
        set.insert(ids[i].clone(), 0u64);
    });
    per_call("tracing info_span + enter", n, |i| {
        let span = tracing::info_span!("http", method = "POST", path = %ids[i]);
        let _e = span.enter();
    });
    per_call("tracing info! event", n, |_| {
        tracing::info!("duplicate delivery ignored");
    });
    let t = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..n {
        set.spawn(async {});
    }
    while set.join_next().await.is_some() {}
    println!(
        "{:<44} {:>9.0} ns",
        "tokio spawn + join (empty task)",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}

// ----- main ------------------------------------------------------------------------------------

fn init_logging() {
    // Production logs at info; keep that cost in the figures, but write nowhere.
    let filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".to_owned());
    if filter != "off" {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::sink)
            .try_init();
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if args.first().map(String::as_str) == Some("--child") {
        return match rt.block_on(child_main(&args[1..])) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let o = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!("# readbot budget benchmark");
    println!(
        "machine: {} cores, {}; started {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |s| s.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_else(|| "unknown CPU".into()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| format!("loadavg {}", s.trim()))
            .unwrap_or_default()
    );
    println!("options: {o:?}");
    let started = Instant::now();
    rt.block_on(async {
        if o.sections.contains("summary") {
            section_summary(&o).await;
        }
        if o.sections.contains("repeat") {
            section_repeat(&o).await;
        }
        if o.sections.contains("intake") {
            section_intake(&o).await;
        }
        if o.sections.contains("send") {
            section_send(&o).await;
        }
        if o.sections.contains("memory") {
            section_memory(&o).await;
        }
    });
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    std::process::ExitCode::SUCCESS
}
