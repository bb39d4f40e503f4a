//! The fake's mutable world: tokens, groups, people, notices, sessions,
//! faults and counters. Only touched under the handle's mutex, never across
//! an `.await`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::Rng as _;

use super::{now_ms, Api, DirectBatch, Fault, GroupKind, SentMessage, Via};

/// `n` random bytes, standard base64 (with `+`, `/` and `=`).
pub(crate) fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill(&mut bytes[..]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `n` random bytes, lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill(&mut bytes[..]);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A DingTalk-style request id: `30EE8654-1AA2-7D88-8248-9518547248AA`.
pub(crate) fn request_id() -> String {
    uuid_like().to_uppercase()
}

/// 16 random bytes as lower-case hex in the 8-4-4-4-12 UUID layout.
pub(crate) fn uuid_like() -> String {
    let h = random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A `processQueryKey`: 32 random bytes in standard base64, chosen so that
/// it always contains `+`, `/` and `=` (clients must not put it in a URL raw).
fn process_query_key() -> String {
    loop {
        let key = random_b64(32);
        if key.contains('+') && key.contains('/') {
            return key;
        }
    }
}

pub(crate) struct Token {
    expires_at: Instant,
    revoked: bool,
}

/// Outcome of checking an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    Valid,
    /// Issued by us, but expired or revoked.
    Expired,
    /// Missing or never issued.
    Unknown,
}

pub(crate) struct Group {
    pub kind: GroupKind,
    /// Member userIds, in order.
    pub members: Vec<String>,
}

pub(crate) struct Notice {
    pub group: String,
    pub robot_code: String,
    pub status: String,
    pub readers: Vec<String>,
    pub not_ready: usize,
    pub expired: bool,
}

pub(crate) struct Session {
    pub group: String,
    pub expires_ms: i64,
}

pub(crate) struct State {
    tokens: HashMap<String, Token>,
    current_token: Option<String>,
    pub groups: HashMap<String, Group>,
    pub users: HashMap<String, String>,
    pub notices: HashMap<String, Notice>,
    pub sent: Vec<SentMessage>,
    pub sessions: HashMap<String, Session>,
    /// Every accepted `oToMessages/batchSend` call, in order.
    pub direct: Vec<DirectBatch>,
    /// userIds `batchSend` reports in `invalidStaffIdList` (besides users
    /// the directory does not know).
    pub invalid_users: std::collections::HashSet<String>,
    /// userIds `batchSend` reports in `flowControlledStaffIdList`.
    pub flow_controlled: std::collections::HashSet<String>,
    /// Recall reasons set by tests: `processQueryKey` → `failedResult` reason.
    pub recall_failures: HashMap<String, String>,
    pub faults: Vec<(Api, Fault, usize)>,
    pub latency: Duration,
    pub calls: HashMap<Api, usize>,
    /// Key of the MAC inside read-query paging tokens.
    pub cursor_key: [u8; 32],
}

impl State {
    pub fn new() -> Self {
        Self {
            tokens: HashMap::new(),
            current_token: None,
            groups: HashMap::new(),
            users: HashMap::new(),
            notices: HashMap::new(),
            sent: Vec::new(),
            sessions: HashMap::new(),
            direct: Vec::new(),
            invalid_users: Default::default(),
            flow_controlled: Default::default(),
            recall_failures: HashMap::new(),
            faults: Vec::new(),
            latency: Duration::ZERO,
            calls: HashMap::new(),
            cursor_key: rand::rng().random(),
        }
    }

    pub fn add_group(&mut self, group: &str, kind: GroupKind, members: &[(&str, &str)]) {
        let mut ids: Vec<String> = Vec::with_capacity(members.len());
        let mut have = std::collections::HashSet::with_capacity(members.len());
        for (id, name) in members {
            self.add_user(id, name);
            if have.insert(*id) {
                ids.push((*id).to_owned());
            }
        }
        self.groups
            .insert(group.to_owned(), Group { kind, members: ids });
    }

    pub fn add_user(&mut self, user_id: &str, name: &str) {
        self.users.insert(user_id.to_owned(), name.to_owned());
    }

    pub fn name_of(&self, user_id: &str) -> String {
        self.users.get(user_id).cloned().unwrap_or_default()
    }

    /// Records an OpenAPI send and creates its notice; returns the key.
    pub fn record_send(
        &mut self,
        group: &str,
        robot_code: &str,
        msg_key: &str,
        title: Option<String>,
        text: String,
    ) -> String {
        let key = process_query_key();
        self.notices.insert(
            key.clone(),
            Notice {
                group: group.to_owned(),
                robot_code: robot_code.to_owned(),
                status: "SUCCESS".to_owned(),
                readers: Vec::new(),
                not_ready: 0,
                expired: false,
            },
        );
        self.sent.push(SentMessage {
            group: group.to_owned(),
            via: Via::OpenApi,
            msg_key_or_type: msg_key.to_owned(),
            title,
            text,
            at_user_ids: Vec::new(),
            process_query_key: Some(key.clone()),
        });
        key
    }

    /// Records one `batchSend` call and answers it: users the directory
    /// does not know, or marked invalid, are `invalidStaffIdList`; users
    /// marked flow-controlled are `flowControlledStaffIdList`; the rest get it.
    pub fn record_direct(
        &mut self,
        users: Vec<String>,
        msg_key: &str,
        title: Option<String>,
        text: String,
    ) -> serde_json::Value {
        let key = process_query_key();
        let mut invalid = Vec::new();
        let mut flow = Vec::new();
        let mut delivered = Vec::new();
        for u in &users {
            if self.invalid_users.contains(u) || !self.users.contains_key(u) {
                invalid.push(u.clone());
            } else if self.flow_controlled.contains(u) {
                flow.push(u.clone());
            } else {
                delivered.push(u.clone());
            }
        }
        self.direct.push(DirectBatch {
            user_ids: users,
            delivered_to: delivered,
            msg_key: msg_key.to_owned(),
            title,
            text,
            process_query_key: key.clone(),
        });
        serde_json::json!({
            "processQueryKey": key,
            "invalidStaffIdList": invalid,
            "flowControlledStaffIdList": flow,
        })
    }

    /// Recalls one group message: `Err(reason)` for a key that is unknown,
    /// of another group or robot, or given a reason by a test. Recalling a
    /// recalled message again succeeds (nothing changes).
    pub fn recall(&mut self, key: &str, group: &str, robot: &str) -> Result<(), String> {
        if let Some(reason) = self.recall_failures.get(key) {
            return Err(reason.clone());
        }
        let Some(n) = self.notices.get_mut(key) else {
            return Err("processQueryKey不存在".to_owned());
        };
        if n.group != group || n.robot_code != robot {
            return Err("消息不属于该群或该机器人".to_owned());
        }
        n.status = "RECALLED".to_owned();
        Ok(())
    }

    pub fn mark_read(&mut self, key: &str, users: &[&str]) -> bool {
        self.with_notice(key, |n| {
            // A set keeps marking 10,000 readers linear (benchmarks do that).
            let mut have: std::collections::HashSet<String> = n.readers.iter().cloned().collect();
            for u in users {
                if have.insert((*u).to_owned()) {
                    n.readers.push((*u).to_owned());
                }
            }
        })
    }

    pub fn with_notice(&mut self, key: &str, f: impl FnOnce(&mut Notice)) -> bool {
        match self.notices.get_mut(key) {
            Some(n) => {
                f(n);
                true
            }
            None => {
                tracing::warn!(key, "fake DingTalk: unknown processQueryKey");
                false
            }
        }
    }

    pub fn add_session(&mut self, id: &str, group: &str, expires_ms: i64) {
        self.sessions.insert(
            id.to_owned(),
            Session {
                group: group.to_owned(),
                expires_ms,
            },
        );
    }

    /// The group of a live session.
    pub fn live_session(&self, id: &str) -> Option<String> {
        self.sessions
            .get(id)
            .filter(|s| s.expires_ms > now_ms())
            .map(|s| s.group.clone())
    }

    /// Returns the current token (extending its life) or issues a new one.
    pub fn issue_token(&mut self, ttl: Duration) -> String {
        let now = Instant::now();
        if let Some(cur) = &self.current_token {
            if let Some(t) = self.tokens.get_mut(cur) {
                if !t.revoked && t.expires_at > now {
                    t.expires_at = now + ttl;
                    return cur.clone();
                }
            }
        }
        let token = random_hex(16);
        self.tokens.insert(
            token.clone(),
            Token {
                expires_at: now + ttl,
                revoked: false,
            },
        );
        self.current_token = Some(token.clone());
        token
    }

    pub fn check_token(&self, token: Option<&str>) -> TokenCheck {
        match token.and_then(|t| self.tokens.get(t)) {
            None => TokenCheck::Unknown,
            Some(t) if t.revoked || t.expires_at <= Instant::now() => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
        }
    }

    pub fn expire_tokens(&mut self) {
        for t in self.tokens.values_mut() {
            t.revoked = true;
        }
        self.current_token = None;
    }

    /// Counts a call and takes the first pending fault for `api`.
    pub fn begin_call(&mut self, api: Api) -> (Duration, Option<Fault>) {
        *self.calls.entry(api).or_insert(0) += 1;
        let pos = self
            .faults
            .iter()
            .position(|(a, _, n)| *n > 0 && (*a == api || *a == Api::Any));
        let fault = pos.map(|i| {
            let entry = &mut self.faults[i];
            entry.2 -= 1;
            let fault = entry.1.clone();
            if entry.2 == 0 {
                self.faults.remove(i);
            }
            fault
        });
        (self.latency, fault)
    }
}
