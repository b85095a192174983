//! Where the dashboard sits in its site: at `/` (the Leasewatch binary) or under a path prefix
//! such as `/admin/leasewatch` (embedded in another axum app). Every link, form, redirect,
//! asset and icon the pages write goes through [`href`], so the same pages work at either.
//!
//! The routes themselves never see the prefix (the host app strips it before they match), so
//! [`crate::pages::Page::at`] reads paths without it. On the server the prefix comes from the
//! request being rendered ([`Base`] in its extensions, put there by the router), or from
//! [`with_base`] for markup written outside a render; in the browser from the
//! `<meta name="leasewatch-base">` the server writes into the page when there is a prefix.

use leptos::prelude::*;

/// The name of the `<meta>` that carries a non-empty prefix to the browser.
pub const META_NAME: &str = "leasewatch-base";

/// The path prefix the dashboard is mounted under: empty at the site's root, else a path
/// starting with `/` and not ending with one (`/admin/leasewatch`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Base(pub String);

/// The prefix of the page being rendered or hydrated (empty at the site's root).
pub fn base() -> String {
    #[cfg(feature = "ssr")]
    {
        if let Some(Base(base)) = SCOPED.with(|scoped| scoped.borrow().clone()) {
            return base;
        }
        if let Some(parts) = use_context::<axum::http::request::Parts>()
            && let Some(Base(base)) = parts.extensions.get::<Base>()
        {
            return base.clone();
        }
    }
    #[cfg(feature = "hydrate")]
    {
        return FROM_PAGE.with(Clone::clone);
    }
    #[allow(unreachable_code)]
    String::new()
}

/// `path` (a path on the dashboard, starting with `/`) as the browser must ask for it.
pub fn href(path: &str) -> String {
    format!("{}{path}", base())
}

/// The path cookies are scoped to: the prefix, or the whole site at the root.
pub fn cookie_path() -> String {
    let base = base();
    if base.is_empty() {
        "/".to_owned()
    } else {
        base
    }
}

/// The `<meta>` that tells the browser the prefix; nothing at the site's root, so the page is
/// written as it always was there.
#[component]
pub fn BaseMeta() -> impl IntoView {
    let base = base();
    (!base.is_empty()).then(|| view! { <meta name=META_NAME content=base/> })
}

#[cfg(feature = "ssr")]
thread_local! {
    /// The prefix for markup written outside a render (the history pages' content, the login
    /// page), set for the length of one synchronous call by [`with_base`].
    static SCOPED: std::cell::RefCell<Option<Base>> = const { std::cell::RefCell::new(None) };
}

/// Runs `write` (synchronous markup, outside any render) with `base` as the prefix.
#[cfg(feature = "ssr")]
pub fn with_base<T>(base: &Base, write: impl FnOnce() -> T) -> T {
    let previous = SCOPED.with(|scoped| scoped.replace(Some(base.clone())));
    let written = write();
    SCOPED.with(|scoped| *scoped.borrow_mut() = previous);
    written
}

#[cfg(feature = "hydrate")]
thread_local! {
    /// The prefix the server wrote into the page, read once.
    static FROM_PAGE: String = document()
        .query_selector(&format!(r#"meta[name="{META_NAME}"]"#))
        .ok()
        .flatten()
        .and_then(|meta| meta.get_attribute("content"))
        .unwrap_or_default();
}

/// The path the dashboard's routes see for the browser's `pathname`: without the prefix.
pub fn strip(pathname: &str) -> &str {
    #[cfg(feature = "hydrate")]
    if let Some(rest) = FROM_PAGE.with(|base| {
        (!base.is_empty())
            .then(|| pathname.strip_prefix(base.as_str()))
            .flatten()
    }) {
        return if rest.is_empty() { "/" } else { rest };
    }
    pathname
}
