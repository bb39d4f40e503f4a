//! `send`, `receipts`, `notices` and `health`: talk to a running readbot
//! over its HTTP API (`/api/v1/...`, `/healthz`, `/readyz`).
//!
//! Where readbot is: `--url`, else `READBOT_URL`, else `http://` plus
//! `READBOT_LISTEN` (or `listen` from the config file; an unspecified address
//! such as `0.0.0.0` becomes loopback), else `http://127.0.0.1:8080`. The
//! bearer token comes from `READBOT_API_TOKEN` (or `api_token` in the config
//! file), never from the command line, where other users could see it.

use super::{table, CliError};
use crate::config::{ClientSettings, Config, ProcessEnv, Secret};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Where the running readbot is.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Connection {
    /// Base URL of the running readbot [default: http://$READBOT_LISTEN, else http://127.0.0.1:8080].
    #[arg(long, env = "READBOT_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Seconds to wait for readbot's answer.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

/// Message type of a notice sent with `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// DingTalk markdown (`sampleMarkdown`): needs a title.
    Markdown,
    /// Plain text (`sampleText`).
    Text,
}

/// `readbot send`.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// openConversationId of the group to send to.
    #[arg(long, short = 'g', value_name = "CID")]
    pub group: String,
    /// Title shown in listings and summaries [default: the first line of the text, without leading '#'].
    #[arg(long, short = 't')]
    pub title: Option<String>,
    /// File holding the notice text; '-' or no --file reads standard input.
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Message type.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    pub format: Format,
    /// userId of the author, so that "who read my last notice?" finds it for them.
    #[arg(long, value_name = "USERID")]
    pub author: Option<String>,
    /// Display name of the author, shown in summaries.
    #[arg(long, value_name = "NAME")]
    pub author_name: Option<String>,
    /// Print readbot's whole JSON answer instead of just the processQueryKey.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `readbot receipts`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReceiptsArgs {
    /// processQueryKey of the notice (as printed by `send` or `notices`).
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Print readbot's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `readbot notices`.
#[derive(Debug, Clone, clap::Args)]
pub struct NoticesArgs {
    /// openConversationId of the group.
    #[arg(long, short = 'g', value_name = "CID")]
    pub group: String,
    /// How many notices to list, newest first (1 to 500).
    #[arg(long, short = 'n', default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// Print readbot's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// `readbot health`.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// Ask /readyz (store and DingTalk token) instead of /healthz (process alive).
    #[arg(long)]
    pub ready: bool,
    #[command(flatten)]
    pub conn: Connection,
}

/// A connection to a running readbot.
pub struct Remote {
    base: Url,
    token: Option<Secret>,
    http: reqwest::Client,
    timeout: Duration,
}

/// The address a client should dial for a listen address.
fn dial_addr(listen: &str) -> Result<String, CliError> {
    let addr: SocketAddr = listen.trim().parse().map_err(|_| {
        CliError::Usage(format!(
            "READBOT_LISTEN {listen:?} is not an address like 127.0.0.1:8080; pass --url instead"
        ))
    })?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()).to_string())
}

/// The base URL of readbot from `--url` / `READBOT_URL` / listen address.
pub fn base_url(conn: &Connection, settings: &ClientSettings) -> Result<Url, CliError> {
    let raw = match (&conn.url, &settings.listen) {
        (Some(u), _) => u.trim().to_owned(),
        (None, Some(listen)) => format!("http://{}", dial_addr(listen)?),
        (None, None) => format!("http://{}", crate::config::defaults::LISTEN),
    };
    let url = Url::parse(&raw)
        .map_err(|e| CliError::Usage(format!("--url {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(CliError::Usage(format!(
            "--url {raw:?} must be an http(s) URL with a host"
        )));
    }
    Ok(url)
}

/// `base` + path segments, each percent-encoded (keys hold `+`, `/`, `=`).
fn join_url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// The error and its sources on one line, without any URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl Remote {
    /// Reads the client settings (config file + environment) and prepares a
    /// client. `need_token`: fail with a usage error when no API token is set.
    pub fn new(
        config: Option<&Path>,
        conn: &Connection,
        default_timeout: Duration,
        need_token: bool,
    ) -> Result<Self, CliError> {
        let settings = Config::load_client(config, &ProcessEnv)
            .map_err(|e| CliError::Usage(format!("configuration: {e}")))?;
        let base = base_url(conn, &settings)?;
        if need_token && settings.api_token.is_none() {
            return Err(CliError::Usage(
                "READBOT_API_TOKEN is not set (set it in the environment, or api_token in the config file)"
                    .into(),
            ));
        }
        let timeout = conn.timeout.map_or(default_timeout, Duration::from_secs);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                CliError::Failed(format!("cannot build an HTTP client: {}", describe(e)))
            })?;
        Ok(Self {
            base,
            token: settings.api_token,
            http,
            timeout,
        })
    }

    /// The base URL in use.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str]) -> Url {
        join_url(&self.base, segments)
    }

    async fn request(&self, req: reqwest::RequestBuilder) -> Result<(StatusCode, Value), CliError> {
        let mut req = req.timeout(self.timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t.expose());
        }
        let resp = req.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(String::from_utf8_lossy(&bytes).chars().take(200).collect())
        });
        if status.is_success() {
            return Ok((status, body));
        }
        let code = body
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("");
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| match &body {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            });
        let hint = match status {
            StatusCode::UNAUTHORIZED => " (check READBOT_API_TOKEN)",
            _ => "",
        };
        let what = if code.is_empty() {
            message
        } else {
            format!("{code}: {message}")
        };
        Err(CliError::Failed(format!(
            "readbot answered {status}: {what}{hint}"
        )))
    }

    fn transport_error(&self, e: reqwest::Error) -> CliError {
        if e.is_timeout() {
            CliError::Failed(format!(
                "readbot at {} did not answer within {} s (use --timeout)",
                self.base,
                self.timeout.as_secs()
            ))
        } else {
            CliError::Failed(format!(
                "cannot reach readbot at {}: {} (is it running? set --url or READBOT_URL)",
                self.base,
                describe(e)
            ))
        }
    }

    /// POSTs `body` as JSON to the API path `segments`.
    pub(super) async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, CliError> {
        let url = self.url(segments);
        self.request(self.http.post(url).json(body))
            .await
            .map(|(_, v)| v)
    }

    /// DELETEs the API path `segments`.
    pub(super) async fn delete(&self, segments: &[&str]) -> Result<Value, CliError> {
        let url = self.url(segments);
        self.request(self.http.delete(url)).await.map(|(_, v)| v)
    }

    /// GETs the API path `segments` with `query`.
    pub(super) async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Value, CliError> {
        let mut url = self.url(segments);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        self.request(self.http.get(url)).await.map(|(_, v)| v)
    }
}

/// The title a notice gets when none is given: its first non-empty line
/// without leading `#`, at most 50 characters.
pub fn derive_title(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    first
        .trim_start_matches('#')
        .trim()
        .chars()
        .take(50)
        .collect()
}

async fn read_text(file: Option<&Path>) -> Result<String, CliError> {
    let from_stdin = file.is_none_or(|p| p == Path::new("-"));
    if from_stdin {
        if std::io::stdin().is_terminal() {
            eprintln!("readbot: reading the notice text from standard input; end it with Ctrl-D");
        }
        let text = tokio::task::spawn_blocking(|| {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map(|_| buf)
        })
        .await
        .map_err(|e| CliError::Failed(format!("reading standard input failed: {e}")))?
        .map_err(|e| CliError::Failed(format!("cannot read standard input: {e}")))?;
        String::from_utf8(text)
            .map_err(|_| CliError::Usage("the notice text on standard input is not UTF-8".into()))
    } else {
        let path = file.unwrap_or(Path::new("-"));
        let bytes = std::fs::read(path)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        String::from_utf8(bytes)
            .map_err(|_| CliError::Usage(format!("{} is not UTF-8 text", path.display())))
    }
}

/// `readbot send`: sends a notice through readbot and prints its key.
pub async fn send(
    config: Option<&Path>,
    args: &SendArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let remote = Remote::new(config, &args.conn, Duration::from_secs(60), true)?;
    let text = read_text(args.file.as_deref()).await?;
    if text.trim().is_empty() {
        return Err(CliError::Usage("the notice text is empty".into()));
    }
    let title = match &args.title {
        Some(t) => t.trim().to_owned(),
        None => derive_title(&text),
    };
    if title.is_empty() && args.format == Format::Markdown {
        return Err(CliError::Usage(
            "a markdown notice needs a title: pass --title or start the text with a line of text"
                .into(),
        ));
    }
    let mut body = json!({
        "openConversationId": args.group,
        "text": text,
        "msgtype": match args.format { Format::Markdown => "markdown", Format::Text => "text" },
    });
    if !title.is_empty() {
        body["title"] = Value::String(title);
    }
    if let Some(a) = &args.author {
        body["author"] = Value::String(a.clone());
    }
    if let Some(n) = &args.author_name {
        body["authorName"] = Value::String(n.clone());
    }
    let url = remote.url(&["api", "v1", "notices"]);
    let (_, answer) = remote.request(remote.http.post(url).json(&body)).await?;
    if args.json {
        writeln!(out, "{}", pretty(&answer))?;
    } else {
        let key = answer
            .get("processQueryKey")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                CliError::Failed(format!("readbot's answer has no processQueryKey: {answer}"))
            })?;
        writeln!(out, "{key}")?;
    }
    Ok(())
}

pub(super) fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get(field).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// Formats a receipts answer for people.
pub fn receipts_table(r: &Value) -> String {
    let mut out = String::new();
    let read = n(r, "readCount");
    let members = n(r, "memberCount");
    let complete = r.get("rosterComplete").and_then(Value::as_bool) == Some(true);
    out.push_str(&format!("{}\n", s(r, "title")));
    out.push_str(&format!("  key:     {}\n", s(r, "processQueryKey")));
    out.push_str(&format!("  group:   {}\n", s(r, "openConversationId")));
    out.push_str(&format!("  status:  {}\n", s(r, "sendStatus")));
    if let Some(pct) = (read.min(members) * 100).checked_div(members) {
        out.push_str(&format!(
            "  read:    {read} of {members} ({pct}%), unread: {}\n",
            n(r, "unreadCount")
        ));
    } else {
        out.push_str(&format!("  read:    {read} (member list unknown)\n"));
    }
    out.push_str(&format!(
        "  members: {} ({})\n",
        s(r, "rosterSource"),
        if complete {
            "complete"
        } else {
            "may be incomplete"
        }
    ));
    if r.get("truncated").and_then(Value::as_bool) == Some(true) {
        out.push_str(
            "  note:    DingTalk's answer was cut at the page limit; counts may be higher\n",
        );
    }
    let mut rows = Vec::new();
    for (label, field) in [("unread", "unread"), ("read", "read")] {
        for p in r.get(field).and_then(Value::as_array).into_iter().flatten() {
            rows.push(vec![
                label.to_owned(),
                s(p, "userId").to_owned(),
                p.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ]);
        }
    }
    out.push('\n');
    if rows.is_empty() {
        out.push_str("nobody to list\n");
    } else {
        out.push_str(&table(&["STATE", "USER ID", "NAME"], &rows));
    }
    out
}

/// `readbot receipts KEY`.
pub async fn receipts(
    config: Option<&Path>,
    args: &ReceiptsArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let key = args.key.trim();
    if key.is_empty() {
        return Err(CliError::Usage("KEY must not be empty".into()));
    }
    let remote = Remote::new(config, &args.conn, Duration::from_secs(150), true)?;
    let r = remote
        .get(&["api", "v1", "notices", key, "receipts"], &[])
        .await?;
    if args.json {
        writeln!(out, "{}", pretty(&r))?;
    } else {
        write!(out, "{}", receipts_table(&r))?;
    }
    Ok(())
}

/// Formats a notices answer for people.
pub fn notices_table(v: &Value) -> String {
    let list = v
        .get("notices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        return "no notices recorded for this group\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            let author = match (s(n, "authorName"), s(n, "author")) {
                ("", a) => a.to_owned(),
                (name, _) => name.to_owned(),
            };
            vec![
                s(n, "sentAt").to_owned(),
                author,
                s(n, "title").to_owned(),
                s(n, "processQueryKey").to_owned(),
            ]
        })
        .collect();
    table(&["SENT AT (UTC)", "AUTHOR", "TITLE", "KEY"], &rows)
}

/// `readbot notices --group CID`.
pub async fn notices(
    config: Option<&Path>,
    args: &NoticesArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let remote = Remote::new(config, &args.conn, Duration::from_secs(60), true)?;
    let v = remote
        .get(
            &["api", "v1", "notices"],
            &[
                ("openConversationId", args.group.clone()),
                ("limit", args.limit.to_string()),
            ],
        )
        .await?;
    if args.json {
        writeln!(out, "{}", pretty(&v))?;
    } else {
        write!(out, "{}", notices_table(&v))?;
    }
    Ok(())
}

/// `readbot health`: exit 0 when readbot answers 200 (for container
/// health checks; the runtime image has no curl).
pub async fn health(
    config: Option<&Path>,
    args: &HealthArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let remote = Remote::new(config, &args.conn, Duration::from_secs(5), false)?;
    let path = if args.ready { "readyz" } else { "healthz" };
    let url = remote.url(&[path]);
    let resp = remote
        .http
        .get(url)
        .timeout(remote.timeout)
        .send()
        .await
        .map_err(|e| remote.transport_error(e))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        writeln!(out, "{path}: ok")?;
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{path} answered {status}: {}",
            super::one_line(&body)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(url: Option<&str>) -> Connection {
        Connection {
            url: url.map(str::to_owned),
            timeout: None,
        }
    }

    #[test]
    fn base_url_prefers_flag_then_listen_then_default() {
        let listen = ClientSettings {
            listen: Some("0.0.0.0:9000".into()),
            api_token: None,
        };
        assert_eq!(
            base_url(&conn(Some("https://rb.example.com/x/")), &listen)
                .unwrap()
                .as_str(),
            "https://rb.example.com/x/"
        );
        assert_eq!(
            base_url(&conn(None), &listen).unwrap().as_str(),
            "http://127.0.0.1:9000/"
        );
        let v6 = ClientSettings {
            listen: Some("[::]:80".into()),
            api_token: None,
        };
        assert_eq!(
            base_url(&conn(None), &v6).unwrap().as_str(),
            "http://[::1]/"
        );
        assert_eq!(
            base_url(&conn(None), &ClientSettings::default())
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/"
        );
        assert!(matches!(
            base_url(&conn(Some("ftp://x")), &listen),
            Err(CliError::Usage(_))
        ));
        let bad = ClientSettings {
            listen: Some("nope".into()),
            api_token: None,
        };
        assert!(matches!(
            base_url(&conn(None), &bad),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn keys_are_one_path_segment() {
        let base = Url::parse("http://127.0.0.1:1/prefix/?x=1").unwrap();
        let u = join_url(&base, &["api", "v1", "notices", "a+b/c=", "receipts"]);
        assert_eq!(u.path(), "/prefix/api/v1/notices/a+b%2Fc=/receipts");
    }

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(
            derive_title("\n\n### Weekly meeting\nFriday"),
            "Weekly meeting"
        );
        assert_eq!(derive_title("   "), "");
    }

    #[test]
    fn receipts_table_lists_unread_first() {
        let r = json!({
            "processQueryKey": "k", "openConversationId": "cid", "title": "T",
            "sendStatus": "SUCCESS", "readCount": 1, "unreadCount": 1, "memberCount": 2,
            "rosterSource": "inner_group", "rosterComplete": true, "truncated": false,
            "read": [{"userId": "u1", "name": "张伟"}], "unread": [{"userId": "u2", "name": null}]
        });
        let t = receipts_table(&r);
        assert!(t.contains("read:    1 of 2 (50%), unread: 1"), "{t}");
        let unread = t.find("unread  u2").unwrap();
        let read = t.find("read    u1").unwrap();
        assert!(t.trim_end().ends_with("张伟"), "{t}");
        assert!(unread < read, "{t}");
    }
}
