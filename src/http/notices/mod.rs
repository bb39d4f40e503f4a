//! readbot's own API: send notices, list them, read their receipts.
//! Every route needs `Authorization: Bearer <READBOT_API_TOKEN>`.

use super::error::AppError;
use super::AppState;
use crate::bot::{BotError, NewNotice};
use crate::dingtalk::OutgoingMessage;
use crate::domain::{EpochMillis, Member, Notice, OpenConversationId, ProcessQueryKey, UserId};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

/// DingTalk's limit for `msgParam`.
const MAX_MSG_PARAM_BYTES: usize = 15_000;
const MAX_TITLE_CHARS: usize = 200;

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let Some(expected) = &state.api_token else {
        return Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_disabled",
            "readbot's API is disabled: set READBOT_API_TOKEN to enable it",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
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

fn rfc3339(ms: EpochMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn bot_error(e: BotError) -> AppError {
    match e {
        BotError::DingTalk(d) => {
            tracing::warn!(error = %d, "DingTalk refused");
            AppError::new(StatusCode::BAD_GATEWAY, d.code_str(), d.message_str())
        }
        BotError::NoticeNotFound => AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no notice is recorded under that processQueryKey",
        ),
        other => AppError::internal(other),
    }
}

fn str_field<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, AppError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(AppError::bad_field(field, "must be a string")),
    }
}

fn required<'a>(body: &'a Value, field: &str) -> Result<&'a str, AppError> {
    match str_field(body, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(AppError::bad_field(field, "is required")),
    }
}

fn short_title(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let first = first.trim_start_matches('#').trim();
    first.chars().take(50).collect()
}

/// Parses the create body into a notice to send (all checks before any call).
fn parse_new_notice(bytes: &[u8]) -> Result<NewNotice, AppError> {
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
    let group = OpenConversationId::parse(required(&body, "openConversationId")?)
        .map_err(|e| AppError::bad_field("openConversationId", e))?;
    let author = str_field(&body, "author")?
        .map(|a| UserId::parse(a).map_err(|e| AppError::bad_field("author", e)))
        .transpose()?;
    let author_name = str_field(&body, "authorName")?.map(|s| s.chars().take(100).collect());
    let title_field = str_field(&body, "title")?;

    let (message, title) = if let Some(msg_key) = str_field(&body, "msgKey")? {
        if msg_key.is_empty()
            || msg_key.len() > 64
            || !msg_key.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(AppError::bad_field(
                "msgKey",
                "must be a DingTalk message key such as sampleActionCard",
            ));
        }
        let param = match body.get("msgParam") {
            Some(Value::Object(_)) => body["msgParam"].clone(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(AppError::bad_field(
                        "msgParam",
                        "must be a JSON object (or a string holding one)",
                    ))
                }
            },
            None | Some(Value::Null) => {
                return Err(AppError::bad_field("msgParam", "is required with msgKey"))
            }
            Some(_) => {
                return Err(AppError::bad_field(
                    "msgParam",
                    "must be a JSON object (or a string holding one)",
                ))
            }
        };
        let title = title_field
            .map(str::to_owned)
            .or_else(|| {
                param
                    .get("title")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| msg_key.to_owned());
        (
            OutgoingMessage {
                msg_key: msg_key.to_owned(),
                msg_param: param,
            },
            title,
        )
    } else {
        let msgtype = str_field(&body, "msgtype")?.unwrap_or("markdown");
        let text = required(&body, "text")?;
        match msgtype {
            "markdown" => {
                let title = required(&body, "title")?;
                (OutgoingMessage::markdown(title, text), title.to_owned())
            }
            "text" => {
                let title = title_field.map(str::to_owned).unwrap_or_else(|| short_title(text));
                (OutgoingMessage::text(text), title)
            }
            other => {
                return Err(AppError::bad_field(
                    "msgtype",
                    format!("{other:?} is not supported: use \"markdown\" or \"text\" (or msgKey + msgParam)"),
                ))
            }
        }
    };
    let title = title.trim().to_owned();
    if title.is_empty() {
        return Err(AppError::bad_field("title", "must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(AppError::bad_field(
            "title",
            format!("is longer than {MAX_TITLE_CHARS} characters"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(AppError::bad_field("title", "contains control characters"));
    }
    let param_len = message.msg_param.to_string().len();
    if param_len > MAX_MSG_PARAM_BYTES {
        let field = if body.get("msgKey").is_some() {
            "msgParam"
        } else {
            "text"
        };
        return Err(AppError::bad_field(
            field,
            format!("message is {param_len} bytes; DingTalk accepts at most {MAX_MSG_PARAM_BYTES}"),
        ));
    }
    Ok(NewNotice {
        group,
        title,
        message,
        author,
        author_name,
    })
}

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    authorize(&state, &headers)?;
    let body = body.map_err(AppError::rejected)?;
    let new = parse_new_notice(&body)?;
    let notice = state.bot.send_notice(new).await.map_err(bot_error)?;
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListQuery {
    open_conversation_id: Option<String>,
    limit: Option<String>,
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

pub(super) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers)?;
    let Query(q) = q.map_err(AppError::rejected)?;
    let group = q
        .open_conversation_id
        .ok_or_else(|| AppError::bad_field("openConversationId", "is required"))
        .and_then(|g| {
            OpenConversationId::parse(g).map_err(|e| AppError::bad_field("openConversationId", e))
        })?;
    let limit = match q.limit {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => {
                return Err(AppError::bad_field(
                    "limit",
                    "must be a number from 1 to 500",
                ))
            }
        },
    };
    let notices = state
        .bot
        .store()
        .notices_in_group(&group, limit)
        .await
        .map_err(AppError::internal)?;
    Ok(Json(json!({
        "notices": notices.iter().map(notice_json).collect::<Vec<_>>()
    })))
}

fn people(list: &[Member]) -> Vec<Value> {
    list.iter()
        .map(|m| json!({ "userId": m.user_id, "name": m.name }))
        .collect()
}

pub(super) async fn receipts(
    State(state): State<AppState>,
    headers: HeaderMap,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, AppError> {
    authorize(&state, &headers)?;
    let Path(key) = key.map_err(AppError::rejected)?;
    let key = ProcessQueryKey::parse(key).map_err(|e| AppError::bad_field("processQueryKey", e))?;
    let r = state.bot.receipts(&key).await.map_err(bot_error)?;
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
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        parse_new_notice(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn validation_names_the_field() {
        assert!(err("nope").contains("not valid JSON"));
        assert!(err("[1]").contains("JSON object"));
        assert!(err(r#"{"title":"t","text":"x"}"#).starts_with("openConversationId"));
        assert!(err(r#"{"openConversationId":"c","text":"x"}"#).starts_with("title"));
        assert!(err(r#"{"openConversationId":"c","title":"t"}"#).starts_with("text"));
        assert!(
            err(r#"{"openConversationId":"c","title":"t","text":"x","msgtype":"video"}"#)
                .starts_with("msgtype")
        );
        assert!(err(r#"{"openConversationId":5,"title":"t","text":"x"}"#)
            .starts_with("openConversationId"));
        assert!(err(r#"{"openConversationId":"c","msgKey":"sampleLink"}"#).starts_with("msgParam"));
        let big = "x".repeat(15_001);
        assert!(err(&format!(
            r#"{{"openConversationId":"c","title":"t","text":"{big}"}}"#
        ))
        .starts_with("text"));
        assert!(parse_new_notice(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn accepts_markdown_text_and_raw() {
        let n = parse_new_notice(
            br#"{"openConversationId":"cid1==","title":"Weekly","text":"hi","author":"u1"}"#,
        )
        .unwrap();
        assert_eq!(n.message.msg_key, "sampleMarkdown");
        assert_eq!(n.title, "Weekly");
        let n = parse_new_notice(br#"{"openConversationId":"c","msgtype":"text","text":"\n# Meeting at 10\nbring laptops"}"#).unwrap();
        assert_eq!(n.title, "Meeting at 10");
        let n = parse_new_notice(br#"{"openConversationId":"c","msgKey":"sampleLink","msgParam":"{\"title\":\"L\",\"text\":\"t\",\"messageUrl\":\"https://x\",\"picUrl\":\"\"}"}"#).unwrap();
        assert_eq!(n.title, "L");
        assert_eq!(n.message.msg_key, "sampleLink");
    }
}
