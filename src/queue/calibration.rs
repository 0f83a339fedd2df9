//! Which quantile of the [`Forecast`] a queue's callers are told, learned from how long its
//! answered callers really waited (docs/behaviour.md §4 "Wait estimate").
//!
//! The promise: after rounding up to the spoken phrase, at most 1 % of callers wait longer
//! than they were told. A forecast is only a model (it cannot see the VIP who will arrive
//! and go ahead, or a day busier than the handle times suggest), so each queue keeps its last
//! [`KEPT`] answered callers' forecasts beside their real waits and picks the lowest step of
//! [`Forecast::at`] that would have kept the share of callers waiting past their phrase at
//! or under [`TARGET`] (half the promise, as margin for the days ahead). Until [`WARM`]
//! callers have been seen, the 99 % quantile is told.

use std::collections::VecDeque;
use std::time::Duration;

use super::estimate::WaitBucket;
use super::forecast::{Forecast, STEPS};

/// Answered callers remembered per queue.
pub const KEPT: usize = 500;
/// Answered callers needed before the step is learned rather than the default.
pub const WARM: usize = 200;
/// Largest share of remembered callers that may have waited past their phrase at the
/// chosen step.
pub const TARGET: f64 = 0.005;

/// One answered caller: what was forecast when it was told, and how long it waited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The forecast the caller's estimate came from.
    pub forecast: Forecast,
    /// Its real wait.
    pub waited: Duration,
}

/// One queue's learned step.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    outcomes: VecDeque<Outcome>,
    step: usize,
}

impl Default for Calibration {
    fn default() -> Self {
        Self {
            outcomes: VecDeque::with_capacity(KEPT),
            step: Self::default_step(),
        }
    }
}

impl Calibration {
    /// The step told before [`WARM`] outcomes: the 99.5 % quantile.
    pub fn default_step() -> usize {
        Forecast::step_of(0.995)
    }

    /// The lowest step ever told: the 95 % quantile. Waits come in bursts (one long call
    /// delays everyone behind it), so a few hundred past callers can look better than the
    /// next ones will be; lower quantiles are not trusted however good the record.
    pub fn min_step() -> usize {
        Forecast::step_of(0.95)
    }

    /// The step currently told.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The estimate to tell for `forecast`. The learned quantile decides the phrase (the
    /// promise); within the seconds that phrase covers, the estimate is the one nearest the
    /// median, the most likely wait. So "more than 10 minutes" shows 1 200 s when that is
    /// the median, not the 99th percentile's 3 000 s, and says the same words.
    pub fn estimate(&self, forecast: &Forecast) -> Duration {
        let told = forecast.at(self.step);
        let floor = Duration::from_secs(WaitBucket::from_estimate(told).lower_bound_secs());
        forecast.median().clamp(floor.min(told), told)
    }

    /// Remembers an answered caller and learns the step again.
    pub fn record(&mut self, outcome: Outcome) {
        if self.outcomes.len() == KEPT {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(outcome);
        self.step = self.learn();
    }

    /// The outcomes remembered, oldest first (to persist them).
    pub fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter()
    }

    fn learn(&self) -> usize {
        if self.outcomes.len() < WARM {
            return Self::default_step();
        }
        let allowed = (TARGET * self.outcomes.len() as f64).floor() as usize;
        (Self::min_step()..STEPS)
            .find(|&step| {
                self.outcomes
                    .iter()
                    .filter(|o| waited_past(o.forecast.at(step), o.waited))
                    .count()
                    <= allowed
            })
            .unwrap_or(STEPS - 1)
    }
}

/// Whether a caller told `estimate` (spoken rounded up) waited longer than the phrase says.
pub fn waited_past(estimate: Duration, waited: Duration) -> bool {
    WaitBucket::from_estimate(estimate)
        .upper_bound_secs()
        .is_some_and(|bound| waited.as_secs_f64() > bound as f64)
}
