//! `GET /api/admin/audit`: control actions from the database, newest first, a page at a time.

use std::sync::Arc;

use aide::{
    openapi::{Header, ParameterSchemaOrContent, ReferenceOr, SchemaObject},
    transform::TransformOperation,
};
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use leasewatch_engine::{
    Engine,
    audit::{AuditEntry, AuditSearch, MAX_PAGE},
};
use leasewatch_types::AuditQuery;
use schemars::{Schema, json_schema};

use super::AUDIT_PATH;
use crate::{
    error::{ApiError, invalid_query},
    openapi::authenticated,
};

/// The header that carries the next page's cursor, for scripts that would rather not parse
/// `Link`.
pub const NEXT_BEFORE: &str = "x-next-before";

/// One page as a JSON array of entries (the shape this endpoint has always had), filtered by
/// action, actor, outcome and time. When older entries remain, the response carries
/// `Link: <...?…&before=ID>; rel="next"` (RFC 8288, the same filters) and `X-Next-Before: ID`.
pub async fn get(
    State(engine): State<Arc<Engine>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        invalid_query(
            &rejection,
            &format!(
                "action, actor, outcome, from and to (RFC 3339), limit (1 to {MAX_PAGE}) and \
                 before (an entry id)"
            ),
        )
    })?;
    let search = AuditSearch::parse(&query)?;
    let page = engine
        .audit()
        .page(engine.database(), &search)
        .await
        .map_err(|err| {
            tracing::warn!(%err, "cannot read the audit log");
            ApiError::database_unavailable("the audit log")
        })?;
    let mut response = Json(page.entries).into_response();
    if let Some(next) = page.next_before {
        let next_query = AuditQuery {
            before: Some(next),
            limit: Some(search.limit),
            ..query
        };
        let link = format!(
            "<{AUDIT_PATH}?{}>; rel=\"next\"",
            next_query.to_query_string()
        );
        let headers = response.headers_mut();
        if let Ok(link) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, link);
        }
        headers.insert(NEXT_BEFORE, HeaderValue::from(next));
    }
    Ok(response)
}

pub fn get_docs(op: TransformOperation<'_>) -> TransformOperation<'_> {
    authenticated(op)
        .summary("Control actions from the database, newest first, a page at a time")
        .description(
            "Filtered by `action`, `actor` (operator, viewer, system), `outcome` (ok, refused, \
             error), `from` and `to` (RFC 3339). Identical refusals (same role, client address \
             and action within a minute) are one entry with `count` > 1 and `last_at`. When older entries remain, the response has \
             a `Link` header with `rel=\"next\"` and an `X-Next-Before` header: pass that id as \
             `before` for the next page.",
        )
        .response_with::<200, Json<Vec<AuditEntry>>, _>(|mut r| {
            let headers = &mut r.inner().headers;
            headers.insert(
                "Link".into(),
                header_doc(
                    json_schema!({"type": "string"}),
                    "`<...?limit=N&before=ID>; rel=\"next\"` when older entries remain",
                ),
            );
            headers.insert(
                "X-Next-Before".into(),
                header_doc(
                    json_schema!({"type": "integer", "format": "int64"}),
                    "The `before` of the next page, when older entries remain",
                ),
            );
            r.description("Audit entries, newest first")
        })
        .response_with::<400, ApiError, _>(|r| {
            r.description(
                "A filter that is not allowed (`invalid_<field>`: the message names the value \
                 and what is allowed)",
            )
        })
        .response_with::<503, ApiError, _>(|r| r.description("The database cannot be read now"))
}

fn header_doc(json_schema: Schema, description: &str) -> ReferenceOr<Header> {
    ReferenceOr::Item(Header {
        description: Some(description.to_owned()),
        style: Default::default(),
        required: false,
        deprecated: None,
        format: ParameterSchemaOrContent::Schema(SchemaObject {
            json_schema,
            external_docs: None,
            example: None,
        }),
        example: None,
        examples: Default::default(),
        extensions: Default::default(),
    })
}
