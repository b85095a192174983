//! Rules over the database server as a whole (PostgreSQL): pools that together can exhaust
//! it, its connections running out, sessions idle in transaction, a slow round trip.

use super::{Finding, Inputs, Thresholds};
use crate::{
    recommend::Severity,
    server_view::{IDLE_IN_TRANSACTION_AFTER, PgServerView, ServerView},
    tasks::{Outcome, SkipCause},
};

/// The PostgreSQL view, when there is one.
fn postgres<'a>(inputs: &Inputs<'a>) -> Option<&'a PgServerView> {
    match inputs.server {
        ServerView::Postgres(view) => Some(view),
        _ => None,
    }
}

/// Instances (counted by their task pools' `application_name`) × pool max exceeds the slots
/// ordinary roles can use.
/// With the governor on, the instances share the budget instead: nothing to warn of.
pub(super) fn pool_can_exhaust_server(inputs: &Inputs<'_>, _: &Thresholds) -> Vec<Finding> {
    let Some(view) = postgres(inputs).filter(|_| !inputs.governor.enabled) else {
        return Vec::new();
    };
    let max = inputs.snapshot.max;
    let mut instances: Vec<&str> = view
        .holders
        .iter()
        .map(|h| h.application.as_str())
        .filter(|name| name.starts_with(inputs.app_prefix))
        .collect();
    instances.sort_unstable();
    instances.dedup();
    let instances = instances.len().max(1) as i64;
    let usable = view.usable_connections();
    let demand = instances * i64::from(max);
    if demand <= usable {
        return Vec::new();
    }
    vec![Finding::new(
        "pool_can_exhaust_server",
        Severity::Critical,
        "The pools can exhaust the database server",
        format!(
            "{instances} instance{} × pool max {} = {demand} connections, but the server allows {usable} ({} max_connections − {} reserved). Turn the governor on (GOVERNOR=on) to share the server between instances, or lower DB_MAX_CONNECTIONS to at most {} per instance.",
            if instances == 1 { "" } else { "s" },
            max,
            view.max_connections,
            view.reserved_connections,
            (usable / instances).max(1)
        ),
        None,
    )]
}

/// Client connections, all clients together, at or above `server_connections_warning` of
/// `max_connections`.
pub(super) fn server_connections(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    let Some(view) = postgres(inputs) else {
        return Vec::new();
    };
    let share = view.client_connections as f64 / view.max_connections.max(1) as f64;
    if share < t.server_connections_warning {
        return Vec::new();
    }
    vec![Finding::new(
        "server_connections",
        Severity::Warning,
        "The database server is running out of connections",
        format!(
            "{} of {} connections in use ({:.0} %), all clients together: {}.",
            view.client_connections,
            view.max_connections,
            share * 100.0,
            view.holders_line()
        ),
        None,
    )]
}

/// Sessions idle inside an open transaction for over [`IDLE_IN_TRANSACTION_AFTER`].
pub(super) fn idle_in_transaction(inputs: &Inputs<'_>, _: &Thresholds) -> Vec<Finding> {
    let Some(view) = postgres(inputs).filter(|view| view.idle_in_transaction > 0) else {
        return Vec::new();
    };
    vec![Finding::new(
        "idle_in_transaction",
        Severity::Warning,
        "Sessions are idle inside open transactions",
        format!(
            "{} session{} idle in transaction for over {} s: each holds a connection and its locks doing nothing. Find them in pg_stat_activity; idle_in_transaction_session_timeout ends them.",
            view.idle_in_transaction,
            if view.idle_in_transaction == 1 {
                ""
            } else {
                "s"
            },
            IDLE_IN_TRANSACTION_AFTER.as_secs()
        ),
        None,
    )]
}

/// The health check's last round trip took longer than `slow_round_trip`.
pub(super) fn slow_database(inputs: &Inputs<'_>, t: &Thresholds) -> Vec<Finding> {
    inputs
        .round_trip
        .filter(|rt| *rt > t.slow_round_trip)
        .map(|round_trip| {
            Finding::new(
                "slow_database",
                Severity::Warning,
                "The database answers slowly",
                format!(
                    "the last health check's round trip took {:.0} ms (the line is {} ms).",
                    round_trip.as_secs_f64() * 1000.0,
                    t.slow_round_trip.as_millis()
                ),
                None,
            )
        })
        .into_iter()
        .collect()
}

/// The server's budget holds this instance below `DB_MAX_CONNECTIONS`: what the governor
/// decided and why, as information; a warning when runs were skipped because the limit stayed
/// full. (Its limit below the share is normal: it grows with demand.)
pub(super) fn governor(inputs: &Inputs<'_>, _: &Thresholds) -> Vec<Finding> {
    let g = inputs.governor;
    let skipped: Vec<String> = inputs
        .tasks
        .iter()
        .filter_map(|task| {
            let last = task.history.first()?;
            matches!(
                last.outcome,
                Outcome::Skipped {
                    cause: SkipCause::OverLimit,
                    ..
                }
            )
            .then(|| format!("{} run {}", task.name, last.run_id))
        })
        .collect();
    if !g.enabled || (g.share >= inputs.snapshot.max && skipped.is_empty()) {
        return Vec::new();
    }
    // Read every 2 s, but not while the server refuses the control connection too: say when.
    let budget = g.budget.as_ref().map_or_else(
        || "the server is not read yet".to_owned(),
        |b| {
            format!(
                "the server as read at {}: {}",
                b.read_at.format("%H:%M:%S UTC"),
                b.reason()
            )
        },
    );
    let (severity, title, advice) = if skipped.is_empty() {
        (
            Severity::Info,
            format!(
                "The server's budget holds this instance to {} connections",
                g.share
            ),
            String::new(),
        )
    } else {
        (
            Severity::Warning,
            "Runs are skipped for want of connections".to_owned(),
            format!(
                " Skipped at the full limit: {}. Higher-priority tasks ran first; free slots on the server or lower BUDGET_HEADROOM.",
                skipped.join(", ")
            ),
        )
    };
    vec![Finding::new(
        "governor",
        severity,
        title,
        format!(
            "limit now {} (this instance's share {}, DB_MAX_CONNECTIONS {}); {budget}. Last change: {}.{advice}",
            g.limit, g.share, inputs.snapshot.max, g.reason
        ),
        None,
    )]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::recommend::{Severity, world::*};

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
            "5 instances × pool max 20 = 100 connections, but the server allows 97 (100 max_connections − 3 reserved). Turn the governor on (GOVERNOR=on) to share the server between instances, or lower DB_MAX_CONNECTIONS to at most 19 per instance."
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

    #[test]
    fn the_governor_says_what_it_decided_and_warns_when_runs_are_skipped() {
        use crate::tasks::{Outcome, SkipCause};
        let mut w = World::new();
        w.server = server(5, 10, 0);
        w.governor.enabled = true;
        w.governor.limit = 3;
        assert_eq!(
            w.ids(),
            ["all_clear"],
            "a limit grown only as far as the demand is nothing to report"
        );
        w.governor.share = 4;
        w.governor.reason = "limit 3 of share 4: the server refused".into();
        let f = w.one("governor");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(
            f.title,
            "The server's budget holds this instance to 4 connections"
        );
        assert!(
            f.detail.starts_with(
                "limit now 3 (this instance's share 4, DB_MAX_CONNECTIONS 20); the server is not read yet. Last change: limit 3 of share 4: the server refused."
            ),
            "{}",
            f.detail
        );
        assert!(!w.ids().contains(&"pool_can_exhaust_server".to_owned()));
        // With the server read, the numbers carry the time they were read.
        let crate::server_view::ServerView::Postgres(view) = server(2, 97, 0) else {
            unreachable!()
        };
        w.governor.budget = Some(crate::governor::Budget::of(
            &view,
            crate::governor::Headroom::Slots(3),
            "0",
        ));
        let f = w.one("governor");
        assert!(
            f.detail.contains(
                "the server as read at 08:00:00 UTC: share 46 of 93: 2 instances, 1 foreign backend"
            ),
            "{}",
            f.detail
        );
        w.governor.budget = None;

        let skipped = Outcome::Skipped {
            reason: "over".into(),
            cause: SkipCause::OverLimit,
        };
        w.tasks = vec![task("auction_monitor", 1800, vec![(skipped, 1, 0)])];
        w.governor.share = 20;
        let f = w.one("governor");
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.detail
                .contains("Skipped at the full limit: auction_monitor run 10."),
            "{}",
            f.detail
        );
    }
}
