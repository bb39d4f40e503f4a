//! The one path every DingTalk call goes through: token, rate limit,
//! per-attempt timeout, overall deadline, retries with jittered backoff,
//! error-body parsing and request-id recording.

use super::limiter::RateLimiter;
use super::token::{Cached, TokenCache};
use super::wire;
use super::RetryPolicy;
use crate::config::DingTalkConfig;
use crate::dingtalk::capped::{read_capped, Capped, MAX_ANSWER_BYTES};
use crate::dingtalk::quota::{is_quota_exhausted, CallLedger};
use crate::dingtalk::{DingTalkError, ErrorCode};
use reqwest::header::{HeaderValue, ACCEPT};
use serde_json::{json, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::{Duration, Instant};
use tracing::{field::Empty, Instrument, Span};
use url::Url;

/// The DingTalk endpoints readbot calls; each has its own limiter and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Token,
    Send,
    Query,
    InnerGroupMembers,
    SceneGroupMembers,
    UserGet,
    SessionReply,
    DirectSend,
    Recall,
}

impl Api {
    pub(crate) const ALL: [Api; 9] = [
        Api::Token,
        Api::Send,
        Api::Query,
        Api::InnerGroupMembers,
        Api::SceneGroupMembers,
        Api::UserGet,
        Api::SessionReply,
        Api::DirectSend,
        Api::Recall,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Api::Token => "oauth2.accessToken",
            Api::Send => "robot.groupMessages.send",
            Api::Query => "robot.groupMessages.query",
            Api::InnerGroupMembers => "im.innerGroups.memberLists.query",
            Api::SceneGroupMembers => "im.sceneGroups.members.batchQuery",
            Api::UserGet => "topapi.v2.user.get",
            Api::SessionReply => "robot.sendBySession",
            Api::DirectSend => "robot.oToMessages.batchSend",
            Api::Recall => "robot.groupMessages.recall",
        }
    }

    fn idx(self) -> usize {
        self as usize
    }

    /// Counts toward the monthly API quota (see [`crate::dingtalk::quota`]).
    pub(crate) fn billable(self) -> bool {
        match self {
            Api::Send
            | Api::Query
            | Api::InnerGroupMembers
            | Api::SceneGroupMembers
            | Api::DirectSend
            | Api::Recall => true,
            Api::Token | Api::UserGet | Api::SessionReply => false,
        }
    }
}

/// Live counters of one API.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
    pub auth_retries: AtomicU64,
    pub in_flight: AtomicU64,
    pub peak_in_flight: AtomicU64,
}

/// How the token is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// No token (token endpoint, session webhook).
    None,
    /// New API: `x-acs-dingtalk-access-token` header.
    Header,
    /// Old API: `?access_token=` query parameter.
    Query,
}

/// Which error convention the endpoint follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// HTTP status + `{code, message, requestid}`.
    New,
    /// HTTP 200 + `{errcode, errmsg}`.
    Old,
}

/// Which failures may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reads: retry 5xx, 429, throttling, connection errors and timeouts.
    Idempotent,
    /// Posts that show up in a chat: retry only when DingTalk certainly did
    /// not act on the request, i.e. an explicit throttling answer or a
    /// failure to connect. A timeout or 5xx may have posted the message
    /// already, and a duplicate notice is worse than an error.
    NonIdempotent,
}

/// One logical call.
pub(crate) struct Call<'a> {
    pub api: Api,
    pub url: Url,
    pub body: &'a Value,
    pub auth: Auth,
    pub family: Family,
    pub mode: Mode,
}

/// Why one attempt failed.
enum Failure {
    /// The token was refused: drop it and retry once.
    Auth(DingTalkError),
    /// Transient: retry with backoff.
    Retry(DingTalkError),
    /// Final.
    Fatal(DingTalkError),
}

/// State shared by all clones of the client.
pub(crate) struct Inner {
    pub http: reqwest::Client,
    pub cfg: DingTalkConfig,
    pub policy: RetryPolicy,
    pub token: TokenCache,
    pub token_refreshes: AtomicU64,
    limiters: Vec<RateLimiter>,
    pub counters: Vec<Counters>,
    /// Where billable requests are reported (set once by the application).
    pub ledger: std::sync::OnceLock<Arc<dyn CallLedger>>,
}

impl Inner {
    pub(crate) fn new(cfg: DingTalkConfig, policy: RetryPolicy) -> Result<Self, DingTalkError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // A session webhook must not be able to bounce us to another host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.timeout)
            .build()
            .map_err(|e| DingTalkError::Transport(describe(&e.without_url())))?;
        let limiters = Api::ALL
            .iter()
            .map(|_| RateLimiter::new(cfg.rate_limit_per_replica()))
            .collect();
        let counters = Api::ALL.iter().map(|_| Counters::default()).collect();
        Ok(Self {
            http,
            cfg,
            policy,
            token: TokenCache::default(),
            token_refreshes: AtomicU64::new(0),
            limiters,
            counters,
            ledger: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn counters(&self, api: Api) -> &Counters {
        &self.counters[api.idx()]
    }

    /// `base` + `path`, keeping any path prefix of the base (see [`crate::dingtalk::api_url`]).
    pub(crate) fn url(&self, base: &Url, path: &str) -> Url {
        crate::dingtalk::api_url(base, path)
    }

    /// A valid access token: cached, or fetched by exactly one task.
    pub(crate) async fn access_token(&self) -> Result<Arc<str>, DingTalkError> {
        if let Some(t) = self.token.fresh(Instant::now()) {
            return Ok(t);
        }
        let waiting_since = Instant::now();
        let _guard = self.token.refresh.lock().await;
        // Double-check: whoever held the lock may have refreshed already...
        if let Some(t) = self.token.fresh(Instant::now()) {
            return Ok(t);
        }
        // ...or failed to, while we waited: share that answer instead of
        // queueing one more doomed token request per waiting caller.
        if let Some(e) = self.token.failed_since(waiting_since) {
            return Err(e);
        }
        match self.fetch_token().await {
            Ok(c) => {
                let t = c.token.clone();
                self.token.store(c);
                Ok(t)
            }
            Err(e) => match self.token.current() {
                // Refresh ahead of expiry failed: the old token still works.
                Some(c) if Instant::now() < c.expires_at => {
                    tracing::warn!(error = %e, "access token refresh failed; using the current token until it expires");
                    Ok(c.token)
                }
                _ => {
                    self.token.set_failed(Instant::now(), e.clone());
                    Err(e)
                }
            },
        }
    }

    /// `POST /v1.0/oauth2/accessToken`. Boxed: it goes through [`Self::call`],
    /// which itself asks for tokens.
    fn fetch_token(
        &self,
    ) -> Pin<Box<dyn Future<Output = Result<Cached, DingTalkError>> + Send + '_>> {
        Box::pin(async move {
            self.token_refreshes.fetch_add(1, Ordering::Relaxed);
            let url = self.url(&self.cfg.api_base, "/v1.0/oauth2/accessToken");
            let body = json!({
                "appKey": self.cfg.app_key,
                "appSecret": self.cfg.app_secret.expose(),
            });
            let v = self
                .call(Call {
                    api: Api::Token,
                    url,
                    body: &body,
                    auth: Auth::None,
                    family: Family::New,
                    mode: Mode::Idempotent,
                })
                .await;
            crate::metrics::token_refresh(v.is_ok());
            let v = v?;
            let token = v
                .get("accessToken")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| DingTalkError::Decode("token answer without accessToken".into()))?;
            let expire_in = v
                .get("expireIn")
                .and_then(wire::lenient_i64)
                .ok_or_else(|| DingTalkError::Decode("token answer without expireIn".into()))?;
            // From the network: clamped (an absurd value once overflowed an Instant).
            let expire_in = super::token::token_lifetime(expire_in);
            tracing::info!(
                expire_in_secs = expire_in.as_secs(),
                "fetched a DingTalk access token"
            );
            Ok(Cached::new(token.to_owned(), expire_in, Instant::now()))
        })
    }

    /// Runs one logical call: retries, refresh-once on a refused token,
    /// all under `cfg.deadline`. Returns the JSON object of a success.
    pub(crate) async fn call(&self, call: Call<'_>) -> Result<Value, DingTalkError> {
        let counters = self.counters(call.api);
        counters.calls.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!(
            "dingtalk",
            api = call.api.name(),
            path = call.url.path(),
            request_id = Empty,
            status = Empty,
        );
        let started = Instant::now();
        let deadline = started + self.cfg.deadline;
        let res = tokio::time::timeout_at(deadline, self.call_inner(&call, deadline))
            .instrument(span.clone())
            .await
            .unwrap_or(Err(DingTalkError::Timeout));
        let outcome = res.as_ref().err().map_or("ok", outcome_label);
        crate::metrics::dingtalk_call(call.api.name(), outcome, started.elapsed());
        if let Err(e) = &res {
            if is_quota_exhausted(e) {
                if let Some(ledger) = self.ledger.get() {
                    ledger.quota_exhausted();
                }
            }
            counters.errors.fetch_add(1, Ordering::Relaxed);
            span.in_scope(
                || tracing::warn!(error = %e, code = %e.code_str(), "DingTalk call failed"),
            );
        }
        res
    }

    async fn call_inner(&self, call: &Call<'_>, deadline: Instant) -> Result<Value, DingTalkError> {
        let counters = self.counters(call.api);
        let mut retries = 0u32;
        let mut auth_retried = false;
        loop {
            let token = match call.auth {
                Auth::None => None,
                Auth::Header | Auth::Query => Some(self.access_token().await?),
            };
            self.limiters[call.api.idx()].acquire().await;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(DingTalkError::Timeout);
            }
            let per_attempt = self.cfg.timeout.min(remaining);
            if call.api.billable() {
                if let Some(ledger) = self.ledger.get() {
                    ledger.record(call.api.name());
                }
            }
            let n = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            counters.peak_in_flight.fetch_max(n, Ordering::Relaxed);
            let outcome = self.attempt(call, token.as_deref(), per_attempt).await;
            counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(v) => return Ok(v),
                Err(Failure::Auth(e)) => match token {
                    Some(t) if !auth_retried => {
                        auth_retried = true;
                        counters.auth_retries.fetch_add(1, Ordering::Relaxed);
                        crate::metrics::dingtalk_retry(call.api.name(), "token");
                        tracing::info!(error = %e, "access token refused; refreshing once");
                        self.token.invalidate(&t);
                    }
                    _ => return Err(e),
                },
                Err(Failure::Retry(e)) => {
                    if retries >= self.policy.max_retries {
                        return Err(e);
                    }
                    let wait = self.policy.backoff(retries);
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    retries += 1;
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::dingtalk_retry(call.api.name(), "backoff");
                    tracing::warn!(error = %e, retry = retries, wait_ms = wait.as_millis() as u64, "retrying DingTalk call");
                    tokio::time::sleep(wait).await;
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let mut url = call.url.clone();
        let mut token_header = None;
        match (call.auth, token) {
            (Auth::Query, Some(t)) => {
                url.query_pairs_mut().append_pair("access_token", t);
            }
            (Auth::Header, Some(t)) => {
                let mut hv = HeaderValue::from_str(t).map_err(|_| {
                    Failure::Fatal(DingTalkError::Decode(
                        "access token is not a valid header value".into(),
                    ))
                })?;
                hv.set_sensitive(true);
                token_header = Some(hv);
            }
            _ => {}
        }
        let mut rb = self
            .http
            .post(url)
            .timeout(timeout)
            .header(ACCEPT, "application/json")
            .json(call.body);
        if let Some(hv) = token_header {
            rb = rb.header("x-acs-dingtalk-access-token", hv);
        }
        let resp = rb
            .send()
            .await
            .map_err(|e| transport_failure(e, call.mode))?;
        let status = resp.status().as_u16();
        let span = Span::current();
        span.record("status", status);
        if let Some(rid) = resp
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
        {
            span.record("request_id", rid);
        }
        let bytes = read_capped(resp, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| match e {
                Capped::TooLarge => Failure::Fatal(DingTalkError::TooLarge {
                    limit: MAX_ANSWER_BYTES,
                }),
                Capped::Read(e) => transport_failure(e, call.mode),
            })?;
        let parsed: Result<Value, _> = serde_json::from_slice(&bytes);
        if let Some(rid) = parsed.as_ref().ok().and_then(wire::request_id) {
            span.record("request_id", rid.as_str());
        }
        match call.family {
            Family::New => classify_new(status, parsed, call.mode),
            Family::Old => classify_old(status, parsed, call.mode),
        }
    }
}

/// The `outcome` label of a failed call in `readbot_dingtalk_calls_total`
/// (one of [`crate::metrics::DINGTALK_OUTCOMES`]).
fn outcome_label(e: &DingTalkError) -> &'static str {
    match e {
        DingTalkError::Api { status, code, .. } => match code {
            ErrorCode::Throttled(_) | ErrorCode::MonthlyQuotaExceeded => "throttled",
            ErrorCode::PermissionDenied(_) | ErrorCode::Unauthorized | ErrorCode::AuthError => {
                "permission_denied"
            }
            ErrorCode::InvalidAuthentication | ErrorCode::InvalidClientIdOrSecret => "auth_failed",
            ErrorCode::ProcessQueryKeyExpireTime => "not_ready_or_expired",
            _ if *status >= 500 => "server_error",
            _ => "rejected",
        },
        DingTalkError::OldApi { errcode, .. } => match errcode {
            90018 | 90002 | 90020 | -1 => "throttled",
            60011 => "permission_denied",
            40014 | 42001 => "auth_failed",
            300001 => "session_expired",
            _ => "rejected",
        },
        DingTalkError::NotReady | DingTalkError::Expired => "not_ready_or_expired",
        DingTalkError::SessionExpired => "session_expired",
        DingTalkError::Timeout => "timeout",
        DingTalkError::Transport(_) => "transport_error",
        DingTalkError::Decode(_) | DingTalkError::TooLarge { .. } => "decode_error",
        DingTalkError::UntrustedWebhook => "untrusted_webhook",
    }
}

fn is_retryable_status(status: u16, mode: Mode) -> bool {
    match mode {
        Mode::Idempotent => status >= 500 || status == 429,
        Mode::NonIdempotent => status == 429,
    }
}

fn classify_new(
    status: u16,
    parsed: Result<Value, serde_json::Error>,
    mode: Mode,
) -> Result<Value, Failure> {
    if (200..300).contains(&status) {
        return match parsed {
            Ok(v) if v.is_object() => Ok(v),
            Ok(_) => Err(Failure::Fatal(DingTalkError::Decode(format!(
                "HTTP {status}: expected a JSON object"
            )))),
            Err(e) => Err(Failure::Fatal(DingTalkError::Decode(format!(
                "HTTP {status}: body is not JSON ({e})"
            )))),
        };
    }
    let body = parsed.ok().and_then(|v| wire::error_body(&v));
    let (err, code) = match body {
        Some(b) => {
            let code = ErrorCode::parse(&b.code);
            (
                DingTalkError::Api {
                    status,
                    code: code.clone(),
                    message: b.message,
                    request_id: b.request_id,
                },
                Some(code),
            )
        }
        None => (
            DingTalkError::Decode(format!("HTTP {status} without DingTalk's error JSON")),
            None,
        ),
    };
    if code == Some(ErrorCode::InvalidAuthentication) || status == 401 {
        return Err(Failure::Auth(err));
    }
    if matches!(code, Some(ErrorCode::Throttled(_))) || is_retryable_status(status, mode) {
        return Err(Failure::Retry(err));
    }
    Err(Failure::Fatal(err))
}

fn classify_old(
    status: u16,
    parsed: Result<Value, serde_json::Error>,
    mode: Mode,
) -> Result<Value, Failure> {
    let v = match parsed {
        Ok(v) if v.is_object() => v,
        Ok(_) | Err(_) => {
            let err = DingTalkError::Decode(format!("HTTP {status}: body is not a JSON object"));
            return Err(if is_retryable_status(status, mode) {
                Failure::Retry(err)
            } else {
                Failure::Fatal(err)
            });
        }
    };
    let Some((errcode, errmsg)) = wire::errcode(&v) else {
        let err = DingTalkError::Decode(format!("HTTP {status}: answer without errcode"));
        return Err(if is_retryable_status(status, mode) {
            Failure::Retry(err)
        } else {
            Failure::Fatal(err)
        });
    };
    if errcode == 0 && (200..300).contains(&status) {
        return Ok(v);
    }
    let err = DingTalkError::OldApi { errcode, errmsg };
    match errcode {
        // Invalid / expired access token.
        40014 | 42001 => Err(Failure::Auth(err)),
        // Throttled (QPS per app / global) or "system busy": not acted upon.
        90018 | 90002 | -1 => Err(Failure::Retry(err)),
        _ if is_retryable_status(status, mode) => Err(Failure::Retry(err)),
        _ => Err(Failure::Fatal(err)),
    }
}

/// Maps a reqwest error; never includes the URL (it may carry
/// `access_token=` or `session=`).
fn transport_failure(e: reqwest::Error, mode: Mode) -> Failure {
    let e = e.without_url();
    if e.is_connect() {
        // Nothing was sent: safe to retry even a post.
        return Failure::Retry(DingTalkError::Transport(describe(&e)));
    }
    let err = if e.is_timeout() {
        DingTalkError::Timeout
    } else {
        DingTalkError::Transport(describe(&e))
    };
    match mode {
        Mode::Idempotent => Failure::Retry(err),
        Mode::NonIdempotent => Failure::Fatal(err),
    }
}

/// The error and its sources on one line.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod metric_label_tests {
    use super::*;

    #[test]
    fn the_billable_apis_are_the_published_list() {
        let billable: Vec<&str> = Api::ALL
            .iter()
            .filter(|a| a.billable())
            .map(|a| a.name())
            .collect();
        let mut published = crate::dingtalk::quota::BILLABLE_APIS.to_vec();
        published.sort_unstable();
        let mut billable_sorted = billable.clone();
        billable_sorted.sort_unstable();
        assert_eq!(billable_sorted, published);
    }

    #[test]
    fn every_outcome_label_is_documented() {
        let api = |status, code: &str| DingTalkError::Api {
            status,
            code: ErrorCode::parse(code),
            message: String::new(),
            request_id: None,
        };
        let old = |errcode| DingTalkError::OldApi {
            errcode,
            errmsg: String::new(),
        };
        let cases = [
            (
                api(403, "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi"),
                "throttled",
            ),
            (
                api(403, "Forbidden.AccessDenied.AccessTokenPermissionDenied"),
                "permission_denied",
            ),
            (api(400, "invalidClientIdOrSecret"), "auth_failed"),
            (
                api(400, "processQueryKey.expireTime"),
                "not_ready_or_expired",
            ),
            (api(500, "system.error"), "server_error"),
            (api(400, "invalid.openConversationId"), "rejected"),
            (old(90018), "throttled"),
            (old(60011), "permission_denied"),
            (old(42001), "auth_failed"),
            (old(300001), "session_expired"),
            (old(33012), "rejected"),
            (DingTalkError::Expired, "not_ready_or_expired"),
            (DingTalkError::SessionExpired, "session_expired"),
            (DingTalkError::Timeout, "timeout"),
            (DingTalkError::Transport("x".into()), "transport_error"),
            (DingTalkError::Decode("x".into()), "decode_error"),
            (DingTalkError::UntrustedWebhook, "untrusted_webhook"),
        ];
        for (e, want) in cases {
            assert_eq!(outcome_label(&e), want, "{e}");
            assert!(crate::metrics::DINGTALK_OUTCOMES.contains(&want));
        }
    }
}

#[cfg(test)]
mod replica_limit_tests {
    use super::*;
    use tokio::time::Instant;

    fn inner(env: &'static [(&'static str, &'static str)]) -> Inner {
        let lookup = |k: &str| {
            [("DINGTALK_APP_KEY", "k"), ("DINGTALK_APP_SECRET", "s")]
                .iter()
                .chain(env)
                .find(|(key, _)| *key == k)
                .map(|(_, v)| (*v).to_owned())
        };
        let config = crate::config::Config::from_toml_str("", &lookup).expect("config");
        Inner::new(config.dingtalk, RetryPolicy::default()).expect("client")
    }

    /// How many calls of one API go out at one instant before the limiter
    /// makes the next one wait.
    fn burst(inner: &Inner, api: Api) -> usize {
        let limiter = &inner.limiters[api.idx()];
        let now = Instant::now();
        (0..1000)
            .take_while(|_| limiter.reserve(now).is_none())
            .count()
    }

    #[test]
    fn each_replica_limits_every_api_to_its_share() {
        let one = inner(&[("DINGTALK_RATE_LIMIT_PER_SEC", "20")]);
        let three = inner(&[
            ("DINGTALK_RATE_LIMIT_PER_SEC", "20"),
            ("READBOT_REPLICAS", "3"),
        ]);
        let many = inner(&[
            ("DINGTALK_RATE_LIMIT_PER_SEC", "20"),
            ("READBOT_REPLICAS", "64"),
        ]);
        for api in Api::ALL {
            assert_eq!(burst(&one, api), 20, "{api:?}");
            assert_eq!(burst(&three, api), 6, "{api:?}: floor(20 / 3)");
            assert_eq!(burst(&many, api), 1, "{api:?}: at least 1");
        }
    }
}
