//! Persisted history on SQLite and PostgreSQL: runs and samples written in batches and read
//! back filtered and paged, several instances on one database, retention and downsampling at a
//! chosen clock, and a database outage that loses no run.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use leasewatch_engine::{
    Database, DatabaseUrl, Engine, EngineConfig, FailureKind, LeaseManager, PoolSettings,
    PoolSnapshot, RetryPolicy, RunContext, TaskIntervals,
    history::{DOWNSAMPLE_AFTER, History, HistoryRetention, RunSearch},
    lease::Quantiles,
    tasks::{Job, JobContext, Outcome, RunRecord, Trigger},
};
use leasewatch_testkit::{ScratchCluster, TestDatabase};
use leasewatch_types::{RunOutcome, RunsQuery};
use sqlx::Row;

async fn database(url: &str) -> Database {
    let url = DatabaseUrl::parse(url).unwrap();
    let settings = PoolSettings {
        max_connections: 4,
        min_connections: 0,
        connect_timeout: Duration::from_millis(500),
        ..PoolSettings::default()
    };
    let db = Database::connect(&url, &settings).await.unwrap();
    db.migrate().await.unwrap();
    db
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

/// Noon, 2026-12-01 UTC.
const NOON: i64 = 1_764_590_400_000;

fn record(run_id: u64, started_ms: i64, outcome: Outcome) -> RunRecord {
    RunRecord {
        run_id,
        trigger: Trigger::Schedule,
        started_at: at(started_ms),
        duration_ms: 250,
        attempts: 1,
        backoff_ms: vec![],
        retried_after: None,
        outcome,
        deferred_ms: 0,
        leases: 1,
        scheduled_at: Some(at(started_ms)),
        attempt_log: vec![],
    }
}

fn succeeded(rows: u64) -> Outcome {
    Outcome::Succeeded {
        rows,
        detail: format!("changed {rows}"),
    }
}

fn failed(cause: FailureKind) -> Outcome {
    Outcome::Failed {
        cause,
        error: "boom".into(),
    }
}

fn snapshot(at_ms: i64, active: u32) -> PoolSnapshot {
    PoolSnapshot {
        taken_at: at(at_ms),
        total: active + 1,
        idle: 1,
        active,
        waiting: 0,
        leases: active,
        stale: 0,
        max: 10,
        min: 0,
        limit: 10,
        budget: None,
        server_connections: Some(i64::from(active) + 5),
        server_usable: Some(97),
        utilization: 0.0,
        acquire_latency: Quantiles::default(),
        acquire_timeouts: 0,
        issued: 0,
        released: 0,
        revoked: 0,
        hold_p95_ms: None,
        per_task: vec![],
        window_p95_ms: Some(f64::from(active)),
    }
}

fn search(query: RunsQuery) -> RunSearch {
    RunSearch::parse(&query).unwrap()
}

/// Two instances' runs (with the same run numbers) are all there, filtered by task, outcome,
/// failure, instance and time, paged without a gap or a repeat, and one run reads back whole.
async fn runs_are_kept_filtered_and_paged(db: &Database) {
    let (a, b) = (
        History::new("1-aaaa", "host-a"),
        History::new("2-bbbb", "host-b"),
    );
    for run in 0..30u64 {
        let started = NOON + i64::try_from(run).unwrap() * 60_000;
        let outcome = if run % 3 == 0 {
            failed(FailureKind::TimedOut)
        } else {
            succeeded(run)
        };
        let task = if run % 2 == 0 {
            "health_check"
        } else {
            "status_transitions"
        };
        a.record_run(task, &record(run, started, outcome.clone()));
        b.record_run(task, &record(run, started, outcome));
    }
    assert!(a.flush(db).await && b.flush(db).await);
    assert_eq!(a.counts().runs_written, 30);

    let all = a.runs(db, &search(RunsQuery::default())).await.unwrap();
    assert_eq!(all.runs.len(), 50, "the default page");
    assert!(
        all.runs
            .windows(2)
            .all(|w| w[0].started_at >= w[1].started_at),
        "newest first"
    );

    let mut seen = Vec::new();
    let mut query = RunsQuery {
        limit: Some(7),
        ..RunsQuery::default()
    };
    loop {
        let page = a.runs(db, &search(query.clone())).await.unwrap();
        seen.extend(page.runs.iter().map(|r| (r.instance.clone(), r.run_id)));
        match page.next {
            Some(next) => query.before = Some(next.to_string()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (60, 60), "every run once");

    let failed_checks = a
        .runs(
            db,
            &search(RunsQuery {
                task: Some("health_check".into()),
                outcome: Some("failed".into()),
                failure: Some("timed_out".into()),
                instance: Some("2-bbbb".into()),
                from: Some(at(NOON + 6 * 60_000).to_rfc3339()),
                to: Some(at(NOON + 25 * 60_000).to_rfc3339()),
                ..RunsQuery::default()
            }),
        )
        .await
        .unwrap();
    let ids: Vec<u64> = failed_checks.runs.iter().map(|r| r.run_id).collect();
    assert_eq!(
        ids,
        vec![24, 18, 12, 6],
        "even, a multiple of 3, from 6 to 24"
    );
    assert!(failed_checks.runs.iter().all(|r| r.host == "host-b"
        && r.outcome == RunOutcome::Failed
        && r.failure == Some(FailureKind::TimedOut)));

    let detail = a.run_detail(db, "1-aaaa", 7).await.unwrap().unwrap();
    assert_eq!(detail.run.task, "status_transitions");
    assert_eq!(detail.run.rows, 7);
    assert_eq!(detail.record, record(7, NOON + 7 * 60_000, succeeded(7)));
    assert!(a.run_detail(db, "1-aaaa", 99).await.unwrap().is_none());
}

/// Samples read back bucketed, added up over the instances, the server's figures once.
async fn samples_are_added_up_over_instances(db: &Database) {
    let (a, b) = (History::new("1-aaaa", "h"), History::new("2-bbbb", "h"));
    for i in 0..12 {
        a.record_sample(&snapshot(NOON + i * 5_000, 2));
        b.record_sample(&snapshot(NOON + i * 5_000 + 1_000, 3));
    }
    assert!(a.flush(db).await && b.flush(db).await);
    let exact = a.samples(db, at(NOON), at(NOON + 60_000)).await.unwrap();
    assert_eq!(exact.len(), 12, "5 s buckets over a minute");
    assert!(
        exact
            .iter()
            .all(|s| s.active == 5 && s.server_clients == Some(8)),
        "{exact:?}"
    );
    let week = a
        .samples(db, at(NOON - 7 * 86_400_000 + 60_000), at(NOON + 60_000))
        .await
        .unwrap();
    assert_eq!(week.len(), 1, "one 14-minute bucket holds the minute");
    assert_eq!(week[0].active, 5);
    // A span starting off a bucket boundary still reads as at most MAX_POINTS points.
    for i in 0..(7 * 24 * 60 / 14 + 2) {
        a.record_sample(&snapshot(NOON - 7 * 86_400_000 + i * 840_000, 1));
        if i % 100 == 99 {
            assert!(a.flush(db).await, "within the queue's bound");
        }
    }
    assert!(a.flush(db).await);
    let from = at(NOON - 7 * 86_400_000 + 1_000);
    let full = a.samples(db, from, at(NOON + 1_000)).await.unwrap();
    assert_eq!(full.len(), leasewatch_engine::history::MAX_POINTS as usize);
}

#[tokio::test]
async fn sqlite_keeps_runs_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&format!("sqlite://{}/h.db", dir.path().display())).await;
    runs_are_kept_filtered_and_paged(&db).await;
    samples_are_added_up_over_instances(&db).await;
}

#[tokio::test]
async fn postgres_keeps_runs_and_samples() {
    let Some(test) = TestDatabase::create().await else {
        return;
    };
    let db = database(test.url()).await;
    runs_are_kept_filtered_and_paged(&db).await;
    samples_are_added_up_over_instances(&db).await;
}

/// Retention at a chosen clock: raw samples older than a day become one per instance and
/// minute (the busiest), and runs and samples older than the retention are deleted.
async fn retention_downsamples_and_prunes(db: Database) {
    let history = History::new("1-aaaa", "h");
    let now = NOON;
    let day = 86_400_000;
    // Two days back: 24 raw samples over two minutes; the busiest of the first minute is 9.
    for i in 0..24 {
        let active = if i == 3 { 9 } else { 1 };
        history.record_sample(&snapshot(now - 2 * day + i * 5_000, active));
    }
    // Half a day back: raw samples stay raw.
    for i in 0..6 {
        history.record_sample(&snapshot(now - day / 2 + i * 5_000, 1));
    }
    // 20 days back: deleted, like the run that started then.
    history.record_sample(&snapshot(now - 20 * day, 1));
    history.record_run("health_check", &record(1, now - 20 * day, succeeded(0)));
    history.record_run("health_check", &record(2, now - 3 * day, succeeded(0)));
    assert!(history.flush(&db).await);

    let leases = LeaseManager::new(db.clone(), Duration::from_secs(30), Duration::from_secs(5));
    let retention = HistoryRetention {
        retention: Duration::from_secs(14 * 86_400),
    };
    let ctx = JobContext::on(
        leases,
        RunContext::new("history_retention", 1),
        now,
        "test".into(),
    );
    let output = retention.run(&ctx).await.unwrap();
    assert_eq!(output.rows, 2 + 24, "2 deleted, 24 raw samples downsampled");

    let rows = sqlx::query("SELECT at_ms, span_secs, active FROM pool_samples ORDER BY at_ms")
        .fetch_all(db.control())
        .await
        .unwrap();
    let rows: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let minute = |ms: i64| ms.div_euclid(60_000) * 60_000;
    let two_days = now - 2 * day;
    assert_eq!(rows.len(), 2 + 6, "{rows:?}");
    assert_eq!(
        rows[0],
        (minute(two_days), 60, 9),
        "the busiest of its minute"
    );
    assert_eq!(rows[1], (minute(two_days) + 60_000, 60, 1));
    assert!(
        rows[2..].iter().all(|r| r.1 == 5),
        "younger than a day: raw"
    );
    let runs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM run_history")
        .fetch_one(db.control())
        .await
        .unwrap();
    assert_eq!(runs, 1);

    // Again at the same clock: nothing left to do.
    let again = retention.run(&ctx).await.unwrap();
    assert_eq!(again.rows, 0);
    let (downsample, _) = retention.cutoffs(now);
    assert!(now - downsample >= i64::try_from(DOWNSAMPLE_AFTER.as_millis()).unwrap());
}

#[tokio::test]
async fn sqlite_retention_downsamples_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    retention_downsamples_and_prunes(
        database(&format!("sqlite://{}/h.db", dir.path().display())).await,
    )
    .await;
}

#[tokio::test]
async fn postgres_retention_downsamples_and_prunes() {
    let Some(test) = TestDatabase::create().await else {
        return;
    };
    retention_downsamples_and_prunes(database(test.url()).await).await;
}

fn fast_engine(url: &str) -> EngineConfig {
    let second = Duration::from_secs(1);
    EngineConfig {
        pool: PoolSettings {
            max_connections: 4,
            min_connections: 0,
            connect_timeout: Duration::from_millis(500),
            ..PoolSettings::default()
        },
        intervals: TaskIntervals {
            status_transitions: second,
            auction_monitor: second,
            health_check: second,
            cleanup: Duration::from_secs(60),
        },
        // Runs end within a second or two while the database is down.
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(100),
            factor: 2,
            max_delay: Duration::from_secs(1),
        },
        ..EngineConfig::new(DatabaseUrl::parse(url).unwrap())
    }
}

/// Every run an engine finished, as its task views list them: (task, run id).
fn finished_runs(engine: &Engine) -> Vec<(String, u64)> {
    let mut runs: Vec<(String, u64)> = engine
        .tasks()
        .tasks()
        .into_iter()
        .flat_map(|task| {
            let name = task.name.clone();
            task.history
                .into_iter()
                .map(move |run| (name.clone(), run.run_id))
        })
        .collect();
    runs.sort();
    runs
}

async fn stored_runs(db: &Database, instance: &str) -> Vec<(String, u64)> {
    let rows = sqlx::query("SELECT task, run_id FROM run_history WHERE instance = $1")
        .bind(instance)
        .fetch_all(db.control())
        .await
        .unwrap();
    let mut runs: Vec<(String, u64)> = rows
        .iter()
        .map(|r| (r.get(0), u64::try_from(r.get::<i64, _>(1)).unwrap()))
        .collect();
    runs.sort();
    runs
}

/// Two engines on one PostgreSQL database, their tasks every second: each one's runs are
/// all in the history under its own instance, with no write refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_write_their_history_without_conflicts() {
    let Some(test) = TestDatabase::create().await else {
        return;
    };
    let first = Engine::start(fast_engine(test.url())).await.unwrap();
    let second = Engine::start(fast_engine(test.url())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    first.shutdown().await;
    second.shutdown().await;
    let db = database(test.url()).await;
    for engine in [&first, &second] {
        let instance = engine.history().instance();
        let finished = finished_runs(engine);
        assert!(finished.len() >= 6, "{instance}: {finished:?}");
        assert_eq!(stored_runs(&db, instance).await, finished, "{instance}");
        let counts = engine.history().counts();
        assert_eq!((counts.runs_queued, counts.runs_dropped), (0, 0));
        assert!(counts.samples_written > 0 || counts.samples_dropped == 0);
    }
    assert_ne!(first.history().instance(), second.history().instance());
}

/// The database goes away while runs finish (they fail: it is unreachable) and comes back:
/// every run the engine finished is in the history, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_finish_while_the_database_is_down_are_written_once_it_is_back() {
    let Some(cluster) = tokio::task::spawn_blocking(|| ScratchCluster::start(30))
        .await
        .unwrap()
    else {
        return;
    };
    let url = cluster.url("postgres", "postgres");
    let engine = Engine::start(fast_engine(&url)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    tokio::task::block_in_place(|| cluster.stop());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = engine.history().counts();
    assert!(
        during.runs_queued > 0,
        "runs finished while it was down: {during:?}"
    );
    tokio::task::block_in_place(|| cluster.restart());
    // The writer's next turns (every 5 s) find it back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while engine.history().counts().runs_queued > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    engine.shutdown().await;
    let db = database(&url).await;
    let instance = engine.history().instance();
    let finished = finished_runs(&engine);
    let stored = stored_runs(&db, instance).await;
    assert_eq!(stored, finished, "every finished run, none lost");
    let failed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM run_history WHERE instance = $1 AND outcome = 'failed'",
    )
    .bind(instance)
    .fetch_one(db.control())
    .await
    .unwrap();
    assert!(
        failed > 0,
        "runs failed while it was down, and are recorded"
    );
    assert_eq!(engine.history().counts().runs_dropped, 0);
}
