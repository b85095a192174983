//! The engine against real databases: a SQLite file and the PostgreSQL server.

use std::time::{Duration, Instant};

use leasewatch_engine::{
    Backend, Database, DatabaseUrl, DbError, Engine, EngineConfig, PoolSettings,
    auctions::AuctionStatus,
};
use leasewatch_testkit::TestDatabase;

fn config(database: DatabaseUrl, demo: bool) -> EngineConfig {
    EngineConfig {
        pool: PoolSettings {
            max_connections: 4,
            min_connections: 1,
            connect_timeout: Duration::from_secs(5),
            ..PoolSettings::default()
        },
        demo,
        ..EngineConfig::new(database)
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

/// The migrations as released before the `leasewatch` schema: what an existing install ran.
fn released_migrations() -> sqlx::migrate::Migrator {
    static ALL: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
    sqlx::migrate::Migrator::with_migrations(
        ALL.iter()
            .filter(|m| m.version <= 20261128000003)
            .cloned()
            .collect(),
    )
}

/// Names of the tables in `schema`, sorted.
async fn tables_in(conn: &mut sqlx::PgConnection, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
         ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
    .unwrap()
}

/// An install from before the schema existed (the released migrations run into `public`, with
/// rows in every table, next to a host application's own table) is moved into `leasewatch` on
/// start-up, rows and sequences intact, leaving nothing of Leasewatch's in `public` and the
/// host's table untouched; a second start finds nothing to move.
#[tokio::test]
async fn postgres_an_install_in_public_moves_into_its_schema_on_start() {
    use sqlx::{Connection, Executor};
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
    released_migrations().run(&mut conn).await.unwrap();
    conn.execute(
        "CREATE TABLE public.host_users (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL); \
         INSERT INTO public.host_users (name) VALUES ('ada'); \
         INSERT INTO public.auctions (title, status, starts_at_ms, ends_at_ms, updated_at_ms) \
           VALUES ('old lamp', 'settled', 1, 2, 2), ('old chair', 'scheduled', 4102444800000, \
           4102444900000, 3); \
         INSERT INTO public.bids (auction_id, bidder, amount_cents, placed_at_ms) \
           VALUES (1, 'bo', 500, 1); \
         INSERT INTO public.auction_events (auction_id, from_status, to_status, at_ms, instance) \
           VALUES (1, 'ended', 'settled', 2, 'old'); \
         INSERT INTO public.audit_log (at_ms, role, action, arguments, outcome, result, client) \
           VALUES (5, 'operator', 'stop', '{}', 'ok', 'scheduler stopped', '127.0.0.1:1');",
    )
    .await
    .unwrap();
    assert_eq!(
        tables_in(&mut conn, "public").await,
        [
            "_sqlx_migrations",
            "auction_events",
            "auctions",
            "audit_log",
            "bids",
            "host_users"
        ]
    );

    let engine = Engine::start(config(DatabaseUrl::parse(db.url()).unwrap(), false))
        .await
        .unwrap();
    assert_eq!(tables_in(&mut conn, "public").await, ["host_users"]);
    assert_eq!(
        tables_in(&mut conn, "leasewatch").await,
        [
            "_sqlx_migrations",
            "alert_groups",
            "alert_notifications",
            "auction_events",
            "auctions",
            "audit_log",
            "bids",
            "pool_samples",
            "revoked_sessions",
            "run_history",
            "session_secret",
            "task_slots"
        ]
    );
    let titles: Vec<String> =
        sqlx::query_scalar("SELECT title FROM leasewatch.auctions ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(titles, ["old lamp", "old chair"]);
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM leasewatch.bids), \
                (SELECT COUNT(*) FROM leasewatch.auction_events), \
                (SELECT COUNT(*) FROM leasewatch.audit_log)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(counts, (1, 1, 1));
    // The released migrations are recorded where the new code looks, and the new one ran.
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM leasewatch._sqlx_migrations ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let every: Vec<i64> = sqlx::migrate!("./migrations/postgres")
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, every);
    // The engine reads the moved rows, and new rows continue the moved sequences.
    assert_eq!(engine.audit().recent(10)[0].record.action, "stop");
    assert_eq!(engine.auctions().counts.total(), 2);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO auctions (title, starts_at_ms, ends_at_ms, updated_at_ms) \
         VALUES ('new', 1, 2, 3) RETURNING id",
    )
    .fetch_one(engine.database().pool())
    .await
    .unwrap();
    assert_eq!(id, 3);
    let host: String = sqlx::query_scalar("SELECT name FROM public.host_users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(host, "ada");
    engine.shutdown().await;

    // Idempotent: a second start moves nothing and loses nothing.
    let again = Engine::start(config(DatabaseUrl::parse(db.url()).unwrap(), false))
        .await
        .unwrap();
    assert_eq!(again.auctions().counts.total(), 3);
    assert_eq!(tables_in(&mut conn, "public").await, ["host_users"]);
    again.shutdown().await;
}

/// A host application that keeps its own sqlx migrations in `public` keeps them: Leasewatch
/// records its own in `leasewatch._sqlx_migrations` and creates nothing in `public`.
#[tokio::test]
async fn postgres_a_host_applications_migrations_in_public_are_left_alone() {
    use sqlx::{Connection, Executor};
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let host = sqlx::migrate::Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
        1,
        "users".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str("CREATE TABLE users (id BIGINT PRIMARY KEY)"),
        false,
    )]);
    host.run(&mut conn).await.unwrap();
    conn.execute("CREATE TABLE public.auctions (sku TEXT)")
        .await
        .unwrap();

    let engine = Engine::start(config(DatabaseUrl::parse(db.url()).unwrap(), true))
        .await
        .unwrap();
    assert_eq!(engine.auctions().counts.total(), 12);
    assert_eq!(
        tables_in(&mut conn, "public").await,
        ["_sqlx_migrations", "auctions", "users"]
    );
    let host_versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM public._sqlx_migrations")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(host_versions, [1]);
    // The host's migrator still runs cleanly next to Leasewatch.
    host.run(&mut conn).await.unwrap();
    engine.shutdown().await;
}

/// Readiness is asked over its own one connection (`leasewatch:probe`), shared by concurrent
/// probes, and says only what kind of failure it saw: never the driver's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_has_its_own_connection_and_a_generic_reason() {
    use leasewatch_engine::{NotReady, db::PROBE_REUSE};
    let Some(cluster) =
        tokio::task::spawn_blocking(|| leasewatch_testkit::ScratchCluster::start(20))
            .await
            .unwrap()
    else {
        return;
    };
    let settings = config(
        DatabaseUrl::parse(&cluster.url("postgres", "postgres")).unwrap(),
        false,
    );
    let database = Database::connect(&settings.database, &settings.pool)
        .await
        .unwrap();
    let probes: Vec<_> = (0..50)
        .map(|_| {
            let database = database.clone();
            tokio::spawn(async move { database.readiness().await })
        })
        .collect();
    for probe in probes {
        assert_eq!(probe.await.unwrap(), Ok(()));
    }
    let probe_sessions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'leasewatch:probe'",
    )
    .fetch_one(database.pool())
    .await
    .unwrap();
    assert_eq!(probe_sessions, 1, "one probe connection for 50 probes");
    let control_sessions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'leasewatch:control'",
    )
    .fetch_one(database.pool())
    .await
    .unwrap();
    assert_eq!(control_sessions, 0, "probes take no control connection");

    tokio::task::block_in_place(|| cluster.stop());
    tokio::time::sleep(PROBE_REUSE + Duration::from_millis(100)).await;
    let answer = database.readiness().await;
    assert_eq!(answer, Err(NotReady::Unreachable));
    assert_eq!(answer.unwrap_err().to_string(), "database unreachable");
    // Within the reuse interval the same answer comes back at once, without asking.
    let started = Instant::now();
    assert_eq!(database.readiness().await, Err(NotReady::Unreachable));
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    database.close().await;
}
