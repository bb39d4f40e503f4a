//! Reminders and recalls through the API: `POST /api/v1/notices/{key}/reminders`
//! (direct messages: the API has no `sessionWebhook`, so no group @) and
//! `DELETE /api/v1/notices/{key}` (recall).

use super::rfc3339;
use crate::domain::{Member, ProcessQueryKey};
use crate::http::error::{AppError, InvalidField};
use crate::http::extract::{JsonObject, Path};
use crate::http::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

fn key_of(raw: String) -> Result<ProcessQueryKey, InvalidField> {
    ProcessQueryKey::parse(raw).map_err(InvalidField::domain("processQueryKey"))
}

fn ids(list: &[Member]) -> Vec<Value> {
    list.iter()
        .map(|m| json!({ "userId": m.user_id, "name": m.name }))
        .collect()
}

fn refused<'a>(list: &'a [Member], reason: &'static str) -> impl Iterator<Item = Value> + 'a {
    list.iter()
        .map(move |m| json!({ "userId": m.user_id, "name": m.name, "reason": reason }))
}

/// `POST /api/v1/notices/{key}/reminders` with `{"via":"dm"}`: a direct
/// message to each unread member; `202` with who was reminded and who
/// DingTalk refused (`invalid`, `flow_controlled`, `not_sent`).
pub(in crate::http) async fn create(
    State(state): State<AppState>,
    Path(key): Path<String>,
    JsonObject(body): JsonObject<Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let key = key_of(key)?;
    match body.get("via") {
        Some(Value::String(v)) if v == "dm" => {}
        Some(Value::String(v)) if v == "mention" => {
            return Err(InvalidField::new(
                "via",
                "only \"dm\": DingTalk lets a robot @ people only in a reply to a chat message, which the API has none of",
            )
            .into())
        }
        None | Some(Value::Null) => return Err(InvalidField::new("via", "is required (\"dm\")").into()),
        Some(_) => return Err(InvalidField::new("via", "must be \"dm\"").into()),
    }
    if let Some(other) = body.keys().find(|k| k.as_str() != "via") {
        return Err(AppError::bad_field(other, "unknown field"));
    }
    let out = state.bot.remind_via_api(&key).await?;
    let refused: Vec<Value> = refused(&out.invalid, "invalid")
        .chain(refused(&out.flow_controlled, "flow_controlled"))
        .chain(refused(&out.unsent, "not_sent"))
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "processQueryKey": key,
            "via": "dm",
            "unreadCount": out.unread,
            "reminded": ids(&out.reminded),
            "refused": refused,
        })),
    ))
}

/// `DELETE /api/v1/notices/{key}`: recalls the notice in the group and
/// marks it recalled (no more reminders). DingTalk's refusal is a `502`
/// `recall_failed` whose message carries its reason.
pub(in crate::http) async fn recall(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, AppError> {
    let key = key_of(key)?;
    let r = state.bot.recall(&key).await?;
    tracing::info!(group = %r.notice.group, "notice recalled");
    Ok(Json(json!({
        "processQueryKey": r.notice.key,
        "openConversationId": r.notice.group,
        "recalled": true,
        "recalledAt": rfc3339(r.at),
    })))
}
