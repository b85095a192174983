//! The Databases section, shown only with read replicas (`DATABASE_REPLICA_URLS`): a card
//! for each database tasks run on (whether it takes work and why not, its replay lag, pool,
//! leases and bans) with an emergency cleanup of that database alone, then the latest bans and
//! recoveries.
//!
//! Everything but the buttons is markup ([`markup`]): nothing there to click.

use leptos::prelude::*;

use super::{
    controls::{Controls, Place},
    read::markup_from,
};
use crate::{
    markup,
    prefs::Prefs,
    wire::{ActionName, Dashboard, Target},
};

#[component]
pub(super) fn DatabasesSection(data: Memo<Option<Dashboard>>, controls: Controls) -> impl IntoView {
    let zone = Prefs::get().zone;
    let targets = move || {
        data.with(|d| {
            d.as_ref()
                .filter(|d| d.has_replicas())
                .map(|d| d.targets.iter().map(|t| t.target).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    };
    // Built once the page has replicas, not again on each poll (its buttons keep their focus).
    let shown = Memo::new(move |_| controls.has_replicas());
    move || {
        shown.get().then(|| {
            view! {
                <section aria-labelledby="databases-title" class="databases">
                    <h2 id="databases-title">"Databases"</h2>
                    <p class="note">
                        "Read-only work runs on the replicas in rotation; writes and coordination on the primary."
                    </p>
                    <ul class="database-cards" role="list">
                        <For each=targets key=|target| *target let:target>
                            <DatabaseCard target data controls/>
                        </For>
                    </ul>
                    <h3 id="rotation-events-title">"Bans and recoveries"</h3>
                    <div inner_html=move || markup_from(data, |d| markup::rotation_events(&d.targets, zone.get(), d.taken_at_ms))></div>
                </section>
            }
        })
    }
}

/// One database's card: markup from the data, and its emergency cleanup, which previews and
/// acts on this database only.
#[component]
fn DatabaseCard(
    target: Target,
    data: Memo<Option<Dashboard>>,
    controls: Controls,
) -> impl IntoView {
    let zone = Prefs::get().zone;
    let action = ActionName::EmergencyCleanup;
    let place = Place::Target(target);
    let card = Memo::new(move |_| {
        data.with(|d| {
            d.as_ref().and_then(|d| {
                let card = d.targets.iter().find(|t| t.target == target)?;
                Some((card.clone(), d.taken_at_ms))
            })
        })
    });
    let rotation = move || {
        card.with(|c| {
            c.as_ref()
                .map(|(card, _)| if card.in_rotation { "in" } else { "out" })
        })
    };
    view! {
        <li
            class="database"
            data-database=target.to_string()
            data-rotation=rotation
            aria-labelledby=markup::target_heading_id(target)
        >
            <div
                class="database-body"
                inner_html=move || {
                    card.with(|c| {
                        c.as_ref()
                            .map(|(card, now_ms)| markup::target_card(card, zone.get(), *now_ms))
                            .unwrap_or_default()
                    })
                }
            ></div>
            <div class="buttons">
                <button
                    data-control=action.as_str()
                    on:click={
                        let place = place.clone();
                        move |_| controls.request(place.clone(), action, None)
                    }
                    disabled=move || controls.disabled()
                >
                    {format!("Emergency cleanup of {target}…")}
                </button>
            </div>
            {controls.preview_at(place.clone())}
            {controls.feedback(place)}
        </li>
    }
}
