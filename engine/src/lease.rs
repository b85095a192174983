//! The connection lease manager: every connection a background task holds is a tracked lease.
//!
//! sqlx only tells `size()` and `num_idle()`, so the manager wraps `acquire()` and the guard's
//! `Drop` itself: it counts waiters, times acquires, registers each lease (task, run, since
//! when, PostgreSQL backend pid) and releases it when the guard drops — on success, error,
//! panic or cancellation alike. A lease older than the lease timeout is stale; cleanup revokes
//! stale leases (their run stops, their backend is terminated) and emergency cleanup revokes
//! them all and shrinks the pool to its minimum. Reading the state never touches the database.

use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    ops::{Deref, DerefMut},
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyConnection, pool::PoolConnection};
use tokio_util::sync::CancellationToken;

use crate::{
    db::{Backend, Database},
    failure::FailureKind,
    histogram::{Histogram, HistogramReading},
    server_view::{self, ServerView},
};

/// A boxed future borrowing the connection, as [`Lease::run`] takes it.
pub type ConnFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// Why a lease could not be had or kept.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LeaseError {
    /// No connection within `DB_CONNECTION_TIMEOUT`; says how full the pool was.
    #[error(
        "{task}: no connection within {} ms (pool size {size} of max {max}, {waiting} waiting)",
        waited.as_millis()
    )]
    AcquireTimeout {
        /// The task that asked.
        task: String,
        /// How long it waited.
        waited: Duration,
        /// Open connections when it gave up.
        size: u32,
        /// The pool's maximum.
        max: u32,
        /// Acquires waiting when it gave up, itself included.
        waiting: u32,
    },
    /// Cleanup took the lease back; the run must stop.
    #[error("{task}: lease revoked ({reason})")]
    Revoked {
        /// The task whose run was revoked.
        task: String,
        /// Why (stale, emergency cleanup, ...).
        reason: String,
    },
    /// The work on the connection outlived the lease timeout.
    #[error("{task}: work exceeded the {} s lease timeout", timeout.as_secs_f64())]
    TimedOut {
        /// The task.
        task: String,
        /// The lease timeout.
        timeout: Duration,
    },
    /// The pool failed to open a connection for a reason waiting cannot fix.
    #[error("{task}: cannot open a database connection: {reason}")]
    Connect {
        /// The task.
        task: String,
        /// The driver's message.
        reason: String,
    },
    /// PostgreSQL refused a new connection for want of a free slot (SQLSTATE 53300).
    #[error("{task}: the database refuses new connections, every slot is taken: {reason}")]
    SlotsExhausted {
        /// The task.
        task: String,
        /// The driver's message.
        reason: String,
    },
    /// The pool was closed (the server is shutting down).
    #[error("the connection pool is closed")]
    Closed,
}

impl LeaseError {
    /// Whether trying again later may succeed (all but a closed pool).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Closed)
    }

    /// What kind of failure this is, by variant.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::AcquireTimeout { .. } => FailureKind::AcquireTimeout,
            Self::Revoked { .. } => FailureKind::Revoked,
            Self::TimedOut { .. } => FailureKind::TimedOut,
            Self::Connect { .. } => FailureKind::Unreachable,
            Self::SlotsExhausted { .. } => FailureKind::SlotsExhausted,
            Self::Closed => FailureKind::Closed,
        }
    }

    /// `task` could not open a connection: a slot refusal when the driver's SQLSTATE says so,
    /// otherwise an unreachable database.
    fn connect(task: &str, err: &sqlx::Error) -> Self {
        let (task, reason) = (task.to_owned(), err.to_string());
        match FailureKind::of_sqlx(err) {
            FailureKind::SlotsExhausted => Self::SlotsExhausted { task, reason },
            _ => Self::Connect { task, reason },
        }
    }
}

/// One run of one task: the unit that holds leases and that revocation stops.
#[derive(Debug, Clone)]
pub struct RunContext {
    inner: Arc<RunInner>,
}

#[derive(Debug)]
struct RunInner {
    task: String,
    run_id: u64,
    cancel: CancellationToken,
    reason: OnceLock<String>,
}

impl RunContext {
    /// A new run of `task`.
    pub fn new(task: impl Into<String>, run_id: u64) -> Self {
        Self {
            inner: Arc::new(RunInner {
                task: task.into(),
                run_id,
                cancel: CancellationToken::new(),
                reason: OnceLock::new(),
            }),
        }
    }

    /// The task's name.
    pub fn task(&self) -> &str {
        &self.inner.task
    }

    /// The run's number.
    pub fn run_id(&self) -> u64 {
        self.inner.run_id
    }

    /// Stops the run: [`RunContext::scope`] and [`Lease::run`] return
    /// [`LeaseError::Revoked`] at once. The first reason given is kept.
    pub fn revoke(&self, reason: impl Into<String>) {
        let _ = self.inner.reason.set(reason.into());
        self.inner.cancel.cancel();
    }

    /// The revocation as an error, if the run was revoked.
    pub fn revoked(&self) -> Option<LeaseError> {
        self.inner
            .cancel
            .is_cancelled()
            .then(|| LeaseError::Revoked {
                task: self.inner.task.clone(),
                reason: self
                    .inner
                    .reason
                    .get()
                    .cloned()
                    .unwrap_or_else(|| "revoked".to_owned()),
            })
    }

    /// Runs `work` until it finishes or the run is revoked; on revocation `work` is dropped
    /// (with every lease it holds) and the revocation is returned.
    pub async fn scope<T, E: From<LeaseError>>(
        &self,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        tokio::select! {
            biased;
            () = self.inner.cancel.cancelled() => Err(self.revocation_error().into()),
            result = work => result,
        }
    }

    fn revocation_error(&self) -> LeaseError {
        self.revoked().unwrap_or_else(|| LeaseError::Revoked {
            task: self.inner.task.clone(),
            reason: "revoked".to_owned(),
        })
    }
}

/// A lease as the dashboard and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LeaseInfo {
    /// The lease's number, unique in this process.
    pub id: u64,
    /// The task holding it.
    pub task: String,
    /// The run holding it.
    pub run_id: u64,
    /// When it was acquired.
    pub acquired_at: DateTime<Utc>,
    /// The PostgreSQL backend serving it; `None` on SQLite.
    pub backend_pid: Option<i32>,
    /// How long it has been held, in milliseconds, when this was read.
    pub held_ms: u64,
    /// Held longer than the lease timeout.
    pub stale: bool,
}

/// Lease counts for one task, since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskLeaseCounts {
    /// The task.
    pub task: String,
    /// Leases it holds now.
    pub held: u32,
    /// Leases it was given.
    pub issued: u64,
    /// Leases it gave back.
    pub released: u64,
    /// Leases cleanup took back.
    pub revoked: u64,
    /// Acquires that gave up after `DB_CONNECTION_TIMEOUT`.
    pub acquire_timeouts: u64,
}

/// Latency quantiles in milliseconds; `None` before the first observation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Quantiles {
    /// Median.
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
}

impl Quantiles {
    fn of(reading: &HistogramReading) -> Self {
        let ms = |q| reading.quantile(q).map(|d| d.as_secs_f64() * 1000.0);
        Self {
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
        }
    }
}

/// The pool and its leases at one instant. Point-in-time values read one after another:
/// idle + active may briefly disagree with total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolSnapshot {
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Open connections.
    pub total: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Connections in use (total − idle).
    pub active: u32,
    /// Acquires waiting for a connection.
    pub waiting: u32,
    /// Leases held by background tasks.
    pub leases: u32,
    /// Leases held longer than the lease timeout.
    pub stale: u32,
    /// The pool's maximum.
    pub max: u32,
    /// The pool's minimum.
    pub min: u32,
    /// active / max, from 0 to 1.
    pub utilization: f64,
    /// Acquire latency since start.
    pub acquire_latency: Quantiles,
    /// Acquires that gave up after `DB_CONNECTION_TIMEOUT`, since start.
    pub acquire_timeouts: u64,
    /// Leases given out, since start.
    pub issued: u64,
    /// Leases given back, since start.
    pub released: u64,
    /// Leases taken back by cleanup, since start.
    pub revoked: u64,
    /// 95th percentile of how long leases were held, in milliseconds.
    pub hold_p95_ms: Option<f64>,
    /// Per task, by name.
    pub per_task: Vec<TaskLeaseCounts>,
    /// On history samples only: acquire latency p95 over the interval since the previous
    /// sample, in milliseconds (what a latency chart plots).
    pub window_p95_ms: Option<f64>,
}

/// Which cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CleanupKind {
    /// Revoke stale leases only.
    Stale,
    /// Revoke every background lease and shrink the pool to its minimum.
    Emergency,
}

/// What a cleanup did, or with `dry_run`, what it would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CleanupReport {
    /// Which cleanup.
    pub kind: CleanupKind,
    /// Nothing was changed: this is the plan.
    pub dry_run: bool,
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Leases revoked (or to revoke).
    pub revoked: Vec<LeaseInfo>,
    /// PostgreSQL backends of the revoked leases ended (or, in a dry run, to end).
    pub terminated: Vec<i32>,
    /// Backends that were no longer there to end: closed by the revocation or by the server
    /// (a pid since reused by another session counts here too, and that session is left
    /// alone).
    #[serde(default)]
    pub already_gone: Vec<i32>,
    /// Backends that could not be terminated, with the reason.
    pub termination_failures: Vec<(i32, String)>,
    /// Idle connections closed (or to close) to bring the pool down to its minimum.
    pub closed_idle: u32,
    /// Open connections before.
    pub pool_size_before: u32,
    /// Tasks whose retry series was reset (or would be) by an emergency cleanup.
    pub retries_reset: Vec<String>,
    /// Things an operator should know (e.g. that SQLite has no backends to terminate).
    pub notes: Vec<String>,
}

impl CleanupReport {
    /// One line for logs and the dashboard: "revoked 3 leases held by auction_monitor, ...".
    pub fn summary(&self) -> String {
        let verb = |done: &str, planned: &str| {
            if self.dry_run {
                planned.to_owned()
            } else {
                done.to_owned()
            }
        };
        let mut tasks: Vec<&str> = self.revoked.iter().map(|l| l.task.as_str()).collect();
        tasks.sort_unstable();
        tasks.dedup();
        let mut parts = vec![format!(
            "{} {} lease{}{}",
            verb("revoked", "would revoke"),
            self.revoked.len(),
            if self.revoked.len() == 1 { "" } else { "s" },
            if tasks.is_empty() {
                String::new()
            } else {
                format!(" held by {}", tasks.join(", "))
            }
        )];
        if !self.terminated.is_empty() {
            parts.push(format!(
                "{} {} backend{}",
                verb("terminated", "would terminate"),
                self.terminated.len(),
                if self.terminated.len() == 1 { "" } else { "s" }
            ));
        }
        if !self.already_gone.is_empty() {
            parts.push(format!(
                "{} backend{} already gone",
                self.already_gone.len(),
                if self.already_gone.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ));
        }
        if !self.termination_failures.is_empty() {
            parts.push(format!(
                "{} backend{} could not be terminated",
                self.termination_failures.len(),
                if self.termination_failures.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ));
        }
        if self.kind == CleanupKind::Emergency {
            parts.push(format!(
                "{} {} idle connection{}",
                verb("closed", "would close"),
                self.closed_idle,
                if self.closed_idle == 1 { "" } else { "s" }
            ));
        }
        if !self.retries_reset.is_empty() {
            parts.push(format!(
                "{} the retries of {}",
                verb("reset", "would reset"),
                self.retries_reset.join(", ")
            ));
        }
        parts.join(", ")
    }
}

/// How many snapshots the history keeps: one hour at one every 5 s.
pub const HISTORY_LEN: usize = 720;

/// Tracks, bounds and reclaims the connections background tasks hold. Cheap to clone.
#[derive(Clone)]
pub struct LeaseManager {
    shared: Arc<Shared>,
}

struct Shared {
    db: Database,
    lease_timeout: Duration,
    acquire_timeout: Duration,
    next_id: AtomicU64,
    waiting: AtomicU32,
    issued: AtomicU64,
    released: AtomicU64,
    revoked: AtomicU64,
    acquire_timeouts: AtomicU64,
    acquire_latency: Histogram,
    hold_time: Histogram,
    leases: Mutex<BTreeMap<u64, Held>>,
    per_task: Mutex<BTreeMap<String, TaskLeaseCounts>>,
    server_view: RwLock<ServerView>,
    history: Mutex<VecDeque<PoolSnapshot>>,
    /// The latency histogram as of the last history sample.
    previous_latency: Mutex<HistogramReading>,
}

struct Held {
    task: String,
    run_id: u64,
    acquired: Instant,
    acquired_at: DateTime<Utc>,
    backend: Option<BackendIdentity>,
    run: RunContext,
}

/// Which PostgreSQL backend serves a lease: its pid and when it started. A pid alone is not an
/// identity — once a backend ends (`idle_in_transaction_session_timeout` equals the lease
/// timeout, so a stale lease's backend may be gone) the operating system can give its pid to
/// any other session — but pid and start time together name one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendIdentity {
    /// The backend's process id.
    pub pid: i32,
    /// `pg_stat_activity.backend_start`, in microseconds since the Unix epoch.
    pub started_us: i64,
}

/// Learns the connection's backend in the same round trip as the liveness check. The function
/// form of `pg_stat_activity` with the session's own pid reads one entry; the view would read
/// every backend's (a tenth of a millisecond more per acquire where this costs about 20 µs).
const BACKEND_IDENTITY_SQL: &str = "SELECT pg_backend_pid(), \
     (SELECT (EXTRACT(EPOCH FROM backend_start) * 1000000)::int8 \
      FROM pg_stat_get_activity(pg_backend_pid()))";

/// Ends a backend only if it is still the one a lease recorded: same pid, same start, and
/// this instance's task `application_name`. No row: the backend is gone (or the pid now
/// belongs to another session, which is left alone).
const TERMINATE_SQL: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
     WHERE pid = $1 AND (EXTRACT(EPOCH FROM backend_start) * 1000000)::int8 = $2 \
     AND application_name = $3";

impl Held {
    fn info(&self, id: u64, now: Instant, lease_timeout: Duration) -> LeaseInfo {
        let held = now.saturating_duration_since(self.acquired);
        LeaseInfo {
            id,
            task: self.task.clone(),
            run_id: self.run_id,
            acquired_at: self.acquired_at,
            backend_pid: self.backend.map(|b| b.pid),
            held_ms: u64::try_from(held.as_millis()).unwrap_or(u64::MAX),
            stale: held > lease_timeout,
        }
    }
}

/// Counts an acquire as waiting for as long as it lives, even if the acquire is cancelled.
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicU32) -> Self {
        counter.fetch_add(1, Relaxed);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl LeaseManager {
    /// A manager over `db`'s pool. `lease_timeout` makes a lease stale and bounds
    /// [`Lease::run`]; `acquire_timeout` bounds each wait for a connection.
    pub fn new(db: Database, lease_timeout: Duration, acquire_timeout: Duration) -> Self {
        let server_view = match db.backend() {
            Backend::Postgres => ServerView::Unknown,
            Backend::Sqlite => ServerView::sqlite(),
        };
        Self {
            shared: Arc::new(Shared {
                db,
                lease_timeout,
                acquire_timeout,
                next_id: AtomicU64::new(1),
                waiting: AtomicU32::new(0),
                issued: AtomicU64::new(0),
                released: AtomicU64::new(0),
                revoked: AtomicU64::new(0),
                acquire_timeouts: AtomicU64::new(0),
                acquire_latency: Histogram::default(),
                hold_time: Histogram::default(),
                leases: Mutex::new(BTreeMap::new()),
                per_task: Mutex::new(BTreeMap::new()),
                server_view: RwLock::new(server_view),
                history: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
                previous_latency: Mutex::new(HistogramReading::default()),
            }),
        }
    }

    /// The database behind the pool.
    pub fn database(&self) -> &Database {
        &self.shared.db
    }

    /// The lease timeout.
    pub fn lease_timeout(&self) -> Duration {
        self.shared.lease_timeout
    }

    /// Takes a connection for `run`, waiting at most the acquire timeout.
    ///
    /// On PostgreSQL the manager's liveness check before handing a connection out is the query
    /// that learns the backend's identity, pid and start time (the pool's own ping is off), so
    /// learning it costs no extra round trip.
    pub async fn acquire(&self, run: &RunContext) -> Result<Lease, LeaseError> {
        if let Some(revoked) = run.revoked() {
            return Err(revoked);
        }
        let shared = &self.shared;
        let started = Instant::now();
        let deadline = started + shared.acquire_timeout;
        let waiting = Waiting::enter(&shared.waiting);
        let (conn, backend) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.checked_connection()).await {
                Ok(Ok(found)) => break found,
                Ok(Err(Checkout::Broken)) => continue,
                Ok(Err(Checkout::Pool(sqlx::Error::PoolClosed))) => return Err(LeaseError::Closed),
                Ok(Err(Checkout::Pool(sqlx::Error::PoolTimedOut))) | Err(_) => {
                    let err = LeaseError::AcquireTimeout {
                        task: run.task().to_owned(),
                        waited: started.elapsed(),
                        size: shared.db.pool().size(),
                        max: shared.db.pool_status().max,
                        waiting: shared.waiting.load(Relaxed),
                    };
                    drop(waiting);
                    shared.acquire_timeouts.fetch_add(1, Relaxed);
                    self.count(run.task(), |c| c.acquire_timeouts += 1);
                    return Err(err);
                }
                Ok(Err(Checkout::Pool(err))) => return Err(LeaseError::connect(run.task(), &err)),
            }
        };
        drop(waiting);
        shared.acquire_latency.record(started.elapsed());

        let id = shared.next_id.fetch_add(1, Relaxed);
        let acquired = Instant::now();
        shared.leases.lock().insert(
            id,
            Held {
                task: run.task().to_owned(),
                run_id: run.run_id(),
                acquired,
                acquired_at: Utc::now(),
                backend,
                run: run.clone(),
            },
        );
        shared.issued.fetch_add(1, Relaxed);
        self.count(run.task(), |c| c.issued += 1);
        Ok(Lease {
            conn,
            id,
            backend,
            run: run.clone(),
            acquired,
            shared: Arc::clone(shared),
            dirty: false,
        })
    }

    /// One pooled connection that answered its liveness check.
    async fn checked_connection(
        &self,
    ) -> Result<(PoolConnection<Any>, Option<BackendIdentity>), Checkout> {
        let mut conn = self
            .shared
            .db
            .pool()
            .acquire()
            .await
            .map_err(Checkout::Pool)?;
        match self.shared.db.backend() {
            Backend::Sqlite => Ok((conn, None)),
            Backend::Postgres => {
                match sqlx::query_as::<_, (i32, Option<i64>)>(BACKEND_IDENTITY_SQL)
                    .fetch_one(&mut *conn)
                    .await
                {
                    // The session's own entry is always there; without it the backend cannot
                    // be told apart from a later one with its pid, so it is never ended.
                    Ok((pid, started_us)) => Ok((
                        conn,
                        started_us.map(|started_us| BackendIdentity { pid, started_us }),
                    )),
                    Err(err) => {
                        tracing::debug!(%err, "pooled connection failed its check; closing it");
                        conn.close_on_drop();
                        Err(Checkout::Broken)
                    }
                }
            }
        }
    }

    fn count(&self, task: &str, update: impl FnOnce(&mut TaskLeaseCounts)) {
        count_task(&self.shared, task, update);
    }

    /// The leases held now, oldest first.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let now = Instant::now();
        let timeout = self.shared.lease_timeout;
        self.shared
            .leases
            .lock()
            .iter()
            .map(|(id, held)| held.info(*id, now, timeout))
            .collect()
    }

    /// The pool and its leases now. No database access; a few microseconds.
    pub fn snapshot(&self) -> PoolSnapshot {
        let shared = &self.shared;
        let pool = shared.db.pool_status();
        let now = Instant::now();
        let (leases, stale, per_task) = {
            let held = shared.leases.lock();
            let stale = held
                .values()
                .filter(|h| now.saturating_duration_since(h.acquired) > shared.lease_timeout)
                .count();
            let mut per_task = shared.per_task.lock().clone();
            for h in held.values() {
                if let Some(counts) = per_task.get_mut(&h.task) {
                    counts.held += 1;
                }
            }
            (held.len(), stale, per_task)
        };
        let active = pool.size.saturating_sub(pool.idle);
        PoolSnapshot {
            taken_at: Utc::now(),
            total: pool.size,
            idle: pool.idle,
            active,
            waiting: shared.waiting.load(Relaxed),
            leases: u32::try_from(leases).unwrap_or(u32::MAX),
            stale: u32::try_from(stale).unwrap_or(u32::MAX),
            max: pool.max,
            min: pool.min,
            utilization: if pool.max == 0 {
                0.0
            } else {
                f64::from(active) / f64::from(pool.max)
            },
            acquire_latency: Quantiles::of(&shared.acquire_latency.read()),
            acquire_timeouts: shared.acquire_timeouts.load(Relaxed),
            issued: shared.issued.load(Relaxed),
            released: shared.released.load(Relaxed),
            revoked: shared.revoked.load(Relaxed),
            hold_p95_ms: shared
                .hold_time
                .read()
                .quantile(0.95)
                .map(|d| d.as_secs_f64() * 1000.0),
            per_task: per_task.into_values().collect(),
            window_p95_ms: None,
        }
    }

    /// Acquire latency histogram since start (for Prometheus).
    pub fn acquire_latency(&self) -> HistogramReading {
        self.shared.acquire_latency.read()
    }

    /// Appends a snapshot to the history ring (oldest dropped past [`HISTORY_LEN`]).
    pub fn record_history(&self) {
        let mut snapshot = self.snapshot();
        let reading = self.shared.acquire_latency.read();
        {
            let mut previous = self.shared.previous_latency.lock();
            snapshot.window_p95_ms = reading
                .since(&previous)
                .quantile(0.95)
                .map(|d| d.as_secs_f64() * 1000.0);
            *previous = reading;
        }
        let mut history = self.shared.history.lock();
        if history.len() == HISTORY_LEN {
            history.pop_front();
        }
        history.push_back(snapshot);
    }

    /// The recorded snapshots, oldest first.
    pub fn history(&self) -> Vec<PoolSnapshot> {
        self.shared.history.lock().iter().cloned().collect()
    }

    /// The last server-wide view the health check read.
    pub fn server_view(&self) -> ServerView {
        self.shared.server_view.read().clone()
    }

    /// Reads the server-wide view through a lease of `run` and keeps it (PostgreSQL); on SQLite
    /// it says that it does not apply.
    pub async fn refresh_server_view(&self, run: &RunContext) -> Result<ServerView, LeaseError> {
        if self.database().backend() == Backend::Sqlite {
            return Ok(self.server_view());
        }
        let mut lease = self.acquire(run).await?;
        let task = run.task().to_owned();
        let view = lease
            .run(|conn| {
                Box::pin(async move {
                    server_view::read_postgres(conn)
                        .await
                        .map_err(|err| LeaseError::connect(&task, &err))
                })
            })
            .await?;
        let view = ServerView::Postgres(view);
        self.store_server_view(view.clone());
        Ok(view)
    }

    /// Keeps a server-wide view read by a task (the health check).
    pub fn store_server_view(&self, view: ServerView) {
        *self.shared.server_view.write() = view;
    }

    /// Test support: makes a held lease's recorded backend `backend`, to stand in for a pid
    /// the operating system has given to another session (which cannot be forced for real).
    /// Returns whether the lease was held.
    #[doc(hidden)]
    pub fn forge_backend_identity(&self, lease_id: u64, backend: BackendIdentity) -> bool {
        self.shared
            .leases
            .lock()
            .get_mut(&lease_id)
            .map(|held| held.backend = Some(backend))
            .is_some()
    }

    /// Revokes stale leases and terminates their backends; with `dry_run`, only reports what
    /// it would do.
    pub async fn cleanup(&self, dry_run: bool) -> CleanupReport {
        self.reclaim(CleanupKind::Stale, dry_run).await
    }

    /// Revokes every background lease, terminates their backends and closes idle connections
    /// down to the pool's minimum; with `dry_run`, only reports what it would do.
    pub async fn emergency_cleanup(&self, dry_run: bool) -> CleanupReport {
        self.reclaim(CleanupKind::Emergency, dry_run).await
    }

    async fn reclaim(&self, kind: CleanupKind, dry_run: bool) -> CleanupReport {
        let shared = &self.shared;
        let pool = shared.db.pool_status();
        let now = Instant::now();
        // Decide and (unless dry) take the leases out under one lock, so the report names
        // exactly the leases acted on.
        let chosen: Vec<(LeaseInfo, Option<BackendIdentity>, Option<RunContext>)> = {
            let mut held = shared.leases.lock();
            let ids: Vec<u64> = held
                .iter()
                .filter(|(_, h)| {
                    kind == CleanupKind::Emergency
                        || now.saturating_duration_since(h.acquired) > shared.lease_timeout
                })
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| {
                    let lease = held.get(&id)?;
                    let info = lease.info(id, now, shared.lease_timeout);
                    let backend = lease.backend;
                    let run = if dry_run {
                        None
                    } else {
                        held.remove(&id).map(|h| h.run)
                    };
                    Some((info, backend, run))
                })
                .collect()
        };
        let revoked: Vec<LeaseInfo> = chosen.iter().map(|(info, ..)| info.clone()).collect();
        let backends: Vec<BackendIdentity> = chosen.iter().filter_map(|(_, b, _)| *b).collect();
        let pids: Vec<i32> = backends.iter().map(|b| b.pid).collect();
        let closed_target = match kind {
            CleanupKind::Stale => 0,
            // The revoked leases' connections close as their runs drop them.
            CleanupKind::Emergency => pool.idle.min(
                pool.size
                    .saturating_sub(u32::try_from(revoked.len()).unwrap_or(u32::MAX))
                    .saturating_sub(pool.min),
            ),
        };
        let mut report = CleanupReport {
            kind,
            dry_run,
            at: Utc::now(),
            revoked,
            terminated: pids,
            already_gone: Vec::new(),
            termination_failures: Vec::new(),
            closed_idle: closed_target,
            pool_size_before: pool.size,
            retries_reset: Vec::new(),
            notes: Vec::new(),
        };
        if shared.db.backend() == Backend::Sqlite && !report.revoked.is_empty() {
            report.notes.push(
                "SQLite has no server backends to terminate; revoked runs stop and their \
                 connections are closed"
                    .to_owned(),
            );
        }
        if dry_run {
            return report;
        }

        let reason = match kind {
            CleanupKind::Stale => format!(
                "stale: held longer than the {} s lease timeout",
                shared.lease_timeout.as_secs_f64()
            ),
            CleanupKind::Emergency => "emergency cleanup".to_owned(),
        };
        for (info, _, run) in &chosen {
            if let Some(run) = run {
                run.revoke(reason.clone());
            }
            shared.revoked.fetch_add(1, Relaxed);
            self.count(&info.task, |c| c.revoked += 1);
        }
        if !backends.is_empty() {
            let ended = terminate_backends(&shared.db, &backends).await;
            report.terminated = ended.terminated;
            report.already_gone = ended.already_gone;
            report.termination_failures = ended.failures;
        }
        report.closed_idle = self.close_idle(closed_target).await;
        if !report.revoked.is_empty() || report.closed_idle > 0 {
            tracing::warn!(kind = ?kind, "{}", report.summary());
        }
        report
    }

    /// Closes up to `count` idle connections; returns how many it closed.
    async fn close_idle(&self, count: u32) -> u32 {
        let mut closed = 0;
        while closed < count {
            let Some(conn) = self.shared.db.pool().try_acquire() else {
                break;
            };
            let _ = conn.close().await;
            closed += 1;
        }
        closed
    }
}

/// What [`terminate_backends`] did, pid by pid.
#[derive(Debug, Default)]
struct Ended {
    terminated: Vec<i32>,
    already_gone: Vec<i32>,
    failures: Vec<(i32, String)>,
}

/// Ends PostgreSQL backends over a connection of its own, so it works when the pool is
/// exhausted — each only if it is still the backend its lease recorded (see [`TERMINATE_SQL`]):
/// a pid that now belongs to another session, another application's or a later one of ours,
/// is never ended. A backend no longer there is reported as already gone, not as a failure.
async fn terminate_backends(db: &Database, backends: &[BackendIdentity]) -> Ended {
    let mut ended = Ended::default();
    let mut conn = match db.control().acquire().await {
        Ok(conn) => conn,
        Err(err) => {
            let reason = format!("no control connection: {err}");
            ended.failures = backends.iter().map(|b| (b.pid, reason.clone())).collect();
            return ended;
        }
    };
    let application_name = db.application_name().to_owned();
    for backend in backends {
        match sqlx::query_scalar::<_, bool>(TERMINATE_SQL)
            .bind(backend.pid)
            .bind(backend.started_us)
            .bind(application_name.clone())
            .fetch_optional(&mut *conn)
            .await
        {
            Ok(Some(true)) => ended.terminated.push(backend.pid),
            // No row, or it ended between the look-up and the signal.
            Ok(None | Some(false)) => ended.already_gone.push(backend.pid),
            Err(err) => ended.failures.push((backend.pid, err.to_string())),
        }
    }
    ended
}

fn count_task(shared: &Shared, task: &str, update: impl FnOnce(&mut TaskLeaseCounts)) {
    let mut per_task = shared.per_task.lock();
    if let Some(counts) = per_task.get_mut(task) {
        update(counts);
    } else {
        let mut counts = TaskLeaseCounts {
            task: task.to_owned(),
            ..TaskLeaseCounts::default()
        };
        update(&mut counts);
        per_task.insert(task.to_owned(), counts);
    }
}

enum Checkout {
    /// The pool could not give a connection.
    Pool(sqlx::Error),
    /// The connection it gave failed its check (and was closed); try another.
    Broken,
}

/// A connection held by a task run. Dropping it releases the lease: the connection goes back
/// to the pool, or is closed if the lease was revoked, its work was cut short (timeout,
/// revocation, cancellation) or the thread is panicking — a connection cut mid-query is not
/// safe to reuse.
pub struct Lease {
    conn: PoolConnection<Any>,
    id: u64,
    backend: Option<BackendIdentity>,
    run: RunContext,
    acquired: Instant,
    shared: Arc<Shared>,
    /// Work was started on the connection and did not finish.
    dirty: bool,
}

impl Lease {
    /// The lease's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs `work` on the connection, bounded by what is left of the lease timeout and stopped
    /// by revocation. Errors of `work` pass through unchanged.
    pub async fn run<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        E: From<LeaseError>,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> ConnFuture<'c, Result<T, E>>,
    {
        if let Some(revoked) = self.run.revoked() {
            return Err(revoked.into());
        }
        let timeout = self.shared.lease_timeout;
        let left = timeout.saturating_sub(self.acquired.elapsed());
        let cancel = self.run.inner.cancel.clone();
        self.dirty = true;
        let outcome = {
            let conn: &mut AnyConnection = &mut self.conn;
            tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                result = tokio::time::timeout(left, work(conn)) => Some(result),
            }
        };
        match outcome {
            None => Err(self.run.revocation_error().into()),
            Some(Err(_elapsed)) => Err(LeaseError::TimedOut {
                task: self.run.task().to_owned(),
                timeout,
            }
            .into()),
            Some(Ok(result)) => {
                self.dirty = false;
                result
            }
        }
    }
}

impl Deref for Lease {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let still_registered = self.shared.leases.lock().remove(&self.id).is_some();
        if self.dirty
            || !still_registered
            || self.run.revoked().is_some()
            || std::thread::panicking()
        {
            self.conn.close_on_drop();
        }
        // Closing the socket does not stop a statement the server is still running; ending the
        // backend does. (A lease cleanup took back had its backend ended by cleanup.)
        if (self.dirty || std::thread::panicking())
            && still_registered
            && let Some(backend) = self.backend
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let db = self.shared.db.clone();
            runtime.spawn(async move {
                let ended = terminate_backends(&db, &[backend]).await;
                for (pid, reason) in ended.failures {
                    tracing::warn!(pid, %reason, "could not end the backend of an interrupted lease");
                }
            });
        }
        // A revoked lease was counted when cleanup took it.
        if still_registered {
            self.shared.released.fetch_add(1, Relaxed);
            self.shared.hold_time.record(self.acquired.elapsed());
            count_task(&self.shared, self.run.task(), |c| c.released += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(task: &str) -> LeaseInfo {
        LeaseInfo {
            id: 1,
            task: task.to_owned(),
            run_id: 1,
            acquired_at: Utc::now(),
            backend_pid: Some(7),
            held_ms: 40_000,
            stale: true,
        }
    }

    #[test]
    fn summaries_say_what_was_done_or_would_be() {
        let mut report = CleanupReport {
            kind: CleanupKind::Emergency,
            dry_run: true,
            at: Utc::now(),
            revoked: vec![
                info("auction_monitor"),
                info("auction_monitor"),
                info("health_check"),
            ],
            terminated: vec![7, 8, 9],
            already_gone: vec![],
            termination_failures: vec![],
            closed_idle: 1,
            pool_size_before: 6,
            retries_reset: vec![],
            notes: vec![],
        };
        assert_eq!(
            report.summary(),
            "would revoke 3 leases held by auction_monitor, health_check, would terminate 3 \
             backends, would close 1 idle connection"
        );
        report.dry_run = false;
        report.kind = CleanupKind::Stale;
        report.revoked.truncate(1);
        report.terminated.truncate(1);
        assert_eq!(
            report.summary(),
            "revoked 1 lease held by auction_monitor, terminated 1 backend"
        );
    }

    #[test]
    fn a_revoked_run_reports_its_first_reason() {
        let run = RunContext::new("status_transitions", 4);
        assert_eq!(run.revoked(), None);
        run.revoke("stale");
        run.revoke("emergency cleanup");
        assert_eq!(
            run.revoked(),
            Some(LeaseError::Revoked {
                task: "status_transitions".into(),
                reason: "stale".into()
            })
        );
    }

    #[tokio::test]
    async fn scope_stops_the_work_when_the_run_is_revoked() {
        let run = RunContext::new("t", 1);
        let revoker = run.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            revoker.revoke("test");
        });
        let result: Result<(), LeaseError> = run
            .scope(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
            .await;
        assert!(
            matches!(result, Err(LeaseError::Revoked { .. })),
            "{result:?}"
        );
    }
}
