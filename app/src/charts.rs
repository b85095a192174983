//! Small SVG charts drawn from the history: no chart library, so the WASM stays small and the
//! server renders them too.
//!
//! The charts are written as markup with `maud` (every value escaped) and set as the charts
//! section's inner HTML (see [`crate::markup`] for why). So they have no event handlers: each
//! point is a focusable group whose mark and tooltip the stylesheet shows on hover and on focus,
//! and whose label says the same to a screen reader.
//!
//! The SVGs have no `viewBox`, so their text keeps its CSS size at any width: heights are in CSS
//! pixels, horizontal positions in percent of the plot. The plot is the SVG's content box; its
//! padding (in the stylesheet's chart rules) holds the value labels.

use std::{
    fmt::Write as _,
    sync::{Mutex, PoisonError},
};

use maud::{Markup, Render, html};

use crate::wire::{Dashboard, RunOutcome, Sample, TaskRow, clock_utc};

/// Height of the pool and latency charts, in CSS pixels.
const HEIGHT: f64 = 190.0;
/// Above the plot: the unit and the "max N" label.
const TOP: f64 = 24.0;
/// Below the plot: the time labels.
const BOTTOM: f64 = 24.0;
/// The SVG's left padding in the stylesheet, where the unit label starts.
const LEFT_PAD: f64 = 44.0;
/// The runs chart's rows: a task's name, then its lane of marks.
const ROW: f64 = 40.0;
/// From a row's top to its lane.
const LANE: f64 = 28.0;
/// Tooltips: line height, padding, and the gap to their point.
const LINE: f64 = 16.0;
const TIP_PAD: f64 = 6.0;
const TIP_GAP: f64 = 10.0;
const SPAN_MS: i64 = 15 * 60 * 1000;

/// A horizontal position, in percent of the plot's width.
#[derive(Debug, Clone, Copy)]
struct Pct(f64);

impl Render for Pct {
    fn render_to(&self, buffer: &mut String) {
        let _ = write!(buffer, "{:.2}%", self.0);
    }
}

/// A length in CSS pixels, to a tenth.
#[derive(Debug, Clone, Copy)]
struct Px(f64);

impl Render for Px {
    fn render_to(&self, buffer: &mut String) {
        let _ = write!(buffer, "{}", (self.0 * 10.0).round() / 10.0);
    }
}

/// Whether an instant is within the last 15 minutes before `now_ms`.
fn in_span(at_ms: i64, now_ms: i64) -> bool {
    now_ms - at_ms <= SPAN_MS
}

/// Where an instant within the last 15 minutes before `now_ms` lies, in percent of the plot.
fn x_of(at_ms: i64, now_ms: i64) -> f64 {
    let age = (now_ms - at_ms) as f64 / SPAN_MS as f64;
    100.0 * (1.0 - age.clamp(0.0, 1.0))
}

/// The height of a value on the pool and latency charts, in pixels from the top.
fn y_of(value: f64, max: f64) -> f64 {
    let plot = HEIGHT - BOTTOM - TOP;
    TOP + plot * (1.0 - (value / max.max(1e-9)).clamp(0.0, 1.0))
}

/// A rounded-up axis maximum: 1, 2, 5, 10, 20, 50, ...
fn nice_max(value: f64) -> f64 {
    let mut step = 1.0;
    loop {
        for m in [1.0, 2.0, 5.0] {
            if value <= m * step {
                return m * step;
            }
        }
        step *= 10.0;
    }
}

/// A value axis label, short enough for the SVG's left padding: "0.5", "20", "5000", "10k".
fn axis_number(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{}k", value / 1000.0)
    } else {
        value.to_string()
    }
}

/// "HH:MM:SS UTC", as elsewhere on the page.
fn time_of(at_ms: i64) -> String {
    format!("{} UTC", clock_utc(at_ms))
}

/// The three charts, as the markup of the charts section.
pub fn markup(dashboard: &Dashboard) -> String {
    let now_ms = dashboard.taken_at_ms;
    html! {
        (pool_chart(&dashboard.history, now_ms, dashboard.pool.max))
        (latency_chart(&dashboard.history, now_ms))
        (runs_chart(&dashboard.tasks, now_ms))
    }
    .into_string()
}

/// The charts section's markup: new on each poll, but kept while part of it has the keyboard's
/// focus, since replacing it would drop the focus (and make a screen reader read the point
/// again) every poll. It follows the data again once the focus leaves.
pub fn steady(
    fresh: impl Fn() -> String + Send + Sync + 'static,
) -> impl Fn() -> String + Send + Sync + 'static {
    let shown = Mutex::new(String::new());
    move || {
        // Read on every poll, so the section stays subscribed to the data.
        let fresh = fresh();
        let mut shown = shown.lock().unwrap_or_else(PoisonError::into_inner);
        if shown.is_empty() || !keyboard_focus_in_charts() {
            *shown = fresh;
        }
        shown.clone()
    }
}

/// Whether something in the charts has the focus from the keyboard (not from a click, which
/// would otherwise stop the charts until the next click elsewhere).
#[cfg(feature = "hydrate")]
fn keyboard_focus_in_charts() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element())
        .is_some_and(|e| {
            e.matches(":focus-visible").unwrap_or(false)
                && e.closest(".charts").ok().flatten().is_some()
        })
}

#[cfg(not(feature = "hydrate"))]
fn keyboard_focus_in_charts() -> bool {
    false
}

/// A link past a chart's points (each is a tab stop), shown while it has the focus.
fn skip_link(chart: &str, target: &str, words: &str) -> Markup {
    html! { a.skip id={ "skip-" (chart) } href=(target) { (words) } }
}

/// The value axis: lines at the top, the middle and zero, labelled left of the plot, and the
/// unit above the labels.
fn value_axis(top: f64, unit: &str) -> Markup {
    html! {
        text.unit x=(Px(-LEFT_PAD)) y="14" { (unit) }
        @for (value, class) in [(top, "grid"), (top / 2.0, "grid"), (0.0, "axis")] {
            @let y = y_of(value, top);
            line class=(class) x1="0" x2="100%" y1=(Px(y)) y2=(Px(y)) {}
            text.tick x="0" dx="-6" y=(Px(y + 4.0)) text-anchor="end" { (axis_number(value)) }
        }
    }
}

/// The time axis: lines from `from_y` down to the axis at `axis_y`, and "−15 min" … "now"
/// below it, the outer two aligned to the plot's edges so they stay inside.
fn time_axis(from_y: f64, axis_y: f64) -> Markup {
    html! {
        @for (min, anchor) in [(15, "start"), (10, "middle"), (5, "middle"), (0, "end")] {
            @let x = Pct(x_of(-min * 60_000, 0));
            line.grid x1=(x) x2=(x) y1=(Px(from_y)) y2=(Px(axis_y)) {}
            text.tick x=(x) y=(Px(axis_y + 17.0)) text-anchor=(anchor) {
                @if min == 0 { "now" } @else { "−" (min) " min" }
            }
        }
    }
}

/// The series as polylines, in a nested SVG stretched over the plot; the stylesheet keeps their
/// strokes from stretching with it.
fn lines(series: &[(&str, Vec<(i64, f64)>)], now_ms: i64, max: f64) -> Markup {
    let plot = HEIGHT - TOP - BOTTOM;
    let points = |points: &[(i64, f64)]| {
        let mut text = String::new();
        for (at, value) in points {
            let y = 1000.0 * (y_of(*value, max) - TOP) / plot;
            let _ = write!(text, "{:.1},{y:.1} ", 10.0 * x_of(*at, now_ms));
        }
        text.pop();
        text
    };
    html! {
        svg.lines y=(Px(TOP)) height=(Px(plot)) viewBox="0 0 1000 1000" preserveAspectRatio="none" {
            @for (class, values) in series {
                polyline class={ "series " (class) } points=(points(values)) {}
            }
        }
    }
}

/// The stretch of the plot a point's hit area covers: halfway to each neighbour, and as far on
/// the side that has none.
fn column(xs: &[f64], i: usize) -> (f64, f64) {
    let before = i.checked_sub(1).map(|j| (xs[i] - xs[j]) / 2.0);
    let after = xs.get(i + 1).map(|next| (next - xs[i]) / 2.0);
    let (before, after) = match (before, after) {
        (Some(b), Some(a)) => (b, a),
        (Some(b), None) => (b, b),
        (None, Some(a)) => (a, a),
        (None, None) => (1.0, 1.0),
    };
    ((xs[i] - before).max(0.0), (xs[i] + after).min(100.0))
}

/// The width of a line of 12 px text, estimated on the wide side (DejaVu Sans's advances), so a
/// tooltip's box holds its text in the common fonts.
fn text_width(line: &str) -> f64 {
    let ems: f64 = line
        .chars()
        .map(|c| match c {
            'f' | 'i' | 'j' | 'l' | 'r' | 't' | ' ' | '.' | ',' | ':' | '(' | ')' => 0.42,
            'm' | 'w' | 'M' | 'W' | '−' => 1.0,
            'A'..='Z' => 0.78,
            _ => 0.66,
        })
        .sum();
    ems * 12.0
}

/// A tooltip of `lines` beside `x`, on the side towards the plot's middle so it stays inside;
/// vertically centred on `centre_y`, moved within `min_top..max_bottom`.
fn tooltip(x: f64, centre_y: f64, (min_top, max_bottom): (f64, f64), lines: &[String]) -> Markup {
    let width = lines.iter().map(|l| text_width(l)).fold(0.0, f64::max) + 2.0 * TIP_PAD;
    let height = LINE * lines.len() as f64 + 5.0;
    let left = if x < 50.0 { TIP_GAP } else { -TIP_GAP - width };
    let top = (centre_y - height / 2.0)
        .min(max_bottom - height)
        .max(min_top);
    html! {
        svg.tooltip x=(Pct(x)) y=(Px(top)) {
            rect x=(Px(left)) width=(Px(width)) height=(Px(height)) rx="4" {}
            @for (i, line) in lines.iter().enumerate() {
                text x=(Px(left + TIP_PAD)) y=(Px(LINE * (i + 1) as f64 - 2.0)) { (line) }
            }
        }
    }
}

/// Where a point's tooltip goes: beside `x` (percent), centred on `y`, within `bounds`.
#[derive(Debug, Clone, Copy)]
struct TipAt {
    x: f64,
    y: f64,
    bounds: (f64, f64),
}

/// A focusable point: `hit` takes the pointer; `marks` and the tooltip (its time, then
/// `values`) show on hover and focus; its label reads the same.
fn point(at_ms: i64, values: &[String], hit: Markup, marks: Markup, tip: TipAt) -> Markup {
    let time = time_of(at_ms);
    let label = format!("{time}: {}", values.join(", "));
    let lines: Vec<String> = std::iter::once(time)
        .chain(values.iter().cloned())
        .collect();
    html! {
        g.point tabindex="0" role="img" aria-label=(label) {
            (hit)
            g.tip { (marks) (tooltip(tip.x, tip.y, tip.bounds, &lines)) }
        }
    }
}

/// A legend entry drawn as a short line of the series' style.
fn line_key(class: &str, words: &str) -> Markup {
    html! {
        span.key {
            svg.icon width="24" height="14" aria-hidden="true" {
                line class=(class) x1="1" x2="23" y1="7" y2="7" {}
            }
            (words)
        }
    }
}

/// A line's CSS class, its words, and how to read its value from a sample.
type Series = (&'static str, &'static str, fn(&Sample) -> f64);

/// Connections in use, idle and waiting over the last 15 minutes, and the pool's maximum.
fn pool_chart(history: &[Sample], now_ms: i64, max: u32) -> Markup {
    let history: Vec<&Sample> = history
        .iter()
        .filter(|s| in_span(s.at_ms, now_ms))
        .collect();
    let peak = history
        .iter()
        .map(|s| (s.active + s.idle).max(s.waiting))
        .max()
        .unwrap_or(0)
        .max(max);
    let top = nice_max(f64::from(peak));
    // With the governor: its lease limit, and what the server could give all instances when
    // that fits the scale (a budget far above the pool would flatten every other line).
    let governed = history.iter().any(|s| s.budget.is_some());
    let budget_peak = history.iter().filter_map(|s| s.budget).max();
    let budget_fits = budget_peak.is_some_and(|b| f64::from(b) <= top);
    let series: &[Series] = match (governed, budget_fits) {
        (true, true) => &[
            ("active", "in use", |s| f64::from(s.active)),
            ("idle", "idle", |s| f64::from(s.idle)),
            ("waiting", "waiting", |s| f64::from(s.waiting)),
            ("lease-limit", "leases allowed", |s| f64::from(s.limit)),
            ("budget", "in the server's budget", |s| {
                f64::from(s.budget.unwrap_or(0))
            }),
        ],
        (true, false) => &[
            ("active", "in use", |s| f64::from(s.active)),
            ("idle", "idle", |s| f64::from(s.idle)),
            ("waiting", "waiting", |s| f64::from(s.waiting)),
            ("lease-limit", "leases allowed", |s| f64::from(s.limit)),
        ],
        (false, _) => &[
            ("active", "in use", |s| f64::from(s.active)),
            ("idle", "idle", |s| f64::from(s.idle)),
            ("waiting", "waiting", |s| f64::from(s.waiting)),
        ],
    };
    let lines_of: Vec<(&str, Vec<(i64, f64)>)> = series
        .iter()
        .map(|(class, _, value)| {
            (
                *class,
                history.iter().map(|s| (s.at_ms, value(s))).collect(),
            )
        })
        .collect();
    let xs: Vec<f64> = history.iter().map(|s| x_of(s.at_ms, now_ms)).collect();
    let (max_y, axis_y) = (y_of(f64::from(max), top), HEIGHT - BOTTOM);
    html! {
        figure.chart.pool {
            figcaption { "Connections, last 15 minutes" }
            (skip_link("pool", "#skip-latency", "Skip to the next chart"))
            svg.plot height=(Px(HEIGHT)) role="group"
                aria-label="Connections in use, idle and waiting, per 5-second sample" {
                (value_axis(top, "conns"))
                (time_axis(TOP, axis_y))
                line.limit x1="0" x2="100%" y1=(Px(max_y)) y2=(Px(max_y)) {}
                text.limit-label x="100%" y=(Px(max_y - 5.0)) text-anchor="end" { "max " (max) }
                (lines(&lines_of, now_ms, top))
                @for (i, s) in history.iter().enumerate() {
                    @let (x, (left, right)) = (Pct(xs[i]), column(&xs, i));
                    @let values: Vec<String> =
                        series.iter().map(|(_, words, value)| format!("{} {words}", value(s))).collect();
                    (point(
                        s.at_ms,
                        &values,
                        html! {
                            rect.hit x=(Pct(left)) y=(Px(TOP)) width=(Pct(right - left))
                                height=(Px(axis_y - TOP)) {}
                        },
                        html! {
                            line.cursor x1=(x) x2=(x) y1=(Px(TOP)) y2=(Px(axis_y)) {}
                            @for (class, _, value) in series {
                                circle class={ "mark " (class) } cx=(x) cy=(Px(y_of(value(s), top))) r="4" {}
                            }
                        },
                        TipAt { x: xs[i], y: 0.0, bounds: (TOP + 4.0, axis_y) },
                    ))
                }
            }
            p.legend {
                @for (class, words, _) in series { (line_key(&format!("series {class}"), words)) }
                (line_key("limit", "max (pool size limit)"))
                @if let (Some(budget), false) = (budget_peak, budget_fits) {
                    span.note { "server budget up to " (budget) " connections, above this scale" }
                }
            }
        }
    }
}

/// Acquire latency (p95 per 5-second interval) over the last 15 minutes.
fn latency_chart(history: &[Sample], now_ms: i64) -> Markup {
    let points: Vec<(i64, f64)> = history
        .iter()
        .filter(|s| in_span(s.at_ms, now_ms))
        .filter_map(|s| s.p95_ms.map(|v| (s.at_ms, v)))
        .collect();
    let top = nice_max(points.iter().map(|(_, v)| *v).fold(1.0, f64::max));
    let xs: Vec<f64> = points.iter().map(|(at, _)| x_of(*at, now_ms)).collect();
    let axis_y = HEIGHT - BOTTOM;
    html! {
        figure.chart.latency {
            figcaption { "Acquire latency p95, last 15 minutes" }
            (skip_link("latency", "#skip-runs", "Skip to the next chart"))
            svg.plot height=(Px(HEIGHT)) role="group"
                aria-label="Acquire latency, 95th percentile per 5-second interval" {
                (value_axis(top, "ms"))
                (time_axis(TOP, axis_y))
                (lines(&[("latency", points.clone())], now_ms, top))
                @for (i, (_, v)) in points.iter().enumerate() {
                    circle.dot cx=(Pct(xs[i])) cy=(Px(y_of(*v, top))) r="2.5" {}
                }
                @for (i, (at, v)) in points.iter().enumerate() {
                    @let (x, y, (left, right)) = (Pct(xs[i]), y_of(*v, top), column(&xs, i));
                    (point(
                        *at,
                        &[format!("p95 {v:.1} ms")],
                        html! {
                            rect.hit x=(Pct(left)) y=(Px(TOP)) width=(Pct(right - left))
                                height=(Px(axis_y - TOP)) {}
                        },
                        html! {
                            line.cursor x1=(x) x2=(x) y1=(Px(TOP)) y2=(Px(axis_y)) {}
                            circle.mark.latency cx=(x) cy=(Px(y)) r="4.5" {}
                        },
                        TipAt { x: xs[i], y, bounds: (TOP, axis_y) },
                    ))
                }
            }
            @if points.is_empty() {
                p.note { "No acquires in the last 15 minutes." }
            }
        }
    }
}

/// A mark on the runs chart: a run and how it ended, or a tick skipped because the task's
/// previous run was still going.
#[derive(Debug, Clone, Copy)]
enum RunMark {
    Run(RunOutcome),
    OverlapSkip,
}

impl RunMark {
    /// Its shape's id suffix and CSS class.
    fn class(self) -> &'static str {
        match self {
            Self::Run(outcome) => outcome.as_str(),
            Self::OverlapSkip => "overlap",
        }
    }

    /// What it is, in its tooltip.
    fn words(self) -> &'static str {
        match self {
            Self::Run(outcome) => outcome.as_str(),
            Self::OverlapSkip => "overlap skip",
        }
    }
}

/// A task's runs and overlap skips within the span, oldest first, so the tab order follows the
/// time axis. Both lists come newest first: merged, not sorted (a sort's code would weigh more
/// in the WASM).
fn marks_of(task: &TaskRow, now_ms: i64) -> Vec<(i64, RunMark)> {
    let mut runs = task
        .runs
        .iter()
        .rev()
        .map(|r| (r.at_ms, RunMark::Run(r.outcome)))
        .peekable();
    let mut skips = task
        .overlap_skips_ms
        .iter()
        .rev()
        .map(|at| (*at, RunMark::OverlapSkip))
        .peekable();
    let mut marks = Vec::new();
    loop {
        let next = match (runs.peek(), skips.peek()) {
            (Some(run), Some(skip)) if skip.0 < run.0 => skips.next(),
            (Some(_), _) => runs.next(),
            (None, _) => skips.next(),
        };
        let Some(mark) = next else { break };
        if in_span(mark.0, now_ms) {
            marks.push(mark);
        }
    }
    marks
}

/// The marks' shapes, centred on 0,0, so outcomes differ by shape as well as by colour.
fn shapes() -> Markup {
    html! {
        defs {
            circle #lw-succeeded r="4.5" {}
            path #lw-failed d="M-4-4 4 4M4-4-4 4" {}
            rect #lw-cancelled x="-4" y="-4" width="8" height="8" {}
            path #lw-skipped d="M0-5 5 0 0 5-5 0z" {}
            path #lw-overlap d="M-5-4h10l-5 9z" {}
        }
    }
}

/// A legend entry drawn with the mark's shape.
fn shape_key(mark: RunMark, words: &str) -> Markup {
    let class = mark.class();
    html! {
        span.key {
            svg.icon width="14" height="14" viewBox="-7 -7 14 14" aria-hidden="true" {
                use class={ "run " (class) } href={ "#lw-" (class) } {}
            }
            (words)
        }
    }
}

/// Each task's runs over the last 15 minutes, one row per task, marked by outcome, and the ticks
/// skipped because the previous run was still going.
fn runs_chart(tasks: &[TaskRow], now_ms: i64) -> Markup {
    let axis_y = ROW * tasks.len() as f64;
    let height = axis_y + BOTTOM;
    let rows: Vec<_> = tasks
        .iter()
        .enumerate()
        .map(|(i, task)| (ROW * i as f64 + LANE, task, marks_of(task, now_ms)))
        .collect();
    html! {
        figure.chart.runs {
            figcaption { "Task runs, last 15 minutes" }
            // The leases section follows the charts.
            (skip_link("runs", "#leases-title", "Skip past the charts"))
            svg.plot height=(Px(height)) role="group"
                aria-label="Task runs by outcome, and ticks skipped because the previous run was still going" {
                (shapes())
                (time_axis(0.0, axis_y))
                line.axis x1="0" x2="100%" y1=(Px(axis_y)) y2=(Px(axis_y)) {}
                @for (y, task, marks) in &rows {
                    text.task x=(Px(-LEFT_PAD)) y=(Px(y - 14.0)) { (task.task) }
                    line.grid x1="0" x2="100%" y1=(Px(*y)) y2=(Px(*y)) {}
                    @for (at, mark) in marks {
                        use class={ "run " (mark.class()) } href={ "#lw-" (mark.class()) }
                            x=(Pct(x_of(*at, now_ms))) y=(Px(*y)) {}
                    }
                }
                // After every mark, so no mark covers a tooltip.
                @for (y, task, marks) in &rows {
                    @let xs: Vec<f64> = marks.iter().map(|(at, _)| x_of(*at, now_ms)).collect();
                    @for (i, (at, mark)) in marks.iter().enumerate() {
                        @let (x, (left, right)) = (xs[i], column(&xs, i));
                        (point(
                            *at,
                            &[task.task.clone(), mark.words().to_owned()],
                            html! {
                                rect.hit x=(Pct(left)) y=(Px(y - 10.0)) width=(Pct(right - left))
                                    height="20" {}
                            },
                            html! { circle.ring cx=(Pct(x)) cy=(Px(*y)) r="8" {} },
                            TipAt { x, y: *y, bounds: (2.0, height - 2.0) },
                        ))
                    }
                }
            }
            p.legend {
                (shape_key(RunMark::Run(RunOutcome::Succeeded), "succeeded"))
                (shape_key(RunMark::Run(RunOutcome::Failed), "failed"))
                (shape_key(RunMark::Run(RunOutcome::Cancelled), "cancelled"))
                (shape_key(RunMark::Run(RunOutcome::Skipped), "skipped (another instance ran it)"))
                (shape_key(RunMark::OverlapSkip, "overlap skip (previous run still going)"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_to_readable_numbers() {
        assert_eq!(nice_max(0.3), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(20.0), 20.0);
        assert_eq!(nice_max(21.0), 50.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(axis_number(2.5), "2.5");
        assert_eq!(axis_number(5000.0), "5000");
        assert_eq!(axis_number(20_000.0), "20k");
    }

    const NOW_MS: i64 = 1_700_000_000_000;

    fn dashboard() -> Dashboard {
        let sample = |ago_s: i64, active: u32, p95_ms: Option<f64>| Sample {
            at_ms: NOW_MS - ago_s * 1000,
            active,
            idle: 2,
            waiting: 0,
            p95_ms,
            limit: 20,
            budget: None,
        };
        Dashboard {
            taken_at_ms: NOW_MS,
            role: crate::wire::Role::Viewer,
            poll_ms: 2_000,
            backend: "SQLite".to_owned(),
            database: "sqlite://x.db".to_owned(),
            scheduler_running: true,
            pool: crate::wire::PoolCard {
                total: 5,
                idle: 2,
                active: 3,
                waiting: 0,
                stale: 0,
                max: 20,
                min: 5,
                acquire_timeouts: 0,
                p95_ms: Some(1.25),
            },
            history: vec![sample(600, 1, None), sample(5, 3, Some(1.25))],
            leases: vec![],
            tasks: vec![TaskRow {
                task: "leaky_<report>".to_owned(),
                every_secs: 60,
                state: crate::wire::TaskStatus::Idle,
                paused: false,
                next_run_at_ms: None,
                last_outcome: None,
                last_detail: None,
                last_run_at_ms: None,
                last_duration_ms: None,
                last_attempts: None,
                retry: None,
                overlap_skips_ms: vec![],
                runs: vec![crate::wire::RunDot {
                    at_ms: NOW_MS - 30_000,
                    outcome: crate::wire::RunOutcome::Failed,
                }],
            }],
            recommendations: vec![],
            audit: vec![],
            auctions: vec![],
            server: String::new(),
        }
    }

    #[test]
    fn charts_are_svg_figures_with_escaped_text() {
        let html = markup(&dashboard());
        assert_eq!(html.matches(r#"<figure class="chart "#).count(), 3);
        assert_eq!(html.matches(r#"<svg class="plot" "#).count(), 3);
        assert_eq!(html.matches("</figure>").count(), 3);
        assert!(
            html.contains(r#"<svg class="plot" height="190" role="group""#),
            "{html}"
        );
        assert!(
            html.contains(r#"<svg class="plot" height="64" role="group""#),
            "one task: a 40 px row and the time axis; {html}"
        );
        assert!(
            html.contains(r#"text-anchor="end">max 20</text>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<polyline class="series active" points="#),
            "{html}"
        );
        assert!(html.contains(">leaky_&lt;report&gt;</text>"), "{html}");
        assert!(
            html.contains(r#"aria-label="22:12:50 UTC: leaky_&lt;report&gt;, failed""#),
            "{html}"
        );
        assert!(!html.contains("<report>"), "{html}");
        assert!(!html.contains("No acquires"), "{html}");
    }

    #[test]
    fn each_sample_is_a_focusable_point_with_its_time_and_values() {
        let html = markup(&dashboard());
        // Two pool samples, one latency sample, one run.
        assert_eq!(
            html.matches(r#"<g class="point" tabindex="0" role="img""#)
                .count(),
            4,
            "{html}"
        );
        assert_eq!(clock_utc(NOW_MS - 5_000), "22:13:15");
        assert!(
            html.contains(r#"aria-label="22:13:15 UTC: 3 in use, 2 idle, 0 waiting""#),
            "{html}"
        );
        assert!(
            html.contains(r#"aria-label="22:13:15 UTC: p95 1.2 ms""#),
            "{html}"
        );
        // The tooltip shows what the label says, a line each.
        let tip = html
            .split(r#"aria-label="22:13:15 UTC: 3 in use, 2 idle, 0 waiting""#)
            .nth(1)
            .and_then(|rest| rest.split("</g></g>").next())
            .unwrap();
        let lines: Vec<&str> = tip
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(
            lines,
            ["22:13:15 UTC", "3 in use", "2 idle", "0 waiting"],
            "{tip}"
        );
    }

    #[test]
    fn with_the_governor_the_pool_chart_draws_its_limit_and_the_server_budget() {
        let plain = markup(&dashboard());
        assert!(!plain.contains("leases allowed"), "no governor, no lines");
        let governed = |budget| {
            let mut d = dashboard();
            for s in &mut d.history {
                (s.limit, s.budget) = (4, Some(budget));
            }
            markup(&d)
        };
        let html = governed(12);
        assert!(html.contains(r#"class="series lease-limit""#), "{html}");
        assert!(html.contains(r#"class="series budget""#), "{html}");
        assert!(
            html.contains("0 waiting, 4 leases allowed, 12 in the server"),
            "in each point's label: {html}"
        );
        assert!(
            html.contains("leases allowed</span>"),
            "in the legend: {html}"
        );

        // A budget far above the pool's scale is named, not drawn.
        let html = governed(90);
        assert!(html.contains(r#"class="series lease-limit""#), "{html}");
        assert!(!html.contains(r#"class="series budget""#), "{html}");
        assert!(
            html.contains("server budget up to 90 connections, above this scale"),
            "{html}"
        );
    }

    #[test]
    fn a_tooltip_stays_on_the_plot_side_of_its_point() {
        let lines = ["22:13:15 UTC".to_owned(), "3 in use".to_owned()];
        let left = tooltip(10.0, 100.0, (24.0, 166.0), &lines).into_string();
        assert!(left.contains(r#"<rect x="10" "#), "{left}");
        let right = tooltip(90.0, 100.0, (24.0, 166.0), &lines).into_string();
        assert!(right.contains(r#"<rect x="-"#), "{right}");
        // Kept within its bounds: a point near the top gets its tooltip below the top.
        let high = tooltip(90.0, 0.0, (24.0, 166.0), &lines).into_string();
        assert!(high.contains(r#"y="24""#), "{high}");
        let low = tooltip(90.0, 500.0, (24.0, 166.0), &lines).into_string();
        assert!(low.contains(r#"y="129""#), "166 - (2 × 16 + 5); {low}");
    }

    #[test]
    fn overlap_skips_are_drawn_with_their_own_shape_and_tooltip() {
        let mut with_skips = dashboard();
        with_skips.tasks[0].overlap_skips_ms = vec![NOW_MS - 10_000, NOW_MS - 20 * 60_000];
        with_skips.tasks[0].runs.push(crate::wire::RunDot {
            at_ms: NOW_MS - 40_000,
            outcome: RunOutcome::Skipped,
        });
        let html = markup(&with_skips);
        assert!(html.contains(r##"<path id="lw-overlap" "##), "{html}");
        // The skip 20 minutes ago is off the chart.
        assert_eq!(
            html.matches(r##"<use class="run overlap" href="#lw-overlap" x="98.89%" y="28">"##)
                .count(),
            1,
            "{html}"
        );
        assert_eq!(
            html.matches(r#"class="run overlap""#).count(),
            2,
            "and its legend key"
        );
        assert!(
            html.contains(r#"aria-label="22:13:10 UTC: leaky_&lt;report&gt;, overlap skip""#),
            "{html}"
        );
        assert!(
            html.contains(r##"<use class="run skipped" href="#lw-skipped" "##),
            "{html}"
        );
        // In time order, oldest first: the tab order follows the time axis.
        let skipped = html.find("UTC: leaky_&lt;report&gt;, skipped").unwrap();
        let failed = html.find("UTC: leaky_&lt;report&gt;, failed").unwrap();
        let overlap = html
            .find("UTC: leaky_&lt;report&gt;, overlap skip")
            .unwrap();
        assert!(skipped < failed && failed < overlap);
        assert!(html.contains("overlap skip (previous run still going)</span>"));
    }

    #[test]
    fn a_task_name_cannot_leave_its_label_or_text() {
        let mut quoted = dashboard();
        quoted.tasks[0].task = r#"x" onfocus="alert(1)<b>"#.to_owned();
        let html = markup(&quoted);
        assert!(!html.contains(r#"x" onfocus"#), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains(
                r#"aria-label="22:12:50 UTC: x&quot; onfocus=&quot;alert(1)&lt;b&gt;, failed""#
            ),
            "{html}"
        );
    }

    #[test]
    fn an_empty_latency_chart_says_so() {
        let mut empty = dashboard();
        empty.history.clear();
        assert!(markup(&empty).contains("No acquires in the last 15 minutes."));
    }

    #[test]
    fn time_maps_left_to_right() {
        assert_eq!(x_of(0, 0), 100.0);
        assert_eq!(x_of(-15 * 60_000, 0), 0.0);
        assert_eq!(x_of(-60 * 60_000, 0), 0.0, "older than the span clamps");
    }

    #[test]
    fn hit_areas_meet_halfway_between_points() {
        let xs = [10.0, 20.0, 40.0];
        assert_eq!(column(&xs, 0), (5.0, 15.0));
        assert_eq!(column(&xs, 1), (15.0, 30.0));
        assert_eq!(column(&xs, 2), (30.0, 50.0));
        assert_eq!(column(&[99.5], 0), (98.5, 100.0));
    }
}
