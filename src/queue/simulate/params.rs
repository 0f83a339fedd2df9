//! What `holdfast simulate` is asked to simulate: the parameters, their defaults and their
//! checks, and the handle-time distributions and day profiles they name.

use super::{MAX_EXPECTED_CALLS, OverflowTo};
use crate::queue::dispatch::Strategy;

/// How handle times are distributed (`--handle-distribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HandleDistribution {
    /// Exponential with mean `aht`.
    Exponential,
    /// Lognormal with mean `aht` and σ = [`super::LOGNORMAL_SIGMA`].
    Lognormal,
}

impl std::str::FromStr for HandleDistribution {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exponential" => Ok(Self::Exponential),
            "lognormal" => Ok(Self::Lognormal),
            other => Err(format!("{other:?} is not exponential or lognormal")),
        }
    }
}

/// How the arrival rate varies over the day (`--profile`): 24 hourly weights, repeated every
/// day, scaled so their mean is 1.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Profile {
    /// `flat`, `office`, or `custom` for weights given on the command line.
    pub name: String,
    /// The weight of each hour from midnight, mean 1.
    pub hourly: Vec<f64>,
}

/// An office day: quiet at night, a morning peak from 9 to 12, a second one after lunch.
const OFFICE_DAY: [f64; 24] = [
    0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.4, 2.0, 2.3, 2.2, 1.6, 1.8, 2.1, 2.0, 1.7, 1.3, 0.9,
    0.6, 0.4, 0.3, 0.2, 0.1,
];

impl Profile {
    /// The same rate all day.
    pub fn flat() -> Self {
        Self {
            name: "flat".into(),
            hourly: vec![1.0; 24],
        }
    }

    /// Builds a profile from weights, scaled to mean 1; `None` unless there are 24 of them,
    /// none negative and not all zero.
    pub fn from_weights(name: &str, weights: &[f64]) -> Option<Self> {
        let sum: f64 = weights.iter().sum();
        let valid =
            weights.len() == 24 && weights.iter().all(|w| w.is_finite() && *w >= 0.0) && sum > 0.0;
        valid.then(|| Self {
            name: name.into(),
            hourly: weights.iter().map(|w| w * 24.0 / sum).collect(),
        })
    }

    pub(super) fn peak(&self) -> f64 {
        self.hourly.iter().copied().fold(0.0, f64::max)
    }

    pub(super) fn weight_at(&self, seconds: f64) -> f64 {
        self.hourly[((seconds / 3600.0) as usize) % 24]
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    /// `flat`, `office`, or 24 comma-separated hourly weights.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flat" => Ok(Self::flat()),
            "office" => Ok(Self::from_weights("office", &OFFICE_DAY).expect("24 weights")),
            custom => {
                let weights: Result<Vec<f64>, _> =
                    custom.split(',').map(|w| w.trim().parse::<f64>()).collect();
                weights
                    .ok()
                    .and_then(|w| Self::from_weights("custom", &w))
                    .ok_or_else(|| {
                        format!(
                            "{custom:?} is not flat, office or 24 comma-separated hourly weights"
                        )
                    })
            }
        }
    }
}

/// What to simulate. Times are in seconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Params {
    /// Agents staffed for the whole simulation (at least 1).
    pub agents: usize,
    /// Mean arrival rate of the Poisson process.
    pub arrivals_per_hour: f64,
    /// Mean handle time.
    pub aht: f64,
    /// How handle times are distributed around `aht`.
    pub handle_distribution: HandleDistribution,
    /// How arrivals vary over the day.
    pub profile: Profile,
    /// Share of callers with VIP priority, 0 to 1.
    pub vip_share: f64,
    /// Length of the arrival window.
    pub hours: f64,
    /// Mean of the exponential patience after which a waiting caller hangs up.
    pub patience: f64,
    /// The estimator's `H` before any call has completed (`default_handle_time`).
    pub default_handle_time: f64,
    /// Seed of the random generator: the same parameters and seed give the same report.
    pub seed: u64,
    /// Which free agent takes a caller (`[[queue]] strategy`).
    pub strategy: Strategy,
    /// How many of the agents (the last ones) are tier 2 of the queue.
    pub tier2_agents: usize,
    /// Seconds a caller waits before it overflows; 0 = never.
    pub max_wait: f64,
    /// Where it overflows to.
    pub overflow: OverflowTo,
    /// Agents of the overflow queue only (with `overflow = queue`).
    pub overflow_agents: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            agents: 5,
            arrivals_per_hour: 60.0,
            aht: 240.0,
            handle_distribution: HandleDistribution::Exponential,
            profile: Profile::flat(),
            vip_share: 0.1,
            hours: 24.0,
            patience: 180.0,
            default_handle_time: 300.0,
            seed: 1,
            strategy: Strategy::LongestIdle,
            tier2_agents: 0,
            max_wait: 0.0,
            overflow: OverflowTo::Hangup,
            overflow_agents: 0,
        }
    }
}

/// Why the parameters cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A parameter is out of its range.
    #[error("--{name} {value}: {reason}")]
    OutOfRange {
        /// The flag name, as on the command line.
        name: &'static str,
        /// The value given.
        value: String,
        /// The range it must be in.
        reason: &'static str,
    },
    /// The parameters ask for more calls than [`MAX_EXPECTED_CALLS`].
    #[error("{expected:.0} expected calls is more than the limit of {MAX_EXPECTED_CALLS:.0}")]
    TooManyCalls {
        /// `arrivals_per_hour × hours`.
        expected: f64,
    },
}

impl Params {
    /// Checks every parameter, naming the first bad one.
    pub fn validate(&self) -> Result<(), ParamError> {
        let positive = |name, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(ParamError::OutOfRange {
                    name,
                    value: value.to_string(),
                    reason: "must be a positive number",
                })
            }
        };
        if self.agents == 0 {
            return Err(ParamError::OutOfRange {
                name: "agents",
                value: "0".into(),
                reason: "at least one agent is needed",
            });
        }
        positive("arrivals-per-hour", self.arrivals_per_hour)?;
        positive("aht", self.aht)?;
        positive("hours", self.hours)?;
        positive("patience", self.patience)?;
        positive("default-handle-time", self.default_handle_time)?;
        if self.tier2_agents >= self.agents {
            return Err(ParamError::OutOfRange {
                name: "tier2-agents",
                value: self.tier2_agents.to_string(),
                reason: "must leave at least one tier-1 agent",
            });
        }
        if !(self.max_wait.is_finite() && self.max_wait >= 0.0) {
            return Err(ParamError::OutOfRange {
                name: "max-wait",
                value: self.max_wait.to_string(),
                reason: "must be 0 (no limit) or a positive number",
            });
        }
        if self.overflow_agents > 0 && self.overflow != OverflowTo::Queue {
            return Err(ParamError::OutOfRange {
                name: "overflow-agents",
                value: self.overflow_agents.to_string(),
                reason: "needs --overflow queue",
            });
        }
        if !(0.0..=1.0).contains(&self.vip_share) {
            return Err(ParamError::OutOfRange {
                name: "vip-share",
                value: self.vip_share.to_string(),
                reason: "must be between 0 and 1",
            });
        }
        let expected = self.arrivals_per_hour * self.hours;
        if expected > MAX_EXPECTED_CALLS {
            return Err(ParamError::TooManyCalls { expected });
        }
        Ok(())
    }
}
