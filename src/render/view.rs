//! The data each template receives. Field names here are the template
//! variables documented in `templates/README.md`; changing one is a breaking
//! change for operators' template overrides.

use serde::Serialize;

/// One person in a list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PersonView {
    /// Display name, or the user id when no name is known.
    pub name: String,
    /// The user id.
    pub user_id: String,
}

/// Context of `summary.<lang>.md.j2`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SummaryView {
    /// Notice title.
    pub title: String,
    /// Author's name (or id); empty when unknown.
    pub author: String,
    /// Send time, `YYYY-MM-DD HH:MM` UTC+8 (DingTalk's home time zone).
    pub sent_at: String,
    /// `SUCCESS`, `RECALLED`, `PROCESSING` or an unknown DingTalk value.
    pub send_status: String,
    /// Members who read.
    pub read_count: usize,
    /// Members who did not read.
    pub unread_count: usize,
    /// Roster size (0 when unknown).
    pub member_count: usize,
    /// `read_count / member_count` in percent, rounded down; 0 when unknown.
    pub percent: u32,
    /// Unread people shown (possibly cut).
    pub unread: Vec<PersonView>,
    /// How many unread people were cut from `unread`.
    pub unread_more: usize,
    /// Read people shown (possibly cut).
    pub read: Vec<PersonView>,
    /// How many read people were cut from `read`.
    pub read_more: usize,
    /// `inner_group`, `scene_group` or `learned`.
    pub roster_source: String,
    /// Whether the roster is known to be the whole group.
    pub roster_complete: bool,
    /// True when the asker had no notice here and this is the group's last one.
    pub fallback: bool,
    /// True when the read query stopped at the page cap.
    pub truncated: bool,
    /// The asker's display name.
    pub asker: String,
    /// Where the reads came from: `events` (read events received live, no
    /// query) or `query` (DingTalk queried just now).
    pub reads_from: String,
    /// Read progress from the stored read times, e.g. 50% and 80% of the
    /// members and how long after sending each was reached (empty when not
    /// reached or unknown).
    pub progress: Vec<ProgressView>,
}

/// One read-progress milestone of a summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProgressView {
    /// Share of the members, in percent (50, 80, 100).
    pub percent: u32,
    /// Minutes after sending that it was reached (at least 1).
    pub within_minutes: u64,
}

/// One line of `list.<lang>.md.j2`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListItemView {
    /// 1-based number usable with "status N".
    pub n: usize,
    /// Notice title.
    pub title: String,
    /// Author's name (or id); empty when unknown.
    pub author: String,
    /// Send time, as in [`SummaryView::sent_at`].
    pub sent_at: String,
}

/// Context of `list.<lang>.md.j2`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListView {
    /// Recent notices, newest first.
    pub notices: Vec<ListItemView>,
}

/// Context of `help.<lang>.md.j2`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HelpView {
    /// The text that was not understood (empty for an explicit "help").
    pub unknown: String,
}

/// Context of `error.<lang>.md.j2`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorView {
    /// The human sentence.
    pub message: String,
}
