//! What every response gets and every request is checked for before routing: the `Host`
//! allowlist (no DNS rebinding), security headers with a per-response CSP nonce for Leptos's
//! scripts, and caching rules (hashed assets for a year, everything else never stored).

use std::{net::IpAddr, sync::Arc};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use url::Url;

use crate::error::ApiError;

/// Largest request body accepted, on every route.
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// The nonce of this response's scripts, in the request's extensions for the page renderer.
#[derive(Debug, Clone)]
pub(crate) struct CspNonce(pub String);

/// Which `Host` values are answered.
#[derive(Debug, Clone)]
pub enum Hosts {
    /// Any (bound to a non-loopback address with no `PUBLIC_URL`: nothing to check against).
    Any,
    /// These names, with or without a port; plus loopback names when bound to loopback.
    Only {
        /// Host names from `PUBLIC_URL`.
        names: Vec<String>,
        /// Whether `localhost`, `127.0.0.0/8` and `[::1]` are also answered.
        loopback: bool,
    },
}

impl Hosts {
    /// The allowlist for a server bound to `bind` and reached at `public`.
    pub fn new(bind: IpAddr, public: Option<&Url>) -> Self {
        let names: Vec<String> = public
            .and_then(Url::host_str)
            .map(|h| h.to_ascii_lowercase())
            .into_iter()
            .collect();
        if names.is_empty() && !bind.is_loopback() {
            return Self::Any;
        }
        Self::Only {
            names,
            loopback: bind.is_loopback(),
        }
    }

    fn allows(&self, host: &str) -> bool {
        let Self::Only { names, loopback } = self else {
            return true;
        };
        // `name[:port]` or `[v6][:port]`.
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        }
        .to_ascii_lowercase();
        let is_loopback =
            name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        names.contains(&name) || (*loopback && is_loopback)
    }
}

/// Refuses a `Host` the server does not answer to (421), except for the probes, which
/// orchestrators send with whatever address they reach the process at.
pub(crate) async fn check_host(
    State(hosts): State<Arc<Hosts>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let probe = matches!(path, "/healthz" | "/readyz");
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    if probe || matches!(*hosts, Hosts::Any) || host.is_some_and(|h| hosts.allows(h)) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "unknown_host",
        "this server does not answer to that Host; set PUBLIC_URL to the address browsers use",
    )
    .into_response()
}

/// Reads the whole body, at most [`MAX_BODY`] bytes, before any handler runs, so whatever
/// reads it (the API, the dashboard's server functions, the login form) gets a bounded body,
/// and too large is a 413 everywhere. A body that stops arriving is cut off by the body
/// timeout (408).
pub(crate) async fn limit_body(request: Request, next: Next) -> Response {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body must be at most {MAX_BODY} bytes"),
        )
        .into_response()
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(err) => {
            let cause = err.into_inner();
            if cause.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else if cause.is::<tower_http::timeout::TimeoutError>() {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive in time",
                )
                .into_response()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "body_unreadable",
                    format!("the request body could not be read: {cause}"),
                )
                .into_response()
            }
        }
    }
}

/// Security headers on every response; the CSP allows scripts by this response's nonce only.
pub(crate) async fn security_headers(mut request: Request, next: Next) -> Response {
    let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let asset = request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let csp = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).expect("a nonce is URL-safe base64"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: under it browsers send `Origin: null` with the site's own form posts,
    // and the same-origin check must see the real origin.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // Pages and API answers hold live state (and the page, the database's location): never
    // kept by a cache or the back/forward cache after logout. Hashed assets keep their
    // one-year header; unhashed ones are checked with the server on each use.
    if !asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_bind_answers_loopback_names_and_the_public_host_only() {
        let public = Url::parse("https://lw.example.com").unwrap();
        let hosts = Hosts::new("127.0.0.1".parse().unwrap(), Some(&public));
        for ok in [
            "127.0.0.1:3000",
            "localhost",
            "[::1]:3000",
            "LW.example.com",
            "lw.example.com:443",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:3000",
            "127.0.0.1.evil.example",
            "[2001:db8::1]",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        let open = Hosts::new("0.0.0.0".parse().unwrap(), None);
        assert!(open.allows("anything.example"));
        let public_only = Hosts::new("0.0.0.0".parse().unwrap(), Some(&public));
        assert!(!public_only.allows("127.0.0.1:3000"));
    }
}
