//! Operations endpoints: `GET /metrics` (Prometheus text format) and
//! `GET /readyz` (readiness). `GET /healthz` (liveness) lives in the main
//! router.
//!
//! Readiness means readbot can do its job right now:
//! - **store** (its `backend`: `sled in <folder>` or `postgres at host:port
//!   (database name)`): a read from the store succeeds within [`STORE_TIMEOUT`], and
//!   so does a durable probe write (at most one per
//!   [`crate::store::health::PROBE_INTERVAL`], its result reused meanwhile);
//!   while the store is failing (any write failed and no probe write has
//!   succeeded since) readbot is not ready. The last store error is shown
//!   even after recovery (`last_error`);
//! - **dingtalk**: an access token is cached and fresh, or one can be
//!   fetched now (a refresh that fails while the previous token is still
//!   valid keeps readbot ready until that token expires). A failed check is
//!   remembered for [`TOKEN_FAILURE_TTL`] so that probes do not hammer
//!   DingTalk.
//!
//! Neither endpoint needs the API token; neither shows ids, names or secrets.

use crate::bot::Bot;
use crate::dingtalk::client::DingTalkClient;
use crate::domain::ProcessQueryKey;
use crate::store::health::StoreHealth;
use crate::store::Store;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bound of the store check.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// Upper bound of the token check (a fetch with its retries).
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failed token check is reused before DingTalk is asked again.
pub const TOKEN_FAILURE_TTL: Duration = Duration::from_secs(10);

/// State of the operations endpoints.
#[derive(Clone)]
pub struct OpsState {
    store: Arc<dyn Store>,
    bot: Bot,
    token: Option<DingTalkClient>,
    token_failure: Arc<Mutex<Option<(Instant, String)>>>,
    /// The store's write health and the backend probes go to.
    health: Option<(StoreHealth, Arc<dyn Store>)>,
}

impl OpsState {
    /// Readiness and metrics over `store` (its [`Store::size_bytes`] is the
    /// store-size gauge). Without [`OpsState::with_token_check`] the
    /// DingTalk check is skipped.
    pub fn new(store: Arc<dyn Store>, bot: Bot) -> Self {
        Self {
            store,
            bot,
            token: None,
            token_failure: Arc::new(Mutex::new(None)),
            health: None,
        }
    }

    /// Makes readiness prove a write on `backend` (rate-limited) and report
    /// `health` (the application does this with its monitored store).
    pub fn with_store_health(mut self, health: StoreHealth, backend: Arc<dyn Store>) -> Self {
        self.health = Some((health, backend));
        self
    }

    /// Makes readiness require a DingTalk access token from `client`.
    pub fn with_token_check(mut self, client: DingTalkClient) -> Self {
        self.token = Some(client);
        self
    }

    async fn check_store(&self) -> Result<(), String> {
        let probe = ProcessQueryKey::parse("readbot-readiness-probe").map_err(|e| e.to_string())?;
        match tokio::time::timeout(STORE_TIMEOUT, self.store.notice(&probe)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.with_causes()),
            Err(_) => {
                return Err(format!(
                    "the store did not answer within {} s",
                    STORE_TIMEOUT.as_secs()
                ))
            }
        }
        let Some((health, backend)) = &self.health else {
            return Ok(());
        };
        match tokio::time::timeout(STORE_TIMEOUT, health.probe(backend.as_ref())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("the store cannot write: {e}")),
            Err(_) => {
                return Err(format!(
                    "the store's probe write did not finish within {} s",
                    STORE_TIMEOUT.as_secs()
                ))
            }
        }
        match health.failing() {
            None => Ok(()),
            Some(last) => Err(format!("the store is failing: {last}")),
        }
    }

    /// `last_error` of the store check: the last write failure, kept after
    /// recovery.
    fn store_last_error(&self) -> Option<Value> {
        let (health, _) = self.health.as_ref()?;
        let report = health.report();
        let (at, message) = report.last_error?;
        Some(json!({ "atMillis": at, "message": message, "fatal": report.fatal.is_some() }))
    }

    async fn check_token(&self) -> Option<Result<(), String>> {
        let client = self.token.as_ref()?;
        let remembered = self
            .token_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((at, msg)) = remembered {
            if at.elapsed() < TOKEN_FAILURE_TTL {
                return Some(Err(msg));
            }
        }
        let res = match tokio::time::timeout(TOKEN_TIMEOUT, client.access_token()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot get a DingTalk access token: {e}")),
            Err(_) => Err(format!(
                "cannot get a DingTalk access token: no answer within {} s",
                TOKEN_TIMEOUT.as_secs()
            )),
        };
        let mut slot = self.token_failure.lock().unwrap_or_else(|e| e.into_inner());
        *slot = res.as_ref().err().map(|m| (Instant::now(), m.clone()));
        Some(res)
    }
}

/// The `/metrics` and `/readyz` routes.
pub fn ops_router(state: OpsState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .with_state(state)
}

fn check_json(res: &Result<(), String>) -> Value {
    match res {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e }),
    }
}

async fn readyz(State(state): State<OpsState>) -> (StatusCode, Json<Value>) {
    let (store, token) = tokio::join!(state.check_store(), state.check_token());
    let mut ready = store.is_ok();
    let mut checks = serde_json::Map::new();
    if let Err(e) = &store {
        tracing::warn!(error = %e, "not ready: store");
    }
    let mut store_json = check_json(&store);
    if let (Some(last), Some(obj)) = (state.store_last_error(), store_json.as_object_mut()) {
        obj.insert("last_error".into(), last);
    }
    if let Some(obj) = store_json.as_object_mut() {
        // Which backend, and where (never a password).
        obj.insert("backend".into(), state.store.describe().into());
    }
    checks.insert("store".into(), store_json);
    match &token {
        Some(t) => {
            if let Err(e) = t {
                tracing::warn!(error = %e, "not ready: DingTalk token");
            }
            ready &= t.is_ok();
            checks.insert("dingtalk".into(), check_json(t));
        }
        None => {
            checks.insert(
                "dingtalk".into(),
                json!({ "ok": true, "skipped": "no DingTalk client to check" }),
            );
        }
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    (status, Json(body))
}

async fn metrics(State(state): State<OpsState>) -> Response {
    // 0 when the store cannot tell (readiness reports a failing store).
    let size = match tokio::time::timeout(STORE_TIMEOUT, state.store.size_bytes()).await {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    let notices = match tokio::time::timeout(STORE_TIMEOUT, state.store.notice_count()).await {
        Ok(Ok(n)) => Some(n),
        _ => None,
    };
    crate::metrics::store(size, notices);
    if let Ok(Ok(c)) = tokio::time::timeout(STORE_TIMEOUT, state.store.entry_counts()).await {
        for (kind, n) in [
            ("notices", c.notices),
            ("marks", c.marks),
            ("names", c.names),
            ("roster", c.roster),
            ("sends", c.sends),
        ] {
            crate::metrics::store_entries(kind, n);
        }
    }
    crate::metrics::in_flight(state.bot.in_flight());
    let usage = state.bot.usage();
    for (api, n) in &usage.calls {
        if let Some(api) = crate::dingtalk::quota::BILLABLE_APIS
            .iter()
            .find(|a| **a == api.as_str())
        {
            crate::metrics::billable_calls(api, *n);
        }
    }
    crate::metrics::call_budget(usage.budget, usage.saving);
    if let Some(client) = &state.token {
        for api in client.stats().apis {
            crate::metrics::dingtalk_in_flight(api.api, api.in_flight);
        }
    }
    match crate::metrics::render() {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => super::error::AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_disabled",
            "metrics are disabled: another metrics recorder was installed in this process",
        )
        .into_response(),
    }
}
