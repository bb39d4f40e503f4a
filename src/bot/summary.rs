//! Turning receipts and notice lists into template contexts, and rendering
//! them so that a reply stays under DingTalk's 20,000-byte body limit.

use crate::domain::{EpochMillis, Lang, Member, Notice, ReadRecord, Receipts};
use crate::render::view::{ListItemView, ListView, PersonView, ProgressView, SummaryView};
use crate::render::{RenderError, Renderer};
use serde::Serialize;
use std::collections::HashSet;

/// Largest markdown we send: DingTalk refuses bodies over 20,000 bytes, and
/// the JSON envelope (title, escaping, `at` list) needs room.
pub const MAX_REPLY_BYTES: usize = 16_000;

/// Names shown per list before anything is cut.
const START_NAMES: usize = 400;

/// Formats an epoch time as `YYYY-MM-DD HH:MM` in UTC+8 (DingTalk's home zone).
pub fn format_time(ms: EpochMillis) -> String {
    let secs = ms.div_euclid(1000) + 8 * 3600;
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => String::from("?"),
    }
}

fn person(m: &Member) -> PersonView {
    PersonView {
        name: m
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| m.user_id.to_string()),
        user_id: m.user_id.to_string(),
    }
}

fn author(n: &Notice) -> String {
    n.author_name
        .clone()
        .or_else(|| n.author.as_ref().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// Builds the summary context with at most `max_names` names per list.
pub fn summary_view(r: &Receipts, fallback: bool, asker: &str, max_names: usize) -> SummaryView {
    let cut = |list: &[Member]| -> (Vec<PersonView>, usize) {
        let shown: Vec<PersonView> = list.iter().take(max_names).map(person).collect();
        let more = list.len().saturating_sub(shown.len());
        (shown, more)
    };
    let (unread, unread_more) = cut(&r.unread);
    let (read, read_more) = cut(&r.read);
    let percent = (r.read_count.min(r.member_count) * 100)
        .checked_div(r.member_count)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0);
    SummaryView {
        title: r.notice.title.clone(),
        author: author(&r.notice),
        sent_at: format_time(r.notice.sent_at),
        send_status: r.send_status.as_str().to_owned(),
        read_count: r.read_count,
        unread_count: r.unread.len(),
        member_count: r.member_count,
        percent,
        unread,
        unread_more,
        read,
        read_more,
        roster_source: r.roster_source.as_str().to_owned(),
        roster_complete: r.roster_complete,
        fallback,
        truncated: r.truncated,
        asker: asker.to_owned(),
        reads_from: r.reads_from.as_str().to_owned(),
        progress: progress(r),
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
) -> Result<String, RenderError> {
    let mut max = START_NAMES;
    loop {
        let view = summary_view(r, fallback, asker, max);
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

/// Builds the list context, numbering from 1 (newest first).
pub fn list_view(notices: &[Notice]) -> ListView {
    ListView {
        notices: notices
            .iter()
            .enumerate()
            .map(|(i, n)| ListItemView {
                n: i + 1,
                title: n.title.clone(),
                author: author(n),
                sent_at: format_time(n.sent_at),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_beijing_time() {
        // 2024-02-19 07:20:04 UTC = 15:20 in UTC+8.
        assert_eq!(format_time(1_708_327_204_136), "2024-02-19 15:20");
        assert_eq!(format_time(0), "1970-01-01 08:00");
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
