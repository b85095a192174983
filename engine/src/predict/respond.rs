//! What the engine does about the forecast: on a raised alarm, take back this instance's own
//! long-held leases and idle connections and defer scheduled runs that have slack; while it
//! holds, keep taking back leases that grow long; when it clears, let deferred runs go. Every
//! action is written to the audit log with the forecast that caused it.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use leasewatch_types::{Actor, AuditOutcome, PREDICTIVE_CLEANUP};
use tokio::sync::watch;

use super::{Alarm, Change, ForecastView};
use crate::{
    audit::{AuditLog, NewEntry},
    lease::LeaseManager,
    tasks::TaskManager,
};

/// Under a forecast, a lease is long-held once held this many times its task's usual run
/// (the 90th percentile of its recent runs)...
const USUAL_RUN_TIMES: u32 = 2;

/// ...and never before this: a run that is merely slower than usual is left alone.
const LONG_HELD_AT_LEAST: Duration = Duration::from_secs(5);

/// Acts on the predictor's changes (only when `PREDICTIVE_CLEANUP` is on).
pub(crate) struct Responder {
    pub(crate) leases: LeaseManager,
    pub(crate) tasks: TaskManager,
    pub(crate) audit: Arc<AuditLog>,
    /// True while scheduled runs with slack should wait.
    pub(crate) defer: watch::Sender<bool>,
}

impl Responder {
    /// Acts on `change`; `view` is the forecast that caused it.
    pub(crate) async fn respond(&self, change: &Change, view: &ForecastView) {
        match change {
            Change::Raised(alarm) => {
                self.defer.send_replace(true);
                let report = self.cleanup().await;
                tracing::warn!(
                    eta_secs = alarm.eta_secs,
                    per_minute = alarm.per_minute,
                    growing = %alarm.growing_line(),
                    "exhaustion predicted: {}", report.summary()
                );
                self.record(
                    alarm,
                    view,
                    format!(
                        "{}; scheduled runs that can wait are deferred while the forecast holds",
                        report.summary()
                    ),
                );
            }
            Change::Holds(alarm) => {
                let report = self.cleanup().await;
                if !report.revoked.is_empty() || report.closed_idle > 0 {
                    self.record(alarm, view, report.summary());
                }
            }
            Change::Cleared => {
                if self.defer.send_replace(false) {
                    tracing::info!("exhaustion no longer predicted: deferred runs go ahead");
                    self.audit(
                        serde_json::json!({"automatic": true, "cleared": true}),
                        "exhaustion no longer predicted: deferred runs go ahead".to_owned(),
                    );
                }
            }
            Change::Quiet => {}
        }
    }

    /// Takes back leases held long past their task's usual run, and idle connections.
    async fn cleanup(&self) -> crate::lease::CleanupReport {
        let usual: BTreeMap<String, Duration> = self
            .tasks
            .tasks()
            .into_iter()
            .map(|task| {
                let mut runs: Vec<u64> = task.history.iter().map(|r| r.duration_ms).collect();
                runs.sort_unstable();
                let p90 = runs.get(runs.len() * 9 / 10).copied().unwrap_or(0);
                (task.name, Duration::from_millis(p90) * USUAL_RUN_TIMES)
            })
            .collect();
        self.leases
            .predictive_cleanup(&|task| {
                usual
                    .get(task)
                    .map_or(LONG_HELD_AT_LEAST, |d| (*d).max(LONG_HELD_AT_LEAST))
            })
            .await
    }

    fn record(&self, alarm: &Alarm, view: &ForecastView, result: String) {
        self.audit(
            serde_json::json!({
                "automatic": true,
                "eta_secs": alarm.eta_secs.round(),
                "per_minute": (alarm.per_minute * 10.0).round() / 10.0,
                "used": view.used,
                "usable": view.usable,
                "growing": alarm.growing_line(),
            }),
            result,
        );
    }

    /// Written off the sampling loop: a write may wait for the database.
    fn audit(&self, arguments: serde_json::Value, result: String) {
        let entry = NewEntry {
            role: Actor::System,
            action: PREDICTIVE_CLEANUP.to_owned(),
            arguments: arguments.to_string(),
            outcome: AuditOutcome::Ok,
            result,
            client: "leasewatch".to_owned(),
        };
        let (audit, db) = (Arc::clone(&self.audit), self.leases.database().clone());
        tokio::spawn(async move { audit.record(&db, entry).await });
    }
}
