//! Control actions — start, stop, cleanup, emergency cleanup, run now, pause, resume — as the
//! API and the dashboard both take them: validated, performed, and written to the audit log
//! before the caller hears back.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    Engine,
    audit::{MAX_PENDING, NewEntry, REFUSED, Recorded},
    engine::STOP_DEADLINE,
    tasks::CommandError,
};

/// A second emergency cleanup within this long of the last is refused.
pub const EMERGENCY_COOLDOWN: Duration = Duration::from_secs(10);

/// Every action's name, as the API spells them.
pub const ACTIONS: [&str; 7] = [
    "start",
    "stop",
    "cleanup",
    "emergency_cleanup",
    "run_now",
    "pause",
    "resume",
];

/// The longest task name an action accepts.
pub const MAX_TASK_NAME: usize = 64;

/// Whether `name` is a plausible task name: 1 to [`MAX_TASK_NAME`] bytes of `[a-z0-9_]`.
fn is_task_name(name: &str) -> bool {
    (1..=MAX_TASK_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Who may do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Reads and acts.
    Operator,
}

impl Role {
    /// "viewer" or "operator".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// A validated action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the scheduler.
    Start,
    /// Stop it, giving runs in flight [`STOP_DEADLINE`].
    Stop,
    /// Revoke stale leases (or preview).
    Cleanup {
        /// Only report.
        dry_run: bool,
    },
    /// Revoke everything and shrink the pool (or preview).
    EmergencyCleanup {
        /// Only report.
        dry_run: bool,
    },
    /// Run a task now.
    RunNow(String),
    /// Pause a task.
    Pause(String),
    /// Resume a task.
    Resume(String),
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The request itself is wrong (unknown action or task, missing or extra field).
    #[error("{message}")]
    Invalid {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A viewer tried to act.
    #[error("the viewer role can read but not act; use the operator token")]
    Forbidden,
    /// It conflicts with the current state (already running, emergency too soon).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// Why.
        message: String,
    },
}

impl Action {
    /// Builds an action from its parts, naming whatever is wrong.
    pub fn parse(
        action: &str,
        task: Option<String>,
        dry_run: Option<bool>,
    ) -> Result<Self, ControlError> {
        let invalid = |code, message: String| ControlError::Invalid { code, message };
        if !ACTIONS.contains(&action) {
            return Err(invalid(
                "unknown_action",
                format!(
                    "unknown action {action:?}: allowed are {}",
                    ACTIONS.join(", ")
                ),
            ));
        }
        let needs_task = matches!(action, "run_now" | "pause" | "resume");
        let task = match (needs_task, task) {
            (true, None) => {
                return Err(invalid(
                    "missing_task",
                    format!(
                        "{action} needs \"task\": status_transitions, auction_monitor or health_check"
                    ),
                ));
            }
            (false, Some(_)) => {
                return Err(invalid(
                    "unexpected_task",
                    format!("{action} takes no \"task\""),
                ));
            }
            (_, task) => task.unwrap_or_default(),
        };
        if needs_task && !is_task_name(&task) {
            // Not quoted back: it may be megabytes, and it is not audited either.
            return Err(invalid(
                "invalid_task",
                format!(
                    "\"task\" must be a task name, 1 to {MAX_TASK_NAME} characters of a-z, 0-9 \
                     and _ (status_transitions, auction_monitor or health_check); got {} bytes",
                    task.len()
                ),
            ));
        }
        let takes_dry_run = matches!(action, "cleanup" | "emergency_cleanup");
        if !takes_dry_run && dry_run.is_some() {
            return Err(invalid(
                "unexpected_dry_run",
                format!("{action} takes no \"dry_run\""),
            ));
        }
        let dry_run = dry_run.unwrap_or(false);
        Ok(match action {
            "start" => Self::Start,
            "stop" => Self::Stop,
            "cleanup" => Self::Cleanup { dry_run },
            "emergency_cleanup" => Self::EmergencyCleanup { dry_run },
            "run_now" => Self::RunNow(task),
            "pause" => Self::Pause(task),
            _ => Self::Resume(task),
        })
    }

    /// The action's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Cleanup { .. } => "cleanup",
            Self::EmergencyCleanup { .. } => "emergency_cleanup",
            Self::RunNow(_) => "run_now",
            Self::Pause(_) => "pause",
            Self::Resume(_) => "resume",
        }
    }

    fn arguments(&self) -> String {
        match self {
            Self::Cleanup { dry_run } | Self::EmergencyCleanup { dry_run } => {
                json!({"dry_run": dry_run})
            }
            Self::RunNow(task) | Self::Pause(task) | Self::Resume(task) => json!({"task": task}),
            Self::Start | Self::Stop => json!({}),
        }
        .to_string()
    }
}

/// What an action did.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// What happened, in a line.
    pub message: String,
    /// A cleanup or stop report, `{"run_id"}`, or null.
    pub details: Value,
}

impl Engine {
    /// Performs `action` for `role` from `client`, writes the audit row (also for refusals),
    /// and only then returns. While the database is unreachable the action still happens and
    /// its row is queued (the message says so), to be written when the database is back.
    pub async fn perform(
        &self,
        action: &Action,
        role: Role,
        client: &str,
    ) -> Result<Done, ControlError> {
        let outcome = if role != Role::Operator {
            Err(ControlError::Forbidden)
        } else if self.audit().operator_queue_full() {
            // Never act unrecorded, and never drop a recorded action to make room.
            Err(ControlError::Conflict {
                code: "audit_queue_full",
                message: format!(
                    "{MAX_PENDING} audit entries are waiting for the database; actions resume \
                     when it takes them"
                ),
            })
        } else {
            self.act(action).await
        };
        let (verdict, result) = match &outcome {
            Ok(done) => ("ok", done.message.clone()),
            Err(err) => (REFUSED, err.to_string()),
        };
        let entry = NewEntry {
            role: role.as_str().to_owned(),
            action: action.name().to_owned(),
            arguments: action.arguments(),
            outcome: verdict.to_owned(),
            result,
            client: client.to_owned(),
        };
        let queued = match self.audit().record(self.database(), entry).await {
            Recorded::Written(_) | Recorded::Coalesced(_) | Recorded::Dropped => None,
            Recorded::Queued(reason) => Some(reason),
        };
        outcome.map(|mut done| {
            tracing::info!(action = action.name(), message = %done.message, "control action");
            if let Some(reason) = queued {
                done.message.push_str(&format!(
                    " (audit entry queued: the database is unreachable ({reason}); it is \
                     written when the database is back)"
                ));
            }
            done
        })
    }

    async fn act(&self, action: &Action) -> Result<Done, ControlError> {
        let tasks = self.tasks();
        let command = |err: CommandError| match err {
            CommandError::UnknownTask(..) => ControlError::Invalid {
                code: "unknown_task",
                message: err.to_string(),
            },
            CommandError::AlreadyRunning(..) => ControlError::Conflict {
                code: "already_running",
                message: err.to_string(),
            },
        };
        let done = |message: String, details: Value| Ok(Done { message, details });
        match action {
            Action::Start => {
                let started = tasks.start();
                done(
                    if started {
                        "scheduler started"
                    } else {
                        "scheduler was already running"
                    }
                    .to_owned(),
                    Value::Null,
                )
            }
            Action::Stop => {
                let report = tasks.stop(STOP_DEADLINE).await;
                done(
                    format!(
                        "scheduler stopped: {} run(s) finished, {} cancelled at the deadline",
                        report.finished.len(),
                        report.cancelled.len()
                    ),
                    json!(report),
                )
            }
            Action::Cleanup { dry_run } => {
                let report = self.leases().cleanup(*dry_run).await;
                done(report.summary(), json!(report))
            }
            Action::EmergencyCleanup { dry_run } => {
                if !dry_run {
                    self.claim_emergency()?;
                }
                let report = self.emergency_cleanup(*dry_run).await;
                done(report.summary(), json!(report))
            }
            Action::RunNow(task) => {
                let run_id = tasks.run_now(task).map_err(command)?;
                done(
                    format!("{task} run {run_id} started"),
                    json!({"run_id": run_id}),
                )
            }
            Action::Pause(task) => {
                tasks.pause(task).map_err(command)?;
                done(format!("{task} paused"), Value::Null)
            }
            Action::Resume(task) => {
                tasks.resume(task).map_err(command)?;
                done(format!("{task} resumed"), Value::Null)
            }
        }
    }

    /// Refuses an emergency cleanup within [`EMERGENCY_COOLDOWN`] of the last one.
    fn claim_emergency(&self) -> Result<(), ControlError> {
        let mut last = self.last_emergency.lock();
        if let Some(at) = *last
            && at.elapsed() < EMERGENCY_COOLDOWN
        {
            return Err(ControlError::Conflict {
                code: "too_soon",
                message: format!(
                    "an emergency cleanup ran {:.1} s ago; wait {} s between them",
                    at.elapsed().as_secs_f64(),
                    EMERGENCY_COOLDOWN.as_secs()
                ),
            });
        }
        *last = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_or_say_what_is_wrong() {
        assert_eq!(
            Action::parse("cleanup", None, Some(true)),
            Ok(Action::Cleanup { dry_run: true })
        );
        assert_eq!(
            Action::parse("pause", Some("health_check".into()), None),
            Ok(Action::Pause("health_check".into()))
        );
        let code = |r: Result<Action, ControlError>| match r {
            Err(ControlError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(Action::parse("restart", None, None)), "unknown_action");
        assert_eq!(code(Action::parse("run_now", None, None)), "missing_task");
        assert_eq!(
            code(Action::parse("start", Some("x".into()), None)),
            "unexpected_task"
        );
        assert_eq!(
            code(Action::parse("stop", None, Some(true))),
            "unexpected_dry_run"
        );
    }

    #[test]
    fn task_names_must_be_plausible_identifiers() {
        let code = |task: String| match Action::parse("pause", Some(task), None) {
            Err(ControlError::Invalid { code, message }) => {
                assert!(message.len() < 300, "the message does not quote the task");
                code
            }
            other => panic!("{other:?}"),
        };
        for bad in [
            String::new(),
            "x".repeat(MAX_TASK_NAME + 1),
            "a".repeat(4 << 20),
            "Health_Check".to_owned(),
            "health-check".to_owned(),
            "health check".to_owned(),
            "tâche".to_owned(),
        ] {
            assert_eq!(code(bad), "invalid_task");
        }
        // Well-formed but unknown names are refused later, by the task manager.
        assert_eq!(
            Action::parse("run_now", Some("x".repeat(MAX_TASK_NAME)), None),
            Ok(Action::RunNow("x".repeat(MAX_TASK_NAME)))
        );
    }
}
