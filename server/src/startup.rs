//! Start-up: engine, router, listener, graceful shutdown.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Weak},
    time::Duration,
};

use axum::Router;
use leasewatch_app::api::ssr::AppState;
use leasewatch_engine::{DbError, Engine};
use leptos::config::{LeptosOptions, get_configuration};
use tokio::net::TcpListener;
use url::Url;

use crate::{
    auth::{Auth, Secret, Sessions, SiteOrigin, links},
    config::Config,
    edge::Hosts,
    routes::router,
    serve,
};

/// Leptos's site options file, read from the working directory.
pub(crate) const LEPTOS_CONFIG: &str = "Leptos.toml";

/// Why the server could not start. Each message names what to change.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached within `DB_CONNECTION_TIMEOUT`.
    #[error(
        "invalid DATABASE_URL=\"{url}\": the database is unreachable within {timeout_ms} ms \
         (DB_CONNECTION_TIMEOUT): {reason}"
    )]
    DatabaseUnreachable {
        /// With its password replaced by `***`.
        url: String,
        timeout_ms: u128,
        reason: String,
    },
    /// Migrations or the first reads failed.
    #[error("{0}")]
    Database(DbError),
    /// Leptos.toml is missing or invalid.
    #[error("cannot read the site options in {LEPTOS_CONFIG} (run from the project folder): {0}")]
    SiteOptions(String),
    /// The listening socket could not be opened.
    #[error("invalid BIND_ADDR=\"{addr}\": cannot listen there: {reason}")]
    Bind {
        addr: SocketAddr,
        reason: std::io::Error,
    },
}

impl From<DbError> for StartupError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unreachable {
                url,
                timeout,
                source,
            } => Self::DatabaseUnreachable {
                url,
                timeout_ms: timeout.as_millis(),
                reason: source.to_string(),
            },
            other => Self::Database(other),
        }
    }
}

/// A server that is bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    engine: Arc<Engine>,
    auth: Arc<Auth>,
    /// Where a generated operator token was written, when one was generated.
    token_file: Option<Result<PathBuf, String>>,
    public_url: Option<Url>,
}

impl Application {
    /// Starts the engine (connect, migrate, seed in demo mode) and binds the listener.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let mut leptos_options = get_configuration(Some(LEPTOS_CONFIG))
            .map_err(|err| StartupError::SiteOptions(err.to_string()))?
            .leptos_options;
        if let Some(bind) = config.bind {
            leptos_options.site_addr = bind;
        }
        let engine = Arc::new(Engine::start(config.engine).await?);
        check_hash_file(&mut leptos_options);
        let addr = leptos_options.site_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|reason| StartupError::Bind { addr, reason })?;
        // Without an operator token, one is made for this run and written to a file only its
        // user can read; the browser gets a single-use login link instead.
        let generated = config.auth.operator.is_none().then(Secret::generate);
        let token_file = generated
            .as_ref()
            .map(|token| write_token_file(&config.auth.token_file, token));
        let operator = config
            .auth
            .operator
            .clone()
            .or(generated)
            .expect("an operator token, configured or generated");
        let sessions = Sessions::load(
            Arc::clone(&engine),
            operator.clone(),
            config.auth.viewer.clone(),
            config.auth.session_ttl,
        )
        .await
        .map_err(|err| StartupError::Database(DbError::from(err)))?;
        let auth = Auth::new(
            operator,
            config.auth.viewer.clone(),
            sessions,
            SiteOrigin::new(config.public_url.clone()),
            leptos_options.clone(),
        );
        if config.public_url.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                "listening on {addr} without PUBLIC_URL: any Host is answered; set PUBLIC_URL \
                 to the address browsers use"
            );
        }
        let hosts = Hosts::new(addr.ip(), config.public_url.as_ref());
        let router = router(
            AppState {
                leptos_options,
                engine: Arc::clone(&engine),
                poll_every: config.dashboard_poll,
            },
            Arc::clone(&auth),
            hosts,
        );
        Ok(Self {
            listener,
            router,
            engine,
            auth,
            token_file,
            public_url: config.public_url,
        })
    }

    /// The start-up line's "open …" part: with a generated token, a single-use login link
    /// (valid for 15 minutes) and where the token was written; else the plain address.
    pub fn login_url(&self) -> String {
        let base = match &self.public_url {
            Some(url) => url.origin().ascii_serialization(),
            None => format!("http://{}", self.local_addr()),
        };
        match &self.token_file {
            None => format!("{base}/"),
            Some(written) => {
                let code = self.auth.issue_login_code();
                let file = match written {
                    Ok(path) => format!("the operator token is in {}", path.display()),
                    Err(err) => format!("the operator token could not be written ({err})"),
                };
                format!(
                    "{base}/login?code={code} (single use, valid for {} min; {file})",
                    links::LINK_TTL.as_secs() / 60
                )
            }
        }
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves until Ctrl-C or SIGTERM, then drains requests and closes the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let engine = self.engine;
        let refresh = tokio::spawn(refresh_sessions(Arc::downgrade(&self.auth)));
        serve::serve(self.listener, self.router, shutdown_signal()).await?;
        refresh.abort();
        tracing::info!("shutting down: closing database connections");
        engine.shutdown().await;
        Ok(())
    }
}

/// How often sessions ended on other instances (and a replaced secret) are picked up.
pub(crate) const SESSION_REFRESH: Duration = Duration::from_secs(5);

/// Picks up sessions ended on other instances every [`SESSION_REFRESH`], until the router
/// that holds `auth` is dropped.
pub(crate) async fn refresh_sessions(auth: Weak<Auth>) {
    // `Sessions::load` has just read them: the first refresh is one period away.
    let mut every = tokio::time::interval_at(
        tokio::time::Instant::now() + SESSION_REFRESH,
        SESSION_REFRESH,
    );
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(auth) = auth.upgrade() else {
            return;
        };
        if let Err(err) = auth.sessions().refresh().await {
            tracing::debug!(%err, "cannot refresh ended sessions from the database");
        }
    }
}

/// Writes the generated token where only this user can read it.
fn write_token_file(path: &Path, token: &Secret) -> Result<PathBuf, String> {
    use std::{
        io::Write as _, os::unix::fs::OpenOptionsExt as _, os::unix::fs::PermissionsExt as _,
    };
    let write = || -> std::io::Result<PathBuf> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        // An existing file keeps its mode on open: narrow it too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(file, "{}", token.expose())?;
        std::fs::canonicalize(path)
    };
    write().map_err(|err| format!("{}: {err}", path.display()))
}

/// Hashed asset names come from `hash.txt` beside the binary (`cargo xtask build`
/// writes it). Without it, serve plain names rather than fail every page.
pub(crate) fn check_hash_file(options: &mut LeptosOptions) {
    if !options.hash_files {
        return;
    }
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(options.hash_file.as_ref())));
    if !beside_binary.as_ref().is_some_and(|path| path.exists()) {
        tracing::warn!(
            "hash-files is on but {} is not beside the binary: serving unhashed asset names \
             (build with `cargo xtask build`, deploy hash.txt with the binary)",
            options.hash_file
        );
        options.hash_files = false;
    }
}

/// Completes at Ctrl-C or SIGTERM: what the binary serves until, and what an embedding app
/// may pass to [`crate::serve::serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
