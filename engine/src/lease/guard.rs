//! Handing out leases and taking them back: [`LeaseManager::acquire`] counts the wait,
//! checks the connection and registers the lease; the [`Lease`] guard's `Drop` releases it.

use std::{
    future::Future,
    ops::{Deref, DerefMut},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use sqlx::{Any, AnyConnection, pool::PoolConnection};

use super::{
    Held, LeaseError, LeaseManager, RunContext, Shared,
    backend::{BACKEND_IDENTITY_SQL, BackendIdentity, terminate_backends},
    count_task,
    run::{Holding, LeaseUse},
};
use crate::{db::Backend, governor::Permit};

/// A boxed future borrowing the connection, as [`Lease::run`] takes it.
pub type ConnFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

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
    /// A lease for `run`: a place under the governor's limit (by the run's priority), then a
    /// connection from the pool, both within the acquire timeout.
    ///
    /// On PostgreSQL the manager's liveness check before handing a connection out is the query
    /// that learns the backend's identity, pid and start time (the pool's own ping is off), and
    /// sets the session's statement timeout to the lease's, so it costs no extra round trip.
    pub async fn acquire(&self, run: &RunContext) -> Result<Lease, LeaseError> {
        if let Some(revoked) = run.revoked() {
            return Err(revoked);
        }
        let shared = &self.shared;
        let started = Instant::now();
        let deadline = started + shared.acquire_timeout;
        let waiting = Waiting::enter(&shared.waiting);
        let limits = run.limits();
        let timeout = limits.timeout.unwrap_or(shared.lease_timeout);
        let governor = &shared.governor;
        let Some(permit) = governor.enter(limits.priority, deadline.into()).await else {
            drop(waiting);
            if governor.limit() < shared.db.pool_status().max {
                return Err(LeaseError::OverLimit {
                    task: run.task().to_owned(),
                    waited: started.elapsed(),
                    reason: governor.view().reason,
                });
            }
            // The limit is the pool's maximum: every connection is held here.
            return Err(self.acquire_timed_out(run, started));
        };
        let let_through = Instant::now();
        let (conn, backend) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.checked_connection(timeout)).await {
                Ok(Ok(found)) => break found,
                Ok(Err(Checkout::Broken)) => continue,
                Ok(Err(Checkout::Pool(sqlx::Error::PoolClosed))) => return Err(LeaseError::Closed),
                Ok(Err(Checkout::Pool(sqlx::Error::PoolTimedOut))) | Err(_) => {
                    drop(waiting);
                    governor.trouble();
                    if let Some(refused) = self.refusal_behind_timeout().await {
                        return Err(LeaseError::connect(run.task(), &refused));
                    }
                    return Err(self.acquire_timed_out(run, started));
                }
                Ok(Err(Checkout::Pool(err))) => return Err(LeaseError::connect(run.task(), &err)),
            }
        };
        governor.pool_waited(let_through.elapsed());
        drop(waiting);
        let waited = started.elapsed();
        shared.acquire_latency.record(waited);

        let id = shared.next_id.fetch_add(1, Relaxed);
        let acquired = Instant::now();
        shared.leases.lock().insert(
            id,
            Held {
                task: run.task().to_owned(),
                run_id: run.run_id(),
                acquired,
                timeout,
                acquired_at: Utc::now(),
                backend,
                run: run.clone(),
            },
        );
        shared.issued.fetch_add(1, Relaxed);
        self.count(run.task(), |c| c.issued += 1);
        Ok(Lease {
            conn,
            _holding: run.hold(LeaseUse {
                lease_id: id,
                backend_pid: backend.map(|b| b.pid),
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            }),
            permit: Some(permit),
            id,
            backend,
            run: run.clone(),
            timeout,
            acquired,
            shared: Arc::clone(shared),
            dirty: false,
        })
    }

    /// Counts an acquire that gave up waiting for the pool, and says so.
    fn acquire_timed_out(&self, run: &RunContext, started: Instant) -> LeaseError {
        let shared = &self.shared;
        shared.acquire_timeouts.fetch_add(1, Relaxed);
        self.count(run.task(), |c| c.acquire_timeouts += 1);
        LeaseError::AcquireTimeout {
            task: run.task().to_owned(),
            waited: started.elapsed(),
            size: shared.db.pool().size(),
            max: shared.db.pool_status().max,
            waiting: shared.waiting.load(Relaxed) + 1,
        }
    }

    /// Why the pool could not give a connection in time, when the server is the reason: with
    /// fewer leases held than the pool's maximum, the pool was trying to open a connection, and
    /// a new connection tried now shows whether the server refuses it (out of slots) or cannot
    /// be reached. Every connection leased means they are held here, and the timeout is the
    /// whole story. (Leases, not the pool's size: sqlx counts connections it is still trying to
    /// open, refused or not, in its size.)
    async fn refusal_behind_timeout(&self) -> Option<sqlx::Error> {
        let db = &self.shared.db;
        let leased = u32::try_from(self.shared.leases.lock().len()).unwrap_or(u32::MAX);
        if db.backend() != Backend::Postgres || leased >= db.pool_status().max {
            return None;
        }
        db.refusal_of_new_connection().await
    }

    /// One pooled connection that answered its liveness check.
    async fn checked_connection(
        &self,
        timeout: Duration,
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
                match sqlx::query_as::<_, (i32, Option<i64>, String)>(BACKEND_IDENTITY_SQL)
                    .bind(format!("{}ms", timeout.as_millis()))
                    .fetch_one(&mut *conn)
                    .await
                {
                    // The session's own entry is always there; without it the backend cannot
                    // be told apart from a later one with its pid, so it is never ended.
                    Ok((pid, started_us, _)) => Ok((
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
    /// Counts the lease against its run while it lives (the run's peak of leases).
    _holding: Holding,
    /// Its place under the governor's limit, given back when the lease drops (see `Drop`).
    permit: Option<Permit>,
    id: u64,
    backend: Option<BackendIdentity>,
    run: RunContext,
    /// Its deadline, from `acquired`.
    timeout: Duration,
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
        let timeout = self.timeout;
        let left = timeout.saturating_sub(self.acquired.elapsed());
        let cancel = self.run.cancellation().clone();
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
        let permit = self.permit.take();
        if self.dirty
            || !still_registered
            || self.run.revoked().is_some()
            || std::thread::panicking()
        {
            self.conn.close_on_drop();
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // The place under the limit is given back only once the connection is idle in the
            // pool again: a lease let through before that would find no idle connection and
            // make the pool open one more than the limit.
            let back = self.conn.return_to_pool();
            runtime.spawn(async move {
                back.await;
                drop(permit);
            });
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
