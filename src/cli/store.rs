//! `readbot store compact`: offline maintenance of the data folder (see
//! [`crate::store::compact`]). The one subcommand that opens the store:
//! sled's lock refuses it while readbot runs.

use super::CliError;
use std::io::Write;
use std::path::PathBuf;

/// `readbot store ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy a stopped readbot's data folder into a fresh one and swap them,
    /// giving back the space of removed entries. The old folder is kept as
    /// <dir>.before-compact-<millis>; delete it once readbot runs fine.
    Compact(CompactArgs),
}

/// `readbot store compact`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactArgs {
    /// The data folder (readbot must be stopped).
    #[arg(long, env = "READBOT_DATA_DIR", default_value = crate::config::defaults::DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Runs a `store` subcommand.
pub async fn run(cmd: &StoreCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        StoreCommand::Compact(args) => {
            let dir = args.data_dir.clone();
            let report = tokio::task::spawn_blocking(move || crate::store::compact::compact(&dir))
                .await
                .map_err(|e| CliError::Failed(format!("compaction stopped: {e}")))?
                .map_err(|e| CliError::Failed(e.with_causes()))?;
            writeln!(
                out,
                "compacted {}: {} entries, {} bytes -> {} bytes; the old folder is kept at {} (delete it once readbot runs fine)",
                args.data_dir.display(),
                report.entries,
                report.before_bytes,
                report.after_bytes,
                report.old_dir.display()
            )?;
            Ok(())
        }
    }
}
