//! DingTalk's JSON, read leniently: numbers may be strings, booleans may be
//! strings, cursors may be strings or numbers, key casing varies in errors.

use crate::dingtalk::DingTalkError;
use crate::domain::{SendStatus, UserId};
use serde_json::Value;

/// First present, non-null value among `keys`.
pub(crate) fn field<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().filter_map(|k| v.get(*k)).find(|x| !x.is_null())
}

/// A number given as a JSON number or a decimal string.
pub(crate) fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean given as a JSON boolean or `"true"`/`"false"`.
pub(crate) fn lenient_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "TRUE" | "True" | "1" => Some(true),
            "false" | "FALSE" | "False" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// A string, or a number rendered as a string.
pub(crate) fn lenient_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An opaque paging cursor: string or number; empty means "none".
pub(crate) fn cursor(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(lenient_string)
        .filter(|s| !s.trim().is_empty())
}

/// `hasMore`, defaulting to false.
pub(crate) fn has_more(v: &Value) -> bool {
    v.get("hasMore").and_then(lenient_bool).unwrap_or(false)
}

/// A new-API error body `{code, message, requestid}` in either casing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorBody {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

/// Parses an error body; `None` when the JSON carries no `code`.
pub(crate) fn error_body(v: &Value) -> Option<ErrorBody> {
    let code = field(v, &["code", "Code"]).and_then(lenient_string)?;
    Some(ErrorBody {
        code,
        message: field(v, &["message", "Message", "msg"])
            .and_then(lenient_string)
            .unwrap_or_default(),
        request_id: request_id(v),
    })
}

/// DingTalk's request id from a JSON body.
pub(crate) fn request_id(v: &Value) -> Option<String> {
    field(v, &["requestid", "requestId", "RequestId", "request_id"])
        .and_then(lenient_string)
        .filter(|s| !s.is_empty())
}

/// Old-API `{errcode, errmsg}`.
pub(crate) fn errcode(v: &Value) -> Option<(i64, String)> {
    let code = v.get("errcode").and_then(lenient_i64)?;
    let msg = v.get("errmsg").and_then(lenient_string).unwrap_or_default();
    Some((code, msg))
}

/// Parses user ids from an array of strings, skipping malformed entries.
pub(crate) fn user_ids(v: Option<&Value>) -> Vec<UserId> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|s| UserId::parse(s).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `sendStatus` wire value.
pub(crate) fn send_status(v: &Value) -> SendStatus {
    match v.get("sendStatus").and_then(Value::as_str) {
        Some("SUCCESS") => SendStatus::Success,
        Some("RECALLED") => SendStatus::Recalled,
        Some("PROCESSING") => SendStatus::Processing,
        Some(other) => SendStatus::Other(other.to_owned()),
        None => SendStatus::Other(String::new()),
    }
}

/// One page of `groupMessages/query`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryPage {
    pub send_status: SendStatus,
    pub readers: Vec<UserId>,
    pub has_more: bool,
    pub next_token: Option<String>,
}

pub(crate) fn query_page(v: &Value) -> QueryPage {
    let mut readers = user_ids(v.get("readUserIds"));
    // SDK-only `readUsers: [{userId, unionId}]`: merge any userIds it carries.
    if let Some(a) = v.get("readUsers").and_then(Value::as_array) {
        readers.extend(
            a.iter()
                .filter_map(|u| u.get("userId").and_then(Value::as_str))
                .filter_map(|s| UserId::parse(s).ok()),
        );
    }
    QueryPage {
        send_status: send_status(v),
        readers,
        has_more: has_more(v),
        next_token: cursor(v, "nextToken"),
    }
}

/// A non-empty, trimmed display name.
pub(crate) fn name(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Fails with `Decode` unless the body is a JSON object.
pub(crate) fn expect_object(v: &Value, what: &str) -> Result<(), DingTalkError> {
    if v.is_object() {
        Ok(())
    } else {
        Err(DingTalkError::Decode(format!(
            "{what}: expected a JSON object"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_scalars() {
        assert_eq!(lenient_i64(&json!("0")), Some(0));
        assert_eq!(lenient_i64(&json!(42001)), Some(42001));
        assert_eq!(lenient_i64(&json!("x")), None);
        assert_eq!(lenient_bool(&json!("true")), Some(true));
        assert_eq!(
            cursor(&json!({"nextToken": 92233720368u64}), "nextToken").as_deref(),
            Some("92233720368")
        );
        assert_eq!(cursor(&json!({"nextToken": ""}), "nextToken"), None);
    }

    #[test]
    fn error_bodies_in_both_casings() {
        let a = error_body(&json!({"code":"InvalidAuthentication","message":"m","requestid":"R1"}))
            .unwrap();
        assert_eq!(a.code, "InvalidAuthentication");
        assert_eq!(a.request_id.as_deref(), Some("R1"));
        let b =
            error_body(&json!({"Code":"system.busy","Message":"busy","RequestId":"R2"})).unwrap();
        assert_eq!(
            (b.code.as_str(), b.message.as_str()),
            ("system.busy", "busy")
        );
        assert_eq!(error_body(&json!({"status":1111})), None);
    }

    #[test]
    fn query_page_merges_read_users() {
        let p = query_page(&json!({
            "sendStatus":"RECALLED","readUserIds":["a",""],"readUsers":[{"userId":"b"}],
            "hasMore":"false","nextToken":null
        }));
        assert_eq!(p.send_status, SendStatus::Recalled);
        assert_eq!(p.readers.len(), 2);
        assert!(!p.has_more);
        assert_eq!(p.next_token, None);
    }
}
