//! The `readbot` binary: parse the command line, set up logging, hand over
//! to `readbot::app` (serve) or `readbot::sandbox`. Only wiring lives here.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// full round trip, and keep serving so you can try the API with curl.
    Sandbox {
        /// Listen address of readbot in the sandbox.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// sled folder of the sandbox.
        #[arg(long, default_value = "./readbot-data/sandbox")]
        data_dir: PathBuf,
        /// Run the demo and exit instead of serving.
        #[arg(long)]
        once: bool,
    },
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("READBOT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("readbot: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let config =
                readbot::config::Config::load(cli.config.as_deref()).context("configuration")?;
            let app = readbot::app::Application::build(config)
                .await
                .context("start-up")?;
            app.run_until_stopped(readbot::app::shutdown_signal())
                .await
                .context("server")?;
            Ok(())
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
        .context("sandbox"),
    }
}
