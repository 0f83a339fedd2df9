//! The wait forecast behind the estimate a caller hears (docs/behaviour.md §4 "Wait estimate"):
//! not one number but the spread of the caller's wait, from what holdfast knows at that
//! moment, so the spoken phrase can be a high quantile of it that the caller will almost
//! never exceed.
//!
//! # The model
//! The caller at position `p` is answered by the agent that frees up after the `p − 1`
//! callers ahead have each taken one (or hung up first). So the forecast replays the next
//! `p` agent hand-overs, many times, with what is known now:
//! - **each staffed agent's next free moment**: now for an idle one, the rest of its wrap-up
//!   for one resting, and for one on a call the *remaining* handle time given how long the
//!   call has already run: drawn from the recent handle times longer than that elapsed
//!   time, minus it (a call 200 s in is not a fresh call);
//! - **handle times** drawn from the queue's recent ones (their whole spread, not just their
//!   mean), blended with an exponential around `default_handle_time` while there are fewer
//!   than [`PRIOR_SAMPLES`]: the first calls to complete are the short ones, so a handful of
//!   samples says the calls are shorter than they are;
//! - **callers ahead who hang up**: a caller still waiting at hand-over time `t` takes the
//!   agent with probability `e^(−h·t)`, `h` being the queue's observed abandon rate per
//!   second of waiting (abandons ÷ seconds waited, the estimate for exponential patience);
//! - **callbacks ahead** never hang up, and hold their agent [`DIAL_OVERHEAD`] longer for the
//!   dial-back;
//! - **callers who will overtake**: callers of a better priority keep arriving (at the rate
//!   seen lately) and each takes the next free agent before anyone of a lower level.
//!
//! Each trial gives one possible wait; [`TRIALS`] of them, sorted, give the quantiles in
//! [`Forecast`]. Only the first [`REPLAY_DEPTH`] hand-overs are replayed one by one; beyond
//! that the rest of the line is added as a normal approximation (the `k` further hand-overs
//! of `n` agents take about `k·μ/n` with variance `k·σ²/n²`, renewal theory, with `k`
//! thinned by the abandon rate), so a forecast costs the same at position 40 as at 10 000.
//!
//! One replay serves the whole line ([`forecast_line`]): each trial notes when an agent is
//! free for each caller in turn, so the controller forecasts a queue's line once and every
//! announcement reads its caller's place from it (docs/behaviour.md §4 says when that is
//! done again). Each trial draws from its own generator, so a caller's forecast is the same
//! whether the line was replayed to its place or further.
//!
//! Pure and deterministic: the random draws come from a fixed-seed generator, so the same
//! inputs always give the same forecast.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::estimate::HandleTimes;

/// Trials per forecast.
pub const TRIALS: usize = 256;
/// Hand-overs replayed one by one; the line beyond is approximated.
pub const REPLAY_DEPTH: usize = 48;
/// How much longer a dial-back holds an agent than its conversation: ringing the caller.
pub const DIAL_OVERHEAD: Duration = Duration::from_secs(20);

/// The quantiles a [`Forecast`] holds, lowest first.
pub const QUANTILES: [f64; 8] = [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999];
/// The largest share of hand-overs callers who overtake are assumed to take.
const MAX_OVERTAKING_SHARE: f64 = 0.9;
/// Handle times needed before the `default_handle_time` prior is dropped: with `k` seen, a
/// draw comes from the prior with probability `(PRIOR_SAMPLES − k) / PRIOR_SAMPLES`.
pub const PRIOR_SAMPLES: usize = 30;
/// Multiples of the highest quantile, for a queue whose callers wait longer than even it
/// says (see [`Forecast::at`]).
const BEYOND: [f64; 4] = [1.15, 1.3, 1.6, 2.0];
/// Number of steps [`Forecast::at`] accepts.
pub const STEPS: usize = QUANTILES.len() + BEYOND.len();

/// What one staffed agent is doing, as far as the forecast cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentOutlook {
    /// Idle or about to take a caller: free now.
    Free,
    /// On a call that started `elapsed` ago.
    Busy {
        /// Time on the call so far.
        elapsed: Duration,
    },
    /// Resting after a call for `remaining` more.
    Resting {
        /// Wrap-up left.
        remaining: Duration,
    },
}

/// What the forecast of one caller's wait starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlook<'a> {
    /// The caller's place in line, 1-based (0 is taken as 1).
    pub position: usize,
    /// The staffed agents serving the queue. None staffed counts as one agent who has just
    /// taken a call: nobody is free now, and the line moves one at a time once somebody is.
    pub agents: &'a [AgentOutlook],
    /// How many of the callers ahead are callbacks.
    pub callbacks_ahead: usize,
    /// Callers' hang-up rate per second of waiting (0: nobody hangs up).
    pub abandon_rate: f64,
    /// Arrivals per second of callers at a better priority level, who will go ahead.
    pub overtaking_rate: f64,
}

/// The handle-time spread the forecast draws from: the recent handle times, sorted.
#[derive(Debug, Clone, PartialEq)]
pub struct HandleModel {
    /// Seconds, ascending; empty before any call completed.
    sorted: Vec<f64>,
    mean: f64,
    variance: f64,
    /// Mean excess over the 90th percentile of the samples: how far past the longest call
    /// seen a longer one is assumed to run (an exponential tail, as in peaks-over-threshold).
    tail_mean: f64,
    /// The queue's `default_handle_time`, seconds: the exponential prior.
    prior_mean: f64,
}

impl HandleModel {
    /// The model of a queue's recent handle times; exponential around their default while
    /// there are none.
    pub fn new(times: &HandleTimes) -> Self {
        let mut sorted: Vec<f64> = times.samples().map(|d| d.as_secs_f64()).collect();
        sorted.sort_by(f64::total_cmp);
        let prior_mean = times.default_mean().as_secs_f64();
        if sorted.is_empty() {
            return Self {
                sorted,
                mean: prior_mean,
                variance: prior_mean * prior_mean,
                tail_mean: prior_mean,
                prior_mean,
            };
        }
        // Moments of the blend of samples and prior (the exponential's second moment is 2m²).
        let n = sorted.len() as f64;
        let w = Self::prior_share(sorted.len());
        let mean = (1.0 - w) * sorted.iter().sum::<f64>() / n + w * prior_mean;
        let second = (1.0 - w) * sorted.iter().map(|h| h * h).sum::<f64>() / n
            + w * 2.0 * prior_mean * prior_mean;
        let variance = (second - mean * mean).max(0.0);
        let threshold = sorted[(sorted.len() * 9) / 10];
        let above: Vec<f64> = sorted
            .iter()
            .filter(|&&h| h > threshold)
            .map(|h| h - threshold)
            .collect();
        let tail_mean = if above.is_empty() {
            0.0
        } else {
            above.iter().sum::<f64>() / above.len() as f64
        };
        Self {
            sorted,
            mean,
            variance,
            tail_mean,
            prior_mean,
        }
    }

    /// The share of draws taken from the prior with `k` handle times seen.
    fn prior_share(k: usize) -> f64 {
        PRIOR_SAMPLES.saturating_sub(k) as f64 / PRIOR_SAMPLES as f64
    }

    /// The mean handle time, seconds.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    fn draw(&self, rng: &mut Rng) -> f64 {
        self.remaining(0.0, rng)
    }

    /// What is left of a call that has run `elapsed` seconds: one of the `k` recent handle
    /// times longer than that, minus it, or, with probability `1/(k+1)`, a call longer than
    /// any seen (the longest, plus an exponential excess of [`Self::tail_mean`]): a hundred
    /// samples do not show how long the longest calls run, least of all to a call already
    /// past most of them. With no sample left, exponential around the mean.
    fn remaining(&self, elapsed: f64, rng: &mut Rng) -> f64 {
        // The prior, exponential, is memoryless: what is left of a call is as long as a new one.
        if self.sorted.len() < PRIOR_SAMPLES && rng.unit() < Self::prior_share(self.sorted.len()) {
            return rng.exponential(self.prior_mean);
        }
        let first_longer = self.sorted.partition_point(|&h| h <= elapsed);
        let longer = self.sorted.len() - first_longer;
        if longer == 0 {
            return rng.exponential(self.mean.max(self.tail_mean));
        }
        let pick = rng.below(longer + 1);
        if pick == longer {
            let longest = self.sorted[self.sorted.len() - 1];
            return longest - elapsed + rng.exponential(self.tail_mean);
        }
        self.sorted[first_longer + pick] - elapsed
    }
}

/// The spread of one caller's wait: its quantiles at [`QUANTILES`], seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    quantiles: [f64; QUANTILES.len()],
}

impl Forecast {
    /// The wait at `step`: steps `0..8` are the quantiles of [`QUANTILES`], the steps after
    /// multiply the highest by 1.15, 1.3, 1.6 and 2. Steps past the last are the last.
    pub fn at(&self, step: usize) -> Duration {
        let top = self.quantiles[QUANTILES.len() - 1];
        let seconds = match step.checked_sub(QUANTILES.len()) {
            None => self.quantiles[step],
            Some(beyond) => top * BEYOND[beyond.min(BEYOND.len() - 1)],
        };
        Duration::from_secs_f64(seconds.max(0.0))
    }

    /// The step of the `q` quantile in [`QUANTILES`] (the nearest one at or above it).
    pub fn step_of(q: f64) -> usize {
        QUANTILES
            .iter()
            .position(|&level| level >= q)
            .unwrap_or(QUANTILES.len() - 1)
    }

    /// The median wait.
    pub fn median(&self) -> Duration {
        self.at(0)
    }

    /// The quantiles at [`QUANTILES`], seconds (to persist).
    pub fn quantiles(&self) -> &[f64] {
        &self.quantiles
    }

    /// A forecast from persisted quantiles; `None` unless there are as many as [`QUANTILES`],
    /// finite, not negative and in order.
    pub fn from_quantiles(values: &[f64]) -> Option<Self> {
        let quantiles: [f64; QUANTILES.len()] = values.try_into().ok()?;
        let valid = quantiles.iter().all(|q| q.is_finite() && *q >= 0.0)
            && quantiles.windows(2).all(|w| w[0] <= w[1]);
        valid.then_some(Self { quantiles })
    }
}

/// Forecasts the wait of the caller in `outlook` (see the module docs): the line up to it
/// replayed, its first `callbacks_ahead` callers being callbacks.
pub fn forecast(outlook: &Outlook<'_>, model: &HandleModel) -> Forecast {
    let position = outlook.position.max(1);
    let ahead = outlook.callbacks_ahead.min(REPLAY_DEPTH);
    let line = LineOutlook {
        agents: outlook.agents,
        depth: position.min(REPLAY_DEPTH),
        callbacks: if ahead >= 64 {
            u64::MAX
        } else {
            (1u64 << ahead) - 1
        },
        abandon_rate: outlook.abandon_rate,
        overtaking_rate: outlook.overtaking_rate,
    };
    forecast_line(&line, model).at(position)
}

/// What the forecast of every place of one line starts from: the same as [`Outlook`], with
/// the line itself instead of one caller's place in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineOutlook<'a> {
    /// The staffed agents serving the queue (none: see [`Outlook::agents`]).
    pub agents: &'a [AgentOutlook],
    /// Places replayed one by one, from the head: `1..=depth` (at most [`REPLAY_DEPTH`]).
    pub depth: usize,
    /// Bit `i` set: the caller at place `i + 1` is a callback.
    pub callbacks: u64,
    /// Callers' hang-up rate per second of waiting (0: nobody hangs up).
    pub abandon_rate: f64,
    /// Arrivals per second of callers who go ahead of this line.
    pub overtaking_rate: f64,
}

/// The forecast of every place in one line, made at once: one replay of the line gives, in
/// each trial, the moment an agent is free for each caller in turn (the same random draws
/// for all of them, so a caller's forecast never comes out shorter than the one ahead's).
/// Places past the replayed depth are forecast on demand from each trial's wait at the last
/// replayed place (see [`LineForecast::at`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LineForecast {
    /// The forecast at place `i + 1`.
    places: Vec<Forecast>,
    /// Per trial: the wait at the deepest replayed place, `e^(−h·wait)` and a normal draw.
    deep: Vec<[f64; 3]>,
    /// Seconds per further hand-over, its variance, the agents, the hang-up rate.
    step: f64,
    variance: f64,
    agents: f64,
    hazard: f64,
}

impl LineForecast {
    /// The places replayed one by one.
    pub fn depth(&self) -> usize {
        self.places.len()
    }

    /// The forecast of the caller at `position` (0 is taken as 1). Past the replayed depth,
    /// the further `k` hand-overs are added to each trial as a normal approximation (they
    /// take about `k·μ/n` with variance `k·σ²/n²`, renewal theory, `k` thinned by the hang-up
    /// rate), so a forecast costs the same at position 100 as at 10 000.
    pub fn at(&self, position: usize) -> Forecast {
        let position = position.max(1);
        if let Some(place) = self.places.get(position - 1) {
            return *place;
        }
        let beyond = (position - self.places.len()) as f64;
        let geometric = if self.hazard > 0.0 {
            let ratio = (-self.hazard * self.step).exp();
            (1.0 - ratio.powf(beyond)) / (1.0 - ratio)
        } else {
            beyond
        };
        let mut waits: Vec<f64> = self
            .deep
            .iter()
            .map(|&[wait, staying, normal]| {
                // Each caller still there with probability e^(−h·t) when its turn comes.
                let still_there = if self.hazard > 0.0 {
                    staying * geometric
                } else {
                    beyond
                };
                let spread = (still_there * self.variance).sqrt() / self.agents;
                (wait + still_there * self.step + spread * normal).max(wait)
            })
            .collect();
        waits.sort_unstable_by(f64::total_cmp);
        quantiles_of(&waits)
    }
}

/// The quantiles at [`QUANTILES`] of trial waits sorted ascending.
fn quantiles_of(sorted: &[f64]) -> Forecast {
    let mut quantiles = [0.0; QUANTILES.len()];
    for (slot, q) in quantiles.iter_mut().zip(QUANTILES) {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        *slot = sorted[rank - 1];
    }
    Forecast { quantiles }
}

/// Forecasts the wait at every place of the line in `outlook` (see the module docs and
/// [`LineForecast`]).
pub fn forecast_line(outlook: &LineOutlook<'_>, model: &HandleModel) -> LineForecast {
    let nobody = [AgentOutlook::Busy {
        elapsed: Duration::ZERO,
    }];
    let agents = if outlook.agents.is_empty() {
        &nobody[..]
    } else {
        outlook.agents
    };
    let n = agents.len() as f64;
    let depth = outlook.depth.clamp(1, REPLAY_DEPTH);
    let hazard = outlook.abandon_rate.max(0.0);
    // Overtakers can take at most 90 % of the hand-overs: more and the line never moves, which
    // is no forecast (and the replay would never end).
    let overtaking = outlook
        .overtaking_rate
        .clamp(0.0, MAX_OVERTAKING_SHARE * n / model.mean.max(1.0));
    let overhead = DIAL_OVERHEAD.as_secs_f64();
    let line = Line {
        depth,
        callbacks: outlook.callbacks,
        hazard,
        overtaking,
    };
    // Trial-major: the waits of trial `k` at places 1..=depth are `waits[k·depth..]`.
    let mut waits = vec![0.0; TRIALS * depth];
    let mut deep = Vec::with_capacity(TRIALS);
    let mut free_at = FreeAt::with_capacity(agents.len());
    for (trial, row) in waits.chunks_exact_mut(depth).enumerate() {
        // A generator per trial: a place's waits do not depend on how deep the line is
        // replayed, so [`forecast`] of one caller agrees with the whole line's forecast.
        let mut rng = Rng::new(trial as u64, agents.len() as u64);
        let normal = rng.normal();
        free_at.clear();
        for agent in agents {
            free_at.push(match *agent {
                AgentOutlook::Free => 0.0,
                AgentOutlook::Resting { remaining } => remaining.as_secs_f64(),
                AgentOutlook::Busy { elapsed } => model.remaining(elapsed.as_secs_f64(), &mut rng),
            });
        }
        line.replay(&mut free_at, &mut rng, row, |callback, rng| {
            model.draw(rng) + if callback { overhead } else { 0.0 }
        });
        let last = row[depth - 1];
        deep.push([last, (-hazard * last).exp(), normal]);
    }
    let mut column = Vec::with_capacity(TRIALS);
    let places = (0..depth)
        .map(|place| {
            column.clear();
            column.extend(waits.iter().skip(place).step_by(depth));
            column.sort_unstable_by(f64::total_cmp);
            quantiles_of(&column)
        })
        .collect();
    let share = overtaking * model.mean.max(1.0) / n;
    LineForecast {
        places,
        deep,
        step: model.mean / n / (1.0 - share),
        variance: model.variance,
        agents: n,
        hazard,
    }
}

/// The callers of the line and what moves them.
struct Line {
    /// Places replayed.
    depth: usize,
    /// Bit `i`: the caller at place `i + 1` is a callback (never hangs up).
    callbacks: u64,
    /// Hang-up rate per second of waiting.
    hazard: f64,
    /// Arrivals per second of callers who go ahead.
    overtaking: f64,
}

impl Line {
    /// Replays the hand-overs of agents free at `free_at` (seconds from now) and writes in
    /// `waits[i]` when an agent is free for the caller at place `i + 1`. At each hand-over at
    /// `t`, an overtaker who has arrived by then takes the agent; otherwise the next caller in
    /// line still waiting (always so for callbacks) takes it for `hold(is_callback)`.
    fn replay(
        &self,
        free_at: &mut FreeAt,
        rng: &mut Rng,
        waits: &mut [f64],
        hold: impl Fn(bool, &mut Rng) -> f64,
    ) {
        let mut next = 0;
        let mut next_overtaker = if self.overtaking > 0.0 {
            rng.exponential(1.0 / self.overtaking)
        } else {
            f64::INFINITY
        };
        while next < self.depth {
            let t = free_at.pop();
            if next_overtaker <= t {
                free_at.push(t + hold(false, rng));
                next_overtaker += rng.exponential(1.0 / self.overtaking);
                continue;
            }
            while next < self.depth {
                let place = next;
                waits[place] = t;
                next += 1;
                if next == self.depth {
                    break;
                }
                let callback = place < 64 && self.callbacks & (1 << place) != 0;
                if callback || self.hazard == 0.0 || rng.unit() < (-self.hazard * t).exp() {
                    free_at.push(t + hold(callback, rng));
                    break;
                }
            }
        }
    }
}

/// When each agent is next free, soonest first: a min-heap of seconds. Times are never
/// negative, and non-negative `f64`s order as their bit patterns do, so the heap holds those.
struct FreeAt(BinaryHeap<Reverse<u64>>);

impl FreeAt {
    fn with_capacity(n: usize) -> Self {
        Self(BinaryHeap::with_capacity(n))
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn push(&mut self, at: f64) {
        self.0.push(Reverse(at.max(0.0).to_bits()));
    }

    /// The soonest time, taken out (the agent is handed over and pushed back).
    fn pop(&mut self) -> f64 {
        let Reverse(bits) = self.0.pop().expect("at least one agent");
        f64::from_bits(bits)
    }
}

/// splitmix64: small, fast and good enough for drawing trials; seeded from the inputs so a
/// forecast is a pure function of them.
struct Rng(u64);

impl Rng {
    fn new(a: u64, b: u64) -> Self {
        Self(0x9e37_79b9_7f4a_7c15 ^ a.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ b.rotate_left(32))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[cfg(test)]
mod tests;
