//! Small SVG charts drawn from the history: no chart library, so the WASM stays small and the
//! server renders them too.

use leptos::prelude::*;

use crate::wire::{Sample, TaskRow};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;
const SPAN_MS: f64 = 15.0 * 60.0 * 1000.0;

/// x for a time within the last 15 minutes before `now_ms`.
fn x_of(at_ms: i64, now_ms: i64) -> f64 {
    let age = (now_ms - at_ms) as f64;
    LEFT + (WIDTH - LEFT - 8.0) * (1.0 - (age / SPAN_MS).clamp(0.0, 1.0))
}

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

/// Time axis: "−15 min" … "now", and the value axis's top and zero.
fn axes(max: f64, unit: &'static str) -> impl IntoView {
    let ticks = [15, 10, 5, 0].map(|min| {
        let x = x_of(-(min as i64) * 60_000, 0);
        let label = if min == 0 {
            "now".to_owned()
        } else {
            format!("−{min} min")
        };
        view! {
            <line x1=x x2=x y1=TOP y2=HEIGHT - BOTTOM class="grid"></line>
            <text x=x y=HEIGHT - 6.0 text-anchor="middle" class="tick">{label}</text>
        }
    });
    view! {
        {ticks.into_iter().collect_view()}
        <line x1=LEFT x2=WIDTH - 8.0 y1=HEIGHT - BOTTOM y2=HEIGHT - BOTTOM class="axis"></line>
        <text x=LEFT - 4.0 y=TOP + 4.0 text-anchor="end" class="tick">{format!("{max}")}</text>
        <text x=LEFT - 4.0 y=HEIGHT - BOTTOM text-anchor="end" class="tick">"0"</text>
        <text x=LEFT - 4.0 y=TOP + 16.0 text-anchor="end" class="unit">{unit}</text>
    }
}

fn polyline(points: &[(i64, f64)], now_ms: i64, max: f64) -> String {
    points
        .iter()
        .map(|(at, v)| format!("{:.1},{:.1}", x_of(*at, now_ms), y_of(*v, max)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A line's CSS class and how to read its value from a sample.
type Series = (&'static str, fn(&Sample) -> f64);

/// Connections in use, idle and waiting over the last 15 minutes.
#[component]
pub fn PoolChart(
    /// Samples, oldest first.
    history: Vec<Sample>,
    /// The right edge ("now"), in Unix milliseconds.
    now_ms: i64,
    /// The pool's maximum, drawn as a line.
    max: u32,
) -> impl IntoView {
    let peak = history
        .iter()
        .map(|s| (s.active + s.idle).max(s.waiting))
        .max()
        .unwrap_or(0)
        .max(max);
    let top = nice_max(f64::from(peak));
    let series: [Series; 3] = [
        ("active", |s| f64::from(s.active)),
        ("idle", |s| f64::from(s.idle)),
        ("waiting", |s| f64::from(s.waiting)),
    ];
    let lines = series.map(|(class, value)| {
        let points: Vec<(i64, f64)> = history.iter().map(|s| (s.at_ms, value(s))).collect();
        view! { <polyline class=format!("series {class}") points=polyline(&points, now_ms, top)></polyline> }
    });
    let max_y = y_of(f64::from(max), top);
    view! {
        <figure class="chart">
            <figcaption>"Connections, last 15 minutes"</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label="Connections in use, idle and waiting over the last 15 minutes">
                {axes(top, "conns")}
                <line x1=LEFT x2=WIDTH - 8.0 y1=max_y y2=max_y class="limit"></line>
                <text x=WIDTH - 10.0 y=max_y - 3.0 text-anchor="end" class="tick">{format!("max {max}")}</text>
                {lines.into_iter().collect_view()}
            </svg>
            <p class="legend">
                <span class="key active">"in use"</span>
                <span class="key idle">"idle"</span>
                <span class="key waiting">"waiting"</span>
            </p>
        </figure>
    }
}

/// Acquire latency (p95 per 5-second interval) over the last 15 minutes.
#[component]
pub fn LatencyChart(
    /// Samples, oldest first.
    history: Vec<Sample>,
    /// The right edge ("now"), in Unix milliseconds.
    now_ms: i64,
) -> impl IntoView {
    let points: Vec<(i64, f64)> = history
        .iter()
        .filter_map(|s| s.p95_ms.map(|v| (s.at_ms, v)))
        .collect();
    let top = nice_max(points.iter().map(|(_, v)| *v).fold(1.0, f64::max));
    let dots = points
        .iter()
        .map(|(at, v)| {
            view! {
                <circle cx=x_of(*at, now_ms) cy=y_of(*v, top) r="2.5" class="series latency">
                    <title>{format!("{v:.1} ms")}</title>
                </circle>
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>"Acquire latency p95, last 15 minutes"</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label="Acquire latency 95th percentile per 5-second interval">
                {axes(top, "ms")}
                <polyline class="series latency" points=polyline(&points, now_ms, top)></polyline>
                {dots}
            </svg>
            {points.is_empty().then(|| view! { <p class="note">"No acquires in the last 15 minutes."</p> })}
        </figure>
    }
}

/// Each task's runs over the last 15 minutes, one row per task, coloured (and titled) by outcome.
#[component]
pub fn RunsChart(
    /// The tasks with their recent runs.
    tasks: Vec<TaskRow>,
    /// The right edge ("now"), in Unix milliseconds.
    now_ms: i64,
) -> impl IntoView {
    let row_height = 24.0;
    let height = row_height * tasks.len() as f64 + BOTTOM;
    let rows = tasks
        .iter()
        .enumerate()
        .map(|(i, task)| {
            let y = row_height * i as f64 + row_height / 2.0;
            let dots = task
                .runs
                .iter()
                .filter(|r| (now_ms - r.at_ms) as f64 <= SPAN_MS)
                .map(|r| {
                    view! {
                        <circle cx=x_of(r.at_ms, now_ms) cy=y r="5" class=format!("run {}", r.outcome)>
                            <title>{format!("{}: {}", task.task, r.outcome)}</title>
                        </circle>
                    }
                })
                .collect_view();
            view! {
                <text x="4" y=y + 4.0 class="tick">{task.task.replace('_', " ")}</text>
                <line x1=LEFT + 90.0 x2=WIDTH - 8.0 y1=y y2=y class="grid"></line>
                {dots}
            }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>"Task runs, last 15 minutes"</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {height}") role="img" aria-label="Task runs by outcome over the last 15 minutes">
                {rows}
                <text x=x_of(-15 * 60_000, 0) y=height - 6.0 text-anchor="middle" class="tick">"−15 min"</text>
                <text x=x_of(0, 0) y=height - 6.0 text-anchor="middle" class="tick">"now"</text>
            </svg>
            <p class="legend">
                <span class="key succeeded">"succeeded"</span>
                <span class="key failed">"failed"</span>
                <span class="key skipped">"skipped"</span>
                <span class="key cancelled">"cancelled"</span>
            </p>
        </figure>
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
    }

    #[test]
    fn time_maps_left_to_right() {
        assert_eq!(x_of(0, 0), WIDTH - 8.0);
        assert_eq!(x_of(-15 * 60_000, 0), LEFT);
        assert_eq!(x_of(-60 * 60_000, 0), LEFT, "older than the span clamps");
    }
}
