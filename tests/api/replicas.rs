//! Two real `readbot serve` replicas (child processes) on ONE PostgreSQL
//! database and ONE fake DingTalk (issue 14, "Proof with a real server"):
//! what must happen once happens once across them. Skipped with one printed
//! line where PostgreSQL is not installed, unless `READBOT_REQUIRE_POSTGRES=1`
//! (then it fails).

use crate::helpers::*;
use crate::shutdown::{start_binary, Binary};
use readbot::fake::{FakeDingTalk, GroupKind, Mention};
use readbot::store::pg_test_cluster::fresh_database;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// A replica: killed (SIGKILL) and reaped when dropped, so a failing test
/// leaves no process behind.
struct Replica(Binary);

impl Replica {
    fn addr(&self) -> &str {
        &self.0.addr
    }

    /// SIGKILL: no shutdown hook, no final write.
    fn kill(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two replicas on one fresh database, one fake.
struct Pair {
    fake: FakeDingTalk,
    /// The database both use.
    url: String,
    a: Replica,
    b: Replica,
    http: reqwest::Client,
    _tmp: tempfile::TempDir,
}

/// Starts both replicas at once (their schema migrations race under the
/// migration lock); `None` where PostgreSQL is missing.
async fn pair(extra: &[(&str, &str)]) -> Option<Pair> {
    let pg = fresh_database().await?;
    let url = pg.url.expose().to_owned();
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut env: Vec<(&str, &str)> = vec![
        ("READBOT_STORE_URL", &url),
        ("DINGTALK_RATE_LIMIT_PER_SEC", "1000"),
        ("DINGTALK_TIMEOUT_SECS", "5"),
        ("READBOT_RECEIPTS_CACHE_SECS", "0"),
        ("RUST_LOG", "warn,readbot::app=info"),
    ];
    env.extend_from_slice(extra);
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    // start_binary blocks (bounded: 30 s) until the child logs its address.
    let (a, b) = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let a = s.spawn(|| Replica(start_binary(&fake, &dir_a, &env)));
            let b = Replica(start_binary(&fake, &dir_b, &env));
            (a.join().expect("replica A starts"), b)
        })
    });
    Some(Pair {
        fake,
        url: url.clone(),
        a,
        b,
        http: http_client(),
        _tmp: tmp,
    })
}

/// A signed callback as DingTalk sends it: headers and body, so the very
/// same delivery can go to either replica (or again).
#[derive(Clone)]
struct Delivery {
    msg_id: String,
    group: String,
    timestamp: String,
    sign: String,
    body: String,
}

fn delivery(fake: &FakeDingTalk, msg_id: &str, group: &str, text: &str) -> Delivery {
    let body = fake.mention_body(&Mention {
        msg_id: msg_id.into(),
        group: group.into(),
        sender: "user0001".into(),
        sender_nick: "Member 0001".into(),
        text: text.into(),
        session_ttl: Duration::from_secs(5400),
    });
    let (timestamp, sign) = fake.callback_headers();
    Delivery {
        msg_id: msg_id.into(),
        group: group.into(),
        timestamp,
        sign,
        body: body.to_string(),
    }
}

/// Posts `d` to the replica at `addr`: its status, or `None` when the
/// request failed (a killed replica).
async fn deliver(http: &reqwest::Client, addr: &str, d: &Delivery) -> Option<u16> {
    let r = http
        .post(format!("{addr}/dingtalk/callback"))
        .header("content-type", "application/json; charset=utf-8")
        .header("timestamp", &d.timestamp)
        .header("sign", &d.sign)
        .body(d.body.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    Some(r.status().as_u16())
}

/// Replies each group saw, once every group has at least one or `within`
/// has passed; then `settle` longer, so a second copy would be counted.
async fn replies_per_group(
    fake: &FakeDingTalk,
    groups: &[String],
    within: Duration,
    settle: Duration,
) -> HashMap<String, usize> {
    let count = || -> HashMap<String, usize> {
        groups
            .iter()
            .map(|g| (g.clone(), fake.group_view(g).len()))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline && count().values().any(|n| *n == 0) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(settle).await;
    count()
}

/// Message ids whose claim is in flight (not done), split by whether
/// its answer had started (`make_claim_durable`): read straight from the
/// shared database. `(started, queued)`.
async fn in_flight(url: &str) -> (HashSet<String>, HashSet<String>) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    let task = tokio::spawn(connection);
    let rows = client
        .query("SELECT msg_id, started FROM marks WHERE NOT done", &[])
        .await
        .expect("read the marks");
    drop(client);
    let _ = task.await;
    let (mut started, mut queued) = (HashSet::new(), HashSet::new());
    for r in rows {
        let id: String = r.get(0);
        if r.get::<_, bool>(1) {
            started.insert(id);
        } else {
            queued.insert(id);
        }
    }
    (started, queued)
}

fn groups(prefix: &str, n: usize, fake: &FakeDingTalk) -> Vec<String> {
    (0..n)
        .map(|i| {
            let g = format!("cid{prefix}{i}+/==");
            add_group(fake, &g, GroupKind::Inner, &members(3));
            g
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_callback_delivered_to_both_replicas_at_once_is_answered_once_for_each_of_50() {
    let Some(p) = pair(&[]).await else {
        return;
    };
    // One group per msgId, so each reply says which message it answers.
    let groups = groups("ReplicaSame", 50, &p.fake);
    let mut tasks = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        let d = delivery(&p.fake, &format!("rep-same-{i:02}"), g, "help");
        let (http, a, b) = (p.http.clone(), p.a.addr().to_owned(), p.b.addr().to_owned());
        tasks.push(tokio::spawn(async move {
            let (ra, rb) = tokio::join!(deliver(&http, &a, &d), deliver(&http, &b, &d));
            (d.msg_id, ra, rb)
        }));
    }
    for t in tasks {
        let (id, ra, rb) = t.await.expect("join");
        assert_eq!((ra, rb), (Some(200), Some(200)), "{id}: both acknowledge");
    }
    let seen = replies_per_group(
        &p.fake,
        &groups,
        Duration::from_secs(20),
        Duration::from_millis(800),
    )
    .await;
    let wrong: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        wrong.is_empty(),
        "each msgId answered exactly once across the replicas; these were not: {wrong:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notice_sent_through_replica_a_is_summarised_when_asked_through_replica_b() {
    let Some(p) = pair(&[]).await else {
        return;
    };
    const GROUP: &str = "cidReplicaNotice+/==";
    add_group(&p.fake, GROUP, GroupKind::Inner, &members(6));
    let r = p
        .http
        .post(format!("{}/api/v1/notices", p.a.addr()))
        .bearer_auth(API_TOKEN)
        .json(&json!({"openConversationId": GROUP, "title": "Shared drill", "text": "### Shared drill\nRead me.", "msgtype": "markdown", "author": "user0001"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.expect("json")["processQueryKey"]
        .as_str()
        .expect("key")
        .to_owned();
    p.fake.mark_read(&key, &["user0002", "user0003"]);
    // The notice is listed by B too.
    let enc: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
    let r = p
        .http
        .get(format!("{}/api/v1/notices/{enc}", p.b.addr()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200, "replica B knows the notice");
    let d = delivery(&p.fake, "rep-notice-1", GROUP, "who read my last notice?");
    assert_eq!(deliver(&p.http, p.b.addr(), &d).await, Some(200));
    let mut reply = None;
    for _ in 0..400 {
        let answers: Vec<_> = p
            .fake
            .group_view(GROUP)
            .into_iter()
            .filter(|m| m.process_query_key.as_deref() != Some(key.as_str()))
            .collect();
        if let Some(m) = answers.first() {
            reply = Some(m.text.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let text = reply.expect("replica B answered");
    assert!(text.contains("Shared drill"), "{text}");
    assert!(text.contains("2/6"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_a_killed_in_a_burst_nothing_is_answered_twice_and_b_answers_all_a_had_not_started()
{
    let Some(mut p) = pair(&[]).await else {
        return;
    };
    const BURST: usize = 60;
    let groups = groups("ReplicaBurst", BURST, &p.fake);
    let deliveries: Vec<Delivery> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| delivery(&p.fake, &format!("rep-burst-{i:02}"), g, "help"))
        .collect();
    // Slow answers, so that A holds queued and half-answered messages when
    // it dies.
    p.fake.set_latency(Duration::from_millis(150));
    let (tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for d in deliveries.clone() {
        let (http, a, tx, sem) = (
            p.http.clone(),
            p.a.addr().to_owned(),
            tx.clone(),
            sem.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let status = deliver(&http, &a, &d).await;
            let _ = tx.send((d.msg_id.clone(), status));
            (d.msg_id, status)
        }));
    }
    drop(tx);
    // SIGKILL once A has acknowledged a third of the burst.
    let mut acked_before_kill = 0;
    while acked_before_kill < BURST / 3 {
        match tokio::time::timeout(Duration::from_secs(20), acks.recv()).await {
            Ok(Some((_, Some(200)))) => acked_before_kill += 1,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("replica A stopped acknowledging before the kill"),
        }
    }
    p.a.kill();
    let mut acked_by_a = Vec::new();
    for t in tasks {
        let (id, status) = tokio::time::timeout(Duration::from_secs(20), t)
            .await
            .expect("a delivery to A ends (bounded)")
            .expect("join");
        if status.is_some_and(|s| (200..300).contains(&s)) {
            acked_by_a.push(id);
        }
    }
    assert!(
        acked_by_a.len() < BURST,
        "the kill came during the burst ({} of {BURST} acknowledged)",
        acked_by_a.len()
    );
    // DingTalk's send takes no idempotency key, so an answer A had started
    // (its claim made durable) when it died is never answered again: it may
    // have reached the group (the at-most-once instant of RELIABILITY.md).
    // Those are at most A's 16 answering workers; every other message A
    // acknowledged, queued or not yet taken, is answered by B.
    let (mid_answer, queued) = in_flight(&p.url).await;
    assert!(
        !queued.is_empty(),
        "the kill left no acknowledged message queued: nothing to take over"
    );
    // DingTalk redelivers: here every callback of the burst, to B.
    for d in &deliveries {
        assert_eq!(
            deliver(&p.http, p.b.addr(), d).await,
            Some(200),
            "{}",
            d.msg_id
        );
    }
    let expected: Vec<String> = deliveries
        .iter()
        .filter(|d| !mid_answer.contains(&d.msg_id))
        .map(|d| d.group.clone())
        .collect();
    replies_per_group(
        &p.fake,
        &expected,
        Duration::from_secs(25),
        Duration::from_millis(1_000),
    )
    .await;
    let seen = replies_per_group(&p.fake, &groups, Duration::ZERO, Duration::ZERO).await;
    let by_id: HashMap<&str, usize> = deliveries
        .iter()
        .map(|d| (d.msg_id.as_str(), seen.get(&d.group).copied().unwrap_or(0)))
        .collect();
    let twice: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "answered more than once: {twice:?}");
    assert!(
        mid_answer.len() <= 16,
        "more answers in flight than workers: {mid_answer:?}"
    );
    let unanswered: Vec<_> = by_id
        .iter()
        .filter(|(id, n)| **n == 0 && !mid_answer.contains(**id))
        .collect();
    assert!(
        unanswered.is_empty(),
        "not answered by A before it died nor by B on redelivery, though A had not started them \
         ({} acknowledged by A, {} mid-answer at the kill): {unanswered:?}",
        acked_by_a.len(),
        mid_answer.len()
    );
    // The ones A held queued (claimed, acknowledged, not started) were
    // taken over by B on redelivery and answered there.
    for id in &queued {
        assert_eq!(by_id.get(id.as_str()), Some(&1), "{id}: queued on A");
    }
    crate::reliability::report(&format!(
        "replica SIGKILLed in a burst of {BURST}: {} acknowledged by A, {} queued on A and answered by B, \
         {} mid-answer (at most once), answered twice: 0",
        acked_by_a.len(),
        queued.len(),
        mid_answer.len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_up_due_while_both_replicas_run_fires_once() {
    let Some(p) = pair(&[]).await else {
        return;
    };
    const GROUP: &str = "cidReplicaFollowUp+/==";
    add_group(&p.fake, GROUP, GroupKind::Inner, &members(4));
    // Three follow-ups due at once while both schedulers poll, sent
    // through both replicas' send APIs.
    for (i, addr) in [p.a.addr(), p.b.addr(), p.a.addr()].iter().enumerate() {
        let at = now_ms() + 1_500;
        let r = p
            .http
            .post(format!("{addr}/api/v1/notices"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"openConversationId": GROUP, "title": format!("Drill {i}"), "text": "x", "author": "user0001",
                          "followUps": [{"at": at, "action": "summary"}]}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 201);
    }
    let summaries = || {
        p.fake
            .group_view(GROUP)
            .into_iter()
            .filter(|m| m.text.contains("Scheduled summary"))
            .collect::<Vec<_>>()
    };
    for _ in 0..400 {
        if summaries().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Two more scheduler ticks on each replica: nothing more is posted.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let posted = summaries();
    for i in 0..3 {
        let n = posted
            .iter()
            .filter(|m| m.text.contains(&format!("Drill {i}")))
            .count();
        assert_eq!(n, 1, "follow-up of Drill {i} posted {n} times: {posted:#?}");
    }
    assert_eq!(posted.len(), 3, "{posted:#?}");
}
