//! The routing rules `holdfast simulate` can try on a synthetic day (docs/behaviour.md §3):
//! the queue's strategy and agent tiers (dispatch is the production [`crate::queue::dispatch`]
//! code), `max_wait` with its overflow, and what they do to the agents: how evenly calls and
//! talk time are spread, how busy each tier is.

use std::fmt;

/// Where a caller goes at `--max-wait` (`--overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OverflowTo {
    /// Released with "Goodbye." (`overflow = "hangup"`): counted as overflowed.
    #[default]
    Hangup,
    /// Moved to a second queue at the place its arrival gives it there (`overflow =
    /// "<queue>"`), served by `--overflow-agents` agents of its own and by the main agents
    /// after their own queue.
    Queue,
}

impl std::str::FromStr for OverflowTo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hangup" => Ok(Self::Hangup),
            "queue" => Ok(Self::Queue),
            other => Err(format!("{other:?} is not hangup or queue")),
        }
    }
}

/// One simulated agent over the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AgentRecord {
    /// Its tier in the main queue (1, or 2 for the last `--tier2-agents`); 0 for an agent of
    /// the overflow queue only.
    pub tier: u32,
    /// Calls it answered.
    pub calls: u64,
    /// Seconds it spent on calls.
    pub talk_s: f64,
}

/// How the work was spread over the agents.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentsReport {
    /// Fewest calls answered by one main-queue agent.
    pub calls_min: u64,
    /// Most calls answered by one main-queue agent.
    pub calls_max: u64,
    /// Lowest share of the run one main-queue agent spent on calls.
    pub occupancy_min: f64,
    /// Highest share of the run one main-queue agent spent on calls.
    pub occupancy_max: f64,
    /// Mean occupancy of the tier-1 agents.
    pub tier1_occupancy: f64,
    /// Mean occupancy of the tier-2 agents; `None` without any.
    pub tier2_occupancy: Option<f64>,
    /// Mean occupancy of the overflow queue's own agents; `None` without any.
    pub overflow_occupancy: Option<f64>,
}

impl AgentsReport {
    /// The figures of `agents` over a run of `duration_s` seconds.
    pub fn new(agents: &[AgentRecord], duration_s: f64) -> Self {
        let main: Vec<&AgentRecord> = agents.iter().filter(|a| a.tier > 0).collect();
        let occupancy = |a: &AgentRecord| {
            if duration_s > 0.0 {
                (a.talk_s / duration_s).min(1.0)
            } else {
                0.0
            }
        };
        let mean_of = |pick: &dyn Fn(&AgentRecord) -> bool| {
            let chosen: Vec<f64> = agents.iter().filter(|a| pick(a)).map(occupancy).collect();
            (!chosen.is_empty()).then(|| chosen.iter().sum::<f64>() / chosen.len() as f64)
        };
        let occupancies = main.iter().map(|a| occupancy(a));
        Self {
            calls_min: main.iter().map(|a| a.calls).min().unwrap_or(0),
            calls_max: main.iter().map(|a| a.calls).max().unwrap_or(0),
            occupancy_min: occupancies.clone().fold(f64::INFINITY, f64::min).min(1.0),
            occupancy_max: occupancies.fold(0.0, f64::max),
            tier1_occupancy: mean_of(&|a| a.tier == 1).unwrap_or(0.0),
            tier2_occupancy: mean_of(&|a| a.tier == 2),
            overflow_occupancy: mean_of(&|a| a.tier == 0),
        }
    }
}

impl fmt::Display for AgentsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Agents: {}–{} calls each, occupancy {:.1}%–{:.1}% (tier 1 mean {:.1}%",
            self.calls_min,
            self.calls_max,
            self.occupancy_min * 100.0,
            self.occupancy_max * 100.0,
            self.tier1_occupancy * 100.0
        )?;
        if let Some(tier2) = self.tier2_occupancy {
            write!(f, ", tier 2 mean {:.1}%", tier2 * 100.0)?;
        }
        if let Some(overflow) = self.overflow_occupancy {
            write!(f, ", overflow queue's agents {:.1}%", overflow * 100.0)?;
        }
        writeln!(f, ")")
    }
}
