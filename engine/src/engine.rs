//! The running engine: the database plus the in-process state the dashboard reads.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    auctions::{self, StatusCounts},
    audit::AuditLog,
    db::{Database, DatabaseUrl, DbError},
    lease::{CleanupReport, LeaseManager},
    settings::{PoolSettings, RetryPolicy, TaskIntervals},
    tasks::TaskManager,
};

/// Everything the engine needs to start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where the database is.
    pub database: DatabaseUrl,
    /// Pool sizing and timeouts.
    pub pool: PoolSettings,
    /// How often each task runs.
    pub intervals: TaskIntervals,
    /// Backoff for retryable task failures.
    pub retry: RetryPolicy,
    /// Seed demo auctions at start-up.
    pub demo: bool,
}

/// Auction counts as last read from the database, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuctionsView {
    /// Auctions per status.
    pub counts: StatusCounts,
    /// When the counts were read.
    pub as_of: DateTime<Utc>,
}

/// Number of auctions `--demo` seeds.
const DEMO_AUCTIONS: u32 = 12;

/// How often a snapshot goes into the history ring (an hour of them is kept).
pub const HISTORY_EVERY: Duration = Duration::from_secs(5);

/// How long a stop (or SIGTERM) waits for runs in flight before cancelling them.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The engine. Readers (the dashboard, the API) only ever see in-process state: they never take
/// a database connection, so watching the pool cannot add to its pressure.
pub struct Engine {
    leases: LeaseManager,
    tasks: TaskManager,
    audit: AuditLog,
    config: EngineConfig,
    /// The counts read at start-up, until a task reads them again.
    startup_auctions: AuctionsView,
    shutdown: CancellationToken,
}

impl Engine {
    /// Connects, migrates, seeds demo data when asked, and reads the first auction counts.
    pub async fn start(config: EngineConfig) -> Result<Self, DbError> {
        let db = Database::connect(&config.database, &config.pool).await?;
        db.migrate().await?;
        if config.demo {
            let seeded =
                auctions::seed_demo(db.pool(), Utc::now().timestamp_millis(), DEMO_AUCTIONS)
                    .await?;
            tracing::info!(
                seeded,
                "demo auctions seeded; they start over the next two minutes"
            );
        }
        let startup_auctions = read_auctions(&db).await?;
        let audit = AuditLog::load(&db).await?;
        let leases = LeaseManager::new(db, config.pool.lease_timeout, config.pool.connect_timeout);
        let shutdown = CancellationToken::new();
        leases.spawn_maintenance(config.intervals.cleanup, HISTORY_EVERY, shutdown.clone());
        let instance = format!(
            "leasewatch-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        );
        let tasks = TaskManager::new(leases.clone(), &config.intervals, config.retry, instance);
        tasks.start();
        Ok(Self {
            leases,
            tasks,
            audit,
            config,
            startup_auctions,
            shutdown,
        })
    }

    /// The database and its pool.
    pub fn database(&self) -> &Database {
        self.leases.database()
    }

    /// The lease manager every background task takes its connections from.
    pub fn leases(&self) -> &LeaseManager {
        &self.leases
    }

    /// The background tasks.
    pub fn tasks(&self) -> &TaskManager {
        &self.tasks
    }

    /// The audit log of control actions.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Emergency cleanup: every background lease revoked, their backends ended, the pool down
    /// to its minimum, and retry series reset; with `dry_run`, what it would do.
    pub async fn emergency_cleanup(&self, dry_run: bool) -> CleanupReport {
        let mut report = self.leases.emergency_cleanup(dry_run).await;
        report.retries_reset = if dry_run {
            self.tasks
                .tasks()
                .into_iter()
                .filter(|t| matches!(t.state, crate::tasks::TaskState::Backoff { .. }))
                .map(|t| t.name)
                .collect()
        } else {
            self.tasks.reset_retries().await
        };
        report
    }

    /// The configuration the engine started with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The last auction counts read (by the tasks, or at start-up); no database access.
    pub fn auctions(&self) -> AuctionsView {
        match self.tasks.latest_counts() {
            Some((counts, as_of)) => AuctionsView { counts, as_of },
            None => self.startup_auctions.clone(),
        }
    }

    /// Drains the tasks (runs in flight get [`STOP_DEADLINE`]), stops maintenance and closes
    /// the pool.
    pub async fn shutdown(&self) {
        self.tasks.stop(STOP_DEADLINE).await;
        self.shutdown.cancel();
        self.database().close().await;
    }
}

async fn read_auctions(db: &Database) -> Result<AuctionsView, DbError> {
    Ok(AuctionsView {
        counts: auctions::status_counts(db.pool()).await?,
        as_of: Utc::now(),
    })
}
