//! Tasks declared by the operator (the server reads them from `LEASEWATCH_TASKS`): SQL run on
//! a schedule through a lease, like the built-in tasks.
//!
//! A run takes one lease and works in one transaction. On PostgreSQL, unless the task allows
//! overlap, it first takes the task's advisory lock ([`LOCK_CLASS`], [`lock_key`]) and skips
//! when another instance holds it; then it claims its scheduled start in `task_slots`, so
//! instances sharing a database run each start once even when their phases differ (a start
//! already claimed is skipped). Each statement then runs in order with its named parameters
//! bound ([`Parameter`]).
//!
//! A task with `target = "replica"` reads only: its transaction is read-only wherever it runs,
//! on the least-loaded replica in rotation or, when none is, on the primary. Its lock and
//! claim are coordination, so they go to the primary, in a short transaction of their own
//! committed before the reads start on the replica.
//!
//! The outcome detail is the sum of rows affected and the first row returned by the last
//! statement that returned rows. PostgreSQL's `RAISE NOTICE` is not captured: sqlx hands
//! notices to its own log and offers no way to read them per connection without speaking the
//! protocol by hand, so a task that wants its message recorded returns it as a row.

mod sql;

use std::{fmt::Write as _, sync::Arc, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::TryStreamExt;
use sqlx::{
    Any, AssertSqlSafe, Column, Connection, Executor, Row, Transaction, TypeInfo as _, ValueRef,
    any::{AnyRow, AnyTypeInfoKind},
};

pub use sql::{Parameter, Rendered, SqlError, Statement};

use super::{
    CommandError, Job, JobContext, JobFuture, JobOutput, JobSpec, RetryPolicy, Schedule, TaskError,
    TaskManager,
};
use leasewatch_types::{Route, Target};

use crate::{
    db::{Backend, SCHEMA},
    lease::RunLimits,
};

/// The first half of every declared task's advisory lock key. Declared tasks use
/// PostgreSQL's two-key form, `pg_try_advisory_xact_lock(int4, int4)`, whose key space does
/// not overlap the one-key form the built-in tasks use (`0x4C57_000n`), so no declared task
/// can take a built-in task's lock whatever its name.
pub const LOCK_CLASS: i32 = 0x4C57;

/// The most tasks one file may declare.
pub const MAX_TASKS: usize = 64;
/// The most statements one task may run.
pub const MAX_STATEMENTS: usize = 32;
/// The longest statement, in bytes.
pub const MAX_STATEMENT_LEN: usize = 16 * 1024;
/// The longest outcome detail, in characters.
pub const MAX_DETAIL: usize = 240;

/// What a run reports when another instance already ran its scheduled start.
pub const ALREADY_RAN: &str = "this start already ran on another instance";

/// How much later than its lease's deadline a declared statement's server-side timeout
/// fires: the lease's deadline cuts a runaway statement first, and its backend is ended
/// (a statement timeout would only cancel it), while the server still bounds a statement
/// whose client is gone.
const STATEMENT_GRACE: Duration = Duration::from_secs(1);

/// The second half of a declared task's advisory lock key: a stable 32-bit hash of its name,
/// the same in every instance and release.
pub fn lock_key(name: &str) -> i32 {
    let hash = super::schedule::stable_hash(name);
    // Folded, so every bit of the 64-bit hash counts; the cast keeps the bits.
    ((hash >> 32) ^ hash) as u32 as i32
}

/// One declared task, checked.
#[derive(Debug, Clone)]
pub struct DeclaredTask {
    /// Its name, as the dashboard, the API and the metrics show it.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// What it runs, in order, in one transaction.
    pub statements: Vec<Statement>,
    /// Its lease timeout and priority.
    pub limits: RunLimits,
    /// Its own retry policy; `None`: the engine's.
    pub retry: Option<RetryPolicy>,
    /// Whether instances may run it at the same time (no advisory lock, no claimed start).
    pub overlap: bool,
    /// Where it runs: the primary, or (read-only) a replica in rotation.
    pub route: Route,
}

/// Why a set of declared tasks was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclaredError {
    /// Not 1 to 64 characters of a-z, 0-9 and _.
    #[error("task name {0:?} must be 1 to 64 characters of a-z, 0-9 and _")]
    InvalidName(String),
    /// A built-in task's name.
    #[error("task name {0:?} is a built-in task's; reserved are {reserved}", reserved = leasewatch_types::task::RESERVED.join(", "))]
    Reserved(String),
    /// Declared twice.
    #[error("task name {0:?} is declared twice")]
    Duplicate(String),
    /// Two names whose advisory lock keys are the same (a hash collision).
    #[error("tasks {first:?} and {second:?} would share an advisory lock key; rename one of them")]
    LockClash {
        /// The task declared first.
        first: String,
        /// The one declared after it.
        second: String,
    },
    /// A task with nothing to run.
    #[error("task {0:?} has no statements")]
    NoStatements(String),
    /// Too many tasks or statements.
    #[error("{0}")]
    TooMany(String),
}

/// The declared tasks, checked together: valid, unique names that are not the built-in
/// tasks', distinct lock keys, bounded counts.
#[derive(Debug, Clone, Default)]
pub struct DeclaredTasks(Vec<DeclaredTask>);

impl DeclaredTasks {
    /// Checks `tasks` as a set.
    pub fn new(tasks: Vec<DeclaredTask>) -> Result<Self, DeclaredError> {
        if tasks.len() > MAX_TASKS {
            return Err(DeclaredError::TooMany(format!(
                "{} tasks declared; at most {MAX_TASKS} are allowed",
                tasks.len()
            )));
        }
        for (i, task) in tasks.iter().enumerate() {
            if !crate::control::is_task_name(&task.name) {
                return Err(DeclaredError::InvalidName(task.name.clone()));
            }
            if leasewatch_types::task::RESERVED.contains(&task.name.as_str()) {
                return Err(DeclaredError::Reserved(task.name.clone()));
            }
            if task.statements.is_empty() {
                return Err(DeclaredError::NoStatements(task.name.clone()));
            }
            if task.statements.len() > MAX_STATEMENTS {
                return Err(DeclaredError::TooMany(format!(
                    "task {:?} has {} statements; at most {MAX_STATEMENTS} are allowed",
                    task.name,
                    task.statements.len()
                )));
            }
            for earlier in &tasks[..i] {
                if earlier.name == task.name {
                    return Err(DeclaredError::Duplicate(task.name.clone()));
                }
                if lock_key(&earlier.name) == lock_key(&task.name) {
                    return Err(DeclaredError::LockClash {
                        first: earlier.name.clone(),
                        second: task.name.clone(),
                    });
                }
            }
        }
        Ok(Self(tasks))
    }

    /// The tasks, in the order declared.
    pub fn iter(&self) -> impl Iterator<Item = &DeclaredTask> {
        self.0.iter()
    }

    /// Whether none are declared.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many are declared.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Their jobs, as [`TaskManager::with_jobs`] takes them (with the others).
    pub fn jobs(&self) -> Vec<JobSpec> {
        self.0
            .iter()
            .map(|task| {
                // A cron task's interval is a placeholder until `configure` sets its schedule.
                let every = task.schedule.period().unwrap_or(Duration::from_secs(3600));
                let job: Arc<dyn Job> = Arc::new(DeclaredJob::new(task));
                (task.name.clone(), every, job)
            })
            .collect()
    }

    /// Gives each task in `tasks` (made with [`DeclaredTasks::jobs`]) its cron schedule, its
    /// limits and its own retry policy.
    pub fn configure(&self, tasks: &TaskManager) -> Result<(), CommandError> {
        for task in &self.0 {
            if task.schedule.period().is_none() {
                tasks.set_schedule(&task.name, task.schedule.clone())?;
            }
            tasks.set_limits(&task.name, task.limits)?;
            if let Some(retry) = task.retry {
                tasks.set_retry(&task.name, retry)?;
            }
        }
        Ok(())
    }
}

/// The job that runs a declared task.
pub struct DeclaredJob(Arc<Plan>);

/// What a declared job's runs do; shared with the work a lease runs (which must own it).
struct Plan {
    name: String,
    statements: Vec<Statement>,
    overlap: bool,
    route: Route,
    /// The interval, for the start a scheduled run claims; `None` for a cron schedule.
    period: Option<Duration>,
}

impl DeclaredJob {
    /// The job of `task`.
    pub fn new(task: &DeclaredTask) -> Self {
        Self(Arc::new(Plan {
            name: task.name.clone(),
            statements: task.statements.clone(),
            overlap: task.overlap,
            route: task.route,
            period: task.schedule.period(),
        }))
    }
}

impl Plan {
    /// The start a scheduled run claims, in Unix milliseconds: for an interval, the start of
    /// the period on the epoch grid the run is due in (instances whose phases differ still
    /// agree on it); for cron, the time it was due (the same in every instance).
    fn slot_ms(&self, due: DateTime<Utc>) -> i64 {
        let due_ms = due.timestamp_millis();
        match self.period {
            Some(every) => {
                let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
                due_ms.div_euclid(every_ms) * every_ms
            }
            None => due_ms,
        }
    }

    /// Claims older than this are deleted as a run claims its own: an instance whose phase
    /// trails by up to one period still finds the claim, and a cron start is the same instant
    /// everywhere.
    fn claims_kept(&self) -> Duration {
        self.period
            .map_or(Duration::from_secs(86_400), |every| every * 2)
            .max(Duration::from_secs(60))
    }
}

/// The values of one run's parameters.
#[derive(Clone)]
struct Values {
    now: DateTime<Utc>,
    task: String,
    instance: String,
    run_id: i64,
    scheduled_at_ms: Option<i64>,
}

impl Values {
    fn bind<'q>(
        &self,
        mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
        binds: &[Parameter],
        backend: Backend,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
        for param in binds {
            query = match param {
                Parameter::Now => query.bind(match backend {
                    Backend::Postgres => self.now.to_rfc3339_opts(SecondsFormat::Millis, true),
                    Backend::Sqlite => self.now.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                }),
                Parameter::NowMs => query.bind(self.now.timestamp_millis()),
                Parameter::Task => query.bind(self.task.clone()),
                Parameter::Instance => query.bind(self.instance.clone()),
                Parameter::RunId => query.bind(self.run_id),
                Parameter::ScheduledAtMs => query.bind(self.scheduled_at_ms),
            };
        }
        query
    }
}

impl Job for DeclaredJob {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let backend = ctx.leases.database().backend();
            let timeout = ctx
                .run
                .limits()
                .timeout
                .unwrap_or_else(|| ctx.leases.lease_timeout());
            let plan = Arc::clone(&self.0);
            let values = Values {
                now: DateTime::from_timestamp_millis(ctx.now_ms).unwrap_or_else(Utc::now),
                task: plan.name.clone(),
                instance: ctx.instance.clone(),
                run_id: i64::try_from(ctx.run.run_id()).unwrap_or(i64::MAX),
                scheduled_at_ms: ctx.scheduled_at.map(|at| at.timestamp_millis()),
            };
            let mut coordination = Coordination {
                lock: !plan.overlap,
                claim: (!plan.overlap)
                    .then(|| ctx.scheduled_at.map(|due| plan.slot_ms(due)))
                    .flatten(),
            };
            if ctx.target != Target::Primary && coordination.lock {
                // On a replica: the lock and the claim are taken on the primary first. Their
                // failure is the primary's, not the replica's (which stays in rotation).
                let (plan, values) = (Arc::clone(&plan), values.clone());
                let coordinate = async {
                    let mut lease = ctx.targets.primary().acquire(&ctx.run).await?;
                    lease
                        .run(move |conn| {
                            Box::pin(async move {
                                let mut tx = conn.begin().await?;
                                let skipped = plan
                                    .prepare(&mut tx, backend, timeout, coordination, &values)
                                    .await?;
                                tx.commit().await?;
                                Ok::<_, TaskError>(skipped)
                            })
                        })
                        .await
                };
                let skipped = coordinate.await.map_err(|err| TaskError::On {
                    target: Target::Primary,
                    source: Box::new(err),
                    why: "; a read task's lock and claimed start are taken there, so it waits for \
                          the primary (overlap = true needs neither)",
                })?;
                if let Some(skipped) = skipped {
                    return Ok(JobOutput::skipped(skipped));
                }
                coordination = Coordination::NONE;
            }
            let mut lease = ctx.leases.acquire(&ctx.run).await?;
            lease
                .run(move |conn| {
                    Box::pin(async move {
                        let mut tx = conn.begin().await?;
                        if let Some(skipped) = plan
                            .prepare(&mut tx, backend, timeout, coordination, &values)
                            .await?
                        {
                            // Ended here, so the connection goes back with no transaction open.
                            tx.rollback().await?;
                            return Ok(JobOutput::skipped(skipped));
                        }
                        if plan.route == Route::Replica && backend == Backend::Postgres {
                            // Read-only on the primary too, so a task that writes fails the same
                            // way wherever it lands.
                            sqlx::query("SET TRANSACTION READ ONLY")
                                .execute(&mut *tx)
                                .await?;
                        }
                        let output = plan.statements(&mut tx, backend, &values).await?;
                        tx.commit().await?;
                        Ok(output)
                    })
                })
                .await
        })
    }

    fn route(&self) -> Route {
        self.0.route
    }
}

/// What a run's transaction takes before its statements.
#[derive(Debug, Clone, Copy)]
struct Coordination {
    /// The task's advisory lock (PostgreSQL).
    lock: bool,
    /// The scheduled start to claim, in Unix milliseconds.
    claim: Option<i64>,
}

impl Coordination {
    /// Nothing: taken already, on the primary.
    const NONE: Self = Self {
        lock: false,
        claim: None,
    };
}

impl Plan {
    /// The transaction's set-up: on PostgreSQL the advisory lock (when `lock`),
    /// the statement timeout and PostgreSQL's default `search_path` (a declared task's SQL
    /// names the application's tables, not Leasewatch's schema), all in one round trip; then
    /// the scheduled start's claim. Returns why the run is skipped, if it is.
    async fn prepare(
        &self,
        tx: &mut Transaction<'_, Any>,
        backend: Backend,
        timeout: Duration,
        Coordination { lock, claim }: Coordination,
        values: &Values,
    ) -> Result<Option<&'static str>, TaskError> {
        let slots = match backend {
            Backend::Postgres => {
                let statement_timeout = format!("{}ms", (timeout + STATEMENT_GRACE).as_millis());
                let locked: bool = sqlx::query_scalar(
                    "SELECT CASE WHEN $1 THEN true ELSE pg_try_advisory_xact_lock($2, $3) END \
                     AND set_config('statement_timeout', $4, true) IS NOT NULL \
                     AND set_config('search_path', '\"$user\", public', true) IS NOT NULL",
                )
                .bind(!lock)
                .bind(LOCK_CLASS)
                .bind(lock_key(&self.name))
                .bind(statement_timeout)
                .fetch_one(&mut **tx)
                .await?;
                if !locked {
                    return Ok(Some(super::jobs::RUNNING_ELSEWHERE));
                }
                format!("{SCHEMA}.task_slots")
            }
            Backend::Sqlite => "task_slots".to_owned(),
        };
        let Some(slot_ms) = claim else {
            return Ok(None);
        };
        let kept_ms = i64::try_from(self.claims_kept().as_millis()).unwrap_or(i64::MAX);
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {slots} WHERE task = $1 AND slot_ms < $2"
        )))
        .bind(self.name.clone())
        .bind(slot_ms.saturating_sub(kept_ms))
        .execute(&mut **tx)
        .await?;
        // A read task's claim is committed on the primary before its reads, so when those
        // fail (its replica died) the retry finds the start claimed already: by this instance,
        // it is the same run's, and it claims it again. A write's claim commits with its work.
        let conflict = match self.route {
            Route::Replica => {
                "(task, slot_ms) DO UPDATE SET claimed_at_ms = excluded.claimed_at_ms \
                 WHERE task_slots.instance = excluded.instance"
            }
            Route::Primary => "DO NOTHING",
        };
        let claimed = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {slots} (task, slot_ms, instance, claimed_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT {conflict}"
        )))
        .bind(self.name.clone())
        .bind(slot_ms)
        .bind(values.instance.clone())
        .bind(values.now.timestamp_millis())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        Ok((claimed == 0).then_some(ALREADY_RAN))
    }

    /// Each statement in order, its parameters bound; rows affected summed and the first row
    /// of the last statement that returned rows kept.
    async fn statements(
        &self,
        tx: &mut Transaction<'_, Any>,
        backend: Backend,
        values: &Values,
    ) -> Result<JobOutput, TaskError> {
        let mut affected: u64 = 0;
        let mut first_row: Option<(usize, String)> = None;
        for (index, statement) in self.statements.iter().enumerate() {
            let Rendered { sql, binds } = statement.render(backend);
            let query = values.bind(sqlx::query(AssertSqlSafe(sql)), &binds, backend);
            let mut steps = (&mut **tx).fetch_many(query);
            let mut this_first: Option<String> = None;
            // Every row is read (the statement is not done until they are), one kept.
            while let Some(step) = steps.try_next().await? {
                match step {
                    sqlx::Either::Left(result) if !statement.reads() => {
                        affected += result.rows_affected();
                    }
                    sqlx::Either::Left(_) => {}
                    sqlx::Either::Right(row) => {
                        if this_first.is_none() {
                            this_first = Some(render_row(&row));
                        }
                    }
                }
            }
            if let Some(row) = this_first {
                first_row = Some((index + 1, row));
            }
        }
        let mut detail = format!(
            "{affected} row{} affected",
            if affected == 1 { "" } else { "s" }
        );
        if let Some((statement, row)) = first_row {
            let _ = write!(detail, "; statement {statement} returned {row}");
        }
        Ok(JobOutput::done(affected, bounded(detail)))
    }
}

/// A row as `column=value, ...`: text quoted, NULL as NULL, bytes as their count.
fn render_row(row: &AnyRow) -> String {
    let mut out = String::new();
    for (i, column) in row.columns().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let value = match row.try_get_raw(i) {
            Ok(raw) if raw.is_null() => "NULL".to_owned(),
            Ok(raw) => match raw.type_info().kind() {
                AnyTypeInfoKind::Bool => row.try_get::<bool, _>(i).map(|v| v.to_string()),
                AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
                    row.try_get::<i64, _>(i).map(|v| v.to_string())
                }
                AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => {
                    row.try_get::<f64, _>(i).map(|v| v.to_string())
                }
                AnyTypeInfoKind::Text => row.try_get::<String, _>(i).map(|v| format!("{v:?}")),
                AnyTypeInfoKind::Blob => row
                    .try_get::<Vec<u8>, _>(i)
                    .map(|v| format!("<{} bytes>", v.len())),
                AnyTypeInfoKind::Null => Ok("NULL".to_owned()),
            }
            .unwrap_or_else(|_| format!("<{}>", raw.type_info().name())),
            Err(_) => "?".to_owned(),
        };
        let _ = write!(out, "{}={value}", column.name());
        if out.chars().count() > MAX_DETAIL {
            break;
        }
    }
    out
}

/// `detail` cut to [`MAX_DETAIL`] characters, with an ellipsis when cut.
fn bounded(detail: String) -> String {
    if detail.chars().count() <= MAX_DETAIL {
        return detail;
    }
    let mut cut: String = detail.chars().take(MAX_DETAIL - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &str) -> DeclaredTask {
        DeclaredTask {
            name: name.to_owned(),
            schedule: Schedule::every(Duration::from_secs(60)),
            statements: vec![Statement::parse("SELECT 1").unwrap()],
            limits: RunLimits::default(),
            retry: None,
            overlap: false,
            route: leasewatch_types::Route::Primary,
        }
    }

    #[test]
    fn names_must_be_valid_unique_and_not_built_in() {
        assert!(DeclaredTasks::new(vec![task("purge"), task("vacuum_2")]).is_ok());
        assert_eq!(
            DeclaredTasks::new(vec![task("purge"), task("purge")]).unwrap_err(),
            DeclaredError::Duplicate("purge".into())
        );
        assert_eq!(
            DeclaredTasks::new(vec![task("health_check")]).unwrap_err(),
            DeclaredError::Reserved("health_check".into())
        );
        assert_eq!(
            DeclaredTasks::new(vec![task("Purge")]).unwrap_err(),
            DeclaredError::InvalidName("Purge".into())
        );
        let mut empty = task("empty");
        empty.statements.clear();
        assert!(matches!(
            DeclaredTasks::new(vec![empty]).unwrap_err(),
            DeclaredError::NoStatements(_)
        ));
    }

    #[test]
    fn lock_keys_are_stable_and_spread() {
        // Fixed here: a key that moved between releases would let two versions run a task at
        // once.
        assert_eq!(lock_key("purge_sessions"), lock_key("purge_sessions"));
        let keys: std::collections::BTreeSet<i32> =
            (0..1000).map(|i| lock_key(&format!("task_{i}"))).collect();
        assert_eq!(keys.len(), 1000);
    }

    #[test]
    fn instances_out_of_phase_claim_the_same_period() {
        let job = DeclaredJob::new(&task("t")).0;
        let at = |ms| DateTime::from_timestamp_millis(ms).unwrap();
        // Two phases within the same 60 s period.
        assert_eq!(
            job.slot_ms(at(120_000 + 5_000)),
            job.slot_ms(at(120_000 + 47_000))
        );
        assert_ne!(
            job.slot_ms(at(120_000 + 5_000)),
            job.slot_ms(at(180_000 + 5_000))
        );
    }

    #[test]
    fn details_are_bounded() {
        let long = "x".repeat(1000);
        let cut = bounded(long);
        assert_eq!(cut.chars().count(), MAX_DETAIL);
        assert!(cut.ends_with('…'));
    }
}
