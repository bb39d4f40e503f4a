//! Everything that speaks DingTalk's wire format.
//!
//! Invariant: this module is the only one that knows DingTalk's JSON field
//! names, headers and error bodies. The rest of readbot sees the
//! [`DingTalkApi`] trait and the plain types below.
//!
//! - [`client`]: the HTTP client (access-token cache, retries, rate limiter,
//!   timeouts) implementing [`DingTalkApi`].
//! - [`callback`]: parsing of incoming bot messages (HTTP callback body, and
//!   the Stream-mode `data` payload, which is the same JSON).
//! - [`signature`]: callback signature computation and verification.
//! - [`stream`]: Stream mode: the WebSocket gateway's frames, acks and the
//!   connection loop.
//! - [`events`]: read and recall events (Stream `data` and HTTP push payloads).
//! - [`event_crypto`]: the HTTP event push's signature and AES-256-CBC envelope.
//! - [`quota`]: which calls count toward the monthly API quota, and the
//!   [`quota::CallLedger`] hook the client reports them to.
//! - [`error`]: typed errors and the wire rules about them (transient, refusal).
//! - [`scripted`]: a scripted in-memory [`DingTalkApi`] for tests (no network).

pub mod callback;
pub mod capped;
pub mod client;
pub mod error;
pub mod event_crypto;
pub mod events;
pub mod quota;
pub mod scripted;
pub mod signature;
pub mod stream;

pub use error::{DingTalkError, ErrorCode};

use crate::domain::{
    EpochMillis, Member, OpenConversationId, ProcessQueryKey, RobotCode, SendStatus, UserId,
};
use async_trait::async_trait;
use url::Url;

/// The URL of a DingTalk API: `base` (`DINGTALK_API_BASE` or
/// `DINGTALK_OAPI_BASE`) with `path` appended to its own path, so that a
/// base with a path prefix keeps it: `http://proxy/dingtalk` +
/// `/v1.0/robot/groupMessages/send` is
/// `http://proxy/dingtalk/v1.0/robot/groupMessages/send` (`Url::join` would
/// drop `dingtalk`). The base's query is kept, its fragment dropped.
pub fn api_url(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}/{}", path.trim_start_matches('/')));
    url.set_fragment(None);
    url
}

/// A robot group message: DingTalk `msgKey` plus `msgParam` (a JSON object
/// that the client encodes as a string on the wire).
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// `sampleMarkdown`, `sampleText`, ...
    pub msg_key: String,
    /// The message parameters as a JSON object, e.g. `{"title":..,"text":..}`.
    pub msg_param: serde_json::Value,
}

impl OutgoingMessage {
    /// A `sampleMarkdown` message.
    pub fn markdown(title: &str, text: &str) -> Self {
        Self {
            msg_key: "sampleMarkdown".into(),
            msg_param: serde_json::json!({ "title": title, "text": text }),
        }
    }
    /// A `sampleText` message.
    pub fn text(content: &str) -> Self {
        Self {
            msg_key: "sampleText".into(),
            msg_param: serde_json::json!({ "content": content }),
        }
    }
}

/// A request to send one group message as the robot.
#[derive(Debug, Clone)]
pub struct GroupSend {
    /// Target group.
    pub group: OpenConversationId,
    /// Sending robot.
    pub robot_code: RobotCode,
    /// What to send.
    pub message: OutgoingMessage,
    /// `coolAppCode`, when the robot was installed through a group cool-app.
    pub cool_app_code: Option<String>,
}

/// A read-status query for one notice (all pages).
#[derive(Debug, Clone)]
pub struct ReadQuery {
    /// Key returned by the send.
    pub key: ProcessQueryKey,
    /// Same group as at send time.
    pub group: OpenConversationId,
    /// Same robot code as at send time.
    pub robot_code: RobotCode,
    /// When the notice was sent: decides whether `processQueryKey.expireTime`
    /// means "not ready yet" (retry) or "expired".
    pub sent_at: EpochMillis,
}

/// The read state of one notice, gathered over all query pages.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadState {
    /// Delivery status (from the last page).
    pub send_status: SendStatus,
    /// Everyone who has read it, de-duplicated, in DingTalk's order.
    pub readers: Vec<UserId>,
    /// Number of pages fetched.
    pub pages: usize,
    /// True when the page cap stopped paging while `hasMore` was still true.
    pub truncated: bool,
}

/// How to ask DingTalk for a group's members.
#[derive(Debug, Clone)]
pub enum RosterQuery {
    /// `POST /v1.0/im/innerGroups/memberLists/query` on behalf of a member.
    InnerGroup {
        /// The group.
        group: OpenConversationId,
        /// A member of the group (the asker, or the notice's author).
        operator: UserId,
    },
    /// `POST /v1.0/im/sceneGroups/members/batchQuery`.
    SceneGroup {
        /// The group.
        group: OpenConversationId,
        /// `coolAppCode`, when configured.
        cool_app_code: Option<String>,
    },
}

/// A group's member list as one source answered it (all pages).
#[derive(Debug, Clone, PartialEq)]
pub struct Roster {
    /// Members, with names where the source carries them.
    pub members: Vec<Member>,
    /// Whether the source claims to have returned the whole group.
    pub complete: bool,
}

/// A markdown reply in a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Title (shown in notifications).
    pub title: String,
    /// Markdown body.
    pub markdown: String,
    /// Users to @-mention (the body must carry `@userId` for each); at most 50 are sent.
    pub at_user_ids: Vec<UserId>,
}

/// At most this many `userIds` per `oToMessages/batchSend` call (the
/// documented limit; the client splits longer lists).
pub const MAX_DIRECT_USERS_PER_CALL: usize = 20;

/// At most this many `processQueryKeys` per `groupMessages/recall` call (the
/// client splits longer lists).
pub const MAX_RECALL_KEYS_PER_CALL: usize = 20;

/// A direct (1:1) robot message to several users (`oToMessages/batchSend`).
/// DingTalk cannot @ anyone in it.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectSend {
    /// Sending robot.
    pub robot_code: RobotCode,
    /// Recipients; any number (sent in calls of [`MAX_DIRECT_USERS_PER_CALL`]).
    pub users: Vec<UserId>,
    /// What to send.
    pub message: OutgoingMessage,
}

/// What DingTalk did with a [`DirectSend`], over all its calls.
#[derive(Debug, Clone, Default)]
pub struct DirectSendOutcome {
    /// Users DingTalk accepted the message for, in request order.
    pub sent: Vec<UserId>,
    /// Users DingTalk refused as unknown or invalid (`invalidStaffIdList`).
    pub invalid: Vec<UserId>,
    /// Users DingTalk refused because of flow control (`flowControlledStaffIdList`).
    pub flow_controlled: Vec<UserId>,
    /// Users never sent to because a call failed (see `error`); later
    /// batches are not attempted after a failure.
    pub unsent: Vec<UserId>,
    /// The error that stopped the remaining batches, when one did (the
    /// first batch failing is an `Err` of the whole call instead).
    pub error: Option<DingTalkError>,
    /// `processQueryKey` of each accepted call.
    pub keys: Vec<ProcessQueryKey>,
}

/// A recall of group messages the robot sent (`groupMessages/recall`).
#[derive(Debug, Clone, PartialEq)]
pub struct Recall {
    /// The group the messages were sent to.
    pub group: OpenConversationId,
    /// The robot that sent them.
    pub robot_code: RobotCode,
    /// Their keys (sent in calls of [`MAX_RECALL_KEYS_PER_CALL`]).
    pub keys: Vec<ProcessQueryKey>,
}

/// What DingTalk did with a [`Recall`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecallOutcome {
    /// Keys recalled.
    pub recalled: Vec<ProcessQueryKey>,
    /// Keys DingTalk did not recall, with its reason verbatim.
    pub failed: Vec<(ProcessQueryKey, String)>,
}

/// The operations readbot needs from DingTalk.
///
/// Implemented over HTTP by [`client::DingTalkClient`]; the bot logic and the
/// HTTP surface only ever see this trait.
#[async_trait]
pub trait DingTalkApi: Send + Sync + 'static {
    /// `POST /v1.0/robot/groupMessages/send`; returns the `processQueryKey`.
    async fn send_group_message(&self, req: &GroupSend) -> Result<ProcessQueryKey, DingTalkError>;

    /// Pages through `POST /v1.0/robot/groupMessages/query` until `hasMore`
    /// is false (or the page cap), retrying "not ready yet" for a bounded time.
    async fn read_state(&self, query: &ReadQuery) -> Result<ReadState, DingTalkError>;

    /// Fetches a group's members from one source (all pages).
    async fn roster(&self, query: &RosterQuery) -> Result<Roster, DingTalkError>;

    /// Looks up display names (`POST {oapi}/topapi/v2/user/get`) with bounded
    /// concurrency. Users DingTalk does not know are left out of the answer.
    async fn user_names(&self, users: &[UserId]) -> Result<Vec<(UserId, String)>, DingTalkError>;

    /// POSTs a reply to a `sessionWebhook`. Refuses ([`DingTalkError::UntrustedWebhook`])
    /// any URL whose scheme and host are not those of the configured old-API base.
    async fn reply_in_session(&self, webhook: &str, reply: &Reply) -> Result<(), DingTalkError>;

    /// `POST /v1.0/robot/oToMessages/batchSend` in calls of at most
    /// [`MAX_DIRECT_USERS_PER_CALL`] users. `Err` only when nothing was sent.
    async fn send_direct_messages(
        &self,
        req: &DirectSend,
    ) -> Result<DirectSendOutcome, DingTalkError>;

    /// `POST /v1.0/robot/groupMessages/recall` in calls of at most
    /// [`MAX_RECALL_KEYS_PER_CALL`] keys.
    async fn recall_group_messages(&self, req: &Recall) -> Result<RecallOutcome, DingTalkError>;
}

#[cfg(test)]
mod tests {
    use super::api_url;
    use url::Url;

    #[test]
    fn api_url_keeps_the_base_path_prefix() {
        let url = |base: &str, path: &str| {
            api_url(&Url::parse(base).unwrap(), path)
                .as_str()
                .to_owned()
        };
        let send = "/v1.0/robot/groupMessages/send";
        for base in ["http://host/prefix", "http://host/prefix/"] {
            assert_eq!(
                url(base, send),
                "http://host/prefix/v1.0/robot/groupMessages/send"
            );
        }
        assert_eq!(
            url("http://host/a/b/", "/topapi/v2/user/get"),
            "http://host/a/b/topapi/v2/user/get"
        );
        for base in ["https://api.dingtalk.com", "https://api.dingtalk.com/"] {
            assert_eq!(
                url(base, "/v1.0/gateway/connections/open"),
                "https://api.dingtalk.com/v1.0/gateway/connections/open"
            );
        }
        assert_eq!(
            url("http://127.0.0.1:8080/p?k=v#frag", send),
            "http://127.0.0.1:8080/p/v1.0/robot/groupMessages/send?k=v"
        );
    }
}
