//! Leasewatch's server: configuration, start-up and routes around the engine and the dashboard.
//!
//! Layout:
//! - [`config`]: typed configuration from the environment, validated up front.
//! - [`startup`]: builds the engine and the axum router, serves until Ctrl-C or SIGTERM.

pub mod config;
pub mod startup;

pub use config::{Config, ConfigError};
pub use startup::{Application, StartupError};
