//! What the engine does about the forecast: on a raised alarm, take back this instance's own
//! long-held leases and idle connections and defer scheduled runs that have slack; while it
//! holds, keep taking back leases that grow long (audited when it takes one); when it clears, let deferred runs go. Every
//! action is written to the audit log with the forecast that caused it.

use std::{sync::Arc, time::Duration};

use leasewatch_types::PREDICTIVE_CLEANUP;
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
                let report = self.cleanup(true).await;
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
                // Idle connections were closed when it was raised; closing the ones tasks open
                // again for each run would only make them connect anew.
                let report = self.cleanup(false).await;
                if !report.revoked.is_empty() {
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

    /// Takes back leases held long past their task's usual run, and with `close_idle`, idle
    /// connections.
    async fn cleanup(&self, close_idle: bool) -> crate::lease::CleanupReport {
        let usual = self.tasks.usual_runs();
        self.leases
            .predictive_cleanup(
                &|task| {
                    usual.get(task).map_or(LONG_HELD_AT_LEAST, |run| {
                        (*run * USUAL_RUN_TIMES).max(LONG_HELD_AT_LEAST)
                    })
                },
                close_idle,
            )
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
        self.audit.record_in_background(
            self.leases.database(),
            NewEntry::system(PREDICTIVE_CLEANUP, arguments, result),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Database, DatabaseUrl, PoolSettings, RunContext, predict::Growth, tasks::RetryPolicy,
    };

    fn alarm() -> Alarm {
        Alarm {
            since: chrono::Utc::now(),
            eta_secs: 42.0,
            per_minute: 6.0,
            growing: vec![Growth {
                application: "psql".into(),
                user: "hog".into(),
                from: 2,
                to: 9,
            }],
        }
    }

    fn view(alarm: Option<Alarm>) -> ForecastView {
        ForecastView {
            read_at: chrono::Utc::now(),
            used: 12,
            usable: 17,
            trend: None,
            alarm,
            horizon_secs: 300,
            acting: true,
        }
    }

    /// A raised alarm takes back the lease held past its task's usual run (none yet: 5 s) and
    /// keeps the fresh one, defers scheduled runs, and writes what it did with the forecast;
    /// the alarm clearing lets the runs go and is written too.
    #[tokio::test]
    async fn a_raised_alarm_takes_back_long_held_leases_defers_runs_and_audits_the_forecast() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(
            &DatabaseUrl::Sqlite(dir.path().join("respond.db")),
            &PoolSettings {
                min_connections: 0,
                ..PoolSettings::default()
            },
        )
        .await
        .unwrap();
        db.migrate().await.unwrap();
        let leases = LeaseManager::new(db.clone(), Duration::from_secs(30), Duration::from_secs(1));
        let tasks = TaskManager::with_jobs(
            leases.clone(),
            Vec::new(),
            RetryPolicy::default(),
            "test".into(),
        );
        let audit = Arc::new(AuditLog::load(&db).await.unwrap());
        let (defer, deferred) = watch::channel(false);
        let responder = Responder {
            leases: leases.clone(),
            tasks,
            audit: Arc::clone(&audit),
            defer,
        };
        let long = RunContext::new("leaky", 1);
        let _long_held = leases.acquire(&long).await.unwrap();
        tokio::time::sleep(LONG_HELD_AT_LEAST + Duration::from_millis(200)).await;
        let fresh = RunContext::new("status_transitions", 2);
        let _fresh = leases.acquire(&fresh).await.unwrap();

        let raised = alarm();
        responder
            .respond(&Change::Raised(raised.clone()), &view(Some(raised)))
            .await;
        assert!(
            long.revoked().is_some(),
            "the long-held lease is taken back"
        );
        assert!(
            fresh.revoked().is_none(),
            "a lease held briefly is left alone"
        );
        assert_eq!(
            leases
                .leases()
                .iter()
                .map(|l| l.task.as_str())
                .collect::<Vec<_>>(),
            ["status_transitions"]
        );
        assert!(*deferred.borrow(), "scheduled runs wait");

        responder.respond(&Change::Cleared, &view(None)).await;
        assert!(!*deferred.borrow(), "deferred runs go ahead");

        // The entries are written off the sampling loop.
        let started = std::time::Instant::now();
        let entries = loop {
            let entries = audit.recent(10);
            if entries.len() == 2 || started.elapsed() > Duration::from_secs(5) {
                break entries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(entries.len(), 2, "{entries:?}");
        let find = |part: &str| {
            entries
                .iter()
                .find(|e| e.record.arguments.contains(part))
                .unwrap_or_else(|| panic!("an entry with {part}: {entries:?}"))
        };
        let (acted, cleared) = (find("eta_secs"), find("cleared"));
        for entry in [cleared, acted] {
            assert_eq!(entry.record.role, leasewatch_types::Actor::System);
            assert_eq!(entry.record.action, PREDICTIVE_CLEANUP);
        }
        let arguments: serde_json::Value = serde_json::from_str(&acted.record.arguments).unwrap();
        assert_eq!(arguments["eta_secs"], 42.0);
        assert_eq!(arguments["usable"], 17);
        assert_eq!(arguments["growing"], "psql (user hog) 2 → 9");
        assert!(
            acted
                .record
                .result
                .starts_with("revoked 1 lease held by leaky"),
            "{}",
            acted.record.result
        );
        assert!(
            acted
                .record
                .result
                .contains("deferred while the forecast holds")
        );
        assert!(
            cleared
                .record
                .result
                .starts_with("exhaustion no longer predicted")
        );
    }
}
