//! `/healthz` and `/readyz`, for orchestrators: public, and never queued behind control work.

use std::sync::Arc;

use aide::transform::TransformOperation;
use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use leasewatch_engine::Engine;
use serde_json::json;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

pub fn healthz_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.summary("The process is up")
        .response_with::<200, String, _>(|r| r.description("ok"))
}

/// The database answers within 1 s. Asked over a one-connection pool of its own (a probe
/// flood cannot delay control work), at most once a second (probes in between share the last
/// answer); the reason is generic, the driver's error goes to the log.
pub async fn readyz(State(engine): State<Arc<Engine>>) -> Response {
    match engine.database().readiness().await {
        Ok(()) => (StatusCode::OK, Json(json!({"ready": true}))).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": reason.to_string()})),
        )
            .into_response(),
    }
}

pub fn readyz_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.summary(
        "The database answers within 1 s (asked at most once a second; probes in between share \
         the answer)",
    )
    .response_with::<200, Json<serde_json::Value>, _>(|r| {
        r.description("Ready: `{\"ready\": true}`")
    })
    .response_with::<503, Json<serde_json::Value>, _>(|r| {
        r.description(
            "Not ready: `{\"ready\": false, \"reason\"}`, the reason `database unreachable` or \
             `database did not answer within 1 s`",
        )
    })
}
