//! The connection lease manager: every connection a background task holds is a tracked lease.
//!
//! sqlx only tells `size()` and `num_idle()`, so the manager wraps `acquire()` and the guard's
//! `Drop` itself: it counts waiters, times acquires, registers each lease (task, run, since
//! when, PostgreSQL backend pid) and releases it when the guard drops — on success, error,
//! panic or cancellation alike. A lease older than the lease timeout is stale; cleanup revokes
//! stale leases (their run stops, their backend is terminated) and emergency cleanup revokes
//! them all and shrinks the pool to its minimum. Reading the state never touches the database.
//!
//! Layout: [`LeaseManager`] and its shared state here; `guard` hands out leases and releases
//! them, `run` is the run that holds them, `snapshot` reads the state (and keeps the
//! history), `cleanup` takes leases back, `backend` names and ends PostgreSQL backends,
//! `server` keeps the database server's view, `error` says why a lease failed.

mod backend;
mod cleanup;
mod error;
mod guard;
mod run;
mod server;
mod snapshot;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};

pub use backend::BackendIdentity;
pub use cleanup::{CleanupKind, CleanupReport};
pub use error::LeaseError;
pub use guard::{ConnFuture, Lease};
pub use run::{LeaseUse, MAX_LEASE_USES, RunContext, RunLimits};
pub use snapshot::{HISTORY_LEN, LeaseInfo, PoolSnapshot, Quantiles, TaskLeaseCounts};

use crate::{
    db::{Backend, Database},
    governor::{Governor, GovernorSettings, Headroom},
    histogram::{Histogram, HistogramReading},
    server_view::ServerView,
};

/// Tracks, bounds and reclaims the connections background tasks hold. Cheap to clone.
#[derive(Clone)]
pub struct LeaseManager {
    shared: Arc<Shared>,
}

struct Shared {
    db: Database,
    governor: Governor,
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
    /// Held longer than this, it is stale: the task's own timeout, or the lease timeout.
    timeout: Duration,
    acquired_at: DateTime<Utc>,
    backend: Option<BackendIdentity>,
    run: RunContext,
}

impl LeaseManager {
    /// A manager over `db`'s pool, without a governor (the limit is the pool's maximum).
    /// `lease_timeout` makes a lease stale and bounds [`Lease::run`]; `acquire_timeout` bounds
    /// each wait for a connection.
    pub fn new(db: Database, lease_timeout: Duration, acquire_timeout: Duration) -> Self {
        let max = db.pool_status().max;
        let governor = Governor::new(GovernorSettings {
            enabled: false,
            headroom: Headroom::default(),
            max,
            start: max,
            slow_wait: acquire_timeout,
        });
        Self::governed(db, lease_timeout, acquire_timeout, governor)
    }

    /// A manager whose leases pass `governor`'s limit first.
    pub fn governed(
        db: Database,
        lease_timeout: Duration,
        acquire_timeout: Duration,
        governor: Governor,
    ) -> Self {
        let server_view = match db.backend() {
            Backend::Postgres => ServerView::Unknown,
            Backend::Sqlite => ServerView::sqlite(),
        };
        Self {
            shared: Arc::new(Shared {
                db,
                governor,
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

    /// The governor every lease passes.
    pub fn governor(&self) -> &Governor {
        &self.shared.governor
    }

    /// The share of its limit the leases use now, from 0 (what read routing compares).
    pub fn utilisation(&self) -> f64 {
        let held = self.shared.leases.lock().len();
        held as f64 / f64::from(self.shared.governor.limit().max(1))
    }

    fn count(&self, task: &str, update: impl FnOnce(&mut TaskLeaseCounts)) {
        count_task(&self.shared, task, update);
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
