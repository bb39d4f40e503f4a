//! `readbot check`: is this configuration ready for production?
//!
//! Loads the configuration exactly as `serve` does, then checks, in order:
//! the templates, the data folder, the public URL (HTTP mode) or the Stream
//! gateway's open-connection call (Stream mode), an access token from
//! DingTalk, and, for a group given with `--group`, the robot's read-status
//! API, the member-list sources and (with `--user`) the name look-up. It
//! prints what it found, the callback URL (HTTP mode) or the Stream console
//! steps, and the permissions to grant in the DingTalk developer console.
//!
//! A `--group` that DingTalk refuses as a group id (`invalid.openConversationId`,
//! or the member list's `cidEncryptError`) is a problem, reported once.
//!
//! Nothing is sent to any group. With `--group` it makes one read-status
//! query with a made-up key (DingTalk refuses the key, which proves the
//! robot code and permission are fine) and one member-list query per source;
//! these count towards the organisation's monthly API quota.

use super::{one_line, CliError};
use crate::config::{Config, Mode};
use crate::dingtalk::client::DingTalkClient;
use crate::dingtalk::stream::frame::{BOT_MESSAGE_TOPIC, OPEN_PATH};
use crate::dingtalk::stream::probe::{probe, ProbeOutcome};
use crate::dingtalk::stream::StreamSettings;
use crate::dingtalk::{DingTalkApi, DingTalkError, ErrorCode, ReadQuery, RosterQuery};
use crate::domain::{OpenConversationId, ProcessQueryKey, RosterSource, UserId};
use crate::render::Renderer;
use std::io::Write;
use std::path::Path;

/// `readbot check`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckArgs {
    /// openConversationId of a group the robot is in: also try the read-status and member-list APIs there.
    #[arg(long, short = 'g', value_name = "CID")]
    pub group: Option<String>,
    /// userId of a member of that group: try the internal-group member list on their behalf and the name look-up.
    #[arg(long, short = 'u', value_name = "USERID")]
    pub user: Option<String>,
}

/// What `check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// One sentence per problem (each also printed as a `FAIL` line).
    pub problems: Vec<String>,
    /// Warnings: readbot works, but maybe not as expected.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Exit 0 without problems; otherwise one line naming every problem (exit 1).
    pub fn verdict(&self) -> Result<u8, CliError> {
        match self.problems.as_slice() {
            [] => Ok(super::EXIT_OK),
            [one] => Err(CliError::Failed(format!("check found a problem: {one}"))),
            many => Err(CliError::Failed(format!(
                "check found {} problems: {}",
                many.len(),
                many.join("; ")
            ))),
        }
    }
}

/// The console permissions readbot uses: (code, console name, what for).
pub const PERMISSIONS: &[(&str, &str, &str)] = &[
    (
        "qyapi_robot_sendmsg",
        "企业内机器人发送消息权限",
        "send notices and query their read status (required)",
    ),
    (
        "qyapi_chat_manage",
        "群基础信息管理",
        "member lists of scene groups (roster source scene_group)",
    ),
    (
        "qyapi_get_member",
        "成员信息读权限",
        "resolve userIds to names",
    ),
];

struct Printer<'a> {
    out: &'a mut dyn Write,
    report: CheckReport,
    /// DingTalk already said the `--group` id is not a valid group.
    group_refused: bool,
}

impl Printer<'_> {
    fn line(&mut self, tag: &str, msg: &str) -> Result<(), CliError> {
        writeln!(self.out, "  {tag:<5} {msg}")?;
        self.out.flush()?;
        Ok(())
    }
    fn ok(&mut self, msg: &str) -> Result<(), CliError> {
        self.line("ok", msg)
    }
    fn info(&mut self, msg: &str) -> Result<(), CliError> {
        self.line("", msg)
    }
    fn warn(&mut self, msg: &str) -> Result<(), CliError> {
        self.report.warnings.push(msg.to_owned());
        self.line("warn", msg)
    }
    fn fail(&mut self, msg: &str) -> Result<(), CliError> {
        self.report.problems.push(msg.to_owned());
        self.line("FAIL", msg)
    }
    fn section(&mut self, title: &str) -> Result<(), CliError> {
        writeln!(self.out, "\n{title}")?;
        Ok(())
    }
    /// DingTalk says `group` is not a valid group id: one problem, however
    /// many APIs say so.
    fn group_refused(
        &mut self,
        group: &OpenConversationId,
        e: &DingTalkError,
    ) -> Result<(), CliError> {
        if std::mem::replace(&mut self.group_refused, true) {
            return self.info(&format!(
                "DingTalk refused group {group} here too ({})",
                what(e)
            ));
        }
        self.fail(&format!(
            "DingTalk says {group} is not a valid group id ({}): pass the group's openConversationId (the conversationId of a callback from that group) to --group",
            what(e)
        ))
    }
}

/// Whether DingTalk refused the group id itself (not the app's rights on it).
fn is_invalid_group(e: &DingTalkError) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::InvalidOpenConversationId | ErrorCode::CidEncryptError)
    )
}

/// Whether DingTalk refused because the app lacks a permission.
fn is_permission_error(e: &DingTalkError) -> bool {
    match e {
        DingTalkError::Api { code, .. } => matches!(
            code,
            ErrorCode::PermissionDenied(_) | ErrorCode::Unauthorized | ErrorCode::AuthError
        ),
        // oapi: "no permission for this API".
        DingTalkError::OldApi { errcode, .. } => *errcode == 60011,
        _ => false,
    }
}

/// `code: message` of a DingTalk error, on one line.
fn what(e: &DingTalkError) -> String {
    one_line(&format!("{}: {}", e.code_str(), e.message_str()))
}

/// The sentence for a failed token request.
fn token_problem(e: &DingTalkError, api_base: &str) -> String {
    match e.code() {
        Some(ErrorCode::InvalidClientIdOrSecret) => format!(
            "DingTalk rejected the app key or secret ({}): set DINGTALK_APP_KEY / DINGTALK_APP_SECRET to the app's Client ID and Client Secret from the developer console",
            what(e)
        ),
        _ if is_permission_error(e) => format!(
            "DingTalk refused the token request ({}): check the app's IP whitelist and status in the developer console",
            what(e)
        ),
        _ => match e {
            DingTalkError::Timeout | DingTalkError::Transport(_) => format!(
                "cannot reach DingTalk at {api_base} to get an access token ({e}): check DNS, firewall and proxy settings"
            ),
            _ => format!("cannot get an access token from DingTalk ({})", what(e)),
        },
    }
}

fn data_dir_problem(dir: &Path) -> Option<String> {
    let probe_in = |d: &Path| -> Option<String> {
        let probe = d.join(format!(".readbot-check-{}", std::process::id()));
        match std::fs::write(&probe, b"probe") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                None
            }
            Err(e) => Some(format!("{} is not writable: {e}", d.display())),
        }
    };
    if dir.exists() {
        if !dir.is_dir() {
            return Some(format!("data folder {} is not a folder", dir.display()));
        }
        return probe_in(dir).map(|m| format!("data folder {m}"));
    }
    // readbot creates it: the nearest existing parent must be writable.
    let mut parent = dir.parent();
    while let Some(p) = parent {
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        if p.exists() {
            return probe_in(p).map(|m| {
                format!(
                    "data folder {} does not exist and cannot be created: {m}",
                    dir.display()
                )
            });
        }
        parent = p.parent();
    }
    None
}

/// Runs the checks, printing to `out`. `Ok` carries the report (problems
/// mean exit 1); `Err` is a usage or configuration error (exit 2).
pub async fn check(
    config_path: Option<&Path>,
    args: &CheckArgs,
    out: &mut dyn Write,
) -> Result<CheckReport, CliError> {
    let config =
        Config::load(config_path).map_err(|e| CliError::Usage(format!("configuration: {e}")))?;
    let group = args
        .group
        .as_deref()
        .map(|g| {
            OpenConversationId::parse(g.trim())
                .map_err(|e| CliError::Usage(format!("--group: {e}")))
        })
        .transpose()?;
    let user = args
        .user
        .as_deref()
        .map(|u| UserId::parse(u.trim()).map_err(|e| CliError::Usage(format!("--user: {e}"))))
        .transpose()?;
    let mut p = Printer {
        out,
        report: CheckReport::default(),
        group_refused: false,
    };
    writeln!(p.out, "readbot {} check", env!("CARGO_PKG_VERSION"))?;

    p.section("Configuration")?;
    let source = config_path
        .map(|c| c.display().to_string())
        .or_else(|| std::env::var("READBOT_CONFIG").ok())
        .map_or_else(
            || "environment only".to_owned(),
            |f| format!("file {f} + environment"),
        );
    p.ok(&format!("configuration is valid ({source})"))?;
    let d = &config.dingtalk;
    p.info(&format!(
        "app key {}, robot code {}, API {}, old API {}",
        d.app_key,
        d.robot_code.as_str(),
        d.api_base,
        d.oapi_base
    ))?;
    p.info(&format!(
        "member-list sources, in order: {}",
        config
            .bot
            .roster_sources
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    match config.api_token {
        Some(_) => p.ok("API token is set: the send / receipts / notices API is enabled")?,
        None => p.warn(
            "READBOT_API_TOKEN is not set: readbot's API answers 503, so notices cannot be sent through readbot",
        )?,
    }
    match Renderer::new(config.templates_dir.as_deref()) {
        Ok(r) if r.overridden().is_empty() => p.ok("templates: built-in")?,
        Ok(r) => p.ok(&format!(
            "templates: {} override(s) render: {}",
            r.overridden().len(),
            r.overridden().join(", ")
        ))?,
        Err(e) => p.fail(&format!("templates: {e}"))?,
    }
    match &config.postgres {
        None => match data_dir_problem(&config.data_dir) {
            None => p.ok(&format!(
                "store: sled in {}; the data folder is writable (run one readbot per folder)",
                config.data_dir.display()
            ))?,
            Some(m) => p.fail(&m)?,
        },
        Some(pg) => match crate::store::postgres::probe(pg).await {
            Ok(r) => p.ok(&format!(
                "store: postgres at {}, healthy (schema version {} of {}{})",
                r.target,
                r.schema,
                r.known,
                if r.schema < r.known {
                    "; readbot migrates it at start"
                } else {
                    ""
                }
            ))?,
            Err(e) => p.fail(&format!("store: {}", e.with_causes()))?,
        },
    }
    let d = &config.dingtalk;
    match (&config.postgres, d.replicas) {
        (None, n) if n > 1 => p.fail(&format!(
            "READBOT_REPLICAS is {n}, but the store is sled in one folder: replicas must share a PostgreSQL \
             store (READBOT_STORE_URL; README, \"High availability\"), or set READBOT_REPLICAS=1"
        ))?,
        (None, _) => {}
        (Some(_), n) => p.info(&format!(
            "replicas: {n} (READBOT_REPLICAS): this one keeps every DingTalk API to {} of the app's {} calls/s{}",
            d.rate_limit_per_replica(),
            d.rate_limit_per_sec,
            if n == 1 {
                "; set READBOT_REPLICAS to the number of replicas sharing this database"
            } else {
                ""
            }
        ))?,
    }
    p.info(&format!("listening on {}", config.listen))?;
    p.info(&format!(
        "receive mode {} (READBOT_MODE): {}",
        config.mode.as_str(),
        match config.mode {
            Mode::Http => "DingTalk calls readbot's callback URL",
            Mode::Stream => "readbot dials out to DingTalk's Stream gateway; no public URL needed",
        }
    ))?;

    let callback_url = if config.mode == Mode::Stream {
        check_stream(&mut p, &config).await?;
        String::new()
    } else {
        callback_url(&mut p, &config)?
    };

    p.section("DingTalk")?;
    let client = DingTalkClient::new(config.dingtalk.clone())
        .map_err(|e| CliError::Failed(format!("cannot build the DingTalk client: {e}")))?;
    let token_ok = match client.access_token().await {
        Ok(()) => {
            p.ok("access token obtained: app key and secret are right")?;
            true
        }
        Err(e) => {
            p.fail(&token_problem(&e, d.api_base.as_str()))?;
            false
        }
    };
    match (&group, token_ok) {
        (None, _) => p.info(
            "pass --group <openConversationId> (and --user <userId>) to try the read-status and member-list APIs for a group",
        )?,
        (Some(_), false) => p.info("group checks skipped: they need an access token")?,
        (Some(group), true) => {
            check_read_api(&mut p, &client, &config, group).await?;
            check_rosters(&mut p, &client, &config, group, user.as_ref()).await?;
            if let Some(u) = &user {
                check_names(&mut p, &client, u).await?;
            }
        }
    }

    check_usage(&mut p, config_path, &config).await?;

    p.section("DingTalk developer console (https://open-dev.dingtalk.com), your app")?;
    if config.mode == Mode::Stream {
        p.info("1. Robot (机器人): message receiving mode (消息接收模式) Stream 模式 (Stream mode); there is no URL to enter")?;
    } else {
        p.info("1. Robot (机器人): message receiving mode (消息接收模式) HTTP; message receiving URL (消息接收地址):")?;
        p.info(&format!("     {callback_url}"))?;
    }
    p.info("2. Permissions (权限管理), grant:")?;
    for (code, name, why) in PERMISSIONS {
        p.info(&format!("     {code:<20} {name}: {why}"))?;
    }
    p.info("   and, if your organisation offers it, the internal-group member-list permission (roster source inner_group)")?;
    p.info("3. Publish the app version, then add the robot to your groups")?;

    let n = p.report.problems.len();
    writeln!(
        p.out,
        "\n{}",
        match n {
            0 if p.report.warnings.is_empty() => "No problems found.".to_owned(),
            0 => format!(
                "No problems found ({} warning(s)).",
                p.report.warnings.len()
            ),
            1 => "1 problem found.".to_owned(),
            n => format!("{n} problems found."),
        }
    )?;
    Ok(p.report)
}

/// How long `check` waits for a running readbot's usage.
const USAGE_TIMEOUT_SECS: u64 = 3;

/// The month's billable DingTalk calls, from a running readbot's
/// `GET /api/v1/usage` (`check` never opens the store; the ledger lives there).
async fn check_usage(
    p: &mut Printer<'_>,
    config_path: Option<&Path>,
    config: &Config,
) -> Result<(), CliError> {
    p.section("Monthly DingTalk call budget")?;
    p.info(&format!(
        "dingtalk.monthly_call_budget = {} billable calls a month (query, send, batchSend, recall and group member lists count; token and contacts calls do not)",
        config.dingtalk.monthly_call_budget
    ))?;
    if config.api_token.is_none() {
        return p
            .info("this month's usage: set READBOT_API_TOKEN to read it from the running readbot");
    }
    let conn = super::remote::Connection {
        url: None,
        timeout: Some(USAGE_TIMEOUT_SECS),
    };
    let remote = match super::remote::Remote::new(
        config_path,
        &conn,
        std::time::Duration::from_secs(USAGE_TIMEOUT_SECS),
        true,
    ) {
        Ok(r) => r,
        Err(e) => return p.info(&format!("this month's usage: {e}")),
    };
    let u = match remote.get(&["api", "v1", "usage"], &[]).await {
        Ok(u) => u,
        Err(e) => {
            return p.info(&format!(
                "this month's usage: not available ({}); readbot shows it at GET /api/v1/usage and /metrics while it runs",
                one_line(&e.to_string())
            ))
        }
    };
    let n = |k: &str| u.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let flag = |k: &str| u.get(k).and_then(serde_json::Value::as_bool) == Some(true);
    let per_api: Vec<String> = u
        .get("calls")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(api, c)| c.as_u64().filter(|c| *c > 0).map(|c| format!("{api} {c}")))
                .collect()
        })
        .unwrap_or_default();
    let line = format!(
        "billable calls this month ({}, {}): {} of {} ({}%){}",
        u.get("month")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?"),
        u.get("timeZone")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?"),
        n("used"),
        n("budget"),
        n("percent"),
        if per_api.is_empty() {
            String::new()
        } else {
            format!(": {}", per_api.join(", "))
        }
    );
    if flag("dingtalkRefused") {
        p.warn(&format!(
            "{line}; DingTalk refused a call for the monthly quota: summaries answer from stored reads until the month ends"
        ))
    } else if flag("saving") {
        p.warn(&format!(
            "{line}; past 95%: summaries answer from stored reads without querying until the month ends"
        ))
    } else if flag("warning") {
        p.warn(&format!("{line}; past 80% of the budget"))
    } else {
        p.ok(&line)
    }
}

/// HTTP mode: the callback URL to enter in the console, from `READBOT_PUBLIC_URL`.
fn callback_url(p: &mut Printer<'_>, config: &Config) -> Result<String, CliError> {
    p.section("Callback")?;
    Ok(match &config.public_url {
        Some(u) => {
            let u = u.trim().trim_end_matches('/');
            match url::Url::parse(u) {
                Ok(parsed) if parsed.scheme() == "https" => {
                    p.ok(&format!("callback URL: {u}/dingtalk/callback"))?;
                }
                Ok(_) => p.fail(&format!(
                    "READBOT_PUBLIC_URL {u} is not https: DingTalk only calls public HTTPS addresses; put readbot behind a TLS proxy"
                ))?,
                Err(e) => p.fail(&format!("READBOT_PUBLIC_URL {u:?} is not a URL: {e}"))?,
            }
            format!("{u}/dingtalk/callback")
        }
        None => {
            p.warn("READBOT_PUBLIC_URL is not set, so the callback URL cannot be printed: it is https://<your public host>/dingtalk/callback")?;
            "https://<your public host>/dingtalk/callback".to_owned()
        }
    })
}

/// Stream mode: one open-connection call with the app's credentials and
/// readbot's subscriptions (the ticket is discarded, never printed).
async fn check_stream(p: &mut Printer<'_>, config: &Config) -> Result<(), CliError> {
    p.section("Stream gateway")?;
    let api_base = config
        .dingtalk
        .api_base
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let outcome = probe(StreamSettings::from_config(config))
        .await
        .map_err(|e| CliError::Failed(format!("cannot build the Stream client: {e}")))?;
    match outcome {
        ProbeOutcome::Accepted => {
            p.ok(&format!(
                "Stream gateway ({api_base}{OPEN_PATH}) accepted the app key and secret"
            ))?;
            p.ok(&format!(
                "subscription to bot messages ({BOT_MESSAGE_TOPIC}) accepted (the one-time ticket was discarded)"
            ))?;
        }
        ProbeOutcome::BadCredentials(e) => p.fail(&format!(
            "the Stream gateway rejected the app key or secret ({}): set DINGTALK_APP_KEY / DINGTALK_APP_SECRET to the app's Client ID and Client Secret",
            one_line(&e.to_string())
        ))?,
        ProbeOutcome::SubscriptionRefused(e) => p.fail(&format!(
            "the Stream gateway refused the subscription to bot messages ({BOT_MESSAGE_TOPIC}): {}; set the robot's message receiving mode to Stream and publish the app",
            one_line(&e.to_string())
        ))?,
        ProbeOutcome::Unreachable(e) => p.fail(&format!(
            "cannot reach the Stream gateway at {api_base} ({}): allow outbound HTTPS to api.dingtalk.com:443 and wss-open-connection.dingtalk.com:443",
            one_line(&e.to_string())
        ))?,
        ProbeOutcome::Failed(e) => p.fail(&format!(
            "the Stream gateway did not open a connection: {}",
            one_line(&e.to_string())
        ))?,
    }
    Ok(())
}

async fn check_read_api(
    p: &mut Printer<'_>,
    client: &DingTalkClient,
    config: &Config,
    group: &OpenConversationId,
) -> Result<(), CliError> {
    let key = ProcessQueryKey::parse("readbot-check-probe")
        .map_err(|e| CliError::Failed(format!("probe key: {e}")))?;
    let query = ReadQuery {
        key,
        group: group.clone(),
        robot_code: config.dingtalk.robot_code.clone(),
        // Long ago: "no data" means expired at once, no waiting.
        sent_at: 0,
    };
    let robot = config.dingtalk.robot_code.as_str();
    match client.read_state(&query).await {
        Ok(_) => p.ok("read-status API (robot/groupMessages/query) answers")?,
        Err(e) if is_permission_error(&e) => p.fail(&format!(
            "read-status API refused ({}): grant qyapi_robot_sendmsg (企业内机器人发送消息权限) to the app",
            what(&e)
        ))?,
        Err(DingTalkError::Expired | DingTalkError::NotReady) => p.ok(
            "read-status API answers (it refused the made-up probe key, as expected): robot code and permission are fine",
        )?,
        Err(e) => match e.code() {
            Some(ErrorCode::InvalidProcessQueryKey) => p.ok(
                "read-status API answers (it refused the made-up probe key, as expected): robot code and permission are fine",
            )?,
            Some(
                ErrorCode::RobotCodeNotExist
                | ErrorCode::RobotCodeInvalid
                | ErrorCode::RobotCodeMissing
                | ErrorCode::TokenBotNotExist
                | ErrorCode::ResourceNotFound,
            ) => p.fail(&format!(
                "DingTalk does not accept robot code {robot} ({}): set DINGTALK_ROBOT_CODE to the robot's code (for an internal app: its Client ID)",
                what(&e)
            ))?,
            Some(ErrorCode::BotStopped) => p.fail(&format!(
                "the robot is disabled ({}): enable it in the group or the console",
                what(&e)
            ))?,
            _ if is_invalid_group(&e) => p.group_refused(group, &e)?,
            Some(ErrorCode::ConversationOrgDismatch) => p.fail(&format!(
                "DingTalk does not accept group {group} for this app ({}): check the openConversationId",
                what(&e)
            ))?,
            _ => p.warn(&format!(
                "read-status API gave an unexpected answer to the probe: {}",
                what(&e)
            ))?,
        },
    }
    Ok(())
}

async fn check_rosters(
    p: &mut Printer<'_>,
    client: &DingTalkClient,
    config: &Config,
    group: &OpenConversationId,
    user: Option<&UserId>,
) -> Result<(), CliError> {
    let mut usable = false;
    for source in &config.bot.roster_sources {
        let query = match source {
            RosterSource::Learned => {
                p.ok("member list learned: always available (members readbot has seen; may be incomplete)")?;
                usable = true;
                continue;
            }
            RosterSource::InnerGroup => match user {
                Some(u) => RosterQuery::InnerGroup {
                    group: group.clone(),
                    operator: u.clone(),
                },
                None => {
                    p.info("member list inner_group: not tried (pass --user <userId of a group member>)")?;
                    continue;
                }
            },
            RosterSource::SceneGroup => RosterQuery::SceneGroup {
                group: group.clone(),
                cool_app_code: config.dingtalk.cool_app_code.clone(),
            },
        };
        let name = source.as_str();
        match client.roster(&query).await {
            Ok(r) => {
                usable = true;
                p.ok(&format!(
                    "member list {name}: {} member(s){}",
                    r.members.len(),
                    if r.complete { "" } else { " (cut at the page limit)" }
                ))?;
            }
            Err(e) if is_permission_error(&e) => {
                let grant = match source {
                    RosterSource::SceneGroup => "qyapi_chat_manage (群基础信息管理)",
                    _ => "the internal-group member-list permission",
                };
                p.fail(&format!(
                    "member list {name}: the app lacks a permission ({}): grant {grant} to the app, or remove {name} from READBOT_ROSTER_SOURCES",
                    what(&e)
                ))?;
            }
            Err(e) if is_invalid_group(&e) => p.group_refused(group, &e)?,
            Err(e) => p.warn(&format!(
                "member list {name}: not usable for this group ({}); readbot falls back to the next source",
                what(&e)
            ))?,
        }
    }
    if !usable && !p.group_refused {
        p.fail("no member-list source works for this group: summaries cannot list unread members (add learned to READBOT_ROSTER_SOURCES)")?;
    }
    Ok(())
}

async fn check_names(
    p: &mut Printer<'_>,
    client: &DingTalkClient,
    user: &UserId,
) -> Result<(), CliError> {
    match client.user_names(std::slice::from_ref(user)).await {
        Ok(names) => match names.first() {
            Some((_, name)) => p.ok(&format!("name look-up (topapi/v2/user/get): {user} is {name}"))?,
            None => p.warn(&format!(
                "name look-up (topapi/v2/user/get): DingTalk knows no user {user}; summaries will show ids"
            ))?,
        },
        Err(e) if is_permission_error(&e) => p.fail(&format!(
            "name look-up refused ({}): grant qyapi_get_member (成员信息读权限) to the app",
            what(&e)
        ))?,
        Err(e) => p.warn(&format!("name look-up failed: {}", what(&e)))?,
    }
    Ok(())
}
