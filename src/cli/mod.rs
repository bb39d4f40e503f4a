//! The client-side subcommands of the `readbot` binary:
//!
//! - [`check`]: validate the configuration and DingTalk access, print the
//!   callback URL and the console permissions;
//! - [`remote`]: `send`, `receipts`, `notices` and `health`, which talk to a
//!   running readbot over its HTTP API;
//! - [`outreach`]: `remind` and `recall`, also over readbot's HTTP API;
//! - [`render`]: preview a template file against sample data;
//! - [`store`]: offline maintenance of the data folder (`store compact`,
//!   `store copy`).
//!
//! Each command writes its results to the `out` writer it is given (stdout in
//! the binary) and returns a [`CliError`] for the one line that goes to
//! stderr. Exit codes follow convention: 0 success, 1 failure or problems
//! found, 2 usage or configuration error.

pub mod check;
pub mod outreach;
pub mod remote;
pub mod render;
pub mod store;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command ran and failed, or `check` found problems.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or configuration; nothing was attempted.
pub const EXIT_USAGE: u8 = 2;

/// Why a subcommand stopped. `Display` is the one line printed to stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The command was attempted and failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Writing the output failed (exit 1), e.g. a closed pipe.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Failed(_) | CliError::Output(_) => EXIT_FAILED,
        }
    }

    /// The message on one line (newlines of nested errors folded).
    pub fn one_line(&self) -> String {
        one_line(&self.to_string())
    }
}

/// Folds a message onto one line.
pub fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Display width of a string in a terminal: East Asian wide characters
/// (CJK, Hangul, full-width forms) take two columns.
pub fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let c = c as u32;
            let wide = (0x1100..=0x115F).contains(&c)
                || (0x2E80..=0xA4CF).contains(&c)
                || (0xAC00..=0xD7A3).contains(&c)
                || (0xF900..=0xFAFF).contains(&c)
                || (0xFE30..=0xFE4F).contains(&c)
                || (0xFF00..=0xFF60).contains(&c)
                || (0xFFE0..=0xFFE6).contains(&c)
                || (0x20000..=0x3FFFD).contains(&c);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// Formats rows as left-aligned columns separated by two spaces; the last
/// column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| display_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(display_width(cell));
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            l.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(display_width(cell)) + 2;
                l.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_wide_characters() {
        let t = table(
            &["A", "NAME", "ID"],
            &[
                vec!["x".into(), "张伟".into(), "u1".into()],
                vec!["yy".into(), "Bob".into(), "u2".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "A   NAME  ID");
        assert_eq!(lines[1], "x   张伟  u1");
        assert_eq!(lines[2], "yy  Bob   u2");
    }

    #[test]
    fn errors_fold_to_one_line_with_conventional_codes() {
        let e = CliError::Usage("bad\nconfig".into());
        assert_eq!(e.one_line(), "bad config");
        assert_eq!(e.exit_code(), EXIT_USAGE);
        assert_eq!(CliError::Failed("x".into()).exit_code(), EXIT_FAILED);
    }
}
