//! Routing across targets against real databases. A second database on the same server stands
//! in for a replica (it answers the probe with no lag, and its sessions are read-only like a
//! replica's); an address nobody listens on stands in for a dead one. The streaming replica
//! itself, stopped and paused, is the server's end-to-end test (`server/tests/targets.rs`).

use std::{collections::BTreeSet, time::Duration};

use leasewatch_engine::{
    Database, DatabaseUrl, LeaseManager, PoolSettings, RetryPolicy,
    lease::RunContext,
    targets::{OutReason, ReplicaSettings, Targets},
    tasks::{
        Outcome, Schedule, TaskManager,
        declared::{DeclaredTask, DeclaredTasks, Statement},
    },
};
use leasewatch_testkit::TestDatabase;
use leasewatch_types::{Fallback, Route, Target};

mod support;
use support::{RUN_BOUND, run_now};

/// Nobody listens on port 1.
const DEAD: &str = "postgres://postgres@127.0.0.1:1/none";

fn settings() -> PoolSettings {
    PoolSettings {
        max_connections: 4,
        min_connections: 0,
        connect_timeout: Duration::from_secs(2),
        ..PoolSettings::default()
    }
}

async fn primary(db: &TestDatabase) -> LeaseManager {
    let db = Database::connect(&DatabaseUrl::parse(db.url()).unwrap(), &settings())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    LeaseManager::new(db, Duration::from_secs(30), Duration::from_secs(2))
}

async fn replica(url: &str) -> LeaseManager {
    let db = Database::connect_replica(&DatabaseUrl::parse(url).unwrap(), &settings())
        .await
        .unwrap();
    LeaseManager::new(db, Duration::from_secs(30), Duration::from_secs(2))
}

async fn targets(primary_db: &TestDatabase, replicas: &[&str], fallback: Fallback) -> Targets {
    let mut managers = Vec::new();
    for url in replicas {
        managers.push(replica(url).await);
    }
    let targets = Targets::new(
        primary(primary_db).await,
        managers,
        ReplicaSettings {
            fallback,
            ..ReplicaSettings::default()
        },
    );
    targets.probe().await;
    targets
}

fn routed(targets: &Targets, route: Route) -> Target {
    targets.route(route).expect("a target").0
}

#[tokio::test]
async fn reads_go_to_the_least_loaded_replica_in_rotation_and_writes_to_the_primary() {
    let (Some(main), Some(one), Some(three)) = (
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestDatabase::create().await,
    ) else {
        return;
    };
    let targets = targets(&main, &[one.url(), DEAD, three.url()], Fallback::Primary).await;
    let status = targets.status();
    let rotation: Vec<(Target, bool)> = status.iter().map(|s| (s.target, s.in_rotation)).collect();
    assert_eq!(
        rotation,
        [
            (Target::Primary, true),
            (Target::Replica(1), true),
            (Target::Replica(2), false),
            (Target::Replica(3), true),
        ]
    );
    // The pool only knows it timed out; the probe names the server's own answer.
    assert!(
        matches!(&status[2].out, Some(OutReason::Unreachable { error }) if error.contains("Connection refused")),
        "{:?}",
        status[2].out
    );
    assert_eq!(status[1].address, format!("127.0.0.1:5432/{}", one.name()));
    assert_eq!(status[1].lag_secs, Some(0.0));

    for _ in 0..4 {
        assert_eq!(routed(&targets, Route::Primary), Target::Primary);
    }
    // Equally loaded replicas take turns; the dead one never gets a read.
    let picks: BTreeSet<Target> = (0..4).map(|_| routed(&targets, Route::Replica)).collect();
    assert_eq!(
        picks,
        BTreeSet::from([Target::Replica(1), Target::Replica(3)])
    );
    // A lease held on replica-1 makes replica-3 the least loaded.
    let run = RunContext::new("reader", 1);
    let held = targets
        .get(Target::Replica(1))
        .unwrap()
        .acquire(&run)
        .await
        .unwrap();
    for _ in 0..4 {
        assert_eq!(routed(&targets, Route::Replica), Target::Replica(3));
    }
    drop(held);
}

#[tokio::test]
async fn with_no_replica_in_rotation_reads_fall_back_to_the_primary_or_wait() {
    let Some(main) = TestDatabase::create().await else {
        return;
    };
    let falls_back = targets(&main, &[DEAD], Fallback::Primary).await;
    assert_eq!(routed(&falls_back, Route::Replica), Target::Primary);

    let waits = targets(&main, &[DEAD], Fallback::Wait).await;
    let err = waits.route(Route::Replica).err().expect("no target");
    let message = err.to_string();
    assert!(
        message.starts_with("no replica is in rotation (replica-1: unreachable: "),
        "{message}"
    );
    assert!(
        message.ends_with("and REPLICA_FALLBACK=wait: read work waits for one"),
        "{message}"
    );
    assert_eq!(routed(&waits, Route::Primary), Target::Primary);
}

fn read_task(name: &str, every: Duration, sql: &str) -> DeclaredTask {
    DeclaredTask {
        name: name.to_owned(),
        schedule: Schedule::every(every),
        statements: vec![Statement::parse(sql).unwrap()],
        limits: Default::default(),
        retry: Some(RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }),
        overlap: false,
        route: Route::Replica,
    }
}

/// `which_database` every `every`, naming the database it read; `sneaky_write`, a read task
/// that tries to write.
fn read_tasks(every: Duration) -> DeclaredTasks {
    DeclaredTasks::new(vec![
        read_task(
            "which_database",
            every,
            "SELECT current_database()::text AS db",
        ),
        read_task(
            "sneaky_write",
            Duration::from_secs(3600),
            "CREATE TABLE sneaky (x int)",
        ),
    ])
    .unwrap()
}

fn manager(targets: Targets, tasks: &DeclaredTasks) -> TaskManager {
    let manager = TaskManager::with_jobs(
        targets,
        tasks.jobs(),
        RetryPolicy::default(),
        "targets-test".to_owned(),
    );
    tasks.configure(&manager).unwrap();
    manager
}

#[tokio::test]
async fn a_read_task_runs_read_only_on_a_replica_and_claims_its_start_on_the_primary() {
    let (Some(main), Some(one)) = (TestDatabase::create().await, TestDatabase::create().await)
    else {
        return;
    };
    let tasks = read_tasks(Duration::from_secs(1));
    let manager = manager(
        targets(&main, &[one.url()], Fallback::Primary).await,
        &tasks,
    );

    let read = run_now(&manager, "which_database").await;
    let Outcome::Succeeded { detail, .. } = &read.outcome else {
        panic!("{read:?}");
    };
    assert_eq!(
        detail,
        &format!("0 rows affected; statement 1 returned db={:?}", one.name())
    );
    assert_eq!(read.attempt_log[0].target, Target::Replica(1));

    // A read task that writes is refused by the replica's read-only session, not obeyed.
    let write = run_now(&manager, "sneaky_write").await;
    let Outcome::Failed { error, .. } = &write.outcome else {
        panic!("{write:?}");
    };
    assert!(error.contains("read-only transaction"), "{error}");
    let created: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_tables WHERE tablename = 'sneaky'")
            .fetch_one(&sqlx::PgPool::connect(one.url()).await.unwrap())
            .await
            .unwrap();
    assert_eq!(created, 0);

    // A scheduled start is claimed on the primary, where every instance looks for it.
    manager.start();
    let claimed = async {
        let pool = sqlx::PgPool::connect(main.url()).await.unwrap();
        loop {
            let claims: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM leasewatch.task_slots WHERE task = 'which_database'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            if claims > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(RUN_BOUND, claimed)
        .await
        .expect("a scheduled start claimed on the primary");
    manager.stop(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_read_task_on_the_primary_is_read_only_too() {
    let Some(main) = TestDatabase::create().await else {
        return;
    };
    let tasks = read_tasks(Duration::from_secs(3600));
    let manager = manager(targets(&main, &[DEAD], Fallback::Primary).await, &tasks);
    let read = run_now(&manager, "which_database").await;
    assert!(
        matches!(&read.outcome, Outcome::Succeeded { detail, .. } if detail.contains(main.name())),
        "{read:?}"
    );
    assert_eq!(read.attempt_log[0].target, Target::Primary);
    let write = run_now(&manager, "sneaky_write").await;
    assert!(
        matches!(&write.outcome, Outcome::Failed { error, .. } if error.contains("read-only transaction")),
        "{write:?}"
    );
}
