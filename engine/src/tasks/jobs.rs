//! The three real tasks. Each takes one lease, works in one transaction, and on PostgreSQL
//! first takes the task's advisory lock inside it, so two instances never run the same task at
//! once; row work also skips rows another transaction holds (`FOR UPDATE SKIP LOCKED`), so no
//! auction is transitioned or settled twice.

use leasewatch_types::task;
use std::{sync::Arc, time::Instant};

use sqlx::{Any, Connection, Transaction};

use super::{Job, JobContext, JobFuture, JobOutput, JobSpec, TaskError};
use crate::{
    auctions::{self, AuctionStatus},
    db::Backend,
    server_view::{self, ServerView},
    settings::TaskIntervals,
};

/// The three real tasks at `intervals`.
pub fn standard_jobs(intervals: &TaskIntervals) -> Vec<JobSpec> {
    vec![
        (
            task::STATUS_TRANSITIONS.to_owned(),
            intervals.status_transitions,
            Arc::new(StatusTransitions) as Arc<dyn Job>,
        ),
        (
            task::AUCTION_MONITOR.to_owned(),
            intervals.auction_monitor,
            Arc::new(AuctionMonitor),
        ),
        (
            task::HEALTH_CHECK.to_owned(),
            intervals.health_check,
            Arc::new(HealthCheck),
        ),
    ]
}

/// Rows changed per statement: bounded work per round trip, one transaction per run.
const BATCH: i64 = 200;

/// `status_transitions`: scheduled → active at `starts_at`, active → ended at `ends_at`.
pub struct StatusTransitions;

/// `auction_monitor`: settles ended auctions and reports anomalies.
pub struct AuctionMonitor;

/// `health_check`: round-trip latency and, on PostgreSQL, the server-wide connection view.
pub struct HealthCheck;

/// `leaky_report` (demo only): written the careless way the seed's tasks were — it takes a
/// connection, reads, then keeps the connection while it "formats" for `hold`. It is there
/// to show the lease manager catching and reclaiming a leak.
pub(crate) struct LeakyReport {
    /// How long it sits on its connection.
    pub(crate) hold: std::time::Duration,
    /// It forgets the connection instead: the run returns and the connection stays taken for
    /// `hold`, so leaks pile up one per run.
    pub(crate) pile_up: bool,
}

impl Job for LeakyReport {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let mut lease = ctx.leases.acquire(&ctx.run).await?;
            let total = lease
                .run(|conn| {
                    Box::pin(async move {
                        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auctions")
                            .fetch_one(&mut *conn)
                            .await?;
                        Ok::<_, TaskError>(total)
                    })
                })
                .await?;
            let hold = self.hold;
            let forgotten = async move {
                tokio::time::sleep(hold).await;
                drop(lease);
            };
            if self.pile_up {
                tokio::spawn(forgotten);
                return Ok(JobOutput::done(
                    0,
                    format!("reported on {total} auctions and left its connection behind"),
                ));
            }
            forgotten.await;
            Ok(JobOutput::done(0, format!("reported on {total} auctions")))
        })
    }
}

/// PostgreSQL advisory lock key of `status_transitions` (fixed and distinct per task, so
/// every instance agrees).
pub const STATUS_TRANSITIONS_LOCK: i64 = 0x4C57_0001;
/// PostgreSQL advisory lock key of `auction_monitor`.
pub const AUCTION_MONITOR_LOCK: i64 = 0x4C57_0002;
/// PostgreSQL advisory lock key of `health_check`.
pub const HEALTH_CHECK_LOCK: i64 = 0x4C57_0003;

/// What a run reports when another instance holds the task's advisory lock.
pub const RUNNING_ELSEWHERE: &str = "running on another instance";

impl Job for StatusTransitions {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        let backend = ctx.leases.database().backend();
        let (now, instance) = (ctx.now_ms, ctx.instance.clone());
        Box::pin(in_locked_transaction(
            ctx,
            STATUS_TRANSITIONS_LOCK,
            move |tx| {
                Box::pin(async move {
                    let (start, end) = match backend {
                        Backend::Postgres => (PG_START, PG_END),
                        Backend::Sqlite => (SQLITE_START, SQLITE_END),
                    };
                    let started = transition(
                        tx,
                        start,
                        now,
                        &instance,
                        AuctionStatus::Scheduled,
                        AuctionStatus::Active,
                    )
                    .await?;
                    let ended = transition(
                        tx,
                        end,
                        now,
                        &instance,
                        AuctionStatus::Active,
                        AuctionStatus::Ended,
                    )
                    .await?;
                    let counts = auctions::status_counts(&mut **tx).await?;
                    Ok(JobOutput::done(
                        started + ended,
                        format!("{started} started, {ended} ended"),
                    )
                    .with_counts(counts))
                })
            },
        ))
    }
}

impl Job for AuctionMonitor {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        let backend = ctx.leases.database().backend();
        let (now, instance) = (ctx.now_ms, ctx.instance.clone());
        Box::pin(in_locked_transaction(
            ctx,
            AUCTION_MONITOR_LOCK,
            move |tx| {
                Box::pin(async move {
                    let settle = match backend {
                        Backend::Postgres => PG_SETTLE,
                        Backend::Sqlite => SQLITE_SETTLE,
                    };
                    let (mut settled, mut unsold) = (0u64, 0u64);
                    loop {
                        let rows: Vec<(i64, String)> = sqlx::query_as(settle)
                            .bind(now)
                            .bind(BATCH)
                            .fetch_all(&mut **tx)
                            .await?;
                        for (id, status) in &rows {
                            record_event(tx, *id, "ended", status, now, &instance).await?;
                            match status.parse::<AuctionStatus>().ok() {
                                Some(AuctionStatus::Settled) => settled += 1,
                                Some(AuctionStatus::Unsold) => unsold += 1,
                                _ => {
                                    return Err(TaskError::Logic(format!(
                                        "auction {id} settled into unexpected status {status:?}"
                                    )));
                                }
                            }
                        }
                        if (rows.len() as i64) < BATCH {
                            break;
                        }
                    }
                    // Anomalies: an auction still active a minute past its end means the
                    // transitions task is not keeping up; a bid after the end means the
                    // bidding path does not check the end time.
                    let (overdue,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM auctions WHERE status = 'active' AND ends_at_ms < $1",
                    )
                    .bind(now - 60_000)
                    .fetch_one(&mut **tx)
                    .await?;
                    let (late_bids,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM bids b JOIN auctions a ON a.id = b.auction_id \
                             WHERE b.placed_at_ms > a.ends_at_ms",
                    )
                    .fetch_one(&mut **tx)
                    .await?;
                    let counts = auctions::status_counts(&mut **tx).await?;
                    let mut detail = format!("{settled} settled, {unsold} unsold");
                    if overdue > 0 || late_bids > 0 {
                        detail.push_str(&format!(
                                "; anomalies: {overdue} active past their end, {late_bids} bids after the end"
                            ));
                    }
                    Ok(JobOutput::done(settled + unsold, detail).with_counts(counts))
                })
            },
        ))
    }
}

impl Job for HealthCheck {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let mut lease = ctx.leases.acquire(&ctx.run).await?;
            let backend = ctx.leases.database().backend();
            let (round_trip, view) = lease
                .run(move |conn| {
                    Box::pin(async move {
                        let started = Instant::now();
                        sqlx::query("SELECT 1").execute(&mut *conn).await?;
                        let round_trip = started.elapsed();
                        let view = match backend {
                            Backend::Sqlite => None,
                            Backend::Postgres => {
                                let mut tx = conn.begin().await?;
                                if !take_task_lock(&mut tx, backend, HEALTH_CHECK_LOCK).await? {
                                    // Ended here, not left to `Drop`: the connection goes back
                                    // to the pool with no transaction open.
                                    tx.rollback().await?;
                                    return Ok((round_trip, Err(())));
                                }
                                let view = server_view::read_postgres(&mut tx).await?;
                                tx.commit().await?;
                                Some(view)
                            }
                        };
                        Ok::<_, TaskError>((round_trip, Ok(view)))
                    })
                })
                .await?;
            let Ok(view) = view else {
                return Ok(JobOutput::skipped(RUNNING_ELSEWHERE));
            };
            let round_trip_ms = round_trip.as_secs_f64() * 1000.0;
            let mut detail = match &view {
                Some(v) => format!(
                    "round trip {round_trip_ms:.1} ms; server: {} of {} connections, {} idle in transaction",
                    v.client_connections, v.max_connections, v.idle_in_transaction
                ),
                None => format!("round trip {round_trip_ms:.1} ms"),
            };
            if let Some(view) = view {
                ctx.leases.store_server_view(ServerView::Postgres(view));
            }
            // Every replica in rotation too, each through a lease of its own; one that fails
            // here is reported, and its probe decides whether it stays in rotation.
            for (target, leases) in ctx.targets.replicas_in_rotation() {
                match check_replica(&leases, &ctx.run).await {
                    Ok(round_trip) => detail.push_str(&format!(
                        "; {target}: round trip {:.1} ms",
                        round_trip.as_secs_f64() * 1000.0
                    )),
                    Err(err) => detail.push_str(&format!("; {target}: {err}")),
                }
            }
            Ok(JobOutput::done(0, detail).with_round_trip(round_trip))
        })
    }
}

/// A replica's round trip and server view, through a lease of `run`'s on its own pool.
async fn check_replica(
    leases: &crate::lease::LeaseManager,
    run: &crate::lease::RunContext,
) -> Result<std::time::Duration, TaskError> {
    let mut lease = leases.acquire(run).await?;
    let (round_trip, view) = lease
        .run(|conn| {
            Box::pin(async move {
                let started = Instant::now();
                sqlx::query("SELECT 1").execute(&mut *conn).await?;
                let round_trip = started.elapsed();
                let view = server_view::read_postgres(conn).await?;
                Ok::<_, TaskError>((round_trip, view))
            })
        })
        .await?;
    leases.store_server_view(ServerView::Postgres(view));
    Ok(round_trip)
}

/// What the status transitions and the monitor share: one lease, one transaction, and on
/// PostgreSQL the task's advisory lock first; a run that finds the lock taken is skipped.
pub(crate) async fn in_locked_transaction<F>(
    ctx: &JobContext,
    key: i64,
    work: F,
) -> Result<JobOutput, TaskError>
where
    F: for<'c, 't> FnOnce(&'t mut Transaction<'c, Any>) -> JobFuture<'t> + Send + 'static,
{
    let mut lease = ctx.leases.acquire(&ctx.run).await?;
    let backend = ctx.leases.database().backend();
    lease
        .run(move |conn| {
            Box::pin(async move {
                let mut tx = conn.begin().await?;
                if !take_task_lock(&mut tx, backend, key).await? {
                    // Ended here, not left to `Drop` (which only queues a rollback for the
                    // connection's next use): the connection goes back to the pool clean.
                    tx.rollback().await?;
                    return Ok(JobOutput::skipped(RUNNING_ELSEWHERE));
                }
                let output = work(&mut tx).await?;
                tx.commit().await?;
                Ok(output)
            })
        })
        .await
}

/// On PostgreSQL, the task's transaction-scoped advisory lock (released at commit or
/// rollback, or when the session ends); `false` when another session holds it. SQLite has one
/// writer at a time anyway.
async fn take_task_lock(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    key: i64,
) -> Result<bool, TaskError> {
    match backend {
        Backend::Sqlite => Ok(true),
        Backend::Postgres => Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(key)
            .fetch_one(&mut **tx)
            .await?),
    }
}

/// Moves due auctions from one status to the next in batches; returns how many moved.
async fn transition(
    tx: &mut Transaction<'_, Any>,
    sql: &'static str,
    now: i64,
    instance: &str,
    from: AuctionStatus,
    to: AuctionStatus,
) -> Result<u64, TaskError> {
    let mut moved = 0;
    loop {
        let ids: Vec<i64> = sqlx::query_scalar(sql)
            .bind(now)
            .bind(BATCH)
            .fetch_all(&mut **tx)
            .await?;
        for id in &ids {
            record_event(tx, *id, from.as_str(), to.as_str(), now, instance).await?;
        }
        moved += ids.len() as u64;
        if (ids.len() as i64) < BATCH {
            return Ok(moved);
        }
    }
}

async fn record_event(
    tx: &mut Transaction<'_, Any>,
    auction: i64,
    from: &str,
    to: &str,
    now: i64,
    instance: &str,
) -> Result<(), TaskError> {
    sqlx::query(
        "INSERT INTO auction_events (auction_id, from_status, to_status, at_ms, instance) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(auction)
    .bind(from.to_owned())
    .bind(to.to_owned())
    .bind(now)
    .bind(instance.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// The statements differ only in PostgreSQL's row locking, which SQLite (one writer) has no use
// for. `status = ...` is checked again in the UPDATE so a run is idempotent.
macro_rules! transition_sql {
    ($from:literal, $to:literal, $due:literal, $lock:literal) => {
        concat!(
            "UPDATE auctions SET status = '",
            $to,
            "', updated_at_ms = $1 \
             WHERE id IN (SELECT id FROM auctions WHERE status = '",
            $from,
            "' AND ",
            $due,
            " <= $1 ORDER BY id LIMIT $2",
            $lock,
            ") AND status = '",
            $from,
            "' RETURNING id"
        )
    };
}
const PG_START: &str = transition_sql!(
    "scheduled",
    "active",
    "starts_at_ms",
    " FOR UPDATE SKIP LOCKED"
);
const SQLITE_START: &str = transition_sql!("scheduled", "active", "starts_at_ms", "");
const PG_END: &str = transition_sql!("active", "ended", "ends_at_ms", " FOR UPDATE SKIP LOCKED");
const SQLITE_END: &str = transition_sql!("active", "ended", "ends_at_ms", "");

/// The winner: the highest bid at or above the reserve placed by the end; ties go to the
/// earlier bid.
macro_rules! settle_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE auctions SET \
               winning_bid_id = (SELECT b.id FROM bids b WHERE b.auction_id = auctions.id \
                 AND b.amount_cents >= auctions.reserve_cents AND b.placed_at_ms <= auctions.ends_at_ms \
                 ORDER BY b.amount_cents DESC, b.placed_at_ms, b.id LIMIT 1), \
               status = CASE WHEN EXISTS (SELECT 1 FROM bids b WHERE b.auction_id = auctions.id \
                 AND b.amount_cents >= auctions.reserve_cents AND b.placed_at_ms <= auctions.ends_at_ms) \
                 THEN 'settled' ELSE 'unsold' END, \
               updated_at_ms = $1 \
             WHERE id IN (SELECT id FROM auctions WHERE status = 'ended' ORDER BY id LIMIT $2",
            $lock,
            ") AND status = 'ended' RETURNING id, status"
        )
    };
}
const PG_SETTLE: &str = settle_sql!(" FOR UPDATE SKIP LOCKED");
const SQLITE_SETTLE: &str = settle_sql!("");
