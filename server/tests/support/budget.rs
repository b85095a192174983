//! The connection-budget scenario, for the governor's test and its benchmark: three Leasewatch
//! binaries and a "web app" share a scratch cluster of 20 slots (17 for ordinary roles). The
//! web app tries to grow from 2 connections to 10 (one every 1.5 s), holds for 6 s and shrinks back,
//! while the tasks run every second (the demo's leaky task holds its connection for 3 s).
//! Every 100 ms the web app's first connection looks at who holds the server's sessions.

#![allow(dead_code)] // the test and the benchmark each read their own part of the report

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use leasewatch_testkit::ScratchCluster;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::{OPERATOR, Server, app_database, leasewatch, runs_issued_and_counted};

/// Slots ordinary roles can use: 20 `max_connections` − 3 reserved.
pub const USABLE: i64 = 17;
/// `BUDGET_HEADROOM`: what the web app may grow by between two reads of the server (it adds a
/// connection every 1.5 s; the governor reads every 2 s).
pub const HEADROOM: i64 = 2;
/// The web app's connections, before and at its peak.
const WEB_LOW: usize = 2;
const WEB_PEAK: usize = 10;
/// Instances.
pub const INSTANCES: usize = 3;

const APP_ENV: &[(&str, &str)] = &[
    ("TASK_STATUS_TRANSITIONS_INTERVAL", "1s"),
    ("TASK_AUCTION_MONITOR_INTERVAL", "1s"),
    ("TASK_HEALTH_CHECK_INTERVAL", "1s"),
    ("CLEANUP_INTERVAL", "1s"),
    ("DEMO_LEAK_HOLD", "3s"),
    ("LEASE_TIMEOUT", "5s"),
    ("RETRY_BASE_DELAY", "100ms"),
    ("RETRY_MAX_DELAY", "1s"),
    ("DB_CONNECTION_TIMEOUT", "2000"),
    ("DB_MAX_CONNECTIONS", "10"),
    ("DB_MIN_CONNECTIONS", "1"),
    ("DB_IDLE_TIMEOUT", "2000"),
    ("BUDGET_HEADROOM", "2"),
];

/// One look at the server's sessions.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// Task connections of all instances.
    pub tasks: i64,
    /// The instances' other sessions (control, probe).
    pub overhead: i64,
    /// Everyone else: the web app.
    pub foreign: i64,
}

impl Sample {
    /// What the governor computes from this look: the budget for all instances' tasks.
    pub fn budget(&self) -> i64 {
        (USABLE - self.foreign - self.overhead - HEADROOM).max(0)
    }
}

/// What one run of the scenario saw.
#[derive(Debug)]
pub struct Report {
    /// Every look at the server.
    pub samples: Vec<Sample>,
    /// The web app's refused connection attempts, with what the server looked like.
    pub web_refused: Vec<String>,
    /// Runs that met a refused connection (failed for it, or retried after it).
    pub leasewatch_refused: u64,
    /// Runs that did their work, all instances together.
    pub completions: u64,
    /// Runs skipped at a full lease limit.
    pub over_limit_skips: u64,
    /// Per instance: run numbers issued, and runs counted by outcome (equal when none is lost).
    pub issued_and_counted: Vec<(u64, u64)>,
    /// Tasks (by instance and name) that did not succeed after the web app's peak.
    pub not_after_peak: Vec<String>,
    /// Each instance's share before the web app grew, and at its peak.
    pub shares_before: Vec<u64>,
    pub shares_at_peak: Vec<u64>,
    /// From the web app being back to 2 connections until every task of every instance has
    /// succeeded in a run started after that.
    pub recovered_after: Duration,
    /// From the web app starting to shrink until every share was back to what it was before
    /// (`None`: not within 20 s).
    pub shares_back_after: Option<Duration>,
    /// Auction transitions recorded more than once.
    pub duplicated_transitions: i64,
    /// Exit codes, and whether any log said "panicked".
    pub exits: Vec<(Option<i32>, bool)>,
}

impl Report {
    /// The most sessions the instances held at once.
    pub fn peak_sessions(&self) -> i64 {
        self.samples
            .iter()
            .map(|s| s.tasks + s.overhead)
            .max()
            .unwrap_or(0)
    }
}

/// Runs the scenario with the governor on or off (then with fixed pools of 10); `None` without
/// PostgreSQL's tools outside CI.
pub async fn run(governor: bool) -> Option<Report> {
    let cluster = tokio::task::spawn_blocking(|| ScratchCluster::start(20))
        .await
        .unwrap()?;
    app_database(
        &cluster,
        &[
            "CREATE ROLE web LOGIN",
            // To see every session's application_name, as a monitoring web app would.
            "GRANT pg_read_all_stats TO web",
        ],
    )
    .await;
    let web_url = format!("{}?application_name=web", cluster.url("web", "app"));
    // The web app's first connection also watches the server, so watching takes no slot of
    // its own; the others come and go.
    let mut watcher = PgConnection::connect(&web_url).await.unwrap();
    let mut web = Vec::new();
    for _ in 1..WEB_LOW {
        web.push(PgConnection::connect(&web_url).await.unwrap());
    }

    let dirs: Vec<tempfile::TempDir> = (0..INSTANCES)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut servers = Vec::new();
    for dir in &dirs {
        let mut command = leasewatch(dir.path());
        command
            .arg("--demo")
            .env("DATABASE_URL", cluster.url("app", "app"))
            .env("GOVERNOR", if governor { "on" } else { "off" })
            .envs(APP_ENV.iter().copied());
        servers.push(
            tokio::task::spawn_blocking(move || Server::start(&mut command))
                .await
                .unwrap(),
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let status = async |server: &Server| -> Value {
        http.get(format!("{}api/admin/background-jobs/status", server.url))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let shares = async || {
        let mut shares = Vec::new();
        for server in &servers {
            shares.push(status(server).await["governor"]["share"].as_u64().unwrap());
        }
        shares
    };
    // Every instance has run each task once (with the governor: and sees all three).
    let started = Instant::now();
    for server in &servers {
        loop {
            let s = status(server).await;
            let ready = s["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["name"] != HOURLY)
                .all(|t| t["counts"]["succeeded"].as_u64() > Some(0))
                && (!governor || s["governor"]["budget"]["instances"] == INSTANCES);
            if ready {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{s:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let shares_before = shares().await;

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = {
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            loop {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT COALESCE(application_name, ''), COUNT(*) FROM pg_stat_activity \
                     WHERE backend_type = 'client backend' GROUP BY 1",
                )
                .fetch_all(&mut watcher)
                .await
                .unwrap();
                let mut sample = Sample {
                    at: Instant::now(),
                    tasks: 0,
                    overhead: 0,
                    foreign: 0,
                };
                for (application, n) in rows {
                    if application.starts_with("leasewatch:tasks:") {
                        sample.tasks += n;
                    } else if application.starts_with("leasewatch:") {
                        sample.overhead += n;
                    } else {
                        sample.foreign += n;
                    }
                }
                samples.lock().unwrap().push(sample);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // The web app tries to grow to its peak (one connection every 1.5 s, the same number of
    // tries with or without the governor, so both phases last as long), holds, and shrinks.
    let mut web_refused = Vec::new();
    for _ in WEB_LOW..WEB_PEAK {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        match PgConnection::connect(&web_url).await {
            Ok(conn) => web.push(conn),
            Err(err) => {
                let last = samples.lock().unwrap().last().copied();
                web_refused.push(format!(
                    "at {} web connections, server: {last:?}: {err}",
                    1 + web.len()
                ));
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let shares_at_peak = shares().await;
    let peak_ended = Utc::now();
    let shrinking = Instant::now();
    let mut shares_back_after = None;
    while 1 + web.len() > WEB_LOW {
        web.pop().unwrap().close().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    while shares_back_after.is_none() && shrinking.elapsed() < Duration::from_secs(20) {
        let now = shares().await;
        if now
            .iter()
            .zip(&shares_before)
            .all(|(now, before)| now >= before)
        {
            shares_back_after = Some(shrinking.elapsed());
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let low = Instant::now();
    let low_at = Utc::now();
    // Recovered: every task of every instance succeeded in a run started since (bounded).
    loop {
        let mut all = true;
        for server in &servers {
            let s = status(server).await;
            all &= s["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["name"] != "leaky_report" && t["name"] != HOURLY)
                .all(|t| succeeded_since(t, low_at));
        }
        if all || low.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered_after = low.elapsed();
    sampling.abort();

    // Stopping lets runs in flight finish; run numbers are issued one by one, so the highest
    // equals the count when no run was lost.
    let mut report = Report {
        samples: samples.lock().unwrap().clone(),
        web_refused,
        leasewatch_refused: 0,
        completions: 0,
        over_limit_skips: 0,
        issued_and_counted: Vec::new(),
        not_after_peak: Vec::new(),
        shares_before,
        shares_at_peak,
        recovered_after,
        shares_back_after,
        duplicated_transitions: 0,
        exits: Vec::new(),
    };
    for server in &servers {
        let stop = http
            .post(format!("{}api/admin/background-jobs/status", server.url))
            .bearer_auth(OPERATOR)
            .json(&json!({"action": "stop"}))
            .send()
            .await
            .unwrap();
        assert!(stop.status().is_success(), "{}", stop.text().await.unwrap());
        let s = status(server).await;
        let tasks = s["tasks"].as_array().unwrap();
        let count = |t: &Value, k: &str| t["counts"][k].as_u64().unwrap();
        let (issued, counted) = runs_issued_and_counted(&s);
        report.issued_and_counted.push((issued, counted));
        for task in tasks {
            report.completions += count(task, "succeeded");
            report.over_limit_skips += count(task, "over_limit_skips");
            report.leasewatch_refused += task["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| {
                    r["outcome"]["cause"] == "slots_exhausted"
                        || r["retried_after"]
                            .as_str()
                            .is_some_and(|e| e.contains("refuses new connections"))
                })
                .count() as u64;
            let name = task["name"].as_str().unwrap();
            if name != "leaky_report" && name != HOURLY && !succeeded_since(task, peak_ended) {
                report.not_after_peak.push(format!("{}{name}", server.url));
            }
        }
    }
    let mut check = PgConnection::connect(&format!(
        "{}?options=-c%20search_path%3Dleasewatch",
        cluster.url("postgres", "app")
    ))
    .await
    .unwrap();
    report.duplicated_transitions = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM auction_events \
         GROUP BY auction_id, from_status, to_status HAVING count(*) > 1) d",
    )
    .fetch_one(&mut check)
    .await
    .unwrap();
    check.close().await.unwrap();
    for server in servers {
        let (code, log) = tokio::task::spawn_blocking(move || server.stop())
            .await
            .unwrap();
        report
            .exits
            .push((code, log.iter().any(|l| l.contains("panicked"))));
    }
    for conn in web {
        conn.close().await.unwrap();
    }
    Some(report)
}

/// The hourly upkeep task: it has no turn within a test's minutes.
const HOURLY: &str = leasewatch_types::task::HISTORY_RETENTION;

/// Whether `task` (its status JSON) succeeded in a run started after `since`.
fn succeeded_since(task: &Value, since: DateTime<Utc>) -> bool {
    task["history"].as_array().unwrap().iter().any(|r| {
        r["outcome"]["kind"] == "succeeded"
            && r["started_at"]
                .as_str()
                .and_then(|at| at.parse::<DateTime<Utc>>().ok())
                .is_some_and(|at| at > since)
    })
}
