//! Configuration: a TOML file (`--config PATH` or `READBOT_CONFIG`) overlaid
//! with environment variables, parsed once into typed structs.
//!
//! Every key can be set either way; the environment wins. Secrets are held in
//! [`Secret`], whose `Debug` and `Display` never show the value.

use crate::domain::{RobotCode, RosterSource};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// A secret string that never appears in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: String) -> Self {
        Self(s)
    }
    /// The secret value; call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

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
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// Raw, all-optional view of the TOML file. Field names are the TOML keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    api_token: Option<String>,
    templates_dir: Option<PathBuf>,
    public_url: Option<String>,
    mode: Option<String>,
    #[serde(default)]
    dingtalk: RawDingTalk,
    #[serde(default)]
    bot: RawBot,
    #[serde(default)]
    stream: RawStream,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    backoff_base_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    healthy_after_ms: Option<u64>,
    ping_interval_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDingTalk {
    app_key: Option<String>,
    app_secret: Option<String>,
    robot_code: Option<String>,
    api_base: Option<String>,
    oapi_base: Option<String>,
    cool_app_code: Option<String>,
    timeout_secs: Option<u64>,
    deadline_secs: Option<u64>,
    rate_limit_per_sec: Option<u32>,
    max_pages: Option<usize>,
    not_ready_window_secs: Option<u64>,
    name_concurrency: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    roster_sources: Option<Vec<String>>,
    name_ttl_secs: Option<u64>,
    list_limit: Option<usize>,
    max_body_bytes: Option<usize>,
    dedup_retention_secs: Option<u64>,
    signature_window_secs: Option<u64>,
    summary_timeout_secs: Option<u64>,
    receipts_cache_secs: Option<u64>,
    max_queued_answers: Option<usize>,
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
    /// Client-side limit of calls per second, per API.
    pub rate_limit_per_sec: u32,
    /// Hard cap of read-query pages for one notice.
    pub max_pages: usize,
    /// `processQueryKey.expireTime` within this time after sending means
    /// "not ready yet" and is retried; later it means "expired".
    pub not_ready_window: Duration,
    /// Concurrent name look-ups.
    pub name_concurrency: usize,
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
}

impl Default for BotConfig {
    fn default() -> Self {
        Self {
            roster_sources: vec![
                RosterSource::InnerGroup,
                RosterSource::SceneGroup,
                RosterSource::Learned,
            ],
            name_ttl: Duration::from_secs(7 * 24 * 3600),
            list_limit: 10,
            max_body_bytes: 64 * 1024,
            dedup_retention: Duration::from_secs(48 * 3600),
            signature_window: Duration::from_secs(3600),
            summary_timeout: Duration::from_secs(120),
            receipts_cache: Duration::from_secs(10),
            max_queued_answers: 10_000,
        }
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// sled folder.
    pub data_dir: PathBuf,
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
}

/// The settings the client subcommands read (see [`Config::load_client`]).
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    /// readbot's listen address (`READBOT_LISTEN` / `listen`), if set.
    pub listen: Option<String>,
    /// readbot's API token (`READBOT_API_TOKEN` / `api_token`), if set.
    pub api_token: Option<Secret>,
}

/// Source of environment values (a closure so tests need not touch the process env).
pub trait Env {
    /// The value of `key`, if set and non-empty.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, key: &str) -> Option<String> {
        self(key)
    }
}

fn parse_num<T: std::str::FromStr>(key: &'static str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Invalid {
        key,
        message: format!("{v:?} is not a valid number"),
    })
}

fn pick<T: std::str::FromStr>(
    env: &dyn Env,
    key: &'static str,
    file: Option<T>,
) -> Result<Option<T>, ConfigError> {
    match env.get(key) {
        Some(v) => parse_num(key, &v).map(Some),
        None => Ok(file),
    }
}

fn pick_str(env: &dyn Env, key: &'static str, file: Option<String>) -> Option<String> {
    env.get(key).or(file).filter(|s| !s.trim().is_empty())
}

fn parse_base(key: &'static str, v: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(v.trim()).map_err(|e| ConfigError::Invalid {
        key,
        message: format!("{v:?} is not a URL: {e}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::Invalid {
            key,
            message: format!("{v:?} must be an http(s) URL with a host"),
        });
    }
    Ok(url)
}

/// The keys and their environment names, for docs and `--help`.
pub const ENV_KEYS: &[(&str, &str, &str)] = &[
    ("READBOT_CONFIG", "(none)", "path of the TOML config file"),
    ("READBOT_LISTEN", "listen", "HTTP listen address"),
    ("READBOT_DATA_DIR", "data_dir", "sled folder"),
    (
        "READBOT_API_TOKEN",
        "api_token",
        "bearer token of readbot's HTTP API",
    ),
    (
        "READBOT_TEMPLATES_DIR",
        "templates_dir",
        "folder of template overrides",
    ),
    (
        "READBOT_PUBLIC_URL",
        "public_url",
        "public base URL (for printing the callback URL)",
    ),
    (
        "DINGTALK_APP_KEY",
        "dingtalk.app_key",
        "app key (Client ID)",
    ),
    (
        "DINGTALK_APP_SECRET",
        "dingtalk.app_secret",
        "app secret (Client Secret)",
    ),
    (
        "DINGTALK_ROBOT_CODE",
        "dingtalk.robot_code",
        "robot code (defaults to the app key)",
    ),
    ("DINGTALK_API_BASE", "dingtalk.api_base", "new API base URL"),
    (
        "DINGTALK_OAPI_BASE",
        "dingtalk.oapi_base",
        "old API base URL",
    ),
    (
        "DINGTALK_COOL_APP_CODE",
        "dingtalk.cool_app_code",
        "coolAppCode for scene groups",
    ),
    (
        "DINGTALK_TIMEOUT_SECS",
        "dingtalk.timeout_secs",
        "timeout of one outbound call",
    ),
    (
        "DINGTALK_DEADLINE_SECS",
        "dingtalk.deadline_secs",
        "deadline of a call with retries",
    ),
    (
        "DINGTALK_RATE_LIMIT_PER_SEC",
        "dingtalk.rate_limit_per_sec",
        "calls per second per API",
    ),
    (
        "DINGTALK_MAX_PAGES",
        "dingtalk.max_pages",
        "page cap of one read query",
    ),
    (
        "DINGTALK_NOT_READY_WINDOW_SECS",
        "dingtalk.not_ready_window_secs",
        "'not ready' window after sending",
    ),
    (
        "DINGTALK_NAME_CONCURRENCY",
        "dingtalk.name_concurrency",
        "concurrent name look-ups",
    ),
    (
        "READBOT_ROSTER_SOURCES",
        "bot.roster_sources",
        "comma list: inner_group,scene_group,learned",
    ),
    (
        "READBOT_NAME_TTL_SECS",
        "bot.name_ttl_secs",
        "name cache lifetime",
    ),
    (
        "READBOT_LIST_LIMIT",
        "bot.list_limit",
        "notices shown by 'list'",
    ),
    (
        "READBOT_MAX_BODY_BYTES",
        "bot.max_body_bytes",
        "largest accepted request body",
    ),
    (
        "READBOT_DEDUP_RETENTION_SECS",
        "bot.dedup_retention_secs",
        "how long answered msgIds are kept",
    ),
    (
        "READBOT_SIGNATURE_WINDOW_SECS",
        "bot.signature_window_secs",
        "accepted callback clock skew",
    ),
    (
        "READBOT_SUMMARY_TIMEOUT_SECS",
        "bot.summary_timeout_secs",
        "upper bound for one summary",
    ),
    (
        "READBOT_MODE",
        "mode",
        "how @mentions arrive: http or stream",
    ),
    (
        "READBOT_STREAM_BACKOFF_BASE_MS",
        "stream.backoff_base_ms",
        "first reconnect delay (stream mode)",
    ),
    (
        "READBOT_STREAM_BACKOFF_MAX_MS",
        "stream.backoff_max_ms",
        "largest reconnect delay (stream mode)",
    ),
    (
        "READBOT_STREAM_HEALTHY_AFTER_MS",
        "stream.healthy_after_ms",
        "uptime that resets the backoff (stream mode)",
    ),
    (
        "READBOT_STREAM_PING_INTERVAL_MS",
        "stream.ping_interval_ms",
        "keep-alive ping interval (stream mode)",
    ),
    (
        "READBOT_STREAM_IDLE_TIMEOUT_MS",
        "stream.idle_timeout_ms",
        "silence that marks a zombie connection (stream mode)",
    ),
    (
        "READBOT_RECEIPTS_CACHE_SECS",
        "bot.receipts_cache_secs",
        "reuse receipts of a notice this long (0: off)",
    ),
    (
        "READBOT_MAX_QUEUED_ANSWERS",
        "bot.max_queued_answers",
        "accepted @mentions waiting for an answer (beyond: 503)",
    ),
];

impl Config {
    /// Loads the file at `path` (if any) and overlays the process environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, &ProcessEnv)
    }

    /// Loads with an explicit environment (for tests).
    pub fn load_with(path: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let raw = Self::read_file(path, env)?;
        Self::from_raw(raw, env)
    }

    /// Reads the file named by `path` or `READBOT_CONFIG`; no file → all defaults.
    fn read_file(path: Option<&Path>, env: &dyn Env) -> Result<RawFile, ConfigError> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| env.get("READBOT_CONFIG").map(PathBuf::from));
        let Some(p) = path else {
            return Ok(RawFile::default());
        };
        let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse_toml(&text).map_err(|message| ConfigError::Parse { path: p, message })
    }

    /// Parses TOML text (for tests and `check`).
    pub fn from_toml_str(text: &str, env: &dyn Env) -> Result<Self, ConfigError> {
        let raw = Self::parse_toml(text).map_err(|message| ConfigError::Parse {
            path: PathBuf::from("<string>"),
            message,
        })?;
        Self::from_raw(raw, env)
    }

    /// What the client subcommands (`send`, `receipts`, ...) need: the
    /// listen address and the API token, from the file (if any) and the
    /// environment. Unlike [`Config::load_with`], DingTalk keys are not required.
    pub fn load_client(path: Option<&Path>, env: &dyn Env) -> Result<ClientSettings, ConfigError> {
        let raw = Self::read_file(path, env)?;
        Ok(ClientSettings {
            listen: pick_str(env, "READBOT_LISTEN", raw.listen),
            api_token: pick_str(env, "READBOT_API_TOKEN", raw.api_token).map(Secret),
        })
    }

    fn parse_toml(text: &str) -> Result<RawFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn from_raw(raw: RawFile, env: &dyn Env) -> Result<Self, ConfigError> {
        let listen_s =
            pick_str(env, "READBOT_LISTEN", raw.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_s.trim().parse().map_err(|_| ConfigError::Invalid {
            key: "READBOT_LISTEN",
            message: format!("{listen_s:?} is not an address like 127.0.0.1:8080"),
        })?;
        let data_dir = env
            .get("READBOT_DATA_DIR")
            .map(PathBuf::from)
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from("./readbot-data"));
        let api_token = pick_str(env, "READBOT_API_TOKEN", raw.api_token).map(Secret);
        if let Some(t) = &api_token {
            if t.expose().len() < 16 {
                return Err(ConfigError::Invalid {
                    key: "READBOT_API_TOKEN",
                    message: "must be at least 16 characters".into(),
                });
            }
        }
        let templates_dir = env
            .get("READBOT_TEMPLATES_DIR")
            .map(PathBuf::from)
            .or(raw.templates_dir);
        let public_url = pick_str(env, "READBOT_PUBLIC_URL", raw.public_url);

        let d = raw.dingtalk;
        let app_key = pick_str(env, "DINGTALK_APP_KEY", d.app_key)
            .ok_or(ConfigError::Missing("DINGTALK_APP_KEY"))?;
        let app_secret = pick_str(env, "DINGTALK_APP_SECRET", d.app_secret)
            .map(Secret)
            .ok_or(ConfigError::Missing("DINGTALK_APP_SECRET"))?;
        let robot_code_s =
            pick_str(env, "DINGTALK_ROBOT_CODE", d.robot_code).unwrap_or_else(|| app_key.clone());
        let robot_code = RobotCode::parse(robot_code_s).map_err(|e| ConfigError::Invalid {
            key: "DINGTALK_ROBOT_CODE",
            message: e.to_string(),
        })?;
        let api_base = parse_base(
            "DINGTALK_API_BASE",
            &pick_str(env, "DINGTALK_API_BASE", d.api_base)
                .unwrap_or_else(|| "https://api.dingtalk.com".into()),
        )?;
        let oapi_base = parse_base(
            "DINGTALK_OAPI_BASE",
            &pick_str(env, "DINGTALK_OAPI_BASE", d.oapi_base)
                .unwrap_or_else(|| "https://oapi.dingtalk.com".into()),
        )?;
        let secs = |key, file, default| -> Result<Duration, ConfigError> {
            let v: u64 = pick(env, key, file)?.unwrap_or(default);
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be greater than 0".into(),
                });
            }
            Ok(Duration::from_secs(v))
        };
        let positive = |key, v: usize| -> Result<usize, ConfigError> {
            if v == 0 {
                Err(ConfigError::Invalid {
                    key,
                    message: "must be greater than 0".into(),
                })
            } else {
                Ok(v)
            }
        };
        let dingtalk = DingTalkConfig {
            app_key,
            app_secret,
            robot_code,
            api_base,
            oapi_base,
            cool_app_code: pick_str(env, "DINGTALK_COOL_APP_CODE", d.cool_app_code),
            timeout: secs("DINGTALK_TIMEOUT_SECS", d.timeout_secs, 10)?,
            deadline: secs("DINGTALK_DEADLINE_SECS", d.deadline_secs, 30)?,
            rate_limit_per_sec: pick(env, "DINGTALK_RATE_LIMIT_PER_SEC", d.rate_limit_per_sec)?
                .unwrap_or(20)
                .max(1),
            max_pages: positive(
                "DINGTALK_MAX_PAGES",
                pick(env, "DINGTALK_MAX_PAGES", d.max_pages)?.unwrap_or(100),
            )?,
            not_ready_window: secs(
                "DINGTALK_NOT_READY_WINDOW_SECS",
                d.not_ready_window_secs,
                300,
            )?,
            name_concurrency: positive(
                "DINGTALK_NAME_CONCURRENCY",
                pick(env, "DINGTALK_NAME_CONCURRENCY", d.name_concurrency)?.unwrap_or(8),
            )?,
        };

        let b = raw.bot;
        let defaults = BotConfig::default();
        let roster_sources = match env.get("READBOT_ROSTER_SOURCES") {
            Some(v) => Some(v.split(',').map(|s| s.trim().to_owned()).collect()),
            None => b.roster_sources,
        };
        let roster_sources = match roster_sources {
            None => defaults.roster_sources.clone(),
            Some(list) => {
                let mut out = Vec::new();
                for s in list.iter().filter(|s| !s.is_empty()) {
                    let src = RosterSource::parse(s).ok_or_else(|| ConfigError::Invalid {
                        key: "READBOT_ROSTER_SOURCES",
                        message: format!("{s:?} is not one of inner_group, scene_group, learned"),
                    })?;
                    if !out.contains(&src) {
                        out.push(src);
                    }
                }
                if out.is_empty() {
                    return Err(ConfigError::Invalid {
                        key: "READBOT_ROSTER_SOURCES",
                        message: "name at least one source".into(),
                    });
                }
                out
            }
        };
        let bot = BotConfig {
            roster_sources,
            name_ttl: secs("READBOT_NAME_TTL_SECS", b.name_ttl_secs, 7 * 24 * 3600)?,
            list_limit: positive(
                "READBOT_LIST_LIMIT",
                pick(env, "READBOT_LIST_LIMIT", b.list_limit)?.unwrap_or(defaults.list_limit),
            )?
            .min(50),
            max_body_bytes: positive(
                "READBOT_MAX_BODY_BYTES",
                pick(env, "READBOT_MAX_BODY_BYTES", b.max_body_bytes)?
                    .unwrap_or(defaults.max_body_bytes),
            )?,
            dedup_retention: secs(
                "READBOT_DEDUP_RETENTION_SECS",
                b.dedup_retention_secs,
                48 * 3600,
            )?,
            signature_window: secs(
                "READBOT_SIGNATURE_WINDOW_SECS",
                b.signature_window_secs,
                3600,
            )?,
            summary_timeout: secs("READBOT_SUMMARY_TIMEOUT_SECS", b.summary_timeout_secs, 120)?,
            // Zero is allowed: it turns the result cache off.
            receipts_cache: Duration::from_secs(
                pick(env, "READBOT_RECEIPTS_CACHE_SECS", b.receipts_cache_secs)?
                    .unwrap_or(defaults.receipts_cache.as_secs()),
            ),
            max_queued_answers: positive(
                "READBOT_MAX_QUEUED_ANSWERS",
                pick(env, "READBOT_MAX_QUEUED_ANSWERS", b.max_queued_answers)?
                    .unwrap_or(defaults.max_queued_answers),
            )?,
        };
        let mode = match pick_str(env, "READBOT_MODE", raw.mode) {
            None => Mode::Http,
            Some(m) => match m.trim().to_ascii_lowercase().as_str() {
                "http" => Mode::Http,
                "stream" => Mode::Stream,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "READBOT_MODE",
                        message: format!("{m:?} is not one of http, stream"),
                    })
                }
            },
        };
        let stream = Self::stream_from_raw(raw.stream, env)?;
        Ok(Config {
            listen,
            data_dir,
            api_token,
            templates_dir,
            public_url,
            mode,
            dingtalk,
            bot,
            stream,
        })
    }

    fn stream_from_raw(s: RawStream, env: &dyn Env) -> Result<StreamConfig, ConfigError> {
        let d = StreamConfig::default();
        let ms = |key, file, default: Duration| -> Result<Duration, ConfigError> {
            match pick::<u64>(env, key, file)? {
                None => Ok(default),
                Some(0) => Err(ConfigError::Invalid {
                    key,
                    message: "must be greater than 0".into(),
                }),
                Some(v) => Ok(Duration::from_millis(v)),
            }
        };
        let c = StreamConfig {
            backoff_base: ms(
                "READBOT_STREAM_BACKOFF_BASE_MS",
                s.backoff_base_ms,
                d.backoff_base,
            )?,
            backoff_max: ms(
                "READBOT_STREAM_BACKOFF_MAX_MS",
                s.backoff_max_ms,
                d.backoff_max,
            )?,
            healthy_after: ms(
                "READBOT_STREAM_HEALTHY_AFTER_MS",
                s.healthy_after_ms,
                d.healthy_after,
            )?,
            ping_interval: ms(
                "READBOT_STREAM_PING_INTERVAL_MS",
                s.ping_interval_ms,
                d.ping_interval,
            )?,
            idle_timeout: ms(
                "READBOT_STREAM_IDLE_TIMEOUT_MS",
                s.idle_timeout_ms,
                d.idle_timeout,
            )?,
        };
        if c.backoff_max < c.backoff_base {
            return Err(ConfigError::Invalid {
                key: "READBOT_STREAM_BACKOFF_MAX_MS",
                message: "must not be smaller than READBOT_STREAM_BACKOFF_BASE_MS".into(),
            });
        }
        if c.idle_timeout <= c.ping_interval {
            return Err(ConfigError::Invalid {
                key: "READBOT_STREAM_IDLE_TIMEOUT_MS",
                message: "must be longer than READBOT_STREAM_PING_INTERVAL_MS".into(),
            });
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn defaults_and_required_keys() {
        let e = env(&[]);
        let err = Config::from_toml_str("", &e).unwrap_err();
        assert!(err.to_string().contains("DINGTALK_APP_KEY"));
        let e = env(&[
            ("DINGTALK_APP_KEY", "dingkey"),
            ("DINGTALK_APP_SECRET", "s3cr3t"),
        ]);
        let c = Config::from_toml_str("", &e).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./readbot-data"));
        assert_eq!(c.dingtalk.robot_code.as_str(), "dingkey");
        assert_eq!(c.dingtalk.api_base.as_str(), "https://api.dingtalk.com/");
        assert_eq!(c.dingtalk.oapi_base.as_str(), "https://oapi.dingtalk.com/");
        assert!(c.api_token.is_none());
        assert_eq!(c.dingtalk.rate_limit_per_sec, 20);
    }

    #[test]
    fn env_overrides_file_and_secrets_do_not_leak() {
        let toml = r#"
            listen = "0.0.0.0:9000"
            api_token = "file-token-0123456789"
            [dingtalk]
            app_key = "filekey"
            app_secret = "very-secret-value"
            robot_code = "robot1"
            [bot]
            roster_sources = ["learned"]
        "#;
        let e = env(&[
            ("READBOT_LISTEN", "127.0.0.1:1"),
            ("DINGTALK_ROBOT_CODE", "robot2"),
        ]);
        let c = Config::from_toml_str(toml, &e).unwrap();
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.dingtalk.robot_code.as_str(), "robot2");
        assert_eq!(c.bot.roster_sources, vec![RosterSource::Learned]);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("very-secret-value"));
        assert!(!dbg.contains("file-token-0123456789"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
        for (k, v) in [
            ("READBOT_LISTEN", "nope"),
            ("DINGTALK_API_BASE", "ftp://x"),
            ("DINGTALK_TIMEOUT_SECS", "abc"),
            ("READBOT_ROSTER_SOURCES", "everyone"),
            ("READBOT_API_TOKEN", "short"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((k, v));
            let err = Config::from_toml_str("", &env(&pairs)).unwrap_err();
            assert!(err.to_string().contains(k), "{err} should name {k}");
        }
        let err = Config::from_toml_str("unknown_key = 1", &env(&base)).unwrap_err();
        assert!(err.to_string().contains("unknown_key"));
    }

    #[test]
    fn client_settings_need_no_dingtalk_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("readbot.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\napi_token = \"file-token-0123456789\"\n",
        )
        .unwrap();
        let c = Config::load_client(Some(&file), &env(&[])).unwrap();
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(c.api_token.unwrap().expose(), "file-token-0123456789");
        let c =
            Config::load_client(Some(&file), &env(&[("READBOT_LISTEN", "127.0.0.1:1")])).unwrap();
        assert_eq!(c.listen.as_deref(), Some("127.0.0.1:1"));
        let c = Config::load_client(None, &env(&[])).unwrap();
        assert!(c.listen.is_none() && c.api_token.is_none());
    }

    #[test]
    fn mode_and_stream_settings() {
        let base = [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")];
        let c = Config::from_toml_str("", &env(&base)).unwrap();
        assert_eq!(c.mode, Mode::Http);
        assert_eq!(c.stream, StreamConfig::default());
        assert_eq!(c.stream.backoff_base, Duration::from_secs(1));
        assert_eq!(c.stream.backoff_max, Duration::from_secs(60));
        let toml = r#"
            mode = "stream"
            [stream]
            backoff_base_ms = 20
            backoff_max_ms = 400
            ping_interval_ms = 100
            idle_timeout_ms = 300
        "#;
        let c = Config::from_toml_str(toml, &env(&base)).unwrap();
        assert_eq!(c.mode, Mode::Stream);
        assert_eq!(c.stream.backoff_base, Duration::from_millis(20));
        assert_eq!(c.stream.backoff_max, Duration::from_millis(400));
        assert_eq!(c.stream.idle_timeout, Duration::from_millis(300));
        let mut pairs = base.to_vec();
        pairs.push(("READBOT_MODE", "HTTP"));
        let c = Config::from_toml_str(toml, &env(&pairs)).unwrap();
        assert_eq!(c.mode, Mode::Http, "the environment wins");
        for (k, v) in [
            ("READBOT_MODE", "websocket"),
            ("READBOT_STREAM_BACKOFF_BASE_MS", "0"),
            ("READBOT_STREAM_BACKOFF_MAX_MS", "10"),
            ("READBOT_STREAM_IDLE_TIMEOUT_MS", "100"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((k, v));
            let err = Config::from_toml_str(toml, &env(&pairs)).unwrap_err();
            assert!(err.to_string().contains(k), "{err} should name {k}");
        }
    }

    #[test]
    fn example_config_parses_and_lists_every_key() {
        let text = include_str!("../deploy/readbot.example.toml");
        let c = Config::from_toml_str(text, &env(&[])).unwrap();
        assert_eq!(c.dingtalk.app_key, "dingxxxxxxxxxxxxxxxx");
        for (_, key, _) in ENV_KEYS.iter().filter(|(_, k, _)| *k != "(none)") {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                text.contains(&format!("{leaf} =")),
                "example config lacks {key}"
            );
        }
    }
}
