//! Exactly-once replies: concurrent duplicates of many msgIds, redelivery
//! after a restart, and the de-duplication marks themselves (in-flight vs
//! done; both expire, and only after the retention).

use crate::helpers::*;
use crate::reliability::{report, scale, settle, wait_idle};
use readbot::domain::MsgId;
use readbot::fake::{FakeDingTalk, GroupKind};
use readbot::store::sled_store::SledStore;
use readbot::store::{Claim, Store};
use serde_json::Value;
use std::collections::HashMap;

const GROUP: &str = "cidExactlyOnce==";
const HOUR_MS: i64 = 3_600_000;

async fn deliver_concurrently(app: &TestApp, bodies: Vec<Value>) -> Vec<u16> {
    let secret = app.fake.config().app_secret.clone();
    let mut tasks = Vec::new();
    for body in bodies {
        let http = app.http.clone();
        let url = format!("{}/dingtalk/callback", app.addr);
        let secret = secret.clone();
        tasks.push(tokio::spawn(async move {
            // A distinct timestamp each: one signature carries three msgIds.
            let ts = readbot::fake::callback_timestamp().to_string();
            http.post(url)
                .header("timestamp", &ts)
                .header("sign", FakeDingTalk::sign(&ts, &secret))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("callback")
                .status()
                .as_u16()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("join"));
    }
    out
}

/// Text replies carry the msgId so each reply can be traced to its message.
fn msg_of(text: &str) -> Option<String> {
    let start = text.find("eo-")?;
    Some(
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect(),
    )
}

#[tokio::test]
async fn many_msg_ids_delivered_fifty_times_at_once_get_one_reply_each_also_after_restart() {
    let app = spawn_app().await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let ids: Vec<String> = (0..4 * scale()).map(|i| format!("eo-{i}")).collect();
    // Each unknown command is echoed in the help reply: the reply names its msgId.
    let bodies: HashMap<String, Value> = ids
        .iter()
        .map(|id| (id.clone(), app.mention(id, GROUP, "user0001", id)))
        .collect();
    // Four msgIds at a time, each 50 times at once (200 requests in flight).
    let mut deliveries = 0;
    for chunk in ids.chunks(4) {
        let mut all = Vec::new();
        for id in chunk {
            for _ in 0..50 {
                all.push(bodies[id].clone());
            }
        }
        deliveries += all.len();
        let statuses = deliver_concurrently(&app, all).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    app.wait_replies(GROUP, ids.len()).await;
    assert!(wait_idle(&app).await, "a summary task is stuck");
    settle().await;
    let replies = app.replies(GROUP);
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &replies {
        *per_id
            .entry(msg_of(&r.text).unwrap_or_default())
            .or_default() += 1;
    }
    for id in &ids {
        assert_eq!(per_id.get(id), Some(&1), "{id}: {per_id:?}");
    }
    assert_eq!(replies.len(), ids.len());

    // Restart on the same data and redeliver everything, 50 at once each.
    let dir = app.data_dir.clone();
    let (fake, tmp) = app.stop().await;
    let app = spawn_on(fake, &dir, &[]).await;
    for chunk in ids.chunks(4) {
        let mut again = Vec::new();
        for id in chunk {
            for _ in 0..50 {
                again.push(bodies[id].clone());
            }
        }
        let statuses = deliver_concurrently(&app, again).await;
        assert!(statuses.iter().all(|s| *s == 200));
    }
    settle().await;
    assert!(wait_idle(&app).await);
    let after = app.replies(GROUP).len();
    report(&format!(
        "duplicate deliveries: {} ({} msgIds x 50, twice, across a restart), replies: {after} (one per msgId)",
        deliveries * 2,
        ids.len()
    ));
    assert_eq!(after, ids.len(), "a redelivery after restart was answered");
    drop(tmp);
}

/// The marks behind exactly-once, on the real sled store across reopenings:
/// a flushed claim survives a crash; every mark, in flight or done, survives
/// the retention, then goes (a crash mid-answer leaks nothing).
#[tokio::test]
async fn marks_survive_reopening_and_expire_after_the_retention() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let retention = 48 * HOUR_MS;
    let t0 = now_ms();
    let done = MsgId::parse("done-1").expect("id");
    let busy = MsgId::parse("busy-1").expect("id");
    {
        let s = SledStore::open(&dir).expect("open");
        assert_eq!(s.claim_message(&done, t0).await.unwrap(), Claim::New);
        assert_eq!(s.claim_message(&busy, t0).await.unwrap(), Claim::New);
        // What the bot awaits before answering each message.
        s.make_claim_durable(&done).await.unwrap();
        s.make_claim_durable(&busy).await.unwrap();
        s.finish_message(&done, t0).await.unwrap();
        // Dropped here, like a crash while `busy` was being answered.
    }
    let s = SledStore::open(&dir).expect("reopen");
    assert_eq!(s.claim_message(&done, t0).await.unwrap(), Claim::Done);
    assert_eq!(s.claim_message(&busy, t0).await.unwrap(), Claim::InFlight);
    // Hours later (within the retention) the pruner keeps both.
    for hours in [1, 3, 12, 47] {
        let now = t0 + hours * HOUR_MS;
        assert_eq!(s.prune_marks(now - retention).await.unwrap(), 0);
        assert_eq!(s.claim_message(&done, now).await.unwrap(), Claim::Done);
        assert_eq!(s.claim_message(&busy, now).await.unwrap(), Claim::InFlight);
    }
    // After the retention both go, and stay gone across a reopening.
    let later = t0 + retention + HOUR_MS;
    assert_eq!(s.prune_marks(later - retention).await.unwrap(), 2);
    s.flush().await.unwrap();
    drop(s);
    let s = SledStore::open(&dir).expect("reopen again");
    assert_eq!(s.claim_message(&busy, later).await.unwrap(), Claim::New);
    assert_eq!(s.claim_message(&done, later).await.unwrap(), Claim::New);
    report("dedup marks: a flushed claim and a done mark survive a crash; both kept for 47 h and pruned after 49 h (retention 48 h), across reopenings");
}

/// A redelivery hours later (inside the retention) is still a duplicate in
/// the running app, and the hourly pruner's cut-off keeps it.
#[tokio::test]
async fn redelivery_within_the_retention_is_ignored() {
    let app = spawn_app_with(&[("READBOT_DEDUP_RETENTION_SECS", "172800")]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(2));
    let body = app.mention("eo-late", GROUP, "user0001", "help");
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    app.wait_replies(GROUP, 1).await;
    assert!(wait_idle(&app).await);
    // "Three hours later": prune with the cut-off the pruner would use then.
    let dir = app.data_dir.clone();
    let (fake, tmp) = app.stop().await;
    {
        let s = readbot::store::open(&readbot::store::StoreConfig::sled(&dir))
            .await
            .expect("open");
        let three_hours_later = now_ms() + 3 * HOUR_MS;
        assert_eq!(
            s.prune_marks(three_hours_later - 48 * HOUR_MS)
                .await
                .unwrap(),
            0
        );
    }
    let app = spawn_on(fake, &dir, &[]).await;
    assert_eq!(app.post_callback_signed(&body).await.status(), 200);
    settle().await;
    assert_eq!(app.replies(GROUP).len(), 1);
    drop(tmp);
}

/// Durable writes from many tasks at once always complete (sled 0.34's
/// `flush_async` loses wake-ups under concurrent callers, spacejam/sled#1308:
/// claims and notices then hang forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_durable_writes_never_hang() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(SledStore::open(&tmp.path().join("data")).expect("open"));
    let rounds = 5 * scale();
    let work = async {
        for round in 0..rounds {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..200 {
                let store = store.clone();
                set.spawn(async move {
                    let id = MsgId::parse(format!("c-{round}-{i}")).expect("id");
                    assert_eq!(
                        store.claim_message(&id, now_ms()).await.unwrap(),
                        Claim::New
                    );
                    store.finish_message(&id, now_ms()).await.unwrap();
                });
            }
            while let Some(r) = set.join_next().await {
                r.expect("task");
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), work)
        .await
        .expect("durable writes hung");
    report(&format!(
        "concurrent durable writes: {} claims and finishes (200 at once), all completed",
        rounds * 200
    ));
}

/// A burst beyond `bot.max_queued_answers` (plus the 16 being answered) is
/// refused with 503 and nothing of it is claimed: each refused message,
/// delivered again once the queue drained, is answered. Every accepted
/// message is answered exactly once.
#[tokio::test]
async fn a_full_answer_queue_refuses_without_claiming() {
    let app = spawn_app_with(&[("READBOT_MAX_QUEUED_ANSWERS", "2")]).await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(2));
    // Every DingTalk call (the replies) takes a while: the 16 workers stay busy.
    app.fake.set_latency(std::time::Duration::from_millis(1500));
    let bodies: Vec<Value> = (0..40)
        .map(|i| app.mention(&format!("eo-burst-{i}"), GROUP, "user0001", "help"))
        .collect();
    let statuses = deliver_concurrently(&app, bodies.clone()).await;
    let accepted = statuses.iter().filter(|&&s| s == 200).count();
    let refused: Vec<usize> = (0..bodies.len()).filter(|&i| statuses[i] == 503).collect();
    assert_eq!(accepted + refused.len(), bodies.len(), "{statuses:?}");
    assert!(
        !refused.is_empty(),
        "a queue of 2 took a burst of 40: {statuses:?}"
    );
    assert!(accepted >= 2, "{statuses:?}");
    assert!(wait_idle(&app).await);
    app.fake.set_latency(std::time::Duration::ZERO);
    assert_eq!(app.wait_replies(GROUP, accepted).await.len(), accepted);
    // The refused ones were not claimed: delivered again, they are answered.
    // One at a time, each after the previous was answered: redelivered
    // faster than 16 workers answer, a queue of 2 would rightly be full again.
    for &i in &refused {
        assert!(wait_idle(&app).await);
        let r = app.post_callback_signed(&bodies[i]).await;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "redelivery of refused message {i}: {text}");
    }
    let all = app.wait_replies(GROUP, bodies.len()).await.len();
    assert_eq!(all, bodies.len());
    settle().await;
    assert_eq!(
        app.replies(GROUP).len(),
        bodies.len(),
        "a message was answered twice"
    );
    report(&format!(
        "answer queue of 2: {accepted} of 40 accepted at once, {} refused with 503 and answered when delivered again",
        refused.len()
    ));
}
