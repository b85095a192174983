//! The real `leasewatch` binary, started as a user starts it, for the tests that need a
//! listening server: a clean environment in a folder of its own, the URL read from its log,
//! SIGTERM to stop it (and a kill if a test fails first).

#![allow(dead_code)] // each test file uses its own part of this

pub mod receiver;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// The site options of `Leptos.toml`, for tests that build the router in process: hashed
/// names off, since a test binary has no `hash.txt` beside it (the server turns hashing off
/// the same way).
pub fn leptos_options() -> leptos::config::LeptosOptions {
    let mut options = leptos::config::get_configuration(Some(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../Leptos.toml"
    )))
    .unwrap()
    .leptos_options;
    options.hash_files = false;
    options
}

/// The tasks' names in a status document, in its order.
pub fn task_names(status: &serde_json::Value) -> Vec<&str> {
    status["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

/// The operator token every test server is started with.
pub const OPERATOR: &str = "operator-token-for-tests-0001";

/// A command for the binary in `dir`, holding only Leptos.toml, with a clean environment (no
/// stray `RUST_LOG`, `DATABASE_URL`, ...), on a free port.
pub fn leasewatch(dir: &Path) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(root.join("Leptos.toml"), dir.join("Leptos.toml")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_leasewatch"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LEASEWATCH_OPERATOR_TOKEN", OPERATOR);
    command
}

/// A server started in the background.
pub struct Server {
    child: Child,
    /// Its base URL, ending in `/`.
    pub url: String,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// Starts it and waits (up to 30 s) for the line that gives its URL.
    pub fn start(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = log.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("no ready line within 30 s; log so far: {seen:#?}")
            });
            let found = line
                .split("open ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned);
            seen.push(line);
            if let Some(url) = found {
                break url;
            }
        };
        Self {
            child,
            url,
            log,
            seen,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it has logged so far.
    pub fn log(&mut self) -> &[String] {
        self.seen.extend(self.log.try_iter());
        &self.seen
    }

    /// Sends SIGTERM and returns the exit code and the whole log; fails after 20 s.
    pub fn stop(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit within 20 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        // The reader thread ends with the pipe; wait for it so no line is missed.
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status.code(), std::mem::take(&mut self.seen))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Still running only when a test failed before stopping it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes an ordinary role `app` (it may read every session's statistics, as the governor and
/// the rules need) with a database `app` of its own on `cluster`, then runs `more` as the
/// superuser (further roles a test needs).
pub async fn app_database(cluster: &leasewatch_testkit::ScratchCluster, more: &[&'static str]) {
    use sqlx::{Connection, Executor};
    let mut setup = sqlx::PgConnection::connect(&cluster.url("postgres", "postgres"))
        .await
        .unwrap();
    for sql in [
        "CREATE ROLE app LOGIN",
        "GRANT pg_read_all_stats TO app",
        "CREATE DATABASE app OWNER app",
    ]
    .iter()
    .chain(more)
    {
        setup.execute(*sql).await.unwrap();
    }
    setup.close().await.unwrap();
}

/// The highest run number issued, and the runs counted by outcome: run numbers are issued
/// one by one to every run that starts, so the two agree when no run was lost.
pub fn runs_issued_and_counted(status: &serde_json::Value) -> (u64, u64) {
    let tasks = status["tasks"].as_array().expect("tasks");
    let issued = tasks
        .iter()
        .flat_map(|t| t["history"].as_array().into_iter().flatten())
        .filter_map(|run| run["run_id"].as_u64())
        .max()
        .unwrap_or(0);
    let counted = tasks
        .iter()
        .map(|t| {
            let c = &t["counts"];
            [
                "succeeded",
                "failed",
                "elsewhere_skips",
                "over_limit_skips",
                "cancelled",
            ]
            .iter()
            .map(|k| c[k].as_u64().unwrap_or(0))
            .sum::<u64>()
        })
        .sum();
    (issued, counted)
}

/// A measure of a scenario benchmark's table: its name, and how to read it from a report.
pub type Row<R> = (&'static str, fn(&R) -> String);

/// A scenario benchmark: runs the scenario with `false`, then with `true`, one after the other
/// on a two-worker runtime, and prints one row per measure with the two side by side (plain
/// text on stdout: this is the benchmark's report, not a log). Prints only that it was skipped
/// when a phase could not run (PostgreSQL's tools missing).
pub fn side_by_side<R, F: std::future::Future<Output = Option<R>>>(
    columns: [&str; 2],
    phase: impl Fn(bool) -> F,
    rows: &[Row<R>],
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (off, on) = runtime.block_on(async { (phase(false).await, phase(true).await) });
    let (Some(off), Some(on)) = (off, on) else {
        eprintln!("skipped: PostgreSQL's initdb and pg_ctl are not on PATH");
        return;
    };
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    println!("{:<width$} {:>24} {:>24}", "", columns[0], columns[1]);
    for (name, value) in rows {
        println!("{name:<width$} {:>24} {:>24}", value(&off), value(&on));
    }
}
