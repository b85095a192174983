//! The rules, one function each, grouped by what they watch. Each returns the findings that
//! hold now (none, one, or one per task); [`ALL`] is the list [`super::evaluate`] runs.

mod failures;
mod forecast;
mod pool;
mod server;
mod targets;
mod tasks;

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Finding, Inputs, Thresholds};
use crate::lease::PoolSnapshot;

/// A rule: the conditions it finds in the inputs, under the thresholds.
pub(super) type Rule = fn(&Inputs<'_>, &Thresholds) -> Vec<Finding>;

/// The rules about one database: its pool, its leases, its server. They run for the primary
/// and for every replica, each finding named after its target when there are replicas.
pub(super) const PER_TARGET: &[Rule] = &[
    pool::waiting,
    pool::acquire_timeouts,
    pool::stale_leases,
    pool::utilization,
    pool::oversized,
    server::pool_can_exhaust_server,
    server::server_connections,
    server::idle_in_transaction,
    server::slow_database,
    server::governor,
    forecast::exhaustion_predicted,
];

/// The rules about the tasks and the replicas' rotation: they run once.
pub(super) const ONCE: &[Rule] = &[
    targets::out_of_rotation,
    failures::slots_exhausted,
    failures::database_unreachable,
    failures::failing,
    failures::retries_exhausted,
    failures::retried,
    tasks::slow_task,
    tasks::scheduler_stopped,
];

/// Whether `holds` is true now and in every snapshot of the last `span` — and the history
/// reaches back that far.
fn sustained(inputs: &Inputs<'_>, span: Duration, holds: impl Fn(&PoolSnapshot) -> bool) -> bool {
    let since = ago(inputs, span);
    let covered = inputs.history.first().is_some_and(|s| s.taken_at <= since);
    covered
        && holds(inputs.snapshot)
        && inputs
            .history
            .iter()
            .filter(|s| s.taken_at >= since)
            .all(&holds)
}

/// The instant `span` before the inputs' now.
fn ago(inputs: &Inputs<'_>, span: Duration) -> DateTime<Utc> {
    inputs.now - chrono::Duration::from_std(span).unwrap_or(chrono::TimeDelta::MAX)
}

/// A span as the recommendations write it: whole seconds.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs())
}
