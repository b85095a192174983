//! What a task is: a [`Job`] that makes one attempt at its work with the connections of
//! [`JobContext::leases`], and what it reports.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};

use super::TaskError;
use leasewatch_types::{Route, Target};

use crate::{
    auctions::StatusCounts,
    lease::{LeaseManager, RunContext},
    targets::Targets,
};

/// A boxed job future.
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<JobOutput, TaskError>> + Send + 'a>>;

/// The work of one task. Implementations take every connection through `ctx.leases`.
pub trait Job: Send + Sync + 'static {
    /// One attempt at the work.
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a>;

    /// Where its work runs: the primary unless the job only reads, in which case it may say
    /// [`Route::Replica`] and each attempt gets the least-loaded replica in rotation, in a
    /// read-only session.
    fn route(&self) -> Route {
        Route::Primary
    }
}

/// What a job attempt gets.
pub struct JobContext {
    /// Where connections come from: the target this attempt was routed to.
    pub leases: LeaseManager,
    /// Which target that is.
    pub target: Target,
    /// Every target, for work that must reach more than its own (the health check; a read
    /// task's claim of its start, which is coordination and so goes to the primary).
    pub targets: Targets,
    /// This attempt's run (revocation stops it).
    pub run: RunContext,
    /// "Now" for the work, in Unix milliseconds.
    pub now_ms: i64,
    /// This process's name in the audit of auction events.
    pub instance: String,
    /// When the run's start was due; `None` for a manual run.
    pub scheduled_at: Option<DateTime<Utc>>,
}

impl JobContext {
    /// A manual attempt on one database, outside any task manager (tests and benchmarks
    /// running a job directly).
    pub fn on(leases: LeaseManager, run: RunContext, now_ms: i64, instance: String) -> Self {
        Self {
            targets: leases.clone().into(),
            leases,
            target: Target::Primary,
            run,
            now_ms,
            instance,
            scheduled_at: None,
        }
    }
}

/// What a successful attempt reports.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutput {
    /// Done, or skipped (and why).
    pub skipped: Option<String>,
    /// Rows changed.
    pub rows: u64,
    /// One line for the operator.
    pub detail: String,
    /// Auction counts read at the end of the work, if it read them.
    pub counts: Option<StatusCounts>,
    /// Database round trip, for the health check.
    pub round_trip: Option<Duration>,
}

impl JobOutput {
    /// Work done.
    pub fn done(rows: u64, detail: impl Into<String>) -> Self {
        Self {
            skipped: None,
            rows,
            detail: detail.into(),
            counts: None,
            round_trip: None,
        }
    }

    /// Nothing done, for a reason (another instance holds the task).
    pub fn skipped(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            skipped: Some(reason.clone()),
            rows: 0,
            detail: format!("skipped: {reason}"),
            counts: None,
            round_trip: None,
        }
    }

    /// With the auction counts the work read.
    pub fn with_counts(mut self, counts: StatusCounts) -> Self {
        self.counts = Some(counts);
        self
    }

    /// With the round trip the work measured.
    pub fn with_round_trip(mut self, round_trip: Duration) -> Self {
        self.round_trip = Some(round_trip);
        self
    }
}

/// A named job on its cadence, as [`TaskManager::with_jobs`] takes them.
pub type JobSpec = (String, Duration, Arc<dyn Job>);
