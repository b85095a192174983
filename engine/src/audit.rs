//! The audit log: every control action, who took it, with what, and what came of it. Stored in
//! the database (kept across restarts) through the control pool, so it works while the task
//! pool is exhausted; the recent entries are also kept in memory for readers.

use std::{
    collections::VecDeque,
    sync::{Mutex, MutexGuard},
};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::db::Database;

/// Entries kept in memory for the dashboard and the API.
pub const RECENT: usize = 200;

/// One control action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Its number in the log.
    pub id: i64,
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// "operator" or "viewer".
    pub role: String,
    /// The action ("start", "emergency_cleanup", ...).
    pub action: String,
    /// Its arguments, as JSON.
    pub arguments: String,
    /// "ok", "refused" or "error".
    pub outcome: String,
    /// What came of it, in a line.
    pub result: String,
    /// The client's address.
    pub client: String,
}

/// What to record; id and time are assigned on write.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// "operator" or "viewer".
    pub role: String,
    /// The action.
    pub action: String,
    /// Its arguments, as JSON.
    pub arguments: String,
    /// "ok", "refused" or "error".
    pub outcome: String,
    /// What came of it.
    pub result: String,
    /// The client's address.
    pub client: String,
}

/// The log: the database table plus the most recent entries in memory.
pub struct AuditLog {
    recent: Mutex<VecDeque<AuditEntry>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AuditLog {
    /// Loads the most recent entries from the database.
    pub async fn load(db: &Database) -> Result<Self, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at_ms, role, action, arguments, outcome, result, client \
             FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(RECENT as i64)
        .fetch_all(db.control())
        .await?;
        Ok(Self {
            recent: Mutex::new(rows.into_iter().map(Row::into_entry).collect()),
        })
    }

    /// Writes an entry and returns it; the write is done when this returns.
    pub async fn record(&self, db: &Database, entry: NewEntry) -> Result<AuditEntry, sqlx::Error> {
        let at = Utc::now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at_ms, role, action, arguments, outcome, result, client) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(at.timestamp_millis())
        .bind(entry.role.clone())
        .bind(entry.action.clone())
        .bind(entry.arguments.clone())
        .bind(entry.outcome.clone())
        .bind(entry.result.clone())
        .bind(entry.client.clone())
        .fetch_one(db.control())
        .await?;
        let written = AuditEntry {
            id,
            at,
            role: entry.role,
            action: entry.action,
            arguments: entry.arguments,
            outcome: entry.outcome,
            result: entry.result,
            client: entry.client,
        };
        let mut recent = lock(&self.recent);
        if recent.len() == RECENT {
            recent.pop_back();
        }
        recent.push_front(written.clone());
        Ok(written)
    }

    /// The most recent entries, newest first; no database access.
    pub fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        lock(&self.recent).iter().take(limit).cloned().collect()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    at_ms: i64,
    role: String,
    action: String,
    arguments: String,
    outcome: String,
    result: String,
    client: String,
}

impl Row {
    fn into_entry(self) -> AuditEntry {
        AuditEntry {
            id: self.id,
            at: Utc
                .timestamp_millis_opt(self.at_ms)
                .single()
                .unwrap_or_default(),
            role: self.role,
            action: self.action,
            arguments: self.arguments,
            outcome: self.outcome,
            result: self.result,
            client: self.client,
        }
    }
}
