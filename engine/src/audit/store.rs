//! The `audit_log` table: loading the recent entries, writing queued ones and refusal
//! counts, and reading pages.

use std::sync::atomic::{AtomicU64, AtomicUsize};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use leasewatch_types::{Actor, AuditOutcome};

use super::{
    AuditEntry, AuditLog, AuditPage, AuditSearch, MAX_PAGE, RECENT,
    queue::{Pending, Place, Queue},
};
use crate::db::{
    Database,
    filter::{Bind, Filter},
};

const COLUMNS: &str =
    "id, at_ms, role, action, arguments, outcome, result, client, repeat_count, last_at_ms";

impl AuditLog {
    /// Loads the most recent entries from the database.
    pub async fn load(db: &Database) -> Result<Self, sqlx::Error> {
        let rows: Vec<AuditEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log ORDER BY id DESC LIMIT $1"
        )))
        .bind(RECENT as i64)
        .fetch_all(db.control())
        .await?;
        Ok(Self {
            recent: Mutex::new(rows.into()),
            queue: tokio::sync::Mutex::new(Queue::default()),
            queued: AtomicUsize::new(0),
            queued_actions: AtomicUsize::new(0),
            dropped_refusals: AtomicU64::new(0),
        })
    }

    /// Writes from the front of the queue until it is empty or a write fails.
    pub(super) async fn write_pending(
        &self,
        db: &Database,
        queue: &mut Queue,
    ) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let mut written = Vec::new();
        while let Some(pending) = queue.pending.front() {
            let entry = self.write(db, pending).await?;
            let pending = queue.pending.pop_front().expect("the entry just written");
            if let Some(key) = pending.key
                && let Some(window) = queue.windows.get_mut(&key)
                && window.place == Place::Queued(pending.seq)
            {
                window.place = Place::Row(entry.id);
                window.written = pending.count;
            }
            written.push(entry);
        }
        Ok(written)
    }

    async fn write(&self, db: &Database, pending: &Pending) -> Result<AuditEntry, sqlx::Error> {
        let entry = &pending.entry;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log \
             (at_ms, role, action, arguments, outcome, result, client, repeat_count, last_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(pending.at.timestamp_millis())
        .bind(entry.role.as_str())
        .bind(entry.action.clone())
        .bind(entry.arguments.clone())
        .bind(entry.outcome.as_str())
        .bind(entry.result.clone())
        .bind(entry.client.clone())
        .bind(i64::try_from(pending.count).unwrap_or(i64::MAX))
        .bind(pending.last_at.map(|at| at.timestamp_millis()))
        .fetch_one(db.control())
        .await?;
        let written = AuditEntry {
            id,
            at: pending.at,
            record: entry.clone(),
            count: pending.count,
            last_at: pending.last_at,
        };
        let mut recent = self.recent.lock();
        if recent.len() == RECENT {
            recent.pop_back();
        }
        recent.push_front(written.clone());
        Ok(written)
    }

    /// A page of the log from the database, newest first: up to `search.limit` entries (1 to
    /// [`MAX_PAGE`]) matching its filters, with ids below its `before` (all when `None`). Counts of refusals still being
    /// coalesced are as this process knows them. Entries queued during an outage appear once
    /// written.
    pub async fn page(
        &self,
        db: &Database,
        search: &AuditSearch,
    ) -> Result<AuditPage, sqlx::Error> {
        let limit = search.limit.clamp(1, MAX_PAGE);
        let mut wheres = Filter::default();
        let text = |value: Option<&str>| value.map(|v| Bind::Text(v.to_owned()));
        wheres.compare("action", "=", text(search.action.as_deref()));
        wheres.compare("role", "=", text(search.actor.map(Actor::as_str)));
        wheres.compare(
            "outcome",
            "=",
            text(search.outcome.map(AuditOutcome::as_str)),
        );
        let ms = |at: Option<DateTime<Utc>>| at.map(|at| Bind::Int(at.timestamp_millis()));
        wheres.compare("at_ms", ">=", ms(search.from));
        wheres.compare("at_ms", "<", ms(search.to));
        wheres.compare("id", "<", search.before.map(Bind::Int));
        let limit_param = wheres.param(Bind::Int(i64::from(limit) + 1));
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log {} ORDER BY id DESC LIMIT {limit_param}",
            wheres.where_clause()
        );
        let rows: Vec<AuditEntry> = {
            let _one_reader = db.read_permit().await.ok_or(sqlx::Error::PoolClosed)?;
            wheres
                .bind_as(sqlx::query_as(sqlx::AssertSqlSafe(sql)))
                .fetch_all(db.control())
                .await?
        };
        let mut entries: Vec<AuditEntry> = rows;
        let more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        {
            let queue = self.queue.lock().await;
            for window in queue.windows.values() {
                if let Place::Row(id) = window.place
                    && window.count > window.written
                    && let Some(entry) = entries.iter_mut().find(|e| e.id == id)
                {
                    entry.count = window.count;
                    entry.last_at = Some(window.last_at);
                }
            }
        }
        let next_before = more.then(|| entries.last().map(|e| e.id)).flatten();
        Ok(AuditPage {
            entries,
            next_before,
        })
    }
}

pub(super) async fn write_count(
    db: &Database,
    id: i64,
    count: u64,
    last_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE audit_log SET repeat_count = $1, last_at_ms = $2 WHERE id = $3")
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .bind(last_at.timestamp_millis())
        .bind(id)
        .execute(db.control())
        .await
        .map(drop)
}
