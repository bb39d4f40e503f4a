//! The HTTP surface (axum): the DingTalk callback, readbot's notices API,
//! health, readiness and metrics. Handlers translate HTTP to bot calls and
//! back; no business logic lives here.
//!
//! Router:
//! - `POST /dingtalk/callback` (HTTP mode only): signature checked by an
//!   extractor before the body is read;
//! - `/api/v1` (nested): the notices API and `GET /api/v1/usage` (the
//!   DingTalk call ledger), every route behind the bearer-token layer (`auth`);
//! - `GET /n/{token}` (+ `/csv`, `/json`): the notice page behind a signed
//!   link (`pages`), and `GET /g/{token}` the group page, only when a
//!   public URL is set;
//! - `GET /healthz`; `/metrics` and `/readyz` come from [`ops_router`];
//! - anything else: 404, and a known path with a wrong method 405 (with its
//!   `Allow` header), both in readbot's JSON error shape; a body over
//!   `bot.max_body_bytes` is a 413 naming the limit and the setting.
//!
//! Inputs come through [`extract`], whose rejections are [`error::AppError`]s.

mod auth;
mod callback;
pub mod error;
mod events;
pub mod extract;
mod notices;
pub mod ops;
mod pages;
pub mod serve;
mod usage;

pub use ops::{ops_router, OpsState};

use crate::bot::Bot;
use crate::config::Secret;
use crate::dingtalk::signature::Verifier;
use crate::dingtalk::stream::StatusHandle;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use std::sync::Arc;

/// Shared state of all routes.
#[derive(Clone)]
pub struct AppState {
    /// The bot.
    pub bot: Bot,
    /// Callback signature verifier (precomputed key).
    pub verifier: Arc<Verifier>,
    /// Bearer token of the notices API; `None` disables it.
    pub api_token: Option<Arc<Secret>>,
    /// Stream mode: the gateway connection's status (shown in `/healthz`).
    /// `None` in HTTP mode; in Stream mode the callback route is off.
    pub stream: Option<StatusHandle>,
    /// HTTP event push keys; `None` turns `POST /dingtalk/events` off (404).
    pub events: Option<Arc<crate::dingtalk::event_crypto::EventCrypto>>,
}

/// Builds the router. `max_body` bounds every request body (413 beyond).
pub fn router(state: AppState, max_body: usize) -> Router {
    let mut routes = Router::new();
    if state.stream.is_none() {
        routes = routes.route("/dingtalk/callback", post(callback::callback));
    }
    if state.events.is_some() {
        routes = routes.route("/dingtalk/events", post(events::events));
    }
    if state.bot.pages_enabled() {
        routes = routes
            .route("/n/{token}", get(pages::notice))
            .route("/n/{token}/csv", get(pages::csv))
            .route("/n/{token}/json", get(pages::json))
            .route("/g/{token}", get(pages::group));
    }
    routes
        .nest("/api/v1", api_router(state.clone()))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(extract::BodyLimit(max_body)))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<_>| {
                    // Path only: query strings may carry tokens.
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                },
            ),
        )
        .with_state(state)
}

/// readbot's own API, mounted at `/api/v1`. The token check is a route
/// layer: it runs for every route added here, before any extractor and
/// before a wrong method's 405 (unknown paths still get the 404 fallback).
/// The JSON 405 is set before the token layer so that the layer covers it
/// (set later, it would answer 405 without asking for the token).
fn api_router(state: AppState) -> Router<AppState> {
    let mut api = Router::new();
    if state.bot.pages_enabled() {
        api = api
            .route("/notices/{key}/links", post(notices::links))
            .route("/groups/{group}/links", post(notices::group_links));
    }
    api.route("/notices", post(notices::create).get(notices::list))
        .route("/notices/{key}/receipts", get(notices::receipts))
        .route("/usage", get(usage::usage))
        .method_not_allowed_fallback(method_not_allowed)
        .route(
            "/notices/{key}",
            delete(notices::remind::recall).get(notices::follow_ups::show),
        )
        .route(
            "/notices/{key}/follow-ups/{id}",
            delete(notices::follow_ups::cancel),
        )
        .route("/notices/{key}/reminders", post(notices::remind::create))
        .route_layer(middleware::from_fn_with_state(
            state,
            auth::require_api_token,
        ))
}

/// Liveness (always 200 while serving), the receive mode, in Stream mode
/// the gateway connection (`state`: connecting, connected, backoff, ...),
/// and event intake (`events`: up since, verified, last gap).
async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    let events = state.bot.push_status().await;
    match &state.stream {
        None => Json(serde_json::json!({ "status": "ok", "mode": "http", "events": events })),
        Some(s) => Json(serde_json::json!({
            "status": "ok",
            "mode": "stream",
            "stream": s.snapshot(),
            "events": events,
        })),
    }
}

/// Unknown paths get the same JSON error shape as everything else.
async fn not_found() -> error::AppError {
    error::AppError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such route",
    )
}

/// Gives every route registered so far (the main router's and the merged
/// `ops_router`'s) a 405 in readbot's JSON error shape for a method it does
/// not serve; axum still adds the `Allow` header. Call it last, on the whole
/// router.
pub fn with_json_method_not_allowed(router: Router) -> Router {
    router.method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed(method: axum::http::Method) -> error::AppError {
    error::AppError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take {method}; the Allow header lists the methods it takes"),
    )
}
