//! Leasewatch's engine: everything that runs on the server and is not the web layer.
//!
//! Layout:
//! - [`db`]: which database, how to reach it, the sqlx pool with its per-connection session
//!   settings, and the migrations for both backends.
//! - [`auctions`]: the auction workload the background tasks act on (schema model, demo data,
//!   status counts).
//! - [`engine`]: the running engine that owns the database and the in-process state the
//!   dashboard reads.
//! - [`settings`]: the typed settings the engine runs with; the server parses them from the
//!   environment.
//!
//! The engine has no Leptos in it: the dashboard reaches it through server functions compiled
//! only on the server.

pub mod auctions;
pub mod db;
pub mod engine;
pub mod settings;

pub use db::{Backend, Database, DatabaseUrl, DbError, PoolStatus};
pub use engine::{AuctionsView, Engine, EngineConfig};
pub use settings::{PoolSettings, RetryPolicy, TaskIntervals};
