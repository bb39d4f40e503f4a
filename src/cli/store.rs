//! `readbot store compact` / `readbot store copy`: offline maintenance of
//! the data folder (see [`crate::store::compact`], [`crate::store::copy`]).
//! The subcommands that open the store: sled's lock refuses them while
//! readbot runs.

use super::CliError;
use std::io::Write;
use std::path::PathBuf;

/// `readbot store ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy a stopped readbot's data folder into a fresh one and swap them,
    /// giving back the space of removed entries. The old folder is kept as
    /// `<dir>.before-compact-<millis>`; delete it once readbot runs fine.
    Compact(CompactArgs),
    /// Copy a stopped readbot's data folder into another store (a new
    /// folder, or the shared database of several replicas): notices,
    /// names, rosters, reminders, reads, follow-ups, sends, the call ledger,
    /// the link key and the de-dup marks still live. Idempotent: run it
    /// again after an interruption to finish.
    Copy(CopyArgs),
}

/// `readbot store copy`.
#[derive(Debug, Clone, clap::Args)]
pub struct CopyArgs {
    /// The stopped readbot's data folder (sled).
    #[arg(long, value_name = "FOLDER")]
    pub from: PathBuf,
    /// The target store: a folder (sled), or a database URL where this
    /// build has that backend.
    #[arg(long, value_name = "STORE")]
    pub to: String,
    /// De-dup marks and signature records older than this are not copied
    /// (readbot's bot.dedup_retention_secs).
    #[arg(
        long,
        env = "READBOT_DEDUP_RETENTION_SECS",
        default_value_t = crate::config::defaults::DEDUP_RETENTION.as_secs()
    )]
    pub dedup_retention_secs: u64,
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
        StoreCommand::Copy(args) => copy(args, out).await,
    }
}

/// `readbot store copy`: copies, then prints what per kind.
async fn copy(args: &CopyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    use crate::store::copy;
    let options = copy::CopyOptions {
        now: crate::domain::now_millis(),
        mark_retention: std::time::Duration::from_secs(args.dedup_retention_secs),
    };
    let report = copy::run(&args.from, &args.to, options)
        .await
        .map_err(|e| {
            if e.is_usage() {
                CliError::Usage(e.to_string())
            } else {
                CliError::Failed(e.with_causes())
            }
        })?;
    writeln!(
        out,
        "copied {} -> {}: {} entries",
        args.from.display(),
        copy::display_target(&args.to),
        report.total()
    )?;
    let rows: Vec<Vec<String>> = report
        .copied
        .iter()
        .map(|(kind, n)| vec![(*kind).to_owned(), n.to_string()])
        .collect();
    write!(out, "{}", super::table(&["KIND", "COPIED"], &rows))?;
    writeln!(
        out,
        "skipped (expired): {} de-dup marks, {} signature records",
        report.expired_marks, report.expired_signatures
    )?;
    if report.sends_left_pending > 0 {
        writeln!(
            out,
            "warning: {} send records name a notice the source no longer holds; they stay pending (a retry with their key is refused, never sent twice)",
            report.sends_left_pending
        )?;
    }
    if report.link_key_kept {
        writeln!(
            out,
            "warning: the target already had another page-link key and kept it; links signed before the copy no longer open"
        )?;
    }
    Ok(())
}
