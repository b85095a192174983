//! Authentication at the edge: an operator token and an optional read-only viewer token.
//!
//! Scripts send `Authorization: Bearer <token>`. Browsers log in once ([`login`]) and carry an
//! HttpOnly, SameSite=Strict session cookie ([`session`]). A cookie-authenticated state change
//! (and any login or logout) must come from this site: its `Origin` (or else `Referer`) must
//! be this site's origin, scheme included. A client that sends too many wrong tokens is locked
//! out for a while ([`throttle`]). Tokens are compared in constant time and never logged.

pub(crate) mod links;
pub(crate) mod login;
pub mod secret;
pub(crate) mod session;
mod throttle;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use leasewatch_engine::control::Role;
use leptos::config::LeptosOptions;
use url::Url;

use crate::error::ApiError;

pub use secret::Secret;
pub use session::{SESSION_COOKIE, Sessions};
use throttle::Throttle;

/// Who made a request and how they proved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    pub role: Role,
    /// Whether they came with a session cookie (a browser) rather than a bearer token.
    pub(crate) by_cookie: bool,
}

/// Where the site is reached, for the same-origin check and Secure cookies: `PUBLIC_URL`
/// when set (behind a proxy), else the request's own `Host` over plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct SiteOrigin {
    public: Option<Url>,
}

impl SiteOrigin {
    /// The site as the browser sees it (`PUBLIC_URL`), if configured.
    pub fn new(public: Option<Url>) -> Self {
        Self { public }
    }

    /// The origin (`scheme://host[:port]`) a same-site request names.
    fn expected(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(url) = &self.public {
            return Some(url.origin().ascii_serialization());
        }
        let host = headers.get(header::HOST)?.to_str().ok()?;
        Some(format!("http://{host}"))
    }

    /// Whether cookies must be `Secure` (the site is served over HTTPS).
    pub fn secure(&self) -> bool {
        self.public
            .as_ref()
            .is_some_and(|url| url.scheme() == "https")
    }

    /// Whether the request comes from this site: its `Origin`, or else its `Referer`'s origin,
    /// equals the site's origin (scheme, host and port).
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = self.expected(headers) else {
            return false;
        };
        let given = match headers.get(header::ORIGIN) {
            Some(origin) => origin.to_str().ok().map(str::to_owned),
            None => headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| Url::parse(r).ok())
                .map(|url| url.origin().ascii_serialization()),
        };
        given.is_some_and(|given| given.eq_ignore_ascii_case(&expected))
    }
}

/// The tokens, the sessions, the brute-force limit and the site's origin.
pub struct Auth {
    operator: Secret,
    viewer: Option<Secret>,
    sessions: Sessions,
    throttle: Throttle,
    site: SiteOrigin,
    links: links::LoginLinks,
    /// Site options, for the login page's head (the hashed stylesheet).
    site_options: LeptosOptions,
    /// The path prefix the site is mounted under (empty at the root): where redirects go and
    /// what `next` must stay under.
    base: String,
}

/// A client locked out by the brute-force limit, for this much longer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockedOut(pub Duration);

impl IntoResponse for LockedOut {
    fn into_response(self) -> Response {
        let seconds = self.0.as_secs().max(1);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many wrong tokens from this address: try again in {seconds} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}

impl Auth {
    /// With these tokens and sessions, reached at `site`.
    pub fn new(
        operator: Secret,
        viewer: Option<Secret>,
        sessions: Sessions,
        site: SiteOrigin,
        site_options: LeptosOptions,
    ) -> Arc<Self> {
        Self::new_at(
            operator,
            viewer,
            sessions,
            site,
            site_options,
            String::new(),
        )
    }

    /// [`Auth::new`] for a site mounted under the path prefix `base` (`/admin/leasewatch`):
    /// its redirects and `next` stay under it, and its session cookie is scoped to it.
    pub fn new_at(
        operator: Secret,
        viewer: Option<Secret>,
        mut sessions: Sessions,
        site: SiteOrigin,
        site_options: LeptosOptions,
        base: String,
    ) -> Arc<Self> {
        sessions.scope_cookie_to(&base);
        Arc::new(Self {
            operator,
            viewer,
            sessions,
            throttle: Throttle::default(),
            site,
            links: links::LoginLinks::default(),
            site_options,
            base,
        })
    }

    /// The session store (the server refreshes it from the database).
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// A single-use login link's code for the operator, valid for [`links::LINK_TTL`].
    pub(crate) fn issue_login_code(&self) -> String {
        self.links.issue()
    }

    /// The role a token grants, if any. Counts a wrong token against `client`.
    fn role_of_token(&self, token: &str, client: IpAddr) -> Result<Option<Role>, LockedOut> {
        self.check_credential(client, || {
            if self.operator.matches(token) {
                Some(Role::Operator)
            } else if self.viewer.as_ref().is_some_and(|v| v.matches(token)) {
                Some(Role::Viewer)
            } else {
                None
            }
        })
    }

    /// Runs `check` on a credential (a token, a login link's code) under the brute-force
    /// limit: refused without checking while `client` is locked out, and a failed check
    /// counts against it.
    fn check_credential<T>(
        &self,
        client: IpAddr,
        check: impl FnOnce() -> Option<T>,
    ) -> Result<Option<T>, LockedOut> {
        if let Some(left) = self.throttle.locked(client) {
            return Err(LockedOut(left));
        }
        let granted = check();
        if granted.is_none() {
            tracing::warn!(%client, "wrong token or login code");
            if let Some(lockout) = self.throttle.failed(client) {
                tracing::warn!(%client, "too many wrong tokens: locked out");
                return Err(LockedOut(lockout));
            }
        }
        Ok(granted)
    }

    /// Who is calling, from a bearer token or a session cookie.
    pub(crate) fn caller(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Result<Option<Caller>, LockedOut> {
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let role = self.role_of_token(token.trim(), client)?;
            return Ok(role.map(|role| Caller {
                role,
                by_cookie: false,
            }));
        }
        Ok(self.sessions.verify(headers).map(|session| Caller {
            role: session.role,
            by_cookie: true,
        }))
    }
}

/// The peer's address (put on each request by the server; unknown in in-process tests).
pub(crate) fn client_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

/// Paths anyone may reach.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/login"
            | "/logout"
            | "/healthz"
            | "/readyz"
            | "/favicon.svg"
            | "/favicon-warning.svg"
            | "/favicon-critical.svg"
    ) || path.starts_with("/pkg/")
}

/// The middleware: public paths pass; everything else needs a caller. Unauthenticated API
/// calls get 401, pages a redirect to the login page, which comes back to them after login.
/// Cookie-authenticated state changes must be same-origin (403 otherwise).
pub(crate) async fn authenticate(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(&path) {
        return next.run(request).await;
    }
    let caller = match auth.caller(request.headers(), client_ip(&request)) {
        Ok(caller) => caller,
        Err(locked) => return locked.into_response(),
    };
    let Some(caller) = caller else {
        if path.starts_with("/api/") || path == "/metrics" || request.method() != Method::GET {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                format!(
                    "log in at {}/login, or send Authorization: Bearer <token>",
                    auth.base
                ),
            )
            .into_response();
        }
        let asked = request.uri().path_and_query().map_or("/", |p| p.as_str());
        return Redirect::to(&login::login_location_under(&auth.base, asked)).into_response();
    };
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if caller.by_cookie && changes_state && !auth.site.same_origin(request.headers()) {
        return cross_origin();
    }
    // The API's handlers and the dashboard's server functions read the role.
    request.extensions_mut().insert(caller.role);
    next.run(request).await
}

/// The answer to a browser state change that does not come from this site.
fn cross_origin() -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        "a browser state change must come from this site (its Origin or Referer must be this \
         site's origin; behind a proxy set PUBLIC_URL)",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn same_origin_compares_scheme_host_and_port() {
        let local = SiteOrigin::default();
        let host = (header::HOST, "127.0.0.1:3000");
        assert!(
            !local.same_origin(&headers(std::slice::from_ref(&host))),
            "neither Origin nor Referer"
        );
        assert!(local.same_origin(&headers(&[
            host.clone(),
            (header::REFERER, "http://127.0.0.1:3000/x")
        ])));
        assert!(
            !local.same_origin(&headers(&[
                host.clone(),
                (header::REFERER, "http://127.0.0.1:3000/x"),
                (header::ORIGIN, "http://evil.example")
            ])),
            "Origin wins over Referer"
        );
        assert!(
            !local.same_origin(&headers(&[
                host.clone(),
                (header::ORIGIN, "https://127.0.0.1:3000")
            ])),
            "the scheme counts"
        );
        assert!(!local.same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:30001")
        ])));
        assert!(local.same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://127.0.0.1:3000")
        ])));

        let proxied = SiteOrigin::new(Some(Url::parse("https://lw.example.com/").unwrap()));
        assert!(proxied.secure());
        assert!(proxied.same_origin(&headers(&[
            (header::HOST, "127.0.0.1:3000"),
            (header::ORIGIN, "https://lw.example.com")
        ])));
        assert!(!proxied.same_origin(&headers(&[
            (header::HOST, "lw.example.com"),
            (header::ORIGIN, "http://lw.example.com")
        ])));
    }
}
