//! The JSON admin API (seed-compatible), health probes and the audit log.
//!
//! `GET /api/admin/background-jobs/status` returns the whole state; `POST` to the same path
//! with `{"action": ...}` acts. Bad input gets a 4xx `{"error": {"code", "message"}}` naming
//! the problem and changes nothing. Every control action is written to the audit log before
//! the response leaves.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{ConnectInfo, DefaultBodyLimit, Query, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Utc};
use leasewatch_engine::{
    CleanupReport, Engine, LeaseInfo, PoolSnapshot, ServerView, TaskView,
    audit::{AuditEntry, NewEntry},
    engine::STOP_DEADLINE,
    recommend::Recommendation,
    tasks::{CommandError, StopReport},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{Caller, Role};

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;

/// A second emergency cleanup within this long of the last is refused (409).
pub const EMERGENCY_COOLDOWN: Duration = Duration::from_secs(10);

/// The status path (the seed's).
pub const STATUS_PATH: &str = "/api/admin/background-jobs/status";

/// What the API handlers reach.
#[derive(Clone)]
pub struct ApiState {
    /// The running engine.
    pub engine: Arc<Engine>,
    /// When the last emergency cleanup ran.
    pub last_emergency: Arc<Mutex<Option<Instant>>>,
}

/// An error as the API reports it: `{"error": {"code", "message"}}` with a 4xx or 5xx.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with this status, machine-readable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `unknown_action`, `forbidden`, `too_soon`, ...
    pub code: String,
    /// For people: names the problem and what is allowed.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The API's routes (auth is applied around the whole app).
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route(STATUS_PATH, get(status).post(act))
        .route("/api/admin/audit", get(audit))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/api/openapi.json", get(crate::openapi::serve))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The whole state, as scripts and monitoring read it.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusResponse {
    /// Whether the scheduler is running.
    pub scheduler: Scheduler,
    /// Every task's state and recent runs.
    pub tasks: Vec<TaskView>,
    /// The pool now.
    pub pool: PoolSnapshot,
    /// The leases held now.
    pub leases: Vec<LeaseInfo>,
    /// What the rules recommend, worst first.
    pub recommendations: Vec<Recommendation>,
    /// The server-wide view from the last health check.
    pub server: ServerView,
    /// Auction counts, as last read by a task.
    pub auctions: Auctions,
}

/// The scheduler's state.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Scheduler {
    /// Ticks start runs.
    pub running: bool,
}

/// Auction counts per status.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Auctions {
    /// When they were read.
    pub as_of: DateTime<Utc>,
    /// Count per status.
    pub counts: serde_json::Map<String, Value>,
}

/// Builds the status from in-process state only: no database connection is taken.
pub fn status_of(engine: &Engine) -> StatusResponse {
    let auctions = engine.auctions();
    StatusResponse {
        scheduler: Scheduler {
            running: engine.tasks().is_running(),
        },
        tasks: engine.tasks().tasks(),
        pool: engine.leases().snapshot(),
        leases: engine.leases().leases(),
        recommendations: engine.recommendations(),
        server: engine.leases().server_view(),
        auctions: Auctions {
            as_of: auctions.as_of,
            counts: auctions
                .counts
                .0
                .iter()
                .map(|(status, n)| (status.as_str().to_owned(), json!(n)))
                .collect(),
        },
    }
}

async fn status(State(state): State<ApiState>) -> Json<StatusResponse> {
    Json(status_of(&state.engine))
}

/// A control request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// start, stop, cleanup, emergency_cleanup, run_now, pause or resume.
    pub action: String,
    /// For run_now, pause and resume: status_transitions, auction_monitor or health_check.
    #[serde(default)]
    pub task: Option<String>,
    /// For cleanup and emergency_cleanup: report what would be done, do nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

const ACTIONS: &str = "start, stop, cleanup, emergency_cleanup, run_now, pause, resume";

/// What a control action did.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ActionResponse {
    /// The action.
    pub action: String,
    /// What happened, in a line.
    pub message: String,
    /// A `CleanupReport` (cleanup, emergency_cleanup), a `StopReport` (stop), `{"run_id"}`
    /// (run_now), or null.
    pub details: Value,
    /// The state after the action.
    pub status: StatusResponse,
}

async fn act(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ActionResponse>, ApiError> {
    let request = parse_action(&headers, body)?;
    let client = connect.map_or_else(|| "unknown".to_owned(), |c| c.0.0.to_string());
    let arguments = json!({"task": request.task, "dry_run": request.dry_run}).to_string();
    let audit = |outcome: &str, result: String| NewEntry {
        role: caller.role.as_str().to_owned(),
        action: request.action.clone(),
        arguments: arguments.clone(),
        outcome: outcome.to_owned(),
        result,
        client: client.clone(),
    };
    if caller.role != Role::Operator {
        let err = ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the viewer role can read but not act; use the operator token",
        );
        record(&state.engine, audit("refused", err.message.clone())).await?;
        return Err(err);
    }
    match perform(&state, &request).await {
        Ok((message, details)) => {
            record(&state.engine, audit("ok", message.clone())).await?;
            tracing::info!(action = %request.action, %message, "control action");
            Ok(Json(ActionResponse {
                action: request.action,
                message,
                details,
                status: status_of(&state.engine),
            }))
        }
        Err(err) => {
            record(&state.engine, audit("refused", err.message.clone())).await?;
            Err(err)
        }
    }
}

/// Validates the request before anything happens.
fn parse_action(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<ActionRequest, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {MAX_BODY} bytes ({rejection})"),
        )
    })?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|err| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {err}"))
    })?;
    match value.get("action") {
        None => {
            return Err(ApiError::bad_request(
                "missing_action",
                format!("the body needs \"action\": one of {ACTIONS}"),
            ));
        }
        Some(Value::String(action)) if !ACTIONS.split(", ").any(|a| a == action) => {
            return Err(ApiError::bad_request(
                "unknown_action",
                format!("unknown action {action:?}: allowed are {ACTIONS}"),
            ));
        }
        _ => {}
    }
    let request: ActionRequest = serde_json::from_value(value).map_err(|err| {
        ApiError::bad_request(
            "invalid_request",
            format!("the request does not fit: {err}"),
        )
    })?;
    let needs_task = matches!(request.action.as_str(), "run_now" | "pause" | "resume");
    if needs_task && request.task.is_none() {
        return Err(ApiError::bad_request(
            "missing_task",
            format!(
                "{} needs \"task\": status_transitions, auction_monitor or health_check",
                request.action
            ),
        ));
    }
    if !needs_task && request.task.is_some() {
        return Err(ApiError::bad_request(
            "unexpected_task",
            format!("{} takes no \"task\"", request.action),
        ));
    }
    let takes_dry_run = matches!(request.action.as_str(), "cleanup" | "emergency_cleanup");
    if !takes_dry_run && request.dry_run.is_some() {
        return Err(ApiError::bad_request(
            "unexpected_dry_run",
            format!("{} takes no \"dry_run\"", request.action),
        ));
    }
    Ok(request)
}

async fn perform(state: &ApiState, request: &ActionRequest) -> Result<(String, Value), ApiError> {
    let engine = &state.engine;
    let tasks = engine.tasks();
    let dry_run = request.dry_run.unwrap_or(false);
    let task = request.task.as_deref().unwrap_or_default();
    let command_error = |err: CommandError| match err {
        CommandError::UnknownTask(_) => ApiError::bad_request("unknown_task", err.to_string()),
        CommandError::AlreadyRunning(..) => {
            ApiError::new(StatusCode::CONFLICT, "already_running", err.to_string())
        }
    };
    Ok(match request.action.as_str() {
        "start" => {
            let message = if tasks.start() {
                "scheduler started"
            } else {
                "scheduler was already running"
            };
            (message.to_owned(), Value::Null)
        }
        "stop" => {
            let report: StopReport = tasks.stop(STOP_DEADLINE).await;
            let message = format!(
                "scheduler stopped: {} run(s) finished, {} cancelled at the deadline",
                report.finished.len(),
                report.cancelled.len()
            );
            (message, json!(report))
        }
        "cleanup" => {
            let report = engine.leases().cleanup(dry_run).await;
            (report.summary(), json!(report))
        }
        "emergency_cleanup" => {
            if !dry_run {
                let mut last = state
                    .last_emergency
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if let Some(at) = *last
                    && at.elapsed() < EMERGENCY_COOLDOWN
                {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "too_soon",
                        format!(
                            "an emergency cleanup ran {:.1} s ago; wait {} s between them",
                            at.elapsed().as_secs_f64(),
                            EMERGENCY_COOLDOWN.as_secs()
                        ),
                    ));
                }
                *last = Some(Instant::now());
            }
            let report: CleanupReport = engine.emergency_cleanup(dry_run).await;
            (report.summary(), json!(report))
        }
        "run_now" => {
            let run_id = tasks.run_now(task).map_err(command_error)?;
            (
                format!("{task} run {run_id} started"),
                json!({"run_id": run_id}),
            )
        }
        "pause" => {
            tasks.pause(task).map_err(command_error)?;
            (format!("{task} paused"), Value::Null)
        }
        "resume" => {
            tasks.resume(task).map_err(command_error)?;
            (format!("{task} resumed"), Value::Null)
        }
        other => unreachable!("parse_action admits only known actions, not {other}"),
    })
}

async fn record(engine: &Engine, entry: NewEntry) -> Result<AuditEntry, ApiError> {
    engine
        .audit()
        .record(engine.database(), entry)
        .await
        .map_err(|err| {
            tracing::error!(%err, "audit write failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit_failed",
                format!("the audit log could not be written: {err}"),
            )
        })
}

/// `?limit=` for the audit log.
#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(state): State<ApiState>,
    Query(query): Query<AuditQuery>,
) -> Json<Vec<AuditEntry>> {
    Json(state.engine.audit().recent(query.limit.unwrap_or(50)))
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The database answers within 1 s, asked over the control pool so probes never take a
/// connection from the tasks.
async fn readyz(State(state): State<ApiState>) -> Response {
    let control = state.engine.database().control().clone();
    let probe = tokio::time::timeout(Duration::from_secs(1), async move {
        let mut conn = control.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await.map(drop)
    })
    .await;
    match probe {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"ready": true}))).into_response(),
        Ok(Err(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": err.to_string()})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "the database did not answer within 1 s"})),
        )
            .into_response(),
    }
}
