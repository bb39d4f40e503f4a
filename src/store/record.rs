//! [`Record`]: one record of a store, whatever its kind; what
//! [`super::sled_store::SledStore::export`] yields and [`super::copy`]
//! writes (`readbot store copy`).

use super::SendRecord;
use crate::domain::{
    BillingMonth, CachedRoster, EpochMillis, EventTrust, FollowUp, IdempotencyKey, MsgId, Notice,
    OpenConversationId, ProcessQueryKey, ReadRecord, Reminder, UserId,
};

/// The page-link signing key, as copied (its `Debug` shows no byte of it).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKey(pub Vec<u8>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkKey([redacted; {} bytes])", self.0.len())
    }
}

/// One record of a store, whatever its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A recorded notice (its group and author indexes are rebuilt).
    Notice(Notice),
    /// The idempotency record of a send.
    Send {
        /// The idempotency key.
        key: IdempotencyKey,
        /// The record (fingerprint, time, notice once sent).
        record: SendRecord,
    },
    /// A cached display name.
    Name {
        /// Whose.
        user: UserId,
        /// The name.
        name: String,
        /// When it was fetched (or learned).
        fetched_at: EpochMillis,
        /// From DingTalk's APIs (`true`) or a callback (`false`).
        verified: bool,
    },
    /// A learned-roster entry.
    RosterEntry {
        /// The group.
        group: OpenConversationId,
        /// The member.
        user: UserId,
        /// When last seen.
        seen_at: EpochMillis,
    },
    /// A group's title.
    GroupTitle {
        /// The group.
        group: OpenConversationId,
        /// The title.
        title: String,
        /// When last written.
        at: EpochMillis,
    },
    /// A group's cached complete member list.
    CachedRoster {
        /// The group.
        group: OpenConversationId,
        /// The list.
        roster: CachedRoster,
    },
    /// Reminders of one notice, oldest first (a long list comes in parts).
    Reminders {
        /// The notice.
        key: ProcessQueryKey,
        /// The reminders.
        list: Vec<Reminder>,
    },
    /// A notice's recall mark.
    Recalled {
        /// The notice.
        key: ProcessQueryKey,
        /// When it was recalled.
        at: EpochMillis,
    },
    /// Stored reads of one notice (a long list comes in parts).
    Reads {
        /// The notice.
        key: ProcessQueryKey,
        /// The reads.
        reads: Vec<ReadRecord>,
    },
    /// When a query pass last reconciled a notice.
    ReconciledAt {
        /// The notice.
        key: ProcessQueryKey,
        /// When.
        at: EpochMillis,
    },
    /// The verification state of event intake.
    EventTrust(EventTrust),
    /// A scheduled follow-up, in its state.
    FollowUp(FollowUp),
    /// One API's billable calls in one month (quota ledger).
    Calls {
        /// The month.
        month: BillingMonth,
        /// The API.
        api: String,
        /// Calls counted.
        calls: u64,
    },
    /// The page-link signing key.
    LinkKey(LinkKey),
    /// A de-duplication mark.
    Mark {
        /// The message id.
        id: MsgId,
        /// Answered (`true`) or in flight.
        done: bool,
        /// Its last write.
        at: EpochMillis,
    },
    /// The messages one signed timestamp came with.
    Signature {
        /// The signed timestamp.
        timestamp: EpochMillis,
        /// Its last write.
        at: EpochMillis,
        /// The message ids.
        ids: Vec<MsgId>,
    },
}

/// The kinds of [`Record`], in the order the summary lists them.
pub const KINDS: [&str; 17] = [
    "notices",
    "send records",
    "names",
    "callback names",
    "learned-roster entries",
    "group titles",
    "cached member lists",
    "reminders",
    "recalls",
    "reads",
    "reconciliation times",
    "event trust",
    "follow-ups",
    "call-ledger entries",
    "link key",
    "de-dup marks",
    "signature records",
];

impl Record {
    /// Its kind (one of [`KINDS`]) and how many entries it holds.
    pub fn kind(&self) -> (&'static str, u64) {
        let n = |len: usize| u64::try_from(len).unwrap_or(u64::MAX);
        match self {
            Record::Notice(_) => (KINDS[0], 1),
            Record::Send { .. } => (KINDS[1], 1),
            Record::Name { verified: true, .. } => (KINDS[2], 1),
            Record::Name { .. } => (KINDS[3], 1),
            Record::RosterEntry { .. } => (KINDS[4], 1),
            Record::GroupTitle { .. } => (KINDS[5], 1),
            Record::CachedRoster { .. } => (KINDS[6], 1),
            Record::Reminders { list, .. } => (KINDS[7], n(list.len())),
            Record::Recalled { .. } => (KINDS[8], 1),
            Record::Reads { reads, .. } => (KINDS[9], n(reads.len())),
            Record::ReconciledAt { .. } => (KINDS[10], 1),
            Record::EventTrust(_) => (KINDS[11], 1),
            Record::FollowUp(_) => (KINDS[12], 1),
            Record::Calls { .. } => (KINDS[13], 1),
            Record::LinkKey(_) => (KINDS[14], 1),
            Record::Mark { .. } => (KINDS[15], 1),
            Record::Signature { .. } => (KINDS[16], 1),
        }
    }
}
