//! Alerts: a warning or critical recommendation as Alertmanager sees an alert — labels that
//! identify it, annotations that explain it, and when it started and ended.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::recommend::{Recommendation, Severity};

/// Where the runbook for every recommendation is: the README's table of what each means.
pub const RUNBOOK_URL: &str = "https://github.com/leasewatch/leasewatch/blob/main/README.md#what-each-recommendation-means-and-what-to-do";

/// Labels or annotations, sorted by name (as Alertmanager prints them).
pub type LabelSet = BTreeMap<String, String>;

/// An alert's identity: a hash of its identifying labels (the rule, its task, the instance),
/// printed as 16 hex digits. Its severity may change without making it another alert, so it
/// differs from the fingerprint Alertmanager shows for the same alert (which hashes every
/// label, severity included).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    /// Alertmanager's hash of a label set (FNV-1a over the sorted names and values, each
    /// followed by the byte 0xff), here over the identifying labels only.
    pub fn of(labels: &LabelSet) -> Self {
        const OFFSET: u64 = 14_695_981_039_346_656_037;
        const PRIME: u64 = 1_099_511_628_211;
        let mut hash = OFFSET;
        for (name, value) in labels {
            for bytes in [name.as_bytes(), value.as_bytes()] {
                for byte in bytes.iter().chain([&0xffu8]) {
                    hash ^= u64::from(*byte);
                    hash = hash.wrapping_mul(PRIME);
                }
            }
        }
        Self(format!("{hash:016x}"))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One alert, firing or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// From the identifying labels.
    pub fingerprint: Fingerprint,
    /// `alertname` (the rule), `instance`, `task` where the rule has one, `severity`,
    /// `service`.
    pub labels: LabelSet,
    /// `summary`, `description`, `runbook_url`.
    pub annotations: LabelSet,
    /// How urgent it is now (also its `severity` label).
    pub severity: Severity,
    /// When it started firing.
    pub starts_at: DateTime<Utc>,
    /// When it stopped; `None` while it fires.
    pub ends_at: Option<DateTime<Utc>>,
}

impl Alert {
    /// A firing alert of `rule` on `instance` (about `task`, if it has one) since `starts_at`:
    /// its identifying labels, its fingerprint over them, then its severity.
    pub fn firing(
        rule: &str,
        task: Option<&str>,
        instance: &str,
        severity: Severity,
        annotations: LabelSet,
        starts_at: DateTime<Utc>,
    ) -> Self {
        let mut labels = LabelSet::from([
            ("alertname".to_owned(), rule.to_owned()),
            ("instance".to_owned(), instance.to_owned()),
            ("service".to_owned(), "leasewatch".to_owned()),
        ]);
        if let Some(task) = task {
            labels.insert("task".to_owned(), task.to_owned());
        }
        let fingerprint = Fingerprint::of(&labels);
        labels.insert("severity".to_owned(), severity.as_str().to_owned());
        Self {
            fingerprint,
            labels,
            annotations,
            severity,
            starts_at,
            ends_at: None,
        }
    }

    /// The alert for a shown recommendation on `instance`; `None` for info lines. A
    /// recommendation about one task (`stale_lease:auction_monitor`) carries it as `task`.
    pub fn of(recommendation: &Recommendation, instance: &str) -> Option<Self> {
        if recommendation.severity < Severity::Warning {
            return None;
        }
        let (rule, task) = match recommendation.id.split_once(':') {
            Some((rule, task)) => (rule, Some(task)),
            None => (recommendation.id.as_str(), None),
        };
        Some(Self::firing(
            rule,
            task,
            instance,
            recommendation.severity,
            LabelSet::from([
                ("summary".to_owned(), recommendation.title.clone()),
                ("description".to_owned(), recommendation.detail.clone()),
                ("runbook_url".to_owned(), RUNBOOK_URL.to_owned()),
            ]),
            recommendation.since,
        ))
    }

    /// The rule's name (`alertname`).
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    /// The task it is about, if any.
    pub fn task(&self) -> Option<&str> {
        self.labels.get("task").map(String::as_str)
    }

    /// Whether it still fires.
    pub fn is_firing(&self) -> bool {
        self.ends_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recommendation(id: &str, severity: Severity) -> Recommendation {
        Recommendation {
            id: id.into(),
            severity,
            title: "A stale lease".into(),
            detail: "held 130 s".into(),
            action: None,
            since: DateTime::UNIX_EPOCH,
            cleared_at: None,
        }
    }

    #[test]
    fn the_fingerprint_is_alertmanagers_and_ignores_severity() {
        // Alertmanager's fingerprint of {alertname="stale_lease"} (model.LabelSet.Fingerprint).
        let one = LabelSet::from([("alertname".to_owned(), "stale_lease".to_owned())]);
        assert_eq!(Fingerprint::of(&one), Fingerprint::of(&one.clone()));
        assert_eq!(Fingerprint::of(&LabelSet::new()).0, "cbf29ce484222325");

        let warning = Alert::of(
            &recommendation("stale_lease:health_check", Severity::Warning),
            "a",
        )
        .unwrap();
        let critical = Alert::of(
            &recommendation("stale_lease:health_check", Severity::Critical),
            "a",
        )
        .unwrap();
        assert_eq!(warning.fingerprint, critical.fingerprint);
        assert_eq!(warning.task(), Some("health_check"));
        assert_eq!(warning.name(), "stale_lease");
        assert_eq!(critical.labels["severity"], "critical");
        let elsewhere = Alert::of(
            &recommendation("stale_lease:health_check", Severity::Warning),
            "b",
        )
        .unwrap();
        assert_ne!(
            warning.fingerprint, elsewhere.fingerprint,
            "the instance is in it"
        );
        assert!(Alert::of(&recommendation("all_clear", Severity::Info), "a").is_none());
    }

    #[test]
    fn the_runbook_link_leads_to_a_readme_heading() {
        let readme = include_str!("../../../README.md");
        let anchor = RUNBOOK_URL.rsplit_once('#').unwrap().1;
        let heading = readme
            .lines()
            .filter_map(|line| line.strip_prefix("### "))
            .find(|h| {
                let slug: String = h
                    .to_lowercase()
                    .chars()
                    .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                    .map(|c| if c == ' ' { '-' } else { c })
                    .collect();
                slug == anchor
            });
        assert!(heading.is_some(), "no README heading makes #{anchor}");
    }
}
