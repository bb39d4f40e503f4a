//! Built-in sample contexts, one set per template, exercising the main
//! branches of each. They drive the start-up check of every template
//! (overrides included) and `readbot render --sample`.

use super::view::{
    ErrorView, HelpView, ListItemView, ListView, PersonView, ProgressView, SummaryView,
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
            "two notices, one without author",
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
            }),
        ),
        (
            "no notices",
            v(&ListView {
                notices: vec![],
                timezone: "Asia/Shanghai".into(),
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
