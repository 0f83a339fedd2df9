//! Per-source limit on failed REGISTER authentications (docs/behaviour.md §9), so a password guesser
//! gets a handful of tries per window instead of thousands per second.
//!
//! Fixed windows: a source's first failure opens a window of `window`; once it has
//! `max_failures` failures in that window it is blocked until the window ends. Memory is
//! bounded: at most `capacity` sources are tracked; when full, windows that have ended are
//! dropped first, then the oldest window. Sources can be spoofed over UDP, so a flood of
//! fake addresses can push a real offender out early; the cap protects memory, which
//! matters more than a perfect memory of offenders.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources tracked by [`FailureLimiter::new`].
const DEFAULT_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

/// Counts authentication failures per source address. Sans-IO: fed `now`.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    sources: HashMap<IpAddr, Window>,
    /// `(window start, source)` for every tracked source, oldest first, for eviction.
    by_start: BTreeSet<(Instant, IpAddr)>,
}

impl FailureLimiter {
    /// Blocks a source after `max_failures` failures within `window` (at least 1 failure),
    /// tracking up to 10 000 sources.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self::with_capacity(max_failures, window, DEFAULT_CAPACITY)
    }

    /// Like [`Self::new`] but tracking at most `capacity` sources (at least 1).
    pub fn with_capacity(max_failures: u32, window: Duration, capacity: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            capacity: capacity.max(1),
            sources: HashMap::new(),
            by_start: BTreeSet::new(),
        }
    }

    fn is_open(&self, window: &Window, now: Instant) -> bool {
        now.saturating_duration_since(window.start) < self.window
    }

    /// Counts one failed authentication from `source`.
    pub fn record_failure(&mut self, now: Instant, source: IpAddr) {
        if let Some(window) = self.sources.get(&source).copied() {
            if self.is_open(&window, now) {
                let entry = self.sources.get_mut(&source).expect("just read");
                entry.failures = entry.failures.saturating_add(1);
                return;
            }
            self.by_start.remove(&(window.start, source));
            self.sources.remove(&source);
        }
        self.make_room(now);
        self.sources.insert(
            source,
            Window {
                start: now,
                failures: 1,
            },
        );
        self.by_start.insert((now, source));
    }

    /// Drops ended windows, then the oldest open ones, until one more source fits.
    fn make_room(&mut self, now: Instant) {
        while self.sources.len() >= self.capacity {
            let Some((start, source)) = self.by_start.pop_first() else {
                break;
            };
            self.sources.remove(&source);
            if now.saturating_duration_since(start) < self.window {
                // The oldest window is still open: evicting it was the last resort.
                tracing::debug!(%source, "failure limiter full: forgot an open window");
            }
        }
    }

    /// Whether REGISTERs from `source` should be refused without checking credentials.
    pub fn is_blocked(&self, now: Instant, source: IpAddr) -> bool {
        self.sources
            .get(&source)
            .is_some_and(|w| self.is_open(w, now) && w.failures >= self.max_failures)
    }

    /// Number of sources tracked.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
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
        let mut limiter = FailureLimiter::new(3, Duration::from_secs(60));
        for i in 0..2 {
            limiter.record_failure(t0 + Duration::from_secs(i), ip(1));
            assert!(!limiter.is_blocked(t0 + Duration::from_secs(i), ip(1)));
        }
        limiter.record_failure(t0 + Duration::from_secs(2), ip(1));
        assert!(limiter.is_blocked(t0 + Duration::from_secs(2), ip(1)));
        assert!(limiter.is_blocked(t0 + Duration::from_secs(59), ip(1)));
        assert!(!limiter.is_blocked(t0 + Duration::from_secs(2), ip(2)));
        assert!(!limiter.is_blocked(t0 + Duration::from_secs(60), ip(1)));
        // A new window starts from scratch.
        limiter.record_failure(t0 + Duration::from_secs(61), ip(1));
        assert!(!limiter.is_blocked(t0 + Duration::from_secs(61), ip(1)));
    }

    #[test]
    fn memory_is_capped_dropping_ended_windows_first() {
        let t0 = Instant::now();
        let window = Duration::from_secs(10);
        let mut limiter = FailureLimiter::with_capacity(1, window, 3);
        limiter.record_failure(t0, ip(1));
        limiter.record_failure(t0 + Duration::from_secs(5), ip(2));
        limiter.record_failure(t0 + Duration::from_secs(6), ip(3));
        // ip(1)'s window has ended: it goes, the others stay blocked.
        let t = t0 + Duration::from_secs(11);
        limiter.record_failure(t, ip(4));
        assert_eq!(limiter.len(), 3);
        assert!(limiter.is_blocked(t, ip(2)) && limiter.is_blocked(t, ip(3)));
        assert!(limiter.is_blocked(t, ip(4)));
        // All open: the oldest open window is forgotten.
        limiter.record_failure(t, ip(5));
        assert_eq!(limiter.len(), 3);
        assert!(!limiter.is_blocked(t, ip(2)));
        assert!(limiter.is_blocked(t, ip(3)) && limiter.is_blocked(t, ip(5)));
        for i in 0..100 {
            limiter.record_failure(t, ip(10 + i));
        }
        assert_eq!(limiter.len(), 3);
    }
}
