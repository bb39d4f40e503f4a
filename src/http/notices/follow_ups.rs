//! A notice with its reminders and follow-ups (`GET /api/v1/notices/{key}`)
//! and the cancel of one follow-up (`DELETE /api/v1/notices/{key}/follow-ups/{id}`).

use super::{notice_json, rfc3339};
use crate::domain::{FollowUp, FollowUpId, ProcessQueryKey};
use crate::http::error::{AppError, InvalidField};
use crate::http::extract::Path;
use crate::http::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// A follow-up as the API shows it. `firing` (being sent right now) is
/// shown as `pending`: it has not fired yet.
pub(in crate::http) fn follow_up_json(f: &FollowUp) -> Value {
    let state = match f.state {
        crate::domain::FollowUpState::Firing => "pending",
        s => s.as_str(),
    };
    json!({
        "id": f.id,
        "at": rfc3339(f.at),
        "action": f.action.as_str(),
        "state": state,
        "by": f.by,
        "changedAt": rfc3339(f.changed_at),
        "note": f.note,
    })
}

/// `GET /api/v1/notices/{key}`: the notice, its reminders, its follow-ups
/// (each with its state) and its recall time.
pub(in crate::http) async fn show(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, AppError> {
    let key = ProcessQueryKey::parse(key).map_err(InvalidField::domain("processQueryKey"))?;
    let d = state.bot.notice_detail(&key).await?;
    let mut out = notice_json(&d.notice);
    if let Value::Object(map) = &mut out {
        map.insert(
            "reminders".into(),
            d.reminders
                .iter()
                .map(|r| {
                    json!({
                        "at": rfc3339(r.at),
                        "by": r.by,
                        "count": r.count,
                        "via": r.via.as_str(),
                    })
                })
                .collect(),
        );
        map.insert(
            "followUps".into(),
            d.follow_ups.iter().map(follow_up_json).collect(),
        );
        map.insert("recalled".into(), d.recalled_at.is_some().into());
        map.insert(
            "recalledAt".into(),
            d.recalled_at.map(rfc3339).map_or(Value::Null, Value::from),
        );
    }
    Ok(Json(out))
}

/// `DELETE /api/v1/notices/{key}/follow-ups/{id}`: cancels a pending
/// follow-up (`404` unknown, `409` no longer pending).
pub(in crate::http) async fn cancel(
    State(state): State<AppState>,
    Path((key, id)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let key = ProcessQueryKey::parse(key).map_err(InvalidField::domain("processQueryKey"))?;
    let id = FollowUpId::parse(id).map_err(InvalidField::domain("id"))?;
    let f = state.bot.cancel_follow_up(&key, &id).await?;
    tracing::info!(id = %f.id, "follow-up cancelled");
    Ok(Json(follow_up_json(&f)))
}
