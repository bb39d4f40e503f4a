//! The command parser: never panics, never fails, bounded echo, sane numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use readbot::bot::command::{detect_lang, parse, Command};

fuzz_target!(|data: &[u8]| {
    // Callback text is a JSON string: always valid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let p = parse(text);
    assert_eq!(p.lang, detect_lang(text));
    match p.command {
        Command::Help(echo) => assert!(echo.chars().count() <= 80),
        Command::Status(n)
        | Command::Remind { n: Some(n), .. }
        | Command::Recall(Some(n)) => assert!((1..=1000).contains(&n)),
        Command::Schedule { when, .. } => assert!(when.hour <= 23 && when.minute <= 59),
        Command::WhoRead
        | Command::List
        | Command::Id
        | Command::Remind { n: None, .. }
        | Command::Recall(None) => {}
    }
});
