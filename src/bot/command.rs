//! The commands readbot understands, in English and Chinese.
//!
//! Parsing never fails: anything unknown becomes [`Command::Help`] carrying
//! the text, and the reply language follows the question (any CJK character
//! → Chinese).

use crate::domain::{FollowUpAction, Lang, ReminderVia, WallClock};

/// What the asker wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Summary of the asker's last notice in this group.
    WhoRead,
    /// The group's recent notices, numbered.
    List,
    /// Summary of notice N (1-based) from the list.
    Status(usize),
    /// The ids an operator needs: the group's openConversationId, the
    /// asker's userId and the robot code.
    Id,
    /// Remind the unread members of a notice: the asker's last one, or
    /// notice N of the list; by @ in the group or by direct message.
    Remind {
        /// Notice N (1-based) of the list, or `None` for the asker's last.
        n: Option<usize>,
        /// @-mentions through the session webhook, or direct messages.
        via: ReminderVia,
    },
    /// Recall a notice: the asker's last one, or notice N of the list.
    Recall(Option<usize>),
    /// Schedule a follow-up of the asker's last notice: `remind at 17:00`,
    /// `summary tomorrow 9:00`, `17:00 提醒`, `明天 9:00 汇总`.
    Schedule {
        /// What it does when it fires.
        action: FollowUpAction,
        /// When, in the configured zone.
        when: WallClock,
    },
    /// Help; carries the text that was not understood (empty for "help").
    Help(String),
}

/// Characters of a command's free text that go into the log line of an
/// accepted @mention (never the whole text).
pub const LOGGED_ARGS_CHARS: usize = 16;

impl Command {
    /// A short, fixed name for logs: `who_read`, `list`, `status`, `id`,
    /// `help` or `unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::WhoRead => "who_read",
            Command::List => "list",
            Command::Status(_) => "status",
            Command::Id => "id",
            Command::Remind {
                via: ReminderVia::Mention,
                ..
            } => "remind",
            Command::Remind {
                via: ReminderVia::Dm,
                ..
            } => "remind_dm",
            Command::Recall(_) => "recall",
            Command::Schedule {
                action: FollowUpAction::Summary,
                ..
            } => "schedule_summary",
            Command::Schedule {
                action: FollowUpAction::Remind,
                ..
            } => "schedule_remind",
            Command::Help(t) if t.is_empty() => "help",
            Command::Help(_) => "unknown",
        }
    }

    /// The command's arguments for a log line: the number of `status N`,
    /// or the first [`LOGGED_ARGS_CHARS`] characters of text that was not
    /// understood (with `…` when cut); empty otherwise.
    pub fn log_args(&self) -> String {
        match self {
            Command::Status(n) | Command::Remind { n: Some(n), .. } | Command::Recall(Some(n)) => {
                n.to_string()
            }
            Command::Remind { n: None, .. } | Command::Recall(None) => String::new(),
            Command::Schedule { when, .. } => format!(
                "{}{:02}:{:02}",
                if when.tomorrow { "+1d " } else { "" },
                when.hour,
                when.minute
            ),
            Command::Help(t) => {
                let mut shown: String = t.chars().take(LOGGED_ARGS_CHARS).collect();
                if t.chars().count() > LOGGED_ARGS_CHARS {
                    shown.push('…');
                }
                shown
            }
            Command::WhoRead | Command::List | Command::Id => String::new(),
        }
    }
}

/// A parsed command and the language to answer in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The command.
    pub command: Command,
    /// Reply language.
    pub lang: Lang,
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}' | '\u{3000}'..='\u{303f}' | '\u{ff00}'..='\u{ffef}')
}

/// Detects the reply language of a message.
pub fn detect_lang(text: &str) -> Lang {
    if text.chars().any(is_cjk) {
        Lang::Zh
    } else {
        Lang::En
    }
}

/// Lower-cases, drops leftover `@mentions` and punctuation, folds whitespace.
fn normalize(text: &str) -> String {
    let mut words = Vec::new();
    for w in text.split_whitespace() {
        if w.starts_with('@') || w.starts_with('＠') {
            continue;
        }
        words.push(w);
    }
    let joined = words.join(" ").to_lowercase();
    let cleaned: String = joined
        .chars()
        .map(|c| match c {
            '?' | '？' | '!' | '！' | '.' | '。' | ',' | '，' | ':' | '：' | '#' | '＃' | '~'
            | '～' | '"' | '“' | '”' | '\'' | '‘' | '’' => ' ',
            c => c,
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Digits (ASCII or full-width) after a keyword, as a 1-based index.
fn number_after(rest: &str) -> Option<usize> {
    let t = rest.trim();
    if t.is_empty() {
        return None;
    }
    let ascii: String = t
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            c => c,
        })
        .collect();
    let n: usize = ascii.trim().parse().ok()?;
    (1..=1000).contains(&n).then_some(n)
}

const WHO_READ_EN: &[&str] = &[
    "who read my last notice",
    "who read my notice",
    "who read my last message",
    "who read",
    "who has read",
    "who hasn't read",
    "who has not read",
    "who didn't read",
    "unread",
    "read",
    "status",
    "receipts",
];
const WHO_READ_ZH: &[&str] = &[
    "谁读了",
    "谁看了",
    "已读",
    "谁没读",
    "谁没看",
    "未读",
    "状态",
];

/// Parses a message text (mention already stripped by DingTalk).
pub fn parse(text: &str) -> Parsed {
    let lang = detect_lang(text);
    let n = normalize(text);
    let command = parse_normalized(&n, text);
    Parsed { command, lang }
}

fn parse_normalized(n: &str, original: &str) -> Command {
    if n.is_empty() || n == "help" || n == "帮助" || n == "?" || n == "h" {
        return Command::Help(String::new());
    }
    for kw in ["status", "状态", "#"] {
        if let Some(rest) = n.strip_prefix(kw) {
            if let Some(k) = number_after(rest) {
                return Command::Status(k);
            }
        }
    }
    if matches!(
        n,
        "id" | "ids" | "my id" | "my ids" | "我的id" | "我的 id" | "群id" | "群 id"
    ) {
        return Command::Id;
    }
    if let Some(c) = parse_schedule(n) {
        return c;
    }
    if let Some(c) = parse_remind_or_recall(n) {
        return c;
    }
    if n == "list" || n == "列表" || n == "ls" || n == "notices" || n == "通知列表" {
        return Command::List;
    }
    if WHO_READ_EN.contains(&n) || WHO_READ_ZH.contains(&n) {
        return Command::WhoRead;
    }
    if n.starts_with("who read") || n.starts_with("who has read") {
        return Command::WhoRead;
    }
    if WHO_READ_ZH.iter().any(|k| n.contains(k)) && n.chars().count() <= 20 {
        return Command::WhoRead;
    }
    let shown: String = original.trim().chars().take(80).collect();
    Command::Help(shown)
}

/// ASCII digits for full-width ones.
fn ascii_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            c => c,
        })
        .collect()
}

/// A time of day in normalised text (`:` became a space): `17 00`, `9 05`,
/// `9点`, `9点30`, `9点30分`; a bare hour (`17`) only when `bare_hour`.
fn clock_of(text: &str, bare_hour: bool) -> Option<(u8, u8)> {
    let t = ascii_digits(text.trim());
    let (t, marked) = match t.split_once('点') {
        Some((h, m)) => (format!("{h} {}", m.trim_end_matches('分')), true),
        None => (t, false),
    };
    let parts: Vec<&str> = t.split_whitespace().collect();
    let all_digits =
        |p: &str| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit());
    let (h, m) = match parts.as_slice() {
        [h, m] if all_digits(h) && all_digits(m) && m.len() == 2 => (*h, *m),
        [h] if all_digits(h) && (bare_hour || marked) => (*h, "0"),
        _ => return None,
    };
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

/// `remind at 17:00`, `remind tomorrow 9:00`, `summary at 17:00`,
/// `17:00 提醒`, `明天 9:00 汇总` (also the keyword first: `提醒 17:00`).
fn parse_schedule(n: &str) -> Option<Command> {
    let make = |action, tomorrow, (hour, minute)| Command::Schedule {
        action,
        when: WallClock {
            tomorrow,
            hour,
            minute,
        },
    };
    for (kw, action) in [
        ("remind", FollowUpAction::Remind),
        ("summary", FollowUpAction::Summary),
    ] {
        let Some(rest) = n.strip_prefix(kw) else {
            continue;
        };
        if !rest.starts_with(' ') {
            continue;
        }
        let mut words: Vec<&str> = rest.split_whitespace().collect();
        if action == FollowUpAction::Remind && words.first() == Some(&"dm") {
            words.remove(0);
        }
        let mut at = false;
        let mut tomorrow = false;
        while let Some(w) = words.first().copied() {
            match w {
                "at" => at = true,
                "tomorrow" => tomorrow = true,
                _ => break,
            }
            words.remove(0);
        }
        if !at && !tomorrow {
            return None;
        }
        return clock_of(&words.join(" "), at).map(|c| make(action, tomorrow, c));
    }
    for (kw, action) in [
        ("私信提醒", FollowUpAction::Remind),
        ("提醒", FollowUpAction::Remind),
        ("汇总", FollowUpAction::Summary),
    ] {
        let rest = n
            .strip_suffix(kw)
            .or_else(|| n.strip_prefix(kw))
            .map(str::trim);
        let Some(rest) = rest else { continue };
        let (tomorrow, rest) = match rest.strip_prefix("明天") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if let Some(c) = clock_of(rest, false) {
            return Some(make(action, tomorrow, c));
        }
    }
    None
}

/// `remind [unread|dm] [N]`, `提醒[未读] [N]`, `私信提醒 [N]`, `recall [N]`,
/// `撤回 [N]`; anything else after the keyword is not understood (`None`).
fn parse_remind_or_recall(n: &str) -> Option<Command> {
    // An optional index, as the whole rest.
    let index = |rest: &str| -> Option<Option<usize>> {
        if rest.trim().is_empty() {
            Some(None)
        } else {
            number_after(rest).map(Some)
        }
    };
    for kw in ["recall", "撤回"] {
        if let Some(rest) = n.strip_prefix(kw) {
            return index(rest).map(Command::Recall);
        }
    }
    for kw in ["私信提醒", "私信提醒未读"] {
        if let Some(rest) = n.strip_prefix(kw) {
            if let Some(i) = index(rest) {
                return Some(Command::Remind {
                    n: i,
                    via: ReminderVia::Dm,
                });
            }
        }
    }
    for kw in ["提醒未读", "提醒"] {
        if let Some(rest) = n.strip_prefix(kw) {
            return index(rest).map(|i| Command::Remind {
                n: i,
                via: ReminderVia::Mention,
            });
        }
    }
    let rest = n.strip_prefix("remind")?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None; // "reminder", "reminded": not the command.
    }
    let mut via = ReminderVia::Mention;
    let mut idx = None;
    for word in rest.split_whitespace() {
        match word {
            "unread" => {}
            "dm" => via = ReminderVia::Dm,
            w => idx = Some(number_after(w)?),
        }
    }
    Some(Command::Remind { n: idx, via })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn english_and_chinese_commands() {
        for t in [
            "who read my last notice?",
            "Who read",
            "status",
            " STATUS ",
            "who read?",
            "unread",
        ] {
            assert_eq!(parse(t).command, Command::WhoRead, "{t}");
            assert_eq!(parse(t).lang, Lang::En);
        }
        for t in [
            "谁读了",
            "已读",
            "谁没读",
            "未读",
            "谁没读？",
            "谁读了我的通知",
        ] {
            assert_eq!(parse(t).command, Command::WhoRead, "{t}");
            assert_eq!(parse(t).lang, Lang::Zh);
        }
        assert_eq!(parse("list").command, Command::List);
        assert_eq!(parse("列表").command, Command::List);
        assert_eq!(parse("列表").lang, Lang::Zh);
        assert_eq!(parse("status 3").command, Command::Status(3));
        assert_eq!(parse("status #12").command, Command::Status(12));
        assert_eq!(parse("状态 2").command, Command::Status(2));
        assert_eq!(parse("状态 ２").command, Command::Status(2));
        assert_eq!(parse("help").command, Command::Help(String::new()));
        assert_eq!(parse("帮助").command, Command::Help(String::new()));
        assert_eq!(parse("").command, Command::Help(String::new()));
        assert_eq!(parse("@readbot who read").command, Command::WhoRead);
        assert_eq!(
            parse("what's the weather").command,
            Command::Help("what's the weather".into())
        );
        assert_eq!(parse("status 0").command, Command::Help("status 0".into()));
        for t in [
            "id",
            "ID",
            "my id",
            "ids?",
            "我的id",
            "我的ID",
            "我的 id",
            "我的id？",
        ] {
            assert_eq!(parse(t).command, Command::Id, "{t}");
        }
        assert_eq!(parse("我的id").lang, Lang::Zh);
        assert_eq!(parse("id").lang, Lang::En);
    }

    #[test]
    fn log_names_are_fixed_and_arguments_short() {
        assert_eq!(parse("id").command.name(), "id");
        assert_eq!(parse("谁没读").command.name(), "who_read");
        assert_eq!(parse("status 3").command.log_args(), "3");
        assert_eq!(parse("help").command.name(), "help");
        let long = parse("please forward the salary sheet to everyone");
        assert_eq!(long.command.name(), "unknown");
        assert_eq!(long.command.log_args(), "please forward t…");
        assert_eq!(parse("hi").command.log_args(), "hi");
        assert_eq!(parse("list").command.log_args(), "");
    }

    #[test]
    fn remind_and_recall_commands() {
        let mention = |n| Command::Remind {
            n,
            via: ReminderVia::Mention,
        };
        let dm = |n| Command::Remind {
            n,
            via: ReminderVia::Dm,
        };
        for (t, want) in [
            ("remind", mention(None)),
            ("Remind unread", mention(None)),
            ("remind 3", mention(Some(3))),
            ("remind unread 2", mention(Some(2))),
            ("remind dm", dm(None)),
            ("remind dm 4", dm(Some(4))),
            ("remind 4 dm", dm(Some(4))),
            ("提醒", mention(None)),
            ("提醒未读", mention(None)),
            ("提醒 2", mention(Some(2))),
            ("提醒２", mention(Some(2))),
            ("私信提醒", dm(None)),
            ("私信提醒 3", dm(Some(3))),
            ("recall", Command::Recall(None)),
            ("recall 2", Command::Recall(Some(2))),
            ("撤回", Command::Recall(None)),
            ("撤回 1", Command::Recall(Some(1))),
        ] {
            assert_eq!(parse(t).command, want, "{t}");
        }
        assert_eq!(parse("提醒未读").lang, Lang::Zh);
        for t in [
            "reminder",
            "remind me at noon",
            "remind 0",
            "recall everything",
        ] {
            assert!(matches!(parse(t).command, Command::Help(_)), "{t}");
        }
        // "未读" alone still asks who read.
        assert_eq!(parse("未读").command, Command::WhoRead);
    }

    #[test]
    fn scheduled_follow_ups() {
        let at = |action, tomorrow, hour, minute| Command::Schedule {
            action,
            when: WallClock {
                tomorrow,
                hour,
                minute,
            },
        };
        use FollowUpAction::{Remind, Summary};
        for (t, want) in [
            ("remind at 17:00", at(Remind, false, 17, 0)),
            ("Remind at 9:05", at(Remind, false, 9, 5)),
            ("remind dm at 17:00", at(Remind, false, 17, 0)),
            ("remind at 17", at(Remind, false, 17, 0)),
            ("remind tomorrow 9:00", at(Remind, true, 9, 0)),
            ("remind tomorrow at 9:00", at(Remind, true, 9, 0)),
            ("summary at 17:00", at(Summary, false, 17, 0)),
            ("summary tomorrow 8:30", at(Summary, true, 8, 30)),
            ("17:00 提醒", at(Remind, false, 17, 0)),
            ("17：00提醒", at(Remind, false, 17, 0)),
            ("提醒 17:00", at(Remind, false, 17, 0)),
            ("明天 9:00 提醒", at(Remind, true, 9, 0)),
            ("明天9点提醒", at(Remind, true, 9, 0)),
            ("17:00 汇总", at(Summary, false, 17, 0)),
            ("明天 9:30 汇总", at(Summary, true, 9, 30)),
            ("１７:００ 汇总", at(Summary, false, 17, 0)),
        ] {
            assert_eq!(parse(t).command, want, "{t}");
        }
        assert_eq!(parse("明天 9:00 汇总").lang, Lang::Zh);
        // Not schedules: notice numbers, absurd times, other words.
        assert_eq!(
            parse("remind 3").command,
            Command::Remind {
                n: Some(3),
                via: ReminderVia::Mention
            }
        );
        assert_eq!(
            parse("提醒 2").command,
            Command::Remind {
                n: Some(2),
                via: ReminderVia::Mention
            }
        );
        for t in [
            "remind at 25:00",
            "remind at 9:75",
            "summary at noon",
            "remind at",
            "summary",
        ] {
            assert!(matches!(parse(t).command, Command::Help(_)), "{t}");
        }
        assert_eq!(parse("remind at 17:00").command.name(), "schedule_remind");
        assert_eq!(parse("明天 9:00 汇总").command.log_args(), "+1d 09:00");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let p = parse(&s);
            if let Command::Help(t) = p.command { prop_assert!(t.chars().count() <= 80); }
        }
    }
}
