//! Section 3: many people asking about the same notice (single-flight and
//! the receipts cache).

use crate::common::{ms, pages, snapshot, BenchGroup, Stack};
use crate::opts::Opts;
use readbot::fake::{GroupKind, Mention};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

pub(crate) async fn section_repeat(o: &Opts) {
    let members = 500;
    let g = BenchGroup::start(
        "cidBenchRepeat+/==",
        GroupKind::Inner,
        members,
        o.read_percent,
    )
    .await
    .expect("fake");
    let (fake, group, people) = (&g.fake, g.group.as_str(), &g.people);
    let readers_n = g.readers_n;
    let stack = Stack::start(
        fake,
        &[("READBOT_RECEIPTS_CACHE_SECS", o.cache_secs.to_string())],
    )
    .await;
    stack.seed_notice(group, g.asker(), &g.readers()).await;
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
        let c = snapshot(fake);
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
