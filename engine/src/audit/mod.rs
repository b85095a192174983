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
//!
//! Layout: `entry` is what an entry is and how a row reads into one, `queue` the entries
//! waiting for the database and the coalescing of refusals, `store` the reads and writes of
//! the `audit_log` table. [`AuditLog`] and its two entry points, [`AuditLog::record`] and
//! [`AuditLog::flush`], are here.

mod entry;
mod queue;
mod store;

use std::{
    collections::VecDeque,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    time::Duration,
};

use chrono::{DateTime, Utc};
use leasewatch_types::{Actor, AuditOutcome};
use parking_lot::Mutex;

pub use entry::{AuditEntry, AuditPage, NewEntry, Recorded};

use self::{
    queue::{Key, Pending, Place, Queue},
    store::write_count,
};
use crate::{
    db::Database,
    query::{self, InvalidQuery},
};

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

pub use crate::query::{DEFAULT_PAGE, MAX_PAGE};

/// A checked audit search: which entries, where the page starts, how long it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditSearch {
    /// One action.
    pub action: Option<String>,
    /// Who took it.
    pub actor: Option<Actor>,
    /// How it came out.
    pub outcome: Option<AuditOutcome>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
    /// Entries with an id below this (the previous page's cursor).
    pub before: Option<i64>,
    /// Entries per page.
    pub limit: u32,
}

impl AuditSearch {
    /// The newest `limit` entries, unfiltered.
    pub fn newest(limit: u32) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// Checks `query`; a refused value names its field, the value and what is allowed.
    pub fn parse(query: &leasewatch_types::AuditQuery) -> Result<Self, InvalidQuery> {
        let from = query::instant("from", &query.from)?;
        let to = query::instant("to", &query.to)?;
        query::ordered(from, to)?;
        if query.before.is_some_and(|before| before < 1) {
            return Err(InvalidQuery::new(
                "before",
                "must be an entry id (1 or more)",
            ));
        }
        Ok(Self {
            action: query::name("action", &query.action)?.map(str::to_owned),
            actor: query::one_of("actor", &query.actor, &Actor::names())?,
            outcome: query::one_of("outcome", &query.outcome, &AuditOutcome::names())?,
            from,
            to,
            before: query.before,
            limit: query::page_size(query.limit)?,
        })
    }
}

/// Refusal windows kept open at most (distinct role, client and action).
const MAX_WINDOWS: usize = 1024;

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
}

impl AuditLog {
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

    /// Records `entry` on a task of its own, for loops that must not wait for the database
    /// (the maintenance loop, the server reads).
    pub(crate) fn record_in_background(
        self: &std::sync::Arc<Self>,
        db: &Database,
        entry: NewEntry,
    ) {
        let (audit, db) = (std::sync::Arc::clone(self), db.clone());
        tokio::spawn(async move { audit.record(&db, entry).await });
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

    /// The most recent entries, newest first, as this process knows them (what the dashboard
    /// shows); no database access.
    pub fn recent(&self, limit: usize) -> Vec<AuditEntry> {
        self.recent.lock().iter().take(limit).cloned().collect()
    }
}
