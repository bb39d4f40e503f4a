//! PostgreSQL-backed [`Store`]: one database shared by several readbot
//! replicas (`store.url` / `READBOT_STORE_URL`).
//!
//! # What happens once, across replicas
//!
//! Every write is one SQL statement (or one transaction) that decides on
//! the server, never a read in readbot followed by a write:
//! - a message claim is `INSERT … ON CONFLICT DO NOTHING`: of two replicas
//!   that get the same `msgId`, one inserts the in-flight mark (`Claim::New`),
//!   the other sees it (`InFlight`, or `Done` once answered). Marks expire by
//!   [`Store::prune_marks`] exactly as in sled (counted from the last write);
//! - a signature's message list, a send reservation, the link key, the call
//!   ledger and the read records are upserts whose `WHERE` holds the rule;
//! - a follow-up is fired by whoever moves it `pending` → `firing`: an
//!   `UPDATE … WHERE state = 'pending'` that only one caller can win. The
//!   winner's owner id is written with it. `firing` ones are listed again
//!   (the start-up re-send) only when their owner is this store or gone: each
//!   store holds a session advisory lock on its owner id on a connection of
//!   its own, and [`Store::due_follow_ups`] takes over (`FOR UPDATE SKIP
//!   LOCKED`) only rows whose owner's lock it can take, so a replica that
//!   starts while another is sending does not send the same follow-up again.
//!
//! # Durability
//!
//! A statement returns after its commit, which PostgreSQL makes durable
//! (`synchronous_commit`): [`Store::flush`] and [`Store::make_claim_durable`]
//! have nothing left to do.
//!
//! # Start
//!
//! [`PgStore::connect`] builds the pool (bounded: `store.pool_size`, a wait
//! timeout, a connect timeout, a statement timeout), then applies the
//! embedded migrations (`schema`) in one transaction holding
//! `pg_advisory_xact_lock`, so replicas that start together do not race.
//! A database whose schema is newer than this binary is refused.

mod hint;
mod schema;

use super::{
    Claim, Cutoffs, EntryCounts, Pruned, SendRecord, SignatureUse, StateChange, Store, StoreError,
};
use crate::config::PgConfig;
use crate::domain::{
    BillingMonth, CachedRoster, EpochMillis, EventTrust, FollowUp, FollowUpId, FollowUpState,
    IdempotencyKey, MsgId, Notice, OpenConversationId, ProcessQueryKey, ReadRecord, ReadSource,
    Reminder, UserId,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::config::Host;
use tokio_postgres::Row;

/// First key of every advisory lock readbot takes ("rbot").
const LOCK_SPACE: i32 = 0x7262_6f74;
/// Second key of the migration lock (owner ids are never 0).
const MIGRATION_LOCK: i32 = 0;

/// How long a caller waits for a free connection of the pool.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Connect timeout when the URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Server-side statement timeout (ms) unless the URL's options set one.
const STATEMENT_TIMEOUT_MS: u64 = 30_000;
/// Pause before the owner lock's connection is made again after a loss.
const OWNER_LOCK_RETRY: Duration = Duration::from_secs(5);

/// A learned-roster entry is rewritten only when older than this (as sled).
const ROSTER_REFRESH_MS: EpochMillis = 60 * 60 * 1000;

/// `reads.source`: 1 event, 2 query (as sled).
fn source_code(s: ReadSource) -> i16 {
    match s {
        ReadSource::Event => 1,
        ReadSource::Query => 2,
    }
}

/// The readbot tables, for [`Store::size_bytes`].
const TABLES: &[&str] = &[
    "notices",
    "marks",
    "signatures",
    "names",
    "roster",
    "group_titles",
    "roster_cache",
    "reminders",
    "recalled",
    "reads",
    "reconciled",
    "meta",
    "sends",
    "calls",
    "follow_ups",
];

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    /// `host:port (database db)`: what errors and `describe` name (never the
    /// user or password).
    target: String,
    /// This store's owner id (follow-ups it fires carry it).
    owner: i32,
    /// Holds the owner id's advisory lock; aborted on drop.
    owner_lock: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.owner_lock.abort();
    }
}

/// Where `config` points, without user or password: `host:port (database db)`.
fn target_of(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{hosts} (database {db})")
}

/// TLS for remote servers: rustls on ring with the webpki roots, plus the
/// authorities of `store.ca_file` when set (the URL's `sslmode` decides
/// whether TLS is used; Unix sockets never are). The certificate is always
/// verified: `sslmode=disable` is the way to a server without TLS.
async fn tls(config: &PgConfig) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &config.ca_file {
        for cert in extra_authorities(path).await? {
            roots
                .add(cert)
                .map_err(|e| ca_file_error(path, "a certificate in it is not a usable CA", e))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::backend("cannot set up TLS for PostgreSQL", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The certificates of the PEM file `path` (at least one).
async fn extra_authorities(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, StoreError> {
    use rustls::pki_types::pem::PemObject;
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| ca_file_error(path, "cannot read it", e))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_file_error(path, "it is not valid PEM", e))?;
    if certs.is_empty() {
        return Err(StoreError::message(format!(
            "store.ca_file {}: no CERTIFICATE block in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn ca_file_error(path: &std::path::Path, what: &str, e: impl Into<super::BoxError>) -> StoreError {
    StoreError::backend(format!("store.ca_file {}: {what}", path.display()), e)
}

/// Maps a driver error, saying what was being done.
fn failed(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn corrupt(record: String, e: impl Into<super::BoxError>) -> StoreError {
    StoreError::Corrupt {
        record,
        source: Some(e.into()),
    }
}

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::backend(what, e))
}

fn decode<T: serde::de::DeserializeOwned>(record: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(record.to_owned(), e))
}

/// Text PostgreSQL can store: `TEXT` refuses NUL, which untrusted names and
/// titles might hold; it becomes U+FFFD.
fn storable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains('\0') {
        std::borrow::Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// A `usize` limit as SQL's `BIGINT`.
fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn state_name(s: FollowUpState) -> &'static str {
    s.as_str()
}

fn state_of(name: &str) -> Option<FollowUpState> {
    use FollowUpState::*;
    [Pending, Firing, Fired, Skipped, Cancelled]
        .into_iter()
        .find(|s| s.as_str() == name)
}

/// A follow-up row (`body`, `state`, `changed_at`, `note`): the body as
/// added, the columns the state changes since.
fn follow_up_of(row: &Row) -> Result<FollowUp, StoreError> {
    let key: &str = row.get("key");
    let id: &str = row.get("id");
    let record = format!("follow-up {key:?} {id:?}");
    let mut f: FollowUp = decode(&record, row.get("body"))?;
    f.state = state_of(row.get("state")).ok_or_else(|| StoreError::Corrupt {
        record,
        source: None,
    })?;
    f.changed_at = row.get("changed_at");
    f.note = row.get("note");
    Ok(f)
}

/// The driver's configuration for `config` (timeouts, keep-alives, the
/// statement timeout added) and the target it names.
fn driver_config(config: &PgConfig) -> Result<(tokio_postgres::Config, String), StoreError> {
    let url = libpq_sslmode(config.url.expose());
    let mut pg = tokio_postgres::Config::from_str(&url).map_err(|e| {
        StoreError::backend(
            "READBOT_STORE_URL is not a valid PostgreSQL URL (see README, \"High availability\")",
            e,
        )
    })?;
    let target = target_of(&pg);
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT_TIMEOUT);
    }
    pg.keepalives(true);
    if pg.get_application_name().is_none() {
        pg.application_name("readbot");
    }
    let options = pg.get_options().unwrap_or_default().to_owned();
    if !options.contains("statement_timeout") {
        let timeout = format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}");
        pg.options(if options.is_empty() {
            timeout
        } else {
            format!("{options} {timeout}")
        });
    }
    Ok((pg, target))
}

/// `url` with libpq's verifying `sslmode`s (`verify-full`, `verify-ca`),
/// which the driver does not know, written as `require`: with rustls,
/// `require` already verifies the certificate chain and the host name (what
/// `verify-full` asks for; stricter than `verify-ca`).
fn libpq_sslmode(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((head, query)) = url.split_once('?') else {
        return url.into();
    };
    let verifying = |p: &str| {
        p.split_once('=').is_some_and(|(k, v)| {
            k == "sslmode"
                && (v.eq_ignore_ascii_case("verify-full") || v.eq_ignore_ascii_case("verify-ca"))
        })
    };
    if !query.split('&').any(verifying) {
        return url.into();
    }
    let query: Vec<&str> = query
        .split('&')
        .map(|p| if verifying(p) { "sslmode=require" } else { p })
        .collect();
    format!("{head}?{}", query.join("&")).into()
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    /// `host:port (database name)`.
    pub target: String,
    /// The database's schema version (0: readbot has not created its tables yet).
    pub schema: i64,
    /// The newest version this binary knows.
    pub known: i64,
}

/// `readbot check`'s look at the database: one connection (no pool, no
/// migration, nothing written), the schema version read. Errors name the
/// host and database, never the password; a schema newer than this binary
/// is [`StoreError::SchemaTooNew`].
pub async fn probe(config: &PgConfig) -> Result<ProbeReport, StoreError> {
    let (pg, target) = driver_config(config)?;
    let unreachable = |e: tokio_postgres::Error| hint::unreachable(&target, e);
    let (client, connection) = pg.connect(tls(config).await?).await.map_err(unreachable)?;
    let task = tokio::spawn(connection);
    let version = async {
        let exists: bool = client
            .query_one("SELECT to_regclass('readbot_migrations') IS NOT NULL", &[])
            .await?
            .get(0);
        if !exists {
            return Ok(0);
        }
        let v: i32 = client
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM readbot_migrations",
                &[],
            )
            .await?
            .get(0);
        Ok::<i32, tokio_postgres::Error>(v)
    }
    .await;
    drop(client);
    let _ = task.await;
    let schema = version.map_err(failed("cannot read the schema version"))?;
    let (schema, known) = (i64::from(schema), i64::from(schema::LATEST));
    if schema > known {
        return Err(StoreError::SchemaTooNew {
            found: schema,
            known,
        });
    }
    Ok(ProbeReport {
        target,
        schema,
        known,
    })
}

impl PgStore {
    /// Connects to the database `config` names, applies the embedded
    /// migrations (under an advisory lock) and takes this store's owner
    /// lock. Errors name the host and database, never the password.
    pub async fn connect(config: &PgConfig) -> Result<Self, StoreError> {
        let (pg, target) = driver_config(config)?;
        let tls = tls(config).await?;
        let manager = Manager::from_config(
            pg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(
                pg.get_connect_timeout()
                    .copied()
                    .unwrap_or(CONNECT_TIMEOUT)
                    .saturating_add(Duration::from_secs(5)),
            ))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::backend("cannot build the PostgreSQL pool", e))?;
        let owner = loop {
            let n: i32 = rand::random();
            if n != MIGRATION_LOCK && n != i32::MIN {
                break n.abs();
            }
        };
        let mut store = Self {
            pool,
            target,
            owner,
            owner_lock: tokio::spawn(async {}),
        };
        store.migrate().await?;
        store.owner_lock = store.hold_owner_lock(pg, tls).await?;
        Ok(store)
    }

    /// `host:port (database db)`, as errors name it.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A pooled connection; failing to get one means the server cannot be
    /// reached (or the pool stayed full for [`POOL_WAIT`]).
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| hint::unreachable(&self.target, e))
    }

    /// Applies the migrations this database lacks, in one transaction that
    /// holds the migration lock; refuses a schema newer than this binary.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(failed("cannot start the schema migration"))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&LOCK_SPACE, &MIGRATION_LOCK],
        )
        .await
        .map_err(failed("cannot take the migration lock"))?;
        tx.batch_execute(schema::CREATE_MIGRATIONS_TABLE)
            .await
            .map_err(failed("cannot create the migrations table"))?;
        let found: i32 = tx
            .query_one(
                "SELECT COALESCE(max(version), 0) FROM readbot_migrations",
                &[],
            )
            .await
            .map_err(failed("cannot read the schema version"))?
            .get(0);
        if found > schema::LATEST {
            return Err(StoreError::SchemaTooNew {
                found: i64::from(found),
                known: i64::from(schema::LATEST),
            });
        }
        for (version, sql) in schema::MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.batch_execute(sql)
                .await
                .map_err(failed("cannot apply a schema migration"))?;
            tx.execute(
                "INSERT INTO readbot_migrations (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(failed("cannot record a schema migration"))?;
            tracing::info!(version, "applied a PostgreSQL schema migration");
        }
        tx.commit()
            .await
            .map_err(failed("cannot commit the schema migration"))
    }

    /// Takes the owner lock on a connection of its own and keeps it (made
    /// again after a loss) until the store is dropped. The first take is
    /// awaited, so a follow-up this store claims is never taken over.
    async fn hold_owner_lock(
        &self,
        pg: tokio_postgres::Config,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
    ) -> Result<tokio::task::JoinHandle<()>, StoreError> {
        let owner = self.owner;
        let lock = move |pg: tokio_postgres::Config,
                         tls: tokio_postgres_rustls::MakeRustlsConnect| async move {
            let (client, connection) = pg.connect(tls).await?;
            let task = tokio::spawn(connection);
            client
                .execute("SELECT pg_advisory_lock($1, $2)", &[&LOCK_SPACE, &owner])
                .await?;
            Ok::<_, tokio_postgres::Error>((client, task))
        };
        let first = lock(pg.clone(), tls.clone())
            .await
            .map_err(|e| hint::unreachable(&self.target, e))?;
        Ok(tokio::spawn(async move {
            let mut held = Some(first);
            loop {
                if let Some((client, task)) = held.take() {
                    // The lock lives as long as this connection.
                    let _ = task.await;
                    drop(client);
                    tracing::warn!("lost the PostgreSQL connection that holds readbot's owner lock; taking it again");
                }
                tokio::time::sleep(OWNER_LOCK_RETRY).await;
                match lock(pg.clone(), tls.clone()).await {
                    Ok(h) => held = Some(h),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take readbot's owner lock again yet");
                    }
                }
            }
        }))
    }

    async fn upsert_notice(
        client: &impl deadpool_postgres::GenericClient,
        notice: &Notice,
    ) -> Result<(), StoreError> {
        let body = encode("cannot encode the notice", notice)?;
        client
            .execute(
                "INSERT INTO notices (key, grp, author, sent_at, body) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key) DO UPDATE SET grp = EXCLUDED.grp, author = EXCLUDED.author,
                   sent_at = EXCLUDED.sent_at, body = EXCLUDED.body",
                &[
                    &notice.key.as_str(),
                    &notice.group.as_str(),
                    &notice.author.as_ref().map(UserId::as_str),
                    &notice.sent_at,
                    &body,
                ],
            )
            .await
            .map_err(failed("cannot record the notice"))?;
        Ok(())
    }

    async fn notices_where(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Notice>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(sql, params)
            .await
            .map_err(failed("cannot read the notices"))?;
        rows.iter()
            .map(|r| {
                let key: &str = r.get(0);
                decode(&format!("notice {key:?}"), r.get(1))
            })
            .collect()
    }

    /// A single `SELECT` of one `BIGINT` per key, for the per-notice times.
    async fn time_of(&self, sql: &str, key: &str) -> Result<Option<EpochMillis>, StoreError> {
        Ok(self
            .client()
            .await?
            .query_opt(sql, &[&key])
            .await
            .map_err(failed("cannot read a stored time"))?
            .map(|r| r.get(0)))
    }

    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .client()
            .await?
            .query_opt("SELECT value FROM meta WHERE name = $1", &[&name])
            .await
            .map_err(failed("cannot read a setting"))?
            .map(|r| r.get(0)))
    }

    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO meta (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[&name, &value],
            )
            .await
            .map_err(failed("cannot write a setting"))?;
        Ok(())
    }
}

/// Names for `users` (each once, in the asked order) from `rows` of
/// `(user_id, name)`.
fn in_asked_order(users: &[UserId], rows: &[Row]) -> Vec<(UserId, String)> {
    let found: HashMap<&str, &str> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut seen = HashSet::new();
    users
        .iter()
        .filter(|u| seen.insert(*u))
        .filter_map(|u| found.get(u.as_str()).map(|n| (u.clone(), (*n).to_owned())))
        .collect()
}

fn distinct_ids(users: &[UserId]) -> Vec<&str> {
    let mut seen = HashSet::new();
    users
        .iter()
        .map(UserId::as_str)
        .filter(|u| seen.insert(*u))
        .collect()
}

#[async_trait]
impl Store for PgStore {
    async fn record_notice(&self, notice: &Notice) -> Result<(), StoreError> {
        Self::upsert_notice(&self.client().await?, notice).await
    }

    async fn notice(&self, key: &ProcessQueryKey) -> Result<Option<Notice>, StoreError> {
        Ok(self
            .notices_where(
                "SELECT key, body FROM notices WHERE key = $1",
                &[&key.as_str()],
            )
            .await?
            .pop())
    }

    async fn notices_in_group(
        &self,
        group: &OpenConversationId,
        limit: usize,
    ) -> Result<Vec<Notice>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.notices_where(
            "SELECT key, body FROM notices WHERE grp = $1 ORDER BY sent_at DESC, key LIMIT $2",
            &[&group.as_str(), &sql_limit(limit)],
        )
        .await
    }

    async fn last_notice_by(
        &self,
        group: &OpenConversationId,
        author: &UserId,
    ) -> Result<Option<Notice>, StoreError> {
        Ok(self
            .notices_where(
                "SELECT key, body FROM notices WHERE grp = $1 AND author = $2
                 ORDER BY sent_at DESC, key LIMIT 1",
                &[&group.as_str(), &author.as_str()],
            )
            .await?
            .pop())
    }

    async fn notice_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .client()
            .await?
            .query_one("SELECT count(*) FROM notices", &[])
            .await
            .map_err(failed("cannot count the notices"))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn claim_message(&self, id: &MsgId, now: EpochMillis) -> Result<Claim, StoreError> {
        // One statement: the insert decides; a conflicting row visible to
        // this statement says which. A conflict with a claim committed after
        // the statement's snapshot leaves `done` NULL: in flight. An
        // in-flight claim whose answer has not started and whose owner is
        // gone (its owner lock is free: the replica died with the message
        // queued) is taken over: DingTalk redelivered it, so it is answered
        // here (as sled forgets a claim that was only in memory).
        let row = self
            .client()
            .await?
            .query_one(
                "WITH ins AS (
                   INSERT INTO marks AS m (msg_id, done, at, owner, started)
                   VALUES ($1, false, $2, $3, false)
                   ON CONFLICT (msg_id) DO UPDATE SET owner = EXCLUDED.owner, at = EXCLUDED.at
                     WHERE NOT m.done AND NOT m.started AND m.owner IS NOT NULL
                       AND m.owner <> EXCLUDED.owner AND pg_try_advisory_xact_lock($4, m.owner)
                   RETURNING 1
                 )
                 SELECT EXISTS (SELECT 1 FROM ins), (SELECT done FROM marks WHERE msg_id = $1)",
                &[&id.as_str(), &now, &self.owner, &LOCK_SPACE],
            )
            .await
            .map_err(failed("cannot claim a message"))?;
        let (inserted, done): (bool, Option<bool>) = (row.get(0), row.get(1));
        Ok(match (inserted, done) {
            (true, _) => Claim::New,
            (false, Some(true)) => Claim::Done,
            (false, _) => Claim::InFlight,
        })
    }

    async fn make_claim_durable(&self, id: &MsgId) -> Result<(), StoreError> {
        // The claim's commit made it durable; this marks its answer as
        // started (never taken over from here on). No row: another replica
        // took it over (this one's owner lock was lost meanwhile), or the
        // mark expired; that replica answers, this one must not.
        let started = self
            .client()
            .await?
            .execute(
                "UPDATE marks SET started = true WHERE msg_id = $1 AND owner = $2 AND NOT done",
                &[&id.as_str(), &self.owner],
            )
            .await
            .map_err(failed("cannot mark a claim as being answered"))?;
        if started == 0 {
            return Err(StoreError::ClaimLost {
                msg_id: id.as_str().to_owned(),
            });
        }
        Ok(())
    }

    async fn finish_message(&self, id: &MsgId, now: EpochMillis) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO marks (msg_id, done, at) VALUES ($1, true, $2)
                 ON CONFLICT (msg_id) DO UPDATE SET done = true, at = EXCLUDED.at",
                &[&id.as_str(), &now],
            )
            .await
            .map_err(failed("cannot write a de-dup mark"))?;
        Ok(())
    }

    async fn prune_marks(&self, before: EpochMillis) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let marks = client
            .execute("DELETE FROM marks WHERE at < $1", &[&before])
            .await
            .map_err(failed("cannot remove old de-dup marks"))?;
        let signatures = client
            .execute("DELETE FROM signatures WHERE at < $1", &[&before])
            .await
            .map_err(failed("cannot remove old signature records"))?;
        Ok(usize::try_from(marks.saturating_add(signatures)).unwrap_or(usize::MAX))
    }

    async fn use_signature(
        &self,
        timestamp: EpochMillis,
        id: &MsgId,
        now: EpochMillis,
        limit: usize,
    ) -> Result<SignatureUse, StoreError> {
        if limit == 0 {
            return Ok(SignatureUse::Exhausted);
        }
        let client = self.client().await?;
        // The upsert appends only an unknown id to a list below the limit
        // (the row lock serialises racing callers); when it writes nothing,
        // a fresh read says whether the id was known. A record pruned in
        // between is tried again.
        for _ in 0..3 {
            let wrote = client
                .execute(
                    "INSERT INTO signatures (ts, at, ids) VALUES ($1, $3, ARRAY[$2::text])
                     ON CONFLICT (ts) DO UPDATE SET ids = signatures.ids || EXCLUDED.ids, at = EXCLUDED.at
                     WHERE NOT ($2::text = ANY (signatures.ids)) AND cardinality(signatures.ids) < $4::bigint",
                    &[&timestamp, &id.as_str(), &now, &sql_limit(limit)],
                )
                .await
                .map_err(failed("cannot write a signature record"))?;
            if wrote > 0 {
                return Ok(SignatureUse::Allowed);
            }
            let known = client
                .query_opt(
                    "SELECT $2::text = ANY (ids) FROM signatures WHERE ts = $1",
                    &[&timestamp, &id.as_str()],
                )
                .await
                .map_err(failed("cannot read a signature record"))?;
            match known.map(|r| r.get::<_, bool>(0)) {
                Some(true) => return Ok(SignatureUse::Allowed),
                Some(false) => return Ok(SignatureUse::Exhausted),
                None => continue,
            }
        }
        Err(StoreError::message(
            "a signature record kept disappearing while it was written",
        ))
    }

    async fn cached_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .client()
            .await?
            .query(
                "SELECT user_id, name FROM names
                 WHERE user_id = ANY ($1) AND verified AND fetched_at >= $2",
                &[&distinct_ids(users), &fresh_since],
            )
            .await
            .map_err(failed("cannot read the name cache"))?;
        Ok(in_asked_order(users, &rows))
    }

    async fn cache_names(
        &self,
        names: &[(UserId, String)],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        // The last name of a user wins, as with one insert after another.
        let mut last: HashMap<&str, String> = HashMap::new();
        for (user, name) in names {
            last.insert(user.as_str(), storable(name).into_owned());
        }
        if last.is_empty() {
            return Ok(());
        }
        let (ids, texts): (Vec<&str>, Vec<String>) = last.into_iter().unzip();
        self.client()
            .await?
            .execute(
                "INSERT INTO names (user_id, name, fetched_at, verified)
                 SELECT u, n, $3, true FROM unnest($1::text[], $2::text[]) AS t(u, n)
                 ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name,
                   fetched_at = EXCLUDED.fetched_at, verified = true",
                &[&ids, &texts, &now],
            )
            .await
            .map_err(failed("cannot write the name cache"))?;
        Ok(())
    }

    async fn cache_callback_name(
        &self,
        user: &UserId,
        name: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO names (user_id, name, fetched_at, verified) VALUES ($1, $2, $3, false)
                 ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name,
                   fetched_at = EXCLUDED.fetched_at
                 WHERE NOT names.verified",
                &[&user.as_str(), &storable(name).as_ref(), &now],
            )
            .await
            .map_err(failed("cannot write the name cache"))?;
        Ok(())
    }

    async fn callback_names(
        &self,
        users: &[UserId],
        fresh_since: EpochMillis,
    ) -> Result<Vec<(UserId, String)>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .client()
            .await?
            .query(
                "SELECT user_id, name FROM names
                 WHERE user_id = ANY ($1) AND NOT verified AND fetched_at >= $2",
                &[&distinct_ids(users), &fresh_since],
            )
            .await
            .map_err(failed("cannot read the name cache"))?;
        Ok(in_asked_order(users, &rows))
    }

    async fn remember_members(
        &self,
        group: &OpenConversationId,
        users: &[UserId],
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        let ids = distinct_ids(users);
        if ids.is_empty() {
            return Ok(());
        }
        // Only entries not seen within the refresh period are rewritten.
        self.client()
            .await?
            .execute(
                "INSERT INTO roster (grp, user_id, seen_at)
                 SELECT $1, u, $3 FROM unnest($2::text[]) AS t(u)
                 ON CONFLICT (grp, user_id) DO UPDATE SET seen_at = EXCLUDED.seen_at
                 WHERE roster.seen_at <= $4",
                &[
                    &group.as_str(),
                    &ids,
                    &now,
                    &now.saturating_sub(ROSTER_REFRESH_MS),
                ],
            )
            .await
            .map_err(failed("cannot write the learned roster"))?;
        Ok(())
    }

    async fn learned_members(&self, group: &OpenConversationId) -> Result<Vec<UserId>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT user_id FROM roster WHERE grp = $1 ORDER BY user_id",
                &[&group.as_str()],
            )
            .await
            .map_err(failed("cannot read the learned roster"))?;
        rows.iter()
            .map(|r| {
                let u: &str = r.get(0);
                UserId::parse(u).map_err(|e| corrupt(format!("roster entry {u:?}"), e))
            })
            .collect()
    }

    async fn remember_group_title(
        &self,
        group: &OpenConversationId,
        title: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        let title = storable(super::bounded_group_title(title));
        self.client()
            .await?
            .execute(
                "INSERT INTO group_titles (grp, title, at) VALUES ($1, $2, $3)
                 ON CONFLICT (grp) DO UPDATE SET title = EXCLUDED.title, at = EXCLUDED.at
                 WHERE group_titles.title <> EXCLUDED.title OR group_titles.at <= $4",
                &[
                    &group.as_str(),
                    &title.as_ref(),
                    &now,
                    &now.saturating_sub(super::GROUP_TITLE_REFRESH_MS),
                ],
            )
            .await
            .map_err(failed("cannot write a group title"))?;
        Ok(())
    }

    async fn group_title(&self, group: &OpenConversationId) -> Result<Option<String>, StoreError> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT title FROM group_titles WHERE grp = $1",
                &[&group.as_str()],
            )
            .await
            .map_err(failed("cannot read a group title"))?
            .map(|r| r.get(0)))
    }

    async fn cache_roster(
        &self,
        group: &OpenConversationId,
        roster: &CachedRoster,
    ) -> Result<(), StoreError> {
        let body = encode("cannot encode a member list", roster)?;
        self.client()
            .await?
            .execute(
                "INSERT INTO roster_cache (grp, fetched_at, body) VALUES ($1, $2, $3)
                 ON CONFLICT (grp) DO UPDATE SET fetched_at = EXCLUDED.fetched_at, body = EXCLUDED.body",
                &[&group.as_str(), &roster.fetched_at, &body],
            )
            .await
            .map_err(failed("cannot write a cached member list"))?;
        Ok(())
    }

    async fn cached_roster(
        &self,
        group: &OpenConversationId,
    ) -> Result<Option<CachedRoster>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT body FROM roster_cache WHERE grp = $1",
                &[&group.as_str()],
            )
            .await
            .map_err(failed("cannot read a cached member list"))?;
        row.map(|r| decode(&format!("cached member list of {group}"), r.get(0)))
            .transpose()
    }

    async fn record_reminder(
        &self,
        key: &ProcessQueryKey,
        reminder: &Reminder,
    ) -> Result<(), StoreError> {
        let body = encode("cannot encode the reminder", reminder)?;
        self.client()
            .await?
            .execute(
                "INSERT INTO reminders (key, at, body) VALUES ($1, $2, $3)",
                &[&key.as_str(), &reminder.at, &body],
            )
            .await
            .map_err(failed("cannot write the reminder"))?;
        Ok(())
    }

    async fn reminders(&self, key: &ProcessQueryKey) -> Result<Vec<Reminder>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT body FROM reminders WHERE key = $1 ORDER BY at, id",
                &[&key.as_str()],
            )
            .await
            .map_err(failed("cannot read the reminders"))?;
        rows.iter()
            .map(|r| decode(&format!("reminder of {key}"), r.get(0)))
            .collect()
    }

    async fn mark_recalled(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<bool, StoreError> {
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO recalled (key, at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key.as_str(), &at],
            )
            .await
            .map_err(failed("cannot mark the notice recalled"))?;
        Ok(n > 0)
    }

    async fn recalled_at(&self, key: &ProcessQueryKey) -> Result<Option<EpochMillis>, StoreError> {
        self.time_of("SELECT at FROM recalled WHERE key = $1", key.as_str())
            .await
    }

    async fn add_follow_ups(&self, list: &[FollowUp]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(failed("cannot store the follow-ups"))?;
        for f in list {
            let body = encode("cannot encode a follow-up", f)?;
            tx.execute(
                "INSERT INTO follow_ups (key, id, at, state, changed_at, note, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key, id) DO NOTHING",
                &[
                    &f.key.as_str(),
                    &f.id.as_str(),
                    &f.at,
                    &state_name(f.state),
                    &f.changed_at,
                    &f.note,
                    &body,
                ],
            )
            .await
            .map_err(failed("cannot store the follow-ups"))?;
        }
        tx.commit()
            .await
            .map_err(failed("cannot store the follow-ups"))
    }

    async fn follow_ups(&self, key: &ProcessQueryKey) -> Result<Vec<FollowUp>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT key, id, state, changed_at, note, body FROM follow_ups
                 WHERE key = $1 ORDER BY at, id",
                &[&key.as_str()],
            )
            .await
            .map_err(failed("cannot read the follow-ups"))?;
        rows.iter().map(follow_up_of).collect()
    }

    async fn due_follow_ups(
        &self,
        state: FollowUpState,
        due_by: EpochMillis,
        limit: usize,
    ) -> Result<Vec<FollowUp>, StoreError> {
        let client = self.client().await?;
        let rows = if state == FollowUpState::Firing {
            // Left firing: this store's own, or an owner whose lock is free
            // (gone). Taken over (the owner becomes this store) so that two
            // starting replicas do not both send one again.
            client
                .query(
                    "UPDATE follow_ups f SET owner = $3
                     FROM (SELECT key, id FROM follow_ups
                           WHERE state = 'firing' AND at <= $1
                             AND (owner IS NULL OR owner = $3 OR pg_try_advisory_xact_lock($4, owner))
                           ORDER BY at, key, id LIMIT $2
                           FOR UPDATE SKIP LOCKED) AS due
                     WHERE f.key = due.key AND f.id = due.id
                     RETURNING f.key, f.id, f.at, f.state, f.changed_at, f.note, f.body",
                    &[&due_by, &sql_limit(limit), &self.owner, &LOCK_SPACE],
                )
                .await
        } else {
            // Pending ones are only listed: the caller's pending → firing
            // change is the claim (one winner across replicas).
            client
                .query(
                    "SELECT key, id, at, state, changed_at, note, body FROM follow_ups
                     WHERE state = $1 AND at <= $2 ORDER BY at, key, id LIMIT $3",
                    &[&state_name(state), &due_by, &sql_limit(limit)],
                )
                .await
        }
        .map_err(failed("cannot read the follow-up work list"))?;
        let mut out = rows
            .iter()
            .map(follow_up_of)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| (a.at, &a.key, &a.id).cmp(&(b.at, &b.key, &b.id)));
        Ok(out)
    }

    async fn set_follow_up_state(
        &self,
        key: &ProcessQueryKey,
        id: &FollowUpId,
        change: StateChange<'_>,
    ) -> Result<Option<FollowUp>, StoreError> {
        // One compare-and-set: of racing callers (any replica) one wins.
        let owner = (change.to == FollowUpState::Firing).then_some(self.owner);
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE follow_ups SET state = $4, changed_at = $5, note = COALESCE($6, note), owner = $7
                 WHERE key = $1 AND id = $2 AND state = $3
                 RETURNING key, id, state, changed_at, note, body",
                &[
                    &key.as_str(),
                    &id.as_str(),
                    &state_name(change.from),
                    &state_name(change.to),
                    &change.now,
                    &change.note,
                    &owner,
                ],
            )
            .await
            .map_err(failed("cannot change a follow-up"))?;
        row.as_ref().map(follow_up_of).transpose()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every statement's commit is durable already.
        Ok(())
    }

    async fn begin_send(
        &self,
        key: &IdempotencyKey,
        fingerprint: &str,
        now: EpochMillis,
    ) -> Result<Option<SendRecord>, StoreError> {
        let client = self.client().await?;
        for _ in 0..3 {
            let inserted = client
                .execute(
                    "INSERT INTO sends (key, fingerprint, at) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO NOTHING",
                    &[&key.as_str(), &fingerprint, &now],
                )
                .await
                .map_err(failed("cannot reserve a send"))?;
            if inserted > 0 {
                return Ok(None);
            }
            let row = client
                .query_opt(
                    "SELECT fingerprint, at, notice FROM sends WHERE key = $1",
                    &[&key.as_str()],
                )
                .await
                .map_err(failed("cannot read a send record"))?;
            let Some(row) = row else {
                continue; // abandoned meanwhile: try again
            };
            let notice: Option<&str> = row.get(2);
            let notice = notice
                .map(ProcessQueryKey::parse)
                .transpose()
                .map_err(|e| corrupt(format!("send record {key}"), e))?;
            return Ok(Some(SendRecord {
                fingerprint: row.get(0),
                at: row.get(1),
                notice,
            }));
        }
        Err(StoreError::message(
            "send reservation raced with removals three times",
        ))
    }

    async fn complete_send(&self, key: &IdempotencyKey, notice: &Notice) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(failed("cannot record the sent notice"))?;
        let n = tx
            .execute(
                "UPDATE sends SET notice = $2 WHERE key = $1",
                &[&key.as_str(), &notice.key.as_str()],
            )
            .await
            .map_err(failed("cannot record the sent notice"))?;
        if n == 0 {
            return Err(StoreError::message(
                "no send is reserved under that idempotency key",
            ));
        }
        Self::upsert_notice(&tx, notice).await?;
        tx.commit()
            .await
            .map_err(failed("cannot record the sent notice"))
    }

    async fn abandon_send(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM sends WHERE key = $1 AND notice IS NULL",
                &[&key.as_str()],
            )
            .await
            .map_err(failed("cannot forget a send"))?;
        Ok(())
    }

    async fn prune_old(&self, cutoffs: Cutoffs) -> Result<Pruned, StoreError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(failed("cannot prune old records"))?;
        let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        // Follow-ups and group titles go uncounted (as in sled).
        tx.execute(
            "DELETE FROM follow_ups WHERE at < $1",
            &[&cutoffs.notices_before],
        )
        .await
        .map_err(failed("cannot remove old follow-ups"))?;
        tx.execute(
            "DELETE FROM group_titles WHERE at < $1",
            &[&cutoffs.roster_before],
        )
        .await
        .map_err(failed("cannot remove old group titles"))?;
        // A notice takes its reads, reminders, recall and reconciliation marks.
        let notices: i64 = tx
            .query_one(
                "WITH gone AS (DELETE FROM notices WHERE sent_at < $1 RETURNING key),
                      r1 AS (DELETE FROM reads WHERE key IN (SELECT key FROM gone)),
                      r2 AS (DELETE FROM reminders WHERE key IN (SELECT key FROM gone)),
                      r3 AS (DELETE FROM recalled WHERE key IN (SELECT key FROM gone)),
                      r4 AS (DELETE FROM reconciled WHERE key IN (SELECT key FROM gone))
                 SELECT count(*) FROM gone",
                &[&cutoffs.notices_before],
            )
            .await
            .map_err(failed("cannot remove old notices"))?
            .get(0);
        let sends = tx
            .execute(
                "DELETE FROM sends WHERE at < $1",
                &[&cutoffs.notices_before],
            )
            .await
            .map_err(failed("cannot remove old send records"))?;
        let names = tx
            .execute(
                "DELETE FROM names WHERE fetched_at < $1",
                &[&cutoffs.names_before],
            )
            .await
            .map_err(failed("cannot remove old names"))?;
        let roster = tx
            .execute(
                "DELETE FROM roster WHERE seen_at < $1",
                &[&cutoffs.roster_before],
            )
            .await
            .map_err(failed("cannot remove old roster entries"))?;
        let lists = tx
            .execute(
                "DELETE FROM roster_cache WHERE fetched_at < $1",
                &[&cutoffs.roster_before],
            )
            .await
            .map_err(failed("cannot remove old cached member lists"))?;
        tx.commit()
            .await
            .map_err(failed("cannot prune old records"))?;
        Ok(Pruned {
            notices: usize::try_from(notices).unwrap_or(0),
            sends: count(sends),
            names: count(names),
            roster: count(roster).saturating_add(count(lists)),
        })
    }

    async fn entry_counts(&self) -> Result<EntryCounts, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT (SELECT count(*) FROM notices), (SELECT count(*) FROM marks),
                        (SELECT count(*) FROM names), (SELECT count(*) FROM roster),
                        (SELECT count(*) FROM sends)",
                &[],
            )
            .await
            .map_err(failed("cannot count the records"))?;
        let n = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        Ok(EntryCounts {
            notices: n(0),
            marks: n(1),
            names: n(2),
            roster: n(3),
            sends: n(4),
        })
    }

    async fn probe_write(&self, now: EpochMillis) -> Result<(), StoreError> {
        self.set_meta("probe", &now.to_be_bytes()).await
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .client()
            .await?
            .query_one(
                "SELECT COALESCE(sum(pg_total_relation_size(to_regclass(t))), 0)::bigint
                 FROM unnest($1::text[]) AS t",
                &[&TABLES],
            )
            .await
            .map_err(failed("cannot measure the tables"))?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn record_reads(
        &self,
        key: &ProcessQueryKey,
        reads: &[ReadRecord],
    ) -> Result<usize, StoreError> {
        if reads.is_empty() {
            return Ok(0);
        }
        // One upsert per round; a reader named twice goes to the next round
        // (one statement may not change a row twice), so the result is that
        // of recording the list in order.
        let mut rounds: Vec<Vec<&ReadRecord>> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for r in reads {
            let round = seen.entry(r.user_id.as_str()).or_insert(0);
            if rounds.len() <= *round {
                rounds.push(Vec::new());
            }
            rounds[*round].push(r);
            *round += 1;
        }
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(failed("cannot record reads"))?;
        let mut changed = 0usize;
        for round in rounds {
            let users: Vec<&str> = round.iter().map(|r| r.user_id.as_str()).collect();
            let ats: Vec<i64> = round.iter().map(|r| r.at).collect();
            let sources: Vec<i16> = round.iter().map(|r| source_code(r.source)).collect();
            // Event (1) replaces query (2); within a source the earlier time wins.
            let n = tx
                .execute(
                    "INSERT INTO reads (key, user_id, at, source)
                     SELECT $1, u, a, s FROM unnest($2::text[], $3::bigint[], $4::smallint[]) AS t(u, a, s)
                     ON CONFLICT (key, user_id) DO UPDATE SET at = EXCLUDED.at, source = EXCLUDED.source
                     WHERE (EXCLUDED.source = 1 AND reads.source = 2)
                        OR (EXCLUDED.source = reads.source AND EXCLUDED.at < reads.at)",
                    &[&key.as_str(), &users, &ats, &sources],
                )
                .await
                .map_err(failed("cannot record reads"))?;
            changed = changed.saturating_add(usize::try_from(n).unwrap_or(usize::MAX));
        }
        tx.commit().await.map_err(failed("cannot record reads"))?;
        Ok(changed)
    }

    async fn reads(&self, key: &ProcessQueryKey) -> Result<Vec<ReadRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT user_id, at, source FROM reads WHERE key = $1 ORDER BY at, user_id",
                &[&key.as_str()],
            )
            .await
            .map_err(failed("cannot read the reads"))?;
        rows.iter()
            .map(|r| {
                let user: &str = r.get(0);
                let record = || format!("read of {key} by {user:?}");
                let source = match r.get::<_, i16>(2) {
                    1 => ReadSource::Event,
                    2 => ReadSource::Query,
                    _ => {
                        return Err(StoreError::Corrupt {
                            record: record(),
                            source: None,
                        })
                    }
                };
                Ok(ReadRecord {
                    user_id: UserId::parse(user).map_err(|e| corrupt(record(), e))?,
                    at: r.get(1),
                    source,
                })
            })
            .collect()
    }

    async fn reconciled_at(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Option<EpochMillis>, StoreError> {
        self.time_of("SELECT at FROM reconciled WHERE key = $1", key.as_str())
            .await
    }

    async fn set_reconciled_at(
        &self,
        key: &ProcessQueryKey,
        at: EpochMillis,
    ) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO reconciled (key, at) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET at = EXCLUDED.at",
                &[&key.as_str(), &at],
            )
            .await
            .map_err(failed("cannot write a reconciliation time"))?;
        Ok(())
    }

    async fn event_trust(&self) -> Result<EventTrust, StoreError> {
        match self.meta("trust").await? {
            None => Ok(EventTrust::default()),
            Some(v) => decode("event trust", &v),
        }
    }

    async fn set_event_trust(&self, trust: &EventTrust) -> Result<(), StoreError> {
        let v = encode("cannot encode the event trust", trust)?;
        self.set_meta("trust", &v).await
    }

    async fn add_calls(
        &self,
        month: &BillingMonth,
        calls: &[(&str, u64)],
    ) -> Result<(), StoreError> {
        // One entry per API (a repeated API is summed, saturating).
        let mut sums: HashMap<&str, u64> = HashMap::new();
        for (api, n) in calls.iter().filter(|(_, n)| *n > 0) {
            let s = sums.entry(api).or_insert(0);
            *s = s.saturating_add(*n);
        }
        if sums.is_empty() {
            return Ok(());
        }
        let (apis, counts): (Vec<&str>, Vec<String>) =
            sums.into_iter().map(|(a, n)| (a, n.to_string())).unzip();
        self.client()
            .await?
            .execute(
                "INSERT INTO calls (month, api, calls)
                 SELECT $1, a, n::numeric FROM unnest($2::text[], $3::text[]) AS t(a, n)
                 ON CONFLICT (month, api) DO UPDATE
                 SET calls = LEAST(calls.calls + EXCLUDED.calls, 18446744073709551615)",
                &[&month.as_str(), &apis, &counts],
            )
            .await
            .map_err(failed("cannot add to the call ledger"))?;
        Ok(())
    }

    async fn calls_in_month(&self, month: &BillingMonth) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT api, calls::text FROM calls WHERE month = $1 ORDER BY api",
                &[&month.as_str()],
            )
            .await
            .map_err(failed("cannot read the call ledger"))?;
        rows.iter()
            .map(|r| {
                let api: String = r.get(0);
                let n: &str = r.get(1);
                let n = n
                    .parse::<u64>()
                    .map_err(|e| corrupt(format!("call ledger entry {month} {api}"), e))?;
                Ok((api, n))
            })
            .collect()
    }

    async fn link_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.meta("link").await
    }

    async fn init_link_key(&self, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let client = self.client().await?;
        for _ in 0..3 {
            client
                .execute(
                    "INSERT INTO meta (name, value) VALUES ('link', $1) ON CONFLICT (name) DO NOTHING",
                    &[&candidate],
                )
                .await
                .map_err(failed("cannot store the link key"))?;
            // A fresh statement sees whichever key won.
            if let Some(row) = client
                .query_opt("SELECT value FROM meta WHERE name = 'link'", &[])
                .await
                .map_err(failed("cannot read the link key"))?
            {
                return Ok(row.get(0));
            }
        }
        Err(StoreError::message("the link key kept disappearing"))
    }

    fn describe(&self) -> String {
        format!("postgres at {}", self.target)
    }
}

#[cfg(test)]
mod tests;
