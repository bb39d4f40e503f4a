//! The notice page's read-progress chart: cumulative readers over time since
//! sending, as an inline SVG (no script, no external asset, no inline
//! `style` attribute, so a strict Content-Security-Policy allows it), and
//! the group page's small one per notice ([`sparkline_svg`]).
//!
//! Readable without colour: the readers line is solid with one dot per
//! interval, the member-count ceiling is dashed and labelled, the 50% and
//! 80% moments are dotted vertical lines labelled with their percent; the
//! `<title>` and `<desc>` say the same in words for screen readers.

use std::fmt::Write as _;

/// What the chart shows.
#[derive(Debug, Clone, Copy)]
pub struct ChartInput<'a> {
    /// Roster size: the ceiling line (0 when unknown: no ceiling, no marks).
    pub member_count: usize,
    /// Length of one interval, in seconds (at least 1).
    pub interval_secs: u64,
    /// Reads in each consecutive interval from the send time.
    pub reads: &'a [usize],
    /// Short title (plain text; escaped here).
    pub title: &'a str,
    /// What the chart says, in words (plain text; escaped here).
    pub desc: &'a str,
    /// Label of the ceiling line, e.g. "40 members" (plain text).
    pub ceiling_label: &'a str,
    /// Label of the end of the time axis, e.g. "3 h" (plain text).
    pub end_label: &'a str,
}

/// One point of the chart: the end of an interval and the readers by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// Seconds since sending (end of the interval).
    pub secs: u64,
    /// Readers so far.
    pub readers: usize,
}

/// Where the readers reached a share of the members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The share, in percent.
    pub percent: u32,
    /// The end of the interval in which it was reached (seconds since sending).
    pub secs: u64,
}

/// Percent marks drawn on the chart.
pub const MARKS: [u32; 2] = [50, 80];

/// Cumulative readers at the end of each interval: one point per interval.
pub fn points(interval_secs: u64, reads: &[usize]) -> Vec<Point> {
    let interval = interval_secs.max(1);
    let mut total = 0usize;
    let mut secs = 0u64;
    reads
        .iter()
        .map(|n| {
            total = total.saturating_add(*n);
            secs = secs.saturating_add(interval);
            Point {
                secs,
                readers: total,
            }
        })
        .collect()
}

/// The first point at which `percent` of `member_count` had read, for each
/// of [`MARKS`] reached (none when the member count is unknown).
pub fn marks(member_count: usize, points: &[Point]) -> Vec<Mark> {
    if member_count == 0 {
        return Vec::new();
    }
    MARKS
        .iter()
        .filter_map(|p| {
            let needed = member_count
                .saturating_mul(*p as usize)
                .div_ceil(100)
                .max(1);
            points
                .iter()
                .find(|pt| pt.readers >= needed)
                .map(|pt| Mark {
                    percent: *p,
                    secs: pt.secs,
                })
        })
        .collect()
}

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 30.0;

/// Escapes text for SVG content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Draws the chart.
pub fn progress_svg(c: &ChartInput<'_>) -> String {
    let pts = points(c.interval_secs, c.reads);
    let marks = marks(c.member_count, &pts);
    let total = pts.last().map_or(0, |p| p.readers);
    let y_max = c.member_count.max(total).max(1) as f64;
    let x_max = pts.last().map_or(c.interval_secs.max(1), |p| p.secs) as f64;
    let x = |secs: u64| LEFT + (secs as f64 / x_max) * (W - LEFT - RIGHT);
    let y = |n: usize| H - BOTTOM - (n as f64 / y_max) * (H - TOP - BOTTOM);
    let (x0, y0) = (x(0), y(0));
    let mut s = String::new();
    // `write!` to a String cannot fail.
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="rb-chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="rb-chart-title rb-chart-desc" font-size="16" fill="currentColor"><title id="rb-chart-title">{}</title><desc id="rb-chart-desc">{}</desc>"#,
        esc(c.title),
        esc(c.desc)
    );
    // Axes.
    let _ = write!(
        s,
        r#"<path class="rb-axis" d="M{LEFT:.1} {TOP:.1}V{y0:.1}H{:.1}" fill="none" stroke="currentColor" stroke-opacity="0.5"/>"#,
        W - RIGHT
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">0</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
        LEFT - 6.0,
        y0 + 4.0,
        LEFT - 6.0,
        y(y_max as usize) + 4.0,
        y_max as usize
    );
    let _ = write!(
        s,
        r#"<text x="{x0:.1}" y="{:.1}">0</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
        H - 8.0,
        W - RIGHT,
        H - 8.0,
        esc(c.end_label)
    );
    // The ceiling: every member.
    if c.member_count > 0 {
        let yc = y(c.member_count);
        let _ = write!(
            s,
            r#"<line class="rb-ceiling" x1="{LEFT:.1}" y1="{yc:.1}" x2="{:.1}" y2="{yc:.1}" stroke="currentColor" stroke-dasharray="8 5"/><text class="rb-ceiling-label" x="{:.1}" y="{:.1}">{}</text>"#,
            W - RIGHT,
            LEFT + 6.0,
            yc - 6.0,
            esc(c.ceiling_label)
        );
    }
    // The 50% and 80% moments.
    for m in &marks {
        let xm = x(m.secs);
        let _ = write!(
            s,
            r#"<g class="rb-mark"><line x1="{xm:.1}" y1="{TOP:.1}" x2="{xm:.1}" y2="{y0:.1}" stroke="currentColor" stroke-dasharray="2 4"/><text x="{:.1}" y="{:.1}">{}%</text></g>"#,
            xm + 4.0,
            TOP + 10.0 + if m.percent == 80 { 14.0 } else { 0.0 },
            m.percent
        );
    }
    // Readers so far: a line from the send time through one dot per interval.
    if !pts.is_empty() {
        let mut d = format!("M{x0:.1} {y0:.1}");
        for p in &pts {
            let _ = write!(d, "L{:.1} {:.1}", x(p.secs), y(p.readers));
        }
        let _ = write!(
            s,
            r#"<path class="rb-line" d="{d}" fill="none" stroke="currentColor" stroke-width="2.5" stroke-linejoin="round"/>"#
        );
        for p in &pts {
            let _ = write!(
                s,
                r#"<circle class="rb-point" cx="{:.1}" cy="{:.1}" r="3.5"><title>{}</title></circle>"#,
                x(p.secs),
                y(p.readers),
                p.readers
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// What a small chart of one notice on the group page shows.
#[derive(Debug, Clone, Copy)]
pub struct SparkInput<'a> {
    /// Unique on its page: the ids of its `<title>` and `<desc>` derive
    /// from it (ASCII letters, digits and `-` only; others are dropped).
    pub id: &'a str,
    /// Roster size: the ceiling (0 when unknown: no ceiling line).
    pub member_count: usize,
    /// Reads in each consecutive interval from the send time.
    pub reads: &'a [usize],
    /// Short title (plain text; escaped here).
    pub title: &'a str,
    /// What it says, in words (plain text; escaped here).
    pub desc: &'a str,
}

const SW: f64 = 120.0;
const SH: f64 = 32.0;
const SPAD: f64 = 3.0;

/// A compact read-progress chart ("sparkline"): cumulative readers over
/// time as one line, with the member count as a dashed ceiling. No axes
/// or labels; the `<title>` and `<desc>` say what it shows.
pub fn sparkline_svg(c: &SparkInput<'_>) -> String {
    let id: String =
        c.id.chars()
            .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '-')
            .take(64)
            .collect();
    let pts = points(1, c.reads);
    let total = pts.last().map_or(0, |p| p.readers);
    let y_max = c.member_count.max(total).max(1) as f64;
    let x_max = pts.len().max(1) as f64;
    let x = |i: usize| SPAD + (i as f64 / x_max) * (SW - 2.0 * SPAD);
    let y = |n: usize| SH - SPAD - (n as f64 / y_max) * (SH - 2.0 * SPAD);
    let mut s = String::new();
    // `write!` to a String cannot fail.
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="rb-spark" viewBox="0 0 {SW} {SH}" role="img" aria-labelledby="rb-spark-{id}-title rb-spark-{id}-desc" fill="none" stroke="currentColor"><title id="rb-spark-{id}-title">{}</title><desc id="rb-spark-{id}-desc">{}</desc>"#,
        esc(c.title),
        esc(c.desc)
    );
    if c.member_count > 0 {
        let yc = y(c.member_count);
        let _ = write!(
            s,
            r#"<line class="rb-ceiling" x1="{SPAD:.1}" y1="{yc:.1}" x2="{:.1}" y2="{yc:.1}" stroke-opacity="0.5" stroke-dasharray="3 2"/>"#,
            SW - SPAD
        );
    }
    let mut d = format!("M{:.1} {:.1}", x(0), y(0));
    for (i, p) in pts.iter().enumerate() {
        let _ = write!(d, "L{:.1} {:.1}", x(i.saturating_add(1)), y(p.readers));
    }
    let _ = write!(
        s,
        r#"<path class="rb-line" d="{d}" stroke-width="2" stroke-linejoin="round"/></svg>"#
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(member_count: usize, reads: &'a [usize]) -> ChartInput<'a> {
        ChartInput {
            member_count,
            interval_secs: 60,
            reads,
            title: "Read progress",
            desc: "3 of 10 read",
            ceiling_label: "10 members",
            end_label: "3 min",
        }
    }

    #[test]
    fn points_accumulate_one_per_interval() {
        assert_eq!(
            points(60, &[2, 0, 3]),
            [
                Point {
                    secs: 60,
                    readers: 2
                },
                Point {
                    secs: 120,
                    readers: 2
                },
                Point {
                    secs: 180,
                    readers: 5
                }
            ]
        );
        assert!(points(60, &[]).is_empty());
        // A zero interval is taken as one second, never a division by zero.
        assert_eq!(points(0, &[1])[0].secs, 1);
    }

    #[test]
    fn marks_are_the_first_intervals_reaching_50_and_80_percent() {
        let pts = points(60, &[3, 2, 2, 1, 2]);
        // 10 members: 5 readers by 120 s, 8 by 240 s.
        assert_eq!(
            marks(10, &pts),
            [
                Mark {
                    percent: 50,
                    secs: 120
                },
                Mark {
                    percent: 80,
                    secs: 240
                }
            ]
        );
        // 7 members: 50% needs 4 (rounded up), 80% needs 6.
        assert_eq!(marks(7, &points(60, &[3, 1, 1, 1])).len(), 2);
        assert_eq!(marks(7, &points(60, &[3, 1, 1, 1]))[1].secs, 240);
        assert!(marks(10, &points(60, &[4])).is_empty(), "not reached");
        assert!(marks(0, &pts).is_empty(), "unknown roster: no marks");
    }

    #[test]
    fn the_svg_has_title_desc_one_dot_per_interval_ceiling_and_marks() {
        let svg = progress_svg(&input(10, &[3, 2, 0, 3]));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains(r#"<title id="rb-chart-title">Read progress</title>"#));
        assert!(svg.contains(r#"<desc id="rb-chart-desc">3 of 10 read</desc>"#));
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("rb-ceiling") && svg.contains(">10 members<"));
        assert!(svg.contains(">50%<") && svg.contains(">80%<"), "{svg}");
        assert!(
            !svg.contains("style="),
            "a strict CSP refuses style attributes"
        );
        // The last dot is at the top right (8 of 10 ⇒ below the ceiling).
        let svg = progress_svg(&input(8, &[8]));
        assert!(svg.contains(r#"cx="620.0" cy="22.0""#), "{svg}");
    }

    #[test]
    fn no_reads_or_no_roster_still_draw_a_valid_chart_and_text_is_escaped() {
        let svg = progress_svg(&input(0, &[]));
        assert_eq!(svg.matches("<circle").count(), 0);
        assert!(!svg.contains("rb-ceiling") && !svg.contains("rb-mark"));
        let evil = ChartInput {
            title: "<script>alert(1)</script>",
            end_label: "\"><img>",
            ..input(3, &[1])
        };
        let svg = progress_svg(&evil);
        assert!(!svg.contains("<script>") && !svg.contains("<img>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
    }

    #[test]
    fn a_sparkline_has_unique_ids_a_ceiling_and_escaped_text() {
        let svg = sparkline_svg(&SparkInput {
            id: "3\"><x",
            member_count: 4,
            reads: &[1, 0, 3],
            title: "<b>t</b>",
            desc: "4 of 4 read",
        });
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(
            svg.contains(r#"<title id="rb-spark-3x-title">&lt;b&gt;t&lt;/b&gt;</title>"#),
            "{svg}"
        );
        assert!(svg.contains(r#"aria-labelledby="rb-spark-3x-title rb-spark-3x-desc""#));
        assert!(svg.contains("rb-ceiling") && !svg.contains("style="));
        // From the send time through three intervals; the last at the ceiling.
        assert!(
            svg.contains(r#"d="M3.0 29.0L41.0 22.5L79.0 22.5L117.0 3.0""#),
            "{svg}"
        );
        let empty = sparkline_svg(&SparkInput {
            id: "e",
            member_count: 0,
            reads: &[],
            title: "t",
            desc: "d",
        });
        assert!(
            !empty.contains("rb-ceiling") && empty.contains(r#"d="M3.0 29.0""#),
            "{empty}"
        );
    }
}
