//! The wait estimate a caller hears, pure (docs/behaviour.md §4 "Wait estimate" and "Spoken wait").
//!
//! This module owns three small rules:
//! - [`HandleTimes`]: the last [`HANDLE_TIME_WINDOW`] completed handle times of one queue
//!   and their mean `H`, falling back to the queue's `default_handle_time` while no call has
//!   completed yet. The wait forecast (`forecast`) draws from them.
//! - [`seed_estimate`]: the naive `p × H` the product started from, kept as the baseline
//!   `holdfast simulate` compares with.
//! - [`WaitBucket`]: the phrase the estimate is spoken as, always rounded *up*: a caller
//!   told "about 4 minutes" must not wait 6.
//!
//! Nothing here knows about audio; the call controller maps a [`WaitBucket`] onto the
//! prompt that says it.

use std::collections::VecDeque;
use std::time::Duration;

/// How many completed handle times the rolling mean keeps (docs/behaviour.md §4).
pub const HANDLE_TIME_WINDOW: usize = 100;

/// The rolling mean of one queue's most recent completed handle times.
///
/// A running sum makes [`HandleTimes::record`] and [`HandleTimes::mean`] O(1); the sum is
/// kept in whole milliseconds (`u64`) so it never drifts the way a floating-point running
/// sum would over millions of calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleTimes {
    /// Most recent last; at most [`HANDLE_TIME_WINDOW`] long. Milliseconds.
    samples: VecDeque<u64>,
    /// Sum of `samples`, in milliseconds.
    sum_ms: u64,
    /// The mean while `samples` is empty.
    default: Duration,
}

impl HandleTimes {
    /// No history yet: [`HandleTimes::mean`] is `default` (the queue's
    /// `default_handle_time`) until the first call completes.
    pub fn new(default: Duration) -> Self {
        Self {
            samples: VecDeque::with_capacity(HANDLE_TIME_WINDOW),
            sum_ms: 0,
            default,
        }
    }

    /// Restores persisted history (oldest first), as saved from [`HandleTimes::samples`];
    /// only the newest [`HANDLE_TIME_WINDOW`] are kept.
    pub fn with_history(default: Duration, history: impl IntoIterator<Item = Duration>) -> Self {
        let mut times = Self::new(default);
        for sample in history {
            times.record(sample);
        }
        times
    }

    /// Adds one completed call's handle time, dropping the oldest beyond the window.
    pub fn record(&mut self, handle_time: Duration) {
        // Saturate instead of overflowing: a handle time of 584 million years is not a
        // real input, but it must not panic either.
        let ms = u64::try_from(handle_time.as_millis())
            .unwrap_or(u64::MAX)
            .min(u64::MAX / 1024);
        if self.samples.len() == HANDLE_TIME_WINDOW
            && let Some(oldest) = self.samples.pop_front()
        {
            self.sum_ms -= oldest;
        }
        self.samples.push_back(ms);
        self.sum_ms += ms;
    }

    /// `H`: the mean of the recorded handle times, or the default while there are none.
    pub fn mean(&self) -> Duration {
        match self.samples.len() as u64 {
            0 => self.default,
            n => Duration::from_millis(self.sum_ms.div_ceil(n)),
        }
    }

    /// The mean assumed before any call completed (the queue's `default_handle_time`).
    pub fn default_mean(&self) -> Duration {
        self.default
    }

    /// How many handle times the mean is currently based on (0 to [`HANDLE_TIME_WINDOW`]).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True while no call has completed (the mean is the default).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The recorded handle times, oldest first, for the store to persist.
    pub fn samples(&self) -> impl Iterator<Item = Duration> + '_ {
        self.samples.iter().map(|&ms| Duration::from_millis(ms))
    }
}

/// The naive estimate, `p × H` (position times mean handle time), kept as the baseline
/// `holdfast simulate` compares against.
pub fn seed_estimate(position: usize, mean: Duration) -> Duration {
    mean.saturating_mul(u32::try_from(position.max(1)).unwrap_or(u32::MAX))
}

/// How a wait estimate is spoken (docs/behaviour.md §4 "Spoken wait, rounded UP, never down").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitBucket {
    /// Under 60 s: "less than a minute".
    LessThanAMinute,
    /// `ceil(s / 60)` is 1 to 4: "about m minute(s)"; the value is m.
    About(u8),
    /// `ceil(s / 60)` is 5 to 9: "5 to 10 minutes".
    FiveToTen,
    /// `ceil(s / 60)` is 10 or more: "more than 10 minutes".
    MoreThanTen,
}

impl WaitBucket {
    /// The bucket for an estimate, with minutes rounded up: 61 s is "about 2 minutes".
    pub fn from_estimate(wait: Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if seconds < 60 {
            return Self::LessThanAMinute;
        }
        match seconds.div_ceil(60) {
            m @ 1..=4 => Self::About(m as u8),
            5..=9 => Self::FiveToTen,
            _ => Self::MoreThanTen,
        }
    }

    /// The shortest estimate, in whole seconds, spoken as this phrase.
    pub fn lower_bound_secs(self) -> u64 {
        match self {
            Self::LessThanAMinute => 0,
            Self::About(1) => 60,
            Self::About(m) => (u64::from(m) - 1) * 60 + 1,
            Self::FiveToTen => 241,
            Self::MoreThanTen => 541,
        }
    }

    /// The longest wait, in seconds, this phrase promises; `None` for "more than 10
    /// minutes", which promises no upper bound. A caller who waited longer than this was
    /// under-promised.
    pub fn upper_bound_secs(self) -> Option<u64> {
        match self {
            Self::LessThanAMinute => Some(59),
            Self::About(m) => Some(u64::from(m) * 60),
            Self::FiveToTen => Some(600),
            Self::MoreThanTen => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn buckets_round_up_at_the_boundaries() {
        let cases = [
            (0, WaitBucket::LessThanAMinute),
            (59, WaitBucket::LessThanAMinute),
            (60, WaitBucket::About(1)),
            (61, WaitBucket::About(2)),
            (120, WaitBucket::About(2)),
            (240, WaitBucket::About(4)),
            (241, WaitBucket::FiveToTen),
            (299, WaitBucket::FiveToTen),
            (300, WaitBucket::FiveToTen),
            (540, WaitBucket::FiveToTen),
            (541, WaitBucket::MoreThanTen),
            (599, WaitBucket::MoreThanTen),
            (600, WaitBucket::MoreThanTen),
            (86_400, WaitBucket::MoreThanTen),
        ];
        for (secs, bucket) in cases {
            assert_eq!(WaitBucket::from_estimate(S(secs)), bucket, "{secs} s");
        }
        // A fraction of a second over a boundary rounds up too.
        assert_eq!(
            WaitBucket::from_estimate(Duration::from_millis(59_001)),
            WaitBucket::About(1)
        );
        assert_eq!(
            WaitBucket::from_estimate(Duration::from_millis(60_001)),
            WaitBucket::About(2)
        );
    }

    #[test]
    fn lower_bounds_are_the_first_second_of_each_phrase() {
        for secs in 0..=700u64 {
            let bucket = WaitBucket::from_estimate(S(secs));
            assert!(bucket.lower_bound_secs() <= secs, "{secs}");
            assert_eq!(
                WaitBucket::from_estimate(S(bucket.lower_bound_secs())),
                bucket
            );
        }
    }

    #[test]
    fn spoken_bound_is_never_below_the_estimate() {
        for secs in 0..=600 {
            let bucket = WaitBucket::from_estimate(S(secs));
            if let Some(bound) = bucket.upper_bound_secs() {
                assert!(bound >= secs, "{secs} s spoken as {bucket:?}");
            }
        }
    }

    #[test]
    fn mean_is_the_default_without_samples() {
        let times = HandleTimes::new(S(300));
        assert!(times.is_empty());
        assert_eq!(times.mean(), S(300));
    }

    #[test]
    fn one_sample_replaces_the_default() {
        let mut times = HandleTimes::new(S(300));
        times.record(S(90));
        assert_eq!(times.len(), 1);
        assert_eq!(times.mean(), S(90));
    }

    #[test]
    fn hundred_samples_average_exactly() {
        let mut times = HandleTimes::new(S(300));
        for i in 1..=100 {
            times.record(S(i));
        }
        assert_eq!(times.len(), 100);
        assert_eq!(times.mean(), Duration::from_millis(50_500));
    }

    #[test]
    fn only_the_last_hundred_count() {
        let mut times = HandleTimes::new(S(300));
        for i in 1..=150 {
            times.record(S(i));
        }
        assert_eq!(times.len(), 100);
        // Samples 51..=150 remain: mean 100.5 s.
        assert_eq!(times.mean(), Duration::from_millis(100_500));
        let kept: Vec<_> = times.samples().collect();
        assert_eq!(kept.first(), Some(&S(51)));
        assert_eq!(kept.last(), Some(&S(150)));
        // Restoring the persisted history gives the same mean.
        let restored = HandleTimes::with_history(S(300), kept);
        assert_eq!(restored, times);
    }

    #[test]
    fn absurd_inputs_saturate_instead_of_panicking() {
        let mut times = HandleTimes::new(S(1));
        times.record(Duration::MAX);
        times.record(Duration::MAX);
        assert!(times.mean() > S(1));
        assert_eq!(seed_estimate(usize::MAX, Duration::MAX), Duration::MAX);
    }
}
