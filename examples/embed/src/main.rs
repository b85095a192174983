//! An axum app of its own (`GET /` answers "my app") that runs one Rust job through
//! Leasewatch's lease manager and serves the dashboard, the admin API and `/metrics` at
//! `/admin/leasewatch`. Configured by the binary's environment variables: `DATABASE_URL`,
//! `LEASEWATCH_OPERATOR_TOKEN` (required here), `LEASEWATCH_VIEWER_TOKEN`, `BIND_ADDR`,
//! `PUBLIC_URL` and the rest. Run it from the project folder after `cargo xtask build`, which
//! builds the dashboard's assets into `target/site`.

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::get};
use leasewatch::{
    Config,
    embed::{self, EmbedOptions},
    serve::serve,
    startup::shutdown_signal,
};
use leasewatch_engine::{
    Engine,
    tasks::{Job, JobContext, JobFuture, JobOutput, TaskError},
};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Where the dashboard is mounted.
const PREFIX: &str = "/admin/leasewatch";

/// The job's task name, as the dashboard, the API and `/metrics` show it.
const JOB: &str = "heartbeat";

/// Writes a heartbeat row into a table of its own and counts them, over one lease: the lease
/// manager tracks the connection, times it out and reclaims it like the built-in tasks' own.
struct Heartbeat;

impl Job for Heartbeat {
    fn run<'a>(&'a self, ctx: &'a JobContext) -> JobFuture<'a> {
        Box::pin(async move {
            let mut lease = ctx.leases.acquire(&ctx.run).await?;
            let now_ms = ctx.now_ms;
            let beats: i64 = lease
                .run(|conn| {
                    Box::pin(async move {
                        sqlx::query(
                            "CREATE TABLE IF NOT EXISTS example_heartbeats (at_ms BIGINT NOT NULL)",
                        )
                        .execute(&mut *conn)
                        .await?;
                        sqlx::query("INSERT INTO example_heartbeats (at_ms) VALUES ($1)")
                            .bind(now_ms)
                            .execute(&mut *conn)
                            .await?;
                        let beats = sqlx::query_scalar("SELECT COUNT(*) FROM example_heartbeats")
                            .fetch_one(&mut *conn)
                            .await?;
                        Ok::<_, TaskError>(beats)
                    })
                })
                .await?;
            Ok(JobOutput::done(1, format!("heartbeat {beats} written")))
        })
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .init();
    let config = Config::from_lookup(|var| std::env::var(var).ok(), false)?;
    // Rendering the dashboard on the server nests deeply: as in the binary, give the
    // runtime's threads 8 MiB stacks.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()?
        .block_on(serve_app(config))
}

async fn serve_app(config: Config) -> anyhow::Result<()> {
    let site = embed::site_options()?;
    let addr = config.bind.unwrap_or(site.site_addr);
    let options = EmbedOptions::from_config(PREFIX, &config, site)?;
    let engine = Arc::new(
        Engine::builder(config.engine)
            .job(JOB, Duration::from_secs(60), Heartbeat)
            .start()
            .await?,
    );
    let app = Router::new()
        .route("/", get(|| async { "my app" }))
        .merge(embed::router(Arc::clone(&engine), options).await?);
    let listener = TcpListener::bind(addr).await?;
    tracing::info!("listening on http://{addr}: the dashboard is at {PREFIX}/");
    // The binary's listener: header-read timeout, connection cap, and the client's address
    // for the login lockout.
    serve(listener, app, shutdown_signal()).await?;
    engine.shutdown().await;
    Ok(())
}
