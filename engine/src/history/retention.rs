//! The `history_retention` task: samples older than a day become one a minute, and runs and
//! samples older than `HISTORY_RETENTION` are deleted. It runs through a lease, in one
//! transaction under its advisory lock, like the other tasks, so it is bounded, visible and
//! reclaimable, and one instance at a time does it.

use std::time::Duration;

use super::store;
use crate::tasks::{Job, JobContext, JobFuture, JobOutput, jobs::in_locked_transaction};

/// PostgreSQL advisory lock key of `history_retention`.
pub const HISTORY_RETENTION_LOCK: i64 = 0x4C57_0004;

/// Raw samples older than this are downsampled.
pub const DOWNSAMPLE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `history_retention`: keeps `retention` of history.
pub struct HistoryRetention {
    /// How long history is kept (`HISTORY_RETENTION`).
    pub retention: Duration,
}

impl HistoryRetention {
    /// The cut-offs at `now_ms`: raw samples before the first are downsampled (a whole minute,
    /// so no minute is split between raw and downsampled), everything before the second is
    /// deleted.
    pub fn cutoffs(&self, now_ms: i64) -> (i64, i64) {
        let minute = store::DOWNSAMPLED_SPAN_SECS * 1000;
        let downsample = (now_ms - millis(DOWNSAMPLE_AFTER)).div_euclid(minute) * minute;
        (downsample, now_ms - millis(self.retention))
    }
}

fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

impl Job for HistoryRetention {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        let (downsample_before, delete_before) = self.cutoffs(ctx.now_ms);
        Box::pin(in_locked_transaction(
            ctx,
            HISTORY_RETENTION_LOCK,
            move |tx| {
                Box::pin(async move {
                    let deleted = store::prune(tx, delete_before).await?;
                    let downsampled = store::downsample(tx, downsample_before).await?;
                    Ok(JobOutput::done(
                        deleted + downsampled,
                        format!(
                            "deleted {deleted} rows of history, downsampled {downsampled} samples"
                        ),
                    ))
                })
            },
        ))
    }
}
