//! Declared SQL tasks against real databases: statements run in order with their parameters
//! bound (a value with a quote in it goes in as a value), the outcome detail recorded; a
//! runaway statement cut off at its timeout with its backend ended and its retry recorded;
//! two instances with the same task running each scheduled start once; and the engine
//! treating a declared task like a built-in one (listed, run now, paused, resumed).

use std::time::Duration;

use leasewatch_engine::{
    Database, DatabaseUrl, Engine, EngineConfig, FailureKind, LeaseManager, PoolSettings,
    RetryPolicy,
    control::{Action, ActionName, ControlError, Role},
    lease::RunLimits,
    tasks::{
        Outcome, RunRecord, Schedule, TaskManager,
        declared::{ALREADY_RAN, DeclaredTask, DeclaredTasks, Statement},
        jobs::RUNNING_ELSEWHERE,
    },
};
use leasewatch_testkit::TestDatabase;
use sqlx::{AnyPool, any::install_default_drivers};

mod support;
use support::{RUN_BOUND, run_now};

async fn database(url: &DatabaseUrl) -> Database {
    let settings = PoolSettings {
        max_connections: 4,
        min_connections: 0,
        connect_timeout: Duration::from_secs(5),
        ..PoolSettings::default()
    };
    let db = Database::connect(url, &settings).await.unwrap();
    db.migrate().await.unwrap();
    db
}

fn task(name: &str, every: Duration, statements: &[&str]) -> DeclaredTask {
    DeclaredTask {
        name: name.to_owned(),
        schedule: Schedule::every(every),
        statements: statements
            .iter()
            .map(|text| Statement::parse(text).unwrap())
            .collect(),
        limits: RunLimits::default(),
        retry: None,
        overlap: false,
        route: leasewatch_types::Route::Primary,
    }
}

/// A manager running only `tasks`, as the engine wires them.
fn manager(db: Database, tasks: &DeclaredTasks, instance: &str) -> TaskManager {
    let leases = LeaseManager::new(db, Duration::from_secs(30), Duration::from_secs(5));
    let manager = TaskManager::with_jobs(
        leases,
        tasks.jobs(),
        RetryPolicy::default(),
        instance.to_owned(),
    );
    tasks.configure(&manager).unwrap();
    manager
}

/// The statements both backends run: a quote-bearing instance name, the run's number and
/// "now" inserted as values, then an update, then a read whose first row is the detail.
const NOTE_STATEMENTS: [&str; 3] = [
    "INSERT INTO notes (task, instance, run_id, at_ms, at) \
     VALUES (:task, :instance, :run_id, :now_ms, :now)",
    "UPDATE notes SET seen = 1 WHERE instance = :instance AND at_ms = :now_ms",
    "SELECT COUNT(*) AS notes, MAX(instance) AS last FROM notes WHERE task = :task",
];

/// An instance name no formatted SQL would survive.
const QUOTED: &str = "it's'; DROP TABLE notes; --";

async fn notes_run(url: &DatabaseUrl, pool: &AnyPool, at_type: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE notes (task TEXT NOT NULL, instance TEXT NOT NULL, run_id BIGINT NOT NULL, \
         at_ms BIGINT NOT NULL, at {at_type} NOT NULL, seen INTEGER NOT NULL DEFAULT 0)"
    )))
    .execute(pool)
    .await
    .unwrap();
    let tasks = DeclaredTasks::new(vec![task(
        "note_it",
        Duration::from_secs(3600),
        &NOTE_STATEMENTS,
    )])
    .unwrap();
    let manager = manager(database(url).await, &tasks, QUOTED);
    let record = run_now(&manager, "note_it").await;
    let Outcome::Succeeded { rows, detail } = &record.outcome else {
        panic!("{record:?}");
    };
    assert_eq!(
        *rows, 2,
        "one row inserted, one updated; the read is not counted"
    );
    assert_eq!(
        detail,
        &format!("2 rows affected; statement 3 returned notes=1, last={QUOTED:?}")
    );
    let (instance, run_id, seen): (String, i64, i32) =
        sqlx::query_as("SELECT instance, run_id, seen FROM notes")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(instance, QUOTED, "the value went in bound, quote and all");
    assert_eq!(run_id, i64::try_from(record.run_id).unwrap());
    assert_eq!(seen, 1);
    assert_eq!(record.attempts, 1);
}

#[tokio::test]
async fn declared_sql_runs_on_sqlite_with_its_parameters_bound() {
    install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("declared.db");
    let url = DatabaseUrl::Sqlite(path.clone());
    let db = database(&url).await;
    let pool = db.pool().clone();
    notes_run(&url, &pool, "TEXT").await;
    // SQLite's `:now` is text its date functions read.
    let parsed: Option<String> = sqlx::query_scalar("SELECT datetime(at) FROM notes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(parsed.is_some_and(|t| t.len() == 19));
}

#[tokio::test]
async fn declared_sql_runs_on_postgres_with_its_parameters_bound() {
    install_default_drivers();
    let Some(test_db) = TestDatabase::create().await else {
        return;
    };
    let url = DatabaseUrl::parse(test_db.url()).unwrap();
    let pool = AnyPool::connect(test_db.url()).await.unwrap();
    notes_run(&url, &pool, "timestamptz").await;
    // `:now` went in as a timestamp: the same instant as `:now_ms`.
    let same: bool = sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM at) * 1000)::int8 = at_ms FROM public.notes",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(same);
    pool.close().await;
}

#[tokio::test]
async fn a_runaway_declared_task_is_cut_off_its_backend_ended_and_retried() {
    install_default_drivers();
    let Some(test_db) = TestDatabase::create().await else {
        return;
    };
    let url = DatabaseUrl::parse(test_db.url()).unwrap();
    let mut runaway = task(
        "runaway",
        Duration::from_secs(3600),
        &["SELECT pg_sleep(30)"],
    );
    runaway.limits.timeout = Some(Duration::from_secs(1));
    runaway.retry = Some(RetryPolicy {
        max_retries: 1,
        base_delay: Duration::from_millis(200),
        factor: 2,
        max_delay: Duration::from_millis(500),
    });
    let tasks = DeclaredTasks::new(vec![runaway]).unwrap();
    let manager = manager(database(&url).await, &tasks, "runaway-test");
    let started = std::time::Instant::now();
    let record = run_now(&manager, "runaway").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut off at its 1 s timeout, twice"
    );
    let Outcome::Failed { cause, error } = &record.outcome else {
        panic!("{record:?}");
    };
    assert_eq!(*cause, FailureKind::TimedOut, "{error}");
    assert_eq!(record.attempts, 2, "its own policy: one retry");
    assert_eq!(record.backoff_ms.len(), 1, "the retry's delay is listed");
    assert!(record.backoff_ms[0] <= 200);
    assert_eq!(record.attempt_log.len(), 2);
    assert_eq!(
        record.attempt_log[0].retry_delay_ms,
        Some(record.backoff_ms[0])
    );
    let pids: Vec<i32> = record
        .attempt_log
        .iter()
        .flat_map(|attempt| attempt.leases.iter().filter_map(|l| l.backend_pid))
        .collect();
    assert_eq!(pids.len(), 2, "{record:?}");
    // Ending the backend happens beside the run's end: wait for it, boundedly.
    let pool = AnyPool::connect(test_db.url()).await.unwrap();
    let mut alive = pids.len();
    for _ in 0..50 {
        let mut count = 0;
        for pid in &pids {
            let found: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                    .bind(*pid)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            count += usize::from(found);
        }
        alive = count;
        if alive == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alive, 0, "the runaway's backends {pids:?} were ended");
    pool.close().await;
}

#[tokio::test]
async fn two_instances_run_each_scheduled_start_of_a_declared_task_once() {
    install_default_drivers();
    let Some(test_db) = TestDatabase::create().await else {
        return;
    };
    let url = DatabaseUrl::parse(test_db.url()).unwrap();
    let pool = AnyPool::connect(test_db.url()).await.unwrap();
    sqlx::query("CREATE TABLE ticks (instance TEXT NOT NULL, scheduled_at_ms BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let every = Duration::from_secs(2);
    let tasks = DeclaredTasks::new(vec![task(
        "tick",
        every,
        &["INSERT INTO ticks (instance, scheduled_at_ms) VALUES (:instance, :scheduled_at_ms)"],
    )])
    .unwrap();
    // Different instance names: their phases may differ, and each start must still run once.
    let one = manager(database(&url).await, &tasks, "instance-one");
    let two = manager(database(&url).await, &tasks, "instance-two");
    one.start();
    two.start();
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    one.stop(Duration::from_secs(5)).await;
    two.stop(Duration::from_secs(5)).await;

    let ticks: Vec<(String, i64)> =
        sqlx::query_as("SELECT instance, scheduled_at_ms FROM public.ticks ORDER BY 2")
            .fetch_all(&pool)
            .await
            .unwrap();
    let every_ms = i64::try_from(every.as_millis()).unwrap();
    let mut periods: Vec<i64> = ticks
        .iter()
        .map(|(_, at)| at.div_euclid(every_ms))
        .collect();
    let rows = periods.len();
    periods.dedup();
    assert!(rows >= 3, "{ticks:?}");
    assert_eq!(periods.len(), rows, "one row per period: {ticks:?}");

    // The run records agree: every scheduled start that did not run was skipped because the
    // other instance ran it (or was running it), and no start succeeded twice.
    let runs: Vec<RunRecord> = [&one, &two]
        .iter()
        .flat_map(|m| m.tasks().remove(0).history)
        .collect();
    let mut succeeded: Vec<i64> = Vec::new();
    for run in &runs {
        let slot = run
            .scheduled_at
            .unwrap()
            .timestamp_millis()
            .div_euclid(every_ms);
        match &run.outcome {
            Outcome::Succeeded { rows, .. } => {
                assert_eq!(*rows, 1);
                succeeded.push(slot);
            }
            Outcome::Skipped { reason, .. } => {
                assert!(
                    reason == ALREADY_RAN || reason == RUNNING_ELSEWHERE,
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    succeeded.sort_unstable();
    let count = succeeded.len();
    succeeded.dedup();
    assert_eq!(count, succeeded.len(), "no start ran twice: {runs:?}");
    assert_eq!(count, rows);
    assert!(
        runs.len() > count,
        "the other instance's starts were skipped"
    );
    pool.close().await;
}

#[tokio::test]
async fn the_engine_treats_a_declared_task_like_a_built_in_one() {
    install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("engine.db"));
    let tasks = DeclaredTasks::new(vec![task(
        "count_auctions",
        Duration::from_secs(3600),
        &["SELECT COUNT(*) AS auctions FROM auctions"],
    )])
    .unwrap();
    let engine = Engine::start(EngineConfig {
        declared: tasks,
        builtin_tasks: false,
        ..EngineConfig::new(url)
    })
    .await
    .unwrap();
    let names: Vec<String> = engine.tasks().tasks().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        ["history_retention", "count_auctions"],
        "the built-in auction tasks are off; history retention always runs"
    );

    let act = |name, task: &str| Action::new(name, Some(task.to_owned()), None, None).unwrap();
    let done = engine
        .perform(
            &act(ActionName::RunNow, "count_auctions"),
            Role::Operator,
            "test",
        )
        .await
        .unwrap();
    let leasewatch_engine::control::Details::RunStarted { run_id } = done.details else {
        panic!("{done:?}");
    };
    let record = tokio::time::timeout(RUN_BOUND, engine.tasks().wait_for("count_auctions", run_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.outcome,
        Outcome::Succeeded {
            rows: 0,
            detail: "0 rows affected; statement 1 returned auctions=0".into()
        }
    );
    engine
        .perform(
            &act(ActionName::Pause, "count_auctions"),
            Role::Operator,
            "test",
        )
        .await
        .unwrap();
    assert!(engine.tasks().tasks()[1].paused);
    engine
        .perform(
            &act(ActionName::Resume, "count_auctions"),
            Role::Operator,
            "test",
        )
        .await
        .unwrap();
    assert!(!engine.tasks().tasks()[1].paused);
    let refused = engine
        .perform(
            &act(ActionName::RunNow, "health_check"),
            Role::Operator,
            "test",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ControlError::Invalid { code: "unknown_task", message } if message.contains("count_auctions")),
        "{refused:?}"
    );
    engine.shutdown().await;
}
