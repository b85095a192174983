//! Typed settings. Parsing and validation from the environment live in the server; these types
//! only carry values that are already known to be valid.

use std::{collections::BTreeMap, time::Duration};

use crate::{
    governor::{Headroom, Priority},
    lease::RunLimits,
};

/// How the connection pool is sized and bounded (the seed's `DB_*` variables and the lease
/// timeout that caps each statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections the pool opens (`DB_MAX_CONNECTIONS`).
    pub max_connections: u32,
    /// Connections kept open while idle (`DB_MIN_CONNECTIONS`).
    pub min_connections: u32,
    /// An idle connection above the minimum is closed after this long (`DB_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// The longest wait for a connection, when connecting or acquiring
    /// (`DB_CONNECTION_TIMEOUT`).
    pub connect_timeout: Duration,
    /// A connection held longer than this by a task is stale (`LEASE_TIMEOUT`). On PostgreSQL it
    /// also bounds every statement, so a query cannot outlive its lease on the server.
    pub lease_timeout: Duration,
    /// The `application_name` each PostgreSQL session reports, naming the app and the role of
    /// the pool, so operators can tell its connections apart in `pg_stat_activity`.
    pub application_name: String,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 20,
            min_connections: 5,
            idle_timeout: Duration::from_millis(60_000),
            connect_timeout: Duration::from_millis(15_000),
            lease_timeout: Duration::from_secs(30),
            application_name: "leasewatch:tasks".to_owned(),
        }
    }
}

/// How often each background task runs (the seed's reduced frequencies by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskIntervals {
    /// Scheduled → active → ended transitions.
    pub status_transitions: Duration,
    /// Settles ended auctions and reports anomalies.
    pub auction_monitor: Duration,
    /// Measures database round-trip latency and server-wide connection use.
    pub health_check: Duration,
    /// Reclaims stale leases.
    pub cleanup: Duration,
}

impl Default for TaskIntervals {
    fn default() -> Self {
        Self {
            status_transitions: Duration::from_secs(15 * 60),
            auction_monitor: Duration::from_secs(30 * 60),
            health_check: Duration::from_secs(60 * 60),
            cleanup: Duration::from_secs(5 * 60),
        }
    }
}

impl TaskIntervals {
    /// Intervals short enough that a new user sees real work within a minute (`--demo`).
    pub fn demo() -> Self {
        Self {
            status_transitions: Duration::from_secs(10),
            auction_monitor: Duration::from_secs(20),
            health_check: Duration::from_secs(30),
            cleanup: Duration::from_secs(60),
        }
    }
}

/// The connection-budget governor's configuration (see [`crate::governor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GovernorConfig {
    /// On by default; it only acts on PostgreSQL (`GOVERNOR`).
    pub enabled: bool,
    /// Slots left to the web app (`BUDGET_HEADROOM`).
    pub headroom: Headroom,
}

impl Default for GovernorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            headroom: Headroom::default(),
        }
    }
}

/// Each task's lease timeout and priority, by task name. Unnamed tasks take the lease timeout
/// and priority 0. By default the status transitions and the health check come first, then
/// the auction monitor: what must keep running when the budget is tight.
pub fn default_task_limits() -> BTreeMap<String, RunLimits> {
    use leasewatch_types::task;
    [
        (task::STATUS_TRANSITIONS, 2),
        (task::HEALTH_CHECK, 2),
        (task::AUCTION_MONITOR, 1),
    ]
    .into_iter()
    .map(|(name, priority)| {
        (
            name.to_owned(),
            RunLimits {
                timeout: None,
                priority: Priority(priority),
            },
        )
    })
    .collect()
}
