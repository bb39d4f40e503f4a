//! The API's request types and their parsing into bot inputs (parse, don't
//! validate): a [`NewNotice`] or a [`NoticeListing`] exists only once every
//! check has passed, each refusal naming its field ([`InvalidField`]).

use crate::bot::follow_up::{PlannedFollowUp, MAX_PER_NOTICE};
use crate::bot::NewNotice;
use crate::dingtalk::OutgoingMessage;
use crate::domain::{FollowUpAction, OpenConversationId, UserId};
use crate::http::error::{AppError, InvalidField};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// DingTalk's limit for `msgParam`.
const MAX_MSG_PARAM_BYTES: usize = 15_000;
const MAX_TITLE_CHARS: usize = 200;
const MAX_AUTHOR_NAME_CHARS: usize = 100;
/// A title made from a text message's first line keeps this many characters.
const SHORT_TITLE_CHARS: usize = 50;
/// Notices listed when the query gives no `limit`.
const DEFAULT_LIST_LIMIT: usize = 50;
const MAX_LIST_LIMIT: usize = 500;

/// A body field meant to be a string, kept whatever its JSON type so the
/// refusal can name the field (serde's own "invalid type" sentence cannot).
#[derive(Debug, Default)]
enum StringField {
    /// Missing or `null`.
    #[default]
    Absent,
    /// A string.
    Given(String),
    /// Any other JSON type.
    NotAString,
}

impl<'de> Deserialize<'de> for StringField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => Self::Absent,
            Value::String(s) => Self::Given(s),
            _ => Self::NotAString,
        })
    }
}

impl StringField {
    /// The string, if one was given; any other type is refused.
    fn optional(self, field: &'static str) -> Result<Option<String>, InvalidField> {
        match self {
            Self::Absent => Ok(None),
            Self::Given(s) => Ok(Some(s)),
            Self::NotAString => Err(InvalidField::new(field, "must be a string")),
        }
    }

    /// A non-blank string.
    fn required(self, field: &'static str) -> Result<String, InvalidField> {
        match self.optional(field)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(InvalidField::new(field, "is required")),
        }
    }
}

/// The body of `POST /api/v1/notices` as the client sent it (see
/// `openapi.yaml`): a markdown or text message (`msgtype`, `title`, `text`),
/// or any DingTalk message (`msgKey` + `msgParam`). Unknown fields are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendNoticeRequest {
    #[serde(default)]
    open_conversation_id: StringField,
    #[serde(default)]
    author: StringField,
    #[serde(default)]
    author_name: StringField,
    #[serde(default)]
    title: StringField,
    #[serde(default)]
    msg_key: StringField,
    /// An object, or a string holding one.
    #[serde(default)]
    msg_param: Option<Value>,
    /// `markdown` (default) or `text`.
    #[serde(default)]
    msgtype: StringField,
    #[serde(default)]
    text: StringField,
    /// `[{"at": RFC 3339 or epoch ms, "action": "summary" | "remind"}]`.
    #[serde(default)]
    follow_ups: Option<Value>,
}

impl SendNoticeRequest {
    /// Takes `followUps` out of the request, checked for shape (an array of
    /// at most [`MAX_PER_NOTICE`] objects, each with a time and an action);
    /// the bot checks the times against the clock and the window. A refusal
    /// names the field (`followUps[1].action`).
    pub fn take_follow_ups(&mut self) -> Result<Vec<PlannedFollowUp>, AppError> {
        let list = match self.follow_ups.take() {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(AppError::bad_field("followUps", "must be an array")),
        };
        if list.len() > MAX_PER_NOTICE {
            return Err(AppError::bad_field(
                "followUps",
                format!("at most {MAX_PER_NOTICE} follow-ups per notice"),
            ));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let field = |name: &str| format!("followUps[{i}]{name}");
            let Value::Object(obj) = item else {
                return Err(AppError::bad_field(&field(""), "must be an object"));
            };
            if let Some(other) = obj.keys().find(|k| !matches!(k.as_str(), "at" | "action")) {
                return Err(AppError::bad_field(
                    &field(&format!(".{other}")),
                    "unknown field",
                ));
            }
            let at = match obj.get("at") {
                Some(Value::String(t)) => {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                        .and_then(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok())
                        .ok_or_else(|| {
                            AppError::bad_field(
                                &field(".at"),
                                "must be an RFC 3339 time (2025-03-01T17:00:00+08:00) or epoch milliseconds",
                            )
                        })?
                }
                Some(Value::Number(n)) => n.as_i64().filter(|ms| *ms > 0).ok_or_else(|| {
                    AppError::bad_field(&field(".at"), "epoch milliseconds must be a positive integer")
                })?,
                None | Some(Value::Null) => {
                    return Err(AppError::bad_field(&field(".at"), "is required"))
                }
                Some(_) => {
                    return Err(AppError::bad_field(
                        &field(".at"),
                        "must be an RFC 3339 time string or epoch milliseconds",
                    ))
                }
            };
            let action = match obj.get("action") {
                Some(Value::String(a)) => FollowUpAction::parse(a).ok_or_else(|| {
                    AppError::bad_field(&field(".action"), "must be \"summary\" or \"remind\"")
                })?,
                None | Some(Value::Null) => {
                    return Err(AppError::bad_field(&field(".action"), "is required"))
                }
                Some(_) => {
                    return Err(AppError::bad_field(
                        &field(".action"),
                        "must be \"summary\" or \"remind\"",
                    ))
                }
            };
            out.push(PlannedFollowUp { at, action });
        }
        Ok(out)
    }
}

impl TryFrom<SendNoticeRequest> for NewNotice {
    type Error = InvalidField;

    /// Every check, in the order the API has always made them, before any
    /// call to DingTalk.
    fn try_from(req: SendNoticeRequest) -> Result<Self, InvalidField> {
        let group =
            OpenConversationId::parse(req.open_conversation_id.required("openConversationId")?)
                .map_err(InvalidField::domain("openConversationId"))?;
        let author = req
            .author
            .optional("author")?
            .map(|a| UserId::parse(a).map_err(InvalidField::domain("author")))
            .transpose()?;
        let author_name = req
            .author_name
            .optional("authorName")?
            .map(|s| s.chars().take(MAX_AUTHOR_NAME_CHARS).collect());
        let title_field = req.title.optional("title")?;

        let (message, title, size_field) = match req.msg_key.optional("msgKey")? {
            Some(msg_key) => {
                let (message, title) = raw_message(msg_key, req.msg_param, title_field)?;
                (message, title, "msgParam")
            }
            None => {
                let msgtype = req.msgtype.optional("msgtype")?;
                let text = req.text.required("text")?;
                let (message, title) = match msgtype.as_deref().unwrap_or("markdown") {
                    "markdown" => {
                        let title = title_field
                            .filter(|t| !t.trim().is_empty())
                            .ok_or_else(|| InvalidField::new("title", "is required"))?;
                        (OutgoingMessage::markdown(&title, &text), title)
                    }
                    "text" => {
                        let title = title_field.unwrap_or_else(|| short_title(&text));
                        (OutgoingMessage::text(&text), title)
                    }
                    other => {
                        return Err(InvalidField::new(
                            "msgtype",
                            format!("{other:?} is not supported: use \"markdown\" or \"text\" (or msgKey + msgParam)"),
                        ))
                    }
                };
                (message, title, "text")
            }
        };
        let title = checked_title(&title)?;
        let param_len = message.msg_param.to_string().len();
        if param_len > MAX_MSG_PARAM_BYTES {
            return Err(InvalidField::new(
                size_field,
                format!(
                    "message is {param_len} bytes; DingTalk accepts at most {MAX_MSG_PARAM_BYTES}"
                ),
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
}

/// `msgKey` + `msgParam`: any DingTalk message. The title is `title`, else
/// `msgParam.title`, else the key.
fn raw_message(
    msg_key: String,
    msg_param: Option<Value>,
    title: Option<String>,
) -> Result<(OutgoingMessage, String), InvalidField> {
    if msg_key.is_empty()
        || msg_key.len() > 64
        || !msg_key.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(InvalidField::new(
            "msgKey",
            "must be a DingTalk message key such as sampleActionCard",
        ));
    }
    const NOT_AN_OBJECT: &str = "must be a JSON object (or a string holding one)";
    let param = match msg_param {
        Some(v @ Value::Object(_)) => v,
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(InvalidField::new("msgParam", NOT_AN_OBJECT)),
        },
        None | Some(Value::Null) => {
            return Err(InvalidField::new("msgParam", "is required with msgKey"))
        }
        Some(_) => return Err(InvalidField::new("msgParam", NOT_AN_OBJECT)),
    };
    let title = title
        .or_else(|| {
            param
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| msg_key.clone());
    Ok((
        OutgoingMessage {
            msg_key,
            msg_param: param,
        },
        title,
    ))
}

/// The trimmed title: not empty, at most [`MAX_TITLE_CHARS`], no control
/// characters.
fn checked_title(title: &str) -> Result<String, InvalidField> {
    let title = title.trim();
    if title.is_empty() {
        return Err(InvalidField::new("title", "must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(InvalidField::new(
            "title",
            format!("is longer than {MAX_TITLE_CHARS} characters"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(InvalidField::new("title", "contains control characters"));
    }
    Ok(title.to_owned())
}

/// A text message's title: its first non-blank line, without markdown `#`.
fn short_title(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let first = first.trim_start_matches('#').trim();
    first.chars().take(SHORT_TITLE_CHARS).collect()
}

/// The query of `GET /api/v1/notices`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    open_conversation_id: Option<String>,
    limit: Option<String>,
}

/// A checked listing request: which group, how many notices.
#[derive(Debug)]
pub struct NoticeListing {
    /// The group whose notices are listed.
    pub group: OpenConversationId,
    /// At most this many, newest first (1 to 500; 50 by default).
    pub limit: usize,
}

impl TryFrom<ListQuery> for NoticeListing {
    type Error = InvalidField;

    fn try_from(q: ListQuery) -> Result<Self, InvalidField> {
        let group = q
            .open_conversation_id
            .ok_or_else(|| InvalidField::new("openConversationId", "is required"))
            .and_then(|g| {
                OpenConversationId::parse(g).map_err(InvalidField::domain("openConversationId"))
            })?;
        let limit = match q.limit {
            None => DEFAULT_LIST_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
                _ => return Err(InvalidField::new("limit", "must be a number from 1 to 500")),
            },
        };
        Ok(Self { group, limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::AppError;
    use crate::http::extract::parse_json_object;

    /// The create route's parsing: the body extractor, then the conversion.
    fn parse_new_notice(bytes: &[u8]) -> Result<NewNotice, AppError> {
        let req: SendNoticeRequest = parse_json_object(bytes)?;
        Ok(NewNotice::try_from(req)?)
    }

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
