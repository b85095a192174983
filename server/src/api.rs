//! The JSON admin API (seed-compatible), health probes and the audit log.
//!
//! `GET /api/admin/background-jobs/status` returns the whole state; `POST` to the same path
//! with `{"action": ...}` acts. Bad input gets a 4xx `{"error": {"code", "message"}}` naming
//! the problem and changes nothing. Every control action is written to the audit log before
//! the response leaves.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{
        ConnectInfo, DefaultBodyLimit, Query, State,
        rejection::{BytesRejection, QueryRejection},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Utc};
use leasewatch_engine::{
    Engine, LeaseInfo, PoolSnapshot, ServerView, TaskView,
    audit::{DEFAULT_PAGE, MAX_PAGE},
    control::{ACTIONS, Action, ControlError},
    recommend::Recommendation,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Caller;

/// Largest request body accepted, on every route.
pub const MAX_BODY: usize = 16 * 1024;

/// The status path (the seed's).
pub const STATUS_PATH: &str = "/api/admin/background-jobs/status";

/// What the API handlers reach.
#[derive(Clone)]
pub struct ApiState {
    /// The running engine.
    pub engine: Arc<Engine>,
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
    let request = parse_body(&headers, body)?;
    let action =
        Action::parse(&request.action, request.task, request.dry_run).map_err(ApiError::from)?;
    let client = connect.map_or_else(|| "unknown".to_owned(), |c| c.0.0.to_string());
    let done = state.engine.perform(&action, caller.role, &client).await?;
    Ok(Json(ActionResponse {
        action: action.name().to_owned(),
        message: done.message,
        details: done.details,
        status: status_of(&state.engine),
    }))
}

impl From<ControlError> for ApiError {
    fn from(err: ControlError) -> Self {
        let message = err.to_string();
        match err {
            ControlError::Invalid { code, .. } => Self::bad_request(code, message),
            ControlError::Forbidden => Self::new(StatusCode::FORBIDDEN, "forbidden", message),
            ControlError::Conflict { code, .. } => Self::new(StatusCode::CONFLICT, code, message),
        }
    }
}

/// Checks size, content type and JSON shape before anything happens.
fn parse_body(
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
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
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
    if value.get("action").is_none() {
        return Err(ApiError::bad_request(
            "missing_action",
            format!("the body needs \"action\": one of {}", ACTIONS.join(", ")),
        ));
    }
    serde_json::from_value(value).map_err(|err| {
        ApiError::bad_request(
            "invalid_request",
            format!("the request does not fit: {err}"),
        )
    })
}

/// `GET /api/admin/audit`'s query: `?limit=` (1 to 500, default 50) entries with ids below
/// `?before=` (the cursor the previous page gave; omitted for the newest page).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AuditQuery {
    /// Entries per page, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// Only entries with an id below this: the `before` of the previous page's `next` link.
    pub before: Option<i64>,
}

/// One page of the audit log, newest first, as a JSON array of entries (the shape this
/// endpoint has always had). When older entries remain, the response carries a
/// `Link: <...?limit=N&before=ID>; rel="next"` header (RFC 8288) and `X-Next-Before: ID`.
async fn audit(
    State(state): State<ApiState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::bad_request(
            "invalid_query",
            format!(
                "{}; allowed: limit (1 to {MAX_PAGE}) and before (an entry id)",
                rejection.body_text()
            ),
        )
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be from 1 to {MAX_PAGE}; got {limit}"),
        ));
    }
    if query.before.is_some_and(|before| before < 1) {
        return Err(ApiError::bad_request(
            "invalid_before",
            "before must be an entry id (1 or more)",
        ));
    }
    let engine = &state.engine;
    let page = engine
        .audit()
        .page(engine.database(), query.before, limit)
        .await
        .map_err(|err| {
            tracing::warn!(%err, "cannot read the audit log");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the audit log cannot be read now: the database is unreachable or busy",
            )
        })?;
    let mut response = Json(page.entries).into_response();
    if let Some(next) = page.next_before {
        let headers = response.headers_mut();
        let link = format!("</api/admin/audit?limit={limit}&before={next}>; rel=\"next\"");
        if let Ok(link) = header::HeaderValue::from_str(&link) {
            headers.insert(header::LINK, link);
        }
        headers.insert(NEXT_BEFORE, header::HeaderValue::from(next));
    }
    Ok(response)
}

/// The header that carries the next page's cursor, for scripts that would rather not parse
/// `Link`.
pub const NEXT_BEFORE: &str = "x-next-before";

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The database answers within 1 s. Asked over a one-connection pool of its own (a probe
/// flood cannot delay control work), at most once a second (probes in between share the last
/// answer); the reason is generic, the driver's error goes to the log.
async fn readyz(State(state): State<ApiState>) -> Response {
    match state.engine.database().readiness().await {
        Ok(()) => (StatusCode::OK, Json(json!({"ready": true}))).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": reason.to_string()})),
        )
            .into_response(),
    }
}
