//! The connection-budget governor on a real server: three Leasewatch binaries and a "web app"
//! share a scratch cluster of 20 slots (17 for ordinary roles). The web app grows from 2
//! connections to 10 and back while the tasks run every second (the demo's leaky task holds
//! its connection for seconds). Sampled every 100 ms: the web app is never refused, the
//! instances' task connections stay within the budget the governor last read, every task
//! keeps completing (none lost, none run twice), and when the web app shrinks the shares grow
//! back within a few reads.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use leasewatch_testkit::ScratchCluster;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use support::{OPERATOR, Server, leasewatch};

/// Slots ordinary roles can use: 20 `max_connections` − 3 reserved.
const USABLE: i64 = 17;
/// `BUDGET_HEADROOM`: what the web app may grow by between two reads of the server (it adds
/// a connection every 1.5 s; the governor reads every 2 s).
const HEADROOM: i64 = 2;
/// The web app's connections, before and at its peak.
const WEB_LOW: usize = 2;
const WEB_PEAK: usize = 10;
/// How long the governor may take to follow the server: a read every 2 s, then a window.
const REACTION: Duration = Duration::from_secs(4);

/// One look at the server's sessions.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    /// Task connections of all instances.
    tasks: i64,
    /// The instances' other sessions (control, probe).
    overhead: i64,
    /// Everyone else: the web app.
    foreign: i64,
}

impl Sample {
    /// What the governor computes from this look: the budget for all instances' tasks.
    fn budget(&self) -> i64 {
        (USABLE - self.foreign - self.overhead - HEADROOM).max(0)
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_server_and_yield_to_the_web_app() {
    let Some(cluster) = tokio::task::spawn_blocking(|| ScratchCluster::start(20))
        .await
        .unwrap()
    else {
        return;
    };
    let mut setup = PgConnection::connect(&cluster.url("postgres", "postgres"))
        .await
        .unwrap();
    for sql in [
        "CREATE ROLE app LOGIN",
        "GRANT pg_read_all_stats TO app",
        "CREATE ROLE web LOGIN",
        // To see every session's application_name, as a monitoring web app would.
        "GRANT pg_read_all_stats TO web",
        "CREATE DATABASE app OWNER app",
    ] {
        setup.execute(sql).await.unwrap();
    }
    setup.close().await.unwrap();
    let web_url = format!("{}?application_name=web", cluster.url("web", "app"));
    // The web app's first connection also watches the server for the test, so the test takes
    // no slot of its own; the others come and go.
    let watcher = PgConnection::connect(&web_url).await.unwrap();
    let mut web = Vec::new();
    for _ in 1..WEB_LOW {
        web.push(PgConnection::connect(&web_url).await.unwrap());
    }

    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = Vec::new();
    for dir in &dirs {
        let mut command = leasewatch(dir.path());
        command
            .arg("--demo")
            .env("DATABASE_URL", cluster.url("app", "app"))
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
    // Each instance has read the server and sees all three.
    let started = Instant::now();
    for server in &servers {
        loop {
            let s = status(server).await;
            if s["governor"]["budget"]["instances"] == 3 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{s:#}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let mut shares_before = Vec::new();
    for server in &servers {
        shares_before.push(status(server).await["governor"]["share"].as_u64().unwrap());
    }

    // Every 100 ms, who holds the server's sessions.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let sampling = {
        let samples = Arc::clone(&samples);
        let mut watcher = watcher;
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

    // The web app grows to its peak, holds, and shrinks back.
    let mut refused = Vec::new();
    while 1 + web.len() < WEB_PEAK {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        match PgConnection::connect(&web_url).await {
            Ok(conn) => web.push(conn),
            Err(err) => {
                let last = samples.lock().unwrap().last().copied();
                refused.push(format!(
                    "at {} web connections, server: {last:?}: {err}",
                    1 + web.len()
                ));
            }
        }
        assert!(refused.len() < 5, "the web app was refused: {refused:?}");
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut shares_at_peak = Vec::new();
    for server in &servers {
        shares_at_peak.push(status(server).await["governor"]["share"].as_u64().unwrap());
    }
    let peak_ended = chrono::Utc::now();
    while 1 + web.len() > WEB_LOW {
        web.pop().unwrap().close().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        refused,
        Vec::<String>::new(),
        "the web app is never refused"
    );

    // The shares grow back within a few reads.
    let shrunk = Instant::now();
    for (server, before) in servers.iter().zip(&shares_before) {
        loop {
            let s = status(server).await;
            if s["governor"]["share"].as_u64().unwrap() >= *before {
                break;
            }
            assert!(
                shrunk.elapsed() < Duration::from_secs(10),
                "share not back to {before}: {:#}",
                s["governor"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!(
        "shares {shares_before:?}, at the peak {shares_at_peak:?}, back {:?} after the web \
         app shrank",
        shrunk.elapsed()
    );
    assert!(
        shares_at_peak
            .iter()
            .zip(&shares_before)
            .all(|(peak, before)| peak < before),
        "the shares yield to the web app: {shares_before:?} → {shares_at_peak:?}"
    );
    sampling.abort();

    // Within the budget the governor last read, at every look; never the web app's slots.
    let samples = samples.lock().unwrap().clone();
    assert!(samples.len() > 200, "{} samples", samples.len());
    let mut peak = 0;
    for (i, s) in samples.iter().enumerate() {
        peak = peak.max(s.tasks + s.overhead);
        assert!(
            s.tasks + s.overhead + s.foreign <= USABLE,
            "the server was full at sample {i}: {s:?}"
        );
        // The floor is one task connection per instance, whatever the budget.
        let allowed = samples[..=i]
            .iter()
            .filter(|earlier| s.at.duration_since(earlier.at) <= REACTION)
            .map(Sample::budget)
            .max()
            .unwrap_or(USABLE)
            .max(3);
        assert!(
            s.tasks <= allowed,
            "sample {i}: {} task connections over a budget of {allowed}: {s:?}",
            s.tasks
        );
    }
    eprintln!(
        "{} samples; the instances' sessions peaked at {peak}",
        samples.len()
    );

    // Every task still completes after the peak; no run lost (stopping lets runs in flight
    // finish, and run numbers are issued one by one, so the highest equals the count).
    for server in &servers {
        let stop = http
            .post(format!("{}api/admin/background-jobs/status", server.url))
            .bearer_auth(OPERATOR)
            .json(&serde_json::json!({"action": "stop"}))
            .send()
            .await
            .unwrap();
        assert!(stop.status().is_success(), "{}", stop.text().await.unwrap());
        let s = status(server).await;
        let tasks = s["tasks"].as_array().unwrap();
        let issued = tasks
            .iter()
            .flat_map(|t| t["history"].as_array().unwrap())
            .filter_map(|r| r["run_id"].as_u64())
            .max()
            .unwrap();
        let counted: u64 = tasks
            .iter()
            .map(|t| {
                [
                    "succeeded",
                    "failed",
                    "elsewhere_skips",
                    "over_limit_skips",
                    "cancelled",
                ]
                .iter()
                .map(|k| t["counts"][k].as_u64().unwrap())
                .sum::<u64>()
            })
            .sum();
        assert_eq!(issued, counted, "every run has its outcome: {s:#}");
        for task in tasks {
            let name = task["name"].as_str().unwrap();
            if name == "leaky_report" {
                continue;
            }
            let after_peak = task["history"].as_array().unwrap().iter().any(|r| {
                r["outcome"]["kind"] == "succeeded"
                    && r["started_at"]
                        .as_str()
                        .and_then(|at| at.parse::<chrono::DateTime<chrono::Utc>>().ok())
                        .is_some_and(|at| at > peak_ended)
            });
            assert!(
                after_peak,
                "{name} did not succeed after the peak: {task:#}"
            );
        }
        let skips: u64 = tasks
            .iter()
            .map(|t| t["counts"]["over_limit_skips"].as_u64().unwrap())
            .sum();
        eprintln!(
            "{}: {counted} runs, {skips} skipped at the full limit",
            server.url
        );
    }
    // None run twice: each auction transition is recorded once.
    let mut check = PgConnection::connect(&format!(
        "{}?options=-c%20search_path%3Dleasewatch",
        cluster.url("postgres", "app")
    ))
    .await
    .unwrap();
    let duplicated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM auction_events \
         GROUP BY auction_id, from_status, to_status HAVING count(*) > 1) d",
    )
    .fetch_one(&mut check)
    .await
    .unwrap();
    assert_eq!(duplicated, 0, "each transition is recorded once");
    check.close().await.unwrap();

    for server in servers {
        let (code, log) = tokio::task::spawn_blocking(move || server.stop())
            .await
            .unwrap();
        assert_eq!(code, Some(0), "{log:#?}");
        assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
    }
    for conn in web {
        conn.close().await.unwrap();
    }
}
