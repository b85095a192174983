//! What each subcommand reads from the server's JSON, and its tables.
//!
//! The answers are read into the engine's own types (a rename is a compile error here, not a
//! silent blank column), but only the parts shown: the status' other sections (governor,
//! forecast, alerts, ...) are not read, so a server that grows them still answers this CLI.

use chrono::{DateTime, Utc};
use leasewatch_engine::{
    LeaseInfo, PoolSnapshot, TaskView, control::Details, history::StoredRun,
    recommend::Recommendation, targets::TargetStatus, tasks::Trigger,
};
use leasewatch_types::{ActionName, Severity};
use serde::Deserialize;

use super::table::{Column, Table, clock, duration_ms, relative, stamp};
use crate::dto::Scheduler;

/// The parts of `GET /api/admin/background-jobs/status` the CLI shows.
#[derive(Debug, Deserialize)]
pub struct Status {
    /// Whether the scheduler is running.
    pub scheduler: Scheduler,
    /// The tasks.
    pub tasks: Vec<TaskView>,
    /// The pool now (its `taken_at` is the server's "now" for relative times).
    pub pool: PoolSnapshot,
    /// The leases held.
    pub leases: Vec<LeaseInfo>,
    /// The recommendations, worst first.
    pub recommendations: Vec<Recommendation>,
    /// Every database, the primary first (absent from servers older than replicas).
    #[serde(default)]
    pub targets: Vec<TargetStatus>,
}

impl Status {
    /// Critical recommendations whose condition still holds (not those kept while clearing).
    pub fn critical(&self) -> usize {
        self.recommendations
            .iter()
            .filter(|r| r.severity == Severity::Critical && r.cleared_at.is_none())
            .count()
    }
}

/// The parts of a control action's answer the CLI shows (not the state after it).
#[derive(Debug, Deserialize)]
pub struct Acted {
    /// The action.
    pub action: ActionName,
    /// What happened, in a line.
    pub message: String,
    /// Its report.
    pub details: Details,
}

/// `status`: the scheduler and pool in a few lines, then the tasks and the recommendations.
pub fn status(status: &Status, width: usize) -> String {
    let now = status.pool.taken_at;
    let pool = &status.pool;
    let mut out = format!(
        "scheduler  {}\n\
         pool       {} open: {} in use, {} idle, {} waiting; max {}, {:.0}% used\n\
         leases     {} held, {} stale; limit {}; {} issued, {} revoked since start\n\
         as of      {} UTC\n\n",
        if status.scheduler.running {
            "running"
        } else {
            "stopped"
        },
        pool.total,
        pool.active,
        pool.idle,
        pool.waiting,
        pool.max,
        pool.utilization * 100.0,
        pool.leases,
        pool.stale,
        pool.limit,
        pool.issued,
        pool.revoked,
        clock(now),
    );
    let mut tasks = Table::new(vec![
        Column::cut("TASK", 12),
        Column::fixed("STATE"),
        Column::fixed("NEXT RUN"),
        Column::fixed("LAST RUN"),
        Column::fixed("OUTCOME"),
        Column::fixed("TOOK"),
        Column::number("OK"),
        Column::number("FAILED"),
    ]);
    for task in &status.tasks {
        let last = task.last.as_ref();
        tasks.row(vec![
            task.name.clone(),
            task.status().to_string(),
            task.next_run_at
                .map_or_else(|| "-".to_owned(), |at| relative(at, now)),
            last.map_or_else(|| "-".to_owned(), |run| relative(run.started_at, now)),
            last.map_or_else(|| "-".to_owned(), |run| run.outcome.kind().to_string()),
            last.map_or_else(|| "-".to_owned(), |run| duration_ms(run.duration_ms)),
            task.counts.succeeded.to_string(),
            task.counts.failed.to_string(),
        ]);
    }
    out.push_str(&tasks.render(width));
    out.push('\n');
    if status.targets.len() > 1 {
        out.push_str(&databases(&status.targets, now, width));
        out.push('\n');
    }
    if status.recommendations.is_empty() {
        out.push_str("no recommendations\n");
        return out;
    }
    // The title last: it is cut before the id, which the README's table is keyed by.
    let mut recommendations = Table::new(vec![
        Column::fixed("SEVERITY"),
        Column::fixed("SINCE"),
        Column::cut("ID", 12),
        Column::cut("RECOMMENDATION", 24),
    ]);
    for rec in &status.recommendations {
        let (severity, since) = match rec.cleared_at {
            None => (rec.severity.to_string(), relative(rec.since, now)),
            Some(at) => ("cleared".to_owned(), relative(at, now)),
        };
        recommendations.row(vec![severity, since, rec.id.clone(), rec.title.clone()]);
    }
    out.push_str(&recommendations.render(width));
    out
}

/// With replicas: each database, whether it takes work, its lag, leases and bans; the reason
/// last, where the terminal cuts it.
fn databases(targets: &[TargetStatus], now: DateTime<Utc>, width: usize) -> String {
    let mut table = Table::new(vec![
        Column::fixed("DATABASE"),
        Column::cut("ADDRESS", 12),
        Column::fixed("SINCE"),
        Column::fixed("LAG"),
        Column::number("LEASES"),
        Column::number("BANS"),
        Column::cut("ROTATION", 12),
    ]);
    for target in targets {
        table.row(vec![
            target.target.to_string(),
            target.address.clone(),
            relative(target.since, now),
            target
                .lag_secs
                .map_or_else(|| "-".to_owned(), |lag| format!("{lag:.1}s")),
            target.leases.len().to_string(),
            target.bans.to_string(),
            target
                .out
                .as_ref()
                .map_or_else(|| "in".to_owned(), |reason| format!("out: {reason}")),
        ]);
    }
    table.render(width)
}

/// `leases`: one line per lease held.
pub fn leases(leases: &[LeaseInfo], width: usize) -> String {
    if leases.is_empty() {
        return "no leases held\n".to_owned();
    }
    let mut table = lease_table();
    for lease in leases {
        lease_row(&mut table, lease);
    }
    table.render(width)
}

fn lease_table() -> Table {
    Table::new(vec![
        Column::number("LEASE"),
        Column::cut("TASK", 12),
        Column::number("RUN"),
        Column::fixed("HELD"),
        Column::fixed("STALE"),
        Column::fixed("BACKEND"),
        Column::fixed("ACQUIRED (UTC)"),
    ])
}

fn lease_row(table: &mut Table, lease: &LeaseInfo) {
    table.row(vec![
        lease.id.to_string(),
        lease.task.clone(),
        lease.run_id.to_string(),
        duration_ms(lease.held_ms),
        if lease.stale { "stale" } else { "" }.to_owned(),
        lease
            .backend_pid
            .map_or_else(|| "-".to_owned(), |pid| pid.to_string()),
        clock(lease.acquired_at),
    ]);
}

/// `runs`: one line per run; the instance column only when the page has several.
pub fn runs(runs: &[StoredRun], width: usize) -> String {
    if runs.is_empty() {
        return "no runs match\n".to_owned();
    }
    let several = runs.iter().any(|run| run.instance != runs[0].instance);
    let mut columns = vec![Column::fixed("STARTED (UTC)")];
    if several {
        columns.push(Column::cut("INSTANCE", 8));
    }
    columns.extend([
        Column::cut("TASK", 12),
        Column::number("RUN"),
        Column::fixed("TOOK"),
        Column::fixed("OUTCOME"),
        Column::cut("DETAIL", 16),
    ]);
    let mut table = Table::new(columns);
    for run in runs {
        let mut cells = vec![stamp(run.started_at)];
        if several {
            cells.push(run.instance.clone());
        }
        let run_id = match run.trigger {
            Trigger::Manual => format!("{} (manual)", run.run_id),
            Trigger::Schedule => run.run_id.to_string(),
        };
        let outcome = match run.failure {
            Some(kind) => format!("{}: {kind}", run.outcome),
            None => run.outcome.to_string(),
        };
        cells.extend([
            run.task.clone(),
            run_id,
            duration_ms(run.duration_ms),
            outcome,
            run.detail.clone(),
        ]);
        table.row(cells);
    }
    table.render(width)
}

/// A control action: its message, then for a cleanup the leases it revoked (or would) and
/// what it has to say about them.
pub fn acted(acted: &Acted, width: usize) -> String {
    let mut out = format!("{}: {}\n", acted.action, acted.message);
    let Details::Cleanup(report) = &acted.details else {
        return out;
    };
    if !report.revoked.is_empty() {
        out.push('\n');
        let mut table = lease_table();
        for lease in &report.revoked {
            lease_row(&mut table, lease);
        }
        out.push_str(&table.render(width));
    }
    if !report.terminated.is_empty() {
        let pids: Vec<String> = report.terminated.iter().map(i32::to_string).collect();
        let verb = if report.dry_run { "would end" } else { "ended" };
        out.push_str(&format!("backends {verb}: {}\n", pids.join(", ")));
    }
    for (pid, reason) in &report.termination_failures {
        out.push_str(&format!("backend {pid} could not be ended: {reason}\n"));
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use leasewatch_engine::FailureKind;
    use leasewatch_types::RunOutcome;

    use super::*;

    fn run(instance: &str, outcome: RunOutcome, failure: Option<FailureKind>) -> StoredRun {
        let started_at = DateTime::parse_from_rfc3339("2026-05-14T14:07:30Z")
            .unwrap()
            .to_utc();
        StoredRun {
            instance: instance.into(),
            host: "db1".into(),
            task: "auction_monitor".into(),
            run_id: 42,
            trigger: Trigger::Schedule,
            scheduled_at: Some(started_at),
            started_at,
            ended_at: started_at + chrono::Duration::milliseconds(1_250),
            duration_ms: 1_250,
            outcome,
            failure,
            detail: "a detail long enough to be cut at eighty columns, and then some more words"
                .into(),
            rows: 0,
            attempts: 1,
            leases: 1,
        }
    }

    #[test]
    fn runs_fit_80_columns_and_name_the_instance_only_when_there_are_several() {
        let one = runs(
            &[
                run("a", RunOutcome::Succeeded, None),
                run("a", RunOutcome::Failed, Some(FailureKind::TimedOut)),
            ],
            80,
        );
        assert!(!one.contains("INSTANCE"), "{one}");
        assert!(
            one.contains("05-14 14:07:30  auction_monitor   42  1.2s  failed: timed_out  a detail"),
            "{one}"
        );
        let two = runs(
            &[
                run("a", RunOutcome::Succeeded, None),
                run("b", RunOutcome::Cancelled, None),
            ],
            80,
        );
        assert!(two.contains("INSTANCE"), "{two}");
        for line in one.lines().chain(two.lines()) {
            assert!(line.chars().count() <= 80, "{line}");
        }
        assert_eq!(runs(&[], 80), "no runs match\n");
    }

    #[test]
    fn databases_say_which_take_work_and_why_not() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "scheduler": {"running": true},
            "tasks": [],
            "pool": serde_json::to_value(snapshot()).unwrap(),
            "leases": [],
            "recommendations": [],
            "targets": [target("primary", None), target("replica-1", Some(serde_json::json!(
                {"kind": "unreachable", "error": "connection refused"}
            )))],
        }))
        .unwrap();
        let out = super::status(&status, 100);
        assert!(out.contains("DATABASE"), "{out}");
        assert!(out.contains("primary    db-1:5432/shop"), "{out}");
        assert!(
            out.contains("out: unreachable: connection refused"),
            "{out}"
        );
        for line in out.lines() {
            assert!(line.chars().count() <= 100, "{line}");
        }
        // One database: no table.
        let one: Status = serde_json::from_value(serde_json::json!({
            "scheduler": {"running": true},
            "tasks": [],
            "pool": serde_json::to_value(snapshot()).unwrap(),
            "leases": [],
            "recommendations": [],
        }))
        .unwrap();
        assert!(!super::status(&one, 100).contains("DATABASE"));
    }

    fn snapshot() -> PoolSnapshot {
        serde_json::from_value(serde_json::json!({
            "taken_at": "2026-05-14T14:07:30Z", "total": 1, "idle": 1, "active": 0,
            "waiting": 0, "leases": 0, "stale": 0, "max": 4, "min": 0, "limit": 4,
            "budget": null, "utilization": 0.0,
            "acquire_latency": {"p50_ms": null, "p95_ms": null, "p99_ms": null},
            "acquire_timeouts": 0, "issued": 0, "released": 0, "revoked": 0,
            "hold_p95_ms": null, "per_task": [], "window_p95_ms": null
        }))
        .unwrap()
    }

    fn target(name: &str, out: Option<serde_json::Value>) -> serde_json::Value {
        let governor = serde_json::json!({
            "enabled": false, "limit": 4, "share": 4, "held": 0, "queued": 0, "budget": null,
            "reason": "off", "changed_at": "2026-05-14T14:00:00Z"
        });
        serde_json::json!({
            "target": name,
            "address": if name == "primary" { "db-1:5432/shop" } else { "db-2:5432/shop" },
            "in_rotation": out.is_none(),
            "out": out,
            "since": "2026-05-14T14:00:00Z",
            "lag_secs": 0.0,
            "probed_at": "2026-05-14T14:07:29Z",
            "bans": 1,
            "events": [],
            "pool": serde_json::to_value(snapshot()).unwrap(),
            "leases": [],
            "governor": governor,
        })
    }
}
