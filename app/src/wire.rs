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
    /// Each background task and how often it runs.
    pub tasks: Vec<TaskSchedule>,
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

/// A background task's cadence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSchedule {
    /// The task's name, as in logs and metrics.
    pub task: String,
    /// Its interval in seconds.
    pub every_secs: u64,
}
