//! Turning receipts and notice lists into template contexts, and rendering
//! them so that a reply stays under DingTalk's 20,000-byte body limit.

use crate::config::ReplyTimeZone;
use crate::domain::{EpochMillis, Lang, Member, Notice, ReadRecord, Receipts};
use crate::render::view::{ListItemView, ListView, PersonView, ProgressView, SummaryView};
use crate::render::{neutralise, RenderError, Renderer};
use serde::Serialize;
use std::collections::HashSet;

/// Largest markdown we send: DingTalk refuses bodies over 20,000 bytes, and
/// the JSON envelope (title, escaping, `at` list) needs room.
pub const MAX_REPLY_BYTES: usize = 16_000;

/// Names shown per list before anything is cut.
const START_NAMES: usize = 400;

/// How a summary is laid out: the reply settings of `bot.*`.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// Past this many readers the read part is a count (`bot.max_read_names`).
    pub max_read_names: usize,
    /// The zone times are shown in (`bot.timezone`).
    pub timezone: &'a ReplyTimeZone,
    /// The notice page's link, when pages are on (a URL readbot built from
    /// the configured public URL and a token: not neutralised).
    pub full_list_url: Option<&'a str>,
}

impl<'a> Layout<'a> {
    /// The layout `cfg` asks for.
    pub fn of(cfg: &'a crate::config::BotConfig) -> Self {
        Self {
            max_read_names: cfg.max_read_names,
            timezone: &cfg.timezone,
            full_list_url: None,
        }
    }
}

// Every string below may come from a callback body or a caller of the API:
// it reaches the templates neutralised (no links, images, headings, `@`
// runs, tags or line breaks).

fn person(m: &Member) -> PersonView {
    let name = match m.name.as_deref() {
        Some(n) if !n.trim().is_empty() => n,
        _ => m.user_id.as_str(),
    };
    PersonView {
        name: neutralise(name),
        user_id: neutralise(m.user_id.as_str()),
    }
}

fn author(n: &Notice) -> String {
    let shown = n
        .author_name
        .as_deref()
        .or_else(|| n.author.as_ref().map(|a| a.as_str()))
        .unwrap_or_default();
    neutralise(shown)
}

/// Builds the summary context with at most `max_names` names per list. The
/// unread list is always named (cut only to fit); the read list collapses
/// to a count when it is longer than `layout.max_read_names`.
pub fn summary_view(
    r: &Receipts,
    fallback: bool,
    asker: &str,
    max_names: usize,
    layout: Layout<'_>,
) -> SummaryView {
    let cut = |list: &[Member], max: usize| -> (Vec<PersonView>, usize) {
        let shown: Vec<PersonView> = list.iter().take(max).map(person).collect();
        let more = list.len().saturating_sub(shown.len());
        (shown, more)
    };
    let (unread, unread_more) = cut(&r.unread, max_names);
    let read_collapsed = r.read.len() > layout.max_read_names;
    let read_shown = if read_collapsed { 0 } else { max_names };
    let (read, read_more) = cut(&r.read, read_shown);
    let percent = (r.read_count.min(r.member_count) * 100)
        .checked_div(r.member_count)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    SummaryView {
        title: neutralise(&r.notice.title),
        author: author(&r.notice),
        sent_at: layout.timezone.format_minutes(r.notice.sent_at),
        timezone: layout.timezone.name().to_owned(),
        send_status: neutralise(r.send_status.as_str()),
        read_count: r.read_count,
        unread_count: r.unread.len(),
        member_count: r.member_count,
        percent,
        unread,
        unread_more,
        read,
        read_more,
        read_collapsed,
        roster_source: r.roster_source.as_str().to_owned(),
        roster_complete: r.roster_complete,
        roster_age_minutes: r.roster_cached_at.map(|at| {
            let age = crate::domain::now_millis().saturating_sub(at).max(0);
            u64::try_from(age / 60_000).unwrap_or(0)
        }),
        fallback,
        truncated: r.truncated,
        asker: neutralise(asker),
        reads_from: r.reads_from.as_str().to_owned(),
        progress: progress(r),
        full_list_url: layout.full_list_url.unwrap_or_default().to_owned(),
    }
}

/// Milestones shown in a summary, in percent of the members.
const MILESTONES: [u32; 3] = [50, 80, 100];

/// Read progress from the stored read times: for each milestone reached,
/// how many minutes after sending the readers reached it.
pub fn progress(r: &Receipts) -> Vec<ProgressView> {
    if r.member_count == 0 {
        return Vec::new();
    }
    // Receipts keep no roster beside the unread list, so readers off the
    // roster count too (rare: a roster that lags the group); the count is
    // capped at the members who read.
    let readers: HashSet<&str> = r.read.iter().map(|m| m.user_id.as_str()).collect();
    let mut times: Vec<EpochMillis> = r
        .read_times
        .iter()
        .filter(|t| readers.contains(t.user_id.as_str()))
        .map(|t| t.at)
        .collect();
    times.sort_unstable();
    times.truncate(r.read_count);
    let mut out = Vec::new();
    for p in MILESTONES {
        // ceil(member_count * p / 100) readers.
        let needed = (r.member_count * p as usize).div_ceil(100).max(1);
        let Some(at) = times.get(needed - 1) else {
            break;
        };
        let minutes = u64::try_from(at.saturating_sub(r.notice.sent_at).max(0))
            .unwrap_or(0)
            .div_ceil(60_000)
            .max(1);
        out.push(ProgressView {
            percent: p,
            within_minutes: minutes,
        });
    }
    out
}

/// Reads per interval since sending, for charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// Length of one interval, in seconds.
    pub interval_secs: u64,
    /// Consecutive intervals from the send time up to the last read.
    pub buckets: Vec<TimelineBucket>,
}

/// One interval of a [`Timeline`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineBucket {
    /// Start of the interval (epoch ms).
    pub start: EpochMillis,
    /// Reads in it.
    pub reads: usize,
}

/// Interval lengths tried, shortest first (seconds).
const INTERVALS: [u64; 7] = [60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400];
/// Most intervals in a timeline (a longer span takes a longer interval).
const MAX_BUCKETS: u64 = 48;

/// Groups `reads` (any order) into intervals from `sent_at`: the shortest
/// interval that covers the span in at most 48 buckets (a week per bucket
/// at most). Reads before the send time count in the first bucket.
pub fn timeline(reads: &[ReadRecord], sent_at: EpochMillis) -> Timeline {
    let span_ms = reads
        .iter()
        .map(|r| r.at.saturating_sub(sent_at).max(0))
        .max()
        .unwrap_or(0);
    let span = u64::try_from(span_ms).unwrap_or(0);
    let interval_secs = INTERVALS
        .iter()
        .copied()
        .find(|i| span / (i * 1000) < MAX_BUCKETS)
        .unwrap_or(INTERVALS[INTERVALS.len() - 1]);
    let width = interval_secs * 1000;
    let n = if reads.is_empty() {
        0
    } else {
        usize::try_from((span / width + 1).min(MAX_BUCKETS)).unwrap_or(0)
    };
    let width_i = i64::try_from(width).unwrap_or(i64::MAX);
    let mut buckets: Vec<TimelineBucket> = (0..n)
        .map(|i| TimelineBucket {
            start: sent_at.saturating_add(width_i.saturating_mul(i as i64)),
            reads: 0,
        })
        .collect();
    for r in reads {
        let off = u64::try_from(r.at.saturating_sub(sent_at).max(0)).unwrap_or(0);
        let i = usize::try_from(off / width).unwrap_or(usize::MAX);
        if let Some(b) = buckets.get_mut(i.min(n.saturating_sub(1))) {
            b.reads += 1;
        }
    }
    Timeline {
        interval_secs,
        buckets,
    }
}

/// Renders the summary, cutting name lists until it fits [`MAX_REPLY_BYTES`].
pub fn render_summary(
    renderer: &Renderer,
    r: &Receipts,
    lang: Lang,
    fallback: bool,
    asker: &str,
    layout: Layout<'_>,
) -> Result<String, RenderError> {
    let mut max = START_NAMES;
    loop {
        let view = summary_view(r, fallback, asker, max, layout);
        let text = renderer.render("summary", lang, &view)?;
        if text.len() <= MAX_REPLY_BYTES || max == 0 {
            return Ok(cut_bytes(text, MAX_REPLY_BYTES));
        }
        max /= 2;
    }
}

/// Hard cut at a character boundary (last resort for huge titles).
fn cut_bytes(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Builds the list context, numbering from 1 (newest first), times in
/// `timezone`.
pub fn list_view(notices: &[Notice], timezone: &ReplyTimeZone) -> ListView {
    ListView {
        notices: notices
            .iter()
            .enumerate()
            .map(|(i, n)| ListItemView {
                n: i + 1,
                title: neutralise(&n.title),
                author: author(n),
                sent_at: timezone.format_minutes(n.sent_at),
            })
            .collect(),
        timezone: timezone.name().to_owned(),
        group_url: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::{
        OpenConversationId, ProcessQueryKey, RobotCode, RosterSource, SendStatus, UserId,
    };

    fn member(id: &str) -> Member {
        Member {
            user_id: UserId::parse(id).unwrap(),
            name: Some(format!("Name {id}")),
        }
    }

    fn notice() -> Notice {
        Notice {
            key: ProcessQueryKey::parse("k1").unwrap(),
            group: OpenConversationId::parse("cid1").unwrap(),
            robot_code: RobotCode::parse("robot").unwrap(),
            title: "Drill".into(),
            author: Some(UserId::parse("u0").unwrap()),
            author_name: None,
            msg_key: "sampleMarkdown".into(),
            sent_at: 1_708_327_204_136,
        }
    }

    /// `readers` of `members` have read.
    fn receipts(readers: usize, members: usize) -> Receipts {
        let all: Vec<Member> = (0..members).map(|i| member(&format!("u{i}"))).collect();
        Receipts {
            notice: notice(),
            send_status: SendStatus::Success,
            read: all[..readers].to_vec(),
            unread: all[readers..].to_vec(),
            read_count: readers,
            member_count: members,
            roster_source: RosterSource::InnerGroup,
            roster_complete: true,
            pages: 1,
            truncated: false,
            reads_from: Default::default(),
            read_times: Vec::new(),
            roster_cached_at: None,
        }
    }

    fn layout(max_read_names: usize, tz: &ReplyTimeZone) -> Layout<'_> {
        Layout {
            max_read_names,
            timezone: tz,
            full_list_url: None,
        }
    }

    #[test]
    fn times_are_in_the_configured_zone_which_is_named() {
        let shanghai = ReplyTimeZone::default();
        let v = summary_view(&receipts(1, 2), false, "x", 10, layout(30, &shanghai));
        // 2024-02-19 07:20:04 UTC = 15:20 in UTC+8.
        assert_eq!(v.sent_at, "2024-02-19 15:20");
        assert_eq!(v.timezone, "Asia/Shanghai");
        let tokyo = ReplyTimeZone::parse("Asia/Tokyo").unwrap();
        let list = list_view(&[notice()], &tokyo);
        assert_eq!(list.notices[0].sent_at, "2024-02-19 16:20");
        assert_eq!(list.timezone, "Asia/Tokyo");
        // No name known: the author's id stands in.
        assert_eq!(list.notices[0].author, "u0");
    }

    #[test]
    fn a_long_read_list_collapses_to_a_count_but_unread_stays_named() {
        let tz = ReplyTimeZone::default();
        let r = receipts(31, 40);
        let v = summary_view(&r, false, "x", 400, layout(30, &tz));
        assert!(v.read_collapsed);
        assert!(v.read.is_empty());
        assert_eq!(v.read_more, 31);
        assert_eq!(v.read_count, 31);
        assert_eq!(v.unread.len(), 9);
        assert_eq!(v.unread_more, 0);
        // At the limit, everyone is named.
        let v = summary_view(&receipts(30, 40), false, "x", 400, layout(30, &tz));
        assert!(!v.read_collapsed);
        assert_eq!(v.read.len(), 30);
        assert_eq!(v.read_more, 0);
        // 0: always a count, even for one reader; nobody read: nothing to collapse.
        let v = summary_view(&receipts(1, 2), false, "x", 400, layout(0, &tz));
        assert!(v.read_collapsed && v.read.is_empty() && v.read_more == 1);
        let v = summary_view(&receipts(0, 2), false, "x", 400, layout(0, &tz));
        assert!(!v.read_collapsed);
    }

    #[test]
    fn rendered_summary_puts_unread_first_and_counts_a_long_read_list() {
        let renderer = Renderer::new(None).unwrap();
        let tz = ReplyTimeZone::default();
        let r = receipts(35, 40);
        let en = render_summary(&renderer, &r, Lang::En, false, "x", layout(30, &tz)).unwrap();
        let unread = en.find("**Unread (5):** Name u35, Name u36").expect(&en);
        let read = en.find("**Read (35):** too many to name here").expect(&en);
        assert!(unread < read, "{en}");
        assert!(!en.contains("Name u0,"), "{en}");
        assert!(en.contains("(Asia/Shanghai)"), "{en}");
        let zh = render_summary(&renderer, &r, Lang::Zh, false, "x", layout(30, &tz)).unwrap();
        assert!(zh.contains("**已读（35）：**人数较多，不逐一列出"), "{zh}");
        assert!(zh.find("**未读（5）：**").unwrap() < zh.find("**已读（35）：**").unwrap());
        // Below the limit the readers are named.
        let few = render_summary(
            &renderer,
            &receipts(3, 5),
            Lang::En,
            false,
            "x",
            layout(30, &tz),
        )
        .unwrap();
        assert!(
            few.contains("**Read (3):** Name u0, Name u1, Name u2"),
            "{few}"
        );
    }

    fn rec(user: &str, at: EpochMillis) -> ReadRecord {
        ReadRecord {
            user_id: crate::domain::UserId::parse(user).unwrap(),
            at,
            source: crate::domain::ReadSource::Event,
        }
    }

    #[test]
    fn timeline_buckets_reads_from_the_send_time() {
        let t = timeline(&[], 1000);
        assert!(t.buckets.is_empty());
        let reads = [
            rec("a", 1000 + 30_000),
            rec("b", 1000 + 61_000),
            rec("c", 500),
            rec("d", 1000 + 61_500),
        ];
        let t = timeline(&reads, 1000);
        assert_eq!(t.interval_secs, 60);
        let counts: Vec<usize> = t.buckets.iter().map(|b| b.reads).collect();
        assert_eq!(counts, [2, 2], "an early read counts in the first bucket");
        assert_eq!(t.buckets[1].start, 61_000);
        // Three days: hourly buckets would be 72, so six-hour ones.
        let t = timeline(&[rec("a", 3 * 86_400_000)], 0);
        assert_eq!(t.interval_secs, 6 * 3600);
        assert_eq!(t.buckets.len(), 13);
        assert_eq!(t.buckets.iter().map(|b| b.reads).sum::<usize>(), 1);
        // Never more than 48 buckets, however long ago.
        assert!(timeline(&[rec("a", i64::MAX)], i64::MIN).buckets.len() <= 48);
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut_bytes("已读已读".into(), 4), "已");
        assert_eq!(cut_bytes("abc".into(), 10), "abc");
    }
}
