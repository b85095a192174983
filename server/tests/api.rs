//! The HTTP edge, driven in-process through the real router on a real engine: every action,
//! every bad input, every role on every endpoint, CSRF, metrics, audit.

use std::{
    collections::BTreeSet,
    io::Write,
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Method, Request, StatusCode, header},
};
use leasewatch::{
    auth::{Auth, Secret, Sessions, SiteOrigin},
    edge::Hosts,
    routes::{PAGE_PATHS, router},
};
use leasewatch_app::api::ssr::AppState;
use leasewatch_engine::{DatabaseUrl, Engine, EngineConfig, PoolSettings};
use leasewatch_testkit::TestDatabase;
use leasewatch_types::AuditOutcome;
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;
use support::{leptos_options, task_names};

const OPERATOR: &str = "operator-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789ab";
const STATUS: &str = "/api/admin/background-jobs/status";

struct TestApp {
    router: Router,
    engine: Arc<Engine>,
    _dir: Option<tempfile::TempDir>,
}

fn engine_config(database: DatabaseUrl) -> EngineConfig {
    EngineConfig {
        pool: PoolSettings {
            max_connections: 4,
            min_connections: 1,
            connect_timeout: Duration::from_secs(5),
            ..PoolSettings::default()
        },
        demo: true,
        ..EngineConfig::new(database)
    }
}

async fn app_on(database: DatabaseUrl, dir: Option<tempfile::TempDir>) -> TestApp {
    app_with(engine_config(database), dir, leptos_options()).await
}

async fn app_with(
    config: EngineConfig,
    dir: Option<tempfile::TempDir>,
    leptos_options: leptos::config::LeptosOptions,
) -> TestApp {
    let engine = Arc::new(Engine::start(config).await.unwrap());
    let sessions = Sessions::load(
        Arc::clone(&engine),
        Secret::new(OPERATOR),
        Some(Secret::new(VIEWER)),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    let auth = Auth::new(
        Secret::new(OPERATOR),
        Some(Secret::new(VIEWER)),
        sessions,
        SiteOrigin::default(),
        leptos_options.clone(),
    );
    let router = router(
        AppState {
            leptos_options,
            engine: Arc::clone(&engine),
            poll_every: Duration::from_secs(2),
        },
        auth,
        Hosts::Any,
    );
    TestApp {
        router,
        engine,
        _dir: dir,
    }
}

async fn sqlite_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("api.db"));
    app_on(url, Some(dir)).await
}

/// Who sends a request.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    /// No credentials, from this site's page (the login form).
    Page,
    Bearer(&'a str),
    /// A bearer token from another client address (wrong tokens count per client).
    BearerFrom(&'a str, [u8; 4]),
    Cookie(&'a str, Option<&'a str>),
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

impl TestApp {
    async fn send(
        &self,
        method: Method,
        path: &str,
        who: As<'_>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "leasewatch.test");
        match who {
            As::Nobody => {}
            As::Page => request = request.header(header::ORIGIN, "http://leasewatch.test"),
            As::Bearer(token) => {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"))
            }
            As::BearerFrom(token, ip) => {
                request = request
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .extension(ConnectInfo(SocketAddr::from((ip, 40000))));
            }
            As::Cookie(cookie, origin) => {
                request = request.header(header::COOKIE, cookie);
                if let Some(origin) = origin {
                    request = request.header(header::ORIGIN, origin);
                }
            }
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn act(&self, who: As<'_>, body: Value) -> Reply {
        self.send(
            Method::POST,
            STATUS,
            who,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    async fn status(&self) -> Value {
        let reply = self
            .send(Method::GET, STATUS, As::Bearer(OPERATOR), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body
    }

    /// Logs in through the form and returns the session cookie ("name=value").
    async fn log_in(&self, token: &str) -> String {
        let form = format!("token={token}");
        let reply = self
            .send(
                Method::POST,
                "/login",
                As::Page,
                Some(("application/x-www-form-urlencoded", form.into_bytes())),
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
        let cookie = reply.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.contains("Max-Age="),
            "{cookie}"
        );
        cookie.split(';').next().unwrap().to_owned()
    }
}

fn error_code(reply: &Reply) -> &str {
    reply.body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {}", reply.text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_works_and_says_what_happened() {
    let app = sqlite_app().await;
    let op = As::Bearer(OPERATOR);

    // The status carries the recommendations, worst first, each with its numbers.
    let status = app.status().await;
    let recommendations = status["recommendations"].as_array().unwrap();
    assert!(!recommendations.is_empty(), "{status}");
    assert!(
        recommendations
            .iter()
            .all(|r| r["severity"].is_string() && r["detail"].is_string())
    );

    // Stop previews first: it names the runs it would cancel and changes nothing.
    let plan = app
        .act(op, json!({"action": "stop", "dry_run": true}))
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.text);
    assert!(
        plan.body["message"]
            .as_str()
            .unwrap()
            .starts_with("would stop the scheduler; "),
        "{}",
        plan.text
    );
    assert_eq!(plan.body["status"]["scheduler"]["running"], true);

    let stop = app.act(op, json!({"action": "stop"})).await;
    assert_eq!(stop.status, StatusCode::OK, "{}", stop.text);
    assert!(
        stop.body["message"]
            .as_str()
            .unwrap()
            .starts_with("scheduler stopped")
    );
    assert_eq!(stop.body["status"]["scheduler"]["running"], false);

    let start = app.act(op, json!({"action": "start"})).await;
    assert_eq!(start.body["message"], "scheduler started");
    assert_eq!(start.body["status"]["scheduler"]["running"], true);

    let pause = app
        .act(op, json!({"action": "pause", "task": "auction_monitor"}))
        .await;
    assert_eq!(pause.body["message"], "auction_monitor paused");
    assert_eq!(pause.body["status"]["tasks"][1]["paused"], true);
    let resume = app
        .act(op, json!({"action": "resume", "task": "auction_monitor"}))
        .await;
    assert_eq!(resume.body["status"]["tasks"][1]["paused"], false);

    // Let the start-up runs finish so run_now finds the task idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let run = app
        .act(op, json!({"action": "run_now", "task": "health_check"}))
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert!(run.body["details"]["run_id"].as_u64().is_some());

    for action in ["cleanup", "emergency_cleanup"] {
        let plan = app
            .act(op, json!({"action": action, "dry_run": true}))
            .await;
        assert_eq!(plan.status, StatusCode::OK, "{}", plan.text);
        assert_eq!(plan.body["details"]["dry_run"], true);
        assert!(
            plan.body["message"]
                .as_str()
                .unwrap()
                .starts_with("would revoke"),
            "{}",
            plan.text
        );
        let done = app.act(op, json!({"action": action})).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert_eq!(done.body["details"]["dry_run"], false);
        assert!(
            done.body["message"]
                .as_str()
                .unwrap()
                .starts_with("revoked"),
            "{}",
            done.text
        );
    }

    // Each action is in the audit log, in memory and in the database, before its response.
    let audit = app
        .send(Method::GET, "/api/admin/audit?limit=100", op, None)
        .await;
    let actions: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "emergency_cleanup",
            "emergency_cleanup",
            "cleanup",
            "cleanup",
            "run_now",
            "resume",
            "pause",
            "start",
            "stop",
            "stop"
        ]
    );
    assert!(
        audit
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["role"] == "operator" && e["outcome"] == "ok")
    );
    assert_eq!(audit.body[9]["arguments"], r#"{"dry_run":true}"#);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(app.engine.database().pool())
        .await
        .unwrap();
    assert_eq!(stored, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_named_4xx_and_changes_nothing() {
    let app = sqlite_app().await;
    let op = As::Bearer(OPERATOR);
    let before = app.status().await;
    // (content type and body, status, error code, what the message says)
    type Case<'a> = (Option<(&'a str, Vec<u8>)>, StatusCode, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            Some(("application/json", br#"{"action": "restart"}"#.to_vec())),
            StatusCode::BAD_REQUEST,
            "unknown_action",
            "unknown action \"restart\": allowed are start, stop",
        ),
        (
            Some(("application/json", br#"{"task": "health_check"}"#.to_vec())),
            StatusCode::BAD_REQUEST,
            "missing_action",
            "needs \"action\"",
        ),
        (
            Some(("application/json", br#"{"action": "run_now"}"#.to_vec())),
            StatusCode::BAD_REQUEST,
            "missing_task",
            "run_now needs \"task\"",
        ),
        (
            Some((
                "application/json",
                br#"{"action": "pause", "task": "backup"}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "unknown_task",
            "unknown task \"backup\"",
        ),
        (
            Some((
                "application/json",
                br#"{"action": "start", "task": "health_check"}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "unexpected_task",
            "start takes no \"task\"",
        ),
        (
            Some((
                "application/json",
                br#"{"action": "cleanup", "dry_run": "yes"}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "invalid type",
        ),
        (
            Some((
                "application/json",
                br#"{"action": "stop", "force": true}"#.to_vec(),
            )),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "unknown field `force`",
        ),
        (
            Some(("application/json", br#"{"action": "stop""#.to_vec())),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "not valid JSON",
        ),
        (
            Some(("text/plain", br#"{"action": "stop"}"#.to_vec())),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/json",
        ),
        (
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "application/json",
        ),
        (
            Some((
                "application/json",
                format!(
                    r#"{{"action": "stop", "pad": "{}"}}"#,
                    "x".repeat(17 * 1024)
                )
                .into_bytes(),
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "at most 16384 bytes",
        ),
    ];
    for (body, status, code, says) in cases {
        let reply = app.send(Method::POST, STATUS, op, body).await;
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(error_code(&reply), code, "{}", reply.text);
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{}",
            reply.text
        );
    }
    let after = app.status().await;
    assert_eq!(before["scheduler"], after["scheduler"]);
    let paused = |s: &Value| {
        s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["paused"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(paused(&before), paused(&after));
    // A state change is never reachable by GET.
    let get = app
        .send(Method::GET, &format!("{STATUS}?action=stop"), op, None)
        .await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(app.status().await["scheduler"]["running"], true);

    // A second emergency cleanup within 10 s is refused; a dry run is not.
    assert_eq!(
        app.act(op, json!({"action": "emergency_cleanup"}))
            .await
            .status,
        StatusCode::OK
    );
    let again = app.act(op, json!({"action": "emergency_cleanup"})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(error_code(&again), "too_soon");
    assert_eq!(
        app.act(op, json!({"action": "emergency_cleanup", "dry_run": true}))
            .await
            .status,
        StatusCode::OK
    );
    let refused = app.engine.audit().recent(3);
    assert_eq!(
        refused[1].record.outcome,
        AuditOutcome::Refused,
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_gets_what_it_may_on_every_endpoint_and_server_function() {
    let app = sqlite_app().await;
    let viewer_cookie = app.log_in(VIEWER).await;
    let operator_cookie = app.log_in(OPERATOR).await;
    let same_site = Some("http://leasewatch.test");
    // (method, path, JSON body)
    let reads: [(Method, &str); 6] = [
        (Method::GET, STATUS),
        (Method::GET, "/api/openapi.json"),
        (Method::GET, "/api/admin/audit"),
        (Method::GET, "/metrics"),
        (Method::GET, "/"),
        (Method::POST, "/api/dashboard"),
    ];
    let mut client = 0u8;
    for (method, path) in &reads {
        let none = app.send(method.clone(), path, As::Nobody, None).await;
        if *path == "/" {
            assert_eq!(none.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(none.headers[header::LOCATION], "/login");
        } else {
            assert_eq!(
                none.status,
                StatusCode::UNAUTHORIZED,
                "{path}: {}",
                none.text
            );
            assert_eq!(error_code(&none), "unauthenticated");
        }
        client += 1;
        let wrong = app
            .send(
                method.clone(),
                path,
                As::BearerFrom("not-a-token-at-all", [10, 0, 0, client]),
                None,
            )
            .await;
        assert_ne!(wrong.status, StatusCode::OK, "{path}");
        for who in [
            As::Bearer(VIEWER),
            As::Bearer(OPERATOR),
            As::Cookie(&viewer_cookie, same_site),
            As::Cookie(&operator_cookie, same_site),
        ] {
            let reply = app.send(method.clone(), path, who, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        }
    }
    // Acting: 401 without credentials, 403 for a viewer, 200 for the operator.
    let body = json!({"action": "start"});
    assert_eq!(
        app.act(As::Nobody, body.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    for viewer in [As::Bearer(VIEWER), As::Cookie(&viewer_cookie, same_site)] {
        let reply = app.act(viewer, body.clone()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
        assert_eq!(error_code(&reply), "forbidden");
    }
    assert_eq!(
        app.engine.audit().recent(1)[0].record.outcome,
        AuditOutcome::Refused
    );
    assert_eq!(
        app.act(As::Bearer(OPERATOR), body.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.act(As::Cookie(&operator_cookie, same_site), body.clone())
            .await
            .status,
        StatusCode::OK
    );

    // The dashboard's control server function follows the same rules.
    let form = |body: &str| {
        Some((
            "application/x-www-form-urlencoded",
            body.as_bytes().to_vec(),
        ))
    };
    assert_eq!(
        app.send(
            Method::POST,
            "/api/control",
            As::Nobody,
            form("action=start")
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    for viewer in [As::Bearer(VIEWER), As::Cookie(&viewer_cookie, same_site)] {
        let reply = app
            .send(Method::POST, "/api/control", viewer, form("action=start"))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    }
    let reply = app
        .send(
            Method::POST,
            "/api/control",
            As::Cookie(&operator_cookie, same_site),
            form("action=start"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        reply.text.contains("scheduler was already running"),
        "{}",
        reply.text
    );
    let cross = app
        .send(
            Method::POST,
            "/api/control",
            As::Cookie(&operator_cookie, Some("http://evil.example")),
            form("action=stop"),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);

    // A cookie-authenticated state change from another site, or with no origin, is refused.
    for origin in [Some("http://evil.example"), None] {
        let reply = app
            .act(
                As::Cookie(&operator_cookie, origin),
                json!({"action": "stop"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
        assert_eq!(error_code(&reply), "cross_origin");
    }
    assert_eq!(
        app.status().await["scheduler"]["running"],
        true,
        "nothing was stopped"
    );

    // Public: the probes and the login page.
    for path in ["/healthz", "/readyz", "/login"] {
        assert_eq!(
            app.send(Method::GET, path, As::Nobody, None).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let bad_login = app
        .send(
            Method::POST,
            "/login",
            As::Page,
            Some(("application/x-www-form-urlencoded", b"token=nope".to_vec())),
        )
        .await;
    assert_eq!(bad_login.status, StatusCode::UNAUTHORIZED);
    // Logout ends the session.
    let logout = app
        .send(
            Method::POST,
            "/logout",
            As::Cookie(&operator_cookie, same_site),
            None,
        )
        .await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    let after = app
        .send(
            Method::GET,
            STATUS,
            As::Cookie(&operator_cookie, same_site),
            None,
        )
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_rendered_in_the_theme_its_cookie_names() {
    let app = sqlite_app().await;
    let session = app.log_in(OPERATOR).await;
    let session = session.split(';').next().unwrap();
    for (theme, expected) in [
        ("", None),
        ("; leasewatch_theme=dark", Some(r#"data-theme="dark""#)),
        ("; leasewatch_theme=light", Some(r#"data-theme="light""#)),
        ("; leasewatch_theme=auto", None),
        ("; leasewatch_theme=<b>", None),
    ] {
        let with_session = format!("{session}{theme}");
        let without = theme.trim_start_matches("; ");
        for (path, who, status) in [
            ("/", As::Cookie(&with_session, None), StatusCode::OK),
            ("/runs", As::Cookie(&with_session, None), StatusCode::OK),
            ("/audit", As::Cookie(&with_session, None), StatusCode::OK),
            (
                "/nope",
                As::Cookie(&with_session, None),
                StatusCode::NOT_FOUND,
            ),
            ("/login", As::Cookie(without, None), StatusCode::OK),
        ] {
            let page = app.send(Method::GET, path, who, None).await;
            assert_eq!(page.status, status, "{path}{theme}");
            let html = page
                .text
                .split("<html")
                .nth(1)
                .and_then(|t| t.split('>').next());
            let html = html.unwrap_or_else(|| panic!("{path}: {}", page.text));
            match expected {
                Some(attribute) => assert!(html.contains(attribute), "{path}{theme}: {html}"),
                None => assert!(!html.contains("data-theme"), "{path}{theme}: {html}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_rendered_with_their_data_and_other_paths_are_files_or_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("robots.txt"), "User-agent: *\n").unwrap();
    let mut options = leptos_options();
    options.site_root = site.to_str().unwrap().into();
    let url = DatabaseUrl::Sqlite(dir.path().join("pages.db"));
    let app = app_with(engine_config(url), Some(dir), options).await;
    let op = As::Bearer(OPERATOR);

    let page = app.send(Method::GET, "/", op, None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("<title>Leasewatch</title>"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains(r#"data-metric="total""#),
        "{}",
        page.text
    );

    let file = app.send(Method::GET, "/robots.txt", op, None).await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.text, "User-agent: *\n");

    for path in [
        "/nope",
        "/api/nope",
        "/pkg/missing.wasm",
        "/index.html",
        "/runs/",
        "/audit/x",
    ] {
        let missing = app.send(Method::GET, path, op, None).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            missing.text.contains("<h1>Page not found</h1>"),
            "{path}: {}",
            missing.text
        );
        // Nothing to hydrate: the not-found page loads no script.
        assert!(!missing.text.contains(".js"), "{path}: {}", missing.text);
    }

    // The history's pages, rendered with their data; a refused filter is a 400 naming the
    // field, a run not there a 404.
    let page = |path: &'static str| app.send(Method::GET, path, op, None);
    let ran = app
        .act(op, json!({"action": "run_now", "task": "health_check"}))
        .await;
    assert_eq!(ran.status, StatusCode::OK, "{}", ran.text);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let runs = loop {
        app.engine.history().flush(app.engine.database()).await;
        let runs = page("/runs").await;
        assert_eq!(runs.status, StatusCode::OK, "{}", runs.text);
        if runs.text.contains("data-run=") || tokio::time::Instant::now() > deadline {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        runs.text.contains("<title>Runs · Leasewatch</title>"),
        "{}",
        runs.text
    );
    assert!(runs.text.contains(r#"action="/runs""#), "{}", runs.text);
    assert!(
        runs.text.contains(r#"<option value="health_check">"#),
        "{}",
        runs.text
    );
    let detail = runs
        .text
        .split(r#"<a href="/runs/"#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|rest| format!("/runs/{rest}"))
        .unwrap_or_else(|| panic!("a run with its link: {}", runs.text));
    let run = app.send(Method::GET, &detail, op, None).await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert!(run.text.contains("Attempt 1"), "{}", run.text);
    for (path, status, says) in [
        (
            "/runs?outcome=broken",
            StatusCode::BAD_REQUEST,
            "succeeded, skipped, failed, cancelled",
        ),
        (
            "/runs?limit=x",
            StatusCode::BAD_REQUEST,
            "is not a whole number",
        ),
        (
            "/runs/nobody/1",
            StatusCode::NOT_FOUND,
            "No run 1 of instance nobody in the history.",
        ),
        ("/runs/nobody/x", StatusCode::NOT_FOUND, "Page not found."),
        ("/audit", StatusCode::OK, r#"action="/audit""#),
        (
            "/audit?actor=root",
            StatusCode::BAD_REQUEST,
            "viewer, operator, system",
        ),
        ("/?range=1h", StatusCode::OK, "Connections, last hour"),
        (
            "/?range=24h",
            StatusCode::OK,
            "all instances, from the database",
        ),
        (
            "/?range=2d",
            StatusCode::BAD_REQUEST,
            "range: &quot;2d&quot; is not one of",
        ),
        (
            "/?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z",
            StatusCode::OK,
            "No samples in the span 2020-01-01 00:00:00 UTC to 2020-01-02 00:00:00 UTC.",
        ),
    ] {
        let reply = page(path).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text);
        assert!(reply.text.contains(says), "{path}: {}", reply.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("audit.db"));
    let app = app_on(url.clone(), None).await;
    let reply = app
        .act(
            As::Bearer(OPERATOR),
            json!({"action": "pause", "task": "health_check"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    app.engine.shutdown().await;
    drop(app);

    let again = app_on(url, None).await;
    let audit = again
        .send(Method::GET, "/api/admin/audit", As::Bearer(VIEWER), None)
        .await;
    let entry = &audit.body[0];
    assert_eq!(entry["action"], "pause");
    assert_eq!(entry["arguments"], r#"{"task":"health_check"}"#);
    assert_eq!(entry["result"], "health_check paused");
    assert_eq!(entry["role"], "operator");
}

/// The paths the router routes, as its `Debug` output lists them (axum has no other way to
/// enumerate a router): only the main path router's, not the fallback's.
fn routed_paths(router: &Router) -> BTreeSet<String> {
    let listing = format!("{router:?}");
    let main = listing
        .split("fallback_router")
        .next()
        .expect("a router lists its path router first");
    main.split("RouteId(")
        .skip(1)
        .filter_map(|entry| {
            let (_, rest) = entry.split_once("): \"")?;
            Some(rest.split('"').next()?.to_owned())
        })
        .collect()
}

/// Every route the server answers is either in the OpenAPI document, a page, or one of the
/// dashboard's server functions; and the document lists nothing that is not routed. A route
/// added without its description fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_api_route() {
    let app = sqlite_app().await;
    let routed = routed_paths(&app.router);
    assert!(
        routed.contains(STATUS) && routed.contains("/"),
        "the router's listing changed shape: {routed:?}"
    );
    let server_fns: BTreeSet<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(path, _)| path.to_owned())
        .collect();
    assert!(server_fns.contains("/api/dashboard"), "{server_fns:?}");
    let api: BTreeSet<String> = routed
        .iter()
        .filter(|path| !PAGE_PATHS.contains(&path.as_str()) && !server_fns.contains(*path))
        .cloned()
        .collect();

    let reply = app
        .send(Method::GET, "/api/openapi.json", As::Bearer(VIEWER), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    let documented: BTreeSet<String> = reply.body["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(api, documented, "routed API paths vs the document's");
    for (path, item) in reply.body["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["summary"].is_string() && operation["responses"].is_object(),
                "{method} {path} has no description: {operation}"
            );
        }
    }
    // The error shape and both ways to authenticate are part of the document.
    let components = &reply.body["components"];
    assert!(components["schemas"]["ErrorBody"]["properties"]["error"].is_object());
    assert_eq!(components["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(
        components["securitySchemes"]["session"]["name"],
        "leasewatch_session"
    );
}

/// promtool (Debian's `prometheus` package) accepts a scrape taken while tasks run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool() {
    let app = sqlite_app().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scrape = app
        .send(Method::GET, "/metrics", As::Bearer(VIEWER), None)
        .await;
    assert_eq!(scrape.status, StatusCode::OK);
    for family in [
        "leasewatch_pool_connections{target=\"primary\",state=\"idle\"}",
        "leasewatch_pool_pending_acquires{target=\"primary\"}",
        "leasewatch_leases_stale{target=\"primary\"}",
        "leasewatch_acquire_duration_seconds_bucket{target=\"primary\",le=\"+Inf\"}",
        "leasewatch_acquire_timeouts_total{target=\"primary\"}",
        "leasewatch_leases_revoked_total{target=\"primary\"}",
        "leasewatch_budget_limit{target=\"primary\"}",
        "leasewatch_target_in_rotation{target=\"primary\"} 1\n",
        "leasewatch_target_bans_total{target=\"primary\"} 0\n",
        "leasewatch_task_runs_total{task=\"status_transitions\",outcome=\"succeeded\"}",
        "leasewatch_task_retries_total{task=\"health_check\"}",
        "leasewatch_task_skips_total{task=\"auction_monitor\",reason=\"overlap\"}",
        "leasewatch_task_last_success_timestamp_seconds{task=\"health_check\"}",
    ] {
        assert!(
            scrape.text.contains(family),
            "{family} missing:\n{}",
            scrape.text
        );
    }
    // SQLite has no replay to lag: the family is absent rather than a made-up 0.
    assert!(
        !scrape.text.contains("leasewatch_target_replay_lag_seconds"),
        "{}",
        scrape.text
    );
    assert_promtool_accepts(&scrape.text);
}

/// `promtool check metrics` accepts `scrape` (skipped when promtool is not installed, unless
/// `CI=true`).
fn assert_promtool_accepts(scrape: &str) {
    let Ok(mut promtool) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing and CI=true"
        );
        eprintln!("skipping promtool: not installed");
        return;
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        scrape
    );
}

/// A replica nobody listens on: always out of rotation.
const UNREACHABLE_REPLICA: &str = "postgres://postgres@127.0.0.1:1/none";

/// With read replicas, `/metrics` served over HTTP measures every database under its own
/// `target`: the pool, lease and budget series once for each, and each one's rotation, replay
/// lag (once read) and bans. A second database on the test server stands in for a replica (it
/// answers the probe with lag 0, not being in recovery); a port nobody listens on is a replica
/// that is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_measure_every_database_under_its_target() {
    let Some(primary) = TestDatabase::create().await else {
        return;
    };
    let Some(replica) = TestDatabase::create().await else {
        return;
    };
    let config = EngineConfig {
        replicas: vec![
            DatabaseUrl::parse(replica.url()).unwrap(),
            DatabaseUrl::parse(UNREACHABLE_REPLICA).unwrap(),
        ],
        ..engine_config(DatabaseUrl::parse(primary.url()).unwrap())
    };
    let app = app_with(config, None, leptos_options()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(leasewatch::serve::serve(
        listener,
        app.router.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::new();
    let scrape = || async {
        let reply = client
            .get(format!("http://{addr}/metrics"))
            .bearer_auth(VIEWER)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), reqwest::StatusCode::OK);
        assert_eq!(
            reply.headers()[reqwest::header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        reply.text().await.unwrap()
    };
    // The first probe ran at start-up; the reachable replica's lag shows once it answered.
    let mut text = scrape().await;
    for _ in 0..50 {
        if text.contains("leasewatch_target_replay_lag_seconds{target=\"replica-1\"}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape().await;
    }
    let lines: BTreeSet<&str> = text.lines().collect();
    let has = |line: &str| {
        assert!(lines.contains(line), "no line {line:?} in:\n{text}");
    };
    for target in ["primary", "replica-1", "replica-2"] {
        has(&format!(
            "leasewatch_pool_max_connections{{target=\"{target}\"}} 4"
        ));
        for prefix in [
            format!("leasewatch_pool_connections{{target=\"{target}\",state=\"idle\"}} "),
            format!("leasewatch_pool_connections{{target=\"{target}\",state=\"active\"}} "),
            format!("leasewatch_pool_min_connections{{target=\"{target}\"}} "),
            format!("leasewatch_pool_pending_acquires{{target=\"{target}\"}} "),
            format!("leasewatch_leases_held{{target=\"{target}\"}} "),
            format!("leasewatch_leases_stale{{target=\"{target}\"}} "),
            format!("leasewatch_leases_issued_total{{target=\"{target}\"}} "),
            format!("leasewatch_acquire_timeouts_total{{target=\"{target}\"}} "),
            format!("leasewatch_budget_limit{{target=\"{target}\"}} "),
            format!(
                "leasewatch_acquire_duration_seconds_bucket{{target=\"{target}\",le=\"+Inf\"}} "
            ),
            format!("leasewatch_acquire_duration_seconds_count{{target=\"{target}\"}} "),
        ] {
            assert!(
                text.lines().any(|line| line.starts_with(&prefix)),
                "no {prefix:?} in:\n{text}"
            );
        }
    }
    has("leasewatch_target_in_rotation{target=\"primary\"} 1");
    has("leasewatch_target_in_rotation{target=\"replica-1\"} 1");
    has("leasewatch_target_in_rotation{target=\"replica-2\"} 0");
    has("leasewatch_target_replay_lag_seconds{target=\"replica-1\"} 0");
    assert!(
        !text.contains("leasewatch_target_replay_lag_seconds{target=\"replica-2\"}"),
        "an unreachable replica has no lag to show:\n{text}"
    );
    // It never was in rotation, so it was never taken out: no ban.
    for target in ["primary", "replica-1", "replica-2"] {
        has(&format!(
            "leasewatch_target_bans_total{{target=\"{target}\"}} 0"
        ));
    }
    // Each family once, its HELP and TYPE before its samples, whatever the number of targets.
    for family in [
        "leasewatch_pool_connections",
        "leasewatch_acquire_duration_seconds",
        "leasewatch_target_in_rotation",
    ] {
        assert_eq!(
            text.matches(&format!("# TYPE {family} ")).count(),
            1,
            "{family}"
        );
    }
    assert_promtool_accepts(&text);

    let _ = stop.send(());
    served.await.unwrap().unwrap();
    app.engine.shutdown().await;
}

/// A test notification, as an operator sends it: it reaches the webhook signed, says where it
/// went, is audited, and is counted in /metrics. A viewer is refused; with no receiver the
/// refusal says which variables to set. Both refusals are audited too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_notification_reaches_the_receiver_and_is_audited() {
    use leasewatch_engine::alert::{AlertSettings, Receiver, SigningKey};
    use leasewatch_types::ReceiverKind;

    let got = Arc::new(parking_lot::Mutex::new(Vec::<(
        axum::http::HeaderMap,
        String,
    )>::new()));
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let got = Arc::clone(&got);
            move |headers: axum::http::HeaderMap, body: String| async move {
                got.lock().push((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, hook).await });

    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::new("k".repeat(32));
    let config = EngineConfig {
        alerts: AlertSettings {
            receivers: vec![Receiver::new(
                ReceiverKind::Webhook,
                format!("http://127.0.0.1:{port}/hook").parse().unwrap(),
                1,
            )],
            signing_key: Some(key.clone()),
            instance: Some("api-test".into()),
            ..AlertSettings::default()
        },
        ..engine_config(DatabaseUrl::Sqlite(dir.path().join("api.db")))
    };
    let app = app_with(config, Some(dir), leptos_options()).await;

    let viewer = app
        .act(As::Bearer(VIEWER), json!({"action": "test_notification"}))
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN, "{}", viewer.text);
    let extra = app
        .act(
            As::Bearer(OPERATOR),
            json!({"action": "test_notification", "dry_run": true}),
        )
        .await;
    assert_eq!(error_code(&extra), "unexpected_dry_run");

    let sent = app
        .act(As::Bearer(OPERATOR), json!({"action": "test_notification"}))
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    let receiver = format!("webhook 127.0.0.1:{port}");
    assert!(
        sent.body["message"].as_str().unwrap().contains(&receiver),
        "{}",
        sent.text
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.lock().is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (headers, body) = got.lock()[0].clone();
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], "4");
    assert_eq!(
        json["alerts"][0]["labels"]["alertname"],
        "test_notification"
    );
    assert_eq!(json["alerts"][0]["labels"]["instance"], "api-test");
    let timestamp: i64 = headers["x-leasewatch-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        headers["x-leasewatch-signature"].to_str().unwrap(),
        key.sign(timestamp, body.as_bytes())
    );

    // The delivery shows in the status and in /metrics.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = app.status().await;
        let note = &status["alerts"]["notifications"][0];
        if note["status"] == "delivered" {
            assert_eq!(note["kind"], "test");
            assert_eq!(note["receiver"], receiver.as_str());
            assert_eq!(status["alerts"]["receivers"][0]["delivered"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scrape = app
        .send(Method::GET, "/metrics", As::Bearer(VIEWER), None)
        .await;
    let line = format!(
        "leasewatch_alert_notifications_total{{receiver=\"{receiver}\",outcome=\"delivered\"}} 1"
    );
    assert!(
        scrape.text.contains(&line),
        "{line} missing:\n{}",
        scrape.text
    );

    let audit = app
        .send(
            Method::GET,
            "/api/admin/audit?limit=10",
            As::Bearer(OPERATOR),
            None,
        )
        .await;
    let entries: Vec<(&str, &str, &str)> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["role"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("test_notification", "operator", "ok"),
            ("test_notification", "viewer", "refused"),
        ]
    );

    // Without a receiver: refused, naming the variables.
    let plain = sqlite_app().await;
    let none = plain
        .act(As::Bearer(OPERATOR), json!({"action": "test_notification"}))
        .await;
    assert_eq!(none.status, StatusCode::CONFLICT, "{}", none.text);
    assert_eq!(error_code(&none), "no_receivers");
    assert!(none.text.contains("ALERT_WEBHOOK_URL"), "{}", none.text);
}

/// Polling the status hard takes no database connection: the pool and the server's sessions
/// stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_the_status_never_takes_a_connection() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let app = app_on(DatabaseUrl::parse(db.url()).unwrap(), None).await;
    app.engine.tasks().stop(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sessions = || async {
        let pool = sqlx::AnyPool::connect(db.url()).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'leasewatch:%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        n
    };
    let before = (app.engine.leases().snapshot(), sessions().await);
    let polls: Vec<_> = (0..500)
        .map(|_| {
            let router = app.router.clone();
            tokio::spawn(async move {
                let request = Request::get(STATUS)
                    .header(header::AUTHORIZATION, format!("Bearer {VIEWER}"))
                    .body(Body::empty())
                    .unwrap();
                router.oneshot(request).await.unwrap().status()
            })
        })
        .collect();
    for poll in polls {
        assert_eq!(poll.await.unwrap(), StatusCode::OK);
    }
    let after = (app.engine.leases().snapshot(), sessions().await);
    assert_eq!(after.0.issued, before.0.issued, "no lease was taken");
    assert_eq!(after.0.total, before.0.total, "the pool did not grow");
    assert_eq!(after.1, before.1, "no new session on the server");
}

/// A declared task gets the built-in tasks' treatment with no special case: it is in the
/// status, run now, pause and resume take its name (an unknown name is still refused), and
/// `/metrics` counts its runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_task_is_listed_acted_on_and_measured_like_a_built_in_one() {
    use leasewatch_engine::{
        lease::RunLimits,
        tasks::{
            Schedule,
            declared::{DeclaredTask, DeclaredTasks, Statement},
        },
    };
    let dir = tempfile::tempdir().unwrap();
    let declared = DeclaredTasks::new(vec![DeclaredTask {
        name: "count_auctions".into(),
        schedule: Schedule::every(Duration::from_secs(3600)),
        statements: vec![Statement::parse("SELECT COUNT(*) AS auctions FROM auctions").unwrap()],
        limits: RunLimits::default(),
        retry: None,
        overlap: false,
        route: leasewatch_types::Route::Primary,
    }])
    .unwrap();
    let config = EngineConfig {
        declared,
        ..engine_config(DatabaseUrl::Sqlite(dir.path().join("declared.db")))
    };
    let app = app_with(config, Some(dir), leptos_options()).await;
    let op = As::Bearer(OPERATOR);

    let status = app.status().await;
    let names = task_names(&status);
    assert!(
        names.contains(&"count_auctions") && names.contains(&"health_check"),
        "{names:?}"
    );

    let reply = app
        .act(op, json!({"action": "run_now", "task": "count_auctions"}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let run_id = reply.body["details"]["run_id"].as_u64().unwrap();
    let record = tokio::time::timeout(
        Duration::from_secs(10),
        app.engine.tasks().wait_for("count_auctions", run_id),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        matches!(&record.outcome, leasewatch_engine::tasks::Outcome::Succeeded { detail, .. }
            if detail.starts_with("0 rows affected; statement 1 returned auctions=")),
        "{record:?}"
    );
    for action in ["pause", "resume"] {
        let reply = app
            .act(op, json!({"action": action, "task": "count_auctions"}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{action}: {}", reply.text);
    }
    let refused = app
        .act(op, json!({"action": "run_now", "task": "count_auction"}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert_eq!(error_code(&refused), "unknown_task");
    assert!(
        refused.text.contains("count_auctions"),
        "the known tasks are listed"
    );

    let scrape = app
        .send(Method::GET, "/metrics", As::Bearer(VIEWER), None)
        .await;
    assert!(
        scrape.text.contains(
            "leasewatch_task_runs_total{task=\"count_auctions\",outcome=\"succeeded\"} 1"
        ),
        "{}",
        scrape.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_cleanup_acts_on_one_database_or_on_all() {
    // A second database on the same server stands in for a replica (it answers the probe);
    // nobody listens on port 1.
    let (Some(primary), Some(replica)) =
        (TestDatabase::create().await, TestDatabase::create().await)
    else {
        return;
    };
    let config = EngineConfig {
        replicas: vec![
            DatabaseUrl::parse(replica.url()).unwrap(),
            DatabaseUrl::parse("postgres://postgres@127.0.0.1:1/none").unwrap(),
        ],
        ..engine_config(DatabaseUrl::parse(primary.url()).unwrap())
    };
    let app = app_with(config, None, leptos_options()).await;
    let op = As::Bearer(OPERATOR);

    let status = app.status().await;
    let rotation: Vec<(&str, bool)> = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["target"].as_str().unwrap(), t["in_rotation"] == true))
        .collect();
    assert_eq!(
        rotation,
        [("primary", true), ("replica-1", true), ("replica-2", false)]
    );
    assert_eq!(status["targets"][2]["out"]["kind"], "unreachable");
    assert!(
        !status.to_string().contains("postgres://"),
        "addresses only, never URLs with their user"
    );

    let one = app
        .act(
            op,
            json!({"action": "emergency_cleanup", "dry_run": true, "target": "replica-1"}),
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.body["details"]["targets"], json!(["replica-1"]));
    let all = app
        .act(op, json!({"action": "emergency_cleanup", "dry_run": true}))
        .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(
        all.body["details"]["targets"],
        json!(["primary", "replica-1", "replica-2"])
    );
    let notes: Vec<&str> = all.body["details"]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("replica-2: would revoke 0 leases")),
        "each database says what it would do: {notes:?}"
    );

    let done = app
        .act(
            op,
            json!({"action": "emergency_cleanup", "target": "replica-1"}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let audit = app
        .send(Method::GET, "/api/admin/audit?limit=1", op, None)
        .await;
    assert_eq!(
        audit.body[0]["arguments"],
        r#"{"dry_run":false,"target":"replica-1"}"#
    );

    for (body, code) in [
        (
            json!({"action": "emergency_cleanup", "dry_run": true, "target": "replica-9"}),
            "unknown_target",
        ),
        (
            json!({"action": "emergency_cleanup", "dry_run": true, "target": "Replica-1"}),
            "invalid_target",
        ),
        (
            json!({"action": "cleanup", "dry_run": true, "target": "primary"}),
            "unexpected_target",
        ),
    ] {
        let refused = app.act(op, body.clone()).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            refused.text
        );
        assert_eq!(error_code(&refused), code, "{body}");
    }
    let unknown = app
        .act(
            op,
            json!({"action": "emergency_cleanup", "dry_run": true, "target": "replica-9"}),
        )
        .await;
    assert!(
        unknown
            .text
            .contains("there is no target replica-9: configured are primary, replica-1, replica-2"),
        "{}",
        unknown.text
    );
    app.engine.shutdown().await;
}
