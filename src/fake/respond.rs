//! Answers shared by the fake's HTTP endpoints (`server.rs`) and the Stream
//! gateway's open call (`gateway.rs`): the new-API error JSON, the old-API
//! `errcode` body, injected faults and latency, and the JSON request body.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::state::request_id;
use super::{Api, FakeDingTalk, Fault};

/// A new-API error: non-2xx with `{"code","message","requestid"}`.
#[derive(Debug)]
pub(super) struct ApiErr {
    pub(super) status: StatusCode,
    pub(super) code: String,
    pub(super) message: String,
}

impl ApiErr {
    pub(super) fn new(status: StatusCode, code: &str, message: &str) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// HTTP 400 with `code` and `message`.
pub(super) fn bad(code: &str, message: &str) -> ApiErr {
    ApiErr::new(StatusCode::BAD_REQUEST, code, message)
}

fn with_request_id(mut resp: Response, rid: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(rid) {
        resp.headers_mut().insert("x-acs-request-id", v.clone());
        resp.headers_mut().insert("x-acs-trace-id", v);
    }
    resp
}

/// A new-API answer: the JSON body, or the error JSON with its status; both
/// carry the request id headers.
pub(super) fn new_api_response(rid: &str, result: Result<Value, ApiErr>) -> Response {
    let resp = match result {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(e) => {
            tracing::debug!(code = %e.code, status = %e.status, "fake DingTalk error answer");
            let body = json!({ "code": e.code, "message": e.message, "requestid": rid });
            (e.status, axum::Json(body)).into_response()
        }
    };
    with_request_id(resp, rid)
}

/// An old-API answer: HTTP 200 with `{"errcode","errmsg"}`.
pub(super) fn old_api(errcode: i64, errmsg: &str) -> Response {
    axum::Json(json!({ "errcode": errcode, "errmsg": errmsg })).into_response()
}

fn fault_response(fault: Fault) -> Response {
    let rid = request_id();
    match fault {
        Fault::Status {
            status,
            code,
            message,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            new_api_response(&rid, Err(ApiErr::new(status, &code, &message)))
        }
        Fault::GatewayTimeout => new_api_response(
            &rid,
            Err(ApiErr::new(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "The request has timed out.",
            )),
        ),
        Fault::Truncated => {
            let body = format!("{{\"requestid\":\"{rid}\",\"result\":{{\"list\":[{{\"id\":\"");
            let resp = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
                body,
            )
                .into_response();
            with_request_id(resp, &rid)
        }
        Fault::NotJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html;charset=utf-8")],
            "<!DOCTYPE html><html><head><title>访问被拒绝</title></head>\
             <body><h1>Access denied</h1><p>Too many requests from your IP.</p></body></html>",
        )
            .into_response(),
        Fault::OldApiErr { errcode, errmsg } => old_api(errcode, &errmsg),
        // Handled by the caller (sleep, then answer normally).
        Fault::Hang(_) => StatusCode::OK.into_response(),
    }
}

/// Counts the call, applies latency and faults. `Some` is the whole answer.
pub(super) async fn prelude(fake: &FakeDingTalk, api: Api) -> Option<Response> {
    let (latency, fault) = fake.lock().begin_call(api);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault? {
        Fault::Hang(d) => {
            tokio::time::sleep(d).await;
            None
        }
        fault => Some(fault_response(fault)),
    }
}

/// Whether the request says its body is JSON.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        })
}

fn missing_body() -> ApiErr {
    bad("Missingbody", "body is mandatory for this action.")
}

/// The JSON object of a new-API request (JSON is mandatory).
pub(super) fn json_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiErr> {
    if !is_json(headers) {
        return Err(missing_body());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(missing_body()),
    }
}
