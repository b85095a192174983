//! The tables: leases, tasks (with run now and pause / resume per row), auctions, audit.

use leptos::{either::Either, prelude::*};

use super::{
    controls::{Controls, Place},
    read::{field, markup_from},
};
use crate::{
    markup,
    prefs::{Prefs, Shown, time_view},
    wire::{ActionName, Dashboard, Relative, Retry, TaskStatus},
};

/// How far ahead a next run reads as "in …" rather than by its date and time.
const SOON_MS: i64 = 60 * 60 * 1000;

/// The leases held now; with read replicas, on which database each is (a Target column).
#[component]
pub(super) fn LeaseTable(data: Memo<Option<Dashboard>>) -> impl IntoView {
    let replicas = move || data.with(|d| d.as_ref().is_some_and(Dashboard::has_replicas));
    view! {
        <section aria-labelledby="leases-title">
            <h2 id="leases-title">"Leases"</h2>
            <table class="leases">
                <thead inner_html=move || markup::lease_head(replicas())></thead>
                <tbody inner_html=move || markup_from(data, |d| markup::lease_rows(&d.leases, d.has_replicas()))></tbody>
            </table>
            {move || data.with(|d| d.as_ref().is_some_and(|d| d.leases.is_empty())).then(|| view! { <p class="note">"No connection is leased right now."</p> })}
        </section>
    }
}

#[component]
pub(super) fn TaskTable(
    data: Memo<Option<Dashboard>>,
    controls: Controls,
    now: Signal<i64>,
) -> impl IntoView {
    let preview = move || {
        field(data, |d| d.schedule_preview.clone())().map(|line| {
            view! {
                {line.before}
                {line.at_ms.map(|at| time_view(at, Shown::ShortClock, now))}
                {line.after}
            }
        })
    };
    view! {
        <section aria-labelledby="tasks-title">
            <h2 id="tasks-title">"Tasks"</h2>
            <p class="schedule-preview" data-schedule-preview>{preview}</p>
            <table class="tasks">
                <thead>
                    <tr>
                        <th scope="col">"Task"</th>
                        <th scope="col">"Schedule"</th>
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
                        <TaskLine name data controls now/>
                    </For>
                </tbody>
            </table>
        </section>
    }
}

/// One task row; its cells follow the data, its buttons stay put across polls. On a narrow
/// screen the row is a card: each cell on a line of its own, labelled (`data-label`), the
/// buttons last.
#[component]
fn TaskLine(
    name: String,
    data: Memo<Option<Dashboard>>,
    controls: Controls,
    now: Signal<i64>,
) -> impl IntoView {
    let key = name.clone();
    let task = Memo::new(move |_| {
        data.with(|d| {
            d.as_ref()
                .and_then(|d| d.tasks.iter().find(|t| t.task == key).cloned())
        })
    });
    let retry = move || task.get().and_then(|t| t.retry);
    let paused = move || task.get().is_some_and(|t| t.paused);
    let (run_name, pause_name) = (name.clone(), name.clone());
    let place = Place::Task(name.clone());
    let runs = format!(
        "{}/runs?task={}",
        crate::base::base(),
        leasewatch_types::percent_encode(&name)
    );
    view! {
        <tr data-task=name.clone()>
            <th scope="row">
                <a class="task-runs" href=runs title=format!("The runs of {name} in the history")>{name.clone()}</a>
            </th>
            <td data-label="Schedule">{move || task.get().map(|t| t.schedule)}</td>
            <td data-label="State" data-state=move || task.get().map(|t| t.state.as_str())>{move || task.get().map(|t| t.state.as_str())}</td>
            <td data-label="Next run">
                // Within the hour a countdown; a start further off by its date and time.
                {move || task.get().and_then(|t| t.next_run_at_ms).map(|at| {
                    let soon = at - now.get() < SOON_MS;
                    let shown = if soon { Shown::Relative(Relative::Until) } else { Shown::DateTime };
                    time_view(at, shown, now)
                })}
                {move || task.get().and_then(|t| t.deferred_since_ms).map(|since| view! {
                    <span class="detail deferred" data-deferred=since>
                        "deferred since " {time_view(since, Shown::Clock, now)}
                        ": exhaustion of the server is predicted"
                    </span>
                })}
            </td>
            <td data-label="Last run" class="last-run" data-outcome=move || task.get().and_then(|t| t.last_outcome).map(|o| o.as_str())>
                {move || task.get().map(|t| match (t.last_run_at_ms, t.last_outcome) {
                    (Some(at), Some(outcome)) => Either::Left(view! {
                        {outcome.as_str()} " " {time_view(at, Shown::Relative(Relative::Ago), now)}
                    }),
                    _ => Either::Right("not yet"),
                })}
                <span class="detail">{move || task.get().and_then(|t| t.last_detail)}</span>
                {move || retry().map(|r| view! {
                    <span class="retry" data-retry=r.run_id>
                        {attempt_words(&r)} ", next try at "
                        {time_view(r.at_ms, Shown::Clock, now)} " ("
                        {time_view(r.at_ms, Shown::Relative(Relative::Until), now)} ")"
                        <span class="detail">"Last error: " {r.error}</span>
                    </span>
                })}
            </td>
            <td data-label="Took" class="num">{move || task.get().and_then(|t| t.last_duration_ms).map(|ms| format!("{:.1} s", ms as f64 / 1000.0))}</td>
            <td data-label="Attempts" class="num">{move || task.get().and_then(|t| t.last_attempts)}</td>
            <td class="row-actions">
                <div class="buttons">
                    <button
                        data-action="run_now"
                        aria-label=format!("Run {name} now")
                        on:click={
                            let place = place.clone();
                            move |_| controls.request(place.clone(), ActionName::RunNow, Some(run_name.clone()))
                        }
                        disabled=move || controls.disabled() || task.get().is_some_and(|t| matches!(t.state, TaskStatus::Running | TaskStatus::Backoff))
                    >
                        "Run now"
                    </button>
                    <button
                        data-action="pause_resume"
                        aria-label=move || format!("{} {}", if paused() { "Resume" } else { "Pause" }, pause_name)
                        on:click={
                            let (name, place) = (name.clone(), place.clone());
                            move |_| controls.request(place.clone(), if paused() { ActionName::Resume } else { ActionName::Pause }, Some(name.clone()))
                        }
                        disabled=move || controls.disabled()
                    >
                        {move || if paused() { "Resume" } else { "Pause" }}
                    </button>
                </div>
                {controls.feedback(place.clone())}
            </td>
        </tr>
    }
}

/// "Retrying: attempt 3 of 4": a run in backoff (the page adds when the attempt comes).
fn attempt_words(retry: &Retry) -> String {
    format!(
        "Retrying: attempt {} of {}",
        retry.next_attempt, retry.max_attempts
    )
}

#[component]
pub(super) fn AuctionTable(data: Memo<Option<Dashboard>>) -> impl IntoView {
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
pub(super) fn AuditTable(data: Memo<Option<Dashboard>>) -> impl IntoView {
    let zone = Prefs::get().zone;
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
                <tbody inner_html=move || markup_from(data, |d| markup::audit_rows(&d.audit, zone.get(), d.taken_at_ms))></tbody>
            </table>
            <p class="more"><a href=crate::base::href("/audit")>"Search the audit log"</a></p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_says_which_attempt_comes() {
        let retry = Retry {
            run_id: 12,
            next_attempt: 3,
            max_attempts: 4,
            at_ms: 1_796_220_187_000,
            error: "lease revoked".to_owned(),
        };
        assert_eq!(attempt_words(&retry), "Retrying: attempt 3 of 4");
    }
}
