//! The pages besides the dashboard: the runs in the history, one run with its attempts, and the
//! audit log. Their filters are a plain GET form and their paging plain links, so the whole
//! state is in the URL and a pasted link or a reload shows the same. [`Page`] says which page a
//! URL is, the same on the server and in the browser.
//!
//! They have nothing that changes once loaded, so their content is read and written as markup
//! on the server only ([`ssr::content`], by their route handler, before the app renders) and
//! placed as the inner HTML of one element. Hydration keeps an element's inner HTML as the
//! server sent it, so the browser hydrates the page around it (the navigation) without the
//! content's data, its markup code or a call for it: the WASM stays as small as the
//! dashboard's. The markup is written with `maud`, which escapes every value.

// The content's markup is written on the server only.
#[cfg(any(feature = "ssr", test))]
mod audit;
#[cfg(any(feature = "ssr", test))]
mod runs;
#[cfg(any(feature = "ssr", test))]
mod write;

use leptos::{either::Either, prelude::*};

use crate::{
    base::href,
    prefs::DisplayPrefs,
    wire::{SamplesQuery, samples_query},
};

/// Which page a URL shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `/`: the dashboard, its charts over the span the query asks for.
    Dashboard(SamplesQuery),
    /// `/runs`: the runs its query string asks for (read on the server, with the content).
    Runs(String),
    /// `/runs/{instance}/{run_id}`: one run.
    Run {
        /// The instance that ran it, as given.
        instance: String,
        /// Its number within that instance.
        run_id: u64,
    },
    /// `/audit`: the audit entries its query string asks for (read on the server).
    Audit(String),
    /// Anything else (the server answers those with its own not-found page).
    NotFound,
}

impl Page {
    /// The page at `path` with `query` (without its `?`).
    pub fn at(path: &str, query: &str) -> Self {
        match path {
            "/" => Self::Dashboard(samples_query(query)),
            "/runs" => Self::Runs(query.to_owned()),
            "/audit" => Self::Audit(query.to_owned()),
            _ => {
                // An instance is a name (a-z, 0-9, _, - and .): nothing in it needs decoding,
                // and anything encoded is refused as not a name.
                let run = path
                    .strip_prefix("/runs/")
                    .and_then(|rest| rest.split_once('/'))
                    .filter(|(instance, id)| !instance.is_empty() && !id.contains('/'));
                match run.map(|(instance, id)| (instance, id.parse::<u64>())) {
                    Some((instance, Ok(run_id))) => Self::Run {
                        instance: instance.to_owned(),
                        run_id,
                    },
                    _ => Self::NotFound,
                }
            }
        }
    }

    /// The page being rendered: from the request on the server, from the address bar in the
    /// browser (which loads each page whole, so the two agree).
    pub fn current() -> Self {
        #[cfg(feature = "ssr")]
        if let Some(parts) = use_context::<axum::http::request::Parts>() {
            return Self::at(parts.uri.path(), parts.uri.query().unwrap_or(""));
        }
        #[cfg(feature = "hydrate")]
        {
            let location = window().location();
            let search = location.search().unwrap_or_default();
            return Self::at(
                crate::base::strip(&location.pathname().unwrap_or_default()),
                search.trim_start_matches('?'),
            );
        }
        #[allow(unreachable_code)]
        Self::Dashboard(SamplesQuery::default())
    }

    /// The tab's title, for pages other than the dashboard (whose title says what needs
    /// attention).
    pub fn title(&self) -> Option<String> {
        match self {
            Self::Dashboard(_) => None,
            Self::Runs(..) => Some("Runs · Leasewatch".to_owned()),
            Self::Run { run_id, .. } => Some(format!("Run {run_id} · Leasewatch")),
            Self::Audit(..) => Some("Audit log · Leasewatch".to_owned()),
            Self::NotFound => Some("Page not found · Leasewatch".to_owned()),
        }
    }
}

/// Which page the navigation marks as the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Here {
    /// The dashboard.
    Dashboard,
    /// The runs, or one of them.
    Runs,
    /// The audit log.
    Audit,
}

/// The navigation every page carries: Dashboard · Runs · Audit log.
#[component]
pub fn SiteNav(
    /// The page it is on.
    here: Here,
) -> impl IntoView {
    let current = move |page: Here| (here == page).then_some("page");
    view! {
        <nav class="site-nav" aria-label="Pages">
            <a href=href("/") aria-current=current(Here::Dashboard)>"Dashboard"</a>
            <span aria-hidden="true">" · "</span>
            <a href=href("/runs") aria-current=current(Here::Runs)>"Runs"</a>
            <span aria-hidden="true">" · "</span>
            <a href=href("/audit") aria-current=current(Here::Audit)>"Audit log"</a>
        </nav>
    }
}

/// What every page starts with: a "Skip to content" link past the header (to `#content`),
/// then the header: the site's name (the dashboard's heading; the other pages have their own),
/// the navigation, the display preferences and logging out.
#[component]
pub fn Masthead(
    /// The page it is on.
    here: Here,
) -> impl IntoView {
    let name = if here == Here::Dashboard {
        Either::Left(view! {
            <h1>"Leasewatch"</h1>
            <p class="tagline">"Background tasks and the connections they hold"</p>
        })
    } else {
        Either::Right(view! { <p class="site-name">"Leasewatch"</p> })
    };
    view! {
        <a class="skip-link" href="#content">"Skip to content"</a>
        <header class="masthead">
            {name}
            <SiteNav here/>
            <DisplayPrefs/>
            <form method="post" action=href("/logout")>
                <button type="submit" class="quiet">"Log out"</button>
            </form>
        </header>
    }
}

/// A history page's content: its markup, written on the server with its data
/// ([`ssr::content`]) and given to the app through the context while it renders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content(pub String);

/// A history page (the runs, a run, the audit log): the masthead with the navigation, then its
/// content. In the browser there is no [`Content`]: hydration keeps the element's inner HTML
/// as the server sent it.
#[component]
pub fn HistoryPage(
    /// The page, for the navigation.
    here: Here,
) -> impl IntoView {
    let content = use_context::<Content>().unwrap_or_default().0;
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <Masthead here/>
        <main class="monitor page" id="content" data-hydrated=move || hydrated.get().to_string()>
            <div class="history" inner_html=content></div>
        </main>
    }
}

/// The page answered for a path no page has (the server answers it with status 404).
#[component]
pub fn NotFoundPage() -> impl IntoView {
    view! {
        <main class="not-found">
            <p>"Page not found."</p>
            <p><a href=href("/")>"Go to the dashboard"</a></p>
        </main>
    }
}

/// Reading and writing the history pages' content, on the server.
#[cfg(feature = "ssr")]
pub mod ssr {
    use axum::http::StatusCode;

    use super::{Content, Page, audit::audit_body, runs};
    use crate::{
        api::ssr::{AppState, audit, run, runs, task_names},
        base::{Base, with_base},
        wire::{Read, RunsView, audit_query, runs_query},
    };

    /// The content of `page` (the runs, a run, the audit log), read from the database and
    /// written as markup, with the status the page answers with: 400 for a refused filter,
    /// 404 for a run not there (or a path that is no page), 503 while the database cannot be
    /// read.
    ///
    /// Its links carry `base`, the prefix the site is mounted under.
    pub async fn content(state: &AppState, page: &Page, base: &Base) -> (Content, StatusCode) {
        match page {
            Page::Runs(query) => {
                let (query, refused) = runs_query(query);
                let view = match &refused {
                    Some(refused) => RunsView {
                        tasks: task_names(state),
                        found: Read::Refused(refused.clone()),
                    },
                    None => runs(state, &query).await,
                };
                let status = status(&view.found);
                (
                    Content(with_base(base, || runs::runs_body(&query, &view))),
                    status,
                )
            }
            Page::Run { instance, run_id } => {
                let found = run(state, instance, *run_id).await;
                let status = status(&found);
                (
                    Content(with_base(base, || {
                        runs::run_body(instance, *run_id, &found)
                    })),
                    status,
                )
            }
            Page::Audit(query) => {
                let (query, refused) = audit_query(query);
                let found = match refused {
                    Some(refused) => Read::Refused(refused),
                    None => audit(state, &query).await,
                };
                let status = status(&found);
                let now_ms = chrono::Utc::now().timestamp_millis();
                (
                    Content(with_base(base, || audit_body(&query, &found, now_ms))),
                    status,
                )
            }
            Page::Dashboard(_) => (Content::default(), StatusCode::OK),
            Page::NotFound => (Content::default(), StatusCode::NOT_FOUND),
        }
    }

    fn status<T>(read: &Read<T>) -> StatusCode {
        match read {
            Read::Found(_) => StatusCode::OK,
            Read::Refused(_) => StatusCode::BAD_REQUEST,
            Read::Missing => StatusCode::NOT_FOUND,
            Read::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_is_its_page() {
        assert_eq!(
            Page::at("/", "range=24h"),
            Page::Dashboard(SamplesQuery {
                range: Some("24h".to_owned()),
                ..SamplesQuery::default()
            })
        );
        assert_eq!(
            Page::at("/runs", "task=health_check&outcome=failed"),
            Page::Runs("task=health_check&outcome=failed".to_owned())
        );
        assert_eq!(
            Page::at("/runs/4242-0a1b2c3d/17", ""),
            Page::Run {
                instance: "4242-0a1b2c3d".to_owned(),
                run_id: 17
            }
        );
        assert_eq!(
            Page::at("/audit", "before=9"),
            Page::Audit("before=9".to_owned())
        );
        for path in [
            "/runs/x",
            "/runs/x/y",
            "/runs//1",
            "/runs/x/1/2",
            "/nope",
            "/audit/",
        ] {
            assert_eq!(Page::at(path, ""), Page::NotFound, "{path}");
        }
        assert_eq!(
            Page::at("/runs/a/1", "").title().as_deref(),
            Some("Run 1 · Leasewatch")
        );
    }
}
