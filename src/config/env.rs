//! Where values come from besides the file: the [`Env`] source, the list of
//! keys ([`ENV_KEYS`]) and the helpers that overlay one key's environment
//! value on its file value.

use super::ConfigError;
use url::Url;

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

/// The environment's value of `key` (parsed as a number) if set, else the file's.
pub(super) fn pick<T: std::str::FromStr>(
    env: &dyn Env,
    key: &'static str,
    file: Option<T>,
) -> Result<Option<T>, ConfigError> {
    match env.get(key) {
        Some(v) => parse_num(key, &v).map(Some),
        None => Ok(file),
    }
}

/// The environment's value of `key` if set, else the file's; blank counts as unset.
pub(super) fn pick_str(env: &dyn Env, key: &'static str, file: Option<String>) -> Option<String> {
    env.get(key).or(file).filter(|s| !s.trim().is_empty())
}

/// An http(s) base URL with a host.
pub(super) fn parse_base(key: &'static str, v: &str) -> Result<Url, ConfigError> {
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
        "READBOT_STORE_URL",
        "store.url",
        "postgres:// URL: keep the state in PostgreSQL (several replicas) instead of sled",
    ),
    (
        "READBOT_STORE_POOL_SIZE",
        "store.pool_size",
        "PostgreSQL connections per readbot",
    ),
    (
        "READBOT_STORE_CA_FILE",
        "store.ca_file",
        "PEM file of extra CAs for PostgreSQL's TLS certificate",
    ),
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
        "READBOT_PUBLIC_URL",
        "web.public_url",
        "public base URL of the notice pages; turns on the summary's \"Full list\" link",
    ),
    (
        "READBOT_LINK_KEY",
        "web.link_key",
        "key that signs page links (default: generated and kept in the store)",
    ),
    (
        "READBOT_LINK_TTL_SECS",
        "web.link_ttl_secs",
        "how long a page link stays valid",
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
        "READBOT_REPLICAS",
        "dingtalk.replicas",
        "replicas sharing the app's rate limits",
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
        "DINGTALK_MONTHLY_CALL_BUDGET",
        "dingtalk.monthly_call_budget",
        "billable DingTalk calls a month",
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
        "READBOT_NOTICE_RETENTION_SECS",
        "bot.notice_retention_secs",
        "notices older than this are removed",
    ),
    (
        "READBOT_NAME_RETENTION_SECS",
        "bot.name_retention_secs",
        "cached names not fetched for this long are removed",
    ),
    (
        "READBOT_ROSTER_RETENTION_SECS",
        "bot.roster_retention_secs",
        "learned members not seen for this long are removed",
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
    (
        "READBOT_MAX_READ_NAMES",
        "bot.max_read_names",
        "readers named in a summary; more are given as a count (0: always a count)",
    ),
    (
        "READBOT_TIMEZONE",
        "bot.timezone",
        "IANA time zone of the times in replies",
    ),
    (
        "READBOT_HEADER_READ_TIMEOUT_SECS",
        "server.header_read_timeout_secs",
        "time for a request's headers (1-30)",
    ),
    (
        "READBOT_IDLE_TIMEOUT_SECS",
        "server.idle_timeout_secs",
        "silent connection / slow body limit",
    ),
    (
        "READBOT_MAX_CONNECTIONS",
        "server.max_connections",
        "open HTTP connections (plus a probe reserve)",
    ),
    (
        "READBOT_SHUTDOWN_GRACE_SECS",
        "server.shutdown_grace_secs",
        "drain time after SIGTERM (1-25)",
    ),
    (
        "READBOT_REMIND_POLICY",
        "bot.remind_policy",
        "who may remind and recall: author (and admins), admins, anyone",
    ),
    (
        "READBOT_ADMINS",
        "bot.admins",
        "comma list of userIds who may remind and recall any notice",
    ),
    (
        "READBOT_REMIND_COOLDOWN_SECS",
        "bot.remind_cooldown_secs",
        "least time between two reminders of one notice (0: none)",
    ),
    (
        "READBOT_REMIND_MAX_MENTIONS",
        "bot.remind_max_mentions",
        "most people one chat `remind` @-mentions",
    ),
    (
        "DINGTALK_EVENT_TOKEN",
        "dingtalk.event_token",
        "HTTP event push token (with the AES key: turns POST /dingtalk/events on)",
    ),
    (
        "DINGTALK_EVENT_AES_KEY",
        "dingtalk.event_aes_key",
        "HTTP event push EncodingAESKey (43 characters)",
    ),
    (
        "READBOT_ASK_POLICY",
        "bot.ask_policy",
        "who gets a notice's summary: anyone, author_and_admins",
    ),
    (
        "READBOT_REPLY_TO",
        "bot.reply_to",
        "where summaries go: group, or dm (the group sees one line)",
    ),
    (
        "READBOT_FOLLOW_UP_MAX_LATENESS_SECS",
        "bot.follow_up_max_lateness_secs",
        "a follow-up later than this (readbot was down) is skipped",
    ),
    (
        "READBOT_RECONCILE_INTERVAL_SECS",
        "bot.reconcile_interval_secs",
        "re-check a notice's pushed reads with one query pass after this long",
    ),
    (
        "READBOT_ROSTER_CACHE_SECS",
        "bot.roster_cache_secs",
        "summaries from trusted read events reuse a member list this young (0: off)",
    ),
];
