//! The audit log: every control action, who took it, with what, and what came of it. Stored in
//! the database (kept across restarts) through the control pool, so it works while the task
//! pool is exhausted; the recent entries are also kept in memory for readers.
//!
//! An operator must be able to act while the database is down (that is when they act), and no
//! action may go unrecorded: an entry whose write fails is queued, in order, and written by
//! [`AuditLog::flush`] once the database is back.

use std::{
    collections::VecDeque,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::db::Database;

/// Entries kept in memory for the dashboard and the API.
pub const RECENT: usize = 200;

/// Entries queued while the database is unreachable, at most. Past this the oldest queued
/// entry is dropped (and an error logged): memory stays bounded through any outage.
pub const MAX_PENDING: usize = 10_000;

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

/// Where an entry is: in the database, or queued until the database is back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written.
    Written(AuditEntry),
    /// Not written yet: the database refused the write for this reason. It is kept in
    /// memory and written, in order, by the next [`AuditLog::flush`] that succeeds.
    Queued(String),
}

/// The log: the database table, the most recent entries in memory, and the entries waiting
/// for the database.
pub struct AuditLog {
    recent: Mutex<VecDeque<AuditEntry>>,
    /// Oldest first, each with the time the action was taken.
    pending: tokio::sync::Mutex<VecDeque<(DateTime<Utc>, NewEntry)>>,
    /// The queue's length, readable without waiting for a write under way.
    queued: AtomicUsize,
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
            pending: tokio::sync::Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
        })
    }

    /// Records an entry: written when this returns, or queued (behind any entries already
    /// waiting, so the log keeps its order) when the database cannot take it now.
    pub async fn record(&self, db: &Database, entry: NewEntry) -> Recorded {
        let mut pending = self.pending.lock().await;
        pending.push_back((Utc::now(), entry));
        if pending.len() > MAX_PENDING {
            pending.pop_front();
            tracing::error!(
                "{MAX_PENDING} audit entries are waiting for the database: the oldest was dropped"
            );
        }
        let result = self.write_pending(db, &mut pending).await;
        self.queued.store(pending.len(), Relaxed);
        match result {
            Ok(mut written) => Recorded::Written(written.pop().expect("the entry just queued")),
            Err(err) => {
                tracing::warn!(%err, queued = pending.len(), "audit entry queued until the database is back");
                Recorded::Queued(err.to_string())
            }
        }
    }

    /// Writes the queued entries, oldest first; returns how many are still waiting.
    pub async fn flush(&self, db: &Database) -> usize {
        let mut pending = self.pending.lock().await;
        if pending.is_empty() {
            return 0;
        }
        match self.write_pending(db, &mut pending).await {
            Ok(written) => tracing::info!(written = written.len(), "queued audit entries written"),
            Err(err) => tracing::debug!(%err, queued = pending.len(), "audit entries still queued"),
        }
        self.queued.store(pending.len(), Relaxed);
        pending.len()
    }

    /// Entries waiting for the database; no database access.
    pub fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }

    /// Writes from the front of the queue until it is empty or a write fails.
    async fn write_pending(
        &self,
        db: &Database,
        pending: &mut VecDeque<(DateTime<Utc>, NewEntry)>,
    ) -> Result<Vec<AuditEntry>, sqlx::Error> {
        let mut written = Vec::new();
        while let Some((at, entry)) = pending.front() {
            written.push(self.write(db, *at, entry.clone()).await?);
            pending.pop_front();
        }
        Ok(written)
    }

    async fn write(
        &self,
        db: &Database,
        at: DateTime<Utc>,
        entry: NewEntry,
    ) -> Result<AuditEntry, sqlx::Error> {
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
