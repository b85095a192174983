//! Rules over the read replicas' rotation: a replica out, and read work with nowhere to go.

use leasewatch_types::{Fallback, Target};

use super::{Finding, Inputs, Thresholds};
use crate::recommend::Severity;

/// Each replica out of rotation, with why and where its reads go meanwhile; critical when
/// none is left and reads wait (`REPLICA_FALLBACK=wait`).
pub(super) fn out_of_rotation(inputs: &Inputs<'_>, _: &Thresholds) -> Vec<Finding> {
    let replicas: Vec<_> = inputs
        .targets
        .iter()
        .filter(|t| t.target != Target::Primary)
        .collect();
    let none_left = !replicas.is_empty() && replicas.iter().all(|t| !t.in_rotation);
    let mut found: Vec<Finding> = replicas
        .iter()
        .filter_map(|t| {
            let reason = t.out.as_ref()?;
            let meanwhile = match (none_left, inputs.fallback) {
                (false, _) => "its reads go to the other replicas",
                (true, Fallback::Primary) => "reads go to the primary (REPLICA_FALLBACK=primary)",
                (true, Fallback::Wait) => "read tasks wait (REPLICA_FALLBACK=wait)",
            };
            Some(Finding::new(
                format!("replica_out:{}", t.target),
                Severity::Warning,
                format!("{} is out of rotation", t.target),
                format!(
                    "{} ({}) is {reason}, since {}; {meanwhile}. It comes back by itself after two good probes; check the replica's server and its replication.",
                    t.target,
                    t.address,
                    t.since.format("%H:%M:%S UTC"),
                ),
                None,
            ))
        })
        .collect();
    if none_left && inputs.fallback == Fallback::Wait {
        found.push(Finding::new(
            "no_replica",
            Severity::Critical,
            "Read tasks are waiting: no replica is in rotation",
            "Every replica is out of rotation and REPLICA_FALLBACK=wait keeps read work off the primary; read tasks retry with backoff until one comes back. Set REPLICA_FALLBACK=primary to let them run on the primary meanwhile.",
            None,
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{recommend::world::World, targets::OutReason};

    #[test]
    fn a_replica_out_is_named_with_its_reason_and_where_reads_go() {
        let mut w = World::new().with_replicas(2);
        w.targets[1].in_rotation = false;
        w.targets[1].out = Some(OutReason::Lagging {
            lag_secs: 14.0,
            max_secs: 10.0,
        });
        w.targets[1].since = Utc.with_ymd_and_hms(2026, 12, 3, 6, 0, 0).unwrap();
        let out = w.one("replica_out:replica-1");
        assert_eq!(out.title, "replica-1 is out of rotation");
        assert!(
            out.detail.starts_with(
                "replica-1 (127.0.0.1:5433/app) is replay lags 14.0 s, beyond REPLICA_MAX_LAG (10.0 s), since 06:00:00 UTC; its reads go to the other replicas."
            ),
            "{}",
            out.detail
        );
        assert!(!w.ids().contains(&"no_replica".to_owned()));
    }

    #[test]
    fn with_none_left_reads_fall_back_or_wait() {
        let mut w = World::new().with_replicas(1);
        w.targets[1].in_rotation = false;
        w.targets[1].out = Some(OutReason::Unreachable {
            error: "connection refused".into(),
        });
        assert!(
            w.one("replica_out:replica-1")
                .detail
                .contains("reads go to the primary (REPLICA_FALLBACK=primary)")
        );
        w.fallback = Fallback::Wait;
        assert_eq!(w.one("no_replica").severity, Severity::Critical);
    }
}
