//! Why a task run failed: whether another attempt may succeed, and what kind of failure it is.

use leasewatch_types::Target;

use crate::{failure::FailureKind, lease::LeaseError, targets::NoReplica};

/// Why a task run failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No lease, or the lease was revoked or timed out.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The task's own logic failed: retrying would fail the same way.
    #[error("{0}")]
    Logic(String),
    /// Read work found no replica in rotation, and may not fall back to the primary.
    #[error(transparent)]
    NoReplica(#[from] NoReplica),
    /// A failure on one of several targets, named so the operator knows which database.
    #[error("on {target}: {source}{why}")]
    On {
        /// Where it failed.
        target: Target,
        /// The failure.
        source: Box<TaskError>,
        /// What Leasewatch does about it, when that is worth saying.
        why: &'static str,
    },
}

impl TaskError {
    /// Connection errors, timeouts, serialization failures and lease revocation are worth
    /// another attempt; logic errors are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Lease(err) => err.is_retryable(),
            Self::Database(err) => is_transient(err),
            Self::Logic(_) => false,
            Self::NoReplica(_) => true,
            Self::On { source, .. } => source.is_retryable(),
        }
    }

    /// What kind of failure this is, for the run's record and the recommendation rules.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Lease(err) => err.kind(),
            Self::Database(err) => crate::failure::classify(err),
            Self::Logic(_) => FailureKind::Logic,
            Self::NoReplica(_) => FailureKind::Unreachable,
            Self::On { source, .. } => source.kind(),
        }
    }
}

fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(
                code.as_ref(),
                // PostgreSQL: serialization failure, deadlock, statement timeout / cancel,
                // admin shutdown, crash shutdown, cannot connect now, too many connections,
                // idle-in-transaction timeout.
                "40001" | "40P01" | "57014" | "57P01" | "57P02" | "57P03" | "53300" | "25P03"
                // SQLite: busy, locked, busy snapshot.
                | "5" | "6" | "517"
            ) || code.starts_with("08") // PostgreSQL connection exceptions
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(TaskError::Database(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(
            TaskError::Database(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            )))
            .is_retryable()
        );
        assert!(
            TaskError::Lease(LeaseError::Revoked {
                task: "t".into(),
                reason: "stale".into()
            })
            .is_retryable()
        );
        assert!(!TaskError::Lease(LeaseError::Closed).is_retryable());
        assert!(!TaskError::Logic("reserve below zero".into()).is_retryable());
        assert!(!TaskError::Database(sqlx::Error::RowNotFound).is_retryable());
    }

    #[test]
    fn failures_are_classified_by_type_and_sqlstate() {
        use crate::failure::coded::Coded;
        let lease = |err: LeaseError| TaskError::Lease(err).kind();
        let task = || "t".to_owned();
        let reason = || "whatever the driver says".to_owned();
        assert_eq!(
            lease(LeaseError::AcquireTimeout {
                task: task(),
                waited: Duration::ZERO,
                size: 0,
                max: 1,
                waiting: 1
            }),
            FailureKind::AcquireTimeout
        );
        assert_eq!(
            lease(LeaseError::Connect {
                task: task(),
                reason: reason()
            }),
            FailureKind::Unreachable
        );
        assert_eq!(
            lease(LeaseError::SlotsExhausted {
                task: task(),
                reason: reason()
            }),
            FailureKind::SlotsExhausted
        );
        assert_eq!(
            lease(LeaseError::Revoked {
                task: task(),
                reason: reason()
            }),
            FailureKind::Revoked
        );
        assert_eq!(
            lease(LeaseError::TimedOut {
                task: task(),
                timeout: Duration::ZERO
            }),
            FailureKind::TimedOut
        );
        assert_eq!(lease(LeaseError::Closed), FailureKind::Closed);
        assert_eq!(
            TaskError::Database(Coded::error("53300", "reworded")).kind(),
            FailureKind::SlotsExhausted
        );
        assert_eq!(
            TaskError::Database(Coded::error("23505", "too many clients")).kind(),
            FailureKind::Database
        );
        assert_eq!(
            TaskError::Logic("no connection within".into()).kind(),
            FailureKind::Logic
        );
    }
}
