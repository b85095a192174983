//! The command line as an operator uses it over SSH: the real binary's subcommands, as child
//! processes, against the real binary serving on SQLite. What is checked is what a user or a
//! script would look at: the tables, the JSON, the exit statuses, the one-line errors, and
//! that the token never shows.

mod support;

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{OPERATOR, Server, leasewatch};

const VIEWER: &str = "viewer-token-for-tests-0002";

/// The demo's leak, stale after 1 s and critical after 2 s, left to the command line's
/// cleanup (periodic cleanup waits an hour).
const LEAK: &[(&str, &str)] = &[
    ("DEMO_LEAK_HOLD", "60s"),
    ("DEMO_LEAK_EVERY", "1s"),
    ("LEASE_TIMEOUT", "1s"),
    ("CLEANUP_INTERVAL", "1h"),
    ("REC_HOLD", "0s"),
    ("REC_STALE_CRITICAL_AGE", "2s"),
];

/// Every wait for the server's state, with room for a busy machine.
const WITHIN: Duration = Duration::from_secs(20);

/// A server with the operator and viewer tokens and `env`.
fn server(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    Server::start(
        leasewatch(dir)
            .arg("--demo")
            .env("LEASEWATCH_VIEWER_TOKEN", VIEWER)
            .envs(env.iter().copied()),
    )
}

/// What one run of the command line left.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.stdout))
    }

    /// Stderr is exactly one line, and it contains `expected`.
    fn says(&self, expected: &str) {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{:?}", self.stderr);
        assert!(lines[0].starts_with("leasewatch: "), "{lines:?}");
        assert!(lines[0].contains(expected), "{lines:?} lacks {expected:?}");
    }
}

/// `leasewatch args` with a clean environment plus `env`; fails after 30 s.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut child = Command::new(env!("CARGO_BIN_EXE_leasewatch"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("leasewatch {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let ran = Ran {
        code: status.code(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    for token in [OPERATOR, VIEWER, "wrong-token-for-tests-0003"] {
        assert!(
            !ran.stdout.contains(token) && !ran.stderr.contains(token),
            "leasewatch {args:?} printed a token"
        );
    }
    ran
}

/// The command line against `server` with `token`.
fn at(server: &Server, token: &str, args: &[&str]) -> Ran {
    cli(
        args,
        &[("LEASEWATCH_URL", &server.url), ("LEASEWATCH_TOKEN", token)],
    )
}

/// Asks `leasewatch args --json` until `done` holds for its JSON; fails after [`WITHIN`].
fn until(server: &Server, args: &[&str], what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WITHIN;
    loop {
        let ran = at(server, OPERATOR, args);
        assert!(matches!(ran.code, Some(0 | 5)), "{}", ran.stderr);
        let json = ran.json();
        if done(&json) {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {WITHIN:?}: {json}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The API, read directly (to compare with what the command line printed).
fn api(server: &Server, path: &str) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{}{path}", server.url))
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

fn stale_leak(leases: &Value) -> Option<u64> {
    leases
        .as_array()?
        .iter()
        .find(|l| l["task"] == "leaky_report" && l["stale"] == true)
        .and_then(|l| l["id"].as_u64())
}

#[test]
fn status_leases_and_cleanup_on_a_leaking_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), LEAK);

    // The overview: the scheduler, the pool's numbers, every task.
    let status = at(&server, VIEWER, &["status"]);
    assert!(matches!(status.code, Some(0 | 5)), "{}", status.stderr);
    assert!(
        status.stdout.starts_with("scheduler  running\n"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("; max 20, "), "{}", status.stdout);
    for task in [
        "status_transitions",
        "auction_monitor",
        "health_check",
        "leaky_report",
    ] {
        assert!(
            status.stdout.lines().any(|line| line.starts_with(task)),
            "{task}: {}",
            status.stdout
        );
    }
    for line in status.stdout.lines() {
        assert!(line.chars().count() <= 80, "{line:?}");
    }

    // --json is the API's document.
    let json = at(&server, VIEWER, &["status", "--json"]).json();
    let direct = api(&server, "api/admin/background-jobs/status");
    for key in [
        "scheduler",
        "tasks",
        "pool",
        "leases",
        "recommendations",
        "governor",
    ] {
        assert!(json.get(key).is_some(), "{key}: {json}");
    }
    let names = |v: &Value| -> Vec<Value> {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].clone())
            .collect()
    };
    assert_eq!(names(&json), names(&direct));
    assert_eq!(json["pool"]["max"], direct["pool"]["max"]);

    // The leak shows in the lease table, marked stale.
    let leases = until(&server, &["leases", "--json"], "stale leak", |l| {
        stale_leak(l).is_some()
    });
    let leak = stale_leak(&leases).unwrap();
    let table = at(&server, VIEWER, &["leases"]);
    assert_eq!(table.code, Some(0), "{}", table.stderr);
    assert!(table.stdout.starts_with("LEASE  TASK"), "{}", table.stdout);
    assert!(
        table.stdout.lines().any(|line| line
            .trim_start()
            .starts_with(&format!("{leak}  leaky_report"))
            && line.contains("stale")),
        "{}",
        table.stdout
    );

    // A critical recommendation makes status exit 5, table or JSON.
    until(
        &server,
        &["status", "--json"],
        "critical stale_lease",
        |s| {
            s["recommendations"].as_array().unwrap().iter().any(|r| {
                r["id"] == "stale_lease:leaky_report"
                    && r["severity"] == "critical"
                    && r["cleared_at"].is_null()
            })
        },
    );
    let critical = at(&server, VIEWER, &["status"]);
    assert_eq!(critical.code, Some(5), "{}", critical.stderr);
    assert!(
        critical
            .stdout
            .lines()
            .any(|line| line.starts_with("critical") && line.contains("stale_lease:leaky_report")),
        "{}",
        critical.stdout
    );
    assert_eq!(at(&server, VIEWER, &["status", "--json"]).code, Some(5));

    // A viewer may not clean up, not even a dry run.
    for args in [&["cleanup"][..], &["cleanup", "--dry-run"]] {
        let refused = at(&server, VIEWER, args);
        assert_eq!(refused.code, Some(4), "{args:?}: {}", refused.stderr);
        refused.says("the viewer role can read but not act; use the operator token (HTTP 403");
        assert!(refused.stdout.is_empty());
    }

    // A dry run reports the leak and changes nothing; the audit log records it as a dry run.
    let preview = at(&server, OPERATOR, &["cleanup", "--dry-run"]);
    assert_eq!(preview.code, Some(0), "{}", preview.stderr);
    assert!(
        preview.stdout.starts_with("cleanup: ") && preview.stdout.contains("would revoke"),
        "{}",
        preview.stdout
    );
    assert!(
        preview.stdout.contains("leaky_report"),
        "{}",
        preview.stdout
    );
    let still = at(&server, OPERATOR, &["leases", "--json"]).json();
    assert!(
        still.as_array().unwrap().iter().any(|l| l["id"] == leak),
        "the dry run revoked {leak}: {still}"
    );
    let audit = api(&server, "api/admin/audit?limit=5");
    let entry = &audit[0];
    assert_eq!(entry["action"], "cleanup", "{audit}");
    assert_eq!(entry["role"], "operator", "{audit}");
    assert_eq!(
        serde_json::from_str::<Value>(entry["arguments"].as_str().unwrap()).unwrap()["dry_run"],
        true,
        "{audit}"
    );

    // The cleanup itself revokes it.
    let done = at(&server, OPERATOR, &["cleanup", "--json"]);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    let done = done.json();
    assert_eq!(done["action"], "cleanup");
    assert_eq!(done["details"]["dry_run"], false, "{done}");
    assert!(
        done["details"]["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == leak),
        "{done}"
    );
    let after = at(&server, OPERATOR, &["leases", "--json"]).json();
    assert!(
        after.as_array().unwrap().iter().all(|l| l["id"] != leak),
        "{leak} still held: {after}"
    );

    // A wrong token is refused with its own status and the variable named.
    let wrong = at(&server, "wrong-token-for-tests-0003", &["leases"]);
    assert_eq!(wrong.code, Some(4));
    wrong.says("the server does not accept the token in LEASEWATCH_TOKEN (HTTP 401");

    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log:#?}");
}

#[test]
fn runs_are_listed_filtered_and_paged() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[
            ("TASK_STATUS_TRANSITIONS_INTERVAL", "1s"),
            ("TASK_HEALTH_CHECK_INTERVAL", "1s"),
        ],
    );
    let runs = until(&server, &["runs", "--json"], "three runs", |runs| {
        runs.as_array().is_some_and(|runs| runs.len() >= 3)
    });
    let direct = api(&server, "api/admin/runs?limit=3");
    assert_eq!(
        runs[0]["run_id"], direct[0]["run_id"],
        "the same newest run"
    );

    // A page of two, with the way to the next.
    let page = at(&server, VIEWER, &["runs", "--limit", "2"]);
    assert_eq!(page.code, Some(0), "{}", page.stderr);
    let lines: Vec<&str> = page.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two runs: {}", page.stdout);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "STARTED", "(UTC)", "TASK", "RUN", "TOOK", "OUTCOME", "DETAIL"
        ],
        "{lines:?}"
    );
    assert!(
        page.stderr
            .starts_with("more runs: leasewatch runs --limit 2 --before "),
        "{}",
        page.stderr
    );
    let cursor = page.stderr.trim().rsplit(' ').next().unwrap();
    let next = at(
        &server,
        VIEWER,
        &["runs", "--limit", "2", "--before", cursor, "--json"],
    );
    assert_eq!(next.code, Some(0), "{}", next.stderr);
    let first = at(&server, VIEWER, &["runs", "--limit", "2", "--json"]).json();
    let (first, next) = (first.as_array().unwrap(), next.json());
    assert!(
        next.as_array()
            .unwrap()
            .iter()
            .all(|run| !first.contains(run)),
        "the next page repeats none: {first:?} {next}"
    );

    // Filters reach the server.
    let health = at(
        &server,
        VIEWER,
        &["runs", "--task", "health_check", "--json"],
    )
    .json();
    assert!(
        health
            .as_array()
            .unwrap()
            .iter()
            .all(|run| run["task"] == "health_check"),
        "{health}"
    );
    let failed = at(&server, VIEWER, &["runs", "--failed", "--json"]).json();
    assert!(
        failed
            .as_array()
            .unwrap()
            .iter()
            .all(|run| run["outcome"] == "failed"),
        "{failed}"
    );

    // Nothing critical on a quiet server: status exits 0.
    let status = at(&server, VIEWER, &["status"]);
    assert_eq!(status.code, Some(0), "{}{}", status.stdout, status.stderr);

    let (code, log) = server.stop();
    assert_eq!(code, Some(0), "{log:#?}");
}

#[test]
fn bad_input_and_an_unreachable_server_have_their_exit_statuses() {
    // A port nothing listens on: taken, then given back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("http://127.0.0.1:{port}");
    let env = [
        ("LEASEWATCH_URL", down.as_str()),
        ("LEASEWATCH_TOKEN", OPERATOR),
    ];

    let unreachable = cli(&["status"], &env);
    assert_eq!(unreachable.code, Some(3));
    unreachable.says(&format!(
        "cannot reach the server at http://127.0.0.1:{port}/ (LEASEWATCH_URL)"
    ));
    assert!(unreachable.stdout.is_empty());

    // (arguments, what the line names) — refused before anything is sent.
    let cases: &[(&[&str], &str)] = &[
        (&["stauts"], "unknown subcommand \"stauts\""),
        (
            &["status", "--verbose"],
            "status: unknown flag \"--verbose\"",
        ),
        (
            &["runs", "--limit", "0"],
            "--limit \"0\" is not allowed: a whole number from 1 to 500",
        ),
        (&["runs", "--limit", "501"], "a whole number from 1 to 500"),
        (
            &["runs", "--outcome", "done"],
            "the outcomes are succeeded, skipped, failed, cancelled",
        ),
        (&["cleanup", "--force"], "cleanup: unknown flag \"--force\""),
        (&["--dmeo"], "unknown argument \"--dmeo\""),
        (&["leases", "--token", OPERATOR], "set LEASEWATCH_TOKEN"),
    ];
    for (args, named) in cases {
        let ran = cli(args, &env);
        assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.stderr);
        ran.says(named);
    }

    // Settings: named, one line, exit 2.
    let missing = cli(&["status"], &[("LEASEWATCH_URL", &down)]);
    assert_eq!(missing.code, Some(2));
    missing.says("LEASEWATCH_TOKEN is not set");
    let bad_url = cli(
        &["status"],
        &[
            ("LEASEWATCH_URL", "127.0.0.1:3000"),
            ("LEASEWATCH_TOKEN", OPERATOR),
        ],
    );
    assert_eq!(bad_url.code, Some(2));
    bad_url.says("LEASEWATCH_URL=\"127.0.0.1:3000\" is not a server address");

    // The help lists the subcommands and the exit statuses, on stdout.
    let help = cli(&["--help"], &[]);
    assert_eq!(help.code, Some(0));
    assert!(help.stderr.is_empty());
    for text in [
        "leasewatch runs",
        "LEASEWATCH_TOKEN",
        "3  the server cannot be reached",
    ] {
        assert!(help.stdout.contains(text), "{text}: {}", help.stdout);
    }
}
