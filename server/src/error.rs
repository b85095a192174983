//! The one error shape every JSON answer uses: `{"error": {"code", "message"}}` with a 4xx or
//! 5xx. The bottom of the crate: it imports nothing from it.

use aide::{
    OperationOutput,
    generate::GenContext,
    openapi::{Operation, Response as DocResponse},
};
use axum::{
    Json,
    extract::rejection::{JsonRejection, QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use std::borrow::Cow;

use leasewatch_engine::{control::ControlError, query::InvalidQuery};
use serde::{Deserialize, Serialize};

/// An error as a client sees it. The code is stable (scripts match on it); the message says
/// what was wrong and what is allowed.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 503: the database cannot answer `what` now.
    pub fn database_unavailable(what: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            format!("{what} cannot be read now: the database is unreachable or busy"),
        )
    }
}

/// A search refused: `invalid_<field>`, and the message names the value and what is allowed.
impl From<InvalidQuery> for ApiError {
    fn from(err: InvalidQuery) -> Self {
        Self::bad_request(format!("invalid_{}", err.field), err.to_string())
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
                code: self.code.into_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// In the OpenAPI document an `ApiError` is an [`ErrorBody`]; each route lists the statuses
/// it can answer with.
impl OperationOutput for ApiError {
    type Inner = ErrorBody;

    fn operation_response(ctx: &mut GenContext, operation: &mut Operation) -> Option<DocResponse> {
        Json::<ErrorBody>::operation_response(ctx, operation)
    }
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

/// A JSON body that could not be read: the seed-compatible codes, 400 for anything wrong
/// with the JSON itself (axum's default for a body that does not fit is 422).
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(err) => Self::bad_request(
                "invalid_json",
                format!("the body is not valid JSON: {}", innermost(&err)),
            ),
            JsonRejection::JsonDataError(err) => Self::bad_request(
                "invalid_request",
                format!("the request does not fit: {}", innermost(&err)),
            ),
            other => Self::new(other.status(), "body_unreadable", other.body_text()),
        }
    }
}

/// A query string that does not parse; `allowed` says what it may hold.
pub fn invalid_query(rejection: &QueryRejection, allowed: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_query",
        format!("{}; allowed: {allowed}", rejection.body_text()),
    )
}

/// The deepest cause's message: serde's own words (`invalid type: ...`, `unknown field ...`),
/// without axum's prefix.
fn innermost(err: &dyn std::error::Error) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
