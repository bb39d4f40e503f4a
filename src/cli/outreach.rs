//! `remind` and `recall`: ask a running readbot to remind a notice's unread
//! members by direct message, or to recall the notice.

use super::remote::{Connection, Remote};
use super::{table, CliError};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// `readbot remind`.
#[derive(Debug, Clone, clap::Args)]
pub struct RemindArgs {
    /// processQueryKey of the notice (as printed by `send` or `notices`).
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Print readbot's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `readbot recall`.
#[derive(Debug, Clone, clap::Args)]
pub struct RecallArgs {
    /// processQueryKey of the notice (as printed by `send` or `notices`).
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Print readbot's JSON instead of a sentence.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `readbot link`.
#[derive(Debug, Clone, clap::Args)]
pub struct LinkArgs {
    /// processQueryKey of the notice (as printed by `send` or `notices`).
    #[arg(
        value_name = "KEY",
        required_unless_present = "group",
        conflicts_with = "group"
    )]
    pub key: Option<String>,
    /// A link to this group's page instead (its openConversationId, as the
    /// `id` command prints it).
    #[arg(long, value_name = "OPEN_CONVERSATION_ID")]
    pub group: Option<String>,
    /// Print readbot's JSON instead of the link.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

fn key_of(raw: &str) -> Result<&str, CliError> {
    let key = raw.trim();
    if key.is_empty() {
        return Err(CliError::Usage("KEY must not be empty".into()));
    }
    Ok(key)
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Formats a reminders answer for people.
pub fn reminders_table(v: &Value) -> String {
    let reminded = v["reminded"].as_array().map_or(0, Vec::len);
    let unread = v["unreadCount"].as_u64().unwrap_or(0);
    let mut out = format!("direct message sent to {reminded} of {unread} unread members\n");
    let rows: Vec<Vec<String>> = v["refused"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                text(r, "reason").to_owned(),
                text(r, "userId").to_owned(),
                text(r, "name").to_owned(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&format!("DingTalk refused {}:\n", rows.len()));
        out.push_str(&table(&["REASON", "USER ID", "NAME"], &rows));
    }
    out
}

/// `readbot remind KEY`: `POST /api/v1/notices/{key}/reminders {"via":"dm"}`.
pub async fn remind(
    config: Option<&Path>,
    args: &RemindArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let key = key_of(&args.key)?;
    let remote = Remote::new(config, &args.conn, Duration::from_secs(150), true)?;
    let answer = remote
        .post(
            &["api", "v1", "notices", key, "reminders"],
            &json!({ "via": "dm" }),
        )
        .await?;
    if args.json {
        writeln!(out, "{}", super::remote::pretty(&answer))?;
    } else {
        write!(out, "{}", reminders_table(&answer))?;
    }
    Ok(())
}

/// `readbot recall KEY`: `DELETE /api/v1/notices/{key}`.
pub async fn recall(
    config: Option<&Path>,
    args: &RecallArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let key = key_of(&args.key)?;
    let remote = Remote::new(config, &args.conn, Duration::from_secs(60), true)?;
    let answer = remote.delete(&["api", "v1", "notices", key]).await?;
    if args.json {
        writeln!(out, "{}", super::remote::pretty(&answer))?;
    } else {
        writeln!(out, "recalled at {}", text(&answer, "recalledAt"))?;
    }
    Ok(())
}

/// `readbot link KEY`: `POST /api/v1/notices/{key}/links`; `readbot link
/// --group ID`: `POST /api/v1/groups/{id}/links`. Prints the page's signed
/// link and when it expires.
pub async fn link(
    config: Option<&Path>,
    args: &LinkArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let path: [&str; 5] = match (&args.group, &args.key) {
        (Some(group), _) => {
            let group = group.trim();
            if group.is_empty() {
                return Err(CliError::Usage("--group must not be empty".into()));
            }
            ["api", "v1", "groups", group, "links"]
        }
        (None, Some(key)) => ["api", "v1", "notices", key_of(key)?, "links"],
        (None, None) => return Err(CliError::Usage("give a KEY or --group".into())),
    };
    let remote = Remote::new(config, &args.conn, Duration::from_secs(60), true)?;
    let answer = remote.post(&path, &json!({})).await.map_err(|e| match e {
        CliError::Failed(m) if m.contains("no such route") => CliError::Failed(format!(
            "{m} (readbot serves pages only when READBOT_PUBLIC_URL is set)"
        )),
        other => other,
    })?;
    if args.json {
        writeln!(out, "{}", super::remote::pretty(&answer))?;
    } else {
        writeln!(out, "{}", text(&answer, "url"))?;
        writeln!(
            out,
            "valid until {} (whoever holds the link can open the page until then)",
            text(&answer, "expiresAt")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminders_table_counts_and_lists_refusals() {
        let v = json!({
            "unreadCount": 3,
            "reminded": [{"userId": "u1"}],
            "refused": [
                {"userId": "u2", "name": "张伟", "reason": "invalid"},
                {"userId": "u3", "name": null, "reason": "flow_controlled"},
            ],
        });
        let t = reminders_table(&v);
        assert!(
            t.starts_with("direct message sent to 1 of 3 unread members\n"),
            "{t}"
        );
        assert!(t.contains("DingTalk refused 2:"), "{t}");
        assert!(t.contains("invalid          u2       张伟"), "{t}");
        assert!(t.contains("flow_controlled  u3"), "{t}");
    }
}
