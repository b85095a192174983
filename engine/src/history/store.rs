//! The `run_history` and `pool_samples` tables: batched writes, the runs view's filtered and
//! paged reads, chart samples over a range, and the retention task's downsampling and pruning.
//! Times are Unix milliseconds in `BIGINT` columns, so one statement serves both backends.

use chrono::{DateTime, Utc};
use leasewatch_types::RunOutcome;
use sqlx::{AnyConnection, AnyPool, Row, any::AnyRow};

use super::model::{RunCursor, RunDetail, RunFilter, StoredRun, StoredSample};
use crate::{
    db::{
        filter::{Bind, Filter},
        time_of_ms,
    },
    tasks::RunRecord,
};

/// A run waiting to be written: its columns and its whole record as JSON.
#[derive(Debug, Clone)]
pub(super) struct RunRow {
    pub run: StoredRun,
    pub record: String,
}

/// A pool sample waiting to be written.
#[derive(Debug, Clone)]
pub(super) struct SampleRow {
    pub instance: String,
    pub sample: StoredSample,
}

/// How long a raw sample covers, in seconds (the history ring's interval).
pub(super) const RAW_SPAN_SECS: i64 = 5;
/// How long a downsampled sample covers, in seconds.
pub(super) const DOWNSAMPLED_SPAN_SECS: i64 = 60;

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Writes `runs` and `samples` in one transaction. Rows already there (a batch whose commit
/// was not acknowledged, written again) are left as they are.
pub(super) async fn write(
    db: &AnyPool,
    runs: &[RunRow],
    samples: &[SampleRow],
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    for row in runs {
        let run = &row.run;
        sqlx::query(
            "INSERT INTO run_history (instance, run_id, host, task, trigger, scheduled_at_ms, \
             started_at_ms, ended_at_ms, duration_ms, outcome, failure, detail, rows_changed, \
             attempts, leases, record) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (instance, run_id) DO NOTHING",
        )
        .bind(&run.instance)
        .bind(signed(run.run_id))
        .bind(&run.host)
        .bind(&run.task)
        .bind(run.trigger.as_str())
        .bind(run.scheduled_at.map(ms))
        .bind(ms(run.started_at))
        .bind(ms(run.ended_at))
        .bind(signed(run.duration_ms))
        .bind(run.outcome.as_str())
        .bind(run.failure.map(|f| f.as_str()))
        .bind(&run.detail)
        .bind(signed(run.rows))
        .bind(i64::from(run.attempts))
        .bind(i64::from(run.leases))
        .bind(&row.record)
        .execute(&mut *tx)
        .await?;
    }
    for row in samples {
        let s = &row.sample;
        sqlx::query(
            "INSERT INTO pool_samples (instance, at_ms, span_secs, active, idle, waiting, \
             leases, stale, p95_ms, lease_limit, budget, server_clients, server_usable) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (instance, at_ms) DO NOTHING",
        )
        .bind(&row.instance)
        .bind(s.at_ms)
        .bind(RAW_SPAN_SECS)
        .bind(i64::from(s.active))
        .bind(i64::from(s.idle))
        .bind(i64::from(s.waiting))
        .bind(i64::from(s.leases))
        .bind(i64::from(s.stale))
        .bind(s.p95_ms)
        .bind(i64::from(s.limit))
        .bind(s.budget.map(i64::from))
        .bind(s.server_clients)
        .bind(s.server_usable)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

const RUN_COLUMNS: &str = "instance, run_id, host, task, trigger, scheduled_at_ms, started_at_ms, \
                           ended_at_ms, duration_ms, outcome, failure, detail, rows_changed, \
                           attempts, leases";

/// Up to `limit` runs matching `filter`, newest first, after `after` when given.
pub(super) async fn runs(
    db: &AnyPool,
    filter: &RunFilter,
    after: Option<&RunCursor>,
    limit: u32,
) -> Result<Vec<StoredRun>, sqlx::Error> {
    let text = |value: &Option<String>| value.clone().map(Bind::Text);
    let mut wheres = Filter::default();
    wheres.compare("task", "=", text(&filter.task));
    let outcome = filter.outcome.map(|o| Bind::Text(o.as_str().to_owned()));
    wheres.compare("outcome", "=", outcome);
    let failure = filter.failure.map(|f| Bind::Text(f.as_str().to_owned()));
    wheres.compare("failure", "=", failure);
    wheres.compare("instance", "=", text(&filter.instance));
    wheres.compare(
        "started_at_ms",
        ">=",
        filter.from.map(|at| Bind::Int(ms(at))),
    );
    wheres.compare("started_at_ms", "<", filter.to.map(|at| Bind::Int(ms(at))));
    if let Some(after) = after {
        let at = wheres.param(Bind::Int(after.started_at_ms));
        let instance = wheres.param(Bind::Text(after.instance.clone()));
        let run = wheres.param(Bind::Int(signed(after.run_id)));
        wheres.and(format!(
            "(started_at_ms, instance, run_id) < ({at}, {instance}, {run})"
        ));
    }
    let limit = wheres.param(Bind::Int(i64::from(limit)));
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM run_history {} \
         ORDER BY started_at_ms DESC, instance DESC, run_id DESC LIMIT {limit}",
        wheres.where_clause()
    );
    let rows = wheres
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .fetch_all(db)
        .await?;
    Ok(rows.iter().filter_map(|row| stored_run(row).ok()).collect())
}

/// One run with its record.
pub(super) async fn run(
    db: &AnyPool,
    instance: &str,
    run_id: u64,
) -> Result<Option<RunDetail>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS}, record FROM run_history WHERE instance = $1 AND run_id = $2"
    )))
    .bind(instance)
    .bind(signed(run_id))
    .fetch_optional(db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let record: String = row.try_get("record")?;
    let record: RunRecord =
        serde_json::from_str(&record).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
    Ok(Some(RunDetail {
        run: stored_run(&row)?,
        record,
    }))
}

fn stored_run(row: &AnyRow) -> Result<StoredRun, sqlx::Error> {
    let decode = |what: &str, text: String| {
        sqlx::Error::Decode(format!("run_history.{what}: unknown value {text:?}").into())
    };
    let trigger: String = row.try_get("trigger")?;
    let outcome: String = row.try_get("outcome")?;
    let failure: Option<String> = row.try_get("failure")?;
    Ok(StoredRun {
        instance: row.try_get("instance")?,
        host: row.try_get("host")?,
        task: row.try_get("task")?,
        run_id: u64::try_from(row.try_get::<i64, _>("run_id")?).unwrap_or(0),
        trigger: crate::tasks::Trigger::parse(&trigger)
            .ok_or_else(|| decode("trigger", trigger))?,
        scheduled_at: row
            .try_get::<Option<i64>, _>("scheduled_at_ms")?
            .map(time_of_ms),
        started_at: time_of_ms(row.try_get("started_at_ms")?),
        ended_at: time_of_ms(row.try_get("ended_at_ms")?),
        duration_ms: u64::try_from(row.try_get::<i64, _>("duration_ms")?).unwrap_or(0),
        outcome: outcome
            .parse::<RunOutcome>()
            .map_err(|_| decode("outcome", outcome))?,
        failure: match failure {
            Some(name) => Some(name.parse().map_err(|_| decode("failure", name))?),
            None => None,
        },
        detail: row.try_get("detail")?,
        rows: u64::try_from(row.try_get::<i64, _>("rows_changed")?).unwrap_or(0),
        attempts: unsigned32(row.try_get("attempts")?),
        leases: unsigned32(row.try_get("leases")?),
    })
}

/// The chart samples' statement: `$1` from, `$2` to (Unix milliseconds), `$3` the bucket.
/// Public for the benchmark's `EXPLAIN`.
pub const SAMPLES_SQL: &str = "SELECT b * $3 AS at_ms, \
           CAST(SUM(active) AS BIGINT) AS active, CAST(SUM(idle) AS BIGINT) AS idle, \
           CAST(SUM(waiting) AS BIGINT) AS waiting, CAST(SUM(leases) AS BIGINT) AS leases, \
           CAST(SUM(stale) AS BIGINT) AS stale, MAX(p95_ms) AS p95_ms, \
           CAST(SUM(lease_limit) AS BIGINT) AS lease_limit, MAX(budget) AS budget, \
           MAX(server_clients) AS server_clients, MAX(server_usable) AS server_usable \
         FROM ( \
           SELECT instance, at_ms / $3 AS b, MAX(active) AS active, MAX(idle) AS idle, \
             MAX(waiting) AS waiting, MAX(leases) AS leases, MAX(stale) AS stale, \
             MAX(p95_ms) AS p95_ms, MIN(lease_limit) AS lease_limit, MIN(budget) AS budget, \
             MAX(server_clients) AS server_clients, MAX(server_usable) AS server_usable \
           FROM pool_samples WHERE at_ms >= $1 AND at_ms < $2 \
           GROUP BY instance, b \
         ) per_instance \
         GROUP BY b ORDER BY b";

/// The samples from `from_ms` to `to_ms`, one per `bucket_ms`: per instance the busiest
/// sample of the bucket, added up over the instances (the server's own figures, the same for
/// every instance, are taken once).
pub(super) async fn samples(
    db: &AnyPool,
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
) -> Result<Vec<StoredSample>, sqlx::Error> {
    let rows = sqlx::query(SAMPLES_SQL)
        .bind(from_ms)
        .bind(to_ms)
        .bind(bucket_ms.max(1))
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(StoredSample {
                at_ms: row.try_get("at_ms")?,
                active: unsigned32(row.try_get("active")?),
                idle: unsigned32(row.try_get("idle")?),
                waiting: unsigned32(row.try_get("waiting")?),
                leases: unsigned32(row.try_get("leases")?),
                stale: unsigned32(row.try_get("stale")?),
                p95_ms: row.try_get("p95_ms")?,
                limit: unsigned32(row.try_get("lease_limit")?),
                budget: row.try_get::<Option<i64>, _>("budget")?.map(unsigned32),
                server_clients: row.try_get("server_clients")?,
                server_usable: row.try_get("server_usable")?,
            })
        })
        .collect()
}

/// Replaces the raw samples before `cutoff_ms` (a whole minute) by one sample per instance and
/// minute, the busiest of it. Returns the raw samples replaced.
pub(super) async fn downsample(
    conn: &mut AnyConnection,
    cutoff_ms: i64,
) -> Result<u64, sqlx::Error> {
    let minute = DOWNSAMPLED_SPAN_SECS * 1000;
    let aggregated = sqlx::query(
        "SELECT instance, (at_ms / $2) * $2 AS at_ms, MAX(active) AS active, \
           MAX(idle) AS idle, MAX(waiting) AS waiting, MAX(leases) AS leases, \
           MAX(stale) AS stale, MAX(p95_ms) AS p95_ms, MIN(lease_limit) AS lease_limit, \
           MIN(budget) AS budget, MAX(server_clients) AS server_clients, \
           MAX(server_usable) AS server_usable \
         FROM pool_samples WHERE span_secs < $3 AND at_ms < $1 \
         GROUP BY instance, at_ms / $2",
    )
    .bind(cutoff_ms)
    .bind(minute)
    .bind(DOWNSAMPLED_SPAN_SECS)
    .fetch_all(&mut *conn)
    .await?;
    let replaced = sqlx::query("DELETE FROM pool_samples WHERE span_secs < $2 AND at_ms < $1")
        .bind(cutoff_ms)
        .bind(DOWNSAMPLED_SPAN_SECS)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    for row in &aggregated {
        sqlx::query(
            "INSERT INTO pool_samples (instance, at_ms, span_secs, active, idle, waiting, \
             leases, stale, p95_ms, lease_limit, budget, server_clients, server_usable) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (instance, at_ms) DO UPDATE SET span_secs = excluded.span_secs, \
             active = excluded.active, idle = excluded.idle, waiting = excluded.waiting, \
             leases = excluded.leases, stale = excluded.stale, p95_ms = excluded.p95_ms, \
             lease_limit = excluded.lease_limit, budget = excluded.budget, \
             server_clients = excluded.server_clients, server_usable = excluded.server_usable",
        )
        .bind(row.try_get::<String, _>("instance")?)
        .bind(row.try_get::<i64, _>("at_ms")?)
        .bind(DOWNSAMPLED_SPAN_SECS)
        .bind(row.try_get::<i64, _>("active")?)
        .bind(row.try_get::<i64, _>("idle")?)
        .bind(row.try_get::<i64, _>("waiting")?)
        .bind(row.try_get::<i64, _>("leases")?)
        .bind(row.try_get::<i64, _>("stale")?)
        .bind(row.try_get::<Option<f64>, _>("p95_ms")?)
        .bind(row.try_get::<i64, _>("lease_limit")?)
        .bind(row.try_get::<Option<i64>, _>("budget")?)
        .bind(row.try_get::<Option<i64>, _>("server_clients")?)
        .bind(row.try_get::<Option<i64>, _>("server_usable")?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(replaced)
}

/// Deletes runs that started, and samples taken, before `cutoff_ms`. Returns the rows deleted.
pub(super) async fn prune(conn: &mut AnyConnection, cutoff_ms: i64) -> Result<u64, sqlx::Error> {
    let runs = sqlx::query("DELETE FROM run_history WHERE started_at_ms < $1")
        .bind(cutoff_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let samples = sqlx::query("DELETE FROM pool_samples WHERE at_ms < $1")
        .bind(cutoff_ms)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(runs + samples)
}
