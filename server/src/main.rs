//! `leasewatch`: runs the background tasks and serves the dashboard.

use std::{io::IsTerminal, process::ExitCode};

use leasewatch::{Application, Config};
use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: leasewatch [--demo]\n\n  --demo   seed auctions that start over the next minutes and shorten task intervals\n\nConfiguration comes from the environment and .env; see the README.";

/// Exit status for a refused configuration or command line (as `sysexits`' EX_USAGE).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    init_tracing();
    let mut demo = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--demo" => demo = true,
            "-h" | "--help" => {
                tracing::info!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                tracing::error!("unknown argument {other:?}; {USAGE}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        tracing::error!("cannot read .env: {err}");
        return ExitCode::from(EXIT_USAGE);
    }
    let config = match Config::from_lookup(|var| std::env::var(var).ok(), demo) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::from(EXIT_USAGE);
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
