//! Logging in and out. The login form posts a token; the start-up line may carry a single-use
//! login link (`/login?code=…`) that expires, so the generated operator token itself never
//! travels in a URL. Both login and logout must come from this site (no login CSRF), and
//! wrong tokens or codes count toward the client's lockout.

use std::sync::Arc;

use axum::{
    Form,
    extract::{Query, Request, State},
    http::{HeaderMap, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use leasewatch_engine::control::Role;
use serde::Deserialize;

use super::{Auth, Sessions, client_ip, cross_origin};

/// `GET /login?code=...` (the start-up link).
#[derive(Deserialize)]
pub struct LoginQuery {
    code: Option<String>,
}

/// `POST /login` form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Shows the login form, or logs the operator in with a start-up link's code.
pub async fn login_page(
    State(auth): State<Arc<Auth>>,
    Query(query): Query<LoginQuery>,
    request: Request,
) -> Response {
    let Some(code) = query.code else {
        return login_form(&auth, None, StatusCode::OK);
    };
    let redeemed = auth.check_credential(client_ip(&request), || {
        auth.links.redeem(&code).then_some(Role::Operator)
    });
    match redeemed {
        Err(locked) => locked.into_response(),
        Ok(Some(role)) => start_session(&auth, role),
        Ok(None) => login_form(
            &auth,
            Some("That login link was used already or has expired. Log in with the token."),
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
    let Ok(Form(form)) =
        <Form<LoginForm> as axum::extract::FromRequest<()>>::from_request(request, &()).await
    else {
        return login_form(
            &auth,
            Some("Send the token in the form."),
            StatusCode::BAD_REQUEST,
        );
    };
    let LoginForm { token } = form;
    match auth.role_of_token(token.trim(), client) {
        Err(locked) => locked.into_response(),
        Ok(Some(role)) => start_session(&auth, role),
        Ok(None) => login_form(
            &auth,
            Some("That token is not valid."),
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
                Some("Logout could not be saved (the database is unreachable). Try again."),
            ),
        )
            .into_response();
    }
    (Sessions::cleared(), Redirect::to("/login")).into_response()
}

fn start_session(auth: &Auth, role: Role) -> Response {
    match auth.sessions.start(role, auth.site.secure()) {
        Some(jar) => {
            tracing::info!(role = role.as_str(), "logged in");
            (jar, Redirect::to("/")).into_response()
        }
        None => login_form(
            auth,
            Some("That role has no token."),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

fn login_form(auth: &Auth, error: Option<&'static str>, status: StatusCode) -> Response {
    (status, login_page_html(auth, error)).into_response()
}

fn login_page_html(auth: &Auth, error: Option<&'static str>) -> Html<String> {
    let page = leasewatch_app::login_shell(auth.site_options.clone(), error);
    Html(leptos::prelude::RenderHtml::to_html(page))
}
