//! Control actions — start, stop, cleanup, emergency cleanup, run now, pause, resume — as the
//! API and the dashboard both take them: validated, performed, and written to the audit log
//! before the caller hears back.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use leasewatch_types::{ActionName, Role};
use leasewatch_types::{Actor, AuditOutcome, Target};

use crate::{
    Engine,
    audit::{MAX_PENDING, NewEntry, Recorded},
    engine::STOP_DEADLINE,
    lease::CleanupReport,
    tasks::{CommandError, StopReport},
};

/// A second emergency cleanup within this long of the last is refused.
pub const EMERGENCY_COOLDOWN: Duration = Duration::from_secs(10);

/// What a task argument names, as an error message says it: the tasks are the built-in ones
/// and any the operator declared, so the message points at where they are listed.
fn task_names() -> String {
    use leasewatch_types::task;
    format!(
        "a task's name as the status lists it, such as {} or a declared task's",
        task::STATUS_TRANSITIONS
    )
}

/// The longest task name an action accepts.
pub const MAX_TASK_NAME: usize = 64;

/// Whether `name` is a plausible task name: 1 to [`MAX_TASK_NAME`] bytes of `[a-z0-9_]`.
pub(crate) fn is_task_name(name: &str) -> bool {
    (1..=MAX_TASK_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A validated action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the scheduler.
    Start,
    /// Stop it, giving runs in flight [`STOP_DEADLINE`] (or preview which runs that is).
    Stop {
        /// Only report.
        dry_run: bool,
    },
    /// Revoke stale leases (or preview).
    Cleanup {
        /// Only report.
        dry_run: bool,
    },
    /// Revoke everything and shrink the pool (or preview), on one target or on all.
    EmergencyCleanup {
        /// Only report.
        dry_run: bool,
        /// The one target to act on; every target when `None`.
        target: Option<Target>,
    },
    /// Run a task now.
    RunNow(String),
    /// Pause a task.
    Pause(String),
    /// Resume a task.
    Resume(String),
    /// Send a test notification to every alert receiver.
    TestNotification,
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
    /// Builds an action from its name as sent (the API's text), naming whatever is wrong.
    pub fn parse(
        action: &str,
        task: Option<String>,
        dry_run: Option<bool>,
        target: Option<String>,
    ) -> Result<Self, ControlError> {
        let name: ActionName = action
            .parse()
            .map_err(|err: leasewatch_types::UnknownName| ControlError::Invalid {
                code: "unknown_action",
                message: format!("unknown action {action:?}: allowed are {}", err.allowed),
            })?;
        Self::new(name, task, dry_run, target)
    }

    /// Builds an action from its name and arguments, naming whatever is wrong.
    pub fn new(
        name: ActionName,
        task: Option<String>,
        dry_run: Option<bool>,
        target: Option<String>,
    ) -> Result<Self, ControlError> {
        let invalid = |code, message: String| ControlError::Invalid { code, message };
        let task = match (name.takes_task(), task) {
            (true, None) => {
                return Err(invalid(
                    "missing_task",
                    format!("{name} needs \"task\": {}", task_names()),
                ));
            }
            (false, Some(_)) => {
                return Err(invalid(
                    "unexpected_task",
                    format!("{name} takes no \"task\""),
                ));
            }
            (_, task) => task.unwrap_or_default(),
        };
        if name.takes_task() && !is_task_name(&task) {
            // Not quoted back: it may be megabytes, and it is not audited either.
            return Err(invalid(
                "invalid_task",
                format!(
                    "\"task\" must be a task name, 1 to {MAX_TASK_NAME} characters of a-z, 0-9 \
                     and _ ({}); got {} bytes",
                    task_names(),
                    task.len()
                ),
            ));
        }
        if !name.takes_dry_run() && dry_run.is_some() {
            return Err(invalid(
                "unexpected_dry_run",
                format!("{name} takes no \"dry_run\""),
            ));
        }
        let dry_run = dry_run.unwrap_or(false);
        let target = match (name, target) {
            (_, None) => None,
            (ActionName::EmergencyCleanup, Some(target)) => {
                Some(target.parse::<Target>().map_err(|err| {
                    invalid(
                        "invalid_target",
                        format!(
                            "\"target\" must name a database: {}; got {} bytes",
                            err.allowed,
                            target.len()
                        ),
                    )
                })?)
            }
            (_, Some(_)) => {
                return Err(invalid(
                    "unexpected_target",
                    format!("{name} takes no \"target\" (only emergency_cleanup does)"),
                ));
            }
        };
        Ok(match name {
            ActionName::Start => Self::Start,
            ActionName::Stop => Self::Stop { dry_run },
            ActionName::Cleanup => Self::Cleanup { dry_run },
            ActionName::EmergencyCleanup => Self::EmergencyCleanup { dry_run, target },
            ActionName::RunNow => Self::RunNow(task),
            ActionName::Pause => Self::Pause(task),
            ActionName::Resume => Self::Resume(task),
            ActionName::TestNotification => Self::TestNotification,
        })
    }

    /// The action's name.
    pub fn name(&self) -> ActionName {
        match self {
            Self::Start => ActionName::Start,
            Self::Stop { .. } => ActionName::Stop,
            Self::Cleanup { .. } => ActionName::Cleanup,
            Self::EmergencyCleanup { .. } => ActionName::EmergencyCleanup,
            Self::RunNow(_) => ActionName::RunNow,
            Self::Pause(_) => ActionName::Pause,
            Self::Resume(_) => ActionName::Resume,
            Self::TestNotification => ActionName::TestNotification,
        }
    }

    fn arguments(&self) -> String {
        match self {
            Self::Stop { dry_run } | Self::Cleanup { dry_run } => json!({"dry_run": dry_run}),
            Self::EmergencyCleanup {
                dry_run,
                target: None,
            } => json!({"dry_run": dry_run}),
            Self::EmergencyCleanup {
                dry_run,
                target: Some(target),
            } => json!({"dry_run": dry_run, "target": target}),
            Self::RunNow(task) | Self::Pause(task) | Self::Resume(task) => json!({"task": task}),
            Self::Start | Self::TestNotification => json!({}),
        }
        .to_string()
    }
}

/// What an action did.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// What happened, in a line.
    pub message: String,
    /// The action's report, if it has one.
    pub details: Details,
}

/// An action's report, as the API returns it: a cleanup or stop report, the run started, or
/// `null` for the actions that have nothing to report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Details {
    /// What a cleanup or emergency cleanup did, or would do.
    Cleanup(CleanupReport),
    /// What a stop did: runs finished and cancelled.
    Stop(StopReport),
    /// The run `run_now` started.
    RunStarted {
        /// Its number.
        run_id: u64,
    },
    /// Start, pause and resume report nothing more than their message.
    None,
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
            Ok(done) => (AuditOutcome::Ok, done.message.clone()),
            Err(err) => (AuditOutcome::Refused, err.to_string()),
        };
        let entry = NewEntry {
            role: Actor::from(role),
            action: action.name().as_str().to_owned(),
            arguments: action.arguments(),
            outcome: verdict,
            result,
            client: client.to_owned(),
        };
        let queued = match self.audit().record(self.database(), entry).await {
            Recorded::Written(_) | Recorded::Coalesced(_) | Recorded::Dropped => None,
            Recorded::Queued(reason) => Some(reason),
        };
        if outcome.is_ok() {
            // What the page shows next must already reflect what the action changed.
            self.reevaluate();
        }
        outcome.map(|mut done| {
            tracing::info!(action = action.name().as_str(), message = %done.message, "control action");
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
        let done = |message: String, details: Details| Ok(Done { message, details });
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
                    Details::None,
                )
            }
            Action::Stop { dry_run: true } => {
                let runs = tasks.in_flight();
                let scheduler = if tasks.is_running() {
                    "would stop the scheduler"
                } else {
                    "the scheduler is already stopped"
                };
                let message = if runs.is_empty() {
                    format!("{scheduler}; no run is in flight")
                } else {
                    let listed: Vec<String> = runs
                        .iter()
                        .map(|(task, run_id)| format!("{task} run {run_id}"))
                        .collect();
                    format!(
                        "{scheduler}; {} run(s) in flight ({}) get {} s to finish, then are \
                         cancelled",
                        runs.len(),
                        listed.join(", "),
                        STOP_DEADLINE.as_secs()
                    )
                };
                done(message, Details::None)
            }
            Action::Stop { dry_run: false } => {
                let report = tasks.stop(STOP_DEADLINE).await;
                done(
                    format!(
                        "scheduler stopped: {} run(s) finished, {} cancelled at the deadline",
                        report.finished.len(),
                        report.cancelled.len()
                    ),
                    Details::Stop(report),
                )
            }
            Action::Cleanup { dry_run } => {
                let report = self.leases().cleanup(*dry_run).await;
                done(report.summary(), Details::Cleanup(report))
            }
            Action::EmergencyCleanup { dry_run, target } => {
                if let Some(target) = target
                    && self.targets().get(*target).is_none()
                {
                    let configured: Vec<String> =
                        self.targets().all().map(|(t, _)| t.to_string()).collect();
                    return Err(ControlError::Invalid {
                        code: "unknown_target",
                        message: format!(
                            "there is no target {target}: configured are {}",
                            configured.join(", ")
                        ),
                    });
                }
                if !dry_run {
                    self.claim_emergency()?;
                }
                let report = self.emergency_cleanup(*dry_run, *target).await;
                done(report.summary(), Details::Cleanup(report))
            }
            Action::RunNow(task) => {
                let run_id = tasks.run_now(task).map_err(command)?;
                done(
                    format!("{task} run {run_id} started"),
                    Details::RunStarted { run_id },
                )
            }
            Action::Pause(task) => {
                tasks.pause(task).map_err(command)?;
                done(format!("{task} paused"), Details::None)
            }
            Action::Resume(task) => {
                tasks.resume(task).map_err(command)?;
                done(format!("{task} resumed"), Details::None)
            }
            Action::TestNotification => {
                let receivers = self
                    .alerting()
                    .send_test(chrono::Utc::now())
                    .map_err(|err| ControlError::Conflict {
                        code: "no_receivers",
                        message: err.to_string(),
                    })?;
                done(
                    format!(
                        "test notification queued for {} receiver(s): {}",
                        receivers.len(),
                        receivers.join(", ")
                    ),
                    Details::None,
                )
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
            Action::parse("cleanup", None, Some(true), None),
            Ok(Action::Cleanup { dry_run: true })
        );
        assert_eq!(
            Action::parse("pause", Some("health_check".into()), None, None),
            Ok(Action::Pause("health_check".into()))
        );
        let code = |r: Result<Action, ControlError>| match r {
            Err(ControlError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            code(Action::parse("restart", None, None, None)),
            "unknown_action"
        );
        assert_eq!(
            code(Action::parse("run_now", None, None, None)),
            "missing_task"
        );
        assert_eq!(
            code(Action::parse("start", Some("x".into()), None, None)),
            "unexpected_task"
        );
        assert_eq!(
            code(Action::parse("start", None, Some(true), None)),
            "unexpected_dry_run"
        );
        assert_eq!(
            Action::parse("stop", None, Some(true), None),
            Ok(Action::Stop { dry_run: true })
        );
        assert_eq!(
            Action::parse("emergency_cleanup", None, None, Some("replica-2".into())),
            Ok(Action::EmergencyCleanup {
                dry_run: false,
                target: Some(Target::Replica(2))
            })
        );
        assert_eq!(
            code(Action::parse(
                "emergency_cleanup",
                None,
                None,
                Some("replica".into())
            )),
            "invalid_target"
        );
        assert_eq!(
            code(Action::parse("cleanup", None, None, Some("primary".into()))),
            "unexpected_target"
        );
    }

    #[test]
    fn task_names_must_be_plausible_identifiers() {
        let code = |task: String| match Action::parse("pause", Some(task), None, None) {
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
            Action::parse("run_now", Some("x".repeat(MAX_TASK_NAME)), None, None),
            Ok(Action::RunNow("x".repeat(MAX_TASK_NAME)))
        );
    }
}
