//! `/metrics` in the Prometheus text format (0.0.4), from in-process state only: a scrape
//! never takes a database connection.

use std::{
    fmt::{Display, Write as _},
    sync::Arc,
};

use aide::transform::TransformOperation;
use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use leasewatch_engine::{
    Engine,
    governor::{Budget, GovernorView},
    histogram::{BOUNDS_SECS, HistogramReading},
    lease::PoolSnapshot,
    targets::TargetStatus,
    tasks::TaskView,
};
use leasewatch_types::{RunOutcome, Severity};

use crate::openapi::authenticated;

#[cfg(test)]
mod deploy_files;

pub async fn scrape(State(engine): State<Arc<Engine>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&engine),
    )
        .into_response()
}

pub fn scrape_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    authenticated(op)
        .summary("Prometheus text format")
        .response_with::<200, String, _>(|r| r.description("The scrape"))
}

/// The text being written: each family is started once with its name, and its samples reuse
/// that name, so HELP, TYPE and samples cannot disagree.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) -> Family<'_> {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        Family {
            out: &mut self.0,
            name,
        }
    }

    fn gauge(&mut self, name: &'static str, help: &str) -> Family<'_> {
        self.family(name, "gauge", help)
    }

    fn counter(&mut self, name: &'static str, help: &str) -> Family<'_> {
        self.family(name, "counter", help)
    }
}

/// One metric family's samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    /// A sample of the family itself.
    fn sample(&mut self, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        self.suffixed("", labels, value)
    }

    /// A sample of a series derived from the family's name (a histogram's `_bucket`, `_sum`,
    /// `_count`).
    fn suffixed(
        &mut self,
        suffix: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> &mut Self {
        let _ = write!(self.out, "{}{suffix}", self.name);
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

    /// One sample per database, labelled with its name (`target`).
    fn per_target<'t, V: Display>(
        &mut self,
        samples: impl IntoIterator<Item = (&'t str, V)>,
    ) -> &mut Self {
        for (target, value) in samples {
            self.sample(&[("target", target)], value);
        }
        self
    }

    /// One sample per task, labelled with the task's name (and whatever `more` adds).
    fn per_task<V: Display>(
        &mut self,
        tasks: &[TaskView],
        samples: impl Fn(&TaskView) -> Vec<(Option<(&'static str, &'static str)>, V)>,
    ) -> &mut Self {
        for task in tasks {
            for (more, value) in samples(task) {
                match more {
                    Some(label) => self.sample(&[("task", &task.name), label], value),
                    None => self.sample(&[("task", &task.name)], value),
                };
            }
        }
        self
    }
}

/// One database's pool, leases and governor as a scrape reads them.
struct TargetPool {
    /// The `target` label: `primary`, `replica-1`, ...
    name: String,
    pool: PoolSnapshot,
    governor: GovernorView,
    latency: HistogramReading,
}

/// Every family, in the order operators read them: the pool, leases, budget and acquires of
/// each database (labelled `target`), the databases' rotation, the server, the scheduler, then
/// per task.
pub fn render(engine: &Engine) -> String {
    let mut out = Exposition(String::with_capacity(8 * 1024));
    let targets: Vec<TargetPool> = engine
        .targets()
        .all()
        .map(|(target, leases)| TargetPool {
            name: target.to_string(),
            pool: leases.snapshot(),
            governor: leases.governor().view(),
            latency: leases.acquire_latency(),
        })
        .collect();
    let each =
        |value: fn(&TargetPool) -> u64| targets.iter().map(move |t| (t.name.as_str(), value(t)));

    let mut connections = out.gauge(
        "leasewatch_pool_connections",
        "Open pool connections by database (target: primary, replica-1, ...) and state.",
    );
    for t in &targets {
        connections
            .sample(&[("target", &t.name), ("state", "idle")], t.pool.idle)
            .sample(&[("target", &t.name), ("state", "active")], t.pool.active);
    }
    out.gauge(
        "leasewatch_pool_max_connections",
        "The database's pool maximum (DB_MAX_CONNECTIONS).",
    )
    .per_target(each(|t| t.pool.max.into()));
    out.gauge(
        "leasewatch_pool_min_connections",
        "The database's pool minimum (DB_MIN_CONNECTIONS).",
    )
    .per_target(each(|t| t.pool.min.into()));
    out.gauge(
        "leasewatch_pool_pending_acquires",
        "Acquires waiting for a connection of the database's pool.",
    )
    .per_target(each(|t| t.pool.waiting.into()));
    out.gauge(
        "leasewatch_leases_held",
        "Leases held by background tasks on the database.",
    )
    .per_target(each(|t| t.pool.leases.into()));
    out.gauge(
        "leasewatch_leases_stale",
        "Leases on the database held longer than the lease timeout.",
    )
    .per_target(each(|t| t.pool.stale.into()));
    out.counter(
        "leasewatch_leases_issued_total",
        "Leases given out on the database.",
    )
    .per_target(each(|t| t.pool.issued));
    out.counter(
        "leasewatch_leases_released_total",
        "Leases on the database given back by their holders.",
    )
    .per_target(each(|t| t.pool.released));
    out.counter(
        "leasewatch_leases_revoked_total",
        "Leases on the database taken back by cleanup.",
    )
    .per_target(each(|t| t.pool.revoked));
    out.counter(
        "leasewatch_acquire_timeouts_total",
        "Acquires on the database that gave up after DB_CONNECTION_TIMEOUT.",
    )
    .per_target(each(|t| t.pool.acquire_timeouts));

    out.gauge(
        "leasewatch_budget_limit",
        "Leases this instance may hold at once on the database now (its governor's limit).",
    )
    .per_target(each(|t| t.governor.limit.into()));
    out.gauge(
        "leasewatch_budget_share",
        "This instance's share of the database's connection budget (DB_MAX_CONNECTIONS \
         until its server is read, and without the governor).",
    )
    .per_target(each(|t| t.governor.share.into()));
    out.gauge(
        "leasewatch_budget_queued",
        "Acquires waiting at the database's lease limit.",
    )
    .per_target(each(|t| t.governor.queued.into()));
    // Only the databases whose server the governor has read.
    let read: Vec<(&str, &Budget)> = targets
        .iter()
        .filter_map(|t| Some((t.name.as_str(), t.governor.budget.as_ref()?)))
        .collect();
    if !read.is_empty() {
        let budget = |value: fn(&Budget) -> i64| read.iter().map(move |(t, b)| (*t, value(b)));
        // Not `_total`: a gauge, and Prometheus keeps that suffix for counters.
        out.gauge(
            "leasewatch_budget_connections",
            "Task connections the database's server can give all instances together: usable \
             slots less other clients, Leasewatch's control sessions and the headroom.",
        )
        .per_target(budget(|b| b.total.into()));
        out.gauge(
            "leasewatch_budget_instances",
            "Live Leasewatch instances on the database's server.",
        )
        .per_target(budget(|b| b.instances.into()));
        out.gauge(
            "leasewatch_budget_foreign_connections",
            "Client sessions on the database's server that are not Leasewatch's.",
        )
        .per_target(budget(|b| b.foreign));
        out.gauge(
            "leasewatch_budget_headroom",
            "Slots of the database's server left to the web app (BUDGET_HEADROOM).",
        )
        .per_target(budget(|b| b.headroom));
    }

    let mut histogram = out.family(
        "leasewatch_acquire_duration_seconds",
        "histogram",
        "Time to acquire a connection of the database's pool.",
    );
    for t in &targets {
        let target = ("target", t.name.as_str());
        let mut cumulative = 0;
        for (bound, count) in BOUNDS_SECS.iter().zip(t.latency.counts) {
            cumulative += count;
            histogram.suffixed("_bucket", &[target, ("le", &bound.to_string())], cumulative);
        }
        histogram
            .suffixed("_bucket", &[target, ("le", "+Inf")], t.latency.count())
            .suffixed("_sum", &[target], t.latency.sum_micros as f64 / 1e6)
            .suffixed("_count", &[target], t.latency.count());
    }

    let health: Vec<(String, TargetStatus)> = engine
        .targets()
        .status()
        .into_iter()
        .map(|t| (t.target.to_string(), t))
        .collect();
    out.gauge(
        "leasewatch_target_in_rotation",
        "1 while the database is in rotation (its 1-s probe answers, a replica's within \
         REPLICA_MAX_LAG), 0 while it is out. Writes wait for the primary whatever this says; \
         read work goes to the replicas at 1.",
    )
    .per_target(
        health
            .iter()
            .map(|(name, t)| (name.as_str(), u8::from(t.in_rotation))),
    );
    let lags: Vec<(&str, f64)> = health
        .iter()
        .filter_map(|(name, t)| Some((name.as_str(), t.lag_secs?)))
        .collect();
    if !lags.is_empty() {
        out.gauge(
            "leasewatch_target_replay_lag_seconds",
            "How far the database's replay trails what it has received, as last probed (0 on \
             the primary; absent until a probe answers).",
        )
        .per_target(lags);
    }
    out.counter(
        "leasewatch_target_bans_total",
        "Times the database was taken out of rotation (a failed probe, a failed connection, or \
         replay lag beyond REPLICA_MAX_LAG), since start.",
    )
    .per_target(health.iter().map(|(name, t)| (name.as_str(), t.bans)));

    if let Some(forecast) = engine.forecast() {
        out.gauge(
            "leasewatch_server_connections",
            "Client connections on the database server, all clients, as last read.",
        )
        .sample(&[], forecast.used);
        out.gauge(
            "leasewatch_server_usable_connections",
            "Slots ordinary roles can use: max_connections less the reserved ones.",
        )
        .sample(&[], forecast.usable);
        out.gauge(
            "leasewatch_server_exhaustion_predicted",
            "1 while the forecast predicts the usable slots run out within PREDICT_HORIZON.",
        )
        .sample(&[], u8::from(forecast.alarm.is_some()));
        if let Some(trend) = &forecast.trend {
            out.gauge(
                "leasewatch_server_connections_trend_per_minute",
                "Growth of the server's client connections (Theil-Sen slope over the reads).",
            )
            .sample(&[], trend.per_minute);
            if let Some(eta) = trend.eta_secs {
                out.gauge(
                    "leasewatch_server_exhaustion_eta_seconds",
                    "Seconds until the rising trend reaches the usable slots (absent when the \
                     connections do not rise steadily).",
                )
                .sample(&[], eta);
            }
        }
    }

    out.gauge(
        "leasewatch_scheduler_running",
        "1 while the scheduler runs.",
    )
    .sample(&[], u8::from(engine.tasks().is_running()));
    out.gauge(
        "leasewatch_audit_queued",
        "Audit entries waiting for the database (written when it is back).",
    )
    .sample(&[], engine.audit().queued());

    let tasks = engine.tasks().tasks();
    out.counter("leasewatch_task_runs_total", "Finished runs by outcome.")
        .per_task(&tasks, |t| {
            vec![
                (
                    Some(("outcome", RunOutcome::Succeeded.as_str())),
                    t.counts.succeeded,
                ),
                (
                    Some(("outcome", RunOutcome::Failed.as_str())),
                    t.counts.failed,
                ),
                (
                    Some(("outcome", RunOutcome::Skipped.as_str())),
                    t.counts.elsewhere_skips + t.counts.over_limit_skips,
                ),
                (
                    Some(("outcome", RunOutcome::Cancelled.as_str())),
                    t.counts.cancelled,
                ),
            ]
        });
    out.counter(
        "leasewatch_task_failures_total",
        "Runs that failed after their retries.",
    )
    .per_task(&tasks, |t| vec![(None, t.counts.failed)]);
    out.counter(
        "leasewatch_task_retries_total",
        "Retries after retryable failures.",
    )
    .per_task(&tasks, |t| vec![(None, t.counts.retries)]);
    out.counter(
        "leasewatch_task_skips_total",
        "Runs not made: the previous run was still going (overlap), another instance held \
         the task (elsewhere), or the lease limit stayed full (over_limit).",
    )
    .per_task(&tasks, |t| {
        vec![
            (Some(("reason", "overlap")), t.counts.overlap_skips),
            (Some(("reason", "elsewhere")), t.counts.elsewhere_skips),
            (Some(("reason", "over_limit")), t.counts.over_limit_skips),
        ]
    });
    out.counter(
        "leasewatch_task_deferred_total",
        "Scheduled runs that waited because exhaustion of the server was predicted.",
    )
    .per_task(&tasks, |t| vec![(None, t.counts.deferred)]);
    out.gauge(
        "leasewatch_task_last_success_timestamp_seconds",
        "When a run last succeeded (Unix time; 0 if never).",
    )
    .per_task(&tasks, |t| {
        let at = t
            .last_success_at
            .map_or(0.0, |at| at.timestamp_millis() as f64 / 1000.0);
        vec![(None, at)]
    });

    let alerts = engine.alerts();
    let mut firing = out.gauge(
        "leasewatch_alerts_firing",
        "Alerts firing now (warning and critical recommendations), by severity.",
    );
    for severity in [Severity::Warning, Severity::Critical] {
        let count = alerts
            .firing
            .iter()
            .filter(|a| a.severity == severity)
            .count();
        firing.sample(&[("severity", severity.as_str())], count);
    }
    let mut notifications = out.counter(
        "leasewatch_alert_notifications_total",
        "Alert notifications by receiver and outcome: delivered, failed (an attempt that \
         failed; it is retried), superseded (replaced by a newer one before delivery), dropped \
         (the queue was full).",
    );
    for r in &alerts.receivers {
        for (outcome, count) in [
            ("delivered", r.delivered),
            ("failed", r.failed_attempts),
            ("superseded", r.superseded),
            ("dropped", r.dropped),
        ] {
            notifications.sample(&[("receiver", &r.name), ("outcome", outcome)], count);
        }
    }
    out.gauge(
        "leasewatch_alert_notifications_queued",
        "Alert notifications waiting for delivery.",
    )
    .sample(&[], alerts.queued);

    let history = engine.history().counts();
    let mut written = out.counter(
        "leasewatch_history_written_total",
        "Rows of history written to the database: finished runs and pool samples.",
    );
    written.sample(&[("kind", "run")], history.runs_written);
    written.sample(&[("kind", "sample")], history.samples_written);
    let mut dropped = out.counter(
        "leasewatch_history_dropped_total",
        "History not written: samples the database could not take, runs past the queue's \
         bound (the database unreachable for very long).",
    );
    dropped.sample(&[("kind", "run")], history.runs_dropped);
    dropped.sample(&[("kind", "sample")], history.samples_dropped);
    out.gauge(
        "leasewatch_history_runs_queued",
        "Finished runs waiting to be written to the database (they wait through an outage).",
    )
    .sample(&[], history.runs_queued);
    out.0
}
