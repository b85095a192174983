//! The background task manager: a scheduler for the three tasks, retries with backoff, and the
//! per-task state the dashboard and the API show.
//!
//! Each task has a ticker on its own [`Schedule`]: an interval on a grid anchored at the Unix
//! epoch with a phase offset per task (the first run comes at the first grid point after
//! start-up, not at start-up), or a cron expression. A tick starts a run unless the task is
//! paused or its previous run is still going (then the tick is skipped and counted); while the
//! deferral signal is up, a scheduled start waits for it to drop, at most half its interval. A
//! run retries
//! retryable failures with exponential backoff and full jitter inside the run, so a retry
//! series never moves the cadence. Runs take their connections from the lease manager only.
//!
//! Layout: `model` is what the dashboard and the API read (runs, outcomes, states), `job` what
//! a task implements, `scheduler` the [`TaskManager`] and its tickers, `schedule` when a task
//! runs, `preview` the expected peak of connections from the schedules, `run` one run's
//! attempts and record, `retry` the backoff, `error` why a run failed, `jobs` the real
//! tasks and `declared` the operator's own SQL tasks. The state they share is here.

pub mod declared;
mod error;
mod job;
pub mod jobs;
mod model;
mod preview;
mod retry;
mod run;
pub mod schedule;
mod scheduler;

use std::{
    collections::VecDeque,
    sync::{Arc, OnceLock, atomic::AtomicU64},
    time::Duration,
};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

pub use error::TaskError;
pub use job::{Job, JobContext, JobFuture, JobOutput, JobSpec};
/// Where a job runs, and the database an attempt was given: named here beside [`Job`].
pub use leasewatch_types::{Route, Target};
pub use model::{
    Attempt, CommandError, HISTORY_LEN, Outcome, RunRecord, SkipCause, StopReport, TaskCounts,
    TaskState, TaskView, Trigger,
};
pub use preview::{PreviewTask, SchedulePreview, preview};
pub use retry::RetryPolicy;
pub use schedule::{Clock, Schedule, ScheduleError};
pub use scheduler::TaskManager;

use crate::{
    auctions::StatusCounts,
    history::History,
    lease::{RunContext, RunLimits},
    targets::Targets,
};

/// What the manager, its tickers and its runs share.
struct Inner {
    targets: Targets,
    retry: RetryPolicy,
    instance: String,
    slots: Vec<Slot>,
    next_run_id: AtomicU64,
    scheduler: Mutex<Option<Scheduler>>,
    latest_counts: Mutex<Option<(StatusCounts, DateTime<Utc>)>>,
    latest_round_trip: Mutex<Option<Duration>>,
    /// Where the tickers read the wall clock.
    clock: Mutex<Clock>,
    /// While it reads true, scheduled starts wait (see [`TaskManager::defer_scheduled_while`]).
    deferral: Mutex<Option<watch::Receiver<bool>>>,
    /// What the phase offsets are keyed on besides the task names: the host's name once set,
    /// else `instance`.
    phase_key: Mutex<Option<String>>,
    /// Where finished runs are persisted, once set.
    history: OnceLock<History>,
}

struct Scheduler {
    stop: CancellationToken,
    tickers: Vec<JoinHandle<()>>,
}

struct Slot {
    name: String,
    /// When it runs (interval phases are set for all slots together).
    schedule: Mutex<Schedule>,
    job: Arc<dyn Job>,
    state: Mutex<SlotState>,
    finished: Notify,
}

#[derive(Default)]
struct SlotState {
    paused: bool,
    current: Option<Current>,
    next_run_at: Option<DateTime<Utc>>,
    /// Since when a scheduled start has waited for a deferral to end.
    deferred_since: Option<DateTime<Utc>>,
    history: VecDeque<RunRecord>,
    /// What its leases may take.
    limits: RunLimits,
    /// Its own retry policy; `None`: the manager's.
    retry: Option<RetryPolicy>,
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
    /// How long its scheduled start waited for a deferral to end.
    deferred_ms: u64,
    /// The most leases an earlier attempt held at once.
    peak_leases: u32,
    /// The attempt working now (its leases are counted on it).
    attempt: Option<RunContext>,
    /// When the attempt working now started (none between attempts).
    attempt_started: Option<DateTime<Utc>>,
    /// Where the attempt in flight runs.
    attempt_target: Target,
    /// When its start was due; none for a manual run.
    scheduled_at: Option<DateTime<Utc>>,
    /// The attempts that ended so far.
    attempt_log: Vec<Attempt>,
}

impl Current {
    /// The most leases any attempt so far held at once.
    fn peak_leases(&self) -> u32 {
        self.attempt.as_ref().map_or(self.peak_leases, |run| {
            self.peak_leases.max(run.peak_leases())
        })
    }
}
