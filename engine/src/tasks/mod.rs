//! The background task manager: a scheduler for the three tasks, retries with backoff, and the
//! per-task state the dashboard and the API show.
//!
//! Each task has a ticker on its own cadence. A tick starts a run unless the task is paused or
//! its previous run is still going (then the tick is skipped and counted). A run retries
//! retryable failures with exponential backoff and full jitter inside the run, so a retry
//! series never moves the cadence. Runs take their connections from the lease manager only.
//!
//! Layout: `model` is what the dashboard and the API read (runs, outcomes, states), `job` what
//! a task implements, `scheduler` the [`TaskManager`] and its tickers, `run` one run's
//! attempts and record, `retry` the backoff, `error` why a run failed, and `jobs` the real
//! tasks. The state they share is here.

mod error;
mod job;
pub mod jobs;
mod model;
mod retry;
mod run;
mod scheduler;

use std::{
    collections::VecDeque,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use error::TaskError;
pub use job::{Job, JobContext, JobFuture, JobOutput, JobSpec};
pub use model::{
    CommandError, HISTORY_LEN, Outcome, RunRecord, SkipCause, StopReport, TaskCounts, TaskState,
    TaskView, Trigger,
};
pub use retry::RetryPolicy;
pub use scheduler::TaskManager;

use crate::{
    auctions::StatusCounts,
    lease::{LeaseManager, RunLimits},
};

/// What the manager, its tickers and its runs share.
struct Inner {
    leases: LeaseManager,
    retry: RetryPolicy,
    instance: String,
    slots: Vec<Slot>,
    next_run_id: AtomicU64,
    scheduler: Mutex<Option<Scheduler>>,
    latest_counts: Mutex<Option<(StatusCounts, DateTime<Utc>)>>,
    latest_round_trip: Mutex<Option<Duration>>,
}

struct Scheduler {
    stop: CancellationToken,
    tickers: Vec<JoinHandle<()>>,
}

struct Slot {
    name: String,
    every: Duration,
    job: Arc<dyn Job>,
    state: Mutex<SlotState>,
    finished: Notify,
}

#[derive(Default)]
struct SlotState {
    paused: bool,
    current: Option<Current>,
    next_run_at: Option<DateTime<Utc>>,
    history: VecDeque<RunRecord>,
    /// What its leases may take.
    limits: RunLimits,
    /// Ticks skipped because a run was still going, newest first, at most [`HISTORY_LEN`].
    overlap_skips: VecDeque<DateTime<Utc>>,
    last_success_at: Option<DateTime<Utc>>,
    counts: TaskCounts,
}

struct Current {
    run_id: u64,
    trigger: Trigger,
    started_at: DateTime<Utc>,
    state: TaskState,
    backoff_ms: Vec<u64>,
    retried_after: Option<String>,
    handle: Option<JoinHandle<()>>,
}
