//! readbot's HTTP/1.1 server loop: hyper under the axum router, with the
//! limits a public endpoint needs against slow or hostile clients.
//!
//! - **Header-read timeout** (`server.header_read_timeout_secs`): hyper's own,
//!   which works only when the connection has a timer ([`TokioTimer`]). Its
//!   clock starts when readbot starts waiting for a request, so it also closes
//!   a kept-alive connection that sends nothing.
//! - **Idle timeout** (`server.idle_timeout_secs`): a connection that moves no
//!   bytes for that long while none of its requests is being answered is
//!   dropped (a client that stops reading its answer); a request body must
//!   arrive completely within the same time (`DeadlineBody`), so a body sent
//!   a byte at a time cannot hold a connection either.
//! - **Connection cap** (`server.max_connections`): at the cap a new
//!   connection takes the place of the oldest connection that is not being
//!   answered (idle, or still sending its headers) and is at least
//!   [`EVICTION_MIN_AGE`] old: a flood of slow clients evicts itself, while a
//!   prompt client (a health probe, DingTalk's callback) sends its request at
//!   once and is answered. At most [`MAX_WAITING`] new connections wait (up
//!   to [`EVICTION_WAIT`]) for room; beyond that a new connection is closed
//!   at once.
//! - **Bounded drain**: on the shutdown signal the listener closes, idle
//!   connections close, requests being answered are finished, and whatever is
//!   still open after `server.shutdown_grace_secs` is dropped.
//! - **Bounded buffers**: a request head larger than [`MAX_HEAD_BYTES`] gets
//!   `431`; hyper's default would buffer about 400 KiB per connection.

use crate::config::ServerConfig;
use axum::body::Body;
use axum::http::Request;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

/// Largest read buffer of one connection: a request line and headers must
/// fit (DingTalk's callback headers are a few hundred bytes).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// New connections that may wait for an evicted connection's place.
pub const MAX_WAITING: usize = 64;
/// A connection younger than this is never evicted: a prompt client (a
/// probe, a callback) sends its request well within it, so a flood of new
/// connections cannot push it out before it is answered.
pub const EVICTION_MIN_AGE: Duration = Duration::from_millis(500);
/// How long a new connection waits for an evicted connection's place.
pub const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// The open connections' activity, for picking one to evict.
#[derive(Default)]
struct Registry {
    next: u64,
    open: std::collections::HashMap<u64, Arc<Activity>>,
}

impl Registry {
    fn add(&mut self, a: Arc<Activity>) -> u64 {
        self.next = self.next.wrapping_add(1);
        self.open.insert(self.next, a);
        self.next
    }

    /// Asks the oldest connection that is not being answered (not already
    /// asked, and at least [`EVICTION_MIN_AGE`] old) to close. False when
    /// there is none.
    fn evict_one(&self) -> bool {
        let victim = self
            .open
            .values()
            .filter(|a| {
                a.busy.load(Ordering::SeqCst) == 0
                    && !a.evicted.load(Ordering::SeqCst)
                    && a.start.elapsed() >= EVICTION_MIN_AGE
            })
            .min_by_key(|a| a.start);
        match victim {
            Some(a) => {
                a.evicted.store(true, Ordering::SeqCst);
                a.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains
/// (bounded by `limits.shutdown_grace`) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let waiting = Arc::new(Semaphore::new(MAX_WAITING));
    let registry = Arc::new(std::sync::Mutex::new(Registry::default()));
    let (close_tx, close_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: do not spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let slot = match slots.clone().try_acquire_owned() {
                    Ok(p) => Slot::Now(p),
                    Err(_) => {
                        if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                            last_warning = Some(Instant::now());
                            tracing::warn!(
                                max = limits.max_connections,
                                "connection limit reached; the oldest idle or slow connections make room"
                            );
                        }
                        match waiting.clone().try_acquire_owned() {
                            Ok(w) => Slot::Wait(w),
                            Err(_) => {
                                drop(stream);
                                continue;
                            }
                        }
                    }
                };
                let conn = Connection {
                    limits: limits.clone(),
                    router: app.clone(),
                    close: close_rx.clone(),
                    registry: registry.clone(),
                };
                let (slots, registry) = (slots.clone(), registry.clone());
                conns.spawn(async move {
                    let permit = match slot {
                        Slot::Now(p) => p,
                        Slot::Wait(w) => {
                            let got = wait_for_room(&slots, &registry).await;
                            drop(w);
                            match got {
                                Some(p) => p,
                                None => return,
                            }
                        }
                    };
                    conn.run(stream).await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let _ = close_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            left = conns.len(),
            grace_secs = limits.shutdown_grace.as_secs(),
            "connections still open after the shutdown grace are dropped"
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// Waits up to [`EVICTION_WAIT`] for a place, asking the oldest evictable
/// connection to make room (again every 100 ms while none is old enough).
async fn wait_for_room(
    slots: &Arc<Semaphore>,
    registry: &std::sync::Mutex<Registry>,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let until = Instant::now() + EVICTION_WAIT;
    let mut asked = false;
    while Instant::now() < until {
        if !asked {
            asked = lock(registry).evict_one();
        }
        let step = Duration::from_millis(100).min(until.saturating_duration_since(Instant::now()));
        if let Ok(Ok(p)) = tokio::time::timeout(step, slots.clone().acquire_owned()).await {
            return Some(p);
        }
    }
    None
}

/// A connection's place: held now, or to be waited for.
enum Slot {
    Now(tokio::sync::OwnedSemaphorePermit),
    Wait(tokio::sync::OwnedSemaphorePermit),
}

fn lock(r: &std::sync::Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// One accepted connection and how to serve it.
struct Connection {
    limits: ServerConfig,
    router: Router,
    close: watch::Receiver<bool>,
    registry: Arc<std::sync::Mutex<Registry>>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let id = lock(&self.registry).add(activity.clone());
        self.serve(stream, &activity).await;
        lock(&self.registry).open.remove(&id);
    }

    async fn serve(&mut self, stream: TcpStream, activity: &Arc<Activity>) {
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let (router, body_deadline) = (self.router.clone(), self.limits.idle_timeout);
        let svc_activity = activity.clone();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let busy = Busy::enter(&svc_activity);
            let req = req.map(|b| Body::new(DeadlineBody::new(b, body_deadline)));
            let answer = router.clone().oneshot(req);
            async move {
                let res = answer.await;
                drop(busy);
                res
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES);
        let conn = builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let idle = self.limits.idle_timeout;
        let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut closing = false;
        loop {
            if !closing && *self.close.borrow() {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                changed = self.close.changed(), if !closing => {
                    if changed.is_err() {
                        // The server is gone: stop like on a signal.
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                () = activity.evict.notified() => {
                    if activity.busy.load(Ordering::SeqCst) == 0 {
                        tracing::debug!("closing an idle or slow connection to make room");
                        return;
                    }
                    // A request arrived meanwhile: it is answered.
                    activity.evicted.store(false, Ordering::SeqCst);
                }
                () = tokio::time::sleep(tick) => {
                    if activity.idle_for() >= idle {
                        tracing::debug!("closing a connection idle for {} s", idle.as_secs());
                        return;
                    }
                }
            }
        }
    }
}

/// When a connection last moved bytes, and how many of its requests are
/// being answered.
struct Activity {
    start: Instant,
    last_io_ms: AtomicU64,
    busy: AtomicUsize,
    /// Asked to close to make room for a new connection.
    evicted: std::sync::atomic::AtomicBool,
    evict: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            evicted: Default::default(),
            evict: tokio::sync::Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// How long no bytes moved while no request was being answered (zero
    /// while one is).
    fn idle_for(&self) -> Duration {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Marks a request as being answered while alive.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(a: &Arc<Activity>) -> Self {
        a.busy.fetch_add(1, Ordering::SeqCst);
        Self(a.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// A socket that records when bytes move.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The request body did not arrive within the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// A request body that must end within a fixed time of the request head
/// (unlike a per-chunk timeout, a body sent a byte at a time cannot stretch it).
struct DeadlineBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: hyper::body::Incoming, within: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_is_never_idle_while_one_of_its_requests_is_answered() {
        let a = Arc::new(Activity::new());
        let busy = Busy::enter(&a);
        assert_eq!(a.idle_for(), Duration::ZERO);
        drop(busy);
        assert!(a.idle_for() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn eviction_picks_the_oldest_connection_not_being_answered_once() {
        let mut r = Registry::default();
        let oldest_busy = Arc::new(Activity::new());
        let _busy = Busy::enter(&oldest_busy);
        let old = Arc::new(Activity::new());
        tokio::time::sleep(Duration::from_millis(5)).await;
        let young = Arc::new(Activity::new());
        r.add(oldest_busy.clone());
        r.add(young.clone());
        r.add(old.clone());
        // `old` was created before `young`.
        assert!(old.start < young.start);
        assert!(!r.evict_one(), "nobody is old enough yet");
        tokio::time::sleep(EVICTION_MIN_AGE).await;
        assert!(r.evict_one());
        assert!(
            old.evicted.load(Ordering::SeqCst),
            "the oldest idle one goes first"
        );
        assert!(
            !oldest_busy.evicted.load(Ordering::SeqCst),
            "never one being answered"
        );
        assert!(r.evict_one());
        assert!(young.evicted.load(Ordering::SeqCst));
        assert!(!r.evict_one(), "nothing left to evict");
    }
}
