//! Domain newtypes and plain data shared by every module.
//!
//! Parse, don't validate: a value of one of these types is known to be
//! well-formed (non-empty, bounded length, no control characters), so the
//! rest of the code never re-checks strings.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a raw string was refused as a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The value was empty or only whitespace.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The value was longer than allowed.
    #[error("{0} is too long (at most {1} bytes)")]
    TooLong(&'static str, usize),
    /// The value contained control characters.
    #[error("{0} contains control characters")]
    Control(&'static str),
}

fn check(what: &'static str, s: &str, max: usize) -> Result<(), DomainError> {
    if s.trim().is_empty() {
        return Err(DomainError::Empty(what));
    }
    if s.len() > max {
        return Err(DomainError::TooLong(what, max));
    }
    if s.chars().any(char::is_control) {
        return Err(DomainError::Control(what));
    }
    Ok(())
}

macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a raw string, refusing empty, over-long or control-character values.
            pub fn parse(s: impl Into<String>) -> Result<Self, DomainError> {
                let s = s.into();
                check($what, &s, $max)?;
                Ok(Self(s))
            }
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = DomainError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

id_newtype!(
    /// DingTalk's encrypted id of a robot group message (base64: may contain `+`, `/`, `=`).
    ProcessQueryKey, "processQueryKey", 512
);
id_newtype!(
    /// A group's id (`cid…==`), called `conversationId` in callbacks.
    OpenConversationId, "openConversationId", 256
);
id_newtype!(
    /// An organisation user id (staffId).
    UserId, "userId", 128
);
id_newtype!(
    /// The robot code (for an internal-app robot, the app key).
    RobotCode, "robotCode", 128
);
id_newtype!(
    /// The id of one incoming bot message, used for de-duplication.
    MsgId, "msgId", 256
);
id_newtype!(
    /// A caller's key for one intended send (`Idempotency-Key` header of
    /// `POST /api/v1/notices`): a retry with the same key does not send twice.
    IdempotencyKey, "Idempotency-Key", 128
);

/// Milliseconds since the Unix epoch.
pub type EpochMillis = i64;

/// The current time in epoch milliseconds.
pub fn now_millis() -> EpochMillis {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Language of a reply: readbot answers in the language of the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// The short code used in template file names (`en`, `zh`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }
}

/// A group notice sent through readbot, as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// DingTalk's key for read queries.
    pub key: ProcessQueryKey,
    /// The group it was sent to.
    pub group: OpenConversationId,
    /// The robot that sent it (queries must use the same code).
    pub robot_code: RobotCode,
    /// Title shown in summaries and listings.
    pub title: String,
    /// Who asked readbot to send it, when known.
    pub author: Option<UserId>,
    /// Display name of the author, when known.
    pub author_name: Option<String>,
    /// DingTalk message type key (`sampleMarkdown`, `sampleText`, ...).
    pub msg_key: String,
    /// When DingTalk accepted it.
    pub sent_at: EpochMillis,
}

/// Delivery status reported by the read query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendStatus {
    /// Delivered.
    Success,
    /// Recalled by the sender.
    Recalled,
    /// Still being delivered: read data may be partial.
    Processing,
    /// A status this version does not know.
    Other(String),
}

impl SendStatus {
    /// The wire spelling (`SUCCESS`, `RECALLED`, `PROCESSING`, or the unknown value).
    pub fn as_str(&self) -> &str {
        match self {
            SendStatus::Success => "SUCCESS",
            SendStatus::Recalled => "RECALLED",
            SendStatus::Processing => "PROCESSING",
            SendStatus::Other(s) => s,
        }
    }
}

/// Where the list of members who *should* read came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RosterSource {
    /// `POST /v1.0/im/innerGroups/memberLists/query`.
    InnerGroup,
    /// `POST /v1.0/im/sceneGroups/members/batchQuery`.
    SceneGroup,
    /// Everyone readbot has seen in the group (senders, readers, mentioned users).
    Learned,
}

impl RosterSource {
    /// Stable name used in config, JSON and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            RosterSource::InnerGroup => "inner_group",
            RosterSource::SceneGroup => "scene_group",
            RosterSource::Learned => "learned",
        }
    }
    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "inner_group" => Some(RosterSource::InnerGroup),
            "scene_group" => Some(RosterSource::SceneGroup),
            "learned" => Some(RosterSource::Learned),
            _ => None,
        }
    }
}

/// One group member with a display name when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's user id.
    pub user_id: UserId,
    /// The member's display name, when known.
    pub name: Option<String>,
}

/// A group's member list as a member API answered it completely, kept to
/// answer summaries from trusted read events without a member-list call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedRoster {
    /// The member API that answered.
    pub source: RosterSource,
    /// Every member, with names where the API carried them.
    pub members: Vec<Member>,
    /// When it was fetched.
    pub fetched_at: EpochMillis,
}

/// The computed read state of one notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipts {
    /// The notice the receipts are for.
    pub notice: Notice,
    /// Delivery status.
    pub send_status: SendStatus,
    /// Members who have read it (roster members and any other readers).
    pub read: Vec<Member>,
    /// Roster members who have not read it.
    pub unread: Vec<Member>,
    /// Roster members who have read it (all readers when no roster could be had).
    pub read_count: usize,
    /// Size of the roster used (0 when no roster could be had).
    pub member_count: usize,
    /// Which source answered for the roster.
    pub roster_source: RosterSource,
    /// Whether the roster is known to be the whole group.
    pub roster_complete: bool,
    /// How many query pages DingTalk returned.
    pub pages: usize,
    /// True when paging stopped at the page cap before `hasMore` was false.
    pub truncated: bool,
    /// Where the reads came from: stored read events alone, or a query pass.
    #[serde(default)]
    pub reads_from: ReadsFrom,
    /// The stored reads (time and source per reader), by time.
    #[serde(default)]
    pub read_times: Vec<ReadRecord>,
    /// When the roster came from the cached member list: when that list was
    /// fetched (`None`: fetched for this summary, or no member API).
    #[serde(default)]
    pub roster_cached_at: Option<EpochMillis>,
}

/// Where the reads of a set of [`Receipts`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadsFrom {
    /// Read events received live (no query call).
    Events,
    /// A read query just now (merged with any stored events).
    #[default]
    Query,
    /// Stored reads only (read events and earlier query passes), not
    /// queried: the month's DingTalk call budget is nearly spent.
    Stored,
}

impl ReadsFrom {
    /// Stable name used in JSON, templates and metrics (`events`, `query`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReadsFrom::Events => "events",
            ReadsFrom::Query => "query",
            ReadsFrom::Stored => "stored",
        }
    }
}

/// How a reminder reached the unread members of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderVia {
    /// Real @-mentions in replies through the asker's `sessionWebhook`.
    Mention,
    /// Direct robot messages (`oToMessages/batchSend`).
    Dm,
}

impl ReminderVia {
    /// Stable name used in JSON, metrics and the API (`mention`, `dm`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReminderVia::Mention => "mention",
            ReminderVia::Dm => "dm",
        }
    }
}

/// One reminder sent about a notice, as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// Who asked for it (`None`: readbot's API).
    pub by: Option<UserId>,
    /// When it was sent.
    pub at: EpochMillis,
    /// How many people it reached.
    pub count: usize,
    /// How it was sent.
    pub via: ReminderVia,
}

/// An @mention delivered to readbot, whatever the transport (HTTP callback or
/// Stream mode). Parsed from DingTalk's JSON by `dingtalk::callback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// DingTalk's message id (de-duplication key).
    pub msg_id: MsgId,
    /// The group, or `None` for a 1:1 chat.
    pub group: Option<OpenConversationId>,
    /// The asker's user id (`senderStaffId`); `None` for external users.
    pub sender: Option<UserId>,
    /// The asker's display name (`senderNick`).
    pub sender_nick: String,
    /// The message text with the mention stripped and trimmed.
    pub text: String,
    /// The temporary reply URL, if any (untrusted: the signature does not cover it).
    pub session_webhook: Option<String>,
    /// When the reply URL expires.
    pub session_webhook_expires_at: Option<EpochMillis>,
    /// The robot that was mentioned, when given.
    pub robot_code: Option<RobotCode>,
    /// Users @-mentioned in the message (besides the robot), by user id.
    pub mentioned: Vec<UserId>,
    /// When DingTalk created the message.
    pub created_at: Option<EpochMillis>,
    /// The group's title (`conversationTitle`): untrusted text, at most
    /// 256 bytes, no control characters; `None` when absent or empty.
    pub group_title: Option<String>,
}

/// Where readbot learned that someone read a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadSource {
    /// A `robot_msg_read` event (Stream or HTTP push): the time is the read's own.
    Event,
    /// First seen by a read query: the time is when the query saw it (the
    /// read happened at or before it).
    Query,
}

impl ReadSource {
    /// Stable name used in JSON and metrics (`event`, `query`).
    pub fn as_str(self) -> &'static str {
        match self {
            ReadSource::Event => "event",
            ReadSource::Query => "query",
        }
    }
}

/// One stored read of a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRecord {
    /// The reader.
    pub user_id: UserId,
    /// When they read it (event) or when a query first saw it (query).
    pub at: EpochMillis,
    /// Where the read came from.
    pub source: ReadSource,
}

impl ReadRecord {
    /// Whether this record should replace `old` (same reader): an event
    /// replaces a query's first sighting (it knows the real time); within
    /// one source the earlier time wins. Anything else, duplicates
    /// included, changes nothing.
    pub fn supersedes(&self, old: &ReadRecord) -> bool {
        match (self.source, old.source) {
            (ReadSource::Event, ReadSource::Query) => true,
            (ReadSource::Query, ReadSource::Event) => false,
            _ => self.at < old.at,
        }
    }
}

/// Whether pushed read events are complete enough to answer from alone,
/// as stored (one record per app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EventTrust {
    /// A query pass over a notice with enough readers found every one of
    /// them already recorded from events, and no later pass found a gap.
    pub verified: bool,
    /// When `verified` last changed.
    pub changed_at: Option<EpochMillis>,
    /// When the last reconciliation pass ran.
    pub last_pass_at: Option<EpochMillis>,
    /// When a pass last found readers the events had missed.
    pub last_gap_at: Option<EpochMillis>,
    /// Readers the last gap missed.
    pub last_gap_missed: usize,
}

/// A calendar month of the quota ledger, `YYYY-MM` (years 1970–9999).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BillingMonth(String);

impl BillingMonth {
    /// The month `month` (1–12) of `year` (1970–9999).
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1970..=9999).contains(&year) && (1..=12).contains(&month))
            .then(|| Self(format!("{year:04}-{month:02}")))
    }

    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.trim().split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        Self::new(y.parse().ok()?, m.parse().ok()?)
    }

    /// `YYYY-MM`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for BillingMonth {
    /// 1970-01.
    fn default() -> Self {
        Self("1970-01".to_owned())
    }
}

impl fmt::Display for BillingMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn billing_months_are_yyyy_mm() {
        assert_eq!(BillingMonth::new(2025, 3).unwrap().as_str(), "2025-03");
        assert_eq!(
            BillingMonth::parse(" 2025-12 ").unwrap().as_str(),
            "2025-12"
        );
        for bad in [
            "2025-13", "2025-00", "25-03", "2025-3", "2025/03", "1969-12", "abcd-ef", "",
        ] {
            assert!(BillingMonth::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ids_refuse_empty_long_and_control() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("  ").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse("x".repeat(129)).is_err());
        assert_eq!(
            UserId::parse("manager4220").unwrap().as_str(),
            "manager4220"
        );
    }

    #[test]
    fn ids_round_trip_through_serde_and_refuse_bad_json() {
        let k = ProcessQueryKey::parse("Kna29Ra5+/pdJ==").unwrap();
        let j = serde_json::to_string(&k).unwrap();
        assert_eq!(j, "\"Kna29Ra5+/pdJ==\"");
        let back: ProcessQueryKey = serde_json::from_str(&j).unwrap();
        assert_eq!(back, k);
        assert!(serde_json::from_str::<ProcessQueryKey>("\"\"").is_err());
    }
}

// Scheduled follow-ups (issue 12).

id_newtype!(
    /// The id of one scheduled follow-up of a notice (`fu-` and hex digits
    /// when readbot makes it).
    FollowUpId, "follow-up id", 64
);

/// What a scheduled follow-up does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpAction {
    /// Posts the notice's summary (group send, or a direct message to its
    /// creator with `bot.reply_to = "dm"`).
    Summary,
    /// Direct messages to the unread members (no group @: no
    /// `sessionWebhook` exists then).
    Remind,
}

impl FollowUpAction {
    /// Stable name used in JSON and the API (`summary`, `remind`).
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpAction::Summary => "summary",
            FollowUpAction::Remind => "remind",
        }
    }

    /// Parses the API spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "summary" => Some(Self::Summary),
            "remind" => Some(Self::Remind),
            _ => None,
        }
    }
}

/// Where a follow-up is in its life: `pending` → `firing` (claimed,
/// durably, before anything is sent) → `fired`; or `skipped` (too late,
/// recalled, refused) / `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpState {
    /// Waiting for its time.
    Pending,
    /// Claimed by the scheduler; being sent.
    Firing,
    /// Sent.
    Fired,
    /// Not sent (too late, the notice recalled or gone, DingTalk refused).
    Skipped,
    /// Cancelled by the API (or by readbot's recall of the notice).
    Cancelled,
}

impl FollowUpState {
    /// Stable name used in JSON, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpState::Pending => "pending",
            FollowUpState::Firing => "firing",
            FollowUpState::Fired => "fired",
            FollowUpState::Skipped => "skipped",
            FollowUpState::Cancelled => "cancelled",
        }
    }

    /// True once nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Fired | Self::Skipped | Self::Cancelled)
    }
}

/// One scheduled follow-up of a notice, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Its id (unique within the notice).
    pub id: FollowUpId,
    /// The notice it follows up.
    pub key: ProcessQueryKey,
    /// When it is due.
    pub at: EpochMillis,
    /// What it does.
    pub action: FollowUpAction,
    /// Where it is in its life.
    pub state: FollowUpState,
    /// Who scheduled it (`None`: readbot's API).
    #[serde(default)]
    pub by: Option<UserId>,
    /// The language of what it sends.
    pub lang: Lang,
    /// When it was scheduled.
    pub created_at: EpochMillis,
    /// When its state last changed.
    pub changed_at: EpochMillis,
    /// Why it was skipped or cancelled, or how it fired (late, unconfirmed).
    #[serde(default)]
    pub note: Option<String>,
}

/// A time of day a chat command names (`17:00`, `tomorrow 9:00`), in the
/// configured zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// `tomorrow` / `明天`.
    pub tomorrow: bool,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
}

/// An error and its causes on one line (`a: b: c`; a cause whose text the
/// line already holds is not repeated), for logs and answers that show one
/// string.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
