//! The control buttons' shared state, and the control panel: start, stop and the cleanups,
//! each previewed first and taken only on confirmation.
//!
//! An action's preview and its result show where it was asked for ([`Place`]): by the panel,
//! by the task's row, by the recommendation, by a database's card. One live region repeats the
//! result for screen readers. An action asked for on a database's card acts on that database
//! only (its preview and its confirmation alike); the panel's emergency cleanup acts on every
//! database.

use leptos::prelude::*;

use crate::{
    api::Control,
    wire::{ActionName, ControlOutcome, Dashboard, Role, Target},
};

/// Where an action was asked for: its preview and its result show there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    /// The control panel.
    Panel,
    /// A task's row (run now, pause, resume), by task name.
    Task(String),
    /// A recommendation's button, by rule id.
    Advice(String),
    /// The alerts section (the test notification).
    Alerts,
    /// A database's card (its emergency cleanup), by target.
    Target(Target),
}

impl Place {
    /// The button that asked for `action` here, to give focus back to (a CSS selector).
    fn opener(&self, action: ActionName) -> String {
        let quoted = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
        match self {
            // Within its section: a database's card has an emergency cleanup of its own.
            Place::Panel => format!(r#".controls [data-control="{}"]"#, action.as_str()),
            Place::Alerts => format!(r#".alerts [data-control="{}"]"#, action.as_str()),
            // Pause and resume are one button that changes its label.
            Place::Task(task) => format!(
                r#"tr[data-task="{}"] [data-action="{}"]"#,
                quoted(task),
                match action {
                    ActionName::Pause | ActionName::Resume => "pause_resume",
                    other => other.as_str(),
                }
            ),
            Place::Advice(id) => format!(r#"[data-recommendation="{}"] button"#, quoted(id)),
            Place::Target(target) => format!(
                r#"[data-database="{target}"] [data-control="{}"]"#,
                action.as_str()
            ),
        }
    }

    /// The one database an action asked for here acts on; `None`: every database it concerns.
    pub(super) fn target(&self) -> Option<Target> {
        match self {
            Place::Target(target) => Some(*target),
            _ => None,
        }
    }
}

/// What an action asked for at `place` is called, saying which database it acts on where that
/// matters: "Emergency cleanup of replica-1" on a database's card; "Emergency cleanup of every
/// database" from the panel when read replicas are configured (`replicas`); else its label.
pub(super) fn action_words(place: &Place, action: ActionName, replicas: bool) -> String {
    match place.target() {
        Some(target) => format!("{} of {target}", label(action)),
        None if replicas && action == ActionName::EmergencyCleanup => {
            format!("{} of every database", label(action))
        }
        None => label(action),
    }
}

/// What came of the last action, shown where it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Notice {
    pub(super) place: Place,
    pub(super) ok: bool,
    pub(super) text: String,
}

/// The state the control buttons share.
#[derive(Clone, Copy)]
pub(super) struct Controls {
    pub(super) act: ServerAction<Control>,
    /// A preview waiting for confirmation, and where it was asked for.
    pub(super) preview: RwSignal<Option<(Place, ControlOutcome)>>,
    /// The last action's result.
    pub(super) notice: RwSignal<Option<Notice>>,
    /// Where the action under way (or last sent) was asked for, and which it was.
    pub(super) at: RwSignal<Option<(Place, ActionName)>>,
    pub(super) data: Memo<Option<Dashboard>>,
    /// Off until the page is hydrated: the server's HTML shows the buttons disabled, since
    /// without the WASM they do nothing.
    pub(super) hydrated: RwSignal<bool>,
}

impl Controls {
    pub(super) fn send(
        self,
        place: Place,
        action: ActionName,
        task: Option<String>,
        dry_run: Option<bool>,
    ) {
        let target = place.target().map(|target| target.to_string());
        self.at.set(Some((place, action)));
        self.act.dispatch(Control {
            action,
            task,
            dry_run,
            target,
        });
    }

    /// Stop and the cleanups preview first; everything else acts at once.
    pub(super) fn request(self, place: Place, action: ActionName, task: Option<String>) {
        if action.takes_dry_run() {
            self.send(place, action, None, Some(true));
        } else {
            self.send(place, action, task, None);
        }
    }

    /// Whether read replicas are configured (the page shows each database).
    pub(super) fn has_replicas(self) -> bool {
        self.data
            .with(|d| d.as_ref().is_some_and(Dashboard::has_replicas))
    }

    /// What the action asked for at `place` is called ([`action_words`]). Reads the data
    /// without tracking it: the previews and the effect that shows an action's result call
    /// this, and must not run again (taking the focus back) on every poll.
    pub(super) fn words(self, place: &Place, action: ActionName) -> String {
        let replicas = self
            .data
            .with_untracked(|d| d.as_ref().is_some_and(Dashboard::has_replicas));
        action_words(place, action, replicas)
    }

    pub(super) fn is_operator(self) -> bool {
        self.data
            .with(|d| d.as_ref().is_some_and(|d| d.role == Role::Operator))
    }

    /// Why a button is off: not hydrated yet, not an operator, or an action under way.
    pub(super) fn disabled(self) -> bool {
        !self.hydrated.get() || !self.is_operator() || self.act.pending().get()
    }

    /// Closes the preview and gives focus back to the button that opened it.
    pub(super) fn close_preview(self) {
        if let Some((place, plan)) = self.preview.get_untracked() {
            self.preview.set(None);
            focus_later(place.opener(plan.action));
        }
    }

    /// Gives focus back to the button that asked for `action` at `place` (once it is enabled
    /// again).
    pub(super) fn refocus(self, place: &Place, action: ActionName) {
        focus_later(place.opener(action));
    }

    /// "Working…" while an action asked for here is under way, then what came of it.
    pub(super) fn feedback(self, place: Place) -> impl IntoView {
        let here = place.clone();
        let working = move || {
            self.act.pending().get()
                && self
                    .at
                    .with(|at| at.as_ref().is_some_and(|(p, _)| *p == here))
        };
        let notice = move || {
            self.notice
                .get()
                .filter(|n| n.place == place)
                .map(|n| (n.ok, n.text))
        };
        move || {
            if working() {
                Some(
                    view! { <p class="feedback busy" data-feedback="working">"Working…"</p> }
                        .into_any(),
                )
            } else {
                notice().map(|(ok, text)| {
                    view! {
                        <p class="feedback" data-feedback=if ok { "ok" } else { "error" }>{text}</p>
                    }
                    .into_any()
                })
            }
        }
    }

    /// The preview asked for here, with Confirm and Cancel. Focus moves into it when it
    /// opens; Escape or Cancel closes it and gives focus back to the button that opened it.
    pub(super) fn preview_at(self, place: Place) -> impl IntoView {
        move || {
            let (_, plan) = self.preview.get().filter(|(p, _)| *p == place)?;
            let action = plan.action;
            let here = place.clone();
            let words = self.words(&place, action);
            let confirm = format!("Confirm {}", words.to_ascii_lowercase());
            let heading = NodeRef::<leptos::html::P>::new();
            #[cfg(feature = "hydrate")]
            Effect::new(move |_| {
                if let Some(heading) = heading.get() {
                    let _ = heading.focus();
                }
            });
            Some(view! {
                <div
                    class="preview"
                    role="group"
                    aria-label=format!("{words} preview")
                    data-preview=action.as_str()
                    data-preview-target=place.target().map(|target| target.to_string())
                    on:keydown=move |ev| {
                        if ev.key() == "Escape" {
                            ev.prevent_default();
                            self.close_preview();
                        }
                    }
                >
                    <p tabindex="-1" node_ref=heading>
                        <strong>{words.clone()} " preview: "</strong>
                        {plan.message.clone()}
                    </p>
                    <button
                        class="danger"
                        on:click=move |_| {
                            self.preview.set(None);
                            self.send(here.clone(), action, None, Some(false));
                        }
                        disabled=move || self.disabled()
                    >
                        {confirm}
                    </button>
                    <button class="quiet" on:click=move |_| self.close_preview()>"Cancel"</button>
                </div>
            })
        }
    }
}

/// Focuses the element `selector` finds, after the next frame: a button disabled while an
/// action was under way takes focus only once the page has enabled it again.
fn focus_later(selector: String) {
    #[cfg(feature = "hydrate")]
    request_animation_frame(move || {
        use web_sys::wasm_bindgen::JsCast;
        if let Some(element) = document()
            .query_selector(&selector)
            .ok()
            .flatten()
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = element.focus();
        }
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = selector;
}

pub(super) fn label(action: ActionName) -> String {
    let mut text = action.as_str().replace('_', " ");
    if let Some(first) = text.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    text
}

#[component]
pub(super) fn ControlPanel(controls: Controls) -> impl IntoView {
    let running = move || {
        controls
            .data
            .with(|d| d.as_ref().is_some_and(|d| d.scheduler_running))
    };
    let button = move |action: ActionName, text: &'static str, off: fn(bool) -> bool| {
        view! {
            <button
                data-control=action.as_str()
                on:click=move |_| controls.request(Place::Panel, action, None)
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
                {button(ActionName::Stop, "Stop…", |running| !running)}
                {button(ActionName::Cleanup, "Cleanup…", |_| false)}
                {button(ActionName::EmergencyCleanup, "Emergency cleanup…", |_| false)}
            </div>
            <noscript>
                "The controls need JavaScript: with it off this page only shows the figures as they were when it loaded."
            </noscript>
            {move || (!controls.is_operator()).then(|| view! {
                <p class="note" data-readonly="true">
                    "Read-only: you are logged in as a viewer. Log in with the operator token to act."
                </p>
            })}
            {controls.preview_at(Place::Panel)}
            {controls.feedback(Place::Panel)}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_labels_read_as_words() {
        assert_eq!(label(ActionName::EmergencyCleanup), "Emergency cleanup");
        assert_eq!(label(ActionName::RunNow), "Run now");
        assert_eq!(label(ActionName::TestNotification), "Test notification");
    }

    #[test]
    fn openers_are_found_where_the_action_was_asked_for() {
        assert_eq!(
            Place::Panel.opener(ActionName::Stop),
            r#".controls [data-control="stop"]"#
        );
        assert_eq!(
            Place::Advice(r#"stale_lease:a"b"#.to_owned()).opener(ActionName::Cleanup),
            r#"[data-recommendation="stale_lease:a\"b"] button"#
        );
        assert_eq!(
            Place::Alerts.opener(ActionName::TestNotification),
            r#".alerts [data-control="test_notification"]"#
        );
        assert_eq!(
            Place::Task("health_check".to_owned()).opener(ActionName::Pause),
            r#"tr[data-task="health_check"] [data-action="pause_resume"]"#
        );
        assert_eq!(
            Place::Target(Target::Replica(2)).opener(ActionName::EmergencyCleanup),
            r#"[data-database="replica-2"] [data-control="emergency_cleanup"]"#
        );
    }

    #[test]
    fn an_action_on_a_database_names_it_and_sends_it() {
        let card = Place::Target(Target::Replica(1));
        assert_eq!(card.target(), Some(Target::Replica(1)));
        assert_eq!(Place::Panel.target(), None);
        assert_eq!(
            action_words(&card, ActionName::EmergencyCleanup, true),
            "Emergency cleanup of replica-1"
        );
        assert_eq!(
            action_words(
                &Place::Target(Target::Primary),
                ActionName::EmergencyCleanup,
                true
            ),
            "Emergency cleanup of primary"
        );
        // The panel's acts on every database: said so only when there is more than one.
        assert_eq!(
            action_words(&Place::Panel, ActionName::EmergencyCleanup, true),
            "Emergency cleanup of every database"
        );
        assert_eq!(
            action_words(&Place::Panel, ActionName::EmergencyCleanup, false),
            "Emergency cleanup"
        );
        assert_eq!(
            action_words(&Place::Panel, ActionName::Cleanup, true),
            "Cleanup"
        );
    }
}
