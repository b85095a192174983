//! Entries waiting for the database, oldest first, and refusal windows: identical refusals
//! within [`REFUSAL_WINDOW`] counted into one entry.

use std::{
    collections::{HashMap, VecDeque},
    time::Instant,
};

use chrono::{DateTime, Utc};

use leasewatch_types::Actor;

use super::{AuditLog, MAX_WINDOWS, NewEntry, REFUSAL_WINDOW, Recorded};

/// Identical refusals: same role, client host (the port changes with every connection) and
/// action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) role: Actor,
    pub(super) client: String,
    pub(super) action: String,
}

impl Key {
    /// The refusal window `entry` belongs to.
    pub(super) fn of(entry: &NewEntry) -> Self {
        let client = entry
            .client
            .parse::<std::net::SocketAddr>()
            .map_or_else(|_| entry.client.clone(), |addr| addr.ip().to_string());
        Self {
            role: entry.role,
            client,
            action: entry.action.clone(),
        }
    }
}

/// An entry waiting for the database.
pub(super) struct Pending {
    /// Its place in the queue, so a window can point at it.
    pub(super) seq: u64,
    pub(super) at: DateTime<Utc>,
    pub(super) entry: NewEntry,
    pub(super) count: u64,
    pub(super) last_at: Option<DateTime<Utc>>,
    /// For refusals, the window it opened.
    pub(super) key: Option<Key>,
}

/// Identical refusals being counted into one entry.
pub(super) struct Window {
    pub(super) opened: Instant,
    pub(super) place: Place,
    /// Refusals counted.
    pub(super) count: u64,
    /// Of those, how many the row in the database says.
    pub(super) written: u64,
    pub(super) last_at: DateTime<Utc>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Row(i64),
    Queued(u64),
}

#[derive(Default)]
pub(super) struct Queue {
    /// Oldest first.
    pub(super) pending: VecDeque<Pending>,
    pub(super) next_seq: u64,
    pub(super) windows: HashMap<Key, Window>,
}

impl Queue {
    /// Refusals waiting.
    pub(super) fn refusals(&self) -> usize {
        self.pending.iter().filter(|p| p.key.is_some()).count()
    }
}

impl AuditLog {
    /// Counts a refusal into the open window for `key`, if there is one.
    pub(super) fn coalesce(
        &self,
        queue: &mut Queue,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Option<Recorded> {
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

    /// Opens a refusal window for `key` (unless too many are open), its entry at `place`.
    pub(super) fn open_window(
        &self,
        queue: &mut Queue,
        key: Key,
        place: Place,
        now: DateTime<Utc>,
    ) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use leasewatch_types::AuditOutcome;

    #[test]
    fn refusals_coalesce_by_client_host_not_port() {
        let entry = |client: &str| NewEntry {
            role: Actor::Viewer,
            action: "pause".into(),
            arguments: "{}".into(),
            outcome: AuditOutcome::Refused,
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
