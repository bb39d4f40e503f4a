//! Section 4: signed callbacks against a bare axum handler, the ladder of
//! intake steps, and the stub DingTalk that keeps the fake out of the figures.

use crate::common::{median, ms, percentile, Stack};
use crate::opts::Opts;
use async_trait::async_trait;
use axum::body::Bytes;
use readbot::bot::Bot;
use readbot::dingtalk::{
    DingTalkApi, DingTalkError, DirectSend, DirectSendOutcome, GroupSend, ReadQuery, ReadState,
    Recall, RecallOutcome, Reply, Roster, RosterQuery,
};
use readbot::domain::{now_millis, ProcessQueryKey, SendStatus, UserId};
use readbot::fake::{FakeConfig, FakeDingTalk, Mention};
use readbot::store::{Store, StoreConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// A DingTalk without I/O: the intake section measures readbot, not the
/// fake. A reply takes `reply_ms` (a DingTalk round trip when set, as every
/// real answer needs at least one); everything else answers at once.
#[derive(Default)]
pub(crate) struct StubApi {
    reply_ms: std::sync::atomic::AtomicU64,
}

impl StubApi {
    pub(crate) fn with_reply_ms(ms: u64) -> Self {
        Self {
            reply_ms: std::sync::atomic::AtomicU64::new(ms),
        }
    }
    pub(crate) fn set_reply_ms(&self, ms: u64) {
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
    async fn send_direct_messages(
        &self,
        _r: &DirectSend,
    ) -> Result<DirectSendOutcome, DingTalkError> {
        Ok(DirectSendOutcome::default())
    }
    async fn recall_group_messages(&self, _r: &Recall) -> Result<RecallOutcome, DingTalkError> {
        Ok(RecallOutcome::default())
    }
}

/// One complete HTTP/1.1 request (head and body), ready to write.
pub(crate) struct SignedReq {
    raw: Vec<u8>,
}

pub(crate) struct LoadResult {
    pub(crate) ok: usize,
    pub(crate) errors: usize,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Vec<Duration>,
}

impl LoadResult {
    pub(crate) fn rps(&self) -> f64 {
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
pub(crate) async fn load(
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

pub(crate) async fn bare_server() -> (SocketAddr, oneshot::Sender<()>) {
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
pub(crate) enum Rung {
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
pub(crate) async fn ladder_server(
    rung: Rung,
    fake: &FakeDingTalk,
    dir: &Path,
) -> (SocketAddr, oneshot::Sender<()>) {
    struct L {
        rung: Rung,
        verifier: readbot::dingtalk::signature::Verifier,
        store: Arc<dyn Store>,
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
        store: readbot::store::open(&StoreConfig::sled(dir))
            .await
            .expect("store opens"),
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

pub(crate) fn signed_requests(fake: &FakeDingTalk, n: usize, tag: &str) -> Vec<SignedReq> {
    let seed = tag.bytes().fold(0u64, |h, b| splitmix64(h ^ u64::from(b)));
    // readbot lets one signature carry three messages (a replayed pair gets
    // 401): a fresh pair for every three requests.
    let mut pair = fake.callback_headers();
    (0..n)
        .map(|i| {
            if i > 0 && i % readbot::bot::MESSAGES_PER_SIGNATURE == 0 {
                pair = fake.callback_headers();
            }
            let (ts, sign) = &pair;
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
/// Fresh header pairs run ahead of the clock by a millisecond per three
/// requests made faster than that, so the sections accept DingTalk's full
/// hour.
pub(crate) fn intake_env() -> Vec<(&'static str, String)> {
    vec![
        ("READBOT_MAX_QUEUED_ANSWERS", "1000000".to_owned()),
        ("READBOT_SIGNATURE_WINDOW_SECS", "3600".to_owned()),
    ]
}

/// readbot on the stub DingTalk (replies take `reply_ms`) in a fresh temp
/// folder, with [`intake_env`]: what the intake section, the ladder's last
/// rung and `profile-intake` measure.
pub(crate) async fn stub_stack(fake: &FakeDingTalk, reply_ms: u64) -> (Stack, Arc<StubApi>) {
    let stub = Arc::new(StubApi::with_reply_ms(reply_ms));
    let stack = Stack::start_fresh(fake, &intake_env(), Some(stub.clone())).await;
    (stack, stub)
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

pub(crate) async fn section_intake(o: &Opts) {
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
            let (stack, stub) = stub_stack(&fake, 0).await;
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

pub(crate) async fn wait_idle(bot: &Bot) {
    let until = Instant::now() + Duration::from_secs(120);
    while bot.in_flight() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
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

pub(crate) async fn intake_steps(n: usize) {
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
