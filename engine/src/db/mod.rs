//! The database: which backend, how to reach it, the pool and its migrations.
//!
//! Both backends go through sqlx's `Any` driver so that every query is written once; the few
//! things only PostgreSQL has (session settings, backend pids, server-wide views) branch on
//! [`Backend`].
//!
//! Layout: `url` is where the database is (and how it is shown without its password),
//! `pool` how the pools connect and what each session is set to, `migrate` the schema.
//! [`Database`], its readiness probe and its counters are here.

pub(crate) mod filter;
mod migrate;
mod pool;
mod url;

use std::{
    fmt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::{AnyPool, Connection as _, migrate::MigrateError};

pub use url::{DatabaseUrl, UrlError, redact_password};

use crate::settings::PoolSettings;

/// Every Leasewatch session's `application_name` starts with this.
pub(crate) const APPLICATION_PREFIX: &str = "leasewatch:";

/// The prefix of every instance's task-pool `application_name` (`leasewatch:tasks:<instance>`),
/// by which the rules count instances on one server.
pub(crate) const TASKS_APPLICATION_PREFIX: &str = "leasewatch:tasks";

/// The `application_name` of the control pool's connection (`leasewatch:control:<instance>`).
pub(crate) const CONTROL_APPLICATION_NAME: &str = "leasewatch:control";

/// The `application_name` of the readiness probe's connection.
pub(crate) const PROBE_APPLICATION_NAME: &str = "leasewatch:probe";

/// The PostgreSQL schema that holds every Leasewatch table and its migrations table. Every
/// Leasewatch session runs with `search_path` set to it, so queries (written once for both
/// backends) stay unqualified and never reach a host application's tables in `public`.
pub(crate) const SCHEMA: &str = "leasewatch";

/// An instant read back from a time column, which stores Unix milliseconds (a value outside
/// chrono's range, which none written is, reads as the epoch).
pub(crate) fn time_of_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Where sqlx records applied migrations on PostgreSQL: in [`SCHEMA`], not the host
/// database's shared `public._sqlx_migrations`.
pub(crate) const POSTGRES_MIGRATIONS_TABLE: &str = "leasewatch._sqlx_migrations";

/// A readiness probe waits at most this long for its answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest a task waits for a replica's connection (`DB_CONNECTION_TIMEOUT` when
/// shorter): a replica that cannot hand one over by then is busy or gone, and the read's retry
/// goes where reads go then instead of queueing there. The pool would otherwise keep retrying a
/// refused connection for the whole timeout.
pub const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// Probes within this long of the last one get its answer: a flood of probes costs at most
/// one query per interval.
pub const PROBE_REUSE: Duration = Duration::from_secs(1);

/// How long closing waits for connections in use.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The database products Leasewatch runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The production database.
    Postgres,
    /// The embedded default, so the first run needs nothing installed.
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        })
    }
}

/// Failures reaching or preparing the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be made within the connect timeout.
    #[error("cannot connect to {url} within {} ms: {source}", timeout.as_millis())]
    Unreachable {
        /// The redacted URL.
        url: String,
        /// The bound that was waited.
        timeout: Duration,
        /// What the driver said (or a timeout).
        source: sqlx::Error,
    },
    /// The SQLite file's folder could not be created.
    #[error("cannot create the folder {path} for the SQLite database: {source}")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A point-in-time reading of the pool, taken without touching the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolStatus {
    /// Connections open now, idle or in use.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Configured maximum.
    pub max: u32,
    /// Configured minimum.
    pub min: u32,
}

/// Why the database is not ready, as the public readiness probe says it: generic on purpose
/// (the driver's error is logged, never sent to an unauthenticated caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// The probe could not reach the database, or the database refused it.
    #[error("database unreachable")]
    Unreachable,
    /// The database did not answer within [`PROBE_TIMEOUT`].
    #[error("database did not answer within 1 s")]
    TimedOut,
}

/// The last readiness answer and when it was asked.
type ProbeAnswer = Option<(Instant, Result<(), NotReady>)>;

/// The connected database: a pool plus what is known about its backend.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    /// A small pool of its own for control work that must not wait behind the tasks: ending
    /// backends and the audit log.
    control: AnyPool,
    /// One lazy connection for readiness probes, so a flood of public probes can never take
    /// the connections control work needs.
    probe: AnyPool,
    /// The last probe's answer: probes within [`PROBE_REUSE`] of it share it.
    last_probe: Arc<tokio::sync::Mutex<ProbeAnswer>>,
    /// Readers of the audit log and the history take one of the control connections at most,
    /// all together, so control work (ending backends, writing entries) always finds one.
    reads: Arc<tokio::sync::Semaphore>,
    url: DatabaseUrl,
    settings: PoolSettings,
}

impl Database {
    /// Waits for the one reader's place on the control pool (see `reads`): hold the permit
    /// for the read. `None` once the database is closed.
    pub async fn read_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.reads.acquire().await.ok()
    }

    /// Whether the database answers, for the readiness probe: asked over a one-connection
    /// pool of its own within [`PROBE_TIMEOUT`], and at most once per [`PROBE_REUSE`] —
    /// concurrent probes wait for the one under way and share its answer. The driver's error
    /// is logged; the answer names only what kind of failure it was.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        let mut last = self.last_probe.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < PROBE_REUSE
        {
            return answer;
        }
        let probe = async {
            let mut conn = self.probe.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await.map(drop)
        };
        let answer = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::debug!(%err, "readiness probe: the database refused or is unreachable");
                Err(NotReady::Unreachable)
            }
            Err(_) => {
                tracing::debug!("readiness probe: no answer within {PROBE_TIMEOUT:?}");
                Err(NotReady::TimedOut)
            }
        };
        tracing::debug!(ready = answer.is_ok(), "readiness probe asked the database");
        let was_ready = last.map(|(_, previous)| previous.is_ok());
        if was_ready != Some(answer.is_ok()) {
            match answer {
                Ok(()) => tracing::info!("readiness: the database answers"),
                Err(reason) => tracing::warn!(%reason, "readiness: not ready"),
            }
        }
        *last = Some((Instant::now(), answer));
        answer
    }

    /// What the server says to a new connection now: `Some` with its error when it refuses
    /// one or cannot be reached, `None` when one opens (it is closed at once) or nothing is
    /// said within [`PROBE_TIMEOUT`]. Opened outside every pool: a pool retries a refused
    /// connection until its own timeout and then reports only the timeout, which hides a
    /// server out of slots (SQLSTATE 53300) behind what looks like a pool exhausted.
    pub async fn refusal_of_new_connection(&self) -> Option<sqlx::Error> {
        let attempt = async {
            let conn = sqlx::AnyConnection::connect(&self.url.connect_string()).await?;
            conn.close().await
        };
        tokio::time::timeout(PROBE_TIMEOUT, attempt)
            .await
            .ok()?
            .err()
    }

    /// The backend behind the pool.
    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// Where the database is (redacted when displayed).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The sqlx pool. Background tasks must not take connections from it directly.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool's counters right now; no database access.
    pub fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.settings.max_connections,
            min: self.settings.min_connections,
        }
    }

    /// The `application_name` the task pool's sessions report.
    pub fn application_name(&self) -> &str {
        &self.settings.application_name
    }

    /// The control pool (see [`Database`]).
    pub fn control(&self) -> &AnyPool {
        &self.control
    }

    /// The probe's one connection (see [`Database`]): the targets' health probe asks over it
    /// too, so a probe never waits behind control work.
    pub(crate) fn probe_pool(&self) -> &AnyPool {
        &self.probe
    }

    /// Closes every connection, waiting a few seconds for those in use to come back; a
    /// holder that never gives its connection back must not hang shutdown.
    pub async fn close(&self) {
        let closing = async {
            self.pool.close().await;
            self.control.close().await;
            self.reads.close();
            self.probe.close().await;
        };
        if tokio::time::timeout(CLOSE_WAIT, closing).await.is_err() {
            tracing::warn!(
                "connections still in use after {} s; closing without them",
                CLOSE_WAIT.as_secs()
            );
        }
    }
}
