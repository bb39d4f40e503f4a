//! A fake DingTalk speaking the documented wire format, for tests,
//! benchmarks and the sandbox.
//!
//! One axum server on `127.0.0.1:0` serves both API families from the same
//! base URL:
//!
//! | path | family | [`Api`] |
//! |---|---|---|
//! | `POST /v1.0/oauth2/accessToken` | new | [`Api::Token`] |
//! | `POST /v1.0/robot/groupMessages/send` | new | [`Api::Send`] |
//! | `POST /v1.0/robot/groupMessages/query` | new | [`Api::Query`] |
//! | `POST /v1.0/im/innerGroups/memberLists/query` | new | [`Api::InnerMembers`] |
//! | `POST /v1.0/im/sceneGroups/members/batchQuery` | new | [`Api::SceneMembers`] |
//! | `POST /v1.0/robot/oToMessages/batchSend` | new | [`Api::BatchSend`] |
//! | `POST /v1.0/robot/groupMessages/recall` | new | [`Api::Recall`] |
//! | `POST /topapi/v2/user/get?access_token=…` | old | [`Api::UserGet`] |
//! | `POST /robot/sendBySession?session=…` | webhook | [`Api::SendBySession`] |
//! | `POST /v1.0/gateway/connections/open` | new (Stream mode) | [`Api::GatewayOpen`] |
//!
//! The Stream gateway's WebSocket endpoint has its own port (see [`gateway`]
//! for its frames, acks, disconnects, drops, stalls and refused tickets).
//!
//! Files: `server.rs` owns the HTTP routes (and mounts the gateway's open
//! call), `gateway.rs` the Stream gateway, `respond.rs` the answers both
//! share, `state.rs` the data behind them, `cursor.rs` the paging tokens;
//! `events.rs` pushes read and recall events (gateway and encrypted HTTP).
//! Imports between them run one way: server → gateway → respond → state.
//!
//! New-API answers carry the `x-acs-request-id` header; their errors are
//! non-2xx with `{"code","message","requestid"}`. Old-API answers are HTTP 200
//! with `{"errcode","errmsg"}`. Paging tokens of the read query are opaque
//! (salted, MAC-protected), so a client that builds or edits them fails.
//!
//! This module deliberately shares no code with [`crate::dingtalk`]: it is an
//! independent implementation of the same documents, so that it can catch
//! client bugs instead of mirroring them.
//!
//! Choices where DingTalk documents nothing (kept stable so tests can rely on
//! them):
//! - inner-group member list on a group that is not [`GroupKind::Inner`]:
//!   HTTP 400 `groupPermissionDenied`; operator `userId` not in the group:
//!   HTTP 400 `invalidParameter.userId.notMember`; an unknown group: HTTP 400
//!   `invalid.openConversationId` (the send page's code; the scene-group
//!   member list answers its own documented `cidEncryptError` 群ID解析错误);
//! - read query naming a different (existing) group than the send:
//!   HTTP 400 `invalid.openConversationId`; a different robot:
//!   HTTP 400 `invalidParameter.robotCode.invalid`;
//! - send with a robot code that is not the app's: HTTP 400
//!   `invalidParameter.robotCode.auth` (the send page's code); send to a
//!   cool-app scene group without the right `coolAppCode`: HTTP 400
//!   `resource.unavailable`;
//! - old API: an issued token that has expired answers errcode `42001`, an
//!   unknown or missing token `40014`;
//! - `batchSend`: more than 20 `userIds` (or more than 20 `processQueryKeys`
//!   in a recall) answer HTTP 400 `invalidParameter.<field>.overMax`; users
//!   the directory does not know come back in `invalidStaffIdList`;
//! - recall: a key that is unknown or of another group or robot is in
//!   `failedResult` with a reason; a recalled notice's read query answers
//!   `sendStatus` `RECALLED`; recalling it again succeeds.

mod cursor;
pub mod events;
pub mod gateway;
mod respond;
mod server;
mod state;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use state::State;

pub use events::EventPusher;
pub use gateway::{Pushed, StreamAck, StreamConnection, StreamOpen};

/// Settings of the fake app and robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeConfig {
    /// The app's AppKey (ClientId), expected by `/v1.0/oauth2/accessToken`.
    pub app_key: String,
    /// The app's AppSecret (ClientSecret); also the callback signing secret.
    pub app_secret: String,
    /// The robot code accepted by the robot APIs (for an internal-app robot
    /// this is the AppKey).
    pub robot_code: String,
    /// Lifetime of an access token (`expireIn`), 7200 s by default.
    pub token_ttl: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        let app_key = "dingfakeappkey".to_owned();
        Self {
            robot_code: app_key.clone(),
            app_key,
            app_secret: "fake-app-secret-0123456789".to_owned(),
            token_ttl: Duration::from_secs(7200),
        }
    }
}

/// What kind of group a conversation is, which decides the member APIs that
/// work for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKind {
    /// An internal (company) group: `innerGroups/memberLists/query` works
    /// when the operator `userId` is a member.
    Inner,
    /// A scene group (created from this app's template, or with this app's
    /// cool-app installed): `sceneGroups/members/batchQuery` works.
    Scene {
        /// The installed cool-app's code; when set, `batchQuery` and `send`
        /// must pass the same `coolAppCode`.
        cool_app_code: Option<String>,
    },
    /// An ordinary group the robot was added to: no member API works.
    Plain,
}

/// Which fake endpoint a fault, counter or latency applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /v1.0/oauth2/accessToken`.
    Token,
    /// `POST /v1.0/robot/groupMessages/send`.
    Send,
    /// `POST /v1.0/robot/groupMessages/query`.
    Query,
    /// `POST /v1.0/im/innerGroups/memberLists/query`.
    InnerMembers,
    /// `POST /v1.0/im/sceneGroups/members/batchQuery`.
    SceneMembers,
    /// `POST /v1.0/robot/oToMessages/batchSend`.
    BatchSend,
    /// `POST /v1.0/robot/groupMessages/recall`.
    Recall,
    /// `POST /topapi/v2/user/get`.
    UserGet,
    /// `POST /robot/sendBySession`.
    SendBySession,
    /// `POST /v1.0/gateway/connections/open` (Stream mode).
    GatewayOpen,
    /// Any endpoint: faults match every call; [`FakeDingTalk::calls`] sums
    /// all counters.
    Any,
}

/// A failure the fake produces instead of (or before) the normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer `status` with the new-API error JSON
    /// `{"code","message","requestid"}` (on every path, like a gateway).
    Status {
        /// HTTP status, e.g. 429, 403 or 500.
        status: u16,
        /// `code`, e.g. `Forbidden.AccessDenied.QpsLimitForAppkeyAndApi`.
        code: String,
        /// `message`.
        message: String,
    },
    /// HTTP 504 with the new-API error JSON (code `GatewayTimeout`).
    GatewayTimeout,
    /// Sleep this long, then answer normally.
    Hang(Duration),
    /// HTTP 200 whose JSON body is cut in the middle.
    Truncated,
    /// HTTP 200 with an HTML page (`text/html`), like the egress-IP block page.
    NotJson,
    /// HTTP 200 with an old-API error body `{"errcode","errmsg"}`.
    OldApiErr {
        /// `errcode`, e.g. 90018 or -1.
        errcode: i64,
        /// `errmsg`.
        errmsg: String,
    },
}

impl Fault {
    /// Shorthand for [`Fault::Status`].
    pub fn status(status: u16, code: &str, message: &str) -> Self {
        Fault::Status {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// How a message reached a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `POST /v1.0/robot/groupMessages/send`.
    OpenApi,
    /// `POST /robot/sendBySession` (a callback's `sessionWebhook`).
    Session,
}

/// One message the fake accepted, as the group would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The group's openConversationId.
    pub group: String,
    /// Which API delivered it.
    pub via: Via,
    /// `msgKey` (OpenAPI, e.g. `sampleMarkdown`) or `msgtype` (session, e.g. `markdown`).
    pub msg_key_or_type: String,
    /// The title, for message kinds that have one.
    pub title: Option<String>,
    /// The visible text (markdown text, or text content).
    pub text: String,
    /// `at.atUserIds` (session messages only; the OpenAPI send has no @).
    pub at_user_ids: Vec<String>,
    /// The `processQueryKey` returned for an OpenAPI send.
    pub process_query_key: Option<String>,
}

/// One accepted `oToMessages/batchSend` call: a direct robot message to
/// each of its users (no @ is possible in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBatch {
    /// `userIds` as sent, in order.
    pub user_ids: Vec<String>,
    /// The users who got it (neither invalid nor flow-controlled).
    pub delivered_to: Vec<String>,
    /// `msgKey`.
    pub msg_key: String,
    /// The title, for message kinds that have one.
    pub title: Option<String>,
    /// The visible text.
    pub text: String,
    /// The `processQueryKey` answered.
    pub process_query_key: String,
}

/// An @-mention of the robot, to be turned into a callback body by
/// [`FakeDingTalk::mention_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// `msgId`.
    pub msg_id: String,
    /// The group (`conversationId`).
    pub group: String,
    /// The sender's userId (`senderStaffId`).
    pub sender: String,
    /// The sender's display name (`senderNick`).
    pub sender_nick: String,
    /// What the user typed after the @robot (sent with a leading space).
    pub text: String,
    /// Lifetime of the `sessionWebhook` created for this mention.
    pub session_ttl: Duration,
}

impl Mention {
    /// A mention with a random `msgId` and the documented 90-minute session.
    pub fn new(group: &str, sender: &str, sender_nick: &str, text: &str) -> Self {
        Self {
            msg_id: format!("msg{}", state::random_b64(12)),
            group: group.to_owned(),
            sender: sender.to_owned(),
            sender_nick: sender_nick.to_owned(),
            text: text.to_owned(),
            session_ttl: Duration::from_secs(90 * 60),
        }
    }
}

/// A running fake DingTalk. Cheap to clone; all clones control the same
/// server.
#[derive(Clone)]
pub struct FakeDingTalk {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: FakeConfig,
    addr: SocketAddr,
    state: Mutex<State>,
    shutdown: watch::Sender<bool>,
    gateway: gateway::Gateway,
    /// Woken whenever a message is added to `sent` (see [`FakeDingTalk::wait_sent`]).
    sent_signal: tokio::sync::Notify,
}

impl std::fmt::Debug for FakeDingTalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDingTalk")
            .field("addr", &self.inner.addr)
            .field("app_key", &self.inner.cfg.app_key)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A callback timestamp for now, distinct from every earlier one this
/// process made (the next free millisecond). DingTalk stamps each callback
/// with its send time; the fake's clients send bursts far faster than one a
/// millisecond, and readbot lets one signed timestamp carry only a few
/// messages.
pub fn callback_timestamp() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = now_ms();
    let mut prev = LAST.load(std::sync::atomic::Ordering::SeqCst);
    loop {
        let next = now.max(prev.saturating_add(1));
        match LAST.compare_exchange(
            prev,
            next,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        ) {
            Ok(_) => return next,
            Err(seen) => prev = seen,
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl FakeDingTalk {
    /// Binds `127.0.0.1:0` and spawns the server on the current tokio runtime.
    pub async fn start(cfg: FakeConfig) -> std::io::Result<FakeDingTalk> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (gateway, gateway_listener) = gateway::Gateway::bind().await?;
        let (tx, mut rx) = watch::channel(false);
        let fake = FakeDingTalk {
            inner: Arc::new(Inner {
                cfg,
                addr,
                state: Mutex::new(State::new()),
                shutdown: tx,
                gateway,
                sent_signal: tokio::sync::Notify::new(),
            }),
        };
        gateway::spawn_accept(gateway_listener, fake.clone(), rx.clone());
        let app = server::router(fake.clone());
        tokio::spawn(async move {
            let stop = async move {
                while !*rx.borrow_and_update() {
                    if rx.changed().await.is_err() {
                        // Every handle is gone: keep serving until the runtime ends.
                        std::future::pending::<()>().await;
                    }
                }
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::warn!(error = %e, "fake DingTalk server stopped");
            }
        });
        Ok(fake)
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash. Both the new API
    /// (`/v1.0/...`) and the old API (`/topapi/...`, `/robot/...`) live here.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The environment that points readbot at this fake: its app key, app
    /// secret and robot code, and this fake as both the new-API base
    /// (`DINGTALK_API_BASE`, which also serves Stream mode's open call) and
    /// the old-API base (`DINGTALK_OAPI_BASE`, which also hosts the session
    /// webhooks). Everything else (listen address, data folder, API token,
    /// timeouts, mode, ...) is the caller's.
    pub fn readbot_env(&self) -> Vec<(&'static str, String)> {
        let c = &self.inner.cfg;
        vec![
            ("DINGTALK_APP_KEY", c.app_key.clone()),
            ("DINGTALK_APP_SECRET", c.app_secret.clone()),
            ("DINGTALK_ROBOT_CODE", c.robot_code.clone()),
            ("DINGTALK_API_BASE", self.base_url()),
            ("DINGTALK_OAPI_BASE", self.base_url()),
        ]
    }

    /// The app and robot settings this fake was started with.
    pub fn config(&self) -> &FakeConfig {
        &self.inner.cfg
    }

    /// Stops accepting connections (best effort: in-flight requests finish).
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // ----- groups and people -------------------------------------------------

    /// Creates (or replaces) a group with its members `(userId, name)`, in
    /// order. Members are also added to the user directory.
    pub fn add_group(&self, group: &str, kind: GroupKind, members: &[(&str, &str)]) {
        self.lock().add_group(group, kind, members);
    }

    /// Adds a person to the directory behind `topapi/v2/user/get`.
    pub fn add_user(&self, user_id: &str, name: &str) {
        self.lock().add_user(user_id, name);
    }

    // ----- notices ------------------------------------------------------------

    /// Creates a notice as if the robot had sent a `sampleMarkdown` message
    /// to `group` through the OpenAPI (recorded in [`sent`](Self::sent)), and
    /// returns its `processQueryKey`. The group need not exist.
    pub fn seed_notice(&self, group: &str, title: &str, text: &str) -> String {
        let robot = self.inner.cfg.robot_code.clone();
        let key = self.lock().record_send(
            group,
            &robot,
            "sampleMarkdown",
            Some(title.to_owned()),
            text.to_owned(),
        );
        self.notify_sent();
        key
    }

    /// Marks `users` as having read the notice, appending new readers in
    /// order (users who already read it are skipped). Returns false when the
    /// key is unknown.
    pub fn mark_read(&self, process_query_key: &str, users: &[&str]) -> bool {
        self.lock().mark_read(process_query_key, users)
    }

    /// Sets the `sendStatus` of a notice: `"SUCCESS"`, `"RECALLED"` or
    /// `"PROCESSING"`. Returns false when the key is unknown.
    pub fn set_send_status(&self, process_query_key: &str, status: &str) -> bool {
        self.lock()
            .with_notice(process_query_key, |n| n.status = status.to_owned())
    }

    /// The next `times` read queries for this key answer HTTP 400
    /// `processQueryKey.expireTime` ("not generated yet"). Returns false when
    /// the key is unknown.
    pub fn set_not_ready(&self, process_query_key: &str, times: usize) -> bool {
        self.lock()
            .with_notice(process_query_key, |n| n.not_ready = times)
    }

    /// Every later read query for this key answers HTTP 400
    /// `processQueryKey.expireTime` (data expired). Returns false when the key
    /// is unknown.
    pub fn expire_query_data(&self, process_query_key: &str) -> bool {
        self.lock()
            .with_notice(process_query_key, |n| n.expired = true)
    }

    /// Everything accepted via `groupMessages/send` and `sendBySession`, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.lock().sent.clone()
    }

    /// How many messages [`sent`](Self::sent) holds (cheaper than cloning them).
    pub fn sent_count(&self) -> usize {
        self.lock().sent.len()
    }

    /// Waits until at least `count` messages have been accepted (by either
    /// send path) or `timeout` passes; returns whether the count was reached.
    /// Wakes as soon as the fake records the message, so benchmarks can time
    /// "reply posted" without polling.
    pub async fn wait_sent(&self, count: usize, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.sent_signal.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.sent_count() >= count {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    pub(crate) fn notify_sent(&self) {
        self.inner.sent_signal.notify_waiters();
    }

    /// The messages `group` received, in order.
    pub fn group_view(&self, group: &str) -> Vec<SentMessage> {
        self.lock()
            .sent
            .iter()
            .filter(|m| m.group == group)
            .cloned()
            .collect()
    }

    /// The `sendStatus` the read query answers for a notice (`RECALLED`
    /// once recalled), or `None` for an unknown key.
    pub fn send_status(&self, process_query_key: &str) -> Option<String> {
        self.lock()
            .notices
            .get(process_query_key)
            .map(|n| n.status.clone())
    }

    // ----- direct messages and recalls -----------------------------------------

    /// Every accepted `oToMessages/batchSend` call, in order.
    pub fn direct_batches(&self) -> Vec<DirectBatch> {
        self.lock().direct.clone()
    }

    /// From now on `batchSend` reports these users in `invalidStaffIdList`.
    pub fn set_invalid_users(&self, users: &[&str]) {
        self.lock()
            .invalid_users
            .extend(users.iter().map(|u| (*u).to_owned()));
    }

    /// From now on `batchSend` reports these users in
    /// `flowControlledStaffIdList` (and does not deliver to them).
    pub fn set_flow_controlled(&self, users: &[&str]) {
        self.lock()
            .flow_controlled
            .extend(users.iter().map(|u| (*u).to_owned()));
    }

    /// From now on a recall of this key fails with `reason` in `failedResult`.
    pub fn fail_recall(&self, process_query_key: &str, reason: &str) {
        self.lock()
            .recall_failures
            .insert(process_query_key.to_owned(), reason.to_owned());
    }

    // ----- sessions -------------------------------------------------------------

    /// Opens a reply session for `group` valid for `ttl`. Returns the
    /// `sessionWebhook` URL (`{base}/robot/sendBySession?session=<random>`)
    /// and `sessionWebhookExpiredTime` (epoch ms).
    pub fn new_session(&self, group: &str, ttl: Duration) -> (String, i64) {
        let id = state::random_hex(16);
        let expires_ms = now_ms().saturating_add(duration_ms(ttl));
        self.lock().add_session(&id, group, expires_ms);
        (
            format!("{}/robot/sendBySession?session={id}", self.base_url()),
            expires_ms,
        )
    }

    /// Ends the session of a `sessionWebhook` URL now (later posts answer
    /// errcode 300001).
    pub fn expire_session(&self, url: &str) {
        let id = url::Url::parse(url).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "session")
                .map(|(_, v)| v.into_owned())
        });
        if let Some(id) = id {
            self.lock().sessions.remove(&id);
        }
    }

    // ----- callbacks ------------------------------------------------------------

    /// The callback `sign` header:
    /// `base64(HmacSHA256(key = secret, msg = timestamp_ms + "\n" + secret))`.
    pub fn sign(timestamp_ms: &str, secret: &str) -> String {
        let digest = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
            Ok(mut mac) => {
                mac.update(timestamp_ms.as_bytes());
                mac.update(b"\n");
                mac.update(secret.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            // HMAC takes keys of any length; this arm is unreachable.
            Err(_) => Vec::new(),
        };
        base64::engine::general_purpose::STANDARD.encode(digest)
    }

    /// `(timestamp, sign)` headers for a callback sent now with the app
    /// secret (each call a distinct timestamp: [`callback_timestamp`]).
    pub fn callback_headers(&self) -> (String, String) {
        let ts = callback_timestamp().to_string();
        let sign = Self::sign(&ts, &self.inner.cfg.app_secret);
        (ts, sign)
    }

    /// The robot's encrypted id (`chatbotUserId`, and its `dingtalkId` in `atUsers`).
    pub fn robot_dingtalk_id(&self) -> String {
        format!("$:LWCP_v1:$fakebot{}", self.inner.cfg.robot_code)
    }

    /// The full documented HTTP-callback JSON for a group @-mention, with a
    /// fresh session from [`new_session`](Self::new_session).
    pub fn mention_body(&self, m: &Mention) -> serde_json::Value {
        let (webhook, expires) = self.new_session(&m.group, m.session_ttl);
        let robot_id = self.robot_dingtalk_id();
        let corp = "dingfakecorp0000000000000000000";
        serde_json::json!({
            "msgtype": "text",
            "text": { "content": format!(" {}", m.text) },
            "msgId": m.msg_id,
            "createAt": now_ms(),
            "conversationType": "2",
            "conversationId": m.group,
            "conversationTitle": format!("group {}", m.group),
            "senderId": format!("$:LWCP_v1:$fakeuser{}", m.sender),
            "senderNick": m.sender_nick,
            "senderStaffId": m.sender,
            "senderCorpId": corp,
            "senderPlatform": "Mac",
            "chatbotUserId": robot_id,
            "chatbotCorpId": corp,
            "robotCode": self.inner.cfg.robot_code,
            "isAdmin": false,
            "isInAtList": true,
            "atUsers": [ { "dingtalkId": robot_id } ],
            "sessionWebhook": webhook,
            "sessionWebhookExpiredTime": expires,
        })
    }

    /// POSTs [`mention_body`](Self::mention_body) to `callback_url` the way
    /// DingTalk's HTTP mode does: JSON body plus `timestamp` and `sign`
    /// headers made with the app secret. Returns readbot's answer.
    pub async fn deliver_mention(
        &self,
        callback_url: &str,
        m: &Mention,
    ) -> reqwest::Result<reqwest::Response> {
        // reqwest is built without a default crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (ts, sign) = self.callback_headers();
        reqwest::Client::new()
            .post(callback_url)
            .header("timestamp", ts)
            .header("sign", sign)
            .json(&self.mention_body(m))
            .send()
            .await
    }

    // ----- faults, latency, counters ------------------------------------------------

    /// Makes the next `times` calls to `api` (or to any endpoint, with
    /// [`Api::Any`]) fail with `fault`. Faults queue up in injection order.
    pub fn inject(&self, api: Api, fault: Fault, times: usize) {
        if times > 0 {
            self.lock().faults.push((api, fault, times));
        }
    }

    /// Adds `d` before every answer.
    pub fn set_latency(&self, d: Duration) {
        self.lock().latency = d;
    }

    /// Invalidates every issued access token now; the next token request
    /// issues a new one.
    pub fn expire_tokens(&self) {
        self.lock().expire_tokens();
    }

    /// How many requests `api` received (failed ones included);
    /// [`Api::Any`] gives the total.
    pub fn calls(&self, api: Api) -> usize {
        let st = self.lock();
        match api {
            Api::Any => st.calls.values().sum(),
            api => st.calls.get(&api).copied().unwrap_or(0),
        }
    }

    /// Sets every call counter back to zero.
    pub fn reset_calls(&self) {
        self.lock().calls.clear();
    }
}
