//! The running engine: the database plus the in-process state the dashboard reads.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use leasewatch_types::{ActionName, Target};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{
    alert::{AlertSettings, Alerting, AlertsView},
    auctions::{self, StatusCounts},
    audit::{AuditLog, NewEntry},
    db::{
        Backend, Database, DatabaseUrl, DbError, REPLICA_ACQUIRE_TIMEOUT, TASKS_APPLICATION_PREFIX,
    },
    governor::{self, Budget, Governor, GovernorSettings, Headroom},
    history::{History, HistoryRetention},
    lease::RunLimits,
    lease::{CleanupReport, LeaseManager, PoolSnapshot},
    predict::{Change, ForecastView, PredictSettings, Predictor, Responder},
    recommend::{self, Hysteresis, Inputs, Recommendation, Thresholds},
    server_view::{PgServerView, ServerView},
    settings::{GovernorConfig, PoolSettings, TaskIntervals, default_task_limits},
    targets::{PROBE_EVERY, ReplicaSettings, Targets},
    tasks::{
        self, JobSpec, RetryPolicy, Schedule, SchedulePreview, TaskManager,
        declared::DeclaredTasks, jobs::LeakyReport,
    },
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
    /// When each recommendation fires and how long it must hold (the `REC_*` variables).
    pub thresholds: Thresholds,
    /// Demo only: add a `leaky_report` task that holds its connection too long.
    pub demo_leak: Option<DemoLeak>,
    /// The connection-budget governor.
    pub governor: GovernorConfig,
    /// Each task's lease timeout and priority, by name.
    pub task_limits: BTreeMap<String, RunLimits>,
    /// The exhaustion forecast: its horizon and whether the engine acts on it.
    pub predict: PredictSettings,
    /// Tasks that run on a schedule of their own (`TASK_<NAME>_SCHEDULE`, a cron expression)
    /// instead of their interval, by name.
    pub schedules: BTreeMap<String, Schedule>,
    /// Where alerts are sent, and when.
    pub alerts: AlertSettings,
    /// How long run history and pool samples are kept (`HISTORY_RETENTION`).
    pub history_retention: Duration,
    /// The operator's own SQL tasks (`LEASEWATCH_TASKS`).
    pub declared: DeclaredTasks,
    /// Whether the built-in auction tasks (status transitions, auction monitor, health check)
    /// run; `history_retention` always does.
    pub builtin_tasks: bool,
    /// Read replicas of `database` (`DATABASE_REPLICA_URLS`, PostgreSQL only), in order:
    /// `replica-1`, `replica-2`, ...
    pub replicas: Vec<DatabaseUrl>,
    /// How replicas are watched and used (`REPLICA_MAX_LAG`, `REPLICA_FALLBACK`).
    pub replica: ReplicaSettings,
}

impl EngineConfig {
    /// The engine on `database` with every other setting at its documented default (the
    /// README's Configuration table): no demo data, no demo leak. Override fields with struct
    /// update syntax, `EngineConfig { pool, ..EngineConfig::new(database) }`.
    pub fn new(database: DatabaseUrl) -> Self {
        Self {
            database,
            pool: PoolSettings::default(),
            intervals: TaskIntervals::default(),
            retry: RetryPolicy::default(),
            demo: false,
            thresholds: Thresholds::default(),
            demo_leak: None,
            governor: GovernorConfig::default(),
            task_limits: default_task_limits(),
            predict: PredictSettings::default(),
            schedules: BTreeMap::new(),
            alerts: AlertSettings::default(),
            history_retention: HISTORY_RETENTION,
            declared: DeclaredTasks::default(),
            builtin_tasks: true,
            replicas: Vec::new(),
            replica: ReplicaSettings::default(),
        }
    }
}

/// The demo's `leaky_report` task: how often it runs and how long each run sits on its
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoLeak {
    /// How often it runs (`DEMO_LEAK_EVERY`).
    pub every: Duration,
    /// How long each run keeps its connection (`DEMO_LEAK_HOLD`).
    pub hold: Duration,
    /// Each run returns at once and leaves its connection behind for `hold`, so leaked
    /// connections pile up, one per run (`DEMO_LEAK_PILE_UP`); otherwise the run itself waits.
    pub pile_up: bool,
}

impl DemoLeak {
    /// How often the demo's `leaky_report` runs by default.
    pub const EVERY: Duration = Duration::from_secs(20);

    /// The demo's leak: every [`DemoLeak::EVERY`], the run holding its connection for `hold`.
    pub fn holding(hold: Duration) -> Self {
        Self {
            every: Self::EVERY,
            hold,
            pile_up: false,
        }
    }
}

/// Auction counts as last read from the database, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuctionsView {
    /// Auctions per status.
    pub counts: StatusCounts,
    /// When the counts were read.
    pub as_of: DateTime<Utc>,
}

/// How long history is kept by default.
pub const HISTORY_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

/// How often `history_retention` runs.
pub const HISTORY_RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Number of auctions `--demo` seeds.
const DEMO_AUCTIONS: u32 = 12;

/// How often a snapshot goes into the history ring (an hour of them is kept).
pub(crate) const HISTORY_EVERY: Duration = Duration::from_secs(5);

/// How often the recommendations are evaluated.
pub(crate) const RECOMMEND_EVERY: Duration = Duration::from_secs(1);

/// How often the server's connection use is read over the control pool (PostgreSQL): the
/// governor's share follows it, and the web app may grow by the headroom in between.
pub(crate) const SERVER_SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// How far ahead the schedule preview looks.
pub const SCHEDULE_PREVIEW_SPAN: Duration = Duration::from_secs(3600);

/// How old a schedule preview may be before it is computed again (the dashboard's default
/// poll interval).
pub const SCHEDULE_PREVIEW_FRESH: Duration = Duration::from_secs(2);

/// How long a stop (or SIGTERM) waits for runs in flight before cancelling them.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The engine. Readers (the dashboard, the API) only ever see in-process state: they never take
/// a database connection, so watching the pool cannot add to its pressure.
pub struct Engine {
    /// When the last emergency cleanup ran (they are rate-limited).
    pub(crate) last_emergency: Mutex<Option<std::time::Instant>>,
    /// The last schedule preview: computed at most once per [`SCHEDULE_PREVIEW_FRESH`], not
    /// on every dashboard poll (an hour of 1-second tasks is thousands of runs to sweep).
    schedule_preview: Mutex<Option<SchedulePreview>>,
    /// The primary's lease manager (`leases()`) and the read replicas'.
    targets: Targets,
    tasks: TaskManager,
    audit: Arc<AuditLog>,
    advisor: Arc<Advisor>,
    alerting: Alerting,
    history: History,
    /// The alert delivery loop: shutdown waits for its last delivery and write.
    delivering: Mutex<Option<tokio::task::JoinHandle<()>>>,
    config: EngineConfig,
    /// The counts read at start-up, until a task reads them again.
    startup_auctions: AuctionsView,
    shutdown: CancellationToken,
}

impl Engine {
    /// Connects, migrates, seeds demo data when asked, and reads the first auction counts.
    /// With jobs of your own, start through [`Engine::builder`].
    pub async fn start(config: EngineConfig) -> Result<Self, DbError> {
        Self::start_with(config, Vec::new()).await
    }

    /// [`Engine::start`] with `custom` jobs beside the built-in ones (checked by
    /// [`crate::builder::EngineBuilder`]: valid names, no clash).
    pub(crate) async fn start_with(
        mut config: EngineConfig,
        custom: Vec<JobSpec>,
    ) -> Result<Self, DbError> {
        // Unique among the instances sharing a database over the history's retention: it keys
        // their run history.
        let instance = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        config.pool.application_name = format!("{TASKS_APPLICATION_PREFIX}:{instance}");
        let governed = config.governor.enabled && config.database.backend() == Backend::Postgres;
        if governed {
            // Idle connections above the limit are closed when the share shrinks; a pool
            // minimum above one would open them again at once.
            config.pool.min_connections = config.pool.min_connections.min(1);
        }
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
        let audit = Arc::new(AuditLog::load(&db).await?);
        let host = host_name();
        let alerting = Alerting::load(
            &db,
            config.alerts.clone(),
            host.as_deref().unwrap_or("leasewatch"),
            config.thresholds.clear,
        )
        .await?;
        let db_for_audit = db.clone();
        // Each target its own governor: from the floor up, since an instance starting beside
        // a busy web app must not take what the server does not have before it has read it.
        let governor = || {
            Governor::new(GovernorSettings {
                enabled: governed,
                headroom: config.governor.headroom,
                max: config.pool.max_connections,
                start: 1,
                slow_wait: config.pool.connect_timeout / 4,
            })
        };
        let leases = LeaseManager::governed(
            db,
            config.pool.lease_timeout,
            config.pool.connect_timeout,
            governor(),
        );
        let mut replicas = Vec::with_capacity(config.replicas.len());
        for url in &config.replicas {
            replicas.push(LeaseManager::governed(
                Database::connect_replica(url, &config.pool).await?,
                config.pool.lease_timeout,
                config.pool.connect_timeout.min(REPLICA_ACQUIRE_TIMEOUT),
                governor(),
            ));
        }
        let targets = Targets::new(leases.clone(), replicas, config.replica);
        if targets.has_replicas() {
            // Reads go to the replicas that answer from the first run on.
            targets.probe().await;
        }
        let shutdown = CancellationToken::new();
        let mut jobs = if config.builtin_tasks {
            tasks::jobs::standard_jobs(&config.intervals)
        } else {
            Vec::new()
        };
        jobs.push((
            leasewatch_types::task::HISTORY_RETENTION.to_owned(),
            HISTORY_RETENTION_EVERY,
            Arc::new(HistoryRetention {
                retention: config.history_retention,
            }),
        ));
        if let Some(DemoLeak {
            every,
            hold,
            pile_up,
        }) = config.demo_leak
        {
            jobs.push((
                leasewatch_types::task::LEAKY_REPORT.to_owned(),
                every,
                Arc::new(LeakyReport { hold, pile_up }),
            ));
        }
        jobs.extend(config.declared.jobs());
        jobs.extend(custom);
        let tasks = TaskManager::with_jobs(
            targets.clone(),
            jobs,
            config.retry,
            format!("leasewatch-{instance}"),
        );
        if governed {
            // The first share before the first run.
            for (_, leases) in targets.all() {
                read_server(leases, &instance, config.governor.headroom).await;
            }
        }
        for (task, limits) in &config.task_limits {
            // The configuration names only tasks that exist; the demo's may be absent.
            let _ = tasks.set_limits(task, *limits);
        }
        if let Some(host) = &host {
            tasks.set_phase_key(host);
        }
        let history = History::new(instance.clone(), host.as_deref().unwrap_or("unknown"));
        tasks.record_runs_to(history.clone());
        for (task, schedule) in &config.schedules {
            // Likewise: only tasks that exist are named (the built-ins may be off).
            let _ = tasks.set_schedule(task, schedule.clone());
        }
        if let Err(err) = config.declared.configure(&tasks) {
            // Cannot happen: every declared task is among the jobs above.
            tracing::error!(%err, "a declared task could not be configured");
        }
        tasks.start();
        let predictor = Arc::new(Mutex::new(Predictor::new(config.predict)));
        let advisor = Arc::new(Advisor {
            thresholds: config.thresholds,
            predictor: Arc::clone(&predictor),
            state: Mutex::new((Hysteresis::default(), Vec::new())),
            alerting: alerting.clone(),
        });
        advisor.evaluate(&targets, &tasks);
        let delivering = tokio::spawn(alerting.clone().run(db_for_audit.clone(), shutdown.clone()));
        tokio::spawn(history.clone().run(db_for_audit.clone(), shutdown.clone()));
        tokio::spawn(flush_audit(
            Arc::clone(&audit),
            db_for_audit.clone(),
            shutdown.clone(),
        ));
        if config.database.backend() == Backend::Postgres {
            let (defer, deferred) = tokio::sync::watch::channel(false);
            tasks.defer_scheduled_while(deferred);
            let responder = config.predict.act.then(|| Responder {
                leases: leases.clone(),
                tasks: tasks.clone(),
                audit: Arc::clone(&audit),
                defer,
            });
            tokio::spawn(sample_server(
                targets.clone(),
                tasks.clone(),
                instance.clone(),
                config.governor.headroom,
                Arc::clone(&advisor),
                responder,
                shutdown.clone(),
            ));
        }
        if governed {
            for (_, leases) in targets.all() {
                tokio::spawn(govern(leases.clone(), shutdown.clone()));
            }
        }
        if targets.has_replicas() {
            tokio::spawn(watch_targets(
                targets.clone(),
                Arc::clone(&audit),
                db_for_audit.clone(),
                instance.clone(),
                governed.then_some(config.governor.headroom),
                shutdown.clone(),
            ));
        }
        tokio::spawn(maintain(
            targets.clone(),
            tasks.clone(),
            Arc::clone(&advisor),
            Arc::clone(&audit),
            history.clone(),
            config.intervals.cleanup,
            shutdown.clone(),
        ));
        Ok(Self {
            last_emergency: Mutex::new(None),
            schedule_preview: Mutex::new(None),
            targets,
            tasks,
            audit,
            advisor,
            alerting,
            history,
            delivering: Mutex::new(Some(delivering)),
            config,
            startup_auctions,
            shutdown,
        })
    }

    /// The database and its pool.
    pub fn database(&self) -> &Database {
        self.targets.primary().database()
    }

    /// The primary's lease manager: where every write takes its connections (and every task,
    /// without replicas).
    pub fn leases(&self) -> &LeaseManager {
        self.targets.primary()
    }

    /// The primary and the read replicas.
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The background tasks.
    pub fn tasks(&self) -> &TaskManager {
        &self.tasks
    }

    /// What the rules recommend now, worst first; no database access.
    pub fn recommendations(&self) -> Vec<Recommendation> {
        self.advisor.current()
    }

    /// Evaluates the recommendation rules now, rather than at the next tick.
    pub(crate) fn reevaluate(&self) {
        self.advisor.evaluate(&self.targets, &self.tasks);
    }

    /// The expected peak of the tasks' own connections over the next hour, from their
    /// schedules and recent runs, at most [`SCHEDULE_PREVIEW_FRESH`] old; no database access.
    pub fn schedule_preview(&self) -> SchedulePreview {
        let now = Utc::now();
        let fresh = chrono::Duration::from_std(SCHEDULE_PREVIEW_FRESH).unwrap_or_default();
        let mut cached = self.schedule_preview.lock();
        match &*cached {
            Some(preview) if now - preview.from < fresh => preview.clone(),
            _ => cached
                .insert(self.tasks.schedule_preview(now, SCHEDULE_PREVIEW_SPAN))
                .clone(),
        }
    }

    /// The exhaustion forecast (PostgreSQL, once the server has been read); no database access.
    pub fn forecast(&self) -> Option<ForecastView> {
        self.advisor.predictor.lock().view()
    }

    /// Alerts and their delivery.
    pub fn alerting(&self) -> &Alerting {
        &self.alerting
    }

    /// The alerts firing, the receivers and the latest notifications; no database access.
    pub fn alerts(&self) -> AlertsView {
        self.alerting.view()
    }

    /// The persisted history of runs and samples.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The audit log of control actions.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Emergency cleanup on `target`, or on every target: every background lease there
    /// revoked, their backends ended, the pool down to its minimum, and retry series reset;
    /// with `dry_run`, what it would do.
    pub async fn emergency_cleanup(&self, dry_run: bool, target: Option<Target>) -> CleanupReport {
        let mut reports = Vec::new();
        for (name, leases) in self.targets.all() {
            if target.is_none_or(|t| t == name) {
                reports.push((name, leases.emergency_cleanup(dry_run).await));
            }
        }
        let mut report = CleanupReport::merged(reports, self.targets.has_replicas());
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

    /// Freezes the alerts, drains the tasks (runs in flight get [`STOP_DEADLINE`]), stops
    /// maintenance, makes a last attempt at writing queued audit entries, and closes the pool.
    pub async fn shutdown(&self) {
        // Stopping is not news: a scheduler stopped while runs drain would otherwise page as
        // `scheduler_stopped` (and be restored as firing by the next start).
        self.alerting.freeze();
        self.tasks.stop(STOP_DEADLINE).await;
        self.shutdown.cancel();
        // The delivery loop ends after the delivery in flight (bounded by its timeout) and
        // one last write, so what a receiver accepted is recorded and not sent again.
        let delivering = self.delivering.lock().take();
        if let Some(mut delivering) = delivering {
            let bound = crate::alert::deliver::DELIVERY_TIMEOUT + Duration::from_secs(2);
            if tokio::time::timeout(bound, &mut delivering).await.is_err() {
                delivering.abort();
            }
        }
        if !self.alerting.write(self.database()).await {
            tracing::error!("alert state could not be written before exit");
        }
        if !self.history.flush(self.database()).await {
            tracing::error!(
                runs = self.history.counts().runs_queued,
                "run history could not be written before exit: the database is unreachable"
            );
        }
        let lost = self.audit.flush(self.database()).await;
        if lost > 0 {
            tracing::error!(
                lost,
                "audit entries could not be written before exit: the database is unreachable"
            );
        }
        for (_, leases) in self.targets.all() {
            leases.database().close().await;
        }
    }
}

/// The host's name: the tasks' phases are keyed on it, so a restart keeps their starts where
/// they were (instances on one host start together, and the advisory lock lets one run), and
/// it is the alerts' default `instance`, so a restart keeps their identity.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

async fn read_auctions(db: &Database) -> Result<AuctionsView, DbError> {
    Ok(AuctionsView {
        counts: auctions::status_counts(db.pool()).await?,
        as_of: Utc::now(),
    })
}

/// The recommendation rules and their hysteresis state, and the forecast they read.
struct Advisor {
    thresholds: Thresholds,
    predictor: Arc<Mutex<Predictor>>,
    state: Mutex<(Hysteresis, Vec<Recommendation>)>,
    /// Told every evaluation's result: alerts follow the recommendations shown.
    alerting: Alerting,
}

impl Advisor {
    fn evaluate(&self, targets: &Targets, tasks: &TaskManager) {
        // Each database's pool, leases and governor once (as the status shows them), with the
        // hour of samples and the server view its rules also read; the primary first.
        let statuses = targets.status();
        let reads: Vec<(Vec<PoolSnapshot>, ServerView)> = targets
            .all()
            .map(|(_, leases)| (leases.history(), leases.server_view()))
            .collect();
        let task_views = tasks.tasks();
        let forecast = self.predictor.lock().view();
        let now = Utc::now();
        let (running, round_trip) = (tasks.is_running(), tasks.latest_round_trip());
        let mut inputs: Vec<(Target, Inputs<'_>)> = statuses
            .iter()
            .zip(&reads)
            .map(|(status, (history, server))| {
                let inputs = Inputs {
                    now,
                    snapshot: &status.pool,
                    history,
                    leases: &status.leases,
                    tasks: &task_views,
                    scheduler_running: running,
                    server,
                    round_trip,
                    app_prefix: TASKS_APPLICATION_PREFIX,
                    governor: &status.governor,
                    // The forecast is the primary's: the server the web app shares.
                    forecast: None,
                    targets: &statuses,
                    fallback: targets.settings().fallback,
                };
                (status.target, inputs)
            })
            .collect();
        let (primary, replicas) = inputs.split_first_mut().expect("the primary");
        primary.1.forecast = forecast.as_ref();
        let findings = recommend::evaluate(&primary.1, replicas, &self.thresholds);
        let mut state = self.state.lock();
        state.1 = state.0.update(now, findings, &self.thresholds);
        self.alerting.evaluate(now, &state.1);
    }

    fn current(&self) -> Vec<Recommendation> {
        self.state.lock().1.clone()
    }
}

/// How often queued audit entries are retried while the database is unreachable.
const AUDIT_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Writes queued audit entries once the database is back, and the counts of coalesced
/// refusals. A task of its own: a write waits up to the control pool's acquire timeout, which
/// must not hold up the maintenance loop.
async fn flush_audit(audit: Arc<AuditLog>, db: Database, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(AUDIT_FLUSH_EVERY) => {}
        }
        audit.flush(&db).await;
    }
}

/// Reads the server's connection use every [`SERVER_SAMPLE_EVERY`], so the rules name who
/// holds the slots with numbers seconds old, also while the task pool cannot connect, the
/// governor's share follows the server, and the forecast sees the trend (the responder, when
/// predictive cleanup is on, acts on it). A task of its own: a read waits up to the control
/// pool's acquire timeout.
async fn sample_server(
    targets: Targets,
    tasks: TaskManager,
    instance: String,
    headroom: Headroom,
    advisor: Arc<Advisor>,
    responder: Option<Responder>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(SERVER_SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let Some(view) = read_server(targets.primary(), &instance, headroom).await else {
            continue;
        };
        let (change, forecast) = {
            let mut predictor = advisor.predictor.lock();
            let change = predictor.observe(&view);
            (change, predictor.view())
        };
        if let (Some(responder), Some(forecast)) = (&responder, &forecast) {
            responder.respond(&change, forecast).await;
        }
        if matches!(change, Change::Raised(_) | Change::Cleared) {
            advisor.evaluate(&targets, &tasks);
        }
    }
}

/// Reads the server; with the governor on, its share follows at once (and the next window
/// closes the idle connections above a lowered limit). Returns the read, if there was one.
async fn read_server(
    leases: &LeaseManager,
    instance: &str,
    headroom: Headroom,
) -> Option<PgServerView> {
    match leases.sample_server().await {
        Ok(Some(view)) => {
            if leases.governor().enabled() {
                leases
                    .governor()
                    .set_budget(Budget::of(&view, headroom, instance));
            }
            Some(view)
        }
        Ok(None) => None,
        Err(err) => {
            tracing::debug!(%err, "could not read the server's connection use");
            None
        }
    }
}

/// Ends a window of acquires every [`governor::WINDOW`]: the limit grows, shrinks or holds,
/// and idle connections above the limit are closed.
async fn govern(leases: LeaseManager, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(governor::WINDOW);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        leases.governor().end_window();
        // The one place idle connections above the limit close: after a lowered share, after
        // a back-off, and once leases held above a lowered limit come back idle.
        leases.close_idle_above_limit().await;
    }
}

/// Probes every target each [`PROBE_EVERY`], auditing each ban and recovery as Leasewatch's
/// own action; with the governor on, each replica's share follows a read of its server every
/// [`SERVER_SAMPLE_EVERY`] (the primary's is read by `sample_server`).
async fn watch_targets(
    targets: Targets,
    audit: Arc<AuditLog>,
    db: Database,
    instance: String,
    headroom: Option<Headroom>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reads_per_sample = (SERVER_SAMPLE_EVERY.as_millis() / PROBE_EVERY.as_millis()).max(1);
    for tick in 0u128.. {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        for (target, event) in targets.probe().await {
            let (arguments, result) = match &event.out {
                Some(reason) => (
                    serde_json::json!({"target": target, "in_rotation": false}),
                    format!("{target} taken out of rotation: {reason}"),
                ),
                None => (
                    serde_json::json!({"target": target, "in_rotation": true}),
                    format!("{target} back in rotation"),
                ),
            };
            audit.record_in_background(
                &db,
                NewEntry::system(leasewatch_types::TARGET_ROTATION, arguments, result),
            );
        }
        if let Some(headroom) = headroom
            && tick % reads_per_sample == 0
        {
            for (target, leases) in targets.all() {
                if target != Target::Primary {
                    read_server(leases, &instance, headroom).await;
                }
            }
        }
    }
}

/// Writes what a periodic cleanup did to the audit log as the system's own action, off the
/// maintenance loop (a write may wait for the database).
fn audit_automatic_cleanup(
    audit: &Arc<AuditLog>,
    db: &Database,
    target: Target,
    report: &CleanupReport,
) {
    let arguments = match target {
        Target::Primary => serde_json::json!({"automatic": true}),
        Target::Replica(_) => serde_json::json!({"automatic": true, "target": target}),
    };
    audit.record_in_background(
        db,
        NewEntry::system(ActionName::Cleanup.as_str(), arguments, report.summary()),
    );
}

/// Background upkeep until shutdown: history samples (in memory, and queued for the
/// database), recommendations, periodic cleanup.
async fn maintain(
    targets: Targets,
    tasks: TaskManager,
    advisor: Arc<Advisor>,
    audit: Arc<AuditLog>,
    history: History,
    cleanup_every: Duration,
    shutdown: CancellationToken,
) {
    let mut sample = tokio::time::interval(HISTORY_EVERY);
    let mut recommend = tokio::time::interval(RECOMMEND_EVERY);
    let mut cleanup = tokio::time::interval(cleanup_every);
    for ticker in [&mut sample, &mut recommend, &mut cleanup] {
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    // An interval's first tick is immediate; a cleanup at start-up has nothing to do.
    cleanup.tick().await;
    let leases = targets.primary();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = sample.tick() => {
                // Every target keeps its hour in memory for the rules; the primary's samples
                // are the ones persisted (and charted).
                for (_, replica) in targets.all().skip(1) {
                    replica.record_history();
                }
                history.record_sample(&leases.record_history());
            }
            _ = recommend.tick() => advisor.evaluate(&targets, &tasks),
            _ = cleanup.tick() => {
                // Stale leases are reclaimed on every target; the audit is the primary's.
                for (target, on) in targets.all() {
                    let report = on.cleanup(false).await;
                    if !report.revoked.is_empty() {
                        audit_automatic_cleanup(&audit, leases.database(), target, &report);
                    }
                }
            }
        }
    }
}
