//! Parsing of incoming bot messages (HTTP callback body; also the `data` of a
//! Stream-mode bot frame, which is the same JSON).
//!
//! Every field is untrusted: types are checked, sizes are bounded, unknown
//! fields are ignored, and numbers may arrive as strings.

use crate::domain::{Incoming, MsgId, OpenConversationId, RobotCode, UserId};
use serde::Deserialize;
use std::borrow::Cow;

/// Why a callback body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not JSON, or not the documented shape.
    #[error("malformed callback body: {0}")]
    Malformed(String),
    /// A required field is missing or empty.
    #[error("callback body lacks {0}")]
    Missing(&'static str),
    /// DingTalk signalled that the org's robot quota is exhausted: a non-zero
    /// `errorCode` (HTTP mode) or `errCode` (Stream mode), e.g. 20001.
    #[error("DingTalk reports the robot quota is exhausted: {0}")]
    QuotaExhausted(String),
}

/// Longest message text we look at; commands are short.
const MAX_TEXT: usize = 4096;
/// Longest group title kept (`conversationTitle`), in bytes.
pub const MAX_GROUP_TITLE: usize = 256;
/// At most this many @-mentioned users are kept.
const MAX_AT_USERS: usize = 100;
/// Deepest nesting of arrays and objects accepted anywhere in a body (the
/// documented bodies nest three levels; serde skips unknown fields without
/// any depth limit of its own).
const MAX_DEPTH: usize = 32;

/// True when arrays/objects nest deeper than `max` (strings are skipped).
fn nests_deeper_than(body: &[u8], max: usize) -> bool {
    // Fast path: fewer opening brackets than `max` anywhere (strings
    // included) cannot nest deeper. This count vectorizes; the exact scan
    // below, a branch per byte, was most of the parse time of a typical
    // callback.
    let opening = body.iter().filter(|&&b| b == b'{' || b == b'[').count();
    if opening <= max {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A time in milliseconds, sent as a number or as a numeric string (a
/// string that is not a number reads as absent; any other type is refused).
/// Parsed by hand: an untagged enum would buffer every value first.
struct Millis(Option<i64>);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a time in milliseconds")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Millis, E> {
                Ok(Millis(Some(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Millis, E> {
                Ok(Millis(i64::try_from(v).ok()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Millis, E> {
                Ok(Millis(v.is_finite().then_some(v as i64)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Millis, E> {
                Ok(Millis(v.trim().parse().ok()))
            }
        }
        d.deserialize_any(V)
    }
}

/// An over-quota code (`errorCode` / `errCode`): a number or a numeric
/// string. Only a non-zero code means "exhausted": `0`, `"0"` and `""` read
/// as no error; any other string counts as a code; other types are refused.
struct ErrCode(Option<String>);

impl<'de> Deserialize<'de> for ErrCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ErrCode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an error code")
            }
            fn visit_i64<E>(self, v: i64) -> Result<ErrCode, E> {
                Ok(ErrCode((v != 0).then(|| v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ErrCode, E> {
                Ok(ErrCode((v != 0).then(|| v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ErrCode, E> {
                Ok(ErrCode((v != 0.0).then(|| v.to_string())))
            }
            fn visit_str<E>(self, v: &str) -> Result<ErrCode, E> {
                let t = v.trim();
                let zero = t.is_empty() || t.parse::<f64>().is_ok_and(|n| n == 0.0);
                Ok(ErrCode((!zero).then(|| truncate_chars(t, 64).to_owned())))
            }
            fn visit_unit<E>(self) -> Result<ErrCode, E> {
                Ok(ErrCode(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A field documented as a JSON object. serde's derive also accepts an
/// array for a struct (its fields in order); this wrapper accepts only an
/// object, so `"text": [" hi"]` is refused instead of read as text.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(m)).map(Obj)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A top-level `content`: kept when it is a string (one doc sample puts the
/// text there), skipped without building it when it is anything else (rich
/// message types put an object there).
struct TopContent<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for TopContent<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TopContent<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("message content")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TopContent(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(TopContent(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(TopContent(Some(Cow::Owned(v))))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(TopContent(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(TopContent(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(TopContent(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(TopContent(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(TopContent(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                while m
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(TopContent(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut s: A,
            ) -> Result<Self::Value, A::Error> {
                while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(TopContent(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Text fields borrow from the body where JSON needs no unescaping; only
/// what readbot keeps is copied, once.
#[derive(Deserialize)]
struct TextPart<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AtUser<'a> {
    #[serde(default, borrow)]
    staff_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    #[serde(default, borrow)]
    msg_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Obj<TextPart<'a>>>,
    /// One doc sample puts the text at top level; rich types put an object here.
    #[serde(default, borrow)]
    content: Option<TopContent<'a>>,
    #[serde(default, borrow)]
    conversation_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    conversation_id: Option<Cow<'a, str>>,
    /// Untrusted and optional: a string is kept, any other type is skipped
    /// (a title never refuses a message).
    #[serde(default, borrow)]
    conversation_title: Option<TopContent<'a>>,
    #[serde(default, borrow)]
    sender_staff_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sender_nick: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    robot_code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    at_users: Option<Vec<Obj<AtUser<'a>>>>,
    #[serde(default, borrow)]
    session_webhook: Option<Cow<'a, str>>,
    #[serde(default)]
    session_webhook_expired_time: Option<Millis>,
    #[serde(default)]
    create_at: Option<Millis>,
    /// Over-quota signal, HTTP-mode spelling (with `errorMessage`).
    #[serde(default)]
    error_code: Option<ErrCode>,
    #[serde(default)]
    error_message: Option<String>,
    /// Over-quota signal, Stream-mode spelling (with `errMsg`).
    #[serde(default)]
    err_code: Option<ErrCode>,
    #[serde(default)]
    err_msg: Option<String>,
}

/// The trimmed value, copied, if not empty.
fn non_empty(s: Option<Cow<'_, str>>) -> Option<String> {
    let s = s?;
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The longest prefix of `s` of at most `max_bytes` bytes that ends on a
/// character boundary.
fn truncate_chars(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Parses one bot message (an HTTP callback body, or the `data` of a Stream
/// bot frame) into an [`Incoming`]: refuses what is not the documented
/// shape, and reports DingTalk's over-quota signal as
/// [`CallbackError::QuotaExhausted`].
pub fn parse(body: &[u8]) -> Result<Incoming, CallbackError> {
    // serde would accept a JSON array for a struct; the body must be an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(CallbackError::Malformed("body is not a JSON object".into()));
    }
    if nests_deeper_than(body, MAX_DEPTH) {
        return Err(CallbackError::Malformed(format!(
            "body nests deeper than {MAX_DEPTH} levels"
        )));
    }
    let wire: Wire =
        serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    // HTTP mode spells it `errorCode`/`errorMessage`, Stream mode
    // `errCode`/`errMsg`; only a non-zero code means the quota is exhausted.
    let code = wire
        .error_code
        .and_then(|c| c.0)
        .or(wire.err_code.and_then(|c| c.0));
    if let Some(code) = code {
        let msg = wire.error_message.or(wire.err_msg).unwrap_or_default();
        let msg = truncate_chars(msg.trim(), 256);
        let detail: String = format!("{code} {msg}")
            .trim_end()
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        return Err(CallbackError::QuotaExhausted(detail));
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
        .and_then(|t| t.0.content)
        .or(wire.content.and_then(|c| c.0))
        .unwrap_or_default();
    let text = truncate_chars(raw_text.trim(), MAX_TEXT).trim().to_owned();
    let sender = non_empty(wire.sender_staff_id).and_then(|s| UserId::parse(s).ok());
    let sender_nick = truncate_chars(wire.sender_nick.as_deref().unwrap_or("").trim(), 256)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let group_title = group
        .as_ref()
        .and_then(|_| wire.conversation_title.and_then(|t| t.0))
        .map(|t| group_title(&t))
        .filter(|t| !t.is_empty());
    let robot_code = non_empty(wire.robot_code).and_then(|s| RobotCode::parse(s).ok());
    let mentioned = wire
        .at_users
        .unwrap_or_default()
        .into_iter()
        .filter_map(|u| non_empty(u.0.staff_id))
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
        session_webhook_expires_at: wire.session_webhook_expired_time.and_then(|v| v.0),
        robot_code,
        mentioned,
        created_at: wire.create_at.and_then(|v| v.0),
        group_title,
    })
}

/// A `conversationTitle` made safe to keep: trimmed, at most
/// [`MAX_GROUP_TITLE`] bytes, control characters dropped.
fn group_title(raw: &str) -> String {
    truncate_chars(raw.trim(), MAX_GROUP_TITLE)
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
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
        assert_eq!(m.group_title.as_deref(), Some("测试群"));
    }

    #[test]
    fn group_title_is_optional_bounded_and_free_of_control_characters() {
        let with = |title: &str, kind: &str| {
            let body = serde_json::json!({"msgId": "m1", "conversationType": kind,
                "conversationId": "cid1", "conversationTitle": title, "text": {"content": "hi"}});
            parse(body.to_string().as_bytes()).unwrap().group_title
        };
        assert_eq!(with("  Ops\n\u{7}team ", "2").as_deref(), Some("Opsteam"));
        assert_eq!(with("   ", "2"), None);
        // A 1:1 chat has no group, so no group title.
        assert_eq!(with("Ops", "1"), None);
        let long = with(&"群".repeat(200), "2").unwrap();
        assert!(long.len() <= MAX_GROUP_TITLE && long.chars().all(|c| c == '群'));
        let absent = br#"{"msgId":"m1","conversationType":"2","conversationId":"cid1"}"#;
        assert_eq!(parse(absent).unwrap().group_title, None);
        // Another type than a string is skipped: a title never refuses a message.
        let number = br#"{"msgId":"m1","conversationType":"2","conversationId":"cid1","conversationTitle":{"a":7}}"#;
        assert_eq!(parse(number).unwrap().group_title, None);
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

    #[test]
    fn over_quota_is_read_in_both_spellings_and_only_when_non_zero() {
        let quota = |extra: &str| {
            let body =
                format!(r#"{{"msgId":"m","conversationType":"2","conversationId":"cid",{extra}}}"#);
            parse(body.as_bytes())
        };
        // HTTP mode (robot-message-type) and Stream mode (develop-stream-mode-push-server).
        for extra in [
            r#""errorCode":20001,"errorMessage":"我的消息服务已经暂停""#,
            r#""errCode":20001,"errMsg":"我的消息服务已经暂停""#,
            r#""errCode":"20001""#,
            r#""errorCode":0,"errCode":20001"#,
        ] {
            match quota(extra) {
                Err(CallbackError::QuotaExhausted(d)) => assert!(d.starts_with("20001"), "{d}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
        let Err(CallbackError::QuotaExhausted(d)) = quota(r#""errCode":20001,"errMsg":"a\nb""#)
        else {
            panic!("quota expected")
        };
        assert_eq!(d, "20001 ab", "no control characters reach the log");
        // A zero (or empty) code is no error: the message is read as usual.
        for extra in [
            r#""errorCode":0,"errorMessage":"","text":{"content":" help"}"#,
            r#""errCode":0,"errMsg":"ok","text":{"content":" help"}"#,
            r#""errCode":"0","errorCode":"","text":{"content":" help"}"#,
            r#""errCode":null,"errorCode":0.0,"text":{"content":" help"}"#,
        ] {
            let m = quota(extra).unwrap_or_else(|e| panic!("{extra}: {e}"));
            assert_eq!(m.text, "help", "{extra}");
        }
        // A code that is neither a number nor a string is not the documented shape.
        assert!(matches!(
            quota(r#""errCode":{"x":1}"#),
            Err(CallbackError::Malformed(_))
        ));
    }

    #[test]
    fn object_fields_refuse_arrays() {
        // serde's derive reads `[" hi"]` as a struct with `content` " hi".
        let text_array =
            br#"{"msgId":"m","conversationType":"2","conversationId":"cid","text":[" help"]}"#;
        assert!(matches!(
            parse(text_array),
            Err(CallbackError::Malformed(_))
        ));
        let at_array = br#"{"msgId":"m","conversationType":"2","conversationId":"cid","text":{"content":"x"},"atUsers":[["u2"]]}"#;
        assert!(matches!(parse(at_array), Err(CallbackError::Malformed(_))));
        let text_string =
            br#"{"msgId":"m","conversationType":"2","conversationId":"cid","text":" help"}"#;
        assert!(matches!(
            parse(text_string),
            Err(CallbackError::Malformed(_))
        ));
        // Objects (and null) still read as before.
        let ok = br#"{"msgId":"m","conversationType":"2","conversationId":"cid","text":{"content":" help"},"atUsers":[{"staffId":"u2"}]}"#;
        let m = parse(ok).unwrap();
        assert_eq!(m.text, "help");
        assert_eq!(m.mentioned, vec![UserId::parse("u2").unwrap()]);
        let null = br#"{"msgId":"m","conversationType":"2","conversationId":"cid","text":null,"content":" hi"}"#;
        assert_eq!(parse(null).unwrap().text, "hi");
    }

    #[test]
    fn refuses_deep_nesting_anywhere_but_inside_strings() {
        let deep = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
        let body = format!(r#"{{"msgId":"m","zzz":{}}}"#, deep(40));
        assert!(matches!(
            parse(body.as_bytes()),
            Err(CallbackError::Malformed(_))
        ));
        let body = format!(r#"{{"msgId":"m","zzz":{}}}"#, deep(20));
        assert!(parse(body.as_bytes()).is_ok());
        let body = format!(
            r#"{{"msgId":"m","zzz":"{}\"{}"}}"#,
            "[".repeat(100),
            "{".repeat(100)
        );
        assert!(parse(body.as_bytes()).is_ok());
    }

    /// Any JSON value, up to a few levels deep.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "\\PC{0,40}".prop_map(Value::String),
            "[\\x00-\\x1f]{0,4}".prop_map(Value::String),
            proptest::collection::vec(any::<char>(), 0..5000)
                .prop_map(|c| Value::String(c.into_iter().collect())),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map("[a-zA-Z]{0,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const FIELDS: &[&str] = &[
        "msgId",
        "text",
        "content",
        "conversationType",
        "conversationId",
        "conversationTitle",
        "senderStaffId",
        "senderNick",
        "robotCode",
        "atUsers",
        "sessionWebhook",
        "sessionWebhookExpiredTime",
        "createAt",
        "errorCode",
        "errorMessage",
        "errCode",
        "errMsg",
        "msgtype",
        "isInAtList",
        "unknownField",
    ];

    proptest! {
        /// Any value in any field of the documented sample: no panic, and
        /// whatever is accepted respects readbot's bounds.
        #[test]
        fn any_value_in_any_field_respects_the_bounds(
            edits in proptest::collection::vec((0..FIELDS.len(), json_value()), 1..6),
        ) {
            let mut v: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
            for (i, val) in edits {
                v[FIELDS[i]] = val;
            }
            if let Ok(m) = parse(v.to_string().as_bytes()) {
                prop_assert!(!m.msg_id.as_str().trim().is_empty());
                prop_assert!(m.text.len() <= MAX_TEXT);
                prop_assert!(m.mentioned.len() <= MAX_AT_USERS);
                prop_assert!(m.session_webhook.as_ref().is_none_or(|u| u.len() <= 2048));
                prop_assert!(m.sender_nick.len() <= 256);
                prop_assert!(!m.sender_nick.chars().any(char::is_control));
                if let Some(t) = &m.group_title {
                    prop_assert!(m.group.is_some() && !t.is_empty() && t.len() <= MAX_GROUP_TITLE);
                    prop_assert!(!t.chars().any(char::is_control));
                }
                prop_assert!(m.group.is_some() == (v["conversationType"].as_str().map(str::trim) == Some("2")));
            }
        }

        /// Random byte edits of the documented sample never panic.
        #[test]
        fn mutated_sample_never_panics(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..20),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut b = SAMPLE.as_bytes().to_vec();
            for (i, byte) in edits {
                let at = i.index(b.len());
                b[at] = byte;
            }
            let end = cut.index(b.len() + 1);
            let _ = parse(&b[..end]);
        }

        /// Nesting beyond the bound is refused wherever it is.
        #[test]
        fn deep_nesting_is_refused(depth in (MAX_DEPTH + 1)..5000usize, field in 0..FIELDS.len()) {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let body = format!(r#"{{"msgId":"m","{}":{deep}}}"#, FIELDS[field]);
            prop_assert!(matches!(parse(body.as_bytes()), Err(CallbackError::Malformed(_))));
        }

        /// Brackets inside strings do not count as nesting, however many
        /// (the exact scan behind the fast path).
        #[test]
        fn brackets_in_text_are_not_nesting(n in (MAX_DEPTH + 1)..400usize, open in "[\\[{]") {
            let text = open.repeat(n);
            let body = serde_json::json!({"msgId":"m","conversationType":"2","conversationId":"cid",
                "text":{"content":text}});
            let m = parse(body.to_string().as_bytes()).unwrap();
            prop_assert_eq!(m.text.len(), n);
        }

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
