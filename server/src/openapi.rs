//! The OpenAPI document served at `/api/openapi.json`, generated from the types the handlers
//! exchange (their JSON schemas come from the same structs serde uses).

use axum::Json;
use leasewatch_engine::{
    CleanupReport,
    audit::{AuditEntry, DEFAULT_PAGE, MAX_PAGE},
    tasks::StopReport,
};
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::api::{ActionRequest, ActionResponse, ErrorBody, STATUS_PATH, StatusResponse};

/// Serves the document.
pub async fn serve() -> Json<Value> {
    Json(document())
}

/// Builds the document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let status = generator.subschema_for::<StatusResponse>();
    let request = generator.subschema_for::<ActionRequest>();
    let response = generator.subschema_for::<ActionResponse>();
    let error = generator.subschema_for::<ErrorBody>();
    let audit = generator.subschema_for::<Vec<AuditEntry>>();
    // What an action's `details` holds: a cleanup report (cleanups), a stop report (stop).
    generator.subschema_for::<CleanupReport>();
    generator.subschema_for::<StopReport>();
    let schemas = generator.take_definitions(true);
    let errors = |codes: &[(&str, &str)]| -> Value {
        codes
            .iter()
            .map(|(code, what)| {
                (
                    (*code).to_owned(),
                    json!({"description": what, "content": {"application/json": {"schema": error}}}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let with = |mut ok: Value, more: Value| {
        if let (Some(ok), Some(more)) = (ok.as_object_mut(), more.as_object()) {
            ok.extend(more.clone());
        }
        ok
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Leasewatch admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Background tasks, the connection leases they hold, and controls. \
                Authenticate with `Authorization: Bearer <token>` (operator or viewer token) or \
                the session cookie set by /login."
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            STATUS_PATH: {
                "get": {
                    "summary": "The whole state: scheduler, tasks, pool, leases, recommendations, server view",
                    "responses": with(
                        json!({"200": {"description": "The state", "content": {"application/json": {"schema": status}}}}),
                        errors(&[("401", "No credentials")]),
                    )
                },
                "post": {
                    "summary": "A control action: start, stop, cleanup, emergency_cleanup, run_now, pause, resume",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": request}}},
                    "responses": with(
                        json!({"200": {"description": "What happened, and the state after", "content": {"application/json": {"schema": response}}}}),
                        errors(&[
                            ("400", "Malformed or unknown action, task or field"),
                            ("401", "No credentials"),
                            ("403", "A viewer, or a cross-site request with a session cookie"),
                            ("409", "The task is running already, or an emergency cleanup ran less than 10 s ago"),
                            ("413", "Body over 16 KiB"),
                            ("415", "Body not application/json"),
                        ]),
                    )
                }
            },
            "/api/admin/audit": {
                "get": {
                    "summary": "Control actions from the database, newest first, a page at a time",
                    "description": "Identical refusals (same role, client address and action within a minute) are one entry with `count` > 1 and `last_at`. When older entries remain, the response has a `Link` header with `rel=\"next\"` and an `X-Next-Before` header: pass that id as `before` for the next page.",
                    "parameters": [
                        {"name": "limit", "in": "query", "description": "Entries per page", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}},
                        {"name": "before", "in": "query", "description": "Only entries with an id below this (the previous page's cursor)", "schema": {"type": "integer", "format": "int64", "minimum": 1}}
                    ],
                    "responses": with(
                        json!({"200": {
                            "description": "Audit entries, newest first",
                            "headers": {
                                "Link": {"description": "`<...?limit=N&before=ID>; rel=\"next\"` when older entries remain", "schema": {"type": "string"}},
                                "X-Next-Before": {"description": "The `before` of the next page, when older entries remain", "schema": {"type": "integer", "format": "int64"}}
                            },
                            "content": {"application/json": {"schema": audit}}
                        }}),
                        errors(&[
                            ("400", "limit not from 1 to 500, or before not an entry id"),
                            ("401", "No credentials"),
                            ("503", "The database cannot be read now"),
                        ]),
                    )
                }
            },
            "/metrics": {"get": {"summary": "Prometheus text format", "responses": {"200": {"description": "The scrape", "content": {"text/plain": {}}}}}},
            "/healthz": {"get": {"summary": "The process is up", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "The database answers within 1 s (asked at most once a second; probes in between share the answer)", "security": [], "responses": {"200": {"description": "Ready: `{\"ready\": true}`"}, "503": {"description": "Not ready: `{\"ready\": false, \"reason\"}`, the reason `database unreachable` or `database did not answer within 1 s`"}}}}
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "StatusResponse",
            "ActionRequest",
            "ActionResponse",
            "ErrorBody",
            "AuditEntry",
            "PoolSnapshot",
            "TaskView",
            "CleanupReport",
        ] {
            assert!(schemas.contains_key(name), "{name} missing");
        }
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
