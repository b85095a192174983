//! The trend forecaster: a pure function from recent samples of the server's client connections
//! to the time until its usable slots run out.
//!
//! The slope is Theil–Sen's (the median of the slopes between every pair of samples) rather
//! than least squares: connection counts are small integers with spikes (a burst of web
//! requests, a task's run), and one spike moves a least-squares line as much as a real trend
//! does, while the median ignores up to 29 % of outliers. Its companion statistic, Kendall's
//! tau-b (how many pairs agree with a monotone trend), is the quality of the fit: flat noise,
//! spikes and sawtooths score near zero, a leak near one. A window must also grow in both its
//! halves, so a single step (a deploy that opens a fixed number of connections once) is not
//! mistaken for a ramp. Several windows are fitted, short ones to see a fast ramp early and long
//! ones to see a slow leak at all; the earliest exhaustion any qualifying window predicts wins.
//! At most a few hundred samples: the quadratic pair count costs microseconds.

/// One sample: seconds relative to the newest sample (zero or negative) and connections used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds before the newest sample (the newest is at 0).
    pub at: f64,
    /// Client connections on the server.
    pub used: f64,
}

/// The fit over one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Growth, in connections per second (Theil–Sen).
    pub per_second: f64,
    /// The fitted level now (at the newest sample).
    pub level: f64,
    /// Kendall's tau-b of the samples against time: 1 for a clean rise, about 0 for noise.
    pub fit: f64,
    /// How many seconds the window spans.
    pub window: f64,
    /// Seconds until the fitted line reaches the usable slots; `None` when it does not rise.
    pub eta: Option<f64>,
}

impl Trend {
    /// Whether this fit is a forecast to act on: a rise that fits well, grows in both halves of
    /// the window and reaches the limit within `horizon` seconds.
    pub fn predicts_within(&self, horizon: f64) -> bool {
        self.fit >= MIN_FIT && self.eta.is_some_and(|eta| eta <= horizon)
    }
}

/// The windows fitted, in seconds: short for a fast ramp, long for a slow leak.
pub const WINDOWS: [f64; 3] = [20.0, 60.0, 180.0];

/// Fewest samples a window needs.
pub const MIN_SAMPLES: usize = 8;

/// Lowest Kendall tau-b that counts as a trend.
pub const MIN_FIT: f64 = 0.6;

/// The forecast over `points` (oldest first, the newest at 0) for a server with `usable` slots:
/// of the windows that show a well-fitting rise in both halves, the one that reaches `usable`
/// first; otherwise the longest window's fit (for display), or `None` with too few samples.
pub fn forecast(points: &[Point], usable: f64) -> Option<Trend> {
    let mut shown = None;
    let mut best: Option<Trend> = None;
    for window in WINDOWS {
        let Some(trend) = fit_window(points, window, usable) else {
            continue;
        };
        let rising = trend.fit >= MIN_FIT && trend.eta.is_some();
        if rising && best.is_none_or(|b| trend.eta < b.eta) {
            best = Some(trend);
        }
        shown = Some(trend);
    }
    best.or(shown)
}

/// The fit over the samples within `window` seconds of the newest, or `None` with too few.
/// A window that does not grow in both halves gets no `eta`.
pub fn fit_window(points: &[Point], window: f64, usable: f64) -> Option<Trend> {
    let start = points.partition_point(|p| p.at < -window);
    let points = &points[start..];
    if points.len() < MIN_SAMPLES {
        return None;
    }
    let per_second = theil_sen(points);
    let level = median(points.iter().map(|p| p.used - per_second * p.at).collect());
    let (older, newer) = points.split_at(points.len() / 2);
    let eta = (per_second > 0.0 && grows(older) && grows(newer))
        .then(|| ((usable - level) / per_second).max(0.0));
    Some(Trend {
        per_second,
        level,
        fit: kendall_tau_b(points),
        window: -points[0].at,
        eta,
    })
}

/// Whether a slice ends higher than it starts: the mean of its last third above the mean of
/// its first. A leak of one connection per window still shows; a flat slice does not.
fn grows(points: &[Point]) -> bool {
    let third = (points.len() / 3).max(1);
    let mean = |ps: &[Point]| ps.iter().map(|p| p.used).sum::<f64>() / ps.len() as f64;
    mean(&points[points.len() - third..]) > mean(&points[..third])
}

/// The median of the slopes between every pair of samples at distinct times.
fn theil_sen(points: &[Point]) -> f64 {
    let mut slopes = Vec::with_capacity(points.len() * (points.len() - 1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.at != a.at {
                slopes.push((b.used - a.used) / (b.at - a.at));
            }
        }
    }
    median(slopes)
}

/// Kendall's tau-b between time and connections (ties in connections are common: counts are
/// integers).
fn kendall_tau_b(points: &[Point]) -> f64 {
    let (mut concordant, mut discordant, mut tied_used, mut tied_at) = (0i64, 0i64, 0i64, 0i64);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let (dt, du) = (b.at - a.at, b.used - a.used);
            match (dt == 0.0, du == 0.0) {
                (true, true) => {}
                (true, false) => tied_at += 1,
                (false, true) => tied_used += 1,
                (false, false) if (dt > 0.0) == (du > 0.0) => concordant += 1,
                (false, false) => discordant += 1,
            }
        }
    }
    let untied_at = (concordant + discordant + tied_used) as f64;
    let untied_used = (concordant + discordant + tied_at) as f64;
    if untied_at == 0.0 || untied_used == 0.0 {
        return 0.0;
    }
    (concordant - discordant) as f64 / (untied_at * untied_used).sqrt()
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Samples every 2 s for `secs`, the newest at 0, from `used(elapsed seconds)`.
    fn series(secs: u32, used: impl Fn(f64) -> f64) -> Vec<Point> {
        (0..=secs / 2)
            .map(|i| {
                let elapsed = f64::from(i * 2);
                Point {
                    at: elapsed - f64::from(secs),
                    used: used(elapsed),
                }
            })
            .collect()
    }

    /// A deterministic jitter in -1..=1 (no randomness in table tests).
    fn jitter(elapsed: f64) -> f64 {
        [0.0, 1.0, -1.0, 0.0, 1.0, 0.0, -1.0][(elapsed as usize / 2) % 7]
    }

    const USABLE: f64 = 17.0;
    const HORIZON: f64 = 300.0;

    fn predicts(points: &[Point]) -> Option<f64> {
        forecast(points, USABLE)
            .filter(|t| t.predicts_within(HORIZON))
            .and_then(|t| t.eta)
    }

    #[test]
    fn the_forecaster_reads_each_kind_of_series() {
        // (name, series, whether it forecasts exhaustion, and if so the true seconds left)
        let cases: Vec<(&str, Vec<Point>, Option<f64>)> = vec![
            (
                "a ramp of one connection every 6 s from 3",
                series(30, |t| 3.0 + (t / 6.0).floor()),
                Some(6.0 * (17.0 - 8.0)),
            ),
            (
                "a noisy ramp of one connection every 4 s",
                series(40, |t| 2.0 + (t / 4.0).floor() + jitter(t)),
                Some(4.0 * (17.0 - 12.0)),
            ),
            ("flat near the limit", series(180, |_| 15.0), None),
            (
                "flat near the limit with jitter",
                series(180, |t| 15.0 + jitter(t)),
                None,
            ),
            (
                "a step from 5 to 15, then flat",
                series(60, |t| if t < 30.0 { 5.0 } else { 15.0 }),
                None,
            ),
            (
                "a step late in the window",
                series(60, |t| if t < 52.0 { 5.0 } else { 15.0 }),
                None,
            ),
            (
                "a sawtooth: 6 to 14 over 16 s, then back",
                series(180, |t| 6.0 + (t % 18.0 / 2.0).floor()),
                None,
            ),
            (
                "spikes on a flat line",
                series(180, |t| {
                    if (t as u32).is_multiple_of(14) {
                        16.0
                    } else {
                        8.0
                    }
                }),
                None,
            ),
            (
                "a slow leak: one connection every 20 s from 6",
                series(180, |t| 6.0 + (t / 20.0).floor()),
                Some(20.0 * 2.0),
            ),
            (
                "a falling count",
                series(60, |t| 16.0 - (t / 4.0).floor()),
                None,
            ),
        ];
        for (name, points, expected) in cases {
            let got = predicts(&points);
            match (expected, got) {
                (None, None) => {}
                (Some(truth), Some(eta)) => assert!(
                    (eta - truth).abs() <= truth * 0.5 + 6.0,
                    "{name}: forecast {eta:.0} s, truth {truth:.0} s"
                ),
                _ => panic!(
                    "{name}: expected {expected:?}, got {got:?} ({:?})",
                    forecast(&points, USABLE)
                ),
            }
        }
    }

    #[test]
    fn a_fast_ramp_is_seen_within_twenty_seconds_of_starting() {
        // One connection every 6 s from 3 of 17 usable: the server refuses 84 s after the
        // ramp starts. Flat for two minutes before it.
        let before = 120.0;
        let used = |t: f64| {
            if t < before {
                3.0
            } else {
                3.0 + ((t - before) / 6.0).floor()
            }
        };
        let first = (before as u32..before as u32 + 84)
            .step_by(2)
            .find(|&now| predicts(&series(now, used)).is_some())
            .expect("the ramp is forecast before it exhausts the server");
        assert!(
            f64::from(first) - before <= 20.0,
            "first forecast {} s into the ramp",
            f64::from(first) - before
        );
    }

    #[test]
    fn too_few_samples_give_no_trend() {
        assert_eq!(forecast(&series(10, |t| t), USABLE), None);
    }

    proptest! {
        /// A steeper slope never gives a later exhaustion time.
        #[test]
        fn a_steeper_slope_never_forecasts_later(
            noise in proptest::collection::vec(-2.0f64..2.0, 10..90),
            base in 0.0f64..10.0,
            slope in 0.01f64..1.0,
            extra in 0.0f64..1.0,
        ) {
            let n = noise.len();
            let points = |slope: f64| -> Vec<Point> {
                noise.iter().enumerate().map(|(i, e)| {
                    let at = (i as f64 - (n - 1) as f64) * 2.0;
                    Point { at, used: base + slope * (at + 2.0 * (n - 1) as f64) + e }
                }).collect()
            };
            for window in WINDOWS {
                let gentle = fit_window(&points(slope), window, 100.0);
                let steep = fit_window(&points(slope + extra), window, 100.0);
                if let (Some(g), Some(s)) = (gentle, steep) {
                    prop_assert!(s.per_second >= g.per_second - 1e-9);
                    if let (Some(ge), Some(se)) = (g.eta, s.eta) {
                        prop_assert!(se <= ge + 1e-6, "steeper {se} later than {ge}");
                    }
                }
            }
        }
    }
}
