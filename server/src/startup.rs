//! Start-up: engine, router, listener, graceful shutdown.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router, middleware,
    routing::{get, post},
};
use leasewatch_app::{api::ssr::AppState, not_found_shell, shell};
use leasewatch_engine::{DbError, Engine};
use leptos::config::{LeptosOptions, get_configuration};
use leptos_axum::{AxumRouteListing, LeptosRoutes};
use leptos_router::{Method, SsrMode};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;

use crate::{
    api::{self, ApiState},
    auth::{self, Auth, Secret},
    config::Config,
};

/// Leptos's site options file, read from the working directory.
const LEPTOS_CONFIG: &str = "Leptos.toml";

/// Why the server could not start. Each message names what to change.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached within `DB_CONNECTION_TIMEOUT`.
    #[error(
        "invalid DATABASE_URL=\"{url}\": the database is unreachable within {timeout_ms} ms \
         (DB_CONNECTION_TIMEOUT): {reason}"
    )]
    DatabaseUnreachable {
        /// Redacted URL.
        url: String,
        /// The bound waited.
        timeout_ms: u128,
        /// The driver's reason.
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
        /// The address.
        addr: SocketAddr,
        /// Why not.
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
    generated_token: Option<Secret>,
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
        // Without an operator token, one is made for this run and shown once, in the login URL.
        let generated_token = config.auth.operator.is_none().then(Secret::generate);
        let operator = config
            .auth
            .operator
            .clone()
            .or_else(|| generated_token.clone())
            .expect("an operator token, configured or generated");
        let auth = Auth::new(
            operator,
            config.auth.viewer.clone(),
            config.auth.session_ttl,
        );
        let router = router(
            AppState {
                leptos_options,
                engine: Arc::clone(&engine),
                poll_every: config.dashboard_poll,
            },
            auth,
        );
        Ok(Self {
            listener,
            router,
            engine,
            generated_token,
        })
    }

    /// The URL to open: with the generated token when none was configured (it logs the
    /// browser in once), else the plain address.
    pub fn login_url(&self) -> String {
        let addr = self.local_addr();
        match &self.generated_token {
            Some(token) => format!("http://{addr}/login?token={}", token.expose()),
            None => format!("http://{addr}/"),
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
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await?;
        tracing::info!("shutting down: closing database connections");
        engine.shutdown().await;
        Ok(())
    }
}

/// Everything the server answers: the API, the dashboard (SSR + server functions), the login
/// page and static files, all behind the authentication middleware.
pub fn router(state: AppState, auth: Arc<Auth>) -> Router {
    let state_hashed = state.leptos_options.hash_files;
    let api = api::routes(ApiState {
        engine: Arc::clone(&state.engine),
    });
    let login = Router::new()
        .route("/login", get(auth::login_page).post(auth::login_submit))
        .route("/logout", post(auth::logout))
        .with_state(Arc::clone(&auth));
    // The dashboard is the only page: `/`, rendered with its data before it is sent (Async),
    // so it is readable without JavaScript. `leptos_routes` also mounts the server functions.
    // Anything else is a static file or the not-found page.
    let routes = vec![AxumRouteListing::new(
        "/".to_owned(),
        SsrMode::Async,
        [Method::Get],
        vec![],
    )];
    let dashboard = Router::new()
        .leptos_routes(&state, routes, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            not_found_shell,
        ))
        .with_state(state);
    api.merge(login)
        .merge(dashboard)
        .layer(middleware::from_fn_with_state(auth, auth::authenticate))
        .layer(middleware::from_fn_with_state(state_hashed, cache_assets))
        .layer(CompressionLayer::new())
}

/// Built assets carry a content hash in their names: browsers may keep them for a year.
async fn cache_assets(
    axum::extract::State(hashed): axum::extract::State<bool>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let immutable = hashed && request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    if immutable && response.status().is_success() {
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    response
}

/// Hashed asset names come from `hash.txt` beside the binary (`cargo leptos build --release`
/// writes it). Without it, serve plain names rather than fail every page.
fn check_hash_file(options: &mut LeptosOptions) {
    if !options.hash_files {
        return;
    }
    let beside_binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(options.hash_file.as_ref())));
    if !beside_binary.as_ref().is_some_and(|path| path.exists()) {
        tracing::warn!(
            "hash-files is on but {} is not beside the binary: serving unhashed asset names \
             (build with `cargo leptos build --release`, deploy hash.txt with the binary)",
            options.hash_file
        );
        options.hash_files = false;
    }
}

async fn shutdown_signal() {
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
