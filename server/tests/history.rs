//! History survives a restart of the real binary: the runs, the pool samples and the audit
//! entries written before it are there after it, in the API and on the pages.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::{OPERATOR, Server, leasewatch};

fn get(server: &Server, path: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .get(format!("{}{}", server.url.trim_end_matches('/'), path))
        .bearer_auth(OPERATOR)
        .timeout(Duration::from_secs(10))
        .send()
        .unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn json(server: &Server, path: &str) -> Value {
    let (status, body) = get(server, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls `path` until `done` holds of its JSON, for up to `within`.
fn wait_for(server: &Server, path: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let value = json(server, path);
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {value:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn instants(value: &Value, field: &str) -> Vec<DateTime<Utc>> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn runs_samples_and_audit_entries_are_there_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path| {
        Server::start(
            leasewatch(dir)
                .arg("--demo")
                .env("TASK_STATUS_TRANSITIONS_INTERVAL", "1s")
                .env("TASK_HEALTH_CHECK_INTERVAL", "1s"),
        )
    };
    let first = start(dir.path());
    let status = json(&first, "/api/admin/background-jobs/status");
    assert!(
        status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "history_retention")
    );
    // Written by the end of the run: runs as they finish, samples every 5 s, both in batches
    // (and whatever is left at shutdown).
    let before = wait_for(
        &first,
        "/api/admin/runs?limit=500",
        Duration::from_secs(20),
        |runs| runs.as_array().is_some_and(|runs| runs.len() >= 4),
    );
    let response = reqwest::blocking::Client::new()
        .post(format!("{}api/admin/background-jobs/status", first.url))
        .bearer_auth(OPERATOR)
        .json(&serde_json::json!({"action": "cleanup", "dry_run": true}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    std::thread::sleep(Duration::from_secs(6));
    let (code, _) = first.stop();
    assert_eq!(code, Some(0));
    let stopped_at = Utc::now();
    let old_instance = before[0]["instance"].as_str().unwrap().to_owned();

    let second = start(dir.path());
    // Runs: everything the first process wrote, under its instance, with its details.
    let runs = json(
        &second,
        &format!("/api/admin/runs?limit=500&instance={old_instance}"),
    );
    let ids: Vec<u64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["run_id"].as_u64().unwrap())
        .collect();
    for run in before.as_array().unwrap() {
        assert!(ids.contains(&run["run_id"].as_u64().unwrap()), "{run} kept");
    }
    assert!(
        instants(&runs, "started_at")
            .iter()
            .all(|at| *at < stopped_at)
    );
    let first_run = &runs[0];
    let detail = json(
        &second,
        &format!("/api/admin/runs/{old_instance}/{}", first_run["run_id"]),
    );
    assert_eq!(detail["task"], first_run["task"]);
    assert!(
        !detail["record"]["attempt_log"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Samples: the first process's, from the database.
    let samples = json(&second, "/api/admin/samples?range=1h");
    let taken: Vec<i64> = samples["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["at_ms"].as_i64().unwrap())
        .collect();
    assert!(
        taken.iter().any(|at| *at < stopped_at.timestamp_millis()),
        "samples from before the restart: {samples:#}"
    );
    // On the dashboard too: its charts over a span that ends at the stop, read from the
    // database, hold the first process's samples.
    let span = format!(
        "/?from={}&to={}",
        (stopped_at - chrono::Duration::minutes(10))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        stopped_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let (status, page) = get(&second, &span);
    assert_eq!(status, 200, "{page}");
    let pool = page
        .split(r#"<figure class="chart pool">"#)
        .nth(1)
        .and_then(|chart| chart.split("</figure>").next())
        .unwrap_or_else(|| panic!("no pool chart: {page}"));
    assert!(pool.contains(r#"data-source="database""#), "{pool}");
    assert!(pool.contains(r#"<g class="point""#), "{pool}");
    // The same on the pages: the first process's runs, one with its attempts.
    let (status, page) = get(&second, &format!("/runs?instance={old_instance}"));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!(r#"data-run="{}""#, first_run["run_id"])),
        "{page}"
    );
    let (status, page) = get(
        &second,
        &format!("/runs/{old_instance}/{}", first_run["run_id"]),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Attempt 1"), "{page}");
    // Audit: the dry run, filtered by action (an entry's record is flattened into it).
    let audit = json(&second, "/api/admin/audit?action=cleanup&actor=operator");
    assert!(
        audit.as_array().unwrap().iter().any(|e| e["arguments"]
            .as_str()
            .is_some_and(|a| a.contains("dry_run"))),
        "{audit:#}"
    );
    let (status, page) = get(&second, "/audit?action=cleanup&actor=operator");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(r#"data-dry-run="true""#), "{page}");
    second.stop();
}

#[test]
fn a_refused_search_names_the_field_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&mut leasewatch(dir.path()));
    for (path, code, says) in [
        (
            "/api/admin/runs?outcome=broken",
            "invalid_outcome",
            "succeeded, skipped, failed, cancelled",
        ),
        (
            "/api/admin/runs?failure=timeout",
            "invalid_failure",
            "timed_out",
        ),
        ("/api/admin/runs?from=yesterday", "invalid_from", "RFC 3339"),
        ("/api/admin/runs?limit=0", "invalid_limit", "from 1 to 500"),
        (
            "/api/admin/runs?before=nonsense",
            "invalid_before",
            "cursor",
        ),
        (
            "/api/admin/runs?task=%3Cscript%3E",
            "invalid_task",
            "not a name",
        ),
        (
            "/api/admin/audit?actor=root",
            "invalid_actor",
            "viewer, operator, system",
        ),
        (
            "/api/admin/samples?range=1y",
            "invalid_range",
            "15m, 1h, 24h, 7d",
        ),
        (
            "/api/admin/samples?from=2020-01-01T00:00:00Z",
            "invalid_from",
            "31 days",
        ),
        ("/api/admin/runs/x/1", "unknown_run", "no run 1"),
    ] {
        let (status, body) = get(&server, path);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(status == 400 || status == 404, "{path}: {status}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{path}: {message}");
    }
    server.stop();
}
