//! The configuration as a user writes it: defaults, values, and the line a bad value gets.

use std::collections::HashMap;

use super::{
    env::{format_duration, parse_duration},
    *,
};

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
        ("CLEANUP_INTERVAL", "0s", "duration from 1s to 7days"),
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
        ("1h 30m", 5_400_000),
        ("1.5h", 5_400_000),
    ] {
        assert_eq!(
            parse_duration(text),
            Some(Duration::from_millis(ms)),
            "{text}"
        );
    }
    for bad in ["", "15", "m", "1x", "-1s", "1h30"] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
    // What the messages print reads back as the same duration.
    for d in [
        Duration::from_millis(5_400_000),
        secs(3600),
        secs(7 * 86_400),
        Duration::from_millis(250),
        Duration::ZERO,
    ] {
        assert_eq!(parse_duration(&format_duration(d)), Some(d), "{d:?}");
    }
    assert_eq!(format_duration(Duration::from_millis(5_400_000)), "1h 30m");
    assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
}

#[test]
fn the_governor_and_task_limits_are_read_and_checked() {
    let defaults = config(&[]).unwrap().engine;
    assert_eq!(defaults.governor, GovernorConfig::default());
    assert_eq!(defaults.task_limits, default_task_limits());

    let c = config(&[
        ("GOVERNOR", "off"),
        ("BUDGET_HEADROOM", "25%"),
        ("TASK_AUCTION_MONITOR_TIMEOUT", "2m"),
        ("TASK_AUCTION_MONITOR_PRIORITY", "7"),
    ])
    .unwrap()
    .engine;
    assert!(!c.governor.enabled);
    assert_eq!(c.governor.headroom, Headroom::Percent(25));
    let monitor = c.task_limits["auction_monitor"];
    assert_eq!(monitor.timeout, Some(secs(120)));
    assert_eq!(monitor.priority, Priority(7));
    assert_eq!(
        c.task_limits["health_check"].timeout, None,
        "the lease timeout"
    );
    assert_eq!(
        config(&[("BUDGET_HEADROOM", "4")])
            .unwrap()
            .engine
            .governor
            .headroom,
        Headroom::Slots(4)
    );

    assert_eq!(
        config_err(&[("GOVERNOR", "yes")]),
        "invalid GOVERNOR=\"yes\": must be on or off"
    );
    for bad in ["-1", "101%", "ten", "3.5", "20000"] {
        assert!(
            config_err(&[("BUDGET_HEADROOM", bad)]).starts_with(&format!(
                "invalid BUDGET_HEADROOM={bad:?}: must be a number of connections from 0 to 10000"
            )),
            "{bad}"
        );
    }
    assert!(
        config_err(&[("TASK_HEALTH_CHECK_PRIORITY", "10")])
            .contains("must be a whole number from 0 to 9")
    );
    assert!(config_err(&[("TASK_STATUS_TRANSITIONS_TIMEOUT", "0s")]).contains("from 1s to 1h"));
}

#[test]
fn the_forecast_and_the_demo_leak_are_read_and_checked() {
    let defaults = config(&[]).unwrap().engine;
    assert_eq!(defaults.predict, PredictSettings::default());
    assert_eq!(defaults.predict.horizon, secs(300));
    assert!(defaults.predict.act);

    let c = config(&[("PREDICT_HORIZON", "90s"), ("PREDICTIVE_CLEANUP", "off")])
        .unwrap()
        .engine;
    assert_eq!(c.predict.horizon, secs(90));
    assert!(!c.predict.act);
    assert_eq!(
        config_err(&[("PREDICT_HORIZON", "5s")]),
        "invalid PREDICT_HORIZON=\"5s\": must be a duration from 10s to 1h, written like 500ms, \
         30s, 15m, 1h or 1h30m"
    );
    assert_eq!(
        config_err(&[("PREDICTIVE_CLEANUP", "maybe")]),
        "invalid PREDICTIVE_CLEANUP=\"maybe\": must be on or off"
    );

    assert_eq!(defaults.history_retention, secs(14 * 86_400));
    let c = config(&[("HISTORY_RETENTION", "30d")]).unwrap().engine;
    assert_eq!(c.history_retention, secs(30 * 86_400));
    assert!(
        config_err(&[("HISTORY_RETENTION", "1d")])
            .starts_with("invalid HISTORY_RETENTION=\"1d\": must be a duration from 2days to"),
        "{}",
        config_err(&[("HISTORY_RETENTION", "1d")])
    );

    let demo = |vars: &[(&str, &str)]| {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|var| map.get(var).cloned(), true)
    };
    let leak = demo(&[
        ("DEMO_LEAK_HOLD", "90s"),
        ("DEMO_LEAK_EVERY", "5s"),
        ("DEMO_LEAK_PILE_UP", "on"),
    ])
    .unwrap()
    .engine
    .demo_leak;
    assert_eq!(
        leak,
        Some(DemoLeak {
            every: secs(5),
            hold: secs(90),
            pile_up: true
        })
    );
    assert_eq!(
        demo(&[("DEMO_LEAK_HOLD", "60s")]).unwrap().engine.demo_leak,
        Some(DemoLeak::holding(secs(60)))
    );
    assert_eq!(
        demo(&[("DEMO_LEAK_EVERY", "5s")]).unwrap_err().to_string(),
        "invalid DEMO_LEAK_EVERY=\"5s\": only with --demo and DEMO_LEAK_HOLD (it shapes the \
         demo's leak)"
    );
    assert!(
        config_err(&[("DEMO_LEAK_HOLD", "60s")]).contains("only with --demo"),
        "without --demo"
    );
}

#[test]
fn a_task_schedule_is_a_cron_expression_in_an_optional_zone() {
    let read = config(&[
        (
            "TASK_HEALTH_CHECK_SCHEDULE",
            "CRON_TZ=Europe/Berlin 30 2 * * *",
        ),
        ("TASK_AUCTION_MONITOR_SCHEDULE", "*/20 * * * *"),
    ])
    .unwrap();
    let schedules = &read.engine.schedules;
    assert_eq!(schedules.len(), 2);
    assert_eq!(
        schedules["health_check"].describe(),
        "cron 30 2 * * * (Europe/Berlin)"
    );
    assert_eq!(
        schedules["auction_monitor"].describe(),
        "cron */20 * * * * (UTC)"
    );
    assert!(!schedules.contains_key("status_transitions"));
    assert!(config(&[]).unwrap().engine.schedules.is_empty());
}

#[test]
fn a_schedule_and_an_interval_for_one_task_are_refused_by_name() {
    assert_eq!(
        config_err(&[
            ("TASK_STATUS_TRANSITIONS_INTERVAL", "10m"),
            ("TASK_STATUS_TRANSITIONS_SCHEDULE", "0 * * * *"),
        ]),
        "invalid TASK_STATUS_TRANSITIONS_SCHEDULE=\"0 * * * *\": must not be set together with \
         TASK_STATUS_TRANSITIONS_INTERVAL: the task runs on one or the other, so unset one of them"
    );
    // Another task's interval is no conflict.
    assert!(
        config(&[
            ("TASK_STATUS_TRANSITIONS_INTERVAL", "10m"),
            ("TASK_HEALTH_CHECK_SCHEDULE", "0 * * * *"),
        ])
        .is_ok()
    );
}

#[test]
fn a_bad_schedule_names_the_variable_the_value_and_what_is_allowed() {
    assert_eq!(
        config_err(&[(
            "TASK_HEALTH_CHECK_SCHEDULE",
            "CRON_TZ=Europe/Atlantis 0 * * * *"
        )]),
        "invalid TASK_HEALTH_CHECK_SCHEDULE=\"CRON_TZ=Europe/Atlantis 0 * * * *\": CRON_TZ names \
         an unknown time zone \"Europe/Atlantis\": use an IANA name such as Europe/Berlin, \
         America/New_York or UTC"
    );
    for bad in ["every hour", "61 * * * *", "0 0 * * * *", "0 0 30 2 *"] {
        let err = config_err(&[("TASK_AUCTION_MONITOR_SCHEDULE", bad)]);
        assert!(
            err.starts_with(&format!(
                "invalid TASK_AUCTION_MONITOR_SCHEDULE={bad:?}: must be a cron expression of \
                 five fields, minute hour day-of-month month day-of-week (like 30 2 * * * or \
                 */15 * * * 1-5), optionally after CRON_TZ=Area/City and a space ("
            )),
            "{err}"
        );
    }
}

#[test]
fn alert_receivers_timers_and_key_are_read() {
    let config = config(&[
        (
            "ALERT_WEBHOOK_URL",
            "http://127.0.0.1:9000/a, http://127.0.0.1:9000/b",
        ),
        ("ALERT_ALERTMANAGER_URL", "http://am.internal:9093"),
        (
            "ALERT_CHAT_WEBHOOK_URL",
            "https://hooks.slack.com/services/T0/B0/SECRET",
        ),
        ("ALERT_GROUP_WAIT", "0s"),
        ("ALERT_GROUP_INTERVAL", "1m"),
        ("ALERT_REPEAT_INTERVAL", "12h"),
        ("ALERT_HMAC_SECRET", "0123456789abcdef0123"),
        ("ALERT_INSTANCE", "web-1.example.com:3000"),
    ])
    .unwrap();
    let alerts = &config.engine.alerts;
    let names: Vec<&str> = alerts.receivers.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "webhook 127.0.0.1:9000",
            "webhook 127.0.0.1:9000 #2",
            "alertmanager am.internal:9093",
            "chat hooks.slack.com:443",
        ]
    );
    assert_eq!(alerts.timers.group_wait, Duration::ZERO);
    assert_eq!(alerts.timers.group_interval, secs(60));
    assert_eq!(alerts.timers.repeat_interval, secs(12 * 3600));
    assert!(alerts.signing_key.is_some());
    assert_eq!(alerts.instance.as_deref(), Some("web-1.example.com:3000"));
    // Nothing of a secret URL or the key is printed with the configuration.
    let printed = format!("{config:?}");
    assert!(!printed.contains("SECRET") && !printed.contains("0123456789abcdef0123"));

    let defaults = config_default_alerts();
    assert!(defaults.receivers.is_empty());
    assert_eq!(defaults.timers, Timers::default());
}

fn config_default_alerts() -> AlertSettings {
    config(&[]).unwrap().engine.alerts
}

#[test]
fn bad_alert_settings_name_the_variable_and_never_show_a_secret() {
    assert_eq!(
        config_err(&[(
            "ALERT_CHAT_WEBHOOK_URL",
            "ftp://hooks.slack.com/services/T0/B0/SECRET"
        )]),
        "invalid ALERT_CHAT_WEBHOOK_URL=\"ftp://hooks.slack.com/…\": must be http:// or \
         https:// addresses with a host and no #fragment, separated by commas"
    );
    assert!(config_err(&[("ALERT_WEBHOOK_URL", "not a url")]).contains("an unreadable address"));
    let eleven = ["http://127.0.0.1:1/"; 11].join(",");
    assert!(config_err(&[("ALERT_WEBHOOK_URL", &eleven)]).contains("at most 10 alert receivers"));
    assert!(config_err(&[("ALERT_HMAC_SECRET", "short")]).contains("at least 16 characters"));
    assert!(!config_err(&[("ALERT_HMAC_SECRET", "short")]).contains("short\""));
    assert!(config_err(&[("ALERT_GROUP_INTERVAL", "0s")]).contains("from 1s to 1day"));
    assert!(config_err(&[("ALERT_REPEAT_INTERVAL", "10s")]).contains("from 1m to 7days"));
    assert!(config_err(&[("ALERT_INSTANCE", "web 1")]).contains("ALERT_INSTANCE"));
}

#[test]
fn replicas_are_read_in_order_with_their_settings() {
    const PRIMARY: (&str, &str) = ("DATABASE_URL", "postgres://app:pw@db-1:5432/shop");
    let none = config(&[PRIMARY]).unwrap().engine;
    assert!(none.replicas.is_empty(), "one database unless told");
    let config = config(&[
        PRIMARY,
        (
            "DATABASE_REPLICA_URLS",
            " postgres://app:pw@db-2/shop , postgresql://reader@DB-3:6432/shop",
        ),
        ("REPLICA_MAX_LAG", "3s"),
        ("REPLICA_FALLBACK", "wait"),
    ])
    .unwrap()
    .engine;
    let addresses: Vec<String> = config.replicas.iter().map(DatabaseUrl::address).collect();
    assert_eq!(addresses, ["db-2:5432/shop", "DB-3:6432/shop"]);
    assert_eq!(config.replica.max_lag, secs(3));
    assert_eq!(config.replica.fallback, Fallback::Wait);
}

#[test]
fn bad_replicas_name_the_variable_and_never_show_a_password() {
    const PRIMARY: (&str, &str) = ("DATABASE_URL", "postgres://app:pw@db-1:5432/shop");
    let refused = |replicas: &str| config_err(&[PRIMARY, ("DATABASE_REPLICA_URLS", replicas)]);
    assert_eq!(
        refused("postgres://app:hunter2@DB-1/shop"),
        "invalid DATABASE_REPLICA_URLS=\"postgres://app:***@DB-1/shop\": is DATABASE_URL's own \
         database, not a replica"
    );
    assert_eq!(
        refused("postgres://a@db-2/shop,postgres://b@db-2:5432/shop"),
        "invalid DATABASE_REPLICA_URLS=\"postgres://b@db-2:5432/shop\": is listed twice"
    );
    assert!(refused("sqlite://data/replica.db").ends_with(
        "read replicas are PostgreSQL streaming replicas of a PostgreSQL DATABASE_URL \
             (postgres://user@host:port/db, comma-separated)"
    ));
    assert!(refused("mysql://db-2/shop").contains("unknown scheme \"mysql\""));
    let nine: Vec<String> = (2..11).map(|i| format!("postgres://db-{i}/shop")).collect();
    assert_eq!(
        refused(&nine.join(",")),
        "invalid DATABASE_REPLICA_URLS=\"9 URLs\": at most 8 replicas"
    );
    // SQLite has no replicas.
    assert!(
        config_err(&[("DATABASE_REPLICA_URLS", "postgres://db-2/shop")])
            .contains("of a PostgreSQL DATABASE_URL")
    );
    // Replica settings without replicas would do nothing: refused, not ignored.
    assert_eq!(
        config_err(&[PRIMARY, ("REPLICA_MAX_LAG", "5s")]),
        "invalid REPLICA_MAX_LAG=\"5s\": only with DATABASE_REPLICA_URLS (it says how replicas \
         are used)"
    );
    let with = |var, value| {
        config_err(&[
            PRIMARY,
            ("DATABASE_REPLICA_URLS", "postgres://db-2/shop"),
            (var, value),
        ])
    };
    assert_eq!(
        with("REPLICA_FALLBACK", "replica"),
        "invalid REPLICA_FALLBACK=\"replica\": one of primary, wait: where read work goes while \
         no replica is in rotation"
    );
    assert!(with("REPLICA_MAX_LAG", "0s").starts_with("invalid REPLICA_MAX_LAG=\"0s\""));
}
