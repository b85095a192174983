//! Small SVG charts drawn from the history: no chart library, so the WASM stays small and the
//! server renders them too.
//!
//! The charts are written as markup with `maud` (every value escaped) and set as the charts
//! section's inner HTML (see [`crate::markup`] for why).

use maud::{Markup, html};

use crate::wire::{Dashboard, Sample, TaskRow};

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

/// Time axis: "−15 min" … "now", and the value axis's top and zero.
fn axes(max: f64, unit: &str) -> Markup {
    let (axis_y, label_x) = (HEIGHT - BOTTOM, LEFT - 4.0);
    html! {
        @for min in [15, 10, 5, 0] {
            @let x = x_of(-(min as i64) * 60_000, 0);
            line x1=(x) x2=(x) y1=(TOP) y2=(HEIGHT - BOTTOM) class="grid" {}
            text x=(x) y=(HEIGHT - 6.0) text-anchor="middle" class="tick" {
                @if min == 0 { "now" } @else { "−" (min) " min" }
            }
        }
        line x1=(LEFT) x2=(WIDTH - 8.0) y1=(axis_y) y2=(axis_y) class="axis" {}
        text x=(label_x) y=(TOP + 4.0) text-anchor="end" class="tick" { (max) }
        text x=(label_x) y=(axis_y) text-anchor="end" class="tick" { "0" }
        text x=(label_x) y=(TOP + 16.0) text-anchor="end" class="unit" { (unit) }
    }
}

/// A `<polyline>` through `points`.
fn polyline(class: &str, points: &[(i64, f64)], now_ms: i64, max: f64) -> Markup {
    let points: Vec<String> = points
        .iter()
        .map(|(at, v)| format!("{:.1},{:.1}", x_of(*at, now_ms), y_of(*v, max)))
        .collect();
    html! { polyline class={ "series " (class) } points=(points.join(" ")) {} }
}

/// A line's CSS class and how to read its value from a sample.
type Series = (&'static str, fn(&Sample) -> f64);

/// Connections in use, idle and waiting over the last 15 minutes, and the pool's maximum.
fn pool_chart(history: &[Sample], now_ms: i64, max: u32) -> Markup {
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
    let max_y = y_of(f64::from(max), top);
    html! {
        figure.chart {
            figcaption { "Connections, last 15 minutes" }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
                aria-label="Connections in use, idle and waiting over the last 15 minutes" {
                (axes(top, "conns"))
                line x1=(LEFT) x2=(WIDTH - 8.0) y1=(max_y) y2=(max_y) class="limit" {}
                text x=(WIDTH - 10.0) y=(max_y - 3.0) text-anchor="end" class="tick" { "max " (max) }
                @for (class, value) in series {
                    @let points: Vec<(i64, f64)> = history.iter().map(|s| (s.at_ms, value(s))).collect();
                    (polyline(class, &points, now_ms, top))
                }
            }
            p.legend {
                span.key.active { "in use" } span.key.idle { "idle" } span.key.waiting { "waiting" }
            }
        }
    }
}

/// Acquire latency (p95 per 5-second interval) over the last 15 minutes.
fn latency_chart(history: &[Sample], now_ms: i64) -> Markup {
    let points: Vec<(i64, f64)> = history
        .iter()
        .filter_map(|s| s.p95_ms.map(|v| (s.at_ms, v)))
        .collect();
    let top = nice_max(points.iter().map(|(_, v)| *v).fold(1.0, f64::max));
    html! {
        figure.chart {
            figcaption { "Acquire latency p95, last 15 minutes" }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
                aria-label="Acquire latency 95th percentile per 5-second interval" {
                (axes(top, "ms"))
                (polyline("latency", &points, now_ms, top))
                @for (at, v) in &points {
                    circle cx=(x_of(*at, now_ms)) cy=(y_of(*v, top)) r="2.5" class="series latency" {
                        title { (format!("{v:.1}")) " ms" }
                    }
                }
            }
            @if points.is_empty() {
                p.note { "No acquires in the last 15 minutes." }
            }
        }
    }
}

/// Each task's runs over the last 15 minutes, one row per task, coloured (and titled) by outcome.
fn runs_chart(tasks: &[TaskRow], now_ms: i64) -> Markup {
    let row_height = 24.0;
    let height = row_height * tasks.len() as f64 + BOTTOM;
    html! {
        figure.chart {
            figcaption { "Task runs, last 15 minutes" }
            svg viewBox={ "0 0 " (WIDTH) " " (height) } role="img"
                aria-label="Task runs by outcome over the last 15 minutes" {
                @for (i, task) in tasks.iter().enumerate() {
                    @let y = row_height * i as f64 + row_height / 2.0;
                    text x="4" y=(y + 4.0) class="tick" { (task.task.replace('_', " ")) }
                    line x1=(LEFT + 90.0) x2=(WIDTH - 8.0) y1=(y) y2=(y) class="grid" {}
                    @for run in task.runs.iter().filter(|r| (now_ms - r.at_ms) as f64 <= SPAN_MS) {
                        circle cx=(x_of(run.at_ms, now_ms)) cy=(y) r="5" class={ "run " (run.outcome) } {
                            title { (task.task) ": " (run.outcome) }
                        }
                    }
                }
                text x=(x_of(-15 * 60_000, 0)) y=(height - 6.0) text-anchor="middle" class="tick" { "−15 min" }
                text x=(x_of(0, 0)) y=(height - 6.0) text-anchor="middle" class="tick" { "now" }
            }
            p.legend {
                span.key.succeeded { "succeeded" } span.key.failed { "failed" }
                span.key.skipped { "skipped" } span.key.cancelled { "cancelled" }
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
    }

    fn dashboard() -> Dashboard {
        let now_ms = 1_700_000_000_000;
        let sample = |ago_s: i64, active: u32, p95_ms: Option<f64>| Sample {
            at_ms: now_ms - ago_s * 1000,
            active,
            idle: 2,
            waiting: 0,
            p95_ms,
            limit: 20,
            budget: None,
        };
        Dashboard {
            taken_at_ms: now_ms,
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
                    at_ms: now_ms - 30_000,
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
        assert_eq!(html.matches(r#"<figure class="chart">"#).count(), 3);
        assert_eq!(html.matches("<svg ").count(), 3);
        assert_eq!(html.matches("</svg>").count(), 3);
        assert_eq!(html.matches("</figure>").count(), 3);
        assert!(
            html.contains(r#"<svg viewBox="0 0 600 160" role="img""#),
            "{html}"
        );
        assert!(
            html.contains(r#"<svg viewBox="0 0 600 46" role="img""#),
            "{html}"
        );
        assert!(html.contains(r#"class="tick">max 20</text>"#), "{html}");
        assert!(
            html.contains(r#"<polyline class="series active" points="#),
            "{html}"
        );
        assert!(html.contains("<title>1.2 ms</title>"), "{html}");
        assert!(
            html.contains(r#"class="run failed"><title>leaky_&lt;report&gt;: failed</title>"#),
            "{html}"
        );
        assert!(html.contains(">leaky &lt;report&gt;</text>"), "{html}");
        assert!(!html.contains("No acquires"), "{html}");
    }

    #[test]
    fn an_empty_latency_chart_says_so() {
        let mut empty = dashboard();
        empty.history.clear();
        assert!(markup(&empty).contains("No acquires in the last 15 minutes."));
    }

    #[test]
    fn time_maps_left_to_right() {
        assert_eq!(x_of(0, 0), WIDTH - 8.0);
        assert_eq!(x_of(-15 * 60_000, 0), LEFT);
        assert_eq!(x_of(-60 * 60_000, 0), LEFT, "older than the span clamps");
    }
}
