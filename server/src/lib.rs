//! Leasewatch's server: configuration, start-up and routes around the engine and the dashboard.
//!
//! Modules, bottom to top; each imports only from the ones above it in this list, so
//! nothing depends on the router or on start-up:
//! - `error`: `ApiError`, the `{"error": {"code", "message"}}` every JSON refusal uses.
//! - `auth::secret`: a token that does not print itself.
//! - `config`: typed configuration from the environment, validated up front (`config::env`
//!   reads one variable each, below `config` itself).
//! - `dto`: the API's request and response bodies (their schemas are the document's).
//! - `edge`: the Host allowlist, the body limit, security headers and CSP.
//! - `auth`: tokens, sessions and the middleware in front of everything; inside it,
//!   `secret`, `links`, `session` and `throttle` below `auth` itself, and `login` (the login
//!   page's handlers) above it.
//! - `openapi`: the document's own parts (security schemes) and its handler.
//! - handlers: `api` (status, actions, audit, probes) and `metrics` (`/metrics`), each
//!   beside its OpenAPI description.
//! - `routes`: the one router, mounting every handler (the API's with their OpenAPI
//!   descriptions) behind the layers.
//! - `serve`: the listener, with header timeouts and a connection cap.
//! - `startup`: builds the engine and the router, serves until Ctrl-C or SIGTERM.
//! - `embed`: the same router under a path prefix of another axum app, over an engine that
//!   app starts (with jobs of its own); beside `startup`, it imports the same modules.
//! - `cli`: the command line's subcommands, a client of the API over HTTP; beside the
//!   server rather than above it, it imports only `auth::secret`, `error`, `dto` and `api`'s
//!   paths and header names (the shapes it reads), never the router or start-up.
//!
//! Handlers take the dashboard's `AppState` as router state and reach the engine through
//! `State<Arc<Engine>>` (`FromRef`); only the login routes keep state of their own (`Auth`).

// A binary's internals, public only so the integration tests can reach them: the workspace's
// `missing_docs` would force a line on every handler whose name already says it. Doc comments
// here say what a reader needs, where there is something to say.
#![allow(missing_docs)]

// Public: what `main` and the integration tests build the server from.
pub mod auth;
pub mod cli;
pub mod config;
pub mod edge;
pub mod embed;
pub mod routes;
pub mod serve;
pub mod startup;

pub(crate) mod api;
pub(crate) mod dto;
pub(crate) mod error;
pub(crate) mod metrics;
pub(crate) mod openapi;

pub use config::{Config, ConfigError};
pub use startup::{Application, StartupError};
