//! The reader's display preferences: the clock times are shown on (the browser's zone or UTC)
//! and the colour theme (the system's, light or dark); the header's controls that set them;
//! and the `<time>` element every displayed instant is written as.
//!
//! The server cannot know the browser's zone, so it renders every time in UTC, and the
//! browser's first render does the same (hydration must find what the server sent); once the
//! page is mounted, it switches to the remembered choice (local by default). The theme is
//! known to the server: the toggle keeps it in a cookie ([`Theme::COOKIE`]) that the server
//! reads to put `data-theme` on `<html>`, so a page is painted in the chosen theme from the
//! start. No script could do that earlier: the CSP allows only the hydration script.
//!
//! Relative times ("3 min ago", "in 40 s") in views follow the page's clock. In markup (set
//! as inner HTML, see [`crate::markup`]) they carry `data-rel` and are written as absolute
//! times, so the markup changes only with the data; the browser rewrites their words as time
//! passes and whenever markup is replaced ([`Prefs::provide`]).

use leptos::prelude::*;
use maud::{Markup, html};

use crate::wire::{Relative, clock_at, date_time_at, iso_utc, offset_name, short_clock_at};

/// The clock times are shown on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// UTC, as the server renders them.
    #[default]
    Utc,
    /// The browser's time zone (its offset at each instant, so daylight saving is followed).
    Local,
}

impl Zone {
    /// The choices, in the order the toggle offers them.
    pub const ALL: [Zone; 2] = [Zone::Local, Zone::Utc];
    /// Where the browser remembers the choice (`localStorage`).
    pub const STORAGE_KEY: &'static str = "leasewatch_times";

    /// Its name, as stored and as the toggle's values.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utc => "utc",
            Self::Local => "local",
        }
    }

    /// Reads a name written by [`Zone::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|z| z.as_str() == name)
    }

    /// Minutes east of UTC at an instant given in Unix milliseconds: 0 for UTC, the browser's
    /// offset then for local. Only the browser shows local times; elsewhere this is 0.
    pub fn offset_minutes(self, at_ms: i64) -> i32 {
        match self {
            Self::Utc => 0,
            Self::Local => local_offset_minutes(at_ms),
        }
    }

    /// An instant's words as `shown` (relative ones as of `now_ms`): absolute ones end in
    /// " UTC" when the zone is UTC; local ones are bare (the header names the zone).
    pub fn text(self, at_ms: i64, shown: Shown, now_ms: i64) -> String {
        let offset = self.offset_minutes(at_ms);
        let suffix = if self == Self::Utc { " UTC" } else { "" };
        match shown {
            Shown::Clock => format!("{}{suffix}", clock_at(at_ms, offset)),
            Shown::ShortClock => format!("{}{suffix}", short_clock_at(at_ms, offset)),
            Shown::DateTime => format!("{}{suffix}", date_time_at(at_ms, offset)),
            Shown::Relative(relative) => relative.words(at_ms, now_ms),
        }
    }

    /// What hovering an instant shows: its date and time in UTC ("2026-12-02 14:03:07 UTC"),
    /// after the local ones when times are local ("2026-12-02 15:03:07 UTC+01:00 · …").
    pub fn title(self, at_ms: i64) -> String {
        let utc = format!("{} UTC", date_time_at(at_ms, 0));
        match self {
            Self::Utc => utc,
            Self::Local => {
                let offset = self.offset_minutes(at_ms);
                format!(
                    "{} {} · {utc}",
                    date_time_at(at_ms, offset),
                    offset_name(offset)
                )
            }
        }
    }

    /// The toggle's words for it: "Local (UTC+01:00)" once the browser's offset is known.
    fn label(self, local_offset: Option<i32>) -> String {
        match (self, local_offset) {
            (Self::Utc, _) => "UTC".to_owned(),
            (Self::Local, None) => "Local".to_owned(),
            (Self::Local, Some(offset)) => format!("Local ({})", offset_name(offset)),
        }
    }
}

/// The browser's offset from UTC at an instant, in minutes east (JavaScript's
/// `getTimezoneOffset` counts them west).
#[cfg(feature = "hydrate")]
fn local_offset_minutes(at_ms: i64) -> i32 {
    let date = js_sys::Date::new(&web_sys::wasm_bindgen::JsValue::from_f64(at_ms as f64));
    -(date.get_timezone_offset() as i32)
}

/// Off the browser there is no reader's zone: the server renders UTC.
#[cfg(not(feature = "hydrate"))]
fn local_offset_minutes(_at_ms: i64) -> i32 {
    0
}

/// How an instant reads on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// "14:03:07".
    Clock,
    /// "14:07", with the seconds only when they are not zero (a time on a schedule).
    ShortClock,
    /// "2026-12-02 14:03:07", for what outlives a day.
    DateTime,
    /// "3 min ago", "in 40 s", with the date and time on hover.
    Relative(Relative),
}

/// The colour theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    /// The system's setting (`prefers-color-scheme`).
    #[default]
    Auto,
    /// Light whatever the system says.
    Light,
    /// Dark whatever the system says.
    Dark,
}

impl Theme {
    /// The choices, in the order the toggle offers them.
    pub const ALL: [Theme; 3] = [Theme::Auto, Theme::Light, Theme::Dark];
    /// The cookie that remembers a choice other than auto, read by the server to render
    /// `<html data-theme>` (not HttpOnly: the toggle writes it).
    pub const COOKIE: &'static str = "leasewatch_theme";

    /// Its name, as the cookie, the `data-theme` attribute and the toggle's values have it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }

    /// Reads a name written by [`Theme::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// `<html data-theme>`: none for auto, where the stylesheet follows the system.
    pub fn attribute(self) -> Option<&'static str> {
        (self != Self::Auto).then_some(self.as_str())
    }

    /// The theme a `Cookie` request header names; auto when it names none (or nonsense).
    pub fn from_cookie_header(header: &str) -> Self {
        header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == Self::COOKIE)
            .and_then(|(_, value)| Self::parse(value.trim_matches('"')))
            .unwrap_or_default()
    }

    /// The theme a request's cookie names.
    #[cfg(feature = "ssr")]
    pub fn of_headers(headers: &axum::http::HeaderMap) -> Self {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(Self::from_cookie_header)
            .find(|theme| *theme != Self::Auto)
            .unwrap_or_default()
    }

    /// The theme the page is rendered in: on the server, the request's cookie; in the
    /// browser, what the server put on `<html>` (so hydration finds the same).
    pub fn of_page() -> Self {
        page_theme()
    }

    /// The toggle's words for it.
    fn label(self) -> &'static str {
        match self {
            Self::Auto => "Auto (system)",
            Self::Light => "Light",
            Self::Dark => "Dark",
        }
    }
}

#[cfg(feature = "ssr")]
fn page_theme() -> Theme {
    use_context::<axum::http::request::Parts>()
        .map(|parts| Theme::of_headers(&parts.headers))
        .unwrap_or_default()
}

#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
fn page_theme() -> Theme {
    document()
        .document_element()
        .and_then(|html| html.get_attribute("data-theme"))
        .and_then(|name| Theme::parse(&name))
        .unwrap_or_default()
}

#[cfg(not(any(feature = "ssr", feature = "hydrate")))]
fn page_theme() -> Theme {
    Theme::Auto
}

/// The preferences as the page uses them, shared through the context ([`Prefs::provide`]).
#[derive(Debug, Clone, Copy)]
pub struct Prefs {
    /// The clock times are shown on now: UTC until the page is mounted, then the choice.
    pub zone: RwSignal<Zone>,
    /// The browser's offset from UTC now, in minutes east, once mounted.
    pub local_offset: RwSignal<Option<i32>>,
    /// The theme chosen.
    pub theme: RwSignal<Theme>,
    /// The browser's clock in Unix milliseconds, ticking every second once mounted; `None`
    /// on the server and in the first render, so both render the same.
    pub now_ms: ReadSignal<Option<f64>>,
    /// Whether the page is mounted (the toggles do nothing before).
    pub mounted: RwSignal<bool>,
}

impl Prefs {
    /// Makes the preferences and puts them in the context; in the browser, once mounted,
    /// applies the remembered time zone, starts the clock and keeps relative times in
    /// markup current.
    pub fn provide() -> Self {
        let (now_ms, set_now) = signal(None::<f64>);
        let prefs = Self {
            zone: RwSignal::new(Zone::Utc),
            local_offset: RwSignal::new(None),
            theme: RwSignal::new(Theme::of_page()),
            now_ms,
            mounted: RwSignal::new(false),
        };
        provide_context(prefs);
        #[cfg(feature = "hydrate")]
        {
            Effect::new(move |_| {
                prefs.zone.set(stored_zone().unwrap_or(Zone::Local));
                prefs.mounted.set(true);
                rewrite_relative_times_on_change();
                leptos::task::spawn_local(async move {
                    loop {
                        set_now.set(Some(js_sys::Date::now()));
                        gloo_timers::future::TimeoutFuture::new(1_000).await;
                    }
                });
            });
            Effect::new(move |_| {
                let Some(now) = prefs.now_ms.get() else {
                    return;
                };
                // The offset changes with daylight saving, while the page is open too.
                let offset = Some(Zone::Local.offset_minutes(now as i64));
                if prefs.local_offset.get_untracked() != offset {
                    prefs.local_offset.set(offset);
                }
                rewrite_relative_times(now as i64);
            });
            // After the offset is known, and whenever the toggle changes.
            Effect::new(move |_| {
                if prefs.local_offset.get().is_some() {
                    rewrite_zoned_times(prefs.zone.get());
                }
            });
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = set_now;
        prefs
    }

    /// The preferences in the context.
    pub fn get() -> Self {
        expect_context()
    }

    /// Shows times on `zone`, and remembers it.
    pub fn set_zone(self, zone: Zone) {
        self.zone.set(zone);
        #[cfg(feature = "hydrate")]
        if let Ok(Some(storage)) = window().local_storage() {
            // Private windows may refuse: the choice then lasts as long as the page.
            let _ = storage.set_item(Zone::STORAGE_KEY, zone.as_str());
        }
    }

    /// Shows the page in `theme`, and remembers it in the cookie the server reads.
    pub fn set_theme(self, theme: Theme) {
        self.theme.set(theme);
        #[cfg(feature = "hydrate")]
        {
            use web_sys::wasm_bindgen::JsCast;
            let document = document();
            if let Some(html) = document.document_element() {
                let _ = match theme.attribute() {
                    Some(name) => html.set_attribute("data-theme", name),
                    None => html.remove_attribute("data-theme"),
                };
            }
            let secure = window().location().protocol().is_ok_and(|p| p == "https:");
            // Scoped to the dashboard: embedded in another app, it is not that app's cookie.
            let path = crate::base::cookie_path();
            let cookie = match theme {
                // Auto is what no cookie means.
                Theme::Auto => format!("{}=; Path={path}; Max-Age=0; SameSite=Lax", Theme::COOKIE),
                chosen => format!(
                    "{}={}; Path={path}; Max-Age=31536000; SameSite=Lax{}",
                    Theme::COOKIE,
                    chosen.as_str(),
                    if secure { "; Secure" } else { "" }
                ),
            };
            if let Ok(document) = document.dyn_into::<web_sys::HtmlDocument>() {
                let _ = document.set_cookie(&cookie);
            }
        }
    }
}

/// The zone remembered in this browser.
#[cfg(feature = "hydrate")]
fn stored_zone() -> Option<Zone> {
    let storage = window().local_storage().ok().flatten()?;
    Zone::parse(&storage.get_item(Zone::STORAGE_KEY).ok().flatten()?)
}

/// Calls `each` with every `<time>` element `selector` finds and its instant (Unix ms).
#[cfg(feature = "hydrate")]
fn for_each_time(selector: &str, mut each: impl FnMut(&web_sys::Element, i64)) {
    use web_sys::wasm_bindgen::JsCast;
    let Ok(times) = document().query_selector_all(selector) else {
        return;
    };
    for i in 0..times.length() {
        let Some(time) = times
            .item(i)
            .and_then(|node| node.dyn_into::<web_sys::Element>().ok())
        else {
            continue;
        };
        let at_ms = time
            .get_attribute("datetime")
            .map(|iso| js_sys::Date::parse(&iso))
            .filter(|ms| ms.is_finite());
        if let Some(at_ms) = at_ms {
            each(&time, at_ms as i64);
        }
    }
}

/// Sets an element's text, only when it differs: the write is itself a change the observer
/// of markup sees.
#[cfg(feature = "hydrate")]
fn set_text(element: &web_sys::Element, text: &str) {
    if element.text_content().as_deref() != Some(text) {
        element.set_text_content(Some(text));
    }
}

/// Writes the words of every relative time in markup (`time[data-rel]`) as of `now_ms`.
#[cfg(feature = "hydrate")]
fn rewrite_relative_times(now_ms: i64) {
    for_each_time("time[data-rel]", |time, at_ms| {
        let relative = time
            .get_attribute("data-rel")
            .and_then(|name| Relative::parse(&name));
        if let Some(relative) = relative {
            set_text(time, &relative.words(at_ms, now_ms));
        }
    });
}

/// Writes every date and time written in UTC (`time[data-zoned]`, see [`time_markup`]) on
/// `zone`'s clock: the history pages' content is the server's markup, kept as sent.
#[cfg(feature = "hydrate")]
fn rewrite_zoned_times(zone: Zone) {
    for_each_time("time[data-zoned]", |time, at_ms| {
        set_text(time, &zone.text(at_ms, Shown::DateTime, at_ms));
        let _ = time.set_attribute("title", &zone.title(at_ms));
    });
}

/// Rewrites relative times whenever the page's markup changes (a poll replaced a table), in
/// the same task, so their absolute stand-ins are never painted.
#[cfg(feature = "hydrate")]
fn rewrite_relative_times_on_change() {
    use web_sys::wasm_bindgen::{JsCast, closure::Closure};
    let rewrite =
        Closure::<dyn FnMut()>::new(|| rewrite_relative_times(js_sys::Date::now() as i64));
    let Ok(observer) = web_sys::MutationObserver::new(rewrite.as_ref().unchecked_ref()) else {
        return;
    };
    let options = web_sys::MutationObserverInit::new();
    options.set_child_list(true);
    options.set_subtree(true);
    if let Some(body) = document().body()
        && observer.observe_with_options(&body, &options).is_ok()
    {
        // It watches for the page's lifetime.
        rewrite.forget();
    }
}

/// An instant in markup: `<time>` with the instant in ISO 8601 UTC and its date and time on
/// hover ([`Zone::title`]). A relative one carries `data-rel` and, until the browser writes
/// its words, reads as an absolute time: the date and time for [`Relative::Ago`], "at" and
/// the time of day for [`Relative::Until`]. A date and time in UTC carries `data-zoned`: the
/// browser writes it on the reader's clock where the markup is the server's, kept as sent (the
/// history pages, see [`crate::pages`]).
pub fn time_markup(at_ms: i64, zone: Zone, shown: Shown) -> Markup {
    let (relative, text) = match shown {
        Shown::Relative(relative @ Relative::Ago) => {
            (Some(relative), zone.text(at_ms, Shown::DateTime, 0))
        }
        Shown::Relative(relative @ Relative::Until) => (
            Some(relative),
            format!("at {}", zone.text(at_ms, Shown::Clock, 0)),
        ),
        absolute => (None, zone.text(at_ms, absolute, 0)),
    };
    let zoned = zone == Zone::Utc && shown == Shown::DateTime;
    html! {
        time datetime=(iso_utc(at_ms)) title=(zone.title(at_ms))
            data-rel=[relative.map(Relative::as_str)] data-zoned[zoned] { (text) }
    }
}

/// An instant in a view: `<time>` as [`time_markup`] writes it, its words following the zone
/// and, for a relative one, `now_ms` (Unix milliseconds). A signal rather than a closure: one
/// copy of the view's code in the WASM, not one per caller.
pub fn time_view(at_ms: i64, shown: Shown, now_ms: Signal<i64>) -> impl IntoView {
    let zone = Prefs::get().zone;
    view! {
        <time datetime=iso_utc(at_ms) title=move || zone.get().title(at_ms)>
            {move || zone.get().text(at_ms, shown, now_ms.get())}
        </time>
    }
}

/// The header's display controls: the clock times are shown on, and the colour theme. Off
/// until the page is mounted, as the other controls are.
#[component]
pub fn DisplayPrefs() -> impl IntoView {
    let prefs = Prefs::get();
    let off = move || !prefs.mounted.get();
    view! {
        <div class="prefs">
            <label>
                "Times "
                <select
                    data-pref="times"
                    prop:value=move || prefs.zone.get().as_str()
                    on:change=move |ev| {
                        if let Some(zone) = Zone::parse(&event_target_value(&ev)) {
                            prefs.set_zone(zone);
                        }
                    }
                    disabled=off
                >
                    {Zone::ALL
                        .map(|zone| {
                            view! {
                                <option value=zone.as_str() selected=move || prefs.zone.get() == zone>
                                    {move || zone.label(prefs.local_offset.get())}
                                </option>
                            }
                        })}
                </select>
            </label>
            <label>
                "Theme "
                <select
                    data-pref="theme"
                    prop:value=move || prefs.theme.get().as_str()
                    on:change=move |ev| {
                        if let Some(theme) = Theme::parse(&event_target_value(&ev)) {
                            prefs.set_theme(theme);
                        }
                    }
                    disabled=off
                >
                    {Theme::ALL
                        .map(|theme| {
                            view! {
                                <option value=theme.as_str() selected=move || prefs.theme.get() == theme>
                                    {theme.label()}
                                </option>
                            }
                        })}
                </select>
            </label>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: i64 = 1_796_220_187_250; // 2026-12-02T14:03:07.250Z

    #[test]
    fn utc_times_say_so_and_hover_shows_the_date() {
        let utc = Zone::Utc;
        assert_eq!(utc.text(AT, Shown::Clock, 0), "14:03:07 UTC");
        assert_eq!(utc.text(AT, Shown::DateTime, 0), "2026-12-02 14:03:07 UTC");
        assert_eq!(utc.text(AT - 7_250, Shown::ShortClock, 0), "14:03 UTC");
        assert_eq!(utc.title(AT), "2026-12-02 14:03:07 UTC");
        assert_eq!(
            utc.text(AT, Shown::Relative(Relative::Ago), AT + 180_000),
            "3 min ago"
        );
        // Off the browser, local is UTC without the word (the server never renders it).
        assert_eq!(Zone::Local.text(AT, Shown::Clock, 0), "14:03:07");
        assert_eq!(
            Zone::Local.title(AT),
            "2026-12-02 14:03:07 UTC+00:00 · 2026-12-02 14:03:07 UTC"
        );
    }

    #[test]
    fn the_toggle_names_the_local_offset_once_known() {
        assert_eq!(Zone::Local.label(None), "Local");
        assert_eq!(Zone::Local.label(Some(60)), "Local (UTC+01:00)");
        assert_eq!(Zone::Local.label(Some(-210)), "Local (UTC-03:30)");
        assert_eq!(Zone::Utc.label(Some(60)), "UTC");
        for zone in Zone::ALL {
            assert_eq!(Zone::parse(zone.as_str()), Some(zone));
        }
        assert_eq!(Zone::parse("mars"), None);
    }

    #[test]
    fn markup_times_carry_the_instant_and_relative_ones_a_stand_in() {
        assert_eq!(
            time_markup(AT, Zone::Utc, Shown::Clock).into_string(),
            r#"<time datetime="2026-12-02T14:03:07.250Z" title="2026-12-02 14:03:07 UTC">14:03:07 UTC</time>"#
        );
        assert_eq!(
            time_markup(AT, Zone::Utc, Shown::Relative(Relative::Ago)).into_string(),
            concat!(
                r#"<time datetime="2026-12-02T14:03:07.250Z" title="2026-12-02 14:03:07 UTC" "#,
                r#"data-rel="ago">2026-12-02 14:03:07 UTC</time>"#
            )
        );
        assert_eq!(
            time_markup(AT, Zone::Utc, Shown::Relative(Relative::Until)).into_string(),
            concat!(
                r#"<time datetime="2026-12-02T14:03:07.250Z" title="2026-12-02 14:03:07 UTC" "#,
                r#"data-rel="until">at 14:03:07 UTC</time>"#
            )
        );
    }

    #[test]
    fn the_theme_cookie_is_read_among_others() {
        assert_eq!(Theme::from_cookie_header(""), Theme::Auto);
        assert_eq!(
            Theme::from_cookie_header("leasewatch_session=abc.1; leasewatch_theme=dark"),
            Theme::Dark
        );
        assert_eq!(
            Theme::from_cookie_header("leasewatch_theme=light;other=1"),
            Theme::Light
        );
        assert_eq!(
            Theme::from_cookie_header("leasewatch_theme=\"dark\""),
            Theme::Dark
        );
        assert_eq!(
            Theme::from_cookie_header("leasewatch_theme=purple"),
            Theme::Auto
        );
        assert_eq!(
            Theme::from_cookie_header("x_leasewatch_theme=dark"),
            Theme::Auto
        );
        assert_eq!(Theme::Auto.attribute(), None);
        assert_eq!(Theme::Dark.attribute(), Some("dark"));
        for theme in Theme::ALL {
            assert_eq!(Theme::parse(theme.as_str()), Some(theme));
        }
    }
}
