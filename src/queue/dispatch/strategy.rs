//! Which free agent a queue's caller is offered to (`[[queue]] strategy`, docs/behaviour.md
//! §5), and agent tiers (`[[agent]] tiers`).
//!
//! Dispatch first finds the queue to serve: the first free agent in idle order that has
//! something to take names it (each agent serves its queues in its own order, so premium
//! first still holds). The candidates are then every free agent whose own first queue with
//! a waiting entry is that queue; of them only the lowest tier is eligible (a tier-2 agent
//! gets callers only while no tier-1 agent of the queue is free to take them); and the
//! queue's strategy picks one of those.

use serde::{Deserialize, Serialize};

use super::AgentId;
use super::agent::{Agent, IdleStamp};

/// How a queue picks among its free agents (the names follow FreeSWITCH mod_callcenter and
/// Asterisk app_queue; README has the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The agent free the longest (Asterisk `leastrecent`, FreeSWITCH `longest-idle-agent`).
    #[default]
    LongestIdle,
    /// In turn, starting after the agent offered the queue's last caller (Asterisk
    /// `rrmemory`, FreeSWITCH `round-robin`).
    RoundRobin,
    /// The agent with the fewest calls answered today (ties: longest idle).
    FewestCalls,
    /// The agent with the least talk time today (ties: longest idle).
    LeastTalkTime,
    /// Every free agent rings; the first to answer takes the caller (Asterisk `ringall`).
    RingAll,
    /// The first free agent in `[[agent]]` file order (Asterisk `linear`, FreeSWITCH
    /// `top-down`).
    Linear,
    /// Any free agent, drawn from the dispatcher's seeded random source.
    Random,
}

impl Strategy {
    /// The name used in the config and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LongestIdle => "longest-idle",
            Self::RoundRobin => "round-robin",
            Self::FewestCalls => "fewest-calls",
            Self::LeastTalkTime => "least-talk-time",
            Self::RingAll => "ring-all",
            Self::Linear => "linear",
            Self::Random => "random",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const ALL: [Strategy; 7] = [
            Strategy::LongestIdle,
            Strategy::RoundRobin,
            Strategy::FewestCalls,
            Strategy::LeastTalkTime,
            Strategy::RingAll,
            Strategy::Linear,
            Strategy::Random,
        ];
        ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = ALL.iter().map(|k| k.as_str()).collect();
            format!("{s:?} is not one of {}", names.join(", "))
        })
    }
}

/// One free agent that would take the queue's caller now.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate<'a> {
    pub idle: IdleStamp,
    pub id: AgentId,
    pub agent: &'a Agent,
    pub tier: u32,
}

/// Picks the agent among `candidates` (given longest idle first): lowest tier only, then by
/// `strategy`. `serving` is the queue's agents in file order and `last` the agent offered
/// its previous caller (round-robin); `draw` a random number (random).
pub(super) fn pick(
    strategy: Strategy,
    candidates: &[Candidate<'_>],
    serving: &[AgentId],
    last: Option<AgentId>,
    draw: u64,
) -> Option<AgentId> {
    let tier = candidates.iter().map(|c| c.tier).min()?;
    let eligible: Vec<&Candidate<'_>> = candidates.iter().filter(|c| c.tier == tier).collect();
    let chosen = match strategy {
        // Ring-all is decided by whoever answers first; the first offer goes to the longest
        // idle, as for the default.
        Strategy::LongestIdle | Strategy::RingAll => eligible.first().copied(),
        Strategy::Linear => eligible.iter().min_by_key(|c| c.id).copied(),
        Strategy::FewestCalls => eligible
            .iter()
            .min_by_key(|c| (c.agent.calls_today, c.idle))
            .copied(),
        Strategy::LeastTalkTime => eligible
            .iter()
            .min_by_key(|c| (c.agent.talk_today, c.idle))
            .copied(),
        Strategy::Random => {
            let index = usize::try_from(draw % eligible.len() as u64).unwrap_or(0);
            eligible.get(index).copied()
        }
        Strategy::RoundRobin => {
            // The queue's agents in file order, starting just after the last one offered.
            let start = last
                .and_then(|l| serving.iter().position(|&a| a == l))
                .map_or(0, |p| p + 1);
            (0..serving.len())
                .map(|i| serving[(start + i) % serving.len()])
                .find_map(|id| eligible.iter().find(|c| c.id == id).copied())
        }
    };
    chosen.map(|c| c.id)
}
