//! Read replicas on the real binary: a scratch primary with a streaming replica of its own
//! (never the machine's shared server), the app on both as an ordinary role.
//!
//! Reads go to the replica while it is in rotation, move to the primary when it dies or lags
//! beyond `REPLICA_MAX_LAG`, and come back when it recovers, without a scheduled start lost or
//! run twice; every ban and recovery is audited. Writes never go to a replica: with the primary
//! down they wait for it, saying so, and the replica's sessions cannot write at all.
//!
//! Cadences are short (tasks every second, retries from 100 ms up to 1 s, a 2 s lag limit), so
//! each fault and the recovery from it take seconds; every wait is bounded. The times each
//! recovery took are printed (`cargo test --test targets -- --nocapture`).

mod support;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use leasewatch_testkit::ScratchCluster;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};
use support::{OPERATOR, Server, app_database, leasewatch, runs_issued_and_counted};

/// How long any one change may take to show: a probe a second, two to confirm, a run a
/// second, a retry series of a few hundred milliseconds, on a busy two-core machine.
const BOUND: Duration = Duration::from_secs(15);

/// The lag limit: small, so a paused replay crosses it in seconds.
const MAX_LAG: &str = "2s";

/// Each test makes two clusters and a server; at the same time they would distort each
/// other's timings.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The app's settings: short retries and connection waits, a small pool.
const FAST: &[(&str, &str)] = &[
    ("RETRY_BASE_DELAY", "100ms"),
    ("RETRY_MAX_DELAY", "1s"),
    ("RETRY_MAX", "3"),
    ("LEASE_TIMEOUT", "5s"),
    // A read that starts on a replica that just died waits this long for a connection (sqlx
    // retries a refused one until then; at most 1 s on a replica) before its retry goes to the
    // primary: under the tasks' 1 s period, so no start is skipped for a run still going.
    ("DB_CONNECTION_TIMEOUT", "500"),
    ("DB_MAX_CONNECTIONS", "5"),
    ("DB_MIN_CONNECTIONS", "1"),
    ("DB_IDLE_TIMEOUT", "1000"),
    ("CLEANUP_INTERVAL", "1s"),
    ("REPLICA_MAX_LAG", MAX_LAG),
];

/// The application's tables, made by the app's role on the primary.
const TABLES: &[&str] = &[
    "CREATE TABLE readings (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE writes (id bigserial PRIMARY KEY, at timestamptz NOT NULL, by text NOT NULL)",
];

/// A primary, its replica, the app on both and a poller that keeps every run it sees.
struct Rig {
    server: Server,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
    /// Every run the status showed, by task and run number (the status keeps the last 50).
    runs: Arc<Mutex<BTreeMap<(String, u64), Value>>>,
    polling: Arc<AtomicBool>,
    /// Dropped last (fields drop in order): the clusters outlive the server, the replica
    /// goes before its primary.
    replica: ScratchCluster,
    primary: ScratchCluster,
}

impl Rig {
    /// Starts a primary, the application's tables on it, a replica they stream to, and the
    /// app with `tasks` (a task file) on both, with [`FAST`] and `extra` settings. `None`
    /// (skip) without PostgreSQL's tools outside CI.
    async fn start(tasks: &str, extra: &[(&str, &str)]) -> Option<Self> {
        let primary = tokio::task::spawn_blocking(|| ScratchCluster::start_primary(40))
            .await
            .unwrap()?;
        app_database(&primary, &[]).await;
        let started = Instant::now();
        let replica = tokio::task::block_in_place(|| primary.replica());
        eprintln!("replica made and started in {:?}", started.elapsed());
        // Made after the base backup, so they reach the replica by streaming only.
        let mut app = PgConnection::connect(&primary.url("app", "app"))
            .await
            .unwrap();
        for sql in TABLES {
            app.execute(*sql).await.unwrap();
        }
        app.close().await.unwrap();
        let on_replica = superuser(&replica).await;
        let made = Instant::now();
        wait_until(&format!("{TABLES:?} streamed to the replica"), async || {
            sqlx::query_scalar::<_, bool>("SELECT to_regclass('public.writes') IS NOT NULL")
                .fetch_one(&on_replica)
                .await
                .unwrap()
                .then_some(())
        })
        .await;
        eprintln!("tables streamed to the replica in {:?}", made.elapsed());
        on_replica.close().await;

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tasks.toml"), tasks).unwrap();
        let mut command = leasewatch(dir.path());
        command
            .env("DATABASE_URL", primary.url("app", "app"))
            .env("DATABASE_REPLICA_URLS", replica.url("app", "app"))
            .env("LEASEWATCH_TASKS", "tasks.toml")
            .envs(FAST.iter().chain(extra).copied());
        let server = tokio::task::spawn_blocking(move || Server::start(&mut command))
            .await
            .unwrap();
        let rig = Self {
            server,
            _dir: dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            runs: Arc::default(),
            polling: Arc::new(AtomicBool::new(true)),
            replica,
            primary,
        };
        rig.keep_runs();
        Some(rig)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {response:?}");
        response.json().await.unwrap()
    }

    async fn status(&self) -> Value {
        self.get("api/admin/background-jobs/status").await
    }

    /// Polls the status every 200 ms until the rig is dropped, keeping every run it shows.
    fn keep_runs(&self) {
        let (http, url) = (
            self.http.clone(),
            self.url("api/admin/background-jobs/status"),
        );
        let (runs, polling) = (Arc::clone(&self.runs), Arc::clone(&self.polling));
        tokio::spawn(async move {
            while polling.load(Relaxed) {
                if let Ok(response) = http.get(&url).bearer_auth(OPERATOR).send().await
                    && let Ok(status) = response.json::<Value>().await
                {
                    keep(&runs, &status);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    /// Every run of `task` seen so far (and in the status now), oldest first.
    async fn runs_of(&self, task: &str) -> Vec<Value> {
        keep(&self.runs, &self.status().await);
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|((name, _), _)| name == task)
            .map(|(_, run)| run.clone())
            .collect()
    }

    /// Waits until a run of `task` has an attempt that started at or after `since` and
    /// matches `attempt`; returns that attempt's start.
    async fn attempt_since(
        &self,
        what: &str,
        task: &str,
        since: DateTime<Utc>,
        attempt: impl Fn(&Value) -> bool,
    ) -> DateTime<Utc> {
        wait_until(what, async || {
            self.runs_of(task)
                .await
                .iter()
                .flat_map(attempts)
                .filter(|a| started_at(a) >= since && attempt(a))
                .map(started_at)
                .min()
        })
        .await
    }

    /// When `task`'s next run is due, at least 300 ms from now.
    async fn next_due(&self, task: &str) -> DateTime<Utc> {
        wait_until("a next run due in more than 300 ms", async || {
            let status = self.status().await;
            let task = status["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == task)
                .expect("the task")
                .clone();
            let due = instant(&task["next_run_at"]);
            (due - Utc::now() > chrono::Duration::milliseconds(300)).then_some(due)
        })
        .await
    }

    /// The results of the audit's `target_rotation` entries, oldest first, all Leasewatch's
    /// own.
    async fn rotations_audited(&self) -> Vec<String> {
        let entries = self
            .get("api/admin/audit?action=target_rotation&limit=100")
            .await;
        let entries = entries.as_array().unwrap();
        assert!(
            entries.iter().all(|e| e["role"] == "system"),
            "{entries:#?}"
        );
        entries
            .iter()
            .rev()
            .map(|e| e["result"].as_str().unwrap().to_owned())
            .collect()
    }

    /// replica-1 as the status shows it.
    async fn replica_status(&self) -> Value {
        let status = self.status().await;
        let targets = status["targets"].as_array().expect("targets");
        assert_eq!(targets[0]["target"], "primary", "{targets:#?}");
        targets
            .iter()
            .find(|t| t["target"] == "replica-1")
            .unwrap_or_else(|| panic!("no replica-1: {targets:#?}"))
            .clone()
    }

    /// Waits until replica-1 is out of rotation for `out` (its kind), or with `None` back in;
    /// returns when its latest event says it changed.
    async fn rotation(&self, what: &str, out: Option<&str>) -> DateTime<Utc> {
        wait_until(what, async || {
            let replica = self.replica_status().await;
            let matches = match out {
                None => replica["in_rotation"] == true,
                Some(kind) => replica["in_rotation"] == false && replica["out"]["kind"] == kind,
            };
            matches.then(|| instant(&replica["events"][0]["at"]))
        })
        .await
    }

    /// The checks both scenarios end with: runs all accounted for, no panic, exit 0.
    async fn finish(self) {
        self.polling.store(false, Relaxed);
        let status = self.status().await;
        let (issued, counted) = runs_issued_and_counted(&status);
        // A run still going has a number but no outcome yet.
        let running = status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"]["kind"] != "idle")
            .count() as u64;
        assert!(
            issued <= counted + running,
            "every run has its outcome: {issued} issued, {counted} counted, {running} going"
        );
        let (code, log) = tokio::task::spawn_blocking(move || self.server.stop())
            .await
            .unwrap();
        assert_eq!(code, Some(0), "{log:#?}");
        assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
    }
}

/// Adds the runs in `status` to `runs`.
fn keep(runs: &Mutex<BTreeMap<(String, u64), Value>>, status: &Value) {
    let mut runs = runs.lock().unwrap();
    for task in status["tasks"].as_array().into_iter().flatten() {
        let name = task["name"].as_str().unwrap().to_owned();
        for run in task["history"].as_array().into_iter().flatten() {
            runs.insert((name.clone(), run["run_id"].as_u64().unwrap()), run.clone());
        }
    }
}

fn attempts(run: &Value) -> impl Iterator<Item = &Value> {
    run["attempt_log"].as_array().into_iter().flatten()
}

fn instant(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|at| at.parse().ok())
        .unwrap_or_else(|| panic!("not an instant: {value}"))
}

fn started_at(attempt: &Value) -> DateTime<Utc> {
    instant(&attempt["started_at"])
}

/// The target of a run's successful attempt (its last), if it succeeded.
fn succeeded_on(run: &Value) -> Option<&str> {
    (run["outcome"]["kind"] == "succeeded")
        .then(|| attempts(run).last()?["target"].as_str())
        .flatten()
}

/// Polls `found` every 100 ms until it gives a value, for at most [`BOUND`].
async fn wait_until<T>(what: &str, mut found: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = found().await {
            return value;
        }
        assert!(started.elapsed() < BOUND, "not within {BOUND:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A superuser pool on the cluster's `app` database.
async fn superuser(cluster: &ScratchCluster) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&cluster.url("postgres", "app"))
        .await
        .unwrap()
}

/// Rows in `writes` written by `task`.
async fn written_by(primary: &PgPool, task: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM writes WHERE by = $1")
        .bind(task)
        .fetch_one(primary)
        .await
        .unwrap()
}

/// How long from now until `at` (zero once it has passed).
fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or_default()
}

/// Seconds from `from` to `to`, for the report.
fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).as_seconds_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_leave_a_dead_or_lagging_replica_and_come_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let test_started = Instant::now();
    let Some(rig) = Rig::start(
        r#"
builtin_tasks = false

[[task]]
name = "reader"
every = "1s"
target = "replica"
sql = "SELECT count(*) AS readings FROM readings"
"#,
        &[],
    )
    .await
    else {
        return;
    };
    let on_replica = |a: &Value| a["target"] == "replica-1" && a["error"].is_null();
    let on_primary = |a: &Value| a["target"] == "primary" && a["error"].is_null();

    // Reads go to the replica.
    let first = rig
        .attempt_since(
            "a read on replica-1",
            "reader",
            DateTime::<Utc>::MIN_UTC,
            on_replica,
        )
        .await;
    rig.attempt_since(
        "a second read on replica-1",
        "reader",
        first + chrono::Duration::milliseconds(1),
        on_replica,
    )
    .await;
    assert!(
        rig.runs_of("reader")
            .await
            .iter()
            .flat_map(attempts)
            .all(|a| a["target"] == "replica-1"),
        "every read so far on the replica"
    );

    // The replica dies just before a read is due, so that read's first attempt meets it dead
    // (unless a probe saw it first: then it is brought back and the stop aimed again). The read
    // retries on the primary and is one successful run, due once.
    let (mut retried, mut aims) = (None, 0);
    for aim in 1..=4 {
        aims = aim;
        let due = rig.next_due("reader").await;
        tokio::time::sleep(until(due - chrono::Duration::milliseconds(250))).await;
        let stopped = Utc::now();
        tokio::task::block_in_place(|| rig.replica.stop_immediate());
        let stop_took = Utc::now();
        let moved = rig
            .attempt_since("a read on the primary", "reader", stopped, on_primary)
            .await;
        let banned = rig
            .rotation("replica-1 out as unreachable", Some("unreachable"))
            .await;
        let run = wait_until("the read due after the stop", async || {
            rig.runs_of("reader")
                .await
                .into_iter()
                .find(|run| instant(&run["scheduled_at"]) == due)
        })
        .await;
        assert_eq!(succeeded_on(&run), Some("primary"), "{run:#}");
        let ended = instant(&run["started_at"])
            + chrono::Duration::milliseconds(run["duration_ms"].as_i64().unwrap());
        assert!(
            secs(due, ended) < 2.0,
            "done {:.2} s after due: {run:#}",
            secs(due, ended)
        );
        let first_on = attempts(&run).next().unwrap()["target"].clone();
        eprintln!(
            "replica stopped {:.2} s before a read was due (pg_ctl stop -m immediate took \
             {:.2} s): first read on the primary {:.2} s, ban {:.2} s after the stop; that \
             read's attempts: {:?}",
            secs(stopped, due),
            secs(stopped, stop_took),
            secs(stopped, moved),
            secs(stopped, banned),
            attempts(&run)
                .map(|a| a["target"].clone())
                .collect::<Vec<_>>(),
        );
        if first_on == "replica-1" {
            retried = Some(run);
            break;
        }
        eprintln!("aim {aim}: a probe took it out first; again");
        tokio::task::block_in_place(|| rig.replica.restart());
        rig.rotation("replica-1 back", None).await;
    }
    let retried = retried.expect("a read whose first attempt met the dead replica");
    let first = attempts(&retried).next().unwrap();
    assert_eq!(first["failure"], "unreachable", "{retried:#}");

    // It comes back: so do the reads.
    tokio::task::block_in_place(|| rig.replica.restart());
    let up = Utc::now();
    let back = rig
        .attempt_since("a read on replica-1 again", "reader", up, on_replica)
        .await;
    let recovered = rig.rotation("replica-1 back", None).await;
    eprintln!(
        "replica restarted: back in rotation {:.2} s, first read on it {:.2} s after it \
         accepted connections",
        secs(up, recovered),
        secs(up, back),
    );

    // Replay paused while the primary keeps writing: it lags, and is taken out.
    let replica_admin = superuser(&rig.replica).await;
    let primary_admin = superuser(&rig.primary).await;
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&replica_admin)
        .await
        .unwrap();
    let paused = Utc::now();
    let writing = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn({
        let (pool, writing) = (primary_admin.clone(), Arc::clone(&writing));
        async move {
            while writing.load(Relaxed) {
                sqlx::query("INSERT INTO readings DEFAULT VALUES")
                    .execute(&pool)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let lagged = rig
        .rotation("replica-1 out as lagging", Some("lagging"))
        .await;
    let lag = rig.replica_status().await["lag_secs"].as_f64().unwrap();
    assert!(lag > 2.0, "out at a lag of {lag} s");
    let reads_moved = rig
        .attempt_since(
            "a read on the primary while it lags",
            "reader",
            lagged,
            on_primary,
        )
        .await;
    eprintln!(
        "replay paused: banned for lag {:.2} s after (REPLICA_MAX_LAG={MAX_LAG}), reads on the \
         primary {:.2} s after",
        secs(paused, lagged),
        secs(paused, reads_moved),
    );
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&replica_admin)
        .await
        .unwrap();
    let resumed = Utc::now();
    let caught_up = rig.rotation("replica-1 back after the lag", None).await;
    let reads_back = rig
        .attempt_since(
            "a read on replica-1 after the lag",
            "reader",
            caught_up,
            on_replica,
        )
        .await;
    eprintln!(
        "replay resumed: back in rotation {:.2} s, reads on it {:.2} s after",
        secs(resumed, caught_up),
        secs(resumed, reads_back),
    );
    writing.store(false, Relaxed);
    writer.await.unwrap();

    // No start lost or run twice: one run per second, each done once, wherever it ran.
    let runs = rig.runs_of("reader").await;
    let mut dues: Vec<DateTime<Utc>> = Vec::new();
    for run in &runs {
        assert!(succeeded_on(run).is_some(), "every read succeeded: {run:#}");
        dues.push(instant(&run["scheduled_at"]));
    }
    for pair in dues.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_milliseconds(),
            1000,
            "each start once, none missed: {dues:?}"
        );
    }
    let retried: Vec<&Value> = runs.iter().filter(|r| r["attempts"] != 1).collect();
    eprintln!(
        "{} reads, {} retried: {:?}",
        runs.len(),
        retried.len(),
        retried
            .iter()
            .map(|r| attempts(r).map(|a| a["target"].clone()).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    );

    // Every ban and recovery is audited, oldest first: dead and back (once per aim), lagging
    // and back; written in the background, so given a moment.
    let (dead, back) = (
        "replica-1 taken out of rotation: unreachable",
        "replica-1 back in rotation",
    );
    let mut expected = [dead, back].repeat(aims);
    expected.extend(["replica-1 taken out of rotation: replay lags", back]);
    let mut audited = Vec::new();
    for _ in 0..50 {
        audited = rig.rotations_audited().await;
        if audited.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        audited.len() == expected.len()
            && audited.iter().zip(&expected).all(|(a, e)| a.starts_with(e)),
        "audited: {audited:#?}"
    );
    assert_eq!(rig.replica_status().await["bans"], aims + 1);

    replica_admin.close().await;
    primary_admin.close().await;
    rig.finish().await;
    eprintln!("test took {:?}", test_started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_the_primary_and_never_go_to_a_replica() {
    let _one = ONE_AT_A_TIME.lock().await;
    let test_started = Instant::now();
    let Some(rig) = Rig::start(
        r#"
[[task]]
name = "writer"
every = "1s"
sql = "INSERT INTO writes (at, by) VALUES (:now, 'writer')"

# Read-only work that writes all the same: wherever it lands, it cannot.
[[task]]
name = "sneaky_writer"
every = "1s"
target = "replica"
sql = "INSERT INTO writes (at, by) VALUES (:now, 'sneaky_writer')"
"#,
        &[("TASK_STATUS_TRANSITIONS_INTERVAL", "1s")],
    )
    .await
    else {
        return;
    };
    let done_on_primary = |a: &Value| a["target"] == "primary" && a["error"].is_null();
    let from_start = DateTime::<Utc>::MIN_UTC;
    for task in ["writer", "status_transitions"] {
        rig.attempt_since(&format!("{task} done"), task, from_start, done_on_primary)
            .await;
    }

    // The replica's sessions cannot write: the sneaky writer fails with PostgreSQL's own
    // refusal, and changes nothing.
    let refused = |a: &Value| {
        a["target"] == "replica-1"
            && a["error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot execute INSERT in a read-only transaction"))
    };
    rig.attempt_since(
        "the sneaky write refused",
        "sneaky_writer",
        from_start,
        refused,
    )
    .await;
    let primary_admin = superuser(&rig.primary).await;
    assert_eq!(written_by(&primary_admin, "sneaky_writer").await, 0);
    let before = written_by(&primary_admin, "writer").await;
    let sneaky = rig.runs_of("sneaky_writer").await;
    assert!(
        sneaky.iter().all(|r| r["outcome"]["kind"] == "failed"),
        "{sneaky:#?}"
    );

    // Every statement the app sends the replica, from now until the end: none may write but
    // the sneaky one (which the replica refuses).
    let replica_admin = superuser(&rig.replica).await;
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (pool, watching) = (replica_admin.clone(), Arc::clone(&watching));
        async move {
            let mut seen = std::collections::BTreeSet::new();
            while watching.load(Relaxed) {
                let queries: Vec<String> = sqlx::query_scalar(
                    "SELECT query FROM pg_stat_activity WHERE usename = 'app' AND query <> ''",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                seen.extend(queries);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            seen
        }
    });

    // The primary dies with the replica up: writes wait for it, saying so, and never try the
    // replica.
    primary_admin.close().await;
    let down = Utc::now();
    tokio::task::block_in_place(|| rig.primary.stop_immediate());
    // Each attempt fails on the primary for want of a connection, saying writes wait for it;
    // or, once the governor's limit on the unreachable primary is down to its floor, finds no
    // place under that limit and the run is skipped.
    let waits = |a: &Value| {
        a["error"].as_str().is_some_and(|e| {
            e.starts_with("on primary: ")
                && e.ends_with("; writes wait for the primary (they never go to a replica)")
        })
    };
    let waiting = |run: &Value| {
        run["outcome"]["kind"] != "succeeded"
            && attempts(run)
                .all(|a| a["target"] == "primary" && (waits(a) || a["failure"] == "over_limit"))
    };
    for task in ["writer", "status_transitions"] {
        let failed = wait_until(
            &format!("{task} failing while the primary is down"),
            async || {
                let failed: Vec<Value> = rig
                    .runs_of(task)
                    .await
                    .into_iter()
                    .filter(|run| instant(&run["started_at"]) >= down)
                    .collect();
                (failed.len() >= 2).then_some(failed)
            },
        )
        .await;
        for run in &failed {
            assert!(waiting(run), "{task} waits for the primary: {run:#}");
        }
        assert!(
            failed.iter().flat_map(attempts).any(waits),
            "{task} says it waits for the primary: {failed:#?}"
        );
        eprintln!(
            "{task} while the primary is down: {:?}",
            failed
                .iter()
                .map(|run| format!(
                    "{} after {} attempts: {}",
                    run["outcome"]["kind"],
                    run["attempts"],
                    attempts(run)
                        .map(|a| a["failure"].as_str().unwrap_or("-").to_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .collect::<Vec<_>>()
        );
    }
    // Not asserted: a read task's claim on the dead primary is blamed on the replica, which
    // then leaves rotation though it is up (and comes back at the next two probes).
    eprintln!(
        "replica-1 bans while only the primary was down: {}",
        rig.replica_status().await["bans"]
    );

    // The primary is back: so are the writes.
    tokio::task::block_in_place(|| rig.primary.restart());
    let up = Utc::now();
    let written = rig
        .attempt_since("a write after the restart", "writer", up, done_on_primary)
        .await;
    eprintln!(
        "primary down {:.2} s; first write {:.2} s after it accepted connections again",
        secs(down, up),
        secs(up, written)
    );
    rig.attempt_since(
        "status_transitions after the restart",
        "status_transitions",
        up,
        done_on_primary,
    )
    .await;

    watching.store(false, Relaxed);
    let seen = watcher.await.unwrap();
    let writes: Vec<&String> = seen
        .iter()
        .filter(|q| {
            let q = q.trim_start().to_ascii_uppercase();
            ["INSERT", "UPDATE", "DELETE", "WITH"]
                .iter()
                .any(|w| q.starts_with(w))
                && !q.contains("'SNEAKY_WRITER'")
        })
        .collect();
    assert!(writes.is_empty(), "writes sent to the replica: {writes:#?}");
    eprintln!("statements seen on the replica: {seen:#?}");
    for task in ["writer", "status_transitions"] {
        let runs = rig.runs_of(task).await;
        assert!(
            runs.iter()
                .flat_map(attempts)
                .all(|a| a["target"] == "primary"),
            "every attempt of {task} on the primary: {runs:#?}"
        );
    }
    let primary_admin = superuser(&rig.primary).await;
    assert_eq!(written_by(&primary_admin, "sneaky_writer").await, 0);
    assert!(written_by(&primary_admin, "writer").await > before);
    primary_admin.close().await;
    replica_admin.close().await;
    rig.finish().await;
    eprintln!("test took {:?}", test_started.elapsed());
}
