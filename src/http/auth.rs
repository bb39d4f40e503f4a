//! The bearer-token check of readbot's API (`/api/v1`), applied once as a
//! layer on the API's router: a route added there cannot skip it.
//!
//! It runs after routing and before the handler's extractors, so a request
//! without the right token gets its 401 before its body is read or checked,
//! and before a wrong method on a known path is answered 405. Unknown paths
//! (404) do not reach it.

use super::error::AppError;
use super::AppState;
use crate::config::Secret;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

/// Middleware: lets the request through only with
/// `Authorization: Bearer <READBOT_API_TOKEN>`; 503 `api_disabled` when no
/// token is configured, 401 `unauthorized` otherwise.
pub(super) async fn require_api_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    check(state.api_token.as_deref(), req.headers())?;
    Ok(next.run(req).await)
}

/// Compares the bearer token with `expected` in constant time.
fn check(expected: Option<&Secret>, headers: &HeaderMap) -> Result<(), AppError> {
    let Some(expected) = expected else {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_disabled",
            "readbot's API is disabled: set READBOT_API_TOKEN to enable it",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.expose().as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        ))
    }
}
