//! The engine against real databases: a SQLite file and the PostgreSQL server.

use std::time::{Duration, Instant};

use leasewatch_engine::{
    Backend, Database, DatabaseUrl, DbError, Engine, EngineConfig, PoolSettings, RetryPolicy,
    TaskIntervals, auctions::AuctionStatus,
};
use leasewatch_testkit::TestDatabase;

fn config(database: DatabaseUrl, demo: bool) -> EngineConfig {
    EngineConfig {
        database,
        pool: PoolSettings {
            max_connections: 4,
            min_connections: 1,
            connect_timeout: Duration::from_secs(5),
            ..PoolSettings::default()
        },
        intervals: TaskIntervals::default(),
        retry: RetryPolicy::default(),
        demo,
        thresholds: Default::default(),
        demo_leak: None,
    }
}

/// Starts twice on the same database: migrations are idempotent and demo data accumulates.
async fn start_migrate_seed(database: DatabaseUrl) {
    let before_ms = chrono::Utc::now().timestamp_millis();
    let first = Engine::start(config(database.clone(), true)).await.unwrap();
    let counts = first.auctions().counts;
    // The tasks start at once, so some may have begun already.
    assert_eq!(counts.total(), 12, "{counts:?}");
    assert_eq!(
        counts.get(AuctionStatus::Scheduled) + counts.get(AuctionStatus::Active),
        12,
        "{counts:?}"
    );
    first.shutdown().await;

    let second = Engine::start(config(database, false)).await.unwrap();
    assert_eq!(second.auctions().counts.total(), 12);
    // Demo auctions start over the next few minutes, so the tasks have work at once.
    let (first_start, last_start, shortest): (i64, i64, i64) = sqlx::query_as(
        "SELECT MIN(starts_at_ms), MAX(starts_at_ms), MIN(ends_at_ms - starts_at_ms) FROM auctions",
    )
    .fetch_one(second.database().pool())
    .await
    .unwrap();
    assert!(first_start >= before_ms, "{first_start} < {before_ms}");
    assert!(last_start <= before_ms + 3 * 60_000, "{last_start}");
    assert!(shortest >= 45_000, "{shortest}");
    second.shutdown().await;
}

#[tokio::test]
async fn sqlite_file_is_created_migrated_and_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/folder/leasewatch.db");
    start_migrate_seed(DatabaseUrl::Sqlite(path.clone())).await;
    assert!(path.exists(), "the SQLite file was created");
}

#[tokio::test]
async fn sqlite_sessions_use_wal_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(DatabaseUrl::Sqlite(dir.path().join("x.db")), false))
        .await
        .unwrap();
    assert_eq!(engine.database().backend(), Backend::Sqlite);
    let pool = engine.database().pool();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let (fk,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn postgres_is_migrated_and_seeded() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    start_migrate_seed(DatabaseUrl::parse(db.url()).unwrap()).await;
}

#[tokio::test]
async fn postgres_sessions_carry_name_and_timeouts() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let settings = config(DatabaseUrl::parse(db.url()).unwrap(), false);
    let database = Database::connect(&settings.database, &settings.pool)
        .await
        .unwrap();
    assert_eq!(database.backend(), Backend::Postgres);
    let pool = database.pool();
    let (statement_timeout, idle_tx): (String, String) = sqlx::query_as(
        "SELECT current_setting('statement_timeout'), \
         current_setting('idle_in_transaction_session_timeout')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(statement_timeout, "30s");
    assert_eq!(idle_tx, "30s");
    // Seen from the server's side, for every connection of this database.
    let names: Vec<(String,)> = sqlx::query_as(
        "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(!names.is_empty());
    assert!(
        names.iter().all(|(name,)| name == "leasewatch:tasks"),
        "{names:?}"
    );
    database.close().await;
}

#[tokio::test]
async fn an_unreachable_database_fails_within_the_connect_timeout() {
    // Nothing listens on port 1 of loopback.
    let url = DatabaseUrl::parse("postgres://app:hunter2@127.0.0.1:1/app").unwrap();
    let mut config = config(url, false);
    config.pool.connect_timeout = Duration::from_millis(800);
    let started = Instant::now();
    let err = Engine::start(config)
        .await
        .err()
        .expect("no database there");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, DbError::Unreachable { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("postgres://app:***@127.0.0.1:1/app"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}
