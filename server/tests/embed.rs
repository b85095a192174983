//! Leasewatch embedded in a host app's router: a Rust job of the host's own through the
//! lease manager, and the dashboard, API and login under `/admin/leasewatch` with the same
//! layers as at the root, none of them on the host's own routes. In-process, on SQLite.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    http::{Method, Request, StatusCode, header},
    routing::get,
};
use leasewatch::{
    auth::Secret,
    embed::{self, EmbedError, EmbedOptions},
};
use leasewatch_engine::{
    BuildError, DatabaseUrl, Engine, EngineConfig, JobError,
    tasks::{Job, JobContext, JobFuture, JobOutput, Outcome, TaskError},
};
use tower::ServiceExt;

mod support;
use support::{leptos_options, task_names};

const OPERATOR: &str = "operator-token-0123456789";
const PREFIX: &str = "/admin/leasewatch";
const JOB: &str = "probe";

/// `SELECT 1` over one lease.
struct Probe;

impl Job for Probe {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let mut lease = ctx.leases.acquire(&ctx.run).await?;
            let one: i64 = lease
                .run(|conn| {
                    Box::pin(async move {
                        Ok::<_, TaskError>(sqlx::query_scalar("SELECT 1").fetch_one(conn).await?)
                    })
                })
                .await?;
            Ok(JobOutput::done(0, format!("selected {one}")))
        })
    }
}

fn config(dir: &tempfile::TempDir) -> EngineConfig {
    EngineConfig::new(DatabaseUrl::Sqlite(dir.path().join("embed.db")))
}

async fn host_app(dir: &tempfile::TempDir) -> (Router, Arc<Engine>) {
    let engine = Arc::new(
        Engine::builder(config(dir))
            .job(JOB, Duration::from_secs(3600), Probe)
            .start()
            .await
            .unwrap(),
    );
    let options = EmbedOptions::new(PREFIX, Secret::new(OPERATOR), leptos_options());
    let app = Router::new()
        .route("/", get(|| async { "my app" }))
        .merge(embed::router(Arc::clone(&engine), options).await.unwrap());
    (app, engine)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, header::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn get_from(path: &str, host: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, host)
        .body(Body::empty())
        .unwrap()
}

fn bearer(method: Method, path: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::AUTHORIZATION, format!("Bearer {OPERATOR}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn the_host_job_runs_through_a_lease_and_shows_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (app, engine) = host_app(&dir).await;
    let status = format!("{PREFIX}/api/admin/background-jobs/status");

    let (code, _, _) = send(&app, get_from(&status, "127.0.0.1:3000")).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _, body) = send(&app, bearer(Method::GET, &status, "")).await;
    assert_eq!(code, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names = task_names(&body);
    assert!(
        names.contains(&JOB) && names.contains(&"health_check"),
        "{names:?}"
    );

    let act = format!(r#"{{"action": "run_now", "task": "{JOB}"}}"#);
    let (code, _, body) = send(&app, bearer(Method::POST, &status, &act)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let last = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let task = engine.tasks().tasks().into_iter().find(|t| t.name == JOB);
            if let Some(last) = task.and_then(|t| t.last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the run finishes");
    assert_eq!(
        last.outcome,
        Outcome::Succeeded {
            rows: 0,
            detail: "selected 1".to_owned()
        }
    );
    assert_eq!(last.leases, 1, "it held one lease");

    let (code, _, metrics) =
        send(&app, bearer(Method::GET, &format!("{PREFIX}/metrics"), "")).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        metrics.contains(&format!(
            r#"leasewatch_task_runs_total{{task="{JOB}",outcome="succeeded"}} 1"#
        )),
        "{metrics}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn pages_login_and_cookies_live_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (app, engine) = host_app(&dir).await;
    let local = "127.0.0.1:3000";

    // The mount point goes to the dashboard's one address; without a session, to the login.
    let (code, headers, _) = send(&app, get_from(&format!("{PREFIX}?range=1h"), local)).await;
    assert_eq!(code, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/admin/leasewatch/?range=1h");
    let (code, headers, _) = send(&app, get_from(&format!("{PREFIX}/audit"), local)).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/admin/leasewatch/login?next=%2Fadmin%2Fleasewatch%2Faudit"
    );
    let (code, _, login) = send(&app, get_from(&format!("{PREFIX}/login"), local)).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        login.contains(r#"action="/admin/leasewatch/login""#),
        "{login}"
    );
    assert!(
        login.contains(r#"href="/admin/leasewatch/favicon.svg""#),
        "{login}"
    );

    let submit = |next: &str| {
        Request::post(format!("{PREFIX}/login"))
            .header(header::HOST, local)
            .header(header::ORIGIN, format!("http://{local}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={OPERATOR}&next={next}")))
            .unwrap()
    };
    let (code, headers, _) = send(&app, submit("%2F")).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/admin/leasewatch/",
        "not under the prefix: refused"
    );
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("Path=/admin/leasewatch;"), "{cookie}");
    let (_, headers, _) = send(&app, submit("%2Fadmin%2Fleasewatch%2Faudit")).await;
    assert_eq!(headers[header::LOCATION], "/admin/leasewatch/audit");

    let session = cookie.split(';').next().unwrap().to_owned();
    let page = |path: &str| {
        Request::get(path)
            .header(header::HOST, local)
            .header(header::COOKIE, session.clone())
            .body(Body::empty())
            .unwrap()
    };
    let (code, headers, html) = send(&app, page(&format!("{PREFIX}/"))).await;
    assert_eq!(code, StatusCode::OK);
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    for written in [
        r#"<meta name="leasewatch-base" content="/admin/leasewatch">"#,
        r#"href="/admin/leasewatch/runs""#,
        r#"action="/admin/leasewatch/logout""#,
        r#"href="/admin/leasewatch/pkg/leasewatch.css""#,
        r#"href="/admin/leasewatch/runs?task=probe""#,
    ] {
        assert!(html.contains(written), "{written} in {html}");
    }
    let (code, _, runs) = send(&app, page(&format!("{PREFIX}/runs?task=probe&outcome="))).await;
    assert_eq!(code, StatusCode::SEE_OTHER, "{runs}");
    let (code, _, runs) = send(&app, page(&format!("{PREFIX}/runs?task=probe"))).await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        runs.contains(r#"action="/admin/leasewatch/runs""#),
        "{runs}"
    );

    let logout = Request::post(format!("{PREFIX}/logout"))
        .header(header::HOST, local)
        .header(header::ORIGIN, format!("http://{local}"))
        .header(header::COOKIE, session.clone())
        .body(Body::empty())
        .unwrap();
    let (code, headers, _) = send(&app, logout).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/admin/leasewatch/login");
    let cleared = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Path=/admin/leasewatch;"), "{cleared}");
    engine.shutdown().await;
}

#[tokio::test]
async fn the_edge_guards_the_prefix_only() {
    let dir = tempfile::tempdir().unwrap();
    let (app, engine) = host_app(&dir).await;

    // Another Host: refused under the prefix (no DNS rebinding), the host's own route answers.
    let (code, _, _) = send(&app, get_from(&format!("{PREFIX}/login"), "evil.example")).await;
    assert_eq!(code, StatusCode::MISDIRECTED_REQUEST);
    let (code, headers, body) = send(&app, get_from("/", "evil.example")).await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "my app"));
    assert!(!headers.contains_key(header::CONTENT_SECURITY_POLICY));

    // The body limit.
    let big = "x".repeat(17 * 1024);
    let (code, _, _) = send(
        &app,
        bearer(
            Method::POST,
            &format!("{PREFIX}/api/admin/background-jobs/status"),
            &big,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_job_or_a_prefix_that_cannot_work_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    for (name, every, refused) in [
        (
            "health_check",
            60,
            JobError::Reserved {
                name: "health_check".to_owned(),
            },
        ),
        (
            "Probe",
            60,
            JobError::InvalidName {
                name: "Probe".to_owned(),
            },
        ),
        (
            "probe",
            0,
            JobError::ZeroInterval {
                name: "probe".to_owned(),
            },
        ),
    ] {
        let started = Engine::builder(config(&dir))
            .job(name, Duration::from_secs(every), Probe)
            .start()
            .await;
        match started {
            Err(BuildError::Job(err)) => assert_eq!(err, refused),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("{name} started"),
        }
    }
    let twice = Engine::builder(config(&dir))
        .job(JOB, Duration::from_secs(60), Probe)
        .job(JOB, Duration::from_secs(120), Probe)
        .start()
        .await;
    assert!(matches!(
        twice,
        Err(BuildError::Job(JobError::Duplicate { .. }))
    ));

    let engine = Arc::new(Engine::start(config(&dir)).await.unwrap());
    for prefix in ["admin", "/admin/", "/{x}"] {
        let options = EmbedOptions::new(prefix, Secret::new(OPERATOR), leptos_options());
        let refused = embed::router::<()>(Arc::clone(&engine), options).await;
        assert!(matches!(refused, Err(EmbedError::Prefix(_))), "{prefix}");
    }
    engine.shutdown().await;
}
