//! The OpenAPI document served at `/api/openapi.json`. Its paths and operations come from the
//! routes ([`crate::routes`] mounts each API handler with its description), its schemas from
//! the types the handlers exchange; this module adds what belongs to the whole document: the
//! title, the security schemes, and the schemas of an action's `details`.

use std::sync::Arc;

use aide::{
    generate::in_context,
    openapi::{ApiKeyLocation, OpenApi, SecurityScheme},
    transform::{TransformOpenApi, TransformOperation},
};
use axum::{
    Extension, Json,
    http::header,
    response::{IntoResponse, Response},
};
use leasewatch_engine::{CleanupReport, tasks::StopReport};

use crate::{auth::SESSION_COOKIE, error::ApiError};

/// Names of the security schemes.
const BEARER: &str = "bearer";
const SESSION: &str = "session";

/// An operation that needs a token: a bearer token or the session cookie; without one it
/// gets 401, and a client locked out for wrong tokens gets 429.
pub fn authenticated(op: TransformOperation<'_>) -> TransformOperation<'_> {
    op.security_requirement(BEARER)
        .security_requirement(SESSION)
        .response_with::<401, ApiError, _>(|r| r.description("No credentials"))
        .response_with::<429, ApiError, _>(|r| {
            r.description("Too many wrong tokens from this address: locked out for a while")
        })
}

/// The finished document, serialized once when the router is built.
#[derive(Clone)]
pub struct Document(pub Arc<str>);

impl Document {
    pub fn new(api: &OpenApi) -> Self {
        Self(
            serde_json::to_string(api)
                .expect("an OpenAPI document is plain data")
                .into(),
        )
    }
}

pub async fn serve(Extension(Document(text)): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        text.to_string(),
    )
        .into_response()
}

pub fn serve_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    authenticated(op)
        .summary("This document")
        .response_with::<200, Json<serde_json::Value>, _>(|r| r.description("The OpenAPI document"))
}

/// The document's own parts, applied when the router is finished.
pub fn describe(api: TransformOpenApi<'_>) -> TransformOpenApi<'_> {
    // What an action's `details` holds: a cleanup report (cleanups), a stop report (stop).
    in_context(|ctx| {
        ctx.schema.subschema_for::<CleanupReport>();
        ctx.schema.subschema_for::<StopReport>();
    });
    api.title("Leasewatch admin API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(
            "Background tasks, the connection leases they hold, and controls. Authenticate \
             with `Authorization: Bearer <token>` (operator or viewer token) or the session \
             cookie set by /login. Every error is `{\"error\": {\"code\", \"message\"}}` \
             (`ErrorBody`).",
        )
        .security_scheme(
            BEARER,
            SecurityScheme::Http {
                scheme: "bearer".to_owned(),
                bearer_format: None,
                description: Some("The operator or viewer token".to_owned()),
                extensions: Default::default(),
            },
        )
        .security_scheme(
            SESSION,
            SecurityScheme::ApiKey {
                location: ApiKeyLocation::Cookie,
                name: SESSION_COOKIE.to_owned(),
                description: Some("The session cookie /login sets".to_owned()),
                extensions: Default::default(),
            },
        )
}
