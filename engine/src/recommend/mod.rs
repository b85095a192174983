//! Recommendations: rules over the pool snapshot, its history, the tasks and the server-wide
//! view that tell an operator what is wrong, with the numbers, and what to do.
//!
//! [`evaluate`] is a pure function: the conditions that hold now, each found by one rule (a
//! small function in `rules/`, grouped by what it watches: the pool, the database server,
//! task failures, task timing). [`Hysteresis`] turns them into what is shown: a condition must
//! hold for `hold` before it appears, and be false for `clear` before it goes, so nothing
//! flaps.
//!
//! A new rule is a function `fn(&Inputs, &Thresholds) -> Vec<Finding>` with its unit test
//! beside it, listed in `rules::ALL`.

mod hysteresis;
mod rules;
#[cfg(test)]
mod world;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) use hysteresis::Hysteresis;

use leasewatch_types::{Fallback, Target};

use crate::{
    governor::GovernorView,
    lease::{LeaseInfo, PoolSnapshot},
    predict::ForecastView,
    server_view::ServerView,
    targets::TargetStatus,
    tasks::TaskView,
};

pub use leasewatch_types::{ActionName, Severity};

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Recommendation {
    /// Stable id of the rule (and subject): `stale_lease:auction_monitor`, ...
    pub id: String,
    /// How urgent it is.
    pub severity: Severity,
    /// What is wrong, in a few words.
    pub title: String,
    /// The numbers that triggered it, and what to do.
    pub detail: String,
    /// The control action that helps, where there is one.
    pub action: Option<ActionName>,
    /// Since when it has been shown.
    pub since: DateTime<Utc>,
    /// Set when the condition no longer holds and the recommendation is only kept for the
    /// clear-hold: when it stopped holding. `detail` then gives its last numbers, and its
    /// action is no longer needed.
    pub cleared_at: Option<DateTime<Utc>>,
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

/// Everything the rules look at, read from in-process state (no database access).
pub(crate) struct Inputs<'a> {
    /// The instant the rules judge; spans ("for 30 s", "in the last 5 min") end here.
    pub now: DateTime<Utc>,
    /// The pool now.
    pub snapshot: &'a PoolSnapshot,
    /// Earlier snapshots, oldest first.
    pub history: &'a [PoolSnapshot],
    /// The leases held now.
    pub leases: &'a [LeaseInfo],
    /// Every task with its recent runs, newest first.
    pub tasks: &'a [TaskView],
    /// Whether the scheduler runs.
    pub scheduler_running: bool,
    /// The server-wide view.
    pub server: &'a ServerView,
    /// The health check's last round trip.
    pub round_trip: Option<Duration>,
    /// The application-name prefix of this app's task pools (instances are counted by it).
    pub app_prefix: &'a str,
    /// What the connection-budget governor decided.
    pub governor: &'a GovernorView,
    /// The exhaustion forecast (PostgreSQL, once read).
    pub forecast: Option<&'a ForecastView>,
    /// Every database, the primary first (one when there are no replicas).
    pub targets: &'a [TargetStatus],
    /// Where read work goes while no replica is in rotation.
    pub fallback: Fallback,
}

/// A condition that holds now, before hysteresis decides whether it shows; it becomes a
/// [`Recommendation`] with the same fields.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    /// The rule's id, with its subject where it has one (`failing:health_check`): hysteresis
    /// tracks each id on its own.
    pub id: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub action: Option<ActionName>,
    /// Shown without waiting for the hold: the condition was debounced where it was found.
    pub at_once: bool,
}

impl Finding {
    pub(crate) fn new(
        id: impl Into<String>,
        severity: Severity,
        title: impl Into<String>,
        detail: impl Into<String>,
        action: Option<ActionName>,
    ) -> Self {
        Self {
            id: id.into(),
            severity,
            title: title.into(),
            detail: detail.into(),
            action,
            at_once: false,
        }
    }

    /// Named after the database it is about: its title says which, and a replica's id carries
    /// its name (the primary's stays as it is without replicas, so its alerts keep their
    /// identity).
    fn on(self, target: Target) -> Self {
        Self {
            id: match target {
                Target::Primary => self.id,
                Target::Replica(_) => format!("{target}:{}", self.id),
            },
            title: format!("{target}: {}", self.title),
            ..self
        }
    }

    /// Shown as soon as it is found (its source has a hysteresis of its own).
    pub(crate) fn at_once(self) -> Self {
        Self {
            at_once: true,
            ..self
        }
    }
}

/// The id of the line that says nothing is wrong.
pub const ALL_CLEAR: &str = "all_clear";

/// The conditions that hold now, worst first; one "all clear" line when none does. `inputs`
/// are the primary's; each of `replicas` has the rules about one database run over its own
/// pool, leases and server, and with replicas every such finding names its database.
pub(crate) fn evaluate(
    inputs: &Inputs<'_>,
    replicas: &[(Target, Inputs<'_>)],
    t: &Thresholds,
) -> Vec<Finding> {
    let named = !replicas.is_empty();
    let about = |target: Target, inputs: &Inputs<'_>| -> Vec<Finding> {
        rules::PER_TARGET
            .iter()
            .flat_map(|rule| rule(inputs, t))
            .map(|finding| if named { finding.on(target) } else { finding })
            .collect()
    };
    let mut found = about(Target::Primary, inputs);
    for (target, replica) in replicas {
        found.extend(about(*target, replica));
    }
    found.extend(rules::ONCE.iter().flat_map(|rule| rule(inputs, t)));
    if found.is_empty() {
        found.push(Finding::new(
            ALL_CLEAR,
            Severity::Info,
            "All clear",
            format!(
                "no waiting, no stale leases, {:.0} % of the pool in use, tasks healthy.",
                inputs.snapshot.utilization * 100.0
            ),
            None,
        ));
    }
    found.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    found
}

#[cfg(test)]
mod tests {
    use super::{world::*, *};

    #[test]
    fn nothing_wrong_says_so_once() {
        assert_eq!(World::new().ids(), ["all_clear"]);
        assert_eq!(World::new().one("all_clear").severity, Severity::Info);
    }

    #[test]
    fn worst_first() {
        let mut w = World::new().pool_for(600, |s| s.acquire_timeouts = 1);
        w.snapshot.acquire_timeouts = 2;
        w.server = server(1, 10, 1);
        assert_eq!(w.ids(), ["acquire_timeouts", "idle_in_transaction"]);
    }

    #[test]
    fn with_replicas_each_database_is_judged_and_named() {
        let w = World::new().pool_for(600, |s| s.acquire_timeouts = 1);
        let mut w = w;
        w.snapshot.acquire_timeouts = 2;
        let found = evaluate(
            &w.inputs(),
            &[(Target::Replica(1), w.inputs())],
            &Thresholds::default(),
        );
        let named: Vec<(&str, &str)> = found
            .iter()
            .map(|f| (f.id.as_str(), f.title.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("acquire_timeouts", "primary: Acquires are timing out"),
                (
                    "replica-1:acquire_timeouts",
                    "replica-1: Acquires are timing out"
                ),
            ]
        );
    }
}
