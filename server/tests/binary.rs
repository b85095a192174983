//! The real `leasewatch` binary, as a user starts it: bad configuration stops it with one clear
//! line, and a good one serves the dashboard from SQLite or PostgreSQL.

mod support;

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use leasewatch_testkit::TestDatabase;
use support::{OPERATOR, Server, leasewatch};

/// Runs to completion (bounded: every case here exits on its own within seconds).
fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the binary did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_bad_value_stops_start_up_with_one_line_and_exit_2() {
    // (environment, what the line quotes, what it says is allowed)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("DB_MAX_CONNECTIONS", "lots")],
            "DB_MAX_CONNECTIONS=\"lots\"",
            "whole number from 1 to 10000",
        ),
        (
            &[("DB_MAX_CONNECTIONS", "0")],
            "DB_MAX_CONNECTIONS=\"0\"",
            "whole number from 1 to 10000",
        ),
        (
            &[("DB_IDLE_TIMEOUT", "sixty")],
            "DB_IDLE_TIMEOUT=\"sixty\"",
            "milliseconds",
        ),
        (
            &[("DB_MAX_CONNECTIONS", "3"), ("DB_MIN_CONNECTIONS", "4")],
            "DB_MIN_CONNECTIONS=\"4\"",
            "must not exceed DB_MAX_CONNECTIONS (3)",
        ),
        (
            &[("DATABASE_URL", "mysql://root:hunter2@127.0.0.1/shop")],
            "DATABASE_URL=\"mysql://root:***@127.0.0.1/shop\"",
            "allowed are postgres://, postgresql:// and sqlite://",
        ),
        (
            &[("LEASE_TIMEOUT", "30")],
            "LEASE_TIMEOUT=\"30\"",
            "like 500ms, 30s",
        ),
        (
            &[("TASK_STATUS_TRANSITIONS_INTERVAL", "often")],
            "TASK_STATUS_TRANSITIONS_INTERVAL=\"often\"",
            "like 500ms, 30s",
        ),
    ];
    for (vars, named, allowed) in cases {
        let dir = tempfile::tempdir().unwrap();
        let output = run(leasewatch(dir.path()).envs(vars.iter().copied()));
        let lines = stderr_lines(&output);
        assert_eq!(output.status.code(), Some(2), "{vars:?}: {lines:?}");
        assert_eq!(lines.len(), 1, "{vars:?}: {lines:?}");
        assert!(lines[0].contains(named), "{lines:?}");
        assert!(lines[0].contains(allowed), "{lines:?}");
        assert!(!lines[0].contains("hunter2"), "{lines:?}");
        assert!(!dir.path().join("data").exists(), "nothing was created");
    }
}

#[test]
fn a_bad_task_file_stops_start_up_with_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tasks.toml");
    std::fs::write(
        &file,
        "[[task]]\nname = \"purge\"\nevery = \"often\"\nsql = \"SELECT 1\"\n",
    )
    .unwrap();
    let output = run(leasewatch(dir.path()).env("LEASEWATCH_TASKS", &file));
    let lines = stderr_lines(&output);
    assert_eq!(output.status.code(), Some(2), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&format!(
            "LEASEWATCH_TASKS={:?}",
            file.display().to_string()
        )),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("line 3, task \"purge\", field every: \"often\" is not allowed"),
        "{lines:?}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn an_unreachable_database_stops_start_up_after_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = run(leasewatch(dir.path())
        .env("DATABASE_URL", "postgres://app:hunter2@127.0.0.1:1/app")
        .env("DB_CONNECTION_TIMEOUT", "1000"));
    let lines = stderr_lines(&output);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(output.status.code(), Some(1), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("DATABASE_URL=\"postgres://app:***@127.0.0.1:1/app\""),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("unreachable within 1000 ms (DB_CONNECTION_TIMEOUT)"),
        "{lines:?}"
    );
    assert!(!lines[0].contains("hunter2"), "{lines:?}");
}

#[test]
fn unknown_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(leasewatch(dir.path()).arg("--dmeo"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_lines(&output)[0].contains("unknown argument \"--dmeo\""));
}

fn get(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

#[test]
fn demo_on_sqlite_serves_the_page_with_real_data_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(leasewatch(dir.path()).arg("--demo"));
    let (status, html) = get(&server.url);
    assert_eq!(status, 200);
    // Server-rendered with the data in it, before any WASM runs.
    assert!(html.contains("data-metric=\"total\""), "{html}");
    // The 12 demo auctions, whatever status the first runs have moved them to by now.
    assert!(
        html.contains("data-total=\"auctions\" class=\"num\">12</td>"),
        "{html}"
    );
    assert!(html.contains("sqlite://data/leasewatch.db"), "{html}");
    // The API on the real listening server: bearer works, nothing else does.
    let (status, json) = get(&format!("{}api/admin/background-jobs/status", server.url));
    assert_eq!(status, 200, "{json}");
    assert!(json.contains("\"scheduler\":{\"running\":true}"), "{json}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{}api/admin/background-jobs/status", server.url))
            .header("content-type", "application/json")
            .body(r#"{"action":"stop"}"#)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(refused, 401);
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(dir.path().join("data/leasewatch.db").exists());
}

#[test]
fn postgres_with_a_password_is_migrated_and_the_password_never_shown() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(TestDatabase::create()) else {
        return;
    };
    // Trust authentication ignores the password, so it can be any secret.
    let url = db.url().replacen("postgres@", "postgres:s3cr3t-pw@", 1);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(leasewatch(dir.path()).env("DATABASE_URL", &url));
    let (status, html) = get(&server.url);
    assert_eq!(status, 200);
    assert!(html.contains("PostgreSQL"), "{html}");
    assert!(!html.contains("s3cr3t-pw"));
    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(
        log.iter().all(|line| !line.contains("s3cr3t-pw")),
        "{log:#?}"
    );
    // In Leasewatch's own schema, nothing in the database's default one.
    let tables: Vec<(String, String)> = runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(db.url()).await.unwrap();
        sqlx::query_as(
            "SELECT table_schema::text, table_name::text FROM information_schema.tables \
             WHERE table_schema IN ('public', 'leasewatch') \
             AND table_name IN ('auctions', 'bids', '_sqlx_migrations') ORDER BY 1, 2",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    });
    let in_schema = |name: &str| ("leasewatch".to_owned(), name.to_owned());
    assert_eq!(
        tables,
        [
            in_schema("_sqlx_migrations"),
            in_schema("auctions"),
            in_schema("bids")
        ]
    );
}
