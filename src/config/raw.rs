//! The TOML file's all-optional view ([`RawFile`]) and its conversion into
//! a validated [`Config`]: environment over file over [`defaults`].

use super::env::{parse_base, pick, pick_str, Env};
use super::{
    defaults, AskPolicy, BotConfig, ClientSettings, Config, ConfigError, DingTalkConfig,
    EventsConfig, Mode, PgConfig, RemindPolicy, ReplyTimeZone, ReplyTo, RosterSource, Secret,
    ServerConfig, StreamConfig, WebConfig,
};
use crate::domain::{RobotCode, UserId};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// "list" never shows more notices than this, whatever `bot.list_limit` says.
const LIST_LIMIT_MAX: usize = 50;

/// Raw, all-optional view of the TOML file. Field names are the TOML keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
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
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    store: RawStore,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    pool_size: Option<usize>,
    ca_file: Option<PathBuf>,
}

impl RawStore {
    /// PostgreSQL when a URL is set (environment over file); `None` keeps sled.
    fn into_config(self, env: &dyn Env) -> Result<Option<PgConfig>, ConfigError> {
        let pool_size = match pick::<usize>(env, "READBOT_STORE_POOL_SIZE", self.pool_size)? {
            None => defaults::STORE_POOL_SIZE,
            Some(n) if n == 0 || n > defaults::STORE_POOL_SIZE_MAX => {
                return Err(ConfigError::Invalid {
                    key: "READBOT_STORE_POOL_SIZE",
                    message: format!("must be between 1 and {}", defaults::STORE_POOL_SIZE_MAX),
                })
            }
            Some(n) => n,
        };
        let Some(url) = pick_str(env, "READBOT_STORE_URL", self.url) else {
            return Ok(None);
        };
        if !PgConfig::is_postgres_url(&url) {
            // Only the scheme is shown: the rest may hold a password.
            let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
            return Err(ConfigError::Invalid {
                key: "READBOT_STORE_URL",
                message: format!(
                    "the scheme {scheme:?} is not supported: use postgres:// or postgresql:// \
                     (leave it unset to keep sled in READBOT_DATA_DIR)"
                ),
            });
        }
        let mut pg = PgConfig::new(url.trim());
        pg.pool_size = pool_size;
        pg.ca_file = pick_str(env, "READBOT_STORE_CA_FILE", None)
            .map(PathBuf::from)
            .or(self.ca_file)
            .filter(|p| !p.as_os_str().is_empty());
        Ok(Some(pg))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    public_url: Option<String>,
    link_key: Option<String>,
    link_ttl_secs: Option<u64>,
}

impl RawWeb {
    /// The page settings: environment over `[web]` over the top-level
    /// `public_url` (one address serves the callback and the pages).
    fn into_config(
        self,
        env: &dyn Env,
        top_public_url: Option<String>,
    ) -> Result<WebConfig, ConfigError> {
        let public_url = match pick_str(
            env,
            "READBOT_PUBLIC_URL",
            self.public_url.or(top_public_url),
        ) {
            None => None,
            Some(u) => {
                let url = parse_base("READBOT_PUBLIC_URL", &u)?;
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(ConfigError::Invalid {
                        key: "READBOT_PUBLIC_URL",
                        message: format!("{u:?} must not carry a query or a fragment"),
                    });
                }
                Some(url)
            }
        };
        let link_key = pick_str(env, "READBOT_LINK_KEY", self.link_key).map(Secret::new);
        if link_key.as_ref().is_some_and(|k| k.expose().len() < 32) {
            return Err(ConfigError::Invalid {
                key: "READBOT_LINK_KEY",
                message: "must be at least 32 characters".into(),
            });
        }
        let link_ttl = match pick::<u64>(env, "READBOT_LINK_TTL_SECS", self.link_ttl_secs)? {
            None => defaults::LINK_TTL,
            Some(v) if v == 0 || v > defaults::LINK_TTL_MAX.as_secs() => {
                return Err(ConfigError::Invalid {
                    key: "READBOT_LINK_TTL_SECS",
                    message: format!(
                        "must be greater than 0 and at most {}",
                        defaults::LINK_TTL_MAX.as_secs()
                    ),
                })
            }
            Some(v) => Duration::from_secs(v),
        };
        Ok(WebConfig {
            public_url,
            link_key,
            link_ttl,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    shutdown_grace_secs: Option<u64>,
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
    replicas: Option<u32>,
    max_pages: Option<usize>,
    not_ready_window_secs: Option<u64>,
    name_concurrency: Option<usize>,
    monthly_call_budget: Option<u64>,
    event_token: Option<String>,
    event_aes_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    roster_sources: Option<Vec<String>>,
    name_ttl_secs: Option<u64>,
    list_limit: Option<usize>,
    max_body_bytes: Option<usize>,
    dedup_retention_secs: Option<u64>,
    notice_retention_secs: Option<u64>,
    name_retention_secs: Option<u64>,
    roster_retention_secs: Option<u64>,
    signature_window_secs: Option<u64>,
    summary_timeout_secs: Option<u64>,
    receipts_cache_secs: Option<u64>,
    max_queued_answers: Option<usize>,
    max_read_names: Option<usize>,
    timezone: Option<String>,
    remind_policy: Option<String>,
    admins: Option<Vec<String>>,
    remind_cooldown_secs: Option<u64>,
    remind_max_mentions: Option<usize>,
    reconcile_interval_secs: Option<u64>,
    roster_cache_secs: Option<u64>,
    ask_policy: Option<String>,
    reply_to: Option<String>,
    follow_up_max_lateness_secs: Option<u64>,
}

impl RawFile {
    /// Reads the file named by `path` or `READBOT_CONFIG`; no file → all defaults.
    pub(super) fn read(path: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| env.get("READBOT_CONFIG").map(PathBuf::from));
        let Some(p) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: p, message })
    }

    /// Parses TOML text; the message is the TOML parser's.
    pub(super) fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// What the client subcommands need: `listen` and `api_token`.
    pub(super) fn into_client(self, env: &dyn Env) -> ClientSettings {
        ClientSettings {
            listen: pick_str(env, "READBOT_LISTEN", self.listen),
            api_token: pick_str(env, "READBOT_API_TOKEN", self.api_token).map(Secret::new),
        }
    }

    /// Overlays the environment on this file view, fills in the
    /// [`defaults`] and validates every key.
    pub(super) fn into_config(self, env: &dyn Env) -> Result<Config, ConfigError> {
        let raw = self;
        let listen_s =
            pick_str(env, "READBOT_LISTEN", raw.listen).unwrap_or_else(|| defaults::LISTEN.into());
        let listen: SocketAddr = listen_s.trim().parse().map_err(|_| ConfigError::Invalid {
            key: "READBOT_LISTEN",
            message: format!("{listen_s:?} is not an address like 127.0.0.1:8080"),
        })?;
        let data_dir = env
            .get("READBOT_DATA_DIR")
            .map(PathBuf::from)
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR));
        let api_token = pick_str(env, "READBOT_API_TOKEN", raw.api_token).map(Secret::new);
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
        let public_url = pick_str(env, "READBOT_PUBLIC_URL", raw.public_url.clone());
        let web = raw.web.into_config(env, raw.public_url)?;
        let postgres = raw.store.into_config(env)?;

        let d = raw.dingtalk;
        let app_key = pick_str(env, "DINGTALK_APP_KEY", d.app_key)
            .ok_or(ConfigError::Missing("DINGTALK_APP_KEY"))?;
        let app_secret = pick_str(env, "DINGTALK_APP_SECRET", d.app_secret)
            .map(Secret::new)
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
                .unwrap_or_else(|| defaults::DINGTALK_API_BASE.into()),
        )?;
        let oapi_base = parse_base(
            "DINGTALK_OAPI_BASE",
            &pick_str(env, "DINGTALK_OAPI_BASE", d.oapi_base)
                .unwrap_or_else(|| defaults::DINGTALK_OAPI_BASE.into()),
        )?;
        let secs = |key, file, default: Duration| -> Result<Duration, ConfigError> {
            match pick::<u64>(env, key, file)? {
                None => Ok(default),
                Some(0) => Err(ConfigError::Invalid {
                    key,
                    message: "must be greater than 0".into(),
                }),
                Some(v) => Ok(Duration::from_secs(v)),
            }
        };
        let at_most =
            |key, v: Duration, max: Duration, why: &str| -> Result<Duration, ConfigError> {
                if v > max {
                    Err(ConfigError::Invalid {
                        key,
                        message: format!("must be at most {} ({why})", max.as_secs()),
                    })
                } else {
                    Ok(v)
                }
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
        let events = EventsConfig {
            token: pick_str(env, "DINGTALK_EVENT_TOKEN", d.event_token).map(Secret::new),
            aes_key: pick_str(env, "DINGTALK_EVENT_AES_KEY", d.event_aes_key).map(Secret::new),
        };
        match (&events.token, &events.aes_key) {
            (Some(_), None) => return Err(ConfigError::Missing("DINGTALK_EVENT_AES_KEY")),
            (None, Some(_)) => return Err(ConfigError::Missing("DINGTALK_EVENT_TOKEN")),
            (Some(_), Some(k)) => {
                let k = k.expose().trim();
                let base64 = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
                if k.len() != 43 || !k.chars().all(base64) {
                    return Err(ConfigError::Invalid {
                        key: "DINGTALK_EVENT_AES_KEY",
                        message: "must be the console's 43-character EncodingAESKey".into(),
                    });
                }
            }
            (None, None) => {}
        }
        let dingtalk =
            DingTalkConfig {
                app_key,
                app_secret,
                robot_code,
                api_base,
                oapi_base,
                cool_app_code: pick_str(env, "DINGTALK_COOL_APP_CODE", d.cool_app_code),
                timeout: secs(
                    "DINGTALK_TIMEOUT_SECS",
                    d.timeout_secs,
                    defaults::DINGTALK_TIMEOUT,
                )?,
                deadline: secs(
                    "DINGTALK_DEADLINE_SECS",
                    d.deadline_secs,
                    defaults::DINGTALK_DEADLINE,
                )?,
                rate_limit_per_sec: pick(env, "DINGTALK_RATE_LIMIT_PER_SEC", d.rate_limit_per_sec)?
                    .unwrap_or(defaults::DINGTALK_RATE_LIMIT_PER_SEC)
                    .max(1),
                replicas: replicas(pick(env, "READBOT_REPLICAS", d.replicas)?)?,
                max_pages: positive(
                    "DINGTALK_MAX_PAGES",
                    pick(env, "DINGTALK_MAX_PAGES", d.max_pages)?
                        .unwrap_or(defaults::DINGTALK_MAX_PAGES),
                )?,
                not_ready_window: secs(
                    "DINGTALK_NOT_READY_WINDOW_SECS",
                    d.not_ready_window_secs,
                    defaults::DINGTALK_NOT_READY_WINDOW,
                )?,
                name_concurrency: positive(
                    "DINGTALK_NAME_CONCURRENCY",
                    pick(env, "DINGTALK_NAME_CONCURRENCY", d.name_concurrency)?
                        .unwrap_or(defaults::DINGTALK_NAME_CONCURRENCY),
                )?,
                monthly_call_budget: match pick(
                    env,
                    "DINGTALK_MONTHLY_CALL_BUDGET",
                    d.monthly_call_budget,
                )?
                .unwrap_or(defaults::DINGTALK_MONTHLY_CALL_BUDGET)
                {
                    0 => return Err(ConfigError::Invalid {
                        key: "DINGTALK_MONTHLY_CALL_BUDGET",
                        message:
                            "must be at least 1 (the organisation's monthly API quota, e.g. 5000)"
                                .into(),
                    }),
                    n => n,
                },
            };

        let b = raw.bot;
        let roster_sources = match env.get("READBOT_ROSTER_SOURCES") {
            Some(v) => Some(v.split(',').map(|s| s.trim().to_owned()).collect()),
            None => b.roster_sources,
        };
        let roster_sources = match roster_sources {
            None => defaults::ROSTER_SOURCES.to_vec(),
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
        let remind = remind_settings(
            env,
            b.remind_policy,
            b.admins,
            b.remind_cooldown_secs,
            b.remind_max_mentions,
        )?;
        let ask_policy = match pick_str(env, "READBOT_ASK_POLICY", b.ask_policy) {
            None => AskPolicy::default(),
            Some(p) => AskPolicy::parse(&p).ok_or_else(|| ConfigError::Invalid {
                key: "READBOT_ASK_POLICY",
                message: format!("{p:?} is not one of anyone, author_and_admins"),
            })?,
        };
        let reply_to = match pick_str(env, "READBOT_REPLY_TO", b.reply_to) {
            None => ReplyTo::default(),
            Some(p) => ReplyTo::parse(&p).ok_or_else(|| ConfigError::Invalid {
                key: "READBOT_REPLY_TO",
                message: format!("{p:?} is not one of group, dm"),
            })?,
        };
        let bot = BotConfig {
            ask_policy,
            reply_to,
            follow_up_max_lateness: secs(
                "READBOT_FOLLOW_UP_MAX_LATENESS_SECS",
                b.follow_up_max_lateness_secs,
                defaults::FOLLOW_UP_MAX_LATENESS,
            )?,
            remind_policy: remind.0,
            admins: remind.1,
            remind_cooldown: remind.2,
            remind_max_mentions: remind.3,
            roster_sources,
            name_ttl: secs("READBOT_NAME_TTL_SECS", b.name_ttl_secs, defaults::NAME_TTL)?,
            list_limit: positive(
                "READBOT_LIST_LIMIT",
                pick(env, "READBOT_LIST_LIMIT", b.list_limit)?.unwrap_or(defaults::LIST_LIMIT),
            )?
            .min(LIST_LIMIT_MAX),
            max_body_bytes: positive(
                "READBOT_MAX_BODY_BYTES",
                pick(env, "READBOT_MAX_BODY_BYTES", b.max_body_bytes)?
                    .unwrap_or(defaults::MAX_BODY_BYTES),
            )?,
            dedup_retention: secs(
                "READBOT_DEDUP_RETENTION_SECS",
                b.dedup_retention_secs,
                defaults::DEDUP_RETENTION,
            )?,
            notice_retention: secs(
                "READBOT_NOTICE_RETENTION_SECS",
                b.notice_retention_secs,
                defaults::NOTICE_RETENTION,
            )?,
            name_retention: secs(
                "READBOT_NAME_RETENTION_SECS",
                b.name_retention_secs,
                defaults::NAME_RETENTION,
            )?,
            roster_retention: secs(
                "READBOT_ROSTER_RETENTION_SECS",
                b.roster_retention_secs,
                defaults::ROSTER_RETENTION,
            )?,
            signature_window: at_most(
                "READBOT_SIGNATURE_WINDOW_SECS",
                secs(
                    "READBOT_SIGNATURE_WINDOW_SECS",
                    b.signature_window_secs,
                    defaults::SIGNATURE_WINDOW,
                )?,
                defaults::SIGNATURE_WINDOW_MAX,
                "DingTalk calls a callback more than an hour off illegal",
            )?,
            summary_timeout: secs(
                "READBOT_SUMMARY_TIMEOUT_SECS",
                b.summary_timeout_secs,
                defaults::SUMMARY_TIMEOUT,
            )?,
            // Zero is allowed: it turns the result cache off.
            receipts_cache: Duration::from_secs(
                pick(env, "READBOT_RECEIPTS_CACHE_SECS", b.receipts_cache_secs)?
                    .unwrap_or(defaults::RECEIPTS_CACHE.as_secs()),
            ),
            max_queued_answers: positive(
                "READBOT_MAX_QUEUED_ANSWERS",
                pick(env, "READBOT_MAX_QUEUED_ANSWERS", b.max_queued_answers)?
                    .unwrap_or(defaults::MAX_QUEUED_ANSWERS),
            )?,
            // Zero is allowed: the read part is always a count.
            max_read_names: pick(env, "READBOT_MAX_READ_NAMES", b.max_read_names)?
                .unwrap_or(defaults::MAX_READ_NAMES),
            timezone: match pick_str(env, "READBOT_TIMEZONE", b.timezone) {
                None => ReplyTimeZone::default(),
                Some(name) => {
                    ReplyTimeZone::parse(&name).map_err(|message| ConfigError::Invalid {
                        key: "READBOT_TIMEZONE",
                        message,
                    })?
                }
            },
            reconcile_interval: secs(
                "READBOT_RECONCILE_INTERVAL_SECS",
                b.reconcile_interval_secs,
                defaults::RECONCILE_INTERVAL,
            )?,
            // 0 turns the cache off.
            roster_cache: pick::<u64>(env, "READBOT_ROSTER_CACHE_SECS", b.roster_cache_secs)?
                .map_or(defaults::ROSTER_CACHE, Duration::from_secs),
        };
        // A signature record must outlive every moment its timestamp is
        // accepted (up to a window after it was first seen, which is up to a
        // window after the timestamp).
        if bot.dedup_retention < bot.signature_window * 2 {
            return Err(ConfigError::Invalid {
                key: "READBOT_DEDUP_RETENTION_SECS",
                message: format!(
                    "must be at least twice READBOT_SIGNATURE_WINDOW_SECS ({} s): signatures are remembered as long as message ids",
                    bot.signature_window.as_secs() * 2
                ),
            });
        }
        let mode = match pick_str(env, "READBOT_MODE", raw.mode) {
            None => defaults::MODE,
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
        let stream = raw.stream.into_config(env)?;
        let server = raw.server.into_config(env)?;
        Ok(Config {
            listen,
            data_dir,
            postgres,
            api_token,
            templates_dir,
            public_url,
            mode,
            dingtalk,
            bot,
            stream,
            server,
            events,
            web,
        })
    }
}

impl RawStream {
    /// The stream settings: environment over file over [`StreamConfig::default`].
    fn into_config(self, env: &dyn Env) -> Result<StreamConfig, ConfigError> {
        let (s, d) = (self, StreamConfig::default());
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

impl RawServer {
    /// The server limits: environment over file over [`ServerConfig::default`].
    fn into_config(self, env: &dyn Env) -> Result<ServerConfig, ConfigError> {
        let d = ServerConfig::default();
        let secs = |key, file, default: Duration, max: Option<Duration>| {
            let v = match pick::<u64>(env, key, file)? {
                None => return Ok(default),
                Some(v) => Duration::from_secs(v),
            };
            if v.is_zero() || max.is_some_and(|m| v > m) {
                let most = max.map_or(String::new(), |m| format!(" and at most {}", m.as_secs()));
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("must be greater than 0{most}"),
                });
            }
            Ok(v)
        };
        let max_connections = pick(env, "READBOT_MAX_CONNECTIONS", self.max_connections)?
            .unwrap_or(d.max_connections);
        if max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "READBOT_MAX_CONNECTIONS",
                message: "must be greater than 0".into(),
            });
        }
        Ok(ServerConfig {
            header_read_timeout: secs(
                "READBOT_HEADER_READ_TIMEOUT_SECS",
                self.header_read_timeout_secs,
                d.header_read_timeout,
                Some(defaults::HEADER_READ_TIMEOUT_MAX),
            )?,
            idle_timeout: secs(
                "READBOT_IDLE_TIMEOUT_SECS",
                self.idle_timeout_secs,
                d.idle_timeout,
                None,
            )?,
            max_connections,
            shutdown_grace: secs(
                "READBOT_SHUTDOWN_GRACE_SECS",
                self.shutdown_grace_secs,
                d.shutdown_grace,
                Some(defaults::SHUTDOWN_GRACE_MAX),
            )?,
        })
    }
}

/// `dingtalk.replicas` / `READBOT_REPLICAS`: 1 when unset, else 1 to
/// [`defaults::REPLICAS_MAX`].
fn replicas(v: Option<u32>) -> Result<u32, ConfigError> {
    match v {
        None => Ok(defaults::REPLICAS),
        Some(n @ 1..=defaults::REPLICAS_MAX) => Ok(n),
        Some(_) => Err(ConfigError::Invalid {
            key: "READBOT_REPLICAS",
            message: format!(
                "must be at least 1 and at most {} (the number of readbot processes sharing this DingTalk app)",
                defaults::REPLICAS_MAX
            ),
        }),
    }
}

/// `bot.remind_policy`, `bot.admins`, `bot.remind_cooldown_secs` and
/// `bot.remind_max_mentions`, environment over file, checked.
fn remind_settings(
    env: &dyn Env,
    policy: Option<String>,
    admins: Option<Vec<String>>,
    cooldown_secs: Option<u64>,
    max_mentions: Option<usize>,
) -> Result<(RemindPolicy, Vec<UserId>, Duration, usize), ConfigError> {
    let policy = match pick_str(env, "READBOT_REMIND_POLICY", policy) {
        None => RemindPolicy::default(),
        Some(p) => RemindPolicy::parse(&p).ok_or_else(|| ConfigError::Invalid {
            key: "READBOT_REMIND_POLICY",
            message: format!("{p:?} is not one of author, admins, anyone"),
        })?,
    };
    let admins = match env.get("READBOT_ADMINS") {
        Some(v) => v.split(',').map(|s| s.trim().to_owned()).collect(),
        None => admins.unwrap_or_default(),
    };
    let mut ids: Vec<UserId> = Vec::new();
    for a in admins.iter().filter(|a| !a.trim().is_empty()) {
        let id = UserId::parse(a.trim()).map_err(|e| ConfigError::Invalid {
            key: "READBOT_ADMINS",
            message: format!("{a:?}: {e}"),
        })?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    // Zero is allowed: no cooldown.
    let cooldown = Duration::from_secs(
        pick(env, "READBOT_REMIND_COOLDOWN_SECS", cooldown_secs)?
            .unwrap_or(defaults::REMIND_COOLDOWN.as_secs()),
    );
    let max_mentions = pick(env, "READBOT_REMIND_MAX_MENTIONS", max_mentions)?
        .unwrap_or(defaults::REMIND_MAX_MENTIONS);
    if max_mentions == 0 {
        return Err(ConfigError::Invalid {
            key: "READBOT_REMIND_MAX_MENTIONS",
            message: "must be greater than 0".into(),
        });
    }
    Ok((policy, ids, cooldown, max_mentions))
}
