//! A brake on guessing client credentials: failed client authentications are counted per
//! (client, source address) over a sliding window, and past the limit that pair is refused with
//! 429 until the oldest failure leaves the window. Keying on the address means guesses from one
//! place do not lock the client out everywhere; the client's own requests from that same address
//! are refused too while it lasts, as kite has no notion of a familiar location to tell them apart.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use uuid::Uuid;

/// Failures allowed per (client, address) within `WINDOW`.
const LIMIT: usize = 10;
const WINDOW: Duration = Duration::from_secs(60);
/// Pairs tracked at once; past it, pairs with no failure in the window go first, then the stalest.
const MAX_TRACKED: usize = 10_000;

type Key = (Uuid, IpAddr);

#[derive(Default)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
        times.pop_front();
    }
}

impl AuthThrottle {
    /// `Err(wait)` while the pair is over its limit: how long until it may try again.
    pub fn check(&self, client: Uuid, source: IpAddr) -> Result<(), Duration> {
        self.check_at(client, source, Instant::now())
    }

    fn check_at(&self, client: Uuid, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock();
        let Some(times) = map.get_mut(&(client, source)) else {
            return Ok(());
        };
        prune(times, now);
        match times.front() {
            Some(oldest) if times.len() >= LIMIT => Err(WINDOW.saturating_sub(now.duration_since(*oldest))),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication; logs when it is the one that reaches the limit.
    pub fn failed(&self, client: Uuid, source: IpAddr) {
        self.failed_at(client, source, Instant::now());
    }

    fn failed_at(&self, client: Uuid, source: IpAddr, now: Instant) {
        let mut map = self.failures.lock();
        if map.len() >= MAX_TRACKED && !map.contains_key(&(client, source)) {
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
            if map.len() >= MAX_TRACKED {
                if let Some(stalest) = map.iter().min_by_key(|(_, times)| times.back().copied()).map(|(k, _)| *k) {
                    map.remove(&stalest);
                }
            }
        }
        let times = map.entry((client, source)).or_default();
        prune(times, now);
        times.push_back(now);
        if times.len() > LIMIT {
            times.pop_front();
        } else if times.len() == LIMIT {
            tracing::warn!(%client, %source, failures = LIMIT, window_secs = WINDOW.as_secs(), "client authentication throttled: too many failures from this address");
        }
    }

    /// A success forgets the pair's failures.
    pub fn succeeded(&self, client: Uuid, source: IpAddr) {
        self.failures.lock().remove(&(client, source));
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_refused_after_the_limit_until_its_oldest_failure_leaves_the_window() {
        let throttle = AuthThrottle::default();
        let (client, other) = (Uuid::new_v4(), Uuid::new_v4());
        let (here, there): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for i in 0..LIMIT {
            assert!(throttle.check_at(client, here, start).is_ok(), "refused after {i} failures");
            throttle.failed_at(client, here, start + Duration::from_secs(i as u64));
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(throttle.check_at(client, here, later), Err(Duration::from_secs(40)));
        assert!(throttle.check_at(client, there, later).is_ok(), "another address is not throttled");
        assert!(throttle.check_at(other, here, later).is_ok(), "another client is not throttled");
        assert!(throttle.check_at(client, here, start + WINDOW).is_ok(), "the oldest failure left the window");
        throttle.succeeded(client, here);
        assert_eq!(throttle.tracked(), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let throttle = AuthThrottle::default();
        let now = Instant::now();
        let source: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..MAX_TRACKED + 50 {
            throttle.failed_at(Uuid::new_v4(), source, now);
        }
        assert_eq!(throttle.tracked(), MAX_TRACKED);
    }
}
