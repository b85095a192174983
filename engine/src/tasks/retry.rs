//! Exponential backoff with full jitter: the policy and the delay it gives each retry.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter for retryable task failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`RETRY_MAX`).
    pub max_retries: u32,
    /// Delay before the first retry, before jitter (`RETRY_BASE_DELAY`).
    pub base_delay: Duration,
    /// Each retry's delay is the previous one times this factor (`RETRY_FACTOR`).
    pub factor: u32,
    /// No delay exceeds this (`RETRY_MAX_DELAY`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_secs(1),
            factor: 2,
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The most the `retry`-th retry (1-based) may wait: `base × factor^(retry−1)`, capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let growth = self
            .factor
            .checked_pow(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(growth)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }

    /// How long to wait before the `retry`-th retry: uniform in `[0, ceiling]` ("full jitter"),
    /// so instances that failed together do not retry together.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.random_range(0..=micros))
    }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_secs(1),
            factor: 2,
            max_delay: Duration::from_secs(60),
        }
    }

    #[test]
    fn ceilings_grow_by_the_factor_up_to_the_cap() {
        let p = policy();
        let secs: Vec<u64> = (1..=8).map(|r| p.ceiling(r).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.ceiling(1000), Duration::from_secs(60), "no overflow");
    }

    #[test]
    fn delays_stay_within_zero_and_the_ceiling_and_use_the_whole_range() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 1..=4 {
            let ceiling = p.ceiling(retry);
            let delays: Vec<Duration> = (0..2000).map(|_| p.delay(retry, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling));
            assert!(
                delays.iter().any(|d| *d < ceiling / 4),
                "jitter reaches low"
            );
            assert!(
                delays.iter().any(|d| *d > ceiling * 3 / 4),
                "jitter reaches high"
            );
        }
    }
}
