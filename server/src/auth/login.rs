//! Logging in and out. The login form posts a token; the start-up line may carry a single-use
//! login link (`/login?code=…`) that expires, so the generated operator token itself never
//! travels in a URL. Both login and logout must come from this site (no login CSRF), and
//! wrong tokens or codes count toward the client's lockout.
//!
//! A login returns to the page that sent the browser here (`next`, e.g. the dashboard whose
//! session ended), but only to a path on this site ([`safe_next`]): never an open redirect.

use std::sync::Arc;

use axum::{
    Form,
    extract::{Query, Request, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use leasewatch_app::{
    base::{Base, with_base},
    prefs::Theme,
};
use leasewatch_engine::control::Role;
use serde::Deserialize;

use super::{Auth, client_ip, cross_origin};

/// Longest `next` accepted, in bytes: a path on this site, not a payload.
pub(crate) const MAX_NEXT: usize = 512;

/// [`safe_next_under`] at the site's root.
#[cfg(test)]
pub(crate) fn safe_next(next: &str) -> Option<&str> {
    safe_next_under("", next)
}

/// `next` when it is a path on this site under `prefix` (the path prefix the site is mounted
/// under, empty at the root), else `None` (the login then goes to the dashboard).
///
/// Accepted: one leading `/` followed by anything but a second `/` or a `\` (browsers read
/// `//host` and `/\host` as another site), the same right after `prefix`, no backslash,
/// control character or space anywhere, at most [`MAX_NEXT`] bytes, and resolving against
/// this site to this site, under `prefix` (before and after `..` is resolved). The login pages
/// themselves are refused, so a login never lands on a form again.
pub(crate) fn safe_next_under<'a>(prefix: &str, next: &'a str) -> Option<&'a str> {
    let base = url::Url::parse("http://site.invalid/").expect("a valid URL");
    let inner = next
        .strip_prefix(prefix)
        .filter(|rest| rest.starts_with('/'))?;
    let valid = next.len() <= MAX_NEXT
        && next.starts_with('/')
        && !next.starts_with("//")
        // Nor right after the prefix: what follows it reads as this site's own path.
        && !inner.starts_with("//")
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
        && base.join(next).is_ok_and(|url| {
            url.origin() == base.origin() && url.path().starts_with(&format!("{prefix}/"))
        })
        && !matches!(inner.split(['?', '#']).next(), Some("/login" | "/logout"));
    valid.then_some(next)
}

/// [`login_location_under`] at the site's root.
#[cfg(test)]
pub(crate) fn login_location(path_and_query: &str) -> String {
    login_location_under("", path_and_query)
}

/// `<prefix>/login?next=…` for a page the browser asked for without a session
/// (`path_and_query`, as the site's routes saw it: without the prefix); plain
/// `<prefix>/login` for the dashboard itself, where a login goes anyway.
pub(crate) fn login_location_under(prefix: &str, path_and_query: &str) -> String {
    let asked = format!("{prefix}{path_and_query}");
    match safe_next_under(prefix, &asked) {
        Some(next) if next != format!("{prefix}/") => {
            let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
            format!("{prefix}/login?next={encoded}")
        }
        _ => format!("{prefix}/login"),
    }
}

/// `GET /login?code=...` (the start-up link), `GET /login?next=...` (where to go after).
#[derive(Deserialize)]
pub struct LoginQuery {
    code: Option<String>,
    next: Option<String>,
}

/// `POST /login` form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Shows the login form, or logs the operator in with a start-up link's code.
pub async fn login_page(
    State(auth): State<Arc<Auth>>,
    Query(query): Query<LoginQuery>,
    request: Request,
) -> Response {
    let next = query
        .next
        .as_deref()
        .and_then(|next| safe_next_under(&auth.base, next));
    let theme = Theme::of_headers(request.headers());
    let Some(code) = query.code else {
        return login_form(&auth, theme, None, next, StatusCode::OK);
    };
    let redeemed = auth.check_credential(client_ip(&request), || {
        auth.links.redeem(&code).then_some(Role::Operator)
    });
    match redeemed {
        Err(locked) => locked.into_response(),
        Ok(Some(role)) => start_session(&auth, theme, role, next),
        Ok(None) => login_form(
            &auth,
            theme,
            Some("That login link was used already or has expired. Log in with the token."),
            next,
            StatusCode::UNAUTHORIZED,
        ),
    }
}

/// Logs in with the posted token.
pub async fn login_submit(State(auth): State<Arc<Auth>>, request: Request) -> Response {
    if !auth.site.same_origin(request.headers()) {
        return cross_origin();
    }
    let client = client_ip(&request);
    let theme = Theme::of_headers(request.headers());
    let Ok(Form(form)) =
        <Form<LoginForm> as axum::extract::FromRequest<()>>::from_request(request, &()).await
    else {
        return login_form(
            &auth,
            theme,
            Some("Send the token in the form."),
            None,
            StatusCode::BAD_REQUEST,
        );
    };
    let LoginForm { token, next } = form;
    let next = next
        .as_deref()
        .and_then(|next| safe_next_under(&auth.base, next));
    match auth.role_of_token(token.trim(), client) {
        Err(locked) => locked.into_response(),
        Ok(Some(role)) => start_session(&auth, theme, role, next),
        Ok(None) => login_form(
            &auth,
            theme,
            Some("That token is not valid."),
            next,
            StatusCode::UNAUTHORIZED,
        ),
    }
}

/// Ends the session everywhere and clears the cookie.
pub async fn logout(State(auth): State<Arc<Auth>>, headers: HeaderMap) -> Response {
    if !auth.site.same_origin(&headers) {
        return cross_origin();
    }
    // Only a session this server signed is recorded: junk cookies cost nothing.
    if let Some(session) = auth.sessions.verify(&headers)
        && let Err(err) = auth.sessions.revoke(&session).await
    {
        tracing::error!(%err, "logout: the ended session could not be saved to the database");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            login_page_html(
                &auth,
                Theme::of_headers(&headers),
                Some("Logout could not be saved (the database is unreachable). Try again."),
                None,
            ),
        )
            .into_response();
    }
    (
        auth.sessions.cleared_here(),
        Redirect::to(&format!("{}/login", auth.base)),
    )
        .into_response()
}

/// Logs `role` in and sends the browser on to `next` (checked by [`safe_next`]) or the
/// dashboard.
fn start_session(auth: &Auth, theme: Theme, role: Role, next: Option<&str>) -> Response {
    match auth.sessions.start(role, auth.site.secure()) {
        Some(jar) => {
            tracing::info!(role = role.as_str(), "logged in");
            let dashboard = format!("{}/", auth.base);
            (jar, Redirect::to(next.unwrap_or(&dashboard))).into_response()
        }
        None => login_form(
            auth,
            theme,
            Some("That role has no token."),
            next,
            StatusCode::UNAUTHORIZED,
        ),
    }
}

/// The login page in `theme` (the request's cookie's), with `error` and `next`.
fn login_form(
    auth: &Auth,
    theme: Theme,
    error: Option<&'static str>,
    next: Option<&str>,
    status: StatusCode,
) -> Response {
    (status, login_page_html(auth, theme, error, next)).into_response()
}

fn login_page_html(
    auth: &Auth,
    theme: Theme,
    error: Option<&'static str>,
    next: Option<&str>,
) -> Html<String> {
    // Written outside a request's render: the prefix is given for the length of the call.
    Html(with_base(&Base(auth.base.clone()), || {
        let page = leasewatch_app::login_shell(
            auth.site_options.clone(),
            theme,
            error,
            next.map(str::to_owned),
        );
        leptos::prelude::RenderHtml::to_html(page)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_accepts_paths_on_this_site() {
        for ok in [
            "/",
            "/?tab=tasks",
            "/#tasks",
            "/pkg/x.css",
            "/a/b?c=%2F%2Fd",
        ] {
            assert_eq!(safe_next(ok), Some(ok), "{ok}");
        }
    }

    #[test]
    fn next_refuses_anything_that_could_leave_the_site() {
        let long = format!("/{}", "a".repeat(MAX_NEXT));
        let hostile = [
            "//evil.example",
            "//evil.example/",
            "///evil.example",
            "https://evil.example",
            "http://evil.example/",
            "/\\evil.example",
            "/\\/evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            " /",
            "/\t/evil.example",
            "/\n//evil.example",
            "/ //evil.example",
            "/login",
            "/login?next=//evil.example",
            "/logout",
            long.as_str(),
        ];
        for bad in hostile {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&long[..MAX_NEXT]), Some(&long[..MAX_NEXT]));
    }

    #[test]
    fn a_page_asked_for_without_a_session_comes_back_after_login() {
        assert_eq!(login_location("/"), "/login");
        assert_eq!(
            login_location("/?a=1&b=2"),
            "/login?next=%2F%3Fa%3D1%26b%3D2"
        );
        assert_eq!(login_location("//evil.example"), "/login");
        assert_eq!(login_location("/\\evil.example"), "/login");
    }

    #[test]
    fn under_a_prefix_next_stays_under_it() {
        let prefix = "/admin/leasewatch";
        for ok in [
            "/admin/leasewatch/",
            "/admin/leasewatch/runs?task=x",
            "/admin/leasewatch/audit#x",
        ] {
            assert_eq!(safe_next_under(prefix, ok), Some(ok), "{ok}");
        }
        for bad in [
            "/",
            "/admin",
            "/admin/leasewatch",
            "/admin/leasewatchx/",
            "/admin/leasewatch/../x",
            "/admin/leasewatch/%2e%2e/x",
            "/admin/leasewatch/login",
            "/admin/leasewatch/logout?x",
            "//admin/leasewatch/",
            "https://evil.example/admin/leasewatch/",
        ] {
            assert_eq!(safe_next_under(prefix, bad), None, "{bad:?}");
        }
        assert_eq!(login_location_under(prefix, "/"), "/admin/leasewatch/login");
        assert_eq!(
            login_location_under(prefix, "/runs?a=1"),
            "/admin/leasewatch/login?next=%2Fadmin%2Fleasewatch%2Fruns%3Fa%3D1"
        );
        assert_eq!(
            login_location_under(prefix, "//evil.example"),
            "/admin/leasewatch/login"
        );
    }
}
