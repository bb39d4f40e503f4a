//! Wiring: build the store, the DingTalk client, the renderer, the bot and
//! the router from a [`Config`], serve until a shutdown signal, then drain.

use crate::bot::{Accepted, Bot, BotDeps};
use crate::config::{Config, Mode};
use crate::dingtalk::signature::Verifier;
use crate::dingtalk::stream::{
    BotMessageHandler, Event, EventHandler, EventStatus, Handlers, StreamClient, StreamSettings,
};
use crate::dingtalk::DingTalkApi;
use crate::domain::{now_millis, EpochMillis, Incoming};
use crate::http::{ops_router, router, with_json_method_not_allowed, AppState, OpsState};
use crate::render::Renderer;
use crate::store::health::{MonitoredStore, StoreHealth, PROBE_INTERVAL};
use crate::store::Store;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound. The message leaves the cause
    /// (e.g. "Address already in use") to `source`, so a printed error chain
    /// says it once.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Templates are broken.
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    /// The DingTalk client could not be built.
    #[error(transparent)]
    DingTalk(#[from] crate::dingtalk::DingTalkError),
    /// The Stream-mode client could not be built.
    #[error(transparent)]
    Stream(#[from] crate::dingtalk::stream::StreamError),
    /// The HTTP event push keys are unusable.
    #[error("DINGTALK_EVENT_AES_KEY: {0}")]
    EventKeys(crate::dingtalk::event_crypto::EventCryptoError),
}

/// Stream mode hands bot messages to the same entry point as the HTTP
/// callback: `Bot::accept` (de-duplication by `msgId`, then a task).
struct BotSink(Bot);

#[async_trait::async_trait]
impl BotMessageHandler for BotSink {
    async fn bot_message(&self, msg: Incoming) {
        match self.0.accept(msg).await {
            Ok(Accepted::Started) => {}
            Ok(Accepted::Duplicate) => tracing::info!("duplicate delivery ignored"),
            Ok(Accepted::ShuttingDown) => {
                tracing::warn!("bot message arrived during shutdown; not answered")
            }
            Ok(Accepted::Busy | Accepted::GroupBusy) => {
                tracing::warn!("too many messages waiting for an answer; this one is not answered")
            }
            // Only signed HTTP callbacks are bound to their signature.
            Ok(Accepted::Replayed) => {}
            Err(e) => tracing::error!(error = %e.with_causes(), "could not claim the bot message"),
        }
    }
}

/// Upper bound of the final store flush after the drain.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Stream mode hands `robot_msg_read` / `robot_msg_recall` events to the
/// bot; the ack waits for the store (`LATER` on a failure: redelivered).
struct EventSink(Bot);

#[async_trait::async_trait]
impl EventHandler for EventSink {
    async fn handle(&self, event: Event) -> EventStatus {
        use crate::dingtalk::events;
        match events::parse_stream(&event.event_type, &event.event_id, &event.data) {
            Ok(ev) => match self.0.on_event(&ev, "stream").await {
                Ok(()) => EventStatus::Success,
                Err(_) => EventStatus::Later,
            },
            Err(e) => {
                // Redelivery would not make it readable.
                crate::metrics::event("other", "stream", "bad_payload");
                tracing::warn!(error = %e, event_type = %event.event_type, "unreadable event dropped");
                EventStatus::Success
            }
        }
    }
}

/// A built, bound, not yet serving readbot.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    store: Arc<dyn Store>,
    config: Config,
    ops: OpsState,
    stream: Option<StreamClient>,
    health: StoreHealth,
    /// The store backend without the health monitor (probes go here).
    backend: Arc<dyn Store>,
}

impl Application {
    /// Builds readbot from config: the configured store
    /// ([`Config::store_config`]), HTTP DingTalk client.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let store = crate::store::open(&config.store_config()).await?;
        let api = crate::dingtalk::client::DingTalkClient::new(config.dingtalk.clone())?;
        let app = Self::build_with(config, Arc::new(api.clone()), store).await?;
        // Every billable request the client sends is counted in the ledger.
        api.set_call_ledger(app.state.bot.call_ledger());
        Ok(app.with_token_check(api))
    }

    /// Makes `/readyz` require a DingTalk access token from `client`
    /// ([`Application::build`] does this with its own client).
    pub fn with_token_check(mut self, client: crate::dingtalk::client::DingTalkClient) -> Self {
        self.ops = self.ops.with_token_check(client);
        self
    }

    /// Builds readbot from config with explicit DingTalk and store backends.
    pub async fn build_with(
        config: Config,
        api: Arc<dyn DingTalkApi>,
        store: Arc<dyn Store>,
    ) -> Result<Self, StartError> {
        crate::metrics::install();
        // Every store is monitored: a failing one makes readbot refuse work
        // (503) instead of acknowledging what it cannot record.
        let monitored = MonitoredStore::new(store);
        let (health, backend) = (monitored.health(), monitored.inner().clone());
        let store: Arc<dyn Store> = Arc::new(monitored);
        let renderer = Arc::new(Renderer::new(config.templates_dir.as_deref())?);
        let bot = Bot::new(BotDeps {
            api,
            store: store.clone(),
            renderer,
            robot_code: config.dingtalk.robot_code.clone(),
            cool_app_code: config.dingtalk.cool_app_code.clone(),
            cfg: config.bot.clone(),
        });
        bot.set_call_budget(config.dingtalk.monthly_call_budget);
        if let Err(e) = bot.call_ledger().load().await {
            tracing::warn!(error = %e.with_causes(), "could not read this month's DingTalk call ledger; counting from zero");
        }
        if let Some(url) = &config.web.public_url {
            let key = match &config.web.link_key {
                Some(k) => k.expose().as_bytes().to_vec(),
                None => match store.link_key().await? {
                    Some(k) => k,
                    None => {
                        store
                            .init_link_key(&crate::bot::link::generate_key())
                            .await?
                    }
                },
            };
            bot.set_web(crate::bot::page::WebLinks::new(
                url,
                &key,
                config.web.link_ttl,
            ));
        }
        let window = i64::try_from(config.bot.signature_window.as_millis()).unwrap_or(i64::MAX);
        let stream = match config.mode {
            Mode::Http => None,
            Mode::Stream => {
                let events: Arc<dyn EventHandler> = Arc::new(EventSink(bot.clone()));
                Some(StreamClient::new(
                    StreamSettings::from_config(&config),
                    Handlers::new(Arc::new(BotSink(bot.clone())))
                        .on_event(crate::dingtalk::events::READ, events.clone())
                        .on_event(crate::dingtalk::events::RECALL, events),
                )?)
            }
        };
        let event_crypto = match config.events.keys() {
            Some((token, aes_key)) => Some(Arc::new(
                crate::dingtalk::event_crypto::EventCrypto::new(
                    token.clone(),
                    aes_key,
                    &config.dingtalk.app_key,
                    window,
                )
                .map_err(StartError::EventKeys)?,
            )),
            None => None,
        };
        // Event intake's clock: the gateway connection (Stream), or the
        // process (HTTP push, when its keys are set).
        match (&stream, &event_crypto) {
            (Some(s), _) => {
                let status = s.status();
                bot.set_event_intake(Arc::new(move || status.snapshot().connected_since));
            }
            (None, Some(_)) => {
                let start = now_millis();
                bot.set_event_intake(Arc::new(move || Some(start)));
            }
            (None, None) => {}
        }
        let state = AppState {
            bot,
            verifier: Arc::new(Verifier::new(&config.dingtalk.app_secret, window)),
            api_token: config.api_token.clone().map(Arc::new),
            stream: stream.as_ref().map(StreamClient::status),
            events: event_crypto,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let ops = OpsState::new(store.clone(), state.bot.clone())
            .with_store_health(health.clone(), backend.clone());
        Ok(Self {
            listener,
            addr,
            state,
            store,
            config,
            ops,
            stream,
            health,
            backend,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bot (for the sandbox and tests).
    pub fn bot(&self) -> Bot {
        self.state.bot.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains
    /// within `server.shutdown_grace` of the signal: open connections finish
    /// their requests or are dropped, in-flight summaries finish or are left
    /// (their claims expire after the retention); then the store is flushed.
    ///
    /// When the store fails for good (sled keeps its first I/O error until
    /// the process restarts) readbot shuts down the same way and returns an
    /// error saying so: `readbot serve` exits 1 for its supervisor to
    /// restart it.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let bot = self.state.bot.clone();
        let app = with_json_method_not_allowed(
            router(self.state, self.config.bot.max_body_bytes).merge(ops_router(self.ops)),
        );
        let pruner = spawn_pruner(self.store.clone(), Retention::from(&self.config.bot));
        let prober = spawn_health_probe(self.health.clone(), self.backend.clone());
        let ledger = bot.call_ledger();
        let ledger_saver = ledger.spawn_saver();
        let limits = self.config.server.clone();
        let grace = limits.shutdown_grace;
        // Stream mode: the gateway connection stops on the same signal.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stream_task = self.stream.map(|c| tokio::spawn(c.run(stop_rx)));
        // Scheduled follow-ups (issue 12): one task, stops on the same signal.
        let mut follow_ups_stop = stop_tx.subscribe();
        let follow_ups = tokio::spawn(bot.clone().run_follow_ups(async move {
            let _ = follow_ups_stop.wait_for(|stop| *stop).await;
        }));
        let (signal_tx, signal_rx) = tokio::sync::oneshot::channel();
        let fatal_slot: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let health = self.health.clone();
        let fatal_seen = fatal_slot.clone();
        let shutdown = async move {
            tokio::select! {
                () = shutdown => {}
                why = health.failed_for_good() => {
                    tracing::error!(error = %why, "the store failed for good; stopping so that the supervisor restarts readbot");
                    *fatal_seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                }
            }
            let _ = signal_tx.send(tokio::time::Instant::now());
            let _ = stop_tx.send(true);
        };
        if self.config.api_token.is_none() {
            tracing::warn!(
                "READBOT_API_TOKEN is not set: the send API is off (every /api/v1 request answers 503), so notices cannot be sent through readbot"
            );
        }
        tracing::info!(addr = %self.addr, mode = self.config.mode.as_str(), "readbot listening");
        let served = crate::http::serve::serve(self.listener, app, &limits, shutdown).await;
        let deadline = signal_rx
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now())
            + grace;
        if let Some(mut task) = stream_task {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("the stream connection did not stop in time");
                task.abort();
            }
        }
        {
            let mut task = follow_ups;
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("the follow-up scheduler did not stop in time");
                task.abort();
            }
        }
        tracing::info!("shutting down: waiting for in-flight summaries");
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !bot.shutdown(left).await {
            tracing::warn!(
                left = bot.in_flight(),
                "some summaries did not finish within the shutdown grace; not answered"
            );
        }
        pruner.abort();
        prober.abort();
        ledger_saver.abort();
        match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, ledger.save()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e.with_causes(), "could not save the DingTalk call ledger")
            }
            Err(_) => tracing::error!("saving the DingTalk call ledger did not finish in time"),
        }
        match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, self.store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e.with_causes(), "final flush failed"),
            Err(_) => tracing::error!("final flush did not finish in time"),
        }
        let fatal = fatal_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(why) = fatal {
            return Err(std::io::Error::other(failed_for_good_sentence(&why)));
        }
        served
    }
}

/// What `readbot serve` prints (after `readbot: server: `) when it exits
/// because the store failed for good.
pub fn failed_for_good_sentence(why: &str) -> String {
    format!(
        "the data folder cannot be written and will not recover while this process runs ({why}); \
         readbot stopped (exit code 1) so that its supervisor restarts it: free disk space or repair the folder"
    )
}

/// While the store is failing, probes a write every [`PROBE_INTERVAL`], so
/// readbot takes work again by itself once the store can write.
fn spawn_health_probe(health: StoreHealth, backend: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if health.failing().is_some() && health.report().fatal.is_none() {
                let _ = health.probe(backend.as_ref()).await;
            }
        }
    })
}

/// How long each kind of entry is kept (from [`crate::config::BotConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// De-duplication marks.
    pub marks: Duration,
    /// Notices and send records.
    pub notices: Duration,
    /// Cached names.
    pub names: Duration,
    /// Learned-roster entries.
    pub roster: Duration,
}

impl From<&crate::config::BotConfig> for Retention {
    fn from(b: &crate::config::BotConfig) -> Self {
        Self {
            marks: b.dedup_retention,
            notices: b.notice_retention,
            names: b.name_retention,
            roster: b.roster_retention,
        }
    }
}

/// One retention pass at `now`: removes marks, notices, send records, names
/// and roster entries older than their retention; counts what went.
pub async fn prune_once(store: &dyn Store, retention: Retention, now: EpochMillis) {
    let before =
        |keep: Duration| now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    match store.prune_marks(before(retention.marks)).await {
        Ok(n) => {
            crate::metrics::store_pruned("marks", n);
            if n > 0 {
                tracing::info!(removed = n, "pruned old message marks");
            }
        }
        Err(e) => tracing::warn!(error = %e.with_causes(), "pruning marks failed"),
    }
    let cutoffs = crate::store::Cutoffs {
        notices_before: before(retention.notices),
        names_before: before(retention.names),
        roster_before: before(retention.roster),
    };
    match store.prune_old(cutoffs).await {
        Ok(p) => {
            for (kind, n) in [
                ("notices", p.notices),
                ("sends", p.sends),
                ("names", p.names),
                ("roster", p.roster),
            ] {
                crate::metrics::store_pruned(kind, n);
            }
            if p != crate::store::Pruned::default() {
                tracing::info!(
                    notices = p.notices,
                    sends = p.sends,
                    names = p.names,
                    roster = p.roster,
                    "pruned old entries"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e.with_causes(), "pruning old entries failed"),
    }
}

/// Hourly retention pass (see [`prune_once`]).
fn spawn_pruner(store: Arc<dyn Store>, retention: Retention) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            prune_once(store.as_ref(), retention, now_millis()).await;
        }
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
