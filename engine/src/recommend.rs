//! Recommendations: rules over the pool snapshot, its history, the tasks and the server-wide
//! view that tell an operator what is wrong, with the numbers, and what to do.
//!
//! [`evaluate`] is a pure function: the conditions that hold now. [`Hysteresis`] turns them
//! into what is shown: a condition must hold for `hold` before it appears, and be false for
//! `clear` before it goes, so nothing flaps.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    failure::FailureKind,
    lease::{LeaseInfo, PoolSnapshot},
    server_view::ServerView,
    tasks::{Outcome, RunRecord, TaskView},
};

/// How bad.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Will hurt if left.
    Warning,
    /// Hurting now.
    Critical,
}

/// A control action a recommendation suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Suggested {
    /// Revoke stale leases.
    Cleanup,
    /// Revoke everything, shrink the pool.
    EmergencyCleanup,
    /// Start the scheduler.
    Start,
}

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Recommendation {
    /// Stable id of the rule (and subject): `stale_lease:auction_monitor`, ...
    pub id: String,
    /// How bad.
    pub severity: Severity,
    /// What is wrong, in a few words.
    pub title: String,
    /// The numbers that triggered it, and what to do.
    pub detail: String,
    /// The control action that helps, where there is one.
    pub action: Option<Suggested>,
    /// Since when it has been shown.
    pub since: DateTime<Utc>,
}

/// Rule thresholds; the defaults are in the README.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Waiting above 0 this long is a warning.
    pub waiting_for: Duration,
    /// Acquire timeouts within this window are critical.
    pub timeout_window: Duration,
    /// A stale lease this old is critical (younger ones: warning).
    pub stale_critical_age: Duration,
    /// Utilization at or above this share (0–1), sustained, is a warning.
    pub utilization_warning: f64,
    /// Utilization at or above this share, sustained, is critical.
    pub utilization_critical: f64,
    /// How long utilization must stay high.
    pub utilization_for: Duration,
    /// Idle = total above the minimum this long: the pool is oversized.
    pub oversized_for: Duration,
    /// Server connections at or above this share of `max_connections` is a warning.
    pub server_connections_warning: f64,
    /// A health-check round trip above this is a warning.
    pub slow_round_trip: Duration,
    /// This many failed runs in a row is a warning.
    pub failures_in_a_row: usize,
    /// A run taking this share of its interval or more is a warning.
    pub runtime_share: f64,
    /// A condition must hold this long before it shows.
    pub hold: Duration,
    /// A shown recommendation goes only after its condition was false this long.
    pub clear: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            waiting_for: Duration::from_secs(30),
            timeout_window: Duration::from_secs(300),
            stale_critical_age: Duration::from_secs(120),
            utilization_warning: 0.80,
            utilization_critical: 0.95,
            utilization_for: Duration::from_secs(60),
            oversized_for: Duration::from_secs(600),
            server_connections_warning: 0.80,
            slow_round_trip: Duration::from_millis(100),
            failures_in_a_row: 3,
            runtime_share: 0.80,
            hold: Duration::from_secs(10),
            clear: Duration::from_secs(60),
        }
    }
}

/// Everything the rules look at.
pub struct Inputs<'a> {
    /// Now.
    pub now: DateTime<Utc>,
    /// The pool now.
    pub snapshot: &'a PoolSnapshot,
    /// Earlier snapshots, oldest first.
    pub history: &'a [PoolSnapshot],
    /// The leases held now.
    pub leases: &'a [LeaseInfo],
    /// The tasks.
    pub tasks: &'a [TaskView],
    /// Whether the scheduler runs.
    pub scheduler_running: bool,
    /// The server-wide view.
    pub server: &'a ServerView,
    /// The health check's last round trip.
    pub round_trip: Option<Duration>,
    /// The application-name prefix of this app's task pools (instances are counted by it).
    pub app_prefix: &'a str,
}

/// A condition that holds now (before hysteresis).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Rule (and subject) id.
    pub id: String,
    /// How bad.
    pub severity: Severity,
    /// Title.
    pub title: String,
    /// Numbers and advice.
    pub detail: String,
    /// Suggested action.
    pub action: Option<Suggested>,
}

fn finding(
    id: impl Into<String>,
    severity: Severity,
    title: impl Into<String>,
    detail: impl Into<String>,
    action: Option<Suggested>,
) -> Finding {
    Finding {
        id: id.into(),
        severity,
        title: title.into(),
        detail: detail.into(),
        action,
    }
}

/// Whether `holds` is true now and in every snapshot of the last `span` — and the history
/// reaches back that far.
fn sustained(inputs: &Inputs<'_>, span: Duration, holds: impl Fn(&PoolSnapshot) -> bool) -> bool {
    let since = inputs.now - chrono::Duration::from_std(span).unwrap_or(chrono::TimeDelta::MAX);
    let covered = inputs.history.first().is_some_and(|s| s.taken_at <= since);
    covered
        && holds(inputs.snapshot)
        && inputs
            .history
            .iter()
            .filter(|s| s.taken_at >= since)
            .all(&holds)
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}

/// The conditions that hold now, worst first; one "all clear" line when none does.
pub fn evaluate(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    let mut found = Vec::new();
    let s = inputs.snapshot;

    // Pool pressure.
    if s.waiting > 0 && sustained(inputs, t.waiting_for, |x| x.waiting > 0) {
        found.push(finding(
            "waiting",
            Severity::Warning,
            "Tasks are queueing for connections",
            format!(
                "{} acquires waiting now, and waiting has stayed above 0 for {}: {} of max {} connections open, {} in use. Look for leases held long, or raise DB_MAX_CONNECTIONS if the server has room.",
                s.waiting, secs(t.waiting_for), s.total, s.max, s.active
            ),
            None,
        ));
    }
    let window_start =
        inputs.now - chrono::Duration::from_std(t.timeout_window).unwrap_or(chrono::TimeDelta::MAX);
    // Timeouts counted since the last snapshot at or before the window's start (all of them
    // when the history does not reach back that far).
    let timeouts_before = inputs
        .history
        .iter()
        .rev()
        .find(|x| x.taken_at <= window_start)
        .map_or(0, |x| x.acquire_timeouts);
    let recent_timeouts = s.acquire_timeouts.saturating_sub(timeouts_before);
    if recent_timeouts > 0 {
        found.push(finding(
            "acquire_timeouts",
            Severity::Critical,
            "Acquires are timing out",
            format!(
                "{recent_timeouts} acquires gave up in the last {} ({} since start); the pool is exhausted ({} of max {}, {} waiting). Run an emergency cleanup if leases are stuck.",
                secs(t.timeout_window), s.acquire_timeouts, s.total, s.max, s.waiting
            ),
            Some(Suggested::EmergencyCleanup),
        ));
    }
    let mut stale_by_task: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for lease in inputs.leases.iter().filter(|l| l.stale) {
        let entry = stale_by_task.entry(&lease.task).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(lease.held_ms);
    }
    for (task, (count, oldest_ms)) in stale_by_task {
        let critical = Duration::from_millis(oldest_ms) >= t.stale_critical_age;
        found.push(finding(
            format!("stale_lease:{task}"),
            if critical { Severity::Critical } else { Severity::Warning },
            format!("{task} holds stale connections"),
            format!(
                "{count} lease{} held by {task} past the lease timeout, the oldest for {} s. Cleanup revokes them and ends their backends.",
                if count == 1 { "" } else { "s" },
                oldest_ms / 1000
            ),
            Some(Suggested::Cleanup),
        ));
    }
    for (level, share, severity) in [
        ("critical", t.utilization_critical, Severity::Critical),
        ("warning", t.utilization_warning, Severity::Warning),
    ] {
        if s.utilization >= share
            && sustained(inputs, t.utilization_for, |x| x.utilization >= share)
        {
            found.push(finding(
                "utilization",
                severity,
                "The pool is nearly full",
                format!(
                    "{:.0} % of max {} connections in use for {} (the {level} line is {:.0} %).",
                    s.utilization * 100.0,
                    s.max,
                    secs(t.utilization_for),
                    share * 100.0
                ),
                None,
            ));
            break;
        }
    }
    if s.total > s.min
        && s.idle == s.total
        && sustained(inputs, t.oversized_for, |x| {
            x.total > x.min && x.idle == x.total
        })
    {
        found.push(finding(
            "oversized",
            Severity::Info,
            "The pool holds more idle connections than it needs",
            format!(
                "all {} open connections idle for {} while the minimum is {}: lower DB_MIN_CONNECTIONS or DB_IDLE_TIMEOUT to hand them back to the server.",
                s.total, secs(t.oversized_for), s.min
            ),
            None,
        ));
    }

    // The server as a whole.
    if let ServerView::Postgres(view) = inputs.server {
        let instances = view
            .by_application
            .iter()
            .filter(|(name, _)| name.starts_with(inputs.app_prefix))
            .count()
            .max(1) as i64;
        let usable = view.usable_connections();
        let demand = instances * i64::from(s.max);
        if demand > usable {
            found.push(finding(
                "pool_can_exhaust_server",
                Severity::Critical,
                "The pools can exhaust the database server",
                format!(
                    "{instances} instance{} × pool max {} = {demand} connections, but the server allows {usable} ({} max_connections − {} reserved). Lower DB_MAX_CONNECTIONS to at most {} per instance.",
                    if instances == 1 { "" } else { "s" },
                    s.max, view.max_connections, view.reserved_connections,
                    (usable / instances).max(1)
                ),
                None,
            ));
        }
        let share = view.client_connections as f64 / view.max_connections.max(1) as f64;
        if share >= t.server_connections_warning {
            found.push(finding(
                "server_connections",
                Severity::Warning,
                "The database server is running out of connections",
                format!(
                    "{} of {} connections in use ({:.0} %), all clients together.",
                    view.client_connections,
                    view.max_connections,
                    share * 100.0
                ),
                None,
            ));
        }
        if view.idle_in_transaction > 0 {
            found.push(finding(
                "idle_in_transaction",
                Severity::Warning,
                "Sessions are idle inside open transactions",
                format!(
                    "{} session{} idle in transaction for over {} s: each holds a connection and its locks doing nothing. Find them in pg_stat_activity; idle_in_transaction_session_timeout ends them.",
                    view.idle_in_transaction,
                    if view.idle_in_transaction == 1 { "" } else { "s" },
                    crate::server_view::IDLE_IN_TRANSACTION_AFTER.as_secs()
                ),
                None,
            ));
        }
    }
    if let Some(round_trip) = inputs.round_trip.filter(|rt| *rt > t.slow_round_trip) {
        found.push(finding(
            "slow_database",
            Severity::Warning,
            "The database answers slowly",
            format!(
                "the last health check's round trip took {:.0} ms (the line is {} ms).",
                round_trip.as_secs_f64() * 1000.0,
                t.slow_round_trip.as_millis()
            ),
            None,
        ));
    }

    // Tasks.
    let mut slots_refused = false;
    for task in inputs.tasks {
        let recent: Vec<&Outcome> = task
            .history
            .iter()
            .map(|r| &r.outcome)
            .take(t.failures_in_a_row)
            .collect();
        let failing = recent.len() == t.failures_in_a_row
            && recent.iter().all(|o| matches!(o, Outcome::Failed { .. }));
        if let Some(last) = task.history.first()
            && let Outcome::Failed { cause, error } = &last.outcome
        {
            let unreachable = task.name == "health_check" && cause.is_connection();
            if *cause == FailureKind::SlotsExhausted {
                // One line for the server, however many tasks it refused.
                if !slots_refused {
                    slots_refused = true;
                    found.push(finding(
                        "server_slots_exhausted",
                        Severity::Critical,
                        "PostgreSQL refuses new connections: no free slots",
                        format!(
                            "{} could not get a connection after {} attempts: {error}. Some client holds every slot: look in pg_stat_activity by usename and application_name, end what should not be there, and keep every pool's maximum, summed over instances, under max_connections.",
                            task.name, last.attempts
                        ),
                        None,
                    ));
                }
            } else if unreachable {
                found.push(finding(
                    "database_unreachable",
                    Severity::Critical,
                    "The database is unreachable",
                    format!(
                        "the health check failed after {} attempts: {error}",
                        last.attempts
                    ),
                    None,
                ));
            } else if failing {
                found.push(finding(
                    format!("failing:{}", task.name),
                    Severity::Warning,
                    format!("{} keeps failing", task.name),
                    format!(
                        "its last {} runs failed; the last, after {} attempts: {error}",
                        t.failures_in_a_row, last.attempts
                    ),
                    None,
                ));
            } else if last.attempts > 1 {
                found.push(finding(
                    format!("retries_exhausted:{}", task.name),
                    Severity::Warning,
                    format!("{} failed after its retries", task.name),
                    format!(
                        "run {} failed after {} attempts: {error}",
                        last.run_id, last.attempts
                    ),
                    None,
                ));
            }
        }
        // Successes that needed retries: transient faults the retries absorbed. Told for the
        // whole window, so an operator who looks later still learns of them.
        let retried: Vec<&RunRecord> = task
            .history
            .iter()
            .filter(|r| {
                r.started_at >= window_start
                    && r.retried_after.is_some()
                    && matches!(r.outcome, Outcome::Succeeded { .. })
            })
            .collect();
        if let Some(latest) = retried.first() {
            found.push(finding(
                format!("retried:{}", task.name),
                Severity::Info,
                format!("{} needed retries", task.name),
                format!(
                    "{} run{} in the last {} succeeded only after retries; the latest, run {}, after {} attempts: {}. Transient database errors (a restart, ended sessions) are retried by themselves; if this keeps showing, read the database's log.",
                    retried.len(),
                    if retried.len() == 1 { "" } else { "s" },
                    secs(t.timeout_window),
                    latest.run_id,
                    latest.attempts,
                    latest.retried_after.as_deref().unwrap_or_default()
                ),
                None,
            ));
        }
        if let Some(last) = task.history.first()
            && task.interval_secs > 0
        {
            let share = last.duration_ms as f64 / (task.interval_secs as f64 * 1000.0);
            if share >= t.runtime_share {
                found.push(finding(
                    format!("slow_task:{}", task.name),
                    Severity::Warning,
                    format!("{} takes nearly its whole interval", task.name),
                    format!(
                        "its last run took {:.1} s of its {} s interval ({:.0} %): runs will start to skip. Lengthen the interval or shrink the work.",
                        last.duration_ms as f64 / 1000.0, task.interval_secs, share * 100.0
                    ),
                    None,
                ));
            }
        }
    }
    if !inputs.scheduler_running {
        let overdue: Vec<&str> = inputs
            .tasks
            .iter()
            .filter(|task| {
                task.history.first().is_none_or(|last| {
                    (inputs.now - last.started_at).num_seconds()
                        > i64::try_from(task.interval_secs).unwrap_or(i64::MAX)
                })
            })
            .map(|task| task.name.as_str())
            .collect();
        if !overdue.is_empty() {
            found.push(finding(
                "scheduler_stopped",
                Severity::Warning,
                "The scheduler is stopped and tasks are overdue",
                format!(
                    "{} {} not run within {} interval. Start the scheduler.",
                    overdue.join(", "),
                    if overdue.len() == 1 { "has" } else { "have" },
                    if overdue.len() == 1 { "its" } else { "their" }
                ),
                Some(Suggested::Start),
            ));
        }
    }

    if found.is_empty() {
        found.push(finding(
            ALL_CLEAR,
            Severity::Info,
            "All clear",
            format!(
                "no waiting, no stale leases, {:.0} % of the pool in use, tasks healthy.",
                s.utilization * 100.0
            ),
            None,
        ));
    }
    found.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    found
}

/// The id of the line that says nothing is wrong.
pub const ALL_CLEAR: &str = "all_clear";

/// Turns findings into shown recommendations without flapping.
#[derive(Debug, Default)]
pub struct Hysteresis {
    tracked: BTreeMap<String, Tracked>,
}

#[derive(Debug)]
struct Tracked {
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    shown_since: Option<DateTime<Utc>>,
    latest: Finding,
}

impl Hysteresis {
    /// Feeds the findings of `now`; returns what to show, worst first.
    pub fn update(
        &mut self,
        now: DateTime<Utc>,
        findings: Vec<Finding>,
        t: &Thresholds,
    ) -> Vec<Recommendation> {
        let hold = chrono::Duration::from_std(t.hold).unwrap_or(chrono::TimeDelta::MAX);
        let clear = chrono::Duration::from_std(t.clear).unwrap_or(chrono::TimeDelta::MAX);
        let present: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
        for finding in findings {
            let tracked = self
                .tracked
                .entry(finding.id.clone())
                .or_insert_with(|| Tracked {
                    first_seen: now,
                    last_seen: now,
                    shown_since: None,
                    latest: finding.clone(),
                });
            tracked.last_seen = now;
            tracked.latest = finding;
        }
        // Absent now: one not yet shown is forgotten (its hold starts over); one shown stays
        // until it has been absent for `clear`.
        self.tracked.retain(|id, tracked| {
            present.contains(id)
                || (tracked.shown_since.is_some() && now - tracked.last_seen < clear)
        });
        for (id, tracked) in &mut self.tracked {
            // "All clear" needs no hold: it is the absence of everything else.
            if tracked.shown_since.is_none()
                && (id == ALL_CLEAR || now - tracked.first_seen >= hold)
            {
                tracked.shown_since = Some(now);
            }
        }
        let mut shown: Vec<Recommendation> = self
            .tracked
            .values()
            .filter_map(|tracked| {
                let since = tracked.shown_since?;
                let f = &tracked.latest;
                Some(Recommendation {
                    id: f.id.clone(),
                    severity: f.severity,
                    title: f.title.clone(),
                    detail: f.detail.clone(),
                    action: f.action,
                    since,
                })
            })
            .collect();
        // "All clear" only when nothing else shows.
        if shown.len() > 1 {
            shown.retain(|r| r.id != ALL_CLEAR);
        }
        shown.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        lease::Quantiles,
        server_view::PgServerView,
        tasks::{RunRecord, TaskCounts, TaskState, Trigger},
    };

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        t0() + chrono::Duration::seconds(secs)
    }

    fn snap(taken_at: DateTime<Utc>) -> PoolSnapshot {
        PoolSnapshot {
            taken_at,
            total: 5,
            idle: 3,
            active: 2,
            waiting: 0,
            leases: 0,
            stale: 0,
            max: 20,
            min: 5,
            utilization: 0.1,
            acquire_latency: Quantiles::default(),
            acquire_timeouts: 0,
            issued: 0,
            released: 0,
            revoked: 0,
            hold_p95_ms: None,
            per_task: vec![],
            window_p95_ms: None,
        }
    }

    /// A world at t0 + 600 s with ten minutes of 5-second history.
    struct World {
        now: DateTime<Utc>,
        snapshot: PoolSnapshot,
        history: Vec<PoolSnapshot>,
        leases: Vec<LeaseInfo>,
        tasks: Vec<TaskView>,
        running: bool,
        server: ServerView,
        round_trip: Option<Duration>,
    }

    impl World {
        fn new() -> Self {
            let now = at(600);
            Self {
                now,
                snapshot: snap(now),
                history: (0..120).map(|i| snap(at(i * 5))).collect(),
                leases: vec![],
                tasks: vec![],
                running: true,
                server: ServerView::Unknown,
                round_trip: None,
            }
        }

        /// Sets a field on the current snapshot and on every snapshot of the last `secs`.
        fn pool_for(mut self, secs: i64, set: impl Fn(&mut PoolSnapshot)) -> Self {
            set(&mut self.snapshot);
            let since = self.now - chrono::Duration::seconds(secs);
            for s in self.history.iter_mut().filter(|s| s.taken_at >= since) {
                set(s);
            }
            self
        }

        fn findings(&self, t: &Thresholds) -> Vec<Finding> {
            evaluate(
                &Inputs {
                    now: self.now,
                    snapshot: &self.snapshot,
                    history: &self.history,
                    leases: &self.leases,
                    tasks: &self.tasks,
                    scheduler_running: self.running,
                    server: &self.server,
                    round_trip: self.round_trip,
                    app_prefix: "leasewatch:tasks",
                },
                t,
            )
        }

        fn ids(&self) -> Vec<String> {
            self.findings(&Thresholds::default())
                .into_iter()
                .map(|f| f.id)
                .collect()
        }

        fn one(&self, id: &str) -> Finding {
            self.findings(&Thresholds::default())
                .into_iter()
                .find(|f| f.id == id)
                .unwrap_or_else(|| panic!("no {id} in {:?}", self.ids()))
        }
    }

    #[test]
    fn nothing_wrong_says_so_once() {
        assert_eq!(World::new().ids(), ["all_clear"]);
        assert_eq!(World::new().one("all_clear").severity, Severity::Info);
    }

    #[test]
    fn waiting_must_be_sustained() {
        let w = World::new().pool_for(30, |s| s.waiting = 3);
        let f = w.one("waiting");
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.detail.starts_with("3 acquires waiting now"),
            "{}",
            f.detail
        );
        assert_eq!(
            World::new().pool_for(25, |s| s.waiting = 3).ids(),
            ["all_clear"],
            "not for 30 s yet"
        );
        let mut short_history = World::new().pool_for(600, |s| s.waiting = 1);
        short_history.history.retain(|s| s.taken_at > at(580));
        assert_eq!(
            short_history.ids(),
            ["all_clear"],
            "history does not reach back 30 s"
        );
    }

    #[test]
    fn recent_acquire_timeouts_are_critical() {
        let mut w = World::new().pool_for(600, |s| s.acquire_timeouts = 2);
        w.snapshot.acquire_timeouts = 3;
        let f = w.one("acquire_timeouts");
        assert_eq!(
            (f.severity, f.action),
            (Severity::Critical, Some(Suggested::EmergencyCleanup))
        );
        assert!(
            f.detail
                .starts_with("1 acquires gave up in the last 300 s (3 since start)"),
            "{}",
            f.detail
        );
        // Timeouts older than the window: nothing.
        let old = World::new().pool_for(600, |s| s.acquire_timeouts = 2);
        assert_eq!(old.ids(), ["all_clear"]);
    }

    fn lease(task: &str, held_secs: u64, stale: bool) -> LeaseInfo {
        LeaseInfo {
            id: held_secs,
            task: task.into(),
            run_id: 1,
            acquired_at: t0(),
            backend_pid: Some(42),
            held_ms: held_secs * 1000,
            stale,
        }
    }

    #[test]
    fn stale_leases_name_the_task_and_age_and_turn_critical_when_old() {
        let mut w = World::new();
        w.leases = vec![
            lease("auction_monitor", 40, true),
            lease("auction_monitor", 31, true),
            lease("health_check", 5, false),
        ];
        let f = w.one("stale_lease:auction_monitor");
        assert_eq!(
            (f.severity, f.action),
            (Severity::Warning, Some(Suggested::Cleanup))
        );
        assert!(
            f.detail.starts_with(
                "2 leases held by auction_monitor past the lease timeout, the oldest for 40 s"
            ),
            "{}",
            f.detail
        );
        assert!(!w.ids().iter().any(|id| id.contains("health_check")));
        w.leases = vec![lease("auction_monitor", 120, true)];
        assert_eq!(
            w.one("stale_lease:auction_monitor").severity,
            Severity::Critical
        );
        w.leases = vec![lease("auction_monitor", 119, true)];
        assert_eq!(
            w.one("stale_lease:auction_monitor").severity,
            Severity::Warning
        );
    }

    #[test]
    fn utilization_has_two_sustained_lines() {
        assert_eq!(
            World::new().pool_for(60, |s| s.utilization = 0.79).ids(),
            ["all_clear"]
        );
        assert_eq!(
            World::new()
                .pool_for(60, |s| s.utilization = 0.80)
                .one("utilization")
                .severity,
            Severity::Warning
        );
        assert_eq!(
            World::new()
                .pool_for(60, |s| s.utilization = 0.95)
                .one("utilization")
                .severity,
            Severity::Critical
        );
        assert_eq!(
            World::new().pool_for(50, |s| s.utilization = 0.99).ids(),
            ["all_clear"],
            "not for 60 s yet"
        );
    }

    #[test]
    fn an_idle_pool_above_its_minimum_for_ten_minutes_is_oversized() {
        let idle = |s: &mut PoolSnapshot| {
            s.total = 12;
            s.idle = 12;
        };
        let f = World::new().pool_for(600, idle).one("oversized");
        assert_eq!(f.severity, Severity::Info);
        assert!(
            f.detail.contains("lower DB_MIN_CONNECTIONS"),
            "{}",
            f.detail
        );
        assert_eq!(
            World::new().pool_for(540, idle).ids(),
            ["all_clear"],
            "9 minutes"
        );
        let at_min = |s: &mut PoolSnapshot| {
            s.total = 5;
            s.idle = 5;
        };
        assert_eq!(World::new().pool_for(600, at_min).ids(), ["all_clear"]);
    }

    fn server(instances: usize, clients: i64, idle_tx: i64) -> ServerView {
        let mut by_application: Vec<(String, i64)> = (0..instances)
            .map(|i| (format!("leasewatch:tasks:{i}"), 2))
            .collect();
        by_application.push(("psql".into(), 1));
        ServerView::Postgres(PgServerView {
            read_at: t0(),
            max_connections: 100,
            reserved_connections: 3,
            client_connections: clients,
            by_state: vec![],
            idle_in_transaction: idle_tx,
            by_application,
        })
    }

    #[test]
    fn pools_that_can_exhaust_the_server_are_critical() {
        let mut w = World::new();
        w.server = server(4, 10, 0); // 4 × 20 = 80 ≤ 97
        assert_eq!(w.ids(), ["all_clear"]);
        w.server = server(5, 10, 0); // 5 × 20 = 100 > 97
        let f = w.one("pool_can_exhaust_server");
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(
            f.detail,
            "5 instances × pool max 20 = 100 connections, but the server allows 97 (100 max_connections − 3 reserved). Lower DB_MAX_CONNECTIONS to at most 19 per instance."
        );
        // The seed's fault: one pool of 100.
        w.server = server(1, 10, 0);
        w.snapshot.max = 100;
        assert!(w.ids().contains(&"pool_can_exhaust_server".to_owned()));
    }

    #[test]
    fn server_wide_pressure_and_idle_transactions_are_warnings() {
        let mut w = World::new();
        w.server = server(1, 79, 0);
        assert_eq!(w.ids(), ["all_clear"]);
        w.server = server(1, 80, 0);
        assert!(
            w.one("server_connections")
                .detail
                .starts_with("80 of 100 connections in use (80 %)")
        );
        w.server = server(1, 10, 2);
        assert!(
            w.one("idle_in_transaction")
                .detail
                .starts_with("2 sessions idle in transaction")
        );
    }

    #[test]
    fn a_slow_round_trip_is_a_warning() {
        let mut w = World::new();
        w.round_trip = Some(Duration::from_millis(100));
        assert_eq!(w.ids(), ["all_clear"]);
        w.round_trip = Some(Duration::from_millis(101));
        assert!(w.one("slow_database").detail.contains("101 ms"));
    }

    fn task(name: &str, interval_secs: u64, runs: Vec<(Outcome, u32, u64)>) -> TaskView {
        TaskView {
            name: name.into(),
            interval_secs,
            paused: false,
            state: TaskState::Idle,
            next_run_at: None,
            last: None,
            last_success_at: None,
            counts: TaskCounts::default(),
            history: runs
                .into_iter()
                .enumerate()
                .map(|(i, (outcome, attempts, duration_ms))| RunRecord {
                    run_id: 10 - i as u64,
                    trigger: Trigger::Schedule,
                    started_at: at(590),
                    duration_ms,
                    attempts,
                    backoff_ms: vec![],
                    retried_after: (attempts > 1).then(|| "connection reset".to_owned()),
                    outcome,
                })
                .collect(),
        }
    }

    fn failed(cause: FailureKind, error: &str) -> Outcome {
        Outcome::Failed {
            cause,
            error: error.into(),
        }
    }

    fn ok() -> Outcome {
        Outcome::Succeeded {
            rows: 1,
            detail: "ok".into(),
        }
    }

    #[test]
    fn failing_tasks_are_named_with_their_error() {
        let mut w = World::new();
        w.tasks = vec![task(
            "auction_monitor",
            1800,
            vec![
                (failed(FailureKind::Database, "database error: boom"), 4, 10),
                (failed(FailureKind::Database, "x"), 4, 10),
                (failed(FailureKind::Database, "x"), 4, 10),
            ],
        )];
        assert!(
            w.one("failing:auction_monitor").detail.contains(
                "its last 3 runs failed; the last, after 4 attempts: database error: boom"
            )
        );
        w.tasks = vec![task(
            "auction_monitor",
            1800,
            vec![
                (failed(FailureKind::Database, "boom"), 4, 10),
                (failed(FailureKind::Database, "x"), 4, 10),
                (ok(), 1, 10),
            ],
        )];
        assert!(
            w.one("retries_exhausted:auction_monitor")
                .detail
                .contains("after 4 attempts")
        );
        w.tasks = vec![task(
            "auction_monitor",
            1800,
            vec![(failed(FailureKind::Logic, "bad data"), 1, 10)],
        )];
        assert_eq!(
            w.ids(),
            ["all_clear"],
            "a single logic failure is in the task table, not a recommendation"
        );
        w.tasks = vec![task(
            "health_check",
            3600,
            vec![(
                failed(
                    FailureKind::AcquireTimeout,
                    "health_check: no connection within 15000 ms (pool size 0 of max 20, 1 waiting)",
                ),
                4,
                10,
            )],
        )];
        assert_eq!(w.one("database_unreachable").severity, Severity::Critical);
    }

    #[test]
    fn refused_connection_slots_are_one_critical_line_naming_the_error() {
        let mut w = World::new();
        let refused = "error returned from database: sorry, too many clients already";
        w.tasks = vec![
            task(
                "status_transitions",
                900,
                vec![(failed(FailureKind::SlotsExhausted, refused), 4, 10)],
            ),
            task(
                "health_check",
                3600,
                vec![(failed(FailureKind::SlotsExhausted, refused), 4, 10)],
            ),
        ];
        assert_eq!(w.ids(), ["server_slots_exhausted"]);
        let f = w.one("server_slots_exhausted");
        assert_eq!(f.severity, Severity::Critical);
        assert!(
            f.detail
                .contains("status_transitions could not get a connection after 4 attempts")
        );
        assert!(f.detail.contains(refused));
    }

    /// The rules read a failure's kind, never its words: whatever the message says —
    /// nothing, gibberish, or the words of another rule's failure — each kind raises its own
    /// rule, so rewording an error cannot silence a recommendation.
    #[test]
    fn failure_rules_fire_on_the_kind_whatever_the_message_says() {
        let messages = [
            "",
            "zzz",
            "sorry, too many clients already",
            "remaining connection slots are reserved",
            "no connection within 15000 ms",
            "cannot open a database connection",
            "error communicating with database: Connection refused",
            "lease revoked (stale)",
        ];
        let one_run = |name: &str, cause, message: &str| {
            let mut w = World::new();
            w.tasks = vec![task(name, 3600, vec![(failed(cause, message), 4, 10)])];
            w.ids()
        };
        for message in messages {
            assert_eq!(
                one_run("status_transitions", FailureKind::SlotsExhausted, message),
                ["server_slots_exhausted"],
                "{message:?}"
            );
            for cause in [FailureKind::AcquireTimeout, FailureKind::Unreachable] {
                assert_eq!(
                    one_run("health_check", cause, message),
                    ["database_unreachable"],
                    "{cause:?} {message:?}"
                );
            }
            for cause in [
                FailureKind::Revoked,
                FailureKind::TimedOut,
                FailureKind::Closed,
                FailureKind::Database,
                FailureKind::Logic,
            ] {
                assert_eq!(
                    one_run("health_check", cause, message),
                    ["retries_exhausted:health_check"],
                    "{cause:?} {message:?}"
                );
                let mut w = World::new();
                w.tasks = vec![task(
                    "auction_monitor",
                    1800,
                    vec![(failed(cause, message), 1, 10); 3],
                )];
                assert_eq!(
                    w.ids(),
                    ["failing:auction_monitor"],
                    "{cause:?} {message:?}"
                );
            }
        }
    }

    #[test]
    fn a_success_after_retries_is_told_with_the_error_it_overcame() {
        let mut w = World::new();
        w.tasks = vec![task("health_check", 3600, vec![(ok(), 1, 10)])];
        assert_eq!(w.ids(), ["all_clear"]);
        w.tasks = vec![task("health_check", 3600, vec![(ok(), 3, 10)])];
        let f = w.one("retried:health_check");
        assert_eq!(f.severity, Severity::Info);
        assert!(
            f.detail.starts_with(
                "1 run in the last 300 s succeeded only after retries; the latest, run 10, after 3 attempts: connection reset."
            ),
            "{}",
            f.detail
        );
        w.now = at(590 + 301);
        assert!(
            !w.ids().contains(&"retried:health_check".to_owned()),
            "told for the window only"
        );
    }

    #[test]
    fn a_run_near_its_interval_is_a_warning() {
        let mut w = World::new();
        w.tasks = vec![task("status_transitions", 10, vec![(ok(), 1, 7_999)])];
        assert_eq!(w.ids(), ["all_clear"]);
        w.tasks = vec![task("status_transitions", 10, vec![(ok(), 1, 8_000)])];
        assert!(
            w.one("slow_task:status_transitions")
                .detail
                .contains("8.0 s of its 10 s interval (80 %)")
        );
    }

    #[test]
    fn a_stopped_scheduler_with_overdue_tasks_suggests_start() {
        let mut w = World::new();
        w.running = false;
        w.tasks = vec![
            task("health_check", 3600, vec![(ok(), 1, 10)]),
            task("status_transitions", 5, vec![(ok(), 1, 10)]),
        ];
        let f = w.one("scheduler_stopped");
        assert_eq!(f.action, Some(Suggested::Start));
        assert!(
            f.detail
                .starts_with("status_transitions has not run within its interval"),
            "{}",
            f.detail
        );
        w.running = true;
        assert_eq!(w.ids(), ["all_clear"]);
    }

    #[test]
    fn worst_first() {
        let mut w = World::new().pool_for(600, |s| s.acquire_timeouts = 1);
        w.snapshot.acquire_timeouts = 2;
        w.server = server(1, 10, 1);
        assert_eq!(w.ids(), ["acquire_timeouts", "idle_in_transaction"]);
    }

    fn problem(id: &str) -> Finding {
        finding(id, Severity::Warning, "t", "d", None)
    }

    fn shown(h: &mut Hysteresis, secs: i64, findings: Vec<Finding>) -> Vec<String> {
        let t = Thresholds::default(); // hold 10 s, clear 60 s
        h.update(at(secs), findings, &t)
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn recommendations_appear_after_the_hold_and_clear_after_the_clear_time() {
        let clear = || vec![finding(ALL_CLEAR, Severity::Info, "All clear", "", None)];
        let mut h = Hysteresis::default();
        assert_eq!(
            shown(&mut h, 0, clear()),
            ["all_clear"],
            "all clear needs no hold"
        );
        assert_eq!(
            shown(&mut h, 1, vec![problem("waiting")]),
            ["all_clear"],
            "held back"
        );
        assert_eq!(
            shown(&mut h, 10, vec![problem("waiting")]),
            ["all_clear"],
            "9 s"
        );
        assert_eq!(
            shown(&mut h, 11, vec![problem("waiting")]),
            ["waiting"],
            "10 s: shown, all clear gone"
        );
        assert_eq!(
            shown(&mut h, 20, clear()),
            ["waiting"],
            "false, but not for 60 s yet"
        );
        assert_eq!(shown(&mut h, 70, clear()), ["waiting"], "last true at 11 s");
        assert_eq!(
            shown(&mut h, 71, clear()),
            ["all_clear"],
            "false for 60 s: cleared"
        );
    }

    #[test]
    fn a_condition_that_lapses_before_showing_starts_its_hold_again() {
        let mut h = Hysteresis::default();
        assert!(shown(&mut h, 0, vec![problem("waiting")]).is_empty());
        assert!(shown(&mut h, 5, vec![]).is_empty());
        assert!(shown(&mut h, 6, vec![problem("waiting")]).is_empty());
        assert!(
            shown(&mut h, 15, vec![problem("waiting")]).is_empty(),
            "9 s since it came back"
        );
        assert_eq!(shown(&mut h, 16, vec![problem("waiting")]), ["waiting"]);
    }
}
