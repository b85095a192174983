//! Leasewatch's engine: everything that runs on the server and is not the web layer.
//!
//! Layout:
//! - [`db`]: which database, how to reach it, the sqlx pool with its per-connection session
//!   settings, and the migrations for both backends.
//! - [`auctions`]: the auction workload the background tasks act on (schema model, demo data,
//!   status counts).
//! - [`builder`]: starting the engine with jobs of your own beside the built-in tasks
//!   ([`Engine::builder`]).
//! - [`engine`]: the running engine that owns the database and the in-process state the
//!   dashboard reads.
//! - [`lease`]: the connection lease manager — every connection a task holds is a tracked,
//!   bounded, reclaimable lease; snapshots, history, cleanup and emergency cleanup.
//! - [`predict`]: the trend forecast of the server's connection use and its alarm, which the
//!   engine acts on before the slots run out.
//! - [`failure`]: the kind of failure that ended a task run, classified where it happens.
//! - [`history`]: every run and a pool sample every few seconds, persisted in batches, read
//!   back for the runs view and the charts' longer ranges, downsampled and pruned.
//! - [`histogram`]: the lock-free latency histogram behind the acquire and hold-time figures.
//! - [`server_view`]: the PostgreSQL server as a whole (`max_connections`, `pg_stat_activity`).
//! - [`targets`]: the primary and read replicas, each with its own lease manager and health
//!   probe; read work routed to the least-loaded replica in rotation.
//! - [`tasks`]: the task manager — scheduler, the three real jobs, retry with backoff, per-task
//!   state and history.
//! - [`control`]: the control actions (start, stop, cleanup, ...) as the API and the dashboard
//!   take them, audited.
//! - [`audit`]: the audit log of control actions (database, plus recent entries in memory).
//! - [`query`]: checking what a runs or audit search asks for, naming any refused field.
//! - [`recommend`]: the rules that turn the state into recommendations, with hysteresis.
//! - [`settings`]: the typed settings the engine runs with; the server parses them from the
//!   environment.
//!
//! The engine has no Leptos in it: the dashboard reaches it through server functions compiled
//! only on the server.

pub mod alert;
pub mod auctions;
pub mod audit;
pub mod builder;
pub mod control;
pub mod db;
pub mod engine;
pub mod failure;
pub mod governor;
pub mod histogram;
pub mod history;
pub mod lease;
pub mod predict;
pub mod query;
pub mod recommend;
pub mod server_view;
pub mod settings;
pub mod targets;
pub mod tasks;

pub use builder::{BuildError, EngineBuilder, JobError};
pub use db::{Backend, Database, DatabaseUrl, DbError, NotReady, PoolStatus};
pub use engine::{AuctionsView, DemoLeak, Engine, EngineConfig};
pub use failure::FailureKind;
pub use governor::Priority;
pub use lease::RunLimits;
pub use lease::{
    BackendIdentity, CleanupKind, CleanupReport, Lease, LeaseError, LeaseInfo, LeaseManager,
    PoolSnapshot, RunContext,
};
pub use server_view::ServerView;
pub use settings::{PoolSettings, TaskIntervals};
pub use tasks::{
    Job, JobContext, JobFuture, JobOutput, RetryPolicy, Schedule, TaskError, TaskManager, TaskView,
};
