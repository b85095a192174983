//! The admin surface's data paths under attack, on the real binary: a viewer flooding refused
//! actions, oversized arguments, paging through the audit log and bad paging values, a
//! password in `DATABASE_URL`'s query string, and a flood of public readiness probes.

mod support;

use std::time::Duration;

use leasewatch_testkit::{ScratchCluster, TestDatabase};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use support::{OPERATOR, Server, leasewatch};

/// The viewer token every server here is started with.
const VIEWER: &str = "viewer-token-for-tests-0001";

const STATUS: &str = "api/admin/background-jobs/status";
const AUDIT: &str = "api/admin/audit";

/// The binary in a folder of its own, with both tokens, on `database` (SQLite in the folder
/// when `None`).
fn start(dir: &tempfile::TempDir, database: Option<&str>, env: &[(&str, &str)]) -> Server {
    let mut command = leasewatch(dir.path());
    command
        .env("LEASEWATCH_VIEWER_TOKEN", VIEWER)
        .envs(env.iter().copied());
    if let Some(url) = database {
        command.env("DATABASE_URL", url);
    }
    tokio::task::block_in_place(|| Server::start(&mut command))
}

fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn act(http: &Client, server: &Server, token: &str, body: Value) -> Response {
    http.post(format!("{}{STATUS}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(http: &Client, server: &Server, path: &str, token: &str) -> Response {
    http.get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `url` with the session's `search_path` in Leasewatch's schema.
fn in_app_schema(url: &str) -> String {
    format!("{url}?options=-c%20search_path%3Dleasewatch")
}

/// A viewer who sends 300 refused actions after an operator acted cannot push the operator's
/// action off the first page of the audit log, nor fill the table: the refusals are one row
/// that counts them. A refused `pause` with an oversized task is refused before it is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_refusal_flood_cannot_bury_an_operator_action() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, Some(db.url()), &[]);
    let http = http();
    let paused = act(
        &http,
        &server,
        OPERATOR,
        json!({"action": "pause", "task": "health_check"}),
    )
    .await;
    assert_eq!(paused.status(), StatusCode::OK);

    // 300 refusals, ten at a time, each on a new connection as a script would send them.
    for _ in 0..30 {
        let batch: Vec<_> = (0..10)
            .map(|_| {
                let (url, body) = (format!("{}{STATUS}", server.url), json!({"action": "stop"}));
                tokio::spawn(async move {
                    Client::new()
                        .post(url)
                        .bearer_auth(VIEWER)
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for refused in batch {
            assert_eq!(refused.await.unwrap(), StatusCode::FORBIDDEN);
        }
    }
    // A refused pause whose task is 15 KB (just under the body limit) is refused as invalid,
    // before anything is recorded.
    let oversized = act(
        &http,
        &server,
        VIEWER,
        json!({"action": "pause", "task": "x".repeat(15_000)}),
    )
    .await;
    assert_eq!(oversized.status(), StatusCode::BAD_REQUEST);
    let error: Value = oversized.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_task", "{error}");
    assert!(error.to_string().len() < 1_000, "the task is not echoed");

    let page: Vec<Value> = get(&http, &server, AUDIT, VIEWER)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 2, "{page:#?}");
    assert_eq!(page[0]["role"], "viewer");
    assert_eq!(page[0]["outcome"], "refused");
    assert_eq!(page[0]["action"], "stop");
    assert_eq!(page[0]["count"], 300, "{:#}", page[0]);
    assert!(page[0]["last_at"].is_string(), "{:#}", page[0]);
    assert_eq!(page[1]["role"], "operator");
    assert_eq!(page[1]["action"], "pause");
    assert_eq!(page[1]["outcome"], "ok");

    // In the table: two rows, the count written within a second or two, nothing large.
    let mut conn = PgConnection::connect(&in_app_schema(db.url()))
        .await
        .unwrap();
    let mut stored = (0, 0, 0);
    for _ in 0..40 {
        stored = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(MAX(repeat_count), 0), \
             COALESCE(MAX(length(arguments) + length(result) + length(client)), 0)::int8 \
             FROM audit_log",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if stored.1 == 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (rows, count, widest): (i64, i64, i64) = stored;
    assert_eq!((rows, count), (2, 300));
    assert!(widest < 1_024, "widest row {widest} bytes");

    // The dashboard says how many, too.
    let html = get(&http, &server, "", OPERATOR)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("(×300)"), "{html}");
    drop(conn);
    let (code, log) = tokio::task::block_in_place(|| server.stop());
    assert_eq!(code, Some(0), "{log:#?}");
}

/// The audit API pages through the database, newest first, with a cursor; every entry comes
/// once, and the last page says there is no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_pages_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, None, &[]);
    let http = http();
    for i in 0..7 {
        let action = if i % 2 == 0 { "pause" } else { "resume" };
        let reply = act(
            &http,
            &server,
            OPERATOR,
            json!({"action": action, "task": "auction_monitor"}),
        )
        .await;
        assert_eq!(reply.status(), StatusCode::OK);
    }
    let mut path = format!("{AUDIT}?limit=3");
    let mut pages = Vec::new();
    loop {
        let reply = get(&http, &server, &path, VIEWER).await;
        assert_eq!(reply.status(), StatusCode::OK);
        let next = reply
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let cursor = reply
            .headers()
            .get("x-next-before")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = reply.json().await.unwrap();
        let ids: Vec<i64> = page.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        pages.push(ids.clone());
        let Some(next) = next else {
            assert!(cursor.is_none());
            break;
        };
        // `</api/admin/audit?limit=3&before=ID>; rel="next"`, and the same ID on its own.
        let cursor = cursor.expect("X-Next-Before with Link");
        assert_eq!(
            next,
            format!("</{AUDIT}?limit=3&before={cursor}>; rel=\"next\"")
        );
        assert_eq!(cursor, ids.last().unwrap().to_string());
        path = next
            .trim_start_matches("</")
            .split('>')
            .next()
            .unwrap()
            .to_owned();
        assert!(pages.len() < 10, "the cursor does not advance: {pages:?}");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 1],
        "{pages:?}"
    );
    let all: Vec<i64> = pages.concat();
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    assert_eq!(all.len(), 7);
    // The default page holds them all, newest first, starting with the last action.
    let page: Vec<Value> = get(&http, &server, AUDIT, VIEWER)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page.len(), 7);
    assert_eq!(page[0]["action"], "pause");
    tokio::task::block_in_place(|| server.stop());
}

/// Paging values outside what is allowed get a 400 in the API's JSON error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paging_values_get_a_json_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, None, &[]);
    let http = http();
    for (query, code) in [
        ("limit=-1", "invalid_query"),
        ("limit=abc", "invalid_query"),
        ("limit=100000", "invalid_limit"),
        ("limit=501", "invalid_limit"),
        ("limit=0", "invalid_limit"),
        ("before=0", "invalid_before"),
        ("before=x", "invalid_query"),
    ] {
        let reply = get(&http, &server, &format!("{AUDIT}?{query}"), OPERATOR).await;
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            reply.headers()["content-type"],
            "application/json",
            "{query}"
        );
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
        // The message names the parameter and what it allows.
        let name = query.split('=').next().unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(name),
            "{query}: {body}"
        );
    }
    for query in ["limit=1", "limit=500", "before=1", "limit=5&before=999"] {
        let reply = get(&http, &server, &format!("{AUDIT}?{query}"), OPERATOR).await;
        assert_eq!(reply.status(), StatusCode::OK, "{query}");
    }
    tokio::task::block_in_place(|| server.stop());
}

/// A password given as `?password=` in `DATABASE_URL` appears in neither the log, the
/// dashboard page nor the status endpoint; the URL itself does, redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_query_string_is_never_shown() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let secret = format!("s3cr3t-{:016x}", rand::random::<u64>());
    // Trust authentication ignores the password, so it can be any secret.
    let url = format!("{}?password={secret}&sslmode=disable", db.url());
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, Some(&url), &[]);
    let http = http();
    let page = get(&http, &server, "", OPERATOR)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("password=***"), "{page}");
    assert!(!page.contains(&secret));
    let status = get(&http, &server, STATUS, OPERATOR)
        .await
        .text()
        .await
        .unwrap();
    assert!(status.contains("\"scheduler\""), "{status}");
    assert!(!status.contains(&secret));
    let (code, log) = tokio::task::block_in_place(|| server.stop());
    assert_eq!(code, Some(0), "{log:#?}");
    assert!(
        log.iter().any(|line| line.contains("password=***")),
        "{log:#?}"
    );
    assert!(log.iter().all(|line| !line.contains(&secret)), "{log:#?}");
}

/// 200 concurrent public readiness probes cost the database at most one query a second, on a
/// connection of their own; with the database down the answer is generic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_are_coalesced_and_say_nothing_raw() {
    let Some(cluster) = tokio::task::spawn_blocking(|| ScratchCluster::start(30))
        .await
        .unwrap()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(
        &dir,
        Some(&cluster.url("postgres", "postgres")),
        &[("RUST_LOG", "info,leasewatch_engine::db=debug")],
    );
    let asked = |server: &mut Server| {
        server
            .log()
            .iter()
            .filter(|line| line.contains("readiness probe asked the database"))
            .count()
    };
    let before = asked(&mut server);
    let started = std::time::Instant::now();
    let probes: Vec<_> = (0..200)
        .map(|_| {
            let url = format!("{}readyz", server.url);
            tokio::spawn(async move {
                let reply = Client::new().get(url).send().await.unwrap();
                (reply.status(), reply.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for probe in probes {
        let (status, body) = probe.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"ready": true}));
    }
    let took = started.elapsed();
    // The log line for the last probe may still be on its way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queries = asked(&mut server) - before;
    let allowed = usize::try_from(took.as_secs()).unwrap() + 2;
    eprintln!("200 probes in {took:?}: {queries} database queries");
    assert!(
        (1..=allowed).contains(&queries),
        "{queries} queries for 200 probes in {took:?}"
    );
    let mut admin = PgConnection::connect(&cluster.url("postgres", "postgres"))
        .await
        .unwrap();
    let probe_sessions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'leasewatch:probe'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(probe_sessions, 1);
    drop(admin);

    tokio::task::block_in_place(|| cluster.stop());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let reply = Client::new()
        .get(format!("{}readyz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(
        body,
        json!({"ready": false, "reason": "database unreachable"})
    );
    // The detail is in the log, for the operator.
    assert!(
        server
            .log()
            .iter()
            .any(|line| line.contains("readiness probe: the database refused or is unreachable")),
        "{:#?}",
        server.log()
    );
    tokio::task::block_in_place(|| cluster.restart());
    tokio::task::block_in_place(|| server.stop());
}
