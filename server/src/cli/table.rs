//! Plain aligned tables that fit a terminal's width, and the short forms of times and
//! durations they show.

use chrono::{DateTime, Utc};

/// The width tables fit when `COLUMNS` does not say otherwise.
pub const DEFAULT_WIDTH: usize = 80;

/// Columns between two cells.
const GAP: usize = 2;

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// One column: its header, alignment, and how narrow it may be cut (`None`: never cut).
#[derive(Debug, Clone, Copy)]
pub struct Column {
    header: &'static str,
    align: Align,
    min: Option<usize>,
}

impl Column {
    /// Text that is never cut (names, states, times).
    pub const fn fixed(header: &'static str) -> Self {
        Self {
            header,
            align: Align::Left,
            min: None,
        }
    }

    /// A number, right-aligned, never cut.
    pub const fn number(header: &'static str) -> Self {
        Self {
            header,
            align: Align::Right,
            min: None,
        }
    }

    /// Text that is cut, down to `min` characters, when the table is too wide.
    pub const fn cut(header: &'static str, min: usize) -> Self {
        Self {
            header,
            align: Align::Left,
            min: Some(min),
        }
    }
}

/// A table: a header line and rows, cells separated by two spaces.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with `columns`.
    pub fn new(columns: Vec<Column>) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row, one cell per column; control characters become spaces, so a server's
    /// text (an error with a newline, an escape sequence) cannot break the layout or drive
    /// the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows
            .push(cells.into_iter().map(|cell| clean(&cell)).collect());
    }

    /// The table within `width` columns: the columns that may be cut give up width, the last
    /// ones first, down to their minimum; a cut cell ends in `…`. Fixed columns are never cut,
    /// so a table of those alone may still be wider.
    pub fn render(&self, width: usize) -> String {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, column)| {
                self.rows
                    .iter()
                    .map(|row| chars(&row[i]))
                    .chain([chars(column.header)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let total =
            |widths: &[usize]| widths.iter().sum::<usize>() + GAP * widths.len().saturating_sub(1);
        for (i, column) in self.columns.iter().enumerate().rev() {
            let excess = total(&widths).saturating_sub(width);
            if excess == 0 {
                break;
            }
            if let Some(min) = column.min {
                let floor = min.max(chars(column.header)).min(widths[i]);
                widths[i] -= excess.min(widths[i] - floor);
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| c.header.to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, column)) in row.iter().zip(&self.columns).enumerate() {
                if i > 0 {
                    line.push_str(&" ".repeat(GAP));
                }
                let cell = cut(cell, widths[i]);
                let pad = " ".repeat(widths[i] - chars(&cell));
                match column.align {
                    Align::Left => {
                        line.push_str(&cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(&cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// `text` in at most `width` characters, ending in `…` when cut.
pub fn cut(text: &str, width: usize) -> String {
    if chars(text) <= width {
        return text.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut kept: String = text.chars().take(width - 1).collect();
    kept.truncate(kept.trim_end().len());
    kept.push('…');
    kept
}

/// `text` on one line with nothing a terminal would act on.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A duration in milliseconds, in at most two units: `850ms`, `4.2s`, `42s`, `3m05s`,
/// `2h03m`, `3d04h`.
pub fn duration_ms(ms: u64) -> String {
    let secs = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..10_000 => format!("{}.{}s", secs, ms % 1000 / 100),
        _ => seconds(secs),
    }
}

/// Whole seconds, in at most two units: `42s`, `3m05s`, `2h03m`, `3d04h`.
fn seconds(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3_600..86_400 => format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// `at` from `now`: `12s ago`, `in 3m05s`, `now` within the second.
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let delta = (at - now).num_seconds();
    match delta {
        0 => "now".to_owned(),
        d if d < 0 => format!("{} ago", seconds(d.unsigned_abs())),
        d => format!("in {}", seconds(d.unsigned_abs())),
    }
}

/// A time of day in UTC, for what happened within the day: `14:07:30`.
pub fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// A date and time in UTC, for lists that go back days: `05-14 14:07:30`.
pub fn stamp(at: DateTime<Utc>) -> String {
    at.format("%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut table = Table::new(vec![
            Column::fixed("TASK"),
            Column::number("RUN"),
            Column::cut("DETAIL", 10),
        ]);
        table.row(vec!["health_check".into(), "7".into(), "ok".into()]);
        table.row(vec![
            "auction_monitor".into(),
            "1234".into(),
            "settled 3 auctions,\nno anomalies \u{1b}[31mred".into(),
        ]);
        table
    }

    #[test]
    fn columns_line_up_and_numbers_go_right() {
        assert_eq!(
            table().render(200),
            "TASK              RUN  DETAIL\n\
             health_check        7  ok\n\
             auction_monitor  1234  settled 3 auctions, no anomalies  [31mred\n"
        );
    }

    #[test]
    fn a_wide_table_cuts_the_columns_that_may_be_cut_to_fit() {
        let rendered = table().render(40);
        for line in rendered.lines() {
            assert!(line.chars().count() <= 40, "{line:?}");
        }
        assert!(
            rendered.contains("auction_monitor  1234  settled 3 auctio…"),
            "{rendered}"
        );
        // Not below the minimum: wider, but readable.
        let narrow = table().render(20);
        assert!(narrow.contains("settled 3…"), "{narrow}");
    }

    #[test]
    fn durations_and_times_are_short() {
        assert_eq!(duration_ms(850), "850ms");
        assert_eq!(duration_ms(4_250), "4.2s");
        assert_eq!(duration_ms(42_000), "42s");
        assert_eq!(duration_ms(185_000), "3m05s");
        assert_eq!(duration_ms(7_380_000), "2h03m");
        assert_eq!(duration_ms(273_600_000), "3d04h");
        let now = DateTime::parse_from_rfc3339("2026-05-14T14:07:30Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            relative(now - chrono::Duration::seconds(12), now),
            "12s ago"
        );
        assert_eq!(
            relative(now + chrono::Duration::seconds(185), now),
            "in 3m05s"
        );
        assert_eq!(relative(now, now), "now");
        assert_eq!(clock(now), "14:07:30");
        assert_eq!(stamp(now), "05-14 14:07:30");
        assert_eq!(cut("leaky_report", 8), "leaky_r…");
        assert_eq!(cut("a b c", 4), "a b…");
    }
}
