//! Rules over how task runs failed. They read each failure's [`FailureKind`], never its
//! message: a slot refusal (any task) and a health check that cannot connect speak for the
//! database server, so those runs do not also count as the task failing.

use super::{Finding, Inputs, Thresholds, ago, secs};
use crate::{
    failure::FailureKind,
    recommend::Severity,
    server_view::ServerView,
    tasks::{Outcome, RunRecord, TaskView},
};

/// The task whose failures to connect mean the database is unreachable.
const HEALTH_CHECK: &str = "health_check";

/// The task's last run, its kind of failure and its error, if that run failed.
fn last_failure(task: &TaskView) -> Option<(&RunRecord, FailureKind, &str)> {
    let last = task.history.first()?;
    match &last.outcome {
        Outcome::Failed { cause, error } => Some((last, *cause, error)),
        _ => None,
    }
}

/// Whether a failure says something about the database server rather than the task: a
/// refused slot, or the health check unable to connect.
fn speaks_for_the_server(task: &TaskView, cause: FailureKind) -> bool {
    cause == FailureKind::SlotsExhausted || (task.name == HEALTH_CHECK && cause.is_connection())
}

/// Whether the task's last `failures_in_a_row` runs all failed.
fn failing_in_a_row(task: &TaskView, t: &Thresholds) -> bool {
    task.history.len() >= t.failures_in_a_row
        && task
            .history
            .iter()
            .take(t.failures_in_a_row)
            .all(|r| matches!(r.outcome, Outcome::Failed { .. }))
}

/// PostgreSQL refused connections for want of a free slot: one line for the server, naming
/// the first task it refused, however many it refused, and who holds the slots as last read.
pub(super) fn slots_exhausted(inputs: &Inputs<'_>, _: &Thresholds) -> Vec<Finding> {
    let holders = match inputs.server {
        ServerView::Postgres(view) => format!(
            " The server's {} slots for ordinary roles were held by: {} (read at {}).",
            view.usable_connections(),
            view.holders_line(),
            view.read_at.format("%H:%M:%S UTC")
        ),
        _ => String::new(),
    };
    inputs
        .tasks
        .iter()
        .find_map(|task| {
            let (last, cause, error) = last_failure(task)?;
            (cause == FailureKind::SlotsExhausted).then(|| {
                Finding::new(
                    "server_slots_exhausted",
                    Severity::Critical,
                    "PostgreSQL refuses new connections: no free slots",
                    format!(
                        "{} could not get a connection after {} attempts: {error}.{holders} Leasewatch's pool is not the cause and a cleanup will not help: end the sessions that should not be there (pg_terminate_backend), and keep every client's maximum, summed over instances, under max_connections.",
                        task.name, last.attempts
                    ),
                    None,
                )
            })
        })
        .into_iter()
        .collect()
}

/// The health check's last run could not get a connection.
pub(super) fn database_unreachable(inputs: &Inputs<'_>, _: &Thresholds) -> Vec<Finding> {
    inputs
        .tasks
        .iter()
        .filter(|task| task.name == HEALTH_CHECK)
        .filter_map(|task| {
            let (last, cause, error) = last_failure(task)?;
            cause.is_connection().then(|| {
                Finding::new(
                    "database_unreachable",
                    Severity::Critical,
                    "The database is unreachable",
                    format!(
                        "the health check failed after {} attempts: {error}",
                        last.attempts
                    ),
                    None,
                )
            })
        })
        .collect()
}

/// A task's last `failures_in_a_row` runs failed (for a reason of its own).
pub(super) fn failing(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    inputs
        .tasks
        .iter()
        .filter_map(|task| {
            let (last, cause, error) = last_failure(task)?;
            (!speaks_for_the_server(task, cause) && failing_in_a_row(task, t)).then(|| {
                Finding::new(
                    format!("failing:{}", task.name),
                    Severity::Warning,
                    format!("{} keeps failing", task.name),
                    format!(
                        "its last {} runs failed; the last, after {} attempts: {error}",
                        t.failures_in_a_row, last.attempts
                    ),
                    None,
                )
            })
        })
        .collect()
}

/// A task's last run failed after retrying (and it is not yet failing in a row). A single
/// failure without retries (a logic error) is in the task table, not here.
pub(super) fn retries_exhausted(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    inputs
        .tasks
        .iter()
        .filter_map(|task| {
            let (last, cause, error) = last_failure(task)?;
            (!speaks_for_the_server(task, cause) && !failing_in_a_row(task, t) && last.attempts > 1)
                .then(|| {
                    Finding::new(
                        format!("retries_exhausted:{}", task.name),
                        Severity::Warning,
                        format!("{} failed after its retries", task.name),
                        format!(
                            "run {} failed after {} attempts: {error}",
                            last.run_id, last.attempts
                        ),
                        None,
                    )
                })
        })
        .collect()
}

/// Runs within `timeout_window` that succeeded only after retries: transient faults the
/// retries absorbed, told for the whole window so an operator who looks later still learns
/// of them.
pub(super) fn retried(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    let window_start = ago(inputs, t.timeout_window);
    inputs
        .tasks
        .iter()
        .filter_map(|task| {
            let retried: Vec<&RunRecord> = task
                .history
                .iter()
                .filter(|r| {
                    r.started_at >= window_start
                        && r.retried_after.is_some()
                        && matches!(r.outcome, Outcome::Succeeded { .. })
                })
                .collect();
            let latest = retried.first()?;
            Some(Finding::new(
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
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{
        failure::FailureKind,
        recommend::{Severity, world::*},
    };

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
        assert!(
            f.detail.contains("a cleanup will not help"),
            "not the pool's advice: {}",
            f.detail
        );

        // With the server read, it names who holds the slots.
        w.server = server(1, 97, 0);
        let f = w.one("server_slots_exhausted");
        assert!(
            f.detail.contains(
                "The server's 97 slots for ordinary roles were held by: \
                 2 leasewatch:tasks:0 (user app), 1 psql (user hog) (read at "
            ),
            "{}",
            f.detail
        );
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
}
