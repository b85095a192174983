//! The one router: every route the server answers, and the layers in front of them. The API's
//! routes are mounted with their OpenAPI descriptions, so the document served at
//! `/api/openapi.json` lists exactly what is routed.

use std::{sync::Arc, time::Duration};

use aide::{
    axum::{ApiRouter, routing::get_with},
    openapi::OpenApi,
};
use axum::{
    Extension, Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use leasewatch_app::{
    api::ssr::AppState,
    base::Base,
    not_found_shell,
    pages::{self, Page},
    shell,
};
use leptos::{
    nonce::Nonce,
    prelude::{provide_context, use_context},
};
use leptos_axum::{AxumRouteListing, LeptosRoutes};
use leptos_router::{Method, SsrMode};
use tower_http::{
    compression::CompressionLayer,
    timeout::{RequestBodyTimeoutLayer, TimeoutLayer},
};

use crate::{
    api::{
        AUDIT_PATH, OPENAPI_PATH, RUNS_PATH, SAMPLES_PATH, STATUS_PATH, audit, probes, runs, status,
    },
    auth::{self, Auth, login},
    edge::{self, CspNonce, Hosts},
    metrics,
    openapi::{self, Document},
};

/// The history's pages (see `leasewatch_app::pages`): the runs, one run, the audit log.
const HISTORY_PAGES: [&str; 3] = ["/runs", "/runs/{instance}/{run_id}", "/audit"];

/// Paths that serve pages or forms to browsers rather than the JSON API: not in the OpenAPI
/// document. (The dashboard's server functions, under `/api/`, are not either: they are the
/// page's own calls, listed by Leptos.)
pub const PAGE_PATHS: [&str; 6] = [
    "/",
    HISTORY_PAGES[0],
    HISTORY_PAGES[1],
    HISTORY_PAGES[2],
    "/login",
    "/logout",
];

/// A request body must arrive within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// A request must be answered within this (a stop waits up to 10 s for runs in flight).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The API: each handler with its description in the OpenAPI document.
fn api() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            STATUS_PATH,
            get_with(status::get, status::get_docs).post_with(status::act, status::act_docs),
        )
        .api_route(AUDIT_PATH, get_with(audit::get, audit::get_docs))
        .api_route(RUNS_PATH, get_with(runs::list, runs::list_docs))
        .api_route(
            "/api/admin/runs/{instance}/{run_id}",
            get_with(runs::detail, runs::detail_docs),
        )
        .api_route(SAMPLES_PATH, get_with(runs::samples, runs::samples_docs))
        .api_route("/metrics", get_with(metrics::scrape, metrics::scrape_docs))
        .api_route("/healthz", get_with(probes::healthz, probes::healthz_docs))
        .api_route("/readyz", get_with(probes::readyz, probes::readyz_docs))
        .api_route(OPENAPI_PATH, get_with(openapi::serve, openapi::serve_docs))
}

/// The API's routes and the document that describes them.
pub(crate) fn api_with_document() -> (Router<AppState>, OpenApi) {
    let mut document = OpenApi::default();
    let router = api().finish_api_with(&mut document, openapi::describe);
    (router, document)
}

/// Everything the server answers: the API, the dashboard (SSR + server functions), the login
/// page and static files, behind the edge checks and the authentication middleware.
pub fn router(state: AppState, auth: Arc<Auth>, hosts: Hosts) -> Router {
    router_at(state, auth, hosts, Base::default())
}

/// [`router`] for a site mounted under the path prefix `base` (see [`crate::embed`]): the
/// routes match paths without it, as the host app passes them on; the pages, redirects and
/// cookies carry it (`auth` must have been made with the same prefix).
pub(crate) fn router_at(state: AppState, auth: Arc<Auth>, hosts: Hosts, base: Base) -> Router {
    let hashed_assets = state.leptos_options.hash_files;
    let (api, document) = api_with_document();
    let api = api.layer(Extension(Document::new(&document)));
    let login = Router::new()
        .route("/login", get(login::login_page).post(login::login_submit))
        .route("/logout", post(login::logout))
        .with_state(Arc::clone(&auth));
    // The dashboard: `/`, rendered with its data before it is sent (Async), so it is readable
    // without JavaScript. `leptos_routes` also mounts the server functions. The history's pages
    // read their content first (`history_page`). Anything else is a static file or the
    // not-found page.
    let pages = vec![AxumRouteListing::new(
        "/".to_owned(),
        SsrMode::Async,
        [Method::Get],
        vec![],
    )];
    let options = state.leptos_options.clone();
    let mut app = api.leptos_routes_with_context(&state, pages, use_request_nonce, move || {
        shell(options.clone())
    });
    for path in HISTORY_PAGES {
        app = app.route(path, get(history_page));
    }
    app.fallback(leptos_axum::file_and_error_handler::<AppState, _>(
        not_found_shell,
    ))
    .with_state(state)
    .merge(login)
    .layer(middleware::from_fn_with_state(auth, auth::authenticate))
    .layer(middleware::from_fn_with_state(hashed_assets, cache_assets))
    .layer(middleware::from_fn(edge::limit_body))
    .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    ))
    .layer(middleware::from_fn(edge::security_headers))
    .layer(middleware::from_fn_with_state(
        Arc::new(hosts),
        edge::check_host,
    ))
    .layer(CompressionLayer::new())
    // Read by the pages as they render (`leasewatch_app::base`) and by `history_page`.
    .layer(Extension(base))
}

/// A history page: its content read from the database and written as markup, then the app
/// rendered around it (which places it), answered with the content's status (400 for a
/// refused filter, 404 for a run not there, 503 while the database cannot be read).
async fn history_page(State(state): State<AppState>, request: Request) -> Response {
    let uri = request.uri();
    let base = request
        .extensions()
        .get::<Base>()
        .cloned()
        .unwrap_or_default();
    // A GET form sends its empty fields too: the same page without them, so the URL says
    // only what was asked (`/runs?task=health_check&outcome=failed`).
    if let Some(tidy) = without_empty_fields(uri.path(), uri.query().unwrap_or("")) {
        return Redirect::to(&format!("{}{tidy}", base.0)).into_response();
    }
    let page = Page::at(uri.path(), uri.query().unwrap_or(""));
    let (content, status) = pages::ssr::content(&state, &page, &base).await;
    let options = state.leptos_options.clone();
    let render = leptos_axum::render_app_async_with_context(
        move || {
            provide_context(state.clone());
            provide_context(content.clone());
            use_request_nonce();
        },
        move || shell(options.clone()),
    );
    let mut response = render(request).await;
    *response.status_mut() = status;
    response
}

/// `path` with `query` less its empty fields (`name=` or a bare `name`), when it has any.
fn without_empty_fields(path: &str, query: &str) -> Option<String> {
    let pairs: Vec<&str> = query.split('&').collect();
    let given: Vec<&str> = pairs
        .iter()
        .copied()
        .filter(|pair| {
            pair.split_once('=')
                .is_some_and(|(_, value)| !value.is_empty())
        })
        .collect();
    if given.len() == pairs.len() || query.is_empty() {
        return None;
    }
    Some(if given.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", given.join("&"))
    })
}

/// Leptos's scripts carry the nonce the response's CSP names.
fn use_request_nonce() {
    let nonce = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CspNonce>().cloned());
    if let Some(CspNonce(nonce)) = nonce {
        provide_context(Nonce::from_value(nonce));
    }
}

/// Built assets carry a content hash in their names: browsers may keep them for a year.
async fn cache_assets(State(hashed): State<bool>, request: Request, next: Next) -> Response {
    let immutable = hashed && request.uri().path().starts_with("/pkg/");
    let mut response = next.run(request).await;
    if immutable && response.status().is_success() {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_s_empty_fields_are_left_out_of_the_url() {
        let tidy = |query| without_empty_fields("/runs", query);
        assert_eq!(
            tidy("task=health_check&outcome=failed&failure=&instance=&from=&to="),
            Some("/runs?task=health_check&outcome=failed".to_owned())
        );
        assert_eq!(tidy("task=&outcome="), Some("/runs".to_owned()));
        assert_eq!(tidy("flag"), Some("/runs".to_owned()));
        assert_eq!(tidy("task=health_check&limit=2"), None);
        assert_eq!(tidy(""), None);
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let (_, document) = api_with_document();
        let doc = serde_json::to_value(&document).unwrap();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "StatusResponse",
            "ActionRequest",
            "ActionResponse",
            "ErrorBody",
            "AuditEntry",
            "PoolSnapshot",
            "TaskView",
            "CleanupReport",
            "StopReport",
        ] {
            assert!(schemas.contains_key(name), "{name} missing");
        }
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["session"]["in"], "cookie");
        let post = &doc["paths"][STATUS_PATH]["post"];
        for code in ["400", "401", "403", "409", "413", "415"] {
            assert!(
                post["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("/ErrorBody")),
                "{code}: {post}"
            );
        }
        assert!(doc["paths"]["/healthz"]["get"].get("security").is_none());
    }
}
