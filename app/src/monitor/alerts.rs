//! The alerts section: the alerts firing now, where they go (the receivers and how their
//! deliveries fared), the latest notifications, and, for the operator, a test notification to
//! check that alerts reach every receiver.
//!
//! Everything but the button is markup ([`markup`]): nothing there to click.

use leptos::prelude::*;

use super::{
    controls::{Controls, Place},
    read::markup_from,
};
use crate::{
    markup,
    prefs::Prefs,
    wire::{ActionName, Dashboard},
};

#[component]
pub(super) fn AlertsSection(data: Memo<Option<Dashboard>>, controls: Controls) -> impl IntoView {
    let action = ActionName::TestNotification;
    let zone = Prefs::get().zone;
    view! {
        <section aria-labelledby="alerts-title" class="alerts">
            <h2 id="alerts-title">"Alerts"</h2>
            <h3 id="alerts-firing-title">"Firing"</h3>
            <div inner_html=move || markup_from(data, |d| markup::firing_alerts(&d.alerts.firing, zone.get()))></div>
            <h3>"Receivers"</h3>
            <div inner_html=move || markup_from(data, |d| markup::alert_receivers(&d.alerts))></div>
            // Shown to a viewer too, disabled, as every other action is (the control panel
            // says why).
            <div class="buttons">
                <button
                    data-control=action.as_str()
                    on:click=move |_| controls.request(Place::Alerts, action, None)
                    disabled=move || controls.disabled()
                >
                    "Send test notification"
                </button>
            </div>
            {controls.feedback(Place::Alerts)}
            <h3 id="alerts-notifications-title">"Latest notifications"</h3>
            <div inner_html=move || markup_from(data, |d| markup::notifications(&d.alerts.notifications, zone.get(), d.taken_at_ms))></div>
        </section>
    }
}
