//! The `readbot` binary: parse the command line, set up logging, hand over
//! to `readbot::app` (serve), `readbot::sandbox` or `readbot::cli`. Only
//! wiring lives here.
//!
//! Exit codes: 0 success, 1 failure (or problems found by `check`), 2 usage
//! or configuration error. Errors go to stderr as one line.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use readbot::cli;
use std::path::PathBuf;
use std::process::ExitCode;

/// readbot: tells a DingTalk group who has read a notice, and who has not.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Path of the TOML config file (every key can also be set by environment variable).
    #[arg(long, global = true, env = "READBOT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the DingTalk callback and readbot's API.
    Serve,
    /// Run readbot against a built-in fake DingTalk with a demo group, show a
    /// full round trip, then chat with it: each line of standard input is an
    /// @mention from a demo member (/help lists the commands; end of input stops).
    Sandbox {
        /// Listen address of readbot in the sandbox.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// sled folder of the sandbox.
        #[arg(long, default_value = "./readbot-data/sandbox")]
        data_dir: PathBuf,
        /// Run the demo and exit instead of reading chat lines.
        #[arg(long)]
        once: bool,
    },
    /// Check the configuration and DingTalk access; print the callback URL and
    /// the permissions to grant in the DingTalk console. Exit 1 when problems are found.
    Check(cli::check::CheckArgs),
    /// Send a notice through a running readbot (text from --file or standard input); print its key.
    Send(cli::remote::SendArgs),
    /// Show who has read a notice, as a table or JSON.
    Receipts(cli::remote::ReceiptsArgs),
    /// List the notices recorded for a group, newest first.
    Notices(cli::remote::NoticesArgs),
    /// Remind a notice's unread members by direct message (DingTalk allows no @ outside a chat reply).
    Remind(cli::outreach::RemindArgs),
    /// Recall a notice from its group; readbot sends no more reminders for it.
    Recall(cli::outreach::RecallArgs),
    /// Print a signed, expiring link to a notice's page, or with --group to a group's page (needs READBOT_PUBLIC_URL on the server).
    Link(cli::outreach::LinkArgs),
    /// Preview a reply template against sample data before deploying it.
    Render(cli::render::RenderArgs),
    /// Ask a running readbot whether it is alive (or ready, with --ready); for container health checks.
    Health(cli::remote::HealthArgs),
    /// Maintain a stopped readbot's data folder (compact it, or copy it into another store).
    #[command(subcommand)]
    Store(cli::store::StoreCommand),
}

impl Command {
    /// `serve` logs at `info` by default; the sandbox only warnings (its
    /// chat is on standard output); client commands report for themselves
    /// and log only when `RUST_LOG` asks.
    fn default_log_level(&self) -> &'static str {
        match self {
            Command::Serve => "info",
            Command::Sandbox { .. } => "warn",
            _ => "off",
        }
    }
}

/// Logs go to stderr from a thread of their own: a runtime worker only
/// queues the line, so a slow log consumer never stalls a request. If the
/// consumer falls 128,000 lines behind, lines are dropped rather than
/// blocking readbot. The returned guard flushes what is queued when dropped
/// (at the end of `main`). Human-format lines are coloured only when stderr
/// is a terminal: a file, a pipe or journald gets no ANSI escape codes.
fn init_logging(default_level: &str) -> tracing_appender::non_blocking::WorkerGuard {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var("READBOT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let max = tracing_subscriber::Layer::<tracing_subscriber::Registry>::max_level_hint(&filter)
        .unwrap_or(tracing::level_filters::LevelFilter::TRACE);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let installed = if json {
        tracing::subscriber::set_global_default(builder.json().finish())
    } else {
        tracing::subscriber::set_global_default(builder.finish())
    };
    if installed.is_ok() {
        forward_log_records(max);
    }
    guard
}

/// `log` records of the dependencies become tracing events, but not sled's
/// (nor crossbeam's): sled logs from crossbeam-epoch's thread-exit cleanup,
/// when the fmt layer's thread-local buffer may already be gone, and an
/// event there aborts the process ("thread local panicked on drop").
/// readbot reports sled's failures through its own errors.
fn forward_log_records(max: tracing::level_filters::LevelFilter) {
    use tracing_log::AsLog as _;
    let _ = tracing_log::LogTracer::builder()
        .ignore_crate("sled")
        .ignore_crate("crossbeam")
        .with_max_level(max.as_log())
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _logs = init_logging(cli.command.default_log_level());
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("readbot: {}", cli::one_line(&format!("{e:#}")));
            ExitCode::from(cli::EXIT_FAILED)
        }
    }
}

/// Prints a subcommand's error as one line and maps it to its exit code.
fn finish(res: Result<u8, cli::CliError>) -> ExitCode {
    match res {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("readbot: {}", e.one_line());
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.config.as_deref();
    let mut stdout = std::io::stdout();
    let ok = |r: Result<(), cli::CliError>| finish(r.map(|()| cli::EXIT_OK));
    match cli.command {
        Command::Check(args) => {
            let report = cli::check::check(config_path, &args, &mut stdout).await;
            Ok(finish(report.and_then(|r| r.verdict())))
        }
        Command::Send(args) => Ok(ok(cli::remote::send(config_path, &args, &mut stdout).await)),
        Command::Receipts(args) => Ok(ok(
            cli::remote::receipts(config_path, &args, &mut stdout).await
        )),
        Command::Notices(args) => Ok(ok(
            cli::remote::notices(config_path, &args, &mut stdout).await
        )),
        Command::Remind(args) => Ok(ok(
            cli::outreach::remind(config_path, &args, &mut stdout).await
        )),
        Command::Recall(args) => Ok(ok(
            cli::outreach::recall(config_path, &args, &mut stdout).await
        )),
        Command::Link(args) => Ok(ok(
            cli::outreach::link(config_path, &args, &mut stdout).await
        )),
        Command::Health(args) => Ok(ok(
            cli::remote::health(config_path, &args, &mut stdout).await
        )),
        Command::Render(args) => Ok(ok(cli::render::render(&args, &mut stdout))),
        Command::Store(cmd) => Ok(ok(cli::store::run(&cmd, &mut stdout).await)),
        Command::Serve => {
            let config = match readbot::config::Config::load(config_path) {
                Ok(c) => c,
                Err(e) => {
                    return Ok(finish(Err(cli::CliError::Usage(format!(
                        "configuration: {e}"
                    )))))
                }
            };
            let app = readbot::app::Application::build(config)
                .await
                .context("start-up")?;
            app.run_until_stopped(readbot::app::shutdown_signal())
                .await
                .context("server")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sandbox {
            listen,
            data_dir,
            once,
        } => readbot::sandbox::run(readbot::sandbox::SandboxOptions {
            listen,
            data_dir,
            once,
        })
        .await
        .context("sandbox")
        .map(|()| ExitCode::SUCCESS),
    }
}
