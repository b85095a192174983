//! A lock-free latency histogram with fixed buckets, readable as Prometheus buckets and as
//! quantiles. Recording is two relaxed atomic adds, so it can sit on the acquire path.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// Upper bounds of the buckets in seconds: 1-2-5 steps from 100 µs to 60 s. One more bucket
/// (+Inf) holds anything slower.
pub const BOUNDS_SECS: [f64; 19] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    10.0, 20.0, 30.0, 60.0,
];

const BUCKETS: usize = BOUNDS_SECS.len() + 1;

/// Counts of observed durations per bucket, since start.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn record(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = BOUNDS_SECS.partition_point(|bound| *bound < secs);
        self.counts[bucket].fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    /// The counts now. Point-in-time per bucket: a concurrent `record` may be half-seen.
    pub(crate) fn read(&self) -> HistogramReading {
        HistogramReading {
            counts: std::array::from_fn(|i| self.counts[i].load(Relaxed)),
            sum_micros: self.sum_micros.load(Relaxed),
        }
    }
}

/// A copy of a histogram's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HistogramReading {
    /// Observations per bucket (not cumulative); the last is the +Inf bucket.
    pub counts: [u64; BUCKETS],
    /// Sum of all observations, in microseconds.
    pub sum_micros: u64,
}

impl HistogramReading {
    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The observations made after `earlier` was read (for a window).
    pub fn since(&self, earlier: &HistogramReading) -> HistogramReading {
        HistogramReading {
            counts: std::array::from_fn(|i| self.counts[i].saturating_sub(earlier.counts[i])),
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }

    /// The `q`-quantile (0 ≤ q ≤ 1), interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does; `None` without observations. Past the last bound it answers
    /// the last bound.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, count) in self.counts.iter().copied().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(upper) = BOUNDS_SECS.get(i).copied() else {
                    return Some(Duration::from_secs_f64(BOUNDS_SECS[BOUNDS_SECS.len() - 1]));
                };
                let lower = if i == 0 { 0.0 } else { BOUNDS_SECS[i - 1] };
                let fraction = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
                return Some(Duration::from_secs_f64(lower + (upper - lower) * fraction));
            }
            below += count;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn observations_land_in_the_bucket_whose_bound_covers_them() {
        let h = Histogram::default();
        h.record(Duration::from_micros(100)); // exactly on the first bound
        h.record(ms(3)); // (2 ms, 5 ms]
        h.record(Duration::from_secs(90)); // +Inf
        let r = h.read();
        assert_eq!(r.counts[0], 1);
        assert_eq!(r.counts[5], 1);
        assert_eq!(r.counts[BUCKETS - 1], 1);
        assert_eq!(r.count(), 3);
        assert_eq!(r.sum_micros, 100 + 3_000 + 90_000_000);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let h = Histogram::default();
        assert_eq!(h.read().quantile(0.5), None);
        for _ in 0..100 {
            h.record(ms(15)); // all in (10 ms, 20 ms]
        }
        let r = h.read();
        let p50 = r.quantile(0.5).unwrap();
        assert!((p50.as_secs_f64() - 0.015).abs() < 1e-9, "{p50:?}");
        assert_eq!(r.quantile(1.0).unwrap(), ms(20));
        let slow = Histogram::default();
        slow.record(Duration::from_secs(100));
        assert_eq!(slow.read().quantile(0.99).unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn windows_subtract_earlier_counts() {
        let h = Histogram::default();
        h.record(ms(1));
        let before = h.read();
        h.record(ms(300));
        h.record(ms(300));
        let window = h.read().since(&before);
        assert_eq!(window.count(), 2);
        assert!(window.quantile(0.5).unwrap() > ms(200));
    }
}
