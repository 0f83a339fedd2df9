//! What the operator sees and steers (docs/behaviour.md §8, §12 "Admin HTTP API"): a [`Snapshot`] built on
//! request from the very structures the dispatcher uses (the queues, the agents, the
//! registrar, the estimator), and the pause/unpause command.
//!
//! There is no second bookkeeping: the admin task asks the SIP task for a snapshot over a
//! channel and the controller answers from its own state, so the API can never drift from
//! what dispatch does. The field names are the JSON of docs/behaviour.md §12.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::events::Observations;
use super::{B2bua, CallKey, Stats};
use crate::queue::EntryKind;
use crate::queue::dispatch::AgentId;

/// Everything the admin API and the wallboard show, at one instant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// The queues in configuration order.
    pub queues: Vec<QueueView>,
    /// The agents in configuration order.
    pub agents: Vec<AgentView>,
    /// Sources refused REGISTERs for failed logins right now (docs/behaviour.md §9).
    pub blocks: Vec<BlockView>,
    /// Counters for `/metrics` (not part of the docs/behaviour.md §12 JSON).
    #[serde(skip)]
    pub counters: Counters,
}

/// One queue: `GET /api/queues` item.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct QueueView {
    /// Queue name.
    pub name: String,
    /// Waiting entries in dispatch order (the wallboard's stream: the first 25 only).
    pub waiting: Vec<WaitingView>,
    /// How many entries wait (all of them, however many `waiting` lists).
    pub waiting_count: usize,
    /// The longest wait among all of them, seconds.
    pub longest_wait_s: u64,
    /// Agents serving this queue who are registered and not paused.
    pub agents_staffed: usize,
    /// Of those, agents available right now.
    pub agents_free: usize,
    /// The estimator's mean handle time, whole seconds.
    pub average_handle_time_s: u64,
    /// How it picks among free agents (`[[queue]] strategy`).
    pub strategy: &'static str,
    /// What happens when nobody serves it (`[[queue]] when_no_agents`).
    pub when_no_agents: &'static str,
    /// Within its opening hours now (`[[queue]] hours`; always `true` without).
    pub open: bool,
    /// The answer-time target of its service level, seconds.
    pub service_level_s: u64,
    /// The service level it aims at, percent.
    pub service_level_goal: u8,
    /// `[warn, alarm]`: longest waits (s) from which the wallboard shows amber, then red.
    pub longest_wait_thresholds_s: [u64; 2],
    /// Today's figures (since midnight UTC, this node's calls).
    pub today: crate::queue::service::TallyView,
    /// The last 15 minutes' figures.
    pub last_15_min: crate::queue::service::TallyView,
    /// The last hour, every 10 s, oldest first: `[waiting callers, longest wait s]`.
    pub last_hour: Vec<[u64; 2]>,
}

/// One waiting entry: caller on hold or callback keeping its place.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WaitingView {
    /// SIP Call-ID of the caller's leg (empty for a callback whose call has ended).
    pub call_id: String,
    /// The caller's number.
    pub caller: String,
    /// 1-based place in line, the number the caller hears.
    pub position: usize,
    /// Priority name from `[priorities]`.
    pub priority: String,
    /// Seconds since the caller arrived.
    pub waited_s: u64,
    /// The estimate announced to the caller (docs/behaviour.md §4), seconds.
    pub estimate_s: u64,
    /// Whether this entry is a callback that keeps its place.
    pub callback: bool,
    /// The cluster node holding the caller (docs/cluster.md); absent on a single node.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// One agent: `GET /api/agents` item.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AgentView {
    /// SIP user.
    pub user: String,
    /// `offline|available|ringing|busy|wrapup|paused`.
    pub state: String,
    /// Queue names, most important first.
    pub queues: Vec<String>,
    /// The registered Contact URI, `null` when offline.
    pub contact: Option<String>,
    /// Calls answered since start.
    pub calls_taken: u64,
    /// Its tier in each queue it serves (1 = first).
    pub tiers: std::collections::BTreeMap<String, u32>,
    /// Seconds in its current state (`null` if it never had one).
    pub state_for_s: Option<u64>,
    /// The caller it is talking to, while on a call.
    pub talking_to: Option<String>,
    /// Seconds it has been talking to that caller.
    pub talking_for_s: Option<u64>,
    /// That call is being recorded (`[[queue]] record`).
    pub recording: bool,
    /// The supervisor monitoring that call, if one is.
    pub monitored_by: Option<String>,
    /// How: `listen`, `whisper` or `barge`.
    pub monitor_mode: Option<String>,
}

/// One blocked login: `GET /api/blocks` item.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BlockView {
    /// The source address.
    pub source: String,
    /// The user name refused from there; `null`: every unknown user name.
    pub user: Option<String>,
    /// Failed logins counted in the window.
    pub failures: u32,
    /// Seconds until the block ends.
    pub remaining_s: u64,
}

/// Counters of the controller and its transaction layer, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Admission, abandon, rejection and parse-error counters.
    pub calls: Stats,
    /// SIP transactions and retransmissions.
    pub transactions: crate::sip::transaction::Stats,
    /// Transactions alive right now.
    pub transactions_live: usize,
    /// Call events and histograms.
    pub observations: Observations,
    /// Calls up right now (holding, ringing or talking).
    pub calls_up: usize,
    /// Failed REGISTER logins (unknown user, wrong password, forged nonce).
    pub auth_failures: u64,
    /// REGISTERs refused unchecked because their source and user were blocked.
    pub register_blocked: u64,
    /// Requests answered or dropped before the transaction layer.
    pub screen: super::screen::ScreenStats,
}

/// Why pause/unpause was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PauseError {
    /// No configured agent has this user name.
    #[error("no agent {0:?}")]
    UnknownAgent(String),
}

impl B2bua {
    /// Builds the snapshot at `now` from the dispatcher's own state.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        self.snapshot_first(now, usize::MAX)
    }

    /// [`Self::snapshot`] with only the first `callers` waiting entries of each queue
    /// (`waiting_count` still counts them all): the wallboard's, which must stay cheap with
    /// thousands waiting, since each entry listed costs its wait estimate.
    pub fn snapshot_first(&self, now: Instant, callers: usize) -> Snapshot {
        let queues = self
            .queues
            .iter()
            .map(|(id, queue)| {
                let staffed = self.agents.staffed(id);
                let mean = self
                    .handle_times
                    .get(id.0)
                    .map_or(Duration::ZERO, |h| h.mean());
                let waiting = queue
                    .iter()
                    .take(callers)
                    .enumerate()
                    .map(|(index, entry)| {
                        let position = index + 1;
                        let call = self.calls.get(&CallKey(entry.id.0));
                        let remote = self.cluster.as_ref().and_then(|c| c.remote(entry.id));
                        WaitingView {
                            call_id: call.map(|c| c.dialog.call_id.clone()).unwrap_or_default(),
                            caller: call
                                .map(|c| c.caller.clone())
                                .or_else(|| remote.map(|r| r.caller.clone()))
                                .unwrap_or_default(),
                            node: remote
                                .map(|r| r.node.clone())
                                .or_else(|| self.cluster_node().map(str::to_owned))
                                .unwrap_or_default(),
                            position,
                            priority: self.priority_name(entry.level),
                            waited_s: entry.waited(now).as_secs(),
                            estimate_s: self.wait_estimate(now, id, entry.id, position).as_secs(),
                            callback: entry.kind == EntryKind::Callback,
                        }
                    })
                    .collect();
                QueueView {
                    name: queue.name().to_owned(),
                    waiting_count: queue.len(),
                    longest_wait_s: queue.longest_wait_s(now),
                    waiting,
                    agents_staffed: staffed,
                    agents_free: self.agents.free(id),
                    average_handle_time_s: mean.as_secs_f64().round() as u64,
                    strategy: self.config.queues[id.0].strategy.as_str(),
                    when_no_agents: self.config.queues[id.0].when_no_agents.as_str(),
                    open: !self.is_closed(id, now),
                    service_level_s: self.config.queues[id.0].service_level,
                    service_level_goal: self.config.queues[id.0].service_level_goal,
                    longest_wait_thresholds_s: [
                        self.config.queues[id.0].longest_wait_warn,
                        self.config.queues[id.0].longest_wait_alarm,
                    ],
                    today: self.service[id.0].today().view(),
                    last_15_min: self.service[id.0].recent(now).view(),
                    last_hour: self.history.of(id),
                }
            })
            .collect();
        // Who each agent talks to, and since when: one pass over the legs.
        let talking: HashMap<AgentId, (String, Instant, bool, Option<&super::monitor::Watch>)> =
            self.legs
                .values()
                .filter_map(|leg| {
                    let since = leg.talking_since()?;
                    let caller = self.calls.get(&leg.call).map_or_else(
                        || {
                            self.callbacks
                                .get(&leg.call.entry())
                                .map(|c| c.number.clone())
                                .unwrap_or_default()
                        },
                        |c| c.caller.clone(),
                    );
                    let watch = self.watcher_of(leg.key);
                    Some((leg.agent, (caller, since, leg.recording.is_some(), watch)))
                })
                .collect();
        let agents = self
            .agents
            .iter()
            .map(|(agent_id, agent)| AgentView {
                state_for_s: agent
                    .state_since()
                    .map(|since| now.saturating_duration_since(since).as_secs()),
                talking_to: talking.get(&agent_id).map(|(caller, ..)| caller.clone()),
                talking_for_s: talking
                    .get(&agent_id)
                    .map(|(_, since, ..)| now.saturating_duration_since(*since).as_secs()),
                recording: talking.get(&agent_id).is_some_and(|t| t.2),
                monitored_by: talking
                    .get(&agent_id)
                    .and_then(|t| t.3)
                    .map(|w| w.supervisor.clone()),
                monitor_mode: talking
                    .get(&agent_id)
                    .and_then(|t| t.3)
                    .map(|w| w.mode.as_str().to_owned()),
                tiers: agent
                    .queues()
                    .iter()
                    .filter_map(|&q| {
                        let name = self.config.queues.get(q.0)?.name.clone();
                        Some((name, self.agents.tier(agent_id, q)))
                    })
                    .collect(),
                user: agent.user().to_owned(),
                state: agent.state().as_str().to_owned(),
                queues: agent
                    .queues()
                    .iter()
                    .filter_map(|q| self.config.queues.get(q.0).map(|c| c.name.clone()))
                    .collect(),
                contact: self.agent_binding(agent.user()).map(|b| b.contact.clone()),
                calls_taken: agent.calls_taken(),
            })
            .collect();
        let blocks = self
            .registration
            .limiter
            .blocks(now)
            .into_iter()
            .map(|block| BlockView {
                source: block.key.source.to_string(),
                user: block.key.user,
                failures: block.failures,
                remaining_s: block.until.saturating_duration_since(now).as_secs(),
            })
            .collect();
        Snapshot {
            queues,
            agents,
            blocks,
            counters: Counters {
                calls: self.counters.stats.clone(),
                transactions: self.sip.transactions.stats().clone(),
                transactions_live: self.sip.transactions.len(),
                observations: self.counters.observations.clone(),
                calls_up: self.calls.len(),
                auth_failures: self.registration.failures,
                register_blocked: self.registration.refused_blocked,
                screen: self.counters.screen.clone(),
            },
        }
    }

    /// Pauses (`paused = true`) or unpauses an agent by user name (admin API), then
    /// dispatches at once: an unpaused agent may take the head of its queue right away.
    pub fn set_paused(&mut self, now: Instant, user: &str, paused: bool) -> Result<(), PauseError> {
        self.set_paused_by(now, user, paused, "the admin API")
    }

    /// [`Self::set_paused`], logged as done `by` whom.
    pub(super) fn set_paused_by(
        &mut self,
        now: Instant,
        user: &str,
        paused: bool,
        by: &str,
    ) -> Result<(), PauseError> {
        let id = self
            .agents
            .find(user)
            .ok_or_else(|| PauseError::UnknownAgent(user.to_owned()))?;
        let result = if paused {
            self.agents.pause(now, id)
        } else {
            self.agents.unpause(now, id)
        };
        // `find` returned the id, so the only refusal (unknown id) cannot happen.
        result.map_err(|_| PauseError::UnknownAgent(user.to_owned()))?;
        self.cluster_paused(user, paused);
        self.survival.mark_agent(id);
        tracing::info!(agent = user, paused, by, "agent pause changed");
        self.process_events(now);
        Ok(())
    }

    /// Each queue's service-level target, seconds, by name (for reports).
    pub fn service_level_targets(&self) -> std::collections::BTreeMap<String, u64> {
        self.config
            .queues
            .iter()
            .map(|q| (q.name.clone(), q.service_level))
            .collect()
    }

    /// The configured name of a priority level (the lowest-sorting name when several share
    /// a level), or the number itself when none is configured.
    fn priority_name(&self, level: u32) -> String {
        self.config
            .priorities
            .iter()
            .find(|&(_, &l)| l == level)
            .map_or_else(|| level.to_string(), |(name, _)| name.clone())
    }
}
