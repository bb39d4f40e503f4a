//! Command-line options and `BENCH_*` environment variables.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

pub(crate) const USAGE: &str = "\
usage: cargo bench --bench budget -- [--quick] [SECTION...] [--name value ...]
sections: summary repeat intake send memory events postgres (default: all)
options (env BENCH_<NAME> works too):
  --sizes 50,500,3000,10000   group sizes for summary latency and calls
  --cold-runs 3               cold summaries per size (fresh readbot each)
  --warm-runs 5               warm summaries per size
  --rtt-ms 20                 simulated DingTalk round trip
  --read-percent 90           share of members who read the notice
  --rate-limits 20,1000       DINGTALK_RATE_LIMIT_PER_SEC values to run (20 = production default)
  --asks 20                   repeated asks about one notice
  --cache-secs 5              READBOT_RECEIPTS_CACHE_SECS in the repeat section
  --concurrency 64            connections for intake and the send API
  --intake-requests 20000     requests per intake round
  --intake-secs 15            time cap per intake round
  --intake-rounds 3           alternating rounds of bare / signed
  --send-requests 2000        notices sent through the API
  --notices 100000            notices stored in the memory section
  --events-members 10000      group size of the events section
  --quick                     small sizes and few runs (a smoke run)";

// ----- options -------------------------------------------------------------------

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) sizes: Vec<usize>,
    pub(crate) cold_runs: usize,
    pub(crate) warm_runs: usize,
    pub(crate) rtt: Duration,
    pub(crate) read_percent: usize,
    pub(crate) rate_limits: Vec<u32>,
    pub(crate) asks: usize,
    pub(crate) cache_secs: u64,
    pub(crate) concurrency: usize,
    pub(crate) intake_requests: usize,
    pub(crate) intake_secs: u64,
    pub(crate) intake_rounds: usize,
    pub(crate) send_requests: usize,
    pub(crate) notices: usize,
    pub(crate) events_members: usize,
    pub(crate) sections: HashSet<String>,
}

const KEYS: &[&str] = &[
    "sizes",
    "cold-runs",
    "warm-runs",
    "rtt-ms",
    "read-percent",
    "rate-limits",
    "asks",
    "cache-secs",
    "concurrency",
    "intake-requests",
    "intake-secs",
    "intake-rounds",
    "send-requests",
    "notices",
    "events-members",
];
const SECTIONS: &[&str] = &[
    "summary", "repeat", "intake", "send", "memory", "events", "postgres",
];

fn env_name(key: &str) -> String {
    format!("BENCH_{}", key.to_uppercase().replace('-', "_"))
}

fn parse_list<T: std::str::FromStr>(key: &str, v: &str) -> Result<Vec<T>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("--{key}: {s:?} is not a number"))
        })
        .collect()
}

pub(crate) fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    let mut quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1" || v == "true");
    let mut sections: HashSet<String> = HashSet::new();
    for key in KEYS {
        if let Ok(v) = std::env::var(env_name(key)) {
            kv.insert((*key).to_owned(), v);
        }
    }
    if let Ok(v) = std::env::var("BENCH_ONLY") {
        sections.extend(v.split(',').map(|s| s.trim().to_owned()));
    }
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--bench" {
            // cargo bench passes this to harness = false targets.
        } else if a == "--quick" {
            quick = true;
        } else if a == "--help" || a == "-h" {
            return Err(USAGE.to_owned());
        } else if let Some(rest) = a.strip_prefix("--") {
            let (k, v) = match rest.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => {
                    i += 1;
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("--{rest} needs a value\n{USAGE}"))?;
                    (rest.to_owned(), v.clone())
                }
            };
            if !KEYS.contains(&k.as_str()) {
                return Err(format!("unknown option --{k}\n{USAGE}"));
            }
            kv.insert(k, v);
        } else {
            sections.insert(a.clone());
        }
        i += 1;
    }
    sections.retain(|s| !s.is_empty());
    for s in &sections {
        if !SECTIONS.contains(&s.as_str()) {
            return Err(format!("unknown section {s:?}\n{USAGE}"));
        }
    }
    if sections.is_empty() {
        sections = SECTIONS.iter().map(|s| (*s).to_owned()).collect();
    }
    let num = |k: &str, full: usize, q: usize| -> Result<usize, String> {
        match kv.get(k) {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("--{k}: {v:?} is not a number")),
            None => Ok(if quick { q } else { full }),
        }
    };
    let sizes = match kv.get("sizes") {
        Some(v) => parse_list("sizes", v)?,
        None if quick => vec![50, 500],
        None => vec![50, 500, 3000, 10_000],
    };
    let rate_limits = match kv.get("rate-limits") {
        Some(v) => parse_list("rate-limits", v)?,
        None => vec![20, 1000],
    };
    Ok(Opts {
        sizes,
        cold_runs: num("cold-runs", 3, 1)?.max(1),
        warm_runs: num("warm-runs", 5, 2)?.max(1),
        rtt: Duration::from_millis(num("rtt-ms", 20, 20)? as u64),
        read_percent: num("read-percent", 90, 90)?.min(100),
        rate_limits,
        asks: num("asks", 20, 20)?.max(1),
        cache_secs: num("cache-secs", 5, 5)? as u64,
        concurrency: num("concurrency", 64, 64)?.max(1),
        intake_requests: num("intake-requests", 20_000, 2_000)?.max(1),
        intake_secs: num("intake-secs", 15, 5)?.max(1) as u64,
        intake_rounds: num("intake-rounds", 3, 1)?.max(1),
        send_requests: num("send-requests", 2_000, 200)?.max(1),
        notices: num("notices", 100_000, 10_000)?,
        events_members: num("events-members", 10_000, 10_000)?.max(1),
        sections,
    })
}
