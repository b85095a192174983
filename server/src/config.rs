//! Configuration from the environment (and `.env`). Every variable is validated up front: a bad
//! value stops start-up with one line naming the variable, the value given and what is allowed.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crate::auth::secret::Secret;
use leasewatch_engine::{
    DatabaseUrl, DemoLeak, EngineConfig, PoolSettings, RetryPolicy, TaskIntervals,
    db::redact_password, recommend::Thresholds,
};

/// The SQLite file used when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_PATH: &str = "data/leasewatch.db";

/// Where a generated operator token is written when `LEASEWATCH_TOKEN_FILE` is not set.
pub const DEFAULT_TOKEN_FILE: &str = "data/operator-token";

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

/// Shortest token accepted.
const MIN_TOKEN: usize = 16;

/// A configuration value that was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {var}={value:?}: {allowed}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// The value given (passwords redacted).
    pub value: String,
    /// What would have been accepted.
    pub allowed: String,
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

        let max_connections = env.integer("DB_MAX_CONNECTIONS", 20, 1, 10_000)?;
        let min_connections = env.integer("DB_MIN_CONNECTIONS", 5, 0, 10_000)?;
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
            idle_timeout: env.millis("DB_IDLE_TIMEOUT", 60_000, 1_000, 86_400_000)?,
            connect_timeout: env.millis("DB_CONNECTION_TIMEOUT", 15_000, 100, 600_000)?,
            lease_timeout: env.duration("LEASE_TIMEOUT", secs(30), secs(1), secs(3600))?,
            ..PoolSettings::default()
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
            failures_in_a_row: env.integer("REC_FAILURES_IN_A_ROW", 3, 1, 50)? as usize,
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

        let demo_leak = match env.get("DEMO_LEAK_HOLD") {
            Some(raw) if !demo => {
                return Err(ConfigError {
                    var: "DEMO_LEAK_HOLD",
                    value: raw,
                    allowed: "only with --demo (it adds a task that leaks its connection)".into(),
                });
            }
            Some(_) => Some(DemoLeak::holding(env.duration(
                "DEMO_LEAK_HOLD",
                secs(60),
                secs(1),
                secs(3600),
            )?)),
            None => None,
        };
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
            },
        })
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Typed reads of one variable each; an empty value counts as unset.
struct Env<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|value| !value.trim().is_empty())
    }

    fn integer(
        &self,
        var: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError {
                var,
                value: raw,
                allowed: format!("must be a whole number from {min} to {max}"),
            }),
        }
    }

    /// The seed's timeouts are plain milliseconds (`DB_IDLE_TIMEOUT=60000`).
    fn millis(
        &self,
        var: &'static str,
        default_ms: u64,
        min_ms: u64,
        max_ms: u64,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(Duration::from_millis(default_ms));
        };
        match raw.trim().parse::<u64>() {
            Ok(ms) if (min_ms..=max_ms).contains(&ms) => Ok(Duration::from_millis(ms)),
            _ => Err(ConfigError {
                var,
                value: raw,
                allowed: format!(
                    "must be a whole number of milliseconds from {min_ms} to {max_ms}"
                ),
            }),
        }
    }

    /// A share written as a whole percentage, 1 to 100.
    fn percent(&self, var: &'static str, default: f64) -> Result<f64, ConfigError> {
        let default_percent = (default * 100.0).round() as u32;
        Ok(f64::from(self.integer(var, default_percent, 1, 100)?) / 100.0)
    }

    /// A secret token: long enough, no whitespace. Its value is never echoed.
    fn token(&self, var: &'static str) -> Result<Option<Secret>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(None);
        };
        if raw.len() < MIN_TOKEN || raw.chars().any(char::is_whitespace) {
            return Err(ConfigError {
                var,
                value: format!("*** ({} characters)", raw.chars().count()),
                allowed: format!(
                    "must be at least {MIN_TOKEN} characters without spaces (try: openssl rand -hex 32)"
                ),
            });
        }
        Ok(Some(Secret::new(raw)))
    }

    /// Human durations: `500ms`, `30s`, `15m`, `1h`, `1h30m`, `2d`.
    fn duration(
        &self,
        var: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match parse_duration(raw.trim()) {
            Some(d) if (min..=max).contains(&d) => Ok(d),
            _ => Err(ConfigError {
                var,
                value: raw,
                allowed: format!(
                    "must be a duration from {} to {}, written like 500ms, 30s, 15m, 1h or 1h30m",
                    format_duration(min),
                    format_duration(max)
                ),
            }),
        }
    }
}

/// Parses `1h30m`, `15m`, `30s`, `250ms`, `2d`: one or more number-unit pairs, no bare numbers
/// (a bare number would leave the unit to guesswork).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" | "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(value).ok()?)?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The shortest exact spelling of a duration in the syntax [`parse_duration`] reads.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 86_400_000 == 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|var| map.get(var).cloned(), false)
    }

    fn config_err(vars: &[(&str, &str)]) -> String {
        config(vars).unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_the_seeds() {
        let config = config(&[]).unwrap();
        let pool = &config.engine.pool;
        assert_eq!(pool.max_connections, 20);
        assert_eq!(pool.min_connections, 5);
        assert_eq!(pool.idle_timeout, Duration::from_millis(60_000));
        assert_eq!(pool.connect_timeout, Duration::from_millis(15_000));
        assert_eq!(pool.lease_timeout, secs(30));
        assert_eq!(config.engine.intervals, TaskIntervals::default());
        assert_eq!(config.engine.intervals.status_transitions, secs(900));
        assert_eq!(config.engine.retry, RetryPolicy::default());
        assert_eq!(
            config.engine.database,
            DatabaseUrl::Sqlite(PathBuf::from(DEFAULT_SQLITE_PATH))
        );
        assert_eq!(config.bind, None);
        assert_eq!(config.engine.thresholds, Thresholds::default());
    }

    #[test]
    fn thresholds_are_read_and_checked() {
        let config = config(&[("REC_HOLD", "0s"), ("REC_UTILIZATION_WARNING", "70")]).unwrap();
        assert_eq!(config.engine.thresholds.hold, Duration::ZERO);
        assert!((config.engine.thresholds.utilization_warning - 0.70).abs() < 1e-9);
        let err = config_err(&[
            ("REC_UTILIZATION_WARNING", "90"),
            ("REC_UTILIZATION_CRITICAL", "85"),
        ]);
        assert_eq!(
            err,
            "invalid REC_UTILIZATION_CRITICAL=\"85\": must be at least REC_UTILIZATION_WARNING (90)"
        );
        assert!(config_err(&[("REC_RUNTIME_SHARE", "150")]).contains("whole number from 1 to 100"));
    }

    #[test]
    fn demo_shortens_only_the_intervals_left_unset() {
        let map: HashMap<&str, &str> = [("TASK_HEALTH_CHECK_INTERVAL", "2h")].into();
        let config = Config::from_lookup(|v| map.get(v).map(|s| (*s).to_owned()), true).unwrap();
        assert_eq!(
            config.engine.intervals.status_transitions,
            TaskIntervals::demo().status_transitions
        );
        assert_eq!(config.engine.intervals.health_check, secs(7200));
    }

    #[test]
    fn values_are_read() {
        let config = config(&[
            ("DATABASE_URL", "postgres://app:pw@db:5432/prod"),
            ("DB_MAX_CONNECTIONS", "8"),
            ("DB_MIN_CONNECTIONS", "8"),
            ("TASK_STATUS_TRANSITIONS_INTERVAL", "1h30m"),
            ("RETRY_MAX", "0"),
            ("BIND_ADDR", "0.0.0.0:8080"),
        ])
        .unwrap();
        assert_eq!(config.engine.pool.max_connections, 8);
        assert_eq!(config.engine.pool.min_connections, 8);
        assert_eq!(config.engine.intervals.status_transitions, secs(5400));
        assert_eq!(config.engine.retry.max_retries, 0);
        assert_eq!(config.bind, Some("0.0.0.0:8080".parse().unwrap()));
    }

    #[test]
    fn bad_values_name_the_variable_the_value_and_what_is_allowed() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "DB_MAX_CONNECTIONS",
                "twenty",
                "whole number from 1 to 10000",
            ),
            ("DB_MAX_CONNECTIONS", "0", "whole number from 1 to 10000"),
            ("DB_MAX_CONNECTIONS", "-3", "whole number from 1 to 10000"),
            (
                "DB_IDLE_TIMEOUT",
                "1m",
                "milliseconds from 1000 to 86400000",
            ),
            (
                "DB_CONNECTION_TIMEOUT",
                "abc",
                "milliseconds from 100 to 600000",
            ),
            ("LEASE_TIMEOUT", "30", "duration from 1s to 1h"),
            (
                "TASK_AUCTION_MONITOR_INTERVAL",
                "soon",
                "written like 500ms",
            ),
            ("CLEANUP_INTERVAL", "0s", "duration from 1s to 7d"),
            ("RETRY_FACTOR", "1.5", "whole number from 1 to 10"),
            ("BIND_ADDR", "localhost", "IP address and port"),
            (
                "DATABASE_URL",
                "mysql://root@localhost/db",
                "postgres://, postgresql:// and sqlite://",
            ),
        ];
        for (var, value, allowed) in cases {
            let err = config(&[(var, value)]).unwrap_err();
            let line = err.to_string();
            assert_eq!(err.var, *var, "{line}");
            assert!(line.contains(&format!("{var}=\"{value}\"")), "{line}");
            assert!(line.contains(allowed), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn tokens_are_checked_and_never_echoed() {
        let err = config(&[("LEASEWATCH_OPERATOR_TOKEN", "short")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid LEASEWATCH_OPERATOR_TOKEN=\"*** (5 characters)\": must be at least 16 \
             characters without spaces (try: openssl rand -hex 32)"
        );
        let same = "0123456789abcdef0123";
        let err = config(&[
            ("LEASEWATCH_OPERATOR_TOKEN", same),
            ("LEASEWATCH_VIEWER_TOKEN", same),
        ])
        .unwrap_err();
        assert!(!err.to_string().contains(same), "{err}");
        let ok = config(&[("LEASEWATCH_OPERATOR_TOKEN", same)]).unwrap();
        assert_eq!(ok.auth.operator, Some(Secret::new(same)));
        assert!(!format!("{ok:?}").contains(same));
        assert_eq!(ok.auth.session_ttl, secs(12 * 3600));
    }

    #[test]
    fn min_above_max_is_refused() {
        let err = config(&[("DB_MAX_CONNECTIONS", "4"), ("DB_MIN_CONNECTIONS", "5")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid DB_MIN_CONNECTIONS=\"5\": must not exceed DB_MAX_CONNECTIONS (4)"
        );
    }

    #[test]
    fn a_bad_url_never_shows_its_password() {
        let err = config(&[("DATABASE_URL", "redis://user:hunter2@cache:6379")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(
            err.to_string().contains("redis://user:***@cache:6379"),
            "{err}"
        );
    }

    #[test]
    fn durations_parse_and_print_alike() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("15m", 900_000),
            ("15min", 900_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "15", "m", "1x", "1.5h", "-1s", " 1s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(format_duration(Duration::from_millis(5_400_000)), "90m");
        assert_eq!(format_duration(secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
    }
}
