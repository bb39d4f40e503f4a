//! Built-in sample contexts, one set per template, exercising the main
//! branches of each. They drive the start-up check of every template
//! (overrides included) and `readbot render --sample`.

use super::view::{
    ErrorView, FollowUpView, GroupNoticeView, GroupPageView, HelpView, LinkErrorView, ListItemView,
    ListView, NoticePageView, PersonView, ProgressView, ReaderView, ReminderView, SummaryView,
};
use minijinja::value::{Serde, Value};
use serde::Serialize;

/// One sample: what it shows, and the context.
pub(super) type Sample = (&'static str, Value);

pub(super) fn v<T: Serialize>(ctx: &T) -> Value {
    Value::from(Serde(ctx))
}

pub(super) fn person(name: &str, user_id: &str) -> PersonView {
    PersonView {
        name: name.into(),
        user_id: user_id.into(),
    }
}

/// A summary with some readers, a complete roster and a cut unread list.
pub(super) fn sample_summary() -> SummaryView {
    SummaryView {
        title: "Fire drill on Friday".into(),
        author: "Li Lei".into(),
        sent_at: "2024-05-17 09:30".into(),
        timezone: "Asia/Shanghai".into(),
        send_status: "SUCCESS".into(),
        read_count: 3,
        unread_count: 4,
        member_count: 7,
        percent: 42,
        unread: vec![person("Han Meimei", "u4"), person("Wang Fang", "u5")],
        unread_more: 2,
        read: vec![
            person("Li Lei", "u1"),
            person("Zhang Wei", "u2"),
            person("u3", "u3"),
        ],
        read_more: 0,
        read_collapsed: false,
        roster_source: "inner_group".into(),
        roster_complete: true,
        roster_age_minutes: None,
        fallback: false,
        truncated: false,
        asker: "Li Lei".into(),
        reads_from: "events".into(),
        progress: vec![
            ProgressView {
                percent: 50,
                within_minutes: 12,
            },
            ProgressView {
                percent: 80,
                within_minutes: 125,
            },
        ],
        full_list_url: "https://readbot.example.com/n/djE6bjo.c2lnbmF0dXJl".into(),
    }
}

/// Samples of `summary`.
pub(super) fn summary() -> Vec<Sample> {
    let full = sample_summary();
    let unknown_roster = SummaryView {
        member_count: 0,
        unread_count: 0,
        unread: vec![],
        percent: 0,
        read_more: 5,
        roster_source: "learned".into(),
        roster_complete: false,
        fallback: true,
        truncated: true,
        send_status: "RECALLED".into(),
        author: String::new(),
        reads_from: "query".into(),
        progress: vec![],
        full_list_url: String::new(),
        ..sample_summary()
    };
    let nobody = SummaryView {
        read_count: 0,
        read: vec![],
        unread_count: 7,
        unread_more: 5,
        percent: 0,
        send_status: "PROCESSING".into(),
        roster_source: "scene_group".into(),
        roster_complete: false,
        ..sample_summary()
    };
    let many_read = SummaryView {
        read_count: 45,
        unread_count: 2,
        member_count: 47,
        percent: 95,
        unread_more: 0,
        read: vec![],
        read_more: 45,
        read_collapsed: true,
        ..sample_summary()
    };
    vec![
        (
            "some have read; complete member list; names cut (… and 2 more)",
            v(&full),
        ),
        (
            "more readers than bot.max_read_names: the read part is a count",
            v(&many_read),
        ),
        (
            "member list unknown; fallback to the group's last notice; recalled; cut at the page limit; no author",
            v(&unknown_roster),
        ),
        (
            "nobody has read yet; still being delivered; incomplete scene-group member list",
            v(&nobody),
        ),
    ]
}

/// Samples of `list`.
pub(super) fn list() -> Vec<Sample> {
    vec![
        (
            "two notices, one without author; the group page link",
            v(&ListView {
                notices: vec![
                    ListItemView {
                        n: 1,
                        title: "Fire drill on Friday".into(),
                        author: "Li Lei".into(),
                        sent_at: "2024-05-17 09:30".into(),
                    },
                    ListItemView {
                        n: 2,
                        title: "Lunch menu".into(),
                        author: String::new(),
                        sent_at: "2024-05-16 11:00".into(),
                    },
                ],
                timezone: "Asia/Shanghai".into(),
                group_url: "https://readbot.example.com/g/djE6ZzpjaWQ.c2lnbmF0dXJl".into(),
            }),
        ),
        (
            "no notices",
            v(&ListView {
                notices: vec![],
                timezone: "Asia/Shanghai".into(),
                group_url: String::new(),
            }),
        ),
    ]
}

/// Samples of `help`.
pub(super) fn help() -> Vec<Sample> {
    vec![
        (
            "explicit help",
            v(&HelpView {
                unknown: String::new(),
            }),
        ),
        (
            "text that was not understood",
            v(&HelpView {
                unknown: "what?".into(),
            }),
        ),
    ]
}

/// Samples of `error`.
pub(super) fn error() -> Vec<Sample> {
    vec![(
        "an error sentence",
        v(&ErrorView {
            message: "DingTalk did not answer; try again in a minute.".into(),
        }),
    )]
}

fn reader(name: &str, user_id: &str, read_at: &str, source: &str) -> ReaderView {
    ReaderView {
        name: name.into(),
        user_id: user_id.into(),
        read_at: read_at.into(),
        source: source.into(),
    }
}

/// A notice page with readers from events and a query, a reminder and a chart.
pub(super) fn sample_notice_page() -> NoticePageView {
    NoticePageView {
        title: "Fire drill on Friday".into(),
        author: "Li Lei".into(),
        sent_at: "2024-05-17 09:30".into(),
        timezone: "Asia/Shanghai".into(),
        send_status: "SUCCESS".into(),
        recalled_at: String::new(),
        read_count: 3,
        unread_count: 2,
        member_count: 5,
        percent: 60,
        query: String::new(),
        unread: vec![person("Han Meimei", "u4"), person("<b>Wang</b>", "u5")],
        read: vec![
            reader("Li Lei", "u1", "2024-05-17 09:31:02", "event"),
            reader("Zhang Wei", "u2", "2024-05-17 09:40:00", "query"),
            reader("u3", "u3", "", ""),
        ],
        roster_source: "inner_group".into(),
        roster_complete: true,
        reads_from: "events".into(),
        truncated: false,
        progress: vec![ProgressView {
            percent: 50,
            within_minutes: 10,
        }],
        reminders: vec![ReminderView {
            at: "2024-05-17 11:00".into(),
            count: 2,
            via: "mention".into(),
            by: "Li Lei".into(),
        }],
        follow_ups: vec![
            FollowUpView {
                at: "2024-05-18 09:00".into(),
                action: "remind".into(),
                state: "pending".into(),
                by: "Li Lei".into(),
            },
            FollowUpView {
                at: "2024-05-18 17:00".into(),
                action: "summary".into(),
                state: "firing".into(),
                by: String::new(),
            },
        ],
        chart_svg: "<svg role=\"img\" viewBox=\"0 0 10 10\"><title>chart</title></svg>".into(),
        csv_url: "djE6bjo.c2ln/csv".into(),
        json_url: "djE6bjo.c2ln/json".into(),
        expires_at: "2024-05-24 09:30".into(),
        nonce: "bm9uY2U".into(),
    }
}

/// Samples of `notice`.
pub(super) fn notice_page() -> Vec<Sample> {
    let full = sample_notice_page();
    let searched = NoticePageView {
        query: "zhang".into(),
        unread: vec![],
        read: vec![reader("Zhang Wei", "u2", "2024-05-17 09:40:00", "query")],
        reminders: vec![],
        follow_ups: vec![],
        progress: vec![],
        ..sample_notice_page()
    };
    let unknown = NoticePageView {
        member_count: 0,
        unread_count: 0,
        percent: 0,
        unread: vec![],
        send_status: "RECALLED".into(),
        recalled_at: "2024-05-17 12:00".into(),
        roster_source: "learned".into(),
        roster_complete: false,
        reads_from: "query".into(),
        truncated: true,
        author: String::new(),
        ..sample_notice_page()
    };
    vec![
        (
            "some have read; one reminder; two follow-ups; a chart",
            v(&full),
        ),
        ("a search that found one reader", v(&searched)),
        (
            "member list unknown; recalled; cut at the page limit; no author",
            v(&unknown),
        ),
    ]
}

/// Samples of `link_error`.
pub(super) fn link_error() -> Vec<Sample> {
    vec![
        ("an expired link", v(&LinkErrorView { expired: true })),
        ("an invalid link", v(&LinkErrorView { expired: false })),
    ]
}

/// One notice of the group page.
fn group_notice(
    title: &str,
    read_count: usize,
    member_count: usize,
    percent: u32,
) -> GroupNoticeView {
    GroupNoticeView {
        title: title.into(),
        author: "Li Lei".into(),
        sent_at: "2024-05-17 09:30".into(),
        send_status: "SUCCESS".into(),
        read_count,
        member_count,
        percent,
        chart_svg: "<svg role=\"img\" viewBox=\"0 0 10 10\"><title>chart</title></svg>".into(),
        url: "https://readbot.example.com/n/djE6bjo.c2ln".into(),
        error: String::new(),
    }
}

/// A group page of three notices, one of whose read data failed.
pub(super) fn sample_group_page() -> GroupPageView {
    GroupPageView {
        group_title: "Ops team".into(),
        notices: vec![
            group_notice("Fire drill on Friday", 3, 5, 60),
            GroupNoticeView {
                author: String::new(),
                send_status: "RECALLED".into(),
                member_count: 0,
                ..group_notice("Lunch menu", 2, 0, 0)
            },
            GroupNoticeView {
                send_status: String::new(),
                chart_svg: String::new(),
                error: "DingTalk no longer keeps the read data of this message.".into(),
                ..group_notice("Old notice", 0, 0, 0)
            },
        ],
        limit: 10,
        timezone: "Asia/Shanghai".into(),
        expires_at: "2024-05-24 09:30".into(),
        nonce: "bm9uY2U".into(),
    }
}

/// Samples of `group`.
pub(super) fn group_page() -> Vec<Sample> {
    let empty = GroupPageView {
        group_title: String::new(),
        notices: vec![],
        ..sample_group_page()
    };
    vec![
        (
            "three notices: read progress, member list unknown and recalled, read data unavailable",
            v(&sample_group_page()),
        ),
        ("no notices; group title unknown", v(&empty)),
    ]
}
