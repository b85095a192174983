//! Predictive cleanup against Leasewatch's own leak, side by side with `PREDICTIVE_CLEANUP=off`.
//!
//! A scratch cluster of 20 slots (17 for ordinary roles). A web app holds 4 connections and
//! opens one more for each request, twice a second. Leasewatch runs the demo with its leak
//! piling up: `leaky_report` runs every 5 s and leaves its connection behind for 90 s. The
//! governor is off and the lease timeout long (60 s), with the periodic cleanup every 5 min, so
//! neither the budget nor the stale-lease cleanup is what stops the leak: only the forecast can.
//! Each phase runs for 150 s. Refusals are counted in the server's own log. Needs PostgreSQL's
//! `initdb` and `pg_ctl`.
//!
//! `cargo bench -p leasewatch --bench predictive`

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use leasewatch_testkit::ScratchCluster;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use support::{OPERATOR, Row, Server, app_database, leasewatch, side_by_side};

/// How long each phase runs.
const PHASE: Duration = Duration::from_secs(150);

/// The web app's steady connections.
const WEB_HELD: usize = 4;

const APP_ENV: &[(&str, &str)] = &[
    ("GOVERNOR", "off"),
    ("DB_MAX_CONNECTIONS", "20"),
    ("DB_MIN_CONNECTIONS", "1"),
    ("LEASE_TIMEOUT", "60s"),
    ("CLEANUP_INTERVAL", "5m"),
    ("DEMO_LEAK_HOLD", "90s"),
    ("DEMO_LEAK_EVERY", "5s"),
    ("DEMO_LEAK_PILE_UP", "on"),
];

/// What one phase saw.
struct Report {
    /// Connections the server refused, by its log.
    refused_in_log: usize,
    /// The web app's requests that could not connect, of those it tried.
    web_refused: usize,
    web_tried: usize,
    /// The most client connections at once (sampled every 500 ms).
    peak: i64,
    /// The app's own peak.
    app_peak: i64,
    /// `leaky_report` runs that took their connection.
    leaky_runs: u64,
    /// Runs of every task that waited for the forecast to clear, and predictive audit entries.
    deferred: u64,
    predictive_entries: u64,
    /// When the forecast was first raised, into the phase.
    first_alarm: Option<Duration>,
}

async fn phase(predictive: bool) -> Option<Report> {
    let cluster = tokio::task::spawn_blocking(|| ScratchCluster::start(20))
        .await
        .unwrap()?;
    app_database(&cluster, &["CREATE ROLE web LOGIN"]).await;
    let web_url = format!("{}?application_name=web", cluster.url("web", "app"));
    let watch_url = format!("{}?application_name=bench", cluster.url("postgres", "app"));
    let mut held = Vec::new();
    for _ in 0..WEB_HELD {
        held.push(PgConnection::connect(&web_url).await.unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    let mut command = leasewatch(dir.path());
    command
        .arg("--demo")
        .env("DATABASE_URL", cluster.url("app", "app"))
        .env("PREDICTIVE_CLEANUP", if predictive { "on" } else { "off" })
        .envs(APP_ENV.iter().copied());
    let server = tokio::task::spawn_blocking(move || Server::start(&mut command))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let status_url = format!("{}api/admin/background-jobs/status", server.url);
    // The bench watches as the superuser: its one session counts against the 17 like any other.
    let mut watcher = PgConnection::connect(&watch_url).await.unwrap();

    let started = Instant::now();
    let (mut peak, mut app_peak, mut web_tried, mut web_refused) = (0, 0, 0, 0);
    let mut first_alarm = None;
    let mut last_status = Value::Null;
    while started.elapsed() < PHASE {
        let tick = Instant::now();
        web_tried += 1;
        match PgConnection::connect(&web_url).await {
            Ok(conn) => conn.close().await.unwrap(),
            Err(_) => web_refused += 1,
        }
        let (total, app): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE usename = 'app') FROM pg_stat_activity \
             WHERE backend_type = 'client backend'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        (peak, app_peak) = (peak.max(total), app_peak.max(app));
        if let Ok(answer) = http.get(&status_url).bearer_auth(OPERATOR).send().await
            && let Ok(status) = answer.json::<Value>().await
        {
            if first_alarm.is_none() && !status["forecast"]["alarm"].is_null() {
                first_alarm = Some(started.elapsed());
            }
            last_status = status;
        }
        tokio::time::sleep(Duration::from_millis(500).saturating_sub(tick.elapsed())).await;
    }
    let tasks = last_status["tasks"].as_array().cloned().unwrap_or_default();
    let leaky_runs = tasks
        .iter()
        .filter(|t| t["name"] == "leaky_report")
        .filter_map(|t| t["counts"]["succeeded"].as_u64())
        .sum();
    let deferred = tasks
        .iter()
        .filter_map(|t| t["counts"]["deferred"].as_u64())
        .sum();
    let predictive_entries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM leasewatch.audit_log WHERE action = 'predictive_cleanup'",
    )
    .fetch_one(&mut watcher)
    .await
    .expect("the audit log");
    watcher.close().await.unwrap();
    let _ = tokio::task::spawn_blocking(move || server.stop()).await;
    for conn in held {
        conn.close().await.unwrap();
    }
    let log = std::fs::read_to_string(cluster.log_path()).unwrap_or_default();
    let refused_in_log = log
        .lines()
        .filter(|l| {
            l.contains("remaining connection slots are reserved")
                || l.contains("too many clients already")
        })
        .count();
    Some(Report {
        refused_in_log,
        web_refused,
        web_tried,
        peak,
        app_peak,
        leaky_runs,
        deferred,
        predictive_entries: u64::try_from(predictive_entries).unwrap_or(0),
        first_alarm,
    })
}

fn main() {
    let rows: [Row<Report>; 7] = [
        ("connections refused (server log)", |r| {
            r.refused_in_log.to_string()
        }),
        ("web requests refused", |r| {
            format!("{} of {}", r.web_refused, r.web_tried)
        }),
        ("peak client connections (17 usable)", |r| {
            r.peak.to_string()
        }),
        ("peak Leasewatch sessions", |r| r.app_peak.to_string()),
        ("leaky_report runs", |r| r.leaky_runs.to_string()),
        ("runs deferred / predictive audit entries", |r| {
            format!("{} / {}", r.deferred, r.predictive_entries)
        }),
        ("first forecast, into the phase", |r| {
            r.first_alarm
                .map_or("none".to_owned(), |d| format!("{:.0} s", d.as_secs_f64()))
        }),
    ];
    side_by_side(
        ["PREDICTIVE_CLEANUP=off", "PREDICTIVE_CLEANUP=on"],
        phase,
        &rows,
    );
}
