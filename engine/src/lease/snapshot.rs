//! Reading the state without touching the database: the leases held, the pool snapshot, and
//! the history ring the charts and the rules read.

use std::{sync::atomic::Ordering::Relaxed, time::Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Held, LeaseManager};
use crate::{histogram::HistogramReading, server_view::ServerView};

/// A lease as the dashboard and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LeaseInfo {
    /// The lease's number, unique in this process.
    pub id: u64,
    /// The task holding it.
    pub task: String,
    /// The run holding it.
    pub run_id: u64,
    /// When it was acquired.
    pub acquired_at: DateTime<Utc>,
    /// The PostgreSQL backend serving it; `None` on SQLite.
    pub backend_pid: Option<i32>,
    /// How long it has been held, in milliseconds, when this was read.
    pub held_ms: u64,
    /// Held longer than the lease timeout.
    pub stale: bool,
}

/// Lease counts for one task, since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskLeaseCounts {
    /// The task.
    pub task: String,
    /// Leases it holds now.
    pub held: u32,
    /// Leases it was given.
    pub issued: u64,
    /// Leases it gave back.
    pub released: u64,
    /// Leases cleanup took back.
    pub revoked: u64,
    /// Acquires that gave up after `DB_CONNECTION_TIMEOUT`.
    pub acquire_timeouts: u64,
}

/// Latency quantiles in milliseconds; `None` before the first observation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Quantiles {
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

impl Quantiles {
    fn of(reading: &HistogramReading) -> Self {
        let ms = |q| reading.quantile(q).map(|d| d.as_secs_f64() * 1000.0);
        Self {
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

/// The pool and its leases at one instant. Point-in-time values read one after another:
/// idle + active may briefly disagree with total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolSnapshot {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Open connections.
    pub total: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Connections in use (total − idle).
    pub active: u32,
    /// Acquires waiting for a connection.
    pub waiting: u32,
    /// Leases held by background tasks.
    pub leases: u32,
    /// Leases held longer than the lease timeout.
    pub stale: u32,
    /// The pool's maximum.
    pub max: u32,
    /// The pool's minimum.
    pub min: u32,
    /// Leases this instance may hold at once (the governor's limit; `max` without it).
    pub limit: u32,
    /// Task connections the server can give all instances together, as last read.
    pub budget: Option<u32>,
    /// The database server's client connections, all clients together, as last read
    /// (PostgreSQL; `None` on SQLite or before the first read).
    #[serde(default)]
    pub server_connections: Option<i64>,
    /// The server's slots for ordinary roles (`max_connections` less the reserved ones), as of
    /// the same read.
    #[serde(default)]
    pub server_usable: Option<i64>,
    /// active / max, from 0 to 1.
    pub utilization: f64,
    /// Acquire latency since start.
    pub acquire_latency: Quantiles,
    /// Acquires that gave up after `DB_CONNECTION_TIMEOUT`, since start.
    pub acquire_timeouts: u64,
    /// Leases given out, since start.
    pub issued: u64,
    /// Leases given back, since start.
    pub released: u64,
    /// Leases taken back by cleanup, since start.
    pub revoked: u64,
    /// 95th percentile of how long leases were held, in milliseconds.
    pub hold_p95_ms: Option<f64>,
    /// Per task, by name.
    pub per_task: Vec<TaskLeaseCounts>,
    /// On history samples only: acquire latency p95 over the interval since the previous
    /// sample, in milliseconds (what a latency chart plots).
    pub window_p95_ms: Option<f64>,
}

/// How many snapshots the history keeps: one hour at one every 5 s.
pub const HISTORY_LEN: usize = 720;

impl Held {
    /// The lease as shown, `now`.
    pub(super) fn info(&self, id: u64, now: Instant) -> LeaseInfo {
        let held = now.saturating_duration_since(self.acquired);
        LeaseInfo {
            id,
            task: self.task.clone(),
            run_id: self.run_id,
            acquired_at: self.acquired_at,
            backend_pid: self.backend.map(|b| b.pid),
            held_ms: u64::try_from(held.as_millis()).unwrap_or(u64::MAX),
            stale: held > self.timeout,
        }
    }

    /// Held past its timeout at `now`.
    pub(super) fn is_stale(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.acquired) > self.timeout
    }
}

impl LeaseManager {
    /// The leases held now, oldest first.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let now = Instant::now();
        self.shared
            .leases
            .lock()
            .iter()
            .map(|(id, held)| held.info(*id, now))
            .collect()
    }

    /// The pool and its leases now. No database access; a few microseconds.
    pub fn snapshot(&self) -> PoolSnapshot {
        let shared = &self.shared;
        let pool = shared.db.pool_status();
        let now = Instant::now();
        let (leases, stale, per_task) = {
            let held = shared.leases.lock();
            let stale = held.values().filter(|h| h.is_stale(now)).count();
            let mut per_task = shared.per_task.lock().clone();
            for h in held.values() {
                if let Some(counts) = per_task.get_mut(&h.task) {
                    counts.held += 1;
                }
            }
            (held.len(), stale, per_task)
        };
        let active = pool.size.saturating_sub(pool.idle);
        let (server_connections, server_usable) = match &*shared.server_view.read() {
            ServerView::Postgres(view) => (
                Some(view.client_connections),
                Some(view.usable_connections()),
            ),
            ServerView::Unknown | ServerView::NotApplicable { .. } => (None, None),
        };
        PoolSnapshot {
            taken_at: Utc::now(),
            total: pool.size,
            idle: pool.idle,
            active,
            waiting: shared.waiting.load(Relaxed),
            leases: u32::try_from(leases).unwrap_or(u32::MAX),
            stale: u32::try_from(stale).unwrap_or(u32::MAX),
            max: pool.max,
            min: pool.min,
            limit: shared.governor.limit(),
            budget: shared.governor.budget_total(),
            server_connections,
            server_usable,
            utilization: if pool.max == 0 {
                0.0
            } else {
                f64::from(active) / f64::from(pool.max)
            },
            acquire_latency: Quantiles::of(&shared.acquire_latency.read()),
            acquire_timeouts: shared.acquire_timeouts.load(Relaxed),
            issued: shared.issued.load(Relaxed),
            released: shared.released.load(Relaxed),
            revoked: shared.revoked.load(Relaxed),
            hold_p95_ms: shared
                .hold_time
                .read()
                .quantile(0.95)
                .map(|d| d.as_secs_f64() * 1000.0),
            per_task: per_task.into_values().collect(),
            window_p95_ms: None,
        }
    }

    /// Acquire latency histogram since start (for Prometheus).
    pub fn acquire_latency(&self) -> HistogramReading {
        self.shared.acquire_latency.read()
    }

    /// Appends a snapshot to the history ring (oldest dropped past [`HISTORY_LEN`]), and
    /// returns it.
    pub fn record_history(&self) -> PoolSnapshot {
        let mut snapshot = self.snapshot();
        let reading = self.shared.acquire_latency.read();
        {
            let mut previous = self.shared.previous_latency.lock();
            snapshot.window_p95_ms = reading
                .since(&previous)
                .quantile(0.95)
                .map(|d| d.as_secs_f64() * 1000.0);
            *previous = reading;
        }
        let mut history = self.shared.history.lock();
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(snapshot.clone());
        snapshot
    }

    /// The recorded snapshots, oldest first.
    pub fn history(&self) -> Vec<PoolSnapshot> {
        self.shared.history.lock().iter().cloned().collect()
    }
}
