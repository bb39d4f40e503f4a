//! Parsing of incoming bot messages (HTTP callback body; also the `data` of a
//! Stream-mode bot frame, which is the same JSON).
//!
//! Every field is untrusted: types are checked, sizes are bounded, unknown
//! fields are ignored, and numbers may arrive as strings.

use crate::domain::{Incoming, MsgId, OpenConversationId, RobotCode, UserId};
use serde::Deserialize;

/// Why a callback body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not JSON, or not the documented shape.
    #[error("malformed callback body: {0}")]
    Malformed(String),
    /// A required field is missing or empty.
    #[error("callback body lacks {0}")]
    Missing(&'static str),
    /// DingTalk signalled that the org's robot quota is exhausted (`errorCode` 20001).
    #[error("DingTalk reports the robot quota is exhausted: {0}")]
    QuotaExhausted(String),
}

/// Longest message text we look at; commands are short.
const MAX_TEXT: usize = 4096;
/// At most this many @-mentioned users are kept.
const MAX_AT_USERS: usize = 100;

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    Num(i64),
    Float(f64),
    Str(String),
}

impl NumOrString {
    fn millis(&self) -> Option<i64> {
        match self {
            NumOrString::Num(n) => Some(*n),
            NumOrString::Float(f) if f.is_finite() => Some(*f as i64),
            NumOrString::Float(_) => None,
            NumOrString::Str(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct TextPart {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AtUser {
    #[serde(default)]
    staff_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    msg_id: Option<String>,
    #[serde(default)]
    text: Option<TextPart>,
    /// One doc sample puts the text at top level; rich types put an object here.
    #[serde(default)]
    content: Option<serde_json::Value>,
    #[serde(default)]
    conversation_type: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    sender_staff_id: Option<String>,
    #[serde(default)]
    sender_nick: Option<String>,
    #[serde(default)]
    robot_code: Option<String>,
    #[serde(default)]
    at_users: Option<Vec<AtUser>>,
    #[serde(default)]
    session_webhook: Option<String>,
    #[serde(default)]
    session_webhook_expired_time: Option<NumOrString>,
    #[serde(default)]
    create_at: Option<NumOrString>,
    #[serde(default)]
    error_code: Option<serde_json::Value>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    err_msg: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn truncate_chars(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Parses a bot-message body into an [`Incoming`].
pub fn parse(body: &[u8]) -> Result<Incoming, CallbackError> {
    // serde would accept a JSON array for a struct; the body must be an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(CallbackError::Malformed("body is not a JSON object".into()));
    }
    let wire: Wire =
        serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    if let Some(code) = &wire.error_code {
        let msg = wire
            .error_message
            .clone()
            .or(wire.err_msg.clone())
            .unwrap_or_default();
        return Err(CallbackError::QuotaExhausted(format!("{code} {msg}")));
    }
    let msg_id = non_empty(wire.msg_id).ok_or(CallbackError::Missing("msgId"))?;
    let msg_id = MsgId::parse(msg_id).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    let is_group = wire.conversation_type.as_deref().map(str::trim) == Some("2");
    let group = if is_group {
        let cid =
            non_empty(wire.conversation_id).ok_or(CallbackError::Missing("conversationId"))?;
        Some(OpenConversationId::parse(cid).map_err(|e| CallbackError::Malformed(e.to_string()))?)
    } else {
        None
    };
    let raw_text = wire
        .text
        .and_then(|t| t.content)
        .or(match wire.content {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        })
        .unwrap_or_default();
    let text = truncate_chars(raw_text.trim(), MAX_TEXT).trim().to_owned();
    let sender = non_empty(wire.sender_staff_id).and_then(|s| UserId::parse(s).ok());
    let sender_nick = truncate_chars(non_empty(wire.sender_nick).as_deref().unwrap_or(""), 256)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let robot_code = non_empty(wire.robot_code).and_then(|s| RobotCode::parse(s).ok());
    let mentioned = wire
        .at_users
        .unwrap_or_default()
        .into_iter()
        .filter_map(|u| non_empty(u.staff_id))
        .filter_map(|s| UserId::parse(s).ok())
        .take(MAX_AT_USERS)
        .collect();
    let session_webhook = non_empty(wire.session_webhook).filter(|u| u.len() <= 2048);
    Ok(Incoming {
        msg_id,
        group,
        sender,
        sender_nick,
        text,
        session_webhook,
        session_webhook_expires_at: wire.session_webhook_expired_time.and_then(|v| v.millis()),
        robot_code,
        mentioned,
        created_at: wire.create_at.and_then(|v| v.millis()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = r#"{
      "msgtype": "text",
      "text": { "content": " who read my last notice?" },
      "msgId": "msgrK2xxxxU+riw==",
      "createAt": 1708327204136,
      "conversationType": "2",
      "conversationId": "cid6EUxxxxsg==",
      "conversationTitle": "测试群",
      "senderId": "$:LWCP_v1:$Ff09GIxxxxx",
      "senderNick": "小钉",
      "senderStaffId": "0147xxxx8602",
      "chatbotUserId": "$:LWCP_v1:$Cxxxxx",
      "robotCode": "dingoxxxxdm3k",
      "isAdmin": true,
      "isInAtList": true,
      "atUsers": [ { "dingtalkId": "$:LWCP_v1:$Cxxxxx" }, { "dingtalkId": "x", "staffId": "u2" } ],
      "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=66d7c695a9xxxxdeb885",
      "sessionWebhookExpiredTime": 1708332604316
    }"#;

    #[test]
    fn parses_the_documented_sample() {
        let m = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(m.msg_id.as_str(), "msgrK2xxxxU+riw==");
        assert_eq!(m.group.unwrap().as_str(), "cid6EUxxxxsg==");
        assert_eq!(m.sender.unwrap().as_str(), "0147xxxx8602");
        assert_eq!(m.sender_nick, "小钉");
        assert_eq!(m.text, "who read my last notice?");
        assert_eq!(m.created_at, Some(1708327204136));
        assert_eq!(m.session_webhook_expires_at, Some(1708332604316));
        assert_eq!(m.mentioned, vec![UserId::parse("u2").unwrap()]);
    }

    #[test]
    fn tolerates_string_numbers_and_top_level_content() {
        let body = r#"{"msgId":"m1","conversationType":"2","conversationId":"cid1",
            "content":" 你好","createAt":"1708327204136","sessionWebhookExpiredTime":"17"}"#;
        let m = parse(body.as_bytes()).unwrap();
        assert_eq!(m.text, "你好");
        assert_eq!(m.created_at, Some(1708327204136));
        assert_eq!(m.session_webhook_expires_at, Some(17));
    }

    #[test]
    fn refuses_bad_shapes() {
        assert!(matches!(
            parse(b"not json"),
            Err(CallbackError::Malformed(_))
        ));
        assert!(matches!(parse(b"[]"), Err(CallbackError::Malformed(_))));
        assert!(matches!(
            parse(br#"{"msgId": 5}"#),
            Err(CallbackError::Malformed(_))
        ));
        assert_eq!(parse(b"{}"), Err(CallbackError::Missing("msgId")));
        assert_eq!(
            parse(br#"{"msgId":"m","conversationType":"2"}"#),
            Err(CallbackError::Missing("conversationId"))
        );
        assert!(matches!(
            parse(br#"{"msgId":"m","errorCode":20001,"errorMessage":"quota"}"#),
            Err(CallbackError::QuotaExhausted(_))
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn never_panics_on_json_with_odd_fields(text in "\\PC{0,64}", ts in any::<i64>(), kind in "[0-9]{0,2}") {
            let body = serde_json::json!({"msgId":"m","conversationType":kind,"conversationId":"cid",
                "text":{"content":text},"createAt":ts,"sessionWebhookExpiredTime":ts.to_string()});
            let _ = parse(body.to_string().as_bytes());
        }
    }
}
