//! `<BackgroundTaskMonitor/>`: the operator's page.

use leptos::prelude::*;

use crate::{
    api::get_overview,
    wire::{Overview, PoolView},
};

/// The dashboard page. Rendered on the server with real data, then hydrated; the refresh button
/// asks the server again.
#[component]
pub fn BackgroundTaskMonitor() -> impl IntoView {
    // Bumped by the refresh button; the overview resource re-runs when it changes.
    let refreshes = RwSignal::new(0u32);
    let overview = Resource::new(move || refreshes.get(), |_| get_overview());
    // Set once the WASM has taken over the page; end-to-end tests wait for it.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let now_ms = client_clock();

    view! {
        <main class="monitor" data-hydrated=move || hydrated.get().to_string()>
            <header class="masthead">
                <h1>"Leasewatch"</h1>
                <p class="tagline">"Background tasks and the connections they hold"</p>
                <button
                    class="refresh"
                    on:click=move |_| refreshes.update(|n| *n += 1)
                >
                    "Refresh"
                </button>
            </header>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    overview
                        .get()
                        .map(|result| match result {
                            Ok(data) => view! { <OverviewPanel data now_ms/> }.into_any(),
                            Err(err) => {
                                view! {
                                    <p class="banner error" role="alert">
                                        "The server could not be reached: " {err.to_string()}
                                    </p>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </main>
    }
}

#[component]
fn OverviewPanel(data: Overview, now_ms: ReadSignal<Option<f64>>) -> impl IntoView {
    let taken_at = data.taken_at;
    let total: i64 = data.auctions.iter().map(|row| row.count).sum();
    let age = move || {
        now_ms.get().map(|now| {
            let secs = ((now - taken_at.timestamp_millis() as f64) / 1000.0).max(0.0);
            format!(" · {secs:.0} s ago")
        })
    };
    view! {
        <p class="as-of" data-taken-at=taken_at.timestamp_millis().to_string()>
            {data.backend.clone()} " · " <code>{data.database.clone()}</code> " · as of "
            {taken_at.format("%H:%M:%S UTC").to_string()} {age}
        </p>
        <PoolCards pool=data.pool/>
        <div class="columns">
            <section aria-labelledby="auctions-title">
                <h2 id="auctions-title">"Auctions"</h2>
                <table class="auctions">
                    <thead>
                        <tr>
                            <th scope="col">"Status"</th>
                            <th scope="col" class="num">"Auctions"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {data
                            .auctions
                            .into_iter()
                            .map(|row| {
                                let status = row.status.clone();
                                view! {
                                    <tr data-status=status>
                                        <th scope="row">{row.status}</th>
                                        <td class="num">{row.count}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                    <tfoot>
                        <tr>
                            <th scope="row">"total"</th>
                            <td class="num" data-total="auctions">{total}</td>
                        </tr>
                    </tfoot>
                </table>
                <p class="note">
                    "Counted at " {data.auctions_as_of.format("%H:%M:%S UTC").to_string()}
                </p>
            </section>
            <section aria-labelledby="tasks-title">
                <h2 id="tasks-title">"Tasks"</h2>
                <table class="tasks">
                    <thead>
                        <tr>
                            <th scope="col">"Task"</th>
                            <th scope="col">"Runs every"</th>
                            <th scope="col">"State"</th>
                            <th scope="col">"Last run"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {data
                            .tasks
                            .into_iter()
                            .map(|task| {
                                let outcome = task.last_outcome.clone().unwrap_or_default();
                                let (name, state) = (task.task.clone(), task.state.clone());
                                let last = match (&task.last_outcome, task.last_run_at) {
                                    (Some(outcome), Some(at)) => {
                                        format!("{} {outcome}", at.format("%H:%M:%S"))
                                    }
                                    _ => "not yet".to_owned(),
                                };
                                view! {
                                    <tr data-task=name>
                                        <th scope="row">{task.task}</th>
                                        <td>{human_interval(task.every_secs)}</td>
                                        <td data-state=state>{task.state}</td>
                                        <td class="last-run" data-outcome=outcome>
                                            {last}
                                            <span class="detail">{task.last_detail}</span>
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </section>
        </div>
    }
}

#[component]
fn PoolCards(pool: PoolView) -> impl IntoView {
    let utilization = (pool.active * 100).checked_div(pool.max).unwrap_or(0);
    let cards = [
        ("total", "Total", pool.total),
        ("idle", "Idle", pool.idle),
        ("active", "Active", pool.active),
    ];
    view! {
        <section class="cards" aria-label="Connection pool">
            {cards
                .into_iter()
                .map(|(key, label, value)| {
                    view! {
                        <div class="card" data-metric=key>
                            <span class="label">{label}</span>
                            <span class="value">{value}</span>
                        </div>
                    }
                })
                .collect_view()}
            <div class="card" data-metric="utilization">
                <span class="label">"Utilization"</span>
                <span class="value">{format!("{utilization} %")}</span>
                <span class="detail">
                    {format!("{} of max {} (min {})", pool.active, pool.max, pool.min)}
                </span>
            </div>
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

#[cfg(test)]
mod tests {
    use super::human_interval;

    #[test]
    fn intervals_read_as_an_operator_would_say_them() {
        assert_eq!(human_interval(900), "15 min");
        assert_eq!(human_interval(3600), "1 h");
        assert_eq!(human_interval(90), "90 s");
        assert_eq!(human_interval(10), "10 s");
    }
}
