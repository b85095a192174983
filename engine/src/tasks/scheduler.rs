//! The scheduler: [`TaskManager`]'s commands (start, stop, run now, pause, resume, reset
//! retries), the views it gives, and one ticker per task.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use super::{
    Clock, CommandError, Inner, JobSpec, PreviewTask, RetryPolicy, RunRecord, Schedule,
    SchedulePreview, Scheduler, Slot, SlotState, StopReport, TaskState, TaskView, Trigger,
    jobs::standard_jobs, preview, schedule::phase_offsets,
};
use crate::{
    auctions::StatusCounts,
    history::History,
    lease::{LeaseManager, RunLimits},
    settings::TaskIntervals,
    targets::Targets,
};

/// How long a ticker sleeps at most before it reads the wall clock again: a clock stepped
/// while it sleeps (by NTP, or a machine waking from suspend) moves a start by at most this.
const RECHECK_CLOCK: Duration = Duration::from_secs(30);

/// The shortest hold the schedule preview assumes for a run (runs faster than that still hold
/// their connection for a moment, and a preview of zero-length holds would never overlap).
const LEAST_HOLD: Duration = Duration::from_secs(1);

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

    /// Any set of jobs: `(name, interval, job)`. Each interval runs on the epoch-anchored grid
    /// with its phase offset (see [`super::schedule`]); [`TaskManager::set_schedule`] gives a
    /// task a cron schedule instead.
    /// `targets` is where they run: a lease manager alone for a single database, or
    /// [`Targets`] with read replicas.
    pub fn with_jobs(
        targets: impl Into<Targets>,
        jobs: Vec<JobSpec>,
        retry: RetryPolicy,
        instance: String,
    ) -> Self {
        let manager = Self {
            inner: Arc::new(Inner {
                targets: targets.into(),
                retry,
                instance,
                slots: jobs
                    .into_iter()
                    .map(|(name, every, job)| Slot {
                        name,
                        schedule: Mutex::new(Schedule::every(every)),
                        job,
                        state: Mutex::new(SlotState::default()),
                        finished: Notify::new(),
                    })
                    .collect(),
                next_run_id: AtomicU64::new(1),
                scheduler: Mutex::new(None),
                latest_counts: Mutex::new(None),
                latest_round_trip: Mutex::new(None),
                clock: Mutex::new(Clock::System),
                deferral: Mutex::new(None),
                phase_key: Mutex::new(None),
                history: std::sync::OnceLock::new(),
            }),
        };
        manager.plan_phases();
        manager
    }

    /// Gives `task` its schedule (a cron expression, or another interval) from its next start
    /// on, and moves the interval tasks' phases to suit the new set of intervals.
    pub fn set_schedule(&self, task: &str, schedule: Schedule) -> Result<(), CommandError> {
        let index = self.index(task)?;
        *self.inner.slots[index].schedule.lock() = schedule;
        self.plan_phases();
        Ok(())
    }

    /// Keys the phase offsets on `key` (the host's name) rather than on this process's
    /// instance id, so a restart on the same host keeps every task's start where it was.
    pub fn set_phase_key(&self, key: &str) {
        *self.inner.phase_key.lock() = Some(key.to_owned());
        self.plan_phases();
    }

    /// Gives every interval task its phase offset among the others, for this instance (see
    /// [`phase_offsets`]).
    fn plan_phases(&self) {
        let intervals: Vec<(usize, &str, Duration)> = self
            .inner
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let period = slot.schedule.lock().period()?;
                Some((index, slot.name.as_str(), period))
            })
            .collect();
        let named: Vec<(&str, Duration)> = intervals.iter().map(|(_, n, e)| (*n, *e)).collect();
        let key = self.inner.phase_key.lock().clone();
        let phases = phase_offsets(&named, key.as_deref().unwrap_or(&self.inner.instance));
        for ((index, _, every), phase) in intervals.into_iter().zip(phases) {
            *self.inner.slots[index].schedule.lock() = Schedule::Every { every, phase };
        }
    }

    /// Where the tickers read the wall clock: the system's by default. Tests under tokio's
    /// paused time give [`Clock::following_tokio`], so the schedules move with
    /// `tokio::time::advance`. Set it before [`TaskManager::start`].
    pub fn set_clock(&self, clock: Clock) {
        *self.inner.clock.lock() = clock;
    }

    /// While `signal` reads true, a scheduled start (never a manual "run now") waits until it
    /// turns false or the start's slack is used up (half its interval; for cron, half the time
    /// to its following start), then runs. The predictive cleanup raises it when the server is
    /// about to run short of connections, so routine work steps aside without losing its turn.
    /// Set once, by the engine; a later call replaces the signal.
    pub fn defer_scheduled_while(&self, signal: watch::Receiver<bool>) {
        *self.inner.deferral.lock() = Some(signal);
    }

    /// The expected peak of Leasewatch's own connections over `[now, now + within]`, from each
    /// unpaused task's schedule, the most leases its recent runs held (1 before any run) and
    /// the 90th percentile of their durations (at least 1 s). Reads memory only.
    pub fn schedule_preview(&self, now: DateTime<Utc>, within: Duration) -> SchedulePreview {
        let tasks: Vec<PreviewTask> = self
            .inner
            .slots
            .iter()
            .filter_map(|slot| {
                let schedule = slot.schedule.lock().clone();
                let state = slot.state.lock();
                if state.paused {
                    return None;
                }
                let connections = state.history.iter().map(|r| r.leases).max().unwrap_or(1);
                Some(PreviewTask {
                    name: slot.name.clone(),
                    schedule,
                    connections,
                    hold: usual_run(&state.history).max(LEAST_HOLD),
                })
            })
            .collect();
        preview(&tasks, now, within)
    }

    /// How long each task's runs usually take, by name: the 90th percentile of its recent
    /// runs' durations (zero before any). Reads memory only.
    pub fn usual_runs(&self) -> BTreeMap<String, Duration> {
        self.inner
            .slots
            .iter()
            .map(|slot| (slot.name.clone(), usual_run(&slot.state.lock().history)))
            .collect()
    }

    /// Whether the scheduler is running.
    pub fn is_running(&self) -> bool {
        self.inner.scheduler.lock().is_some()
    }

    /// Starts every task's ticker. The first run of each task comes at its first scheduled
    /// start after now, not at once: an interval task at the next point of its grid, so a
    /// restart neither adds a run nor moves the cadence. Returns `false` if it was running
    /// already.
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
                // A start that waited for a deferral waits no more: its ticker is gone.
                state.deferred_since = None;
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

    /// Persists every finished run to `history` from now on (set once; later calls are
    /// ignored).
    pub fn record_runs_to(&self, history: History) {
        let _ = self.inner.history.set(history);
    }

    /// Starts a run of `task` now, outside its cadence. Returns the run's number.
    pub fn run_now(&self, task: &str) -> Result<u64, CommandError> {
        let index = self.index(task)?;
        self.inner.start_run(index, Trigger::Manual, None, 0)
    }

    /// Sets what `task`'s leases may take (its timeout and priority), for its next runs.
    pub fn set_limits(&self, task: &str, limits: RunLimits) -> Result<(), CommandError> {
        let index = self.index(task)?;
        self.inner.slots[index].state.lock().limits = limits;
        Ok(())
    }

    /// Gives `task` a retry policy of its own, for its next runs (the others keep the
    /// manager's).
    pub fn set_retry(&self, task: &str, retry: RetryPolicy) -> Result<(), CommandError> {
        let index = self.index(task)?;
        self.inner.slots[index].state.lock().retry = Some(retry);
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
        let now = self.inner.clock.lock().now();
        self.inner
            .slots
            .iter()
            .map(|slot| {
                let schedule = slot.schedule.lock().clone();
                let state = slot.state.lock();
                TaskView {
                    name: slot.name.clone(),
                    interval_secs: schedule.gap_after(schedule.next_after(now)).as_secs(),
                    schedule: schedule.describe(),
                    paused: state.paused,
                    state: state
                        .current
                        .as_ref()
                        .map_or(TaskState::Idle, |current| current.state.clone()),
                    next_run_at: state.next_run_at,
                    deferred_since: state.deferred_since,
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

/// How long `runs` usually took: the 90th percentile of their durations; zero for none.
fn usual_run(runs: &VecDeque<RunRecord>) -> Duration {
    Duration::from_millis(percentile_90(runs.iter().map(|r| r.duration_ms).collect()))
}

/// The 90th percentile (nearest rank) of `values`; 0 for none.
fn percentile_90(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    let rank = (values.len() * 9).div_ceil(10);
    rank.checked_sub(1).map_or(0, |i| values[i])
}

/// One task's cadence: each start its schedule names, by the wall clock, whatever the runs do.
async fn ticker(inner: Arc<Inner>, index: usize, stop: CancellationToken) {
    let slot = &inner.slots[index];
    let mut last_due: Option<DateTime<Utc>> = None;
    loop {
        let clock = *inner.clock.lock();
        let schedule = slot.schedule.lock().clone();
        let now = clock.now();
        // Never the same start twice, even when the clock is stepped back.
        let due = schedule.next_after(last_due.map_or(now, |last| last.max(now)));
        slot.state.lock().next_run_at = Some(due);
        loop {
            let left = (due - clock.now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                break;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(left.min(RECHECK_CLOCK)) => {}
            }
        }
        last_due = Some(due);
        // Starts missed while the clock jumped ahead are not made up: the next is after now.
        slot.state.lock().next_run_at = Some(schedule.next_after(due.max(clock.now())));
        if !inner.tick(index, &schedule, due, &stop).await {
            return;
        }
    }
}

impl Inner {
    /// A start due at `due`: none if the task is paused, an overlap skip if its run is still
    /// going, else a run, after waiting out a deferral. `false` once the scheduler stops.
    async fn tick(
        self: &Arc<Self>,
        index: usize,
        schedule: &Schedule,
        due: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> bool {
        let slot = &self.slots[index];
        let running = {
            let state = slot.state.lock();
            if state.paused {
                return true;
            }
            state.current.as_ref().map(|current| current.run_id)
        };
        if let Some(run_id) = running {
            self.overlap_skip(index, run_id);
            return true;
        }
        let Some(deferred_ms) = self.wait_out_deferral(index, schedule, due, stop).await else {
            return false;
        };
        if slot.state.lock().paused {
            return true;
        }
        if let Err(CommandError::AlreadyRunning(_, run_id)) =
            self.start_run(index, Trigger::Schedule, Some(due), deferred_ms)
        {
            self.overlap_skip(index, run_id);
        }
        true
    }

    /// Counts a start skipped because run `run_id` is still going.
    fn overlap_skip(&self, index: usize, run_id: u64) {
        let slot = &self.slots[index];
        let mut state = slot.state.lock();
        state.counts.overlap_skips += 1;
        state.overlap_skips.push_front(Utc::now());
        state.overlap_skips.truncate(super::HISTORY_LEN);
        drop(state);
        tracing::info!(task = %slot.name, run_id, "tick skipped: the previous run is still going");
    }

    /// While the deferral signal is up, waits until it drops or the start's slack (from `due`)
    /// is used up. Returns how long it waited in milliseconds (0 without a deferral), or
    /// `None` if the scheduler stopped meanwhile.
    async fn wait_out_deferral(
        &self,
        index: usize,
        schedule: &Schedule,
        due: DateTime<Utc>,
        stop: &CancellationToken,
    ) -> Option<u64> {
        let Some(mut signal) = self.deferral.lock().clone() else {
            return Some(0);
        };
        if !*signal.borrow_and_update() {
            return Some(0);
        }
        let slot = &self.slots[index];
        let since = self.clock.lock().now();
        let slack = schedule.slack_after(due);
        let left = (due + chrono::TimeDelta::from_std(slack).unwrap_or(chrono::TimeDelta::MAX)
            - since)
            .to_std()
            .unwrap_or(Duration::ZERO);
        {
            let mut state = slot.state.lock();
            state.deferred_since = Some(since);
            state.counts.deferred += 1;
        }
        tracing::info!(
            task = %slot.name,
            %due,
            slack_ms = u64::try_from(slack.as_millis()).unwrap_or(u64::MAX),
            "scheduled run deferred: waiting for the deferral to end"
        );
        let waiting = tokio::time::Instant::now();
        let why = tokio::select! {
            () = stop.cancelled() => {
                slot.state.lock().deferred_since = None;
                return None;
            }
            ended = signal.wait_for(|deferring| !*deferring) => {
                if ended.is_ok() { "the deferral ended" } else { "the deferral signal is gone" }
            }
            () = tokio::time::sleep(left) => "its slack is used up",
        };
        let waited_ms = u64::try_from(waiting.elapsed().as_millis()).unwrap_or(u64::MAX);
        slot.state.lock().deferred_since = None;
        tracing::info!(task = %slot.name, waited_ms, "deferred run starting: {why}");
        Some(waited_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::percentile_90;

    #[test]
    fn the_90th_percentile_is_the_nearest_rank() {
        assert_eq!(percentile_90(vec![]), 0);
        assert_eq!(percentile_90(vec![7]), 7);
        assert_eq!(percentile_90((1..=10).rev().collect()), 9);
        assert_eq!(percentile_90((1..=20).collect()), 18);
        assert_eq!(percentile_90(vec![5, 1000, 5, 5]), 1000);
    }
}
