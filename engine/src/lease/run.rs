//! The run of a task: what holds leases, and what revocation stops.

use std::{
    future::Future,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU32, Ordering::Relaxed},
    },
    time::Duration,
};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
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
    /// Leases the run holds now.
    held: AtomicU32,
    /// The most it held at once.
    peak: AtomicU32,
    /// Every lease it was given, in order (what the run's history records).
    uses: Mutex<Vec<LeaseUse>>,
}

/// One lease a run was given: which, on which backend, and how long it waited for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LeaseUse {
    /// The lease's number.
    pub lease_id: u64,
    /// The PostgreSQL backend that served it; `None` on SQLite.
    pub backend_pid: Option<i32>,
    /// How long the acquire waited (the governor's gate and the pool), in milliseconds.
    pub waited_ms: u64,
}

/// At most this many lease uses are kept per attempt: a run taking thousands of leases keeps
/// its first ones and its count, not an unbounded list.
pub const MAX_LEASE_USES: usize = 32;

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
                held: AtomicU32::new(0),
                peak: AtomicU32::new(0),
                uses: Mutex::new(Vec::new()),
            }),
        }
    }

    /// What its leases may take.
    pub fn limits(&self) -> RunLimits {
        self.inner.limits
    }

    /// The most leases the run has held at once: what its task's next runs are expected to take
    /// (the schedule preview reads it through the run's record).
    pub fn peak_leases(&self) -> u32 {
        self.inner.peak.load(Relaxed)
    }

    /// The leases the run was given so far, in order (the first [`MAX_LEASE_USES`]).
    pub fn lease_uses(&self) -> Vec<LeaseUse> {
        self.inner.uses.lock().clone()
    }

    /// Counts one more lease held by the run, until the returned mark drops, and records it.
    /// The one place the run's leases are counted: every [`Lease`](super::Lease) keeps a mark
    /// for its life.
    pub(super) fn hold(&self, used: LeaseUse) -> Holding {
        {
            let mut uses = self.inner.uses.lock();
            if uses.len() < MAX_LEASE_USES {
                uses.push(used);
            }
        }
        let held = self.inner.held.fetch_add(1, Relaxed) + 1;
        self.inner.peak.fetch_max(held, Relaxed);
        Holding(Arc::clone(&self.inner))
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

/// One lease counted against its run while it lives (see [`RunContext::hold`]).
#[derive(Debug)]
pub(super) struct Holding(Arc<RunInner>);

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Relaxed);
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

    fn used(lease_id: u64) -> LeaseUse {
        LeaseUse {
            lease_id,
            backend_pid: None,
            waited_ms: 0,
        }
    }

    #[test]
    fn the_peak_is_the_most_leases_held_at_once() {
        let run = RunContext::new("t", 1);
        assert_eq!(run.peak_leases(), 0);
        let first = run.hold(used(1));
        let second = run.hold(used(2));
        drop(first);
        let third = run.hold(used(3));
        assert_eq!(run.peak_leases(), 2);
        drop((second, third));
        let _again = run.hold(used(4));
        assert_eq!(run.peak_leases(), 2, "the peak stays");
    }

    #[test]
    fn a_run_records_its_leases_in_order_up_to_a_bound() {
        let run = RunContext::new("t", 1);
        for id in 0..(MAX_LEASE_USES as u64 + 5) {
            drop(run.hold(used(id)));
        }
        let uses = run.lease_uses();
        assert_eq!(uses.len(), MAX_LEASE_USES);
        assert_eq!(uses[0].lease_id, 0);
        assert_eq!(uses[MAX_LEASE_USES - 1].lease_id, MAX_LEASE_USES as u64 - 1);
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
