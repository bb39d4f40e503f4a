//! readbot's performance and API budget (issue 5), measured in one run.
//!
//! ```sh
//! cargo bench --locked --bench budget                 # everything, full sizes
//! cargo bench --locked --bench budget -- --quick      # smoke run (small sizes, few runs)
//! cargo bench --locked --bench budget -- intake send  # only some sections
//! ```
//!
//! Sections: `summary` (latency against the latency floor, cold and warm, and
//! DingTalk calls per summary against the call floor), `repeat` (20 people
//! asking about the same notice), `intake` (signed callback against a bare
//! axum handler), `send` (send API and the durability step), `memory` (peak
//! RSS and store size, each scenario in a child process of this binary),
//! `events` (a 10,000-member summary from stored read events against the
//! query path, as a ratio to one reply round trip), `postgres` (the send API,
//! intake and a 3,000-member summary on sled and on PostgreSQL in the same
//! run, as ratios; the PostgreSQL half skipped without PostgreSQL installed).
//!
//! Every size parameter can be set by `--name value`, `--name=value` or the
//! environment variable `BENCH_NAME` (upper case, `-` → `_`); see
//! [`opts::USAGE`]. Everything runs on 127.0.0.1 against readbot's own fake
//! DingTalk; nothing here asserts on time, it prints figures. See
//! BENCHMARKS.md.
//!
//! One module per section (`summary` for 1 and 2, `repeat`, `intake`, `send`,
//! `memory`), `child` for the child-process scenarios (`--child NAME ...`),
//! `opts` for the command line, `common` for what they share (the readbot
//! stack against the fake, statistics, call counters).

mod child;
mod common;
mod events;
mod intake;
mod memory;
mod opts;
mod postgres;
mod repeat;
mod send;
mod summary;

use crate::child::child_main;
use crate::events::section_events;
use crate::intake::section_intake;
use crate::memory::section_memory;
use crate::opts::parse_opts;
use crate::postgres::section_postgres;
use crate::repeat::section_repeat;
use crate::send::section_send;
use crate::summary::section_summary;
use std::time::Instant;

fn init_logging() {
    // Production logs at info; keep that cost in the figures, but write nowhere.
    let filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".to_owned());
    if filter != "off" {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::sink)
            .try_init();
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    init_logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if args.first().map(String::as_str) == Some("--child") {
        return match rt.block_on(child_main(&args[1..])) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("child: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let o = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!("# readbot budget benchmark");
    println!(
        "machine: {} cores, {}; started {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |s| s.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_else(|| "unknown CPU".into()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| format!("loadavg {}", s.trim()))
            .unwrap_or_default()
    );
    println!("options: {o:?}");
    let started = Instant::now();
    rt.block_on(async {
        if o.sections.contains("summary") {
            section_summary(&o).await;
        }
        if o.sections.contains("repeat") {
            section_repeat(&o).await;
        }
        if o.sections.contains("intake") {
            section_intake(&o).await;
        }
        if o.sections.contains("send") {
            section_send(&o).await;
        }
        if o.sections.contains("memory") {
            section_memory(&o).await;
        }
        if o.sections.contains("events") {
            section_events(&o).await;
        }
        if o.sections.contains("postgres") {
            section_postgres(&o).await;
        }
    });
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    std::process::ExitCode::SUCCESS
}
