//! Alerts through a database outage: the database going away is itself worth an alert, so
//! delivery must not wait for it; what was sent is written down once it is back.

use std::{sync::Arc, time::Duration};

use axum::{Router, http::StatusCode, routing::post};
use chrono::Utc;
use leasewatch_engine::{
    Database, DatabaseUrl, PoolSettings,
    alert::{AlertSettings, Alerting, Receiver, Timers},
    recommend::{Recommendation, Severity},
};
use leasewatch_testkit::ScratchCluster;
use leasewatch_types::ReceiverKind;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_goes_out_while_the_database_is_down_and_is_recorded_once_it_is_back() {
    let Some(cluster) = tokio::task::spawn_blocking(|| ScratchCluster::start(20))
        .await
        .unwrap()
    else {
        return;
    };
    let url = DatabaseUrl::parse(&cluster.url("postgres", "postgres")).unwrap();
    let settings = PoolSettings {
        max_connections: 2,
        min_connections: 0,
        connect_timeout: Duration::from_millis(200),
        ..PoolSettings::default()
    };
    let db = Database::connect(&url, &settings).await.unwrap();
    db.migrate().await.unwrap();

    let got = Arc::new(Mutex::new(Vec::<String>::new()));
    let hook = Router::new().route(
        "/hook",
        post({
            let got = Arc::clone(&got);
            move |body: String| async move {
                got.lock().push(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hook).await });

    let alerting = Alerting::load(
        &db,
        AlertSettings {
            receivers: vec![Receiver::new(
                ReceiverKind::Webhook,
                format!("http://{address}/hook").parse().unwrap(),
                1,
            )],
            timers: Timers {
                group_wait: Duration::ZERO,
                ..Timers::default()
            },
            instance: Some("outage".into()),
            ..AlertSettings::default()
        },
        "x",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(alerting.clone().run(db.clone(), shutdown.clone()));

    tokio::task::block_in_place(|| cluster.stop());
    alerting.evaluate(
        Utc::now(),
        &[Recommendation {
            id: "database_unreachable".into(),
            severity: Severity::Critical,
            title: "The database is unreachable".into(),
            detail: "the health check cannot connect".into(),
            action: None,
            since: Utc::now(),
            cleared_at: None,
        }],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.lock().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered while the database was down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(got.lock()[0].contains("database_unreachable"));

    tokio::task::block_in_place(|| cluster.restart());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stored: Result<Vec<(String, String)>, _> = sqlx::query_as(
            "SELECT kind, status FROM alert_notifications WHERE instance = 'outage'",
        )
        .fetch_all(db.control())
        .await;
        if let Ok(rows) = &stored
            && !rows.is_empty()
        {
            assert_eq!(rows, &[("firing".to_owned(), "delivered".to_owned())]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never written: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state: String =
        sqlx::query_scalar("SELECT state FROM alert_groups WHERE instance = 'outage'")
            .fetch_one(db.control())
            .await
            .unwrap();
    assert!(state.contains("database_unreachable"), "{state}");
    assert_eq!(got.lock().len(), 1, "sent once");
    shutdown.cancel();
    running.await.unwrap();
}
