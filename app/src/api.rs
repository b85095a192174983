//! Server functions the dashboard calls. Each body is thin: it reads in-process engine state
//! or the history, or hands an action to the engine, through [`ssr`], which exists only on the
//! server (where the history pages read theirs too). They
//! sit behind the same authentication as the API (the server's middleware): any logged-in role
//! may read, only the operator may act.

use leptos::prelude::*;

use crate::wire::{
    ActionName, ControlOutcome, Dashboard, PollSamples, Read, SamplesQuery, SpanSamples,
};

/// Everything the dashboard shows, from in-process state, with the in-memory samples the
/// charts draw (`samples`; the last 15 minutes when not given), at most [`MAX_CHART_POINTS`]
/// of them so a poll stays small. Longer spans come from the history through
/// [`read_samples`], at the charts' own pace, never with the poll.
///
/// [`MAX_CHART_POINTS`]: crate::wire::MAX_CHART_POINTS
#[server(endpoint = "dashboard")]
pub async fn get_dashboard(
    /// Which samples to bring.
    samples: Option<PollSamples>,
) -> Result<Dashboard, ServerFnError> {
    use self::ssr::*;
    let state = expect_context::<AppState>();
    let role = caller_role().await?;
    Ok(dashboard(&state, role, samples.unwrap_or_default()))
}

/// Pool and server samples over the span `query` asks for, from the history (every instance
/// writing to the database, added up), at most [`MAX_CHART_POINTS`] of them.
///
/// [`MAX_CHART_POINTS`]: crate::wire::MAX_CHART_POINTS
#[server(endpoint = "history_samples")]
pub async fn read_samples(
    /// The span: a range ending now, or from and to.
    query: SamplesQuery,
) -> Result<Read<SpanSamples>, ServerFnError> {
    use self::ssr::*;
    let state = expect_context::<AppState>();
    caller_role().await?;
    Ok(span_samples(&state, &query).await)
}

/// Takes a control action (`start`, `stop`, `cleanup`, `emergency_cleanup`, `run_now`,
/// `pause`, `resume`, `test_notification`); stop and the cleanups with `dry_run` only preview.
#[server(endpoint = "control")]
pub async fn control(
    /// The action.
    action: ActionName,
    /// The task, for run_now, pause and resume.
    task: Option<String>,
    /// Preview only, for the cleanups.
    dry_run: Option<bool>,
    /// For emergency_cleanup, the one database to act on; every one when absent.
    target: Option<String>,
) -> Result<ControlOutcome, ServerFnError> {
    use self::ssr::*;
    let state = expect_context::<AppState>();
    let role = caller_role().await?;
    let parsed = Action::new(action, task, dry_run, target).map_err(refused)?;
    let client = client_address().await;
    let done = state
        .engine
        .perform(&parsed, role, &client)
        .await
        .map_err(refused)?;
    Ok(ControlOutcome {
        action,
        dry_run: dry_run.unwrap_or(false),
        message: done.message,
    })
}

/// Server-only state, the caller's identity, and the mapping from engine types to wire types.
#[cfg(feature = "ssr")]
pub mod ssr {
    use std::{net::SocketAddr, sync::Arc, time::Duration};

    use axum::{
        Extension,
        extract::{ConnectInfo, FromRef},
    };
    use chrono::Utc;
    pub use leasewatch_engine::control::{Action, ControlError, Role};
    use leasewatch_engine::{
        Backend, Engine, ServerView,
        alert::AlertsView,
        audit::{AuditEntry, AuditSearch},
        history::{RunSearch, SampleSpan, StoredRun, bucket_ms},
        predict::ForecastView,
        query::{self, InvalidQuery},
        targets::TargetStatus,
        tasks::{SchedulePreview, TaskState, TaskView, Trigger},
    };
    use leptos::{config::LeptosOptions, prelude::ServerFnError};

    use crate::wire::{
        Advice, Alerts, AttemptRow, AuditPage, AuditQuery, AuditRow, ChartRange, Dashboard,
        FiringRow, Forecast, ForecastTrend, LeaseRow, LeaseUseRow, NotificationRow, PollSamples,
        PoolCard, Read, ReceiverRow, Refusal, Retry, RotationEvent, RunDetail, RunDot, RunRow,
        RunsPage, RunsQuery, RunsView, SAMPLE_EVERY_MS, Sample, SamplesQuery, SpanSamples,
        StatusCount, TargetCard, TaskRow, TimedLine, chart_bucket_ms,
    };

    /// What every request handler and server function can reach.
    #[derive(Clone, FromRef)]
    pub struct AppState {
        /// Leptos's site options (asset paths, address).
        pub leptos_options: LeptosOptions,
        /// The running engine.
        pub engine: Arc<Engine>,
        /// How often the dashboard polls.
        pub poll_every: Duration,
    }

    /// The caller's role, put on the request by the authentication middleware.
    pub async fn caller_role() -> Result<Role, ServerFnError> {
        let Extension(role) = leptos_axum::extract::<Extension<Role>>()
            .await
            .map_err(|_| ServerFnError::new("not logged in"))?;
        Ok(role)
    }

    /// The client's address, for the audit log.
    pub async fn client_address() -> String {
        leptos_axum::extract::<Extension<ConnectInfo<SocketAddr>>>()
            .await
            .map_or_else(|_| "unknown".to_owned(), |info| info.0.0.to_string())
    }

    /// A refusal as the dashboard shows it, with the HTTP status the API would give.
    pub fn refused(err: ControlError) -> ServerFnError {
        use axum::http::StatusCode;
        let status = match &err {
            ControlError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ControlError::Forbidden => StatusCode::FORBIDDEN,
            ControlError::Conflict { .. } => StatusCode::CONFLICT,
        };
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(status);
        }
        ServerFnError::new(err.to_string())
    }

    /// Builds the dashboard from in-process state only, with the in-memory `samples`.
    pub fn dashboard(state: &AppState, role: Role, samples: PollSamples) -> Dashboard {
        let engine = &state.engine;
        let db = engine.database();
        let leases = engine.leases();
        let snapshot = leases.snapshot();
        let now_ms = Utc::now().timestamp_millis();
        let auctions = engine.auctions();
        let targets = engine.targets().status();
        Dashboard {
            taken_at_ms: snapshot.taken_at.timestamp_millis(),
            role,
            poll_ms: u64::try_from(state.poll_every.as_millis()).unwrap_or(2_000),
            backend: db.backend().to_string(),
            database: db.url().to_string(),
            scheduler_running: engine.tasks().is_running(),
            pool: PoolCard {
                total: snapshot.total,
                idle: snapshot.idle,
                active: snapshot.active,
                waiting: snapshot.waiting,
                stale: snapshot.stale,
                max: snapshot.max,
                min: snapshot.min,
                acquire_timeouts: snapshot.acquire_timeouts,
                p95_ms: snapshot.acquire_latency.p95_ms,
            },
            history: samples
                .range()
                .map(|range| history(leases, now_ms, range))
                .unwrap_or_default(),
            leases: lease_rows(&targets),
            targets: targets.into_iter().map(target_card).collect(),
            tasks: engine.tasks().tasks().into_iter().map(task_row).collect(),
            recommendations: advice(engine),
            schedule_preview: schedule_line(engine.schedule_preview()),
            audit: engine
                .audit()
                .recent(20)
                .into_iter()
                .map(audit_row)
                .collect(),
            auctions: auctions
                .counts
                .0
                .iter()
                .map(|(status, count)| StatusCount {
                    status: *status,
                    count: *count,
                })
                .collect(),
            server: match leases.server_view() {
                ServerView::Unknown => TimedLine::plain("not read yet (the health check reads it)"),
                ServerView::NotApplicable { reason } => TimedLine::plain(reason),
                ServerView::Postgres(v) => TimedLine {
                    before: format!(
                        "{} of {} connections in use ({} reserved), {} idle in transaction, read ",
                        v.client_connections,
                        v.max_connections,
                        v.reserved_connections,
                        v.idle_in_transaction,
                    ),
                    at_ms: Some(v.read_at.timestamp_millis()),
                    after: String::new(),
                },
            },
            server_applies: db.backend() == Backend::Postgres,
            forecast: engine.forecast().map(forecast),
            alerts: alerts(engine.alerts()),
        }
    }

    /// The leases held on every database, oldest first (the longest held first, the primary's
    /// first among equals).
    pub fn lease_rows(targets: &[TargetStatus]) -> Vec<LeaseRow> {
        let mut rows: Vec<LeaseRow> = targets
            .iter()
            .flat_map(|t| {
                t.leases.iter().map(|l| LeaseRow {
                    id: l.id,
                    task: l.task.clone(),
                    run_id: l.run_id,
                    backend_pid: l.backend_pid,
                    held_ms: l.held_ms,
                    stale: l.stale,
                    target: t.target,
                })
            })
            .collect();
        // One database's leases are oldest first already; with several, merge them.
        if targets.len() > 1 {
            rows.sort_by_key(|row| std::cmp::Reverse(row.held_ms));
        }
        rows
    }

    /// A database as the Databases section shows it: its health in words, its pool and its
    /// bans and recoveries.
    pub fn target_card(status: TargetStatus) -> TargetCard {
        TargetCard {
            target: status.target,
            address: status.address,
            in_rotation: status.in_rotation,
            out: status.out.map(|reason| reason.to_string()),
            since_ms: status.since.timestamp_millis(),
            lag_secs: status.lag_secs,
            open: status.pool.total,
            idle: status.pool.idle,
            active: status.pool.active,
            limit: status.governor.limit,
            max: status.pool.max,
            leases: status.pool.leases,
            stale: status.pool.stale,
            bans: status.bans,
            events: status
                .events
                .into_iter()
                .map(|e| RotationEvent {
                    at_ms: e.at.timestamp_millis(),
                    out: e.out.map(|reason| reason.to_string()),
                })
                .collect(),
        }
    }

    /// The alerts as the page shows them: only the newest notifications.
    pub fn alerts(view: AlertsView) -> Alerts {
        Alerts {
            instance: view.instance,
            receivers: view
                .receivers
                .into_iter()
                .map(|r| ReceiverRow {
                    name: r.name,
                    kind: r.kind,
                    delivered: r.delivered,
                    failed_attempts: r.failed_attempts,
                    superseded: r.superseded,
                    dropped: r.dropped,
                })
                .collect(),
            firing: view
                .firing
                .into_iter()
                .map(|a| FiringRow {
                    name: a.name,
                    severity: a.severity,
                    task: a.task,
                    summary: a.summary,
                    since_ms: a.starts_at.timestamp_millis(),
                })
                .collect(),
            notifications: view
                .notifications
                .into_iter()
                .take(Alerts::SHOWN)
                .map(|n| NotificationRow {
                    at_ms: n.created_at.timestamp_millis(),
                    receiver: n.receiver,
                    kind: n.kind,
                    alerts: n.alerts,
                    status: n.status,
                    attempts: n.attempts,
                    last_error: n.last_error,
                    next_attempt_ms: n.next_attempt_at.map(|at| at.timestamp_millis()),
                })
                .collect(),
            queued: u32::try_from(view.queued).unwrap_or(u32::MAX),
        }
    }

    /// The schedule preview's line with the peak's time apart. The engine writes it as "… at
    /// 14:07 UTC …" (the only " at " before the time, which ends at " UTC"); a line without
    /// a peak stays whole.
    pub fn schedule_line(preview: SchedulePreview) -> TimedLine {
        let split = preview.line.split_once(" at ").and_then(|(before, rest)| {
            let (_, after) = rest.split_once(" UTC")?;
            Some((format!("{before} at "), after.to_owned()))
        });
        match split {
            Some((before, after)) if preview.peak > 0 => TimedLine {
                before,
                at_ms: Some(preview.at.timestamp_millis()),
                after,
            },
            _ => TimedLine::plain(preview.line),
        }
    }

    /// An audit entry as the page shows it.
    fn audit_row(e: AuditEntry) -> AuditRow {
        AuditRow {
            at_ms: e.at.timestamp_millis(),
            role: e.record.role,
            dry_run: e.record.is_dry_run(),
            action: e.record.action,
            arguments: e.record.arguments,
            outcome: e.record.outcome,
            // Identical refusals within a minute are one entry: say how many.
            result: if e.count > 1 {
                format!("{} (×{})", e.record.result, e.count)
            } else {
                e.record.result
            },
        }
    }

    /// The in-memory samples over `range` up to `now_ms`: each one for 15 minutes, the busiest
    /// per bucket beyond (an hour is 180 points of 20 s, not 720), so a poll stays as small as
    /// the 15-minute one.
    fn history(
        leases: &leasewatch_engine::LeaseManager,
        now_ms: i64,
        range: ChartRange,
    ) -> Vec<Sample> {
        let span_ms = range.secs() * 1000;
        let samples = leases
            .history()
            .into_iter()
            .filter(|s| now_ms - s.taken_at.timestamp_millis() <= span_ms)
            .map(|s| Sample {
                at_ms: s.taken_at.timestamp_millis(),
                active: s.active,
                idle: s.idle,
                waiting: s.waiting,
                p95_ms: s.window_p95_ms,
                limit: s.limit,
                budget: s.budget,
                server_clients: s.server_connections,
                server_usable: s.server_usable,
            })
            .collect();
        coarsen(samples, chart_bucket_ms(span_ms, SAMPLE_EVERY_MS))
    }

    /// `samples` (oldest first) as one per `bucket_ms` of the clock, the busiest of each: the
    /// most in use, idle and waiting, the worst latency and server use, the tightest limit and
    /// budget (as the history's own buckets are read). Samples already a bucket apart pass as
    /// they are.
    pub fn coarsen(samples: Vec<Sample>, bucket_ms: i64) -> Vec<Sample> {
        let bucket = bucket_ms.max(1);
        let mut out: Vec<Sample> = Vec::with_capacity(samples.len().min(512));
        for s in samples {
            let at_ms = s.at_ms.div_euclid(bucket) * bucket;
            match out.last_mut() {
                Some(last) if last.at_ms == at_ms => {
                    let worse = |a: Option<f64>, b: Option<f64>| match (a, b) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                    last.active = last.active.max(s.active);
                    last.idle = last.idle.max(s.idle);
                    last.waiting = last.waiting.max(s.waiting);
                    last.p95_ms = worse(last.p95_ms, s.p95_ms);
                    last.limit = last.limit.min(s.limit);
                    last.budget = match (last.budget, s.budget) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    last.server_clients = last.server_clients.max(s.server_clients);
                    last.server_usable = last.server_usable.max(s.server_usable);
                }
                _ => out.push(Sample { at_ms, ..s }),
            }
        }
        out
    }

    /// Why a read of the history failed, logged; the page says the database cannot be read.
    fn unavailable<T>(what: &str, err: impl std::fmt::Display) -> Read<T> {
        tracing::warn!(%err, "cannot read {what}");
        Read::Unavailable
    }

    fn refusal(err: InvalidQuery) -> Refusal {
        Refusal::new(err.field, err.message)
    }

    /// The samples over the span `query` asks for, from the history.
    pub async fn span_samples(state: &AppState, query: &SamplesQuery) -> Read<SpanSamples> {
        let span = match SampleSpan::parse(query, Utc::now()) {
            Ok(span) => span,
            Err(err) => return Read::Refused(refusal(err)),
        };
        let engine = &state.engine;
        let stored = match engine
            .history()
            .samples(engine.database(), span.from, span.to)
            .await
        {
            Ok(stored) => stored,
            Err(err) => return unavailable("the history's samples", err),
        };
        let (from_ms, to_ms) = (span.from.timestamp_millis(), span.to.timestamp_millis());
        // A whole number of the history's buckets per point, so they merge whole.
        let bucket_ms = chart_bucket_ms(to_ms - from_ms, bucket_ms(to_ms - from_ms));
        let samples = stored
            .iter()
            .map(|s| Sample {
                at_ms: s.at_ms,
                active: s.active,
                idle: s.idle,
                waiting: s.waiting,
                p95_ms: s.p95_ms,
                limit: s.limit,
                budget: s.budget,
                server_clients: s.server_clients,
                server_usable: s.server_usable,
            })
            .collect();
        Read::Found(SpanSamples {
            from_ms,
            to_ms,
            ends_now: span.ends_now,
            bucket_ms,
            samples: coarsen(samples, bucket_ms),
        })
    }

    /// A run as the runs page lists it.
    fn run_row(run: StoredRun) -> RunRow {
        RunRow {
            instance: run.instance,
            host: run.host,
            task: run.task,
            run_id: run.run_id,
            manual: run.trigger == Trigger::Manual,
            scheduled_at_ms: run.scheduled_at.map(|at| at.timestamp_millis()),
            started_at_ms: run.started_at.timestamp_millis(),
            duration_ms: run.duration_ms,
            outcome: run.outcome,
            failure: run.failure,
            detail: run.detail,
            rows: run.rows,
            attempts: run.attempts,
            leases: run.leases,
        }
    }

    /// The names of this instance's tasks.
    pub fn task_names(state: &AppState) -> Vec<String> {
        state
            .engine
            .tasks()
            .tasks()
            .into_iter()
            .map(|t| t.name)
            .collect()
    }

    /// The runs `query` asks for, and the task names for the filter.
    pub async fn runs(state: &AppState, query: &RunsQuery) -> RunsView {
        let engine = &state.engine;
        let tasks = task_names(state);
        let found = match RunSearch::parse(query) {
            Err(err) => Read::Refused(refusal(err)),
            Ok(search) => match engine.history().runs(engine.database(), &search).await {
                Ok(page) => Read::Found(RunsPage {
                    runs: page.runs.into_iter().map(run_row).collect(),
                    next: page.next.map(|cursor| cursor.to_string()),
                }),
                Err(err) => unavailable("the run history", err),
            },
        };
        RunsView { tasks, found }
    }

    /// One run with its attempts.
    pub async fn run(state: &AppState, instance: &str, run_id: u64) -> Read<RunDetail> {
        let given = Some(instance.to_owned());
        if let Err(err) = query::name("instance", &given) {
            return Read::Refused(refusal(err));
        }
        let engine = &state.engine;
        match engine
            .history()
            .run_detail(engine.database(), instance, run_id)
            .await
        {
            Ok(Some(detail)) => Read::Found(RunDetail {
                run: run_row(detail.run),
                deferred_ms: detail.record.deferred_ms,
                attempts: detail
                    .record
                    .attempt_log
                    .into_iter()
                    .map(|a| AttemptRow {
                        number: a.number,
                        started_at_ms: a.started_at.timestamp_millis(),
                        duration_ms: a.duration_ms,
                        error: a.error,
                        failure: a.failure,
                        retry_delay_ms: a.retry_delay_ms,
                        leases: a
                            .leases
                            .into_iter()
                            .map(|l| LeaseUseRow {
                                lease_id: l.lease_id,
                                backend_pid: l.backend_pid,
                                waited_ms: l.waited_ms,
                            })
                            .collect(),
                    })
                    .collect(),
            }),
            Ok(None) => Read::Missing,
            Err(err) => unavailable("the run history", err),
        }
    }

    /// The audit entries `query` asks for.
    pub async fn audit(state: &AppState, query: &AuditQuery) -> Read<AuditPage> {
        let search = match AuditSearch::parse(query) {
            Ok(search) => search,
            Err(err) => return Read::Refused(refusal(err)),
        };
        let engine = &state.engine;
        match engine.audit().page(engine.database(), &search).await {
            Ok(page) => Read::Found(AuditPage {
                entries: page.entries.into_iter().map(audit_row).collect(),
                next_before: page.next_before,
            }),
            Err(err) => unavailable("the audit log", err),
        }
    }

    /// The engine's forecast as the chart reads it.
    fn forecast(view: ForecastView) -> Forecast {
        Forecast {
            read_at_ms: view.read_at.timestamp_millis(),
            used: view.used,
            usable: view.usable,
            trend: view.trend.map(|t| ForecastTrend {
                level: t.level,
                per_minute: t.per_minute,
                fit: t.fit,
                window_secs: t.window_secs,
                eta_secs: t.eta_secs,
            }),
            horizon_secs: view.horizon_secs,
            alarm_since_ms: view.alarm.map(|a| a.since.timestamp_millis()),
            acting: view.acting,
        }
    }

    /// The recommendations now, as the page shows them.
    pub fn advice(engine: &Engine) -> Vec<Advice> {
        engine
            .recommendations()
            .into_iter()
            .map(|r| Advice {
                id: r.id,
                severity: r.severity,
                title: r.title,
                detail: r.detail,
                action: r.action,
                cleared_at_ms: r.cleared_at.map(|at| at.timestamp_millis()),
            })
            .collect()
    }

    fn task_row(task: TaskView) -> TaskRow {
        let last = task.last.as_ref();
        TaskRow {
            task: task.name.clone(),
            schedule: task.schedule.clone(),
            deferred_since_ms: task.deferred_since.map(|at| at.timestamp_millis()),
            state: task.status(),
            paused: task.paused,
            next_run_at_ms: task.next_run_at.map(|at| at.timestamp_millis()),
            last_outcome: last.map(|r| r.outcome.kind()),
            last_detail: last.map(|r| r.outcome.detail().to_owned()),
            last_run_at_ms: last.map(|r| r.started_at.timestamp_millis()),
            last_duration_ms: last.map(|r| r.duration_ms),
            last_attempts: last.map(|r| r.attempts),
            retry: match &task.state {
                TaskState::Backoff {
                    run_id,
                    next_attempt,
                    max_attempts,
                    until,
                    error,
                } => Some(Retry {
                    run_id: *run_id,
                    next_attempt: *next_attempt,
                    max_attempts: *max_attempts,
                    at_ms: until.timestamp_millis(),
                    error: error.clone(),
                }),
                _ => None,
            },
            runs: task
                .history
                .iter()
                .map(|r| RunDot {
                    at_ms: r.started_at.timestamp_millis(),
                    outcome: r.outcome.kind(),
                })
                .collect(),
            overlap_skips_ms: task
                .overlap_skips
                .iter()
                .map(|at| at.timestamp_millis())
                .collect(),
        }
    }

    #[cfg(test)]
    mod tests {
        use chrono::{TimeZone, Utc};

        use super::*;

        fn preview(peak: u32, line: &str) -> SchedulePreview {
            let at = Utc.with_ymd_and_hms(2026, 12, 2, 14, 7, 0).unwrap();
            SchedulePreview {
                from: at,
                until: at,
                peak,
                at,
                tasks: vec![],
                line: line.to_owned(),
            }
        }

        /// A database's status as the engine gives it (the status API's shape), with
        /// `leases` (id, task, held for ms) on it.
        fn status(
            target: &str,
            out: serde_json::Value,
            leases: &[(u64, &str, u64)],
        ) -> TargetStatus {
            let leases: Vec<serde_json::Value> = leases
                .iter()
                .map(|(id, task, held_ms)| {
                    serde_json::json!({
                        "id": id, "task": task, "run_id": 7, "backend_pid": 4242,
                        "acquired_at": "2026-12-02T14:00:00Z", "held_ms": held_ms, "stale": false
                    })
                })
                .collect();
            serde_json::from_value(serde_json::json!({
                "target": target,
                "address": "db.internal:5433/app",
                "in_rotation": out.is_null(),
                "out": out,
                "since": "2026-12-02T14:03:07.250Z",
                "lag_secs": if out.is_null() { Some(1.5) } else { None },
                "bans": 3,
                "events": [
                    {"at": "2026-12-02T14:03:07.250Z", "out": out},
                    {"at": "2026-12-02T14:01:00Z", "out": null}
                ],
                "pool": {
                    "taken_at": "2026-12-02T14:05:00Z", "total": 3, "idle": 1, "active": 2,
                    "waiting": 0, "leases": leases.len(), "stale": 0, "max": 20, "min": 0,
                    "limit": 4, "utilization": 0.1, "acquire_latency": {},
                    "acquire_timeouts": 0, "issued": 9, "released": 7, "revoked": 0,
                    "per_task": []
                },
                "leases": leases,
                "governor": {
                    "enabled": true, "limit": 4, "share": 6, "held": 2, "queued": 0,
                    "reason": "start", "changed_at": "2026-12-02T14:00:00Z"
                }
            }))
            .expect("a target's status")
        }

        #[test]
        fn a_database_crosses_to_the_page_with_its_health_in_words() {
            let out = serde_json::json!({"kind": "unreachable", "error": "connection refused"});
            let card = target_card(status("replica-2", out, &[]));
            assert_eq!(card.target, leasewatch_types::Target::Replica(2));
            assert_eq!(card.address, "db.internal:5433/app");
            assert!(!card.in_rotation);
            assert_eq!(card.out.as_deref(), Some("unreachable: connection refused"));
            assert_eq!(card.since_ms, 1_796_220_187_250);
            assert_eq!(card.lag_secs, None);
            assert_eq!(
                (card.open, card.idle, card.active, card.limit, card.max),
                (3, 1, 2, 4, 20)
            );
            assert_eq!((card.leases, card.stale, card.bans), (0, 0, 3));
            assert_eq!(
                card.events,
                [
                    RotationEvent {
                        at_ms: 1_796_220_187_250,
                        out: Some("unreachable: connection refused".to_owned())
                    },
                    RotationEvent {
                        at_ms: 1_796_220_060_000,
                        out: None
                    },
                ]
            );
            let lagging =
                serde_json::json!({"kind": "lagging", "lag_secs": 12.0, "max_secs": 10.0});
            assert_eq!(
                target_card(status("replica-1", lagging, &[]))
                    .out
                    .as_deref(),
                Some("replay lags 12.0 s, beyond REPLICA_MAX_LAG (10.0 s)")
            );
            let primary = target_card(status("primary", serde_json::Value::Null, &[]));
            assert!(primary.in_rotation && primary.out.is_none());
            assert_eq!(primary.lag_secs, Some(1.5));
        }

        #[test]
        fn leases_of_every_database_are_listed_oldest_first_with_their_database() {
            use leasewatch_types::Target;
            let primary = status(
                "primary",
                serde_json::Value::Null,
                &[(1, "a", 900), (2, "b", 100)],
            );
            // One database: its own order, untouched.
            let rows = lease_rows(std::slice::from_ref(&primary));
            assert_eq!(
                rows.iter().map(|r| (r.id, r.target)).collect::<Vec<_>>(),
                [(1, Target::Primary), (2, Target::Primary)]
            );
            // Lease numbers are each database's own: both have a #1.
            let replica = status("replica-1", serde_json::Value::Null, &[(1, "c", 500)]);
            let rows = lease_rows(&[primary, replica]);
            assert_eq!(
                rows.iter()
                    .map(|r| (r.id, r.task.as_str(), r.target, r.held_ms))
                    .collect::<Vec<_>>(),
                [
                    (1, "a", Target::Primary, 900),
                    (1, "c", Target::Replica(1), 500),
                    (2, "b", Target::Primary, 100),
                ]
            );
            assert_eq!(rows[1].backend_pid, Some(4242));
        }

        #[test]
        fn the_schedule_line_sets_the_peak_time_apart() {
            assert_eq!(
                schedule_line(preview(
                    1,
                    "next hour: peak 1 at 14:07 UTC (status_transitions)"
                )),
                TimedLine {
                    before: "next hour: peak 1 at ".to_owned(),
                    at_ms: Some(1_796_220_420_000),
                    after: " (status_transitions)".to_owned(),
                }
            );
            let together = schedule_line(preview(
                3,
                "next hour: peak 3 at 14:07:30 UTC, when a, b and c start together",
            ));
            assert_eq!(together.after, ", when a, b and c start together");
            assert_eq!(
                schedule_line(preview(0, "next hour: no runs expected")),
                TimedLine::plain("next hour: no runs expected")
            );
        }
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::ssr::coarsen;
    use crate::wire::Sample;

    fn sample(at_ms: i64, active: u32, p95_ms: Option<f64>, limit: u32) -> Sample {
        Sample {
            at_ms,
            active,
            idle: 1,
            waiting: 0,
            p95_ms,
            limit,
            budget: Some(limit + 1),
            server_clients: None,
            server_usable: None,
        }
    }

    #[test]
    fn coarser_points_keep_the_busiest_moment_and_the_tightest_limit() {
        let samples = vec![
            sample(0, 2, Some(1.0), 8),
            sample(5_000, 7, None, 6),
            sample(10_000, 3, Some(4.0), 9),
            sample(20_000, 1, None, 5),
        ];
        let points = coarsen(samples.clone(), 20_000);
        assert_eq!(points.len(), 2);
        assert_eq!(
            (points[0].at_ms, points[0].active, points[0].p95_ms),
            (0, 7, Some(4.0))
        );
        assert_eq!((points[0].limit, points[0].budget), (6, Some(7)));
        assert_eq!((points[1].at_ms, points[1].active), (20_000, 1));
        // Samples already a bucket apart pass as they are.
        assert_eq!(coarsen(samples.clone(), 5_000), samples);
    }
}
