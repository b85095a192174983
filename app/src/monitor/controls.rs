//! The control buttons' shared state, and the control panel: start, stop, the cleanups with
//! their preview and confirmation.

use leptos::prelude::*;

use crate::{
    api::Control,
    wire::{ActionName, ControlOutcome, Dashboard, Role},
};

/// The state the control buttons share.
#[derive(Clone, Copy)]
pub(super) struct Controls {
    pub(super) act: ServerAction<Control>,
    pub(super) preview: RwSignal<Option<ControlOutcome>>,
    pub(super) data: Memo<Option<Dashboard>>,
}

impl Controls {
    pub(super) fn send(self, action: ActionName, task: Option<String>, dry_run: Option<bool>) {
        self.act.dispatch(Control {
            action,
            task,
            dry_run,
        });
    }

    /// Cleanups preview first; everything else acts at once.
    pub(super) fn request(self, action: ActionName, task: Option<String>) {
        if action.takes_dry_run() {
            self.send(action, None, Some(true));
        } else {
            self.send(action, task, None);
        }
    }

    pub(super) fn is_operator(self) -> bool {
        self.data
            .with(|d| d.as_ref().is_some_and(|d| d.role == Role::Operator))
    }

    /// Why a button is off: not an operator, or an action under way.
    pub(super) fn disabled(self) -> bool {
        !self.is_operator() || self.act.pending().get()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_labels_read_as_words() {
        assert_eq!(label(ActionName::EmergencyCleanup), "Emergency cleanup");
        assert_eq!(label(ActionName::RunNow), "Run now");
    }
}
