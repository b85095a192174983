//! Rules over the pool and its history: waiting, acquire timeouts, stale leases, utilization,
//! an oversized minimum.

use std::{collections::BTreeMap, time::Duration};

use super::{Finding, Inputs, Thresholds, ago, secs, sustained};
use crate::{
    lease::PoolSnapshot,
    recommend::{ActionName, Severity},
};

/// Acquires have queued behind a full pool, without a break, for `waiting_for`. An acquire in
/// flight while the pool still has room (its liveness check, a connection being opened) is not
/// queueing: with tasks every second, every sample could catch one.
pub(super) fn waiting(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    let queueing = |x: &PoolSnapshot| x.waiting > 0 && x.active >= x.max;
    let s = inputs.snapshot;
    if !queueing(s) || !sustained(inputs, t.waiting_for, queueing) {
        return Vec::new();
    }
    vec![Finding::new(
        "waiting",
        Severity::Warning,
        "Tasks are queueing for connections",
        format!(
            "{} acquires waiting now, and the pool has been full with acquires waiting for {}: all {} connections in use. Look for leases held long, or raise DB_MAX_CONNECTIONS if the server has room.",
            s.waiting,
            secs(t.waiting_for),
            s.max,
        ),
        None,
    )]
}

/// Acquires gave up within `timeout_window`: counted since the last snapshot at or before the
/// window's start (all of them when the history does not reach back that far).
pub(super) fn acquire_timeouts(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    let s = inputs.snapshot;
    let window_start = ago(inputs, t.timeout_window);
    let timeouts_before = inputs
        .history
        .iter()
        .rev()
        .find(|x| x.taken_at <= window_start)
        .map_or(0, |x| x.acquire_timeouts);
    let recent_timeouts = s.acquire_timeouts.saturating_sub(timeouts_before);
    if recent_timeouts == 0 {
        return Vec::new();
    }
    vec![Finding::new(
        "acquire_timeouts",
        Severity::Critical,
        "Acquires are timing out",
        format!(
            "{recent_timeouts} acquires gave up in the last {} ({} since start); the pool is exhausted ({} of max {}, {} waiting). Run an emergency cleanup if leases are stuck.",
            secs(t.timeout_window),
            s.acquire_timeouts,
            s.total,
            s.max,
            s.waiting
        ),
        Some(ActionName::EmergencyCleanup),
    )]
}

/// Leases held past the lease timeout, one line per task; critical once the oldest is
/// `stale_critical_age` old.
pub(super) fn stale_leases(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    let mut stale_by_task: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for lease in inputs.leases.iter().filter(|l| l.stale) {
        let entry = stale_by_task.entry(&lease.task).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(lease.held_ms);
    }
    stale_by_task
        .into_iter()
        .map(|(task, (count, oldest_ms))| {
            let critical = Duration::from_millis(oldest_ms) >= t.stale_critical_age;
            Finding::new(
                format!("stale_lease:{task}"),
                if critical { Severity::Critical } else { Severity::Warning },
                format!("{task} holds stale connections"),
                format!(
                    "{count} lease{} held by {task} past the lease timeout, the oldest for {} s. Cleanup revokes them and ends their backends.",
                    if count == 1 { "" } else { "s" },
                    oldest_ms / 1000
                ),
                Some(ActionName::Cleanup),
            )
        })
        .collect()
}

/// Utilization at or above a line for `utilization_for`: the critical line first, else the
/// warning line.
pub(super) fn utilization(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    let s = inputs.snapshot;
    [
        (t.utilization_critical, Severity::Critical),
        (t.utilization_warning, Severity::Warning),
    ]
    .into_iter()
    .find(|(share, _)| {
        s.utilization >= *share && sustained(inputs, t.utilization_for, |x| x.utilization >= *share)
    })
    .map(|(share, severity)| {
        let level = severity.as_str();
        Finding::new(
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
        )
    })
    .into_iter()
    .collect()
}

/// Every open connection idle, above the minimum, for `oversized_for`.
pub(super) fn oversized(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    let s = inputs.snapshot;
    let idle_above_min = |x: &PoolSnapshot| x.total > x.min && x.idle == x.total;
    if !idle_above_min(s) || !sustained(inputs, t.oversized_for, idle_above_min) {
        return Vec::new();
    }
    vec![Finding::new(
        "oversized",
        Severity::Info,
        "The pool holds more idle connections than it needs",
        format!(
            "all {} open connections idle for {} while the minimum is {}: lower DB_MIN_CONNECTIONS or DB_IDLE_TIMEOUT to hand them back to the server.",
            s.total,
            secs(t.oversized_for),
            s.min
        ),
        None,
    )]
}

#[cfg(test)]
mod tests {
    use crate::{
        lease::PoolSnapshot,
        recommend::{ActionName, Severity, world::*},
    };

    #[test]
    fn waiting_must_be_sustained() {
        let full = |s: &mut PoolSnapshot, waiting| {
            s.waiting = waiting;
            (s.total, s.idle, s.active) = (s.max, 0, s.max);
        };
        let w = World::new().pool_for(30, |s| full(s, 3));
        let f = w.one("waiting");
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.detail.starts_with("3 acquires waiting now"),
            "{}",
            f.detail
        );
        assert_eq!(
            World::new().pool_for(25, |s| full(s, 3)).ids(),
            ["all_clear"],
            "not for 30 s yet"
        );
        let mut short_history = World::new().pool_for(600, |s| full(s, 1));
        short_history.history.retain(|s| s.taken_at > at(580));
        assert_eq!(
            short_history.ids(),
            ["all_clear"],
            "history does not reach back 30 s"
        );
    }

    #[test]
    fn an_acquire_in_flight_with_room_in_the_pool_is_not_queueing() {
        // Tasks every second: each sample catches one acquire checking its connection.
        let w = World::new().pool_for(600, |s| {
            s.waiting = 1;
            (s.total, s.idle, s.active) = (3, 2, 1);
        });
        assert_eq!(w.ids(), ["all_clear"]);
    }

    #[test]
    fn recent_acquire_timeouts_are_critical() {
        let mut w = World::new().pool_for(600, |s| s.acquire_timeouts = 2);
        w.snapshot.acquire_timeouts = 3;
        let f = w.one("acquire_timeouts");
        assert_eq!(
            (f.severity, f.action),
            (Severity::Critical, Some(ActionName::EmergencyCleanup))
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
            (Severity::Warning, Some(ActionName::Cleanup))
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
}
