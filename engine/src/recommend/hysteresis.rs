//! Hysteresis: a finding shows only after holding for `hold`, and a shown one goes only after
//! being absent for `clear`, so recommendations do not flap.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{ALL_CLEAR, Finding, Recommendation, Thresholds};

/// Turns findings into shown recommendations without flapping.
#[derive(Debug, Default)]
pub(crate) struct Hysteresis {
    tracked: BTreeMap<String, Tracked>,
}

#[derive(Debug)]
struct Tracked {
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    shown_since: Option<DateTime<Utc>>,
    /// When a shown finding was first found absent: it is clearing, held for `clear`.
    cleared_at: Option<DateTime<Utc>>,
    latest: Finding,
}

impl Hysteresis {
    /// Feeds the findings of `now`; returns what to show, worst first.
    pub(crate) fn update(
        &mut self,
        now: DateTime<Utc>,
        findings: Vec<Finding>,
        t: &Thresholds,
    ) -> Vec<Recommendation> {
        let hold = chrono::Duration::from_std(t.hold).unwrap_or(chrono::TimeDelta::MAX);
        let clear = chrono::Duration::from_std(t.clear).unwrap_or(chrono::TimeDelta::MAX);
        let present: Vec<String> = findings.iter().map(|f| f.id.clone()).collect();
        for finding in findings {
            let tracked = self
                .tracked
                .entry(finding.id.clone())
                .or_insert_with(|| Tracked {
                    first_seen: now,
                    last_seen: now,
                    shown_since: None,
                    cleared_at: None,
                    latest: finding.clone(),
                });
            tracked.last_seen = now;
            tracked.cleared_at = None;
            tracked.latest = finding;
        }
        // Absent now: one not yet shown is forgotten (its hold starts over); one shown stays
        // until it has been absent for `clear`.
        self.tracked.retain(|id, tracked| {
            present.contains(id)
                || (tracked.shown_since.is_some() && now - tracked.last_seen < clear)
        });
        for (id, tracked) in &mut self.tracked {
            if !present.contains(id) {
                tracked.cleared_at.get_or_insert(now);
            }
            // "All clear" needs no hold: it is the absence of everything else.
            if tracked.shown_since.is_none()
                && (id == ALL_CLEAR || tracked.latest.at_once || now - tracked.first_seen >= hold)
            {
                tracked.shown_since = Some(now);
            }
        }
        let mut shown: Vec<Recommendation> = self
            .tracked
            .values()
            .filter_map(|tracked| {
                let since = tracked.shown_since?;
                let f = &tracked.latest;
                Some(Recommendation {
                    id: f.id.clone(),
                    severity: f.severity,
                    title: f.title.clone(),
                    detail: f.detail.clone(),
                    action: f.action,
                    since,
                    cleared_at: tracked.cleared_at,
                })
            })
            .collect();
        // "All clear" only when nothing else shows.
        if shown.len() > 1 {
            shown.retain(|r| r.id != ALL_CLEAR);
        }
        // What holds now before what is clearing, each worst first.
        shown.sort_by(|a, b| {
            (a.cleared_at.is_some(), b.severity, &a.id).cmp(&(
                b.cleared_at.is_some(),
                a.severity,
                &b.id,
            ))
        });
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommend::{Severity, world::at};

    fn problem(id: &str) -> Finding {
        Finding::new(id, Severity::Warning, "t", "d", None)
    }

    fn shown(h: &mut Hysteresis, secs: i64, findings: Vec<Finding>) -> Vec<String> {
        let t = Thresholds::default(); // hold 10 s, clear 60 s
        h.update(at(secs), findings, &t)
            .into_iter()
            .map(|r| r.id)
            .collect()
    }

    #[test]
    fn recommendations_appear_after_the_hold_and_clear_after_the_clear_time() {
        let clear = || {
            vec![Finding::new(
                ALL_CLEAR,
                Severity::Info,
                "All clear",
                "",
                None,
            )]
        };
        let mut h = Hysteresis::default();
        assert_eq!(
            shown(&mut h, 0, clear()),
            ["all_clear"],
            "all clear needs no hold"
        );
        assert_eq!(
            shown(&mut h, 1, vec![problem("waiting")]),
            ["all_clear"],
            "held back"
        );
        assert_eq!(
            shown(&mut h, 10, vec![problem("waiting")]),
            ["all_clear"],
            "9 s"
        );
        assert_eq!(
            shown(&mut h, 11, vec![problem("waiting")]),
            ["waiting"],
            "10 s: shown, all clear gone"
        );
        assert_eq!(
            shown(&mut h, 20, clear()),
            ["waiting"],
            "false, but not for 60 s yet"
        );
        assert_eq!(shown(&mut h, 70, clear()), ["waiting"], "last true at 11 s");
        assert_eq!(
            shown(&mut h, 71, clear()),
            ["all_clear"],
            "false for 60 s: cleared"
        );
    }

    #[test]
    fn a_condition_that_lapses_before_showing_starts_its_hold_again() {
        let mut h = Hysteresis::default();
        assert!(shown(&mut h, 0, vec![problem("waiting")]).is_empty());
        assert!(shown(&mut h, 5, vec![]).is_empty());
        assert!(shown(&mut h, 6, vec![problem("waiting")]).is_empty());
        assert!(
            shown(&mut h, 15, vec![problem("waiting")]).is_empty(),
            "9 s since it came back"
        );
        assert_eq!(shown(&mut h, 16, vec![problem("waiting")]), ["waiting"]);
    }

    #[test]
    fn a_shown_recommendation_that_no_longer_holds_says_since_when_and_sorts_last() {
        let t = Thresholds::default();
        let mut h = Hysteresis::default();
        let critical = |id: &str| Finding::new(id, Severity::Critical, "t", "22 of 25", None);
        h.update(at(0), vec![critical("stale"), problem("waiting")], &t);
        let now = h.update(at(11), vec![critical("stale"), problem("waiting")], &t);
        assert!(now.iter().all(|r| r.cleared_at.is_none()), "{now:?}");

        let clearing = h.update(at(20), vec![problem("waiting")], &t);
        let ids: Vec<_> = clearing.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["waiting", "stale"],
            "what holds first, then what clears"
        );
        assert_eq!(clearing[1].cleared_at, Some(at(20)));
        assert_eq!(clearing[1].detail, "22 of 25", "its last numbers");
        let later = h.update(at(30), vec![problem("waiting")], &t);
        assert_eq!(
            later[1].cleared_at,
            Some(at(20)),
            "first found absent at 20 s"
        );

        let back = h.update(at(31), vec![critical("stale"), problem("waiting")], &t);
        assert_eq!(back[0].id, "stale");
        assert_eq!(back[0].cleared_at, None, "it holds again");
    }
}
