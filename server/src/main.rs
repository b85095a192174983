//! `leasewatch`: runs the background tasks and serves the dashboard; its subcommands
//! (`status`, `leases`, `runs`, `cleanup`) ask a running server from a shell.

use std::{io::IsTerminal, process::ExitCode};

use leasewatch::{
    Application, Config,
    cli::{self, Exit, Invocation},
};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // A subcommand asks a running server; without one this process is the server.
    let demo = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Invocation::Serve { demo }) => demo,
        Ok(Invocation::Help) => return cli::help(),
        Ok(Invocation::Command(command)) => return cli::run(&command),
        Err(err) => return cli::fail(&err.into()),
    };
    init_tracing();
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        tracing::error!("cannot read .env: {err}");
        return Exit::Usage.into();
    }
    let config = match Config::from_lookup(|var| std::env::var(var).ok(), demo) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err}");
            return Exit::Usage.into();
        }
    };
    // Server-side rendering of the dashboard nests deeply; give workers room beyond the 2 MiB
    // default.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let database = config.engine.database.clone();
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(err) => {
                tracing::error!("{err}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(database = %database, "Leasewatch is ready: open {}", app.login_url());
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!("server failed: {err}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Logs go to stderr, one line per event; `RUST_LOG` overrides the default level.
fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
