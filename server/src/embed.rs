//! Leasewatch inside your own axum app: the dashboard, the admin API and `/metrics` under a
//! path prefix of your router, over an engine you start with jobs of your own
//! ([`leasewatch_engine::Engine::builder`]).
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use axum::{Router, routing::get};
//! use leasewatch::embed::{self, EmbedOptions};
//! use leasewatch_engine::{DatabaseUrl, Engine, EngineConfig};
//!
//! # async fn app(token: leasewatch::auth::Secret) -> anyhow::Result<Router> {
//! let database = DatabaseUrl::parse("postgres://localhost/app")?;
//! let engine = Arc::new(Engine::builder(EngineConfig::new(database)).start().await?);
//! let options = EmbedOptions::new("/admin/leasewatch", token, embed::site_options()?);
//! let app = Router::new()
//!     .route("/", get(|| async { "my app" }))
//!     .merge(embed::router(engine, options).await?);
//! # Ok(app)
//! # }
//! ```
//!
//! [`router`] takes the prefix itself and returns a router to `merge`, rather than one to
//! `nest`: the prefix is then written once, so the pages' links, the redirects, the session
//! cookie's `Path` and the routes cannot disagree about where the dashboard is.
//!
//! Under the prefix everything is as in the Leasewatch binary at `/`: the same Host check,
//! security headers and CSP, body limit and timeouts, authentication (tokens, sessions,
//! lockout, same-origin checks), pages, server functions, assets and API. Those layers wrap
//! Leasewatch's routes only: the host app's other routes never pass through them.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::{OriginalUri, Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
};
use leasewatch_app::{api::ssr::AppState, base::Base};
use leasewatch_engine::Engine;
use leptos::config::{LeptosOptions, get_configuration};
use url::Url;

use crate::{
    auth::{Auth, Secret, Sessions, SiteOrigin},
    config::Config,
    edge::Hosts,
    routes::router_at,
    startup::{LEPTOS_CONFIG, check_hash_file, refresh_sessions},
};

/// Why the embedded dashboard could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The prefix is not a plain path.
    #[error(
        "invalid path prefix {0:?}: give a path such as \"/admin/leasewatch\": a leading /, no \
         trailing /, segments of letters, digits, -, _, . and ~ (not . or ..)"
    )]
    Prefix(String),
    /// The configuration has no operator token (the binary would generate one; an embedding
    /// app must choose it).
    #[error("no operator token: set LEASEWATCH_OPERATOR_TOKEN")]
    NoOperatorToken,
    /// The session store could not be read from the database.
    #[error("cannot read the session store: {0}")]
    Sessions(#[from] sqlx::Error),
    /// Leptos.toml is missing or invalid.
    #[error("cannot read the site options in {LEPTOS_CONFIG} (run from the project folder): {0}")]
    SiteOptions(String),
}

/// How the dashboard is mounted and who may use it.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// Where it is mounted, such as `/admin/leasewatch`: the dashboard at `<prefix>/`, the
    /// API at `<prefix>/api/admin/...`, the metrics at `<prefix>/metrics`.
    pub prefix: String,
    /// The operator's token (`LEASEWATCH_OPERATOR_TOKEN` in the binary).
    pub operator: Secret,
    /// A read-only token (`LEASEWATCH_VIEWER_TOKEN`), if any.
    pub viewer: Option<Secret>,
    /// How long a browser session lasts (`SESSION_TTL`; 12 h by default).
    pub session_ttl: Duration,
    /// How often the dashboard polls (`DASHBOARD_POLL_INTERVAL`; 2 s by default).
    pub poll_every: Duration,
    /// The address browsers use (`PUBLIC_URL`), behind a proxy: the origin a browser's state
    /// change must come from, and `https` makes the session cookie `Secure`.
    pub public_url: Option<Url>,
    /// Which `Host` values are answered: by default loopback names only; see
    /// [`Hosts::new`] for an app listening elsewhere.
    pub hosts: Hosts,
    /// Where the built site is (`target/site`, from `cargo xtask build`): [`site_options`].
    pub site: LeptosOptions,
}

impl EmbedOptions {
    /// Mounted at `prefix`, the operator's token `operator`, no viewer token, the binary's
    /// defaults otherwise, for an app reached on loopback addresses.
    pub fn new(prefix: impl Into<String>, operator: Secret, site: LeptosOptions) -> Self {
        Self {
            prefix: prefix.into(),
            operator,
            viewer: None,
            session_ttl: Duration::from_secs(12 * 3600),
            poll_every: Duration::from_secs(2),
            public_url: None,
            hosts: Hosts::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None),
            site,
        }
    }

    /// From the binary's configuration (tokens, `SESSION_TTL`, `DASHBOARD_POLL_INTERVAL`,
    /// `PUBLIC_URL`, and `BIND_ADDR` for the Host check): an app configured by the same
    /// environment variables. The operator token must be set.
    pub fn from_config(
        prefix: impl Into<String>,
        config: &Config,
        site: LeptosOptions,
    ) -> Result<Self, EmbedError> {
        let operator = config
            .auth
            .operator
            .clone()
            .ok_or(EmbedError::NoOperatorToken)?;
        let bind = config.bind.unwrap_or(site.site_addr).ip();
        Ok(Self {
            viewer: config.auth.viewer.clone(),
            session_ttl: config.auth.session_ttl,
            poll_every: config.dashboard_poll,
            public_url: config.public_url.clone(),
            hosts: Hosts::new(bind, config.public_url.as_ref()),
            ..Self::new(prefix, operator, site)
        })
    }
}

/// The site options as the binary reads them: `Leptos.toml` in the working directory, any
/// `LEPTOS_*` variable overriding it, and hashed asset names only when `hash.txt` (written by
/// `cargo xtask build`) is beside the running binary.
pub fn site_options() -> Result<LeptosOptions, EmbedError> {
    let mut options = get_configuration(Some(LEPTOS_CONFIG))
        .map_err(|err| EmbedError::SiteOptions(err.to_string()))?
        .leptos_options;
    check_hash_file(&mut options);
    Ok(options)
}

/// The dashboard, the admin API, `/metrics`, the probes and the login pages under
/// `options.prefix`, to `merge` into your router. `<prefix>` alone redirects to `<prefix>/`.
///
/// Reads the session store from the engine's database, and keeps it current (sessions ended
/// on other instances) for as long as the router lives.
pub async fn router<S>(engine: Arc<Engine>, options: EmbedOptions) -> Result<Router<S>, EmbedError>
where
    S: Clone + Send + Sync + 'static,
{
    let EmbedOptions {
        prefix,
        operator,
        viewer,
        session_ttl,
        poll_every,
        public_url,
        hosts,
        site,
    } = options;
    if !is_prefix(&prefix) {
        return Err(EmbedError::Prefix(prefix));
    }
    let sessions = Sessions::load(
        Arc::clone(&engine),
        operator.clone(),
        viewer.clone(),
        session_ttl,
    )
    .await?;
    let auth = Auth::new_at(
        operator,
        viewer,
        sessions,
        SiteOrigin::new(public_url),
        site.clone(),
        prefix.clone(),
    );
    tokio::spawn(refresh_sessions(Arc::downgrade(&auth)));
    let state = AppState {
        leptos_options: site,
        engine,
        poll_every,
    };
    let routes = router_at(state, auth, hosts, Base(prefix.clone()))
        .layer(middleware::from_fn_with_state(prefix.clone(), with_slash));
    // `nest_service` hands over `<prefix>`, `<prefix>/` and everything below it with the
    // prefix stripped, so the routes match exactly as they do at the site's root.
    Ok(Router::new().nest_service(&prefix, routes))
}

/// `<prefix>` itself goes to `<prefix>/`, the dashboard's one address (its links and
/// redirects name that one).
async fn with_slash(State(prefix): State<String>, request: Request, next: Next) -> Response {
    if let Some(OriginalUri(uri)) = request.extensions().get::<OriginalUri>()
        && uri.path() == prefix
    {
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        return Redirect::permanent(&format!("{prefix}/{query}")).into_response();
    }
    next.run(request).await
}

/// A path prefix the pages can write as it is: `/` and segments of unreserved characters.
fn is_prefix(prefix: &str) -> bool {
    let Some(rest) = prefix.strip_prefix('/') else {
        return false;
    };
    !rest.is_empty()
        && rest.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_a_plain_path() {
        for ok in ["/admin/leasewatch", "/lw", "/a.b/c-d_e~f"] {
            assert!(is_prefix(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "admin",
            "/admin/",
            "//admin",
            "/admin//x",
            "/admin/..",
            "/./x",
            "/a b",
            "/{x}",
            "/*x",
            "/a?b",
            "/a#b",
            "/a%2F",
        ] {
            assert!(!is_prefix(bad), "{bad:?}");
        }
    }
}
