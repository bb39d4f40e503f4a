//! Section 7: reads by push. One group (10,000 members by default, 90 %
//! read), the same summary answered from stored read events (intake
//! verified, no query call) and through the query path (no event intake),
//! as a ratio to one reply round trip.

use crate::common::{calls_str, median, ms, BenchGroup, Calls, Stack};
use crate::opts::Opts;
use crate::summary::{ask_summary, one_summary};
use readbot::domain::{now_millis, ProcessQueryKey, ReadRecord, ReadSource, UserId};
use readbot::fake::GroupKind;
use std::time::Duration;

/// HTTP event push keys (test vector B's EncodingAESKey): with them readbot's
/// event intake is up from the process start.
const EVENT_KEYS: [(&str, &str); 2] = [
    ("DINGTALK_EVENT_TOKEN", "123456"),
    (
        "DINGTALK_EVENT_AES_KEY",
        "1234567890123456789012345678901234567890123",
    ),
];

struct Row {
    label: &'static str,
    runs: Vec<Duration>,
    calls: Calls,
    correct: bool,
}

/// Stores a read event for every reader of `key` (what event intake would
/// have stored; one write, so seeding does not dominate the run).
async fn push_reads(stack: &Stack, key: &ProcessQueryKey, readers: &[&str]) {
    let at = now_millis();
    let reads: Vec<ReadRecord> = readers
        .iter()
        .map(|u| ReadRecord {
            user_id: UserId::parse(*u).expect("user id"),
            at,
            source: ReadSource::Event,
        })
        .collect();
    stack.store.record_reads(key, &reads).await.expect("stored");
}

async fn run_rows(o: &Opts, members: usize) -> (Duration, Vec<Row>) {
    let g = BenchGroup::start(
        "cidBenchEvents+/==",
        GroupKind::Inner,
        members,
        o.read_percent,
    )
    .await
    .expect("fake");
    let (fake, group, asker) = (&g.fake, g.group.as_str(), g.asker());
    let readers = g.readers();
    let expect = format!("{}/{members}", g.readers_n);
    let mut rows = Vec::new();
    let base: Vec<(&str, String)> = vec![("READBOT_RECEIPTS_CACHE_SECS", "0".to_owned())];
    // The client's limiter refills between runs (as in section 1).
    let refill = Duration::from_millis(1200);

    // Query path: no event intake, every summary pages through the reads.
    let stack = Stack::start(fake, &base).await;
    let mut row = Row {
        label: "query path (no events)",
        runs: Vec::new(),
        calls: Calls::new(),
        correct: true,
    };
    for _ in 0..o.warm_runs {
        tokio::time::sleep(refill).await;
        let r = one_summary(&stack, group, asker, &readers, &expect, o.rtt).await;
        row.runs.push(r.latency);
        row.correct &= r.correct;
        row.calls = r.calls;
    }
    stack.stop().await;
    rows.push(row);

    // Reads by push: one verifying pass, then summaries from stored events;
    // with the member list the verifying pass kept (the default), then with
    // the roster cache off (the list fetched on every summary).
    for (label, roster_cache) in [
        ("read events (verified), cached member list", None),
        ("read events (verified), roster cache off", Some("0")),
    ] {
        let mut extra = base.clone();
        extra.extend(EVENT_KEYS.iter().map(|(k, v)| (*k, (*v).to_owned())));
        extra.extend(roster_cache.map(|v| ("READBOT_ROSTER_CACHE_SECS", v.to_owned())));
        let stack = Stack::start(fake, &extra).await;
        let warm_up = stack.seed_notice(group, asker, &readers).await;
        push_reads(&stack, &warm_up.key, &readers).await;
        let verify = ask_summary(&stack, group, asker, &expect, Duration::ZERO).await;
        let mut row = Row {
            label,
            runs: Vec::new(),
            calls: Calls::new(),
            correct: verify.correct,
        };
        for _ in 0..o.warm_runs {
            tokio::time::sleep(refill).await;
            // A fresh notice each run; its reads arrived as events.
            let notice = stack.seed_notice(group, asker, &readers).await;
            push_reads(&stack, &notice.key, &readers).await;
            let r = ask_summary(&stack, group, asker, &expect, o.rtt).await;
            row.runs.push(r.latency);
            row.correct &= r.correct && r.calls.get("query") == Some(&0);
            row.calls = r.calls;
        }
        stack.stop().await;
        rows.push(row);
    }
    fake.shutdown();
    (o.rtt, rows)
}

pub(crate) async fn section_events(o: &Opts) {
    let members = o.events_members;
    println!(
        "\n## 7. Reads by push: {members} members, {}% read, RTT {} ms, production limit (20/s); {} runs each",
        o.read_percent,
        ms(o.rtt),
        o.warm_runs
    );
    println!("x RTT = ratio of the median to one reply round trip (the floor of any summary)");
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>7} | calls (token/query/inner/scene/user-get/reply/send)",
        "reads from", "p50 ms", "min ms", "max ms", "x RTT"
    );
    let (rtt, rows) = run_rows(o, members).await;
    for r in &rows {
        let p50 = median(&r.runs);
        println!(
            "{:<44} {:>9.1} {:>9.1} {:>9.1} {:>7.1} | {}{}",
            r.label,
            ms(p50),
            ms(r.runs.iter().min().copied().unwrap_or_default()),
            ms(r.runs.iter().max().copied().unwrap_or_default()),
            if rtt.is_zero() {
                0.0
            } else {
                p50.as_secs_f64() / rtt.as_secs_f64()
            },
            calls_str(&r.calls),
            if r.correct { "" } else { "  (WRONG REPLY)" }
        );
    }
}
