//! What a lease costs over raw sqlx, and what a snapshot costs.
//!
//! `cargo bench -p leasewatch-engine --bench lease`. Raw and managed acquire + release run side
//! by side in one process on the same kind of pool; the PostgreSQL pair needs the server on
//! 127.0.0.1:5432 (or `LEASEWATCH_TEST_PG`) and is skipped without it.
//!
//! The raw baseline is sqlx with its defaults, which pings a connection before handing it out.
//! The manager turns that ping off on PostgreSQL and asks `SELECT pg_backend_pid()` instead, so
//! both sides make one round trip per acquire.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use leasewatch_engine::{
    Database, DatabaseUrl, LeaseError, LeaseManager, PoolSettings, RunContext,
};
use leasewatch_testkit::TestDatabase;
use sqlx::{AnyPool, any::AnyPoolOptions};

const POOL: u32 = 5;

fn settings() -> PoolSettings {
    PoolSettings {
        max_connections: POOL,
        min_connections: POOL,
        ..PoolSettings::default()
    }
}

async fn raw_pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(POOL)
        .min_connections(POOL)
        .connect(url)
        .await
        .expect("raw pool")
}

async fn manager(url: &DatabaseUrl) -> LeaseManager {
    let db = Database::connect(url, &settings())
        .await
        .expect("managed pool");
    LeaseManager::new(db, Duration::from_secs(30), Duration::from_secs(15))
}

fn compare(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    raw: AnyPool,
    managed: LeaseManager,
) {
    let mut group = c.benchmark_group(format!("acquire_release/{name}"));
    group.bench_function("raw_sqlx", |b| {
        b.to_async(runtime).iter(|| async {
            drop(raw.acquire().await.expect("raw acquire"));
        });
    });
    let run = RunContext::new("bench", 1);
    group.bench_function("lease_manager", |b| {
        b.to_async(runtime).iter(|| async {
            drop(managed.acquire(&run).await.expect("lease"));
        });
    });
    group.finish();

    // The same with one statement per lease, as a task does at the least.
    let mut group = c.benchmark_group(format!("acquire_select_release/{name}"));
    group.bench_function("raw_sqlx", |b| {
        b.to_async(runtime).iter(|| async {
            let mut conn = raw.acquire().await.expect("raw acquire");
            sqlx::query("SELECT 1")
                .execute(&mut *conn)
                .await
                .expect("select");
        });
    });
    group.bench_function("lease_manager", |b| {
        b.to_async(runtime).iter(|| async {
            let mut lease = managed.acquire(&run).await.expect("lease");
            lease
                .run(|conn| {
                    Box::pin(async move {
                        sqlx::query("SELECT 1")
                            .execute(&mut *conn)
                            .await
                            .map(drop)
                            .map_err(|err| LeaseError::Connect {
                                task: "bench".into(),
                                reason: err.to_string(),
                            })
                    })
                })
                .await
                .expect("select");
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Dropping a pooled connection hands it back on the runtime.
    let _enter = runtime.enter();

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = DatabaseUrl::Sqlite(dir.path().join("bench.db"));
    let (raw, managed) = runtime.block_on(async {
        let managed = manager(&sqlite).await;
        let raw = raw_pool(&format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ))
        .await;
        (raw, managed)
    });
    compare(c, &runtime, "sqlite", raw, managed.clone());

    // One snapshot with three leases held, as the dashboard and /metrics take it.
    let held = runtime.block_on(async {
        let mut held = Vec::new();
        for task in ["status_transitions", "auction_monitor", "health_check"] {
            held.push(
                managed
                    .acquire(&RunContext::new(task, 1))
                    .await
                    .expect("lease"),
            );
        }
        held
    });
    c.bench_function("snapshot", |b| b.iter(|| managed.snapshot()));
    drop(held);

    let postgres = runtime.block_on(TestDatabase::create());
    match &postgres {
        Some(db) => {
            let url = DatabaseUrl::parse(db.url()).expect("url");
            let (raw, managed) =
                runtime.block_on(async { (raw_pool(db.url()).await, manager(&url).await) });
            compare(c, &runtime, "postgres", raw, managed);
        }
        None => eprintln!("PostgreSQL unreachable: skipping the PostgreSQL pair"),
    }
}

criterion_group!(lease, benches);
criterion_main!(lease);
