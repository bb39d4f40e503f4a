//! Crash test: nothing acknowledged is lost.
//!
//! Runs the real `readbot serve` binary against an in-process fake DingTalk,
//! sends notices through the API from several concurrent senders, kills the
//! process with SIGKILL at a random moment, restarts it on the same data
//! folder and checks that every notice that got a `201` is still listed.
//! Repeats for `--cycles` cycles, then stops readbot with SIGTERM and expects
//! exit code 0.
//!
//! ```sh
//! cargo build --bins --examples
//! target/debug/examples/crash_test --cycles 50
//! ```
//!
//! Prints `crash cycles: N, acknowledged notices lost: 0` and exits 0, or
//! names what was lost and exits 1.
//!
//! On PostgreSQL: `--store-url postgres://…` (an empty database readbot
//! may use), or `--postgres` to start a throwaway cluster (Debian's
//! `postgresql` package; without it one line says so and the run is
//! skipped, exit 0, unless `READBOT_REQUIRE_POSTGRES=1`). The kill then
//! also drops readbot's database connections mid-statement.
//!
//! Scheduled follow-ups ride along: sender 0 sends each of its notices with
//! a `summary` follow-up due 0.2–1.5 s later, into a group of its own. At
//! the end every follow-up whose notice got a `201` must have posted its
//! summary (none lost: the kills come well within the lateness window), and
//! a summary posted twice is allowed only for a follow-up readbot found
//! `firing` after a kill (the documented instant between DingTalk's answer
//! and the `fired` record): repeats ≤ the "sending it again" log lines.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use readbot::fake::{FakeConfig, FakeDingTalk, GroupKind};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-token-0123456789";
/// At most this many notices per cycle (the listing shows up to 500 per group).
const MAX_PER_CYCLE: usize = 400;

struct Options {
    cycles: usize,
    senders: usize,
    max_run: Duration,
    seed: u64,
    bin: PathBuf,
    data_dir: Option<PathBuf>,
    /// `READBOT_STORE_URL` for readbot (PostgreSQL).
    store_url: Option<String>,
    /// Start a throwaway PostgreSQL cluster and use a fresh database on it.
    postgres: bool,
}

fn usage() -> String {
    "usage: crash_test [--cycles N] [--senders N] [--max-run-ms MS] [--seed N] [--bin PATH] [--data-dir DIR] [--store-url postgres://… | --postgres]".into()
}

fn options() -> Result<Options, String> {
    let default_bin = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("readbot")))
        .unwrap_or_else(|| PathBuf::from("target/debug/readbot"));
    let mut o = Options {
        cycles: 10,
        senders: 8,
        max_run: Duration::from_millis(800),
        seed: rand::random(),
        bin: default_bin,
        data_dir: None,
        store_url: None,
        postgres: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{}", usage()))
        };
        let num = |s: String| {
            s.parse::<u64>()
                .map_err(|_| format!("{a}: not a number: {s}"))
        };
        match a.as_str() {
            "--cycles" => o.cycles = num(val()?)? as usize,
            "--senders" => o.senders = (num(val()?)? as usize).max(1),
            "--max-run-ms" => o.max_run = Duration::from_millis(num(val()?)?.max(1)),
            "--seed" => o.seed = num(val()?)?,
            "--bin" => o.bin = PathBuf::from(val()?),
            "--data-dir" => o.data_dir = Some(PathBuf::from(val()?)),
            "--store-url" => o.store_url = Some(val()?),
            "--postgres" => o.postgres = true,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    if !o.bin.exists() {
        return Err(format!(
            "{} does not exist: build it first (cargo build --bins) or pass --bin",
            o.bin.display()
        ));
    }
    Ok(o)
}

/// Starts `readbot serve`; returns the child and its base URL once it logs
/// its listening address.
/// Log lines of follow-ups re-sent after a kill (found `firing` at start-up).
static RESENT: AtomicUsize = AtomicUsize::new(0);

fn start(
    bin: &Path,
    fake: &FakeDingTalk,
    dir: &Path,
    store_url: Option<&str>,
) -> Result<(Child, String), String> {
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("READBOT_LISTEN", "127.0.0.1:0")
        .env("READBOT_DATA_DIR", dir)
        .env("READBOT_API_TOKEN", TOKEN)
        .env("READBOT_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn,readbot::app=info")
        .env("READBOT_RECEIPTS_CACHE_SECS", "0")
        .envs(fake.readbot_env())
        .env("DINGTALK_RATE_LIMIT_PER_SEC", "1000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(url) = store_url {
        command.env("READBOT_STORE_URL", url);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v["fields"]["message"] == "readbot listening" => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(v["fields"]["addr"].as_str().unwrap_or("").to_owned()));
                    }
                }
                Ok(v)
                    if v["fields"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("sending it again")) =>
                {
                    RESENT.fetch_add(1, Ordering::SeqCst);
                }
                // Anything at ERROR is worth seeing.
                Ok(v) if v["level"] == "ERROR" => eprintln!("readbot: {line}"),
                Ok(_) => {}
                Err(_) => eprintln!("readbot: {line}"),
            }
        }
        if let Some(tx) = tx.take() {
            let _ = tx.send(Err("readbot exited before listening".to_owned()));
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(addr)) => Ok((child, format!("http://{addr}"))),
        Ok(Err(e)) => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            Err(format!("{e} ({status})"))
        }
        Err(_) => {
            let _ = child.kill();
            Err("readbot did not start within 60 s".into())
        }
    }
}

/// Keys listed for each group.
async fn listed(
    http: &reqwest::Client,
    base: &str,
    groups: &[String],
) -> Result<HashSet<String>, String> {
    let mut out = HashSet::new();
    for g in groups {
        let enc: String = url::form_urlencoded::byte_serialize(g.as_bytes()).collect();
        let url = format!("{base}/api/v1/notices?openConversationId={enc}&limit=500");
        let r = http
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .map_err(|e| format!("listing {g}: {e}"))?;
        if r.status() != 200 {
            return Err(format!("listing {g}: HTTP {}", r.status()));
        }
        let v: Value = r.json().await.map_err(|e| format!("listing {g}: {e}"))?;
        for n in v["notices"].as_array().into_iter().flatten() {
            if let Some(k) = n["processQueryKey"].as_str() {
                out.insert(k.to_owned());
            }
        }
    }
    Ok(out)
}

/// What happened to the acknowledged follow-ups.
#[derive(Debug, Default)]
struct FollowUps {
    /// Follow-ups whose notice got a `201`.
    acked: usize,
    /// Of those, never posted.
    missing: usize,
    /// Extra copies posted (a summary seen more than once).
    repeats: usize,
    /// Follow-ups readbot re-sent after finding them `firing` (log lines).
    resent: usize,
}

async fn run(o: Options) -> Result<(usize, usize, usize, FollowUps), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = o
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("data"));
    let store_url = o.store_url.clone();
    let mut rng = StdRng::seed_from_u64(o.seed);
    // Acknowledged keys, by group.
    let mut acked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut total_acked = 0usize;
    // Titles of acknowledged notices with a follow-up, by their group.
    let mut fu_titles: Vec<(String, String)> = Vec::new();

    for cycle in 0..o.cycles {
        let (mut child, base) = start(&o.bin, &fake, &dir, store_url.as_deref())?;
        let groups: Vec<String> = acked.keys().cloned().collect();
        let seen = listed(&http, &base, &groups).await?;
        let lost: Vec<&String> = acked
            .values()
            .flatten()
            .filter(|k| !seen.contains(*k))
            .collect();
        if !lost.is_empty() {
            let _ = child.kill();
            return Err(format!(
                "after crash {cycle}: {} acknowledged notices lost, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            ));
        }

        let group = format!("cidCrash{cycle}+/==");
        fake.add_group(&group, GroupKind::Inner, &[("user0001", "Member 1")]);
        let fu_group = format!("cidCrashFollowUps{cycle}+/==");
        fake.add_group(&fu_group, GroupKind::Inner, &[("user0001", "Member 1")]);
        let stop = Arc::new(AtomicBool::new(false));
        let keys = Arc::new(Mutex::new(Vec::new()));
        let fu_acked = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for s in 0..o.senders {
            let (http, base, stop, keys, fu_acked) = (
                http.clone(),
                base.clone(),
                stop.clone(),
                keys.clone(),
                fu_acked.clone(),
            );
            // Sender 0 sends notices with a follow-up, into their own group.
            let with_follow_up = s == 0;
            let group = if with_follow_up {
                fu_group.clone()
            } else {
                group.clone()
            };
            let mut delays = StdRng::seed_from_u64(o.seed ^ (cycle as u64) << 8);
            tasks.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let title = format!("fuC{cycle}S{s}I{i}end");
                    let mut body = json!({"openConversationId": group, "title": title, "text": "crash test", "author": "user0001"});
                    if with_follow_up {
                        let at = readbot::domain::now_millis() + delays.random_range(200..=1_500);
                        body["followUps"] = json!([{"at": at, "action": "summary"}]);
                    }
                    let r = http
                        .post(format!("{base}/api/v1/notices"))
                        .bearer_auth(TOKEN)
                        .json(&body)
                        .send()
                        .await;
                    let Ok(r) = r else { break };
                    if r.status() != 201 {
                        break;
                    }
                    let Ok(v) = r.json::<Value>().await else { break };
                    if let Some(k) = v["processQueryKey"].as_str() {
                        if with_follow_up {
                            fu_acked
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(title.clone());
                        }
                        let mut keys = keys.lock().unwrap_or_else(|e| e.into_inner());
                        keys.push((group.clone(), k.to_owned()));
                        if keys.len() >= MAX_PER_CYCLE {
                            break;
                        }
                    }
                }
            }));
        }
        let max_ms = u64::try_from(o.max_run.as_millis()).unwrap_or(u64::MAX);
        let run_for = Duration::from_millis(rng.random_range(0..=max_ms));
        tokio::time::sleep(run_for).await;
        // SIGKILL: no shutdown hook, no final flush.
        child.kill().map_err(|e| format!("kill: {e}"))?;
        let _ = child.wait();
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        let keys = std::mem::take(&mut *keys.lock().unwrap_or_else(|e| e.into_inner()));
        total_acked += keys.len();
        println!(
            "cycle {}: killed after {} ms, {} notices acknowledged",
            cycle + 1,
            run_for.as_millis(),
            keys.len()
        );
        for (g, k) in keys {
            acked.entry(g).or_default().push(k);
        }
        for t in std::mem::take(&mut *fu_acked.lock().unwrap_or_else(|e| e.into_inner())) {
            fu_titles.push((fu_group.clone(), t));
        }
    }

    // Final restart: everything still there, then a graceful stop.
    let (mut child, base) = start(&o.bin, &fake, &dir, store_url.as_deref())?;
    let groups: Vec<String> = acked.keys().cloned().collect();
    let seen = listed(&http, &base, &groups).await?;
    let lost = acked
        .values()
        .flatten()
        .filter(|k| !seen.contains(*k))
        .count();
    let extra_stored = seen.len().saturating_sub(total_acked - lost);
    // Follow-ups: wait (bounded) until every acknowledged one has posted.
    let posted = |fake: &FakeDingTalk| -> BTreeMap<String, usize> {
        let mut by_title = BTreeMap::new();
        let groups: HashSet<&String> = fu_titles.iter().map(|(g, _)| g).collect();
        for g in groups {
            for m in fake.group_view(g) {
                if m.process_query_key.is_none() || !m.text.contains("Scheduled summary") {
                    continue;
                }
                if let Some(t) = fu_titles
                    .iter()
                    .map(|(_, t)| t)
                    .find(|t| m.text.contains(t.as_str()))
                {
                    *by_title.entry(t.clone()).or_insert(0) += 1;
                }
            }
        }
        by_title
    };
    // Until all have posted, or nothing new was posted for 15 s (at most 5 min).
    let waited = Instant::now();
    let (mut last_count, mut last_change) = (0, Instant::now());
    while waited.elapsed() < Duration::from_secs(300)
        && last_change.elapsed() < Duration::from_secs(15)
    {
        let n = posted(&fake).len();
        if n >= fu_titles.len() {
            break;
        }
        if n != last_count {
            (last_count, last_change) = (n, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A little longer, so that a second copy would be seen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_title = posted(&fake);
    let follow_ups = FollowUps {
        acked: fu_titles.len(),
        missing: fu_titles.len().saturating_sub(by_title.len()),
        repeats: by_title.values().map(|n| n.saturating_sub(1)).sum(),
        resent: RESENT.load(Ordering::SeqCst),
    };
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map_err(|e| format!("kill -TERM: {e}"))?;
    if !status.success() {
        return Err("kill -TERM failed".into());
    }
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if started.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            return Err("readbot did not exit within 40 s of SIGTERM".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if !exit.success() {
        return Err(format!("readbot exited with {exit} after SIGTERM"));
    }
    drop(tmp);
    Ok((total_acked, lost, extra_stored, follow_ups))
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if o.postgres && o.store_url.is_none() {
        // A fresh database on a throwaway cluster, removed when this ends.
        match readbot::store::pg_test_cluster::fresh_database().await {
            Some(pg) => o.store_url = Some(pg.url.expose().to_owned()),
            // One line was printed saying why and how to run it.
            None => return ExitCode::SUCCESS,
        }
    }
    let backend = if o.store_url.is_some() {
        "PostgreSQL"
    } else {
        "sled"
    };
    let (cycles, seed) = (o.cycles, o.seed);
    match run(o).await {
        Ok((acked, lost, extra, f)) => {
            println!(
                "crash cycles: {cycles}, acknowledged notices: {acked}, acknowledged notices lost: {lost} (stored without a 201 before the kill: {extra}; seed {seed}; store: {backend})"
            );
            println!(
                "follow-ups acknowledged: {}, never fired: {}, fired twice: {} (re-sent after a kill found them firing: {})",
                f.acked, f.missing, f.repeats, f.resent
            );
            if lost == 0 && f.missing == 0 && f.repeats <= f.resent {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            println!("crash cycles: {cycles}, FAILED: {e} (seed {seed})");
            ExitCode::FAILURE
        }
    }
}
