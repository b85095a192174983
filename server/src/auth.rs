//! Authentication at the edge: an operator token and an optional read-only viewer token.
//! Browsers log in once and carry an HttpOnly, SameSite=Strict session cookie (signed with a
//! key derived from the operator token, so sessions survive a restart and die with a new
//! token); scripts send
//! `Authorization: Bearer <token>`. A state change authenticated by cookie must come from this
//! site (`Origin` or `Referer` matching `Host`). Tokens are compared in constant time and
//! never logged.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use axum::{
    Form,
    extract::{Query, Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use leasewatch_engine::control::Role;

use crate::api::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "leasewatch_session";

/// Who made a request and how they proved it; put in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Their role.
    pub role: Role,
    /// Whether they came with a session cookie (a browser) rather than a bearer token.
    pub by_cookie: bool,
}

/// A token that does not print itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// A fresh random token (256 bits, hex).
    pub fn generate() -> Self {
        Self(
            (0..4)
                .map(|_| format!("{:016x}", rand::random::<u64>()))
                .collect(),
        )
    }

    /// The token itself, for the one place that must show it (the start-up login URL).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison: the time taken does not depend on where they differ.
    fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        let mut diff = a.len() ^ b.len();
        for i in 0..a.len().max(b.len()) {
            diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The tokens, and what is needed to issue and check session cookies.
pub struct Auth {
    /// The `<link>` to the (hashed) stylesheet, for the login page.
    stylesheet: String,
    operator: Secret,
    viewer: Option<Secret>,
    session_ttl: Duration,
    /// Sessions ended by logout before their expiry (kept until they would have expired).
    logged_out: Mutex<HashMap<String, u64>>,
}

type Mac = Hmac<Sha256>;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Auth {
    /// With these tokens; sessions last `session_ttl`.
    pub fn new(operator: Secret, viewer: Option<Secret>, session_ttl: Duration) -> Arc<Self> {
        Self::with_stylesheet(operator, viewer, session_ttl, String::new())
    }

    /// The same, with the login page's stylesheet link.
    pub fn with_stylesheet(
        operator: Secret,
        viewer: Option<Secret>,
        session_ttl: Duration,
        stylesheet: String,
    ) -> Arc<Self> {
        Arc::new(Self {
            stylesheet,
            operator,
            viewer,
            session_ttl,
            logged_out: Mutex::new(HashMap::new()),
        })
    }

    fn logged_out(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.logged_out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The role a token grants, if any.
    pub fn role_of_token(&self, token: &str) -> Option<Role> {
        if self.operator.matches(token) {
            Some(Role::Operator)
        } else if self.viewer.as_ref().is_some_and(|v| v.matches(token)) {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// `role.expiry.nonce`, signed.
    fn sign(&self, payload: &str) -> String {
        let mut mac = Mac::new_from_slice(self.operator.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(b"leasewatch-session:");
        mac.update(payload.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn start_session(&self, role: Role) -> String {
        let expires = unix_now() + self.session_ttl.as_secs();
        let payload = format!("{}.{expires}.{:016x}", role.as_str(), rand::random::<u64>());
        format!("{payload}.{}", self.sign(&payload))
    }

    fn session_role(&self, cookie: &str) -> Option<Role> {
        let (payload, signature) = cookie.rsplit_once('.')?;
        if !Secret::new(self.sign(payload)).matches(signature) {
            return None;
        }
        let mut parts = payload.split('.');
        let role = match parts.next()? {
            "operator" => Role::Operator,
            "viewer" => Role::Viewer,
            _ => return None,
        };
        let expires: u64 = parts.next()?.parse().ok()?;
        let live = expires > unix_now() && !self.logged_out().contains_key(cookie);
        live.then_some(role)
    }

    fn end_session(&self, cookie: &str) {
        let now = unix_now();
        let mut logged_out = self.logged_out();
        logged_out.retain(|_, expires| *expires > now);
        logged_out.insert(cookie.to_owned(), now + self.session_ttl.as_secs());
    }

    /// Who is calling, from a bearer token or a session cookie.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return self.role_of_token(token.trim()).map(|role| Caller {
                role,
                by_cookie: false,
            });
        }
        session_cookie(headers)
            .and_then(|id| self.session_role(id))
            .map(|role| Caller {
                role,
                by_cookie: true,
            })
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// Paths anyone may reach.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/login" | "/logout" | "/healthz" | "/readyz" | "/favicon.svg"
    ) || path.starts_with("/pkg/")
}

/// Whether a browser request comes from this site: its `Origin` (or else `Referer`) names the
/// same host as `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    source
        .and_then(|s| s.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
}

/// The middleware: public paths pass; everything else needs a caller. Unauthenticated API
/// calls get 401, pages a redirect to the login page. Cookie-authenticated state changes must
/// be same-origin (403 otherwise).
pub async fn authenticate(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if is_public(&path) {
        return next.run(request).await;
    }
    let Some(caller) = auth.caller(request.headers()) else {
        if path.starts_with("/api/") || path == "/metrics" || request.method() != Method::GET {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "log in at /login, or send Authorization: Bearer <token>",
            )
            .into_response();
        }
        return Redirect::to("/login").into_response();
    };
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if caller.by_cookie && changes_state && !same_origin(request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "a state change with a session cookie must come from this site (Origin or Referer must match Host)",
        )
        .into_response();
    }
    request.extensions_mut().insert(caller);
    // The dashboard's server functions read the role alone.
    request.extensions_mut().insert(caller.role);
    next.run(request).await
}

/// `GET /login?token=...` (the start-up URL) or the login form.
#[derive(Deserialize)]
pub struct LoginQuery {
    token: Option<String>,
}

/// `POST /login` form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Shows the login form, or logs in with `?token=`.
pub async fn login_page(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    match query.token {
        Some(token) => log_in(&auth, &headers, &token),
        None => login_form(&auth, None, StatusCode::OK),
    }
}

/// Logs in with the posted token.
pub async fn login_submit(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    log_in(&auth, &headers, &form.token)
}

/// Ends the session and clears the cookie.
pub async fn logout(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers) {
        auth.end_session(id);
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

fn log_in(auth: &Auth, headers: &HeaderMap, token: &str) -> Response {
    let Some(role) = auth.role_of_token(token.trim()) else {
        tracing::warn!("login refused: wrong token");
        return login_form(
            auth,
            Some("That token is not valid."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let id = auth.start_session(role);
    // Secure when the client reached us over HTTPS (through a TLS-terminating proxy).
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        auth.session_ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    tracing::info!(role = role.as_str(), "logged in");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

fn login_form(auth: &Auth, error: Option<&str>, status: StatusCode) -> Response {
    let stylesheet = &auth.stylesheet;
    let error = error
        .map(|e| format!(r#"<p class="banner error" role="alert">{e}</p>"#))
        .unwrap_or_default();
    let page = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · Leasewatch</title>{stylesheet}
<link rel="icon" href="/favicon.svg" type="image/svg+xml"></head>
<body><main class="monitor login"><h1>Leasewatch</h1>{error}
<form method="post" action="/login"><label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button></form>
<p class="note">The operator token is in <code>LEASEWATCH_OPERATOR_TOKEN</code>, or in the login URL
the server printed at start-up.</p></main></body></html>"#
    );
    (status, Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn tokens_match_exactly_and_never_print() {
        let secret = Secret::new("abcdef0123456789");
        assert!(secret.matches("abcdef0123456789"));
        assert!(!secret.matches("abcdef012345678"));
        assert!(!secret.matches("abcdef01234567890"));
        assert!(!secret.matches(""));
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(Secret::generate().expose().len(), 64);
    }

    #[test]
    fn same_origin_compares_origin_or_referer_with_host() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
        assert!(!same_origin(&headers), "neither Origin nor Referer");
        headers.insert(
            header::REFERER,
            HeaderValue::from_static("http://127.0.0.1:3000/x"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers), "Origin wins over Referer");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:3000"),
        );
        assert!(same_origin(&headers));
    }

    #[test]
    fn sessions_are_signed_expire_and_end_at_logout() {
        let auth = Auth::new(Secret::new("o".repeat(16)), None, Duration::from_secs(60));
        let cookie = auth.start_session(Role::Viewer);
        assert_eq!(auth.session_role(&cookie), Some(Role::Viewer));
        let forged = cookie.replacen("viewer", "operator", 1);
        assert_eq!(
            auth.session_role(&forged),
            None,
            "the signature covers the role"
        );
        let restarted = Auth::new(Secret::new("o".repeat(16)), None, Duration::from_secs(60));
        assert_eq!(
            restarted.session_role(&cookie),
            Some(Role::Viewer),
            "survives a restart"
        );
        let other = Auth::new(Secret::new("p".repeat(16)), None, Duration::from_secs(60));
        assert_eq!(other.session_role(&cookie), None, "not with another token");
        auth.end_session(&cookie);
        assert_eq!(auth.session_role(&cookie), None);
        let expired = Auth::new(Secret::new("o".repeat(16)), None, Duration::ZERO);
        let cookie = expired.start_session(Role::Operator);
        assert_eq!(expired.session_role(&cookie), None);
    }
}
