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
use support::{Row, side_by_side};

fn main() {
    let rows: [Row<Report>; 7] = [
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
    side_by_side(["governor off", "governor on"], budget::run, &rows);
}
