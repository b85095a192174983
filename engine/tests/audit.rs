//! The audit log through a database outage: refusals cannot crowd operator actions out of the
//! queue, and every stored field is bounded.

use std::time::Duration;

use leasewatch_engine::{
    Database, DatabaseUrl, PoolSettings,
    audit::{AuditLog, AuditSearch, MAX_FIELD_BYTES, MAX_PENDING_REFUSALS, NewEntry, Recorded},
};
use leasewatch_testkit::ScratchCluster;
use leasewatch_types::{Actor, AuditOutcome};

fn entry(role: Actor, action: &str, outcome: AuditOutcome, client: &str) -> NewEntry {
    NewEntry {
        role,
        action: action.into(),
        arguments: "{}".into(),
        outcome,
        result: "-".into(),
        client: client.into(),
    }
}

/// While the database is down: an operator action, 300 identical refusals (one queued entry
/// that counts them), 300 refusals from 300 clients (kept up to the refusals' own cap), a
/// second operator action (kept: operator entries are never dropped), and an entry with a
/// multi-megabyte field. Once the database is back everything kept is written in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_keeps_every_operator_action_and_a_bounded_coalesced_few_refusals() {
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
        connect_timeout: Duration::from_millis(100),
        ..PoolSettings::default()
    };
    let db = Database::connect(&url, &settings).await.unwrap();
    db.migrate().await.unwrap();
    let audit = AuditLog::load(&db).await.unwrap();

    tokio::task::block_in_place(|| cluster.stop());
    let first = audit
        .record(
            &db,
            entry(Actor::Operator, "stop", AuditOutcome::Ok, "10.0.0.1:1"),
        )
        .await;
    assert!(matches!(first, Recorded::Queued(_)), "{first:?}");
    for port in 0..300 {
        audit
            .record(
                &db,
                entry(
                    Actor::Viewer,
                    "start",
                    AuditOutcome::Refused,
                    &format!("10.9.9.9:{port}"),
                ),
            )
            .await;
    }
    let mut dropped = 0;
    for i in 0..300 {
        let client = format!("10.1.{}.{}:80", i / 256, i % 256);
        if audit
            .record(
                &db,
                entry(Actor::Viewer, "start", AuditOutcome::Refused, &client),
            )
            .await
            == Recorded::Dropped
        {
            dropped += 1;
        }
    }
    let mut huge = entry(Actor::Operator, "pause", AuditOutcome::Ok, "10.0.0.1:1");
    huge.result = "r".repeat(5 << 20);
    assert!(matches!(audit.record(&db, huge).await, Recorded::Queued(_)));
    assert!(matches!(
        audit
            .record(
                &db,
                entry(Actor::Operator, "start", AuditOutcome::Ok, "10.0.0.1:1")
            )
            .await,
        Recorded::Queued(_)
    ));
    // The operator's three, the coalesced 300, and the refusals' cap less that one.
    assert_eq!(audit.queued(), 3 + MAX_PENDING_REFUSALS);
    assert_eq!(dropped, 300 - (MAX_PENDING_REFUSALS - 1));
    assert_eq!(audit.dropped_refusals(), dropped as u64);

    tokio::task::block_in_place(|| cluster.restart());
    let mut left = usize::MAX;
    for _ in 0..50 {
        left = audit.flush(&db).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0);
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT role, action, repeat_count, length(result)::int8 FROM audit_log ORDER BY id",
    )
    .fetch_all(db.control())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3 + MAX_PENDING_REFUSALS);
    assert_eq!(rows[0].0, "operator");
    assert_eq!(rows[0].1, "stop");
    assert_eq!((rows[1].0.as_str(), rows[1].2), ("viewer", 300));
    let operator: Vec<&str> = rows
        .iter()
        .filter(|r| r.0 == "operator")
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(operator, ["stop", "pause", "start"]);
    let widest = rows.iter().map(|r| r.3).max().unwrap();
    assert!(
        widest <= MAX_FIELD_BYTES as i64,
        "a {widest}-character result was stored"
    );
    let page = audit.page(&db, &AuditSearch::newest(2)).await.unwrap();
    assert_eq!(page.entries[0].record.action, "start");
    assert!(page.entries[1].record.result.ends_with('…'));
    db.close().await;
}
