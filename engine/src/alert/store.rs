//! The `alert_groups` and `alert_notifications` tables: what each instance's receivers were
//! told, and every notification's delivery.

use chrono::{DateTime, Utc};
use leasewatch_types::{DeliveryStatus, NotificationKind};
use sqlx::Row;

use super::{model::Fingerprint, policy::Group};
use crate::db::{Database, time_of_ms};

/// One notification as stored.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StoredNote {
    pub row: Option<i64>,
    pub receiver: String,
    pub kind: NotificationKind,
    pub body: String,
    pub fingerprints: Vec<Fingerprint>,
    pub alerts: u32,
    pub created_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The group of `instance` as last written, if any.
pub(super) async fn load_group(
    db: &Database,
    instance: &str,
) -> Result<Option<Group>, sqlx::Error> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM alert_groups WHERE instance = $1")
            .bind(instance)
            .fetch_optional(db.control())
            .await?;
    // A state this version cannot read starts over rather than stopping start-up.
    Ok(state.and_then(|json| {
        serde_json::from_str(&json)
            .inspect_err(
                |err| tracing::warn!(%err, "the stored alert state is unreadable; starting over"),
            )
            .ok()
    }))
}

/// The pending notifications of `instance`, oldest first, and up to `recent` finished ones.
pub(super) async fn load_notes(
    db: &Database,
    instance: &str,
    recent: usize,
) -> Result<Vec<StoredNote>, sqlx::Error> {
    let columns = "id, receiver, kind, body, fingerprints, alerts, created_at_ms, status, \
                   attempts, next_attempt_ms, last_error, delivered_at_ms";
    let pending = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM alert_notifications WHERE instance = $1 AND status = 'pending' \
         ORDER BY id"
    )))
    .bind(instance)
    .fetch_all(db.control())
    .await?;
    let finished = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM alert_notifications WHERE instance = $1 AND status <> 'pending' \
         ORDER BY id DESC LIMIT $2"
    )))
    .bind(instance)
    .bind(i64::try_from(recent).unwrap_or(i64::MAX))
    .fetch_all(db.control())
    .await?;
    let mut notes = Vec::with_capacity(pending.len() + finished.len());
    for row in finished.iter().rev().chain(&pending) {
        let kind: String = row.try_get("kind")?;
        let status: String = row.try_get("status")?;
        let fingerprints: String = row.try_get("fingerprints")?;
        let (Ok(kind), Ok(status)) = (kind.parse(), status.parse()) else {
            continue; // written by a newer version
        };
        notes.push(StoredNote {
            row: Some(row.try_get("id")?),
            receiver: row.try_get("receiver")?,
            kind,
            body: row.try_get("body")?,
            fingerprints: serde_json::from_str(&fingerprints).unwrap_or_default(),
            alerts: u32::try_from(row.try_get::<i32, _>("alerts")?).unwrap_or(0),
            created_at: time_of_ms(row.try_get("created_at_ms")?),
            status,
            attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
            next_attempt_at: time_of_ms(row.try_get("next_attempt_ms")?),
            last_error: row.try_get("last_error")?,
            delivered_at: row
                .try_get::<Option<i64>, _>("delivered_at_ms")?
                .map(time_of_ms),
        });
    }
    notes.sort_by_key(|n| n.row);
    Ok(notes)
}

/// Writes the group (when given) and the notes in one transaction; returns the notes' row ids.
pub(super) async fn write(
    db: &Database,
    instance: &str,
    group: Option<&Group>,
    notes: &[StoredNote],
) -> Result<Vec<i64>, sqlx::Error> {
    let mut tx = db.control().begin().await?;
    if let Some(group) = group {
        let state = serde_json::to_string(group).expect("the group serializes");
        sqlx::query(
            "INSERT INTO alert_groups (instance, state, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (instance) DO UPDATE SET state = excluded.state, \
             updated_at_ms = excluded.updated_at_ms",
        )
        .bind(instance)
        .bind(state)
        .bind(Utc::now().timestamp_millis())
        .execute(&mut *tx)
        .await?;
    }
    let mut rows = Vec::with_capacity(notes.len());
    for note in notes {
        let attempts = i32::try_from(note.attempts).unwrap_or(i32::MAX);
        let next = note.next_attempt_at.timestamp_millis();
        let delivered = note.delivered_at.map(|at| at.timestamp_millis());
        let row = match note.row {
            Some(id) => {
                sqlx::query(
                    "UPDATE alert_notifications SET status = $1, attempts = $2, \
                     next_attempt_ms = $3, last_error = $4, delivered_at_ms = $5 WHERE id = $6",
                )
                .bind(note.status.as_str())
                .bind(attempts)
                .bind(next)
                .bind(note.last_error.clone())
                .bind(delivered)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                sqlx::query_scalar(
                    "INSERT INTO alert_notifications (instance, receiver, kind, body, \
                     fingerprints, alerts, created_at_ms, status, attempts, next_attempt_ms, \
                     last_error, delivered_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                )
                .bind(instance)
                .bind(note.receiver.clone())
                .bind(note.kind.as_str())
                .bind(note.body.clone())
                .bind(serde_json::to_string(&note.fingerprints).expect("strings serialize"))
                .bind(i32::try_from(note.alerts).unwrap_or(i32::MAX))
                .bind(note.created_at.timestamp_millis())
                .bind(note.status.as_str())
                .bind(attempts)
                .bind(next)
                .bind(note.last_error.clone())
                .bind(delivered)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        rows.push(row);
    }
    tx.commit().await?;
    Ok(rows)
}

/// Deletes finished notifications of `instance` beyond the newest `keep`.
pub(super) async fn prune(db: &Database, instance: &str, keep: usize) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM alert_notifications WHERE instance = $1 AND status <> 'pending' AND id < \
         (SELECT COALESCE(MIN(id), 0) FROM (SELECT id FROM alert_notifications \
          WHERE instance = $1 AND status <> 'pending' ORDER BY id DESC LIMIT $2) AS newest)",
    )
    .bind(instance)
    .bind(i64::try_from(keep).unwrap_or(i64::MAX))
    .execute(db.control())
    .await?;
    Ok(done.rows_affected())
}
