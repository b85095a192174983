//! Types exchanged between the server and the browser. Plain data with serde only: they compile
//! for `wasm32` without the engine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Everything the overview shows, read from in-process state (never from the database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// "PostgreSQL" or "SQLite".
    pub backend: String,
    /// Where the database is, with any password redacted.
    pub database: String,
    /// The connection pool right now.
    pub pool: PoolView,
    /// Auctions per status, in life-cycle order.
    pub auctions: Vec<StatusCount>,
    /// When the auction counts were read from the database.
    pub auctions_as_of: DateTime<Utc>,
    /// Each background task: cadence, state and last run.
    pub tasks: Vec<TaskRow>,
    /// When this overview was taken on the server.
    pub taken_at: DateTime<Utc>,
}

/// Pool counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    /// Open connections.
    pub total: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Connections in use (total − idle at the same instant).
    pub active: u32,
    /// Configured maximum.
    pub max: u32,
    /// Configured minimum.
    pub min: u32,
}

/// How many auctions are in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCount {
    /// The status, as stored ("scheduled", "active", ...).
    pub status: String,
    /// Auctions in it.
    pub count: i64,
}

/// A background task as the overview shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRow {
    /// The task's name, as in logs and metrics.
    pub task: String,
    /// Its interval in seconds.
    pub every_secs: u64,
    /// "idle", "running", "backoff" or "paused".
    pub state: String,
    /// How the last run ended ("succeeded", "skipped", "failed", "cancelled"), if any.
    pub last_outcome: Option<String>,
    /// The last run's one-line detail or error.
    pub last_detail: Option<String>,
    /// When the last run started.
    pub last_run_at: Option<DateTime<Utc>>,
}
