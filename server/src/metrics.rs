//! `/metrics` in the Prometheus text format, from in-process state only.

use std::fmt::Write;

use axum::{extract::State, http::header, response::IntoResponse};
use leasewatch_engine::{Engine, histogram::BOUNDS_SECS, tasks::TaskView};

use crate::api::ApiState;

/// Serves the scrape.
pub async fn scrape(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state.engine),
    )
}

/// One metric family: its HELP and TYPE lines, then samples.
struct Family<'a> {
    out: &'a mut String,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Self { out }
    }

    fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) -> &mut Self {
        let _ = write!(self.out, "{name}");
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            let _ = write!(self.out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

/// The whole scrape.
pub fn render(engine: &Engine) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let pool = engine.leases().snapshot();

    Family::new(
        &mut out,
        "leasewatch_pool_connections",
        "gauge",
        "Open pool connections by state.",
    )
    .sample(
        "leasewatch_pool_connections",
        &[("state", "idle")],
        pool.idle,
    )
    .sample(
        "leasewatch_pool_connections",
        &[("state", "active")],
        pool.active,
    );
    Family::new(
        &mut out,
        "leasewatch_pool_max_connections",
        "gauge",
        "The pool's configured maximum (DB_MAX_CONNECTIONS).",
    )
    .sample("leasewatch_pool_max_connections", &[], pool.max);
    Family::new(
        &mut out,
        "leasewatch_pool_min_connections",
        "gauge",
        "The pool's configured minimum (DB_MIN_CONNECTIONS).",
    )
    .sample("leasewatch_pool_min_connections", &[], pool.min);
    Family::new(
        &mut out,
        "leasewatch_pool_pending_acquires",
        "gauge",
        "Acquires waiting for a connection.",
    )
    .sample("leasewatch_pool_pending_acquires", &[], pool.waiting);
    Family::new(
        &mut out,
        "leasewatch_leases_held",
        "gauge",
        "Leases held by background tasks.",
    )
    .sample("leasewatch_leases_held", &[], pool.leases);
    Family::new(
        &mut out,
        "leasewatch_leases_stale",
        "gauge",
        "Leases held longer than the lease timeout.",
    )
    .sample("leasewatch_leases_stale", &[], pool.stale);
    Family::new(
        &mut out,
        "leasewatch_leases_issued_total",
        "counter",
        "Leases given out.",
    )
    .sample("leasewatch_leases_issued_total", &[], pool.issued);
    Family::new(
        &mut out,
        "leasewatch_leases_released_total",
        "counter",
        "Leases given back by their holders.",
    )
    .sample("leasewatch_leases_released_total", &[], pool.released);
    Family::new(
        &mut out,
        "leasewatch_leases_revoked_total",
        "counter",
        "Leases taken back by cleanup.",
    )
    .sample("leasewatch_leases_revoked_total", &[], pool.revoked);
    Family::new(
        &mut out,
        "leasewatch_acquire_timeouts_total",
        "counter",
        "Acquires that gave up after DB_CONNECTION_TIMEOUT.",
    )
    .sample(
        "leasewatch_acquire_timeouts_total",
        &[],
        pool.acquire_timeouts,
    );

    let latency = engine.leases().acquire_latency();
    let mut family = Family::new(
        &mut out,
        "leasewatch_acquire_duration_seconds",
        "histogram",
        "Time to acquire a connection.",
    );
    let mut cumulative = 0;
    for (bound, count) in BOUNDS_SECS.iter().zip(latency.counts) {
        cumulative += count;
        family.sample(
            "leasewatch_acquire_duration_seconds_bucket",
            &[("le", &bound.to_string())],
            cumulative,
        );
    }
    family
        .sample(
            "leasewatch_acquire_duration_seconds_bucket",
            &[("le", "+Inf")],
            latency.count(),
        )
        .sample(
            "leasewatch_acquire_duration_seconds_sum",
            &[],
            latency.sum_micros as f64 / 1e6,
        )
        .sample(
            "leasewatch_acquire_duration_seconds_count",
            &[],
            latency.count(),
        );

    Family::new(
        &mut out,
        "leasewatch_scheduler_running",
        "gauge",
        "1 while the scheduler runs.",
    )
    .sample(
        "leasewatch_scheduler_running",
        &[],
        u8::from(engine.tasks().is_running()),
    );

    Family::new(
        &mut out,
        "leasewatch_audit_queued",
        "gauge",
        "Audit entries waiting for the database (written when it is back).",
    )
    .sample("leasewatch_audit_queued", &[], engine.audit().queued());

    let tasks = engine.tasks().tasks();
    per_task(
        &mut out,
        &tasks,
        "leasewatch_task_runs_total",
        "counter",
        "Finished runs by outcome.",
        |t, f| {
            for (outcome, n) in [
                ("succeeded", t.counts.succeeded),
                ("failed", t.counts.failed),
                ("skipped", t.counts.elsewhere_skips),
                ("cancelled", t.counts.cancelled),
            ] {
                f.sample(
                    "leasewatch_task_runs_total",
                    &[("task", &t.name), ("outcome", outcome)],
                    n,
                );
            }
        },
    );
    per_task(
        &mut out,
        &tasks,
        "leasewatch_task_failures_total",
        "counter",
        "Runs that failed after their retries.",
        |t, f| {
            f.sample(
                "leasewatch_task_failures_total",
                &[("task", &t.name)],
                t.counts.failed,
            );
        },
    );
    per_task(
        &mut out,
        &tasks,
        "leasewatch_task_retries_total",
        "counter",
        "Retries after retryable failures.",
        |t, f| {
            f.sample(
                "leasewatch_task_retries_total",
                &[("task", &t.name)],
                t.counts.retries,
            );
        },
    );
    per_task(
        &mut out,
        &tasks,
        "leasewatch_task_skips_total",
        "counter",
        "Runs not made: the previous run was still going (overlap) or another instance held the task (elsewhere).",
        |t, f| {
            f.sample(
                "leasewatch_task_skips_total",
                &[("task", &t.name), ("reason", "overlap")],
                t.counts.overlap_skips,
            )
            .sample(
                "leasewatch_task_skips_total",
                &[("task", &t.name), ("reason", "elsewhere")],
                t.counts.elsewhere_skips,
            );
        },
    );
    per_task(
        &mut out,
        &tasks,
        "leasewatch_task_last_success_timestamp_seconds",
        "gauge",
        "When a run last succeeded (Unix time; 0 if never).",
        |t, f| {
            let at = t
                .last_success_at
                .map_or(0.0, |at| at.timestamp_millis() as f64 / 1000.0);
            f.sample(
                "leasewatch_task_last_success_timestamp_seconds",
                &[("task", &t.name)],
                at,
            );
        },
    );
    out
}

fn per_task(
    out: &mut String,
    tasks: &[TaskView],
    name: &str,
    kind: &str,
    help: &str,
    mut samples: impl FnMut(&TaskView, &mut Family<'_>),
) {
    let mut family = Family::new(out, name, kind, help);
    for task in tasks {
        samples(task, &mut family);
    }
}
