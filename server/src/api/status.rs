//! `GET` and `POST /api/admin/background-jobs/status`: the whole state, and control actions.
//! Every action is written to the audit log before its response leaves.

use std::{net::SocketAddr, sync::Arc};

use aide::transform::TransformOperation;
use axum::{
    Extension, Json,
    extract::{ConnectInfo, State},
};
use leasewatch_engine::{
    Engine,
    control::{Action, ActionName, Role},
};

use crate::{
    dto::{ActionRequest, ActionResponse, StatusResponse},
    error::ApiError,
    openapi::authenticated,
};

pub async fn get(State(engine): State<Arc<Engine>>) -> Json<StatusResponse> {
    Json(StatusResponse::of(&engine))
}

pub fn get_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    authenticated(op)
        .summary("The whole state: scheduler, tasks, pool, leases, recommendations, server view")
}

/// The body is checked (content type, JSON, shape) by [`ActionRequest`]'s extractor, the
/// action by the engine, before anything happens.
pub async fn act(
    State(engine): State<Arc<Engine>>,
    Extension(role): Extension<Role>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: ActionRequest,
) -> Result<Json<ActionResponse>, ApiError> {
    let Some(name) = request.action else {
        return Err(ApiError::bad_request(
            "missing_action",
            format!("the body needs \"action\": one of {}", ActionName::names()),
        ));
    };
    let action = Action::parse(&name, request.task, request.dry_run, request.target)?;
    let client = connect.map_or_else(|| "unknown".to_owned(), |c| c.0.0.to_string());
    let done = engine.perform(&action, role, &client).await?;
    Ok(Json(ActionResponse {
        action: action.name(),
        message: done.message,
        details: done.details,
        status: StatusResponse::of(&engine),
    }))
}

pub fn act_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    authenticated(op)
        .summary(
            "A control action: start, stop, cleanup, emergency_cleanup, run_now, pause, resume",
        )
        .response_with::<400, ApiError, _>(|r| {
            r.description("Malformed or unknown action, task or field")
        })
        .response_with::<403, ApiError, _>(|r| {
            r.description("A viewer, or a cross-site request with a session cookie")
        })
        .response_with::<409, ApiError, _>(|r| {
            r.description(
                "The task is running already, or an emergency cleanup ran less than 10 s ago",
            )
        })
        .response_with::<413, ApiError, _>(|r| r.description("Body over 16 KiB"))
        .response_with::<415, ApiError, _>(|r| r.description("Body not application/json"))
}
