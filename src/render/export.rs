//! The notice page's exports: one row per member (userId, name, read, read
//! time, source), as CSV for spreadsheets and as JSON.
//!
//! Names come from DingTalk and are untrusted: a CSV cell that a spreadsheet
//! would take for a formula (starting with `=`, `+`, `-`, `@`, a tab or a
//! carriage return) is prefixed with `'`, and every cell is quoted when it
//! holds a comma, a quote or a line break.

use serde::Serialize;

/// One member in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    /// The user id.
    pub user_id: String,
    /// Display name (the user id when no name is known).
    pub name: String,
    /// Whether they read the notice.
    pub read: bool,
    /// When (RFC 3339 in the configured zone): the read's own time for
    /// `event`, the first query that saw it for `query`; `None` when unread
    /// or unknown.
    pub read_time: Option<String>,
    /// `event`, `query`, or `None` when unread or unknown.
    pub source: Option<String>,
}

/// The UTF-8 byte-order mark: spreadsheet programs need it to read Chinese
/// names in a CSV file correctly.
pub const BOM: &str = "\u{feff}";

/// The CSV file: BOM, a header line, one line per row, CRLF line ends (RFC 4180).
pub fn csv(rows: &[ExportRow]) -> String {
    let mut out = String::from(BOM);
    out.push_str("userId,name,read,readTime,source\r\n");
    for r in rows {
        let cells = [
            r.user_id.as_str(),
            r.name.as_str(),
            if r.read { "true" } else { "false" },
            r.read_time.as_deref().unwrap_or(""),
            r.source.as_deref().unwrap_or(""),
        ];
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_cell(&mut out, c);
        }
        out.push_str("\r\n");
    }
    out
}

/// One cell, neutralised and quoted as needed.
fn push_cell(out: &mut String, cell: &str) {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = formula || cell.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for ch in cell.chars() {
        if ch == '"' {
            out.push('"');
        }
        out.push(ch);
    }
    if quoted {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user_id: &str, name: &str) -> ExportRow {
        ExportRow {
            user_id: user_id.into(),
            name: name.into(),
            read: false,
            read_time: None,
            source: None,
        }
    }

    #[test]
    fn csv_has_a_bom_a_header_and_one_line_per_member() {
        let read = ExportRow {
            read: true,
            read_time: Some("2024-02-19T15:20:04+08:00".into()),
            source: Some("event".into()),
            ..row("u1", "李雷")
        };
        let out = csv(&[read, row("u2", "Han")]);
        assert_eq!(
            out,
            "\u{feff}userId,name,read,readTime,source\r\n\
             u1,李雷,true,2024-02-19T15:20:04+08:00,event\r\n\
             u2,Han,false,,\r\n"
        );
    }

    #[test]
    fn formulas_are_neutralised_and_separators_quoted() {
        let cases = [
            ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""),
            ("+1", "\"'+1\""),
            ("-2+3", "\"'-2+3\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\tx", "\"'\tx\""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("plain a=b", "plain a=b"),
        ];
        for (name, want) in cases {
            let out = csv(&[row("u1", name)]);
            let line = out.lines().nth(1).unwrap_or_default().to_string();
            let rest = out.split("\r\n").nth(1).unwrap();
            assert_eq!(rest, format!("u1,{want},false,,"), "{name:?} gave {line:?}");
        }
    }

    #[test]
    fn json_uses_the_same_columns() {
        let v = serde_json::to_value(row("u1", "x")).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5);
        for k in ["userId", "name", "read", "readTime", "source"] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
