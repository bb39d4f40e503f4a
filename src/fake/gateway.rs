//! The fake Stream gateway (`dingtalk-api.md` §7), written from the document
//! and checked against DingTalk's official Python Stream SDK
//! (`scripts/stream-sdk-conformance.py`), independently of readbot's client.
//!
//! - `POST /v1.0/gateway/connections/open` (on the fake's HTTP port): checks
//!   the credentials and subscriptions, answers XML unless the request says
//!   `Accept: application/json` (as DingTalk does), and issues a one-time
//!   ticket valid for 90 s for the WebSocket endpoint `ws://127.0.0.1:PORT/connect`.
//! - The WebSocket endpoint (its own port) accepts `?ticket=…` once; unknown,
//!   used or expired tickets, and tickets refused on purpose
//!   ([`FakeDingTalk::refuse_tickets`]), get HTTP 401 in the handshake.
//! - Pushes frames with string headers and JSON-in-a-string `data`
//!   ([`FakeDingTalk::push_mention`], [`FakeDingTalk::push_event`],
//!   [`FakeDingTalk::ping_streams`], ...) to a random live connection, like
//!   DingTalk, and records every ack with the frame it answers.
//! - Ends connections three ways: a SYSTEM `disconnect` frame and a close
//!   after a grace period (DingTalk: about 10 s), a silent drop (TCP closed,
//!   no close frame), or a stall (socket kept open, nothing read or written:
//!   a zombie only keep-alive can detect).
//!
//! Choices where DingTalk documents nothing: bad credentials answer HTTP 400
//! `invalidClientIdOrSecret` (as the token endpoint), bad subscriptions HTTP
//! 400 `invalidParameter.subscriptions.invalid`, a refused ticket HTTP 401.

use super::respond::{bad, json_object, new_api_response, prelude, ApiErr};
use super::state::{random_hex, request_id, uuid_like};
use super::{now_ms, Api, FakeDingTalk, Mention};
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt as _, StreamExt as _};
use rand::Rng as _;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Documented lifetime of a ticket.
const TICKET_TTL: Duration = Duration::from_secs(90);
/// Documented delay between a `disconnect` frame and the server's close.
const DISCONNECT_GRACE: Duration = Duration::from_secs(10);
/// The bot-message topic.
const BOT_TOPIC: &str = "/v1.0/im/bot/messages/get";

/// One accepted open-connection call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOpen {
    /// `clientId`.
    pub client_id: String,
    /// `subscriptions` as `(type, topic)`.
    pub subscriptions: Vec<(String, String)>,
    /// `ua`, when sent.
    pub ua: Option<String>,
    /// `localIp`, when sent.
    pub local_ip: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
    /// The ticket issued.
    pub ticket: String,
    /// When the call arrived.
    pub at: Instant,
}

/// One WebSocket connection, as the gateway saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConnection {
    /// Sequence number, from 1.
    pub id: u64,
    /// The ticket it was opened with.
    pub ticket: String,
    /// Pushes may go to it (open, and not disconnected, dropped or stalled).
    pub routable: bool,
    /// The gateway side has ended.
    pub closed: bool,
    /// WebSocket pings the client sent.
    pub client_pings: usize,
}

/// One ack the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAck {
    /// Connection it came on.
    pub connection: u64,
    /// `code`.
    pub code: i64,
    /// `message`.
    pub message: String,
    /// `headers.messageId`.
    pub message_id: String,
    /// `headers.contentType`.
    pub content_type: Option<String>,
    /// `data` (a JSON document carried as a string).
    pub data: String,
    /// `type` of the frame it answers, if the gateway pushed that messageId.
    pub frame_type: Option<String>,
    /// `topic` of the frame it answers.
    pub topic: Option<String>,
}

/// A frame the gateway pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `headers.messageId`.
    pub message_id: String,
    /// Connection it went to.
    pub connection: u64,
    /// `data` as sent.
    pub data: String,
}

#[derive(Debug)]
enum Cmd {
    Send(String),
    Disconnect(String, Duration),
    Drop,
    Stall,
}

struct Conn {
    id: u64,
    connection_id: String,
    ticket: String,
    routable: bool,
    closed: bool,
    client_pings: usize,
    tx: mpsc::UnboundedSender<Cmd>,
}

struct TicketRec {
    issued: Instant,
    used: bool,
}

#[derive(Default)]
struct GwState {
    tickets: HashMap<String, TicketRec>,
    ticket_ttl: Option<Duration>,
    base64_tickets: bool,
    refuse: usize,
    refused: usize,
    disconnect_grace: Option<Duration>,
    next_id: u64,
    conns: Vec<Conn>,
    opens: Vec<StreamOpen>,
    acks: Vec<StreamAck>,
    bad_messages: Vec<String>,
    pushed: HashMap<String, (String, String)>,
}

/// The gateway half of the fake: its own listener and state.
pub(crate) struct Gateway {
    addr: SocketAddr,
    state: Mutex<GwState>,
}

impl Gateway {
    pub(crate) async fn bind() -> std::io::Result<(Gateway, TcpListener)> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        Ok((
            Gateway {
                addr,
                state: Mutex::new(GwState::default()),
            },
            listener,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, GwState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Accepts WebSocket connections until the fake shuts down.
pub(crate) fn spawn_accept(
    listener: TcpListener,
    fake: FakeDingTalk,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((tcp, _)) => {
                        let fake = fake.clone();
                        let stop = stop.clone();
                        tokio::spawn(async move { serve_socket(tcp, fake, stop).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "fake gateway: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
    });
}

fn message_id() -> String {
    let h = random_hex(14);
    format!(
        "{}_{}_{}_{}",
        &h[0..8],
        rand::rng().random_range(100..1000),
        &h[8..19],
        &h[19..24]
    )
}

fn new_ticket(base64_style: bool) -> String {
    if base64_style {
        // Characters that must be URL-encoded in `?ticket=`.
        loop {
            let t = super::state::random_b64(18);
            let t = format!("{t}+/=");
            if t.contains('+') {
                return t;
            }
        }
    }
    uuid_like()
}

/// `POST /v1.0/gateway/connections/open`.
pub(super) async fn open_connection(
    AxState(fake): AxState<FakeDingTalk>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(resp) = prelude(&fake, Api::GatewayOpen).await {
        return resp;
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let wants_json = accept
        .as_deref()
        .is_some_and(|a| a.to_ascii_lowercase().contains("application/json"));
    let rid = request_id();
    let result = (|| {
        let req = json_object(&headers, &body)?;
        let cfg = fake.config();
        let text = |k: &str| req.get(k).and_then(Value::as_str).map(str::to_owned);
        if text("clientId").as_deref() != Some(cfg.app_key.as_str())
            || text("clientSecret").as_deref() != Some(cfg.app_secret.as_str())
        {
            return Err(bad(
                "invalidClientIdOrSecret",
                "无效的clientId或者clientSecret",
            ));
        }
        let subscriptions = parse_subscriptions(&req)?;
        let gw = fake.gateway();
        let mut st = gw.lock();
        let ticket = new_ticket(st.base64_tickets);
        st.tickets.insert(
            ticket.clone(),
            TicketRec {
                issued: Instant::now(),
                used: false,
            },
        );
        st.opens.push(StreamOpen {
            client_id: cfg.app_key.clone(),
            subscriptions,
            ua: text("ua"),
            local_ip: text("localIp"),
            accept: accept.clone(),
            ticket: ticket.clone(),
            at: Instant::now(),
        });
        Ok(json!({ "endpoint": format!("ws://{}/connect", gw.addr), "ticket": ticket }))
    })();
    if wants_json {
        return new_api_response(&rid, result);
    }
    // Without `Accept: application/json` the gateway answers XML.
    let (status, inner) = match result {
        Ok(v) => (
            StatusCode::OK,
            format!(
                "<endpoint>{}</endpoint><ticket>{}</ticket>",
                v["endpoint"].as_str().unwrap_or_default(),
                v["ticket"].as_str().unwrap_or_default()
            ),
        ),
        Err(e) => (
            e.status,
            format!("<code>{}</code><message>{}</message>", e.code, e.message),
        ),
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/xml;charset=utf-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><OpenConnectionResponse>{inner}<requestid>{rid}</requestid></OpenConnectionResponse>"),
    )
        .into_response()
}

fn parse_subscriptions(req: &Map<String, Value>) -> Result<Vec<(String, String)>, ApiErr> {
    let invalid = || {
        bad(
            "invalidParameter.subscriptions.invalid",
            "subscriptions is invalid",
        )
    };
    let list = req
        .get("subscriptions")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(invalid)?;
    let mut out = Vec::new();
    for s in list {
        let kind = s.get("type").and_then(Value::as_str).ok_or_else(invalid)?;
        let topic = s
            .get("topic")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(invalid)?;
        match kind {
            "CALLBACK" => {}
            // Events are chosen in the console; only `*` is accepted.
            "EVENT" if topic == "*" => {}
            _ => return Err(invalid()),
        }
        out.push((kind.to_owned(), topic.to_owned()));
    }
    Ok(out)
}

/// Checks (and uses up) the ticket of a handshake.
fn admit(fake: &FakeDingTalk, req: &Request) -> Result<String, &'static str> {
    if req.uri().path() != "/connect" {
        return Err("unknown path");
    }
    let ticket = req
        .uri()
        .query()
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "ticket")
                .map(|(_, v)| v.into_owned())
        })
        .ok_or("ticket missing")?;
    let gw = fake.gateway();
    let mut st = gw.lock();
    let ttl = st.ticket_ttl.unwrap_or(TICKET_TTL);
    let rec = st.tickets.get_mut(&ticket).ok_or("ticket unknown")?;
    if rec.used {
        return Err("ticket already used");
    }
    rec.used = true;
    if rec.issued.elapsed() > ttl {
        return Err("ticket expired");
    }
    if st.refuse > 0 {
        st.refuse -= 1;
        return Err("ticket refused");
    }
    Ok(ticket)
}

async fn serve_socket(tcp: TcpStream, fake: FakeDingTalk, stop: watch::Receiver<bool>) {
    let mut admitted: Option<String> = None;
    // The signature is tungstenite's; its error type is an HTTP response.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        match admit(&fake, req) {
            Ok(t) => {
                admitted = Some(t);
                Ok(resp)
            }
            Err(why) => {
                fake.gateway().lock().refused += 1;
                let mut err = ErrorResponse::new(Some(why.to_owned()));
                *err.status_mut() = StatusCode::UNAUTHORIZED;
                Err(err)
            }
        }
    };
    let ws = match tokio_tungstenite::accept_hdr_async(tcp, callback).await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!(error = %e, "fake gateway: handshake failed");
            return;
        }
    };
    let Some(ticket) = admitted else { return };
    let (tx, rx) = mpsc::unbounded_channel();
    let id = {
        let gw = fake.gateway();
        let mut st = gw.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.conns.push(Conn {
            id,
            connection_id: random_hex(8),
            ticket,
            routable: true,
            closed: false,
            client_pings: 0,
            tx,
        });
        id
    };
    serve_connection(ws, rx, &fake, id, stop).await;
    let gw = fake.gateway();
    let mut st = gw.lock();
    if let Some(c) = st.conns.iter_mut().find(|c| c.id == id) {
        c.closed = true;
        c.routable = false;
    }
}

async fn serve_connection(
    mut ws: WebSocketStream<TcpStream>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    fake: &FakeDingTalk,
    id: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut close_at: Option<tokio::time::Instant> = None;
    loop {
        let deadline = close_at;
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Cmd::Send(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Cmd::Disconnect(text, grace)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                    close_at = Some(tokio::time::Instant::now() + grace);
                }
                // Dropping the socket closes TCP without a close frame.
                Some(Cmd::Drop) => return,
                Some(Cmd::Stall) => {
                    stall(ws.into_inner(), stop).await;
                    return;
                }
            },
            msg = ws.next() => match msg {
                None | Some(Err(_)) => return,
                Some(Ok(Message::Text(t))) => record_client_text(fake, id, t.as_str()),
                Some(Ok(Message::Ping(_))) => {
                    let gw = fake.gateway();
                    let mut st = gw.lock();
                    if let Some(c) = st.conns.iter_mut().find(|c| c.id == id) {
                        c.client_pings += 1;
                    }
                }
                // tungstenite answers the close; the stream then ends.
                Some(Ok(_)) => {}
            },
            _ = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } else { std::future::pending::<()>().await } } => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return;
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// A zombie: never answers, never writes; ends when the client goes away or
/// the fake stops.
async fn stall(mut tcp: TcpStream, mut stop: watch::Receiver<bool>) {
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            r = tcp.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

fn record_client_text(fake: &FakeDingTalk, id: u64, text: &str) {
    let gw = fake.gateway();
    let mut st = gw.lock();
    let v: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            st.bad_messages.push(text.to_owned());
            return;
        }
    };
    let code = v.get("code").and_then(Value::as_i64);
    let message_id = v
        .get("headers")
        .and_then(|h| h.get("messageId"))
        .and_then(Value::as_str);
    let data = v.get("data").and_then(Value::as_str);
    let (Some(code), Some(message_id), Some(data)) = (code, message_id, data) else {
        st.bad_messages.push(text.to_owned());
        return;
    };
    let pushed = st.pushed.get(message_id).cloned();
    st.acks.push(StreamAck {
        connection: id,
        code,
        message: v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        message_id: message_id.to_owned(),
        content_type: v
            .get("headers")
            .and_then(|h| h.get("contentType"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        data: data.to_owned(),
        frame_type: pushed.as_ref().map(|p| p.0.clone()),
        topic: pushed.map(|p| p.1),
    });
}

impl FakeDingTalk {
    pub(crate) fn gateway(&self) -> &Gateway {
        &self.inner.gateway
    }

    /// `ws://127.0.0.1:PORT/connect`, the endpoint the open call hands out.
    pub fn gateway_endpoint(&self) -> String {
        format!("ws://{}/connect", self.gateway().addr)
    }

    /// Sends a frame to one random routable connection. Returns its
    /// `messageId` and connection, or `None` when no connection is up (the
    /// push is lost, as bot messages are fire-and-forget).
    pub fn push_frame(
        &self,
        frame_type: &str,
        topic: &str,
        extra_headers: &[(&str, &str)],
        data: &str,
    ) -> Option<Pushed> {
        let gw = self.gateway();
        let mut st = gw.lock();
        let live: Vec<usize> = (0..st.conns.len())
            .filter(|&i| st.conns[i].routable)
            .collect();
        if live.is_empty() {
            return None;
        }
        let i = live[rand::rng().random_range(0..live.len())];
        let id = message_id();
        let mut headers = Map::new();
        headers.insert(
            "appId".into(),
            Value::String(format!("app-{}", self.config().app_key)),
        );
        headers.insert(
            "connectionId".into(),
            Value::String(st.conns[i].connection_id.clone()),
        );
        headers.insert(
            "contentType".into(),
            Value::String("application/json".into()),
        );
        headers.insert("messageId".into(), Value::String(id.clone()));
        headers.insert("time".into(), Value::String(now_ms().to_string()));
        headers.insert("topic".into(), Value::String(topic.to_owned()));
        for (k, v) in extra_headers {
            headers.insert((*k).to_owned(), Value::String((*v).to_owned()));
        }
        let frame = json!({
            "specVersion": "1.0",
            "type": frame_type,
            "headers": headers,
            "data": data,
        });
        let conn = &st.conns[i];
        if conn.tx.send(Cmd::Send(frame.to_string())).is_err() {
            return None;
        }
        let connection = conn.id;
        st.pushed
            .insert(id.clone(), (frame_type.to_owned(), topic.to_owned()));
        Some(Pushed {
            message_id: id,
            connection,
            data: data.to_owned(),
        })
    }

    /// Pushes an @-mention as a CALLBACK on `/v1.0/im/bot/messages/get`;
    /// `data` is the same JSON as the HTTP callback body.
    pub fn push_mention(&self, m: &Mention) -> Option<Pushed> {
        let body = self.mention_body(m).to_string();
        self.push_frame("CALLBACK", BOT_TOPIC, &[], &body)
    }

    /// Pushes an EVENT with the documented event headers.
    pub fn push_event(&self, event_type: &str, data: &Value) -> Option<Pushed> {
        let event_id = random_hex(16);
        let born = now_ms().to_string();
        let corp = "dingfakecorp0000000000000000000";
        let app = format!("app-{}", self.config().app_key);
        self.push_frame(
            "EVENT",
            "*",
            &[
                ("eventType", event_type),
                ("eventId", &event_id),
                ("eventCorpId", corp),
                ("eventBornTime", &born),
                ("eventUnifiedAppId", &app),
            ],
            &data.to_string(),
        )
    }

    /// Sends raw text to a random routable connection (for malformed frames).
    pub fn push_raw(&self, text: &str) -> bool {
        let gw = self.gateway();
        let st = gw.lock();
        let live: Vec<&Conn> = st.conns.iter().filter(|c| c.routable).collect();
        if live.is_empty() {
            return false;
        }
        let c = live[rand::rng().random_range(0..live.len())];
        c.tx.send(Cmd::Send(text.to_owned())).is_ok()
    }

    /// Sends a SYSTEM `ping` with a random opaque to every routable
    /// connection. Returns what was pushed (the ack must echo `data`).
    pub fn ping_streams(&self) -> Vec<Pushed> {
        let ids: Vec<u64> = self.routable_ids();
        let mut out = Vec::new();
        for conn in ids {
            let data =
                json!({ "opaque": format!("{}-{}", random_hex(4), random_hex(8)) }).to_string();
            if let Some(p) = self.push_to(conn, "SYSTEM", "ping", &data) {
                out.push(p);
            }
        }
        out
    }

    fn routable_ids(&self) -> Vec<u64> {
        self.gateway()
            .lock()
            .conns
            .iter()
            .filter(|c| c.routable)
            .map(|c| c.id)
            .collect()
    }

    fn push_to(&self, conn: u64, frame_type: &str, topic: &str, data: &str) -> Option<Pushed> {
        let gw = self.gateway();
        let mut st = gw.lock();
        let c = st.conns.iter().find(|c| c.id == conn && c.routable)?;
        let id = message_id();
        let frame = json!({
            "specVersion": "1.0",
            "type": frame_type,
            "headers": {
                "contentType": "application/json",
                "messageId": id,
                "time": now_ms().to_string(),
                "topic": topic,
            },
            "data": data,
        });
        c.tx.send(Cmd::Send(frame.to_string())).ok()?;
        st.pushed
            .insert(id.clone(), (frame_type.to_owned(), topic.to_owned()));
        Some(Pushed {
            message_id: id,
            connection: conn,
            data: data.to_owned(),
        })
    }

    fn end_streams(&self, make: impl Fn(&str) -> Cmd) -> usize {
        let gw = self.gateway();
        let mut st = gw.lock();
        let mut n = 0;
        for c in st.conns.iter_mut().filter(|c| c.routable) {
            c.routable = false;
            if c.tx.send(make(&c.connection_id)).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Sends a SYSTEM `disconnect` to every routable connection (no more
    /// pushes go there) and closes each after the grace period. Returns how
    /// many connections were told. The frame has a `messageId`; its ack is
    /// recorded like any other (see [`acks_for`](Self::acks_for)).
    pub fn disconnect_streams(&self, reason: &str) -> usize {
        self.disconnect_all(reason, true)
    }

    /// Like [`disconnect_streams`](Self::disconnect_streams), but the frame
    /// has no `messageId`, as in the protocol page's own example.
    pub fn disconnect_streams_without_message_id(&self, reason: &str) -> usize {
        self.disconnect_all(reason, false)
    }

    fn disconnect_all(&self, reason: &str, with_message_id: bool) -> usize {
        let gw = self.gateway();
        let mut st = gw.lock();
        let grace = st.disconnect_grace.unwrap_or(DISCONNECT_GRACE);
        let data = json!({ "reason": reason }).to_string();
        let mut told = Vec::new();
        for c in st.conns.iter_mut().filter(|c| c.routable) {
            c.routable = false;
            let mut headers = json!({
                "contentType": "application/json",
                "time": now_ms().to_string(),
                "topic": "disconnect",
            });
            let id = with_message_id.then(message_id);
            if let Some(id) = &id {
                headers["messageId"] = Value::String(id.clone());
            }
            let frame = json!({
                "specVersion": "1.0",
                "type": "SYSTEM",
                "headers": headers,
                "data": data,
            });
            if c.tx.send(Cmd::Disconnect(frame.to_string(), grace)).is_ok() {
                told.push(id);
            }
        }
        for id in told.iter().flatten() {
            st.pushed
                .insert(id.clone(), ("SYSTEM".to_owned(), "disconnect".to_owned()));
        }
        told.len()
    }

    /// Closes every connection's TCP socket without a close frame.
    pub fn drop_streams(&self) -> usize {
        self.end_streams(|_| Cmd::Drop)
    }

    /// Turns every connection into a zombie: the socket stays open but the
    /// gateway neither reads (so WebSocket pings go unanswered) nor writes.
    pub fn stall_streams(&self) -> usize {
        self.end_streams(|_| Cmd::Stall)
    }

    /// The next `n` WebSocket handshakes are refused (HTTP 401) even with a
    /// valid ticket; the ticket is used up.
    pub fn refuse_tickets(&self, n: usize) {
        self.gateway().lock().refuse = n;
    }

    /// Handshakes refused so far (bad tickets and [`refuse_tickets`](Self::refuse_tickets)).
    pub fn refused_handshakes(&self) -> usize {
        self.gateway().lock().refused
    }

    /// How long a ticket stays valid (90 s by default).
    pub fn set_ticket_ttl(&self, ttl: Duration) {
        self.gateway().lock().ticket_ttl = Some(ttl);
    }

    /// Issue tickets containing `+`, `/` and `=` (which must be URL-encoded)
    /// instead of UUIDs.
    pub fn use_awkward_tickets(&self, on: bool) {
        self.gateway().lock().base64_tickets = on;
    }

    /// Delay between a `disconnect` frame and the gateway's close (10 s by default).
    pub fn set_disconnect_grace(&self, d: Duration) {
        self.gateway().lock().disconnect_grace = Some(d);
    }

    /// Every accepted open-connection call, in order.
    pub fn stream_opens(&self) -> Vec<StreamOpen> {
        self.gateway().lock().opens.clone()
    }

    /// Every WebSocket connection ever accepted, in order.
    pub fn stream_connections(&self) -> Vec<StreamConnection> {
        self.gateway()
            .lock()
            .conns
            .iter()
            .map(|c| StreamConnection {
                id: c.id,
                ticket: c.ticket.clone(),
                routable: c.routable,
                closed: c.closed,
                client_pings: c.client_pings,
            })
            .collect()
    }

    /// Connections pushes can go to now.
    pub fn live_streams(&self) -> usize {
        self.gateway()
            .lock()
            .conns
            .iter()
            .filter(|c| c.routable)
            .count()
    }

    /// Connections whose gateway side has not ended (routable or not).
    pub fn open_stream_sockets(&self) -> usize {
        self.gateway()
            .lock()
            .conns
            .iter()
            .filter(|c| !c.closed)
            .count()
    }

    /// Every ack received, in order.
    pub fn stream_acks(&self) -> Vec<StreamAck> {
        self.gateway().lock().acks.clone()
    }

    /// The acks for one pushed `messageId`.
    pub fn acks_for(&self, message_id: &str) -> Vec<StreamAck> {
        self.gateway()
            .lock()
            .acks
            .iter()
            .filter(|a| a.message_id == message_id)
            .cloned()
            .collect()
    }

    /// Client text messages that were not well-formed acks.
    pub fn stream_bad_messages(&self) -> Vec<String> {
        self.gateway().lock().bad_messages.clone()
    }

    /// Waits (up to `limit`) until `cond` holds on the fake; true when it did.
    pub async fn wait_until(&self, limit: Duration, cond: impl Fn(&FakeDingTalk) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if cond(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeConfig;
    use tokio_tungstenite::tungstenite::Error as WsError;

    async fn fake() -> FakeDingTalk {
        FakeDingTalk::start(FakeConfig::default()).await.unwrap()
    }

    fn http() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    fn open_body(fake: &FakeDingTalk) -> Value {
        json!({
            "clientId": fake.config().app_key,
            "clientSecret": fake.config().app_secret,
            "subscriptions": [{"type": "CALLBACK", "topic": BOT_TOPIC}, {"type": "EVENT", "topic": "*"}],
            "ua": "test/1",
        })
    }

    async fn open(fake: &FakeDingTalk, body: &Value, accept: Option<&str>) -> reqwest::Response {
        let mut req = http()
            .post(format!("{}/v1.0/gateway/connections/open", fake.base_url()))
            .json(body);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.send().await.unwrap()
    }

    async fn ticket(fake: &FakeDingTalk) -> (String, String) {
        let r = open(fake, &open_body(fake), Some("application/json")).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        (
            v["endpoint"].as_str().unwrap().to_owned(),
            v["ticket"].as_str().unwrap().to_owned(),
        )
    }

    fn url(endpoint: &str, ticket: &str) -> String {
        let mut u = url::Url::parse(endpoint).unwrap();
        u.query_pairs_mut().append_pair("ticket", ticket);
        u.to_string()
    }

    #[tokio::test]
    async fn open_call_checks_accept_credentials_and_subscriptions() {
        let f = fake().await;
        let (endpoint, t) = ticket(&f).await;
        assert_eq!(endpoint, f.gateway_endpoint());
        assert!(!t.is_empty());
        let r = open(&f, &open_body(&f), None).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml"));
        assert!(r.text().await.unwrap().starts_with("<?xml"));

        let mut wrong = open_body(&f);
        wrong["clientSecret"] = json!("nope");
        let r = open(&f, &wrong, Some("application/json")).await;
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "invalidClientIdOrSecret");
        for subs in [
            json!([]),
            json!([{"type": "EVENT", "topic": "chat_add_member"}]),
            json!([{"type": "SYSTEM", "topic": "ping"}]),
            json!("CALLBACK"),
        ] {
            let mut b = open_body(&f);
            b["subscriptions"] = subs.clone();
            let r = open(&f, &b, Some("application/json")).await;
            assert_eq!(r.status(), 400, "{subs}");
        }
        assert_eq!(f.stream_opens().len(), 2);
        assert_eq!(f.stream_opens()[0].ua.as_deref(), Some("test/1"));
        assert_eq!(f.calls(Api::GatewayOpen), 7);
    }

    #[tokio::test]
    async fn a_ticket_works_once_and_only_while_fresh() {
        let f = fake().await;
        let (endpoint, t) = ticket(&f).await;
        let (_ws, _) = tokio_tungstenite::connect_async(url(&endpoint, &t))
            .await
            .unwrap();
        let refused = |r: Result<_, WsError>| match r {
            Err(WsError::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("expected an HTTP refusal, got {e}"),
            Ok(_) => panic!("expected a refusal"),
        };
        assert_eq!(
            refused(tokio_tungstenite::connect_async(url(&endpoint, &t)).await),
            401,
            "reused"
        );
        assert_eq!(
            refused(tokio_tungstenite::connect_async(url(&endpoint, "made-up")).await),
            401
        );
        f.set_ticket_ttl(Duration::ZERO);
        let (_, t2) = ticket(&f).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(
            refused(tokio_tungstenite::connect_async(url(&endpoint, &t2)).await),
            401,
            "expired"
        );
        f.set_ticket_ttl(Duration::from_secs(90));
        f.refuse_tickets(1);
        let (_, t3) = ticket(&f).await;
        assert_eq!(
            refused(tokio_tungstenite::connect_async(url(&endpoint, &t3)).await),
            401
        );
        let (_, t4) = ticket(&f).await;
        assert!(tokio_tungstenite::connect_async(url(&endpoint, &t4))
            .await
            .is_ok());
        assert_eq!(f.refused_handshakes(), 4);
        assert_eq!(f.stream_connections().len(), 2);
    }

    async fn next_text(
        ws: &mut WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    ) -> Value {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
            {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(_)) => continue,
                other => panic!("no frame: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn frames_follow_the_documented_shape_and_acks_are_recorded() {
        let f = fake().await;
        f.add_group("cidG", crate::fake::GroupKind::Inner, &[("u1", "One")]);
        let (endpoint, t) = ticket(&f).await;
        let (mut ws, _) = tokio_tungstenite::connect_async(url(&endpoint, &t))
            .await
            .unwrap();
        assert!(
            f.wait_until(Duration::from_secs(10), |f| f.live_streams() == 1)
                .await
        );
        let p = f
            .push_mention(&Mention::new("cidG", "u1", "One", "who read"))
            .unwrap();
        let frame = next_text(&mut ws).await;
        assert_eq!(frame["type"], "CALLBACK");
        assert_eq!(frame["specVersion"], "1.0");
        for (_, v) in frame["headers"].as_object().unwrap() {
            assert!(v.is_string(), "headers are strings: {frame}");
        }
        assert_eq!(frame["headers"]["messageId"], p.message_id.as_str());
        assert_eq!(frame["headers"]["topic"], BOT_TOPIC);
        let data: Value = serde_json::from_str(frame["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["conversationId"], "cidG");
        assert_eq!(data["text"]["content"], " who read");

        let ack = json!({"code": 200, "headers": {"contentType": "application/json",
            "messageId": p.message_id}, "message": "OK", "data": "{\"response\":null}"});
        ws.send(Message::text(ack.to_string())).await.unwrap();
        ws.send(Message::text("not an ack")).await.unwrap();
        let ev = f.push_event("chat_quit", &json!({"x": 1})).unwrap();
        let frame = next_text(&mut ws).await;
        assert_eq!(frame["type"], "EVENT");
        assert_eq!(frame["headers"]["eventType"], "chat_quit");
        assert!(frame["headers"]["eventId"].is_string());
        assert_eq!(frame["headers"]["messageId"], ev.message_id.as_str());
        assert!(
            f.wait_until(Duration::from_secs(10), |f| !f
                .acks_for(&p.message_id)
                .is_empty())
                .await
        );
        let a = &f.acks_for(&p.message_id)[0];
        assert_eq!(a.code, 200);
        assert_eq!(a.frame_type.as_deref(), Some("CALLBACK"));
        assert_eq!(a.topic.as_deref(), Some(BOT_TOPIC));
        assert!(
            f.wait_until(Duration::from_secs(10), |f| f.stream_bad_messages().len()
                == 1)
                .await
        );

        let pings = f.ping_streams();
        let frame = next_text(&mut ws).await;
        assert_eq!(frame["type"], "SYSTEM");
        assert_eq!(frame["headers"]["topic"], "ping");
        assert_eq!(frame["data"], pings[0].data.as_str());
        let opaque: Value = serde_json::from_str(&pings[0].data).unwrap();
        assert!(opaque["opaque"].is_string());
    }

    #[tokio::test]
    async fn disconnect_drop_and_stall_end_connections_differently() {
        let f = fake().await;
        f.set_disconnect_grace(Duration::from_millis(100));
        let connect = || async {
            let (endpoint, t) = ticket(&f).await;
            tokio_tungstenite::connect_async(url(&endpoint, &t))
                .await
                .unwrap()
                .0
        };
        // disconnect: a SYSTEM frame, then a close after the grace period.
        let mut ws = connect().await;
        assert!(
            f.wait_until(Duration::from_secs(10), |f| f.live_streams() == 1)
                .await
        );
        assert_eq!(f.disconnect_streams("connection is expired"), 1);
        let frame = next_text(&mut ws).await;
        assert_eq!(frame["headers"]["topic"], "disconnect");
        assert!(frame["data"]
            .as_str()
            .unwrap()
            .contains("connection is expired"));
        assert_eq!(
            f.live_streams(),
            0,
            "no pushes to a disconnecting connection"
        );
        let end = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match ws.next().await {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "closed after the grace period");

        // drop: the stream ends without a close frame.
        let mut ws = connect().await;
        assert!(
            f.wait_until(Duration::from_secs(10), |f| f.live_streams() == 1)
                .await
        );
        assert_eq!(f.drop_streams(), 1);
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap();
        assert!(
            !matches!(next, Some(Ok(Message::Close(_)))),
            "a silent drop sends no close frame"
        );

        // stall: nothing comes back, not even a pong; the socket stays open
        // until the client goes.
        let mut ws = connect().await;
        assert!(
            f.wait_until(Duration::from_secs(10), |f| f.live_streams() == 1)
                .await
        );
        assert_eq!(f.stall_streams(), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        ws.send(Message::Ping(Default::default())).await.unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
        assert!(
            quiet.is_err(),
            "a stalled connection answers nothing: {quiet:?}"
        );
        assert_eq!(f.open_stream_sockets(), 1);
        drop(ws);
        assert!(
            f.wait_until(Duration::from_secs(10), |f| f.open_stream_sockets() == 0)
                .await
        );
    }
}
