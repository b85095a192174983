//! One target's health as its probes see it: in rotation or out (and why), its replay lag,
//! and the bans and recoveries so far. Pure: the probe's answers come in, decisions come out.

use std::{collections::VecDeque, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many consecutive answered probes bring a target back, and how many consecutive probes
/// over the lag limit take it out: one slow read (a replica catching up on a burst of WAL) is
/// not a ban, and a target that just came back must stay up a moment before it takes work.
pub const CONFIRM: u32 = 2;

/// How many bans and recoveries each target keeps for the dashboard.
pub const EVENTS_KEPT: usize = 32;

/// Why a target is out of rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutReason {
    /// Not probed yet (a replica starts out of rotation until its first answer).
    NotProbed,
    /// The probe could not connect or did not get an answer in time.
    Unreachable {
        /// What the driver said.
        error: String,
    },
    /// Replay lags beyond `REPLICA_MAX_LAG`.
    Lagging {
        /// The lag last read, in seconds.
        lag_secs: f64,
        /// The limit, in seconds.
        max_secs: f64,
    },
}

impl std::fmt::Display for OutReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotProbed => f.write_str("not probed yet"),
            Self::Unreachable { error } => write!(f, "unreachable: {error}"),
            Self::Lagging { lag_secs, max_secs } => write!(
                f,
                "replay lags {lag_secs:.1} s, beyond REPLICA_MAX_LAG ({max_secs:.1} s)"
            ),
        }
    }
}

/// One probe's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeResult {
    /// It answered; `lag` is how far replay trails what the server has received (zero on a
    /// primary, and on a replica with nothing left to replay).
    Answered {
        /// The replay lag.
        lag: Duration,
    },
    /// No answer: the error, as the driver gave it.
    Failed(String),
}

/// A target taken out of rotation or put back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Out (with why), or `None`: back in rotation.
    pub out: Option<OutReason>,
}

/// What the probes have seen of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Out of rotation, and why; `None` while in rotation.
    pub out: Option<OutReason>,
    /// Since when it has been in (or out of) rotation.
    pub since: DateTime<Utc>,
    /// The replay lag last read.
    pub lag: Option<Duration>,
    /// When the last probe ended.
    pub probed_at: Option<DateTime<Utc>>,
    /// Probes answered in a row, within the lag limit.
    good: u32,
    /// Probes in a row over the lag limit.
    lagging: u32,
    /// Bans and recoveries, newest first.
    pub events: VecDeque<HealthEvent>,
    /// Times it was taken out of rotation, since start.
    pub bans: u64,
}

impl Health {
    /// A target taken as healthy from the start (the primary: start-up has just connected).
    pub fn in_rotation(now: DateTime<Utc>) -> Self {
        Self::with(None, now)
    }

    /// A target that must answer a probe first (a replica).
    pub fn unprobed(now: DateTime<Utc>) -> Self {
        Self::with(Some(OutReason::NotProbed), now)
    }

    fn with(out: Option<OutReason>, now: DateTime<Utc>) -> Self {
        Self {
            out,
            since: now,
            lag: None,
            probed_at: None,
            good: 0,
            lagging: 0,
            events: VecDeque::new(),
            bans: 0,
        }
    }

    /// Whether it takes work.
    pub fn is_in_rotation(&self) -> bool {
        self.out.is_none()
    }

    /// Takes in one probe's answer; returns the change it made, if it made one.
    pub fn observe(
        &mut self,
        now: DateTime<Utc>,
        probe: ProbeResult,
        max_lag: Duration,
    ) -> Option<HealthEvent> {
        self.probed_at = Some(now);
        match probe {
            ProbeResult::Failed(error) => {
                self.lag = None;
                self.good = 0;
                self.lagging = 0;
                self.take_out(now, OutReason::Unreachable { error })
            }
            ProbeResult::Answered { lag } => {
                self.lag = Some(lag);
                if lag > max_lag {
                    self.good = 0;
                    self.lagging += 1;
                    let reason = OutReason::Lagging {
                        lag_secs: lag.as_secs_f64(),
                        max_secs: max_lag.as_secs_f64(),
                    };
                    // A target not yet in rotation stays out with the newer reason at once.
                    if self.lagging >= CONFIRM || self.out.is_some() {
                        return self.take_out(now, reason);
                    }
                    return None;
                }
                self.lagging = 0;
                self.good += 1;
                // The first answer after start-up is enough; after a ban it must hold.
                let confirmed = self.good >= CONFIRM || self.out == Some(OutReason::NotProbed);
                if self.out.is_some() && confirmed {
                    self.out = None;
                    self.since = now;
                    return Some(self.record(HealthEvent { at: now, out: None }));
                }
                None
            }
        }
    }

    /// Out of rotation for a failed connection seen by a task, not waiting for the next probe.
    pub fn failed_connect(&mut self, now: DateTime<Utc>, error: String) -> Option<HealthEvent> {
        self.good = 0;
        self.take_out(now, OutReason::Unreachable { error })
    }

    fn take_out(&mut self, now: DateTime<Utc>, reason: OutReason) -> Option<HealthEvent> {
        let was_in = self.out.is_none();
        // Out already: the reason is kept current, the ban is not news.
        self.out = Some(reason.clone());
        if !was_in {
            return None;
        }
        self.since = now;
        self.bans += 1;
        Some(self.record(HealthEvent {
            at: now,
            out: Some(reason),
        }))
    }

    fn record(&mut self, event: HealthEvent) -> HealthEvent {
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_back();
        }
        self.events.push_front(event.clone());
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(5);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn answered(lag_secs: u64) -> ProbeResult {
        ProbeResult::Answered {
            lag: Duration::from_secs(lag_secs),
        }
    }

    #[test]
    fn a_replica_joins_on_its_first_answer() {
        let mut health = Health::unprobed(at(0));
        assert!(!health.is_in_rotation());
        let event = health.observe(at(1), answered(0), MAX).expect("put in");
        assert_eq!(event.out, None);
        assert!(health.is_in_rotation());
        assert_eq!(health.since, at(1));
    }

    #[test]
    fn a_failed_probe_takes_it_out_at_once_and_two_answers_bring_it_back() {
        let mut health = Health::unprobed(at(0));
        health.observe(at(1), answered(0), MAX);
        let out = health
            .observe(at(2), ProbeResult::Failed("connection refused".into()), MAX)
            .expect("taken out");
        assert!(matches!(out.out, Some(OutReason::Unreachable { .. })));
        // Still failing: no new event, the reason stays current.
        assert_eq!(
            health.observe(at(3), ProbeResult::Failed("timed out".into()), MAX),
            None
        );
        assert_eq!(
            health.out,
            Some(OutReason::Unreachable {
                error: "timed out".into()
            })
        );
        assert_eq!(health.observe(at(4), answered(0), MAX), None, "one answer");
        assert!(!health.is_in_rotation());
        assert!(health.observe(at(5), answered(0), MAX).is_some());
        assert!(health.is_in_rotation());
        let kinds: Vec<bool> = health.events.iter().map(|e| e.out.is_some()).collect();
        assert_eq!(kinds, [false, true, false], "newest first");
    }

    #[test]
    fn lag_takes_it_out_only_when_it_holds() {
        let mut health = Health::unprobed(at(0));
        health.observe(at(1), answered(0), MAX);
        assert_eq!(
            health.observe(at(2), answered(9), MAX),
            None,
            "one slow read"
        );
        assert_eq!(health.observe(at(3), answered(0), MAX), None);
        assert_eq!(health.observe(at(4), answered(9), MAX), None);
        let out = health.observe(at(5), answered(12), MAX).expect("taken out");
        assert_eq!(
            out.out,
            Some(OutReason::Lagging {
                lag_secs: 12.0,
                max_secs: 5.0
            })
        );
        assert_eq!(health.lag, Some(Duration::from_secs(12)));
        health.observe(at(6), answered(1), MAX);
        assert!(health.observe(at(7), answered(0), MAX).is_some());
        assert_eq!(health.bans, 1);
    }

    #[test]
    fn a_failed_connection_takes_it_out_before_the_next_probe() {
        let mut health = Health::in_rotation(at(0));
        assert!(health.failed_connect(at(1), "refused".into()).is_some());
        assert!(health.failed_connect(at(1), "refused".into()).is_none());
        assert!(!health.is_in_rotation());
    }

    #[test]
    fn events_are_bounded() {
        let mut health = Health::in_rotation(at(0));
        for i in 0..100 {
            health.failed_connect(at(i * 3), "refused".into());
            health.observe(at(i * 3 + 1), answered(0), MAX);
            health.observe(at(i * 3 + 2), answered(0), MAX);
        }
        assert_eq!(health.events.len(), EVENTS_KEPT);
    }
}
