//! The child scenarios (`--child NAME ...`): what the memory section runs,
//! and the profiling modes of BENCHMARKS.md.

use crate::common::{dir_size, median, ms, percentile, status_kib, BenchGroup, Stack, API_TOKEN};
use crate::intake::{
    bare_server, intake_steps, ladder_server, load, signed_requests, stub_stack, wait_idle, Rung,
    StubApi,
};
use crate::summary::one_summary;
use readbot::domain::{now_millis, Notice, OpenConversationId, ProcessQueryKey, RobotCode, UserId};
use readbot::fake::{FakeConfig, FakeDingTalk, GroupKind, Mention};
use readbot::store::sled_store::SledStore;
use readbot::store::Store;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

fn emit(v: Value) {
    println!("RESULT {v}");
}

pub(crate) async fn child_main(args: &[String]) -> Result<(), String> {
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
            let g = BenchGroup::start("cidFill0007==", GroupKind::Inner, 500, 90)
                .await
                .map_err(|e| e.to_string())?;
            let (fake, group) = (&g.fake, g.group.as_str());
            let s = Stack::start_in(fake, &dir, &[], None).await;
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
            let before = fake.sent_count();
            s.seed_notice(group, g.asker(), &g.readers()).await;
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
            let g = BenchGroup::start("cidMem+/==", GroupKind::Inner, n, 90)
                .await
                .map_err(|e| e.to_string())?;
            let (fake, group, readers) = (&g.fake, g.group.as_str(), g.readers());
            let s = Stack::start(fake, &[("DINGTALK_RATE_LIMIT_PER_SEC", "1000".to_owned())]).await;
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
            let s = Stack::start_fresh(&fake, &[], Some(Arc::new(StubApi::default()))).await;
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
                    let reqs = Arc::new(signed_requests(&fake, n, &format!("{name}{round}")));
                    let r = match i {
                        0 => {
                            let (addr, stop) = bare_server().await;
                            let r = load(addr, reqs, 0..n, 64, Duration::from_secs(60)).await;
                            let _ = stop.send(());
                            r
                        }
                        1..=4 => {
                            let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
                            let rung = [Rung::Verify, Rung::Parse, Rung::Claim, Rung::Spawn][i - 1];
                            let (addr, stop) = ladder_server(rung, &fake, tmp.path()).await;
                            let r = load(addr, reqs, 0..n, 64, Duration::from_secs(60)).await;
                            let _ = stop.send(());
                            r
                        }
                        _ => {
                            let (s, stub) = stub_stack(&fake, 20).await;
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
            let g = BenchGroup::start("cidProf+/==", GroupKind::Inner, n, 90)
                .await
                .map_err(|e| e.to_string())?;
            let (fake, group, readers) = (&g.fake, g.group.as_str(), g.readers());
            let s = Stack::start(
                fake,
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
            let reply_ms = arg(2).ok().and_then(|a| a.parse().ok()).unwrap_or(0);
            let (s, stub) = stub_stack(&fake, reply_ms).await;
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
