//! The JSON admin API (seed-compatible) and the health probes: handlers, each beside the
//! OpenAPI description of its operation. The router in [`crate::routes`] mounts them.

pub mod audit;
pub mod probes;
pub mod runs;
pub mod status;

/// The status path (the seed's): `GET` reads the state, `POST` acts.
pub const STATUS_PATH: &str = "/api/admin/background-jobs/status";

/// The audit log, a page at a time.
pub const AUDIT_PATH: &str = "/api/admin/audit";

/// The run history, a page at a time; `…/{instance}/{run_id}` is one run.
pub const RUNS_PATH: &str = "/api/admin/runs";

/// Pool and server samples over a span, from the history.
pub const SAMPLES_PATH: &str = "/api/admin/samples";

/// The OpenAPI document.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
