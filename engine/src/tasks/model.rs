//! What the dashboard and the API read about tasks: how runs ended, where each task is, its
//! counters and recent runs.

use chrono::{DateTime, Utc};
use leasewatch_types::{RunOutcome, Target, TaskStatus};
use serde::{Deserialize, Serialize};

use crate::{failure::FailureKind, lease::LeaseUse};

/// Runs kept per task for the dashboard.
pub const HISTORY_LEN: usize = 50;

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
    /// Not run: another instance was running it, or the lease limit stayed full.
    Skipped {
        /// Why, in words for the operator.
        reason: String,
        /// Why, for the counters.
        #[serde(default)]
        cause: SkipCause,
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
        /// What stopped it, in words for the operator.
        reason: String,
    },
}

impl Outcome {
    /// How it ended, in one word.
    pub fn kind(&self) -> RunOutcome {
        match self {
            Self::Succeeded { .. } => RunOutcome::Succeeded,
            Self::Skipped { .. } => RunOutcome::Skipped,
            Self::Failed { .. } => RunOutcome::Failed,
            Self::Cancelled { .. } => RunOutcome::Cancelled,
        }
    }

    /// Its line for the operator: what was done, why it was skipped or cancelled, the error.
    pub fn detail(&self) -> &str {
        match self {
            Self::Succeeded { detail, .. } => detail,
            Self::Skipped { reason, .. } | Self::Cancelled { reason } => reason,
            Self::Failed { error, .. } => error,
        }
    }
}

/// Why a run was skipped.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SkipCause {
    /// Another instance held the task's advisory lock.
    #[default]
    Elsewhere,
    /// The governor's lease limit stayed full for the whole acquire timeout, held by work of
    /// the same or higher priority.
    OverLimit,
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

impl Trigger {
    /// Its name, as serde writes it (and the history stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }

    /// Reads a name written by [`Trigger::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Schedule, Self::Manual]
            .into_iter()
            .find(|t| t.as_str() == name)
    }
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
    /// How long its scheduled start waited for a deferral to end, in milliseconds (0: it was
    /// not deferred).
    #[serde(default)]
    pub deferred_ms: u64,
    /// The most leases it held at once (what the schedule preview expects of the next run).
    #[serde(default)]
    pub leases: u32,
    /// When its start was due (its schedule's tick); `None` for a manual run.
    #[serde(default)]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Each attempt, in order: when, how long, how it failed, the leases it held.
    #[serde(default)]
    pub attempt_log: Vec<Attempt>,
}

impl RunRecord {
    /// When it ended.
    pub fn ended_at(&self) -> DateTime<Utc> {
        self.started_at
            + chrono::Duration::milliseconds(i64::try_from(self.duration_ms).unwrap_or(i64::MAX))
    }

    /// Rows changed (0 unless it succeeded).
    pub fn rows(&self) -> u64 {
        match self.outcome {
            Outcome::Succeeded { rows, .. } => rows,
            _ => 0,
        }
    }

    /// What kind of failure ended it, if it failed.
    pub fn failure(&self) -> Option<FailureKind> {
        match self.outcome {
            Outcome::Failed { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

/// One attempt of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Attempt {
    /// 1 for the first.
    pub number: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The error it ended with; `None` when it did its work (or was skipped).
    pub error: Option<String>,
    /// What kind of failure that was.
    pub failure: Option<FailureKind>,
    /// The backoff waited after it before the next attempt, in milliseconds.
    pub retry_delay_ms: Option<u64>,
    /// The leases it was given, with their backends and how long each acquire waited.
    pub leases: Vec<LeaseUse>,
    /// The database it ran on (records from before there were several read as the primary).
    #[serde(default)]
    pub target: Target,
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
        /// How many attempts the run may make in all.
        max_attempts: u32,
        /// When it will be made.
        until: DateTime<Utc>,
        /// The error the last attempt ended with.
        error: String,
    },
}

/// Everything the dashboard and the API show for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskView {
    /// The task's name.
    pub name: String,
    /// Its cadence, in seconds (for a cron schedule, the gap between its next two starts).
    pub interval_secs: u64,
    /// Its schedule in words: `every 15 min (at :07:30, :22:30, …)`, `cron 30 2 * * *
    /// (Europe/Berlin)`.
    #[serde(default)]
    pub schedule: String,
    /// Paused: ticks do not start runs.
    pub paused: bool,
    /// Idle, running or in backoff.
    pub state: TaskState,
    /// When the next tick is due (none while the scheduler is stopped).
    pub next_run_at: Option<DateTime<Utc>>,
    /// Since when a scheduled start has been waiting for a deferral to end (none when no start
    /// waits).
    #[serde(default)]
    pub deferred_since: Option<DateTime<Utc>>,
    /// The last finished run.
    pub last: Option<RunRecord>,
    /// When a run last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Runs finished, by outcome, since start.
    pub counts: TaskCounts,
    /// The last [`HISTORY_LEN`] runs, newest first.
    pub history: Vec<RunRecord>,
    /// When the last [`HISTORY_LEN`] ticks were skipped because a run was still going,
    /// newest first.
    pub overlap_skips: Vec<DateTime<Utc>>,
}

impl TaskView {
    /// Where the task is, in one word: a paused task between runs is `Paused`.
    pub fn status(&self) -> TaskStatus {
        match self.state {
            TaskState::Running { .. } => TaskStatus::Running,
            TaskState::Backoff { .. } => TaskStatus::Backoff,
            TaskState::Idle if self.paused => TaskStatus::Paused,
            TaskState::Idle => TaskStatus::Idle,
        }
    }
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
    /// Runs skipped because the lease limit stayed full (a tight connection budget).
    #[serde(default)]
    pub over_limit_skips: u64,
    /// Runs cancelled.
    pub cancelled: u64,
    /// Scheduled starts deferred (they waited for a deferral to end, or for their slack).
    #[serde(default)]
    pub deferred: u64,
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

#[cfg(test)]
mod tests {
    use super::Trigger;

    #[test]
    fn a_trigger_is_stored_under_its_serde_name_and_read_back() {
        for trigger in [Trigger::Schedule, Trigger::Manual] {
            assert_eq!(
                serde_json::to_value(trigger).unwrap(),
                serde_json::json!(trigger.as_str())
            );
            assert_eq!(Trigger::parse(trigger.as_str()), Some(trigger));
        }
        assert_eq!(Trigger::parse("cron"), None);
    }
}
