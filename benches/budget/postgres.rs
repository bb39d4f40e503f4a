//! Section 8: the store backends side by side (issue 14): the send API,
//! callback intake and a 3,000-member summary, each on sled and on
//! PostgreSQL (a fresh database of a throwaway cluster, Unix socket, the
//! same machine) in the same run, printed with the PostgreSQL / sled ratio.
//! Without PostgreSQL installed the PostgreSQL half is skipped with one line.

use crate::common::{http_client, median, ms, percentile, BenchGroup, Stack};
use crate::intake::{intake_env, load, signed_requests, wait_idle, StubApi};
use crate::opts::Opts;
use crate::send::send_notice;
use crate::summary::one_summary;
use readbot::fake::{FakeConfig, FakeDingTalk, GroupKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Members of the summary's group.
const MEMBERS: usize = 3000;

/// One backend: its name and the settings that select it.
struct Backend {
    name: &'static str,
    env: Vec<(&'static str, String)>,
}

impl Backend {
    fn sled() -> Self {
        Backend {
            name: "sled",
            env: Vec::new(),
        }
    }

    /// PostgreSQL on a fresh database; `None` (after one printed line) when
    /// it is not installed.
    async fn postgres() -> Option<Self> {
        let pg = readbot::store::pg_test_cluster::fresh_database().await?;
        Some(Backend {
            name: "PostgreSQL",
            env: vec![("READBOT_STORE_URL", pg.url.expose().to_owned())],
        })
    }

    fn with(&self, more: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        self.env
            .iter()
            .cloned()
            .chain(more.iter().cloned())
            .collect()
    }
}

/// What one backend measured.
#[derive(Default)]
struct Figures {
    send_rate: f64,
    send_p50: Duration,
    send_p99: Duration,
    intake_rate: f64,
    intake_p50: Duration,
    intake_p99: Duration,
    answered_rate: f64,
    summary_cold: Duration,
    summary_warm: Duration,
}

async fn send_api(o: &Opts, b: &Backend, f: &mut Figures) {
    let group = "cidBenchStoreSend+/==";
    let g = BenchGroup::start(group, GroupKind::Inner, 10, 0)
        .await
        .expect("fake");
    let stack = Stack::start(
        &g.fake,
        &b.with(&[("DINGTALK_RATE_LIMIT_PER_SEC", "1000000".to_owned())]),
    )
    .await;
    let url = format!("http://{}/api/v1/notices", stack.addr);
    let client = http_client(o.concurrency);
    for i in 0..20 {
        send_notice(client.clone(), url.clone(), group, i).await;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..o.concurrency {
        let (next, client, url, total) =
            (next.clone(), client.clone(), url.clone(), o.send_requests);
        set.spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                out.push(send_notice(client.clone(), url.clone(), group, i + 100).await);
            }
            out
        });
    }
    let mut lat = Vec::new();
    while let Some(Ok(v)) = set.join_next().await {
        lat.extend(v.into_iter().filter(|(ok, _)| *ok).map(|(_, d)| d));
    }
    let elapsed = started.elapsed();
    f.send_rate = lat.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    f.send_p50 = percentile(&lat, 50.0);
    f.send_p99 = percentile(&lat, 99.0);
    if lat.len() < o.send_requests {
        eprintln!(
            "  ! {}: {} of {} sends failed",
            b.name,
            o.send_requests - lat.len(),
            o.send_requests
        );
    }
    stack.stop().await;
    g.fake.shutdown();
}

async fn intake(o: &Opts, b: &Backend, f: &mut Figures) {
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .expect("fake");
    let stub = Arc::new(StubApi::with_reply_ms(20));
    let stack = Stack::start_fresh(&fake, &b.with(&intake_env()), Some(stub)).await;
    let warmup = Arc::new(signed_requests(&fake, 1000.min(o.intake_requests), "pgw"));
    load(
        stack.addr,
        warmup.clone(),
        0..warmup.len(),
        o.concurrency,
        Duration::from_secs(o.intake_secs),
    )
    .await;
    wait_idle(&stack.bot).await;
    let reqs = Arc::new(signed_requests(&fake, o.intake_requests, b.name));
    let started = Instant::now();
    let r = load(
        stack.addr,
        reqs.clone(),
        0..reqs.len(),
        o.concurrency,
        Duration::from_secs(o.intake_secs),
    )
    .await;
    wait_idle(&stack.bot).await;
    f.intake_rate = r.rps();
    f.intake_p50 = percentile(&r.latencies, 50.0);
    f.intake_p99 = percentile(&r.latencies, 99.0);
    f.answered_rate = r.ok as f64 / started.elapsed().as_secs_f64().max(1e-9);
    if r.errors > 0 {
        eprintln!("  ! {}: {} intake errors", b.name, r.errors);
    }
    stack.stop().await;
    fake.shutdown();
}

async fn summary(o: &Opts, b: &Backend, f: &mut Figures) {
    let g = BenchGroup::start(
        "cidBenchStoreSummary+/==",
        GroupKind::Inner,
        MEMBERS,
        o.read_percent,
    )
    .await
    .expect("fake");
    let stack = Stack::start(
        &g.fake,
        &b.with(&[("DINGTALK_RATE_LIMIT_PER_SEC", "1000".to_owned())]),
    )
    .await;
    let expect = format!("{}/{MEMBERS}", g.readers_n);
    let readers = g.readers();
    let cold = one_summary(&stack, &g.group, g.asker(), &readers, &expect, o.rtt).await;
    let mut warm = Vec::new();
    for _ in 0..o.warm_runs {
        let r = one_summary(&stack, &g.group, g.asker(), &readers, &expect, o.rtt).await;
        warm.push(r.latency);
    }
    f.summary_cold = cold.latency;
    f.summary_warm = median(&warm);
    stack.stop().await;
    g.fake.shutdown();
}

async fn measure(o: &Opts, b: &Backend) -> Figures {
    let mut f = Figures::default();
    send_api(o, b, &mut f).await;
    intake(o, b, &mut f).await;
    summary(o, b, &mut f).await;
    f
}

pub(crate) async fn section_postgres(o: &Opts) {
    println!(
        "\n## 8. Store backends: sled next to PostgreSQL (throwaway local cluster, Unix socket, fsync off), same run; \
         send API {} notices and intake {} signed callbacks (stub replies 20 ms) on {} connections, \
         a {MEMBERS}-member summary ({}% read, RTT {} ms, limit 1000/s: 1 cold + median of {} warm)",
        o.send_requests, o.intake_requests, o.concurrency, o.read_percent, o.rtt.as_millis(), o.warm_runs
    );
    let sled = measure(o, &Backend::sled()).await;
    let Some(pg) = Backend::postgres().await else {
        println!("PostgreSQL part skipped: initdb not found (install Debian's postgresql package)");
        return;
    };
    let pg_figures = measure(o, &pg).await;
    println!(
        "{:<34} {:>11} {:>11} {:>9}",
        "", "sled", "PostgreSQL", "PG/sled"
    );
    let rate = |label: &str, s: f64, p: f64| {
        println!("{label:<34} {s:>11.0} {p:>11.0} {:>9.2}", p / s.max(1e-9));
    };
    let time = |label: &str, s: Duration, p: Duration| {
        println!(
            "{label:<34} {:>11.2} {:>11.2} {:>9.2}",
            ms(s),
            ms(p),
            p.as_secs_f64() / s.as_secs_f64().max(1e-9)
        );
    };
    let (s, p) = (&sled, &pg_figures);
    rate("send API, notices/s", s.send_rate, p.send_rate);
    time("send API p50, ms", s.send_p50, p.send_p50);
    time("send API p99, ms", s.send_p99, p.send_p99);
    rate("intake, callbacks/s", s.intake_rate, p.intake_rate);
    time("intake p50, ms", s.intake_p50, p.intake_p50);
    time("intake p99, ms", s.intake_p99, p.intake_p99);
    rate("intake answered, /s", s.answered_rate, p.answered_rate);
    time(
        &format!("summary {MEMBERS} cold, ms"),
        s.summary_cold,
        p.summary_cold,
    );
    time(
        &format!("summary {MEMBERS} warm, ms"),
        s.summary_warm,
        p.summary_warm,
    );
}
