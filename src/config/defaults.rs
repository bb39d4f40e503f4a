//! Every configuration default, once. The `Default` impls of the settings
//! structs and the file/environment loader both read these constants.

use super::Mode;
use crate::domain::RosterSource;
use std::time::Duration;

/// `listen` / `READBOT_LISTEN`.
pub const LISTEN: &str = "127.0.0.1:8080";
/// `mode` / `READBOT_MODE`.
pub const MODE: Mode = Mode::Http;
/// `data_dir` / `READBOT_DATA_DIR`.
pub const DATA_DIR: &str = "./readbot-data";

/// `store.pool_size` / `READBOT_STORE_POOL_SIZE`: PostgreSQL connections per
/// readbot (a callback takes one for a statement or two; the default server
/// allows 100 connections, so a handful of replicas fit).
pub const STORE_POOL_SIZE: usize = 8;
/// Largest `store.pool_size` accepted.
pub const STORE_POOL_SIZE_MAX: usize = 64;

/// sled's page cache. With sled's own default (1 GiB), writing 100,000
/// notices took the process to 107 MiB of RSS; with 8 MiB it stays near
/// 62 MiB, and serving with 100,000 notices stored stays under 30 MiB.
/// readbot's working set (recent notices, de-dup marks, names of the groups
/// being asked about) is small.
pub const SLED_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// `dingtalk.api_base` / `DINGTALK_API_BASE`.
pub const DINGTALK_API_BASE: &str = "https://api.dingtalk.com";
/// `dingtalk.oapi_base` / `DINGTALK_OAPI_BASE`.
pub const DINGTALK_OAPI_BASE: &str = "https://oapi.dingtalk.com";
/// `dingtalk.timeout_secs` / `DINGTALK_TIMEOUT_SECS`.
pub const DINGTALK_TIMEOUT: Duration = Duration::from_secs(10);
/// `dingtalk.deadline_secs` / `DINGTALK_DEADLINE_SECS`.
pub const DINGTALK_DEADLINE: Duration = Duration::from_secs(30);
/// `dingtalk.rate_limit_per_sec` / `DINGTALK_RATE_LIMIT_PER_SEC`.
pub const DINGTALK_RATE_LIMIT_PER_SEC: u32 = 20;
/// `dingtalk.replicas` / `READBOT_REPLICAS`: one readbot per app.
pub const REPLICAS: u32 = 1;
/// The largest `dingtalk.replicas` accepted.
pub const REPLICAS_MAX: u32 = 64;
/// `dingtalk.max_pages` / `DINGTALK_MAX_PAGES`.
pub const DINGTALK_MAX_PAGES: usize = 100;
/// `dingtalk.not_ready_window_secs` / `DINGTALK_NOT_READY_WINDOW_SECS`.
pub const DINGTALK_NOT_READY_WINDOW: Duration = Duration::from_secs(300);
/// `dingtalk.name_concurrency` / `DINGTALK_NAME_CONCURRENCY`.
pub const DINGTALK_NAME_CONCURRENCY: usize = 8;
/// `dingtalk.monthly_call_budget` / `DINGTALK_MONTHLY_CALL_BUDGET`: the
/// standard edition's monthly API quota (dingtalk-api.md §8.2).
pub const DINGTALK_MONTHLY_CALL_BUDGET: u64 = 5000;

/// `bot.roster_sources` / `READBOT_ROSTER_SOURCES`.
pub const ROSTER_SOURCES: [RosterSource; 3] = [
    RosterSource::InnerGroup,
    RosterSource::SceneGroup,
    RosterSource::Learned,
];
/// `bot.name_ttl_secs` / `READBOT_NAME_TTL_SECS`.
pub const NAME_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// `bot.list_limit` / `READBOT_LIST_LIMIT`.
pub const LIST_LIMIT: usize = 10;
/// `bot.max_body_bytes` / `READBOT_MAX_BODY_BYTES`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// `bot.notice_retention_secs` / `READBOT_NOTICE_RETENTION_SECS`: DingTalk
/// documents no read-query window for group messages (24 h for 1:1); 30
/// days keeps a longer real window usable while bounding the folder.
pub const NOTICE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// `bot.name_retention_secs` / `READBOT_NAME_RETENTION_SECS`.
pub const NAME_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// `bot.roster_retention_secs` / `READBOT_ROSTER_RETENTION_SECS`.
pub const ROSTER_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// `bot.dedup_retention_secs` / `READBOT_DEDUP_RETENTION_SECS`.
pub const DEDUP_RETENTION: Duration = Duration::from_secs(48 * 3600);
/// `bot.signature_window_secs` / `READBOT_SIGNATURE_WINDOW_SECS`: five
/// minutes either way (a captured header pair is worth little for long).
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(300);
/// The widest `bot.signature_window_secs`: DingTalk's documented hour.
pub const SIGNATURE_WINDOW_MAX: Duration = Duration::from_secs(3600);
/// `bot.summary_timeout_secs` / `READBOT_SUMMARY_TIMEOUT_SECS`.
pub const SUMMARY_TIMEOUT: Duration = Duration::from_secs(120);
/// `bot.receipts_cache_secs` / `READBOT_RECEIPTS_CACHE_SECS`.
pub const RECEIPTS_CACHE: Duration = Duration::from_secs(10);
/// `bot.max_queued_answers` / `READBOT_MAX_QUEUED_ANSWERS`.
pub const MAX_QUEUED_ANSWERS: usize = 10_000;
/// `bot.max_read_names` / `READBOT_MAX_READ_NAMES`: past this many readers a
/// summary gives the read part as a count (the unread list is what a lead
/// acts on).
pub const MAX_READ_NAMES: usize = 30;
/// `bot.timezone` / `READBOT_TIMEZONE`: the IANA zone reply times are shown in.
pub const TIMEZONE: &str = "Asia/Shanghai";
/// `bot.remind_cooldown_secs` / `READBOT_REMIND_COOLDOWN_SECS`.
pub const REMIND_COOLDOWN: Duration = Duration::from_secs(600);
/// `bot.remind_max_mentions` / `READBOT_REMIND_MAX_MENTIONS`.
pub const REMIND_MAX_MENTIONS: usize = 200;
/// `bot.follow_up_max_lateness_secs` / `READBOT_FOLLOW_UP_MAX_LATENESS_SECS`:
/// a follow-up due while readbot was down still fires within six hours.
pub const FOLLOW_UP_MAX_LATENESS: Duration = Duration::from_secs(6 * 3600);
/// `bot.reconcile_interval_secs` / `READBOT_RECONCILE_INTERVAL_SECS`.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(3600);
/// `bot.roster_cache_secs` / `READBOT_ROSTER_CACHE_SECS`: a member list
/// serves summaries from trusted read events for 30 minutes.
pub const ROSTER_CACHE: Duration = Duration::from_secs(1800);
/// `web.link_ttl_secs` / `READBOT_LINK_TTL_SECS`: a page link lasts 7 days.
pub const LINK_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Longest `web.link_ttl_secs` accepted: 90 days.
pub const LINK_TTL_MAX: Duration = Duration::from_secs(90 * 86_400);

/// `stream.backoff_base_ms` / `READBOT_STREAM_BACKOFF_BASE_MS`.
pub const STREAM_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// `stream.backoff_max_ms` / `READBOT_STREAM_BACKOFF_MAX_MS`.
pub const STREAM_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// `stream.healthy_after_ms` / `READBOT_STREAM_HEALTHY_AFTER_MS`.
pub const STREAM_HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// `stream.ping_interval_ms` / `READBOT_STREAM_PING_INTERVAL_MS`.
pub const STREAM_PING_INTERVAL: Duration = Duration::from_secs(30);
/// `stream.idle_timeout_ms` / `READBOT_STREAM_IDLE_TIMEOUT_MS`.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// `server.header_read_timeout_secs` / `READBOT_HEADER_READ_TIMEOUT_SECS`.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest `server.header_read_timeout_secs` accepted.
pub const HEADER_READ_TIMEOUT_MAX: Duration = Duration::from_secs(30);
/// `server.idle_timeout_secs` / `READBOT_IDLE_TIMEOUT_SECS`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// `server.max_connections` / `READBOT_MAX_CONNECTIONS`.
pub const MAX_CONNECTIONS: usize = 1024;
/// `server.shutdown_grace_secs` / `READBOT_SHUTDOWN_GRACE_SECS`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The largest `server.shutdown_grace_secs` accepted: the deploy manifests
/// give readbot 30 s after SIGTERM.
pub const SHUTDOWN_GRACE_MAX: Duration = Duration::from_secs(25);
