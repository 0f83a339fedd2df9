//! One agent's record: the facts fed in (registered, paused, what it is doing), the state
//! derived from them and the counters the admin API shows (docs/behaviour.md §12 `GET /api/agents`).

use std::fmt;
use std::time::{Duration, Instant};

use crate::queue::{EntryId, QueueId};

/// What an agent is doing, as the admin API shows it (docs/behaviour.md §12 `GET /api/agents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// No registered phone.
    Offline,
    /// Registered, not paused, idle: can be offered a caller.
    Available,
    /// Being offered a caller; the phone is ringing.
    Ringing,
    /// On a call with a caller.
    Busy,
    /// Resting after a call for the queue's `wrapup` seconds.
    Wrapup,
    /// Registered but paused (admin API, or too many unanswered offers in a row).
    Paused,
}

impl AgentState {
    /// The lower-case name used by the admin API: `offline|available|ringing|busy|wrapup|paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Available => "available",
            Self::Ringing => "ringing",
            Self::Busy => "busy",
            Self::Wrapup => "wrapup",
            Self::Paused => "paused",
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the agent is doing, independent of registration and pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activity {
    Idle,
    Ringing(EntryId),
    Busy,
    /// Wrap-up until this instant.
    Wrapup(Instant),
}

/// What another node of a cluster says the agent is doing for it (docs/cluster.md "Agents
/// and claims"): ringing (for which waiting entry), busy or in wrap-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Elsewhere {
    pub(super) state: AgentState,
    pub(super) entry: Option<EntryId>,
}

/// Place in the idle line: when the agent last became available, then arrival order.
pub(super) type IdleStamp = (Instant, u64);

/// One agent's state and counters.
#[derive(Debug, Clone)]
pub struct Agent {
    pub(super) user: String,
    pub(super) queues: Vec<QueueId>,
    pub(super) registered: bool,
    pub(super) paused: bool,
    pub(super) activity: Activity,
    /// Held by another node of a cluster; `None` on a single node.
    pub(super) elsewhere: Option<Elsewhere>,
    /// Cached result of [`Agent::derive`], kept in step by `Agents` only.
    pub(super) state: AgentState,
    pub(super) state_since: Option<Instant>,
    pub(super) idle: Option<IdleStamp>,
    pub(super) calls_taken: u64,
    /// Calls answered and time on calls since the day began ([`super::Agents::new_day`]),
    /// for the `fewest-calls` and `least-talk-time` strategies.
    pub(super) calls_today: u32,
    pub(super) talk_today: Duration,
    pub(super) no_answer_marks: u32,
    pub(super) missed_calls: u64,
}

impl Agent {
    pub(super) fn derive(&self) -> AgentState {
        let away = self.elsewhere.map(|e| e.state);
        match self.activity {
            Activity::Ringing(_) => AgentState::Ringing,
            Activity::Busy => AgentState::Busy,
            _ if matches!(away, Some(AgentState::Ringing | AgentState::Busy)) => {
                away.unwrap_or(AgentState::Busy)
            }
            _ if !self.registered => AgentState::Offline,
            _ if self.paused => AgentState::Paused,
            Activity::Wrapup(_) => AgentState::Wrapup,
            Activity::Idle if away.is_some() => AgentState::Wrapup,
            Activity::Idle => AgentState::Available,
        }
    }

    /// The entry this agent rings for, here or on another node.
    pub(super) fn offer(&self) -> Option<EntryId> {
        match self.activity {
            Activity::Ringing(entry) => Some(entry),
            _ => self.elsewhere.and_then(|e| e.entry),
        }
    }

    /// The SIP user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Queues served, most important first.
    pub fn queues(&self) -> &[QueueId] {
        &self.queues
    }

    /// Current state.
    pub fn state(&self) -> AgentState {
        self.state
    }

    /// When the current state began; `None` if it never changed since start-up (offline).
    pub fn state_since(&self) -> Option<Instant> {
        self.state_since
    }

    /// When the agent last became available (its place in the idle line); `None` if never.
    pub fn idle_since(&self) -> Option<Instant> {
        self.idle.map(|(at, _)| at)
    }

    /// Whether the phone is registered (an agent on a call may have unregistered meanwhile).
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Whether the agent is paused (it may still be finishing a call).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Calls answered since start-up.
    pub fn calls_taken(&self) -> u64 {
        self.calls_taken
    }

    /// Offers left unanswered in a row; reset by an answer or an unpause.
    pub fn no_answer_marks(&self) -> u32 {
        self.no_answer_marks
    }

    /// Offers left unanswered since start-up.
    pub fn missed_calls(&self) -> u64 {
        self.missed_calls
    }

    /// Whether another node of the cluster holds the agent (it rings, talks or rests there).
    pub fn is_elsewhere(&self) -> bool {
        self.elsewhere.is_some()
    }

    /// The entry this agent's phone is ringing for.
    pub fn ringing_entry(&self) -> Option<EntryId> {
        match self.activity {
            Activity::Ringing(entry) => Some(entry),
            _ => None,
        }
    }
}
