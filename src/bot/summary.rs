//! Turning receipts and notice lists into template contexts, and rendering
//! them so that a reply stays under DingTalk's 20,000-byte body limit.

use crate::domain::{EpochMillis, Lang, Member, Notice, Receipts};
use crate::render::view::{ListItemView, ListView, PersonView, SummaryView};
use crate::render::{neutralise, RenderError, Renderer};

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
        title: neutralise(&r.notice.title),
        author: author(&r.notice),
        sent_at: format_time(r.notice.sent_at),
        send_status: neutralise(r.send_status.as_str()),
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
        asker: neutralise(asker),
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
                title: neutralise(&n.title),
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

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut_bytes("已读已读".into(), 4), "已");
        assert_eq!(cut_bytes("abc".into(), 10), "abc");
    }
}
