//! When a group of alerts is notified, with Alertmanager's meaning of its three timers: the
//! first notification waits `group_wait` after the first alert (so alerts that come together
//! arrive together); a changed group is notified again at most every `group_interval`; an
//! unchanged group still firing is notified again after `repeat_interval`.
//!
//! One difference, on purpose: a resolve is sent at once, not at the next `group_interval`.
//! Recommendations clear only after `REC_CLEAR` without their condition, so a resolve is
//! already debounced, and it is the news the person who was paged is waiting for.
//!
//! Pure: [`Group::decide`] takes the alerts and the time and returns what to send.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{Alert, Fingerprint};
use crate::recommend::Severity;
use leasewatch_types::NotificationKind;

/// The three timers, as Alertmanager's route options of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How long the first notification of a group waits for more alerts (`ALERT_GROUP_WAIT`).
    pub group_wait: Duration,
    /// The least time between two notifications of a changed group (`ALERT_GROUP_INTERVAL`).
    pub group_interval: Duration,
    /// How long before an unchanged group still firing is notified again
    /// (`ALERT_REPEAT_INTERVAL`).
    pub repeat_interval: Duration,
}

impl Default for Timers {
    /// Alertmanager's defaults.
    fn default() -> Self {
        Self {
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(5 * 60),
            repeat_interval: Duration::from_secs(4 * 3600),
        }
    }
}

/// What the last notification said of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Told {
    /// Firing, at this severity.
    Firing(Severity),
    /// Resolved.
    Resolved,
}

/// One group's alerts and what its receivers were last told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Firing alerts, and resolved ones not yet notified as such.
    pub alerts: BTreeMap<Fingerprint, Alert>,
    /// What the last notification said, by alert; empty until the group is first notified.
    pub told: BTreeMap<Fingerprint, Told>,
    /// When the group was last notified.
    pub notified_at: Option<DateTime<Utc>>,
    /// When its first alert since the last all-clear arrived (`group_wait` counts from here).
    pub waiting_since: Option<DateTime<Utc>>,
    /// The receivers `told` speaks for, by name: a receiver added since has been told nothing.
    #[serde(default)]
    pub receivers: Vec<String>,
}

/// A notification to send now: its kind and the alerts it carries (firing first).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Firing (new or changed), repeat, or resolved (when nothing fires any more).
    pub kind: NotificationKind,
    /// Every firing alert of the group, and the ones resolved since the last notification.
    pub alerts: Vec<Alert>,
}

impl Group {
    /// Takes the alerts firing now: new ones join, known ones are updated, missing ones
    /// resolve at `now`.
    pub fn observe(&mut self, now: DateTime<Utc>, firing: Vec<Alert>) {
        let mut seen = Vec::with_capacity(firing.len());
        for alert in firing {
            seen.push(alert.fingerprint.clone());
            match self.alerts.get_mut(&alert.fingerprint) {
                // A firing alert keeps its start; an alert that resolved and fires again
                // before the resolve went out is the same episode.
                Some(known) => {
                    let starts_at = known.starts_at;
                    *known = Alert { starts_at, ..alert };
                }
                None => {
                    self.alerts.insert(alert.fingerprint.clone(), alert);
                }
            }
        }
        for (fingerprint, alert) in &mut self.alerts {
            if alert.is_firing() && !seen.contains(fingerprint) {
                alert.ends_at = Some(now);
            }
        }
        if self.waiting_since.is_none() && self.alerts.values().any(Alert::is_firing) {
            self.waiting_since = Some(now);
        }
    }

    /// What to send now, if anything; the group then counts as notified of it.
    pub fn decide(&mut self, now: DateTime<Utc>, timers: &Timers) -> Option<Decision> {
        let since = |at: Option<DateTime<Utc>>, span: Duration| {
            at.is_some_and(|at| now - at >= chrono::Duration::from_std(span).unwrap_or_default())
        };
        let firing = self.alerts.values().any(Alert::is_firing);
        let state = self.told_now();
        let kind = if self.told.is_empty() {
            // Nothing firing was told yet: the first notification waits group_wait, and
            // alerts that resolved before it are never sent.
            if !firing {
                self.alerts.clear();
                self.waiting_since = None;
                return None;
            }
            since(self.waiting_since, timers.group_wait).then_some(NotificationKind::Firing)?
        } else if state == self.told {
            since(self.notified_at, timers.repeat_interval).then_some(NotificationKind::Repeat)?
        } else if state.iter().any(|(fp, told)| {
            *told == Told::Resolved && matches!(self.told.get(fp), Some(Told::Firing(_)))
        }) {
            if firing {
                NotificationKind::Firing
            } else {
                NotificationKind::Resolved
            }
        } else {
            since(self.notified_at, timers.group_interval).then_some(NotificationKind::Firing)?
        };
        let mut alerts: Vec<Alert> = self.alerts.values().cloned().collect();
        alerts.sort_by(|a, b| {
            (!a.is_firing(), b.severity, a.starts_at, a.name()).cmp(&(
                !b.is_firing(),
                a.severity,
                b.starts_at,
                b.name(),
            ))
        });
        // Told now: resolved alerts leave the group, the rest is remembered as sent.
        self.told = state;
        self.told.retain(|_, told| *told != Told::Resolved);
        self.alerts.retain(|_, alert| alert.is_firing());
        self.notified_at = Some(now);
        if self.alerts.is_empty() {
            self.waiting_since = None;
        }
        Some(Decision { kind, alerts })
    }

    /// What a notification sent now would say, by alert.
    pub fn told_now(&self) -> BTreeMap<Fingerprint, Told> {
        self.alerts
            .iter()
            .map(|(fp, alert)| {
                let told = if alert.is_firing() {
                    Told::Firing(alert.severity)
                } else {
                    Told::Resolved
                };
                (fp.clone(), told)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::model::LabelSet;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    fn alert(name: &str, severity: Severity) -> Alert {
        let labels = LabelSet::from([("alertname".to_owned(), name.to_owned())]);
        Alert {
            fingerprint: Fingerprint::of(&labels),
            labels,
            annotations: LabelSet::new(),
            severity,
            starts_at: at(0),
            ends_at: None,
        }
    }

    /// Feeds `firing` at `secs` and returns what was sent: kind and alert names (resolved
    /// ones with a `-`).
    fn step(group: &mut Group, secs: i64, firing: &[(&str, Severity)]) -> Option<String> {
        let timers = Timers::default(); // 30 s, 5 min, 4 h
        group.observe(at(secs), firing.iter().map(|(n, s)| alert(n, *s)).collect());
        group.decide(at(secs), &timers).map(|d| {
            let names: Vec<String> = d
                .alerts
                .iter()
                .map(|a| format!("{}{}", if a.is_firing() { "" } else { "-" }, a.name()))
                .collect();
            format!("{} {}", d.kind, names.join(","))
        })
    }

    const W: Severity = Severity::Warning;
    const C: Severity = Severity::Critical;

    #[test]
    fn the_first_notification_waits_and_carries_what_came_meanwhile() {
        let mut g = Group::default();
        assert_eq!(step(&mut g, 0, &[("a", W)]), None);
        assert_eq!(step(&mut g, 10, &[("a", W), ("b", C)]), None);
        assert_eq!(step(&mut g, 29, &[("a", W), ("b", C)]), None);
        assert_eq!(
            step(&mut g, 30, &[("a", W), ("b", C)]).as_deref(),
            Some("firing b,a")
        );
        assert_eq!(step(&mut g, 31, &[("a", W), ("b", C)]), None, "told");
    }

    #[test]
    fn an_alert_gone_before_the_first_notification_is_never_sent() {
        let mut g = Group::default();
        assert_eq!(step(&mut g, 0, &[("a", W)]), None);
        assert_eq!(step(&mut g, 5, &[]), None);
        assert_eq!(step(&mut g, 60, &[]), None);
        assert_eq!(g, Group::default(), "nothing left over");
    }

    #[test]
    fn changes_wait_for_the_group_interval_and_repeats_for_the_repeat_interval() {
        let mut g = Group::default();
        step(&mut g, 0, &[("a", W)]);
        assert!(step(&mut g, 30, &[("a", W)]).is_some());
        assert_eq!(
            step(&mut g, 100, &[("a", W), ("b", W)]),
            None,
            "changed: waits"
        );
        assert_eq!(step(&mut g, 329, &[("a", W), ("b", W)]), None);
        assert_eq!(
            step(&mut g, 330, &[("a", W), ("b", W)]).as_deref(),
            Some("firing a,b")
        );
        assert_eq!(step(&mut g, 331 + 3600, &[("a", W), ("b", W)]), None);
        assert_eq!(
            step(&mut g, 330 + 4 * 3600, &[("a", W), ("b", W)]).as_deref(),
            Some("repeat a,b")
        );
        // A severity change is a change.
        assert_eq!(
            step(&mut g, 330 + 4 * 3600 + 1, &[("a", C), ("b", W)]),
            None
        );
        assert_eq!(
            step(&mut g, 330 + 4 * 3600 + 300, &[("a", C), ("b", W)]).as_deref(),
            Some("firing a,b")
        );
    }

    #[test]
    fn a_resolve_goes_out_at_once_with_what_still_fires() {
        let mut g = Group::default();
        step(&mut g, 0, &[("a", W), ("b", W)]);
        step(&mut g, 30, &[("a", W), ("b", W)]);
        assert_eq!(
            step(&mut g, 40, &[("a", W)]).as_deref(),
            Some("firing a,-b")
        );
        assert_eq!(step(&mut g, 41, &[]).as_deref(), Some("resolved -a"));
        assert_eq!(step(&mut g, 42, &[]), None);
        // The next episode waits group_wait again, as a new Alertmanager group would.
        assert_eq!(step(&mut g, 50, &[("a", W)]), None);
        assert_eq!(step(&mut g, 80, &[("a", W)]).as_deref(), Some("firing a"));
    }
}
