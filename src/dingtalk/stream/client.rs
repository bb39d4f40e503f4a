//! The connection loop: open → connect → serve frames → reconnect.

use super::backoff::Backoff;
use super::frame::{self, Ack, Event, EventStatus, Frame, FrameType, Ticket};
use super::{ConnState, Handlers, StatusHandle, StreamError};
use crate::config::{Config, Secret, StreamConfig};
use crate::dingtalk::callback::{self, CallbackError};
use crate::domain::{now_millis, Incoming};
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::header::ACCEPT;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for a polite close handshake before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the loop needs to know.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// App key (Client ID).
    pub client_id: String,
    /// App secret (Client Secret).
    pub client_secret: Secret,
    /// New-API base; the open call goes to `{api_base}/v1.0/gateway/connections/open`.
    pub api_base: Url,
    /// Timeout of the open call, of the WebSocket handshake and of one send.
    pub timeout: Duration,
    /// Backoff, keep-alive and zombie settings.
    pub stream: StreamConfig,
}

impl StreamSettings {
    /// Settings from the application config.
    pub fn from_config(c: &Config) -> Self {
        Self {
            client_id: c.dingtalk.app_key.clone(),
            client_secret: c.dingtalk.app_secret.clone(),
            api_base: c.dingtalk.api_base.clone(),
            timeout: c.dingtalk.timeout,
            stream: c.stream.clone(),
        }
    }
}

/// How one connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// readbot is stopping.
    Shutdown,
    /// The gateway sent a SYSTEM `disconnect`.
    Disconnect(String),
    /// The peer closed (with or without a close frame).
    Closed(String),
    /// A read or write failed.
    Failed(String),
    /// Nothing arrived for the idle timeout.
    Zombie(Duration),
}

impl End {
    fn label(&self) -> &'static str {
        match self {
            End::Shutdown => "shutdown",
            End::Disconnect(_) => "disconnect",
            End::Closed(_) => "closed",
            End::Failed(_) => "error",
            End::Zombie(_) => "zombie",
        }
    }
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Shutdown => f.write_str("shutdown"),
            End::Disconnect(r) => write!(f, "gateway sent disconnect: {r}"),
            End::Closed(r) => write!(f, "connection closed: {r}"),
            End::Failed(e) => write!(f, "connection failed: {e}"),
            End::Zombie(d) => write!(f, "no frame, ping or pong for {} ms", d.as_millis()),
        }
    }
}

/// What to do after a text frame.
enum Step {
    Nothing,
    Ack(Ack),
    Bot(Ack, Box<Incoming>),
    /// The gateway's `disconnect`: acknowledge it (when it has a
    /// `messageId`), then close.
    Disconnect(String, Option<Ack>),
}

/// The Stream-mode client. Build it, then [`run`](Self::run) it in a task.
pub struct StreamClient {
    settings: StreamSettings,
    http: reqwest::Client,
    handlers: Handlers,
    status: StatusHandle,
}

impl std::fmt::Debug for StreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Resolves once `rx` says stop, or its sender is gone.
async fn wait_stop(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl StreamClient {
    /// Builds the client (HTTP client for the open call included).
    pub fn new(settings: StreamSettings, handlers: Handlers) -> Result<Self, StreamError> {
        // reqwest and the TLS WebSocket use the process-wide rustls provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()
            .map_err(|e| StreamError::Client(e.to_string()))?;
        Ok(Self {
            settings,
            http,
            handlers,
            status: StatusHandle::default(),
        })
    }

    /// The live status (for `/healthz`).
    pub fn status(&self) -> StatusHandle {
        self.status.clone()
    }

    /// `POST /v1.0/gateway/connections/open`: a fresh one-time ticket.
    pub async fn open(&self) -> Result<Ticket, StreamError> {
        let url = crate::dingtalk::api_url(&self.settings.api_base, frame::OPEN_PATH);
        let body = frame::open_request(
            &self.settings.client_id,
            self.settings.client_secret.expose(),
        );
        let resp = self
            .http
            .post(url)
            .header(ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    StreamError::Timeout("open-connection call")
                } else {
                    StreamError::Transport(crate::domain::error_chain(&e))
                }
            })?;
        let status = resp.status();
        // The ticket answer is tiny; a larger body is not read.
        let cap = crate::dingtalk::capped::MAX_TICKET_BYTES;
        let bytes = crate::dingtalk::capped::read_capped(resp, cap)
            .await
            .map_err(|e| match e {
                crate::dingtalk::capped::Capped::TooLarge => {
                    StreamError::BadAnswer(format!("answer larger than {cap} bytes"))
                }
                crate::dingtalk::capped::Capped::Read(e) if e.is_timeout() => {
                    StreamError::Timeout("open-connection call")
                }
                crate::dingtalk::capped::Capped::Read(e) => {
                    StreamError::Transport(crate::domain::error_chain(&e))
                }
            })?;
        if !status.is_success() {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let text = |keys: &[&str]| {
                keys.iter()
                    .find_map(|k| v.get(*k).and_then(serde_json::Value::as_str))
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut message = text(&["message", "Message"]);
            if message.is_empty() {
                message = String::from_utf8_lossy(&bytes).chars().take(200).collect();
            }
            return Err(StreamError::Refused {
                status: status.as_u16(),
                code: text(&["code", "Code"]),
                message,
                request_id: text(&["requestid", "RequestId", "requestId"]),
            });
        }
        Ticket::parse(&bytes).map_err(StreamError::BadAnswer)
    }

    /// The WebSocket handshake with `endpoint?ticket=…`.
    async fn connect(&self, ticket: &Ticket) -> Result<Ws, StreamError> {
        let url = ticket.connect_url();
        let config = WebSocketConfig::default()
            .max_message_size(Some(frame::MAX_FRAME_BYTES))
            .max_frame_size(Some(frame::MAX_FRAME_BYTES));
        let handshake =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
        match tokio::time::timeout(self.settings.timeout, handshake).await {
            Err(_) => Err(StreamError::Timeout("WebSocket handshake")),
            Ok(Err(WsError::Http(resp))) => Err(StreamError::TicketRefused(resp.status().as_u16())),
            Ok(Err(e)) => Err(StreamError::Connect(crate::domain::error_chain(&e))),
            Ok(Ok((ws, _))) => Ok(ws),
        }
    }

    /// Opens a new connection (never reusing a ticket): open call, then handshake.
    async fn establish(&self) -> Result<Ws, StreamError> {
        let ticket = self.open().await?;
        tracing::debug!(endpoint = %ticket.endpoint, "stream ticket issued");
        self.connect(&ticket).await
    }

    /// Runs until `shutdown` turns true (or its sender is dropped): connect,
    /// serve, and on any failure reconnect after an exponential, jittered
    /// delay. A connection that stayed up `healthy_after` resets the delay;
    /// a `disconnect` of a healthy connection reconnects at once.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let cfg = self.settings.stream.clone();
        let mut backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
        metrics::gauge!("readbot_stream_connected").set(0.0);
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.status.update(|s| {
                s.state = ConnState::Connecting;
                s.retry_in_ms = None;
            });
            let attempt = tokio::select! {
                r = self.establish() => r,
                _ = wait_stop(&mut shutdown) => break,
            };
            let delay = match attempt {
                Err(e) => {
                    let d = backoff.next_delay();
                    metrics::counter!("readbot_stream_connect_failures_total").increment(1);
                    tracing::warn!(
                        error = %e,
                        failures = backoff.failures(),
                        retry_in_ms = ms(d),
                        "stream: could not connect"
                    );
                    self.status.update(|s| {
                        s.last_error = Some(e.to_string());
                        s.consecutive_failures = backoff.failures();
                    });
                    d
                }
                Ok(ws) => {
                    let since = Instant::now();
                    metrics::counter!("readbot_stream_connections_total").increment(1);
                    metrics::gauge!("readbot_stream_connected").set(1.0);
                    self.status.update(|s| {
                        s.state = ConnState::Connected;
                        s.connected_since = Some(now_millis());
                        s.connections += 1;
                    });
                    tracing::info!("stream: connected");
                    let end = self.session(ws, &mut shutdown).await;
                    metrics::gauge!("readbot_stream_connected").set(0.0);
                    metrics::counter!("readbot_stream_disconnects_total", "reason" => end.label())
                        .increment(1);
                    let healthy = since.elapsed() >= cfg.healthy_after;
                    if healthy {
                        backoff.reset();
                    }
                    self.status.update(|s| {
                        s.connected_since = None;
                        s.last_disconnect = Some(end.to_string());
                        s.consecutive_failures = backoff.failures();
                    });
                    match end {
                        End::Shutdown => break,
                        End::Disconnect(_) if healthy => {
                            tracing::info!(reason = %end, "stream: reconnecting with a new ticket");
                            continue;
                        }
                        _ => {
                            let d = backoff.next_delay();
                            tracing::warn!(
                                reason = %end,
                                failures = backoff.failures(),
                                retry_in_ms = ms(d),
                                "stream: connection lost"
                            );
                            self.status
                                .update(|s| s.consecutive_failures = backoff.failures());
                            d
                        }
                    }
                }
            };
            self.status.update(|s| {
                s.state = ConnState::Backoff;
                s.retry_in_ms = Some(ms(delay));
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = wait_stop(&mut shutdown) => break,
            }
        }
        self.status.update(|s| {
            s.state = ConnState::Stopped;
            s.connected_since = None;
            s.retry_in_ms = None;
        });
        tracing::info!("stream: stopped");
    }

    async fn send(&self, ws: &mut Ws, msg: Message) -> Result<(), String> {
        match tokio::time::timeout(self.settings.timeout, ws.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("send timed out".into()),
        }
    }

    /// Serves one connection until it ends.
    async fn session(&self, mut ws: Ws, shutdown: &mut watch::Receiver<bool>) -> End {
        let cfg = &self.settings.stream;
        let (ack_tx, mut ack_rx) = mpsc::channel::<Ack>(64);
        // Event-handler tasks of this connection: dropped (aborted) with it.
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut ping =
            tokio::time::interval_at(Instant::now() + cfg.ping_interval, cfg.ping_interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_rx = Instant::now();
        let end = loop {
            let zombie_at = last_rx + cfg.idle_timeout;
            tokio::select! {
                _ = wait_stop(shutdown) => break End::Shutdown,
                _ = tokio::time::sleep_until(zombie_at) => break End::Zombie(cfg.idle_timeout),
                _ = ping.tick() => {
                    if let Err(e) = self.send(&mut ws, Message::Ping(Default::default())).await {
                        break End::Failed(e);
                    }
                }
                Some(ack) = ack_rx.recv() => {
                    if let Err(e) = self.send(&mut ws, Message::text(ack.to_json())).await {
                        break End::Failed(e);
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                msg = ws.next() => {
                    let msg = match msg {
                        None => break End::Closed("ended without a close frame".into()),
                        Some(Err(e)) => break End::Failed(e.to_string()),
                        Some(Ok(m)) => m,
                    };
                    last_rx = Instant::now();
                    match msg {
                        Message::Text(text) => match self.on_frame(text.as_str(), &ack_tx, &mut tasks) {
                            Step::Nothing => {}
                            Step::Ack(ack) => {
                                if let Err(e) = self.send(&mut ws, Message::text(ack.to_json())).await {
                                    break End::Failed(e);
                                }
                            }
                            Step::Bot(ack, incoming) => {
                                if let Err(e) = self.send(&mut ws, Message::text(ack.to_json())).await {
                                    break End::Failed(e);
                                }
                                self.status.update(|s| s.bot_messages += 1);
                                self.handlers.bot.bot_message(*incoming).await;
                            }
                            Step::Disconnect(reason, ack) => {
                                // Acknowledged before the close, so the gateway
                                // does not resend it; a failed ack changes nothing.
                                if let Some(ack) = ack {
                                    if let Err(e) = self.send(&mut ws, Message::text(ack.to_json())).await {
                                        tracing::debug!(error = %e, "stream: disconnect not acknowledged");
                                    }
                                }
                                break End::Disconnect(reason);
                            }
                        },
                        Message::Close(frame) => {
                            break End::Closed(frame.map_or_else(
                                || "close frame".to_owned(),
                                |f| format!("close frame {} {}", u16::from(f.code), f.reason),
                            ));
                        }
                        Message::Binary(_) => tracing::debug!("stream: binary message ignored"),
                        // Pings are answered by tungstenite; pongs only count as traffic.
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                    }
                }
            }
        };
        drop(tasks);
        if matches!(end, End::Shutdown | End::Disconnect(_) | End::Zombie(_)) {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT.min(self.settings.timeout), ws.close(None))
                .await;
        }
        end
    }

    /// Decides the answer to one text frame.
    fn on_frame(&self, text: &str, ack_tx: &mpsc::Sender<Ack>, tasks: &mut JoinSet<()>) -> Step {
        self.status.update(|s| s.frames += 1);
        let frame = match Frame::parse(text) {
            Ok(f) => f,
            Err(e) => {
                metrics::counter!("readbot_stream_frames_total", "type" => "invalid").increment(1);
                tracing::warn!(error = %e, "stream: unreadable frame ignored");
                return Step::Nothing;
            }
        };
        let id = frame.message_id().unwrap_or_default().to_owned();
        let kind = match &frame.kind {
            FrameType::System => "system",
            FrameType::Event => "event",
            FrameType::Callback => "callback",
            FrameType::Other(_) => "other",
        };
        metrics::counter!("readbot_stream_frames_total", "type" => kind).increment(1);
        match frame.kind {
            FrameType::System => match frame.topic() {
                frame::TOPIC_PING => Step::Ack(Ack::pong(&id, &frame.data)),
                frame::TOPIC_DISCONNECT => {
                    let reason = serde_json::from_str::<serde_json::Value>(&frame.data)
                        .ok()
                        .and_then(|v| v.get("reason")?.as_str().map(str::to_owned))
                        .unwrap_or_else(|| "no reason given".to_owned());
                    let ack = frame.message_id().map(Ack::disconnect_ok);
                    Step::Disconnect(reason, ack)
                }
                other => {
                    tracing::info!(topic = other, "stream: unknown system topic");
                    Step::Ack(Ack::not_found(&id))
                }
            },
            FrameType::Callback if frame.topic() == frame::BOT_MESSAGE_TOPIC => {
                match callback::parse(frame.data.as_bytes()) {
                    Ok(msg) => Step::Bot(Ack::callback_ok(&id), Box::new(msg)),
                    Err(CallbackError::QuotaExhausted(detail)) => {
                        tracing::warn!(%detail, "DingTalk reports the robot quota is exhausted");
                        Step::Ack(Ack::callback_ok(&id))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "stream: unreadable bot message");
                        Step::Ack(Ack::bad_request(&id, &e.to_string()))
                    }
                }
            }
            FrameType::Event => {
                let event = Event::from_frame(&frame);
                match self.handlers.events.get(&event.event_type) {
                    None => {
                        tracing::debug!(event_type = %event.event_type, "stream: event without handler acked");
                        Step::Ack(Ack::event(&id, EventStatus::Success))
                    }
                    Some(handler) => {
                        let handler = handler.clone();
                        let tx = ack_tx.clone();
                        tasks.spawn(async move {
                            let status = handler.handle(event).await;
                            let _ = tx.send(Ack::event(&id, status)).await;
                        });
                        Step::Nothing
                    }
                }
            }
            FrameType::Callback | FrameType::Other(_) => {
                tracing::info!(topic = frame.topic(), "stream: no handler for topic");
                Step::Ack(Ack::not_found(&id))
            }
        }
    }
}
