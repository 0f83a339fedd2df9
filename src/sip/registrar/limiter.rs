//! Limit on failed REGISTER authentications (docs/behaviour.md §9), so a password guesser gets
//! a handful of tries per window instead of thousands per second, while the office behind the
//! same address keeps registering.
//!
//! Failures are counted per key: the caller chooses it (holdfast uses the source address
//! with the user name tried, and the source address alone for user names that do not exist:
//! [`AuthKey`]). Fixed windows: a key's first failure opens a window of `window`; once it has
//! `max_failures` failures in that window it is blocked until the window ends. Memory is
//! bounded: at most `capacity` keys are tracked; when full, windows that have ended are
//! dropped first, then the oldest window. Sources can be spoofed over UDP, so a flood of
//! fake addresses can push a real offender out early; the cap protects memory, which
//! matters more than a perfect memory of offenders.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Keys tracked by [`FailureLimiter::new`].
const DEFAULT_CAPACITY: usize = 10_000;

/// What holdfast counts failures by: the source address and the user name tried, or `None`
/// for every user name that is not configured (so a guesser cannot spread over made-up names,
/// and guesses at one agent never block another agent behind the same address).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AuthKey {
    /// Source address of the REGISTER.
    pub source: IpAddr,
    /// The configured user the credentials named; `None` for unknown users.
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// A key that is blocked right now, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<K> {
    /// The key.
    pub key: K,
    /// Failures counted in its window.
    pub failures: u32,
    /// When the block ends.
    pub until: Instant,
}

/// Counts authentication failures per key. Sans-IO: fed `now`.
#[derive(Debug)]
pub struct FailureLimiter<K = AuthKey> {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    keys: HashMap<K, Window>,
    /// `(window start, key)` for every tracked key, oldest first, for eviction.
    by_start: BTreeSet<(Instant, K)>,
}

impl<K: Clone + Eq + Hash + Ord + std::fmt::Debug> FailureLimiter<K> {
    /// Blocks a key after `max_failures` failures within `window` (at least 1 failure),
    /// tracking up to 10 000 keys.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self::with_capacity(max_failures, window, DEFAULT_CAPACITY)
    }

    /// Like [`Self::new`] but tracking at most `capacity` keys (at least 1).
    pub fn with_capacity(max_failures: u32, window: Duration, capacity: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            capacity: capacity.max(1),
            keys: HashMap::new(),
            by_start: BTreeSet::new(),
        }
    }

    fn is_open(&self, window: &Window, now: Instant) -> bool {
        now.saturating_duration_since(window.start) < self.window
    }

    /// Counts one failed authentication for `key`.
    pub fn record_failure(&mut self, now: Instant, key: K) {
        if let Some(window) = self.keys.get(&key).copied() {
            if self.is_open(&window, now) {
                let entry = self.keys.get_mut(&key).expect("just read");
                entry.failures = entry.failures.saturating_add(1);
                return;
            }
            self.by_start.remove(&(window.start, key.clone()));
            self.keys.remove(&key);
        }
        self.make_room(now);
        self.keys.insert(
            key.clone(),
            Window {
                start: now,
                failures: 1,
            },
        );
        self.by_start.insert((now, key));
    }

    /// Drops ended windows, then the oldest open ones, until one more key fits.
    fn make_room(&mut self, now: Instant) {
        while self.keys.len() >= self.capacity {
            let Some((start, key)) = self.by_start.pop_first() else {
                break;
            };
            self.keys.remove(&key);
            if now.saturating_duration_since(start) < self.window {
                // The oldest window is still open: evicting it was the last resort.
                tracing::debug!(?key, "failure limiter full: forgot an open window");
            }
        }
    }

    /// Whether requests for `key` should be refused without checking credentials.
    pub fn is_blocked(&self, now: Instant, key: &K) -> bool {
        self.keys
            .get(key)
            .is_some_and(|w| self.is_open(w, now) && w.failures >= self.max_failures)
    }

    /// The keys blocked at `now`, oldest window first.
    pub fn blocks(&self, now: Instant) -> Vec<Block<K>> {
        self.by_start
            .iter()
            .filter(|(_, key)| self.is_blocked(now, key))
            .map(|(start, key)| Block {
                key: key.clone(),
                failures: self.keys[key].failures,
                until: *start + self.window,
            })
            .collect()
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn blocks_after_max_failures_until_the_window_ends() {
        let t0 = Instant::now();
        let mut limiter = FailureLimiter::<IpAddr>::new(3, Duration::from_secs(60));
        for i in 0..2 {
            limiter.record_failure(t0 + Duration::from_secs(i), ip(1));
            assert!(!limiter.is_blocked(t0 + Duration::from_secs(i), &ip(1)));
        }
        limiter.record_failure(t0 + Duration::from_secs(2), ip(1));
        assert!(limiter.is_blocked(t0 + Duration::from_secs(2), &ip(1)));
        assert!(limiter.is_blocked(t0 + Duration::from_secs(59), &ip(1)));
        assert!(!limiter.is_blocked(t0 + Duration::from_secs(2), &ip(2)));
        assert!(!limiter.is_blocked(t0 + Duration::from_secs(60), &ip(1)));
        // A new window starts from scratch.
        limiter.record_failure(t0 + Duration::from_secs(61), ip(1));
        assert!(!limiter.is_blocked(t0 + Duration::from_secs(61), &ip(1)));
    }

    #[test]
    fn memory_is_capped_dropping_ended_windows_first() {
        let t0 = Instant::now();
        let window = Duration::from_secs(10);
        let mut limiter = FailureLimiter::<IpAddr>::with_capacity(1, window, 3);
        limiter.record_failure(t0, ip(1));
        limiter.record_failure(t0 + Duration::from_secs(5), ip(2));
        limiter.record_failure(t0 + Duration::from_secs(6), ip(3));
        // ip(1)'s window has ended: it goes, the others stay blocked.
        let t = t0 + Duration::from_secs(11);
        limiter.record_failure(t, ip(4));
        assert_eq!(limiter.len(), 3);
        assert!(limiter.is_blocked(t, &ip(2)) && limiter.is_blocked(t, &ip(3)));
        assert!(limiter.is_blocked(t, &ip(4)));
        // All open: the oldest open window is forgotten.
        limiter.record_failure(t, ip(5));
        assert_eq!(limiter.len(), 3);
        assert!(!limiter.is_blocked(t, &ip(2)));
        assert!(limiter.is_blocked(t, &ip(3)) && limiter.is_blocked(t, &ip(5)));
        for i in 0..100 {
            limiter.record_failure(t, ip(10 + i));
        }
        assert_eq!(limiter.len(), 3);
    }
}
