//! Slow or hostile connections: slowloris, SIGTERM with slow clients still
//! connected, and an oversized answer from DingTalk.

use crate::helpers::*;
use crate::reliability::report;
use readbot::fake::{FakeDingTalk, GroupKind};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GROUP: &str = "cidConn==";

/// Opens a connection that sends a request head a header line at a time,
/// every `every`, for at most `give_up`; returns how long until readbot
/// closed it (`None`: still open when it gave up).
async fn slow_client(addr: String, every: Duration, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(&addr).await.ok()?;
    if s.write_all(b"POST /dingtalk/callback HTTP/1.1\r\nHost: readbot\r\n")
        .await
        .is_err()
    {
        return Some(started.elapsed());
    }
    let mut buf = [0u8; 512];
    while started.elapsed() < give_up {
        // A read that ends (EOF or reset) means readbot closed the connection.
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {} // e.g. a 408; keep reading until the close
            Err(_) => {
                if s.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    return Some(started.elapsed());
                }
            }
        }
    }
    None
}

fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_healthz_and_callbacks_keep_working() {
    let app = spawn_app_with(&[
        ("READBOT_MAX_CONNECTIONS", "40"),
        ("READBOT_HEADER_READ_TIMEOUT_SECS", "2"),
    ])
    .await;
    add_group(&app.fake, GROUP, GroupKind::Inner, &members(3));
    let key = app.notice(GROUP, "Slow day", "user0001").await;
    app.fake.mark_read(&key, &["user0002"]);
    let host = app.addr.trim_start_matches("http://").to_string();
    // 300 slow clients against a cap of 40: the cap holds, and each is closed
    // by the header-read timeout (2 s) or evicted by a newer connection.
    let attackers: Vec<_> = (0..300)
        .map(|_| {
            tokio::spawn(slow_client(
                host.clone(),
                Duration::from_millis(300),
                Duration::from_secs(20),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probe = fresh_client();
    // Like a Kubernetes probe (failureThreshold 3): each check may take three
    // tries, 500 ms apart (the burst of 300 fills every place and every
    // waiting place for about a second).
    let mut tries = 0;
    for _ in 0..10 {
        let mut ok = false;
        for _ in 0..3 {
            tries += 1;
            if let Ok(r) = probe.get(format!("{}/healthz", app.addr)).send().await {
                assert_eq!(r.status(), 200);
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(ok, "/healthz failed three times in a row during the attack");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A genuine callback during the attack is accepted and answered (a
    // refused connection is tried again, at most three times).
    let body = app.mention("slow-1", GROUP, "user0001", "who read");
    let mut status = None;
    for _ in 0..3 {
        let ts = now_ms().to_string();
        let sent = probe
            .post(format!("{}/dingtalk/callback", app.addr))
            .header("timestamp", &ts)
            .header(
                "sign",
                FakeDingTalk::sign(&ts, &app.fake.config().app_secret),
            )
            .json(&body)
            .send()
            .await;
        if let Ok(r) = sent {
            status = Some(r.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, Some(reqwest::StatusCode::OK));
    let mut closed = Vec::new();
    for a in attackers {
        closed.push(a.await.expect("join"));
    }
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        still_open, 0,
        "slow connections outlived the header-read timeout"
    );
    let slowest = closed.iter().flatten().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(10),
        "a slow connection stayed {slowest:?} (header-read timeout 2 s)"
    );
    let reply = app.one_reply(GROUP).await;
    assert!(reply.contains("1/3"), "{reply}");
    report(&format!(
        "slowloris: 300 slow connections against a cap of 40: all closed (slowest after {} ms), /healthz 10/10 ({tries} tries), callback answered",
        slowest.as_millis()
    ));
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_at_the_idle_timeout() {
    let app = spawn_app_with(&[("READBOT_IDLE_TIMEOUT_SECS", "2")]).await;
    let host = app.addr.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&host).await.expect("connect");
    s.write_all(
        b"POST /api/v1/notices HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n\
          Authorization: Bearer test-api-token-0123456789\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .expect("head");
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let ended = loop {
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => {
                if s.write_all(b" ").await.is_err() {
                    break started.elapsed();
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a byte-a-time body held the connection for 20 s"
        );
    };
    assert!(ended >= Duration::from_secs(1), "cut too early: {ended:?}");
}

#[tokio::test]
async fn sigterm_with_slow_connections_open_exits_within_the_shutdown_grace() {
    let fake = start_fake().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    // Header timeout 30 s: only the shutdown grace (2 s) can end these.
    let crate::shutdown::Binary {
        mut child,
        socket: addr,
        ..
    } = crate::shutdown::start_binary(
        &fake,
        &tmp.path().join("data"),
        &[
            ("READBOT_HEADER_READ_TIMEOUT_SECS", "30"),
            ("READBOT_SHUTDOWN_GRACE_SECS", "2"),
        ],
    );
    let slow: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(slow_client(
                addr.clone(),
                Duration::from_millis(200),
                Duration::from_secs(60),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(25) {
            let _ = child.kill();
            panic!("readbot did not exit within 25 s of SIGTERM with slow connections open");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = sent.elapsed();
    assert!(code.success(), "exit status {code:?}");
    for s in slow {
        assert!(
            s.await.expect("join").is_some(),
            "a slow connection was not closed"
        );
    }
    report(&format!(
        "SIGTERM with 20 slow connections open: exit 0 after {} ms (grace 2 s, kill at 30 s)",
        took.as_millis()
    ));
}

/// A DingTalk stand-in that answers every request with an endless chunked
/// body; counts the bytes it managed to send.
async fn endless_answer_server(sent: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut head = vec![0u8; 8192];
                let _ = s.read(&mut head).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                    )
                    .await;
                let chunk = vec![b' '; 64 * 1024];
                let framed = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk,
                    b"\r\n".to_vec(),
                ]
                .concat();
                // At most ~300 MB, the size of the observed attack.
                for _ in 0..4800 {
                    if s.write_all(&framed).await.is_err() {
                        return;
                    }
                    sent.fetch_add(64 * 1024, Ordering::Relaxed);
                }
            });
        }
    });
    format!("http://{addr}")
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test]
async fn a_300_mb_answer_from_dingtalk_is_refused_at_the_cap() {
    let fake = start_fake().await;
    let sent = Arc::new(AtomicU64::new(0));
    let base = endless_answer_server(sent.clone()).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = config_for(
        &fake,
        tmp.path(),
        &[
            ("DINGTALK_API_BASE", base.as_str()),
            ("DINGTALK_OAPI_BASE", base.as_str()),
            ("DINGTALK_TIMEOUT_SECS", "20"),
            ("DINGTALK_DEADLINE_SECS", "30"),
        ],
    );
    let client = readbot::dingtalk::client::DingTalkClient::new(config.dingtalk).expect("client");
    let before = rss_bytes();
    let err = client
        .access_token()
        .await
        .expect_err("a 300 MB answer is refused");
    let grew = rss_bytes().saturating_sub(before);
    assert!(
        matches!(err, readbot::dingtalk::DingTalkError::TooLarge { .. }),
        "{err:?}"
    );
    let cap = readbot::dingtalk::capped::MAX_ANSWER_BYTES as u64;
    // Give the server a moment to notice the closed connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let read = sent.load(Ordering::Relaxed);
    assert!(
        read < cap + 32 * 1024 * 1024,
        "readbot kept reading: {read} bytes sent"
    );
    assert!(
        grew < 64 * 1024 * 1024,
        "RSS grew by {grew} bytes for a capped answer"
    );
    report(&format!(
        "oversized DingTalk answer: refused at the 2 MiB cap after {} MiB sent, RSS +{} MiB",
        read / (1024 * 1024),
        grew / (1024 * 1024)
    ));
}
