//! A small world for the rules' unit tests: a pool at t0 + 600 s with ten minutes of
//! 5-second history, no leases, no tasks, an unknown server.

use std::time::Duration;

use chrono::{DateTime, Utc};

use leasewatch_types::{Fallback, Target};

use super::{Finding, Inputs, Thresholds, evaluate};
use crate::{
    failure::FailureKind,
    governor::GovernorView,
    lease::{LeaseInfo, PoolSnapshot, Quantiles},
    predict::ForecastView,
    server_view::{Holder, PgServerView, ServerView},
    targets::TargetStatus,
    tasks::{Outcome, RunRecord, TaskCounts, TaskState, TaskView, Trigger},
};

pub(crate) fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

pub(crate) fn snap(taken_at: DateTime<Utc>) -> PoolSnapshot {
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
        limit: 20,
        budget: None,
        server_connections: None,
        server_usable: None,
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
pub(crate) struct World {
    pub(crate) now: DateTime<Utc>,
    pub(crate) snapshot: PoolSnapshot,
    pub(crate) history: Vec<PoolSnapshot>,
    pub(crate) leases: Vec<LeaseInfo>,
    pub(crate) tasks: Vec<TaskView>,
    pub(crate) running: bool,
    pub(crate) server: ServerView,
    pub(crate) governor: GovernorView,
    pub(crate) round_trip: Option<Duration>,
    pub(crate) forecast: Option<ForecastView>,
    pub(crate) targets: Vec<TargetStatus>,
    pub(crate) fallback: Fallback,
}

impl World {
    pub(crate) fn new() -> Self {
        let now = at(600);
        Self {
            now,
            snapshot: snap(now),
            history: (0..120).map(|i| snap(at(i * 5))).collect(),
            leases: vec![],
            tasks: vec![],
            running: true,
            server: ServerView::Unknown,
            governor: GovernorView {
                enabled: false,
                limit: 20,
                share: 20,
                held: 0,
                queued: 0,
                budget: None,
                reason: "off".into(),
                changed_at: t0(),
            },
            round_trip: None,
            forecast: None,
            targets: vec![],
            fallback: Fallback::Primary,
        }
    }

    /// Sets a field on the current snapshot and on every snapshot of the last `secs`.
    pub(crate) fn pool_for(mut self, secs: i64, set: impl Fn(&mut PoolSnapshot)) -> Self {
        set(&mut self.snapshot);
        let since = self.now - chrono::Duration::seconds(secs);
        for s in self.history.iter_mut().filter(|s| s.taken_at >= since) {
            set(s);
        }
        self
    }

    /// A primary and `n` replicas, all in rotation.
    pub(crate) fn with_replicas(mut self, n: u16) -> Self {
        let target = |target: Target, address: String| TargetStatus {
            target,
            address,
            in_rotation: true,
            out: None,
            since: t0(),
            lag_secs: Some(0.0),
            probed_at: Some(self.now),
            bans: 0,
            events: vec![],
            pool: self.snapshot.clone(),
            leases: vec![],
            governor: self.governor.clone(),
        };
        let mut targets = vec![target(Target::Primary, "127.0.0.1:5432/app".into())];
        targets.extend(
            (1..=n).map(|i| target(Target::Replica(i), format!("127.0.0.1:{}/app", 5432 + i))),
        );
        self.targets = targets;
        self
    }

    /// The inputs the rules read.
    pub(crate) fn inputs(&self) -> Inputs<'_> {
        Inputs {
            now: self.now,
            snapshot: &self.snapshot,
            history: &self.history,
            leases: &self.leases,
            tasks: &self.tasks,
            scheduler_running: self.running,
            server: &self.server,
            round_trip: self.round_trip,
            app_prefix: "leasewatch:tasks",
            governor: &self.governor,
            forecast: self.forecast.as_ref(),
            targets: &self.targets,
            fallback: self.fallback,
        }
    }

    pub(crate) fn findings(&self, t: &Thresholds) -> Vec<Finding> {
        evaluate(&self.inputs(), &[], t)
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.findings(&Thresholds::default())
            .into_iter()
            .map(|f| f.id)
            .collect()
    }

    pub(crate) fn one(&self, id: &str) -> Finding {
        self.findings(&Thresholds::default())
            .into_iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no {id} in {:?}", self.ids()))
    }
}

pub(crate) fn lease(task: &str, held_secs: u64, stale: bool) -> LeaseInfo {
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

pub(crate) fn server(instances: usize, clients: i64, idle_tx: i64) -> ServerView {
    let holder = |application: String, user: &str, connections| Holder {
        application,
        user: user.to_owned(),
        connections,
    };
    let mut holders: Vec<Holder> = (0..instances)
        .map(|i| holder(format!("leasewatch:tasks:{i}"), "app", 2))
        .collect();
    holders.push(holder("psql".into(), "hog", 1));
    ServerView::Postgres(PgServerView {
        read_at: t0(),
        max_connections: 100,
        reserved_connections: 3,
        client_connections: clients,
        by_state: vec![],
        idle_in_transaction: idle_tx,
        waiting: 0,
        holders,
    })
}

pub(crate) fn task(name: &str, interval_secs: u64, runs: Vec<(Outcome, u32, u64)>) -> TaskView {
    TaskView {
        name: name.into(),
        interval_secs,
        schedule: format!("every {interval_secs} s"),
        paused: false,
        state: TaskState::Idle,
        next_run_at: None,
        deferred_since: None,
        last: None,
        last_success_at: None,
        counts: TaskCounts::default(),
        overlap_skips: Vec::new(),
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
                deferred_ms: 0,
                leases: 1,
                scheduled_at: None,
                attempt_log: vec![],
            })
            .collect(),
    }
}

pub(crate) fn failed(cause: FailureKind, error: &str) -> Outcome {
    Outcome::Failed {
        cause,
        error: error.into(),
    }
}

pub(crate) fn ok() -> Outcome {
    Outcome::Succeeded {
        rows: 1,
        detail: "ok".into(),
    }
}
