//! The bodies receivers take: Alertmanager's webhook body (version 4), Alertmanager's
//! `POST /api/v2/alerts` list, and a chat incoming webhook's `text`; and their signature.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use leasewatch_types::{NotificationKind, ReceiverKind};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{
    deliver::Receiver,
    model::{Alert, LabelSet},
};

/// Alertmanager's "zero time", which its webhook gives as `endsAt` of a firing alert.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// How long an alert pushed to an Alertmanager stays firing there without being pushed again
/// (four re-sends, as Prometheus does), so a Leasewatch that dies does not leave it firing.
pub const ALERTMANAGER_VALID_FOR: chrono::TimeDelta = chrono::TimeDelta::minutes(4);

/// Alertmanager's webhook body, version 4, field for field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody {
    /// Always "4".
    pub version: String,
    /// Identifies the group (`{}:{instance="..."}`).
    pub group_key: String,
    /// Alerts left out for a receiver's limit; Leasewatch leaves none out.
    pub truncated_alerts: u64,
    /// `firing` while any alert fires, else `resolved`.
    pub status: String,
    /// The receiver's name.
    pub receiver: String,
    /// The labels the group is formed by.
    pub group_labels: LabelSet,
    /// The labels every alert has in common.
    pub common_labels: LabelSet,
    /// The annotations every alert has in common.
    pub common_annotations: LabelSet,
    /// The dashboard's address (`PUBLIC_URL`), or empty.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
}

/// One alert in a [`WebhookBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels.
    pub labels: LabelSet,
    /// Its annotations.
    pub annotations: LabelSet,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339; Alertmanager's zero time while firing.
    pub ends_at: String,
    /// Where it comes from (the dashboard), or empty.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Its fingerprint.
    pub fingerprint: String,
}

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Its labels (Alertmanager identifies it by them).
    pub labels: LabelSet,
    /// Its annotations.
    pub annotations: LabelSet,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339: in the past for a resolved alert, a few minutes ahead for a firing one.
    pub ends_at: String,
    /// Where it comes from (the dashboard), or empty.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// A chat incoming webhook's body (Slack, Mattermost).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatBody {
    /// The message, in their markdown.
    pub text: String,
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn status(firing: bool) -> String {
    if firing { "firing" } else { "resolved" }.to_owned()
}

/// The labels (or annotations) every one of `sets` has, with the same value.
fn common(sets: impl Iterator<Item = LabelSet>) -> LabelSet {
    sets.reduce(|mut acc, set| {
        acc.retain(|name, value| set.get(name) == Some(value));
        acc
    })
    .unwrap_or_default()
}

/// The webhook body for `alerts` of the group of `instance`, as `receiver` gets it.
pub fn webhook(
    receiver: &str,
    instance: &str,
    external_url: &str,
    alerts: &[Alert],
) -> WebhookBody {
    WebhookBody {
        version: "4".into(),
        group_key: format!("{{}}:{{instance=\"{instance}\"}}"),
        truncated_alerts: 0,
        status: status(alerts.iter().any(Alert::is_firing)),
        receiver: receiver.to_owned(),
        group_labels: LabelSet::from([("instance".to_owned(), instance.to_owned())]),
        common_labels: common(alerts.iter().map(|a| a.labels.clone())),
        common_annotations: common(alerts.iter().map(|a| a.annotations.clone())),
        external_url: external_url.to_owned(),
        alerts: alerts
            .iter()
            .map(|a| WebhookAlert {
                status: status(a.is_firing()),
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: rfc3339(a.starts_at),
                ends_at: a.ends_at.map_or_else(|| ZERO_TIME.to_owned(), rfc3339),
                generator_url: external_url.to_owned(),
                fingerprint: a.fingerprint.0.clone(),
            })
            .collect(),
    }
}

/// The list pushed to an Alertmanager at `now`: firing alerts valid for
/// [`ALERTMANAGER_VALID_FOR`], resolved ones ended.
pub fn alertmanager(
    now: DateTime<Utc>,
    external_url: &str,
    alerts: &[Alert],
) -> Vec<PostableAlert> {
    alerts
        .iter()
        .map(|a| PostableAlert {
            labels: a.labels.clone(),
            annotations: a.annotations.clone(),
            starts_at: rfc3339(a.starts_at),
            ends_at: rfc3339(a.ends_at.unwrap_or(now + ALERTMANAGER_VALID_FOR)),
            generator_url: external_url.to_owned(),
        })
        .collect()
}

/// A chat message: one line per alert, the worst first.
pub fn chat(kind: NotificationKind, instance: &str, alerts: &[Alert]) -> ChatBody {
    let firing = alerts.iter().filter(|a| a.is_firing()).count();
    let head = match kind {
        NotificationKind::Test => {
            format!("Leasewatch on {instance}: test notification. Alerts reach this channel.")
        }
        NotificationKind::Resolved => format!("Leasewatch on {instance}: resolved"),
        _ => format!("Leasewatch on {instance}: {firing} alert(s) firing"),
    };
    let lines = alerts.iter().map(|a| {
        let mark = if a.is_firing() {
            a.severity.as_str().to_uppercase()
        } else {
            "RESOLVED".to_owned()
        };
        let summary = a.annotations.get("summary").map_or("", String::as_str);
        let task = a.task().map(|t| format!(" ({t})")).unwrap_or_default();
        format!("• [{mark}] {summary}{task}")
    });
    ChatBody {
        text: std::iter::once(head)
            .chain(lines)
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The body `receiver` takes for a notification of `kind` carrying `alerts` from the group of
/// `instance`, made at `now`, as JSON.
pub fn body(
    receiver: &Receiver,
    kind: NotificationKind,
    now: DateTime<Utc>,
    instance: &str,
    external_url: &str,
    alerts: &[Alert],
) -> String {
    match receiver.kind {
        ReceiverKind::Webhook => {
            serde_json::to_string(&webhook(&receiver.name, instance, external_url, alerts))
        }
        ReceiverKind::Alertmanager => {
            serde_json::to_string(&alertmanager(now, external_url, alerts))
        }
        ReceiverKind::Chat => serde_json::to_string(&chat(kind, instance, alerts)),
    }
    .expect("bodies of strings and maps serialize")
}

/// The signing key for bodies (`ALERT_HMAC_SECRET`); never printed.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// A key of these bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// The `X-Leasewatch-Signature` value for `body` sent at `timestamp` (Unix seconds, also
    /// sent as `X-Leasewatch-Timestamp`): `sha256=` and the hex HMAC-SHA256 of
    /// `"{timestamp}.{body}"`, so a captured request cannot be replayed later with a new time.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::model::Fingerprint;
    use crate::recommend::Severity;

    fn alert(name: &str, task: Option<&str>, resolved: bool) -> Alert {
        let mut labels = LabelSet::from([
            ("alertname".to_owned(), name.to_owned()),
            ("instance".to_owned(), "web-1".to_owned()),
        ]);
        if let Some(task) = task {
            labels.insert("task".into(), task.into());
        }
        Alert {
            fingerprint: Fingerprint::of(&labels),
            labels,
            annotations: LabelSet::from([("summary".to_owned(), format!("{name} holds"))]),
            severity: Severity::Critical,
            starts_at: DateTime::UNIX_EPOCH,
            ends_at: resolved.then_some(DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(90)),
        }
    }

    #[test]
    fn the_webhook_body_has_alertmanagers_shape() {
        let body = webhook(
            "webhook 127.0.0.1:9",
            "web-1",
            "",
            &[
                alert("stale_lease", Some("health_check"), false),
                alert("waiting", None, true),
            ],
        );
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["version"], "4");
        assert_eq!(json["status"], "firing");
        assert_eq!(
            json["commonLabels"],
            serde_json::json!({"instance": "web-1"})
        );
        assert_eq!(json["alerts"][0]["endsAt"], ZERO_TIME);
        assert_eq!(json["alerts"][1]["status"], "resolved");
        assert_eq!(json["alerts"][1]["endsAt"], "1970-01-01T00:01:30.000Z");
        assert!(
            json.get("externalURL").is_some() && json["alerts"][0].get("generatorURL").is_some()
        );
    }

    #[test]
    fn alertmanager_gets_firing_alerts_valid_for_a_few_minutes_and_resolved_ones_ended() {
        let now = DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(100);
        let pushed = alertmanager(now, "", &[alert("a", None, false), alert("b", None, true)]);
        assert_eq!(pushed[0].ends_at, "1970-01-01T00:05:40.000Z");
        assert_eq!(pushed[1].ends_at, "1970-01-01T00:01:30.000Z");
    }

    #[test]
    fn chat_lines_name_severity_summary_and_task() {
        let text = chat(
            NotificationKind::Firing,
            "web-1",
            &[alert("stale_lease", Some("health_check"), false)],
        )
        .text;
        assert_eq!(
            text,
            "Leasewatch on web-1: 1 alert(s) firing\n• [CRITICAL] stale_lease holds (health_check)"
        );
    }

    #[test]
    fn signatures_cover_time_and_body_and_hide_the_key() {
        let key = SigningKey::new("k".repeat(32));
        let one = key.sign(1_700_000_000, b"{}");
        assert!(one.starts_with("sha256=") && one.len() == 7 + 64);
        assert_ne!(one, key.sign(1_700_000_001, b"{}"), "the time is signed");
        assert_ne!(one, key.sign(1_700_000_000, b"{ }"), "the body is signed");
        assert_eq!(format!("{key:?}"), "SigningKey(***)");
    }
}
