//! `<BackgroundTaskMonitor/>`: the operator's page. Server-rendered with real data, then
//! hydrated; it polls every couple of seconds (not while the tab is hidden), shows how old its
//! data is, and says so plainly when the server cannot be reached. Values update in place, so
//! buttons keep their focus across polls.

use leptos::{
    prelude::*,
    server::codee::{Decoder, Encoder},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    api::{Control, get_dashboard},
    charts, markup,
    wire::{ActionName, ControlOutcome, Dashboard, Role, TaskStatus, clock_utc},
};

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

/// The state the control buttons share.
#[derive(Clone, Copy)]
struct Controls {
    act: ServerAction<Control>,
    preview: RwSignal<Option<ControlOutcome>>,
    data: Memo<Option<Dashboard>>,
}

impl Controls {
    fn send(self, action: ActionName, task: Option<String>, dry_run: Option<bool>) {
        self.act.dispatch(Control {
            action,
            task,
            dry_run,
        });
    }

    /// Cleanups preview first; everything else acts at once.
    fn request(self, action: ActionName, task: Option<String>) {
        if action.takes_dry_run() {
            self.send(action, None, Some(true));
        } else {
            self.send(action, task, None);
        }
    }

    fn is_operator(self) -> bool {
        self.data
            .with(|d| d.as_ref().is_some_and(|d| d.role == Role::Operator))
    }

    /// Why a button is off: not an operator, or an action under way.
    fn disabled(self) -> bool {
        !self.is_operator() || self.act.pending().get()
    }
}

fn label(action: ActionName) -> String {
    let mut text = action.as_str().replace('_', " ");
    if let Some(first) = text.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    text
}

fn field<T: 'static>(
    data: Memo<Option<Dashboard>>,
    read: impl Fn(&Dashboard) -> T + Send + Sync + 'static,
) -> impl Fn() -> Option<T> + Send + Sync + 'static {
    move || data.with(|d| d.as_ref().map(&read))
}

/// Markup from the data (empty while there is none), for an element's inner HTML.
fn markup_from(data: Memo<Option<Dashboard>>, write: impl Fn(&Dashboard) -> String) -> String {
    data.with(|d| d.as_ref().map(write).unwrap_or_default())
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
fn ControlPanel(controls: Controls) -> impl IntoView {
    let running = move || {
        controls
            .data
            .with(|d| d.as_ref().is_some_and(|d| d.scheduler_running))
    };
    let busy = controls.act.pending();
    let button = move |action: ActionName, text: &'static str, off: fn(bool) -> bool| {
        view! {
            <button
                data-control=action.as_str()
                on:click=move |_| controls.request(action, None)
                disabled=move || controls.disabled() || off(running())
            >
                {text}
            </button>
        }
    };
    view! {
        <section aria-labelledby="controls-title" class="controls">
            <h2 id="controls-title">"Controls"</h2>
            <div class="buttons">
                {button(ActionName::Start, "Start", |running| running)}
                {button(ActionName::Stop, "Stop", |running| !running)}
                {button(ActionName::Cleanup, "Cleanup…", |_| false)}
                {button(ActionName::EmergencyCleanup, "Emergency cleanup…", |_| false)}
                {move || busy.get().then(|| view! { <span class="busy">"Working…"</span> })}
            </div>
            {move || (!controls.is_operator()).then(|| view! {
                <p class="note" data-readonly="true">
                    "Read-only: you are logged in as a viewer. Log in with the operator token to act."
                </p>
            })}
            {move || controls.preview.get().map(|plan| {
                let action = plan.action;
                let confirm = format!("Confirm {}", label(action).to_ascii_lowercase());
                view! {
                    <div class="preview" role="group" aria-label="Preview" data-preview=action.as_str()>
                        <p><strong>{label(action)} " preview: "</strong> {format!("this {}.", plan.message)}</p>
                        <button class="danger" on:click=move |_| controls.send(action, None, Some(false)) disabled=move || controls.disabled()>
                            {confirm}
                        </button>
                        <button class="quiet" on:click=move |_| controls.preview.set(None)>"Cancel"</button>
                    </div>
                }
            })}
        </section>
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

#[component]
fn LeaseTable(data: Memo<Option<Dashboard>>) -> impl IntoView {
    view! {
        <section aria-labelledby="leases-title">
            <h2 id="leases-title">"Leases"</h2>
            <table class="leases">
                <thead>
                    <tr>
                        <th scope="col">"Lease"</th>
                        <th scope="col">"Task"</th>
                        <th scope="col">"Run"</th>
                        <th scope="col">"Backend"</th>
                        <th scope="col" class="num">"Held"</th>
                        <th scope="col">"State"</th>
                    </tr>
                </thead>
                <tbody inner_html=move || markup_from(data, |d| markup::lease_rows(&d.leases))></tbody>
            </table>
            {move || data.with(|d| d.as_ref().is_some_and(|d| d.leases.is_empty())).then(|| view! { <p class="note">"No connection is leased right now."</p> })}
        </section>
    }
}

#[component]
fn TaskTable(data: Memo<Option<Dashboard>>, controls: Controls) -> impl IntoView {
    view! {
        <section aria-labelledby="tasks-title">
            <h2 id="tasks-title">"Tasks"</h2>
            <table class="tasks">
                <thead>
                    <tr>
                        <th scope="col">"Task"</th>
                        <th scope="col">"Every"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"Next run"</th>
                        <th scope="col">"Last run"</th>
                        <th scope="col" class="num">"Took"</th>
                        <th scope="col" class="num">"Attempts"</th>
                        <th scope="col">"Actions"</th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || data.with(|d| d.as_ref().map(|d| d.tasks.iter().map(|t| t.task.clone()).collect::<Vec<_>>()).unwrap_or_default())
                        key=|name| name.clone()
                        let:name
                    >
                        <TaskLine name data controls/>
                    </For>
                </tbody>
            </table>
        </section>
    }
}

/// One task row; its cells follow the data, its buttons stay put across polls.
#[component]
fn TaskLine(name: String, data: Memo<Option<Dashboard>>, controls: Controls) -> impl IntoView {
    let key = name.clone();
    let task = Memo::new(move |_| {
        data.with(|d| {
            d.as_ref()
                .and_then(|d| d.tasks.iter().find(|t| t.task == key).cloned())
        })
    });
    let paused = move || task.get().is_some_and(|t| t.paused);
    let (run_name, pause_name) = (name.clone(), name.clone());
    view! {
        <tr data-task=name.clone()>
            <th scope="row">{name.clone()}</th>
            <td>{move || task.get().map(|t| human_interval(t.every_secs))}</td>
            <td data-state=move || task.get().map(|t| t.state.as_str())>{move || task.get().map(|t| t.state.as_str())}</td>
            <td>{move || task.get().and_then(|t| t.next_run_at_ms).map(clock_utc)}</td>
            <td class="last-run" data-outcome=move || task.get().and_then(|t| t.last_outcome).map(|o| o.as_str())>
                {move || task.get().map(|t| match (t.last_run_at_ms, t.last_outcome) {
                    (Some(at), Some(outcome)) => format!("{} {outcome}", clock_utc(at)),
                    _ => "not yet".to_owned(),
                })}
                <span class="detail">{move || task.get().and_then(|t| t.last_detail)}</span>
            </td>
            <td class="num">{move || task.get().and_then(|t| t.last_duration_ms).map(|ms| format!("{:.1} s", ms as f64 / 1000.0))}</td>
            <td class="num">{move || task.get().and_then(|t| t.last_attempts)}</td>
            <td class="row-actions">
                <button
                    aria-label=format!("Run {name} now")
                    on:click=move |_| controls.request(ActionName::RunNow, Some(run_name.clone()))
                    disabled=move || controls.disabled() || task.get().is_some_and(|t| matches!(t.state, TaskStatus::Running | TaskStatus::Backoff))
                >
                    "Run now"
                </button>
                <button
                    aria-label=move || format!("{} {}", if paused() { "Resume" } else { "Pause" }, pause_name)
                    on:click={
                        let name = name.clone();
                        move |_| controls.request(if paused() { ActionName::Resume } else { ActionName::Pause }, Some(name.clone()))
                    }
                    disabled=move || controls.disabled()
                >
                    {move || if paused() { "Resume" } else { "Pause" }}
                </button>
            </td>
        </tr>
    }
}

#[component]
fn AuctionTable(data: Memo<Option<Dashboard>>) -> impl IntoView {
    view! {
        <section aria-labelledby="auctions-title">
            <h2 id="auctions-title">"Auctions"</h2>
            <table class="auctions">
                <thead>
                    <tr>
                        <th scope="col">"Status"</th>
                        <th scope="col" class="num">"Auctions"</th>
                    </tr>
                </thead>
                <tbody inner_html=move || markup_from(data, |d| markup::auction_rows(&d.auctions))></tbody>
                <tfoot>
                    <tr>
                        <th scope="row">"total"</th>
                        <td class="num" data-total="auctions">
                            {field(data, |d| d.auctions.iter().map(|r| r.count).sum::<i64>())}
                        </td>
                    </tr>
                </tfoot>
            </table>
        </section>
    }
}

#[component]
fn AuditTable(data: Memo<Option<Dashboard>>) -> impl IntoView {
    view! {
        <section aria-labelledby="audit-title">
            <h2 id="audit-title">"Audit log"</h2>
            <table class="audit">
                <thead>
                    <tr>
                        <th scope="col">"When"</th>
                        <th scope="col">"Who"</th>
                        <th scope="col">"Action"</th>
                        <th scope="col">"Result"</th>
                    </tr>
                </thead>
                <tbody inner_html=move || markup_from(data, |d| markup::audit_rows(&d.audit))></tbody>
            </table>
        </section>
    }
}

/// "15 min", "1 h", "45 s": an interval as an operator would say it.
fn human_interval(secs: u64) -> String {
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_an_operator_would_say_them() {
        assert_eq!(human_interval(900), "15 min");
        assert_eq!(human_interval(3600), "1 h");
        assert_eq!(human_interval(90), "90 s");
        assert_eq!(human_interval(10), "10 s");
    }

    #[test]
    fn action_labels_read_as_words() {
        assert_eq!(label(ActionName::EmergencyCleanup), "Emergency cleanup");
        assert_eq!(label(ActionName::RunNow), "Run now");
    }
}
