//! `<BackgroundTaskMonitor/>`: the operator's page. Server-rendered with real data, then
//! hydrated; it polls every couple of seconds (not while the tab is hidden), shows how old its
//! data is, and says so plainly when the server cannot be reached. Values update in place, so
//! buttons keep their focus across polls.

use leptos::{
    prelude::*,
    server::codee::{Decoder, Encoder},
};
use serde::{Serialize, de::DeserializeOwned};

mod alerts;
mod controls;
mod databases;
mod read;
mod tables;

use crate::{
    api::{Control, get_dashboard, read_samples},
    charts::{self, Samples, Span},
    markup,
    pages::{Here, Masthead},
    prefs::{Prefs, Shown, time_view},
    wire::{Advice, ChartRange, Dashboard, PollSamples, Read, Relative, SamplesQuery, SpanSamples},
};
use alerts::AlertsSection;
use controls::{ControlPanel, Controls, Notice, Place, label};
use databases::DatabasesSection;
use read::{field, markup_from};
use tables::{AuctionTable, AuditTable, LeaseTable, TaskTable};

/// The dashboard page, its charts over the span `charts` asks for (the last 15 minutes when it
/// asks for none).
#[component]
pub fn BackgroundTaskMonitor(
    /// The charts' span, as the URL gives it.
    charts: SamplesQuery,
) -> impl IntoView {
    // Bumped by the poller and after each action; the dashboard resource follows it.
    let polls = RwSignal::new(0u64);
    let poll_samples = PollSamples::of(&charts);
    let dashboard: Resource<_, JsonSliceCodec> = Resource::new_with_options(
        move || polls.get(),
        move |_| get_dashboard(Some(poll_samples)),
        false,
    );
    // The last good data stays on screen while the server is unreachable.
    let data = Memo::new(
        move |previous: Option<&Option<Dashboard>>| match dashboard.get() {
            Some(Ok(fresh)) => Some(fresh),
            _ => previous.cloned().flatten(),
        },
    );
    let error = move || match dashboard.get() {
        Some(Err(err)) => Some(err),
        _ => None,
    };
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let now = now_of(data);
    poll_while_visible(polls, data);
    show_attention_in_tab(data);

    let act = ServerAction::<Control>::new();
    let controls = Controls {
        act,
        preview: RwSignal::new(None),
        notice: RwSignal::new(None),
        at: RwSignal::new(None),
        data,
        hydrated,
    };
    Effect::new(move |_| {
        let Some(result) = act.value().get() else {
            return;
        };
        let Some((place, action)) = controls.at.get_untracked() else {
            return;
        };
        match result {
            Ok(outcome) if outcome.dry_run => controls.preview.set(Some((place, outcome))),
            Ok(outcome) => {
                controls.refocus(&place, action);
                let words = controls.words(&place, outcome.action);
                controls.notice.set(Some(Notice {
                    place,
                    ok: true,
                    text: format!("{words}: {}", outcome.message),
                }));
                polls.update(|n| *n += 1);
            }
            Err(err) if session_ended(&err) => to_login(),
            Err(err) => {
                controls.refocus(&place, action);
                let words = controls.words(&place, action);
                controls.notice.set(Some(Notice {
                    place,
                    ok: false,
                    text: format!("{words}: {}", refusal(&err)),
                }));
            }
        }
    });
    // A poll refused for want of a session: the session ended, the server is fine.
    Effect::new(move |_| {
        if error().is_some_and(|err| session_ended(&err)) {
            to_login();
        }
    });

    let stored = stored_samples(&charts, poll_samples);
    view! {
        <Masthead here=Here::Dashboard/>
        // The skip link's target. Not focusable (a click on its text would focus it and send the
        // next Tab back to its start): following the link moves where Tab goes on from.
        <main class="monitor" id="content" data-hydrated=move || hydrated.get().to_string()>
            // Screen readers hear each action's result here; sighted users see it where they
            // acted.
            <p class="sr-only" aria-live="polite" role="status">
                {move || controls.notice.get().map(|n| n.text)}
            </p>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    error()
                        .map(|err| {
                            if session_ended(&err) {
                                view! {
                                    <div class="banner" role="alert" data-banner="session">
                                        <strong>"Your session has ended."</strong>
                                        " Taking you to the login page…"
                                    </div>
                                }
                                .into_any()
                            } else {
                                view! {
                                    <div class="banner error" role="alert" data-banner="unreachable">
                                        <strong>"The server cannot be reached."</strong>
                                        " The figures below are the last received; this page keeps trying. ("
                                        {err.to_string()}
                                        ")"
                                    </div>
                                }
                                .into_any()
                            }
                        })
                }}
                {section(view! { <Summary data/> })}
                {section(view! { <StatusLine data now/> })}
                {section(view! { <Recommendations data controls/> })}
                {section(view! { <Cards data/> })}
                {section(view! { <DatabasesSection data controls/> })}
                {section(view! { <ControlPanel controls/> })}
                {section(view! { <Charts data charts stored/> })}
                {section(view! { <LeaseTable data/> })}
                {section(view! { <TaskTable data controls now/> })}
                {section(view! { <AlertsSection data controls/> })}
                <div class="columns">
                    {section(view! { <AuctionTable data/> })}
                    {section(view! { <AuditTable data/> })}
                </div>
            </Transition>
        </main>
    }
}

/// Whether a server function was refused for want of a session (401). The server answers
/// those with the API's JSON error, which the server-function client cannot decode: it
/// reports it as a deserialisation error quoting the body, code and all.
fn session_ended(err: &ServerFnError) -> bool {
    matches!(err, ServerFnError::Deserialization(body) if body.contains("unauthenticated"))
}

/// A refusal's own words, without the server-function error's prefix.
fn refusal(err: &ServerFnError) -> String {
    match err {
        ServerFnError::ServerError(message) => message.clone(),
        other => other.to_string(),
    }
}

/// Goes to the login page, which brings the browser back here once logged in.
fn to_login() {
    #[cfg(feature = "hydrate")]
    {
        let location = window().location();
        let here = [location.pathname(), location.search(), location.hash()]
            .into_iter()
            .map(|part| part.unwrap_or_default())
            .collect::<String>();
        let next = String::from(js_sys::encode_uri_component(&here));
        let _ = location.assign(&format!("{}/login?next={next}", crate::base::base()));
    }
}

/// The tab's title and icon follow the worst severity that holds (hydrated pages; the server
/// renders the page with both already right for its data).
fn show_attention_in_tab(data: Memo<Option<Dashboard>>) {
    #[cfg(feature = "hydrate")]
    {
        let tab = Memo::new(move |_| {
            data.with(|d| {
                d.as_ref().map(|d| {
                    let attention = markup::Attention::of(&d.recommendations);
                    (attention.title(), attention.icon())
                })
            })
        });
        Effect::new(move |_| {
            let Some((title, icon)) = tab.get() else {
                return;
            };
            let document = document();
            document.set_title(&title);
            if let Ok(Some(link)) = document.query_selector(r#"link[rel="icon"]"#) {
                let _ = link.set_attribute("href", &crate::base::href(icon));
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = data;
}

/// JSON for the dashboard resource's data, sent in the page for hydration. Leptos's default
/// codec decodes it with `serde_json::from_str`, the server function's replies with
/// `from_slice`: the WASM would hold every wire type's deserialiser twice. This one decodes
/// with `from_slice` too.
pub struct JsonSliceCodec;

impl<T: Serialize> Encoder<T> for JsonSliceCodec {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(value: &T) -> Result<String, serde_json::Error> {
        serde_json::to_string(value)
    }
}

impl<T: DeserializeOwned> Decoder<T> for JsonSliceCodec {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(encoded: &str) -> Result<T, serde_json::Error> {
        serde_json::from_slice(encoded.as_bytes())
    }
}

/// A section of the page, type-erased on the server only. There, erasing keeps the rendering
/// futures small (the whole page as one type overflows a debug build's stack). In the WASM,
/// each `into_any()` would keep four copies of the section's rendering code (build, rebuild,
/// hydrate and hydrate_async, the last never called), so the browser keeps the plain type.
/// Either way the HTML is the same.
#[cfg(feature = "ssr")]
fn section(view: impl IntoView + 'static) -> AnyView {
    view.into_any()
}

/// See the server's [`section`]: the browser keeps the plain type.
#[cfg(not(feature = "ssr"))]
fn section(view: impl IntoView) -> impl IntoView {
    view
}

#[component]
fn StatusLine(data: Memo<Option<Dashboard>>, now: Signal<i64>) -> impl IntoView {
    let Prefs { zone, now_ms, .. } = Prefs::get();
    let server = move || {
        field(data, |d| d.server.clone())().map(|line| {
            view! {
                {line.before}
                {line.at_ms.map(|at| time_view(at, Shown::Relative(Relative::Ago), now))}
                {line.after}
            }
        })
    };
    view! {
        <p
            class="as-of"
            data-taken-at=field(data, |d| d.taken_at_ms.to_string())
            inner_html=move || markup_from(data, |d| markup::status_line(d, zone.get(), now_ms.get()))
        ></p>
        <p class="note server-view">"Server: " {server}</p>
    }
}

/// What needs attention, worst first, in a line.
#[component]
fn Summary(data: Memo<Option<Dashboard>>) -> impl IntoView {
    view! {
        <p
            class="summary"
            data-summary=""
            inner_html=move || markup_from(data, |d| markup::summary(&d.recommendations))
        ></p>
    }
}

#[component]
fn Recommendations(data: Memo<Option<Dashboard>>, controls: Controls) -> impl IntoView {
    // A result for a recommendation that has gone since shows at the top of the list.
    let orphan = move || {
        controls.notice.get().filter(|n| match &n.place {
            Place::Advice(id) => !data.with(|d| {
                d.as_ref()
                    .is_some_and(|d| d.recommendations.iter().any(|r| r.id == *id))
            }),
            _ => false,
        })
    };
    view! {
        <section aria-labelledby="advice-title" class="advice">
            <h2 id="advice-title">"Recommendations"</h2>
            {move || orphan().map(|n| view! {
                <p class="feedback" data-feedback=if n.ok { "ok" } else { "error" }>{n.text}</p>
            })}
            <ul>
                <For
                    each=move || data.with(|d| d.as_ref().map(|d| d.recommendations.clone()).unwrap_or_default())
                    key=|r| (r.id.clone(), r.detail.clone(), r.severity, r.cleared_at_ms)
                    let:advice
                >
                    <AdviceItem advice controls/>
                </For>
            </ul>
        </section>
    }
}

/// One recommendation: while its condition holds, with the action that helps; once cleared
/// (kept for the clear-hold), subdued, with when it cleared and its last numbers.
#[component]
fn AdviceItem(advice: Advice, controls: Controls) -> impl IntoView {
    let now = now_of(controls.data);
    let place = Place::Advice(advice.id.clone());
    let cleared = advice.cleared_at_ms;
    let class = format!(
        "severity {}{}",
        advice.severity,
        if cleared.is_some() { " clearing" } else { "" }
    );
    view! {
        <li class=class data-recommendation=advice.id.clone() data-cleared-at=cleared.map(|at| at.to_string())>
            <span class="badge">{advice.severity.as_str().to_ascii_uppercase()}</span>
            <strong>{advice.title.clone()}</strong>
            {cleared.map(|at| view! {
                <span class="cleared">
                    " · cleared " {time_view(at, Shown::Relative(Relative::Ago), now)}
                </span>
            })}
            <p>{cleared.map(|_| "Last seen: ")} {advice.detail.clone()}</p>
            {advice.action.map(|action| {
                let place = place.clone();
                view! {
                    <button
                        on:click=move |_| controls.request(place.clone(), action, None)
                        disabled=move || cleared.is_some() || controls.disabled()
                        title=cleared.map(|_| "No longer needed: the condition has cleared")
                    >
                        {label(action)}{action.takes_dry_run().then_some("…")}
                    </button>
                }
            })}
            {controls.preview_at(place.clone())}
            {controls.feedback(place)}
        </li>
    }
}

#[component]
fn Cards(data: Memo<Option<Dashboard>>) -> impl IntoView {
    view! {
        <section
            class="cards"
            aria-label="Connection pool"
            inner_html=move || markup_from(data, |d| markup::cards(&d.pool))
        ></section>
    }
}

/// The history's samples over the charts' span, when the memory does not hold it: read on
/// load and every [`STORED_EVERY_MS`] while the tab is visible, never with the poll; the last
/// good read stays while a later one fails.
type Stored = Option<StoredSamples>;

/// The history's samples: the read, and its last good value.
#[derive(Clone, Copy)]
struct StoredSamples {
    read: Resource<Result<Read<SpanSamples>, ServerFnError>, JsonSliceCodec>,
    last: Memo<Option<Read<SpanSamples>>>,
}

/// How often the charts read a span from the history again: slower than the poll, as a
/// point there covers minutes.
const STORED_EVERY_MS: u32 = 30_000;

fn stored_samples(charts: &SamplesQuery, poll: PollSamples) -> Stored {
    if poll != PollSamples::None {
        return None;
    }
    let refreshes = RwSignal::new(0u64);
    let query = charts.clone();
    let read: Resource<_, JsonSliceCodec> = Resource::new_with_options(
        move || refreshes.get(),
        move |_| read_samples(query.clone()),
        false,
    );
    every_while_visible(refreshes, || STORED_EVERY_MS);
    let last = Memo::new(
        move |previous: Option<&Option<Read<SpanSamples>>>| match read.get() {
            Some(Ok(fresh)) => Some(fresh),
            _ => previous.cloned().flatten(),
        },
    );
    Some(StoredSamples { read, last })
}

#[component]
fn Charts(data: Memo<Option<Dashboard>>, charts: SamplesQuery, stored: Stored) -> impl IntoView {
    let memory = PollSamples::of(&charts).range();
    let custom = charts.from.is_some() || charts.to.is_some();
    let asked = charts.range.clone().unwrap_or_else(|| "15m".to_owned());
    // Charts are drawn against the server's clock, so they agree with the data. They are
    // markup, set whole on each poll (see `charts`).
    let zone = Prefs::get().zone;
    let draw = move |d: &Dashboard| match (memory, stored) {
        (Some(range), _) => charts::markup(
            d,
            Samples::Over(Span::recent(range, d.taken_at_ms), &d.history),
            zone.get(),
        ),
        (None, Some(stored)) => {
            // Read the resource itself here, in a closure of the page's <Transition>: that is
            // how the server learns to wait for it before rendering (the memo reads it
            // elsewhere, and the component's body runs before the Transition listens).
            stored.read.with_untracked(|_| ());
            stored.last.with(|read| match read {
                Some(Read::Found(samples)) => charts::markup(
                    d,
                    Samples::Over(Span::stored(samples), &samples.samples),
                    zone.get(),
                ),
                Some(Read::Refused(refusal)) => {
                    // A span the server refuses makes the page's status 400 (it is rendered whole
                    // on the server before it is sent).
                    #[cfg(feature = "ssr")]
                    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                        response.set_status(axum::http::StatusCode::BAD_REQUEST);
                    }
                    let why = format!("{}: {}", refusal.field, refusal.message);
                    charts::markup(d, Samples::Unreadable(&why), zone.get())
                }
                Some(Read::Unavailable | Read::Missing) => charts::markup(
                    d,
                    Samples::Unreadable(
                        "The database cannot be read now: the charts over this span come from it. \
                     They are read again every 30 s.",
                    ),
                    zone.get(),
                ),
                None => String::new(),
            })
        }
        (None, None) => String::new(),
    };
    let stored_range = move || {
        stored.and_then(|stored| {
            stored.last.with(|read| match read {
                Some(Read::Found(samples)) => Some(Span::stored(samples).in_zone(zone.get())),
                _ => None,
            })
        })
    };
    view! {
        <nav class="ranges" aria-label="Chart range">
            <span class="label">"Charts:"</span>
            {ChartRange::ALL
                .iter()
                .map(|range| {
                    let here = !custom && asked == range.as_str();
                    view! {
                        <a href=format!("{}/?range={range}", crate::base::base()) aria-current=here.then_some("true") data-range=range.as_str()>
                            {range_label(*range)}
                        </a>
                    }
                })
                .collect_view()}
            {custom.then(|| view! {
                <span class="custom" aria-current="true" data-range="custom">
                    {move || stored_range().map(|span| span.words())}
                </span>
            })}
        </nav>
        <section
            class="charts"
            aria-label="Charts"
            inner_html=charts::steady(move || markup_from(data, draw))
        ></section>
    }
}

/// A range as its selector reads.
fn range_label(range: ChartRange) -> &'static str {
    match range {
        ChartRange::Minutes15 => "15 min",
        ChartRange::Hour => "1 h",
        ChartRange::Day => "24 h",
        ChartRange::Week => "7 days",
    }
}

/// The time relative words are reckoned from, in Unix milliseconds: the browser's clock once
/// it ticks; before that the data's own time, so the server's HTML and the browser's first
/// render agree.
fn now_of(data: Memo<Option<Dashboard>>) -> Signal<i64> {
    let clock = Prefs::get().now_ms;
    Signal::derive(move || {
        clock
            .get()
            .map(|ms| ms as i64)
            .or_else(|| data.with(|d| d.as_ref().map(|d| d.taken_at_ms)))
            .unwrap_or_default()
    })
}

/// Asks for fresh data every `poll_ms` while the tab is visible (hydrated pages only).
fn poll_while_visible(polls: RwSignal<u64>, data: Memo<Option<Dashboard>>) {
    every_while_visible(polls, move || {
        let every = data
            .with_untracked(|d| d.as_ref().map(|d| d.poll_ms))
            .unwrap_or(2_000);
        u32::try_from(every).unwrap_or(2_000)
    });
}

/// Bumps `ticks` every `every()` milliseconds while the tab is visible (hydrated pages only).
fn every_while_visible(ticks: RwSignal<u64>, every: impl Fn() -> u32 + Clone + 'static) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let every = every.clone();
        leptos::task::spawn_local(async move {
            loop {
                gloo_timers::future::TimeoutFuture::new(every()).await;
                let visible = web_sys::window()
                    .and_then(|w| w.document())
                    .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
                if visible {
                    ticks.update(|n| *n += 1);
                }
            }
        });
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (ticks, every);
}
