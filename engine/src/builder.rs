//! Starting an engine with jobs of your own beside the built-in tasks.
//!
//! A job added here is a task like any other: it has its ticker, its retries with backoff and
//! jitter, its runs in the dashboard, the status API, `/metrics`, the recommendations, the
//! alerts and the history; run now, pause and resume act on it, and cleanup revokes its
//! leases. Its connections come from [`JobContext::leases`], so the lease manager tracks,
//! times out and reclaims them like the built-in tasks' own.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use leasewatch_engine::{
//!     BuildError, Engine, EngineConfig,
//!     tasks::{Job, JobContext, JobFuture, JobOutput, TaskError},
//! };
//!
//! /// Counts the orders, over one lease.
//! struct CountOrders;
//!
//! impl Job for CountOrders {
//!     fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
//!         Box::pin(async move {
//!             // A tracked connection: released when `lease` drops, revoked by cleanup.
//!             let mut lease = ctx.leases.acquire(&ctx.run).await?;
//!             let orders: i64 = lease
//!                 .run(|conn| {
//!                     Box::pin(async move {
//!                         Ok::<_, TaskError>(
//!                             sqlx::query_scalar("SELECT COUNT(*) FROM orders")
//!                                 .fetch_one(&mut *conn)
//!                                 .await?,
//!                         )
//!                     })
//!                 })
//!                 .await?;
//!             Ok(JobOutput::done(0, format!("{orders} orders")))
//!         })
//!     }
//! }
//!
//! async fn start(config: EngineConfig) -> Result<Engine, BuildError> {
//!     Engine::builder(config)
//!         .job("count_orders", Duration::from_secs(60), CountOrders)
//!         .start()
//!         .await
//! }
//! ```

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use crate::{
    DbError, Engine, EngineConfig,
    control::{MAX_TASK_NAME, is_task_name},
    lease::RunLimits,
    tasks::{Job, Schedule},
};

/// An interval is a schedule: every `every`, on the epoch-anchored grid with the task's phase
/// offset, as the built-in tasks' intervals are.
impl From<Duration> for Schedule {
    fn from(every: Duration) -> Self {
        Self::every(every)
    }
}

/// Why a job of yours was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Not a task name: the API, the metrics' labels and the URLs all carry it as it is.
    #[error(
        "job name {name:?} is not a task name: 1 to {MAX_TASK_NAME} characters of a-z, 0-9 and _"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// One of the engine's own tasks has that name ([`leasewatch_types::task::RESERVED`]).
    #[error("job name {name:?} is taken by one of Leasewatch's own tasks")]
    Reserved {
        /// The name given.
        name: String,
    },
    /// Two jobs were given the same name.
    #[error("job name {name:?} is given to two jobs")]
    Duplicate {
        /// The name given twice.
        name: String,
    },
    /// A task declared in the configuration (the task file) has that name.
    #[error("job name {name:?} is taken by a declared task")]
    Declared {
        /// The name given.
        name: String,
    },
    /// An interval of zero would run the job without pause.
    #[error("job {name:?} has an interval of zero")]
    ZeroInterval {
        /// The job's name.
        name: String,
    },
}

/// Why [`EngineBuilder::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A job was refused; nothing was started.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The database could not be reached, migrated or read.
    #[error(transparent)]
    Database(#[from] DbError),
}

/// A job as added, checked at [`EngineBuilder::start`].
struct Added {
    name: String,
    schedule: Schedule,
    limits: Option<RunLimits>,
    job: Arc<dyn Job>,
}

/// An engine with jobs of your own: from [`Engine::builder`], then [`EngineBuilder::job`] for
/// each, then [`EngineBuilder::start`].
#[must_use = "nothing starts until `start` is awaited"]
pub struct EngineBuilder {
    config: EngineConfig,
    jobs: Vec<Added>,
}

impl Engine {
    /// An engine on `config` to which jobs of your own can be added before it starts.
    /// [`Engine::start`] is this with no jobs added.
    pub fn builder(config: EngineConfig) -> EngineBuilder {
        EngineBuilder {
            config,
            jobs: Vec::new(),
        }
    }
}

impl EngineBuilder {
    /// Adds `job` as the task `name`, run on `schedule`: a [`Duration`] (an interval) or a
    /// [`Schedule`] (such as [`Schedule::cron`]). Its leases take the engine's lease timeout
    /// and priority 0; see [`EngineBuilder::job_with_limits`].
    pub fn job(
        self,
        name: impl Into<String>,
        schedule: impl Into<Schedule>,
        job: impl Job,
    ) -> Self {
        self.add(name.into(), schedule.into(), None, Arc::new(job))
    }

    /// [`EngineBuilder::job`] with the lease timeout and priority its runs take (as
    /// `TASK_<NAME>_TIMEOUT` and `TASK_<NAME>_PRIORITY` give the built-in tasks).
    pub fn job_with_limits(
        self,
        name: impl Into<String>,
        schedule: impl Into<Schedule>,
        limits: RunLimits,
        job: impl Job,
    ) -> Self {
        self.add(name.into(), schedule.into(), Some(limits), Arc::new(job))
    }

    fn add(
        mut self,
        name: String,
        schedule: Schedule,
        limits: Option<RunLimits>,
        job: Arc<dyn Job>,
    ) -> Self {
        self.jobs.push(Added {
            name,
            schedule,
            limits,
            job,
        });
        self
    }

    /// Checks every job (names, clashes, intervals), then starts the engine with them beside
    /// the built-in tasks, as [`Engine::start`] does.
    pub async fn start(self) -> Result<Engine, BuildError> {
        check(&self.jobs, &self.config)?;
        let mut config = self.config;
        let mut specs = Vec::with_capacity(self.jobs.len());
        for Added {
            name,
            schedule,
            limits,
            job,
        } in self.jobs
        {
            if let Some(limits) = limits {
                config.task_limits.insert(name.clone(), limits);
            }
            // The task manager takes an interval per job; a cron schedule replaces it right
            // after, as `TASK_<NAME>_SCHEDULE` does for the built-in tasks.
            let every = match &schedule {
                Schedule::Every { every, .. } => *every,
                Schedule::Cron(_) => {
                    config.schedules.insert(name.clone(), schedule.clone());
                    Duration::from_secs(60)
                }
            };
            specs.push((name, every, job));
        }
        Ok(Engine::start_with(config, specs).await?)
    }
}

/// Each job's name is a task name, not reserved, not a declared task's and not given twice;
/// each interval is above zero.
fn check(jobs: &[Added], config: &EngineConfig) -> Result<(), JobError> {
    let mut seen = BTreeSet::new();
    for Added { name, schedule, .. } in jobs {
        let name = name.clone();
        if !is_task_name(&name) {
            return Err(JobError::InvalidName { name });
        }
        if leasewatch_types::task::RESERVED.contains(&name.as_str()) {
            return Err(JobError::Reserved { name });
        }
        if config.declared.iter().any(|task| task.name == name) {
            return Err(JobError::Declared { name });
        }
        if matches!(schedule, Schedule::Every { every, .. } if every.is_zero()) {
            return Err(JobError::ZeroInterval { name });
        }
        if !seen.insert(name.clone()) {
            return Err(JobError::Duplicate { name });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{
        JobContext, JobFuture, JobOutput,
        declared::{DeclaredTask, DeclaredTasks, Statement},
    };

    struct Nothing;

    impl Job for Nothing {
        fn run<'a>(&'a self, _: &'a JobContext) -> JobFuture<'a> {
            Box::pin(async { Ok(JobOutput::done(0, "nothing")) })
        }
    }

    fn added(name: &str, every: Duration) -> Added {
        Added {
            name: name.to_owned(),
            schedule: every.into(),
            limits: None,
            job: Arc::new(Nothing),
        }
    }

    #[test]
    fn names_follow_the_task_name_rules_and_never_clash() {
        let minute = Duration::from_secs(60);
        let config = EngineConfig {
            declared: DeclaredTasks::new(vec![DeclaredTask {
                name: "purge_sessions".to_owned(),
                schedule: minute.into(),
                statements: vec![Statement::parse("SELECT 1").unwrap()],
                limits: RunLimits::default(),
                retry: None,
                overlap: false,
                route: leasewatch_types::Route::Primary,
            }])
            .unwrap(),
            ..EngineConfig::new(crate::DatabaseUrl::Sqlite("unused.db".into()))
        };
        assert_eq!(check(&[added("nightly_report", minute)], &config), Ok(()));
        for bad in [
            "",
            "Nightly",
            "nightly-report",
            "a b",
            &"a".repeat(MAX_TASK_NAME + 1),
        ] {
            assert_eq!(
                check(&[added(bad, minute)], &config),
                Err(JobError::InvalidName {
                    name: bad.to_owned()
                }),
                "{bad:?}"
            );
        }
        for taken in leasewatch_types::task::RESERVED {
            assert_eq!(
                check(&[added(taken, minute)], &config),
                Err(JobError::Reserved {
                    name: taken.to_owned()
                })
            );
        }
        assert_eq!(
            check(
                &[added("report", minute), added("report", minute * 2)],
                &config
            ),
            Err(JobError::Duplicate {
                name: "report".to_owned()
            })
        );
        assert_eq!(
            check(&[added("purge_sessions", minute)], &config),
            Err(JobError::Declared {
                name: "purge_sessions".to_owned()
            })
        );
        assert_eq!(
            check(&[added("report", Duration::ZERO)], &config),
            Err(JobError::ZeroInterval {
                name: "report".to_owned()
            })
        );
    }
}
