//! Section 5: the send API and the durability step (sled flush).

use crate::common::{http_client, median, ms, percentile, BenchGroup, Stack, API_TOKEN};
use crate::opts::Opts;
use readbot::domain::{now_millis, Notice, OpenConversationId, ProcessQueryKey, RobotCode, UserId};
use readbot::fake::GroupKind;
use readbot::store::StoreConfig;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

pub(crate) async fn send_notice(
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

pub(crate) async fn section_send(o: &Opts) {
    let group = "cidBenchSend+/==";
    let g = BenchGroup::start(group, GroupKind::Inner, 10, 0)
        .await
        .expect("fake");
    let fake = &g.fake;
    // Lift the client's 20/s limiter: this measures readbot, not DingTalk's quota.
    let stack = Stack::start(
        fake,
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
    let store = readbot::store::open(&StoreConfig::sled(tmp.path()))
        .await
        .expect("store opens");
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
