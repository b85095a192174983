//! Reading the dashboard's data in views: a value of it, or markup written from it; nothing
//! while there is no data yet.

use leptos::prelude::*;

use crate::wire::Dashboard;

/// A value read from the data, for a view.
pub(super) fn field<T: 'static>(
    data: Memo<Option<Dashboard>>,
    read: impl Fn(&Dashboard) -> T + Send + Sync + 'static,
) -> impl Fn() -> Option<T> + Send + Sync + 'static {
    move || data.with(|d| d.as_ref().map(&read))
}

/// Markup from the data (empty while there is none), for an element's inner HTML.
pub(super) fn markup_from(
    data: Memo<Option<Dashboard>>,
    write: impl Fn(&Dashboard) -> String,
) -> String {
    data.with(|d| d.as_ref().map(write).unwrap_or_default())
}
