//! What the exhaustion forecast costs: one read of the server's connection use (made every
//! 2 s over the control connection) and one fit of the reads kept (three minutes of them).
//!
//! `cargo bench -p leasewatch-engine --bench forecast`. The read needs the server on
//! 127.0.0.1:5432 (or `LEASEWATCH_TEST_PG`) and is skipped without it; it runs with 40 other
//! sessions open, so `pg_stat_activity` has rows to group.

use criterion::{Criterion, criterion_group, criterion_main};
use leasewatch_engine::{
    predict::{PredictSettings, Predictor, forecast},
    server_view,
};
use leasewatch_testkit::TestDatabase;
use sqlx::{AnyConnection, Connection};

/// Sessions open beside the reader.
const OTHERS: usize = 40;

/// Three minutes of reads every 2 s: a noisy ramp, the worst case for the fit (every window
/// qualifies and is fitted in full).
fn reads() -> Vec<forecast::Point> {
    (0..=90)
        .map(|i| forecast::Point {
            at: f64::from(i) * 2.0 - 180.0,
            used: 5.0 + f64::from(i) / 8.0 + [0.0, 1.0, -1.0][i as usize % 3],
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let points = reads();
    c.bench_function("forecast/fit_180s_of_reads", |b| {
        b.iter(|| forecast::forecast(std::hint::black_box(&points), 100.0))
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(db) = runtime.block_on(TestDatabase::create()) else {
        eprintln!("PostgreSQL unreachable: skipping the server read");
        return;
    };
    sqlx::any::install_default_drivers();
    let (mut reader, others) = runtime.block_on(async {
        let mut others = Vec::new();
        for _ in 0..OTHERS {
            others.push(AnyConnection::connect(db.url()).await.expect("a session"));
        }
        (
            AnyConnection::connect(db.url()).await.expect("the reader"),
            others,
        )
    });
    c.bench_function("forecast/server_read", |b| {
        b.iter(|| {
            runtime
                .block_on(server_view::read_postgres(&mut reader))
                .expect("a read")
        })
    });
    let view = runtime
        .block_on(server_view::read_postgres(&mut reader))
        .expect("a read");
    let mut predictor = Predictor::new(PredictSettings::default());
    let mut at = view.read_at;
    c.bench_function("forecast/observe_one_read", |b| {
        b.iter(|| {
            at += chrono::Duration::seconds(2);
            let mut read = view.clone();
            read.read_at = at;
            predictor.observe(&read)
        })
    });
    runtime.block_on(async {
        for conn in others {
            conn.close().await.expect("close");
        }
        reader.close().await.expect("close");
    });
}

criterion_group!(forecast_benches, benches);
criterion_main!(forecast_benches);
