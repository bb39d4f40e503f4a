//! Extractors that refuse with readbot's JSON error ([`AppError`]) instead of
//! axum's plain-text answers, so handlers take their inputs as plain
//! arguments and never map a rejection themselves.

use super::error::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// `axum::extract::Query`, refusing with readbot's JSON error.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path`, refusing with readbot's JSON error.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct Path<T>(pub T);

/// The raw request body; `413 body_too_large` beyond the router's limit,
/// naming the limit and the setting that raises it.
#[derive(Debug)]
pub struct Body(pub Bytes);

/// The router's body limit (`bot.max_body_bytes`), a request extension so
/// that a 413 can say it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let limit = req.extensions().get::<BodyLimit>().copied();
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) => {
                let mut e = AppError::from(rejection);
                if let (StatusCode::PAYLOAD_TOO_LARGE, Some(BodyLimit(n))) = (e.status, limit) {
                    e.message = too_large(n);
                }
                Err(e)
            }
        }
    }
}

/// The 413 sentence: the limit, and the setting that raises it.
fn too_large(limit: usize) -> String {
    format!(
        "the request body is larger than readbot's limit of {limit} bytes; \
         raise bot.max_body_bytes (READBOT_MAX_BODY_BYTES) to accept larger bodies"
    )
}

/// A JSON object body deserialized into `T`.
///
/// Like `axum::Json` it needs `Content-Type: application/json` (or a
/// `+json` type), else `415 unsupported_media_type`. A body that is not JSON,
/// or not an object, is a `400 invalid_json` whose message starts with `body`.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonObject<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with the header Content-Type: application/json",
            ));
        }
        let Body(bytes) = Body::from_request(req, state).await?;
        parse_json_object(&bytes).map(Self)
    }
}

/// `application/json`, `application/json; charset=utf-8` or any
/// `application/<something>+json`, as axum's `Json` accepts.
fn is_json_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(essence) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return false;
    };
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `bytes` as a JSON object, then into `T`.
///
/// The document is read into a [`Value`] first: serde_json's nesting limit
/// covers every field (unknown ones included), and a key given twice keeps
/// its last value, as it always has.
pub(super) fn parse_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let body: Value = serde_json::from_slice(bytes).map_err(|e| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("body is not valid JSON: {e}"),
        )
    })?;
    if !body.is_object() {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "body must be a JSON object",
        ));
    }
    serde_json::from_value(body).map_err(|e| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("body does not fit the request: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{is_json_content_type, too_large};

    #[test]
    fn the_413_sentence_names_the_limit_and_the_setting() {
        let s = too_large(65_536);
        assert!(s.contains("65536 bytes"), "{s}");
        assert!(s.contains("bot.max_body_bytes") && s.contains("READBOT_MAX_BODY_BYTES"));
    }
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types_are_recognised() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
        ] {
            assert!(
                is_json_content_type(Some(&HeaderValue::from_static(ok))),
                "{ok}"
            );
        }
        for bad in ["text/plain", "application/jsonx", "json", ""] {
            assert!(
                !is_json_content_type(Some(&HeaderValue::from_static(bad))),
                "{bad}"
            );
        }
        assert!(!is_json_content_type(None));
    }
}
