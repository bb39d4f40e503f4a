//! HTTP implementation of [`DingTalkApi`].
//!
//! Every call goes through one transport path (`transport::Inner::call`):
//! - access token from a cache refreshed 5 min before expiry (half-life for
//!   short lifetimes), single-flight; a refused token (`InvalidAuthentication`,
//!   HTTP 401, errcode 40014/42001) is dropped and the call retried once;
//! - a sliding-window limiter per API: at most `rate_limit_per_sec` calls in
//!   any 1.1 s (so DingTalk never counts more than that in one second);
//! - `timeout` per attempt, `deadline` for the call with all its retries;
//! - retries with full-jitter exponential backoff (200 ms × 2ⁿ, cap 5 s, at
//!   most 5) for 5xx, 429, `Forbidden.AccessDenied.Qps*/Qpm*`, `system.busy`,
//!   old-API 90018/90002/-1, connection errors and timeouts. Posts that show up
//!   in a chat (group send, session reply) are retried only when DingTalk
//!   certainly did not act: a throttling answer or a failure to connect;
//! - the DingTalk request id (`x-acs-request-id` or `requestid`) recorded on
//!   the `dingtalk` span. URLs with `access_token=`/`session=`, the token and
//!   the app secret are never logged.

mod limiter;
mod outreach;
mod token;
mod transport;
mod wire;

#[cfg(test)]
mod tests;

use crate::config::DingTalkConfig;
use crate::dingtalk::{
    DingTalkApi, DingTalkError, DirectSend, DirectSendOutcome, ErrorCode, GroupSend, ReadQuery,
    ReadState, Recall, RecallOutcome, Reply, Roster, RosterQuery,
};
use crate::domain::{now_millis, Member, ProcessQueryKey, SendStatus, UserId};
use async_trait::async_trait;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use transport::{Api, Auth, Call, Family, Inner, Mode};
use url::Url;

/// Page size of `groupMessages/query` (DingTalk's maximum).
const QUERY_PAGE_SIZE: u32 = 200;
/// Page size of `innerGroups/memberLists/query`: as large as the member APIs
/// go (1000), so a 10,000-member group costs 10 calls rather than 100. The
/// API has no public doc page; if DingTalk refuses this size, the client
/// falls back to [`INNER_GROUP_SMALL_PAGE`] and remembers that.
const INNER_GROUP_PAGE_SIZE: u32 = 1000;
/// The page size known to work (the SDK example's).
const INNER_GROUP_SMALL_PAGE: u32 = 100;
/// Page size of `sceneGroups/members/batchQuery` (≤ 1000 members come in one page).
const SCENE_GROUP_PAGE_SIZE: u32 = 1000;
/// At most this many `atUserIds` per message.
const MAX_AT_USERS: usize = 50;
/// The path of every `sessionWebhook` DingTalk hands out (under the old-API base).
const SESSION_PATH: &str = "/robot/sendBySession";
/// `sendBySession`: session unknown or expired.
const ERRCODE_SESSION_EXPIRED: i64 = 300001;
/// `user/get`: user not found / invalid userId: skipped.
const ERRCODES_UNKNOWN_USER: [i64; 2] = [60121, 33012];

/// Backoff settings. [`Default`] is what production uses; tests shorten it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff ceiling (full jitter: the wait is uniform in `0..=ceiling`).
    pub base: Duration,
    /// Largest backoff ceiling.
    pub cap: Duration,
    /// Retries after the first attempt (not counting the one refresh-once retry).
    pub max_retries: u32,
    /// First wait after `processQueryKey.expireTime` right after sending; doubles.
    pub not_ready_base: Duration,
    /// Total time spent waiting for read data to become ready (also bounded by
    /// `cfg.deadline`).
    pub not_ready_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            max_retries: 5,
            not_ready_base: Duration::from_secs(1),
            not_ready_budget: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `n + 1` (full jitter).
    fn backoff(&self, n: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(n.min(16)))
            .min(self.cap);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }
}

/// Counters of one API, as read by [`DingTalkClient::stats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiStats {
    /// Stable API name, e.g. `robot.groupMessages.query`.
    pub api: &'static str,
    /// Logical calls (one per page, retries not counted).
    pub calls: u64,
    /// Logical calls that ended in an error.
    pub errors: u64,
    /// Backoff retries.
    pub retries: u64,
    /// Retries after a refused access token (refresh-once).
    pub token_retries: u64,
    /// Requests in flight right now.
    pub in_flight: u64,
    /// Most requests ever in flight at once.
    pub peak_in_flight: u64,
}

/// A snapshot of the client's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStats {
    /// Access-token requests made.
    pub token_refreshes: u64,
    /// One entry per API.
    pub apis: Vec<ApiStats>,
}

impl ClientStats {
    /// The entry of one API by name.
    pub fn api(&self, name: &str) -> Option<&ApiStats> {
        self.apis.iter().find(|a| a.api == name)
    }
}

/// The DingTalk HTTP client. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct DingTalkClient {
    inner: Arc<Inner>,
    /// `maxResults` for the inner-group member list (drops to
    /// [`INNER_GROUP_SMALL_PAGE`] once DingTalk refuses the large one).
    inner_group_page: Arc<AtomicU32>,
}

impl std::fmt::Debug for DingTalkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DingTalkClient")
            .field("api_base", &self.inner.cfg.api_base.as_str())
            .field("oapi_base", &self.inner.cfg.oapi_base.as_str())
            .finish_non_exhaustive()
    }
}

impl DingTalkClient {
    /// Builds a client with the default [`RetryPolicy`]. Makes no request.
    pub fn new(cfg: DingTalkConfig) -> Result<Self, DingTalkError> {
        Self::with_policy(cfg, RetryPolicy::default())
    }

    /// Builds a client with an explicit backoff policy (tests, tools).
    pub fn with_policy(cfg: DingTalkConfig, policy: RetryPolicy) -> Result<Self, DingTalkError> {
        Ok(Self {
            inner: Arc::new(Inner::new(cfg, policy)?),
            inner_group_page: Arc::new(AtomicU32::new(INNER_GROUP_PAGE_SIZE)),
        })
    }

    /// Makes sure a valid access token is cached, fetching one if needed
    /// (for `check` and health endpoints). The token itself is not exposed.
    pub async fn access_token(&self) -> Result<(), DingTalkError> {
        self.inner.access_token().await.map(|_| ())
    }

    /// Reports every billable request from now on to `ledger` (the quota
    /// ledger; see [`crate::dingtalk::quota`]). Set once: later calls are
    /// ignored and return false.
    pub fn set_call_ledger(&self, ledger: Arc<dyn crate::dingtalk::quota::CallLedger>) -> bool {
        self.inner.ledger.set(ledger).is_ok()
    }

    /// A snapshot of the per-API counters.
    pub fn stats(&self) -> ClientStats {
        let i = &self.inner;
        ClientStats {
            token_refreshes: i.token_refreshes.load(Ordering::Relaxed),
            apis: Api::ALL
                .iter()
                .map(|&api| {
                    let c = i.counters(api);
                    ApiStats {
                        api: api.name(),
                        calls: c.calls.load(Ordering::Relaxed),
                        errors: c.errors.load(Ordering::Relaxed),
                        retries: c.retries.load(Ordering::Relaxed),
                        token_retries: c.auth_retries.load(Ordering::Relaxed),
                        in_flight: c.in_flight.load(Ordering::Relaxed),
                        peak_in_flight: c.peak_in_flight.load(Ordering::Relaxed),
                    }
                })
                .collect(),
        }
    }

    fn new_api(
        &self,
        api: Api,
        path: &str,
        body: &Value,
        mode: Mode,
    ) -> impl std::future::Future<Output = Result<Value, DingTalkError>> + Send + '_ {
        let url = self.inner.url(&self.inner.cfg.api_base, path);
        let body = body.clone();
        async move {
            self.inner
                .call(Call {
                    api,
                    url,
                    body: &body,
                    auth: Auth::Header,
                    family: Family::New,
                    mode,
                })
                .await
        }
    }

    /// One query page; `processQueryKey.expireTime` handled by the caller.
    async fn query_page(
        &self,
        q: &ReadQuery,
        next: Option<&str>,
    ) -> Result<wire::QueryPage, DingTalkError> {
        let mut body = json!({
            "openConversationId": q.group.as_str(),
            "robotCode": q.robot_code.as_str(),
            "processQueryKey": q.key.as_str(),
            "maxResults": QUERY_PAGE_SIZE,
        });
        if let Some(t) = next {
            body["nextToken"] = Value::String(t.to_owned());
        }
        let v = self
            .new_api(
                Api::Query,
                "/v1.0/robot/groupMessages/query",
                &body,
                Mode::Idempotent,
            )
            .await?;
        Ok(wire::query_page(&v))
    }

    /// One page, waiting out "not ready yet" right after sending.
    async fn query_page_when_ready(
        &self,
        q: &ReadQuery,
        next: Option<&str>,
    ) -> Result<wire::QueryPage, DingTalkError> {
        let policy = &self.inner.policy;
        let budget = policy.not_ready_budget.min(self.inner.cfg.deadline);
        let started = tokio::time::Instant::now();
        let mut wait = policy.not_ready_base;
        loop {
            match self.query_page(q, next).await {
                Err(e) if e.code() == Some(&ErrorCode::ProcessQueryKeyExpireTime) => {
                    let age = now_millis().saturating_sub(q.sent_at);
                    let window = i64::try_from(self.inner.cfg.not_ready_window.as_millis())
                        .unwrap_or(i64::MAX);
                    if age >= window {
                        return Err(DingTalkError::Expired);
                    }
                    if started.elapsed() + wait > budget {
                        return Err(DingTalkError::NotReady);
                    }
                    tracing::info!(
                        wait_ms = wait.as_millis() as u64,
                        "read data not ready yet; waiting"
                    );
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                other => return other,
            }
        }
    }

    async fn roster_inner_group(
        &self,
        group: &str,
        operator: &str,
    ) -> Result<Roster, DingTalkError> {
        let mut members = Vec::new();
        let mut seen = HashSet::new();
        let mut next: i64 = 0;
        let mut size = self.inner_group_page.load(Ordering::Relaxed);
        let mut pages = 0;
        while pages < self.inner.cfg.max_pages {
            let body = json!({
                "openConversationId": group,
                "userId": operator,
                "maxResults": size,
                "nextToken": next,
            });
            let v = match self
                .new_api(
                    Api::InnerGroupMembers,
                    "/v1.0/im/innerGroups/memberLists/query",
                    &body,
                    Mode::Idempotent,
                )
                .await
            {
                Err(e) if size > INNER_GROUP_SMALL_PAGE && is_page_size_refusal(&e) => {
                    tracing::info!(
                        refused = size,
                        using = INNER_GROUP_SMALL_PAGE,
                        "inner-group member list refused the page size; using the small one from now on"
                    );
                    size = INNER_GROUP_SMALL_PAGE;
                    self.inner_group_page.store(size, Ordering::Relaxed);
                    continue;
                }
                other => other?,
            };
            pages += 1;
            wire::expect_object(&v, "innerGroups/memberLists/query")?;
            if v.get("success").and_then(wire::lenient_bool) == Some(false) {
                return Err(DingTalkError::Decode(
                    "innerGroups/memberLists/query answered success=false".into(),
                ));
            }
            for m in v
                .get("list")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(id) = m
                    .get("userId")
                    .and_then(Value::as_str)
                    .and_then(|s| UserId::parse(s).ok())
                else {
                    continue;
                };
                if seen.insert(id.clone()) {
                    let name = wire::name(m.get("name")).or_else(|| wire::name(m.get("nickName")));
                    members.push(Member { user_id: id, name });
                }
            }
            let cursor = match wire::cursor(&v, "nextToken") {
                Some(c) => Some(c.parse::<i64>().map_err(|_| {
                    DingTalkError::Decode(
                        "innerGroups/memberLists/query: nextToken is not an integer".into(),
                    )
                })?),
                None => None,
            };
            match cursor {
                Some(c) if wire::has_more(&v) => next = c,
                _ => {
                    return Ok(Roster {
                        members,
                        complete: true,
                    })
                }
            }
        }
        Ok(Roster {
            members,
            complete: false,
        })
    }

    async fn roster_scene_group(
        &self,
        group: &str,
        cool_app_code: Option<&str>,
    ) -> Result<Roster, DingTalkError> {
        let mut members = Vec::new();
        let mut seen = HashSet::new();
        let mut next: Option<String> = None;
        for _ in 0..self.inner.cfg.max_pages {
            let mut body = json!({
                "openConversationId": group,
                "maxResults": SCENE_GROUP_PAGE_SIZE,
            });
            if let Some(c) = cool_app_code {
                body["coolAppCode"] = Value::String(c.to_owned());
            }
            if let Some(t) = &next {
                body["nextToken"] = Value::String(t.clone());
            }
            let v = self
                .new_api(
                    Api::SceneGroupMembers,
                    "/v1.0/im/sceneGroups/members/batchQuery",
                    &body,
                    Mode::Idempotent,
                )
                .await?;
            wire::expect_object(&v, "sceneGroups/members/batchQuery")?;
            let nicks = v.get("staffIdNickMap");
            for id in wire::user_ids(v.get("memberUserIds")) {
                if seen.insert(id.clone()) {
                    let name = wire::name(nicks.and_then(|m| m.get(id.as_str())));
                    members.push(Member { user_id: id, name });
                }
            }
            match wire::cursor(&v, "nextToken") {
                Some(c) if wire::has_more(&v) => next = Some(c),
                _ => {
                    return Ok(Roster {
                        members,
                        complete: true,
                    })
                }
            }
        }
        Ok(Roster {
            members,
            complete: false,
        })
    }
}

/// Whether DingTalk refused a request because of its page size (`maxResults`).
fn is_page_size_refusal(e: &DingTalkError) -> bool {
    match e {
        DingTalkError::Api {
            status: 400, code, ..
        } => {
            let c = code.as_str().to_ascii_lowercase();
            c.contains("maxresults")
                || c.contains("pagesize")
                || *code == ErrorCode::ParamInvalid
                || *code == ErrorCode::PageSizeInvalid
        }
        _ => false,
    }
}

impl Inner {
    /// `topapi/v2/user/get` for one user: `Ok(None)` when DingTalk does not
    /// know the user (60121, 33012) or has no name for them.
    async fn user_name(&self, user: &UserId) -> Result<Option<String>, DingTalkError> {
        let url = self.url(&self.cfg.oapi_base, "/topapi/v2/user/get");
        let body = json!({ "userid": user.as_str(), "language": "zh_CN" });
        let res = self
            .call(Call {
                api: Api::UserGet,
                url,
                body: &body,
                auth: Auth::Query,
                family: Family::Old,
                mode: Mode::Idempotent,
            })
            .await;
        match res {
            Ok(v) => Ok(wire::name(v.get("result").and_then(|r| r.get("name")))),
            Err(DingTalkError::OldApi { errcode, .. })
                if ERRCODES_UNKNOWN_USER.contains(&errcode) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl DingTalkApi for DingTalkClient {
    async fn send_group_message(&self, req: &GroupSend) -> Result<ProcessQueryKey, DingTalkError> {
        // msgParam is a JSON object encoded as a *string* on the wire.
        let msg_param = serde_json::to_string(&req.message.msg_param)
            .map_err(|e| DingTalkError::Decode(format!("msgParam: {e}")))?;
        let mut body = json!({
            "msgKey": req.message.msg_key,
            "msgParam": msg_param,
            "openConversationId": req.group.as_str(),
            "robotCode": req.robot_code.as_str(),
        });
        if let Some(c) = req
            .cool_app_code
            .as_ref()
            .or(self.inner.cfg.cool_app_code.as_ref())
        {
            body["coolAppCode"] = Value::String(c.clone());
        }
        // NonIdempotent: a timeout or 5xx may already have posted the notice.
        let v = self
            .new_api(
                Api::Send,
                "/v1.0/robot/groupMessages/send",
                &body,
                Mode::NonIdempotent,
            )
            .await?;
        let key = v
            .get("processQueryKey")
            .and_then(Value::as_str)
            .ok_or_else(|| DingTalkError::Decode("send answer without processQueryKey".into()))?;
        ProcessQueryKey::parse(key)
            .map_err(|e| DingTalkError::Decode(format!("processQueryKey: {e}")))
    }

    async fn read_state(&self, query: &ReadQuery) -> Result<ReadState, DingTalkError> {
        let mut readers = Vec::new();
        let mut seen = HashSet::new();
        let mut send_status = SendStatus::Other(String::new());
        let mut next: Option<String> = None;
        let mut pages = 0usize;
        loop {
            let page = self.query_page_when_ready(query, next.as_deref()).await?;
            pages += 1;
            send_status = if page.send_status == SendStatus::Other(String::new()) {
                send_status
            } else {
                page.send_status
            };
            for r in page.readers {
                if seen.insert(r.clone()) {
                    readers.push(r);
                }
            }
            let more = page.has_more && page.next_token.is_some();
            if !more {
                return Ok(ReadState {
                    send_status,
                    readers,
                    pages,
                    truncated: false,
                });
            }
            if pages >= self.inner.cfg.max_pages {
                tracing::warn!(pages, "read query stopped at the page cap");
                return Ok(ReadState {
                    send_status,
                    readers,
                    pages,
                    truncated: true,
                });
            }
            next = page.next_token;
        }
    }

    async fn roster(&self, query: &RosterQuery) -> Result<Roster, DingTalkError> {
        match query {
            RosterQuery::InnerGroup { group, operator } => {
                self.roster_inner_group(group.as_str(), operator.as_str())
                    .await
            }
            RosterQuery::SceneGroup {
                group,
                cool_app_code,
            } => {
                let code = cool_app_code
                    .as_deref()
                    .or(self.inner.cfg.cool_app_code.as_deref());
                self.roster_scene_group(group.as_str(), code).await
            }
        }
    }

    async fn user_names(&self, users: &[UserId]) -> Result<Vec<(UserId, String)>, DingTalkError> {
        let mut seen = HashSet::new();
        let users: Vec<UserId> = users
            .iter()
            .filter(|u| seen.insert((*u).clone()))
            .cloned()
            .collect();
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(
            self.inner.cfg.name_concurrency.max(1),
        ));
        let mut set = tokio::task::JoinSet::new();
        for (i, user) in users.iter().cloned().enumerate() {
            let permit =
                sem.clone().acquire_owned().await.map_err(|_| {
                    DingTalkError::Transport("name look-up semaphore closed".into())
                })?;
            let inner = self.inner.clone();
            set.spawn(
                async move {
                    let _permit = permit;
                    let r = inner.user_name(&user).await;
                    (i, r)
                }
                .in_current_span(),
            );
        }
        let mut results: Vec<Option<Result<Option<String>, DingTalkError>>> =
            vec![None; users.len()];
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, r)) => results[i] = Some(r),
                Err(e) => tracing::warn!(error = %e, "name look-up task failed"),
            }
        }
        let mut names = Vec::new();
        let mut errors = Vec::new();
        let mut answered = 0usize;
        for (user, r) in users.into_iter().zip(results) {
            match r {
                Some(Ok(Some(name))) => {
                    answered += 1;
                    names.push((user, name));
                }
                Some(Ok(None)) => answered += 1,
                Some(Err(e)) => errors.push(e),
                None => {}
            }
        }
        if answered == 0 {
            // Every look-up failed: the same problem for everyone (token,
            // permission, throttling) is worth surfacing.
            if let Some(first) = errors.into_iter().next() {
                return Err(first);
            }
        } else if !errors.is_empty() {
            tracing::warn!(
                failed = errors.len(),
                "some name look-ups failed; those users are left out"
            );
        }
        Ok(names)
    }

    async fn reply_in_session(&self, webhook: &str, reply: &Reply) -> Result<(), DingTalkError> {
        let url = Url::parse(webhook).map_err(|_| DingTalkError::UntrustedWebhook)?;
        let base = &self.inner.cfg.oapi_base;
        if url.scheme() != base.scheme()
            || url.host_str() != base.host_str()
            || url.port_or_known_default() != base.port_or_known_default()
            || !url.username().is_empty()
            || url.password().is_some()
            // The signature does not cover the body: a replayed header pair
            // must not make readbot post to any other endpoint on that host.
            || url.path() != format!("{}{SESSION_PATH}", base.path().trim_end_matches('/'))
        {
            return Err(DingTalkError::UntrustedWebhook);
        }
        let at: Vec<&str> = reply
            .at_user_ids
            .iter()
            .take(MAX_AT_USERS)
            .map(UserId::as_str)
            .collect();
        let body = json!({
            "msgtype": "markdown",
            "markdown": { "title": reply.title, "text": reply.markdown },
            "at": { "atUserIds": at, "isAtAll": false },
        });
        // NonIdempotent: a duplicate reply is worse than falling back.
        let res = self
            .inner
            .call(Call {
                api: Api::SessionReply,
                url,
                body: &body,
                auth: Auth::None,
                family: Family::Old,
                mode: Mode::NonIdempotent,
            })
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(DingTalkError::OldApi {
                errcode: ERRCODE_SESSION_EXPIRED,
                ..
            }) => Err(DingTalkError::SessionExpired),
            Err(e) => Err(e),
        }
    }

    async fn send_direct_messages(
        &self,
        req: &DirectSend,
    ) -> Result<DirectSendOutcome, DingTalkError> {
        self.direct_send(req).await
    }

    async fn recall_group_messages(&self, req: &Recall) -> Result<RecallOutcome, DingTalkError> {
        self.recall(req).await
    }
}
