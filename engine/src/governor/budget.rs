//! The connection budget: what a PostgreSQL server can give Leasewatch's task connections, and
//! one instance's share of it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    db::{APPLICATION_PREFIX, TASKS_APPLICATION_PREFIX},
    server_view::PgServerView,
};

/// Slots held back for the web application (`BUDGET_HEADROOM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "unit", content = "value", rename_all = "snake_case")]
pub enum Headroom {
    /// This many slots.
    Slots(u32),
    /// This share of the slots ordinary roles can use, rounded up.
    Percent(u8),
}

impl Headroom {
    /// The slots held back out of `usable`.
    pub fn of(self, usable: i64) -> i64 {
        match self {
            Self::Slots(n) => i64::from(n),
            Self::Percent(p) => (usable.max(0) * i64::from(p) + 99) / 100,
        }
    }
}

impl Default for Headroom {
    fn default() -> Self {
        Self::Percent(10)
    }
}

/// What the server can give Leasewatch's task connections, and this instance's share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Budget {
    /// When the server was read.
    pub read_at: DateTime<Utc>,
    /// Slots ordinary roles can use: `max_connections` − reserved.
    pub usable: i64,
    /// Client sessions that are not Leasewatch's (the web app, psql, ...).
    pub foreign: i64,
    /// Leasewatch's own sessions that are not task connections (control, probes).
    pub overhead: i64,
    /// Slots held back for the web app.
    pub headroom: i64,
    /// Live Leasewatch instances on the server, this one included.
    pub instances: u32,
    /// Task connections all instances together may hold: usable − foreign − overhead −
    /// headroom, never below 0.
    pub total: u32,
    /// This instance's part of `total`: `total / instances`, rounded down so the instances
    /// together never exceed it, but at least 1 (one lease for the most important task).
    pub share: u32,
}

impl Budget {
    /// The budget as `view` shows the server, for the instance whose sessions are named
    /// with `instance`.
    pub fn of(view: &PgServerView, headroom: Headroom, instance: &str) -> Self {
        let usable = view.usable_connections();
        let mut foreign = 0;
        let mut overhead = 0;
        let mut instances = BTreeSet::from([instance]);
        for holder in &view.holders {
            let Some(ours) = holder.application.strip_prefix(APPLICATION_PREFIX) else {
                foreign += holder.connections;
                continue;
            };
            // `<role>:<instance>` (tasks, control; a probe names no instance).
            if let Some((_, id)) = ours.split_once(':') {
                instances.insert(id);
            }
            if !holder.application.starts_with(TASKS_APPLICATION_PREFIX) {
                overhead += holder.connections;
            }
        }
        let headroom = headroom.of(usable);
        let instances = u32::try_from(instances.len()).unwrap_or(u32::MAX);
        let total = u32::try_from((usable - foreign - overhead - headroom).max(0)).unwrap_or(0);
        Self {
            read_at: view.read_at,
            usable,
            foreign,
            overhead,
            headroom,
            instances,
            total,
            share: (total / instances).max(1),
        }
    }

    /// Why the share is what it is, in a line: "share 4 of 17: 3 instances, 5 foreign
    /// backends, 3 control sessions, headroom 3 of 27 usable"; when the budget is smaller than
    /// one lease per instance, "share 1 (the floor; the budget is 0): …".
    pub fn reason(&self) -> String {
        let share = if self.total < self.instances {
            format!(
                "share {} (the floor; the budget is {})",
                self.share, self.total
            )
        } else {
            format!("share {} of {}", self.share, self.total)
        };
        format!(
            "{share}: {} instance{}, {} foreign backend{}, {} control session{}, headroom {} \
             of {} usable",
            self.instances,
            plural(i64::from(self.instances)),
            self.foreign,
            plural(self.foreign),
            self.overhead,
            plural(self.overhead),
            self.headroom,
            self.usable
        )
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_view::Holder;

    fn view(max: i64, holders: &[(&str, i64)]) -> PgServerView {
        PgServerView {
            read_at: DateTime::UNIX_EPOCH,
            max_connections: max,
            reserved_connections: 3,
            client_connections: holders.iter().map(|(_, n)| n).sum(),
            by_state: vec![],
            idle_in_transaction: 0,
            waiting: 0,
            holders: holders
                .iter()
                .map(|(application, connections)| Holder {
                    application: (*application).to_owned(),
                    user: "app".to_owned(),
                    connections: *connections,
                })
                .collect(),
        }
    }

    #[test]
    fn the_budget_is_what_the_others_and_the_headroom_leave() {
        // 20 − 3 reserved = 17 usable; the web app holds 5, three instances hold 3 control
        // sessions; headroom 3 → 6 task connections, 2 each.
        let v = view(
            20,
            &[
                ("web", 5),
                ("leasewatch:tasks:a", 2),
                ("leasewatch:control:a", 1),
                ("leasewatch:tasks:b", 1),
                ("leasewatch:control:b", 1),
                ("leasewatch:control:c", 1),
            ],
        );
        let b = Budget::of(&v, Headroom::Slots(3), "a");
        assert_eq!(
            (
                b.usable,
                b.foreign,
                b.overhead,
                b.headroom,
                b.instances,
                b.total,
                b.share
            ),
            (17, 5, 3, 3, 3, 6, 2)
        );
        assert_eq!(
            b.reason(),
            "share 2 of 6: 3 instances, 5 foreign backends, 3 control sessions, headroom 3 of 17 usable"
        );
    }

    #[test]
    fn shares_never_add_up_to_more_than_the_budget() {
        for total_free in 0..40 {
            for n in 1..8usize {
                let names: Vec<String> =
                    (0..n).map(|i| format!("leasewatch:control:{i}")).collect();
                let mut holders: Vec<(&str, i64)> = names.iter().map(|s| (s.as_str(), 1)).collect();
                holders.push(("web", 0));
                let v = view(3 + total_free + n as i64, &holders);
                let b = Budget::of(&v, Headroom::Slots(0), "0");
                assert_eq!(b.instances as usize, n);
                assert_eq!(b.total as i64, total_free);
                if b.total as usize >= n {
                    assert!(b.share as usize * n <= b.total as usize, "{b:?}");
                } else {
                    assert_eq!(b.share, 1, "the floor: one lease each");
                }
            }
        }
    }

    #[test]
    fn this_instance_counts_before_its_first_session_and_the_budget_never_goes_negative() {
        let v = view(10, &[("web", 9)]);
        let b = Budget::of(&v, Headroom::Percent(10), "me");
        assert_eq!((b.instances, b.headroom, b.total, b.share), (1, 1, 0, 1));
        assert_eq!(
            b.reason(),
            "share 1 (the floor; the budget is 0): 1 instance, 9 foreign backends, \
             0 control sessions, headroom 1 of 7 usable"
        );
    }

    #[test]
    fn a_percentage_headroom_rounds_up() {
        assert_eq!(Headroom::Percent(10).of(17), 2);
        assert_eq!(Headroom::Percent(0).of(17), 0);
        assert_eq!(Headroom::Percent(100).of(17), 17);
        assert_eq!(Headroom::Slots(4).of(17), 4);
    }
}
