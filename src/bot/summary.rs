//! Turning receipts and notice lists into template contexts, and rendering
//! them so that a reply stays under DingTalk's 20,000-byte body limit.

use crate::config::ReplyTimeZone;
use crate::domain::{Lang, Member, Notice, Receipts};
use crate::render::view::{ListItemView, ListView, PersonView, SummaryView};
use crate::render::{neutralise, RenderError, Renderer};

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
}

impl<'a> Layout<'a> {
    /// The layout `cfg` asks for.
    pub fn of(cfg: &'a crate::config::BotConfig) -> Self {
        Self {
            max_read_names: cfg.max_read_names,
            timezone: &cfg.timezone,
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
        }
    }

    fn layout(max_read_names: usize, tz: &ReplyTimeZone) -> Layout<'_> {
        Layout {
            max_read_names,
            timezone: tz,
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

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut_bytes("已读已读".into(), 4), "已");
        assert_eq!(cut_bytes("abc".into(), 10), "abc");
    }
}
