//! The OpenAPI document served at `/api/openapi.json`, generated from the types the handlers
//! exchange (their JSON schemas come from the same structs serde uses).

use axum::Json;
use leasewatch_engine::{CleanupReport, audit::AuditEntry, tasks::StopReport};
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
                    "summary": "Recent control actions, newest first",
                    "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 200}}],
                    "responses": with(
                        json!({"200": {"description": "Audit entries", "content": {"application/json": {"schema": audit}}}}),
                        errors(&[("401", "No credentials")]),
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
