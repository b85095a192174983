//! The running engine: the database plus the in-process state the dashboard reads.

use std::{sync::RwLock, time::Duration};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    auctions::{self, StatusCounts},
    db::{Database, DatabaseUrl, DbError},
    lease::LeaseManager,
    settings::{PoolSettings, RetryPolicy, TaskIntervals},
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

/// The engine. Readers (the dashboard, the API) only ever see in-process state: they never take
/// a database connection, so watching the pool cannot add to its pressure.
pub struct Engine {
    leases: LeaseManager,
    config: EngineConfig,
    auctions: RwLock<AuctionsView>,
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
        let auctions = RwLock::new(read_auctions(&db).await?);
        let leases = LeaseManager::new(db, config.pool.lease_timeout, config.pool.connect_timeout);
        let shutdown = CancellationToken::new();
        leases.spawn_maintenance(config.intervals.cleanup, HISTORY_EVERY, shutdown.clone());
        Ok(Self {
            leases,
            config,
            auctions,
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

    /// The configuration the engine started with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The last auction counts read; no database access.
    pub fn auctions(&self) -> AuctionsView {
        self.auctions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the auction counts again (a database read, for the tasks, never for the dashboard).
    pub async fn refresh_auctions(&self) -> Result<(), DbError> {
        let fresh = read_auctions(self.database()).await?;
        *self
            .auctions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// Stops maintenance and closes the pool, waiting for connections in use to come back.
    pub async fn shutdown(&self) {
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
