//! Alerts from the real binary to real receivers. The demo's `leaky_report` holds its
//! connection past a 3 s lease timeout, so a real stale lease fires `stale_lease` within
//! seconds: it reaches Debian's real Alertmanager (which forwards it to a webhook of the test)
//! and a webhook directly, and the cleanup's resolve follows on both. Both webhook bodies must
//! parse into one struct written here from Alertmanager's webhook format (version 4), not from
//! Leasewatch's own. A stale lease turning critical is one alert in Alertmanager, not two. A
//! notification refused with 500 survives a restart and is delivered once.
//!
//! Every wait is bounded and says what it saw when it gives up.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use chrono::{DateTime, FixedOffset};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use support::{
    OPERATOR, Server, leasewatch,
    receiver::{Receiver, Request, until},
};

/// The demo's leak, found stale within seconds and left alone by periodic cleanup; alerts
/// grouped within a second.
const LEAK: &[(&str, &str)] = &[
    ("DEMO_LEAK_HOLD", "60s"),
    ("DEMO_LEAK_EVERY", "2s"),
    ("LEASE_TIMEOUT", "3s"),
    ("CLEANUP_INTERVAL", "1h"),
    ("REC_HOLD", "0s"),
    ("ALERT_GROUP_WAIT", "1s"),
    ("ALERT_GROUP_INTERVAL", "1s"),
];

/// How long the leak takes to fire and be notified, with room for a busy machine.
const FIRING_WITHIN: Duration = Duration::from_secs(30);

/// How long a resolve or a retried delivery may take to arrive.
const ARRIVES_WITHIN: Duration = Duration::from_secs(20);

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// Alertmanager's webhook body, version 4, as its documentation gives it: every field
/// required, no other field allowed. Every field is parsed to check the format; not all are
/// compared.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AlertmanagerWebhook {
    version: String,
    group_key: String,
    truncated_alerts: u64,
    status: String,
    receiver: String,
    group_labels: BTreeMap<String, String>,
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    external_url: String,
    alerts: Vec<AlertmanagerAlert>,
}

#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AlertmanagerAlert {
    status: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
    fingerprint: String,
}

impl AlertmanagerWebhook {
    /// Parses `request`'s body, failing the test with the body when it does not fit.
    fn of(request: &Request) -> Self {
        serde_json::from_str(&request.body).unwrap_or_else(|err| {
            panic!(
                "the body to {} is not Alertmanager's webhook format: {err}\n{}",
                request.path, request.body
            )
        })
    }

    /// The `stale_lease` alert of `leaky_report`, if the body carries it.
    fn stale_lease(&self) -> Option<&AlertmanagerAlert> {
        self.alerts.iter().find(|a| a.is_leaky_stale_lease())
    }
}

impl AlertmanagerAlert {
    fn is_leaky_stale_lease(&self) -> bool {
        self.labels.get("alertname").map(String::as_str) == Some("stale_lease")
            && self.labels.get("task").map(String::as_str) == Some("leaky_report")
    }

    fn is(&self, severity: &str, status: &str) -> bool {
        self.labels.get("severity").map(String::as_str) == Some(severity) && self.status == status
    }
}

/// The first request to `path` whose body says the `stale_lease` alert of `leaky_report` is
/// `status`; `Err` lists what `path` got.
fn stale_lease_notice(
    receiver: &Receiver,
    path: &str,
    status: &str,
) -> Result<(Request, AlertmanagerWebhook), String> {
    stale_lease_notice_where(receiver, path, |alert| alert.status == status)
}

/// The first request to `path` with a `stale_lease` alert of `leaky_report` that `wanted`;
/// `Err` lists what `path` got.
fn stale_lease_notice_where(
    receiver: &Receiver,
    path: &str,
    wanted: impl Fn(&AlertmanagerAlert) -> bool,
) -> Result<(Request, AlertmanagerWebhook), String> {
    let got = receiver.at(path);
    got.iter()
        .find_map(|request| {
            let body: AlertmanagerWebhook = serde_json::from_str(&request.body).ok()?;
            let found = body
                .alerts
                .iter()
                .any(|alert| alert.is_leaky_stale_lease() && wanted(alert));
            found.then(|| (request.clone(), body))
        })
        .ok_or_else(|| describe(&got))
}

fn describe(requests: &[Request]) -> String {
    if requests.is_empty() {
        return "nothing".to_owned();
    }
    requests
        .iter()
        .map(|r| format!("{} answered {}: {}", r.path, r.answered, r.body))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every key path of `value` (`alerts[].labels`), without the names inside label and
/// annotation maps: those are data, not format.
fn key_paths(value: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, at: &str, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let path = format!("{at}.{key}");
                    out.insert(path.clone());
                    let data = [
                        "labels",
                        "annotations",
                        "groupLabels",
                        "commonLabels",
                        "commonAnnotations",
                    ];
                    if !data.contains(&key.as_str()) {
                        walk(inner, &path, out);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{at}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(value, "", &mut out);
    out
}

fn instant(rfc3339: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap_or_else(|err| panic!("{rfc3339:?}: {err}"))
}

/// Alertmanager's "zero time": `endsAt` of an alert still firing.
fn is_zero_time(rfc3339: &str) -> bool {
    instant(rfc3339) == instant("0001-01-01T00:00:00Z")
}

/// `text` with every run of digits as `#`: the description gives the lease's age, which moves
/// on between Leasewatch's push to Alertmanager and its own webhook notification.
fn without_numbers(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Debian's Alertmanager on a loopback port of its own choosing, with no cluster; killed
/// when dropped.
struct Alertmanager {
    child: Child,
    dir: tempfile::TempDir,
    /// Its base URL.
    url: String,
}

impl Alertmanager {
    /// Starts it with one route sending everything to `webhook`, grouped by instance, with
    /// second-long timers, and waits until it is ready. `None` (skip) when it is not
    /// installed and `CI` is not `true`.
    async fn start(webhook: &str) -> Option<Self> {
        if !Path::new(ALERTMANAGER).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{ALERTMANAGER} is missing and CI=true: install prometheus-alertmanager"
            );
            eprintln!(
                "skipping: {ALERTMANAGER} is missing (apt-get install prometheus-alertmanager)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: ['instance']\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    \
                 webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
            ),
        )
        .unwrap();
        let log_path = dir.path().join("alertmanager.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            // Port 0: it logs the port it got, so none is picked and raced for.
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut alertmanager = Self {
            child,
            dir,
            url: String::new(),
        };
        let address = until(
            "Alertmanager to listen",
            Duration::from_secs(15),
            || async {
                let log = alertmanager.log();
                log.lines()
                    .find_map(|line| {
                        let rest = line.split("msg=\"Listening on\" address=").nth(1)?;
                        rest.split_whitespace().next().map(str::to_owned)
                    })
                    .ok_or(log)
            },
        )
        .await;
        alertmanager.url = format!("http://{address}");
        let http = http();
        let ready = format!("{}/-/ready", alertmanager.url);
        until(
            "Alertmanager to be ready",
            Duration::from_secs(15),
            || async {
                match http.get(&ready).send().await {
                    Ok(response) if response.status().is_success() => Ok(()),
                    Ok(response) => Err(format!("{}\n{}", response.status(), alertmanager.log())),
                    Err(err) => Err(format!("{err}\n{}", alertmanager.log())),
                }
            },
        )
        .await;
        Some(alertmanager)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client whose every request is bounded.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The status API of a running server, as an operator's script uses it.
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn of(server: &Server) -> Self {
        Self {
            http: http(),
            url: format!("{}api/admin/background-jobs/status", server.url),
        }
    }

    async fn status(&self) -> Value {
        let response = self
            .http
            .get(&self.url)
            .bearer_auth(OPERATOR)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn act(&self, action: Value) -> Value {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(OPERATOR)
            .json(&action)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{action}: {body}");
        body
    }
}

/// Starts the binary off the runtime's async threads (it waits for the ready line).
fn start(command: &mut Command) -> Server {
    tokio::task::block_in_place(|| Server::start(command))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_reaches_alertmanager_and_its_resolve_follows_the_cleanup() {
    let receiver = Receiver::start().await;
    let Some(alertmanager) = Alertmanager::start(&receiver.url("/am")).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        leasewatch(dir.path())
            .arg("--demo")
            .envs(LEAK.iter().copied())
            .env("REC_CLEAR", "2s")
            // A revoked run is retried (a retry is no tick, so a pause does not stop it) and
            // would leak again: without retries the cleanup ends the leak for good.
            .env("RETRY_MAX", "0")
            .env("ALERT_INSTANCE", "shop-1")
            .env("ALERT_ALERTMANAGER_URL", &alertmanager.url)
            .env("ALERT_WEBHOOK_URL", receiver.url("/direct")),
    );
    let api = Api::of(&server);

    let (am_firing, am_firing_body) = until(
        "Alertmanager to notify stale_lease of leaky_report firing",
        FIRING_WITHIN,
        || async { stale_lease_notice(&receiver, "/am", "firing") },
    )
    .await;
    let (direct_firing, direct_firing_body) = until(
        "the webhook to be notified stale_lease firing",
        ARRIVES_WITHIN,
        || async { stale_lease_notice(&receiver, "/direct", "firing") },
    )
    .await;

    // The operator's way out: no new leak, and the stale one revoked.
    let paused = api
        .act(json!({"action": "pause", "task": "leaky_report"}))
        .await;
    assert_eq!(paused["message"], "leaky_report paused");
    api.act(json!({"action": "cleanup"})).await;

    let (am_resolved, am_resolved_body) = until(
        "Alertmanager to notify stale_lease resolved after the cleanup",
        ARRIVES_WITHIN,
        || async {
            let seen = match stale_lease_notice(&receiver, "/am", "resolved") {
                Ok(found) => return Ok(found),
                Err(seen) => seen,
            };
            Err(format!(
                "{seen}\nthe webhook got:\n{}\nLeasewatch's alerts: {:#}\nAlertmanager's \
                 log:\n{}",
                describe(&receiver.at("/direct")),
                api.status().await["alerts"],
                alertmanager.log()
            ))
        },
    )
    .await;
    let (direct_resolved, direct_resolved_body) = until(
        "the webhook to be notified stale_lease resolved after the cleanup",
        ARRIVES_WITHIN,
        || async { stale_lease_notice(&receiver, "/direct", "resolved") },
    )
    .await;
    let status = api.status().await;
    assert!(
        status["alerts"]["firing"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["name"] != "stale_lease"),
        "{:#}",
        status["alerts"]
    );

    // One format: each body parsed into the struct above; the same keys, recursively.
    for (from_alertmanager, direct) in [
        (&am_firing, &direct_firing),
        (&am_resolved, &direct_resolved),
    ] {
        AlertmanagerWebhook::of(from_alertmanager);
        AlertmanagerWebhook::of(direct);
        let keys = |r: &Request| key_paths(&serde_json::from_str(&r.body).unwrap());
        assert_eq!(
            keys(from_alertmanager),
            keys(direct),
            "Alertmanager's:\n{}\nLeasewatch's:\n{}",
            from_alertmanager.body,
            direct.body
        );
    }

    // The same alert either way.
    for (from_alertmanager, direct) in [
        (&am_firing_body, &direct_firing_body),
        (&am_resolved_body, &direct_resolved_body),
    ] {
        assert_eq!(from_alertmanager.version, "4");
        assert_eq!(direct.version, "4");
        assert_eq!(from_alertmanager.truncated_alerts, 0);
        assert_eq!(direct.truncated_alerts, 0);
        assert_eq!(direct.status, from_alertmanager.status);
        // Alertmanager grouped by instance, as Leasewatch groups.
        assert_eq!(direct.group_labels, from_alertmanager.group_labels);
        assert_eq!(direct.group_key, from_alertmanager.group_key);
        let (forwarded, sent) = (
            from_alertmanager.stale_lease().unwrap(),
            direct.stale_lease().unwrap(),
        );
        assert_eq!(forwarded.labels, sent.labels);
        assert_eq!(instant(&forwarded.starts_at), instant(&sent.starts_at));
        let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(&sent.labels),
            ["alertname", "instance", "service", "severity", "task"]
        );
        assert_eq!(
            names(&sent.annotations),
            ["description", "runbook_url", "summary"]
        );
        assert_eq!(names(&forwarded.annotations), names(&sent.annotations));
        for name in ["summary", "runbook_url"] {
            assert_eq!(forwarded.annotations[name], sent.annotations[name]);
        }
        assert_eq!(
            without_numbers(&forwarded.annotations["description"]),
            without_numbers(&sent.annotations["description"])
        );
    }
    let sent = direct_firing_body.stale_lease().unwrap();
    let expected_labels = [
        ("alertname", "stale_lease"),
        ("instance", "shop-1"),
        ("service", "leasewatch"),
        ("severity", "warning"),
        ("task", "leaky_report"),
    ];
    assert_eq!(
        sent.labels,
        expected_labels
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into()
    );
    assert!(is_zero_time(&sent.ends_at));
    assert!(is_zero_time(&am_firing_body.stale_lease().unwrap().ends_at));
    // The resolve says when it ended, the same instant on both, and the annotations
    // Alertmanager last got are the ones the webhook got.
    let (forwarded, sent) = (
        am_resolved_body.stale_lease().unwrap(),
        direct_resolved_body.stale_lease().unwrap(),
    );
    assert_eq!(forwarded.annotations, sent.annotations);
    assert_eq!(instant(&forwarded.ends_at), instant(&sent.ends_at));
    assert!(instant(&sent.ends_at) > instant(&sent.starts_at));

    let (code, log) = tokio::task::block_in_place(|| server.stop());
    assert_eq!(code, Some(0), "{log:#?}");
    drop(alertmanager);
}

/// Alertmanager tells alerts apart by all their labels, severity included: when the stale
/// lease turns critical, the warning it was pushed as must end there at once, not fire on
/// beside the critical one until it expires minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_turning_critical_is_one_alert_in_alertmanager_not_two() {
    let receiver = Receiver::start().await;
    let Some(alertmanager) = Alertmanager::start(&receiver.url("/am")).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _server = start(
        leasewatch(dir.path())
            .arg("--demo")
            .envs(LEAK.iter().copied())
            .env("REC_CLEAR", "2s")
            .env("REC_STALE_CRITICAL_AGE", "6s")
            .env("ALERT_INSTANCE", "shop-1")
            .env("ALERT_ALERTMANAGER_URL", &alertmanager.url),
    );
    until(
        "Alertmanager to notify stale_lease firing as a warning",
        FIRING_WITHIN,
        || async { stale_lease_notice_where(&receiver, "/am", |a| a.is("warning", "firing")) },
    )
    .await;
    until(
        "Alertmanager to notify stale_lease firing as critical",
        ARRIVES_WITHIN,
        || async { stale_lease_notice_where(&receiver, "/am", |a| a.is("critical", "firing")) },
    )
    .await;
    // What the person paged reads: the warning is over, the critical one fires.
    let (_, resolved) = until(
        "Alertmanager to notify the warning resolved once it is critical",
        ARRIVES_WITHIN,
        || async { stale_lease_notice_where(&receiver, "/am", |a| a.is("warning", "resolved")) },
    )
    .await;
    assert!(
        resolved
            .alerts
            .iter()
            .filter(|a| a.is_leaky_stale_lease() && a.labels["severity"] == "critical")
            .all(|a| a.status == "firing"),
        "{resolved:#?}"
    );
    // And what Alertmanager holds: one stale_lease alert, the critical one.
    let active: Vec<Value> = http()
        .get(format!("{}/api/v2/alerts", alertmanager.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stale: Vec<&Value> = active
        .iter()
        .filter(|a| a["labels"]["alertname"] == "stale_lease")
        .collect();
    assert_eq!(stale.len(), 1, "{active:#?}");
    assert_eq!(stale[0]["labels"]["severity"], "critical", "{active:#?}");
}

/// Verifies `X-Leasewatch-Signature` of `request` against `secret`.
fn signature_verifies(request: &Request, secret: &str) -> bool {
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let timestamp = header("x-leasewatch-timestamp");
    let Some(hex) = header("x-leasewatch-signature")
        .strip_prefix("sha256=")
        .map(str::to_owned)
    else {
        return false;
    };
    let Some(signature) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{}", request.body).as_bytes());
    mac.verify_slice(&signature).is_ok()
}

/// The webhook's firing notification in the status API's `alerts.notifications`.
fn firing_notification(status: &Value) -> Result<Value, String> {
    let alerts = &status["alerts"];
    alerts["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| {
            n["kind"] == "firing" && n["receiver"].as_str().unwrap_or("").starts_with("webhook")
        })
        .cloned()
        .ok_or_else(|| format!("{alerts:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_refused_with_500_is_delivered_once_after_a_restart() {
    const SECRET: &str = "a-shared-secret-of-32-characters";
    let receiver = Receiver::start().await;
    receiver.answer(500);
    // The SQLite file (the default, under the server's folder) outlives the first process.
    let dir = tempfile::tempdir().unwrap();
    let command = || {
        let mut command = leasewatch(dir.path());
        command
            .arg("--demo")
            .envs(LEAK.iter().copied())
            // Each run leaves its connection behind and returns, so no run is in flight to
            // hold SIGTERM up for the stop deadline, retrying into a longer backoff meanwhile
            // (which the restarted process would honour).
            .env("DEMO_LEAK_PILE_UP", "on")
            .env("DEMO_LEAK_EVERY", "3s")
            // The alert restored at start-up is kept firing this long: well past the time the
            // new process needs to find the leak again.
            .env("REC_CLEAR", "15s")
            .env("ALERT_INSTANCE", "shop-1")
            .env("ALERT_HMAC_SECRET", SECRET)
            .env("ALERT_WEBHOOK_URL", receiver.url("/direct"));
        command
    };
    let server = start(&mut command());
    let api = Api::of(&server);

    let (refused, _) = until(
        "the firing notification to be attempted",
        FIRING_WITHIN,
        || async { stale_lease_notice(&receiver, "/direct", "firing") },
    )
    .await;
    assert_eq!(refused.answered, 500);
    let pending = until(
        "the status API to show the refused notification pending",
        ARRIVES_WITHIN,
        || async {
            let pending = firing_notification(&api.status().await)?;
            let refused = pending["status"] == "pending"
                && pending["attempts"].as_u64() >= Some(1)
                && pending["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("500"));
            if refused {
                Ok(pending)
            } else {
                Err(format!("{pending:#}"))
            }
        },
    )
    .await;
    assert_eq!(pending["alerts"], 1, "{pending:#}");

    let (code, log) = tokio::task::block_in_place(|| server.stop());
    assert_eq!(code, Some(0), "{log:#?}");
    receiver.answer(200);
    let server = start(&mut command());
    let api = Api::of(&server);

    let delivered = until(
        "the restarted server to deliver the notification",
        ARRIVES_WITHIN,
        || async {
            let got = receiver.at("/direct");
            got.iter()
                .find(|r| r.answered == 200)
                .cloned()
                .ok_or_else(|| describe(&got))
        },
    )
    .await;
    assert_eq!(delivered.body, refused.body, "the same notification");
    assert!(
        signature_verifies(&delivered, SECRET),
        "{:?}",
        delivered.headers
    );
    let sent_at: i64 = delivered.headers["x-leasewatch-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 60);
    let before_restart = receiver
        .at("/direct")
        .iter()
        .filter(|r| r.answered == 500)
        .count();
    let shown = until(
        "the status API to show it delivered",
        ARRIVES_WITHIN,
        || async {
            let note = firing_notification(&api.status().await)?;
            if note["status"] == "delivered" {
                Ok(note)
            } else {
                Err(format!("{note:#}"))
            }
        },
    )
    .await;
    // The refused attempts and the delivery are counted across the restart (an attempt in
    // flight as the process stops can reach the receiver unrecorded, hence not exact).
    let attempts = shown["attempts"].as_u64().unwrap_or(0);
    assert!(
        (2..=before_restart as u64 + 1).contains(&attempts),
        "{before_restart} refused, then delivered: {shown:#}"
    );
    assert_eq!(shown["last_error"], Value::Null);

    // The restarted server finds the leak itself: the same alert as the one restored, so
    // there is nothing new to say.
    until(
        "the restarted server to find the stale lease again",
        FIRING_WITHIN,
        || async {
            let status = api.status().await;
            let recommendations = &status["recommendations"];
            let found = recommendations
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["id"] == "stale_lease:leaky_report");
            if found {
                Ok(())
            } else {
                Err(format!("{recommendations:#}"))
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = receiver.at("/direct");
    let after: Vec<&Request> = got
        .iter()
        .skip_while(|r| r.answered != 200)
        .skip(1)
        .collect();
    assert!(
        after.is_empty(),
        "sent again after the delivery:\n{}",
        describe(&got)
    );
    assert_eq!(got.iter().filter(|r| r.answered == 200).count(), 1);
    let status = api.status().await;
    let alerts = &status["alerts"];
    assert_eq!(alerts["queued"], 0, "{alerts:#}");
    let firing = alerts["firing"].as_array().unwrap();
    assert!(
        firing
            .iter()
            .any(|a| a["name"] == "stale_lease" && a["task"] == "leaky_report"),
        "{alerts:#}"
    );
}
