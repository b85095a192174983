//! Leasewatch's dashboard, shared by the server (SSR, feature `ssr`) and the browser
//! (hydration, feature `hydrate`).
//!
//! Layout:
//! - [`wire`]: the types that cross between server and browser (serde only, so they compile to
//!   WASM).
//! - [`base`]: where the dashboard sits in its site (`/`, or a prefix when embedded).
//! - [`api`]: the server functions the dashboard calls; their bodies, and the state they read,
//!   exist only under `ssr`.
//! - [`monitor`]: the `<BackgroundTaskMonitor/>` page and its parts.
//! - [`pages`]: the runs, a run's and the audit log's pages, and which page a URL is.
//! - [`charts`]: the SVG charts drawn from the history.
//! - [`markup`]: the read-only parts written as HTML (charts, table rows).
//! - [`prefs`]: the reader's time zone and theme, and how instants are written.

#![recursion_limit = "256"]

pub mod api;
pub mod base;
pub mod charts;
pub mod markup;
pub mod monitor;
pub mod pages;
pub mod prefs;
pub mod wire;

use leptos::{either::EitherOf3, prelude::*};
use leptos_meta::HashedStylesheet;

use base::{BaseMeta, base, href};

pub use monitor::BackgroundTaskMonitor;
use pages::{Here, HistoryPage, NotFoundPage, Page};
use prefs::{Prefs, Theme};

/// The HTML document around the app, rendered on the server, with the tab's title and icon
/// for what needs attention now (the hydrated page keeps them current), in the theme the
/// request's cookie names.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let attention = current_attention();
    let title = Page::current().title().unwrap_or_else(|| attention.title());
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=Theme::of_page().attribute()>
            <head>
                {common_head(options.clone(), attention.icon())}
                <BaseMeta/>
                <HydrationScripts options root=base()/>
                // Written here and by the page's own effect: a `leptos_meta` <Title/> would
                // bring its client-side code into the WASM.
                <title>{title}</title>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// What needs attention now, from the engine the page is rendered with (on the server; the
/// shell is never rendered in the browser).
fn current_attention() -> markup::Attention {
    #[cfg(feature = "ssr")]
    if let Some(state) = use_context::<api::ssr::AppState>() {
        return markup::Attention::of(&api::ssr::advice(&state.engine));
    }
    markup::Attention::default()
}

/// What every page's `<head>` starts with: charset, viewport, icon and the hashed stylesheet.
fn common_head(options: LeptosOptions, icon: &'static str) -> impl IntoView {
    view! {
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <link rel="icon" href=href(icon) type="image/svg+xml"/>
        <HashedStylesheet options id="leptos" root=base()/>
    }
}

/// The page answered for any unknown path (with status 404): no script, nothing to hydrate;
/// in the theme the request's cookie names.
pub fn not_found_shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=Theme::of_page().attribute()>
            <head>
                {common_head(options, "/favicon.svg")}
                <title>"Page not found · Leasewatch"</title>
            </head>
            <body>
                <main class="monitor not-found">
                    <h1>"Page not found"</h1>
                    <p><a href=href("/")>"Go to the dashboard"</a></p>
                </main>
            </body>
        </html>
    }
}

/// The login page: the same head and stylesheet as the dashboard, in `theme` (the request's
/// cookie, [`Theme::from_cookie_header`]), a token form, and `error` (a fixed message of the server's)
/// when the last attempt failed. `next`, a path on this site the server has already checked,
/// is where a successful login goes. No script.
pub fn login_shell(
    options: LeptosOptions,
    theme: Theme,
    error: Option<&'static str>,
    next: Option<String>,
) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme.attribute()>
            <head>
                {common_head(options, "/favicon.svg")}
                <title>"Log in · Leasewatch"</title>
            </head>
            <body>
                <main class="monitor login">
                    <h1>"Leasewatch"</h1>
                    {error.map(|e| view! { <p class="banner error" role="alert">{e}</p> })}
                    <form method="post" action=href("/login")>
                        {next.map(|next| view! { <input type="hidden" name="next" value=next/> })}
                        <label for="token">"Access token"</label>
                        <input
                            id="token"
                            name="token"
                            type="password"
                            autocomplete="current-password"
                            required
                            autofocus
                        />
                        <button type="submit">"Log in"</button>
                    </form>
                    <p class="note">
                        "The operator token is in " <code>"LEASEWATCH_OPERATOR_TOKEN"</code>
                        ", or, when the server generated it, in the token file its start-up line names."
                    </p>
                </main>
            </body>
        </html>
    }
}

/// The root component: the page the URL names ([`Page`]).
///
/// There is no client-side router: links and the filter forms load each page whole, the server
/// renders it with its data before it is sent, and the browser hydrates the page its address
/// names; any other path the server answers with [`not_found_shell`]. So a router's code stays
/// out of the WASM, and so does the history pages' content (see [`pages`]).
#[component]
pub fn App() -> impl IntoView {
    Prefs::provide();
    match Page::current() {
        Page::Dashboard(charts) => EitherOf3::A(view! { <BackgroundTaskMonitor charts/> }),
        Page::Runs(..) | Page::Run { .. } => EitherOf3::B(view! { <HistoryPage here=Here::Runs/> }),
        Page::Audit(..) => EitherOf3::B(view! { <HistoryPage here=Here::Audit/> }),
        Page::NotFound => EitherOf3::C(view! { <NotFoundPage/> }),
    }
}
