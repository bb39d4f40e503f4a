//! Sections 1 and 2: summary latency against the latency floor, cold and
//! warm, and DingTalk calls per summary against the call floor.

use crate::common::{
    calls_str, http_client, median, ms, pages, snapshot, BenchGroup, Calls, Stack, APIS,
};
use crate::opts::Opts;
use readbot::fake::{FakeDingTalk, GroupKind, Mention};
use serde_json::json;
use std::time::{Duration, Instant};

pub(crate) struct SummaryRun {
    pub(crate) latency: Duration,
    pub(crate) calls: Calls,
    pub(crate) correct: bool,
}

/// One "who read my last notice?" on a fresh notice; timed from the
/// callback's 200 to the moment the fake records the reply.
pub(crate) async fn one_summary(
    stack: &Stack,
    group: &str,
    asker: &str,
    readers: &[&str],
    expect: &str,
    rtt: Duration,
) -> SummaryRun {
    stack.seed_notice(group, asker, readers).await;
    ask_summary(stack, group, asker, expect, rtt).await
}

/// "who read my last notice?" about the asker's newest notice (already
/// seeded); timed from the callback's 200 to the reply.
pub(crate) async fn ask_summary(
    stack: &Stack,
    group: &str,
    asker: &str,
    expect: &str,
    rtt: Duration,
) -> SummaryRun {
    let fake = &stack.fake;
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
    let g = BenchGroup::start(
        &format!("cidBench{members}+/=="),
        GroupKind::Inner,
        members,
        o.read_percent,
    )
    .await
    .expect("fake");
    let (fake, group, asker) = (&g.fake, g.group.as_str(), g.asker());
    let readers_n = g.readers_n;
    let readers = g.readers();
    let expect = format!("{readers_n}/{members}");
    let extra = [("DINGTALK_RATE_LIMIT_PER_SEC", limit.to_string())];
    // The client's bucket starts full; let it refill between runs so every
    // run sees a full bucket (an ask right after another would not).
    let per_run = pages(readers_n, 200) + pages(members, 1000) + 2;
    let refill = Duration::from_secs_f64(per_run as f64 / f64::from(limit.max(1)))
        + Duration::from_millis(50);
    let eff_rtt = effective_rtt(fake, o.rtt).await;
    tokio::time::sleep(refill).await;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut last: Option<Stack> = None;
    for _ in 0..o.cold_runs {
        if let Some(s) = last.take() {
            s.stop().await;
        }
        let stack = Stack::start(fake, &extra).await;
        cold.push(one_summary(&stack, group, asker, &readers, &expect, o.rtt).await);
        last = Some(stack);
    }
    let stack = last.expect("at least one cold run");
    for _ in 0..o.warm_runs {
        tokio::time::sleep(refill).await;
        warm.push(one_summary(&stack, group, asker, &readers, &expect, o.rtt).await);
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
    let g = BenchGroup::start(
        "cidBenchPlain+/==",
        GroupKind::Plain,
        members,
        o.read_percent,
    )
    .await
    .expect("fake");
    let (fake, group, asker) = (&g.fake, g.group.as_str(), g.asker());
    let readers_n = g.readers_n;
    let readers = g.readers();
    let stack = Stack::start(fake, &[("DINGTALK_RATE_LIMIT_PER_SEC", "1000".to_owned())]).await;
    // The learned roster holds whoever readbot has seen: author and readers.
    let expect = format!("{readers_n}/{readers_n}");
    let a = one_summary(&stack, group, asker, &readers, &expect, Duration::ZERO).await;
    let b = one_summary(&stack, group, asker, &readers, &expect, Duration::ZERO).await;
    stack.stop().await;
    fake.shutdown();
    (a.calls, b.calls, a.correct && b.correct)
}

pub(crate) async fn section_summary(o: &Opts) {
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
