//! Stream mode: receive bot messages over DingTalk's WebSocket gateway
//! instead of an HTTP callback (no public URL needed). Wire facts:
//! `dingtalk-api.md` §7.
//!
//! - [`frame`]: the open-connection call, frames and acks (the only place
//!   that knows their JSON).
//! - [`backoff`]: exponential reconnect delays with jitter.
//! - [`StreamClient`]: the connection loop. It opens a connection with a
//!   fresh one-time ticket, answers `ping`s, follows `disconnect`, acks every
//!   frame, and hands bot messages (parsed by [`crate::dingtalk::callback::parse`],
//!   the same parser as HTTP mode) to a [`BotMessageHandler`]. It never
//!   imports the bot: the application wires the bot in as that handler.
//! - [`probe`]: one open call for `readbot check` (the ticket is discarded).
//!
//! One connection at a time, one task: the socket, its keep-alive pings and
//! its zombie timer live in one `select!` loop, and event-handler tasks live
//! in a `JoinSet` that is dropped with the connection, so nothing outlives a
//! reconnect.

pub mod backoff;
mod client;
pub mod frame;
pub mod probe;

pub use client::{StreamClient, StreamSettings};
pub use frame::{Event, EventStatus};

use crate::domain::Incoming;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Failures of one connection attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The open-connection call did not get an answer.
    #[error("open-connection call failed: {0}")]
    Transport(String),
    /// DingTalk answered the open call with an error.
    #[error("DingTalk refused to open a connection: HTTP {status} {code}: {message} (requestid {request_id})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// `code`.
        code: String,
        /// `message`.
        message: String,
        /// `requestid`, for DingTalk support.
        request_id: String,
    },
    /// The open call's answer was not `{"endpoint","ticket"}`.
    #[error("open-connection answer unusable: {0}")]
    BadAnswer(String),
    /// The gateway refused the WebSocket handshake (bad, used or expired ticket).
    #[error("the gateway refused the ticket: HTTP {0}")]
    TicketRefused(u16),
    /// TCP, TLS or WebSocket failure while connecting.
    #[error("WebSocket connect failed: {0}")]
    Connect(String),
    /// A step took longer than the configured timeout.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// Receives bot messages (@mentions, 1:1 chats) after they were acked.
#[async_trait]
pub trait BotMessageHandler: Send + Sync + 'static {
    /// One parsed bot message. Should return quickly (the connection waits):
    /// start the work, do not finish it here.
    async fn bot_message(&self, msg: Incoming);
}

/// Handles one `eventType` (e.g. `robot_msg_read`, `chat_add_member`).
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    /// Decides the ack: [`EventStatus::Later`] makes DingTalk redeliver.
    async fn handle(&self, event: Event) -> EventStatus;
}

/// What the connection loop dispatches to.
#[derive(Clone)]
pub struct Handlers {
    bot: Arc<dyn BotMessageHandler>,
    events: HashMap<String, Arc<dyn EventHandler>>,
}

impl Handlers {
    /// Bot messages go to `bot`; events without a handler are acked SUCCESS.
    pub fn new(bot: Arc<dyn BotMessageHandler>) -> Self {
        Self {
            bot,
            events: HashMap::new(),
        }
    }

    /// Registers a handler for one `eventType`.
    pub fn on_event(mut self, event_type: &str, handler: Arc<dyn EventHandler>) -> Self {
        self.events.insert(event_type.to_owned(), handler);
        self
    }
}

/// Where the connection loop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnState {
    /// Not started yet.
    Starting,
    /// Opening a connection (open call + WebSocket handshake).
    Connecting,
    /// Connected and receiving.
    Connected,
    /// Waiting before the next attempt.
    Backoff,
    /// Stopped (shutdown).
    Stopped,
}

/// A snapshot of the connection loop, for `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// Current state.
    pub state: ConnState,
    /// When the current connection was established (epoch ms).
    pub connected_since: Option<i64>,
    /// Connections established since start.
    pub connections: u64,
    /// Failed attempts since the last healthy connection.
    pub consecutive_failures: u32,
    /// The delay before the next attempt, while in [`ConnState::Backoff`].
    pub retry_in_ms: Option<u64>,
    /// The last failure to connect.
    pub last_error: Option<String>,
    /// Why the previous connection ended.
    pub last_disconnect: Option<String>,
    /// Frames received since start.
    pub frames: u64,
    /// Bot messages handed to the bot since start.
    pub bot_messages: u64,
}

impl Default for StreamStatus {
    fn default() -> Self {
        Self {
            state: ConnState::Starting,
            connected_since: None,
            connections: 0,
            consecutive_failures: 0,
            retry_in_ms: None,
            last_error: None,
            last_disconnect: None,
            frames: 0,
            bot_messages: 0,
        }
    }
}

/// Shared, cheap-to-clone view of the loop's [`StreamStatus`].
#[derive(Debug, Clone, Default)]
pub struct StatusHandle(Arc<Mutex<StreamStatus>>);

impl StatusHandle {
    /// A copy of the current status.
    pub fn snapshot(&self) -> StreamStatus {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut StreamStatus)) {
        f(&mut self.lock());
    }
}
