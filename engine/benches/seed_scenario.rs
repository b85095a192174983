//! The seed's scenario, before and after: what a leaking job does to a PostgreSQL server when
//! the jobs run the seed's way, and when they run under Leasewatch's defaults.
//!
//! `cargo bench -p leasewatch-engine --bench seed_scenario` (about four minutes; needs `initdb`
//! and `pg_ctl` on PATH, and never touches the server on 127.0.0.1:5432). It prints one
//! Markdown table at the end.
//!
//! Both phases run, one after the other, against one scratch cluster with
//! `max_connections = 30`, each in a fresh database owned by a non-superuser role `app`:
//!
//! - **Before** (the seed): one sqlx pool of max 100 / min 20 with sqlx's defaults and nothing
//!   else: no lease tracking, no timeouts of its own (sqlx's 30 s acquire timeout is the only
//!   bound), no retries. The three jobs (comparable SQL
//!   to the real tasks) start on the seed's 5-minute cadence at every tick, whether or not the
//!   last runs finished.
//! - **After**: [`Engine`] with [`PoolSettings::default`], [`TaskIntervals::default`],
//!   [`RetryPolicy::default`] and [`Thresholds::default`].
//!
//! In both, a leaking job on the seed's cadence takes a connection, reads, and keeps it for the
//! rest of the phase (after: the engine's `leaky_report` demo task). It leaks for [`LEAK_FOR`],
//! then it is fixed (before: its schedule stops; after: the operator pauses it) and the phase
//! goes on for [`RECOVER_FOR`] to see whether the server recovers. Every duration of both
//! configurations (the cadences, sqlx's defaults in the seed's pool, the engine's timeouts,
//! intervals, backoff and rule windows) is divided by [`ACCELERATION`], except the latency
//! threshold of the recommendations, which measures rather than schedules.
//!
//! Throughout, a "web app" opens a new connection as `app` every 100 ms (`SELECT 1`, close) —
//! the app's need for a slot — and an observer connected as `postgres` samples
//! `pg_stat_activity` every 250 ms. As a superuser the observer is never locked out; `app`
//! gets a connection only while fewer than `max_connections − superuser_reserved_connections`
//! sessions (the observer's included) are open. Refusals (SQLSTATE 53300, "sorry, too many
//! clients already" or "remaining connection slots are reserved ...") are counted from the
//! server's log, so they include the attempts sqlx's pool makes, and retries, while a task
//! waits for a connection.

use std::{
    collections::BTreeMap,
    error::Error,
    fmt::Write as _,
    io::{Read as _, Seek as _},
    path::Path,
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use chrono::Utc;
use leasewatch_engine::{
    Database, DatabaseUrl, DemoLeak, Engine, EngineConfig, PoolSettings, RetryPolicy,
    TaskIntervals, auctions,
    recommend::Thresholds,
    server_view,
    tasks::{Outcome, TaskState},
};
use leasewatch_testkit::ScratchCluster;
use parking_lot::Mutex;
use sqlx::{
    Any, AnyPool, Connection, Executor, PgConnection, any::AnyPoolOptions, pool::PoolConnection,
    postgres::PgConnectOptions,
};
use tokio::{task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn Error + Send + Sync>;

/// Every duration of the scenario runs this many times faster than in production. At 100× the
/// seed's 5-minute cadence is 3 s, so the leak fills the server within the phase (at 60× it
/// would take over two minutes), and Leasewatch's 30 s lease timeout (on PostgreSQL also each
/// session's `statement_timeout`) is 300 ms, still far above what these statements take.
const ACCELERATION: u32 = 100;

/// The seed's cadence for every job, the leak included.
const SEED_EVERY: Duration = Duration::from_secs(5 * 60);

/// The scratch cluster's `max_connections`.
const MAX_CONNECTIONS: u32 = 30;

/// How long the job leaks. The seed's pool opens 20 connections at once, so the leak must take
/// about 23 before the server is full: about 70 s at 100×.
const LEAK_FOR: Duration = Duration::from_secs(90);

/// How long each phase goes on after the leak is fixed.
const RECOVER_FOR: Duration = Duration::from_secs(30);

/// The web app opens a new connection this often.
const WEB_EVERY: Duration = Duration::from_millis(100);

/// A web request that has not connected and answered by then counts as an error.
const WEB_TIMEOUT: Duration = Duration::from_secs(2);

/// The observer samples `pg_stat_activity` this often.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The role the app side (jobs, engine, web app) connects as.
const APP_ROLE: &str = "app";

/// The web app's `application_name`, so the observer can tell its connections apart.
const WEB_NAME: &str = "web";

/// The seed's pool.
const SEED_MAX: u32 = 100;
const SEED_MIN: u32 = 20;

/// Auctions seeded per phase (as many as the engine's `demo` seeds), so the jobs have rows.
const AUCTIONS: u32 = 12;

/// The three real tasks, as both phases name them.
const REAL_TASKS: [&str; 3] = ["status_transitions", "auction_monitor", "health_check"];

fn fast(d: Duration) -> Duration {
    d / ACCELERATION
}

fn main() {
    let Some(cluster) = ScratchCluster::start(MAX_CONNECTIONS) else {
        return; // no initdb: the testkit said so
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let report = runtime
        .block_on(scenario(&cluster))
        .expect("the scenario ran");
    drop(runtime);
    drop(cluster);
    print!("{report}");
}

/// Both phases on one cluster; returns the table.
async fn scenario(cluster: &ScratchCluster) -> Result<String, BoxError> {
    sqlx::any::install_default_drivers();
    let mut admin = PgConnection::connect(&cluster.url("postgres", "postgres")).await?;
    let (max, reserved): (i32, i32) = sqlx::query_as(
        "SELECT current_setting('max_connections')::int, \
                current_setting('superuser_reserved_connections')::int",
    )
    .fetch_one(&mut admin)
    .await?;
    // A non-superuser gets a connection while fewer than this many sessions are open.
    let limit = i64::from(max - reserved);
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE ROLE {APP_ROLE} LOGIN")))
        .await?;
    for db in ["seed", "leasewatch"] {
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {db} OWNER {APP_ROLE}"
            )))
            .await?;
    }
    let log = cluster.log_path();
    let lab = Lab {
        cluster,
        admin: Mutex::new(Some(admin)),
        limit,
        log: &log,
    };
    let before = lab.before().await?;
    lab.wait_for_no_app_connections().await?;
    let after = lab.after().await?;
    Ok(table(max, reserved, &before, &after))
}

/// The cluster and what every phase needs from it.
struct Lab<'a> {
    cluster: &'a ScratchCluster,
    /// The observer's connection (as `postgres`), handed to each phase's sampler.
    admin: Mutex<Option<PgConnection>>,
    limit: i64,
    log: &'a Path,
}

/// One `pg_stat_activity` sample.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    /// Sessions of the `app` role.
    app: i64,
    /// Of those, the background side's (all but the web app's).
    background: i64,
    /// Client sessions of any role (the observer's included).
    clients: i64,
}

/// How a web request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Web {
    Ok,
    /// SQLSTATE 53300.
    Refused,
    Other(String),
}

/// What one phase measured.
#[derive(Debug, Default)]
struct Phase {
    web: Vec<(Duration, Web)>,
    samples: Vec<Sample>,
    /// Refused connections in the server's log during the phase.
    server_refusals: u64,
    runs_completed: u64,
    runs_failed: u64,
    runs_unfinished: u64,
    /// Acquires of the three tasks that gave up waiting for a connection.
    gave_up: u64,
    /// Connections the leaking job took.
    leaked: u64,
    /// Leases taken back by cleanup.
    reclaimed: u64,
    /// Why runs failed, with counts.
    failures: BTreeMap<String, u64>,
    /// A non-superuser gets a connection while fewer client sessions than this are open.
    limit: i64,
    /// Where the phase starts in the server's log.
    log_from: u64,
}

impl Lab<'_> {
    /// The seed: a plain pool, jobs on every tick, a leak nothing takes back.
    async fn before(&self) -> Result<Phase, BoxError> {
        let url = self.cluster.url(APP_ROLE, "seed");
        prepare(&url).await?;
        // The seed set no timeouts, so sqlx's defaults applied (acquire 30 s, idle 10 min,
        // lifetime 30 min): they run on the scenario's clock like everything else.
        let defaults = AnyPoolOptions::new();
        let pool = AnyPoolOptions::new()
            .max_connections(SEED_MAX)
            .min_connections(SEED_MIN)
            .acquire_timeout(fast(defaults.get_acquire_timeout()))
            .idle_timeout(defaults.get_idle_timeout().map(fast))
            .max_lifetime(defaults.get_max_lifetime().map(fast))
            // Lazy, because an accelerated acquire timeout is too short to open 20 connections
            // up front; the pool opens its minimum in the background and the phase waits for it.
            // The engine's migrations put the tables in the `leasewatch` schema.
            .connect_lazy(&format!(
                "{url}?application_name=seed&options=-c%20search_path%3Dleasewatch"
            ))?;
        for _ in 0..100 {
            if pool.size() >= SEED_MIN {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let watch = self.watch(&url)?;
        let start = watch.start;
        let leaked: Arc<Mutex<Vec<PoolConnection<Any>>>> = Arc::default();
        let mut jobs: JoinSet<Result<(), sqlx::Error>> = JoinSet::new();
        let mut leaks: JoinSet<Result<(), sqlx::Error>> = JoinSet::new();
        let mut ticks = tokio::time::interval(fast(SEED_EVERY));
        let end = start + LEAK_FOR + RECOVER_FOR;
        // Every tick starts every job, however the previous runs are doing (no overlap check).
        while Instant::now() < end {
            tokio::select! {
                _ = ticks.tick() => {}
                () = tokio::time::sleep_until(end) => break,
            }
            for task in REAL_TASKS {
                let pool = pool.clone();
                jobs.spawn(async move { seed_job(task, &pool).await });
            }
            if start.elapsed() < LEAK_FOR {
                let (pool, leaked) = (pool.clone(), Arc::clone(&leaked));
                leaks.spawn(async move { seed_leak(&pool, &leaked).await });
            }
        }

        let mut phase = self.stop_watching(watch).await?;
        // Runs still waiting for a connection at the end are stopped and counted as unfinished.
        jobs.abort_all();
        leaks.abort_all();
        while let Some(joined) = jobs.join_next().await {
            match joined {
                Ok(Ok(())) => phase.runs_completed += 1,
                Ok(Err(err)) => {
                    phase.runs_failed += 1;
                    if matches!(err, sqlx::Error::PoolTimedOut) {
                        phase.gave_up += 1;
                    }
                    *phase.failures.entry(err.to_string()).or_default() += 1;
                }
                Err(_) => phase.runs_unfinished += 1,
            }
        }
        while leaks.join_next().await.is_some() {}
        let leaked = std::mem::take(&mut *leaked.lock());
        phase.leaked = leaked.len() as u64;
        drop(leaked);
        let closing = tokio::time::timeout(Duration::from_secs(10), pool.close());
        if closing.await.is_err() {
            phase.failures.insert("the pool did not close".into(), 1);
        }
        self.finish(phase).await
    }

    /// Leasewatch's engine with its defaults, accelerated, and the same leak.
    async fn after(&self) -> Result<Phase, BoxError> {
        let url = self.cluster.url(APP_ROLE, "leasewatch");
        let pool = PoolSettings::default();
        let intervals = TaskIntervals::default();
        let retry = RetryPolicy::default();
        let thresholds = Thresholds::default();
        let engine = Engine::start(EngineConfig {
            database: DatabaseUrl::parse(&url)?,
            pool: PoolSettings {
                idle_timeout: fast(pool.idle_timeout),
                connect_timeout: fast(pool.connect_timeout),
                lease_timeout: fast(pool.lease_timeout),
                ..pool
            },
            intervals: TaskIntervals {
                status_transitions: fast(intervals.status_transitions),
                auction_monitor: fast(intervals.auction_monitor),
                health_check: fast(intervals.health_check),
                cleanup: fast(intervals.cleanup),
            },
            retry: RetryPolicy {
                base_delay: fast(retry.base_delay),
                max_delay: fast(retry.max_delay),
                ..retry
            },
            demo: true,
            // Only the recommendations read these; `slow_round_trip` is a latency, not a span.
            thresholds: Thresholds {
                waiting_for: fast(thresholds.waiting_for),
                timeout_window: fast(thresholds.timeout_window),
                stale_critical_age: fast(thresholds.stale_critical_age),
                utilization_for: fast(thresholds.utilization_for),
                oversized_for: fast(thresholds.oversized_for),
                hold: fast(thresholds.hold),
                clear: fast(thresholds.clear),
                ..thresholds
            },
            demo_leak: Some(DemoLeak {
                every: fast(SEED_EVERY),
                hold: LEAK_FOR + RECOVER_FOR,
                pile_up: false,
            }),
            ..EngineConfig::new(DatabaseUrl::parse(&url)?)
        })
        .await?;

        let watch = self.watch(&url)?;
        tokio::time::sleep_until(watch.start + LEAK_FOR).await;
        engine.tasks().pause("leaky_report")?;
        tokio::time::sleep_until(watch.start + LEAK_FOR + RECOVER_FOR).await;

        let mut phase = self.stop_watching(watch).await?;
        let snapshot = engine.leases().snapshot();
        phase.reclaimed = snapshot.revoked;
        for counts in &snapshot.per_task {
            if counts.task == "leaky_report" {
                phase.leaked = counts.issued;
            } else {
                phase.gave_up += counts.acquire_timeouts;
            }
        }
        for task in engine.tasks().tasks() {
            if !REAL_TASKS.contains(&task.name.as_str()) {
                continue;
            }
            phase.runs_completed += task.counts.succeeded + task.counts.elsewhere_skips;
            phase.runs_failed += task.counts.failed;
            phase.runs_unfinished += u64::from(task.state != TaskState::Idle);
            for run in &task.history {
                if let Outcome::Failed { error, .. } = &run.outcome {
                    *phase.failures.entry(error.clone()).or_default() += 1;
                }
            }
        }
        engine.shutdown().await;
        self.finish(phase).await
    }

    /// Starts the web load and the sampler for one phase; the phase's clock starts now.
    fn watch(&self, url: &str) -> Result<Watch, BoxError> {
        let admin = self
            .admin
            .lock()
            .take()
            .ok_or("the observer's connection is in use")?;
        let web = PgConnectOptions::from_str(url)?.application_name(WEB_NAME);
        let start = Instant::now();
        let stop = CancellationToken::new();
        Ok(Watch {
            start,
            log_from: log_len(self.log)?,
            web: tokio::spawn(web_load(web, start)),
            sampler: tokio::spawn(sample(admin, start, stop.clone())),
            stop,
        })
    }

    /// Ends the phase's observation: waits for the last web requests and stops the sampler,
    /// before anything of the app side is torn down.
    async fn stop_watching(&self, watch: Watch) -> Result<Phase, BoxError> {
        let web = watch.web.await?;
        watch.stop.cancel();
        let (admin, samples) = watch.sampler.await??;
        *self.admin.lock() = Some(admin);
        Ok(Phase {
            web,
            samples,
            log_from: watch.log_from,
            limit: self.limit,
            ..Phase::default()
        })
    }

    /// After the app side is torn down: the refusals the server logged during the phase.
    async fn finish(&self, mut phase: Phase) -> Result<Phase, BoxError> {
        // The server writes its log as it goes; give the last lines a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        phase.server_refusals = refusals_in_log(self.log, phase.log_from)?;
        Ok(phase)
    }

    /// Waits (up to 15 s) until the previous phase's sessions are gone.
    async fn wait_for_no_app_connections(&self) -> Result<(), BoxError> {
        let mut taken = self.admin.lock().take();
        let admin = taken
            .as_mut()
            .ok_or("the observer's connection is in use")?;
        for _ in 0..60 {
            let (app,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM pg_stat_activity WHERE usename = $1")
                    .bind(APP_ROLE)
                    .fetch_one(&mut *admin)
                    .await?;
            if app == 0 {
                break;
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
        *self.admin.lock() = taken;
        Ok(())
    }
}

/// A phase's web load and sampler, running.
struct Watch {
    start: Instant,
    log_from: u64,
    web: tokio::task::JoinHandle<Vec<(Duration, Web)>>,
    sampler: tokio::task::JoinHandle<Result<(PgConnection, Vec<Sample>), sqlx::Error>>,
    stop: CancellationToken,
}

/// The schema (the engine's migrations) and the demo auctions, through a one-connection pool
/// that is closed before the phase starts.
async fn prepare(url: &str) -> Result<(), BoxError> {
    let db = Database::connect(
        &DatabaseUrl::parse(url)?,
        &PoolSettings {
            max_connections: 1,
            min_connections: 0,
            application_name: "setup".into(),
            ..PoolSettings::default()
        },
    )
    .await?;
    db.migrate().await?;
    auctions::seed_demo(db.pool(), Utc::now().timestamp_millis(), AUCTIONS).await?;
    db.close().await;
    Ok(())
}

/// One run of one of the seed's jobs: the real task's statements, on the shared pool, with no
/// lock, no timeout and no retry.
async fn seed_job(task: &str, pool: &AnyPool) -> Result<(), sqlx::Error> {
    let now = Utc::now().timestamp_millis();
    match task {
        "status_transitions" => {
            let mut tx = pool.begin().await?;
            for (from, to, sql) in [
                (
                    "scheduled",
                    "active",
                    "UPDATE auctions SET status = 'active', updated_at_ms = $1 \
                     WHERE status = 'scheduled' AND starts_at_ms <= $1 RETURNING id",
                ),
                (
                    "active",
                    "ended",
                    "UPDATE auctions SET status = 'ended', updated_at_ms = $1 \
                     WHERE status = 'active' AND ends_at_ms <= $1 RETURNING id",
                ),
            ] {
                let ids: Vec<i64> = sqlx::query_scalar(sql)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                for id in ids {
                    record_event(&mut tx, id, from, to, now).await?;
                }
            }
            auctions::status_counts(&mut *tx).await?;
            tx.commit().await
        }
        "auction_monitor" => {
            let mut tx = pool.begin().await?;
            let settled: Vec<(i64, String)> = sqlx::query_as(
                "UPDATE auctions SET \
                   winning_bid_id = (SELECT b.id FROM bids b WHERE b.auction_id = auctions.id \
                     AND b.amount_cents >= auctions.reserve_cents \
                     AND b.placed_at_ms <= auctions.ends_at_ms \
                     ORDER BY b.amount_cents DESC, b.placed_at_ms, b.id LIMIT 1), \
                   status = CASE WHEN EXISTS (SELECT 1 FROM bids b \
                     WHERE b.auction_id = auctions.id AND b.amount_cents >= auctions.reserve_cents \
                     AND b.placed_at_ms <= auctions.ends_at_ms) THEN 'settled' ELSE 'unsold' END, \
                   updated_at_ms = $1 \
                 WHERE status = 'ended' RETURNING id, status",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            for (id, status) in settled {
                record_event(&mut tx, id, "ended", &status, now).await?;
            }
            sqlx::query(
                "SELECT COUNT(*) FROM auctions WHERE status = 'active' AND ends_at_ms < $1",
            )
            .bind(now - 60_000)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "SELECT COUNT(*) FROM bids b JOIN auctions a ON a.id = b.auction_id \
                 WHERE b.placed_at_ms > a.ends_at_ms",
            )
            .fetch_one(&mut *tx)
            .await?;
            auctions::status_counts(&mut *tx).await?;
            tx.commit().await
        }
        _ => {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            server_view::read_postgres(&mut conn).await.map(drop)
        }
    }
}

async fn record_event(
    tx: &mut sqlx::Transaction<'_, Any>,
    auction: i64,
    from: &str,
    to: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO auction_events (auction_id, from_status, to_status, at_ms, instance) \
         VALUES ($1, $2, $3, $4, 'seed')",
    )
    .bind(auction)
    .bind(from.to_owned())
    .bind(to.to_owned())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// The seed's leak: what `leaky_report` does, with nothing to take the connection back.
async fn seed_leak(
    pool: &AnyPool,
    leaked: &Mutex<Vec<PoolConnection<Any>>>,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT COUNT(*) FROM auctions")
        .fetch_one(&mut *conn)
        .await?;
    leaked.lock().push(conn);
    Ok(())
}

/// A new connection every [`WEB_EVERY`] for the whole phase, each bounded by [`WEB_TIMEOUT`].
async fn web_load(options: PgConnectOptions, start: Instant) -> Vec<(Duration, Web)> {
    let total = u32::try_from((LEAK_FOR + RECOVER_FOR).as_millis() / WEB_EVERY.as_millis())
        .unwrap_or(u32::MAX);
    let mut ticks = tokio::time::interval(WEB_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut requests = JoinSet::new();
    for _ in 0..total {
        ticks.tick().await;
        let options = options.clone();
        requests.spawn(async move {
            let outcome = match tokio::time::timeout(WEB_TIMEOUT, web_request(&options)).await {
                Ok(Ok(())) => Web::Ok,
                Ok(Err(sqlx::Error::Database(err))) if err.code().as_deref() == Some("53300") => {
                    Web::Refused
                }
                Ok(Err(err)) => Web::Other(err.to_string()),
                Err(_) => Web::Other("timed out".into()),
            };
            (start.elapsed(), outcome)
        });
    }
    let mut done = requests.join_all().await;
    done.sort_by_key(|(at, _)| *at);
    done
}

async fn web_request(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect_with(options).await?;
    sqlx::query("SELECT 1").execute(&mut conn).await?;
    conn.close().await
}

/// Samples `pg_stat_activity` every [`SAMPLE_EVERY`] until stopped (or the phase is long over).
async fn sample(
    mut admin: PgConnection,
    start: Instant,
    stop: CancellationToken,
) -> Result<(PgConnection, Vec<Sample>), sqlx::Error> {
    let most =
        (LEAK_FOR + RECOVER_FOR + Duration::from_secs(60)).as_millis() / SAMPLE_EVERY.as_millis();
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    let mut samples = Vec::new();
    for _ in 0..most {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let (app, background, clients): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE usename = $1), \
                    COUNT(*) FILTER (WHERE usename = $1 AND application_name <> $2), \
                    COUNT(*) \
             FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        .bind(APP_ROLE)
        .bind(WEB_NAME)
        .fetch_one(&mut admin)
        .await?;
        samples.push(Sample {
            at: start.elapsed(),
            app,
            background,
            clients,
        });
    }
    Ok((admin, samples))
}

fn log_len(log: &Path) -> Result<u64, BoxError> {
    Ok(std::fs::metadata(log)?.len())
}

/// Connections the server refused for want of a slot (SQLSTATE 53300) since byte `from`.
fn refusals_in_log(log: &Path, from: u64) -> Result<u64, BoxError> {
    let mut file = std::fs::File::open(log)?;
    file.seek(std::io::SeekFrom::Start(from))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter(|line| {
            line.contains("FATAL:")
                && (line.contains("too many clients already")
                    || line.contains("remaining connection slots are reserved"))
        })
        .count() as u64)
}

/// When the phase recovered after the leak stopped.
enum Recovery {
    /// The web app was never refused.
    NeverDegraded,
    /// Web connections succeeded again, and a slot was free, this long after the leak stopped.
    After(Duration),
    /// Still refused, or still full, at the end.
    NotWithin,
}

impl Phase {
    fn count(&self, kind: &Web) -> usize {
        self.web
            .iter()
            .filter(|(_, w)| std::mem::discriminant(w) == std::mem::discriminant(kind))
            .count()
    }

    fn first_refusal(&self) -> Option<Duration> {
        self.web
            .iter()
            .find(|(_, w)| *w == Web::Refused)
            .map(|(at, _)| *at)
    }

    /// Recovered = from some moment on, no web request is refused and every sample shows a free
    /// slot for the app; measured from the moment the leak stopped.
    fn recovery(&self) -> Recovery {
        if self.first_refusal().is_none() {
            return Recovery::NeverDegraded;
        }
        let full = |s: &Sample| s.clients >= self.limit;
        let end = LEAK_FOR + RECOVER_FOR;
        let last_bad = self
            .web
            .iter()
            .filter(|(at, w)| (LEAK_FOR..end).contains(at) && *w == Web::Refused)
            .map(|(at, _)| *at)
            .chain(
                self.samples
                    .iter()
                    .filter(|s| (LEAK_FOR..end).contains(&s.at) && full(s))
                    .map(|s| s.at),
            )
            .max()
            .unwrap_or(LEAK_FOR);
        let web_ok = self
            .web
            .iter()
            .find(|(at, w)| *at >= last_bad && *at < end && *w == Web::Ok)
            .map(|(at, _)| *at);
        let slot_free = self
            .samples
            .iter()
            .find(|s| s.at >= last_bad && s.at < end && !full(s))
            .map(|s| s.at);
        match (web_ok, slot_free) {
            (Some(a), Some(b)) => Recovery::After(a.max(b).saturating_sub(LEAK_FOR)),
            _ => Recovery::NotWithin,
        }
    }

    fn peak(&self, of: impl Fn(&Sample) -> i64) -> i64 {
        self.samples.iter().map(of).max().unwrap_or(0)
    }
}

/// The results, as a Markdown table with notes.
fn table(max: i32, reserved: i32, before: &Phase, after: &Phase) -> String {
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let recovery = |p: &Phase| match p.recovery() {
        Recovery::NeverDegraded => "never degraded".to_owned(),
        Recovery::After(d) => secs(d),
        Recovery::NotWithin => format!("did not recover within {}", secs(RECOVER_FOR)),
    };
    let row = |name: &str, f: &dyn Fn(&Phase) -> String| {
        format!("| {name} | {} | {} |\n", f(before), f(after))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nThe seed's scenario at {ACCELERATION}x: max_connections {max} ({reserved} reserved for \
         superusers), leak every {} for {}, then {} to recover.\n",
        secs(fast(SEED_EVERY)),
        secs(LEAK_FOR),
        secs(RECOVER_FOR),
    );
    out.push_str("| | before (the seed) | after (Leasewatch defaults) |\n| --- | --- | --- |\n");
    out.push_str(&row(
        "refused connections, SQLSTATE 53300 (server log)",
        &|p| p.server_refusals.to_string(),
    ));
    out.push_str(&row("… of the web app", &|p| {
        p.count(&Web::Refused).to_string()
    }));
    out.push_str(&row("… of the tasks' pools", &|p| {
        p.server_refusals
            .saturating_sub(p.count(&Web::Refused) as u64)
            .to_string()
    }));
    out.push_str(&row("web requests ok / refused / other errors", &|p| {
        format!(
            "{} / {} / {}",
            p.count(&Web::Ok),
            p.count(&Web::Refused),
            p.count(&Web::Other(String::new()))
        )
    }));
    out.push_str(&row("web app first refused at", &|p| {
        p.first_refusal().map_or_else(|| "—".to_owned(), secs)
    }));
    out.push_str(&row(
        "task runs completed / failed / unfinished at the end",
        &|p| {
            format!(
                "{} / {} / {}",
                p.runs_completed, p.runs_failed, p.runs_unfinished
            )
        },
    ));
    out.push_str(&row("task acquires that gave up waiting", &|p| {
        p.gave_up.to_string()
    }));
    out.push_str(&row("connections the leak took / leases reclaimed", &|p| {
        format!("{} / {}", p.leaked, p.reclaimed)
    }));
    out.push_str(&row("peak app connections (all / background)", &|p| {
        format!("{} / {}", p.peak(|s| s.app), p.peak(|s| s.background))
    }));
    out.push_str(&row("time to recover after the leak stopped", &recovery));
    for (name, phase) in [("before", before), ("after", after)] {
        for (reason, n) in &phase.failures {
            let _ = writeln!(out, "\n{name}: {n} × {reason}");
        }
        let mut others: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, web) in &phase.web {
            if let Web::Other(reason) = web {
                *others.entry(reason).or_default() += 1;
            }
        }
        for (reason, n) in others {
            let _ = writeln!(out, "\n{name}: web: {n} × {reason}");
        }
    }
    out
}
