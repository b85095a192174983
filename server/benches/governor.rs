//! The connection-budget scenario (`tests/support/budget.rs`) with the governor off (fixed
//! pools of 10) and on, side by side: what the web app and Leasewatch were refused, the work
//! done, the sessions held and the time to recover. Needs PostgreSQL's `initdb` and `pg_ctl`.
//!
//! `cargo bench -p leasewatch --bench governor`

#[path = "../tests/support/budget.rs"]
mod budget;
#[path = "../tests/support/mod.rs"]
mod support;

use budget::Report;

/// A line of the table: its name, and how to read it from a report.
type Row = (&'static str, fn(&Report) -> String);

/// Runs both phases one after the other and prints the table (plain text on stdout: this is
/// the benchmark's report, not a log).
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (off, on) = runtime.block_on(async {
        let off = budget::run(false).await;
        let on = budget::run(true).await;
        (off, on)
    });
    let (Some(off), Some(on)) = (off, on) else {
        eprintln!("skipped: PostgreSQL's initdb and pg_ctl are not on PATH");
        return;
    };
    let rows: [Row; 7] = [
        ("web app connections refused (of 8 tried)", |r| {
            r.web_refused.len().to_string()
        }),
        ("Leasewatch runs refused a connection", |r| {
            r.leasewatch_refused.to_string()
        }),
        ("runs done (3 instances)", |r| r.completions.to_string()),
        ("runs skipped at the lease limit", |r| {
            r.over_limit_skips.to_string()
        }),
        ("peak Leasewatch sessions", |r| {
            r.peak_sessions().to_string()
        }),
        ("shares before / at the web app's peak", |r| {
            format!("{:?} / {:?}", r.shares_before, r.shares_at_peak)
        }),
        ("every task succeeding again after", |r| {
            format!("{:.1} s", r.recovered_after.as_secs_f64())
        }),
    ];
    println!("{:<40} {:>22} {:>22}", "", "governor off", "governor on");
    for (name, value) in rows {
        println!("{name:<40} {:>22} {:>22}", value(&off), value(&on));
    }
}
