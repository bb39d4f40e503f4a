//! The sandbox's line mode: each line of standard input is an @mention of
//! readbot from the current member of the demo group (signed like DingTalk's
//! HTTP mode), and what reaches the group is printed as the group sees it.
//! Lines starting with `/` drive the sandbox itself: `/as`, `/read`,
//! `/send`, `/members`, `/help`, `/quit`.

use super::{Out, Sandbox, SandboxError};
use std::io::BufRead;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest chat line read; the rest of a longer line is skipped.
const MAX_LINE_BYTES: usize = 4096;
/// Lines read ahead of the chat.
const LINE_QUEUE: usize = 16;
/// How long one idle wait for messages from elsewhere (a curl-signed
/// callback) lasts before it is renewed.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Empty,
    /// Text to @mention readbot with.
    Say(String),
    /// Switch the speaker (name or userId).
    As(String),
    /// `n` more members read the newest notice.
    Read(usize),
    /// Send a notice through readbot's send API.
    Send {
        title: String,
        text: String,
    },
    Members,
    Help,
    Quit,
    /// A sandbox command used wrongly: what to print.
    Bad(String),
}

fn parse_line(line: &str) -> Line {
    let t = line.trim();
    if t.is_empty() {
        return Line::Empty;
    }
    let Some(cmd) = t.strip_prefix('/') else {
        return Line::Say(t.to_owned());
    };
    let (word, rest) = cmd
        .split_once(char::is_whitespace)
        .map_or((cmd, ""), |(w, r)| (w, r.trim()));
    match word.to_lowercase().as_str() {
        "quit" | "exit" | "q" => Line::Quit,
        "help" | "h" | "?" => Line::Help,
        "members" | "m" => Line::Members,
        "as" if !rest.is_empty() => Line::As(rest.to_owned()),
        "as" => Line::Bad("usage: /as <name or userId>".into()),
        "read" => match rest.parse::<usize>() {
            Ok(n) if n >= 1 => Line::Read(n),
            _ => Line::Bad(
                "usage: /read <n>: n (1 or more) more members read the newest notice".into(),
            ),
        },
        "send" => match rest.split_once('|') {
            Some((title, text)) if !title.trim().is_empty() && !text.trim().is_empty() => {
                Line::Send {
                    title: title.trim().to_owned(),
                    text: text.trim().replace("\\n", "\n"),
                }
            }
            _ => Line::Bad("usage: /send <title> | <text>".into()),
        },
        _ => Line::Bad(format!("unknown command /{word}: /help lists the commands")),
    }
}

/// Reads one line of at most `max` bytes (the rest of a longer line is
/// read and dropped); `None` at the end of input. Invalid UTF-8 is replaced.
fn read_line_bounded<R: BufRead>(r: &mut R, max: usize) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = r.by_ref().take(limit).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() > max {
        buf.truncate(max);
        let mut skipped = Vec::new();
        loop {
            skipped.clear();
            let m = r.by_ref().take(64 * 1024).read_until(b'\n', &mut skipped)?;
            if m == 0 || skipped.last() == Some(&b'\n') {
                break;
            }
        }
    }
    let line = String::from_utf8_lossy(&buf);
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Standard input as a channel of lines, read on a thread of its own (a
/// blocking read of a terminal cannot be cancelled; the thread ends with
/// the input or when the sandbox stops listening). The channel closes at
/// the end of input.
pub(super) fn stdin_lines() -> std::io::Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel(LINE_QUEUE);
    std::thread::Builder::new()
        .name("sandbox-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            while let Ok(Some(line)) = read_line_bounded(&mut input, MAX_LINE_BYTES) {
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

fn help(sb: &Sandbox) -> String {
    let (user, name) = sb.speaker();
    format!(
        "Chat with readbot as a member of the demo group. Each line you type is an @mention of readbot from {name} ({user});
try: 谁没读？ · who read · list · status 1 · id · help
  /as <name or userId>    speak as another member
  /read <n>               n more members read the newest notice
  /send <title> | <text>  send a notice through readbot's send API as the current member (\\n in the text: new line)
  /members                the group's members and who read the newest notice
  /help                   this list
  /quit                   stop the sandbox (so do the end of input and Ctrl-C)"
    )
}

/// The member `query` names: a userId, a name, or a unique part of a name
/// (case-insensitive).
fn find_member(members: &[(String, String)], query: &str) -> Result<usize, String> {
    let q = query.trim().to_lowercase();
    if let Some(i) = members
        .iter()
        .position(|(u, n)| u.to_lowercase() == q || n.to_lowercase() == q)
    {
        return Ok(i);
    }
    let hits: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, (_, n))| n.to_lowercase().contains(&q))
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "no member is called {query:?}: /members lists them"
        )),
        many => Err(format!(
            "{query:?} could be {}: say more",
            many.iter()
                .take(5)
                .filter_map(|i| members.get(*i))
                .map(|(u, n)| format!("{n} ({u})"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn members_list(sb: &Sandbox) -> String {
    let read = sb.newest.as_ref().map(|(_, r)| r);
    let mut out = String::new();
    if read.is_none() {
        out.push_str("(no notice sent yet)\n");
    }
    for (i, (user, name)) in sb.members.iter().enumerate() {
        let me = if i == sb.current { "*" } else { " " };
        let state = match read {
            Some(r) if r.contains(user) => "read",
            Some(_) => "unread",
            None => "",
        };
        out.push_str(format!("{me} {user}  {name}  {state}").trim_end());
        out.push('\n');
    }
    out.push_str("(* speaking now; read/unread: the newest notice)");
    out
}

/// Runs the line mode until `/quit`, the end of `lines`, or a closed output.
pub(super) async fn run(
    sb: &mut Sandbox,
    out: &mut Out,
    lines: &mut mpsc::Receiver<String>,
    interactive: bool,
) -> Result<(), SandboxError> {
    out.line(help(sb))?;
    loop {
        if interactive {
            out.prompt(&format!("{}> ", sb.speaker().1))?;
        }
        // Wait for a line; meanwhile show what reaches the group from
        // elsewhere (e.g. a callback signed with curl).
        let line = loop {
            let fake = sb.fake.clone();
            let next = sb.shown.saturating_add(1);
            tokio::select! {
                l = lines.recv() => break l,
                arrived = fake.wait_sent(next, IDLE_WAIT) => {
                    if arrived {
                        if interactive {
                            out.line("")?;
                        }
                        sb.print_new(out)?;
                        if interactive {
                            out.prompt(&format!("{}> ", sb.speaker().1))?;
                        }
                    }
                }
            }
        };
        let Some(line) = line else {
            if interactive {
                out.line("")?;
            }
            return Ok(());
        };
        match parse_line(&line) {
            Line::Empty => {}
            Line::Quit => return Ok(()),
            Line::Help => out.line(help(sb))?,
            Line::Members => out.line(members_list(sb))?,
            Line::Bad(msg) => out.line(msg)?,
            Line::As(query) => match find_member(&sb.members, &query) {
                Ok(i) => {
                    sb.current = i;
                    let (user, name) = sb.speaker();
                    out.line(format!("now speaking as {name} ({user})"))?;
                }
                Err(msg) => out.line(msg)?,
            },
            Line::Read(n) => {
                let total = sb.members.len();
                match sb.read_more(n) {
                    None => out.line("no notice yet: send one with /send <title> | <text>")?,
                    Some(names) if names.is_empty() => {
                        out.line("everyone has already read the newest notice")?
                    }
                    Some(names) => {
                        let now = sb.newest.as_ref().map_or(0, |(_, r)| r.len());
                        out.line(format!(
                            "{} more read the newest notice ({}); now {now} of {total}",
                            names.len(),
                            names.join(", ")
                        ))?;
                    }
                }
            }
            Line::Send { title, text } => {
                let (_, name) = sb.speaker();
                let name = name.to_owned();
                match sb.send_notice(&title, &text).await {
                    Ok(key) => {
                        out.line(format!(
                            "{name} sent a notice through POST /api/v1/notices → processQueryKey {key}"
                        ))?;
                        sb.print_new(out)?;
                    }
                    Err(e) => out.line(format!("the notice was not sent: {e}"))?,
                }
            }
            Line::Say(text) => {
                if !interactive {
                    let (user, name) = sb.speaker();
                    out.line(format!("{name} ({user}): @readbot {text}"))?;
                }
                if let Some(problem) = sb.mention(&text).await? {
                    out.line(format!("({problem})"))?;
                }
                sb.print_new(out)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_into_mentions_and_sandbox_commands() {
        assert_eq!(parse_line("  "), Line::Empty);
        assert_eq!(parse_line(" 谁没读？ "), Line::Say("谁没读？".into()));
        assert_eq!(parse_line("/quit"), Line::Quit);
        assert_eq!(parse_line("/EXIT"), Line::Quit);
        assert_eq!(parse_line("/as  王芳 "), Line::As("王芳".into()));
        assert!(matches!(parse_line("/as"), Line::Bad(_)));
        assert_eq!(parse_line("/read 5"), Line::Read(5));
        assert!(matches!(parse_line("/read 0"), Line::Bad(_)));
        assert!(matches!(parse_line("/read x"), Line::Bad(_)));
        assert_eq!(
            parse_line("/send 周会 | 明天 10 点\\n请准时"),
            Line::Send {
                title: "周会".into(),
                text: "明天 10 点\n请准时".into()
            }
        );
        assert!(matches!(parse_line("/send only a title"), Line::Bad(_)));
        assert!(matches!(parse_line("/send | text"), Line::Bad(_)));
        assert_eq!(parse_line("/members"), Line::Members);
        assert_eq!(parse_line("/help"), Line::Help);
        assert!(matches!(parse_line("/frobnicate"), Line::Bad(m) if m.contains("/frobnicate")));
    }

    #[test]
    fn members_are_found_by_id_name_or_a_unique_part() {
        let m: Vec<(String, String)> = [
            ("user001", "张伟"),
            ("user002", "Alice Chen"),
            ("user003", "Alice Wu"),
        ]
        .iter()
        .map(|(u, n)| ((*u).to_owned(), (*n).to_owned()))
        .collect();
        assert_eq!(find_member(&m, "USER002"), Ok(1));
        assert_eq!(find_member(&m, "张伟"), Ok(0));
        assert_eq!(find_member(&m, "wu"), Ok(2));
        assert!(
            find_member(&m, "alice").is_err_and(|e| e.contains("user002") && e.contains("user003"))
        );
        assert!(find_member(&m, "nobody").is_err());
    }

    #[test]
    fn long_lines_are_cut_and_the_rest_skipped() {
        let mut input = std::io::Cursor::new(format!("{}\nnext\r\nlast", "x".repeat(10_000)));
        let first = read_line_bounded(&mut input, 100).unwrap().unwrap();
        assert_eq!(first.len(), 100);
        assert_eq!(
            read_line_bounded(&mut input, 100).unwrap().as_deref(),
            Some("next")
        );
        assert_eq!(
            read_line_bounded(&mut input, 100).unwrap().as_deref(),
            Some("last")
        );
        assert_eq!(read_line_bounded(&mut input, 100).unwrap(), None);
    }
}
