//! The Stream gateway's wire format: the open-connection call, the frames the
//! gateway pushes, and the acks readbot sends back (`dingtalk-api.md` §7).

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use url::Url;

/// Path of the open-connection call on the new-API host.
pub const OPEN_PATH: &str = "/v1.0/gateway/connections/open";
/// CALLBACK topic of bot messages (@mentions and 1:1 chats).
pub const BOT_MESSAGE_TOPIC: &str = "/v1.0/im/bot/messages/get";
/// SYSTEM topic of the gateway's keep-alive ping.
pub const TOPIC_PING: &str = "ping";
/// SYSTEM topic announcing that the gateway will close this connection.
pub const TOPIC_DISCONNECT: &str = "disconnect";

/// Longest `data` we accept in a frame (a bot message is a few KiB).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// `ua` of the open call: names readbot and its version.
pub fn user_agent() -> String {
    format!("readbot-stream-rust/v{}", env!("CARGO_PKG_VERSION"))
}

/// The body of `POST /v1.0/gateway/connections/open`: credentials, the bot
/// message callback and every event (which events arrive is chosen in the
/// developer console; `EVENT` only accepts the topic `*`).
pub fn open_request(client_id: &str, client_secret: &str) -> Value {
    json!({
        "clientId": client_id,
        "clientSecret": client_secret,
        "subscriptions": [
            { "type": "CALLBACK", "topic": BOT_MESSAGE_TOPIC },
            { "type": "EVENT", "topic": "*" },
        ],
        "ua": user_agent(),
    })
}

/// A one-time ticket and the endpoint it is valid for.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// `ws://` or `wss://` endpoint.
    pub endpoint: Url,
    /// Valid for one connection, about 90 s.
    pub ticket: String,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The ticket is a credential for one connection: keep it out of logs.
        f.debug_struct("Ticket")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl Ticket {
    /// Parses the open call's answer `{"endpoint","ticket"}`.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("answer lacks {k}"))
        };
        let endpoint = text("endpoint")?;
        let ticket = text("ticket")?.to_owned();
        let endpoint =
            Url::parse(endpoint).map_err(|e| format!("endpoint {endpoint:?} is not a URL: {e}"))?;
        if !matches!(endpoint.scheme(), "ws" | "wss") || endpoint.host_str().is_none() {
            return Err(format!(
                "endpoint {:?} is not a ws:// or wss:// URL",
                endpoint.as_str()
            ));
        }
        Ok(Self { endpoint, ticket })
    }

    /// `{endpoint}?ticket={urlencoded ticket}` (other query parameters kept).
    pub fn connect_url(&self) -> Url {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().append_pair("ticket", &self.ticket);
        url
    }
}

/// The `type` of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameType {
    /// `SYSTEM`: `ping`, `disconnect`.
    System,
    /// `EVENT`: subscribed events; the ack decides whether it is redelivered.
    Event,
    /// `CALLBACK`: bot messages, card callbacks, ...
    Callback,
    /// Anything else, verbatim.
    Other(String),
}

impl FrameType {
    fn parse(s: &str) -> Self {
        match s {
            "SYSTEM" => Self::System,
            "EVENT" => Self::Event,
            "CALLBACK" => Self::Callback,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not a JSON object.
    #[error("frame is not a JSON object: {0}")]
    NotJson(String),
    /// No `type`.
    #[error("frame has no type")]
    NoType,
    /// No `headers.messageId`, so it cannot be acknowledged (only a SYSTEM
    /// `disconnect` may come without one).
    #[error("frame has no messageId")]
    NoMessageId,
    /// `data` is neither a string nor an object.
    #[error("frame data is not a JSON string")]
    BadData,
}

/// One frame pushed by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `specVersion`, e.g. `1.0` (empty when absent).
    pub spec_version: String,
    /// `type`.
    pub kind: FrameType,
    /// `headers`; values are strings on the wire (numbers are tolerated and
    /// kept as their decimal text).
    pub headers: BTreeMap<String, String>,
    /// `data`: a JSON document carried as a string (empty when absent).
    pub data: String,
}

impl Frame {
    /// Parses one text message of the WebSocket.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        let v: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(FrameType::parse)
            .ok_or(FrameError::NoType)?;
        let spec_version = v
            .get("specVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut headers = BTreeMap::new();
        if let Some(Value::Object(h)) = v.get("headers") {
            for (k, val) in h {
                let s = match val {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                headers.insert(k.clone(), s);
            }
        }
        let data = match v.get("data") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            // Documented as a string; an inline object is read the same way.
            Some(o @ Value::Object(_)) => o.to_string(),
            Some(_) => return Err(FrameError::BadData),
        };
        let frame = Self {
            spec_version,
            kind,
            headers,
            data,
        };
        // A `disconnect` is acted on whether or not it can be acknowledged:
        // the protocol's own example of it has no `messageId`.
        if frame.message_id().is_none() && !frame.is_disconnect() {
            return Err(FrameError::NoMessageId);
        }
        Ok(frame)
    }

    /// A SYSTEM `disconnect`: the gateway will close this connection soon.
    pub fn is_disconnect(&self) -> bool {
        self.kind == FrameType::System && self.topic() == TOPIC_DISCONNECT
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// `headers.topic`.
    pub fn topic(&self) -> &str {
        self.header("topic").unwrap_or_default()
    }

    /// `headers.messageId` (present on every parsed frame but a `disconnect`).
    pub fn message_id(&self) -> Option<&str> {
        self.header("messageId").filter(|s| !s.is_empty())
    }
}

/// An EVENT frame, for event handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `eventType`, e.g. `chat_add_member`, `robot_msg_read`.
    pub event_type: String,
    /// `eventId` (redeliveries keep it: de-duplicate on it).
    pub event_id: String,
    /// `eventCorpId`.
    pub corp_id: String,
    /// `eventBornTime` (epoch ms), when given.
    pub born_time: Option<i64>,
    /// The event payload: a JSON document.
    pub data: String,
}

impl Event {
    /// Reads the event headers of an EVENT frame.
    pub fn from_frame(f: &Frame) -> Self {
        let h = |k: &str| f.header(k).unwrap_or_default().to_owned();
        Self {
            event_type: h("eventType"),
            event_id: h("eventId"),
            corp_id: h("eventCorpId"),
            born_time: f
                .header("eventBornTime")
                .and_then(|t| t.trim().parse().ok()),
            data: f.data.clone(),
        }
    }
}

/// What an event handler decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// Consumed: `{"status":"SUCCESS"}`.
    Success,
    /// Not consumed; DingTalk redelivers: `{"status":"LATER"}`.
    Later,
}

/// An ack: `{"code","headers":{"contentType","messageId"},"message","data"}`
/// where `data` is a JSON document carried as a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// 200 OK, 400 bad request, 404 topic not supported, 500 error.
    pub code: u16,
    /// `message`.
    pub message: String,
    /// Echo of the frame's `messageId`.
    pub message_id: String,
    /// `data` (a JSON document as a string).
    pub data: String,
}

impl Ack {
    /// 200 for a CALLBACK: DingTalk ignores the data; `{"response":null}` as documented.
    pub fn callback_ok(message_id: &str) -> Self {
        Self {
            code: 200,
            message: "OK".into(),
            message_id: message_id.to_owned(),
            data: r#"{"response":null}"#.into(),
        }
    }

    /// 400: the frame's data could not be read.
    pub fn bad_request(message_id: &str, why: &str) -> Self {
        Self {
            code: 400,
            message: why.to_owned(),
            message_id: message_id.to_owned(),
            data: r#"{"response":null}"#.into(),
        }
    }

    /// 404: no handler for this topic.
    pub fn not_found(message_id: &str) -> Self {
        Self {
            code: 404,
            message: "topic not supported".into(),
            message_id: message_id.to_owned(),
            data: r#"{"response":null}"#.into(),
        }
    }

    /// The answer to a SYSTEM `ping`: 200 echoing the ping's data verbatim.
    pub fn pong(message_id: &str, data: &str) -> Self {
        Self {
            code: 200,
            message: "OK".into(),
            message_id: message_id.to_owned(),
            data: data.to_owned(),
        }
    }

    /// 200 for a SYSTEM `disconnect`, sent before readbot closes the
    /// connection: the newest official Go SDK does so, because the gateway
    /// may resend an unacknowledged `disconnect`.
    pub fn disconnect_ok(message_id: &str) -> Self {
        Self {
            code: 200,
            message: "OK".into(),
            message_id: message_id.to_owned(),
            data: "{}".into(),
        }
    }

    /// 200 for an EVENT with `{"status":"SUCCESS"|"LATER","message":…}`.
    pub fn event(message_id: &str, status: EventStatus) -> Self {
        let (s, m) = match status {
            EventStatus::Success => ("SUCCESS", "success"),
            EventStatus::Later => ("LATER", "consume later"),
        };
        Self {
            code: 200,
            message: "OK".into(),
            message_id: message_id.to_owned(),
            data: json!({ "status": s, "message": m }).to_string(),
        }
    }

    /// The text message to send.
    pub fn to_json(&self) -> String {
        json!({
            "code": self.code,
            "headers": { "contentType": "application/json", "messageId": self.message_id },
            "message": self.message,
            "data": self.data,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BOT_FRAME: &str = r#"{
      "specVersion": "1.0",
      "type": "CALLBACK",
      "headers": {
        "appId": "1305d5f5-484f-97d9ef67",
        "connectionId": "c1",
        "contentType": "application/json",
        "messageId": "212ca9d7_974_1898c159aa6_1783b",
        "time": "1690362102194",
        "topic": "/v1.0/im/bot/messages/get"
      },
      "data": "{\"conversationId\":\"cidAsXSBLnA==\",\"msgtype\":\"text\",\"text\":{\"content\":\" 测试数据\"}}"
    }"#;

    #[test]
    fn parses_the_documented_bot_frame() {
        let f = Frame::parse(BOT_FRAME).unwrap();
        assert_eq!(f.kind, FrameType::Callback);
        assert_eq!(f.spec_version, "1.0");
        assert_eq!(f.topic(), BOT_MESSAGE_TOPIC);
        assert_eq!(f.message_id(), Some("212ca9d7_974_1898c159aa6_1783b"));
        assert_eq!(f.header("time"), Some("1690362102194"));
        let data: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(data["text"]["content"], " 测试数据");
    }

    #[test]
    fn tolerates_numeric_headers_and_inline_data() {
        let f = Frame::parse(
            r#"{"type":"EVENT","headers":{"messageId":"m","time":1690362102194,"eventBornTime":"17",
                "eventType":"chat_add_member","eventId":"e1","nested":{"x":1}},"data":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(f.header("time"), Some("1690362102194"));
        assert_eq!(f.header("nested"), None);
        assert_eq!(f.data, r#"{"a":1}"#);
        let e = Event::from_frame(&f);
        assert_eq!(e.event_type, "chat_add_member");
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.born_time, Some(17));
    }

    #[test]
    fn refuses_bad_frames() {
        assert!(matches!(Frame::parse("nope"), Err(FrameError::NotJson(_))));
        assert!(matches!(Frame::parse("[]"), Err(FrameError::NotJson(_))));
        assert_eq!(
            Frame::parse(r#"{"headers":{"messageId":"m"}}"#),
            Err(FrameError::NoType)
        );
        assert_eq!(
            Frame::parse(r#"{"type":"SYSTEM","headers":{"topic":"ping"}}"#),
            Err(FrameError::NoMessageId)
        );
        assert_eq!(
            Frame::parse(r#"{"type":"SYSTEM","headers":{"messageId":"m"},"data":5}"#),
            Err(FrameError::BadData)
        );
    }

    #[test]
    fn a_disconnect_needs_no_message_id() {
        // The protocol page's own example of the frame.
        let f = Frame::parse(
            r#"{"type":"SYSTEM","headers":{"topic":"disconnect","contentType":"application/json"},
                "data":"{\"reason\":\"connection is expired\"}"}"#,
        )
        .unwrap();
        assert!(f.is_disconnect());
        assert_eq!(f.message_id(), None);
        let f =
            Frame::parse(r#"{"type":"SYSTEM","headers":{"topic":"disconnect","messageId":"d1"}}"#)
                .unwrap();
        assert!(f.is_disconnect());
        assert_eq!(f.message_id(), Some("d1"));
        // Only a SYSTEM disconnect: anything else still needs an id to be acked.
        assert_eq!(
            Frame::parse(r#"{"type":"EVENT","headers":{"topic":"disconnect"}}"#),
            Err(FrameError::NoMessageId)
        );
        let ack: Value = serde_json::from_str(&Ack::disconnect_ok("d1").to_json()).unwrap();
        assert_eq!(ack["code"], 200);
        assert_eq!(ack["headers"]["messageId"], "d1");
        assert!(ack["data"].is_string());
    }

    #[test]
    fn acks_have_the_documented_shape() {
        let ack: Value = serde_json::from_str(&Ack::callback_ok("m1").to_json()).unwrap();
        assert_eq!(
            ack,
            json!({"code":200,"headers":{"contentType":"application/json","messageId":"m1"},
                   "message":"OK","data":"{\"response\":null}"})
        );
        let pong: Value =
            serde_json::from_str(&Ack::pong("p", r#"{"opaque":"123-dsfs"}"#).to_json()).unwrap();
        assert_eq!(pong["data"], r#"{"opaque":"123-dsfs"}"#);
        assert_eq!(pong["headers"]["messageId"], "p");
        let ev: Value =
            serde_json::from_str(&Ack::event("e", EventStatus::Success).to_json()).unwrap();
        let data: Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["status"], "SUCCESS");
        let later: Value =
            serde_json::from_str(&Ack::event("e", EventStatus::Later).to_json()).unwrap();
        assert!(later["data"].as_str().unwrap().contains("LATER"));
        assert_eq!(Ack::not_found("x").code, 404);
    }

    #[test]
    fn open_request_and_answer() {
        let body = open_request("dingkey", "secret");
        assert_eq!(body["clientId"], "dingkey");
        assert_eq!(body["clientSecret"], "secret");
        assert_eq!(
            body["subscriptions"],
            json!([{"type":"CALLBACK","topic":"/v1.0/im/bot/messages/get"},{"type":"EVENT","topic":"*"}])
        );
        assert!(body["ua"].as_str().unwrap().starts_with("readbot"));
        assert!(body["ua"]
            .as_str()
            .unwrap()
            .contains(env!("CARGO_PKG_VERSION")));

        let t = Ticket::parse(
            br#"{"endpoint":"wss://wss-open-connection.dingtalk.com:443/connect","ticket":"a+b/c=d&e f"}"#,
        )
        .unwrap();
        assert_eq!(
            t.connect_url().as_str(),
            "wss://wss-open-connection.dingtalk.com/connect?ticket=a%2Bb%2Fc%3Dd%26e+f"
        );
        let back: String = t
            .connect_url()
            .query_pairs()
            .find(|(k, _)| k == "ticket")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(back, "a+b/c=d&e f");
        assert!(
            !format!("{t:?}").contains("a+b"),
            "ticket stays out of Debug"
        );
        for bad in [
            &br#"<xml/>"#[..],
            br#"{"endpoint":"https://x/connect","ticket":"t"}"#,
            br#"{"endpoint":"wss://x/connect"}"#,
            br#"{"endpoint":"","ticket":"t"}"#,
        ] {
            assert!(
                Ticket::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = Frame::parse(&text);
        }
    }
}
