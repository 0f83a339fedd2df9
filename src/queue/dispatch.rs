//! Agents and dispatch, pure: what each agent is doing, and which waiting entry a free agent
//! takes next (docs/behaviour.md §3 "Agents serve queues in order", docs/behaviour.md §5).
//!
//! [`Agents`] owns every configured agent's state and the order in which free agents are
//! served (longest idle first). It decides; the call controller acts: it feeds registrations,
//! pauses and call progress in with `now`, asks [`Agents::next_assignment`] for the next
//! match, rings the agent and reports back. Nothing here reads the clock or does I/O, and
//! waiting entries stay in [`Queues`]: an entry being offered to an agent is *not* removed
//! from its queue, so a no-answer leaves the caller exactly where it was (at the head).
//!
//! # States
//!
//! An agent's state is derived from three independent facts: whether its phone is
//! registered, whether it is paused (by the admin API or after too many no-answers), and what
//! it is doing (idle, ringing, on a call, in wrap-up). A call in progress always wins, so
//! unregistering or pausing never interrupts a ringing or answered call: it takes effect when
//! the call is over.
//!
//! ```text
//! input            from                      to
//! registered       Offline                   Available (Paused if paused)
//! unregistered     Available, Paused, Wrapup Offline (Ringing, Busy: Offline after the call)
//! pause            Available, Wrapup         Paused
//! unpause          Paused                    Available (Wrapup while its timer runs)
//! ringing(entry)   Available                 Ringing
//! answered         Ringing                   Busy
//! no_answer        Ringing                   Available (Wrapup for a back-off), Paused after
//!                                            max_no_answer marks
//! ring_cancelled   Ringing                   Available, same place in the idle line
//! call_ended       Busy                      Wrapup (Available if 0 s; Offline if unregistered)
//! handle_timeout   Wrapup                    Available
//! ```
//!
//! Precedence when several facts hold: Ringing/Busy, then Offline (not registered), then
//! Paused, then Wrapup, else Available. So pausing during wrap-up shows `paused` at once
//! while the wrap-up timer keeps running; unpausing before it ends shows `wrapup` again.
//! Unregistering during wrap-up ends the wrap-up: there is no phone left to rest.
//!
//! # Who is "longest idle"
//!
//! Every agent that becomes available gets an idle stamp `(now, n)`, `n` a counter that
//! breaks ties between agents freed at the same instant in the order the events came in.
//! Free agents are kept sorted by that stamp. The stamp is renewed whenever the agent
//! becomes available — registration, end of wrap-up, unpause — and also after a
//! **no-answer**: the agent that let the phone ring goes to the back of the idle line, so
//! the caller it missed is offered to the next agent instead of ringing the same phone
//! again. After [`Agents::ring_cancelled`] (the caller hung up first) the old stamp is kept:
//! the agent did nothing wrong and keeps its turn.

mod agent;
mod elsewhere;
mod restored;
mod strategy;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::{EntryId, QueueId, Queues};
use agent::{Activity, IdleStamp};

pub use agent::{Agent, AgentState};
pub use strategy::Strategy;

/// Index of an agent in configuration order (`[[agent]]` tables, first = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub usize);

/// One agent as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// SIP user the agent registers as.
    pub user: String,
    /// Queues the agent serves, most important first; unknown ids are skipped at dispatch.
    pub queues: Vec<QueueId>,
    /// The agent's tier in a queue when not 1 (`[[agent]] tiers`): a higher tier gets the
    /// queue's callers only while no lower-tier agent of it is free.
    pub tiers: HashMap<QueueId, u32>,
}

/// A match made by [`Agents::next_assignment`]: ring `agent` for `entry` of `queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// The free agent to ring.
    pub agent: AgentId,
    /// The queue the entry waits in.
    pub queue: QueueId,
    /// The waiting entry (still in its queue until the controller removes it on answer).
    pub entry: EntryId,
}

/// A change for the call controller to log and act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentEvent {
    /// The agent's state changed. When `to` is [`AgentState::Available`], run dispatch.
    StateChanged {
        /// Which agent.
        agent: AgentId,
        /// Its state before.
        from: AgentState,
        /// Its state now.
        to: AgentState,
    },
    /// The agent was paused because it let `marks` offers in a row go unanswered.
    AutoPaused {
        /// Which agent.
        agent: AgentId,
        /// Consecutive no-answer marks at the moment it was paused.
        marks: u32,
    },
}

/// Why an input was refused; the agents are left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The id names no configured agent.
    #[error("no agent {0:?}")]
    UnknownAgent(AgentId),
    /// The input does not fit what the agent is doing (e.g. `answered` while not ringing).
    #[error("agent {agent:?} is {state}, expected {expected}")]
    WrongState {
        /// Which agent.
        agent: AgentId,
        /// What it is doing.
        state: AgentState,
        /// What the input requires.
        expected: AgentState,
    },
    /// The entry is already being offered to another agent.
    #[error("entry {entry:?} is already ringing agent {agent:?}")]
    AlreadyOffered {
        /// The entry.
        entry: EntryId,
        /// The agent it is ringing.
        agent: AgentId,
    },
    /// Ring-all: the entry is not being offered to anyone yet, so there is no ring to join.
    #[error("entry {0:?} is not ringing any agent")]
    NotOffered(EntryId),
}

/// Every configured agent, the idle line and the wrap-up timers.
#[derive(Debug, Clone)]
pub struct Agents {
    agents: Vec<Agent>,
    /// Agents serving each queue, so per-queue counts do not scan everyone.
    serving: HashMap<QueueId, Vec<AgentId>>,
    /// Exactly the agents in state Available, longest idle first.
    available: BTreeSet<(IdleStamp, AgentId)>,
    /// Wrap-up deadlines, earliest first.
    wrapups: BTreeSet<(Instant, AgentId)>,
    /// Entries being offered, and to whom (the agents in state Ringing): one agent, or
    /// several at once for a `ring-all` queue's caller, first rung first.
    offers: HashMap<EntryId, Vec<AgentId>>,
    next_stamp: u64,
    /// Bumped on every change of any agent's facts, so a reader can tell whether what it
    /// derived from them (the wait forecast) still holds.
    changes: u64,
    /// Latest `now` seen; an earlier one is ignored (time never goes back in here).
    now: Option<Instant>,
    events: VecDeque<AgentEvent>,
    /// Each queue's strategy when not longest idle.
    strategies: HashMap<QueueId, Strategy>,
    /// Tiers other than 1, by agent and queue.
    tiers: HashMap<(AgentId, QueueId), u32>,
    /// The agent offered each queue's last caller (round-robin).
    last_served: HashMap<QueueId, AgentId>,
    /// Seed of the `random` strategy's draws.
    seed: u64,
    /// Offers made so far, mixed into each random draw.
    offers_made: u64,
}

impl Agents {
    /// All agents offline, in configuration order ([`AgentId`]`(0)` first).
    pub fn new(agents: impl IntoIterator<Item = AgentSpec>) -> Self {
        let specs: Vec<AgentSpec> = agents.into_iter().collect();
        let tiers = specs
            .iter()
            .enumerate()
            .flat_map(|(i, spec)| {
                spec.tiers
                    .iter()
                    .filter(|&(_, &tier)| tier != 1)
                    .map(move |(&queue, &tier)| ((AgentId(i), queue), tier))
            })
            .collect();
        let agents: Vec<Agent> = specs
            .into_iter()
            .map(|spec| Agent {
                user: spec.user,
                queues: spec.queues,
                registered: false,
                paused: false,
                activity: Activity::Idle,
                elsewhere: None,
                state: AgentState::Offline,
                state_since: None,
                idle: None,
                calls_taken: 0,
                calls_today: 0,
                talk_today: Duration::ZERO,
                no_answer_marks: 0,
                missed_calls: 0,
            })
            .collect();
        let mut serving: HashMap<QueueId, Vec<AgentId>> = HashMap::new();
        for (i, agent) in agents.iter().enumerate() {
            for &queue in &agent.queues {
                let list = serving.entry(queue).or_default();
                // A queue listed twice by one agent must not count that agent twice.
                if list.last() != Some(&AgentId(i)) {
                    list.push(AgentId(i));
                }
            }
        }
        Self {
            agents,
            serving,
            available: BTreeSet::new(),
            wrapups: BTreeSet::new(),
            offers: HashMap::new(),
            next_stamp: 0,
            changes: 0,
            now: None,
            events: VecDeque::new(),
            strategies: HashMap::new(),
            tiers,
            last_served: HashMap::new(),
            seed: 0,
            offers_made: 0,
        }
    }

    /// Sets how `queue` picks among its free agents (default: longest idle).
    pub fn set_strategy(&mut self, queue: QueueId, strategy: Strategy) {
        if strategy == Strategy::LongestIdle {
            self.strategies.remove(&queue);
        } else {
            self.strategies.insert(queue, strategy);
        }
    }

    /// Seeds the `random` strategy's draws (the controller passes its own seeded source).
    pub fn seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// A new day began: today's calls and talk time start from zero.
    pub fn new_day(&mut self) {
        for agent in &mut self.agents {
            agent.calls_today = 0;
            agent.talk_today = Duration::ZERO;
        }
    }

    /// The agent's tier in `queue` (1 unless configured).
    pub fn tier(&self, agent: AgentId, queue: QueueId) -> u32 {
        self.tiers.get(&(agent, queue)).copied().unwrap_or(1)
    }

    /// Records that `assignment` was acted on: round-robin continues after its agent, and the
    /// next random draw differs.
    pub fn served(&mut self, assignment: Assignment) {
        self.last_served.insert(assignment.queue, assignment.agent);
        self.offers_made += 1;
    }

    /// Number of configured agents.
    pub fn len(&self) -> usize {
        self.agents.len()
    }

    /// Whether no agent is configured.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// The agent with this id.
    pub fn get(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(id.0)
    }

    /// The id of the agent registering as `user`.
    pub fn find(&self, user: &str) -> Option<AgentId> {
        self.agents.iter().position(|a| a.user == user).map(AgentId)
    }

    /// Every agent with its id, in configuration order (for the admin API).
    pub fn iter(&self) -> impl Iterator<Item = (AgentId, &Agent)> {
        self.agents.iter().enumerate().map(|(i, a)| (AgentId(i), a))
    }

    /// The agent whose phone rings for `entry` (to CANCEL it when the caller hangs up).
    pub fn offered_to(&self, entry: EntryId) -> Option<AgentId> {
        self.offers
            .get(&entry)
            .and_then(|agents| agents.first())
            .copied()
    }

    /// Agents serving `queue` that are registered and not paused, whatever they are doing:
    /// the `n` of the wait estimate (docs/behaviour.md §4).
    pub fn staffed(&self, queue: QueueId) -> usize {
        self.count_serving(queue, |a| a.registered && !a.paused)
    }

    /// Agents serving `queue` that are available right now.
    pub fn free(&self, queue: QueueId) -> usize {
        self.count_serving(queue, |a| a.state == AgentState::Available)
    }

    /// What each staffed agent of `queue` is doing, for the wait forecast
    /// (docs/behaviour.md §4): free, on a call for how long (a phone ringing counts as a call
    /// just begun), or resting for how much longer.
    pub fn outlook(
        &self,
        queue: QueueId,
        now: Instant,
    ) -> Vec<crate::queue::forecast::AgentOutlook> {
        use crate::queue::forecast::AgentOutlook;
        let Some(ids) = self.serving.get(&queue) else {
            return Vec::new();
        };
        ids.iter()
            .map(|id| &self.agents[id.0])
            .filter(|a| a.registered && !a.paused)
            .map(|a| match a.activity {
                // Held by another node: ringing or talking there counts as a call.
                Activity::Idle if a.elsewhere.is_some() => AgentOutlook::Busy {
                    elapsed: a.state_since.map_or(std::time::Duration::ZERO, |since| {
                        now.saturating_duration_since(since)
                    }),
                },
                Activity::Idle => AgentOutlook::Free,
                Activity::Ringing(_) => AgentOutlook::Busy {
                    elapsed: std::time::Duration::ZERO,
                },
                Activity::Busy => AgentOutlook::Busy {
                    elapsed: a.state_since.map_or(std::time::Duration::ZERO, |since| {
                        now.saturating_duration_since(since)
                    }),
                },
                Activity::Wrapup(until) => AgentOutlook::Resting {
                    remaining: until.saturating_duration_since(now),
                },
            })
            .collect()
    }

    /// How many times any agent's facts have changed: equal counts, nothing changed.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn count_serving(&self, queue: QueueId, pred: impl Fn(&Agent) -> bool) -> usize {
        self.serving.get(&queue).map_or(0, |ids| {
            ids.iter().filter(|id| pred(&self.agents[id.0])).count()
        })
    }

    /// The phone registered (a refresh of an existing registration changes nothing).
    pub fn registered(&mut self, now: Instant, id: AgentId) -> Result<(), AgentError> {
        self.check(id)?;
        let now = self.clock(now);
        self.update(now, id, true, |a| a.registered = true);
        Ok(())
    }

    /// The registration ended (unregister or expiry). A ringing or answered call goes on; the
    /// agent shows offline once it is over, without wrap-up. Wrap-up in progress ends.
    pub fn unregistered(&mut self, now: Instant, id: AgentId) -> Result<(), AgentError> {
        self.check(id)?;
        let now = self.clock(now);
        self.update(now, id, true, |a| {
            a.registered = false;
            if let Activity::Wrapup(_) = a.activity {
                a.activity = Activity::Idle;
            }
        });
        Ok(())
    }

    /// Pause (admin API). A call in progress goes on; no new offer is made until unpaused.
    pub fn pause(&mut self, now: Instant, id: AgentId) -> Result<(), AgentError> {
        self.check(id)?;
        let now = self.clock(now);
        self.update(now, id, true, |a| a.paused = true);
        Ok(())
    }

    /// Unpause (admin API); also clears the no-answer marks so the next miss does not pause
    /// the agent again at once. The agent joins the back of the idle line.
    pub fn unpause(&mut self, now: Instant, id: AgentId) -> Result<(), AgentError> {
        self.check(id)?;
        let now = self.clock(now);
        self.update(now, id, true, |a| {
            if a.paused {
                a.paused = false;
                a.no_answer_marks = 0;
            }
        });
        Ok(())
    }

    /// The controller started ringing an available agent for `entry` (which stays in its
    /// queue). From now on dispatch skips both the agent and the entry.
    pub fn ringing(&mut self, now: Instant, id: AgentId, entry: EntryId) -> Result<(), AgentError> {
        self.expect(id, AgentState::Available)?;
        if let Some(agent) = self.offered_to(entry) {
            return Err(AgentError::AlreadyOffered { entry, agent });
        }
        let now = self.clock(now);
        self.update(now, id, true, |a| a.activity = Activity::Ringing(entry));
        Ok(())
    }

    /// Ring-all: one more available agent rings for `entry`, which is already being offered
    /// to another agent of its queue ([`Agents::ringing`] first, then this for the others).
    /// The first to answer takes the caller; the controller CANCELs the rest
    /// ([`Agents::ring_cancelled`], no mark).
    pub fn ringing_too(
        &mut self,
        now: Instant,
        id: AgentId,
        entry: EntryId,
    ) -> Result<(), AgentError> {
        self.expect(id, AgentState::Available)?;
        if self.offered_to(entry).is_none() {
            return Err(AgentError::NotOffered(entry));
        }
        let now = self.clock(now);
        self.update(now, id, true, |a| a.activity = Activity::Ringing(entry));
        Ok(())
    }

    /// Ring-all (`strategy = "ring-all"`): the other free agents to ring with
    /// `assignment`'s agent for its caller: every available agent `skip` does not name that
    /// would take that queue now, at the chosen agent's tier, in idle order. Empty for any
    /// other strategy. Ask before ringing the chosen agent.
    pub fn ring_all_too(
        &self,
        queues: &Queues,
        assignment: Assignment,
        offered: impl Fn(EntryId) -> bool,
        skip: impl Fn(AgentId) -> bool,
    ) -> Vec<AgentId> {
        let queue = assignment.queue;
        if self.strategies.get(&queue) != Some(&Strategy::RingAll) {
            return Vec::new();
        }
        let tier = self.tier(assignment.agent, queue);
        self.available
            .iter()
            .map(|&(_, id)| id)
            .filter(|&id| id != assignment.agent && !skip(id) && self.tier(id, queue) == tier)
            .filter(|&id| {
                self.takes(id, queues, &offered)
                    .is_some_and(|(q, _)| q == queue)
            })
            .collect()
    }

    /// What a free agent would take: the first entry nobody is offered, from the first
    /// queue in its own order that has one.
    fn takes(
        &self,
        agent: AgentId,
        queues: &Queues,
        offered: &impl Fn(EntryId) -> bool,
    ) -> Option<(QueueId, EntryId)> {
        self.agents[agent.0].queues.iter().find_map(|&queue| {
            let entry = queues
                .queue(queue)?
                .iter()
                .find(|e| !self.offers.contains_key(&e.id) && !offered(e.id))?;
            Some((queue, entry.id))
        })
    }

    /// The agent answered: it is busy and its no-answer marks are cleared. The controller
    /// removes the entry from its queue ([`super::LeaveReason::Dispatched`]).
    pub fn answered(&mut self, now: Instant, id: AgentId) -> Result<(), AgentError> {
        self.expect(id, AgentState::Ringing)?;
        let now = self.clock(now);
        self.update(now, id, true, |a| {
            a.activity = Activity::Busy;
            a.calls_taken += 1;
            a.calls_today += 1;
            a.no_answer_marks = 0;
        });
        Ok(())
    }

    /// The agent did not answer (timeout, `486`, `480`, `603`): one more no-answer mark; at
    /// `max_no_answer` marks in a row (0 behaves like 1) the agent is paused, otherwise it
    /// goes to the back of the idle line. The entry was never removed from its queue, so the
    /// next [`Agents::next_assignment`] offers it to another agent.
    pub fn no_answer(
        &mut self,
        now: Instant,
        id: AgentId,
        max_no_answer: u32,
    ) -> Result<(), AgentError> {
        self.no_answer_then_rest(now, id, max_no_answer, Duration::ZERO)
    }

    /// [`Agents::no_answer`], after which the agent rests for `backoff` (as in wrap-up)
    /// before it is offered another call: a phone that died without unregistering then
    /// costs each caller one ring timeout at most once per `backoff`, not back to back.
    pub fn no_answer_then_rest(
        &mut self,
        now: Instant,
        id: AgentId,
        max_no_answer: u32,
        backoff: Duration,
    ) -> Result<(), AgentError> {
        self.expect(id, AgentState::Ringing)?;
        let mut auto_paused = None;
        let now = self.clock(now);
        self.update(now, id, true, |a| {
            a.activity = match now.checked_add(backoff) {
                Some(until) if !backoff.is_zero() && a.registered => Activity::Wrapup(until),
                _ => Activity::Idle,
            };
            a.no_answer_marks = a.no_answer_marks.saturating_add(1);
            a.missed_calls += 1;
            if a.no_answer_marks >= max_no_answer && !a.paused {
                a.paused = true;
                auto_paused = Some(a.no_answer_marks);
            }
        });
        if let Some(marks) = auto_paused {
            self.events
                .push_back(AgentEvent::AutoPaused { agent: id, marks });
        }
        Ok(())
    }

    /// The caller hung up (or was taken away) while the agent rang: the agent is available
    /// again with no mark and keeps its old place in the idle line.
    pub fn ring_cancelled(&mut self, now: Instant, id: AgentId) -> Result<(), AgentError> {
        self.expect(id, AgentState::Ringing)?;
        let now = self.clock(now);
        self.update(now, id, false, |a| a.activity = Activity::Idle);
        Ok(())
    }

    /// The call ended (either side hung up): wrap-up until `now + wrapup` (none if `wrapup`
    /// is zero or the agent unregistered during the call).
    pub fn call_ended(
        &mut self,
        now: Instant,
        id: AgentId,
        wrapup: Duration,
    ) -> Result<(), AgentError> {
        self.expect(id, AgentState::Busy)?;
        let now = self.clock(now);
        self.update(now, id, true, |a| {
            // Busy since the answer: that is the call's talk time.
            if let Some(since) = a.state_since {
                a.talk_today += now.saturating_duration_since(since);
            }
            a.activity = match now.checked_add(wrapup) {
                Some(until) if !wrapup.is_zero() && a.registered => Activity::Wrapup(until),
                _ => Activity::Idle,
            };
        });
        Ok(())
    }

    /// Ends every wrap-up due by `now`. An agent freed this way counts as idle since its
    /// deadline, not since `now`, so a late wake-up does not cost it its turn.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        while let Some(&(until, id)) = self.wrapups.first() {
            if until > now {
                break;
            }
            self.update(until, id, true, |a| a.activity = Activity::Idle);
        }
    }

    /// The next wrap-up deadline, if any agent is in wrap-up.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wrapups.first().map(|&(until, _)| until)
    }

    /// The next change to act on, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events.pop_front()
    }

    /// The next match to make, without changing anything: among available agents, longest
    /// idle first, the first one that has something to take; it takes the first entry (in
    /// dispatch order) that is not being offered, from the first queue in its own order that
    /// has one. Entries are skipped when `offered` says so (the controller's view: callbacks
    /// being dialled, transfers in flight) or when an agent is ringing for them.
    ///
    /// Cost: O(available agents × queues per agent × log n) plus the skipped entries, which
    /// are at most the number of entries `offered` accepts. Ring the agent with
    /// [`Agents::ringing`] before asking again, or use [`Agents::assign_next`]; repeat until
    /// `None` to make every match after an event.
    pub fn next_assignment(
        &self,
        queues: &Queues,
        offered: impl Fn(EntryId) -> bool,
    ) -> Option<Assignment> {
        self.next_assignment_among(queues, offered, |_| false)
    }

    /// [`Agents::next_assignment`] among the available agents `skip` does not name: a node
    /// of a cluster leaves out the agents it has already matched, in its own pass, with
    /// callers another node holds (docs/cluster.md "Agents and claims").
    pub fn next_assignment_among(
        &self,
        queues: &Queues,
        offered: impl Fn(EntryId) -> bool,
        skip: impl Fn(AgentId) -> bool,
    ) -> Option<Assignment> {
        let takes = |agent: AgentId| self.takes(agent, queues, &offered);
        let (first, (queue, entry)) = self
            .available
            .iter()
            .filter(|&&(_, agent)| !skip(agent))
            .find_map(|&(_, agent)| takes(agent).map(|t| (agent, t)))?;
        let strategy = self.strategies.get(&queue).copied().unwrap_or_default();
        let tiered = self.tiers.keys().any(|&(_, q)| q == queue);
        if strategy == Strategy::LongestIdle && !tiered {
            return Some(Assignment {
                agent: first,
                queue,
                entry,
            });
        }
        // Every free agent that would take this queue's entry now (longest idle first).
        let candidates: Vec<strategy::Candidate<'_>> = self
            .available
            .iter()
            .filter(|&&(_, agent)| !skip(agent) && takes(agent).is_some_and(|(q, _)| q == queue))
            .map(|&(idle, id)| strategy::Candidate {
                idle,
                id,
                agent: &self.agents[id.0],
                tier: self.tier(id, queue),
            })
            .collect();
        let draw = mix(self.seed ^ mix(self.offers_made ^ (entry.0 << 20)));
        let serving = self.serving.get(&queue).map_or(&[][..], Vec::as_slice);
        let last = self.last_served.get(&queue).copied();
        let agent = strategy::pick(strategy, &candidates, serving, last, draw)?;
        Some(Assignment {
            agent,
            queue,
            entry,
        })
    }

    /// [`Agents::next_assignment`], then [`Agents::ringing`] for it: the agent is reserved
    /// and the entry marked as offered.
    pub fn assign_next(
        &mut self,
        now: Instant,
        queues: &Queues,
        offered: impl Fn(EntryId) -> bool,
    ) -> Option<Assignment> {
        let assignment = self.next_assignment(queues, offered)?;
        self.ringing(now, assignment.agent, assignment.entry)
            .expect("next_assignment picks only available agents and entries nobody rings for");
        Some(assignment)
    }

    /// Clamps `now` so time never goes backwards inside the machine.
    fn clock(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |last| last.max(now));
        self.now = Some(now);
        now
    }

    fn check(&self, id: AgentId) -> Result<&Agent, AgentError> {
        self.agents.get(id.0).ok_or(AgentError::UnknownAgent(id))
    }

    fn expect(&self, id: AgentId, expected: AgentState) -> Result<(), AgentError> {
        let state = self.check(id)?.state;
        if state == expected {
            Ok(())
        } else {
            Err(AgentError::WrongState {
                agent: id,
                state,
                expected,
            })
        }
    }

    /// The one place agent facts change: applies `change`, then keeps the offer map, the
    /// wrap-up timers, the idle line and the cached state in step and reports the change.
    /// `fresh_idle`: an agent becoming available gets a new idle stamp (else keeps its old).
    /// `now` must already be clamped by [`Agents::clock`] (or be a past wrap-up deadline).
    fn update(
        &mut self,
        now: Instant,
        id: AgentId,
        fresh_idle: bool,
        change: impl FnOnce(&mut Agent),
    ) {
        self.changes += 1;
        let agent = &mut self.agents[id.0];
        let (from, before, offer) = (agent.state, agent.activity, agent.offer());
        change(agent);
        if agent.activity != before {
            if let Activity::Wrapup(until) = before {
                self.wrapups.remove(&(until, id));
            }
            if let Activity::Wrapup(until) = agent.activity {
                self.wrapups.insert((until, id));
            }
        }
        if agent.offer() != offer {
            if let Some(entry) = offer
                && let Some(agents) = self.offers.get_mut(&entry)
            {
                agents.retain(|&a| a != id);
                if agents.is_empty() {
                    self.offers.remove(&entry);
                }
            }
            if let Some(entry) = agent.offer() {
                self.offers.entry(entry).or_default().push(id);
            }
        }
        let to = agent.derive();
        if to == from {
            return;
        }
        if from == AgentState::Available {
            let stamp = agent.idle.expect("an available agent has an idle stamp");
            self.available.remove(&(stamp, id));
        }
        if to == AgentState::Available {
            let stamp = match agent.idle {
                Some(stamp) if !fresh_idle => stamp,
                _ => {
                    self.next_stamp += 1;
                    (now, self.next_stamp)
                }
            };
            agent.idle = Some(stamp);
            self.available.insert((stamp, id));
        }
        agent.state = to;
        agent.state_since = Some(now);
        self.events.push_back(AgentEvent::StateChanged {
            agent: id,
            from,
            to,
        });
    }
}

/// A 64-bit mixer (SplitMix64's finaliser): spreads a seed and a counter into a draw.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
