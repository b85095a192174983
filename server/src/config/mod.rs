//! Configuration from the environment (and `.env`). Every variable is validated up front: a bad
//! value stops start-up with one line naming the variable, the value given and what is allowed.

mod env;
#[cfg(test)]
mod task_file_tests;
mod tasks_file;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use leasewatch_engine::{
    Backend, DatabaseUrl, DemoLeak, EngineConfig, PoolSettings, RetryPolicy, TaskIntervals,
    alert::{AlertSettings, Receiver, SigningKey, Timers},
    db::redact_password,
    governor::{Headroom, Priority},
    lease::RunLimits,
    predict::PredictSettings,
    recommend::Thresholds,
    settings::{GovernorConfig, default_task_limits},
    targets::ReplicaSettings,
    tasks::{Schedule, ScheduleError, declared::DeclaredTasks},
};
use leasewatch_types::Fallback;

pub use self::env::ConfigError;
use self::env::{Env, format_duration};
pub use self::tasks_file::{TaskFile, TaskFileError, load as load_task_file};
use crate::auth::secret::Secret;

/// The SQLite file used when `DATABASE_URL` is not set.
pub(crate) const DEFAULT_SQLITE_PATH: &str = "data/leasewatch.db";

/// Where a generated operator token is written when `LEASEWATCH_TOKEN_FILE` is not set.
pub(crate) const DEFAULT_TOKEN_FILE: &str = "data/operator-token";

/// The whole configuration of one server process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`BIND_ADDR`); `None` keeps Leptos.toml's `site-addr`.
    pub bind: Option<SocketAddr>,
    /// What the engine runs with.
    pub engine: EngineConfig,
    /// Who may read and act.
    pub auth: AuthConfig,
    /// How often the dashboard polls (`DASHBOARD_POLL_INTERVAL`).
    pub dashboard_poll: Duration,
    /// The address browsers use (`PUBLIC_URL`), behind a proxy: the origin state changes must
    /// come from, the only `Host` answered besides loopback names, and `https` makes session
    /// cookies `Secure`.
    pub public_url: Option<url::Url>,
}

/// Tokens and sessions.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `LEASEWATCH_OPERATOR_TOKEN`; generated at start-up when unset.
    pub operator: Option<Secret>,
    /// `LEASEWATCH_VIEWER_TOKEN`: read-only access, optional.
    pub viewer: Option<Secret>,
    /// How long a browser session lasts (`SESSION_TTL`).
    pub session_ttl: Duration,
    /// Where a generated operator token is written for scripts (`LEASEWATCH_TOKEN_FILE`).
    pub token_file: PathBuf,
}

impl Config {
    /// Reads the configuration through `lookup` (the process environment in production, a map in
    /// tests). `demo` shortens task intervals that the environment leaves unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        demo: bool,
    ) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let database = match env.get("DATABASE_URL") {
            None => DatabaseUrl::Sqlite(PathBuf::from(DEFAULT_SQLITE_PATH)),
            Some(raw) => DatabaseUrl::parse(&raw).map_err(|err| ConfigError {
                var: "DATABASE_URL",
                value: redact_password(&raw),
                allowed: err.to_string(),
            })?,
        };

        let pool_defaults = PoolSettings::default();
        let max_connections = env.integer(
            "DB_MAX_CONNECTIONS",
            pool_defaults.max_connections,
            1,
            10_000,
        )?;
        let min_connections = env.integer(
            "DB_MIN_CONNECTIONS",
            pool_defaults.min_connections,
            0,
            10_000,
        )?;
        if min_connections > max_connections {
            return Err(ConfigError {
                var: "DB_MIN_CONNECTIONS",
                value: min_connections.to_string(),
                allowed: format!("must not exceed DB_MAX_CONNECTIONS ({max_connections})"),
            });
        }
        let pool = PoolSettings {
            max_connections,
            min_connections,
            idle_timeout: env.millis(
                "DB_IDLE_TIMEOUT",
                pool_defaults.idle_timeout,
                1_000,
                86_400_000,
            )?,
            connect_timeout: env.millis(
                "DB_CONNECTION_TIMEOUT",
                pool_defaults.connect_timeout,
                100,
                600_000,
            )?,
            lease_timeout: env.duration(
                "LEASE_TIMEOUT",
                pool_defaults.lease_timeout,
                secs(1),
                secs(3600),
            )?,
            ..pool_defaults
        };

        let defaults = if demo {
            TaskIntervals::demo()
        } else {
            TaskIntervals::default()
        };
        let (least, most) = (secs(1), secs(7 * 24 * 3600));
        let intervals = TaskIntervals {
            status_transitions: env.duration(
                "TASK_STATUS_TRANSITIONS_INTERVAL",
                defaults.status_transitions,
                least,
                most,
            )?,
            auction_monitor: env.duration(
                "TASK_AUCTION_MONITOR_INTERVAL",
                defaults.auction_monitor,
                least,
                most,
            )?,
            health_check: env.duration(
                "TASK_HEALTH_CHECK_INTERVAL",
                defaults.health_check,
                least,
                most,
            )?,
            cleanup: env.duration("CLEANUP_INTERVAL", defaults.cleanup, least, most)?,
        };

        let retry_defaults = RetryPolicy::default();
        let base_delay = env.duration(
            "RETRY_BASE_DELAY",
            retry_defaults.base_delay,
            Duration::from_millis(10),
            secs(3600),
        )?;
        let max_delay = env.duration(
            "RETRY_MAX_DELAY",
            retry_defaults.max_delay,
            Duration::from_millis(10),
            secs(24 * 3600),
        )?;
        if max_delay < base_delay {
            return Err(ConfigError {
                var: "RETRY_MAX_DELAY",
                value: env.get("RETRY_MAX_DELAY").unwrap_or_default(),
                allowed: format!(
                    "must be at least RETRY_BASE_DELAY ({})",
                    format_duration(base_delay)
                ),
            });
        }
        let retry = RetryPolicy {
            max_retries: env.integer("RETRY_MAX", retry_defaults.max_retries, 0, 100)?,
            base_delay,
            factor: env.integer("RETRY_FACTOR", retry_defaults.factor, 1, 10)?,
            max_delay,
        };

        let task_file = match env.get("LEASEWATCH_TASKS") {
            None => TaskFile {
                tasks: DeclaredTasks::default(),
                builtin_tasks: true,
            },
            Some(raw) => {
                tasks_file::load(Path::new(raw.trim()), retry).map_err(|err| ConfigError {
                    var: "LEASEWATCH_TASKS",
                    value: err.file.clone(),
                    allowed: err.located(),
                })?
            }
        };

        let bind = env
            .get("BIND_ADDR")
            .map(|raw| {
                raw.parse().map_err(|_| ConfigError {
                    var: "BIND_ADDR",
                    value: raw,
                    allowed: "an IP address and port, such as 127.0.0.1:3000 or 0.0.0.0:8080"
                        .into(),
                })
            })
            .transpose()?;

        let operator = env.token("LEASEWATCH_OPERATOR_TOKEN")?;
        let viewer = env.token("LEASEWATCH_VIEWER_TOKEN")?;
        if let (Some(op), Some(view)) = (&operator, &viewer)
            && op == view
        {
            return Err(ConfigError {
                var: "LEASEWATCH_VIEWER_TOKEN",
                value: "***".into(),
                allowed: "must differ from LEASEWATCH_OPERATOR_TOKEN".into(),
            });
        }
        let auth = AuthConfig {
            operator,
            viewer,
            session_ttl: env.duration(
                "SESSION_TTL",
                secs(12 * 3600),
                secs(60),
                secs(30 * 86_400),
            )?,
            token_file: env
                .get("LEASEWATCH_TOKEN_FILE")
                .map_or_else(|| PathBuf::from(DEFAULT_TOKEN_FILE), PathBuf::from),
        };
        let public_url = env
            .get("PUBLIC_URL")
            .map(|raw| {
                url::Url::parse(raw.trim())
                    .ok()
                    .filter(|url| {
                        matches!(url.scheme(), "http" | "https")
                            && url.host_str().is_some()
                            && url.username().is_empty()
                            && url.password().is_none()
                            && url.query().is_none()
                            && url.path() == "/"
                    })
                    .ok_or_else(|| ConfigError {
                        var: "PUBLIC_URL",
                        value: redact_password(&raw),
                        allowed: "an http or https origin browsers reach the server at, such as \
                                  https://leasewatch.example.com (no path, query or credentials)"
                            .into(),
                    })
            })
            .transpose()?;

        let (replicas, replica) = replicas(&env, &database)?;
        if database.backend() == Backend::Sqlite
            && let Some(task) = task_file
                .tasks
                .iter()
                .find(|task| task.route == leasewatch_types::Route::Replica)
        {
            return Err(ConfigError {
                var: "LEASEWATCH_TASKS",
                value: env.get("LEASEWATCH_TASKS").unwrap_or_default(),
                allowed: format!(
                    "task {:?} has target = \"replica\", which needs a PostgreSQL DATABASE_URL",
                    task.name
                ),
            });
        }
        let thresholds = thresholds(&env)?;
        let governor = GovernorConfig {
            enabled: env.switch("GOVERNOR", true)?,
            headroom: env.headroom("BUDGET_HEADROOM", Headroom::default())?,
        };
        let task_limits = task_limits(&env)?;
        let schedules = task_schedules(&env)?;

        let predict = PredictSettings {
            horizon: env.duration("PREDICT_HORIZON", secs(5 * 60), secs(10), secs(3600))?,
            act: env.switch("PREDICTIVE_CLEANUP", true)?,
        };

        let demo_leak = match env.get("DEMO_LEAK_HOLD") {
            Some(raw) if !demo => {
                return Err(ConfigError {
                    var: "DEMO_LEAK_HOLD",
                    value: raw,
                    allowed: "only with --demo (it adds a task that leaks its connection)".into(),
                });
            }
            Some(_) => Some(DemoLeak {
                hold: env.duration("DEMO_LEAK_HOLD", secs(60), secs(1), secs(3600))?,
                every: env.duration("DEMO_LEAK_EVERY", DemoLeak::EVERY, secs(1), secs(3600))?,
                pile_up: env.switch("DEMO_LEAK_PILE_UP", false)?,
            }),
            None => {
                for var in ["DEMO_LEAK_EVERY", "DEMO_LEAK_PILE_UP"] {
                    if let Some(raw) = env.get(var) {
                        return Err(ConfigError {
                            var,
                            value: raw,
                            allowed: "only with --demo and DEMO_LEAK_HOLD (it shapes the demo's \
                                      leak)"
                                .into(),
                        });
                    }
                }
                None
            }
        };
        let alerts = alerts(&env, public_url.clone())?;
        // Less than two days would downsample and delete the same day's samples.
        let history_retention = env.duration(
            "HISTORY_RETENTION",
            leasewatch_engine::engine::HISTORY_RETENTION,
            secs(2 * 86_400),
            secs(3660 * 86_400),
        )?;
        let dashboard_poll = env.duration(
            "DASHBOARD_POLL_INTERVAL",
            secs(2),
            Duration::from_millis(500),
            secs(300),
        )?;

        Ok(Self {
            bind,
            auth,
            dashboard_poll,
            public_url,
            engine: EngineConfig {
                database,
                pool,
                intervals,
                retry,
                demo,
                thresholds,
                demo_leak,
                governor,
                task_limits,
                predict,
                schedules,
                alerts,
                history_retention,
                declared: task_file.tasks,
                builtin_tasks: task_file.builtin_tasks,
                replicas,
                replica,
            },
        })
    }
}

/// The most read replicas one instance watches.
pub const MAX_REPLICAS: usize = 8;

/// The read replicas (`DATABASE_REPLICA_URLS`, comma-separated PostgreSQL URLs) and how they
/// are used (`REPLICA_MAX_LAG`, `REPLICA_FALLBACK`, which mean nothing without replicas and
/// are refused then, rather than silently ignored).
fn replicas<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    primary: &DatabaseUrl,
) -> Result<(Vec<DatabaseUrl>, ReplicaSettings), ConfigError> {
    let var = "DATABASE_REPLICA_URLS";
    let raw = env.get(var).unwrap_or_default();
    let mut replicas: Vec<DatabaseUrl> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let refuse = |allowed: String| ConfigError {
            var,
            value: redact_password(part),
            allowed,
        };
        let url = DatabaseUrl::parse(part).map_err(|err| refuse(err.to_string()))?;
        if url.backend() != Backend::Postgres || primary.backend() != Backend::Postgres {
            return Err(refuse(
                "read replicas are PostgreSQL streaming replicas of a PostgreSQL DATABASE_URL \
                 (postgres://user@host:port/db, comma-separated)"
                    .into(),
            ));
        }
        // Host, port and database: the same place is the same database, whatever the user.
        let place = url.address().to_ascii_lowercase();
        if place == primary.address().to_ascii_lowercase() {
            return Err(refuse(
                "is DATABASE_URL's own database, not a replica".into(),
            ));
        }
        if replicas
            .iter()
            .any(|r| r.address().to_ascii_lowercase() == place)
        {
            return Err(refuse("is listed twice".into()));
        }
        replicas.push(url);
    }
    if replicas.len() > MAX_REPLICAS {
        return Err(ConfigError {
            var,
            value: format!("{} URLs", replicas.len()),
            allowed: format!("at most {MAX_REPLICAS} replicas"),
        });
    }
    let defaults = ReplicaSettings::default();
    if replicas.is_empty() {
        for var in ["REPLICA_MAX_LAG", "REPLICA_FALLBACK"] {
            if let Some(value) = env.get(var) {
                return Err(ConfigError {
                    var,
                    value,
                    allowed: "only with DATABASE_REPLICA_URLS (it says how replicas are used)"
                        .into(),
                });
            }
        }
        return Ok((replicas, defaults));
    }
    let fallback = match env.get("REPLICA_FALLBACK") {
        None => defaults.fallback,
        Some(raw) => raw.trim().parse::<Fallback>().map_err(|err| ConfigError {
            var: "REPLICA_FALLBACK",
            value: raw.clone(),
            allowed: format!(
                "one of {}: where read work goes while no replica is in rotation",
                err.allowed
            ),
        })?,
    };
    let settings = ReplicaSettings {
        max_lag: env.duration("REPLICA_MAX_LAG", defaults.max_lag, secs(1), secs(3600))?,
        fallback,
    };
    Ok((replicas, settings))
}

/// The most alert receivers, all kinds together.
const MAX_RECEIVERS: usize = 10;

/// The alert receivers, their timers and signing key (`ALERT_*`).
fn alerts<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    external_url: Option<url::Url>,
) -> Result<AlertSettings, ConfigError> {
    use leasewatch_types::ReceiverKind;
    let mut receivers: Vec<Receiver> = Vec::new();
    for (var, kind) in [
        ("ALERT_WEBHOOK_URL", ReceiverKind::Webhook),
        ("ALERT_ALERTMANAGER_URL", ReceiverKind::Alertmanager),
        ("ALERT_CHAT_WEBHOOK_URL", ReceiverKind::Chat),
    ] {
        for url in env.urls(var)? {
            let same = receivers
                .iter()
                .filter(|r| r.kind == kind && r.url.host_str() == url.host_str())
                .count();
            receivers.push(Receiver::new(kind, url, same + 1));
        }
        if receivers.len() > MAX_RECEIVERS {
            return Err(ConfigError {
                var,
                value: format!("{} receivers in all", receivers.len()),
                allowed: format!("at most {MAX_RECEIVERS} alert receivers, all kinds together"),
            });
        }
    }
    let defaults = Timers::default();
    let timers = Timers {
        group_wait: env.duration(
            "ALERT_GROUP_WAIT",
            defaults.group_wait,
            Duration::ZERO,
            secs(3600),
        )?,
        group_interval: env.duration(
            "ALERT_GROUP_INTERVAL",
            defaults.group_interval,
            secs(1),
            secs(86_400),
        )?,
        repeat_interval: env.duration(
            "ALERT_REPEAT_INTERVAL",
            defaults.repeat_interval,
            secs(60),
            secs(7 * 86_400),
        )?,
    };
    let signing_key = env
        .token("ALERT_HMAC_SECRET")?
        .map(|secret| SigningKey::new(secret.expose().as_bytes()));
    let instance = match env.get("ALERT_INSTANCE") {
        None => None,
        Some(raw) => {
            let name = raw.trim();
            let fits = (1..=128).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
            if !fits {
                return Err(ConfigError {
                    var: "ALERT_INSTANCE",
                    value: raw.chars().take(140).collect(),
                    allowed: "must be 1 to 128 characters of letters, digits, '.', '_', ':' and \
                              '-' (like web-1 or db.example.com:3000)"
                        .into(),
                });
            }
            Some(name.to_owned())
        }
    };
    Ok(AlertSettings {
        receivers,
        timers,
        signing_key,
        instance,
        external_url,
    })
}

/// Each task's `TASK_<NAME>_TIMEOUT` and `TASK_<NAME>_PRIORITY` over the engine's defaults.
fn task_limits<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<BTreeMap<String, RunLimits>, ConfigError> {
    use leasewatch_types::task;
    let mut limits = default_task_limits();
    for (name, timeout_var, priority_var) in [
        (
            task::STATUS_TRANSITIONS,
            "TASK_STATUS_TRANSITIONS_TIMEOUT",
            "TASK_STATUS_TRANSITIONS_PRIORITY",
        ),
        (
            task::AUCTION_MONITOR,
            "TASK_AUCTION_MONITOR_TIMEOUT",
            "TASK_AUCTION_MONITOR_PRIORITY",
        ),
        (
            task::HEALTH_CHECK,
            "TASK_HEALTH_CHECK_TIMEOUT",
            "TASK_HEALTH_CHECK_PRIORITY",
        ),
    ] {
        let task = limits.entry(name.to_owned()).or_default();
        if env.get(timeout_var).is_some() {
            task.timeout = Some(env.duration(timeout_var, secs(30), secs(1), secs(3600))?);
        }
        let priority = env.integer(priority_var, u32::from(task.priority.0), 0, 9)?;
        task.priority = Priority(u8::try_from(priority).unwrap_or(9));
    }
    Ok(limits)
}

/// Each task's `TASK_<NAME>_SCHEDULE`: a cron expression it runs on instead of its interval.
/// Setting a task's interval too is refused: one of the two would be silently ignored.
fn task_schedules<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
) -> Result<BTreeMap<String, Schedule>, ConfigError> {
    use leasewatch_types::task;
    let mut schedules = BTreeMap::new();
    for (name, schedule_var, interval_var) in [
        (
            task::STATUS_TRANSITIONS,
            "TASK_STATUS_TRANSITIONS_SCHEDULE",
            "TASK_STATUS_TRANSITIONS_INTERVAL",
        ),
        (
            task::AUCTION_MONITOR,
            "TASK_AUCTION_MONITOR_SCHEDULE",
            "TASK_AUCTION_MONITOR_INTERVAL",
        ),
        (
            task::HEALTH_CHECK,
            "TASK_HEALTH_CHECK_SCHEDULE",
            "TASK_HEALTH_CHECK_INTERVAL",
        ),
    ] {
        let Some(raw) = env.get(schedule_var) else {
            continue;
        };
        if env.get(interval_var).is_some() {
            return Err(ConfigError {
                var: schedule_var,
                value: raw,
                allowed: format!(
                    "must not be set together with {interval_var}: the task runs on one or the \
                     other, so unset one of them"
                ),
            });
        }
        let schedule = Schedule::cron(&raw).map_err(|err| ConfigError {
            var: schedule_var,
            value: raw.clone(),
            allowed: match err {
                ScheduleError::UnknownZone(zone) => format!(
                    "CRON_TZ names an unknown time zone {zone:?}: use an IANA name such as \
                     Europe/Berlin, America/New_York or UTC"
                ),
                other => format!(
                    "must be a cron expression of five fields, minute hour day-of-month month \
                     day-of-week (like 30 2 * * * or */15 * * * 1-5), optionally after \
                     CRON_TZ=Area/City and a space ({other})"
                ),
            },
        })?;
        schedules.insert(name.to_owned(), schedule);
    }
    Ok(schedules)
}

/// The recommendation rules' thresholds (`REC_*`), the engine's defaults where unset.
fn thresholds<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Thresholds, ConfigError> {
    let defaults = Thresholds::default();
    let thresholds = Thresholds {
        waiting_for: env.duration(
            "REC_WAITING_FOR",
            defaults.waiting_for,
            Duration::ZERO,
            secs(86_400),
        )?,
        timeout_window: env.duration(
            "REC_TIMEOUT_WINDOW",
            defaults.timeout_window,
            secs(1),
            secs(86_400),
        )?,
        stale_critical_age: env.duration(
            "REC_STALE_CRITICAL_AGE",
            defaults.stale_critical_age,
            secs(1),
            secs(86_400),
        )?,
        utilization_warning: env
            .percent("REC_UTILIZATION_WARNING", defaults.utilization_warning)?,
        utilization_critical: env
            .percent("REC_UTILIZATION_CRITICAL", defaults.utilization_critical)?,
        utilization_for: env.duration(
            "REC_UTILIZATION_FOR",
            defaults.utilization_for,
            Duration::ZERO,
            secs(86_400),
        )?,
        oversized_for: env.duration(
            "REC_OVERSIZED_FOR",
            defaults.oversized_for,
            secs(1),
            secs(7 * 86_400),
        )?,
        server_connections_warning: env.percent(
            "REC_SERVER_CONNECTIONS_WARNING",
            defaults.server_connections_warning,
        )?,
        slow_round_trip: env.duration(
            "REC_SLOW_ROUND_TRIP",
            defaults.slow_round_trip,
            Duration::from_millis(1),
            secs(60),
        )?,
        failures_in_a_row: env.integer(
            "REC_FAILURES_IN_A_ROW",
            u32::try_from(defaults.failures_in_a_row).unwrap_or(u32::MAX),
            1,
            50,
        )? as usize,
        runtime_share: env.percent("REC_RUNTIME_SHARE", defaults.runtime_share)?,
        hold: env.duration("REC_HOLD", defaults.hold, Duration::ZERO, secs(3600))?,
        clear: env.duration("REC_CLEAR", defaults.clear, Duration::ZERO, secs(86_400))?,
    };
    if thresholds.utilization_critical < thresholds.utilization_warning {
        return Err(ConfigError {
            var: "REC_UTILIZATION_CRITICAL",
            value: env.get("REC_UTILIZATION_CRITICAL").unwrap_or_default(),
            allowed: format!(
                "must be at least REC_UTILIZATION_WARNING ({:.0})",
                thresholds.utilization_warning * 100.0
            ),
        });
    }
    Ok(thresholds)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
