//! One error type for every route, rendered as `{"error":{"code","message"}}`.

use crate::bot::BotError;
use crate::domain::DomainError;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::borrow::Cow;

/// An error answer of readbot's HTTP surface.
#[derive(Debug)]
pub struct AppError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: String,
    /// Human-readable sentence.
    pub message: String,
}

impl AppError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
    /// 400 naming the field at fault.
    pub fn bad_field(field: &str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("{field}: {problem}"),
        )
    }
    /// 500 for readbot's own failures (details only in the log).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "readbot hit an internal error; see its log",
        )
    }
    /// 503 `store_unavailable`: the store cannot record the work right now
    /// (nothing was done; retry later). The cause goes only to the log.
    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "readbot cannot write its data folder right now; nothing was done; retry later",
        )
    }
}

impl AppError {
    /// The JSON error for an axum extractor rejection (body too large, bad
    /// query string or path), instead of axum's plain-text answer.
    pub fn rejected(rejection: impl IntoResponse + std::fmt::Display) -> Self {
        let message = rejection.to_string();
        let status = rejection.into_response().status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_request"
        };
        Self::new(status, code, message)
    }
}

impl From<BytesRejection> for AppError {
    fn from(r: BytesRejection) -> Self {
        Self::rejected(r)
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        Self::rejected(r)
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        Self::rejected(r)
    }
}

/// DingTalk's refusals pass through as 502 with DingTalk's code and message;
/// an unknown notice is 404; a failing store is 503 (retry later); anything
/// else is readbot's own failure (500).
impl From<BotError> for AppError {
    fn from(e: BotError) -> Self {
        match e {
            BotError::DingTalk(d) => {
                tracing::warn!(error = %d, "DingTalk refused");
                Self::new(StatusCode::BAD_GATEWAY, d.code_str(), d.message_str())
            }
            BotError::NoticeNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no notice is recorded under that processQueryKey",
            ),
            BotError::GroupNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "readbot knows no group with that openConversationId (no notice sent there, no @mention seen)",
            ),
            BotError::Remind(stop) => {
                use crate::bot::remind::Stop;
                let (status, code) = match &stop {
                    Stop::Cooldown { .. } => (StatusCode::TOO_MANY_REQUESTS, "cooldown"),
                    Stop::InProgress => (StatusCode::CONFLICT, "in_progress"),
                    Stop::Recalled => (StatusCode::CONFLICT, "recalled"),
                    Stop::NoRoster => (StatusCode::CONFLICT, "no_roster"),
                    Stop::NotAllowed { .. } => (StatusCode::FORBIDDEN, "not_allowed"),
                    Stop::RecallFailed(_) => (StatusCode::BAD_GATEWAY, "recall_failed"),
                };
                Self::new(status, code, stop.to_string())
            }
            BotError::SendPending => Self::new(
                StatusCode::CONFLICT,
                "idempotency_pending",
                "a send with this Idempotency-Key is in progress, or its outcome is unknown; \
                 nothing was sent now (use a new key to send again)",
            ),
            BotError::IdempotencyKeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different notice",
            ),
            BotError::SentNotRecorded { key, source } => {
                tracing::error!(error = %source.with_causes(), %key, "sent but not recorded");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "sent_not_recorded",
                    format!(
                        "DingTalk accepted the notice (processQueryKey {key}) but readbot could not record it; \
                         do not send it again (a retry with the same Idempotency-Key is refused)"
                    ),
                )
            }
            BotError::InvalidFollowUp { field, refusal } => Self::bad_field(&field, refusal),
            BotError::FollowUpNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "the notice has no follow-up with that id",
            ),
            BotError::FollowUpNotPending(state) => Self::new(
                StatusCode::CONFLICT,
                "not_pending",
                format!(
                    "the follow-up is {}; only a pending one can be cancelled",
                    state.as_str()
                ),
            ),
            BotError::Store(e) => {
                tracing::error!(error = %e.with_causes(), "store failed; request refused");
                Self::store_unavailable()
            }
            other => Self::internal(other),
        }
    }
}

/// A request field readbot refuses: a 400 `invalid_field` whose message
/// starts with the field's name as the client spells it.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    /// The field's name in the request (`openConversationId`, `limit`, ...).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: FieldProblem,
}

/// What is wrong with a refused field.
#[derive(Debug, thiserror::Error)]
pub enum FieldProblem {
    /// Not a well-formed domain value (empty, too long, control characters).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Breaks one of the API's own rules.
    #[error("{0}")]
    Rule(Cow<'static, str>),
}

impl InvalidField {
    /// `field` breaks the rule described by `problem`.
    pub fn new(field: &'static str, problem: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field,
            problem: FieldProblem::Rule(problem.into()),
        }
    }

    /// Maps a domain parse error of `field` (for `map_err`).
    pub fn domain(field: &'static str) -> impl FnOnce(DomainError) -> Self {
        move |e| Self {
            field,
            problem: FieldProblem::Domain(e),
        }
    }
}

impl From<InvalidField> for AppError {
    fn from(e: InvalidField) -> Self {
        Self::bad_field(e.field, e.problem)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
