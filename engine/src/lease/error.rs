//! Why a lease could not be had or kept, and what kind of failure that is.

use std::time::Duration;

use crate::failure::FailureKind;

/// Why a lease could not be had or kept.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LeaseError {
    /// No connection within `DB_CONNECTION_TIMEOUT`; says how full the pool was.
    #[error(
        "{task}: no connection within {} ms (pool size {size} of max {max}, {waiting} waiting)",
        waited.as_millis()
    )]
    AcquireTimeout {
        /// The task that asked.
        task: String,
        /// How long it waited.
        waited: Duration,
        /// Open connections when it gave up.
        size: u32,
        /// The pool's maximum.
        max: u32,
        /// Acquires waiting when it gave up, itself included.
        waiting: u32,
    },
    /// The governor's lease limit stayed full, held by work of the same or higher priority,
    /// for the whole acquire timeout.
    #[error(
        "{task}: no place under the lease limit within {} ms ({reason})",
        waited.as_millis()
    )]
    OverLimit {
        /// The task that asked.
        task: String,
        /// How long it waited.
        waited: Duration,
        /// What the governor had decided, and why.
        reason: String,
    },
    /// Cleanup took the lease back; the run must stop.
    #[error("{task}: lease revoked ({reason})")]
    Revoked {
        /// The task whose run was revoked.
        task: String,
        /// Why (stale, emergency cleanup, ...).
        reason: String,
    },
    /// The work on the connection outlived the lease timeout.
    #[error("{task}: work exceeded the {} s lease timeout", timeout.as_secs_f64())]
    TimedOut {
        /// The task whose work ran long.
        task: String,
        /// The lease timeout it outlived.
        timeout: Duration,
    },
    /// The pool failed to open a connection for a reason waiting cannot fix.
    #[error("{task}: cannot open a database connection: {reason}")]
    Connect {
        /// The task that asked.
        task: String,
        /// The driver's message.
        reason: String,
    },
    /// PostgreSQL refused a new connection for want of a free slot (SQLSTATE 53300).
    #[error("{task}: the database refuses new connections, every slot is taken: {reason}")]
    SlotsExhausted {
        /// The task that asked.
        task: String,
        /// The server's refusal, as the driver gives it.
        reason: String,
    },
    /// The pool was closed (the server is shutting down).
    #[error("the connection pool is closed")]
    Closed,
}

impl LeaseError {
    /// Whether trying again later may succeed (all but a closed pool, and a full limit: that
    /// run is skipped, and the next tick tries again).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Closed | Self::OverLimit { .. })
    }

    /// What kind of failure this is, by variant.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::AcquireTimeout { .. } => FailureKind::AcquireTimeout,
            Self::OverLimit { .. } => FailureKind::OverLimit,
            Self::Revoked { .. } => FailureKind::Revoked,
            Self::TimedOut { .. } => FailureKind::TimedOut,
            Self::Connect { .. } => FailureKind::Unreachable,
            Self::SlotsExhausted { .. } => FailureKind::SlotsExhausted,
            Self::Closed => FailureKind::Closed,
        }
    }

    /// `task` could not open a connection: a slot refusal when the driver's SQLSTATE says so,
    /// otherwise an unreachable database.
    pub(super) fn connect(task: &str, err: &sqlx::Error) -> Self {
        let (task, reason) = (task.to_owned(), err.to_string());
        match crate::failure::classify(err) {
            FailureKind::SlotsExhausted => Self::SlotsExhausted { task, reason },
            _ => Self::Connect { task, reason },
        }
    }
}
