//! The run of a task: what holds leases, and what revocation stops.

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use super::LeaseError;
use crate::governor::Priority;

/// What a task's leases may take: how long each may be held (its deadline, and on PostgreSQL
/// its statements' timeout), and its priority at a full lease limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunLimits {
    /// `TASK_<NAME>_TIMEOUT`; `None`: the manager's lease timeout.
    pub timeout: Option<Duration>,
    /// `TASK_<NAME>_PRIORITY`.
    pub priority: Priority,
}

/// One run of one task: the unit that holds leases and that revocation stops.
#[derive(Debug, Clone)]
pub struct RunContext {
    inner: Arc<RunInner>,
}

#[derive(Debug)]
struct RunInner {
    task: String,
    run_id: u64,
    limits: RunLimits,
    cancel: CancellationToken,
    reason: OnceLock<String>,
}

impl RunContext {
    /// A new run of `task`, with the default limits.
    pub fn new(task: impl Into<String>, run_id: u64) -> Self {
        Self::limited(task, run_id, RunLimits::default())
    }

    /// A new run of `task` whose leases take `limits`.
    pub fn limited(task: impl Into<String>, run_id: u64, limits: RunLimits) -> Self {
        Self {
            inner: Arc::new(RunInner {
                task: task.into(),
                run_id,
                limits,
                cancel: CancellationToken::new(),
                reason: OnceLock::new(),
            }),
        }
    }

    /// What its leases may take.
    pub fn limits(&self) -> RunLimits {
        self.inner.limits
    }

    /// Cancelled when the run is revoked.
    pub(super) fn cancellation(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// The task's name.
    pub fn task(&self) -> &str {
        &self.inner.task
    }

    /// The run's number.
    pub fn run_id(&self) -> u64 {
        self.inner.run_id
    }

    /// Stops the run: [`RunContext::scope`] and [`Lease::run`](super::Lease::run) return
    /// [`LeaseError::Revoked`] at once. The first reason given is kept.
    pub fn revoke(&self, reason: impl Into<String>) {
        let _ = self.inner.reason.set(reason.into());
        self.inner.cancel.cancel();
    }

    /// The revocation as an error, if the run was revoked.
    pub fn revoked(&self) -> Option<LeaseError> {
        self.inner
            .cancel
            .is_cancelled()
            .then(|| LeaseError::Revoked {
                task: self.inner.task.clone(),
                reason: self
                    .inner
                    .reason
                    .get()
                    .cloned()
                    .unwrap_or_else(|| "revoked".to_owned()),
            })
    }

    /// Runs `work` until it finishes or the run is revoked; on revocation `work` is dropped
    /// (with every lease it holds) and the revocation is returned.
    pub async fn scope<T, E: From<LeaseError>>(
        &self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        tokio::select! {
            biased;
            () = self.inner.cancel.cancelled() => Err(self.revocation_error().into()),
            result = work => result,
        }
    }

    /// The revocation as an error, whether or not a reason was given.
    pub(super) fn revocation_error(&self) -> LeaseError {
        self.revoked().unwrap_or_else(|| LeaseError::Revoked {
            task: self.inner.task.clone(),
            reason: "revoked".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_revoked_run_reports_its_first_reason() {
        let run = RunContext::new("status_transitions", 4);
        assert_eq!(run.revoked(), None);
        run.revoke("stale");
        run.revoke("emergency cleanup");
        assert_eq!(
            run.revoked(),
            Some(LeaseError::Revoked {
                task: "status_transitions".into(),
                reason: "stale".into()
            })
        );
    }

    #[tokio::test]
    async fn scope_stops_the_work_when_the_run_is_revoked() {
        let run = RunContext::new("t", 1);
        let revoker = run.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            revoker.revoke("test");
        });
        let result: Result<(), LeaseError> = run
            .scope(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
            .await;
        assert!(
            matches!(result, Err(LeaseError::Revoked { .. })),
            "{result:?}"
        );
    }
}
