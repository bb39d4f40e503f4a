//! A scripted, in-memory [`DingTalkApi`] for tests: no network, no wire
//! format, just the answers a test sets up and a log of the calls made.
//!
//! Each method of the port has its own script: answers queued with
//! `push_*` are used first, one per call, in order; once its queue is empty
//! a method answers through the handler set with `on_*` (a closure that sees
//! the request), else with its default:
//!
//! | method | default answer |
//! |---|---|
//! | [`DingTalkApi::send_group_message`] | `Ok` with a fresh key `scripted-key-N` |
//! | [`DingTalkApi::read_state`] | `Ok`: `SUCCESS`, nobody has read, one page |
//! | [`DingTalkApi::roster`] | `Ok`: no members, not complete |
//! | [`DingTalkApi::user_names`] | `Ok`: no names (DingTalk knows nobody) |
//! | [`DingTalkApi::reply_in_session`] | `Ok(())` |
//! | [`DingTalkApi::send_direct_messages`] | `Ok`: every user sent to |
//! | [`DingTalkApi::recall_group_messages`] | `Ok`: every key recalled |
//!
//! Every call, answered or not, is appended to the log ([`ScriptedApi::calls`])
//! before it is answered, so a test asserts on what was asked of DingTalk
//! (which API, with which request, how often) rather than on internals.
//!
//! This is a second implementation of the port beside
//! [`super::client::DingTalkClient`]: it checks nothing the client checks
//! (e.g. the `sessionWebhook` host); to see how the bot handles a refusal of
//! the client, script that refusal (`Err(DingTalkError::UntrustedWebhook)`).
//!
//! ```
//! use readbot::dingtalk::scripted::{Method, ScriptedApi};
//! use readbot::dingtalk::{DingTalkApi, DingTalkError, ErrorCode, RosterQuery};
//! use readbot::domain::{OpenConversationId, UserId};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let api = ScriptedApi::new();
//! api.push_roster(Err(DingTalkError::Api {
//!     status: 400,
//!     code: ErrorCode::Other("groupPermissionDenied".into()),
//!     message: "no".into(),
//!     request_id: None,
//! }));
//! let q = RosterQuery::InnerGroup {
//!     group: OpenConversationId::parse("cid1==").unwrap(),
//!     operator: UserId::parse("u1").unwrap(),
//! };
//! assert!(api.roster(&q).await.is_err()); // the queued answer
//! assert!(api.roster(&q).await.unwrap().members.is_empty()); // the default
//! assert_eq!(api.count(Method::Roster), 2);
//! # });
//! ```

use super::{
    DingTalkApi, DingTalkError, DirectSend, DirectSendOutcome, GroupSend, ReadQuery, ReadState,
    Recall, RecallOutcome, Reply, Roster, RosterQuery,
};
use crate::domain::{ProcessQueryKey, SendStatus, UserId};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// One method of [`DingTalkApi`], for counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// [`DingTalkApi::send_group_message`] (`groupMessages/send`).
    SendGroupMessage,
    /// [`DingTalkApi::read_state`] (`groupMessages/query`, all pages).
    ReadState,
    /// [`DingTalkApi::roster`] (one member-list source, all pages).
    Roster,
    /// [`DingTalkApi::user_names`] (`user/get`).
    UserNames,
    /// [`DingTalkApi::reply_in_session`] (`sessionWebhook`).
    ReplyInSession,
    /// [`DingTalkApi::send_direct_messages`] (`oToMessages/batchSend`, all batches).
    SendDirectMessages,
    /// [`DingTalkApi::recall_group_messages`] (`groupMessages/recall`).
    RecallGroupMessages,
}

/// One call made to the [`ScriptedApi`], with its request.
#[derive(Debug, Clone)]
pub enum Call {
    /// [`DingTalkApi::send_group_message`].
    SendGroupMessage(GroupSend),
    /// [`DingTalkApi::read_state`].
    ReadState(ReadQuery),
    /// [`DingTalkApi::roster`].
    Roster(RosterQuery),
    /// [`DingTalkApi::user_names`].
    UserNames(Vec<UserId>),
    /// [`DingTalkApi::reply_in_session`].
    ReplyInSession {
        /// The webhook URL the reply was posted to.
        webhook: String,
        /// The reply.
        reply: Reply,
    },
    /// [`DingTalkApi::send_direct_messages`].
    SendDirectMessages(DirectSend),
    /// [`DingTalkApi::recall_group_messages`].
    RecallGroupMessages(Recall),
}

impl Call {
    /// Which method this call was.
    pub fn method(&self) -> Method {
        match self {
            Call::SendGroupMessage(_) => Method::SendGroupMessage,
            Call::ReadState(_) => Method::ReadState,
            Call::Roster(_) => Method::Roster,
            Call::UserNames(_) => Method::UserNames,
            Call::ReplyInSession { .. } => Method::ReplyInSession,
            Call::SendDirectMessages(_) => Method::SendDirectMessages,
            Call::RecallGroupMessages(_) => Method::RecallGroupMessages,
        }
    }
}

type SendFn = dyn FnMut(&GroupSend) -> Result<ProcessQueryKey, DingTalkError> + Send;
type ReadStateFn = dyn FnMut(&ReadQuery) -> Result<ReadState, DingTalkError> + Send;
type RosterFn = dyn FnMut(&RosterQuery) -> Result<Roster, DingTalkError> + Send;
type UserNamesFn = dyn FnMut(&[UserId]) -> Result<Vec<(UserId, String)>, DingTalkError> + Send;
type ReplyFn = dyn FnMut(&str, &Reply) -> Result<(), DingTalkError> + Send;
type DirectFn = dyn FnMut(&DirectSend) -> Result<DirectSendOutcome, DingTalkError> + Send;
type RecallFn = dyn FnMut(&Recall) -> Result<RecallOutcome, DingTalkError> + Send;

/// The answers of one method: a queue, then a handler, then the default.
struct Script<T, F: ?Sized> {
    queue: VecDeque<Result<T, DingTalkError>>,
    handler: Option<Box<F>>,
}

impl<T, F: ?Sized> Default for Script<T, F> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            handler: None,
        }
    }
}

impl<T, F: ?Sized> Script<T, F> {
    /// The next queued answer, else the handler's (called with `call`),
    /// else `None` (the caller's default).
    fn next(
        &mut self,
        call: impl FnOnce(&mut F) -> Result<T, DingTalkError>,
    ) -> Option<Result<T, DingTalkError>> {
        if let Some(answer) = self.queue.pop_front() {
            return Some(answer);
        }
        self.handler.as_deref_mut().map(call)
    }
}

#[derive(Default)]
struct State {
    send: Script<ProcessQueryKey, SendFn>,
    read_state: Script<ReadState, ReadStateFn>,
    roster: Script<Roster, RosterFn>,
    user_names: Script<Vec<(UserId, String)>, UserNamesFn>,
    reply: Script<(), ReplyFn>,
    direct: Script<DirectSendOutcome, DirectFn>,
    recall: Script<RecallOutcome, RecallFn>,
    calls: Vec<Call>,
    sent: usize,
    latency: Duration,
}

/// A [`DingTalkApi`] answering from scripts set up by a test, and logging
/// every call (see the module documentation).
#[derive(Default)]
pub struct ScriptedApi {
    state: Mutex<State>,
}

impl std::fmt::Debug for ScriptedApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("ScriptedApi")
            .field("calls", &s.calls.len())
            .field("latency", &s.latency)
            .finish_non_exhaustive()
    }
}

impl ScriptedApi {
    /// An API answering every call with its method's default.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its
        // own failure behind a poisoned-lock panic in another test.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every call answers after `latency` (logged at once, answered after
    /// the wait), e.g. to let concurrent asks overlap.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Queues the answer of the next unanswered `send_group_message`.
    pub fn push_send(&self, answer: Result<ProcessQueryKey, DingTalkError>) {
        self.lock().send.queue.push_back(answer);
    }

    /// Queues the answer of the next unanswered `read_state`.
    pub fn push_read_state(&self, answer: Result<ReadState, DingTalkError>) {
        self.lock().read_state.queue.push_back(answer);
    }

    /// Queues the answer of the next unanswered `roster`.
    pub fn push_roster(&self, answer: Result<Roster, DingTalkError>) {
        self.lock().roster.queue.push_back(answer);
    }

    /// Queues the answer of the next unanswered `user_names`.
    pub fn push_user_names(&self, answer: Result<Vec<(UserId, String)>, DingTalkError>) {
        self.lock().user_names.queue.push_back(answer);
    }

    /// Queues the answer of the next unanswered `reply_in_session`.
    pub fn push_reply_in_session(&self, answer: Result<(), DingTalkError>) {
        self.lock().reply.queue.push_back(answer);
    }

    /// Answers `send_group_message` through `f` once its queue is empty.
    pub fn on_send(
        &self,
        f: impl FnMut(&GroupSend) -> Result<ProcessQueryKey, DingTalkError> + Send + 'static,
    ) {
        self.lock().send.handler = Some(Box::new(f));
    }

    /// Answers `read_state` through `f` once its queue is empty.
    pub fn on_read_state(
        &self,
        f: impl FnMut(&ReadQuery) -> Result<ReadState, DingTalkError> + Send + 'static,
    ) {
        self.lock().read_state.handler = Some(Box::new(f));
    }

    /// Answers `roster` through `f` once its queue is empty.
    pub fn on_roster(
        &self,
        f: impl FnMut(&RosterQuery) -> Result<Roster, DingTalkError> + Send + 'static,
    ) {
        self.lock().roster.handler = Some(Box::new(f));
    }

    /// Answers `user_names` through `f` once its queue is empty.
    pub fn on_user_names(
        &self,
        f: impl FnMut(&[UserId]) -> Result<Vec<(UserId, String)>, DingTalkError> + Send + 'static,
    ) {
        self.lock().user_names.handler = Some(Box::new(f));
    }

    /// Answers `reply_in_session` through `f` (webhook URL, reply) once its
    /// queue is empty.
    pub fn on_reply_in_session(
        &self,
        f: impl FnMut(&str, &Reply) -> Result<(), DingTalkError> + Send + 'static,
    ) {
        self.lock().reply.handler = Some(Box::new(f));
    }

    /// Queues the answer of the next unanswered `send_direct_messages`.
    pub fn push_direct(&self, answer: Result<DirectSendOutcome, DingTalkError>) {
        self.lock().direct.queue.push_back(answer);
    }

    /// Answers `send_direct_messages` through `f` once its queue is empty.
    pub fn on_direct(
        &self,
        f: impl FnMut(&DirectSend) -> Result<DirectSendOutcome, DingTalkError> + Send + 'static,
    ) {
        self.lock().direct.handler = Some(Box::new(f));
    }

    /// Queues the answer of the next unanswered `recall_group_messages`.
    pub fn push_recall(&self, answer: Result<RecallOutcome, DingTalkError>) {
        self.lock().recall.queue.push_back(answer);
    }

    /// Answers `recall_group_messages` through `f` once its queue is empty.
    pub fn on_recall(
        &self,
        f: impl FnMut(&Recall) -> Result<RecallOutcome, DingTalkError> + Send + 'static,
    ) {
        self.lock().recall.handler = Some(Box::new(f));
    }

    /// The direct-message requests made so far.
    pub fn direct_sends(&self) -> Vec<DirectSend> {
        self.lock()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::SendDirectMessages(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// How many calls of `method` were made.
    pub fn count(&self, method: Method) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method() == method)
            .count()
    }

    /// The methods called so far, oldest first.
    pub fn methods(&self) -> Vec<Method> {
        self.lock().calls.iter().map(Call::method).collect()
    }

    /// The group messages sent so far (replies through the send API and notices).
    pub fn sent(&self) -> Vec<GroupSend> {
        self.lock()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::SendGroupMessage(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// The replies posted to session webhooks so far, with their URL.
    pub fn session_replies(&self) -> Vec<(String, Reply)> {
        self.lock()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::ReplyInSession { webhook, reply } => Some((webhook.clone(), reply.clone())),
                _ => None,
            })
            .collect()
    }

    /// The roster queries made so far.
    pub fn roster_queries(&self) -> Vec<RosterQuery> {
        self.lock()
            .calls
            .iter()
            .filter_map(|c| match c {
                Call::Roster(q) => Some(q.clone()),
                _ => None,
            })
            .collect()
    }

    /// Forgets the calls logged so far (the scripts stay).
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Logs `call`, takes the answer from `answer` (under the lock), then
    /// waits out the latency.
    async fn answer<T>(&self, call: Call, answer: impl FnOnce(&mut State) -> T) -> T {
        let (result, latency) = {
            let mut s = self.lock();
            s.calls.push(call);
            (answer(&mut s), s.latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        result
    }
}

#[async_trait]
impl DingTalkApi for ScriptedApi {
    async fn send_group_message(&self, req: &GroupSend) -> Result<ProcessQueryKey, DingTalkError> {
        self.answer(Call::SendGroupMessage(req.clone()), |s| {
            s.sent += 1;
            let n = s.sent;
            s.send.next(|f| f(req)).unwrap_or_else(|| {
                ProcessQueryKey::parse(format!("scripted-key-{n}"))
                    .map_err(|e| DingTalkError::Decode(e.to_string()))
            })
        })
        .await
    }

    async fn read_state(&self, query: &ReadQuery) -> Result<ReadState, DingTalkError> {
        self.answer(Call::ReadState(query.clone()), |s| {
            s.read_state.next(|f| f(query)).unwrap_or_else(|| {
                Ok(ReadState {
                    send_status: SendStatus::Success,
                    readers: Vec::new(),
                    pages: 1,
                    truncated: false,
                })
            })
        })
        .await
    }

    async fn roster(&self, query: &RosterQuery) -> Result<Roster, DingTalkError> {
        self.answer(Call::Roster(query.clone()), |s| {
            s.roster.next(|f| f(query)).unwrap_or_else(|| {
                Ok(Roster {
                    members: Vec::new(),
                    complete: false,
                })
            })
        })
        .await
    }

    async fn user_names(&self, users: &[UserId]) -> Result<Vec<(UserId, String)>, DingTalkError> {
        self.answer(Call::UserNames(users.to_vec()), |s| {
            s.user_names
                .next(|f| f(users))
                .unwrap_or_else(|| Ok(Vec::new()))
        })
        .await
    }

    async fn reply_in_session(&self, webhook: &str, reply: &Reply) -> Result<(), DingTalkError> {
        let call = Call::ReplyInSession {
            webhook: webhook.to_owned(),
            reply: reply.clone(),
        };
        self.answer(call, |s| {
            s.reply.next(|f| f(webhook, reply)).unwrap_or(Ok(()))
        })
        .await
    }

    async fn send_direct_messages(
        &self,
        req: &DirectSend,
    ) -> Result<DirectSendOutcome, DingTalkError> {
        self.answer(Call::SendDirectMessages(req.clone()), |s| {
            s.direct.next(|f| f(req)).unwrap_or_else(|| {
                Ok(DirectSendOutcome {
                    sent: req.users.clone(),
                    ..DirectSendOutcome::default()
                })
            })
        })
        .await
    }

    async fn recall_group_messages(&self, req: &Recall) -> Result<RecallOutcome, DingTalkError> {
        self.answer(Call::RecallGroupMessages(req.clone()), |s| {
            s.recall.next(|f| f(req)).unwrap_or_else(|| {
                Ok(RecallOutcome {
                    recalled: req.keys.clone(),
                    failed: Vec::new(),
                })
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dingtalk::OutgoingMessage;
    use crate::domain::{OpenConversationId, RobotCode};

    fn send() -> GroupSend {
        GroupSend {
            group: OpenConversationId::parse("cid1==").unwrap(),
            robot_code: RobotCode::parse("robot").unwrap(),
            message: OutgoingMessage::text("hi"),
            cool_app_code: None,
        }
    }

    #[tokio::test]
    async fn queue_then_handler_then_default_and_every_call_is_logged() {
        let api = ScriptedApi::new();
        // Default: fresh keys.
        assert_eq!(
            api.send_group_message(&send()).await.unwrap().as_str(),
            "scripted-key-1"
        );
        api.push_send(Err(DingTalkError::Timeout));
        api.push_send(Ok(ProcessQueryKey::parse("queued").unwrap()));
        api.on_send(|req| {
            ProcessQueryKey::parse(format!("to-{}", req.group)).map_err(|_| DingTalkError::Timeout)
        });
        assert!(matches!(
            api.send_group_message(&send()).await,
            Err(DingTalkError::Timeout)
        ));
        assert_eq!(
            api.send_group_message(&send()).await.unwrap().as_str(),
            "queued"
        );
        assert_eq!(
            api.send_group_message(&send()).await.unwrap().as_str(),
            "to-cid1=="
        );
        assert_eq!(api.count(Method::SendGroupMessage), 4);
        assert_eq!(api.sent().len(), 4);

        let reply = Reply {
            title: "t".into(),
            markdown: "m".into(),
            at_user_ids: Vec::new(),
        };
        api.on_reply_in_session(|url, _| {
            if url.starts_with("https://oapi.dingtalk.com/") {
                Ok(())
            } else {
                Err(DingTalkError::UntrustedWebhook)
            }
        });
        assert!(api
            .reply_in_session("https://oapi.dingtalk.com/x", &reply)
            .await
            .is_ok());
        assert!(api
            .reply_in_session("https://evil.example/x", &reply)
            .await
            .is_err());
        assert_eq!(
            api.session_replies()
                .into_iter()
                .map(|(url, _)| url)
                .collect::<Vec<_>>(),
            ["https://oapi.dingtalk.com/x", "https://evil.example/x"]
        );
        assert_eq!(
            api.methods(),
            [
                Method::SendGroupMessage,
                Method::SendGroupMessage,
                Method::SendGroupMessage,
                Method::SendGroupMessage,
                Method::ReplyInSession,
                Method::ReplyInSession,
            ]
        );
        api.clear_calls();
        assert!(api.calls().is_empty());
    }

    #[tokio::test]
    async fn user_names_handler_sees_the_request() {
        let api = ScriptedApi::new();
        api.on_user_names(|users| {
            Ok(users
                .iter()
                .map(|u| (u.clone(), format!("Name of {u}")))
                .collect())
        });
        let u = UserId::parse("u1").unwrap();
        let names = api.user_names(std::slice::from_ref(&u)).await.unwrap();
        assert_eq!(names, [(u.clone(), "Name of u1".to_owned())]);
        assert!(matches!(&api.calls()[..], [Call::UserNames(v)] if v == &[u]));
    }
}
