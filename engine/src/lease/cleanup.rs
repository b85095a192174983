//! Taking leases back: cleanup revokes stale leases and ends their backends; emergency
//! cleanup revokes them all and closes idle connections down to the pool's minimum. Both can
//! report what they would do instead.

use std::{
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    LeaseInfo, LeaseManager, RunContext,
    backend::{BackendIdentity, terminate_backends},
};
use leasewatch_types::Target;

use crate::db::Backend;

/// Which cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CleanupKind {
    /// Revoke stale leases only.
    Stale,
    /// Revoke every background lease and shrink the pool to its minimum.
    Emergency,
    /// Before a forecast exhaustion: revoke stale leases and those held far longer than their
    /// task's runs usually take, and close idle connections down to what running tasks hold
    /// (or the pool's minimum, which the pool would open again at once).
    Predictive,
}

/// What a cleanup did, or with `dry_run`, what it would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CleanupReport {
    /// Which cleanup.
    pub kind: CleanupKind,
    /// Nothing was changed: this is the plan.
    pub dry_run: bool,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Leases revoked (or to revoke).
    pub revoked: Vec<LeaseInfo>,
    /// PostgreSQL backends of the revoked leases ended (or, in a dry run, to end).
    pub terminated: Vec<i32>,
    /// Backends that were no longer there to end: closed by the revocation or by the server
    /// (a pid since reused by another session counts here too, and that session is left
    /// alone).
    #[serde(default)]
    pub already_gone: Vec<i32>,
    /// Backends that could not be terminated, with the reason.
    pub termination_failures: Vec<(i32, String)>,
    /// Idle connections closed (or to close) to bring the pool down to its minimum.
    pub closed_idle: u32,
    /// Open connections before.
    pub pool_size_before: u32,
    /// Tasks whose retry series was reset (or would be) by an emergency cleanup.
    pub retries_reset: Vec<String>,
    /// Things an operator should know (e.g. that SQLite has no backends to terminate).
    pub notes: Vec<String>,
    /// The databases it acted on; with replicas configured, `notes` says what it did on each
    /// (backend pids are each server's own).
    #[serde(default)]
    pub targets: Vec<Target>,
}

impl CleanupReport {
    /// One report for cleanups on several targets: lists joined, counts added, and with
    /// `per_target`, a note for each target saying what it did there.
    ///
    /// # Panics
    /// When `reports` is empty: a cleanup acts on at least one target.
    pub fn merged(reports: Vec<(Target, CleanupReport)>, per_target: bool) -> Self {
        let mut reports = reports.into_iter();
        let (first_target, mut merged) = reports.next().expect("one target at least");
        if per_target {
            merged
                .notes
                .insert(0, format!("{first_target}: {}", merged.summary()));
        }
        merged.targets = vec![first_target];
        for (target, report) in reports {
            if per_target {
                merged.notes.push(format!("{target}: {}", report.summary()));
            }
            merged.targets.push(target);
            merged.revoked.extend(report.revoked);
            merged.terminated.extend(report.terminated);
            merged.already_gone.extend(report.already_gone);
            merged
                .termination_failures
                .extend(report.termination_failures);
            merged.closed_idle += report.closed_idle;
            merged.pool_size_before += report.pool_size_before;
            merged.notes.extend(report.notes);
        }
        merged
    }

    /// One line for logs and the dashboard: "revoked 3 leases held by auction_monitor, ...".
    pub fn summary(&self) -> String {
        let verb = |done: &str, planned: &str| {
            if self.dry_run {
                planned.to_owned()
            } else {
                done.to_owned()
            }
        };
        let mut tasks: Vec<&str> = self.revoked.iter().map(|l| l.task.as_str()).collect();
        tasks.sort_unstable();
        tasks.dedup();
        let mut parts = vec![format!(
            "{} {} lease{}{}",
            verb("revoked", "would revoke"),
            self.revoked.len(),
            if self.revoked.len() == 1 { "" } else { "s" },
            if tasks.is_empty() {
                String::new()
            } else {
                format!(" held by {}", tasks.join(", "))
            }
        )];
        if !self.terminated.is_empty() {
            parts.push(format!(
                "{} {} backend{}",
                verb("terminated", "would terminate"),
                self.terminated.len(),
                if self.terminated.len() == 1 { "" } else { "s" }
            ));
        }
        if !self.already_gone.is_empty() {
            parts.push(format!(
                "{} backend{} already gone",
                self.already_gone.len(),
                if self.already_gone.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ));
        }
        if !self.termination_failures.is_empty() {
            parts.push(format!(
                "{} backend{} could not be terminated",
                self.termination_failures.len(),
                if self.termination_failures.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ));
        }
        // An emergency cleanup always says what it did to the idle connections; a predictive
        // one when it closed some.
        if self.kind == CleanupKind::Emergency
            || (self.kind == CleanupKind::Predictive && self.closed_idle > 0)
        {
            parts.push(format!(
                "{} {} idle connection{}",
                verb("closed", "would close"),
                self.closed_idle,
                if self.closed_idle == 1 { "" } else { "s" }
            ));
        }
        if !self.retries_reset.is_empty() {
            parts.push(format!(
                "{} the retries of {}",
                verb("reset", "would reset"),
                self.retries_reset.join(", ")
            ));
        }
        parts.join(", ")
    }
}

impl LeaseManager {
    /// it would do.
    pub async fn cleanup(&self, dry_run: bool) -> CleanupReport {
        self.reclaim(CleanupKind::Stale, dry_run, &|_| Duration::MAX)
            .await
    }

    /// Revokes every background lease, terminates their backends and closes idle connections
    /// down to the pool's minimum; with `dry_run`, only reports what it would do.
    pub async fn emergency_cleanup(&self, dry_run: bool) -> CleanupReport {
        self.reclaim(CleanupKind::Emergency, dry_run, &|_| Duration::MAX)
            .await
    }

    /// Before a forecast exhaustion: revokes stale leases and those held at least
    /// `long_held(task)` and ends their backends; with `close_idle`, also closes idle
    /// connections down to what running tasks hold (at least the pool's minimum, which the
    /// pool would open again at once). Only this instance's own leases and connections: never
    /// another application's sessions.
    pub async fn predictive_cleanup(
        &self,
        long_held: &(dyn Fn(&str) -> Duration + Sync),
        close_idle: bool,
    ) -> CleanupReport {
        let mut report = self
            .reclaim(CleanupKind::Predictive, false, long_held)
            .await;
        if close_idle {
            let pool = self.shared.db.pool_status();
            let in_use = pool.size.saturating_sub(pool.idle);
            let above = pool.size.saturating_sub(pool.min.max(in_use));
            report.closed_idle = self.close_idle(pool.idle.min(above)).await;
        }
        report
    }

    async fn reclaim(
        &self,
        kind: CleanupKind,
        dry_run: bool,
        long_held: &(dyn Fn(&str) -> Duration + Sync),
    ) -> CleanupReport {
        let shared = &self.shared;
        let pool = shared.db.pool_status();
        let now = Instant::now();
        // Decide and (unless dry) take the leases out under one lock, so the report names
        // exactly the leases acted on.
        let chosen: Vec<(LeaseInfo, Option<BackendIdentity>, Option<RunContext>)> = {
            let mut held = shared.leases.lock();
            let ids: Vec<u64> = held
                .iter()
                .filter(|(_, h)| match kind {
                    CleanupKind::Stale => h.is_stale(now),
                    CleanupKind::Emergency => true,
                    CleanupKind::Predictive => {
                        h.is_stale(now) || now.duration_since(h.acquired) >= long_held(&h.task)
                    }
                })
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| {
                    let lease = held.get(&id)?;
                    let info = lease.info(id, now);
                    let backend = lease.backend;
                    let run = if dry_run {
                        None
                    } else {
                        held.remove(&id).map(|h| h.run)
                    };
                    Some((info, backend, run))
                })
                .collect()
        };
        let revoked: Vec<LeaseInfo> = chosen.iter().map(|(info, ..)| info.clone()).collect();
        let backends: Vec<BackendIdentity> = chosen.iter().filter_map(|(_, b, _)| *b).collect();
        let pids: Vec<i32> = backends.iter().map(|b| b.pid).collect();
        let closed_target = match kind {
            CleanupKind::Stale => 0,
            // The revoked leases' connections close as their runs drop them.
            CleanupKind::Emergency => pool.idle.min(
                pool.size
                    .saturating_sub(u32::try_from(revoked.len()).unwrap_or(u32::MAX))
                    .saturating_sub(pool.min),
            ),
            CleanupKind::Predictive => pool.idle.min(
                pool.size
                    .saturating_sub(pool.min.max(pool.size.saturating_sub(pool.idle))),
            ),
        };
        let mut report = CleanupReport {
            kind,
            dry_run,
            at: Utc::now(),
            revoked,
            terminated: pids,
            already_gone: Vec::new(),
            termination_failures: Vec::new(),
            closed_idle: closed_target,
            pool_size_before: pool.size,
            retries_reset: Vec::new(),
            notes: Vec::new(),
            targets: Vec::new(),
        };
        if shared.db.backend() == Backend::Sqlite && !report.revoked.is_empty() {
            report.notes.push(
                "SQLite has no server backends to terminate; revoked runs stop and their \
                 connections are closed"
                    .to_owned(),
            );
        }
        if dry_run {
            return report;
        }

        let reason = match kind {
            CleanupKind::Stale => "stale: held longer than its lease timeout".to_owned(),
            CleanupKind::Emergency => "emergency cleanup".to_owned(),
            CleanupKind::Predictive => {
                "predictive cleanup: the server's connections are forecast to run out".to_owned()
            }
        };
        for (info, _, run) in &chosen {
            if let Some(run) = run {
                run.revoke(reason.clone());
            }
            shared.revoked.fetch_add(1, Relaxed);
            self.count(&info.task, |c| c.revoked += 1);
        }
        if !backends.is_empty() {
            let ended = terminate_backends(&shared.db, &backends).await;
            report.terminated = ended.terminated;
            report.already_gone = ended.already_gone;
            report.termination_failures = ended.failures;
        }
        report.closed_idle = self.close_idle(closed_target).await;
        if !report.revoked.is_empty() || report.closed_idle > 0 {
            tracing::warn!(kind = ?kind, "{}", report.summary());
        }
        report
    }

    /// Closes up to `count` idle connections; returns how many it closed.
    async fn close_idle(&self, count: u32) -> u32 {
        let mut closed = 0;
        while closed < count {
            let Some(conn) = self.shared.db.pool().try_acquire() else {
                break;
            };
            let _ = conn.close().await;
            closed += 1;
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(task: &str) -> LeaseInfo {
        LeaseInfo {
            id: 1,
            task: task.to_owned(),
            run_id: 1,
            acquired_at: Utc::now(),
            backend_pid: Some(7),
            held_ms: 40_000,
            stale: true,
        }
    }

    #[test]
    fn summaries_say_what_was_done_or_would_be() {
        let mut report = CleanupReport {
            kind: CleanupKind::Emergency,
            dry_run: true,
            at: Utc::now(),
            revoked: vec![
                info("auction_monitor"),
                info("auction_monitor"),
                info("health_check"),
            ],
            terminated: vec![7, 8, 9],
            already_gone: vec![],
            termination_failures: vec![],
            closed_idle: 1,
            pool_size_before: 6,
            retries_reset: vec![],
            notes: vec![],
            targets: Vec::new(),
        };
        assert_eq!(
            report.summary(),
            "would revoke 3 leases held by auction_monitor, health_check, would terminate 3 \
             backends, would close 1 idle connection"
        );
        report.dry_run = false;
        report.kind = CleanupKind::Stale;
        report.revoked.truncate(1);
        report.terminated.truncate(1);
        assert_eq!(
            report.summary(),
            "revoked 1 lease held by auction_monitor, terminated 1 backend"
        );
    }
}
