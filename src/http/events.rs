//! `POST /dingtalk/events`: DingTalk's HTTP event push (read and recall
//! events, and the subscription's `check_url` handshake). On only when
//! `DINGTALK_EVENT_TOKEN` and `DINGTALK_EVENT_AES_KEY` are set.
//!
//! The signature (and the timestamp window) is checked before anything is
//! decrypted; a refused push records nothing. Every accepted push, the
//! handshake included, is answered with the encrypted `success` that
//! DingTalk expects; a store failure answers 503, so DingTalk retries.

use super::error::AppError;
use super::extract::Body;
use super::AppState;
use crate::dingtalk::events;
use crate::domain::now_millis;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub(super) async fn events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    Body(body): Body,
) -> Result<Response, AppError> {
    let Some(crypto) = state.events.as_ref() else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route",
        ));
    };
    let opened = crypto
        .open(query.as_deref().unwrap_or_default(), &body, now_millis())
        .map_err(|e| {
            tracing::warn!(reason = %e, "event push refused");
            if e.is_auth() {
                crate::metrics::event_push_refused("signature");
                AppError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    format!("event push refused: {e}"),
                )
            } else {
                crate::metrics::event_push_refused("bad_request");
                AppError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("event push refused: {e}"),
                )
            }
        })?;
    match events::parse_push(&opened.message) {
        Ok(event) => {
            if event == events::PushEvent::CheckUrl {
                tracing::info!("event push: URL check answered");
            }
            if state.bot.on_event(&event, "http").await.is_err() {
                return Err(AppError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the event could not be stored; retry later",
                ));
            }
        }
        Err(e) => {
            // Authentic but unusable: answering success stops useless retries.
            crate::metrics::event("other", "http", "bad_payload");
            tracing::warn!(error = %e, "unreadable pushed event dropped");
        }
    }
    Ok(Json(crypto.success_now(now_millis())).into_response())
}
