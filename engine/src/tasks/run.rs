//! One run: its attempts with backoff between them, the state the dashboard shows while it
//! works, and the record it leaves.

use std::sync::{Arc, atomic::Ordering::Relaxed};

use chrono::{DateTime, Utc};

use super::{
    Attempt, CommandError, Current, HISTORY_LEN, Inner, JobContext, Outcome, RunRecord, SkipCause,
    TaskError, TaskState, Trigger,
};
use leasewatch_types::{Route, Target};

use crate::{
    failure::FailureKind,
    lease::{LeaseError, RunContext},
};

impl Inner {
    /// Starts a run of slot `index` unless one is going; returns its number.
    pub(super) fn start_run(
        self: &Arc<Self>,
        index: usize,
        trigger: Trigger,
        scheduled_at: Option<DateTime<Utc>>,
        deferred_ms: u64,
    ) -> Result<u64, CommandError> {
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
            deferred_ms,
            peak_leases: 0,
            attempt: None,
            attempt_started: None,
            attempt_target: Target::Primary,
            scheduled_at,
            attempt_log: Vec::new(),
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
            Outcome::Skipped { cause, .. } => match cause {
                SkipCause::Elsewhere => state.counts.elsewhere_skips += 1,
                SkipCause::OverLimit => state.counts.over_limit_skips += 1,
            },
            Outcome::Failed { cause, error } => {
                state.counts.failed += 1;
                tracing::warn!(task = %slot.name, run_id, attempts, ?cause, %error, "run failed");
            }
            Outcome::Cancelled { .. } => state.counts.cancelled += 1,
        }
        let leases = current.peak_leases();
        let mut attempt_log = current.attempt_log;
        if let Some((run, started_at)) = current.attempt.zip(current.attempt_started) {
            // Cut short from outside (a stop, emergency cleanup): the attempt in flight ends
            // with the run.
            attempt_log.push(Attempt {
                number: u32::try_from(attempt_log.len()).unwrap_or(u32::MAX) + 1,
                started_at,
                duration_ms: millis_between(started_at, finished_at),
                error: Some(outcome.detail().to_owned()),
                failure: outcome_failure(&outcome),
                retry_delay_ms: None,
                leases: run.lease_uses(),
                target: current.attempt_target,
            });
        }
        let record = RunRecord {
            run_id,
            trigger: current.trigger,
            started_at: current.started_at,
            duration_ms: millis_between(current.started_at, finished_at),
            attempts,
            backoff_ms: current.backoff_ms,
            retried_after: current.retried_after,
            outcome,
            deferred_ms: current.deferred_ms,
            leases,
            scheduled_at: current.scheduled_at,
            attempt_log,
        };
        if let Some(history) = self.history.get() {
            history.record_run(&slot.name, &record);
        }
        if state.history.len() == HISTORY_LEN {
            state.history.pop_back();
        }
        state.history.push_front(record);
        drop(state);
        slot.finished.notify_waiters();
    }

    /// With replicas configured, names the target an attempt failed on and what follows: a
    /// replica a task could not reach leaves rotation at once (the retry goes elsewhere); a
    /// write waits for the primary, never trying a replica. One database: the error as it was.
    fn explain(&self, route: Route, target: Target, err: TaskError) -> TaskError {
        if !self.targets.has_replicas()
            || matches!(
                err,
                TaskError::NoReplica(_)
                    | TaskError::On { .. }
                    | TaskError::Lease(LeaseError::OverLimit { .. })
            )
        {
            return err;
        }
        let why = match (target, route) {
            (Target::Replica(_), _) if err.kind() == FailureKind::Unreachable => {
                self.targets.failed_connect(target, &err.to_string());
                "; it is out of rotation and the retry goes where reads go now"
            }
            (Target::Primary, Route::Primary) if err.kind().is_connection() => {
                "; writes wait for the primary (they never go to a replica)"
            }
            _ => "",
        };
        TaskError::On {
            target,
            source: Box::new(err),
            why,
        }
    }

    /// Records run `run_id` of slot `index` as cancelled, for `reason`.
    pub(super) fn finish_cancelled(&self, index: usize, run_id: u64, reason: &str) {
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
        let (limits, retry, scheduled_at) = {
            let state = slot.state.lock();
            let scheduled_at = state.current.as_ref().and_then(|c| c.scheduled_at);
            (
                state.limits,
                state.retry.unwrap_or(inner.retry),
                scheduled_at,
            )
        };
        // Routed per attempt: a retry after a replica fell over goes where reads go now.
        let route = slot.job.route();
        let routed = inner.targets.route(route);
        let (target, leases) = match &routed {
            Ok((target, leases)) => (*target, leases.clone()),
            Err(_) => (Target::Primary, inner.targets.primary().clone()),
        };
        let ctx = JobContext {
            leases,
            target,
            targets: inner.targets.clone(),
            run: RunContext::limited(slot.name.clone(), run_id, limits),
            now_ms: Utc::now().timestamp_millis(),
            instance: inner.instance.clone(),
            scheduled_at,
        };
        let attempt_started = Utc::now();
        inner.set_state(index, run_id, |current| {
            current.peak_leases = current.peak_leases();
            current.attempt = Some(ctx.run.clone());
            current.attempt_started = Some(attempt_started);
            current.attempt_target = target;
        });
        let result = match routed {
            Ok(_) => ctx.run.scope(slot.job.run(&ctx)).await,
            Err(no_replica) => Err(TaskError::NoReplica(no_replica)),
        };
        let result = result.map_err(|err| inner.explain(route, target, err));
        // The attempt's entry in the run's log; a retry adds its delay below.
        let ended = Attempt {
            number: attempt,
            started_at: attempt_started,
            duration_ms: millis_between(attempt_started, Utc::now()),
            error: result.as_ref().err().map(ToString::to_string),
            failure: result.as_ref().err().map(TaskError::kind),
            retry_delay_ms: None,
            leases: ctx.run.lease_uses(),
            target,
        };
        inner.set_state(index, run_id, |current| {
            current.attempt_started = None;
            current.attempt_log.push(ended);
        });
        match result {
            Ok(output) => {
                if let Some(counts) = output.counts {
                    *inner.latest_counts.lock() = Some((counts, Utc::now()));
                }
                if let Some(round_trip) = output.round_trip {
                    *inner.latest_round_trip.lock() = Some(round_trip);
                }
                break match output.skipped {
                    Some(reason) => Outcome::Skipped {
                        reason,
                        cause: SkipCause::Elsewhere,
                    },
                    None => Outcome::Succeeded {
                        rows: output.rows,
                        detail: output.detail,
                    },
                };
            }
            Err(TaskError::Lease(err @ LeaseError::OverLimit { .. })) => {
                break Outcome::Skipped {
                    reason: err.to_string(),
                    cause: SkipCause::OverLimit,
                };
            }
            Err(err) if err.is_retryable() && attempt <= retry.max_retries => {
                let delay = retry.delay(attempt, &mut rand::rng());
                let until = Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::TimeDelta::MAX);
                tracing::info!(task = %slot.name, run_id, attempt, %err, delay_ms = delay.as_millis() as u64, "retrying");
                slot.state.lock().counts.retries += 1;
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                inner.set_state(index, run_id, |current| {
                    current.backoff_ms.push(delay_ms);
                    if let Some(last) = current.attempt_log.last_mut() {
                        last.retry_delay_ms = Some(delay_ms);
                    }
                    current.retried_after = Some(err.to_string());
                    current.state = TaskState::Backoff {
                        run_id,
                        next_attempt: attempt + 1,
                        max_attempts: retry.max_retries + 1,
                        until,
                        error: err.to_string(),
                    };
                });
                tokio::time::sleep(delay).await;
                // Pausing a task stops it: a run waiting to retry ends instead of starting
                // another attempt (an operator pauses a leaking task, then cleans up).
                if slot.state.lock().paused {
                    break Outcome::Cancelled {
                        reason: format!("paused before retry {attempt}; last error: {err}"),
                    };
                }
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

/// Milliseconds from `from` to `to`, 0 if the clock went back.
fn millis_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds().max(0)).unwrap_or(0)
}

/// The failure kind an outcome records, if it is a failure.
fn outcome_failure(outcome: &Outcome) -> Option<FailureKind> {
    match outcome {
        Outcome::Failed { cause, .. } => Some(*cause),
        _ => None,
    }
}
