//! Configuration: a TOML file (`--config PATH` or `READBOT_CONFIG`) overlaid
//! with environment variables, parsed once into typed structs.
//!
//! Every key can be set either way; the environment wins. Secrets are held in
//! [`Secret`], whose `Debug` and `Display` never show the value.
//!
//! - [`defaults`]: every default value, once;
//! - [`env`](Env): the environment source and the list of keys ([`ENV_KEYS`]);
//! - `raw`: the file's all-optional view and its validation into [`Config`];
//! - [`secret`](Secret): the redacting string.

pub mod defaults;
mod env;
mod raw;
mod secret;
#[cfg(test)]
mod tests;
mod timezone;

pub use env::{Env, ProcessEnv, ENV_KEYS};
pub use secret::Secret;
pub use timezone::ReplyTimeZone;

use crate::domain::{RobotCode, RosterSource, UserId};
use raw::RawFile;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Configuration problems, each naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has wrong types.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The path given.
        path: PathBuf,
        /// What the TOML parser said.
        message: String,
    },
    /// One key has a bad value.
    #[error("invalid value for {key}: {message}")]
    Invalid {
        /// The key (env name / TOML key).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A required key is missing.
    #[error("{0} is required (set it in the config file or the environment)")]
    Missing(&'static str),
}

/// How readbot receives @mentions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// DingTalk POSTs signed callbacks to `/dingtalk/callback`.
    Http,
    /// readbot dials out to DingTalk's Stream gateway (WebSocket); no public
    /// URL is needed and the callback route is off.
    Stream,
}

impl Mode {
    /// `"http"` or `"stream"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Stream => "stream",
        }
    }
}

/// Stream-mode connection settings (see `dingtalk::stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// First reconnect delay after a failure (doubles per failure, with jitter).
    pub backoff_base: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// A connection that stayed up this long resets the backoff.
    pub healthy_after: Duration,
    /// Interval of WebSocket keep-alive pings.
    pub ping_interval: Duration,
    /// No frame, ping or pong for this long: the connection is a zombie and is replaced.
    pub idle_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            backoff_base: defaults::STREAM_BACKOFF_BASE,
            backoff_max: defaults::STREAM_BACKOFF_MAX,
            healthy_after: defaults::STREAM_HEALTHY_AFTER,
            ping_interval: defaults::STREAM_PING_INTERVAL,
            idle_timeout: defaults::STREAM_IDLE_TIMEOUT,
        }
    }
}

/// Limits of readbot's HTTP server against slow or hostile clients (see
/// `http::serve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The request line and headers must arrive within this time of readbot
    /// starting to wait for them (so a kept-alive connection waiting for its
    /// next request is closed after it too). At most 30 s.
    pub header_read_timeout: Duration,
    /// A connection moving no bytes for this long while none of its requests
    /// is being answered is closed; a request body must arrive within it.
    pub idle_timeout: Duration,
    /// Open connections. At the cap a new connection takes the place of the
    /// oldest one that is not being answered (an idle or slow client), so a
    /// prompt client (a health probe, a genuine callback) still gets in.
    pub max_connections: usize,
    /// After a shutdown signal: how long open connections and answers in
    /// flight may take before they are dropped. Well under the 30 s after
    /// which systemd, Compose and Kubernetes kill the process.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
        }
    }
}

/// DingTalk connection settings.
#[derive(Debug, Clone)]
pub struct DingTalkConfig {
    /// App key (Client ID).
    pub app_key: String,
    /// App secret (Client Secret); also verifies callback signatures.
    pub app_secret: Secret,
    /// Robot code used for send and query.
    pub robot_code: RobotCode,
    /// New API base, e.g. `https://api.dingtalk.com`.
    pub api_base: Url,
    /// Old API base, e.g. `https://oapi.dingtalk.com`; also the only host
    /// a `sessionWebhook` may point at.
    pub oapi_base: Url,
    /// `coolAppCode` for scene-group member queries and sends.
    pub cool_app_code: Option<String>,
    /// Timeout of one outbound HTTP call.
    pub timeout: Duration,
    /// Deadline for one logical call including its retries.
    pub deadline: Duration,
    /// Client-side limit of calls per second, per API, for the whole app
    /// (all replicas together; see [`DingTalkConfig::rate_limit_per_replica`]).
    pub rate_limit_per_sec: u32,
    /// How many readbot replicas share this app's DingTalk limits
    /// (`dingtalk.replicas` / `READBOT_REPLICAS`, 1 to
    /// [`defaults::REPLICAS_MAX`]).
    pub replicas: u32,
    /// Hard cap of read-query pages for one notice.
    pub max_pages: usize,
    /// `processQueryKey.expireTime` within this time after sending means
    /// "not ready yet" and is retried; later it means "expired".
    pub not_ready_window: Duration,
    /// Concurrent name look-ups.
    pub name_concurrency: usize,
    /// Billable DingTalk calls readbot plans to spend a calendar month
    /// (`dingtalk.monthly_call_budget`; see [`crate::dingtalk::quota`]):
    /// a warning at 80 %, and past 95 % summaries stop querying.
    pub monthly_call_budget: u64,
}

impl DingTalkConfig {
    /// The per-API limit this process enforces: `rate_limit_per_sec`
    /// divided among `replicas`, rounded down, at least 1 per second. With
    /// N replicas each uses `floor(limit / N)`, so together they never go
    /// above DingTalk's per-app limit (unless the limit is below N, where
    /// the floor of 1 wins: keep `rate_limit_per_sec ≥ replicas`). The
    /// limiter's burst is the same number (at most that many calls in any
    /// window), so it is divided too.
    ///
    /// A static division rather than a limiter coordinated through the
    /// shared database: no extra round trip before every DingTalk call, it
    /// works the same on every store backend, and when replicas are unevenly
    /// loaded (one uses its share, another idles) DingTalk's throttling
    /// answers are still handled by the client's backoff and retries. The
    /// monthly call ledger needs no division: it is kept in the store
    /// (`Store::add_calls`), which replicas share.
    pub fn rate_limit_per_replica(&self) -> u32 {
        (self.rate_limit_per_sec / self.replicas.max(1)).max(1)
    }
}

/// Bot behaviour settings.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Roster sources, tried in order.
    pub roster_sources: Vec<RosterSource>,
    /// How long a cached name stays fresh.
    pub name_ttl: Duration,
    /// How many notices "list" shows.
    pub list_limit: usize,
    /// Largest accepted callback / API body.
    pub max_body_bytes: usize,
    /// How long answered message ids are remembered.
    pub dedup_retention: Duration,
    /// Notices (and send records) older than this are removed.
    pub notice_retention: Duration,
    /// Cached names not fetched for this long are removed.
    pub name_retention: Duration,
    /// Learned-roster entries not seen for this long are removed.
    pub roster_retention: Duration,
    /// Accepted clock difference for callback timestamps.
    pub signature_window: Duration,
    /// Upper bound for producing one summary.
    pub summary_timeout: Duration,
    /// How long a finished set of receipts is reused for further asks about
    /// the same notice (zero: not reused; concurrent asks still share one pass).
    pub receipts_cache: Duration,
    /// Accepted @mentions waiting for their answer; a callback beyond this
    /// gets `503` (nothing claimed) instead of waiting without bound.
    pub max_queued_answers: usize,
    /// Readers named in a summary; with more, the read part is a count
    /// (0: always a count).
    pub max_read_names: usize,
    /// The zone reply times are shown in (and named in the reply).
    pub timezone: ReplyTimeZone,
    /// Who may remind the unread members of a notice and recall it.
    pub remind_policy: RemindPolicy,
    /// userIds allowed to remind and recall any notice (`bot.admins`).
    pub admins: Vec<UserId>,
    /// Least time between two reminders of one notice.
    pub remind_cooldown: Duration,
    /// Most people @-mentioned by one `remind` in the group.
    pub remind_max_mentions: usize,
    /// A notice answered from read events gets a reconciling query pass
    /// once its data is older than this since its last pass.
    pub reconcile_interval: Duration,
    /// A summary answered from trusted read events uses the group's cached
    /// member list while it is younger than this (zero: never).
    pub roster_cache: Duration,
    /// Who gets a notice's summary (`bot.ask_policy`).
    pub ask_policy: AskPolicy,
    /// Where a summary asked for in a group goes (`bot.reply_to`).
    pub reply_to: ReplyTo,
    /// A follow-up found due later than this (readbot was down) is skipped,
    /// not sent (`bot.follow_up_max_lateness_secs`).
    pub follow_up_max_lateness: Duration,
}

/// Who gets a notice's summary: `bot.ask_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AskPolicy {
    /// Anyone in the group (`anyone`, the default).
    #[default]
    Anyone,
    /// The notice's author and the admins (`author_and_admins`); others get
    /// one sentence.
    AuthorAndAdmins,
}

impl AskPolicy {
    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "anyone" => Some(Self::Anyone),
            "author_and_admins" => Some(Self::AuthorAndAdmins),
            _ => None,
        }
    }
}

/// Where summaries go: `bot.reply_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyTo {
    /// Into the group (`group`, the default).
    #[default]
    Group,
    /// To the asker as a direct message; the group sees one short line (`dm`).
    Dm,
}

impl ReplyTo {
    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "group" => Some(Self::Group),
            "dm" => Some(Self::Dm),
            _ => None,
        }
    }
}

/// Who may remind (and recall) a notice: `bot.remind_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemindPolicy {
    /// The notice's author and the admins (`author`, the default).
    #[default]
    Author,
    /// Only the admins (`admins`).
    Admins,
    /// Anyone in the group (`anyone`).
    Anyone,
}

impl RemindPolicy {
    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "author" => Some(Self::Author),
            "admins" => Some(Self::Admins),
            "anyone" => Some(Self::Anyone),
            _ => None,
        }
    }
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            roster_sources: defaults::ROSTER_SOURCES.to_vec(),
            name_ttl: defaults::NAME_TTL,
            list_limit: defaults::LIST_LIMIT,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            dedup_retention: defaults::DEDUP_RETENTION,
            notice_retention: defaults::NOTICE_RETENTION,
            name_retention: defaults::NAME_RETENTION,
            roster_retention: defaults::ROSTER_RETENTION,
            signature_window: defaults::SIGNATURE_WINDOW,
            summary_timeout: defaults::SUMMARY_TIMEOUT,
            receipts_cache: defaults::RECEIPTS_CACHE,
            max_queued_answers: defaults::MAX_QUEUED_ANSWERS,
            max_read_names: defaults::MAX_READ_NAMES,
            timezone: ReplyTimeZone::default(),
            remind_policy: RemindPolicy::default(),
            admins: Vec::new(),
            remind_cooldown: defaults::REMIND_COOLDOWN,
            remind_max_mentions: defaults::REMIND_MAX_MENTIONS,
            reconcile_interval: defaults::RECONCILE_INTERVAL,
            roster_cache: defaults::ROSTER_CACHE,
            ask_policy: AskPolicy::default(),
            reply_to: ReplyTo::default(),
            follow_up_max_lateness: defaults::FOLLOW_UP_MAX_LATENESS,
        }
    }
}

/// Where and how readbot keeps its state; [`crate::store::open`] opens it.
///
/// One variant per backend, chosen in [`Config::store_config`]: sled in
/// `data_dir` unless `store.url` / `READBOT_STORE_URL` names PostgreSQL.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreConfig {
    /// sled in a local folder.
    Sled(SledConfig),
    /// PostgreSQL (shared by several replicas).
    Postgres(PgConfig),
}

impl StoreConfig {
    /// sled in `dir`, with the default settings.
    pub fn sled(dir: impl Into<PathBuf>) -> Self {
        Self::Sled(SledConfig::new(dir))
    }
}

/// Settings of the PostgreSQL backend (`[store]`).
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://` or `postgresql://` URL (it may carry a password, so it
    /// is a [`Secret`]; the store shows only its host, port and database).
    pub url: Secret,
    /// Connections in the pool (`store.pool_size`).
    pub pool_size: usize,
    /// PEM file of extra certificate authorities to trust for the server's
    /// TLS certificate (`store.ca_file`), for servers whose certificate a
    /// private CA signed (many managed databases); the public web roots are
    /// always trusted.
    pub ca_file: Option<PathBuf>,
}

impl PgConfig {
    /// PostgreSQL at `url` with the default pool size
    /// ([`defaults::STORE_POOL_SIZE`]); no check of the URL beyond its
    /// scheme ([`PgConfig::is_postgres_url`]) happens here: the store
    /// parses it when it connects.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url.into()),
            pool_size: defaults::STORE_POOL_SIZE,
            ca_file: None,
        }
    }

    /// True when `url` starts with `postgres://` or `postgresql://` (any case).
    pub fn is_postgres_url(url: &str) -> bool {
        let head: String = url.trim().chars().take(13).collect();
        let head = head.to_ascii_lowercase();
        head.starts_with("postgres://") || head.starts_with("postgresql://")
    }
}

/// Settings of the sled backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledConfig {
    /// The folder (created if missing; sled locks it while open).
    pub dir: PathBuf,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
}

impl SledConfig {
    /// sled in `dir` with the default page cache ([`defaults::SLED_CACHE_BYTES`]).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            cache_bytes: defaults::SLED_CACHE_BYTES,
        }
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// sled folder (see [`Config::store_config`]).
    pub data_dir: PathBuf,
    /// PostgreSQL instead of sled (`store.url` / `READBOT_STORE_URL`).
    pub postgres: Option<PgConfig>,
    /// Bearer token of readbot's own HTTP API; `None` disables that API (503).
    pub api_token: Option<Secret>,
    /// Folder whose templates override the embedded ones.
    pub templates_dir: Option<PathBuf>,
    /// Public base URL, used to print the callback URL.
    pub public_url: Option<String>,
    /// Receive mode.
    pub mode: Mode,
    /// DingTalk settings.
    pub dingtalk: DingTalkConfig,
    /// Bot settings.
    pub bot: BotConfig,
    /// Stream-mode settings (used when `mode` is [`Mode::Stream`]).
    pub stream: StreamConfig,
    /// HTTP server limits (timeouts, connection cap, shutdown grace).
    pub server: ServerConfig,
    /// HTTP event push (read and recall events); off unless both keys are set.
    pub events: EventsConfig,
    /// The notice page behind the summary's "Full list" link (`[web]`).
    pub web: WebConfig,
}

/// The notice page and its signed links (`[web]`); off without a public URL.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where readbot's pages are reachable from a phone (`READBOT_PUBLIC_URL`,
    /// `web.public_url`, else the top-level `public_url`); `None`: no links
    /// are offered and no page routes are served.
    pub public_url: Option<Url>,
    /// `READBOT_LINK_KEY`: the key that signs page links (at least 32
    /// characters); `None`: one generated on first start and kept in the store.
    pub link_key: Option<Secret>,
    /// How long a minted link stays valid (`web.link_ttl_secs`).
    pub link_ttl: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            link_key: None,
            link_ttl: defaults::LINK_TTL,
        }
    }
}

/// The keys of the HTTP event push subscription (`POST /dingtalk/events`).
/// Stream mode needs none: events arrive on the gateway connection.
#[derive(Debug, Clone, Default)]
pub struct EventsConfig {
    /// `DINGTALK_EVENT_TOKEN`: the subscription's token (signatures).
    pub token: Option<Secret>,
    /// `DINGTALK_EVENT_AES_KEY`: the 43-character EncodingAESKey.
    pub aes_key: Option<Secret>,
}

impl EventsConfig {
    /// Both keys, when the HTTP push endpoint is on.
    pub fn keys(&self) -> Option<(&Secret, &Secret)> {
        self.token.as_ref().zip(self.aes_key.as_ref())
    }
}

/// The settings the client subcommands read (see [`Config::load_client`]).
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// readbot's listen address (`READBOT_LISTEN` / `listen`), if set.
    pub listen: Option<String>,
    /// readbot's API token (`READBOT_API_TOKEN` / `api_token`), if set.
    pub api_token: Option<Secret>,
}

impl Config {
    /// Loads the file at `path` (if any) and overlays the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, &ProcessEnv)
    }

    /// Loads with an explicit environment (for tests).
    pub fn load_with(path: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        RawFile::read(path, env)?.into_config(env)
    }

    /// Parses TOML text (for tests and `check`).
    pub fn from_toml_str(text: &str, env: &dyn Env) -> Result<Self, ConfigError> {
        RawFile::parse(text)
            .map_err(|message| ConfigError::Parse {
                path: PathBuf::from("<string>"),
                message,
            })?
            .into_config(env)
    }

    /// The store this configuration names: PostgreSQL when a store URL is
    /// set, else sled in `data_dir`.
    pub fn store_config(&self) -> StoreConfig {
        match &self.postgres {
            Some(pg) => StoreConfig::Postgres(pg.clone()),
            None => StoreConfig::sled(self.data_dir.clone()),
        }
    }

    /// What the client subcommands (`send`, `receipts`, ...) need: the
    /// listen address and the API token, from the file (if any) and the
    /// environment. Unlike [`Config::load_with`], DingTalk keys are not required.
    pub fn load_client(path: Option<&Path>, env: &dyn Env) -> Result<ClientSettings, ConfigError> {
        Ok(RawFile::read(path, env)?.into_client(env))
    }
}
