//! `POST /dingtalk/callback`: signed @mentions from DingTalk (HTTP mode).
//!
//! Order matters: the signature is checked (the `Signed` extractor) before
//! the body is even read, so a forged request causes no parse, no write and
//! no outbound call.

use super::error::AppError;
use super::extract::Body;
use super::AppState;
use crate::bot::Accepted;
use crate::dingtalk::callback::{self, CallbackError};
use crate::domain::now_millis;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Proof that the request's `timestamp` and `sign` headers pass the
/// verifier, carrying the signed millisecond timestamp; otherwise
/// `401 bad_signature`. An extractor of the request's head: it runs before
/// the body is read.
pub(super) struct Signed(i64);

impl FromRequestParts<AppState> for Signed {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let h = &parts.headers;
        match state.verifier.verified_timestamp(
            header(h, "timestamp"),
            header(h, "sign"),
            now_millis(),
        ) {
            Ok(ts) => Ok(Self(ts)),
            Err(e) => {
                tracing::warn!(reason = %e, "callback refused");
                crate::metrics::callback("bad_signature");
                Err(AppError::new(
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    format!("callback refused: {e}"),
                ))
            }
        }
    }
}

/// Signature first (the [`Signed`] extractor), then the body, then the
/// signature's binding to the body's msgId ([`crate::bot::Bot::accept_signed`]:
/// a replayed pair with a new body is `401 replayed_signature`).
pub(super) async fn callback(
    State(state): State<AppState>,
    Signed(timestamp): Signed,
    Body(body): Body,
) -> Result<Response, AppError> {
    let msg = match callback::parse(&body) {
        Ok(m) => m,
        Err(CallbackError::QuotaExhausted(detail)) => {
            tracing::warn!(%detail, "DingTalk reports the robot quota is exhausted");
            crate::metrics::callback("quota_exhausted");
            return Ok(empty_reply());
        }
        Err(e) => {
            crate::metrics::callback("bad_body");
            return Err(AppError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                e.to_string(),
            ));
        }
    };
    match state.bot.accept_signed(msg, timestamp).await {
        Ok(Accepted::Started) => crate::metrics::callback("accepted"),
        Ok(Accepted::Duplicate) => {
            crate::metrics::callback("duplicate");
            tracing::info!("duplicate delivery ignored")
        }
        Ok(Accepted::Busy) => {
            crate::metrics::callback("busy");
            tracing::warn!("answer queue full; callback refused");
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many messages are waiting for an answer; try again later",
            ));
        }
        Ok(Accepted::GroupBusy) => {
            crate::metrics::callback("group_busy");
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many messages of this group are waiting for an answer; try again later",
            ));
        }
        Ok(Accepted::Replayed) => {
            // Logged (at most once a minute) by the bot.
            crate::metrics::callback("replayed");
            return Err(AppError::new(
                StatusCode::UNAUTHORIZED,
                "replayed_signature",
                "callback refused: this signature already came with other messages",
            ));
        }
        Ok(Accepted::ShuttingDown) => {
            crate::metrics::callback("shutting_down");
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "readbot is shutting down",
            ));
        }
        Err(e) => {
            // Nothing was claimed: 503, so that DingTalk (or the caller)
            // retries once the store writes again.
            crate::metrics::callback("error");
            tracing::error!(error = %e.with_causes(), "cannot claim the message; callback refused");
            return Err(AppError::store_unavailable());
        }
    }
    Ok(empty_reply())
}

/// DingTalk's "no synchronous reply" body: answers go out separately. A
/// constant, not a serialized value (this is the hot path).
fn empty_reply() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"msgtype":"empty"}"#,
    )
        .into_response()
}
