//! `<BackgroundTaskMonitor/>`: the operator's page. Server-rendered with real data, then
//! hydrated; it polls every couple of seconds (not while the tab is hidden), shows how old its
//! data is, and says so plainly when the server cannot be reached. Values update in place, so
//! buttons keep their focus across polls.

use leptos::{
    prelude::*,
    server::codee::{Decoder, Encoder},
};
use serde::{Serialize, de::DeserializeOwned};

mod controls;
mod read;
mod tables;

use crate::{
    api::{Control, get_dashboard},
    charts, markup,
    wire::{ControlOutcome, Dashboard},
};
use controls::{ControlPanel, Controls, label};
use read::{field, markup_from};
use tables::{AuctionTable, AuditTable, LeaseTable, TaskTable};

/// The dashboard page.
#[component]
pub fn BackgroundTaskMonitor() -> impl IntoView {
    // Bumped by the poller and after each action; the dashboard resource follows it.
    let polls = RwSignal::new(0u64);
    let dashboard: Resource<_, JsonSliceCodec> =
        Resource::new_with_options(move || polls.get(), |_| get_dashboard(), false);
    // The last good data stays on screen while the server is unreachable.
    let data = Memo::new(
        move |previous: Option<&Option<Dashboard>>| match dashboard.get() {
            Some(Ok(fresh)) => Some(fresh),
            _ => previous.cloned().flatten(),
        },
    );
    let error = move || match dashboard.get() {
        Some(Err(err)) => Some(err.to_string()),
        _ => None,
    };
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let now_ms = client_clock();
    poll_while_visible(polls, data);

    let act = ServerAction::<Control>::new();
    let preview = RwSignal::new(None::<ControlOutcome>);
    let notice = RwSignal::new(None::<(bool, String)>);
    Effect::new(move |_| match act.value().get() {
        Some(Ok(outcome)) if outcome.dry_run => preview.set(Some(outcome)),
        Some(Ok(outcome)) => {
            preview.set(None);
            notice.set(Some((
                true,
                format!("{}: {}", label(outcome.action), outcome.message),
            )));
            polls.update(|n| *n += 1);
        }
        Some(Err(err)) => notice.set(Some((false, err.to_string()))),
        None => {}
    });
    let controls = Controls { act, preview, data };

    view! {
        <main class="monitor" data-hydrated=move || hydrated.get().to_string()>
            <header class="masthead">
                <h1>"Leasewatch"</h1>
                <p class="tagline">"Background tasks and the connections they hold"</p>
                <form method="post" action="/logout">
                    <button type="submit" class="quiet">"Log out"</button>
                </form>
            </header>
            <p class="notice" aria-live="polite" role="status" data-notice=move || notice.get().map(|(ok, _)| if ok { "ok" } else { "error" })>
                {move || notice.get().map(|(_, text)| text)}
            </p>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    error()
                        .map(|err| {
                            view! {
                                <div class="banner error" role="alert" data-banner="unreachable">
                                    <strong>"The server cannot be reached."</strong>
                                    " The figures below are the last received; this page keeps trying. ("
                                    {err}
                                    ")"
                                </div>
                            }
                        })
                }}
                {section(view! { <StatusLine data now_ms/> })}
                {section(view! { <Recommendations data controls/> })}
                {section(view! { <Cards data/> })}
                {section(view! { <ControlPanel controls/> })}
                {section(view! { <Charts data/> })}
                {section(view! { <LeaseTable data/> })}
                {section(view! { <TaskTable data controls/> })}
                <div class="columns">
                    {section(view! { <AuctionTable data/> })}
                    {section(view! { <AuditTable data/> })}
                </div>
            </Transition>
        </main>
    }
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
fn StatusLine(data: Memo<Option<Dashboard>>, now_ms: ReadSignal<Option<f64>>) -> impl IntoView {
    view! {
        <p
            class="as-of"
            data-taken-at=field(data, |d| d.taken_at_ms.to_string())
            inner_html=move || markup_from(data, |d| markup::status_line(d, now_ms.get()))
        ></p>
        <p class="note server-view">"Server: " {field(data, |d| d.server.clone())}</p>
    }
}

#[component]
fn Recommendations(data: Memo<Option<Dashboard>>, controls: Controls) -> impl IntoView {
    view! {
        <section aria-labelledby="advice-title" class="advice">
            <h2 id="advice-title">"Recommendations"</h2>
            <ul>
                <For
                    each=move || data.with(|d| d.as_ref().map(|d| d.recommendations.clone()).unwrap_or_default())
                    key=|r| (r.id.clone(), r.detail.clone())
                    let:advice
                >
                    <li class=format!("severity {}", advice.severity) data-recommendation=advice.id.clone()>
                        <span class="badge">{advice.severity.as_str().to_ascii_uppercase()}</span>
                        <strong>{advice.title.clone()}</strong>
                        <p>{advice.detail.clone()}</p>
                        {advice.action.map(|action| {
                            let text = label(action);
                            view! {
                                <button
                                    on:click=move |_| controls.request(action, None)
                                    disabled=move || controls.disabled()
                                >
                                    {text}
                                </button>
                            }
                        })}
                    </li>
                </For>
            </ul>
        </section>
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

#[component]
fn Charts(data: Memo<Option<Dashboard>>) -> impl IntoView {
    // Charts are drawn against the server's clock, so they agree with the data. They are
    // markup, set whole on each poll (see `charts`).
    view! {
        <section
            class="charts"
            aria-label="Charts"
            inner_html=move || markup_from(data, charts::markup)
        ></section>
    }
}

/// The browser's clock in milliseconds, ticking every second once hydrated; `None` on the
/// server, so the server's HTML and the first client render agree.
fn client_clock() -> ReadSignal<Option<f64>> {
    let (now, set_now) = signal(None);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            loop {
                set_now.set(Some(js_sys::Date::now()));
                gloo_timers::future::TimeoutFuture::new(1_000).await;
            }
        });
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = set_now;
    now
}

/// Asks for fresh data every `poll_ms` while the tab is visible (hydrated pages only).
fn poll_while_visible(polls: RwSignal<u64>, data: Memo<Option<Dashboard>>) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            loop {
                let every = data
                    .with_untracked(|d| d.as_ref().map(|d| d.poll_ms))
                    .unwrap_or(2_000);
                gloo_timers::future::TimeoutFuture::new(u32::try_from(every).unwrap_or(2_000))
                    .await;
                let visible = web_sys::window()
                    .and_then(|w| w.document())
                    .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
                if visible {
                    polls.update(|n| *n += 1);
                }
            }
        });
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (polls, data);
}
