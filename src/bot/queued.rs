//! What a message waiting in the answer queue holds: only what its answer
//! needs, each field with a bounded length, so the queue's worst case is a
//! known figure (`worst_case_bytes`; `bot.max_queued_answers` of them).
//!
//! Trimmed on the way in (an [`Incoming`] may carry 4 KiB of text, a 2 KiB
//! webhook URL and 100 mentioned users: about 22 KiB at worst):
//! - the text: its first [`TEXT_BYTES`] bytes (commands are a few words;
//!   "help" shows 80 characters of what it did not understand);
//! - the asker's nick: [`NICK_BYTES`] bytes;
//! - the session webhook: dropped when longer than [`WEBHOOK_BYTES`]
//!   (DingTalk's are about 100 bytes); the reply then goes through the
//!   robot's group send;
//! - mentioned users: as many as fit in [`MENTIONED_BYTES`] bytes of ids;
//! - the group title: its first [`TITLE_BYTES`] bytes;
//! - the robot code and creation time: not kept (the answer does not use them).

use crate::domain::{EpochMillis, Incoming, MsgId, OpenConversationId, UserId};

/// Text bytes kept.
pub const TEXT_BYTES: usize = 512;
/// Nick bytes kept.
pub const NICK_BYTES: usize = 128;
/// Longest session webhook kept.
pub const WEBHOOK_BYTES: usize = 512;
/// Bytes of mentioned user ids kept (one byte more per id, a separator).
pub const MENTIONED_BYTES: usize = 768;

/// Group title bytes kept (32 CJK characters; the parser keeps at most 256,
/// DingTalk's group names are shorter).
pub const TITLE_BYTES: usize = 96;

/// Longest `msgId`, group id and user id ([`crate::domain`]'s limits).
const MSG_ID_BYTES: usize = 256;
const GROUP_BYTES: usize = 256;
const USER_BYTES: usize = 128;

/// A message waiting for its answer.
pub(super) struct Queued {
    msg_id: MsgId,
    group: Option<OpenConversationId>,
    sender: Option<UserId>,
    sender_nick: Box<str>,
    text: Box<str>,
    session_webhook: Option<Box<str>>,
    session_webhook_expires_at: Option<EpochMillis>,
    /// Mentioned user ids, `\n`-separated (ids hold no control characters).
    mentioned: Box<str>,
    /// The group's title (`conversationTitle`), untrusted.
    group_title: Option<Box<str>>,
}

/// The longest prefix of `s` of at most `max` bytes ending on a character
/// boundary, as an exactly-sized box.
fn boxed_prefix(s: &str, max: usize) -> Box<str> {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Box::from(&s[..end])
}

/// A domain id re-made with an exactly-sized buffer (no spare capacity).
fn tight<T: Clone>(v: &T, as_str: impl Fn(&T) -> &str, parse: impl Fn(&str) -> Option<T>) -> T {
    parse(as_str(v)).unwrap_or_else(|| v.clone())
}

impl Queued {
    /// Keeps what the answer needs, bounded.
    pub(super) fn new(msg: &Incoming) -> Self {
        let mut mentioned = String::new();
        for id in &msg.mentioned {
            let more = id.as_str().len() + usize::from(!mentioned.is_empty());
            if mentioned.len() + more > MENTIONED_BYTES {
                break;
            }
            if !mentioned.is_empty() {
                mentioned.push('\n');
            }
            mentioned.push_str(id.as_str());
        }
        Self {
            msg_id: tight(&msg.msg_id, MsgId::as_str, |s| MsgId::parse(s).ok()),
            group: msg.group.as_ref().map(|g| {
                tight(g, OpenConversationId::as_str, |s| {
                    OpenConversationId::parse(s).ok()
                })
            }),
            sender: msg
                .sender
                .as_ref()
                .map(|u| tight(u, UserId::as_str, |s| UserId::parse(s).ok())),
            sender_nick: boxed_prefix(&msg.sender_nick, NICK_BYTES),
            text: boxed_prefix(&msg.text, TEXT_BYTES),
            session_webhook: msg
                .session_webhook
                .as_deref()
                .filter(|u| u.len() <= WEBHOOK_BYTES)
                .map(Box::from),
            session_webhook_expires_at: msg.session_webhook_expires_at,
            mentioned: mentioned.into_boxed_str(),
            group_title: msg
                .group_title
                .as_deref()
                .map(|t| boxed_prefix(t, TITLE_BYTES)),
        }
    }

    /// The message id (for the worker's log span).
    pub(super) fn msg_id(&self) -> &MsgId {
        &self.msg_id
    }

    /// The message as the answering code takes it.
    pub(super) fn into_incoming(self) -> Incoming {
        Incoming {
            msg_id: self.msg_id,
            group: self.group,
            sender: self.sender,
            sender_nick: self.sender_nick.into(),
            text: self.text.trim().to_owned(),
            session_webhook: self.session_webhook.map(Into::into),
            session_webhook_expires_at: self.session_webhook_expires_at,
            robot_code: None,
            mentioned: self
                .mentioned
                .split('\n')
                .filter_map(|s| UserId::parse(s).ok())
                .collect(),
            created_at: None,
            group_title: self.group_title.map(Into::into),
        }
    }
}

/// What the allocator adds to one allocation at most (glibc: an 8-byte
/// header, rounded up to 16 bytes).
const ALLOC_OVERHEAD: usize = 24;

/// The most memory one waiting message can hold: its queue slot plus every
/// field at its cap, each with allocator overhead (3,056 bytes on 64-bit).
pub fn waiting_message_worst_case_bytes() -> usize {
    worst_case_bytes(std::mem::size_of::<super::Job>())
}

/// [`waiting_message_worst_case_bytes`] for a queue slot of `slot_bytes`.
fn worst_case_bytes(slot_bytes: usize) -> usize {
    let heap = [
        MSG_ID_BYTES,
        GROUP_BYTES,
        USER_BYTES,
        NICK_BYTES,
        TEXT_BYTES,
        WEBHOOK_BYTES,
        MENTIONED_BYTES,
        TITLE_BYTES,
    ];
    slot_bytes + heap.iter().map(|b| b + ALLOC_OVERHEAD).sum::<usize>()
}

/// The same figure for a whole [`Incoming`] at the callback parser's caps
/// (what a waiting message held before it was trimmed).
pub fn incoming_worst_case_bytes() -> usize {
    const TEXT: usize = 4096;
    const NICK: usize = 256;
    const WEBHOOK: usize = 2048;
    const ROBOT: usize = 128;
    const AT_USERS: usize = 100;
    let strings = [
        MSG_ID_BYTES,
        GROUP_BYTES,
        USER_BYTES,
        NICK,
        TEXT,
        WEBHOOK,
        ROBOT,
        crate::dingtalk::callback::MAX_GROUP_TITLE,
    ];
    let ids = AT_USERS * (std::mem::size_of::<UserId>() + USER_BYTES + ALLOC_OVERHEAD);
    std::mem::size_of::<Incoming>()
        + strings.iter().map(|b| b + ALLOC_OVERHEAD).sum::<usize>()
        + ids
        + ALLOC_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worst_incoming() -> Incoming {
        Incoming {
            msg_id: MsgId::parse("m".repeat(MSG_ID_BYTES)).unwrap(),
            group: Some(OpenConversationId::parse("g".repeat(GROUP_BYTES)).unwrap()),
            sender: Some(UserId::parse("u".repeat(USER_BYTES)).unwrap()),
            sender_nick: "昵".repeat(100),
            text: format!("who read {}", "x".repeat(4000)),
            session_webhook: Some(format!("https://oapi.dingtalk.com/{}", "w".repeat(2000))),
            session_webhook_expires_at: Some(1),
            robot_code: None,
            mentioned: (0..100)
                .map(|i| UserId::parse(format!("{i:0>128}")).unwrap())
                .collect(),
            created_at: Some(1),
            group_title: Some("群".repeat(85)),
        }
    }

    #[test]
    fn the_domain_limits_are_the_ones_counted() {
        assert!(MsgId::parse("m".repeat(MSG_ID_BYTES + 1)).is_err());
        assert!(OpenConversationId::parse("g".repeat(GROUP_BYTES + 1)).is_err());
        assert!(UserId::parse("u".repeat(USER_BYTES + 1)).is_err());
    }

    #[test]
    fn a_queued_message_holds_every_field_within_its_cap() {
        let q = Queued::new(&worst_incoming());
        assert!(q.text.len() <= TEXT_BYTES);
        assert!(q.sender_nick.len() <= NICK_BYTES);
        assert!(
            q.sender_nick.chars().all(|c| c == '昵'),
            "cut on a char boundary"
        );
        assert!(
            q.session_webhook.is_none(),
            "an over-long webhook is dropped"
        );
        assert!(q.mentioned.len() <= MENTIONED_BYTES);
        let title = q.group_title.as_deref().unwrap_or_default();
        assert!(title.len() <= TITLE_BYTES && title.chars().all(|c| c == '群'));
        assert!(!title.is_empty());
        let back = q.into_incoming();
        assert_eq!(back.mentioned.len(), 5, "768 bytes of 128-byte ids");
        assert!(back.text.starts_with("who read"));
        assert_eq!(
            crate::bot::command::parse(&back.text).command,
            crate::bot::command::parse(&worst_incoming().text).command
        );
    }

    #[test]
    fn what_an_answer_uses_survives_the_queue() {
        let mut m = worst_incoming();
        m.text = "status 2".into();
        m.sender_nick = "Alice".into();
        m.group_title = Some("Ops «team»".into());
        m.session_webhook =
            Some("https://oapi.dingtalk.com/robot/sendBySession?session=abc".into());
        m.mentioned = vec![UserId::parse("u1").unwrap(), UserId::parse("u2").unwrap()];
        let back = Queued::new(&m).into_incoming();
        assert_eq!(back.msg_id, m.msg_id);
        assert_eq!(back.group, m.group);
        assert_eq!(back.sender, m.sender);
        assert_eq!(back.sender_nick, "Alice");
        assert_eq!(back.text, "status 2");
        assert_eq!(back.session_webhook, m.session_webhook);
        assert_eq!(
            back.session_webhook_expires_at,
            m.session_webhook_expires_at
        );
        assert_eq!(back.mentioned, m.mentioned);
        assert_eq!(back.group_title, m.group_title);
    }

    /// The figure README.md and RELIABILITY.md state: at most 3 KiB per
    /// waiting message (about 22 KiB before trimming).
    #[test]
    fn the_worst_case_of_a_waiting_message_is_under_3_kib() {
        let slot = std::mem::size_of::<super::super::Job>();
        let now = waiting_message_worst_case_bytes();
        assert_eq!(now, worst_case_bytes(slot));
        let before = incoming_worst_case_bytes();
        println!("queue slot {slot} B; worst case per waiting message: {now} B (was {before} B)");
        assert!(now <= 3 * 1024, "{now} bytes");
        assert!(before > 20 * 1024, "{before} bytes");
        // 10,000 waiting messages (the default cap) stay under 30 MiB.
        assert!(now * crate::config::defaults::MAX_QUEUED_ANSWERS < 30 * 1024 * 1024);
    }
}
