//! The scheduler: [`TaskManager`]'s commands (start, stop, run now, pause, resume, reset
//! retries), the views it gives, and one ticker per task.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{
    CommandError, Inner, JobSpec, RetryPolicy, RunRecord, Scheduler, Slot, SlotState, StopReport,
    TaskState, TaskView, Trigger, jobs::standard_jobs,
};
use crate::{
    auctions::StatusCounts,
    lease::{LeaseManager, RunLimits},
    settings::TaskIntervals,
};

/// Runs the background tasks. Cheap to clone.
#[derive(Clone)]
pub struct TaskManager {
    inner: Arc<Inner>,
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

    /// The runs a stop would wait for now, as (task, run number).
    pub fn in_flight(&self) -> Vec<(String, u64)> {
        self.inner
            .slots
            .iter()
            .filter_map(|slot| {
                let state = slot.state.lock();
                let current = state.current.as_ref()?;
                current
                    .handle
                    .is_some()
                    .then(|| (slot.name.clone(), current.run_id))
            })
            .collect()
    }

    /// Starts a run of `task` now, outside its cadence. Returns the run's number.
    pub fn run_now(&self, task: &str) -> Result<u64, CommandError> {
        let index = self.index(task)?;
        self.inner.start_run(index, Trigger::Manual)
    }

    /// Sets what `task`'s leases may take (its timeout and priority), for its next runs.
    pub fn set_limits(&self, task: &str, limits: RunLimits) -> Result<(), CommandError> {
        let index = self.index(task)?;
        self.inner.slots[index].state.lock().limits = limits;
        Ok(())
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
                    overlap_skips: state.overlap_skips.iter().copied().collect(),
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
            let mut state = slot.state.lock();
            state.counts.overlap_skips += 1;
            state.overlap_skips.push_front(Utc::now());
            state.overlap_skips.truncate(super::HISTORY_LEN);
            drop(state);
            tracing::info!(task = %slot.name, run_id, "tick skipped: the previous run is still going");
        }
    }
}
