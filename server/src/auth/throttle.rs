//! Brute-force limit on tokens: a client (an IPv4 address, or an IPv6 /64) that sends
//! [`MAX_FAILURES`] wrong tokens within [`WINDOW`] is locked out for [`LOCKOUT`]. While locked
//! out, every attempt from it gets 429, a correct token too: otherwise the answer to a guess
//! would still tell right from wrong. Other clients are not affected.
//!
//! Rate-limiting crates count every request (GCRA); this needs to count failures only and to
//! ask "is this client locked?" without spending anything, hence this small table.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use parking_lot::{Mutex, MutexGuard};

/// Wrong tokens accepted from one client within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a client that exceeded the limit is refused.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Clients tracked at most; past this the stalest entry is dropped.
const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Strikes {
    first: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// The failure table.
#[derive(Default)]
pub struct Throttle {
    clients: Mutex<HashMap<IpAddr, Strikes>>,
}

impl Throttle {
    /// How long `client` must still wait, if it is locked out.
    pub fn locked(&self, client: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let clients = self.clients();
        let until = clients.get(&key(client))?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a wrong token from `client`; returns the lockout if this failure started one.
    pub fn failed(&self, client: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut clients = self.clients();
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key(client)) {
            clients
                .retain(|_, s| s.locked_until.is_some_and(|t| t > now) || s.first + WINDOW > now);
            if clients.len() >= MAX_CLIENTS
                && let Some(stalest) = clients.iter().min_by_key(|(_, s)| s.first).map(|(k, _)| *k)
            {
                clients.remove(&stalest);
            }
        }
        let strikes = clients.entry(key(client)).or_insert(Strikes {
            first: now,
            failures: 0,
            locked_until: None,
        });
        if strikes.first + WINDOW <= now || strikes.locked_until.is_some_and(|t| t <= now) {
            *strikes = Strikes {
                first: now,
                failures: 0,
                locked_until: None,
            };
        }
        strikes.failures += 1;
        if strikes.failures > MAX_FAILURES {
            strikes.locked_until = Some(now + LOCKOUT);
            return Some(LOCKOUT);
        }
        None
    }

    fn clients(&self) -> MutexGuard<'_, HashMap<IpAddr, Strikes>> {
        self.clients.lock()
    }
}

/// IPv6 clients are counted per /64: one host usually holds a whole /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_a_client_after_too_many_failures_and_only_that_client() {
        let throttle = Throttle::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..MAX_FAILURES {
            assert_eq!(throttle.failed(a), None);
            assert_eq!(throttle.locked(a), None);
        }
        assert_eq!(throttle.failed(a), Some(LOCKOUT));
        assert!(throttle.locked(a).is_some_and(|left| left <= LOCKOUT));
        assert_eq!(throttle.locked(b), None, "another client is not locked");
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let throttle = Throttle::default();
        for i in 0..=MAX_FAILURES {
            throttle.failed(format!("2001:db8::{i}").parse().unwrap());
        }
        assert!(throttle.locked("2001:db8::ffff".parse().unwrap()).is_some());
        assert!(
            throttle
                .locked("2001:db8:0:1::1".parse().unwrap())
                .is_none()
        );
    }
}
