//! readbot's own API: send notices, list them, read their receipts.
//! Mounted under `/api/v1` behind the bearer-token layer ([`super::auth`]);
//! handlers take checked inputs from [`request`] and call the [`Bot`](crate::bot::Bot).

pub(super) mod remind;
mod request;

use request::{ListQuery, NoticeListing, SendNoticeRequest};

use super::error::AppError;
use super::extract::{JsonObject, Path, Query};
use super::AppState;
use crate::bot::NewNotice;
use crate::domain::{EpochMillis, Member, Notice, ProcessQueryKey};
use crate::http::error::InvalidField;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

fn rfc3339(ms: EpochMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `POST /api/v1/notices`: sends the notice, records it, `201`.
pub(super) async fn create(
    State(state): State<AppState>,
    JsonObject(req): JsonObject<SendNoticeRequest>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let new = NewNotice::try_from(req)?;
    let notice = state.bot.send_notice(new).await?;
    tracing::info!(group = %notice.group, "notice sent and recorded");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "processQueryKey": notice.key,
            "openConversationId": notice.group,
            "sentAt": rfc3339(notice.sent_at),
        })),
    ))
}

fn notice_json(n: &Notice) -> Value {
    json!({
        "processQueryKey": n.key,
        "openConversationId": n.group,
        "robotCode": n.robot_code,
        "title": n.title,
        "author": n.author,
        "authorName": n.author_name,
        "msgKey": n.msg_key,
        "sentAt": rfc3339(n.sent_at),
    })
}

/// `GET /api/v1/notices?openConversationId=…&limit=…`: a group's notices,
/// newest first.
pub(super) async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AppError> {
    let NoticeListing { group, limit } = q.try_into()?;
    let notices = state.bot.notices(&group, limit).await?;
    Ok(Json(json!({
        "notices": notices.iter().map(notice_json).collect::<Vec<_>>()
    })))
}

fn people(list: &[Member]) -> Vec<Value> {
    list.iter()
        .map(|m| json!({ "userId": m.user_id, "name": m.name }))
        .collect()
}

/// `GET /api/v1/notices/{processQueryKey}/receipts`: who has read it.
pub(super) async fn receipts(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, AppError> {
    let key = ProcessQueryKey::parse(key).map_err(InvalidField::domain("processQueryKey"))?;
    let r = state.bot.receipts(&key).await?;
    Ok(Json(json!({
        "processQueryKey": r.notice.key,
        "openConversationId": r.notice.group,
        "title": r.notice.title,
        "sendStatus": r.send_status.as_str(),
        "readCount": r.read_count,
        "unreadCount": r.unread.len(),
        "memberCount": r.member_count,
        "rosterSource": r.roster_source.as_str(),
        "rosterComplete": r.roster_complete,
        "pages": r.pages,
        "truncated": r.truncated,
        "read": people(&r.read),
        "unread": people(&r.unread),
        "readsFrom": r.reads_from.as_str(),
        "readTimes": r.read_times.iter().map(|t| json!({
            "userId": t.user_id,
            "readAt": t.at,
            "source": t.source.as_str(),
        })).collect::<Vec<_>>(),
        "timeline": crate::bot::summary::timeline(&r.read_times, r.notice.sent_at),
    })))
}
