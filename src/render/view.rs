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
    /// Send time, `YYYY-MM-DD HH:MM` in the zone named by `timezone`.
    pub sent_at: String,
    /// The IANA name of the zone the times are in (`bot.timezone`, default
    /// `Asia/Shanghai`).
    pub timezone: String,
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
    /// How many read people were cut from `read` (all of them when
    /// `read_collapsed`).
    pub read_more: usize,
    /// True when there were more readers than `bot.max_read_names`: `read` is
    /// empty and the read part is shown as a count.
    pub read_collapsed: bool,
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
    /// Author's name (the user id only when no name could be found); empty
    /// when unknown.
    pub author: String,
    /// Send time, as in [`SummaryView::sent_at`].
    pub sent_at: String,
}

/// Context of `list.<lang>.md.j2`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListView {
    /// Recent notices, newest first.
    pub notices: Vec<ListItemView>,
    /// The IANA name of the zone the times are in, as in
    /// [`SummaryView::timezone`].
    pub timezone: String,
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
