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
    /// When the roster is the group's cached member list: its age in whole
    /// minutes (`None`: fetched for this summary, or no member API).
    pub roster_age_minutes: Option<u64>,
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
    /// The notice page's signed link (`{public_url}/n/{token}`); empty when
    /// no public URL is set (then no link is offered).
    pub full_list_url: String,
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
    /// The group page's signed link (`{public_url}/g/{token}`); empty when
    /// no public URL is set (then no link is offered).
    pub group_url: String,
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

/// Context of `notice.<lang>.html.j2`: the notice page behind the summary's
/// "Full list" link. Values are plain text: the page template escapes them
/// (HTML auto-escape), except `chart_svg`, which readbot draws.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NoticePageView {
    /// Notice title.
    pub title: String,
    /// Author's name (or id); empty when unknown.
    pub author: String,
    /// Send time, `YYYY-MM-DD HH:MM` in `timezone`.
    pub sent_at: String,
    /// The IANA name of the zone every time on the page is in.
    pub timezone: String,
    /// `SUCCESS`, `RECALLED`, `PROCESSING` or an unknown DingTalk value.
    pub send_status: String,
    /// When the notice was recalled (`YYYY-MM-DD HH:MM`), empty if it was not.
    pub recalled_at: String,
    /// Members who read.
    pub read_count: usize,
    /// Members who did not read.
    pub unread_count: usize,
    /// Roster size (0 when unknown).
    pub member_count: usize,
    /// `read_count / member_count` in percent, rounded down.
    pub percent: u32,
    /// The search text (`?q=`), empty when none.
    pub query: String,
    /// Unread members matching `query` (every one of them: no cut).
    pub unread: Vec<PersonView>,
    /// Readers matching `query`, with read time and source, earliest first.
    pub read: Vec<ReaderView>,
    /// `inner_group`, `scene_group` or `learned`.
    pub roster_source: String,
    /// Whether the roster is known to be the whole group.
    pub roster_complete: bool,
    /// `events` (read events, live) or `query` (DingTalk queried just now).
    pub reads_from: String,
    /// True when the read query stopped at the page cap.
    pub truncated: bool,
    /// 50% / 80% / 100% milestones reached, as in the summary.
    pub progress: Vec<ProgressView>,
    /// Reminders sent about the notice, oldest first.
    pub reminders: Vec<ReminderView>,
    /// Scheduled follow-ups not yet sent (`pending`, or `firing` while
    /// being sent), soonest first.
    pub follow_ups: Vec<FollowUpView>,
    /// The read-progress chart, an inline `<svg>` drawn by readbot (already
    /// escaped: output it with `|safe`).
    pub chart_svg: String,
    /// The CSV export (relative link).
    pub csv_url: String,
    /// The JSON export (relative link).
    pub json_url: String,
    /// When the link stops working (`YYYY-MM-DD HH:MM` in `timezone`).
    pub expires_at: String,
    /// The Content-Security-Policy nonce: `<style>` and `<script>` need
    /// `nonce="{{ nonce }}"` or the browser ignores them.
    pub nonce: String,
}

/// One reader on the notice page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReaderView {
    /// Display name, or the user id when no name is known.
    pub name: String,
    /// The user id.
    pub user_id: String,
    /// When they read it (`event`), or when a query first saw it (`query`:
    /// the read happened at or before), `YYYY-MM-DD HH:MM:SS`; empty when
    /// readbot has no time for this reader.
    pub read_at: String,
    /// `event`, `query`, or empty when unknown.
    pub source: String,
}

/// One reminder on the notice page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReminderView {
    /// When it was sent (`YYYY-MM-DD HH:MM`).
    pub at: String,
    /// How many people it reached.
    pub count: usize,
    /// `mention` (in the group) or `dm` (direct messages).
    pub via: String,
    /// Who asked for it: their name (from the member list or the name
    /// cache), else their user id; empty for readbot's API.
    pub by: String,
}

/// One scheduled follow-up on the notice page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FollowUpView {
    /// When it is due (`YYYY-MM-DD HH:MM`).
    pub at: String,
    /// `summary` (posts the read summary) or `remind` (direct messages to
    /// the unread members).
    pub action: String,
    /// `pending` (waiting for its time) or `firing` (being sent now).
    pub state: String,
    /// Who scheduled it (name, else user id); empty for readbot's API.
    pub by: String,
}

/// Context of `group.<lang>.html.j2`: the group page behind the `list`
/// reply's "All notices" link. Values are plain text (the template escapes
/// them), except each notice's `chart_svg`, which readbot draws.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupPageView {
    /// The group's title as last seen in a callback (untrusted: neutralised
    /// like a name in chat, then HTML-escaped); empty when unknown.
    pub group_title: String,
    /// The group's recent notices, newest first (at most `limit`).
    pub notices: Vec<GroupNoticeView>,
    /// The most notices the page shows (`bot.list_limit`, at most 50).
    pub limit: usize,
    /// The IANA name of the zone every time on the page is in.
    pub timezone: String,
    /// When the link stops working (`YYYY-MM-DD HH:MM` in `timezone`).
    pub expires_at: String,
    /// The Content-Security-Policy nonce, as on the notice page.
    pub nonce: String,
}

/// One notice on the group page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupNoticeView {
    /// Notice title.
    pub title: String,
    /// Author's name (or id); empty when unknown.
    pub author: String,
    /// Send time, `YYYY-MM-DD HH:MM`.
    pub sent_at: String,
    /// `SUCCESS`, `RECALLED`, `PROCESSING` or an unknown DingTalk value
    /// (empty when the read data could not be fetched).
    pub send_status: String,
    /// Members who read.
    pub read_count: usize,
    /// Roster size (0 when unknown).
    pub member_count: usize,
    /// `read_count / member_count` in percent, rounded down.
    pub percent: u32,
    /// A small read-progress chart, an inline `<svg>` drawn by readbot
    /// (output it with `|safe`); empty when `error` is set.
    pub chart_svg: String,
    /// The notice's own page (`{public_url}/n/{token}`, valid as long as
    /// the group link).
    pub url: String,
    /// Why the read data could not be fetched (one sentence); empty when
    /// it was: then the counts above are 0 and there is no chart.
    pub error: String,
}

/// Context of `link_error.<lang>.html.j2`: the 403 page of a bad link.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkErrorView {
    /// True when the link was genuine but has expired; false when it is
    /// invalid (tampered, cut or made up).
    pub expired: bool,
}
