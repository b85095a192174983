//! Predictive cleanup: seeing the server's slots run out before the first refused connection.
//!
//! Every server read (every few seconds, over the control connection) becomes a sample. The
//! [`forecast`] fits the recent samples; the [`Predictor`] raises an alarm when the fit predicts
//! exhaustion within the horizon on [`RAISE_AFTER`] reads in a row, and clears it only after
//! [`CLEAR_AFTER`] reads in a row without, so one read does not make it flap. While the alarm
//! holds, the engine (unless `PREDICTIVE_CLEANUP=off`) takes back Leasewatch's own long-held
//! leases and idle connections and defers scheduled runs that have slack; it never touches
//! another application's sessions.

pub mod forecast;
mod respond;

use std::{collections::VecDeque, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::server_view::{Holder, PgServerView};
pub use forecast::{Point, Trend};
pub(crate) use respond::Responder;

/// Reads in a row that must predict exhaustion before the alarm is raised.
pub const RAISE_AFTER: u32 = 2;

/// Reads in a row that must not predict it before the alarm clears.
pub const CLEAR_AFTER: u32 = 5;

/// Samples older than the longest window are dropped.
const KEEP: f64 = forecast::WINDOWS[forecast::WINDOWS.len() - 1];

/// The predictor's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictSettings {
    /// How far ahead a forecast exhaustion raises the alarm (`PREDICT_HORIZON`).
    pub horizon: Duration,
    /// Whether the engine acts on the alarm (`PREDICTIVE_CLEANUP`); off keeps the forecast and
    /// the warning only.
    pub act: bool,
}

impl Default for PredictSettings {
    fn default() -> Self {
        Self {
            horizon: Duration::from_secs(5 * 60),
            act: true,
        }
    }
}

/// One server read, as the predictor keeps it.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    at: DateTime<Utc>,
    used: i64,
    usable: i64,
    holders: Vec<Holder>,
}

/// An application whose connections grew over the forecast's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Growth {
    /// Its `application_name` (empty when it set none).
    pub application: String,
    /// The role it logged in as.
    pub user: String,
    /// Its connections at the start of the window.
    pub from: i64,
    /// Its connections now.
    pub to: i64,
}

/// The alarm: exhaustion predicted within the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alarm {
    /// When it was raised.
    pub since: DateTime<Utc>,
    /// Seconds until the usable slots run out, as of the last read.
    pub eta_secs: f64,
    /// Connections per minute, as of the last read.
    pub per_minute: f64,
    /// Who grew over the reads kept (up to the longest window), most first.
    pub growing: Vec<Growth>,
}

impl Alarm {
    /// "16 psql (user hog) +9, leasewatch:tasks:… (user app) +1": who is growing.
    pub fn growing_line(&self) -> String {
        if self.growing.is_empty() {
            return "no single application stands out".to_owned();
        }
        self.growing
            .iter()
            .take(4)
            .map(|g| {
                let application = if g.application.is_empty() {
                    "without application_name"
                } else {
                    &g.application
                };
                format!("{application} (user {}) {} → {}", g.user, g.from, g.to)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The fit now, for the dashboard, the API and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrendView {
    /// Growth in connections per minute (Theil–Sen).
    pub per_minute: f64,
    /// The fitted level now.
    pub level: f64,
    /// Kendall's tau-b: 1 for a clean rise, about 0 for noise.
    pub fit: f64,
    /// Seconds of samples the fit spans.
    pub window_secs: f64,
    /// Seconds until the line reaches the usable slots, when it rises and fits.
    pub eta_secs: Option<f64>,
}

/// What the predictor sees (PostgreSQL; nothing before the first read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ForecastView {
    /// When the server was last read.
    pub read_at: DateTime<Utc>,
    /// Client connections then.
    pub used: i64,
    /// Slots ordinary roles can use.
    pub usable: i64,
    /// The fit, with enough samples.
    pub trend: Option<TrendView>,
    /// Raised while exhaustion is predicted within the horizon.
    pub alarm: Option<Alarm>,
    /// The horizon, in seconds (`PREDICT_HORIZON`).
    pub horizon_secs: u64,
    /// Whether the engine acts on the alarm (`PREDICTIVE_CLEANUP`).
    pub acting: bool,
}

/// What a read changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The alarm was raised.
    Raised(Alarm),
    /// The alarm still holds.
    Holds(Alarm),
    /// The alarm cleared.
    Cleared,
    /// No alarm, none raised.
    Quiet,
}

/// The forecast over the server reads, and its alarm with hysteresis.
#[derive(Debug)]
pub struct Predictor {
    settings: PredictSettings,
    samples: VecDeque<Sample>,
    trend: Option<Trend>,
    /// Reads in a row that predicted exhaustion (or, while raised, that did not).
    streak: u32,
    alarm: Option<Alarm>,
}

impl Predictor {
    /// A predictor with no samples.
    pub fn new(settings: PredictSettings) -> Self {
        Self {
            settings,
            samples: VecDeque::new(),
            trend: None,
            streak: 0,
            alarm: None,
        }
    }

    /// Its settings.
    pub fn settings(&self) -> PredictSettings {
        self.settings
    }

    /// Takes a server read and says what it changed.
    pub fn observe(&mut self, view: &PgServerView) -> Change {
        let newest = Sample {
            at: view.read_at,
            used: view.client_connections,
            usable: view.usable_connections(),
            holders: view.holders.clone(),
        };
        // Reads arrive in order; one from before the newest (a clock step) restarts the window.
        if self.samples.back().is_some_and(|s| s.at > newest.at) {
            self.samples.clear();
        }
        self.samples.push_back(newest);
        let now = view.read_at;
        while self
            .samples
            .front()
            .is_some_and(|s| seconds_between(s.at, now) > KEEP)
        {
            self.samples.pop_front();
        }
        let points: Vec<Point> = self
            .samples
            .iter()
            .map(|s| Point {
                at: -seconds_between(s.at, now),
                used: s.used as f64,
            })
            .collect();
        let usable = view.usable_connections() as f64;
        self.trend = forecast::forecast(&points, usable);
        let horizon = self.settings.horizon.as_secs_f64();
        let predicted = self.trend.filter(|t| t.predicts_within(horizon));
        match (predicted, self.alarm.is_some()) {
            (Some(trend), false) => {
                self.streak += 1;
                if self.streak < RAISE_AFTER {
                    return Change::Quiet;
                }
                self.streak = 0;
                let alarm = Alarm {
                    since: now,
                    eta_secs: trend.eta.unwrap_or(0.0),
                    per_minute: trend.per_second * 60.0,
                    growing: self.growing(),
                };
                self.alarm = Some(alarm.clone());
                Change::Raised(alarm)
            }
            (None, false) => {
                self.streak = 0;
                Change::Quiet
            }
            (Some(trend), true) => {
                self.streak = 0;
                let growing = self.growing();
                let alarm = self.alarm.as_mut().expect("raised");
                alarm.eta_secs = trend.eta.unwrap_or(0.0);
                alarm.per_minute = trend.per_second * 60.0;
                alarm.growing = growing;
                Change::Holds(alarm.clone())
            }
            (None, true) => {
                self.streak += 1;
                if self.streak < CLEAR_AFTER {
                    return Change::Holds(self.alarm.clone().expect("raised"));
                }
                self.streak = 0;
                self.alarm = None;
                Change::Cleared
            }
        }
    }

    /// The alarm, while raised.
    pub fn alarm(&self) -> Option<&Alarm> {
        self.alarm.as_ref()
    }

    /// What it sees now; `None` before the first read.
    pub fn view(&self) -> Option<ForecastView> {
        let newest = self.samples.back()?;
        Some(ForecastView {
            read_at: newest.at,
            used: newest.used,
            usable: newest.usable,
            trend: self.trend.map(|t| TrendView {
                per_minute: t.per_second * 60.0,
                level: t.level,
                fit: t.fit,
                window_secs: t.window,
                eta_secs: t.eta.filter(|_| t.fit >= forecast::MIN_FIT),
            }),
            alarm: self.alarm.clone(),
            horizon_secs: self.settings.horizon.as_secs(),
            acting: self.settings.act,
        })
    }

    /// Who grew between the oldest read kept (up to the longest window ago) and the newest,
    /// most first: over minutes, not just the window that fits best, so a slow leak shows.
    fn growing(&self) -> Vec<Growth> {
        let (Some(oldest), Some(newest)) = (self.samples.front(), self.samples.back()) else {
            return Vec::new();
        };
        let count = |sample: &Sample, h: &Holder| {
            sample
                .holders
                .iter()
                .find(|o| o.application == h.application && o.user == h.user)
                .map_or(0, |o| o.connections)
        };
        let mut growing: Vec<Growth> = newest
            .holders
            .iter()
            .map(|h| Growth {
                application: h.application.clone(),
                user: h.user.clone(),
                from: count(oldest, h),
                to: h.connections,
            })
            .filter(|g| g.to > g.from)
            .collect();
        growing.sort_by_key(|g| std::cmp::Reverse(g.to - g.from));
        growing
    }
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(at: DateTime<Utc>, used: i64, holders: Vec<(&str, i64)>) -> PgServerView {
        PgServerView {
            read_at: at,
            max_connections: 20,
            reserved_connections: 3,
            client_connections: used,
            by_state: Vec::new(),
            idle_in_transaction: 0,
            waiting: 0,
            holders: holders
                .into_iter()
                .map(|(application, connections)| Holder {
                    application: application.to_owned(),
                    user: "app".to_owned(),
                    connections,
                })
                .collect(),
        }
    }

    /// One hour of reads every 2 s under paused time: flat near the limit with jitter, then
    /// spikes to one below the limit. Not one alarm.
    #[tokio::test(start_paused = true)]
    async fn an_hour_of_flat_and_spiky_load_near_the_limit_raises_nothing() {
        let mut predictor = Predictor::new(PredictSettings::default());
        let start = tokio::time::Instant::now();
        let epoch = Utc::now();
        let mut reads = 0;
        while start.elapsed() < Duration::from_secs(3600) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let elapsed = start.elapsed();
            let at = epoch + chrono::Duration::from_std(elapsed).expect("an hour");
            let i = elapsed.as_secs() / 2;
            let used = if elapsed < Duration::from_secs(1800) {
                14 + [0, 1, -1, 0, 1, 1, -1, 0, 0, -1][(i % 10) as usize]
            } else if i.is_multiple_of(9) || i.is_multiple_of(13) {
                16
            } else {
                12
            };
            let change = predictor.observe(&read(at, used, vec![("web", used)]));
            assert_eq!(
                change,
                Change::Quiet,
                "at {elapsed:?}: {:?}",
                predictor.view()
            );
            reads += 1;
        }
        assert_eq!(reads, 1800);
    }

    #[test]
    fn a_leak_raises_the_alarm_naming_who_grows_and_it_clears_after_the_leak_stops() {
        let mut predictor = Predictor::new(PredictSettings::default());
        let epoch = Utc::now();
        let at = |secs: i64| epoch + chrono::Duration::seconds(secs);
        for secs in (0..60).step_by(2) {
            assert_eq!(
                predictor.observe(&read(at(secs), 4, vec![("web", 3), ("psql", 1)])),
                Change::Quiet
            );
        }
        let mut raised = None;
        for secs in (60..140).step_by(2) {
            let leaked = (secs - 60) / 6;
            let change = predictor.observe(&read(
                at(secs),
                4 + leaked,
                vec![("web", 3), ("psql", 1 + leaked)],
            ));
            if let Change::Raised(alarm) = change {
                raised = Some((secs, alarm));
                break;
            }
        }
        let (secs, alarm) = raised.expect("the leak raises the alarm");
        assert!(secs - 60 <= 20, "raised {} s into the leak", secs - 60);
        assert_eq!(alarm.growing.len(), 1, "{alarm:?}");
        assert_eq!(alarm.growing[0].application, "psql");
        assert!(alarm.growing_line().starts_with("psql (user app) "));
        assert!(alarm.eta_secs > 30.0 && alarm.eta_secs < 120.0, "{alarm:?}");
        // The leak is cleaned up: the count falls, and the alarm clears after CLEAR_AFTER reads.
        let mut cleared_after = None;
        for (n, secs) in (secs + 2..secs + 40).step_by(2).enumerate() {
            if predictor.observe(&read(at(secs), 4, vec![("web", 3), ("psql", 1)]))
                == Change::Cleared
            {
                cleared_after = Some(n + 1);
                break;
            }
        }
        assert_eq!(cleared_after, Some(CLEAR_AFTER as usize));
        assert!(predictor.alarm().is_none());
    }
}
