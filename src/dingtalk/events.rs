//! Read and recall events (`robot_msg_read`, `robot_msg_recall`;
//! `dingtalk-api.md` §11.4), from either transport:
//!
//! - Stream mode: an EVENT frame whose `eventType` header names the event
//!   and whose `data` is a camelCase JSON string ([`parse_stream`]);
//! - HTTP push: the decrypted body, PascalCase, with `EventType` inside
//!   ([`parse_push`]; `check_url` is the subscription handshake).
//!
//! Both give the same typed [`PushEvent`]; nothing else in readbot spells
//! these field names.

use crate::domain::{EpochMillis, OpenConversationId, ProcessQueryKey, RobotCode, UserId};
use serde_json::{Map, Value};

/// `eventType` of a member's read of a robot message.
pub const READ: &str = "robot_msg_read";
/// `eventType` of a recalled robot message.
pub const RECALL: &str = "robot_msg_recall";
/// `EventType` of the HTTP subscription's URL check.
pub const CHECK_URL: &str = "check_url";
/// Largest event payload read (a read event is a few hundred bytes).
pub const MAX_EVENT_BYTES: usize = 16 * 1024;

/// A member read a robot message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEvent {
    /// The message read.
    pub key: ProcessQueryKey,
    /// The reader, when in the event's org (`userId`); readers outside it
    /// carry only a union id and are not on any roster.
    pub reader: Option<UserId>,
    /// When they read it (`operatTime`).
    pub at: EpochMillis,
    /// The group, when given at send time.
    pub group: Option<OpenConversationId>,
    /// The robot, when given at send time.
    pub robot_code: Option<RobotCode>,
    /// The event's id (redeliveries keep it), when known.
    pub event_id: Option<String>,
}

/// A robot message was recalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallEvent {
    /// The message recalled.
    pub key: ProcessQueryKey,
    /// When (`operatTime`).
    pub at: EpochMillis,
    /// The event's id, when known.
    pub event_id: Option<String>,
}

/// One pushed event, whatever the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// `robot_msg_read`.
    Read(ReadEvent),
    /// `robot_msg_recall`.
    Recall(RecallEvent),
    /// The HTTP subscription's `check_url` handshake.
    CheckUrl,
    /// Any other event type (acknowledged, not used).
    Other(String),
}

/// Why an event payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not a JSON object, or too large.
    #[error("event payload is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is missing or malformed.
    #[error("event field {0} is missing or malformed")]
    Field(&'static str),
}

/// Field names of one transport's spelling.
struct Names {
    key: &'static str,
    user: &'static str,
    time: &'static str,
    group: &'static str,
    robot: &'static str,
    event_id: &'static str,
}

const CAMEL: Names = Names {
    key: "processQueryKey",
    user: "userId",
    time: "operatTime",
    group: "openConversationId",
    robot: "robotCode",
    event_id: "eventId",
};

const PASCAL: Names = Names {
    key: "ProcessQueryKey",
    user: "UserId",
    time: "OperatTime",
    group: "OpenConversationId",
    robot: "RobotCode",
    // The HTTP push spells this one in camelCase (§11.4).
    event_id: "eventId",
};

fn object(data: &str) -> Result<Map<String, Value>, EventError> {
    if data.len() > MAX_EVENT_BYTES {
        return Err(EventError::NotJson(format!(
            "larger than {MAX_EVENT_BYTES} bytes"
        )));
    }
    serde_json::from_str(data).map_err(|e| EventError::NotJson(e.to_string()))
}

fn text<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `operatTime`: a string in the read sample, a number in the recall sample.
fn millis(o: &Map<String, Value>, k: &'static str) -> Result<EpochMillis, EventError> {
    let t = match o.get(k) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    t.filter(|t| *t > 0).ok_or(EventError::Field(k))
}

fn read(
    o: &Map<String, Value>,
    n: &Names,
    event_id: Option<String>,
) -> Result<ReadEvent, EventError> {
    let key = text(o, n.key)
        .and_then(|k| ProcessQueryKey::parse(k).ok())
        .ok_or(EventError::Field(n.key))?;
    let reader = match text(o, n.user) {
        None => None,
        Some(u) => Some(UserId::parse(u).map_err(|_| EventError::Field(n.user))?),
    };
    Ok(ReadEvent {
        key,
        reader,
        at: millis(o, n.time)?,
        group: text(o, n.group).and_then(|g| OpenConversationId::parse(g).ok()),
        robot_code: text(o, n.robot).and_then(|r| RobotCode::parse(r).ok()),
        event_id: event_id.or_else(|| text(o, n.event_id).map(str::to_owned)),
    })
}

fn recall(
    o: &Map<String, Value>,
    n: &Names,
    event_id: Option<String>,
) -> Result<RecallEvent, EventError> {
    let key = text(o, n.key)
        .and_then(|k| ProcessQueryKey::parse(k).ok())
        .ok_or(EventError::Field(n.key))?;
    // A recall without a time is still a recall.
    let at = millis(o, n.time).unwrap_or_else(|_| crate::domain::now_millis());
    Ok(RecallEvent {
        key,
        at,
        event_id: event_id.or_else(|| text(o, n.event_id).map(str::to_owned)),
    })
}

/// Parses the `data` of a Stream EVENT frame of type `event_type` (its
/// `eventId` header given as `event_id`).
pub fn parse_stream(event_type: &str, event_id: &str, data: &str) -> Result<PushEvent, EventError> {
    let id = Some(event_id.trim().to_owned()).filter(|s| !s.is_empty());
    match event_type {
        READ => Ok(PushEvent::Read(read(&object(data)?, &CAMEL, id)?)),
        RECALL => Ok(PushEvent::Recall(recall(&object(data)?, &CAMEL, id)?)),
        other => Ok(PushEvent::Other(other.to_owned())),
    }
}

/// Parses a decrypted HTTP push (PascalCase, `EventType` inside).
pub fn parse_push(plaintext: &str) -> Result<PushEvent, EventError> {
    let o = object(plaintext)?;
    let kind = text(&o, "EventType").ok_or(EventError::Field("EventType"))?;
    match kind {
        CHECK_URL => Ok(PushEvent::CheckUrl),
        READ => Ok(PushEvent::Read(read(&o, &PASCAL, None)?)),
        RECALL => Ok(PushEvent::Recall(recall(&o, &PASCAL, None)?)),
        other => Ok(PushEvent::Other(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_stream_read_sample() {
        let data = r#"{"unionId":"u1","userId":"manager4220","operatTime":"1654641965416",
            "processQueryKey":"k+/=","robotCode":"dingrobot","openConversationId":"cid1=="}"#;
        let PushEvent::Read(e) = parse_stream(READ, "ev1", data).unwrap() else {
            panic!("not a read")
        };
        assert_eq!(e.key.as_str(), "k+/=");
        assert_eq!(e.reader.unwrap().as_str(), "manager4220");
        assert_eq!(e.at, 1_654_641_965_416);
        assert_eq!(e.group.unwrap().as_str(), "cid1==");
        assert_eq!(e.robot_code.unwrap().as_str(), "dingrobot");
        assert_eq!(e.event_id.as_deref(), Some("ev1"));
    }

    #[test]
    fn numbers_and_missing_optional_fields() {
        let data = r#"{"unionId":"u1","operatTime":1654641965416,"processQueryKey":"k"}"#;
        let PushEvent::Read(e) = parse_stream(READ, "", data).unwrap() else {
            panic!()
        };
        assert_eq!(
            (e.reader, e.at, e.group, e.event_id),
            (None, 1_654_641_965_416, None, None)
        );
        let PushEvent::Recall(r) =
            parse_stream(RECALL, "e", r#"{"processQueryKey":"k","operatTime":5}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.key.as_str(), r.at), ("k", 5));
        assert_eq!(
            parse_stream("chat_add_member", "e", "not json").unwrap(),
            PushEvent::Other("chat_add_member".into())
        );
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(
            parse_stream(READ, "e", r#"{"operatTime":"1"}"#),
            Err(EventError::Field("processQueryKey"))
        );
        assert_eq!(
            parse_stream(READ, "e", r#"{"processQueryKey":"k","operatTime":"soon"}"#),
            Err(EventError::Field("operatTime"))
        );
        assert_eq!(
            parse_stream(
                READ,
                "e",
                r#"{"processQueryKey":"k","operatTime":1,"userId":"a\nb"}"#
            ),
            Err(EventError::Field("userId"))
        );
        assert!(matches!(
            parse_stream(READ, "e", "[]"),
            Err(EventError::NotJson(_))
        ));
        let huge = format!(r#"{{"processQueryKey":"{}"}}"#, "k".repeat(MAX_EVENT_BYTES));
        assert!(matches!(
            parse_stream(READ, "e", &huge),
            Err(EventError::NotJson(_))
        ));
    }

    #[test]
    fn http_push_is_pascal_case() {
        assert_eq!(
            parse_push(r#"{"EventType":"check_url"}"#).unwrap(),
            PushEvent::CheckUrl
        );
        let body = r#"{"EventType":"robot_msg_read","EventTime":"1","CorpId":"ding1","BizId":"b",
            "eventId":"ev9","OpenConversationId":"cid","UserId":"u7","OperatTime":"1700000000000",
            "UnionId":"x","ProcessQueryKey":"pk","RobotCode":"r"}"#;
        let PushEvent::Read(e) = parse_push(body).unwrap() else {
            panic!()
        };
        assert_eq!(e.reader.unwrap().as_str(), "u7");
        assert_eq!(e.event_id.as_deref(), Some("ev9"));
        assert_eq!(e.at, 1_700_000_000_000);
        let PushEvent::Recall(r) =
            parse_push(r#"{"EventType":"robot_msg_recall","ProcessQueryKey":"pk","OperatTime":7}"#)
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(r.at, 7);
        assert_eq!(parse_push("{}"), Err(EventError::Field("EventType")));
    }

    proptest! {
        #[test]
        fn never_panics(t in "\\PC{0,20}", s in "\\PC{0,300}") {
            let _ = parse_stream(&t, "e", &s);
            let _ = parse_push(&s);
        }
    }
}
