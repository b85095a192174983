//! Small SVG charts drawn from the history: no chart library, so the WASM stays small and the
//! server renders them too. The pool, latency and server charts draw whatever [`Span`] they are
//! given (the last 15 minutes or hour from memory, days from the database); the runs chart
//! always shows the last 15 minutes.
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

use crate::{
    prefs::{Shown, Zone, time_markup},
    wire::{
        ChartRange, Dashboard, Forecast, RunOutcome, SAMPLE_EVERY_MS, Sample, SpanSamples, TaskRow,
        chart_bucket_ms, iso_utc,
    },
};

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
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// How far the server chart looks ahead: at least 5 minutes, so "now" and the end of the axis
/// keep their labels apart on a phone, and at most 15, so the past keeps half the width.
const AHEAD_MIN_MS: i64 = 5 * 60 * 1000;
const AHEAD_MAX_MS: i64 = 15 * 60 * 1000;

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

/// The stretch of time a chart draws, and where its samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Its start, in Unix milliseconds.
    pub from_ms: i64,
    /// Its end, in Unix milliseconds.
    pub to_ms: i64,
    /// Whether it ends now: its end reads "now", and the server chart may look ahead of it.
    pub ends_now: bool,
    /// How long each point covers (the busiest sample of it), in milliseconds.
    pub bucket_ms: i64,
    /// Whether the samples are the history's (every instance, from the database) rather than
    /// this instance's memory.
    pub stored: bool,
    /// The clock its times are written on.
    pub zone: Zone,
}

impl Span {
    /// `range` up to `now_ms`, from memory.
    pub fn recent(range: ChartRange, now_ms: i64) -> Self {
        let len = range.secs() * 1000;
        Self {
            from_ms: now_ms - len,
            to_ms: now_ms,
            ends_now: true,
            bucket_ms: chart_bucket_ms(len, SAMPLE_EVERY_MS),
            stored: false,
            zone: Zone::Utc,
        }
    }

    /// The span of samples read from the history.
    pub fn stored(samples: &SpanSamples) -> Self {
        Self {
            from_ms: samples.from_ms,
            to_ms: samples.to_ms,
            ends_now: samples.ends_now,
            bucket_ms: samples.bucket_ms,
            stored: true,
            zone: Zone::Utc,
        }
    }

    /// The same span, its times written on `zone`'s clock.
    pub fn in_zone(self, zone: Zone) -> Self {
        Self { zone, ..self }
    }

    /// An instant as its charts write it: the date too when the span is [`dated`](Self::dated).
    fn time(self, at_ms: i64, dated: bool) -> String {
        let shown = if dated { Shown::DateTime } else { Shown::Clock };
        self.zone.text(at_ms, shown, at_ms)
    }

    fn len_ms(self) -> i64 {
        (self.to_ms - self.from_ms).max(1)
    }

    /// Whether an instant is within it.
    fn contains(self, at_ms: i64) -> bool {
        (self.from_ms..=self.to_ms).contains(&at_ms)
    }

    /// Where an instant lies, in percent of the plot (clamped to it).
    fn x(self, at_ms: i64) -> f64 {
        100.0 * ((at_ms - self.from_ms) as f64 / self.len_ms() as f64).clamp(0.0, 1.0)
    }

    /// The range it is, when it ends now and is one.
    fn range(self) -> Option<ChartRange> {
        ChartRange::ALL
            .iter()
            .copied()
            .find(|r| self.ends_now && r.secs() * 1000 == self.len_ms())
    }

    /// "last 15 minutes", "last 24 hours", "since 2026-12-01 00:00:00 UTC", "2026-12-01 …
    /// UTC to 2026-12-02 … UTC" (without "UTC" when its zone is local).
    pub fn words(self) -> String {
        match self.range() {
            Some(ChartRange::Minutes15) => "last 15 minutes".to_owned(),
            Some(ChartRange::Hour) => "last hour".to_owned(),
            Some(ChartRange::Day) => "last 24 hours".to_owned(),
            Some(ChartRange::Week) => "last 7 days".to_owned(),
            None if self.ends_now => format!("since {}", self.time(self.from_ms, true)),
            None => format!(
                "{} to {}",
                self.time(self.from_ms, true),
                self.time(self.to_ms, true)
            ),
        }
    }

    /// What one point is: "per 5-second sample", or "busiest sample per 8 min".
    fn per_point(self) -> String {
        if self.bucket_ms <= SAMPLE_EVERY_MS {
            "per 5-second sample".to_owned()
        } else {
            format!(
                "busiest sample per {}",
                leasewatch_types::rounded_span(self.bucket_ms as f64 / 1000.0)
            )
        }
    }

    /// Where the samples come from, when that is not this instance's last minutes as taken.
    fn source(self) -> Option<String> {
        if self.stored {
            Some(format!(
                "all instances, from the database, {}",
                self.per_point()
            ))
        } else if self.bucket_ms > SAMPLE_EVERY_MS {
            Some(format!("this instance, {}", self.per_point()))
        } else {
            None
        }
    }

    /// Whether a point's time carries the date: the span reaches past the last hour (a time of
    /// day alone could be today's or yesterday's), or ends before now.
    fn dated(self) -> bool {
        !self.ends_now || self.len_ms() > HOUR_MS
    }

    /// The runs page over the same span (`from`, and `to` unless it ends now).
    fn runs_link(self) -> String {
        let mut href = format!(
            "{}/runs?from={}",
            crate::base::base(),
            iso_utc(self.from_ms)
        );
        if !self.ends_now {
            href.push_str("&to=");
            href.push_str(&iso_utc(self.to_ms));
        }
        href
    }
}

/// The time axis's labelled instants, oldest first: back from the end by a round step (5 min,
/// 15 min, 6 h, 2 d, …) that gives at most four intervals, each "−N min", "−N h" or "−N d";
/// the end reads "now", or its time (or date) on the span's clock when the span ends earlier.
fn ticks(span: Span) -> Vec<(i64, String)> {
    const STEPS: [i64; 14] = [
        MINUTE_MS,
        2 * MINUTE_MS,
        5 * MINUTE_MS,
        10 * MINUTE_MS,
        15 * MINUTE_MS,
        30 * MINUTE_MS,
        HOUR_MS,
        2 * HOUR_MS,
        3 * HOUR_MS,
        6 * HOUR_MS,
        12 * HOUR_MS,
        DAY_MS,
        2 * DAY_MS,
        7 * DAY_MS,
    ];
    let len = span.len_ms();
    let step = STEPS
        .into_iter()
        .find(|step| len / step <= 4)
        .unwrap_or(7 * DAY_MS);
    let mut ticks: Vec<(i64, String)> = (0..=len / step)
        .map(|k| {
            let back = k * step;
            let label = match (k, span.ends_now) {
                (0, true) => "now".to_owned(),
                (0, false) if len > 2 * DAY_MS => span.time(span.to_ms, true)[..10].to_owned(),
                (0, false) => span.time(span.to_ms, false)[..5].to_owned(),
                _ if step < HOUR_MS => format!("−{} min", back / MINUTE_MS),
                _ if step < DAY_MS => format!("−{} h", back / HOUR_MS),
                _ => format!("−{} d", back / DAY_MS),
            };
            (span.to_ms - back, label)
        })
        .collect();
    ticks.reverse();
    ticks
}

/// How a tick's label is anchored: inside the plot at either edge.
fn anchor(x: f64) -> &'static str {
    if x < 0.5 {
        "start"
    } else if x > 99.5 {
        "end"
    } else {
        "middle"
    }
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

/// What the pool, latency and server charts draw.
#[derive(Debug, Clone, Copy)]
pub enum Samples<'a> {
    /// These samples (oldest first) over this span.
    Over(Span, &'a [Sample]),
    /// None: the span could not be read, for this reason (in a sentence).
    Unreadable(&'a str),
}

/// The four charts, as the markup of the charts section: the samples' three over their span,
/// then the runs of the last 15 minutes; their times on `zone`'s clock.
pub fn markup(dashboard: &Dashboard, samples: Samples<'_>, zone: Zone) -> String {
    let now_ms = dashboard.taken_at_ms;
    let (span, history) = match samples {
        Samples::Over(span, history) => (span.in_zone(zone), history),
        Samples::Unreadable(why) => {
            return html! {
                figure.chart.unreadable {
                    figcaption { "Connections, acquire latency and server connections" }
                    p.banner.error role="alert" data-banner="samples" { (why) }
                }
                (runs_chart(&dashboard.tasks, Span::recent(ChartRange::Minutes15, now_ms).in_zone(zone), None))
            }
            .into_string();
        }
    };
    let server = ServerChart::of(dashboard, span, history);
    // Each chart's skip link goes to the next one that has points to skip.
    let after_latency = if server.has_points() {
        "#skip-server"
    } else {
        "#skip-runs"
    };
    let pool_max = (!span.stored).then_some(dashboard.pool.max);
    let last_minutes = Span::recent(ChartRange::Minutes15, now_ms).in_zone(zone);
    let elsewhere = (span != last_minutes).then_some(span);
    html! {
        (pool_chart(history, span, pool_max))
        (latency_chart(history, span, after_latency))
        (server.render())
        (runs_chart(&dashboard.tasks, last_minutes, elsewhere))
    }
    .into_string()
}

/// The span after "in the": "last 15 minutes", "span from … to …".
fn span_phrase(span: Span) -> String {
    match span.range() {
        Some(_) => span.words(),
        None => format!("span {}", span.words()),
    }
}

/// A chart's caption: what it shows over which span, and where the samples come from when
/// that is not this instance's memory as taken.
fn caption(what: &str, span: Span) -> Markup {
    html! {
        figcaption {
            (what) ", " (span.words())
            @if let Some(source) = span.source() {
                span.source data-source=(if span.stored { "database" } else { "memory" }) {
                    " · " (source)
                }
            }
        }
    }
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

/// The time axis: lines from `from_y` down to the axis at `axis_y`, and the span's
/// [`ticks`] below it ("−15 min" … "now"), those at the edges aligned to stay inside.
fn time_axis(span: Span, from_y: f64, axis_y: f64) -> Markup {
    html! {
        @for (at, label) in ticks(span) {
            @let x = span.x(at);
            line.grid x1=(Pct(x)) x2=(Pct(x)) y1=(Px(from_y)) y2=(Px(axis_y)) {}
            text.tick x=(Pct(x)) y=(Px(axis_y + 17.0)) text-anchor=(anchor(x)) { (label) }
        }
    }
}

/// The series as polylines (`x_at` places an instant, in percent), in a nested SVG stretched
/// over the plot; the stylesheet keeps their strokes from stretching with it.
fn lines(series: &[(&str, Vec<(i64, f64)>)], x_at: impl Fn(i64) -> f64, max: f64) -> Markup {
    let plot = HEIGHT - TOP - BOTTOM;
    let points = |points: &[(i64, f64)]| {
        let mut text = String::new();
        for (at, value) in points {
            let y = 1000.0 * (y_of(*value, max) - TOP) / plot;
            let _ = write!(text, "{:.1},{y:.1} ", 10.0 * x_at(*at));
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

/// Where a point's tooltip goes: beside `x` (percent), centred on `y`, within `bounds`; and
/// whether its time carries the date (spans beyond the last hour).
#[derive(Debug, Clone, Copy)]
struct TipAt {
    x: f64,
    y: f64,
    bounds: (f64, f64),
    dated: bool,
}

/// A sample's hit area: the full-height column between its neighbours' midpoints, from `left`
/// to `right` (percent) down to the axis at `axis_y`.
fn column_hit(left: f64, right: f64, axis_y: f64) -> Markup {
    html! {
        rect.hit x=(Pct(left)) y=(Px(TOP)) width=(Pct(right - left)) height=(Px(axis_y - TOP)) {}
    }
}

/// The vertical cursor a focused sample shows at `x`, down to the axis at `axis_y`.
fn cursor(x: Pct, axis_y: f64) -> Markup {
    html! { line.cursor x1=(x) x2=(x) y1=(Px(TOP)) y2=(Px(axis_y)) {} }
}

/// A focusable point at an instant (written on its span's clock): `hit` takes the pointer;
/// `marks` and the tooltip (its time, then `values`) show on hover and focus; its label reads
/// the same. (SVG text has no `<time>`.)
fn point(at: (i64, Span), values: &[String], hit: Markup, marks: Markup, tip: TipAt) -> Markup {
    let time = at.1.time(at.0, tip.dated);
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

/// Connections in use, idle and waiting over the span, and the pool's maximum (`max`: this
/// instance's, not drawn over the history's sum of every instance).
fn pool_chart(history: &[Sample], span: Span, max: Option<u32>) -> Markup {
    let history: Vec<&Sample> = history.iter().filter(|s| span.contains(s.at_ms)).collect();
    let peak = history
        .iter()
        .map(|s| (s.active + s.idle).max(s.waiting))
        .max()
        .unwrap_or(0)
        .max(max.unwrap_or(1));
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
    let xs: Vec<f64> = history.iter().map(|s| span.x(s.at_ms)).collect();
    let axis_y = HEIGHT - BOTTOM;
    html! {
        figure.chart.pool {
            (caption("Connections", span))
            (skip_link("pool", "#skip-latency", "Skip to the next chart"))
            svg.plot height=(Px(HEIGHT)) role="group"
                aria-label={ "Connections in use, idle and waiting, " (span.per_point()) } {
                (value_axis(top, "conns"))
                (time_axis(span, TOP, axis_y))
                @if let Some(max) = max {
                    @let max_y = y_of(f64::from(max), top);
                    line.limit x1="0" x2="100%" y1=(Px(max_y)) y2=(Px(max_y)) {}
                    text.limit-label x="100%" y=(Px(max_y - 5.0)) text-anchor="end" { "max " (max) }
                }
                (lines(&lines_of, |at| span.x(at), top))
                @for (i, s) in history.iter().enumerate() {
                    @let (x, (left, right)) = (Pct(xs[i]), column(&xs, i));
                    @let values: Vec<String> =
                        series.iter().map(|(_, words, value)| format!("{} {words}", value(s))).collect();
                    (point(
                        (s.at_ms, span),
                        &values,
                        column_hit(left, right, axis_y),
                        html! {
                            (cursor(x, axis_y))
                            @for (class, _, value) in series {
                                circle class={ "mark " (class) } cx=(x) cy=(Px(y_of(value(s), top))) r="4" {}
                            }
                        },
                        TipAt { x: xs[i], y: 0.0, bounds: (TOP + 4.0, axis_y), dated: span.dated() },
                    ))
                }
            }
            @if history.is_empty() {
                p.note data-empty="pool" { "No samples in the " (span_phrase(span)) "." }
            }
            p.legend {
                @for (class, words, _) in series { (line_key(&format!("series {class}"), words)) }
                @if max.is_some() { (line_key("limit", "max (pool size limit)")) }
                @if let (Some(budget), false) = (budget_peak, budget_fits) {
                    span.note { "server budget up to " (budget) " connections, above this scale" }
                }
            }
        }
    }
}

/// Acquire latency (p95 per 5-second interval, the worst of each point) over the span.
fn latency_chart(history: &[Sample], span: Span, next: &str) -> Markup {
    let points: Vec<(i64, f64)> = history
        .iter()
        .filter(|s| span.contains(s.at_ms))
        .filter_map(|s| s.p95_ms.map(|v| (s.at_ms, v)))
        .collect();
    let top = nice_max(points.iter().map(|(_, v)| *v).fold(1.0, f64::max));
    let xs: Vec<f64> = points.iter().map(|(at, _)| span.x(*at)).collect();
    let axis_y = HEIGHT - BOTTOM;
    html! {
        figure.chart.latency {
            (caption("Acquire latency p95", span))
            (skip_link("latency", next, "Skip to the next chart"))
            svg.plot height=(Px(HEIGHT)) role="group"
                aria-label={ "Acquire latency, 95th percentile per 5-second interval, " (span.per_point()) } {
                (value_axis(top, "ms"))
                (time_axis(span, TOP, axis_y))
                (lines(&[("latency", points.clone())], |at| span.x(at), top))
                @for (i, (_, v)) in points.iter().enumerate() {
                    circle.dot cx=(Pct(xs[i])) cy=(Px(y_of(*v, top))) r="2.5" {}
                }
                @for (i, (at, v)) in points.iter().enumerate() {
                    @let (x, y, (left, right)) = (Pct(xs[i]), y_of(*v, top), column(&xs, i));
                    (point(
                        (*at, span),
                        &[format!("p95 {v:.1} ms")],
                        column_hit(left, right, axis_y),
                        html! {
                            (cursor(x, axis_y))
                            circle.mark.latency cx=(x) cy=(Px(y)) r="4.5" {}
                        },
                        TipAt { x: xs[i], y, bounds: (TOP, axis_y), dated: span.dated() },
                    ))
                }
            }
            @if points.is_empty() {
                p.note { "No acquires in the " (span_phrase(span)) "." }
            }
        }
    }
}

/// The server chart's time axis: the span, and, when the span is this instance's last minutes
/// (ending now, from memory), some minutes after it for the forecast.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    span: Span,
    ahead_ms: i64,
}

impl Timeline {
    /// How far ahead to look: up to a little past the forecast exhaustion when there is one,
    /// else the horizon; whole minutes within 5 to 15. Spans from the database, or ending
    /// before now, do not look ahead (minutes would not show on days).
    fn of(span: Span, forecast: Option<&Forecast>) -> Self {
        if span.stored || !span.ends_now {
            return Self { span, ahead_ms: 0 };
        }
        let wanted_ms = forecast.map_or(0.0, |f| {
            match f.trend.and_then(|t| t.eta_secs) {
                // A fifth past the meeting point, so its mark and label sit inside the plot.
                Some(eta) => (f.read_at_ms - span.to_ms) as f64 + eta * 1200.0,
                None => f.horizon_secs as f64 * 1000.0,
            }
        });
        let minutes = (wanted_ms / 60_000.0).ceil().max(0.0) as i64;
        Self {
            span,
            ahead_ms: (minutes * 60_000).clamp(AHEAD_MIN_MS, AHEAD_MAX_MS),
        }
    }

    /// Whether it looks ahead of now (and so draws the forecast).
    fn looks_ahead(self) -> bool {
        self.ahead_ms > 0
    }

    /// Now: the span's end.
    fn now_ms(self) -> i64 {
        self.span.to_ms
    }

    /// Where an instant lies, in percent of the plot (clamped to it).
    fn x(self, at_ms: i64) -> f64 {
        let width = (self.span.len_ms() + self.ahead_ms) as f64;
        100.0 * ((at_ms - self.span.from_ms) as f64 / width).clamp(0.0, 1.0)
    }

    /// Its end, in minutes from now.
    fn ahead_minutes(self) -> i64 {
        self.ahead_ms / 60_000
    }
}

/// "~85 s": how long until the slots run out, approximate, as the recommendation says it.
fn eta_words(eta_secs: f64) -> String {
    format!("~{}", leasewatch_types::rounded_span(eta_secs))
}

/// Where the forecast line runs: from the last read's fitted level to the usable limit.
#[derive(Debug, Clone, Copy)]
struct ForecastLine {
    from_ms: i64,
    level: f64,
    eta_secs: f64,
    per_minute: f64,
    fit: f64,
}

/// The server's client connections over the span, its usable limit, and (over this instance's
/// last minutes) the forecast of when they meet.
struct ServerChart<'a> {
    applies: bool,
    history: Vec<&'a Sample>,
    forecast: Option<&'a Forecast>,
    timeline: Timeline,
}

impl<'a> ServerChart<'a> {
    fn of(dashboard: &'a Dashboard, span: Span, history: &'a [Sample]) -> Self {
        let forecast = dashboard.forecast.as_ref();
        Self {
            applies: dashboard.server_applies,
            history: history
                .iter()
                .filter(|s| span.contains(s.at_ms) && s.server_clients.is_some())
                .collect(),
            forecast,
            timeline: Timeline::of(span, forecast),
        }
    }

    /// The forecast line, drawn when the trend rises and fits (it has an eta) and the chart
    /// looks ahead.
    fn line(&self) -> Option<ForecastLine> {
        if !self.timeline.looks_ahead() {
            return None;
        }
        let f = self.forecast?;
        let t = f.trend?;
        Some(ForecastLine {
            from_ms: f.read_at_ms,
            level: t.level,
            eta_secs: t.eta_secs?,
            per_minute: t.per_minute,
            fit: t.fit,
        })
    }

    /// The usable limit: the forecast's (the newest read), else the newest sample's.
    fn usable(&self) -> Option<i64> {
        self.forecast
            .map(|f| f.usable)
            .or_else(|| self.history.iter().rev().find_map(|s| s.server_usable))
    }

    fn alarm(&self) -> bool {
        self.forecast.is_some_and(|f| f.alarm_since_ms.is_some())
    }

    /// Whether it has focusable points (its skip link is worth a tab stop).
    fn has_points(&self) -> bool {
        self.applies && (!self.history.is_empty() || self.line().is_some())
    }

    /// The chart in words: where the connections stand and where they are heading.
    fn summary(&self) -> Markup {
        let Some(f) = self.forecast else {
            return html! { "Not read yet: the server is read every 2 s." };
        };
        let now = format!("{} of {} usable slots in use", f.used, f.usable);
        let Some(t) = f.trend else {
            return html! { (now) "; the forecast needs more reads (one every 2 s)." };
        };
        let rate = format!("{:+.1} per minute, fit {:.2}", t.per_minute, t.fit);
        let Some(eta) = t.eta_secs else {
            return html! { (now) ", no exhaustion forecast (" (rate) ")." };
        };
        let action = match (f.alarm_since_ms, f.acting) {
            (Some(since), acting) => html! {
                " Alarm raised at " (time_markup(since, self.timeline.span.zone, Shown::Clock)) ": "
                @if acting {
                    "Leasewatch takes back its own connections."
                } @else {
                    "warning only (predictive cleanup is off)."
                }
            },
            (None, _) => html! {
                " Beyond the alarm horizon ("
                (leasewatch_types::rounded_span(f.horizon_secs as f64)) ")."
            },
        };
        html! { (now) ", rising (" (rate) "): exhaustion in " (eta_words(eta)) "." (action) }
    }

    fn render(&self) -> Markup {
        if !self.applies {
            return html! {
                figure.chart.server {
                    figcaption { "Server connections" }
                    p.note {
                        "The server view does not apply: SQLite is embedded, so there is no \
                         database server whose connections could run out."
                    }
                }
            };
        }
        let timeline = self.timeline;
        let usable = self.usable();
        let line = self.line();
        let peak = self
            .history
            .iter()
            .filter_map(|s| s.server_clients)
            .chain(usable)
            .chain(self.forecast.map(|f| f.used))
            .max()
            .unwrap_or(0);
        let top = nice_max(peak as f64);
        let axis_y = HEIGHT - BOTTOM;
        let xs: Vec<f64> = self.history.iter().map(|s| timeline.x(s.at_ms)).collect();
        let clients: Vec<(i64, f64)> = self
            .history
            .iter()
            .filter_map(|s| Some((s.at_ms, s.server_clients? as f64)))
            .collect();
        let span = timeline.span;
        let ahead = timeline.looks_ahead();
        let now_x = Pct(timeline.x(timeline.now_ms()));
        let severity = if self.alarm() { "critical" } else { "warning" };
        html! {
            figure.chart.server data-alarm=[self.alarm().then_some("raised")] {
                (caption(if ahead { "Server connections and the forecast" } else { "Server connections" }, span))
                @if self.has_points() {
                    (skip_link("server", "#skip-runs", "Skip to the next chart"))
                }
                svg.plot height=(Px(HEIGHT)) role="group" aria-describedby="server-summary"
                    aria-label={ "The server's client connections, " (span.per_point()) ", its usable slots"
                        @if ahead { ", and the forecast" } } {
                    (value_axis(top, "conns"))
                    @if ahead {
                        // The past's ticks; "now" is the line between what was read and the
                        // forecast.
                        @for (at, label) in ticks(span).into_iter().filter(|(at, _)| *at < span.to_ms) {
                            @let x = timeline.x(at);
                            line.grid x1=(Pct(x)) x2=(Pct(x)) y1=(Px(TOP)) y2=(Px(axis_y)) {}
                            text.tick x=(Pct(x)) y=(Px(axis_y + 17.0)) text-anchor=(anchor(x)) { (label) }
                        }
                        line.now x1=(now_x) x2=(now_x) y1=(Px(TOP)) y2=(Px(axis_y)) {}
                        text.tick x=(now_x) y=(Px(axis_y + 17.0)) text-anchor="middle" { "now" }
                        text.tick x="100%" y=(Px(axis_y + 17.0)) text-anchor="end" {
                            "+" (timeline.ahead_minutes()) " min"
                        }
                    } @else {
                        (time_axis(span, TOP, axis_y))
                    }
                    @if let Some(usable) = usable {
                        @let y = y_of(usable as f64, top);
                        line.limit x1="0" x2="100%" y1=(Px(y)) y2=(Px(y)) {}
                        text.limit-label x="0" dx="4" y=(Px(y + 15.0)) { "usable " (usable) }
                    }
                    (lines(&[("server", clients)], |at| timeline.x(at), top))
                    @if let (Some(l), Some(usable)) = (line, usable) {
                        @let end_ms = l.from_ms + (l.eta_secs * 1000.0) as i64;
                        @let (x1, x2) = (Pct(timeline.x(l.from_ms)), Pct(timeline.x(end_ms)));
                        @let (y1, y2) = (Px(y_of(l.level, top)), Px(y_of(usable as f64, top)));
                        line class={ "forecast " (severity) } x1=(x1) y1=(y1) x2=(x2) y2=(y2) {}
                        circle class={ "forecast-end " (severity) } cx=(x2) cy=(y2) r="4" {}
                        text class={ "forecast-label " (severity) } x=(x2) dx="-6" y=(Px(y2.0 - 6.0))
                            text-anchor="end" { "exhaustion in " (eta_words(l.eta_secs)) }
                    }
                    @for (i, s) in self.history.iter().enumerate() {
                        @let (x, (left, right)) = (Pct(xs[i]), column(&xs, i));
                        @let clients = s.server_clients.unwrap_or(0);
                        @let values: Vec<String> = std::iter::once(format!("{clients} client connections"))
                            .chain(s.server_usable.map(|u| format!("{u} usable")))
                            .collect();
                        (point(
                            (s.at_ms, span),
                            &values,
                            column_hit(left, right, axis_y),
                            html! {
                                (cursor(x, axis_y))
                                circle.mark.server cx=(x) cy=(Px(y_of(clients as f64, top))) r="4" {}
                            },
                            TipAt { x: xs[i], y: y_of(clients as f64, top), bounds: (TOP, axis_y), dated: span.dated() },
                        ))
                    }
                    @if let (Some(l), Some(usable)) = (line, usable) {
                        @let end_ms = l.from_ms + (l.eta_secs * 1000.0) as i64;
                        @let (from, end) = (timeline.x(l.from_ms), timeline.x(end_ms));
                        @let y = y_of(usable as f64, top);
                        (point(
                            (end_ms, span),
                            &[
                                format!("forecast: all {usable} usable slots in use"),
                                format!("exhaustion in {}", eta_words(l.eta_secs)),
                                format!("{:+.1} per minute, fit {:.2}", l.per_minute, l.fit),
                            ],
                            html! {
                                rect.hit x=(Pct(from)) y=(Px(TOP)) width=(Pct(100.0 - from))
                                    height=(Px(axis_y - TOP)) {}
                            },
                            html! { circle.ring cx=(Pct(end)) cy=(Px(y)) r="8" {} },
                            TipAt { x: end, y, bounds: (TOP, axis_y), dated: false },
                        ))
                    }
                }
                @if self.history.is_empty() {
                    @if ahead && self.forecast.is_none() {
                        p.note { "Not read yet: the server is read every 2 s." }
                    } @else if !ahead {
                        p.note data-empty="server" { "No server reads in the " (span_phrase(span)) "." }
                    }
                }
                p.legend {
                    (line_key("series server", "client connections"))
                    (line_key("limit", "usable slots (max_connections − reserved)"))
                    @if line.is_some() {
                        (line_key(&format!("forecast {severity}"), "forecast"))
                    }
                }
                p.note.forecast-summary id="server-summary" data-alarm=[self.alarm().then_some("raised")] {
                    (self.summary())
                }
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
fn marks_of(task: &TaskRow, span: Span) -> Vec<(i64, RunMark)> {
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
        if span.contains(mark.0) {
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
///
/// The runs are this instance's latest in memory, so the chart keeps to 15 minutes whatever the
/// other charts show; `elsewhere`, the span they show when it is another, is offered as a link
/// to the runs page over it.
fn runs_chart(tasks: &[TaskRow], span: Span, elsewhere: Option<Span>) -> Markup {
    let axis_y = ROW * tasks.len() as f64;
    let height = axis_y + BOTTOM;
    let rows: Vec<_> = tasks
        .iter()
        .enumerate()
        .map(|(i, task)| (ROW * i as f64 + LANE, task, marks_of(task, span)))
        .collect();
    html! {
        figure.chart.runs {
            figcaption {
                "Task runs, last 15 minutes"
                @if let Some(other) = elsewhere {
                    " · " a.runs-link href=(other.runs_link()) { "Runs over the " (span_phrase(other)) }
                }
            }
            // The leases section follows the charts.
            (skip_link("runs", "#leases-title", "Skip past the charts"))
            svg.plot height=(Px(height)) role="group"
                aria-label="Task runs by outcome, and ticks skipped because the previous run was still going" {
                (shapes())
                (time_axis(span, 0.0, axis_y))
                line.axis x1="0" x2="100%" y1=(Px(axis_y)) y2=(Px(axis_y)) {}
                @for (y, task, marks) in &rows {
                    text.task x=(Px(-LEFT_PAD)) y=(Px(y - 14.0)) { (task.task) }
                    line.grid x1="0" x2="100%" y1=(Px(*y)) y2=(Px(*y)) {}
                    @for (at, mark) in marks {
                        use class={ "run " (mark.class()) } href={ "#lw-" (mark.class()) }
                            x=(Pct(span.x(*at))) y=(Px(*y)) {}
                    }
                }
                // After every mark, so no mark covers a tooltip.
                @for (y, task, marks) in &rows {
                    @let xs: Vec<f64> = marks.iter().map(|(at, _)| span.x(*at)).collect();
                    @for (i, (at, mark)) in marks.iter().enumerate() {
                        @let (x, (left, right)) = (xs[i], column(&xs, i));
                        (point(
                            (*at, span),
                            &[task.task.clone(), mark.words().to_owned()],
                            html! {
                                rect.hit x=(Pct(left)) y=(Px(y - 10.0)) width=(Pct(right - left))
                                    height="20" {}
                            },
                            html! { circle.ring cx=(Pct(x)) cy=(Px(*y)) r="8" {} },
                            TipAt { x, y: *y, bounds: (2.0, height - 2.0), dated: false },
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
    use crate::wire::clock_at;

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

    /// The charts of `d` over the last 15 minutes from memory, as the dashboard draws them by
    /// default.
    fn live(d: &Dashboard) -> String {
        markup(
            d,
            Samples::Over(
                Span::recent(ChartRange::Minutes15, d.taken_at_ms),
                &d.history,
            ),
            Zone::Utc,
        )
    }

    fn dashboard() -> Dashboard {
        let sample = |ago_s: i64, active: u32, p95_ms: Option<f64>| Sample {
            at_ms: NOW_MS - ago_s * 1000,
            active,
            idle: 2,
            waiting: 0,
            p95_ms,
            limit: 20,
            budget: None,
            server_clients: None,
            server_usable: None,
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
            targets: vec![],
            tasks: vec![TaskRow {
                task: "leaky_<report>".to_owned(),
                schedule: "every 1 min (at :00)".to_owned(),
                deferred_since_ms: None,
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
            schedule_preview: crate::wire::TimedLine::default(),
            audit: vec![],
            auctions: vec![],
            server: crate::wire::TimedLine::default(),
            server_applies: false,
            forecast: None,
            alerts: crate::wire::Alerts::default(),
        }
    }

    #[test]
    fn charts_are_svg_figures_with_escaped_text() {
        let html = live(&dashboard());
        // On SQLite the server chart is a figure without a plot.
        assert_eq!(html.matches(r#"<figure class="chart "#).count(), 4);
        assert_eq!(html.matches(r#"<svg class="plot" "#).count(), 3);
        assert_eq!(html.matches("</figure>").count(), 4);
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
        let html = live(&dashboard());
        // Two pool samples, one latency sample, one run.
        assert_eq!(
            html.matches(r#"<g class="point" tabindex="0" role="img""#)
                .count(),
            4,
            "{html}"
        );
        assert_eq!(clock_at(NOW_MS - 5_000, 0), "22:13:15");
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
        let plain = live(&dashboard());
        assert!(!plain.contains("leases allowed"), "no governor, no lines");
        let governed = |budget| {
            let mut d = dashboard();
            for s in &mut d.history {
                (s.limit, s.budget) = (4, Some(budget));
            }
            live(&d)
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
        let html = live(&with_skips);
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
        let html = live(&quoted);
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
    fn local_times_leave_the_zone_to_the_header() {
        // Off the browser the local offset is 0: the same clock, without "UTC".
        let d = dashboard();
        let span = Span::recent(ChartRange::Minutes15, d.taken_at_ms);
        let html = markup(&d, Samples::Over(span, &d.history), Zone::Local);
        assert!(
            html.contains(r#"aria-label="22:13:15: 3 in use, 2 idle, 0 waiting""#),
            "{html}"
        );
        assert!(!html.contains(" UTC"), "{html}");
        let week = Span {
            ends_now: false,
            ..Span::recent(ChartRange::Week, NOW_MS)
        };
        assert_eq!(
            week.in_zone(Zone::Local).words(),
            "2023-11-07 22:13:20 to 2023-11-14 22:13:20"
        );
    }

    #[test]
    fn an_empty_latency_chart_says_so() {
        let mut empty = dashboard();
        empty.history.clear();
        assert!(live(&empty).contains("No acquires in the last 15 minutes."));
    }

    /// A PostgreSQL dashboard: the server read every sample, 40 then 60 client connections of
    /// 97 usable, and a forecast read 2 s before the data was taken.
    fn postgres(eta_secs: Option<f64>, alarm: bool) -> Dashboard {
        let mut d = dashboard();
        d.backend = "PostgreSQL".to_owned();
        d.server_applies = true;
        for (s, clients) in d.history.iter_mut().zip([40, 60]) {
            (s.server_clients, s.server_usable) = (Some(clients), Some(97));
        }
        d.forecast = Some(Forecast {
            read_at_ms: NOW_MS - 2_000,
            used: 61,
            usable: 97,
            trend: Some(crate::wire::ForecastTrend {
                level: 61.0,
                per_minute: if eta_secs.is_some() { 25.4 } else { -0.5 },
                fit: if eta_secs.is_some() { 0.93 } else { 0.1 },
                window_secs: 60.0,
                eta_secs,
            }),
            horizon_secs: 300,
            alarm_since_ms: alarm.then_some(NOW_MS - 4_000),
            acting: false,
        });
        d
    }

    /// The server chart's figure in `html`.
    fn server_figure(html: &str) -> &str {
        let start = html
            .find(r#"<figure class="chart server""#)
            .expect("a server chart");
        let len = html[start..].find("</figure>").expect("closed");
        &html[start..start + len]
    }

    #[test]
    fn on_sqlite_the_server_chart_says_the_view_does_not_apply() {
        let html = live(&dashboard());
        let figure = server_figure(&html);
        assert!(figure.contains("The server view does not apply: SQLite is embedded"));
        assert!(!figure.contains("<svg"), "{figure}");
        // Nothing to skip: the latency chart's skip link goes on to the runs chart.
        assert!(!html.contains(r#"id="skip-server""#), "{html}");
        assert!(
            html.contains(r##"<a class="skip" id="skip-latency" href="#skip-runs">"##),
            "{html}"
        );
    }

    #[test]
    fn the_server_chart_draws_connections_the_usable_limit_and_the_forecast_to_it() {
        let html = live(&postgres(Some(85.0), true));
        let figure = server_figure(&html);
        assert!(figure.contains(r#"data-alarm="raised""#), "{figure}");
        assert!(
            figure.contains(r#"<polyline class="series server" points="#),
            "{figure}"
        );
        // The usable limit, labelled, and in the legend.
        assert!(figure.contains(r#"<line class="limit" x1="0" x2="100%""#));
        assert!(figure.contains(">usable 97</text>"), "{figure}");
        assert!(figure.contains("usable slots (max_connections − reserved)</span>"));
        // The axis runs 15 minutes back and 5 ahead (85 s, rounded up, at least 5 minutes):
        // now is three quarters across.
        assert!(
            figure.contains(r#"<line class="now" x1="75.00%" x2="75.00%""#),
            "{figure}"
        );
        assert!(
            figure.contains(r#"text-anchor="end">+5 min</text>"#),
            "{figure}"
        );
        // The forecast runs from the read (2 s ago, at level 61) to the limit 85 s later.
        let (from, to) = (
            100.0 * (15.0 * 60.0 - 2.0) / 1200.0,
            100.0 * (15.0 * 60.0 + 83.0) / 1200.0,
        );
        let line = format!(
            r#"<line class="forecast critical" x1="{from:.2}%" y1="{}" x2="{to:.2}%" y2="{}">"#,
            Px(y_of(61.0, 100.0)).render().into_string(),
            Px(y_of(97.0, 100.0)).render().into_string(),
        );
        assert!(figure.contains(&line), "{line} in {figure}");
        assert!(
            figure.contains(r#"text-anchor="end">exhaustion in ~85 s</text>"#),
            "{figure}"
        );
        assert!(figure.contains(r#"class="forecast-label critical""#));
        // Each read is a point with its time and values; the forecast's end is one too.
        assert!(
            figure.contains(r#"aria-label="22:13:15 UTC: 60 client connections, 97 usable""#),
            "{figure}"
        );
        assert_eq!(clock_at(NOW_MS + 83_000, 0), "22:14:43");
        assert!(
            figure.contains(
                "aria-label=\"22:14:43 UTC: forecast: all 97 usable slots in use, exhaustion in \
                 ~85 s, +25.4 per minute, fit 0.93\""
            ),
            "{figure}"
        );
        assert_eq!(
            figure
                .matches(r#"<g class="point" tabindex="0" role="img""#)
                .count(),
            3
        );
        // In words, for whoever cannot see the chart.
        assert!(
            figure.contains(
                "61 of 97 usable slots in use, rising (+25.4 per minute, fit 0.93): exhaustion \
                 in ~85 s. Alarm raised at <time datetime=\"2023-11-14T22:13:16.000Z\" \
                 title=\"2023-11-14 22:13:16 UTC\">22:13:16 UTC</time>: warning only \
                 (predictive cleanup is off).</p>"
            ),
            "{figure}"
        );
        assert!(figure.contains(r#"aria-describedby="server-summary""#));
        // Its points can be skipped like the others'.
        assert!(html.contains(r##"id="skip-latency" href="#skip-server""##));
        assert!(figure.contains(r##"<a class="skip" id="skip-server" href="#skip-runs">"##));
    }

    #[test]
    fn a_forecast_beyond_the_alarm_is_drawn_as_a_warning_and_looks_as_far_as_it() {
        let html = live(&postgres(Some(400.0), false));
        let figure = server_figure(&html);
        assert!(!figure.contains("data-alarm"), "{figure}");
        assert!(
            figure.contains(r#"<line class="forecast warning""#),
            "{figure}"
        );
        assert!(figure.contains("exhaustion in ~7 min</text>"), "{figure}");
        // 398 s from now, a fifth more: 8 minutes ahead.
        assert!(figure.contains(">+8 min</text>"), "{figure}");
        assert!(
            figure.contains("Beyond the alarm horizon (5 min)."),
            "{figure}"
        );
        assert!(figure.contains(r#"<line class="forecast warning" x1="1" x2="23""#));
    }

    #[test]
    fn without_a_rise_there_is_no_forecast_line() {
        let html = live(&postgres(None, false));
        let figure = server_figure(&html);
        assert!(figure.contains(r#"class="series server""#), "{figure}");
        assert!(!figure.contains(r#"class="forecast"#), "{figure}");
        assert!(!figure.contains("exhaustion in"), "{figure}");
        assert!(
            figure.contains(
                "61 of 97 usable slots in use, no exhaustion forecast (-0.5 per minute, fit \
                 0.10).</p>"
            ),
            "{figure}"
        );
        // Two reads, two points; the horizon sets how far the axis looks.
        assert_eq!(figure.matches(r#"<g class="point""#).count(), 2);
        assert!(figure.contains(">+5 min</text>"), "{figure}");
    }

    #[test]
    fn before_the_first_read_the_server_chart_says_so() {
        let mut d = dashboard();
        d.server_applies = true;
        let html = live(&d);
        let figure = server_figure(&html);
        assert!(figure.contains("<svg"), "{figure}");
        assert!(figure.contains("Not read yet: the server is read every 2 s."));
        assert!(!figure.contains(r#"class="point""#), "{figure}");
        assert!(!html.contains(r#"id="skip-server""#));
    }

    #[test]
    fn the_server_timeline_looks_ahead_five_to_fifteen_minutes() {
        let ahead = |eta: Option<f64>, horizon_secs| {
            let mut f = postgres(eta, false).forecast.unwrap();
            f.horizon_secs = horizon_secs;
            Timeline::of(Span::recent(ChartRange::Minutes15, NOW_MS), Some(&f)).ahead_minutes()
        };
        assert_eq!(ahead(Some(30.0), 300), 5);
        assert_eq!(ahead(Some(400.0), 300), 8);
        assert_eq!(ahead(Some(5000.0), 300), 15);
        assert_eq!(ahead(None, 600), 10);
        assert_eq!(ahead(None, 3600), 15);
        let recent = Span::recent(ChartRange::Minutes15, NOW_MS);
        assert_eq!(Timeline::of(recent, None).ahead_minutes(), 5);
        let t = Timeline::of(recent, None);
        assert_eq!(t.x(NOW_MS - 15 * MINUTE_MS), 0.0);
        assert_eq!(t.x(NOW_MS), 75.0);
        assert_eq!(t.x(NOW_MS + 10 * 60_000), 100.0, "past the end clamps");
    }

    #[test]
    fn an_eta_reads_in_seconds_then_minutes_then_hours() {
        assert_eq!(eta_words(85.4), "~85 s");
        assert_eq!(eta_words(119.4), "~119 s");
        assert_eq!(eta_words(150.0), "~3 min");
        assert_eq!(eta_words(89.0 * 60.0), "~89 min");
        assert_eq!(eta_words(7200.0), "~2 h");
        assert_eq!(eta_words(-3.0), "~0 s");
    }

    #[test]
    fn time_maps_left_to_right() {
        let span = Span::recent(ChartRange::Minutes15, 0);
        assert_eq!(span.x(0), 100.0);
        assert_eq!(span.x(-15 * 60_000), 0.0);
        assert_eq!(span.x(-60 * 60_000), 0.0, "older than the span clamps");
    }

    #[test]
    fn hit_areas_meet_halfway_between_points() {
        let xs = [10.0, 20.0, 40.0];
        assert_eq!(column(&xs, 0), (5.0, 15.0));
        assert_eq!(column(&xs, 1), (15.0, 30.0));
        assert_eq!(column(&xs, 2), (30.0, 50.0));
        assert_eq!(column(&[99.5], 0), (98.5, 100.0));
    }

    fn labels(span: Span) -> Vec<String> {
        ticks(span).into_iter().map(|(_, label)| label).collect()
    }

    #[test]
    fn the_time_axis_reads_in_minutes_hours_or_days_back_from_now() {
        let recent = |range| labels(Span::recent(range, NOW_MS));
        assert_eq!(
            recent(ChartRange::Minutes15),
            ["−15 min", "−10 min", "−5 min", "now"]
        );
        assert_eq!(
            recent(ChartRange::Hour),
            ["−60 min", "−45 min", "−30 min", "−15 min", "now"]
        );
        assert_eq!(
            recent(ChartRange::Day),
            ["−24 h", "−18 h", "−12 h", "−6 h", "now"]
        );
        assert_eq!(recent(ChartRange::Week), ["−6 d", "−4 d", "−2 d", "now"]);
        // A span that ends before now ends at its time (or its date, over days).
        let earlier = Span {
            from_ms: NOW_MS - 3 * HOUR_MS,
            to_ms: NOW_MS,
            ends_now: false,
            bucket_ms: 60_000,
            stored: true,
            zone: Zone::Utc,
        };
        assert_eq!(labels(earlier), ["−3 h", "−2 h", "−1 h", "22:13"]);
        let days = Span {
            from_ms: NOW_MS - 5 * DAY_MS,
            ..earlier
        };
        assert_eq!(labels(days), ["−4 d", "−2 d", "2023-11-14"]);
        // Oldest first, the edges anchored inside the plot.
        let hour = Span::recent(ChartRange::Hour, NOW_MS);
        assert_eq!(anchor(hour.x(ticks(hour)[0].0)), "start");
        assert_eq!(anchor(hour.x(NOW_MS)), "end");
    }

    #[test]
    fn a_span_from_the_database_says_so_and_draws_no_pool_maximum_or_forecast() {
        let mut d = postgres(Some(85.0), true);
        let samples = SpanSamples {
            from_ms: NOW_MS - DAY_MS,
            to_ms: NOW_MS,
            ends_now: true,
            bucket_ms: 480_000,
            samples: vec![Sample {
                at_ms: NOW_MS - 3 * HOUR_MS,
                ..d.history[1]
            }],
        };
        d.history.clear();
        let html = markup(
            &d,
            Samples::Over(Span::stored(&samples), &samples.samples),
            Zone::Utc,
        );
        assert!(
            html.contains(r#"<figcaption>Connections, last 24 hours<span class="source" data-source="database"> · all instances, from the database, busiest sample per 8 min</span></figcaption>"#),
            "{html}"
        );
        assert!(html.contains("busiest sample per 8 min"), "{html}");
        // The point carries its date: the span is not the last few hours of today.
        assert!(!html.contains("max 20"), "the pool's own maximum: {html}");
        assert!(!html.contains(r#"class="forecast"#), "{html}");
        assert!(!html.contains("+5 min"), "{html}");
        assert_eq!(
            server_figure(&html).matches(r#"<g class="point""#).count(),
            1
        );
        // The runs chart stays on the last 15 minutes and offers the runs over the span.
        assert!(
            html.contains(r#"<a class="runs-link" href="/runs?from=2023-11-13T22:13:20.000Z">Runs over the last 24 hours</a>"#),
            "{html}"
        );
    }

    #[test]
    fn an_empty_span_says_so_and_an_unreadable_one_says_why() {
        let d = dashboard();
        let empty = Span {
            from_ms: NOW_MS - 2 * DAY_MS,
            to_ms: NOW_MS - DAY_MS,
            ends_now: false,
            bucket_ms: 480_000,
            stored: true,
            zone: Zone::Utc,
        };
        let html = markup(&d, Samples::Over(empty, &[]), Zone::Utc);
        assert!(
            html.contains(
                "No samples in the span 2023-11-12 22:13:20 UTC to 2023-11-13 22:13:20 UTC."
            ),
            "{html}"
        );
        assert!(html.contains(
            r#"href="/runs?from=2023-11-12T22:13:20.000Z&amp;to=2023-11-13T22:13:20.000Z""#
        ));
        let html = markup(
            &d,
            Samples::Unreadable("The database cannot be read now."),
            Zone::Utc,
        );
        assert!(html.contains(r#"data-banner="samples">The database cannot be read now.</p>"#));
        assert!(
            html.contains(r#"<figure class="chart runs">"#),
            "the runs are in memory"
        );
    }

    #[test]
    fn the_last_hour_draws_its_points_at_their_times_and_says_how_they_are_taken() {
        let d = dashboard();
        let html = markup(
            &d,
            Samples::Over(Span::recent(ChartRange::Hour, NOW_MS), &d.history),
            Zone::Utc,
        );
        assert!(html.contains("Connections, last hour"), "{html}");
        assert!(
            html.contains("this instance, busiest sample per 20 s"),
            "{html}"
        );
        // Ten minutes ago is five sixths across an hour.
        let x = Span::recent(ChartRange::Hour, NOW_MS).x(NOW_MS - 600_000);
        assert!((x - 100.0 * 5.0 / 6.0).abs() < 1e-9);
    }
}
