//! readbot's own API: send notices, list them, read their receipts.
//! Mounted under `/api/v1` behind the bearer-token layer ([`super::auth`]);
//! handlers take checked inputs from [`request`] and call the [`Bot`](crate::bot::Bot).

pub(super) mod follow_ups;
pub(super) mod remind;
mod request;

use request::{ListQuery, NoticeListing, SendNoticeRequest};

use super::error::AppError;
use super::extract::{JsonObject, Path, Query};
use super::AppState;
use crate::bot::send::SentNotice;
use crate::bot::NewNotice;
use crate::domain::{EpochMillis, IdempotencyKey, Member, Notice, ProcessQueryKey};
use crate::http::error::InvalidField;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
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

/// The `Idempotency-Key` request header (checked), or a fresh key.
fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, AppError> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(crate::bot::send::generate_key()),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| InvalidField::new(IDEMPOTENCY_KEY, "must be printable ASCII"))?;
            Ok(IdempotencyKey::parse(text).map_err(InvalidField::domain(IDEMPOTENCY_KEY))?)
        }
    }
}

/// The request header naming one intended send.
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// `POST /api/v1/notices`: records the intent under the `Idempotency-Key`
/// (given, or generated), sends the notice, records it, `201`. A retry with
/// the same key and notice answers the recorded notice (`201`,
/// `Idempotent-Replayed: true`) without sending again.
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonObject(mut req): JsonObject<SendNoticeRequest>,
) -> Result<(StatusCode, [(&'static str, &'static str); 1], Json<Value>), AppError> {
    let key = idempotency_key(&headers)?;
    let planned = req.take_follow_ups()?;
    let new = NewNotice::try_from(req)?;
    state.bot.check_follow_ups(&planned)?;
    let sent = state.bot.send_notice_once(new, key.clone()).await?;
    // Stored after the send (they need DingTalk's key); ids come from the
    // idempotency key, so a retry stores the same ones, never more.
    let follow_ups = match state
        .bot
        .add_planned_follow_ups(sent.notice(), &planned, key.as_str())
        .await
    {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "notice sent but its follow-ups not stored");
            return Err(AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "follow_ups_not_stored",
                format!(
                    "DingTalk accepted the notice (processQueryKey {}) but readbot could not store its follow-ups; \
                     retry with Idempotency-Key {key} to store them (the notice is not sent again)",
                    sent.notice().key
                ),
            ));
        }
    };
    let replayed = matches!(sent, SentNotice::Replayed(_));
    let notice = sent.notice();
    if replayed {
        tracing::info!(group = %notice.group, "retried send answered from the record; nothing sent");
    } else {
        tracing::info!(group = %notice.group, "notice sent and recorded");
    }
    Ok((
        StatusCode::CREATED,
        [(
            "idempotent-replayed",
            if replayed { "true" } else { "false" },
        )],
        Json(json!({
            "processQueryKey": notice.key,
            "openConversationId": notice.group,
            "sentAt": rfc3339(notice.sent_at),
            "idempotencyKey": key,
            "followUps": follow_ups.iter().map(follow_ups::follow_up_json).collect::<Vec<_>>(),
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

/// `POST /api/v1/notices/{processQueryKey}/links`: a signed link to the
/// notice's page (`201`; the route exists only when a public URL is set).
pub(super) async fn links(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let key = ProcessQueryKey::parse(key).map_err(InvalidField::domain("processQueryKey"))?;
    let Some(link) = state.bot.mint_notice_link(&key).await? else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "pages_off",
            "no public URL is set (READBOT_PUBLIC_URL), so readbot serves no pages",
        ));
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "processQueryKey": key,
            "url": link.url,
            "expiresAt": rfc3339(link.expires_at),
        })),
    ))
}

/// `POST /api/v1/groups/{openConversationId}/links`: a signed link to the
/// group's page (`201`; the route exists only when a public URL is set).
pub(super) async fn group_links(
    State(state): State<AppState>,
    Path(group): Path<String>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let group = crate::domain::OpenConversationId::parse(group)
        .map_err(InvalidField::domain("openConversationId"))?;
    let Some(link) = state.bot.mint_group_link(&group).await? else {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "pages_off",
            "no public URL is set (READBOT_PUBLIC_URL), so readbot serves no pages",
        ));
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "openConversationId": group,
            "url": link.url,
            "expiresAt": rfc3339(link.expires_at),
        })),
    ))
}
