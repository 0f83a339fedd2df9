//! Agents as a restarted holdfast takes them back (docs/behaviour.md §13): a pause and a
//! wrap-up outlive the process, so an agent who stepped away, or is finishing the notes of
//! the last call, is not offered a caller the moment the new process starts.

use std::time::Instant;

use super::agent::Activity;
use super::{AgentError, AgentId, AgentState, Agents};

impl Agents {
    /// Agent `id` was resting after a call until `until` when the process before stopped:
    /// it rests until then again (no wrap-up when that has passed, or while it is busy).
    pub fn restore_wrapup(
        &mut self,
        now: Instant,
        id: AgentId,
        until: Instant,
    ) -> Result<(), AgentError> {
        let agent = self.check(id)?;
        if until <= now || matches!(agent.state, AgentState::Busy | AgentState::Ringing) {
            return Ok(());
        }
        let now = self.clock(now);
        self.update(now, id, true, |a| {
            if a.registered {
                a.activity = Activity::Wrapup(until);
            }
        });
        Ok(())
    }

    /// When agent `id`'s wrap-up ends, while it rests after a call.
    pub fn wrapup_until(&self, id: AgentId) -> Option<Instant> {
        match self.agents.get(id.0)?.activity {
            Activity::Wrapup(until) => Some(until),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::queue::QueueId;
    use crate::queue::dispatch::AgentSpec;

    #[test]
    fn a_restored_wrap_up_ends_when_it_would_have() {
        let t0 = Instant::now();
        let mut agents = Agents::new([AgentSpec {
            user: "alice".into(),
            queues: vec![QueueId(0)],
            tiers: Default::default(),
        }]);
        let alice = agents.find("alice").unwrap();
        agents.registered(t0, alice).unwrap();
        let until = t0 + Duration::from_secs(20);
        agents.restore_wrapup(t0, alice, until).unwrap();
        assert_eq!(agents.get(alice).unwrap().state(), AgentState::Wrapup);
        assert_eq!(agents.wrapup_until(alice), Some(until));
        agents.handle_timeout(until);
        assert_eq!(agents.get(alice).unwrap().state(), AgentState::Available);
        // One already over is no wrap-up at all.
        agents.restore_wrapup(until, alice, t0).unwrap();
        assert_eq!(agents.get(alice).unwrap().state(), AgentState::Available);
    }
}
