//! The audit log: every control action, who took it, with what, and what came of it. Stored in
//! the database (kept across restarts) through the control pool, so it works while the task
//! pool is exhausted; readers page through it there, and the few most recent entries are also
//! kept in memory for the dashboard.
//!
//! An operator must be able to act while the database is down (that is when they act), and no
//! action may go unrecorded: an entry whose write fails is queued, in order, and written by
//! [`AuditLog::flush`] once the database is back. Operator entries are never dropped from that
//! queue; past [`MAX_PENDING`] of them further operator actions are refused rather than
//! performed unrecorded.
//!
//! Refusals cannot crowd actions out. Identical refusals — same role, client address and
//! action within [`REFUSAL_WINDOW`] — become one row with a count ("refused ×N"); the first is
//! written at once, the count follows within a second. While the database is down refused
//! entries are coalesced the same way and capped at [`MAX_PENDING_REFUSALS`] of their own.
//! Every stored field is cut to [`MAX_FIELD_BYTES`].

use std::{
    collections::{HashMap, VecDeque},
    sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeZone, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::db::Database;

/// Entries kept in memory for the dashboard.
pub const RECENT: usize = 50;

/// Operator entries (anything but a refusal) queued while the database is unreachable, at
/// most. They are never dropped: past this, operator actions are refused until the database
/// takes the queue, so memory stays bounded and nothing is done unrecorded.
pub const MAX_PENDING: usize = 10_000;

/// Refused entries queued while the database is unreachable, at most, after coalescing;
/// refusals past this are counted in the log's error line and not kept.
pub const MAX_PENDING_REFUSALS: usize = 100;

/// Identical refusals within this long of the first become one row.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(60);

/// Each stored field is cut to this many bytes (ending in `…`).
pub const MAX_FIELD_BYTES: usize = 1024;

/// Entries per page when the reader does not say.
pub const DEFAULT_PAGE: u32 = 50;

/// Most entries one page may hold.
pub const MAX_PAGE: u32 = 500;

/// Refusal windows kept open at most (distinct role, client and action).
const MAX_WINDOWS: usize = 1024;

/// The outcome of a refused action.
pub const REFUSED: &str = "refused";

/// One control action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    /// Its number in the log.
    pub id: i64,
    /// When it was taken (for coalesced refusals, the first).
    pub at: DateTime<Utc>,
    /// "operator" or "viewer".
    pub role: String,
    /// The action ("start", "emergency_cleanup", ...).
    pub action: String,
    /// Its arguments, as JSON (of the first, for coalesced refusals).
    pub arguments: String,
    /// "ok", "refused" or "error".
    pub outcome: String,
    /// What came of it, in a line.
    pub result: String,
    /// The client's address.
    pub client: String,
    /// How many identical refusals this entry stands for (same role, client address and
    /// action within a minute); 1 for everything else.
    #[serde(default = "one")]
    pub count: u64,
    /// For coalesced refusals, when the last of them came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
}

fn one() -> u64 {
    1
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

impl NewEntry {
    /// The entry with every field cut to [`MAX_FIELD_BYTES`].
    fn bounded(mut self) -> Self {
        for field in [
            &mut self.role,
            &mut self.action,
            &mut self.arguments,
            &mut self.outcome,
            &mut self.result,
            &mut self.client,
        ] {
            truncate_field(field);
        }
        self
    }

    fn is_refusal(&self) -> bool {
        self.outcome == REFUSED
    }
}

/// Cuts `value` to at most [`MAX_FIELD_BYTES`] bytes on a character boundary, ending in `…`
/// when anything was cut.
pub fn truncate_field(value: &mut String) {
    if value.len() <= MAX_FIELD_BYTES {
        return;
    }
    let mut cut = MAX_FIELD_BYTES - '…'.len_utf8();
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    value.truncate(cut);
    value.push('…');
}

/// Where an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written.
    Written(AuditEntry),
    /// A refusal counted into an earlier identical one (the row with this id); its count is
    /// written within a second.
    Coalesced(i64),
    /// Not written yet: the database refused the write for this reason. It is kept in
    /// memory and written, in order, by the next [`AuditLog::flush`] that succeeds.
    Queued(String),
    /// A refusal not kept: the database is unreachable and [`MAX_PENDING_REFUSALS`] refusals
    /// are queued already.
    Dropped,
}

/// One page of the log, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next_before: Option<i64>,
}

/// Identical refusals: same role, client host (the port changes with every connection) and
/// action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    role: String,
    client: String,
    action: String,
}

impl Key {
    fn of(entry: &NewEntry) -> Self {
        let client = entry
            .client
            .parse::<std::net::SocketAddr>()
            .map_or_else(|_| entry.client.clone(), |addr| addr.ip().to_string());
        Self {
            role: entry.role.clone(),
            client,
            action: entry.action.clone(),
        }
    }
}

/// An entry waiting for the database.
struct Pending {
    /// Its place in the queue, so a window can point at it.
    seq: u64,
    at: DateTime<Utc>,
    entry: NewEntry,
    count: u64,
    last_at: Option<DateTime<Utc>>,
    /// For refusals, the window it opened.
    key: Option<Key>,
}

/// Identical refusals being counted into one entry.
struct Window {
    opened: Instant,
    place: Place,
    /// Refusals counted.
    count: u64,
    /// Of those, how many the row in the database says.
    written: u64,
    last_at: DateTime<Utc>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Row(i64),
    Queued(u64),
}

#[derive(Default)]
struct Queue {
    /// Oldest first.
    pending: VecDeque<Pending>,
    next_seq: u64,
    windows: HashMap<Key, Window>,
}

impl Queue {
    fn refusals(&self) -> usize {
        self.pending.iter().filter(|p| p.key.is_some()).count()
    }
}

/// The log: the database table, the most recent entries in memory, and the entries waiting
/// for the database.
pub struct AuditLog {
    recent: Mutex<VecDeque<AuditEntry>>,
    queue: tokio::sync::Mutex<Queue>,
    /// The queue's length, readable without waiting for a write under way.
    queued: AtomicUsize,
    /// Of those, operator entries (not refusals).
    queued_actions: AtomicUsize,
    /// Refusals not kept during outages, since start.
    dropped_refusals: AtomicU64,
    /// Page reads take one of the two control connections at most, so readers never hold
    /// both and control work (ending backends, writing entries) always finds one.
    reads: tokio::sync::Semaphore,
}

const COLUMNS: &str =
    "id, at_ms, role, action, arguments, outcome, result, client, repeat_count, last_at_ms";

impl AuditLog {
    /// Loads the most recent entries from the database.
    pub async fn load(db: &Database) -> Result<Self, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit_log ORDER BY id DESC LIMIT $1"
        )))
        .bind(RECENT as i64)
        .fetch_all(db.control())
        .await?;
        Ok(Self {
            recent: Mutex::new(rows.into_iter().map(Row::into_entry).collect()),
            queue: tokio::sync::Mutex::new(Queue::default()),
            queued: AtomicUsize::new(0),
            queued_actions: AtomicUsize::new(0),
            dropped_refusals: AtomicU64::new(0),
            reads: tokio::sync::Semaphore::new(1),
        })
    }

    /// Records an entry: written when this returns, or queued (behind any entries already
    /// waiting, so the log keeps its order) when the database cannot take it now. A refusal
    /// identical to one in the last [`REFUSAL_WINDOW`] is counted into it instead.
    pub async fn record(&self, db: &Database, entry: NewEntry) -> Recorded {
        let entry = entry.bounded();
        let now = Utc::now();
        let mut queue = self.queue.lock().await;
        let key = entry.is_refusal().then(|| Key::of(&entry));
        if let Some(key) = &key {
            if let Some(recorded) = self.coalesce(&mut queue, key, now) {
                return recorded;
            }
            // Its window has closed: bring the old row's count up to date first.
            if let Some(window) = queue.windows.remove(key)
                && let Place::Row(id) = window.place
                && window.count > window.written
                && let Err(err) = write_count(db, id, window.count, window.last_at).await
            {
                tracing::warn!(%err, id, "could not write a refusal count");
            }
            if !queue.pending.is_empty() && queue.refusals() >= MAX_PENDING_REFUSALS {
                let dropped = self.dropped_refusals.fetch_add(1, Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::error!(
                        dropped,
                        "{MAX_PENDING_REFUSALS} refusals are waiting for the database: further \
                         refusals are not kept"
                    );
                }
                return Recorded::Dropped;
            }
        } else if self.queued_actions.load(Relaxed) >= MAX_PENDING {
            tracing::error!(
                "{MAX_PENDING} audit entries are waiting for the database; this one joins them"
            );
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.pending.push_back(Pending {
            seq,
            at: now,
            entry,
            count: 1,
            last_at: None,
            key: key.clone(),
        });
        if let Some(key) = key {
            self.open_window(&mut queue, key, Place::Queued(seq), now);
        }
        let result = self.write_pending(db, &mut queue).await;
        self.count_queue(&queue);
        match result {
            Ok(mut written) => {
                Recorded::Written(written.pop().expect("the entry just queued was written"))
            }
            Err(err) => {
                tracing::warn!(%err, queued = queue.pending.len(), "audit entry queued until the database is back");
                Recorded::Queued(err.to_string())
            }
        }
    }

    /// Counts a refusal into the open window for `key`, if there is one.
    fn coalesce(&self, queue: &mut Queue, key: &Key, now: DateTime<Utc>) -> Option<Recorded> {
        let window = queue
            .windows
            .get_mut(key)
            .filter(|w| w.opened.elapsed() < REFUSAL_WINDOW)?;
        window.count += 1;
        window.last_at = now;
        let (count, place) = (window.count, window.place);
        match place {
            Place::Row(id) => {
                if let Some(entry) = self.recent.lock().iter_mut().find(|e| e.id == id) {
                    entry.count = count;
                    entry.last_at = Some(now);
                }
                Some(Recorded::Coalesced(id))
            }
            Place::Queued(seq) => {
                let pending = queue.pending.iter_mut().rev().find(|p| p.seq == seq)?;
                pending.count = count;
                pending.last_at = Some(now);
                Some(Recorded::Queued(
                    "counted into an identical refusal waiting for the database".to_owned(),
                ))
            }
        }
    }

    fn open_window(&self, queue: &mut Queue, key: Key, place: Place, now: DateTime<Utc>) {
        if queue.windows.len() >= MAX_WINDOWS {
            // Closed windows whose counts are written go first; a window with a count still
            // to write stays (its refusals would otherwise go uncounted).
            queue
                .windows
                .retain(|_, w| w.opened.elapsed() < REFUSAL_WINDOW || w.count > w.written);
            if queue.windows.len() >= MAX_WINDOWS {
                return;
            }
        }
        queue.windows.insert(
            key,
            Window {
                opened: Instant::now(),
                place,
                count: 1,
                written: 0,
                last_at: now,
            },
        );
    }

    /// Writes the queued entries, oldest first, and the counts of coalesced refusals; closes
    /// refusal windows past [`REFUSAL_WINDOW`]. Returns how many entries are still waiting.
    /// The engine calls it every second.
    pub async fn flush(&self, db: &Database) -> usize {
        let mut queue = self.queue.lock().await;
        if !queue.pending.is_empty() {
            match self.write_pending(db, &mut queue).await {
                Ok(written) => {
                    tracing::info!(written = written.len(), "queued audit entries written")
                }
                Err(err) => {
                    tracing::debug!(%err, queued = queue.pending.len(), "audit entries still queued")
                }
            }
        }
        let mut failed = false;
        for window in queue.windows.values_mut() {
            if let Place::Row(id) = window.place
                && window.count > window.written
                && !failed
            {
                match write_count(db, id, window.count, window.last_at).await {
                    Ok(()) => window.written = window.count,
                    Err(err) => {
                        tracing::debug!(%err, "refusal counts not written yet");
                        failed = true;
                    }
                }
            }
        }
        queue.windows.retain(|_, w| {
            w.opened.elapsed() < REFUSAL_WINDOW
                || w.count > w.written
                || matches!(w.place, Place::Queued(_))
        });
        self.count_queue(&queue);
        queue.pending.len()
    }

    fn count_queue(&self, queue: &Queue) {
        let refusals = queue.refusals();
        self.queued.store(queue.pending.len(), Relaxed);
        self.queued_actions
            .store(queue.pending.len() - refusals, Relaxed);
    }

    /// Entries waiting for the database; no database access.
    pub fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }

    /// Whether operator actions must be refused: [`MAX_PENDING`] of their entries are
    /// waiting for the database already. No database access.
    pub fn operator_queue_full(&self) -> bool {
        self.queued_actions.load(Relaxed) >= MAX_PENDING
    }

    /// Refusals not kept because the outage queue held [`MAX_PENDING_REFUSALS`] already.
    pub fn dropped_refusals(&self) -> u64 {
        self.dropped_refusals.load(Relaxed)
    }

    /// Writes from the front of the queue until it is empty or a write fails.
    async fn write_pending(
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
        .bind(entry.role.clone())
        .bind(entry.action.clone())
        .bind(entry.arguments.clone())
        .bind(entry.outcome.clone())
        .bind(entry.result.clone())
        .bind(entry.client.clone())
        .bind(i64::try_from(pending.count).unwrap_or(i64::MAX))
        .bind(pending.last_at.map(|at| at.timestamp_millis()))
        .fetch_one(db.control())
        .await?;
        let written = AuditEntry {
            id,
            at: pending.at,
            role: entry.role.clone(),
            action: entry.action.clone(),
            arguments: entry.arguments.clone(),
            outcome: entry.outcome.clone(),
            result: entry.result.clone(),
            client: entry.client.clone(),
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

    /// The most recent entries, newest first, as this process knows them (what the dashboard
    /// shows); no database access.
    pub fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        self.recent.lock().iter().take(limit).cloned().collect()
    }

    /// A page of the log from the database, newest first: up to `limit` entries (1 to
    /// [`MAX_PAGE`]) with ids below `before` (all when `None`). Counts of refusals still being
    /// coalesced are as this process knows them. Entries queued during an outage appear once
    /// written.
    pub async fn page(
        &self,
        db: &Database,
        before: Option<i64>,
        limit: u32,
    ) -> Result<AuditPage, sqlx::Error> {
        let limit = limit.clamp(1, MAX_PAGE);
        let rows: Vec<Row> = {
            let _one_reader = self
                .reads
                .acquire()
                .await
                .map_err(|_| sqlx::Error::PoolClosed)?;
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2"
            )))
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit) + 1)
            .fetch_all(db.control())
            .await?
        };
        let mut entries: Vec<AuditEntry> = rows.into_iter().map(Row::into_entry).collect();
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

async fn write_count(
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
    repeat_count: i64,
    last_at_ms: Option<i64>,
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Row {
    fn into_entry(self) -> AuditEntry {
        AuditEntry {
            id: self.id,
            at: from_ms(self.at_ms),
            role: self.role,
            action: self.action,
            arguments: self.arguments,
            outcome: self.outcome,
            result: self.result,
            client: self.client,
            count: u64::try_from(self.repeat_count).unwrap_or(1).max(1),
            last_at: self.last_at_ms.map(from_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_cut_on_a_character_boundary_and_marked() {
        let mut short = "pause".to_owned();
        truncate_field(&mut short);
        assert_eq!(short, "pause");
        let mut long = "é".repeat(MAX_FIELD_BYTES);
        truncate_field(&mut long);
        assert!(long.len() <= MAX_FIELD_BYTES, "{}", long.len());
        assert!(long.ends_with('…'));
        assert!(long.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn refusals_coalesce_by_client_host_not_port() {
        let entry = |client: &str| NewEntry {
            role: "viewer".into(),
            action: "pause".into(),
            arguments: "{}".into(),
            outcome: REFUSED.into(),
            result: "no".into(),
            client: client.into(),
        };
        assert_eq!(
            Key::of(&entry("10.0.0.1:5000")),
            Key::of(&entry("10.0.0.1:6000"))
        );
        assert_ne!(
            Key::of(&entry("10.0.0.1:5000")),
            Key::of(&entry("10.0.0.2:5000"))
        );
        assert_eq!(Key::of(&entry("unknown")).client, "unknown");
    }
}
