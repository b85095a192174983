//! Persisted history: every finished run and a pool and server sample every few seconds,
//! written to the database in batches off the tasks' path, so a restart or a deploy does not
//! wipe what an incident needs to be understood after the fact.
//!
//! Writes go through the control pool, never a task connection. While the database cannot take
//! them, runs wait in memory (bounded, far beyond any outage worth surviving) and are written
//! once it is back; samples are dropped and counted. Several instances write to one database
//! without clashing: every row is keyed by its instance. Samples older than a day are
//! downsampled to one a minute, and everything older than `HISTORY_RETENTION` is deleted by
//! the `history_retention` task, which runs through a lease like the other tasks.
//!
//! Layout: `model` is what history holds and how it is asked for, `store` the SQL, and
//! `retention` the task that downsamples and prunes.

mod model;
mod retention;
mod store;

pub use store::SAMPLES_SQL;

use std::{collections::VecDeque, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use model::{
    BadCursor, HistoryCounts, RunCursor, RunDetail, RunFilter, RunPage, RunSearch, SampleSpan,
    StoredRun, StoredSample,
};
pub use retention::{DOWNSAMPLE_AFTER, HISTORY_RETENTION_LOCK, HistoryRetention};
use store::{RunRow, SampleRow};

use crate::{db::Database, lease::PoolSnapshot, tasks::RunRecord};

/// How often queued runs and samples are written.
pub const WRITE_EVERY: Duration = Duration::from_secs(5);

/// Rows written per transaction at most.
const BATCH: usize = 500;

/// Runs kept in memory while the database cannot take them: days of runs at the default
/// cadences. Past it the oldest are dropped, counted and logged.
pub const MAX_QUEUED_RUNS: usize = 50_000;

/// Samples kept in memory between writes: ten minutes of them. A failed write drops its
/// samples (counted); what the charts need for the last hour is in memory anyway.
pub const MAX_QUEUED_SAMPLES: usize = 120;

/// The most points a chart range is read as: the samples are bucketed to fit.
pub const MAX_POINTS: u32 = 720;

/// The longest range the charts read at once.
pub const MAX_RANGE: Duration = Duration::from_secs(31 * 24 * 3600);

/// The persisted history of this instance's runs and samples, and the reads of everyone's.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

struct Inner {
    instance: String,
    host: String,
    queue: Mutex<Queue>,
    /// Rung when runs pile up past a batch, so they are written without waiting the interval.
    wake: Notify,
    /// Reads take one control connection at most, so readers never crowd out the writes and
    /// the audit log.
    reads: tokio::sync::Semaphore,
}

#[derive(Default)]
struct Queue {
    runs: VecDeque<RunRow>,
    samples: VecDeque<SampleRow>,
    counts: HistoryCounts,
}

/// Why a history read gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database could not answer.
    #[error("history cannot be read now: {0}")]
    Database(#[from] sqlx::Error),
}

impl History {
    /// History written as `instance` (its runs' key) on `host`.
    pub fn new(instance: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                instance: instance.into(),
                host: host.into(),
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                reads: tokio::sync::Semaphore::new(1),
            }),
        }
    }

    /// The instance its rows are written as.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Queues a finished run of `task` for writing. No database access.
    pub fn record_run(&self, task: &str, record: &RunRecord) {
        let run = StoredRun::of(&self.inner.instance, &self.inner.host, task, record);
        let record = serde_json::to_string(record).expect("a run record serializes");
        let mut queue = self.inner.queue.lock();
        if queue.runs.len() >= MAX_QUEUED_RUNS {
            queue.runs.pop_front();
            queue.counts.runs_dropped += 1;
            tracing::error!(
                queued = MAX_QUEUED_RUNS,
                "run history queue full (the database has been unreachable for long): the oldest run was dropped"
            );
        }
        queue.runs.push_back(RunRow { run, record });
        if queue.runs.len() >= BATCH {
            self.inner.wake.notify_one();
        }
    }

    /// Queues a pool sample for writing. No database access.
    pub fn record_sample(&self, snapshot: &PoolSnapshot) {
        let sample = StoredSample {
            at_ms: snapshot.taken_at.timestamp_millis(),
            active: snapshot.active,
            idle: snapshot.idle,
            waiting: snapshot.waiting,
            leases: snapshot.leases,
            stale: snapshot.stale,
            p95_ms: snapshot.window_p95_ms,
            limit: snapshot.limit,
            budget: snapshot.budget,
            server_clients: snapshot.server_connections,
            server_usable: snapshot.server_usable,
        };
        let mut queue = self.inner.queue.lock();
        if queue.samples.len() >= MAX_QUEUED_SAMPLES {
            queue.samples.pop_front();
            queue.counts.samples_dropped += 1;
        }
        queue.samples.push_back(SampleRow {
            instance: self.inner.instance.clone(),
            sample,
        });
    }

    /// What the writer has done since start, and what waits.
    pub fn counts(&self) -> HistoryCounts {
        let queue = self.inner.queue.lock();
        HistoryCounts {
            runs_queued: queue.runs.len() as u64,
            ..queue.counts
        }
    }

    /// Writes everything queued, a batch per transaction. A batch that fails puts its runs back
    /// (first in line, in order) and drops its samples, counted. Returns whether everything
    /// queued was written.
    pub async fn flush(&self, db: &Database) -> bool {
        loop {
            let (runs, samples) = {
                let mut queue = self.inner.queue.lock();
                let runs = queue.runs.len().min(BATCH);
                let samples = queue.samples.len().min(BATCH - runs);
                (
                    queue.runs.drain(..runs).collect::<Vec<_>>(),
                    queue.samples.drain(..samples).collect::<Vec<_>>(),
                )
            };
            if runs.is_empty() && samples.is_empty() {
                return true;
            }
            match store::write(db.control(), &runs, &samples).await {
                Ok(()) => {
                    let mut queue = self.inner.queue.lock();
                    queue.counts.runs_written += runs.len() as u64;
                    queue.counts.samples_written += samples.len() as u64;
                }
                Err(err) => {
                    tracing::debug!(%err, runs = runs.len(), "history could not be written; runs kept for later");
                    let mut queue = self.inner.queue.lock();
                    queue.counts.samples_dropped += samples.len() as u64;
                    for run in runs.into_iter().rev() {
                        queue.runs.push_front(run);
                    }
                    return false;
                }
            }
        }
    }

    /// Writes every [`WRITE_EVERY`] (sooner when a batch of runs waits) until `shutdown`. The
    /// last write is left to the engine's shutdown, after the runs in flight have finished.
    pub async fn run(self, db: Database, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(WRITE_EVERY) => {}
                () = self.inner.wake.notified() => {}
            }
            self.flush(&db).await;
        }
    }

    /// A page of the runs `search` asks for, newest first.
    pub async fn runs(&self, db: &Database, search: &RunSearch) -> Result<RunPage, HistoryError> {
        let RunSearch {
            filter,
            after,
            limit,
        } = search;
        let (after, limit) = (after.as_ref(), *limit);
        let _one_reader = self.read_permit().await?;
        let mut runs = store::runs(db.control(), filter, after, limit.saturating_add(1)).await?;
        let more = runs.len() > limit as usize;
        runs.truncate(limit as usize);
        let next = more.then(|| runs.last()).flatten().map(|last| RunCursor {
            started_at_ms: last.started_at.timestamp_millis(),
            instance: last.instance.clone(),
            run_id: last.run_id,
        });
        Ok(RunPage { runs, next })
    }

    /// One run with its attempts, if history has it.
    pub async fn run_detail(
        &self,
        db: &Database,
        instance: &str,
        run_id: u64,
    ) -> Result<Option<RunDetail>, HistoryError> {
        let _one_reader = self.read_permit().await?;
        Ok(store::run(db.control(), instance, run_id).await?)
    }

    /// The samples from `from` to `to`, bucketed to at most [`MAX_POINTS`] (never finer than
    /// the raw samples' 5 s), added up over the instances.
    pub async fn samples(
        &self,
        db: &Database,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredSample>, HistoryError> {
        let (from_ms, to_ms) = (from.timestamp_millis(), to.timestamp_millis());
        let bucket_ms = bucket_ms(to_ms - from_ms);
        let _one_reader = self.read_permit().await?;
        let mut samples = store::samples(db.control(), from_ms, to_ms, bucket_ms).await?;
        // Buckets are aligned to the epoch: a span that does not start on a bucket's boundary
        // touches one more, whose older part lies before `from`. It goes.
        let extra = samples.len().saturating_sub(MAX_POINTS as usize);
        samples.drain(..extra);
        Ok(samples)
    }

    async fn read_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, HistoryError> {
        self.inner
            .reads
            .acquire()
            .await
            .map_err(|_| HistoryError::Database(sqlx::Error::PoolClosed))
    }
}

/// The bucket a span of `span_ms` is read in: at most [`MAX_POINTS`] of them, a whole number
/// of raw samples each.
pub fn bucket_ms(span_ms: i64) -> i64 {
    let raw = store::RAW_SPAN_SECS * 1000;
    let ceil = |n: i64, d: i64| (n + d - 1) / d;
    let per_point = ceil(span_ms.max(0), i64::from(MAX_POINTS));
    ceil(per_point, raw).max(1) * raw
}

#[cfg(test)]
mod tests;
