//! What persisted history costs: rows and bytes per day at the default intervals, the 14-day
//! steady state, and the charts' reads over it, on SQLite and PostgreSQL in one run.
//!
//! `cargo bench -p leasewatch-engine --bench history`. Nothing is computed from column widths:
//! history is written through the real `History::record_*` and `flush`, the real
//! `history_retention` job runs at a chosen clock, and the sizes are read back from the
//! databases (`pg_total_relation_size` and friends; SQLite's `dbstat`). PostgreSQL needs the
//! server on 127.0.0.1:5432 (or `LEASEWATCH_TEST_PG`) and is skipped without it; each database
//! is made for the run and dropped after it. `HISTORY_READS` sets the chart reads timed per
//! range and backend (100 by default).
//!
//! Per backend, two databases:
//!
//! - **one day**: a day of raw samples and runs (rows and bytes per day), then retention two
//!   days later, which downsamples that day whole, and a compaction (`VACUUM FULL` /
//!   `VACUUM`): one downsampled day.
//! - **steady state**: 28 days written an hour at a time with the real retention job after
//!   every hour, as the engine runs it (and on PostgreSQL a `VACUUM` whenever autovacuum's
//!   default thresholds would make one: autovacuum is off on the reference server). After 14
//!   days every sample older than a day has been downsampled where it lay; after 28 every row
//!   written first has been pruned and its space reused: the steady state on disk. The chart
//!   reads (7 days, 24 hours and an hour, up to its end) run on it, alternating backends and
//!   ranges, followed by the plans (PostgreSQL's `EXPLAIN ANALYZE` with a plan for the values
//!   and with the generic plan a cached statement switches to, SQLite's `EXPLAIN QUERY
//!   PLAN`), and last the same rows compacted, to tell live data from what the churn left.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeZone, Utc};
use leasewatch_engine::{
    Backend, Database, DatabaseUrl, FailureKind, LeaseManager, PoolSettings, PoolSnapshot,
    RunContext, TaskIntervals,
    engine::{HISTORY_RETENTION, HISTORY_RETENTION_EVERY},
    history::{History, HistoryRetention, SAMPLES_SQL},
    lease::{LeaseUse, Quantiles},
    tasks::{Attempt, Job, JobContext, Outcome, RunRecord, Trigger},
};
use leasewatch_testkit::TestDatabase;
use leasewatch_types::{Target, task};
use sqlx::Row;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// The engine's sampling interval (one pool and server sample every 5 s per instance).
const SAMPLE_EVERY_MS: i64 = 5_000;
/// Samples queued between flushes: under the queue's 120, so none is dropped.
const FLUSH_EVERY: usize = 100;

/// The first day written: 2026-11-01, 00:00 UTC.
fn start_ms() -> i64 {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn ms(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap()
}

/// The built-in tasks at their default intervals, with the offset of their first tick.
fn tasks() -> Vec<(&'static str, i64, i64)> {
    let intervals = TaskIntervals::default();
    vec![
        (
            task::STATUS_TRANSITIONS,
            ms(intervals.status_transitions),
            7_500,
        ),
        (task::AUCTION_MONITOR, ms(intervals.auction_monitor), 22_000),
        (task::HEALTH_CHECK, ms(intervals.health_check), 41_000),
        (task::HISTORY_RETENTION, ms(HISTORY_RETENTION_EVERY), 53_000),
    ]
}

/// One instance's history as the engine writes it, on one backend.
struct Writer {
    history: History,
    backend: Backend,
    next_run: u64,
    next_lease: u64,
}

impl Writer {
    fn new(backend: Backend) -> Self {
        Self {
            history: History::new("48213-9f3a2b1c", "leasewatch-7d9f8c6b5-x2kqp"),
            backend,
            next_run: 1,
            next_lease: 1,
        }
    }

    /// A run of `task` due at `due_ms`: one attempt, or (one run in eight) a first attempt that
    /// timed out and a retry that did the work, each with its lease.
    fn run(&mut self, task: &str, due_ms: i64) -> RunRecord {
        let run_id = self.next_run;
        self.next_run += 1;
        let n = run_id;
        let started_ms = due_ms + 3;
        let retried = n % 8 == 5;
        let postgres = self.backend == Backend::Postgres;
        let pid = |lease: u64| postgres.then(|| 41_000 + i32::try_from(lease % 97).unwrap());
        let (rows, detail) = match task {
            task::STATUS_TRANSITIONS => (n % 7, format!("{} started, {} ended", n % 4, n % 3)),
            task::AUCTION_MONITOR => (n % 5, format!("{} settled, {} unsold", n % 4, n % 2)),
            task::HEALTH_CHECK if self.backend == Backend::Postgres => (
                0,
                format!(
                    "round trip 0.{} ms; server: {} of 100 connections, 0 idle in transaction",
                    n % 9 + 1,
                    7 + n % 5
                ),
            ),
            task::HEALTH_CHECK => (0, format!("round trip 0.{} ms", n % 9 + 1)),
            _ => (
                780,
                "deleted 60 rows of history, downsampled 720 samples".to_owned(),
            ),
        };
        let work_ms = 20 + n % 40;
        let mut attempt_log = Vec::new();
        let mut clock = started_ms;
        if retried {
            let lease = self.next_lease;
            self.next_lease += 1;
            attempt_log.push(Attempt {
                number: 1,
                started_at: at(clock),
                duration_ms: 30_000,
                error: Some(
                    "error returned from database: canceling statement due to statement timeout"
                        .to_owned(),
                ),
                failure: Some(FailureKind::TimedOut),
                retry_delay_ms: Some(500),
                leases: vec![LeaseUse {
                    lease_id: lease,
                    backend_pid: pid(lease),
                    waited_ms: 1,
                }],
                target: Target::Primary,
            });
            clock += 30_500;
        }
        let lease = self.next_lease;
        self.next_lease += 1;
        attempt_log.push(Attempt {
            number: u32::try_from(attempt_log.len()).unwrap() + 1,
            started_at: at(clock),
            duration_ms: work_ms,
            error: None,
            failure: None,
            retry_delay_ms: None,
            leases: vec![LeaseUse {
                lease_id: lease,
                backend_pid: pid(lease),
                waited_ms: n % 3,
            }],
            target: Target::Primary,
        });
        let ended_ms = clock + i64::try_from(work_ms).unwrap();
        RunRecord {
            run_id,
            trigger: Trigger::Schedule,
            started_at: at(started_ms),
            duration_ms: u64::try_from(ended_ms - started_ms).unwrap(),
            attempts: u32::try_from(attempt_log.len()).unwrap(),
            backoff_ms: if retried { vec![500] } else { vec![] },
            retried_after: retried.then(|| attempt_log[0].error.clone().unwrap()),
            outcome: Outcome::Succeeded { rows, detail },
            deferred_ms: 0,
            leases: 1,
            scheduled_at: Some(at(due_ms)),
            attempt_log,
        }
    }

    /// The sample taken at `at_ms`: an idle pool, a task's lease now and then.
    fn sample(&self, at_ms: i64) -> PoolSnapshot {
        let i = at_ms / SAMPLE_EVERY_MS;
        let active = u32::from(i % 180 == 0);
        let postgres = self.backend == Backend::Postgres;
        PoolSnapshot {
            taken_at: at(at_ms),
            total: active + 1,
            idle: 1,
            active,
            waiting: 0,
            leases: active,
            stale: 0,
            max: 20,
            min: 5,
            limit: 20,
            budget: postgres.then_some(20),
            server_connections: postgres.then_some(7 + i % 3),
            server_usable: postgres.then_some(97),
            utilization: 0.0,
            acquire_latency: Quantiles::default(),
            acquire_timeouts: 0,
            issued: 0,
            released: 0,
            revoked: 0,
            hold_p95_ms: None,
            per_task: vec![],
            window_p95_ms: Some(0.3 + f64::from(u32::try_from(i % 7).unwrap()) / 10.0),
        }
    }

    /// Writes `[from_ms, to_ms)` of history: a sample every 5 s and every run due, in order of
    /// time, through `record_*` and `flush` as the engine's writer does.
    async fn write(&mut self, db: &Database, from_ms: i64, to_ms: i64) {
        let mut due: Vec<(i64, &str)> = Vec::new();
        for (task, every, offset) in tasks() {
            let first = from_ms + (offset - from_ms).rem_euclid(every);
            due.extend((first..to_ms).step_by(every as usize).map(|t| (t, task)));
        }
        due.sort();
        let mut runs = due.into_iter().peekable();
        let first = from_ms + (-from_ms).rem_euclid(SAMPLE_EVERY_MS) + 137;
        for (n, at_ms) in (first..to_ms).step_by(SAMPLE_EVERY_MS as usize).enumerate() {
            while let Some(&(due_ms, task)) = runs.peek().filter(|(t, _)| *t <= at_ms) {
                let record = self.run(task, due_ms);
                self.history.record_run(task, &record);
                runs.next();
            }
            self.history.record_sample(&self.sample(at_ms));
            if n % FLUSH_EVERY == FLUSH_EVERY - 1 {
                assert!(self.history.flush(db).await, "history written");
            }
        }
        for (due_ms, task) in runs {
            let record = self.run(task, due_ms);
            self.history.record_run(task, &record);
        }
        assert!(self.history.flush(db).await, "history written");
        let counts = self.history.counts();
        assert_eq!(
            (counts.samples_dropped, counts.runs_dropped),
            (0, 0),
            "nothing dropped"
        );
    }
}

/// The real `history_retention` job at `now_ms`; returns its line.
async fn retention(db: &Database, now_ms: i64) -> String {
    let ctx = JobContext::on(
        LeaseManager::new(
            db.clone(),
            Duration::from_secs(600),
            Duration::from_secs(15),
        ),
        RunContext::new(task::HISTORY_RETENTION, 1),
        now_ms,
        "bench".into(),
    );
    let job = HistoryRetention {
        retention: HISTORY_RETENTION,
    };
    job.run(&ctx).await.expect("retention").detail
}

/// Rows and bytes of one table: the table itself, its indexes, and in all (PostgreSQL: TOAST,
/// free space and visibility maps too).
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    rows: i64,
    table: i64,
    indexes: i64,
    total: i64,
}

impl std::ops::Sub for Size {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        Self {
            rows: self.rows - other.rows,
            table: self.table - other.table,
            indexes: self.indexes - other.indexes,
            total: self.total - other.total,
        }
    }
}

async fn size(db: &Database, table: &str) -> Size {
    let rows: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(db.control())
            .await
            .expect("count");
    match db.backend() {
        Backend::Postgres => {
            let row = sqlx::query(
                "SELECT CAST(pg_relation_size(CAST($1 AS regclass)) AS BIGINT), \
                 CAST(pg_indexes_size(CAST($1 AS regclass)) AS BIGINT), \
                 CAST(pg_total_relation_size(CAST($1 AS regclass)) AS BIGINT)",
            )
            .bind(format!("leasewatch.{table}"))
            .fetch_one(db.control())
            .await
            .expect("relation sizes");
            Size {
                rows,
                table: row.get(0),
                indexes: row.get(1),
                total: row.get(2),
            }
        }
        Backend::Sqlite => {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(CASE WHEN d.name = m.tbl_name THEN d.pgsize END), 0) AS INTEGER), \
                   CAST(COALESCE(SUM(CASE WHEN d.name <> m.tbl_name THEN d.pgsize END), 0) AS INTEGER) \
                 FROM dbstat d JOIN sqlite_master m ON m.name = d.name WHERE m.tbl_name = $1",
            )
            .bind(table)
            .fetch_one(db.control())
            .await
            .expect("dbstat");
            let (table, indexes): (i64, i64) = (row.get(0), row.get(1));
            Size {
                rows,
                table,
                indexes,
                total: table + indexes,
            }
        }
    }
}

/// Each index of `table` and its bytes, as "name size, name size".
async fn index_sizes(db: &Database, table: &str) -> String {
    let sql = match db.backend() {
        Backend::Postgres => {
            "SELECT CAST(CAST(indexrelid AS regclass) AS TEXT), \
               CAST(pg_relation_size(indexrelid) AS BIGINT) \
             FROM pg_index WHERE indrelid = CAST($1 AS regclass) ORDER BY 1"
        }
        Backend::Sqlite => {
            "SELECT d.name, CAST(SUM(d.pgsize) AS INTEGER) \
             FROM dbstat d JOIN sqlite_master m ON m.name = d.name \
             WHERE m.tbl_name = $1 AND m.type = 'index' GROUP BY d.name ORDER BY d.name"
        }
    };
    let name = match db.backend() {
        Backend::Postgres => format!("leasewatch.{table}"),
        Backend::Sqlite => table.to_owned(),
    };
    let rows = sqlx::query(sql)
        .bind(name)
        .fetch_all(db.control())
        .await
        .expect("index sizes");
    rows.iter()
        .map(|row| {
            let name: String = row.get(0);
            let name = name.trim_start_matches("leasewatch.").to_owned();
            format!("{name} {}", kb(row.get(1)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The whole database on disk: PostgreSQL's `pg_database_size`, SQLite's pages (free ones
/// included) and how many of them are free.
async fn database_size(db: &Database) -> (i64, i64) {
    match db.backend() {
        Backend::Postgres => {
            let total: i64 =
                sqlx::query_scalar("SELECT CAST(pg_database_size(current_database()) AS BIGINT)")
                    .fetch_one(db.control())
                    .await
                    .expect("database size");
            (total, 0)
        }
        Backend::Sqlite => {
            let pragma = |name: &'static str| async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
                    .fetch_one(db.control())
                    .await
                    .expect("pragma")
            };
            let page = pragma("page_size").await;
            (
                pragma("page_count").await * page,
                pragma("freelist_count").await * page,
            )
        }
    }
}

/// Compacts the history tables: only live rows, packed (PostgreSQL: `VACUUM FULL`, then
/// `ANALYZE`; SQLite: `VACUUM`, then a WAL checkpoint).
async fn compact(db: &Database) {
    let statements: &[&'static str] = match db.backend() {
        Backend::Postgres => &[
            "VACUUM (FULL, ANALYZE) run_history",
            "VACUUM (FULL, ANALYZE) pool_samples",
        ],
        Backend::Sqlite => &["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"],
    };
    run_each(db, statements).await;
}

/// Each statement on its own: `VACUUM` refuses a string of several.
async fn run_each(db: &Database, statements: &[&'static str]) {
    for sql in statements {
        sqlx::raw_sql(*sql).execute(db.control()).await.expect(sql);
    }
}

async fn connect(url: &str) -> Database {
    let url = DatabaseUrl::parse(url).expect("url");
    let settings = PoolSettings {
        max_connections: 2,
        min_connections: 0,
        // Retention over 13 days at once runs longer than any hour's run.
        lease_timeout: Duration::from_secs(600),
        ..PoolSettings::default()
    };
    let db = Database::connect(&url, &settings).await.expect("connect");
    db.migrate().await.expect("migrate");
    db
}

fn kb(bytes: i64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn mib(bytes: i64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1_048_576.0)
}

/// One backend's figures, as table rows.
#[derive(Default)]
struct Report {
    lines: Vec<(String, Size)>,
    notes: Vec<String>,
}

impl Report {
    fn add(&mut self, what: impl Into<String>, size: Size) {
        self.lines.push((what.into(), size));
    }

    fn print(&self, name: &str) {
        println!("\n### {name}\n");
        println!("| | rows | table | indexes | in all | bytes a row |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for (what, s) in &self.lines {
            println!(
                "| {what} | {} | {} | {} | **{}** | {:.0} |",
                s.rows,
                kb(s.table),
                kb(s.indexes),
                kb(s.total),
                s.total as f64 / s.rows.max(1) as f64
            );
        }
        for note in &self.notes {
            println!("\n{note}");
        }
    }
}

/// The one-day database: a day of raw samples and runs, then that day downsampled.
async fn one_day(db: &Database, report: &mut Report) {
    let start = start_ms();
    let empty = (
        size(db, "pool_samples").await,
        size(db, "run_history").await,
    );
    let mut writer = Writer::new(db.backend());
    writer.write(db, start, start + DAY_MS).await;
    report.add(
        "raw samples, one day (every 5 s)",
        size(db, "pool_samples").await - empty.0,
    );
    report.add(
        "runs, one day (4 tasks at their default intervals)",
        size(db, "run_history").await - empty.1,
    );
    let line = retention(db, start + 2 * DAY_MS).await;
    compact(db).await;
    report.add(
        "downsampled samples, one day (one a minute)",
        size(db, "pool_samples").await - empty.0,
    );
    report
        .notes
        .push(format!("Retention of that day, two days later: {line}."));
}

/// Stands in for autovacuum, which is off on the reference server, at its default thresholds:
/// a table is vacuumed (and analyzed) once the rows deleted from it since its last vacuum pass
/// 50 plus a fifth of its rows. Nothing on SQLite, whose freed pages go to its free list and
/// are reused as they are.
#[derive(Default)]
struct Autovacuum {
    /// Rows deleted since the last vacuum: samples, runs.
    dead: [i64; 2],
    /// Vacuums made: samples, runs.
    made: [u32; 2],
}

impl Autovacuum {
    const TABLES: [&'static str; 2] = ["pool_samples", "run_history"];

    /// Counts what retention at `now_ms` is about to delete (the raw samples it downsamples,
    /// and what it prunes).
    async fn before_retention(&mut self, db: &Database, job: &HistoryRetention, now_ms: i64) {
        if db.backend() != Backend::Postgres {
            return;
        }
        let (downsample_before, delete_before) = job.cutoffs(now_ms);
        // 60: a downsampled sample's span_secs.
        let samples: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pool_samples WHERE at_ms < $2 OR (span_secs < 60 AND at_ms < $1)",
        )
        .bind(downsample_before)
        .bind(delete_before)
        .fetch_one(db.control())
        .await
        .expect("samples to go");
        let runs: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM run_history WHERE started_at_ms < $1")
                .bind(delete_before)
                .fetch_one(db.control())
                .await
                .expect("runs to go");
        self.dead[0] += samples;
        self.dead[1] += runs;
    }

    /// Vacuums the tables whose deleted rows passed the threshold.
    async fn after_retention(&mut self, db: &Database) {
        for (i, table) in Self::TABLES.into_iter().enumerate() {
            if db.backend() != Backend::Postgres || self.dead[i] == 0 {
                continue;
            }
            let rows: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(db.control())
                    .await
                    .expect("count");
            if self.dead[i] > 50 + rows / 5 {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {table}")))
                    .execute(db.control())
                    .await
                    .expect("vacuum");
                self.dead[i] = 0;
                self.made[i] += 1;
            }
        }
    }
}

fn both(samples: Size, runs: Size) -> Size {
    Size {
        rows: samples.rows + runs.rows,
        table: samples.table + runs.table,
        indexes: samples.indexes + runs.indexes,
        total: samples.total + runs.total,
    }
}

/// The steady-state database: history written an hour at a time for twice the retention, with
/// the real retention job after every hour, as the engine runs it. After the first 14 days
/// every sample older than a day has been downsampled where it lay; after 28, every row has
/// also been pruned once its time came and its space reused. Returns the clock its data ends
/// at.
async fn steady_state(db: &Database, report: &mut Report) -> i64 {
    let start = start_ms();
    let days = i64::try_from(HISTORY_RETENTION.as_secs()).unwrap() * 1000 / DAY_MS;
    let job = HistoryRetention {
        retention: HISTORY_RETENTION,
    };
    let mut writer = Writer::new(db.backend());
    let mut autovacuum = Autovacuum::default();
    let mut retention_took = Vec::new();
    let mut daily_totals = Vec::new();
    let mut line = String::new();
    let started = Instant::now();
    let mut end = start;
    for hour in 1..=2 * days * 24 {
        writer.write(db, end, end + HOUR_MS).await;
        end += HOUR_MS;
        autovacuum.before_retention(db, &job, end).await;
        let took = Instant::now();
        line = retention(db, end).await;
        retention_took.push(took.elapsed());
        autovacuum.after_retention(db).await;
        if hour % 24 != 0 {
            continue;
        }
        let day = hour / 24;
        if day == days {
            report.add(
                format!(
                    "samples after {days} days written hourly (13 days downsampled, the last raw)"
                ),
                size(db, "pool_samples").await,
            );
            report.add(
                format!("runs after {days} days"),
                size(db, "run_history").await,
            );
        }
        if day >= days {
            let total = both(
                size(db, "pool_samples").await,
                size(db, "run_history").await,
            );
            daily_totals.push(total.total);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let samples = size(db, "pool_samples").await;
    let runs = size(db, "run_history").await;
    report.add(
        format!(
            "steady state, after {} days: samples (one day raw, 13 downsampled)",
            2 * days
        ),
        samples,
    );
    report.add("steady state: runs (14 days)", runs);
    report.add("steady state: both tables", both(samples, runs));
    let indexes = index_sizes(db, "pool_samples").await;
    let (file, free) = database_size(db).await;
    let what = match db.backend() {
        Backend::Postgres => "the whole database (`pg_database_size`, the catalog included)",
        Backend::Sqlite => "the database file (every table, free pages included)",
    };
    retention_took.sort();
    report.notes.push(format!(
        "{} days written an hour at a time, with retention after each hour, took {elapsed:.0} s. \
         The {} hourly retention runs took {} at the median, {} at the most; the last: {line}. \
         Both tables at the end of each day from day {days} to day {}: from {} to {}. At the \
         steady state {what}: {}{}; the samples' indexes: {indexes}.{}",
        2 * days,
        retention_took.len(),
        millis(quantile(&retention_took, 0.5)),
        millis(*retention_took.last().unwrap()),
        2 * days,
        kb(*daily_totals.iter().min().unwrap()),
        kb(*daily_totals.iter().max().unwrap()),
        mib(file),
        if free > 0 {
            format!(", of it free pages {}", kb(free))
        } else {
            String::new()
        },
        if db.backend() == Backend::Postgres {
            format!(
                " Vacuums at autovacuum's default thresholds: {} of pool_samples, {} of run_history.",
                autovacuum.made[0], autovacuum.made[1]
            )
        } else {
            String::new()
        },
    ));
    end
}

/// The same rows compacted (`VACUUM FULL` / `VACUUM`): what of the steady state is live data
/// and what is space the churn left.
async fn compacted(db: &Database) -> String {
    compact(db).await;
    let samples = size(db, "pool_samples").await;
    let runs = size(db, "run_history").await;
    format!(
        "compacted, the same rows take: samples {} (table {}, indexes {}: {}), runs {} (table \
         {}, indexes {}), both {}",
        kb(samples.total),
        kb(samples.table),
        kb(samples.indexes),
        index_sizes(db, "pool_samples").await,
        kb(runs.total),
        kb(runs.table),
        kb(runs.indexes),
        kb(samples.total + runs.total)
    )
}

/// The chart ranges read: `(name, span)`. The hour is for comparison: the span a custom plan
/// reads through the `at_ms` index.
const RANGES: [(&str, i64); 3] = [
    ("7 days", 7 * DAY_MS),
    ("24 hours", DAY_MS),
    ("1 hour", HOUR_MS),
];

/// The query plan of the charts' statement over `span` ending at `now`, with its run time.
async fn explain(db: &Database, now: i64, span: i64) -> String {
    let (from, to) = (now - span, now);
    let bucket = leasewatch_engine::history::bucket_ms(span);
    let mut plan = String::new();
    match db.backend() {
        Backend::Postgres => {
            let mut conn = db.control().acquire().await.expect("a connection");
            // What the first executions of the prepared statement get (a plan for these
            // values), then what a cached generic plan would be.
            for mode in ["force_custom_plan", "force_generic_plan"] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET plan_cache_mode = {mode}; \
                     PREPARE chart(BIGINT, BIGINT, BIGINT) AS {SAMPLES_SQL}"
                )))
                .execute(&mut *conn)
                .await
                .expect("prepare");
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE chart({from}, {to}, {bucket})"
                )))
                .fetch_all(&mut *conn)
                .await
                .expect("explain");
                writeln!(plan, "-- plan_cache_mode = {mode}").unwrap();
                for row in rows {
                    writeln!(plan, "{}", row.get::<String, _>(0)).unwrap();
                }
                // Only this one: the pool's own prepared statements stay.
                sqlx::raw_sql("DEALLOCATE chart")
                    .execute(&mut *conn)
                    .await
                    .expect("deallocate");
            }
            sqlx::raw_sql("RESET plan_cache_mode")
                .execute(&mut *conn)
                .await
                .expect("reset");
        }
        Backend::Sqlite => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {SAMPLES_SQL}"
            )))
            .bind(from)
            .bind(to)
            .bind(bucket)
            .fetch_all(db.control())
            .await
            .expect("explain");
            for row in rows {
                writeln!(plan, "{}", row.get::<String, _>("detail")).unwrap();
            }
        }
    }
    plan
}

/// Which plans the reads above ran with: PostgreSQL's count for the chart statement prepared
/// on the control connection (one connection, so the session these reads ran on).
async fn plans_used(db: &Database) -> String {
    let row = sqlx::query(
        "SELECT CAST(generic_plans AS BIGINT), CAST(custom_plans AS BIGINT) \
         FROM pg_prepared_statements WHERE statement LIKE '%per_instance%' \
         AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .fetch_optional(db.control())
    .await
    .expect("prepared statements");
    match row {
        Some(row) => format!(
            "the chart statement prepared on the control connection ran {} times with the \
             generic plan, {} with a plan for its values",
            row.get::<i64, _>(0),
            row.get::<i64, _>(1)
        ),
        None => "the chart statement is not among the control connection's prepared ones".into(),
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let reads: usize = std::env::var("HISTORY_READS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite_url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
        let pg_one = TestDatabase::create().await;
        let pg_steady = TestDatabase::create().await;
        if pg_steady.is_none() {
            eprintln!("PostgreSQL unreachable: SQLite only");
        }

        let mut backends: Vec<(&str, Database, Database)> = vec![(
            "SQLite",
            connect(&sqlite_url("one.db")).await,
            connect(&sqlite_url("steady.db")).await,
        )];
        if let (Some(one), Some(steady)) = (&pg_one, &pg_steady) {
            backends.push((
                "PostgreSQL",
                connect(one.url()).await,
                connect(steady.url()).await,
            ));
        }

        let mut charts = Vec::new();
        for (name, one, steady) in &backends {
            eprintln!("==> {name}: one day");
            let mut report = Report::default();
            one_day(one, &mut report).await;
            eprintln!("==> {name}: 28 days an hour at a time, retention after each hour");
            let now = steady_state(steady, &mut report).await;
            report.print(name);
            let history = History::new("reader", "bench");
            charts.push((*name, steady, history, now));
        }

        eprintln!("==> chart reads: {reads} per range and backend, alternating");
        let mut times: BTreeMap<(usize, usize), Vec<Duration>> = BTreeMap::new();
        let mut points: BTreeMap<(usize, usize), usize> = BTreeMap::new();
        for round in 0..reads + 5 {
            for (b, (_, db, history, now)) in charts.iter().enumerate() {
                for (r, (_, span)) in RANGES.iter().enumerate() {
                    let started = Instant::now();
                    let read = history
                        .samples(db, at(now - span), at(*now))
                        .await
                        .expect("samples");
                    let took = started.elapsed();
                    // The first five of each are warm-up.
                    if round >= 5 {
                        times.entry((b, r)).or_default().push(took);
                    }
                    points.insert((b, r), read.len());
                }
            }
        }
        println!("\n### Chart reads, `History::samples(db, now - range, now)`\n");
        println!(
            "{reads} reads of each, alternating backends and ranges, after 5 of each as warm-up."
        );
        println!();
        println!("| backend | range | points | median | p95 | max |");
        println!("| --- | --- | --- | --- | --- | --- |");
        for ((b, r), mut took) in times {
            took.sort();
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                charts[b].0,
                RANGES[r].0,
                points[&(b, r)],
                millis(quantile(&took, 0.5)),
                millis(quantile(&took, 0.95)),
                millis(*took.last().unwrap()),
            );
        }
        for (name, db, _, now) in &charts {
            if db.backend() == Backend::Postgres {
                println!("\n{name}: {}", plans_used(db).await);
            }
            for (range, span) in RANGES {
                println!(
                    "\n{name}, {range}:\n\n```\n{}```",
                    explain(db, *now, span).await
                );
            }
        }

        for (name, db, _, _) in &charts {
            println!("\n{name}, the steady state {}.", compacted(db).await);
        }
        drop(charts);
        for (_, one, steady) in backends {
            one.close().await;
            steady.close().await;
        }
    });
}
