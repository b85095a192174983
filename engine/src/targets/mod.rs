//! The databases tasks run on: the primary, where every write and all coordination (advisory
//! locks, claimed starts, audit, history) go, and read replicas, each with its own pool, lease
//! manager, governor and health probe. Read work goes to the least-loaded replica in
//! rotation; a replica that fails its probe or lags beyond `REPLICA_MAX_LAG` is taken out
//! within seconds and put back once it answers again.

mod health;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use leasewatch_types::{Fallback, Route, Target};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use health::{CONFIRM, EVENTS_KEPT, Health, HealthEvent, OutReason, ProbeResult};

use crate::{
    db::PROBE_TIMEOUT,
    governor::GovernorView,
    lease::{LeaseInfo, LeaseManager, PoolSnapshot},
};

/// How often every target is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How replicas are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// A replica whose replay lags by more than this is taken out (`REPLICA_MAX_LAG`).
    pub max_lag: Duration,
    /// Where read work goes while no replica is in rotation (`REPLICA_FALLBACK`).
    pub fallback: Fallback,
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(10),
            fallback: Fallback::Primary,
        }
    }
}

/// Why read work found nowhere to run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no replica is in rotation ({reasons}) and REPLICA_FALLBACK=wait: read work waits for one")]
pub struct NoReplica {
    /// Each replica and why it is out.
    pub reasons: String,
}

/// The primary and the replicas. Cheap to clone.
#[derive(Clone)]
pub struct Targets {
    shared: Arc<Shared>,
}

struct Shared {
    /// The primary first, then the replicas in their configured order.
    members: Vec<Member>,
    settings: ReplicaSettings,
    /// Where the search among equally loaded replicas starts, so they take turns.
    turn: AtomicUsize,
    /// Bans a task's failed connection caused, for the next probe to hand on to the audit.
    failed_connects: Mutex<Vec<(Target, HealthEvent)>>,
}

struct Member {
    target: Target,
    leases: LeaseManager,
    health: Mutex<Health>,
}

/// One target as the API, the dashboard and `/metrics` show it; no database access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetStatus {
    /// Its name: `primary`, `replica-1`, ...
    pub target: Target,
    /// Where it is: `host:port/db` (never the user or password).
    pub address: String,
    /// Whether it takes work now (the primary always takes writes, whatever its probe says).
    pub in_rotation: bool,
    /// Why it is out of rotation, while it is.
    pub out: Option<OutReason>,
    /// Since when it has been in (or out of) rotation.
    pub since: DateTime<Utc>,
    /// The replay lag last read, in seconds (0 on the primary).
    pub lag_secs: Option<f64>,
    /// When it was last probed.
    pub probed_at: Option<DateTime<Utc>>,
    /// Times it was taken out of rotation, since start.
    pub bans: u64,
    /// Its bans and recoveries, newest first (the last [`EVENTS_KEPT`]).
    pub events: Vec<HealthEvent>,
    /// Its pool now.
    pub pool: PoolSnapshot,
    /// The leases held on it now.
    pub leases: Vec<LeaseInfo>,
    /// Its governor: the lease limit, the share and why.
    pub governor: GovernorView,
}

impl From<LeaseManager> for Targets {
    /// The primary alone: every route leads to it.
    fn from(primary: LeaseManager) -> Self {
        Self::new(primary, Vec::new(), ReplicaSettings::default())
    }
}

impl Targets {
    /// `primary` and `replicas` (named `replica-1`, ... in order); replicas start out of
    /// rotation until their first probe answers.
    pub fn new(
        primary: LeaseManager,
        replicas: Vec<LeaseManager>,
        settings: ReplicaSettings,
    ) -> Self {
        let now = Utc::now();
        let mut members = vec![Member {
            target: Target::Primary,
            leases: primary,
            health: Mutex::new(Health::in_rotation(now)),
        }];
        members.extend(replicas.into_iter().zip(1u16..).map(|(leases, n)| Member {
            target: Target::Replica(n),
            leases,
            health: Mutex::new(Health::unprobed(now)),
        }));
        Self {
            shared: Arc::new(Shared {
                members,
                settings,
                turn: AtomicUsize::new(0),
                failed_connects: Mutex::default(),
            }),
        }
    }

    /// The primary's lease manager.
    pub fn primary(&self) -> &LeaseManager {
        &self.shared.members[0].leases
    }

    /// Whether any replica is configured.
    pub fn has_replicas(&self) -> bool {
        self.shared.members.len() > 1
    }

    /// How replicas are used.
    pub fn settings(&self) -> ReplicaSettings {
        self.shared.settings
    }

    /// Every target's lease manager, the primary first.
    pub fn all(&self) -> impl Iterator<Item = (Target, &LeaseManager)> {
        self.shared.members.iter().map(|m| (m.target, &m.leases))
    }

    /// One target's lease manager.
    pub fn get(&self, target: Target) -> Option<&LeaseManager> {
        self.member(target).map(|m| &m.leases)
    }

    /// The replicas in rotation, in configured order.
    pub fn replicas_in_rotation(&self) -> Vec<(Target, LeaseManager)> {
        self.replicas()
            .filter(|m| m.health.lock().is_in_rotation())
            .map(|m| (m.target, m.leases.clone()))
            .collect()
    }

    /// Every target with its health, pool and leases, the primary first.
    pub fn status(&self) -> Vec<TargetStatus> {
        self.shared
            .members
            .iter()
            .map(|m| {
                let health = m.health.lock().clone();
                TargetStatus {
                    target: m.target,
                    address: m.leases.database().url().address(),
                    in_rotation: health.is_in_rotation(),
                    out: health.out,
                    since: health.since,
                    lag_secs: health.lag.map(|lag| lag.as_secs_f64()),
                    probed_at: health.probed_at,
                    bans: health.bans,
                    events: health.events.into(),
                    pool: m.leases.snapshot(),
                    leases: m.leases.leases(),
                    governor: m.leases.governor().view(),
                }
            })
            .collect()
    }

    /// Where work on `route` runs now. The primary takes every write, whatever its health:
    /// writes wait for it rather than go anywhere else. Read work takes the replica in rotation
    /// whose leases use the least of its limit (equals take turns); with none in rotation, the
    /// primary, unless `REPLICA_FALLBACK=wait`.
    pub fn route(&self, route: Route) -> Result<(Target, LeaseManager), NoReplica> {
        let primary = || (Target::Primary, self.primary().clone());
        if route == Route::Primary || !self.has_replicas() {
            return Ok(primary());
        }
        let replicas: Vec<&Member> = self.replicas().collect();
        let start = self.shared.turn.fetch_add(1, Relaxed) % replicas.len();
        let chosen = replicas[start..]
            .iter()
            .chain(&replicas[..start])
            .filter(|m| m.health.lock().is_in_rotation())
            .min_by(|a, b| a.leases.utilisation().total_cmp(&b.leases.utilisation()));
        match (chosen, self.shared.settings.fallback) {
            (Some(m), _) => Ok((m.target, m.leases.clone())),
            (None, Fallback::Primary) => Ok(primary()),
            (None, Fallback::Wait) => Err(NoReplica {
                reasons: self
                    .replicas()
                    .map(|m| {
                        let out = m.health.lock().out.clone();
                        format!(
                            "{}: {}",
                            m.target,
                            out.map_or_else(|| "in rotation".to_owned(), |r| r.to_string())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }

    /// A task could not connect to `target`: a replica leaves rotation now rather than at the
    /// next probe, so the run's retry goes elsewhere. A ban is handed on with the next probe's.
    pub fn failed_connect(&self, target: Target, error: &str) {
        let Some(member) = self.member(target).filter(|m| m.target != Target::Primary) else {
            return;
        };
        let event = member
            .health
            .lock()
            .failed_connect(Utc::now(), error.to_owned());
        if let Some(event) = event {
            log_event(target, &event);
            self.shared.failed_connects.lock().push((target, event));
        }
    }

    /// Probes every target at once (each bounded by the probe timeout) and takes in the
    /// answers; returns the bans and recoveries it caused, after those tasks' failed
    /// connections caused since the last probe.
    pub async fn probe(&self) -> Vec<(Target, HealthEvent)> {
        let max_lag = self.shared.settings.max_lag;
        let answers = futures_util::future::join_all(
            self.shared
                .members
                .iter()
                .map(|m| async move { (m, probe(&m.leases).await) }),
        )
        .await;
        let now = Utc::now();
        let mut events = std::mem::take(&mut *self.shared.failed_connects.lock());
        events.extend(answers.into_iter().filter_map(|(m, answer)| {
            let event = m.health.lock().observe(now, answer, max_lag)?;
            log_event(m.target, &event);
            Some((m.target, event))
        }));
        events
    }

    fn member(&self, target: Target) -> Option<&Member> {
        self.shared.members.iter().find(|m| m.target == target)
    }

    fn replicas(&self) -> impl Iterator<Item = &Member> {
        self.shared.members.iter().skip(1)
    }
}

fn log_event(target: Target, event: &HealthEvent) {
    match &event.out {
        Some(reason) => tracing::warn!(%target, %reason, "target out of rotation"),
        None => tracing::info!(%target, "target back in rotation"),
    }
}

/// The replay lag where there is one: zero on a primary, and on a replica that has replayed
/// all it received (an idle primary sends nothing, which is not lag); else how old the last
/// replayed transaction is.
const LAG_SQL: &str = "SELECT CASE \
       WHEN NOT pg_is_in_recovery() THEN 0::float8 \
       WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0::float8 \
       ELSE COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), 0)::float8 \
     END";

/// One probe over the target's probe connection, within the probe timeout. When the pool can
/// only say that it timed out, a connection of the probe's own says why (refused, unknown
/// host, out of slots), as the lease manager does for a task.
async fn probe(leases: &LeaseManager) -> ProbeResult {
    let db = leases.database();
    let read = async {
        let mut conn = db.probe_pool().acquire().await?;
        sqlx::query_scalar::<_, f64>(LAG_SQL)
            .fetch_one(&mut *conn)
            .await
    };
    let failure = match tokio::time::timeout(PROBE_TIMEOUT, read).await {
        Ok(Ok(lag)) => {
            return ProbeResult::Answered {
                lag: Duration::try_from_secs_f64(lag.max(0.0)).unwrap_or(Duration::MAX),
            };
        }
        Ok(Err(sqlx::Error::PoolTimedOut)) | Err(_) => None,
        Ok(Err(err)) => Some(err.to_string()),
    };
    let reason = match failure {
        Some(reason) => reason,
        None => match db.refusal_of_new_connection().await {
            Some(refusal) => refusal.to_string(),
            None => format!("no answer within {PROBE_TIMEOUT:?}"),
        },
    };
    ProbeResult::Failed(reason)
}
