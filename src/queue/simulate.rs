//! `holdfast simulate` (docs/behaviour.md §8, §12): the real queue engine in virtual time, for capacity
//! planning and for measuring how honest the wait estimate is.
//!
//! A discrete-event simulation: a binary heap of timed events (arrival, a caller's patience
//! running out, an agent finishing a call), processed in time order with no sockets and no
//! sleeping, so a day of 10 000 calls takes milliseconds. The queue is the production
//! [`Queues`] engine and the estimate is the production [`estimate`] over the production
//! [`HandleTimes`]; only the callers and agents are synthetic:
//!
//! - arrivals are a Poisson process, at `arrivals_per_hour` on average; with a day
//!   [`Profile`] other than flat the rate follows the hour of the day (thinning, Lewis and
//!   Shedler), its mean over the day still `arrivals_per_hour`; each caller is VIP
//!   (level 0) with probability `vip_share`, otherwise normal (level 5);
//! - handle times are **exponential** with mean `aht` (the textbook Erlang-C assumption) or
//!   **lognormal** with the same mean and shape σ = [`LOGNORMAL_SIGMA`] (coefficient of
//!   variation 0.87), closer to real contact-centre calls;
//! - each caller's patience is exponential with mean `patience`: a caller still waiting when
//!   it runs out hangs up (abandons);
//! - `agents` agents are staffed all day; a free agent takes the head of the queue (VIP
//!   level first, FIFO inside a level), and which free agent takes it is the production
//!   dispatcher's ([`Agents`]) with the queue's `--strategy` and `--tier2-agents` (the last
//!   agents are tier 2: offered callers only while no tier-1 agent is free);
//! - with `--max-wait`, a caller still waiting then overflows: released (`hangup`), or moved
//!   to a second queue at the place its arrival gives it there (`queue`), served by
//!   `--overflow-agents` agents of its own and by the main agents after their own queue.
//!
//! Each caller who has to wait hears an estimate when joining: holdfast's, the production
//! [`forecast`](super::forecast) of its wait told at the quantile its queue's
//! [`Calibration`] has learned, from the same facts holdfast has (each agent's time on its
//! call, the recent handle times, the abandon rate seen so far), and, side by side, the
//! seed's `p × H` with `H` the mean of the recent handle times. For the callers who were
//! then answered, the estimate is compared with the wait they really had, and the
//! calibration learns from it as holdfast's does.
//! Left out of the error figures, and counted separately: callers who abandoned (their real
//! wait is unknown) and callers who joined at position 1, who hear "you are next" and no
//! estimate at all.
//!
//! Arrivals stop after `hours`; the simulation then runs until every caller is answered or
//! has abandoned, so the counts always add up.

mod params;
mod report;
mod routing;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use report::{ErrorStats, EstimateReport, PriorityReport, Report};
pub use routing::{AgentRecord, AgentsReport, OverflowTo};

use super::calibration::{self, Calibration};
use super::dispatch::{AgentId, AgentSpec, AgentState, Agents};
use super::estimate::{HandleTimes, WaitBucket, seed_estimate};
use super::forecast::{AgentOutlook, Forecast, HandleModel, Outlook, forecast};
use super::{EntryId, EntryKind, Level, QueueEvent, QueueId, Queues};

/// Priority level of VIP callers (the `[priorities]` default `vip = 0`).
pub const VIP_LEVEL: Level = 0;
/// Priority level of everyone else (the default `normal = 5`).
pub const NORMAL_LEVEL: Level = 5;
/// Answer-time target of the service level, in seconds (the usual "80/20" convention).
pub const SERVICE_LEVEL_SECS: f64 = 20.0;
/// Upper bound on the expected number of simulated calls, so a typo cannot run for hours.
pub const MAX_EXPECTED_CALLS: f64 = 10_000_000.0;
/// Shape of the lognormal handle times.
pub const LOGNORMAL_SIGMA: f64 = 0.75;

pub use params::{HandleDistribution, ParamError, Params, Profile};

/// What one simulated caller went through; the report is computed from these.
#[derive(Debug, Clone, PartialEq)]
pub struct CallerRecord {
    /// True for a VIP caller.
    pub vip: bool,
    /// Arrival time, seconds from the start.
    pub arrived: f64,
    /// What the caller was told on joining; `None` when an agent was free and the caller
    /// was put through at once, with nothing announced.
    pub announced: Option<Announced>,
    /// How the call ended.
    pub outcome: Outcome,
    /// Moved to the overflow queue at `max_wait` (`--overflow queue`).
    pub moved: bool,
}

/// The entry announcement of a simulated caller who had to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Announced {
    /// Position on joining. At position 1 holdfast says "you are next" and no estimate.
    pub position: usize,
    /// holdfast's estimate: the calibrated quantile of the forecast, seconds.
    pub holdfast: f64,
    /// The seed's estimate, `p × H`, seconds.
    pub seed: f64,
}

/// How a simulated caller's wait ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Still waiting (only while the simulation runs).
    Waiting,
    /// An agent answered after this many seconds of waiting.
    Answered {
        /// Seconds from arrival to answer.
        wait: f64,
    },
    /// The caller hung up after this many seconds of waiting.
    Abandoned {
        /// Seconds from arrival to hang-up.
        wait: f64,
    },
    /// Released at `max_wait` (`--overflow hangup`).
    Overflowed {
        /// Seconds from arrival to the release.
        wait: f64,
    },
}

/// Something that happens at a point of virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The next caller arrives.
    Arrival,
    /// This caller's patience runs out (ignored if it was answered already).
    Patience(u64),
    /// This agent finishes its call.
    Complete(usize),
    /// This caller reaches `max_wait` (ignored if it is not waiting in the main queue).
    MaxWait(u64),
}

/// Virtual time in whole microseconds, so event order is exact and total.
type Micros = u64;

fn micros(seconds: f64) -> Micros {
    (seconds * 1e6).round() as Micros
}

fn seconds(t: Micros) -> f64 {
    t as f64 / 1e6
}

/// Runs the simulation and summarises it. Deterministic for a given `params`.
///
/// `origin` is the `Instant` virtual time 0 maps to (the queue engine takes `Instant`s);
/// any value gives the same report.
pub fn run(params: &Params, origin: Instant) -> Result<Report, ParamError> {
    params.validate()?;
    let mut sim = Sim::new(params, origin);
    sim.run();
    let duration = sim.last_event as f64 / 1e6;
    Ok(Report::new(params.clone(), &sim.callers).with_agents(&sim.agent_records(), duration))
}

/// Runs the simulation and returns every caller's record, in arrival order.
pub fn simulate(params: &Params, origin: Instant) -> Result<Vec<CallerRecord>, ParamError> {
    params.validate()?;
    let mut sim = Sim::new(params, origin);
    sim.run();
    Ok(sim.callers)
}

/// The state of one simulation run.
struct Sim<'a> {
    params: &'a Params,
    rng: StdRng,
    /// Pending events, earliest first; the sequence number keeps equal times in the order
    /// they were scheduled.
    events: BinaryHeap<Reverse<(Micros, u64, Event)>>,
    scheduled: u64,
    queues: Queues,
    queue: super::QueueId,
    handle_times: HandleTimes,
    /// Which quantile of the forecast is told, learned from the answered callers.
    calibration: Calibration,
    /// The forecast each waiting caller was told from, by caller id.
    forecasts: Vec<Option<Forecast>>,
    /// Callers who hung up, and the seconds all departed callers waited: the abandon rate.
    abandons: u64,
    waited_total: f64,
    /// VIP callers so far: the rate at which callers overtake normal ones.
    vip_arrivals: u64,
    /// The production dispatcher: who is free, and who takes which caller.
    agents: Agents,
    /// The second queue callers overflow to (`--overflow queue`).
    overflow_queue: Option<QueueId>,
    /// When each agent's current call was answered.
    answered_at: Vec<Micros>,
    /// Per agent: its tier (0: overflow queue only), calls answered, seconds on calls.
    records: Vec<AgentRecord>,
    /// Time of the last event processed.
    last_event: Micros,
    callers: Vec<CallerRecord>,
    /// The instant virtual time 0 maps to.
    origin: Instant,
    end_of_arrivals: Micros,
}

impl<'a> Sim<'a> {
    fn new(params: &'a Params, origin: Instant) -> Self {
        let mut queues = Queues::new();
        let queue = queues.add_queue("simulated", usize::MAX);
        let overflow_queue = (params.overflow == OverflowTo::Queue && params.max_wait > 0.0)
            .then(|| queues.add_queue("overflow", usize::MAX));
        let mut records = Vec::new();
        let mut specs = Vec::new();
        for i in 0..params.agents + params.overflow_agents {
            let tier = match i {
                i if i >= params.agents => 0,
                i if i >= params.agents - params.tier2_agents => 2,
                _ => 1,
            };
            let serves = match (tier, overflow_queue) {
                (0, Some(over)) => vec![over],
                (_, Some(over)) => vec![queue, over],
                _ => vec![queue],
            };
            specs.push(AgentSpec {
                user: format!("agent{i}"),
                queues: serves,
                tiers: if tier == 2 {
                    [(queue, 2)].into_iter().collect()
                } else {
                    Default::default()
                },
            });
            records.push(AgentRecord {
                tier,
                calls: 0,
                talk_s: 0.0,
            });
        }
        let mut agents = Agents::new(specs);
        agents.set_strategy(queue, params.strategy);
        agents.seed(params.seed);
        for i in 0..records.len() {
            // Fresh ids of a fresh dispatcher: registering cannot be refused.
            let _ = agents.registered(origin, AgentId(i));
        }
        while agents.poll_event().is_some() {}
        Self {
            params,
            rng: StdRng::seed_from_u64(params.seed),
            events: BinaryHeap::new(),
            scheduled: 0,
            queues,
            queue,
            handle_times: HandleTimes::new(Duration::from_secs_f64(params.default_handle_time)),
            calibration: Calibration::default(),
            forecasts: Vec::new(),
            abandons: 0,
            waited_total: 0.0,
            vip_arrivals: 0,
            agents,
            overflow_queue,
            answered_at: vec![0; records.len()],
            records,
            last_event: 0,
            callers: Vec::with_capacity((params.arrivals_per_hour * params.hours * 1.1) as usize),
            origin,
            end_of_arrivals: micros(params.hours * 3600.0),
        }
    }

    /// An exponential sample with this mean, by inversion of the distribution function.
    fn exponential(&mut self, mean: f64) -> f64 {
        let u: f64 = self.rng.random(); // [0, 1), so 1 - u is in (0, 1] and ln is finite
        -mean * (1.0 - u).ln()
    }

    /// A handle time with mean `aht`, from the configured distribution.
    fn handle_time(&mut self) -> f64 {
        match self.params.handle_distribution {
            HandleDistribution::Exponential => self.exponential(self.params.aht),
            HandleDistribution::Lognormal => {
                let (u, v): (f64, f64) = (1.0 - self.rng.random::<f64>(), self.rng.random());
                let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                let mu = self.params.aht.ln() - LOGNORMAL_SIGMA * LOGNORMAL_SIGMA / 2.0;
                (mu + LOGNORMAL_SIGMA * normal).exp()
            }
        }
    }

    /// The gap to the next arrival after `now` (seconds), following the day's profile:
    /// candidates at the peak rate, each kept with probability weight ÷ peak.
    fn next_arrival(&mut self, now: f64) -> f64 {
        let profile = &self.params.profile;
        let peak = profile.peak();
        let mean_gap = 3600.0 / (self.params.arrivals_per_hour * peak);
        let mut t = now;
        loop {
            t += self.exponential(mean_gap);
            let keep = self.params.profile.weight_at(t) / peak;
            if self.rng.random::<f64>() < keep {
                return t - now;
            }
        }
    }

    fn schedule(&mut self, at: Micros, event: Event) {
        self.scheduled += 1;
        self.events.push(Reverse((at, self.scheduled, event)));
    }

    fn run(&mut self) {
        let first = micros(self.next_arrival(0.0));
        if first <= self.end_of_arrivals {
            self.schedule(first, Event::Arrival);
        }
        while let Some(Reverse((now, _, event))) = self.events.pop() {
            self.last_event = now;
            match event {
                Event::Arrival => self.arrive(now),
                Event::Patience(id) => self.give_up(now, id),
                Event::Complete(agent) => self.complete(now, agent),
                Event::MaxWait(id) => self.max_wait(now, id),
            }
        }
    }

    fn arrive(&mut self, now: Micros) {
        let gap = micros(self.next_arrival(seconds(now)));
        if now + gap <= self.end_of_arrivals {
            self.schedule(now + gap, Event::Arrival);
        }
        let id = self.callers.len() as u64;
        let vip = self.rng.random::<f64>() < self.params.vip_share;
        let level = if vip { VIP_LEVEL } else { NORMAL_LEVEL };
        let at = self.origin + Duration::from_micros(now);
        self.queues
            .join(at, self.queue, EntryId(id), level, EntryKind::Caller)
            .expect("the simulated queue has no length limit and ids are fresh");
        let position = match self.queues.poll_event() {
            Some(QueueEvent::Joined { position, .. }) => position,
            other => unreachable!("a join reports Joined first, got {other:?}"),
        };
        let mean = self.handle_times.mean();
        self.vip_arrivals += u64::from(vip);
        let predicted = self.forecast(now, position, vip);
        let holdfast = self.calibration.estimate(&predicted).as_secs_f64();
        let seed = seed_estimate(position, mean).as_secs_f64();
        self.forecasts.push(Some(predicted));
        self.callers.push(CallerRecord {
            vip,
            arrived: seconds(now),
            announced: Some(Announced {
                position,
                holdfast,
                seed,
            }),
            outcome: Outcome::Waiting,
            moved: false,
        });
        let patience = micros(self.exponential(self.params.patience));
        self.schedule(now + patience, Event::Patience(id));
        if self.params.max_wait > 0.0 {
            self.schedule(now + micros(self.params.max_wait), Event::MaxWait(id));
        }
        self.dispatch(now);
        // Put through at once: the caller never heard an announcement.
        if let Outcome::Answered { .. } = self.callers[id as usize].outcome {
            self.callers[id as usize].announced = None;
        }
    }

    fn give_up(&mut self, now: Micros, id: u64) {
        if self
            .queues
            .leave(EntryId(id), super::LeaveReason::Abandoned)
            .is_none()
        {
            return; // answered before its patience ran out
        }
        let caller = &mut self.callers[id as usize];
        let wait = seconds(now) - caller.arrived;
        caller.outcome = Outcome::Abandoned { wait };
        self.abandons += 1;
        self.waited_total += wait;
        self.drain_queue_events();
    }

    fn complete(&mut self, now: Micros, agent: usize) {
        let handle = Duration::from_micros(now - self.answered_at[agent]);
        self.handle_times.record(handle);
        self.records[agent].talk_s += handle.as_secs_f64();
        let at = self.origin + Duration::from_micros(now);
        // The agent was busy on this call: ending it cannot be refused.
        let _ = self.agents.call_ended(at, AgentId(agent), Duration::ZERO);
        self.dispatch(now);
    }

    /// A caller reaches `max_wait` in the main queue: released, or moved to the overflow
    /// queue at the place its arrival gives it there.
    fn max_wait(&mut self, now: Micros, id: u64) {
        let entry = EntryId(id);
        if self.queues.queue_of(entry) != Some(self.queue) {
            return; // answered, abandoned, or not in the main queue any more
        }
        let Some((_, left)) = self.queues.leave(entry, super::LeaveReason::Removed) else {
            return;
        };
        let caller = &mut self.callers[id as usize];
        let wait = seconds(now) - caller.arrived;
        match self.overflow_queue {
            Some(over) => {
                caller.moved = true;
                self.queues
                    .join_with_seq(
                        left.joined_at,
                        over,
                        entry,
                        left.level,
                        left.seq,
                        EntryKind::Caller,
                    )
                    .expect("the overflow queue has no length limit and the entry just left");
                self.dispatch(now);
            }
            None => {
                caller.outcome = Outcome::Overflowed { wait };
                self.waited_total += wait;
                self.drain_queue_events();
            }
        }
    }

    /// Every agent's calls and talk time so far.
    fn agent_records(&self) -> Vec<AgentRecord> {
        self.records.clone()
    }

    /// Free agents take the head of the line until either runs out (docs/behaviour.md §5: dispatch on
    /// join and whenever an agent frees up).
    fn dispatch(&mut self, now: Micros) {
        let at = self.origin + Duration::from_micros(now);
        while let Some(assignment) = self.agents.assign_next(at, &self.queues, |_| false) {
            let (agent, id) = (assignment.agent.0, assignment.entry);
            // Just assigned, so ringing: answering at once cannot be refused.
            let _ = self.agents.answered(at, assignment.agent);
            self.records[agent].calls += 1;
            self.queues.leave(id, super::LeaveReason::Dispatched);
            let caller = &mut self.callers[id.0 as usize];
            let wait = seconds(now) - caller.arrived;
            caller.outcome = Outcome::Answered { wait };
            self.waited_total += wait;
            // The caller heard an estimate (not put through at once): the calibration learns.
            if let Some(predicted) = self.forecasts[id.0 as usize].take()
                && wait > 0.0
            {
                self.calibration.record(calibration::Outcome {
                    forecast: predicted,
                    waited: Duration::from_secs_f64(wait),
                });
            }
            self.answered_at[agent] = now;
            let handle = micros(self.handle_time()).max(1);
            self.schedule(now + handle, Event::Complete(agent));
        }
        while self.agents.poll_event().is_some() {}
        self.drain_queue_events();
    }

    /// holdfast's forecast for a caller joining at `position`: every agent is on a call
    /// (otherwise the caller would be put through), for as long as it has been.
    fn forecast(&self, now: Micros, position: usize, vip: bool) -> Forecast {
        let agents: Vec<AgentOutlook> = (0..self.params.agents)
            .map(|agent| {
                let busy =
                    self.agents.get(AgentId(agent)).map(|a| a.state()) == Some(AgentState::Busy);
                if busy {
                    AgentOutlook::Busy {
                        elapsed: Duration::from_micros(now - self.answered_at[agent]),
                    }
                } else {
                    AgentOutlook::Free
                }
            })
            .collect();
        let abandon_rate = if self.waited_total > 0.0 {
            self.abandons as f64 / self.waited_total
        } else {
            0.0
        };
        // Normal callers are overtaken by the VIPs still to come, at the rate seen so far.
        let overtaking_rate = if vip || now == 0 {
            0.0
        } else {
            self.vip_arrivals as f64 / seconds(now)
        };
        forecast(
            &Outlook {
                position,
                agents: &agents,
                callbacks_ahead: 0,
                abandon_rate,
                overtaking_rate,
            },
            &HandleModel::new(&self.handle_times),
        )
    }

    /// The engine reports every change; the simulation reads positions when joining and
    /// drops the rest so the event list does not grow.
    fn drain_queue_events(&mut self) {
        while self.queues.poll_event().is_some() {}
    }
}

/// The spoken bucket of an estimate in seconds (used for the "under-promised" figure).
fn bucket_of(estimate_secs: f64) -> WaitBucket {
    WaitBucket::from_estimate(Duration::from_secs_f64(estimate_secs.max(0.0)))
}

#[cfg(test)]
mod tests;
