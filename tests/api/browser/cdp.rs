//! A small Chrome DevTools Protocol client for the browser tests: starts
//! Debian's headless Chromium and drives one tab over the project's own
//! `tokio-tungstenite`.
//!
//! Why not a crate: `fantoccini` (WebDriver) needs a second Debian package
//! (`chromium-driver`) and, with rustls, brings aws-lc-sys (a C build the
//! project keeps out on purpose), ~44 s more for a clean build here;
//! `chromiumoxide` (CDP) brings a large generated protocol crate, a second
//! tungstenite and a second reqwest, ~67 s more (both measured on this
//! 2-core machine, each on top of the project's shared dependencies). The
//! tests need a dozen CDP methods; over the WebSocket crate readbot already
//! builds they cost no new dependency and one file.
//!
//! Every wait is bounded ([`LIMIT`]); the browser runs in a process group of
//! its own that [`Browser`] kills on drop, after a polite `Browser.close`
//! in [`Browser::close`].

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for anything the browser does (never a speed assertion).
pub const LIMIT: Duration = Duration::from_secs(60);
/// Most protocol events kept for inspection (only the ones of [`KEPT`]).
const MAX_EVENTS: usize = 1_000;
/// Events the tests look at; everything else is dropped on arrival.
const KEPT: &[&str] = &[
    "Page.javascriptDialogOpening",
    "Runtime.exceptionThrown",
    "Browser.downloadProgress",
];

/// The flags the machine notes ask for (root, no GPU, no calls to Google).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
];

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// A running headless Chromium and its DevTools connection.
pub struct Browser {
    child: tokio::process::Child,
    pgid: Option<i32>,
    out: mpsc::Sender<String>,
    pending: Pending,
    events: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
    /// The profile folder (deleted on drop, after the browser is gone).
    profile: Option<tempfile::TempDir>,
}

/// The Chromium binary: `READBOT_CHROMIUM`, else `chromium` or
/// `chromium-browser` on the `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("READBOT_CHROMIUM") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts `binary` headless with a new profile and connects to it.
    pub async fn launch(binary: &Path) -> Result<Browser, String> {
        let profile = tempfile::tempdir().map_err(|e| format!("profile dir: {e}"))?;
        let log = std::fs::File::create(profile.path().join("chromium.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let mut cmd = tokio::process::Command::new(binary);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        // From here on, a failure drops `half`, which kills the group.
        let mut half = HalfStarted {
            child: Some(child),
            pgid,
        };
        // Chromium writes its port and browser path into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let text = wait_for(LIMIT, || {
            std::fs::read_to_string(&port_file)
                .ok()
                .filter(|t| t.lines().count() >= 2)
        })
        .await
        .ok_or_else(|| {
            let log =
                std::fs::read_to_string(profile.path().join("chromium.log")).unwrap_or_default();
            format!("no DevToolsActivePort within {LIMIT:?}; chromium said:\n{log}")
        })?;
        let mut lines = text.lines();
        let port = lines.next().unwrap_or_default().trim();
        let path = lines.next().unwrap_or_default().trim();
        let url = format!("ws://127.0.0.1:{port}{path}");
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(128 << 20))
            .max_frame_size(Some(128 << 20));
        let (ws, _) = tokio::time::timeout(
            LIMIT,
            tokio_tungstenite::connect_async_with_config(&url, Some(config), false),
        )
        .await
        .map_err(|_| format!("{url}: connect timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut rx) = mpsc::channel::<String>(64);
        let writer = tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (p, ev) = (pending.clone(), events.clone());
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(id) = v["id"].as_u64() {
                    if let Some(tx) = p.lock().expect("pending").remove(&id) {
                        let _ = tx.send(v);
                    }
                } else if KEPT.contains(&v["method"].as_str().unwrap_or_default()) {
                    let mut ev = ev.lock().expect("events");
                    if ev.len() < MAX_EVENTS {
                        ev.push(v);
                    }
                }
            }
        });
        let child = half.child.take().expect("child");
        Ok(Browser {
            child,
            pgid,
            out,
            pending,
            events,
            next_id: AtomicU64::new(1),
            reader,
            writer,
            profile: Some(profile),
        })
    }

    /// Calls `method` (on the tab `session`, or the browser), bounded.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending").insert(id, tx);
        self.out
            .send(msg.to_string())
            .await
            .map_err(|_| format!("{method}: connection closed"))?;
        let answer = tokio::time::timeout(LIMIT, rx).await;
        self.pending.lock().expect("pending").remove(&id);
        let v = answer
            .map_err(|_| format!("{method}: no answer within {LIMIT:?}"))?
            .map_err(|_| format!("{method}: connection closed"))?;
        match v.get("error") {
            Some(e) => Err(format!("{method}: {e}")),
            None => Ok(v["result"].clone()),
        }
    }

    /// Opens a new tab on `about:blank` and attaches to it.
    pub async fn new_tab(&self) -> Result<Tab<'_>, String> {
        let t = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target = t["targetId"].as_str().unwrap_or_default().to_owned();
        let a = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await?;
        let session = a["sessionId"].as_str().unwrap_or_default().to_owned();
        let tab = Tab {
            browser: self,
            session,
        };
        tab.call("Page.enable", json!({})).await?;
        tab.call("Runtime.enable", json!({})).await?;
        Ok(tab)
    }

    /// The kept events named `method` so far.
    pub fn events(&self, method: &str) -> Vec<Value> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .filter(|e| e["method"] == method)
            .cloned()
            .collect()
    }

    /// Saves downloads into `dir` (events on).
    pub async fn allow_downloads(&self, dir: &Path) -> Result<(), String> {
        self.call(
            None,
            "Browser.setDownloadBehavior",
            json!({ "behavior": "allow", "downloadPath": dir.display().to_string(), "eventsEnabled": true }),
        )
        .await
        .map(drop)
    }

    /// Asks the browser to quit, waits (bounded) for it, and checks that no
    /// process of its group is left (zombies aside). The drop kills
    /// whatever is left either way.
    pub async fn close(mut self) -> Result<(), String> {
        let _ = self.call(None, "Browser.close", json!({})).await;
        let _ = tokio::time::timeout(LIMIT, self.child.wait()).await;
        let pgid = self.pgid;
        drop(self);
        if let Some(pgid) = pgid {
            let gone = wait_for(LIMIT, || live_in_group(pgid).is_empty().then_some(())).await;
            if gone.is_none() {
                return Err(format!("left running: {:?}", live_in_group(pgid)));
            }
        }
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
        kill_group(self.pgid);
        let _ = self.child.start_kill();
        // The profile goes once its writers are gone (best effort).
        if let Some(p) = self.profile.take() {
            let _ = p.close();
        }
    }
}

/// A browser being started: killed with its group if starting fails.
struct HalfStarted {
    child: Option<tokio::process::Child>,
    pgid: Option<i32>,
}

impl Drop for HalfStarted {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(self.pgid);
            let _ = c.start_kill();
        }
    }
}

fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid.filter(|p| *p > 1) {
        // SAFETY: kill(2) with a negative pid signals the process group
        // the browser was started in (process_group(0)); no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Pids of the live (not zombie) processes in the group `pgid` (/proc).
pub fn live_in_group(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut f = rest.split_whitespace();
        let state = f.next()?;
        let _ppid = f.next()?;
        let pgrp: i32 = f.next()?.parse().ok()?;
        (pgrp == pgid && state != "Z" && state != "X").then_some(pid)
    })
    .collect()
}

/// Polls `f` every 50 ms until it gives something, for at most `limit`.
pub async fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One tab of the browser.
pub struct Tab<'b> {
    browser: &'b Browser,
    session: String,
}

impl Tab<'_> {
    /// Calls `method` on this tab.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        self.browser.call(Some(&self.session), method, params).await
    }

    /// Sets the viewport (CSS pixels; mobile emulation below 600 px).
    pub async fn viewport(&self, width: u32, height: u32) -> Result<(), String> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600 }),
        )
        .await
        .map(drop)
    }

    /// Goes to `url` and waits (bounded) until that document has loaded.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        let r = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(e) = r["errorText"].as_str() {
            return Err(format!("{url}: {e}"));
        }
        self.wait_true(&format!(
            "location.href === {} && document.readyState === 'complete'",
            json!(url)
        ))
        .await
        .map_err(|e| format!("{url} did not load: {e}"))
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its value.
    pub async fn eval(&self, expr: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("{expr}: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Waits (bounded) until `expr` is `true` in the page.
    pub async fn wait_true(&self, expr: &str) -> Result<(), String> {
        let end = tokio::time::Instant::now() + LIMIT;
        loop {
            // A navigation may destroy the context mid-call: try again.
            if let Ok(Value::Bool(true)) = self.eval(expr).await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= end {
                return Err(format!("not true within {LIMIT:?}: {expr}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into the focused element, as a keyboard would insert it
    /// (`input` events fire).
    pub async fn type_text(&self, text: &str) -> Result<(), String> {
        self.call("Input.insertText", json!({ "text": text }))
            .await
            .map(drop)
    }

    /// A PNG of the page: the whole page when `full`, else the viewport.
    pub async fn screenshot(&self, full: bool) -> Result<Vec<u8>, String> {
        let mut params = json!({ "format": "png" });
        if full {
            let m = self.call("Page.getLayoutMetrics", json!({})).await?;
            let size = &m["cssContentSize"];
            params["captureBeyondViewport"] = json!(true);
            params["clip"] = json!({
                "x": 0, "y": 0, "scale": 1,
                "width": size["width"].as_f64().unwrap_or(800.0),
                "height": size["height"].as_f64().unwrap_or(600.0),
            });
        }
        let r = self.call("Page.captureScreenshot", params).await?;
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .map_err(|e| format!("screenshot data: {e}"))
    }
}
