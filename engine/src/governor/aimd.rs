//! Additive increase, multiplicative decrease: how many leases one instance hands out, within
//! its share of the budget, adapting to what its own acquires show.
//!
//! AIMD rather than Gradient2: the signals here are few and coarse (a handful of tasks, a
//! window per second), and the failure to avoid is a hard one (the server refusing a
//! connection), so the rule that halves at once on trouble and probes upwards one lease at a
//! time is the one whose behaviour can be stated and tested exactly. Gradient2 tracks a
//! latency gradient that a few acquires a second do not give reliably.

use std::time::Duration;

/// What one window of acquires showed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Acquires that had to queue because every allowed lease was held: demand above the limit.
    pub queued: u32,
    /// Acquires the pool could not serve in time or the server refused (SQLSTATE 53300).
    pub troubles: u32,
    /// The longest an acquire waited on the pool itself (after being let through), if any
    /// acquire finished.
    pub slowest_pool_wait: Option<Duration>,
}

/// What the governor did at the end of a window, or when its share changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// One more lease allowed.
    Grew,
    /// Fewer leases allowed.
    Shrank,
    /// No change.
    Held,
}

/// The limit on leases one instance hands out.
#[derive(Debug, Clone)]
pub struct Aimd {
    limit: u32,
    /// A pool wait at least this long stops growth: the server is slow to give connections.
    slow_wait: Duration,
    /// Backed off in this window already: a burst of failures halves once, not once each.
    backed_off: bool,
}

impl Aimd {
    /// Starts at `start` (at least 1); while pool waits reach `slow_wait` it does not grow.
    pub fn new(start: u32, slow_wait: Duration) -> Self {
        Self {
            limit: start.max(1),
            slow_wait,
            backed_off: false,
        }
    }

    /// How many leases may be held now.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The share changed: the limit follows it down at once, and never leaves `[1, share]`.
    pub fn cap(&mut self, share: u32) -> Change {
        let capped = self.limit.min(share).max(1);
        let change = if capped < self.limit {
            Change::Shrank
        } else {
            Change::Held
        };
        self.limit = capped;
        change
    }

    /// A refusal or a pool timeout: halve at once (once per window).
    pub fn back_off(&mut self) -> Change {
        if self.backed_off || self.limit == 1 {
            return Change::Held;
        }
        self.backed_off = true;
        self.limit = (self.limit / 2).max(1);
        Change::Shrank
    }

    /// The end of a window: back off on trouble, grow by one when acquires queued at the limit
    /// and the pool answered quickly, otherwise hold. A slow pool is not trouble by itself (a
    /// busy machine makes waits long without the server refusing anything), but it is no
    /// reason to take more either. Never leaves `[1, share]`.
    pub fn on_window(&mut self, window: &Window, share: u32) -> Change {
        let slow = window
            .slowest_pool_wait
            .is_some_and(|waited| waited >= self.slow_wait);
        let change = if window.troubles > 0 {
            self.back_off()
        } else if window.queued > 0 && !slow && self.limit < share {
            self.limit += 1;
            Change::Grew
        } else {
            Change::Held
        };
        self.backed_off = false;
        match self.cap(share) {
            Change::Shrank => Change::Shrank,
            _ => change,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOW: Duration = Duration::from_millis(500);

    /// A steady load of `demand` leases wanted at once: acquires queue while the limit is
    /// below it.
    fn steady(limit: u32, demand: u32) -> Window {
        Window {
            queued: demand.saturating_sub(limit),
            troubles: 0,
            slowest_pool_wait: Some(Duration::from_millis(3)),
        }
    }

    #[test]
    fn a_steady_load_is_met_within_as_many_windows_as_it_needs_leases_and_then_held() {
        for demand in 1..=30 {
            let mut aimd = Aimd::new(1, SLOW);
            let mut met_at = None;
            for window in 0..60 {
                aimd.on_window(&steady(aimd.limit(), demand), 40);
                if met_at.is_none() && aimd.limit() >= demand {
                    met_at = Some(window + 1);
                }
            }
            let met_at = met_at.expect("met");
            assert!(met_at <= 30, "demand {demand} met after {met_at} windows");
            assert_eq!(aimd.limit(), demand.max(1), "held at the demand, not above");
        }
    }

    #[test]
    fn a_flat_load_never_moves_the_limit() {
        let mut aimd = Aimd::new(4, SLOW);
        for _ in 0..1000 {
            assert_eq!(aimd.on_window(&steady(4, 3), 10), Change::Held);
        }
        assert_eq!(aimd.limit(), 4);
    }

    #[test]
    fn trouble_halves_at_once_and_once_per_window() {
        let mut aimd = Aimd::new(8, SLOW);
        assert_eq!(aimd.back_off(), Change::Shrank);
        assert_eq!(aimd.limit(), 4, "at the refusal, not at the window's end");
        assert_eq!(aimd.back_off(), Change::Held, "a burst halves once");
        aimd.on_window(
            &Window {
                troubles: 3,
                ..Window::default()
            },
            10,
        );
        assert_eq!(aimd.limit(), 4);
        aimd.on_window(
            &Window {
                troubles: 1,
                ..Window::default()
            },
            10,
        );
        assert_eq!(aimd.limit(), 2, "a new window, new trouble");
        let slow = Window {
            queued: 5,
            troubles: 0,
            slowest_pool_wait: Some(SLOW),
        };
        assert_eq!(aimd.on_window(&slow, 10), Change::Held, "slow: no growth");
        assert_eq!(aimd.limit(), 2);
        aimd.back_off();
        assert_eq!(aimd.limit(), 1);
        assert_eq!(aimd.back_off(), Change::Held, "never below one");
    }

    #[test]
    fn the_limit_follows_the_share_down_at_once_and_never_leaves_one_to_share() {
        let mut aimd = Aimd::new(10, SLOW);
        assert_eq!(aimd.cap(3), Change::Shrank);
        assert_eq!(aimd.limit(), 3);
        assert_eq!(aimd.cap(0), Change::Shrank);
        assert_eq!(aimd.limit(), 1);
        // Random signals and shares: always within bounds.
        let mut seed = 0x2545_f491_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..10_000 {
            let share = (next() % 12) as u32 + 1;
            let window = Window {
                queued: (next() % 4) as u32,
                troubles: u32::from(next() % 5 == 0),
                slowest_pool_wait: Some(Duration::from_millis(next() % 700)),
            };
            if next() % 7 == 0 {
                aimd.back_off();
            }
            aimd.on_window(&window, share);
            assert!(
                (1..=share).contains(&aimd.limit()),
                "{aimd:?} share {share}"
            );
        }
    }
}
