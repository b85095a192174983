//! Alerts end to end inside the engine: recommendations through hysteresis and the group's
//! timers to a real webhook receiver on loopback, with state in a real database.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU16, Ordering::Relaxed},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use chrono::{DateTime, Utc};
use leasewatch_types::{DeliveryStatus, NotificationKind, ReceiverKind};
use parking_lot::Mutex;

use super::{payload::WebhookBody, *};
use crate::{
    DatabaseUrl, PoolSettings,
    recommend::{Finding, Hysteresis, Thresholds},
};

/// Every request a receiver got: its headers and body.
type Got = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook receiver: keeps every request's headers and body, and answers `status`.
#[derive(Clone)]
struct Receiving {
    got: Got,
    status: Arc<AtomicU16>,
    address: SocketAddr,
}

impl Receiving {
    async fn start() -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let record = post(
            |State((got, status)): State<(Got, Arc<AtomicU16>)>,
             headers: HeaderMap,
             body: String| async move {
                got.lock().push((headers, body));
                StatusCode::from_u16(status.load(Relaxed)).unwrap()
            },
        );
        let app = Router::new()
            .route("/hook", record.clone())
            .route("/api/v2/alerts", record)
            .with_state((Arc::clone(&got), Arc::clone(&status)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            got,
            status,
            address,
        }
    }

    fn receiver(&self) -> Receiver {
        let url = url::Url::parse(&format!("http://{}/hook", self.address)).unwrap();
        Receiver::new(ReceiverKind::Webhook, url, 1)
    }

    fn bodies(&self) -> Vec<WebhookBody> {
        self.got
            .lock()
            .iter()
            .map(|(_, body)| serde_json::from_str(body).unwrap())
            .collect()
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
}

async fn sqlite() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("alerts.db"));
    let db = Database::connect(&url, &PoolSettings::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (dir, db)
}

fn settings(receiving: &Receiving, key: Option<SigningKey>) -> AlertSettings {
    AlertSettings {
        receivers: vec![receiving.receiver()],
        timers: Timers::default(),
        signing_key: key,
        instance: Some("web-1".into()),
        external_url: None,
    }
}

/// Writes, then delivers what is due, until nothing is pending or `tries` run out.
async fn pump(alerting: &Alerting, db: &Database, tries: u32) {
    for _ in 0..tries {
        alerting.write(db).await;
        alerting.deliver_due(db).await;
        if alerting.view().queued == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stale_lease(severity: Severity) -> Finding {
    Finding::new(
        "stale_lease:health_check",
        severity,
        "A lease held past its timeout",
        "health_check has held its connection for 130 s",
        None,
    )
}

/// The flapping case: a condition true for 20 s, false for 20 s, for 10 simulated
/// minutes, then gone. Hysteresis keeps it shown through the gaps and the group is notified
/// once; the resolve follows once it has cleared. Two notifications, both delivered.
#[tokio::test]
async fn a_condition_flapping_every_20_s_for_ten_minutes_gives_at_most_two_notifications() {
    let receiving = Receiving::start().await;
    let (_dir, db) = sqlite().await;
    let alerting = Alerting::load(&db, settings(&receiving, None), "x", Duration::ZERO)
        .await
        .unwrap();
    let thresholds = Thresholds::default(); // hold 10 s, clear 60 s
    let mut hysteresis = Hysteresis::default();
    let mut last_shown_at = None;
    let mut resolved_at = None;
    for t in 0..=720 {
        let holds = t < 600 && (t / 20) % 2 == 0;
        let findings = if holds {
            vec![stale_lease(Severity::Warning)]
        } else {
            Vec::new()
        };
        let shown = hysteresis.update(at(t), findings, &thresholds);
        let alerting_now = shown.iter().any(|r| r.severity >= Severity::Warning);
        if alerting_now {
            last_shown_at = Some(t);
        }
        let before = alerting.view().notifications.len();
        alerting.evaluate(at(t), &shown);
        let made = alerting.view().notifications;
        if made.len() > before {
            if made[0].kind == NotificationKind::Resolved {
                resolved_at = Some(t);
            }
            // Delivered as the engine's loop would, within the second.
            pump(&alerting, &db, 20).await;
        }
    }
    let notes = alerting.view().notifications;
    let kinds: Vec<NotificationKind> = notes.iter().rev().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [NotificationKind::Firing, NotificationKind::Resolved],
        "{notes:#?}"
    );
    // The resolve went out on the first evaluation without the recommendation.
    assert_eq!(resolved_at, last_shown_at.map(|t| t + 1));

    let bodies = receiving.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        (bodies[0].status.as_str(), bodies[1].status.as_str()),
        ("firing", "resolved")
    );
    let alert = &bodies[1].alerts[0];
    assert_eq!(alert.labels["alertname"], "stale_lease");
    assert_eq!(alert.labels["task"], "health_check");
    assert_eq!(alert.fingerprint, bodies[0].alerts[0].fingerprint);
    assert_ne!(alert.ends_at, "0001-01-01T00:00:00Z");
}

/// The delivery case, on PostgreSQL: the receiver answers 500, the notification is
/// kept and sent again; the process "restarts" (a new `Alerting` on the same database) before
/// it gets through: the restarted one delivers it once, and does not notify the alert again.
#[tokio::test]
async fn a_failed_delivery_is_retried_and_a_restart_neither_loses_nor_repeats_it() {
    let Some(test_db) = leasewatch_testkit::TestDatabase::create().await else {
        return;
    };
    let url = DatabaseUrl::parse(test_db.url()).unwrap();
    let db = Database::connect(&url, &PoolSettings::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let receiving = Receiving::start().await;
    receiving.status.store(500, Relaxed);
    let key = SigningKey::new("s".repeat(32));
    let timers = Timers {
        group_wait: Duration::ZERO,
        ..Timers::default()
    };
    let config = || AlertSettings {
        timers,
        ..settings(&receiving, Some(key.clone()))
    };
    let shown = Hysteresis::default().update(
        Utc::now(),
        vec![stale_lease(Severity::Critical).at_once()],
        &Thresholds::default(),
    );

    let first = Alerting::load(&db, config(), "x", Duration::from_secs(60))
        .await
        .unwrap();
    first.evaluate(Utc::now(), &shown);
    pump(&first, &db, 1).await;
    let view = first.view();
    assert_eq!(receiving.got.lock().len(), 1, "one attempt");
    assert_eq!(view.notifications[0].status, DeliveryStatus::Pending);
    assert_eq!(view.notifications[0].attempts, 1);
    assert_eq!(
        view.notifications[0].last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
    assert_eq!(view.receivers[0].failed_attempts, 1);
    // Stopped: what it knows is written (Engine::shutdown does this).
    assert!(first.write(&db).await);
    drop(first);

    receiving.status.store(200, Relaxed);
    let second = Alerting::load(&db, config(), "x", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(second.view().queued, 1, "the pending notification was kept");
    // The restarted process finds the same condition again: nothing new to say.
    for _ in 0..3 {
        second.evaluate(Utc::now(), &shown);
    }
    pump(&second, &db, 30).await;
    let got = receiving.got.lock().clone();
    assert_eq!(got.len(), 2, "the failed attempt and one delivery");
    assert_eq!(got[0].1, got[1].1, "the same notification");
    let (headers, body) = &got[1];
    let timestamp: i64 = headers["x-leasewatch-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        headers["x-leasewatch-signature"].to_str().unwrap(),
        key.sign(timestamp, body.as_bytes())
    );
    let view = second.view();
    assert_eq!(view.notifications[0].status, DeliveryStatus::Delivered);
    assert_eq!(view.notifications[0].attempts, 2);
    assert_eq!(view.firing.len(), 1);
    assert!(second.write(&db).await);
    drop(second);

    // Another restart: delivered stays delivered, nothing is sent again.
    let third = Alerting::load(&db, config(), "x", Duration::from_secs(60))
        .await
        .unwrap();
    third.evaluate(Utc::now(), &shown);
    pump(&third, &db, 3).await;
    assert_eq!(receiving.got.lock().len(), 2);
    assert_eq!(third.view().queued, 0);
}

/// A restored alert whose condition is not found again within the clear time resolves, and
/// the receiver hears it.
#[tokio::test]
async fn an_alert_restored_at_start_up_and_not_found_again_resolves_after_the_clear_time() {
    let receiving = Receiving::start().await;
    let (_dir, db) = sqlite().await;
    let timers = Timers {
        group_wait: Duration::ZERO,
        ..Timers::default()
    };
    let config = AlertSettings {
        timers,
        ..settings(&receiving, None)
    };
    let shown = Hysteresis::default().update(
        Utc::now(),
        vec![stale_lease(Severity::Warning).at_once()],
        &Thresholds::default(),
    );
    let first = Alerting::load(&db, config.clone(), "x", Duration::ZERO)
        .await
        .unwrap();
    first.evaluate(Utc::now(), &shown);
    pump(&first, &db, 10).await;
    assert!(first.write(&db).await);
    drop(first);

    let second = Alerting::load(&db, config, "x", Duration::from_millis(300))
        .await
        .unwrap();
    second.evaluate(Utc::now(), &[]);
    assert_eq!(second.view().firing.len(), 1, "kept through the clear time");
    tokio::time::sleep(Duration::from_millis(400)).await;
    second.evaluate(Utc::now(), &[]);
    assert!(second.view().firing.is_empty());
    pump(&second, &db, 10).await;
    let statuses: Vec<String> = receiving.bodies().into_iter().map(|b| b.status).collect();
    assert_eq!(statuses, ["firing", "resolved"]);
}

/// A newer notification that carries every alert of a pending one replaces it; the queue
/// never holds more than its bound.
#[tokio::test]
async fn newer_notifications_supersede_pending_ones_and_the_queue_is_bounded() {
    let receiving = Receiving::start().await;
    receiving.status.store(503, Relaxed);
    let (_dir, db) = sqlite().await;
    let alerting = Alerting::load(&db, settings(&receiving, None), "x", Duration::ZERO)
        .await
        .unwrap();
    for n in 0..(MAX_QUEUED + 10) {
        alerting.send_test(at(n as i64)).unwrap();
    }
    let view = alerting.view();
    assert_eq!(
        view.queued, MAX_QUEUED,
        "tests are never superseded, only bounded"
    );
    assert_eq!(view.receivers[0].dropped, 10);

    let (_dir, db) = sqlite().await;
    let alerting = Alerting::load(
        &db,
        AlertSettings {
            timers: Timers {
                group_wait: Duration::ZERO,
                group_interval: Duration::ZERO,
                ..Timers::default()
            },
            ..settings(&receiving, None)
        },
        "x",
        Duration::ZERO,
    )
    .await
    .unwrap();
    let rec = |id: &str| Recommendation {
        id: id.into(),
        severity: Severity::Warning,
        title: id.into(),
        detail: String::new(),
        action: None,
        since: at(0),
        cleared_at: None,
    };
    alerting.evaluate(at(0), &[rec("waiting")]);
    alerting.evaluate(at(1), &[rec("waiting"), rec("utilization")]);
    let notes = alerting.view().notifications;
    assert_eq!(
        notes.iter().map(|n| n.status).collect::<Vec<_>>(),
        [DeliveryStatus::Pending, DeliveryStatus::Superseded]
    );
    assert_eq!(notes[0].alerts, 2);
}

/// An Alertmanager is pushed every change at once, what still fires again every minute, and,
/// when an alert's severity changes, the label set it had ended (Alertmanager tells alerts
/// apart by every label).
#[tokio::test]
async fn alertmanager_gets_changes_at_once_re_sends_and_an_ended_label_set_on_escalation() {
    let receiving = Receiving::start().await;
    let (_dir, db) = sqlite().await;
    let url = url::Url::parse(&format!("http://{}", receiving.address)).unwrap();
    let config = AlertSettings {
        receivers: vec![Receiver::new(ReceiverKind::Alertmanager, url, 1)],
        ..settings(&receiving, None)
    };
    let alerting = Alerting::load(&db, config, "x", Duration::ZERO)
        .await
        .unwrap();
    let shown = |severity| {
        vec![Recommendation {
            id: "stale_lease:health_check".into(),
            severity,
            title: "t".into(),
            detail: "d".into(),
            action: None,
            since: at(0),
            cleared_at: None,
        }]
    };
    // (seconds, severity shown or none) → what Alertmanager is pushed: (kind, alerts).
    let steps = [
        (
            0,
            Some(Severity::Warning),
            Some((NotificationKind::Firing, 1)),
        ),
        (30, Some(Severity::Warning), None),
        (
            60,
            Some(Severity::Warning),
            Some((NotificationKind::Repeat, 1)),
        ),
        (
            61,
            Some(Severity::Critical),
            Some((NotificationKind::Firing, 2)),
        ),
        (62, None, Some((NotificationKind::Resolved, 1))),
    ];
    for (secs, severity, pushed) in steps {
        let before = alerting.view().notifications.len();
        alerting.evaluate(at(secs), &severity.map(shown).unwrap_or_default());
        let notes = alerting.view().notifications;
        let made = (notes.len() > before).then(|| (notes[0].kind, notes[0].alerts));
        assert_eq!(made, pushed, "at {secs} s");
        pump(&alerting, &db, 20).await;
    }
    let got = receiving.got.lock().clone();
    let bodies: Vec<Vec<payload::PostableAlert>> = got
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 4, "every push delivered");
    let escalation = &bodies[2];
    assert_eq!(escalation[0].labels["severity"], "warning");
    assert_eq!(
        escalation[0].ends_at, "2023-11-14T22:14:21.000Z",
        "ended now"
    );
    assert_eq!(escalation[1].labels["severity"], "critical");
    assert_eq!(
        escalation[1].ends_at, "2023-11-14T22:18:21.000Z",
        "firing: 4 min ahead"
    );
    assert_eq!(bodies[3][0].labels["severity"], "critical");
    assert_eq!(bodies[3][0].ends_at, "2023-11-14T22:14:22.000Z");
}

/// Finished notifications beyond the newest kept are deleted; pending ones never are.
#[tokio::test]
async fn pruning_keeps_the_newest_finished_notifications_and_every_pending_one() {
    let receiving = Receiving::start().await;
    receiving.status.store(500, Relaxed);
    let (_dir, db) = sqlite().await;
    let alerting = Alerting::load(&db, settings(&receiving, None), "x", Duration::ZERO)
        .await
        .unwrap();
    for n in 0..5 {
        alerting.send_test(at(n)).unwrap();
    }
    {
        let mut state = alerting.inner.state.lock();
        for note in state.notes.iter_mut().take(4) {
            note.finish(DeliveryStatus::Delivered);
        }
    }
    assert!(alerting.write(&db).await);
    assert_eq!(store::prune(&db, "web-1", 2).await.unwrap(), 2);
    let left: Vec<(i64, String)> =
        sqlx::query_as("SELECT created_at_ms, status FROM alert_notifications ORDER BY id")
            .fetch_all(db.control())
            .await
            .unwrap();
    let ms = |n: i64| at(n).timestamp_millis();
    assert_eq!(
        left,
        [
            (ms(2), "delivered".to_owned()),
            (ms(3), "delivered".to_owned()),
            (ms(4), "pending".to_owned()),
        ]
    );
}

/// Once the process begins to stop, what the stop does to the recommendations (the scheduler
/// stopped, a run cut off) is not news: nothing is raised, resolved or queued, and what fired
/// stays firing for the next start to restore.
#[tokio::test]
async fn a_frozen_alerting_ignores_evaluations() {
    let receiving = Receiving::start().await;
    let (_dir, db) = sqlite().await;
    let timers = Timers {
        group_wait: Duration::ZERO,
        ..Timers::default()
    };
    let alerting = Alerting::load(
        &db,
        AlertSettings {
            timers,
            ..settings(&receiving, None)
        },
        "x",
        Duration::ZERO,
    )
    .await
    .unwrap();
    let shown = |findings| Hysteresis::default().update(at(0), findings, &Thresholds::default());
    alerting.evaluate(
        at(0),
        &shown(vec![stale_lease(Severity::Warning).at_once()]),
    );
    let before = alerting.view();
    assert_eq!(before.firing.len(), 1);

    alerting.freeze();
    let stopped = Finding::new(
        "scheduler_stopped",
        Severity::Warning,
        "The scheduler is stopped and tasks are overdue",
        "",
        None,
    );
    alerting.evaluate(at(1), &shown(vec![stopped.at_once()]));
    alerting.evaluate(at(2), &[]);
    assert_eq!(alerting.view(), before);
}

/// A receiver added while an alert fires (a changed configuration, a restart) hears of it: the
/// alerts firing are notified again after group_wait, not only at the next repeat.
#[tokio::test]
async fn a_receiver_added_while_an_alert_fires_is_told_of_it() {
    let first_hook = Receiving::start().await;
    let added_hook = Receiving::start().await;
    let (_dir, db) = sqlite().await;
    let timers = Timers {
        group_wait: Duration::ZERO,
        ..Timers::default()
    };
    let shown = Hysteresis::default().update(
        Utc::now(),
        vec![stale_lease(Severity::Warning).at_once()],
        &Thresholds::default(),
    );
    let before = AlertSettings {
        timers,
        ..settings(&first_hook, None)
    };
    let alerting = Alerting::load(&db, before.clone(), "x", Duration::from_secs(60))
        .await
        .unwrap();
    alerting.evaluate(Utc::now(), &shown);
    pump(&alerting, &db, 10).await;
    assert!(alerting.write(&db).await);
    drop(alerting);

    // Restarted with the same receivers: nothing new to say.
    let same = Alerting::load(&db, before.clone(), "x", Duration::from_secs(60))
        .await
        .unwrap();
    same.evaluate(Utc::now(), &shown);
    assert_eq!(same.view().queued, 0);
    drop(same);

    let mut added = before;
    added.receivers.push(Receiver::new(
        ReceiverKind::Webhook,
        url::Url::parse(&format!("http://{}/hook", added_hook.address)).unwrap(),
        1,
    ));
    let alerting = Alerting::load(&db, added, "x", Duration::from_secs(60))
        .await
        .unwrap();
    alerting.evaluate(Utc::now(), &shown);
    pump(&alerting, &db, 10).await;
    assert_eq!(added_hook.bodies().len(), 1);
    assert_eq!(
        added_hook.bodies()[0].alerts[0].labels["alertname"],
        "stale_lease"
    );
    assert_eq!(first_hook.bodies().len(), 2, "told again, with the new one");
}
