//! Agents held by another node of a cluster (docs/cluster.md "Agents and claims").
//!
//! Every node keeps every agent's record. A node that rings an agent first claims it in the
//! shared store; the other nodes learn of it from the change stream and mark the agent
//! *elsewhere*: ringing (for which waiting entry), busy or resting there. Such an agent is
//! not available here, counts as on a call for the wait forecast, and the entry it rings
//! for is skipped by dispatch like any entry being offered. When the holder releases it,
//! the agent is available again at the back of the idle line.

use std::time::Instant;

use super::agent::Elsewhere;
use super::{AgentError, AgentId, AgentState, Agents};
use crate::queue::EntryId;

impl Agents {
    /// Another node holds agent `id` and shows it as `state` (`Ringing` for `entry`,
    /// `Busy` or `Wrapup`); `None`: no other node holds it any more. What this node itself
    /// does with the agent is untouched (its own ring or call goes on).
    pub fn set_elsewhere(
        &mut self,
        now: Instant,
        id: AgentId,
        held: Option<(AgentState, Option<EntryId>)>,
    ) -> Result<(), AgentError> {
        self.check(id)?;
        let now = self.clock(now);
        let elsewhere = held.map(|(state, entry)| Elsewhere {
            state: match state {
                AgentState::Ringing | AgentState::Busy => state,
                _ => AgentState::Wrapup,
            },
            entry: entry.filter(|_| state == AgentState::Ringing),
        });
        if self.agents[id.0].elsewhere == elsewhere {
            return Ok(());
        }
        self.update(now, id, true, |a| a.elsewhere = elsewhere);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::queue::dispatch::AgentSpec;
    use crate::queue::{EntryKind, QueueId, Queues};

    fn spec(user: &str) -> AgentSpec {
        AgentSpec {
            user: user.into(),
            queues: vec![QueueId(0)],
            tiers: HashMap::new(),
        }
    }

    #[test]
    fn an_agent_held_elsewhere_is_not_offered_and_its_entry_is_skipped() {
        let t0 = Instant::now();
        let mut queues = Queues::new();
        let q = queues.add_queue("support", 10);
        for id in 1..=3 {
            queues
                .join(t0, q, EntryId(id), 0, EntryKind::Caller)
                .expect("room");
        }
        let mut agents = Agents::new([spec("alice"), spec("bob")]);
        agents.registered(t0, AgentId(0)).expect("agent");
        agents.registered(t0, AgentId(1)).expect("agent");
        // Another node rings alice for the head.
        agents
            .set_elsewhere(
                t0,
                AgentId(0),
                Some((AgentState::Ringing, Some(EntryId(1)))),
            )
            .expect("agent");
        assert_eq!(
            agents.get(AgentId(0)).map(|a| a.state()),
            Some(AgentState::Ringing)
        );
        assert_eq!(agents.offered_to(EntryId(1)), Some(AgentId(0)));
        let next = agents
            .next_assignment(&queues, |_| false)
            .expect("bob is free");
        assert_eq!((next.agent, next.entry), (AgentId(1), EntryId(2)));
        // The other node's caller answered; alice talks there, then rests there.
        agents
            .set_elsewhere(t0, AgentId(0), Some((AgentState::Busy, None)))
            .expect("agent");
        assert_eq!(agents.offered_to(EntryId(1)), None);
        agents
            .set_elsewhere(t0, AgentId(0), Some((AgentState::Wrapup, None)))
            .expect("agent");
        assert_eq!(
            agents.get(AgentId(0)).map(|a| a.state()),
            Some(AgentState::Wrapup)
        );
        assert_eq!(agents.free(q), 1);
        // Released: available again, behind bob in the idle line.
        let t1 = t0 + Duration::from_secs(5);
        agents.set_elsewhere(t1, AgentId(0), None).expect("agent");
        assert_eq!(
            agents.get(AgentId(0)).map(|a| a.state()),
            Some(AgentState::Available)
        );
        let next = agents.next_assignment(&queues, |_| false).expect("someone");
        assert_eq!(next.agent, AgentId(1), "bob has been idle longer");
        let skipping_bob = agents
            .next_assignment_among(&queues, |_| false, |a| a == AgentId(1))
            .expect("alice");
        assert_eq!(skipping_bob.agent, AgentId(0));
    }

    #[test]
    fn a_local_ring_wins_over_what_the_stream_says_until_it_ends() {
        let t0 = Instant::now();
        let mut agents = Agents::new([spec("alice")]);
        agents.registered(t0, AgentId(0)).expect("agent");
        agents.ringing(t0, AgentId(0), EntryId(7)).expect("free");
        agents
            .set_elsewhere(t0, AgentId(0), Some((AgentState::Busy, None)))
            .expect("agent");
        assert_eq!(
            agents.get(AgentId(0)).map(|a| a.state()),
            Some(AgentState::Ringing)
        );
        assert_eq!(agents.offered_to(EntryId(7)), Some(AgentId(0)));
        agents.ring_cancelled(t0, AgentId(0)).expect("ringing");
        assert_eq!(
            agents.get(AgentId(0)).map(|a| a.state()),
            Some(AgentState::Busy)
        );
        assert!(agents.ringing(t0, AgentId(0), EntryId(8)).is_err());
    }
}
