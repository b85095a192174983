//! The background task manager: a scheduler for the three tasks, retries with backoff, and the
//! per-task state the dashboard and the API show.
//!
//! Each task has a ticker on its own cadence. A tick starts a run unless the task is paused or
//! its previous run is still going (then the tick is skipped and counted). A run retries
//! retryable failures with exponential backoff and full jitter inside the run, so a retry
//! series never moves the cadence. Runs take their connections from the lease manager only.

pub mod jobs;
mod retry;

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use retry::TaskError;

use crate::{
    auctions::StatusCounts,
    failure::FailureKind,
    lease::{LeaseManager, RunContext},
    settings::{RetryPolicy, TaskIntervals},
};

/// Runs kept per task for the dashboard.
pub const HISTORY_LEN: usize = 50;

/// A boxed job future.
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<JobOutput, TaskError>> + Send + 'a>>;

/// The work of one task. Implementations take every connection through `ctx.leases`.
pub trait Job: Send + Sync + 'static {
    /// One attempt at the work.
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a>;
}

/// What a job attempt gets.
pub struct JobContext {
    /// Where connections come from.
    pub leases: LeaseManager,
    /// This attempt's run (revocation stops it).
    pub run: RunContext,
    /// "Now" for the work, in Unix milliseconds.
    pub now_ms: i64,
    /// This process's name in the audit of auction events.
    pub instance: String,
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

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The work was done.
    Succeeded {
        /// Rows changed.
        rows: u64,
        /// What happened, in a line.
        detail: String,
    },
    /// Not run: another instance was running it.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Failed after its attempts.
    Failed {
        /// What kind of failure the last attempt met (what the recommendation rules read).
        cause: FailureKind,
        /// The last error, in words for the operator.
        error: String,
    },
    /// Stopped by the operator (stop past its deadline, emergency cleanup).
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its cadence.
    Schedule,
    /// An operator's "run now".
    Manual,
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRecord {
    /// The run's number (unique in this process).
    pub run_id: u64,
    /// What started it.
    pub trigger: Trigger,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, retries included.
    pub duration_ms: u64,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// The backoff waited before each retry, in milliseconds.
    pub backoff_ms: Vec<u64>,
    /// When it needed retries: the error of the last attempt that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retried_after: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
}

/// Where a task is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for its next tick.
    Idle,
    /// A run is working.
    Running {
        /// The run.
        run_id: u64,
        /// Which attempt.
        attempt: u32,
        /// When the run started.
        started_at: DateTime<Utc>,
    },
    /// A run failed and waits to retry.
    Backoff {
        /// The run.
        run_id: u64,
        /// The attempt that comes next.
        next_attempt: u32,
        /// When it will be made.
        until: DateTime<Utc>,
    },
}

/// Everything the dashboard and the API show for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskView {
    /// The task's name.
    pub name: String,
    /// Its cadence, in seconds.
    pub interval_secs: u64,
    /// Paused: ticks do not start runs.
    pub paused: bool,
    /// Idle, running or in backoff.
    pub state: TaskState,
    /// When the next tick is due (none while the scheduler is stopped).
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last finished run.
    pub last: Option<RunRecord>,
    /// When a run last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Runs finished, by outcome, since start.
    pub counts: TaskCounts,
    /// The last [`HISTORY_LEN`] runs, newest first.
    pub history: Vec<RunRecord>,
}

/// Counters for one task, since start.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct TaskCounts {
    /// Runs that did their work.
    pub succeeded: u64,
    /// Runs that failed after their attempts.
    pub failed: u64,
    /// Retries made.
    pub retries: u64,
    /// Ticks skipped because the previous run was still going.
    pub overlap_skips: u64,
    /// Runs skipped because another instance was running the task.
    pub elsewhere_skips: u64,
    /// Runs cancelled.
    pub cancelled: u64,
}

/// Why a control command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No task by that name (and the names there are).
    #[error("unknown task {0:?}: the tasks are {1}")]
    UnknownTask(String, String),
    /// The task is running already.
    #[error("{0} is already running (run {1})")]
    AlreadyRunning(String, u64),
}

/// What a stop did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StopReport {
    /// Runs that finished within the deadline.
    pub finished: Vec<u64>,
    /// Runs cancelled at the deadline.
    pub cancelled: Vec<u64>,
}

/// A named job on its cadence, as [`TaskManager::with_jobs`] takes them.
pub type JobSpec = (String, Duration, Arc<dyn Job>);

/// The three real tasks at `intervals`.
pub fn standard_jobs(intervals: &TaskIntervals) -> Vec<JobSpec> {
    vec![
        (
            "status_transitions".to_owned(),
            intervals.status_transitions,
            Arc::new(jobs::StatusTransitions) as Arc<dyn Job>,
        ),
        (
            "auction_monitor".to_owned(),
            intervals.auction_monitor,
            Arc::new(jobs::AuctionMonitor),
        ),
        (
            "health_check".to_owned(),
            intervals.health_check,
            Arc::new(jobs::HealthCheck),
        ),
    ]
}

/// Runs the background tasks. Cheap to clone.
#[derive(Clone)]
pub struct TaskManager {
    inner: Arc<Inner>,
}

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

impl TaskManager {
    /// The three real tasks at `intervals`.
    pub fn new(
        leases: LeaseManager,
        intervals: &TaskIntervals,
        retry: RetryPolicy,
        instance: String,
    ) -> Self {
        Self::with_jobs(leases, standard_jobs(intervals), retry, instance)
    }

    /// Any set of jobs: `(name, interval, job)`.
    pub fn with_jobs(
        leases: LeaseManager,
        jobs: Vec<JobSpec>,
        retry: RetryPolicy,
        instance: String,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                leases,
                retry,
                instance,
                slots: jobs
                    .into_iter()
                    .map(|(name, every, job)| Slot {
                        name,
                        every,
                        job,
                        state: Mutex::new(SlotState::default()),
                        finished: Notify::new(),
                    })
                    .collect(),
                next_run_id: AtomicU64::new(1),
                scheduler: Mutex::new(None),
                latest_counts: Mutex::new(None),
                latest_round_trip: Mutex::new(None),
            }),
        }
    }

    /// Whether the scheduler is running.
    pub fn is_running(&self) -> bool {
        self.inner.scheduler.lock().is_some()
    }

    /// Starts every task's ticker (the first tick is immediate). Returns `false` if it was
    /// running already.
    pub fn start(&self) -> bool {
        let mut scheduler = self.inner.scheduler.lock();
        if scheduler.is_some() {
            return false;
        }
        let stop = CancellationToken::new();
        let tickers = (0..self.inner.slots.len())
            .map(|index| tokio::spawn(ticker(Arc::clone(&self.inner), index, stop.clone())))
            .collect();
        *scheduler = Some(Scheduler { stop, tickers });
        tracing::info!("scheduler started");
        true
    }

    /// Stops the tickers, waits up to `deadline` for runs in flight, then cancels the rest
    /// (their leases are released and their connections closed).
    pub async fn stop(&self, deadline: Duration) -> StopReport {
        if let Some(scheduler) = self.inner.scheduler.lock().take() {
            scheduler.stop.cancel();
            for ticker in scheduler.tickers {
                ticker.abort();
            }
        }
        let in_flight: Vec<(usize, u64, JoinHandle<()>)> = self
            .inner
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let mut state = slot.state.lock();
                state.next_run_at = None;
                let current = state.current.as_mut()?;
                Some((index, current.run_id, current.handle.take()?))
            })
            .collect();
        let mut report = StopReport::default();
        let until = tokio::time::Instant::now() + deadline;
        for (index, run_id, mut handle) in in_flight {
            if tokio::time::timeout_at(until, &mut handle).await.is_ok() {
                report.finished.push(run_id);
                continue;
            }
            handle.abort();
            let _ = handle.await; // the run's future, and its leases, are dropped by now
            self.inner.finish_cancelled(
                index,
                run_id,
                "stopped: the run outlived the stop deadline",
            );
            report.cancelled.push(run_id);
        }
        tracing::info!(?report, "scheduler stopped");
        report
    }

    /// Starts a run of `task` now, outside its cadence. Returns the run's number.
    pub fn run_now(&self, task: &str) -> Result<u64, CommandError> {
        let index = self.index(task)?;
        self.inner.start_run(index, Trigger::Manual)
    }

    /// Pauses `task`: its ticks start no runs until [`TaskManager::resume`].
    pub fn pause(&self, task: &str) -> Result<(), CommandError> {
        let index = self.index(task)?;
        self.inner.slots[index].state.lock().paused = true;
        Ok(())
    }

    /// Resumes a paused task.
    pub fn resume(&self, task: &str) -> Result<(), CommandError> {
        let index = self.index(task)?;
        self.inner.slots[index].state.lock().paused = false;
        Ok(())
    }

    /// Cancels runs waiting in backoff (emergency cleanup): they end as cancelled and the task
    /// starts fresh at its next tick. Returns the tasks whose retries were reset.
    pub async fn reset_retries(&self) -> Vec<String> {
        let mut reset = Vec::new();
        for (index, slot) in self.inner.slots.iter().enumerate() {
            let waiting = {
                let mut state = slot.state.lock();
                match state.current.as_mut() {
                    Some(current) if matches!(current.state, TaskState::Backoff { .. }) => {
                        current.handle.take().map(|handle| (current.run_id, handle))
                    }
                    _ => None,
                }
            };
            if let Some((run_id, handle)) = waiting {
                handle.abort();
                let _ = handle.await;
                self.inner
                    .finish_cancelled(index, run_id, "retries reset by emergency cleanup");
                reset.push(slot.name.clone());
            }
        }
        reset
    }

    /// Waits until run `run_id` of `task` has finished and returns its record.
    pub async fn wait_for(&self, task: &str, run_id: u64) -> Result<RunRecord, CommandError> {
        let slot = &self.inner.slots[self.index(task)?];
        loop {
            let finished = slot.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if let Some(record) = slot
                .state
                .lock()
                .history
                .iter()
                .find(|r| r.run_id == run_id)
            {
                return Ok(record.clone());
            }
            finished.await;
        }
    }

    /// Every task's state, in configuration order.
    pub fn tasks(&self) -> Vec<TaskView> {
        self.inner
            .slots
            .iter()
            .map(|slot| {
                let state = slot.state.lock();
                TaskView {
                    name: slot.name.clone(),
                    interval_secs: slot.every.as_secs(),
                    paused: state.paused,
                    state: state
                        .current
                        .as_ref()
                        .map_or(TaskState::Idle, |current| current.state.clone()),
                    next_run_at: state.next_run_at,
                    last: state.history.front().cloned(),
                    last_success_at: state.last_success_at,
                    counts: state.counts,
                    history: state.history.iter().cloned().collect(),
                }
            })
            .collect()
    }

    /// The auction counts the last run read, and when.
    pub fn latest_counts(&self) -> Option<(StatusCounts, DateTime<Utc>)> {
        self.inner.latest_counts.lock().clone()
    }

    /// The health check's last database round trip.
    pub fn latest_round_trip(&self) -> Option<Duration> {
        *self.inner.latest_round_trip.lock()
    }

    fn index(&self, task: &str) -> Result<usize, CommandError> {
        self.inner
            .slots
            .iter()
            .position(|slot| slot.name == task)
            .ok_or_else(|| {
                let known: Vec<&str> = self.inner.slots.iter().map(|s| s.name.as_str()).collect();
                CommandError::UnknownTask(task.to_owned(), known.join(", "))
            })
    }
}

/// One task's cadence: a tick every interval from the start, whatever the runs do.
async fn ticker(inner: Arc<Inner>, index: usize, stop: CancellationToken) {
    let slot = &inner.slots[index];
    let mut ticks = tokio::time::interval(slot.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let next =
            Utc::now() + chrono::Duration::from_std(slot.every).unwrap_or(chrono::TimeDelta::MAX);
        slot.state.lock().next_run_at = Some(next);
        if slot.state.lock().paused {
            continue;
        }
        if let Err(CommandError::AlreadyRunning(_, run_id)) =
            inner.start_run(index, Trigger::Schedule)
        {
            slot.state.lock().counts.overlap_skips += 1;
            tracing::info!(task = %slot.name, run_id, "tick skipped: the previous run is still going");
        }
    }
}

impl Inner {
    fn start_run(self: &Arc<Self>, index: usize, trigger: Trigger) -> Result<u64, CommandError> {
        let slot = &self.slots[index];
        // The lock is held across the spawn so the run cannot finish before it is recorded.
        let mut state = slot.state.lock();
        if let Some(current) = &state.current {
            return Err(CommandError::AlreadyRunning(
                slot.name.clone(),
                current.run_id,
            ));
        }
        let run_id = self.next_run_id.fetch_add(1, Relaxed);
        let started_at = Utc::now();
        let handle = tokio::spawn(run(Arc::clone(self), index, run_id));
        state.current = Some(Current {
            run_id,
            trigger,
            started_at,
            state: TaskState::Running {
                run_id,
                attempt: 1,
                started_at,
            },
            backoff_ms: Vec::new(),
            retried_after: None,
            handle: Some(handle),
        });
        Ok(run_id)
    }

    fn set_state(&self, index: usize, run_id: u64, update: impl FnOnce(&mut Current)) {
        let mut state = self.slots[index].state.lock();
        if let Some(current) = state.current.as_mut().filter(|c| c.run_id == run_id) {
            update(current);
        }
    }

    fn finish(&self, index: usize, run_id: u64, attempts: u32, outcome: Outcome) {
        let slot = &self.slots[index];
        let mut state = slot.state.lock();
        let Some(current) = state.current.take_if(|c| c.run_id == run_id) else {
            return;
        };
        let finished_at = Utc::now();
        match &outcome {
            Outcome::Succeeded { .. } => {
                state.counts.succeeded += 1;
                state.last_success_at = Some(finished_at);
            }
            Outcome::Skipped { .. } => state.counts.elsewhere_skips += 1,
            Outcome::Failed { cause, error } => {
                state.counts.failed += 1;
                tracing::warn!(task = %slot.name, run_id, attempts, ?cause, %error, "run failed");
            }
            Outcome::Cancelled { .. } => state.counts.cancelled += 1,
        }
        let record = RunRecord {
            run_id,
            trigger: current.trigger,
            started_at: current.started_at,
            duration_ms: u64::try_from(
                (finished_at - current.started_at).num_milliseconds().max(0),
            )
            .unwrap_or(0),
            attempts,
            backoff_ms: current.backoff_ms,
            retried_after: current.retried_after,
            outcome,
        };
        if state.history.len() == HISTORY_LEN {
            state.history.pop_back();
        }
        state.history.push_front(record);
        drop(state);
        slot.finished.notify_waiters();
    }

    fn finish_cancelled(&self, index: usize, run_id: u64, reason: &str) {
        let attempts = {
            let state = self.slots[index].state.lock();
            state.current.as_ref().map_or(1, |c| {
                u32::try_from(c.backoff_ms.len()).unwrap_or(u32::MAX) + 1
            })
        };
        self.finish(
            index,
            run_id,
            attempts,
            Outcome::Cancelled {
                reason: reason.to_owned(),
            },
        );
    }
}

/// One run: attempts with backoff between them, then its record.
async fn run(inner: Arc<Inner>, index: usize, run_id: u64) {
    let slot = &inner.slots[index];
    let mut attempt = 1u32;
    let outcome = loop {
        inner.set_state(index, run_id, |current| {
            current.state = TaskState::Running {
                run_id,
                attempt,
                started_at: current.started_at,
            };
        });
        // A fresh run context per attempt: a revoked attempt can be retried.
        let ctx = JobContext {
            leases: inner.leases.clone(),
            run: RunContext::new(slot.name.clone(), run_id),
            now_ms: Utc::now().timestamp_millis(),
            instance: inner.instance.clone(),
        };
        let result = ctx.run.scope(slot.job.run(&ctx)).await;
        match result {
            Ok(output) => {
                if let Some(counts) = output.counts {
                    *inner.latest_counts.lock() = Some((counts, Utc::now()));
                }
                if let Some(round_trip) = output.round_trip {
                    *inner.latest_round_trip.lock() = Some(round_trip);
                }
                break match output.skipped {
                    Some(reason) => Outcome::Skipped { reason },
                    None => Outcome::Succeeded {
                        rows: output.rows,
                        detail: output.detail,
                    },
                };
            }
            Err(err) if err.is_retryable() && attempt <= inner.retry.max_retries => {
                let delay = inner.retry.delay(attempt, &mut rand::rng());
                let until = Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::TimeDelta::MAX);
                tracing::info!(task = %slot.name, run_id, attempt, %err, delay_ms = delay.as_millis() as u64, "retrying");
                slot.state.lock().counts.retries += 1;
                inner.set_state(index, run_id, |current| {
                    current
                        .backoff_ms
                        .push(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
                    current.retried_after = Some(err.to_string());
                    current.state = TaskState::Backoff {
                        run_id,
                        next_attempt: attempt + 1,
                        until,
                    };
                });
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(err) => {
                break Outcome::Failed {
                    cause: err.kind(),
                    error: err.to_string(),
                };
            }
        }
    };
    inner.finish(index, run_id, attempt, outcome);
}
