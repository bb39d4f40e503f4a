//! `readbot sandbox`: readbot and the fake DingTalk together, with a demo
//! group, a demo notice, some reads and an @mention, printing what the group
//! would see. Then the line mode (`chat`) reads chat lines from standard
//! input and sends each as a signed @mention from a demo member, until
//! `/quit` or the end of input (`--once` stops after the demo).
//!
//! Everything goes to standard output through [`Out`]: a closed pipe
//! (`readbot sandbox --once | head -2`) ends the sandbox cleanly.

mod chat;

use crate::app::{shutdown_signal, Application, StartError};
use crate::config::{Config, ConfigError};
use crate::fake::{FakeConfig, FakeDingTalk, GroupKind, Mention, SentMessage};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// Options of the sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// readbot's listen address.
    pub listen: String,
    /// sled folder.
    pub data_dir: PathBuf,
    /// Exit after the demo instead of reading chat lines.
    pub once: bool,
}

/// Sandbox failures.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The fake could not start.
    #[error("fake DingTalk: {0}")]
    Fake(#[source] std::io::Error),
    /// Bad sandbox config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// readbot could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// A demo step failed.
    #[error("demo step failed: {0}")]
    Step(String),
    /// Standard output or input failed (a closed pipe ends the sandbox
    /// cleanly instead: see [`run_with`]).
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// The sandbox API token (printed; local only).
pub const SANDBOX_TOKEN: &str = "sandbox-token-0123456789";
/// The demo group.
pub const DEMO_GROUP: &str = "cidSandboxDemo+Group/==";
/// How long the sandbox waits for readbot's reply to one @mention.
const REPLY_WAIT: Duration = Duration::from_secs(30);

const NAMES: &[&str] = &[
    "张伟",
    "王芳",
    "李娜",
    "刘洋",
    "陈静",
    "杨磊",
    "赵敏",
    "黄强",
    "周杰",
    "吴婷",
    "Alice Chen",
    "Bob Li",
    "Carol Wang",
    "David Zhang",
    "Eve Liu",
    "Frank Zhao",
    "Grace Wu",
    "Henry Xu",
    "Ivy Sun",
    "Jack Ma",
    "郑爽",
    "孙丽",
    "马超",
    "朱琳",
    "胡斌",
    "郭靖",
    "何欢",
    "高远",
    "林峰",
    "罗佳",
    "梁晨",
    "宋雨",
    "谢楠",
    "韩梅",
    "唐宁",
    "冯军",
    "邓超",
    "曹颖",
    "彭飞",
    "曾乐",
];

/// Where the sandbox writes: standard output, or a buffer in tests. Every
/// line is flushed at once so a pipe sees it.
pub struct Out {
    w: Box<dyn Write + Send>,
}

impl Out {
    /// Wraps a writer.
    pub fn new(w: Box<dyn Write + Send>) -> Self {
        Self { w }
    }

    /// Writes one line.
    fn line(&mut self, s: impl std::fmt::Display) -> std::io::Result<()> {
        writeln!(self.w, "{s}")?;
        self.w.flush()
    }

    /// Writes a prompt (no newline).
    fn prompt(&mut self, s: &str) -> std::io::Result<()> {
        write!(self.w, "{s}")?;
        self.w.flush()
    }
}

/// The demo group, the fake behind it, and the line mode's state.
struct Sandbox {
    fake: FakeDingTalk,
    http: reqwest::Client,
    /// readbot's base URL.
    base: String,
    /// `(userId, name)` of every member, in roster order.
    members: Vec<(String, String)>,
    /// Index into `members` of who is speaking.
    current: usize,
    /// The newest notice sent in the sandbox and who has read it.
    newest: Option<(String, HashSet<String>)>,
    /// Keys of every notice sent in the sandbox.
    notices: HashSet<String>,
    /// How many of the fake's sent messages were already printed.
    shown: usize,
}

impl Sandbox {
    /// `(userId, name)` of who is speaking.
    fn speaker(&self) -> (&str, &str) {
        self.members
            .get(self.current)
            .map_or(("", ""), |(u, n)| (u.as_str(), n.as_str()))
    }

    /// The name of `user_id`, or the id itself.
    fn name_of<'a>(&'a self, user_id: &'a str) -> &'a str {
        self.members
            .iter()
            .find(|(u, _)| u == user_id)
            .map_or(user_id, |(_, n)| n.as_str())
    }

    /// Sends a notice through readbot's send API as the current member;
    /// returns its processQueryKey.
    async fn send_notice(&mut self, title: &str, text: &str) -> Result<String, SandboxError> {
        let (author, author_name) = self.speaker();
        let resp = self
            .http
            .post(format!("{}/api/v1/notices", self.base))
            .bearer_auth(SANDBOX_TOKEN)
            .json(&serde_json::json!({
                "openConversationId": DEMO_GROUP,
                "msgtype": "markdown",
                "title": title,
                "text": text,
                "author": author,
                "authorName": author_name,
            }))
            .send()
            .await
            .map_err(|e| SandboxError::Step(format!("send notice: {e}")))?;
        let status = resp.status();
        let answer: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| SandboxError::Step(format!("send notice answer: {e}")))?;
        let key = answer["processQueryKey"].as_str().unwrap_or_default();
        if status.as_u16() != 201 || key.is_empty() {
            return Err(SandboxError::Step(format!(
                "send notice answered {status}: {answer}"
            )));
        }
        self.newest = Some((key.to_owned(), HashSet::new()));
        self.notices.insert(key.to_owned());
        Ok(key.to_owned())
    }

    /// `n` more members (in roster order) read the newest notice; returns
    /// their names (fewer when everyone has read it), or `None` without a notice.
    fn read_more(&mut self, n: usize) -> Option<Vec<String>> {
        let (key, read) = self.newest.as_mut()?;
        let next: Vec<(String, String)> = self
            .members
            .iter()
            .filter(|(u, _)| !read.contains(u))
            .take(n)
            .cloned()
            .collect();
        let ids: Vec<&str> = next.iter().map(|(u, _)| u.as_str()).collect();
        self.fake.mark_read(key, &ids);
        read.extend(next.iter().map(|(u, _)| u.clone()));
        Some(next.into_iter().map(|(_, name)| name).collect())
    }

    /// Posts `text` as a signed @mention from the current member, the way
    /// DingTalk's HTTP mode does, and waits (bounded) for something to
    /// reach the group. Returns readbot's HTTP answer when it was not 200.
    async fn mention(&mut self, text: &str) -> Result<Option<String>, SandboxError> {
        let (sender, nick) = self.speaker();
        let body = self.fake.mention_body(&Mention {
            msg_id: format!("sandbox-{}", uuid_like()),
            group: DEMO_GROUP.to_owned(),
            sender: sender.to_owned(),
            sender_nick: nick.to_owned(),
            text: text.to_owned(),
            session_ttl: Duration::from_secs(5400),
        });
        let before = self.fake.sent_count();
        let ts = crate::domain::now_millis().to_string();
        let sign = FakeDingTalk::sign(&ts, &self.fake.config().app_secret);
        let resp = self
            .http
            .post(format!("{}/dingtalk/callback", self.base))
            .header("timestamp", &ts)
            .header("sign", &sign)
            .json(&body)
            .send()
            .await
            .map_err(|e| SandboxError::Step(format!("callback: {e}")))?;
        if resp.status().as_u16() != 200 {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Ok(Some(format!(
                "readbot answered the callback with {status}: {body}"
            )));
        }
        if !self
            .fake
            .wait_sent(before.saturating_add(1), REPLY_WAIT)
            .await
        {
            return Ok(Some(format!(
                "no reply reached the group within {} s",
                REPLY_WAIT.as_secs()
            )));
        }
        Ok(None)
    }

    /// Messages the group received since the last call.
    fn new_messages(&mut self) -> Vec<SentMessage> {
        let all = self.fake.sent();
        let new = all.get(self.shown..).unwrap_or_default().to_vec();
        self.shown = all.len();
        new
    }

    /// A message as the group sees it: who posted it, its text with each
    /// @-mentioned userId shown as the name DingTalk displays, and who
    /// DingTalk notifies.
    fn as_seen(&self, m: &SentMessage) -> String {
        let mut text = m.text.clone();
        for u in &m.at_user_ids {
            text = text.replace(&format!("@{u}"), &format!("@{}", self.name_of(u)));
        }
        let title = m.title.as_deref().unwrap_or_default();
        let notice = m
            .process_query_key
            .as_ref()
            .is_some_and(|k| self.notices.contains(k));
        let what = if notice { "notice" } else { "readbot" };
        let mut out = format!("---- {what} in the group: {title} ");
        let width = 60usize.saturating_sub(out.chars().count());
        out.push_str(&"-".repeat(width));
        out.push('\n');
        if m.group != DEMO_GROUP {
            out.push_str(&format!("(in group {})\n", m.group));
        }
        out.push_str(text.trim_end());
        out.push('\n');
        if !m.at_user_ids.is_empty() {
            let names: Vec<String> = m
                .at_user_ids
                .iter()
                .map(|u| format!("@{}", self.name_of(u)))
                .collect();
            out.push_str(&format!("(DingTalk notifies {})\n", names.join(" ")));
        }
        out.push_str(&"-".repeat(60));
        out
    }

    /// Prints what reached the group since the last call.
    fn print_new(&mut self, out: &mut Out) -> std::io::Result<()> {
        for m in self.new_messages() {
            out.line(self.as_seen(&m))?;
        }
        Ok(())
    }
}

/// A random-enough message id suffix (time + a counter).
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        crate::domain::now_millis(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the sandbox on standard input and output.
pub async fn run(opts: SandboxOptions) -> Result<(), SandboxError> {
    use std::io::IsTerminal as _;
    let interactive = std::io::stdin().is_terminal();
    let lines = if opts.once {
        // Nothing is read: a closed channel.
        mpsc::channel(1).1
    } else {
        chat::stdin_lines()?
    };
    let out = Out::new(Box::new(std::io::stdout()));
    run_with(opts, lines, out, interactive).await
}

/// Runs the sandbox on the given chat lines and output. A closed output
/// (broken pipe) stops it cleanly with `Ok`; so do `/quit`, the end of the
/// lines and Ctrl-C. `interactive` shows a prompt before each line.
pub async fn run_with(
    opts: SandboxOptions,
    mut lines: mpsc::Receiver<String>,
    mut out: Out,
    interactive: bool,
) -> Result<(), SandboxError> {
    let fake = FakeDingTalk::start(FakeConfig::default())
        .await
        .map_err(SandboxError::Fake)?;
    let members: Vec<(String, String)> = NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| (format!("user{:03}", i + 1), (*n).to_owned()))
        .collect();
    let refs: Vec<(&str, &str)> = members
        .iter()
        .map(|(u, n)| (u.as_str(), n.as_str()))
        .collect();
    fake.add_group(DEMO_GROUP, GroupKind::Inner, &refs);

    let mut env: HashMap<&str, String> = fake.readbot_env().into_iter().collect();
    let listen = fixed_port(&opts.listen);
    // The notice page is served on readbot's own address: summaries carry
    // their "full list" link, to open in a browser on this machine.
    if let Some(url) = page_base(&listen) {
        env.insert("READBOT_PUBLIC_URL", url);
    }
    env.insert("READBOT_LISTEN", listen);
    env.insert("READBOT_DATA_DIR", opts.data_dir.display().to_string());
    env.insert("READBOT_API_TOKEN", SANDBOX_TOKEN.to_owned());
    // Every question sees the reads of the moment (`/read`), not a cached pass.
    env.insert("READBOT_RECEIPTS_CACHE_SECS", "0".to_owned());
    let lookup = move |k: &str| env.get(k).cloned();
    let config = match Config::from_toml_str("", &lookup) {
        Ok(c) => c,
        Err(e) => {
            fake.shutdown();
            return Err(e.into());
        }
    };
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            fake.shutdown();
            return Err(e.into());
        }
    };
    let addr = app.local_addr();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        tokio::select! {
            _ = shutdown_signal() => {},
            _ = stop_rx => {},
        }
    }));

    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match reqwest::Client::builder().timeout(REPLY_WAIT).build() {
        Ok(http) => {
            let mut sb = Sandbox {
                fake: fake.clone(),
                http,
                base: format!("http://{addr}"),
                members,
                current: 0,
                newest: None,
                notices: HashSet::new(),
                shown: 0,
            };
            tokio::select! {
                r = session(&mut sb, &mut out, &mut lines, opts.once, interactive) => r,
                _ = shutdown_signal() => Ok(()),
            }
        }
        Err(e) => Err(SandboxError::Step(format!("HTTP client: {e}"))),
    };
    let _ = stop_tx.send(());
    let _ = server.await;
    fake.shutdown();
    match result {
        Err(SandboxError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// The demo, the set-up lines, then (without `once`) the line mode.
async fn session(
    sb: &mut Sandbox,
    out: &mut Out,
    lines: &mut mpsc::Receiver<String>,
    once: bool,
    interactive: bool,
) -> Result<(), SandboxError> {
    demo(sb, out).await?;
    if once {
        return Ok(());
    }
    print_setup(sb, out)?;
    chat::run(sb, out, lines, interactive).await
}

/// Sends a notice, lets most of the group read it, asks readbot, prints the reply.
async fn demo(sb: &mut Sandbox, out: &mut Out) -> Result<(), SandboxError> {
    out.line("readbot sandbox")?;
    out.line(format!("  readbot:        {}", sb.base))?;
    out.line(format!("  fake DingTalk:  {}", sb.fake.base_url()))?;
    out.line(format!(
        "  demo group:     {DEMO_GROUP} ({} members)",
        sb.members.len()
    ))?;
    out.line("")?;

    // 1. A team lead sends a notice through readbot's API.
    let (_, lead) = sb.speaker();
    let lead = lead.to_owned();
    let key = sb
        .send_notice(
            "周五团建通知 / Friday team event",
            "### 周五团建通知\n周五 15:00 在一楼大厅集合。\n\nFriday 15:00, meet in the lobby.",
        )
        .await?;
    sb.new_messages();
    out.line(format!(
        "1. {lead} sent a notice through POST /api/v1/notices → processQueryKey {key}"
    ))?;

    // 2. Most of the group reads it.
    let read = sb.read_more(28).map_or(0, |r| r.len());
    out.line(format!("2. {read} of {} members read it", sb.members.len()))?;

    // 3. The author @mentions readbot; DingTalk delivers a signed callback.
    out.line(format!(
        "3. {lead} asked \"@readbot 谁没读？\" in the group"
    ))?;
    if let Some(problem) = sb.mention("谁没读？").await? {
        return Err(SandboxError::Step(problem));
    }
    out.line("4. readbot replied in the group:\n")?;
    sb.print_new(out)?;
    out.line("")?;
    Ok(())
}

/// How to reach the sandbox from another terminal: the CLI's environment,
/// curl for the API, and the app secret for signing callbacks by hand.
fn print_setup(sb: &Sandbox, out: &mut Out) -> std::io::Result<()> {
    let base = &sb.base;
    let group = urlencode(DEMO_GROUP);
    out.line("From another terminal, use readbot's CLI against this sandbox:")?;
    out.line(format!("  export READBOT_URL={base}"))?;
    out.line(format!("  export READBOT_API_TOKEN={SANDBOX_TOKEN}"))?;
    out.line(format!("  readbot notices --group '{DEMO_GROUP}'"))?;
    out.line("or its API with curl:")?;
    out.line(format!(
        "  curl -s -H 'Authorization: Bearer {SANDBOX_TOKEN}' '{base}/api/v1/notices?openConversationId={group}'"
    ))?;
    if let Some((key, _)) = &sb.newest {
        out.line(format!(
            "  curl -s -H 'Authorization: Bearer {SANDBOX_TOKEN}' '{base}/api/v1/notices/{}/receipts'",
            urlencode(key)
        ))?;
    }
    out.line(format!(
        "The fake DingTalk's app secret (to sign callbacks to {base}/dingtalk/callback yourself, see the README): {}",
        sb.fake.config().app_secret
    ))?;
    out.line("")?;
    Ok(())
}

/// `listen` with port 0 replaced by a port free right now (so the page
/// links can name it before readbot binds); other addresses unchanged.
fn fixed_port(listen: &str) -> String {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() == 0 => std::net::TcpListener::bind(a)
            .and_then(|l| l.local_addr())
            .map_or_else(|_| listen.to_owned(), |a| a.to_string()),
        _ => listen.to_owned(),
    }
}

/// The page links' base for readbot listening on `listen`: loopback when it
/// listens on every address; `None` for a port still unknown.
fn page_base(listen: &str) -> Option<String> {
    let mut addr = listen.parse::<std::net::SocketAddr>().ok()?;
    if addr.port() == 0 {
        return None;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Some(format!("http://{addr}"))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%2B")
}
