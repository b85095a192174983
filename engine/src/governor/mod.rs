//! The connection-budget governor: how many leases this instance may hold at once.
//!
//! On PostgreSQL the server is read every few seconds over the control connection; the
//! [`Budget`] is what it can give Leasewatch's task connections after the other clients, the
//! instances' own control sessions and a headroom for the web app, split between the live
//! instances. The instance's limit never exceeds its share (nor `DB_MAX_CONNECTIONS`) and
//! adapts within it by [`Aimd`]: halved at once when the pool times out or the server refuses
//! a connection, one more per window while acquires queue and the pool answers quickly. Every
//! lease passes a [`gate`](Gate) that holds the limit, letting the most important tasks
//! through first. On SQLite, or with the governor off, the limit is `DB_MAX_CONNECTIONS`.

mod aimd;
mod budget;
mod gate;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use aimd::{Aimd, Change, Window};
pub use budget::{Budget, Headroom};
use gate::Gate;
pub(crate) use gate::Permit;

/// How important a task is: under a tight budget, waiting leases of higher priority go first.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub struct Priority(pub u8);

/// How long a window of acquires is: the limit moves at most once per window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// The governor's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GovernorSettings {
    /// Off: the limit is `max` (`GOVERNOR=off`); always off on SQLite.
    pub enabled: bool,
    /// Slots held back for the web app (`BUDGET_HEADROOM`).
    pub headroom: Headroom,
    /// `DB_MAX_CONNECTIONS`: the limit never exceeds it.
    pub max: u32,
    /// The limit it starts with.
    pub start: u32,
    /// While pool waits reach this, the limit does not grow (`DB_CONNECTION_TIMEOUT` / 4).
    pub slow_wait: Duration,
}

/// What the governor decided, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GovernorView {
    /// Whether it adapts the limit (PostgreSQL, not turned off).
    pub enabled: bool,
    /// Leases this instance may hold at once now.
    pub limit: u32,
    /// This instance's share of the budget (`DB_MAX_CONNECTIONS` until the server is read).
    pub share: u32,
    /// Leases held now.
    pub held: u32,
    /// Acquires waiting at the limit now.
    pub queued: u32,
    /// The budget as last read, on PostgreSQL.
    pub budget: Option<Budget>,
    /// The last change and why: "limit 2 (share 4 of 17: ...): the server refused".
    pub reason: String,
    /// When the limit last changed.
    pub changed_at: DateTime<Utc>,
}

/// The governor of one instance. Cheap to share.
#[derive(Debug)]
pub struct Governor {
    settings: GovernorSettings,
    gate: Arc<Gate>,
    policy: Mutex<Policy>,
}

#[derive(Debug)]
struct Policy {
    aimd: Aimd,
    share: u32,
    budget: Option<Budget>,
    reason: String,
    changed_at: DateTime<Utc>,
}

impl Governor {
    /// A governor starting at `settings.start` (at `max` when off).
    pub fn new(settings: GovernorSettings) -> Self {
        let start = if settings.enabled {
            settings.start.clamp(1, settings.max.max(1))
        } else {
            settings.max
        };
        Self {
            settings,
            gate: Gate::new(start),
            policy: Mutex::new(Policy {
                aimd: Aimd::new(start, settings.slow_wait),
                share: settings.max,
                budget: None,
                reason: if settings.enabled {
                    format!("limit {start} at start; the server is not read yet")
                } else {
                    format!("off: the limit is DB_MAX_CONNECTIONS ({})", settings.max)
                },
                changed_at: Utc::now(),
            }),
        }
    }

    /// Whether it adapts the limit.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Waits until `deadline` for a place under the limit.
    pub(crate) async fn enter(
        &self,
        priority: Priority,
        deadline: tokio::time::Instant,
    ) -> Option<Permit> {
        self.gate.enter(priority, deadline).await
    }

    /// The pool timed out or the server refused a connection: back off at once.
    pub(crate) fn trouble(&self) {
        self.gate.trouble();
        if self.settings.enabled {
            let mut policy = self.policy.lock();
            let change = policy.aimd.back_off();
            self.apply(
                &mut policy,
                change,
                "the pool timed out or the server refused",
            );
        }
    }

    /// An acquire waited `waited` on the pool after passing the gate.
    pub(crate) fn pool_waited(&self, waited: Duration) {
        self.gate.pool_waited(waited);
    }

    /// Ends a window of acquires: grow, shrink or hold.
    pub fn end_window(&self) -> Change {
        let window = self.gate.take_window();
        if !self.settings.enabled {
            return Change::Held;
        }
        let mut policy = self.policy.lock();
        let share = policy.share;
        let change = policy.aimd.on_window(&window, share);
        let why = match change {
            Change::Grew => "acquires queued at the limit and the pool answered quickly",
            _ => "the pool timed out or the server refused",
        };
        self.apply(&mut policy, change, why);
        change
    }

    /// A new reading of the server: the share follows it at once.
    pub fn set_budget(&self, budget: Budget) -> Change {
        if !self.settings.enabled {
            return Change::Held;
        }
        let mut policy = self.policy.lock();
        let share = budget.share.min(self.settings.max);
        let share_changed = share != policy.share;
        policy.share = share;
        let why = budget.reason();
        policy.budget = Some(budget);
        let change = policy.aimd.cap(share);
        if share_changed && change == Change::Held {
            tracing::info!(share, limit = policy.aimd.limit(), %why, "connection share changed");
        }
        self.apply(&mut policy, change, &why);
        change
    }

    /// The limit the gate holds now.
    pub fn limit(&self) -> u32 {
        self.gate.limit()
    }

    /// Task connections the server can give all instances together, as last read.
    pub fn budget_total(&self) -> Option<u32> {
        self.policy.lock().budget.as_ref().map(|b| b.total)
    }

    /// What it decided, and why.
    pub fn view(&self) -> GovernorView {
        let policy = self.policy.lock();
        GovernorView {
            enabled: self.settings.enabled,
            limit: self.gate.limit(),
            share: policy.share,
            held: self.gate.held(),
            queued: self.gate.queued(),
            budget: policy.budget.clone(),
            reason: policy.reason.clone(),
            changed_at: policy.changed_at,
        }
    }

    fn apply(&self, policy: &mut Policy, change: Change, why: &str) {
        if change == Change::Held {
            return;
        }
        let limit = policy.aimd.limit();
        self.gate.set_limit(limit);
        policy.reason = format!("limit {limit} of share {}: {why}", policy.share);
        policy.changed_at = Utc::now();
        tracing::info!(limit, share = policy.share, %why, "lease limit changed");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    use tokio::time::Instant;

    use super::*;

    fn governor(max: u32) -> Arc<Governor> {
        Arc::new(Governor::new(GovernorSettings {
            enabled: true,
            headroom: Headroom::Slots(0),
            max,
            start: 1,
            slow_wait: Duration::from_millis(500),
        }))
    }

    /// `workers` tasks that each want a lease all the time, holding it 200 ms at a go.
    fn steady_load(g: &Arc<Governor>, workers: usize, stop: &Arc<AtomicBool>) {
        for _ in 0..workers {
            let (g, stop) = (Arc::clone(g), Arc::clone(stop));
            tokio::spawn(async move {
                while !stop.load(Relaxed) {
                    let deadline = Instant::now() + Duration::from_secs(5);
                    if let Some(permit) = g.enter(Priority(1), deadline).await {
                        g.pool_waited(Duration::from_millis(2));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        drop(permit);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
    }

    /// One window of paused time, then its end.
    async fn window(g: &Governor) -> Change {
        tokio::time::sleep(WINDOW).await;
        g.end_window()
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_load_is_met_within_thirty_windows_and_then_held() {
        for workers in [1, 4, 9] {
            let g = governor(20);
            let stop = Arc::new(AtomicBool::new(false));
            steady_load(&g, workers, &stop);
            let mut met = None;
            for w in 1..=30 {
                window(&g).await;
                if met.is_none() && g.limit() >= workers as u32 {
                    met = Some(w);
                }
            }
            assert!(met.is_some(), "{workers} workers: limit {}", g.limit());
            let settled = g.limit();
            assert!(
                settled.abs_diff(workers as u32) <= 1,
                "{workers} workers: settled at {settled}"
            );
            for _ in 0..30 {
                assert_ne!(window(&g).await, Change::Shrank, "no oscillation");
            }
            assert!(g.limit().abs_diff(settled) <= 1, "held: {}", g.limit());
            stop.store(true, Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_halves_at_once_and_the_share_bounds_it() {
        let g = governor(20);
        let stop = Arc::new(AtomicBool::new(false));
        steady_load(&g, 8, &stop);
        for _ in 0..12 {
            window(&g).await;
        }
        assert_eq!(g.limit(), 8);
        g.trouble();
        assert_eq!(g.limit(), 4, "at the refusal, not at the window's end");
        assert!(g.view().reason.contains("refused"), "{}", g.view().reason);
        // A share below the limit caps it at once; the floor is one.
        let view = crate::server_view::PgServerView {
            read_at: chrono::Utc::now(),
            max_connections: 10,
            reserved_connections: 3,
            client_connections: 7,
            by_state: vec![],
            idle_in_transaction: 0,
            waiting: 0,
            holders: vec![crate::server_view::Holder {
                application: "web".into(),
                user: "web".into(),
                connections: 7,
            }],
        };
        assert_eq!(
            g.set_budget(Budget::of(&view, Headroom::Slots(0), "me")),
            Change::Shrank
        );
        assert_eq!((g.view().share, g.limit()), (1, 1));
        for _ in 0..10 {
            window(&g).await;
            assert_eq!(g.limit(), 1, "never above the share");
        }
        stop.store(true, Relaxed);
    }
}
