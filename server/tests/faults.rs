//! The faults Leasewatch exists for, on the real binary against a scratch PostgreSQL cluster
//! of its own (never the machine's shared server): the server restarted, every connection of
//! the app terminated, the connection slots taken by another client, 200 dashboards polling,
//! SIGTERM with runs in flight.
//!
//! In each, the same promises are checked: no panic; no audit row and no run lost (every run
//! number ever issued has its outcome counted, every auction transition is recorded exactly
//! once, an action taken during the fault is in the audit table afterwards); leases back to 0;
//! the tasks recover by themselves within their backoff window; the recommendations said what
//! was happening while it happened; and the status endpoint's p99 stays under
//! [`STATUS_P99_BOUND`] throughout.
//!
//! Cadences are shortened (tasks every second, retries from 100 ms up to 1 s) so a fault and
//! the recovery from it take seconds; every wait is bounded.

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use leasewatch_testkit::ScratchCluster;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool, postgres::PgPoolOptions};
use support::{OPERATOR, Server, app_database, leasewatch, runs_issued_and_counted};

/// The bound on the status endpoint's p99, during every fault. The endpoint reads in-process
/// state only, so a database in trouble must not slow it; the bound is loose because this is
/// a debug build on a small, busy machine.
const STATUS_P99_BOUND: Duration = Duration::from_millis(500);

/// A task recovers within its interval plus its whole retry series (four attempts, backoff
/// capped at 1 s) plus a run: ten seconds is that with room to spare.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

/// The three real tasks.
const TASKS: [&str; 3] = ["status_transitions", "auction_monitor", "health_check"];

/// Scratch clusters, servers and load each test makes would distort the others' latencies.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The app's settings for every fault: fast cadences, short retries, a small pool.
const FAST: &[(&str, &str)] = &[
    ("TASK_STATUS_TRANSITIONS_INTERVAL", "1s"),
    ("TASK_AUCTION_MONITOR_INTERVAL", "1s"),
    ("TASK_HEALTH_CHECK_INTERVAL", "1s"),
    ("CLEANUP_INTERVAL", "1s"),
    ("RETRY_BASE_DELAY", "100ms"),
    ("RETRY_MAX_DELAY", "1s"),
    ("RETRY_MAX", "3"),
    ("LEASE_TIMEOUT", "5s"),
    ("DB_CONNECTION_TIMEOUT", "1000"),
    ("DB_MAX_CONNECTIONS", "5"),
    ("DB_MIN_CONNECTIONS", "1"),
    ("DB_IDLE_TIMEOUT", "1000"),
    ("REC_HOLD", "0s"),
    ("REC_CLEAR", "2s"),
];

/// `url` with the session's `search_path` set to the schema Leasewatch's tables live in, so the
/// test's own queries name them as the app does.
fn in_app_schema(url: String) -> String {
    format!("{url}?options=-c%20search_path%3Dleasewatch")
}

/// One status poll as a dashboard or script sees it.
#[derive(Debug, Clone)]
struct Poll {
    at: Instant,
    latency: Duration,
    ok: bool,
    recommendations: Vec<String>,
}

/// A scratch cluster, the app on it as a non-superuser (so the reserved slots stay free for
/// the test's own superuser connection), and a status poller.
struct Rig {
    cluster: ScratchCluster,
    server: Option<Server>,
    /// The server's working folder (Leptos.toml), kept for a restart.
    dir: tempfile::TempDir,
    http: reqwest::Client,
    /// Superuser connections to the app's database, for what the test checks and does.
    admin: PgPool,
    polls: Arc<Mutex<Vec<Poll>>>,
    polling: Arc<AtomicBool>,
    /// Control actions the test made that the server accepted (each must be audited).
    actions: usize,
}

impl Rig {
    /// Starts a cluster with `max_connections` and the app in demo mode (plus `extra`
    /// settings). `None` (skip) without PostgreSQL's tools outside CI.
    async fn start(max_connections: u32, extra: &[(&str, &str)]) -> Option<Self> {
        let cluster = tokio::task::spawn_blocking(move || ScratchCluster::start(max_connections))
            .await
            .unwrap()?;
        app_database(&cluster, &[]).await;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&in_app_schema(cluster.url("postgres", "app")))
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut command = leasewatch(dir.path());
        command
            .arg("--demo")
            .env("DATABASE_URL", cluster.url("app", "app"))
            .envs(FAST.iter().chain(extra).copied());
        let server = tokio::task::spawn_blocking(move || Server::start(&mut command))
            .await
            .unwrap();
        let rig = Self {
            cluster,
            server: Some(server),
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            admin,
            polls: Arc::default(),
            polling: Arc::new(AtomicBool::new(true)),
            actions: 0,
        };
        rig.poll_status_every(Duration::from_millis(100));
        rig.wait_for("every task to have succeeded once", |status| {
            recovered_since(status, DateTime::<Utc>::MIN_UTC)
        })
        .await;
        Some(rig)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.as_ref().expect("the server").url)
    }

    /// Polls the status endpoint until the rig finishes, recording each answer.
    fn poll_status_every(&self, every: Duration) {
        let (http, url) = (
            self.http.clone(),
            self.url("api/admin/background-jobs/status"),
        );
        let (polls, polling) = (Arc::clone(&self.polls), Arc::clone(&self.polling));
        tokio::spawn(async move {
            while polling.load(Relaxed) {
                let started = Instant::now();
                let answer = http.get(&url).bearer_auth(OPERATOR).send().await;
                let body = match answer {
                    Ok(response) if response.status().is_success() => {
                        response.json::<Value>().await.ok()
                    }
                    _ => None,
                };
                polls.lock().unwrap().push(Poll {
                    at: started,
                    latency: started.elapsed(),
                    ok: body.is_some(),
                    recommendations: body.as_ref().map(recommendation_ids).unwrap_or_default(),
                });
                tokio::time::sleep(every.saturating_sub(started.elapsed())).await;
            }
        });
    }

    /// `GET path` as the operator.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
    }

    async fn status(&self) -> Value {
        self.get("api/admin/background-jobs/status")
            .await
            .json()
            .await
            .unwrap()
    }

    /// Takes a control action through the API; it must be accepted.
    async fn act(&mut self, action: Value) -> Value {
        let response = self
            .http
            .post(self.url("api/admin/background-jobs/status"))
            .bearer_auth(OPERATOR)
            .json(&action)
            .send()
            .await
            .unwrap();
        let code = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(code.is_success(), "{action}: {code} {body}");
        self.actions += 1;
        body
    }

    /// Waits until `check` holds for the status, for at most [`RECOVERY_BOUND`]; returns how
    /// long it took.
    async fn wait_for(&self, what: &str, check: impl Fn(&Value) -> bool) -> Duration {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if check(&status) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < RECOVERY_BOUND,
                "not within {RECOVERY_BOUND:?}: {what}; status: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every task has succeeded in a run started after `since`.
    async fn wait_for_recovery(&self, since: DateTime<Utc>) -> Duration {
        self.wait_for("every task to succeed again by itself", |status| {
            recovered_since(status, since)
        })
        .await
    }

    /// Recommendation ids seen by the poller between `from` and `to`.
    fn recommendations_between(&self, from: Instant, to: Instant) -> Vec<String> {
        let mut seen: Vec<String> = self
            .polls
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.at >= from && p.at <= to)
            .flat_map(|p| p.recommendations.clone())
            .collect();
        seen.sort();
        seen.dedup();
        seen
    }

    /// When a status poll first showed recommendation `id`.
    fn first_shown(&self, id: &str) -> Option<Instant> {
        self.polls
            .lock()
            .unwrap()
            .iter()
            .find(|p| p.recommendations.iter().any(|r| r == id))
            .map(|p| p.at)
    }

    /// Sessions the app has open on the server.
    async fn app_sessions(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'")
            .fetch_one(&self.admin)
            .await
            .unwrap()
    }

    /// The checks every fault ends with, then SIGTERM: the poller's p99 under its bound, runs
    /// all accounted for, leases back to 0, transitions recorded once, every action audited,
    /// no panic, exit 0.
    async fn finish(mut self) -> Vec<String> {
        self.polling.store(false, Relaxed);
        let polls = self.polls.lock().unwrap().clone();
        let failed = polls.iter().filter(|p| !p.ok).count();
        assert_eq!(
            failed, 0,
            "every status poll answers, whatever the database does"
        );
        let p99 = quantile(polls.iter().map(|p| p.latency).collect(), 0.99);
        eprintln!("status polls: {}, p99 {p99:?}", polls.len());
        assert!(
            p99 < STATUS_P99_BOUND,
            "status p99 {p99:?} over {STATUS_P99_BOUND:?}"
        );

        // Stopping lets runs in flight finish, so every run issued has ended.
        self.act(json!({"action": "stop"})).await;
        let status = self.status().await;
        assert_eq!(status["leases"], json!([]), "{status:#}");
        assert_eq!(status["pool"]["leases"], 0, "{status:#}");
        assert_eq!(status["pool"]["active"], 0, "{status:#}");
        let (issued, counted) = runs_issued_and_counted(&status);
        assert_eq!(issued, counted, "every run has its outcome: {status:#}");

        let duplicated: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT 1 FROM auction_events \
             GROUP BY auction_id, from_status, to_status HAVING count(*) > 1) d",
        )
        .fetch_one(&self.admin)
        .await
        .unwrap();
        assert_eq!(duplicated, 0, "each transition is recorded once");
        let unrecorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM auctions a WHERE a.status <> 'scheduled' AND a.status \
             IS DISTINCT FROM (SELECT e.to_status FROM auction_events e \
             WHERE e.auction_id = a.id ORDER BY e.id DESC LIMIT 1)",
        )
        .fetch_one(&self.admin)
        .await
        .unwrap();
        assert_eq!(unrecorded, 0, "no auction changed without its event");

        // Leasewatch's own actions (automatic and predictive cleanups) come on top.
        let audited: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE role <> 'system'")
                .fetch_one(&self.admin)
                .await
                .unwrap();
        assert_eq!(
            audited, self.actions as i64,
            "every action is in the audit table"
        );

        let server = self.server.take().expect("the server");
        let (code, log) = tokio::task::spawn_blocking(move || server.stop())
            .await
            .unwrap();
        assert_eq!(code, Some(0), "{log:#?}");
        assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
        assert_eq!(
            self.app_sessions().await,
            0,
            "the app left no session behind"
        );
        log
    }
}

fn recommendation_ids(status: &Value) -> Vec<String> {
    status["recommendations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}

/// Whether each real task has a run started after `since` that succeeded.
fn recovered_since(status: &Value, since: DateTime<Utc>) -> bool {
    TASKS.iter().all(|task| {
        status["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["name"] == *task)
            .flat_map(|t| t["history"].as_array().into_iter().flatten())
            .any(|run| {
                run["outcome"]["kind"] == "succeeded"
                    && run["started_at"]
                        .as_str()
                        .and_then(|at| at.parse::<DateTime<Utc>>().ok())
                        .is_some_and(|at| at > since)
            })
    })
}

fn quantile(mut samples: Vec<Duration>, q: f64) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut rig) = Rig::start(40, &[]).await else {
        return;
    };
    let down_at = Instant::now();
    rig.admin.close().await;
    // `pg_ctl stop -m fast`: every session is cut, new ones are refused.
    tokio::task::block_in_place(|| rig.cluster.stop());
    // Operators act during outages; the action happens and its audit row waits.
    let answer = rig.act(json!({"action": "cleanup"})).await;
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("audit entry queued")),
        "{answer:#}"
    );
    // Long enough for the health check to spend its retries (four attempts, each waiting up
    // to DB_CONNECTION_TIMEOUT for a connection).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let up_at = Instant::now();
    let restarted = Utc::now();
    tokio::task::block_in_place(|| rig.cluster.restart());
    rig.admin = PgPoolOptions::new()
        .max_connections(2)
        .connect(&in_app_schema(rig.cluster.url("postgres", "app")))
        .await
        .unwrap();
    let took = rig.wait_for_recovery(restarted).await;
    eprintln!("recovered {took:?} after the restart");
    let said = rig.recommendations_between(down_at, up_at);
    eprintln!("recommendations while it was down: {said:?}");
    assert!(
        said.contains(&"database_unreachable".to_owned()),
        "while it was down: {said:?}"
    );
    wait_audit_flushed(&rig).await;
    rig.finish().await;
}

/// Waits until the server has written every queued audit entry.
async fn wait_audit_flushed(rig: &Rig) {
    let started = Instant::now();
    loop {
        let metrics = rig.get("metrics").await.text().await.unwrap();
        if metrics.contains("\nleasewatch_audit_queued 0\n") {
            return;
        }
        assert!(
            started.elapsed() < RECOVERY_BOUND,
            "audit entries still queued: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_connection_terminated() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut rig) = Rig::start(40, &[]).await else {
        return;
    };
    // Runs certainly in flight: a lock their transactions wait on keeps them mid-query, as
    // when an administrator ends the sessions stuck behind a lock.
    let mut locker = rig.admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE auctions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *locker)
        .await
        .unwrap();
    let started = Instant::now();
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND wait_event_type = 'Lock'",
    )
    .fetch_one(&rig.admin)
    .await
    .unwrap()
        == 0
    {
        assert!(
            started.elapsed() < RECOVERY_BOUND,
            "no run waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every session of the app ends: task pool, control pool, idle and busy alike.
    let from = Instant::now();
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE usename = 'app'",
    )
    .fetch_one(&rig.admin)
    .await
    .unwrap();
    locker.commit().await.unwrap();
    let cut = Utc::now();
    rig.act(json!({"action": "cleanup"})).await;
    let took = rig.wait_for_recovery(cut).await;
    let to = Instant::now();
    eprintln!("{ended} sessions ended; recovered {took:?} after");
    let said = rig.recommendations_between(from, to);
    eprintln!("recommendations after the sessions were ended: {said:?}");
    assert!(
        said.iter().any(|id| id.starts_with("retried:")),
        "the runs the cut hit say so: {said:?}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_slots_taken_by_another_client() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The incident as an operator met it: 25 slots, another client holding the free ones,
    // the app's own sessions ended.
    let Some(mut rig) = Rig::start(25, &[]).await else {
        return;
    };
    sqlx::query("CREATE ROLE hog LOGIN")
        .execute(&rig.admin)
        .await
        .unwrap();
    let hog_url = format!("{}?application_name=psql", rig.cluster.url("hog", "app"));
    // Another client takes every slot it can get, and holds them.
    let from = Instant::now();
    let mut hogged = Vec::new();
    let take_every_free_slot = async |hogged: &mut Vec<PgConnection>| loop {
        assert!(hogged.len() < 25, "the server kept accepting connections");
        match PgConnection::connect(&hog_url).await {
            Ok(conn) => hogged.push(conn),
            Err(err) => break err.to_string(),
        }
    };
    let refusal = take_every_free_slot(&mut hogged).await;
    assert!(
        refusal.contains("remaining connection slots are reserved"),
        "{refusal}"
    );
    // The app reads the server's sessions every few seconds over its control connection.
    let seen = Instant::now();
    while !rig.status().await["server"]["holders"]
        .as_array()
        .is_some_and(|h| h.iter().any(|h| h["application"] == "psql"))
    {
        assert!(seen.elapsed() < Duration::from_secs(15), "psql never seen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every session of the app is ended, and the other client takes those slots too (the app
    // reconnects at once, so end and take again until it holds none).
    for round in 0.. {
        assert!(round < 20, "the app kept getting slots back");
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'")
            .execute(&rig.admin)
            .await
            .unwrap();
        take_every_free_slot(&mut hogged).await;
        if rig.app_sessions().await == 0 {
            break;
        }
    }
    // The app names the cause and who holds the slots, not its own pool.
    let started = Instant::now();
    let advice = loop {
        let status = rig.status().await;
        let shown = status["recommendations"].as_array().unwrap().clone();
        if let Some(found) = shown.iter().find(|r| r["id"] == "server_slots_exhausted") {
            break found.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no server_slots_exhausted within 30 s: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let detail = advice["detail"].as_str().unwrap();
    eprintln!("server_slots_exhausted: {detail}");
    // What the governor says in the same moment, read as an operator would.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for r in rig.status().await["recommendations"].as_array().unwrap() {
        eprintln!("{}: {}", r["id"], r["detail"]);
    }
    assert_eq!(advice["severity"], "critical");
    assert!(advice["action"].is_null(), "no cleanup offered: {advice}");
    assert!(
        detail.contains("remaining connection slots are reserved"),
        "{detail}"
    );
    assert!(
        detail.contains("psql (user hog)"),
        "who holds the slots: {detail}"
    );
    assert!(detail.contains("a cleanup will not help"), "{detail}");
    rig.act(json!({"action": "cleanup"})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let to = Instant::now();
    let freed = Utc::now();
    let held = hogged.len();
    for conn in hogged {
        conn.close().await.unwrap();
    }
    let took = rig.wait_for_recovery(freed).await;
    eprintln!("{held} slots taken; recovered {took:?} after they were freed");
    let said = rig.recommendations_between(from, to);
    eprintln!("recommendations while the slots were taken: {said:?}");
    assert!(
        !said.iter().any(|id| id == "acquire_timeouts"),
        "the pool was never the cause: {said:?}"
    );
    wait_audit_flushed(&rig).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaking_connections_is_forecast_a_minute_before_the_first_refusal() {
    let _one = ONE_AT_A_TIME.lock().await;
    // 20 slots (17 for ordinary roles); the app keeps to two task connections.
    let Some(rig) = Rig::start(20, &[("DB_MAX_CONNECTIONS", "2")]).await else {
        return;
    };
    sqlx::query("CREATE ROLE leaker LOGIN")
        .execute(&rig.admin)
        .await
        .unwrap();
    let leaker_url = format!(
        "{}?application_name=leaky-client",
        rig.cluster.url("leaker", "app")
    );
    // Another client opens one more connection every 7 s and never closes any, until the
    // server refuses one.
    let mut leaked = Vec::new();
    let refused_at = loop {
        assert!(leaked.len() < 20, "the server kept accepting connections");
        let opened = Instant::now();
        match PgConnection::connect(&leaker_url).await {
            Ok(conn) => leaked.push(conn),
            Err(err) => {
                assert!(
                    err.to_string().contains("remaining connection slots"),
                    "{err}"
                );
                break opened;
            }
        }
        tokio::time::sleep(Duration::from_secs(7).saturating_sub(opened.elapsed())).await;
    };
    let leaked_count = leaked.len();
    let status = rig.status().await;
    let forecast_at = rig
        .first_shown("exhaustion_predicted")
        .unwrap_or_else(|| panic!("no forecast before the refusal: {status:#}"));
    let lead = refused_at.saturating_duration_since(forecast_at);
    eprintln!(
        "{leaked_count} connections leaked; the forecast came {lead:?} before the first \
         refusal; forecast now: {:#}",
        status["forecast"]
    );
    let advice = status["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "exhaustion_predicted")
        .cloned()
        .unwrap_or_else(|| panic!("the forecast still shows at the refusal: {status:#}"));
    let detail = advice["detail"].as_str().unwrap();
    assert_eq!(advice["severity"], "critical");
    assert!(
        detail.contains("leaky-client (user leaker)"),
        "who is growing: {detail}"
    );
    assert!(
        lead >= Duration::from_secs(60),
        "the forecast came only {lead:?} before the first refusal"
    );
    // Leasewatch acted on the forecast (its own connections only) and said why.
    let predictive: Vec<String> = sqlx::query_scalar(
        "SELECT arguments FROM audit_log WHERE role = 'system' AND action = 'predictive_cleanup'",
    )
    .fetch_all(&rig.admin)
    .await
    .unwrap();
    assert!(
        predictive
            .iter()
            .any(|a| a.contains("\"eta_secs\"") && a.contains("leaky-client (user leaker)")),
        "{predictive:?}"
    );
    let leaker_sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = 'leaker'")
            .fetch_one(&rig.admin)
            .await
            .unwrap();
    assert_eq!(
        leaker_sessions, leaked_count as i64,
        "no session of the other client was ended"
    );
    for conn in leaked {
        conn.close().await.unwrap();
    }
    wait_audit_flushed(&rig).await;
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_dashboards_polling_for_thirty_seconds() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(rig) = Rig::start(40, &[]).await else {
        return;
    };
    let until = Instant::now() + Duration::from_secs(30);
    let pollers: Vec<_> = (0..200)
        .map(|i| {
            let (http, url) = (rig.http.clone(), rig.url("api/dashboard"));
            tokio::spawn(async move {
                // Spread over the first second, as browsers opened at different times are.
                tokio::time::sleep(Duration::from_millis(i * 5)).await;
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    let response = http
                        .post(&url)
                        .bearer_auth(OPERATOR)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success(), "{}", response.status());
                    let body = response.text().await.unwrap();
                    assert!(body.contains("\"pool\""), "{body}");
                    latencies.push(started.elapsed());
                    tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()))
                        .await;
                }
                latencies
            })
        })
        .collect();
    // Watching must not take connections: the app's sessions stay within its pools.
    let mut most_sessions = 0;
    while Instant::now() < until {
        most_sessions = most_sessions.max(rig.app_sessions().await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut latencies = Vec::new();
    for poller in pollers {
        latencies.extend(poller.await.unwrap());
    }
    let answered = latencies.len();
    let p99 = quantile(latencies, 0.99);
    eprintln!("dashboard polls: {answered}, p99 {p99:?}; most app sessions {most_sessions}");
    assert!(answered >= 200 * 25, "{answered} polls answered");
    assert!(
        most_sessions <= 5 + 2,
        "{most_sessions} sessions: task pool max 5 + control pool 2"
    );
    let status = rig.status().await;
    assert_eq!(
        recommendation_ids(&status),
        ["all_clear"],
        "readers are not a database problem: {status:#}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_runs_in_flight() {
    let _one = ONE_AT_A_TIME.lock().await;
    // The demo's leaky task starts with the scheduler and holds its lease for 6 s (under the
    // lease timeout, so cleanup leaves it be): a run certainly in flight.
    let Some(mut rig) = Rig::start(40, &[("DEMO_LEAK_HOLD", "6s"), ("LEASE_TIMEOUT", "10s")]).await
    else {
        return;
    };
    rig.act(json!({"action": "cleanup", "dry_run": true})).await;
    rig.wait_for("the leaky run to hold its lease", |status| {
        status["leases"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["task"] == "leaky_report"))
    })
    .await;
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM auction_events")
        .fetch_one(&rig.admin)
        .await
        .unwrap();
    // The poller would count the server's absence as failures: stop it first.
    rig.polling.store(false, Relaxed);
    let server = rig.server.take().expect("the server");
    let started = Instant::now();
    let (code, log) = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
    let stopped = log
        .iter()
        .find(|l| l.contains("scheduler stopped"))
        .unwrap_or_else(|| panic!("{log:#?}"));
    assert!(
        stopped.contains("finished: [") && !stopped.contains("finished: []"),
        "runs in flight were drained: {stopped}"
    );
    assert!(stopped.contains("cancelled: []"), "{stopped}");
    eprintln!("exited {took:?} after SIGTERM: {stopped}");
    assert_eq!(rig.app_sessions().await, 0, "no session left behind");

    // Started again on the same database: the audit row and the transitions are all there.
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM auction_events")
        .fetch_one(&rig.admin)
        .await
        .unwrap();
    assert!(events_after >= events_before);
    let mut command = leasewatch(rig.dir.path());
    command
        .env("DATABASE_URL", rig.cluster.url("app", "app"))
        .envs(FAST.iter().copied());
    rig.server = Some(
        tokio::task::spawn_blocking(move || Server::start(&mut command))
            .await
            .unwrap(),
    );
    let audit: Value = rig.get("api/admin/audit").await.json().await.unwrap();
    assert_eq!(audit[0]["action"], "cleanup", "{audit:#}");
    rig.polling = Arc::new(AtomicBool::new(true));
    rig.poll_status_every(Duration::from_millis(100));
    rig.wait_for_recovery(Utc::now()).await;
    rig.finish().await;
}
