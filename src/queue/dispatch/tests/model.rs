//! Randomized check against a naive model: agent states re-derived from plain flags, and the
//! dispatch choice made by sorting every free agent and scanning every waiting entry.
//!
//! Every input happens at its own whole millisecond and wrap-ups last a fractional number of
//! milliseconds, so no two agents ever share an idle instant and "longest idle" is a strict
//! order the model can compute from instants alone.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

const WRAPUP: Duration = Duration::from_micros(7_500);
const MAX_NO_ANSWER: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Idle,
    Ringing(EntryId),
    Busy,
    Wrapup(Instant),
}

#[derive(Debug, Clone)]
struct ModelAgent {
    queues: Vec<QueueId>,
    registered: bool,
    paused: bool,
    act: Act,
    idle_since: Option<Instant>,
    marks: u32,
}

impl ModelAgent {
    fn state(&self) -> AgentState {
        match (self.act, self.registered, self.paused) {
            (Act::Ringing(_), _, _) => AgentState::Ringing,
            (Act::Busy, _, _) => AgentState::Busy,
            (_, false, _) => AgentState::Offline,
            (_, true, true) => AgentState::Paused,
            (Act::Wrapup(_), true, false) => AgentState::Wrapup,
            (Act::Idle, true, false) => AgentState::Available,
        }
    }
}

struct Model {
    agents: Vec<ModelAgent>,
    /// Waiting entries per queue as (level, arrival, id), in no particular order.
    waiting: Vec<Vec<(Level, u64, EntryId)>>,
    /// Entries the "controller" is busy with outside the agents (callbacks being dialled).
    extra: HashSet<EntryId>,
}

impl Model {
    fn change(&mut self, i: usize, now: Instant, fresh: bool, f: impl FnOnce(&mut ModelAgent)) {
        let a = &mut self.agents[i];
        let before = a.state();
        f(a);
        if a.state() == AgentState::Available && before != AgentState::Available && fresh {
            a.idle_since = Some(now);
        }
    }

    fn offered(&self, e: EntryId) -> bool {
        self.extra.contains(&e) || self.agents.iter().any(|a| a.act == Act::Ringing(e))
    }

    fn assignment(&self) -> Option<Assignment> {
        let mut free: Vec<usize> = (0..self.agents.len())
            .filter(|&i| self.agents[i].state() == AgentState::Available)
            .collect();
        free.sort_by_key(|&i| self.agents[i].idle_since.expect("available means stamped"));
        for i in free {
            for &queue in &self.agents[i].queues {
                let Some(list) = self.waiting.get(queue.0) else {
                    continue;
                };
                let mut list = list.clone();
                list.sort();
                if let Some(&(_, _, entry)) = list.iter().find(|e| !self.offered(e.2)) {
                    return Some(Assignment {
                        agent: AgentId(i),
                        queue,
                        entry,
                    });
                }
            }
        }
        None
    }

    fn remove_entry(&mut self, e: EntryId) {
        for list in &mut self.waiting {
            list.retain(|x| x.2 != e);
        }
        self.extra.remove(&e);
    }

    fn pick(&self, rng: &mut StdRng, want: impl Fn(&ModelAgent) -> bool) -> Option<usize> {
        let ids: Vec<usize> = (0..self.agents.len())
            .filter(|&i| want(&self.agents[i]))
            .collect();
        (!ids.is_empty()).then(|| ids[rng.random_range(0..ids.len())])
    }
}

fn random_queues(rng: &mut StdRng) -> Vec<QueueId> {
    let mut all = vec![QueueId(0), QueueId(1), QueueId(2)];
    for i in (1..all.len()).rev() {
        all.swap(i, rng.random_range(0..=i));
    }
    all.truncate(rng.random_range(1..=3));
    if rng.random_bool(0.2) {
        // A queue id that does not exist must simply be skipped.
        all.insert(rng.random_range(0..=all.len()), QueueId(7));
    }
    all
}

/// How often the interesting paths ran, so the test cannot pass by never reaching them.
#[derive(Default)]
struct Seen {
    assigned: usize,
    skipped_extra: usize,
    cancelled: usize,
    auto_paused: usize,
    wrapups_ended: usize,
}

fn run(seed: u64, seen: &mut Seen) {
    let mut rng = StdRng::seed_from_u64(seed);
    let t0 = Instant::now();
    let mut qs = Queues::new();
    for name in ["premium", "support", "sales"] {
        qs.add_queue(name, usize::MAX);
    }
    let n_agents = rng.random_range(1..=6);
    let specs: Vec<AgentSpec> = (0..n_agents)
        .map(|i| AgentSpec {
            user: format!("agent{i}"),
            queues: random_queues(&mut rng),
            tiers: std::collections::HashMap::new(),
        })
        .collect();
    let mut model = Model {
        agents: specs
            .iter()
            .map(|s| ModelAgent {
                queues: s.queues.clone(),
                registered: false,
                paused: false,
                act: Act::Idle,
                idle_since: None,
                marks: 0,
            })
            .collect(),
        waiting: vec![Vec::new(); 3],
        extra: HashSet::new(),
    };
    let mut ags = Agents::new(specs);
    let mut next_id = 0u64;

    for step in 1..=3_000u64 {
        let now = t0 + Duration::from_millis(step);
        match rng.random_range(0..12) {
            0 | 1 => {
                let queue = rng.random_range(0..3);
                let level = [0, 5, 10][rng.random_range(0..3)];
                next_id += 1;
                join(&mut qs, now, QueueId(queue), next_id, level);
                model.waiting[queue].push((level, next_id, EntryId(next_id)));
            }
            2 => {
                // A caller hangs up; the controller cancels the agent ringing for it.
                let all: Vec<EntryId> = model.waiting.iter().flatten().map(|e| e.2).collect();
                if let Some(&e) = all.get(rng.random_range(0..all.len().max(1))) {
                    qs.leave(e, LeaveReason::Abandoned).unwrap();
                    let ringing = model.agents.iter().position(|a| a.act == Act::Ringing(e));
                    assert_eq!(ags.offered_to(e), ringing.map(AgentId));
                    if let Some(i) = ringing {
                        seen.cancelled += 1;
                        ags.ring_cancelled(now, AgentId(i)).unwrap();
                        model.change(i, now, false, |a| a.act = Act::Idle);
                    }
                    model.remove_entry(e);
                }
            }
            3 => {
                let i = rng.random_range(0..n_agents);
                if rng.random_bool(0.7) {
                    ags.registered(now, AgentId(i)).unwrap();
                    model.change(i, now, true, |a| a.registered = true);
                } else {
                    ags.unregistered(now, AgentId(i)).unwrap();
                    model.change(i, now, true, |a| {
                        a.registered = false;
                        if let Act::Wrapup(_) = a.act {
                            a.act = Act::Idle;
                        }
                    });
                }
            }
            4 => {
                let i = rng.random_range(0..n_agents);
                if rng.random_bool(0.4) {
                    ags.pause(now, AgentId(i)).unwrap();
                    model.change(i, now, true, |a| a.paused = true);
                } else {
                    ags.unpause(now, AgentId(i)).unwrap();
                    model.change(i, now, true, |a| {
                        if a.paused {
                            a.paused = false;
                            a.marks = 0;
                        }
                    });
                }
            }
            5 | 6 => {
                let offered = |e: EntryId| model.extra.contains(&e);
                let got = ags.next_assignment(&qs, offered);
                if let Some(m) = got {
                    seen.assigned += 1;
                    // Would the head of that queue have been taken without the predicate?
                    let head = qs.queue(m.queue).and_then(|q| q.head()).map(|e| e.id);
                    seen.skipped_extra += usize::from(head != Some(m.entry));
                    assert_eq!(state(&ags, m.agent), AgentState::Available);
                    assert!(!model.offered(m.entry), "offered entry assigned: {m:?}");
                    assert_eq!(qs.queue_of(m.entry), Some(m.queue));
                }
                assert_eq!(got, model.assignment(), "seed {seed} step {step}");
                if let Some(m) = ags.assign_next(now, &qs, offered) {
                    model.change(m.agent.0, now, true, |a| a.act = Act::Ringing(m.entry));
                }
            }
            7 => {
                let Some(i) = model.pick(&mut rng, |a| matches!(a.act, Act::Ringing(_))) else {
                    continue;
                };
                let Act::Ringing(e) = model.agents[i].act else {
                    unreachable!("picked a ringing agent")
                };
                if rng.random_bool(0.5) {
                    ags.answered(now, AgentId(i)).unwrap();
                    qs.leave(e, LeaveReason::Dispatched).unwrap();
                    model.remove_entry(e);
                    model.change(i, now, true, |a| {
                        a.act = Act::Busy;
                        a.marks = 0;
                    });
                } else {
                    ags.no_answer(now, AgentId(i), MAX_NO_ANSWER).unwrap();
                    model.change(i, now, true, |a| {
                        a.act = Act::Idle;
                        a.marks += 1;
                        if a.marks >= MAX_NO_ANSWER {
                            seen.auto_paused += 1;
                            a.paused = true;
                        }
                    });
                }
            }
            8 => {
                let Some(i) = model.pick(&mut rng, |a| a.act == Act::Busy) else {
                    continue;
                };
                let wrapup = if rng.random_bool(0.2) {
                    Duration::ZERO
                } else {
                    WRAPUP
                };
                ags.call_ended(now, AgentId(i), wrapup).unwrap();
                model.change(i, now, true, |a| {
                    a.act = if a.registered && !wrapup.is_zero() {
                        Act::Wrapup(now + wrapup)
                    } else {
                        Act::Idle
                    };
                });
            }
            9 | 10 => {
                ags.handle_timeout(now);
                for i in 0..n_agents {
                    if let Act::Wrapup(until) = model.agents[i].act
                        && until <= now
                    {
                        seen.wrapups_ended += 1;
                        model.change(i, until, true, |a| a.act = Act::Idle);
                    }
                }
            }
            _ => {
                // The controller starts or stops working on an entry outside the agents.
                let all: Vec<EntryId> = model.waiting.iter().flatten().map(|e| e.2).collect();
                if let Some(&e) = all.get(rng.random_range(0..all.len().max(1)))
                    && !model.extra.remove(&e)
                {
                    model.extra.insert(e);
                }
            }
        }

        for (i, m) in model.agents.iter().enumerate() {
            let real = ags.get(AgentId(i)).unwrap();
            assert_eq!(real.state(), m.state(), "seed {seed} step {step} agent {i}");
            assert_eq!(real.no_answer_marks(), m.marks);
            if m.state() == AgentState::Available {
                assert_eq!(real.idle_since(), m.idle_since, "seed {seed} step {step}");
            }
        }
        let deadline = model
            .agents
            .iter()
            .filter_map(|a| match a.act {
                Act::Wrapup(until) => Some(until),
                _ => None,
            })
            .min();
        assert_eq!(ags.poll_timeout(), deadline);
    }
}

#[test]
fn random_inputs_match_a_naive_model() {
    let mut seen = Seen::default();
    for seed in 0..40 {
        run(seed, &mut seen);
    }
    assert!(seen.assigned > 1_000, "{} assignments", seen.assigned);
    assert!(seen.skipped_extra > 100, "{} skips", seen.skipped_extra);
    assert!(seen.cancelled > 50, "{} cancelled rings", seen.cancelled);
    assert!(seen.auto_paused > 50, "{} auto-pauses", seen.auto_paused);
    assert!(seen.wrapups_ended > 100, "{} wrap-ups", seen.wrapups_ended);
}
