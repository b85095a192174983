//! Leasewatch's server: configuration, start-up and routes around the engine and the dashboard.
//!
//! Layout:
//! - [`config`]: typed configuration from the environment, validated up front.
//! - [`auth`]: tokens, sessions, the login page and the middleware in front of everything.
//! - [`api`]: the JSON admin API, health probes and the audit log.
//! - [`metrics`]: `/metrics` for Prometheus.
//! - [`openapi`]: the OpenAPI document, generated from the API's types.
//! - [`edge`]: the Host allowlist, security headers and CSP, caching rules.
//! - [`serve`]: the listener, with header timeouts and a connection cap.
//! - [`startup`]: builds the engine and the axum router, serves until Ctrl-C or SIGTERM.

pub mod api;
pub mod auth;
pub mod config;
pub mod edge;
pub mod metrics;
pub mod openapi;
pub mod serve;
pub mod startup;

pub use config::{Config, ConfigError};
pub use startup::{Application, StartupError};
