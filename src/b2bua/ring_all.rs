//! Ring-all (`strategy = "ring-all"`, docs/behaviour.md §5): a caller of such a queue rings
//! every free agent of the chosen agent's tier at once. The first phone to answer takes the
//! caller and every other is CANCELled (RFC 3261 §9.1) with no mark against its agent; a
//! phone that declines or times out is marked as for any ring, and the caller goes back to
//! waiting only when the last of its phones has given up. An answer that crosses our CANCEL
//! is ACKed and hung up at once (as for a ring timeout), so no caller is bridged twice.

use std::time::{Duration, Instant};

use super::{B2bua, CallKey, LegKey};
use crate::queue::dispatch::{AgentId, Assignment};

impl B2bua {
    /// Ring `others` beside `assignment`'s agent, which was just offered the caller. Nothing
    /// happens unless that offer rang a phone (not a REFER, not a failure).
    pub(super) fn ring_others(
        &mut self,
        now: Instant,
        assignment: Assignment,
        others: Vec<AgentId>,
    ) {
        let call_key = CallKey(assignment.entry.0);
        let rang = self
            .calls
            .get(&call_key)
            .and_then(|c| c.leg)
            .and_then(|leg| self.legs.get(&leg))
            .is_some_and(|leg| leg.agent == assignment.agent);
        if !rang {
            return;
        }
        for agent in others {
            let also = Assignment {
                agent,
                ..assignment
            };
            self.agents.served(also);
            if let Err(error) = self.start_leg(now, also, true) {
                tracing::warn!(agent = %self.agent_name(agent), %error, "cannot call agent");
                // A miss, as for the first agent: a broken phone is paused after
                // max_no_answer instead of being rung with every caller.
                let queue = &self.config.queues[assignment.queue.0];
                let (max, backoff) = (
                    queue.max_no_answer,
                    Duration::from_secs(queue.no_answer_backoff),
                );
                let _ = self.agents.ringing_too(now, agent, assignment.entry);
                let _ = self.agents.no_answer_then_rest(now, agent, max, backoff);
                self.drain_agent_events();
            }
        }
    }

    /// `leg` stopped ringing for `call_key` without an answer. `true` when other phones
    /// still ring for the caller, who then stays offered and untouched.
    pub(super) fn leave_ring(&mut self, call_key: CallKey, leg: LegKey) -> bool {
        let Some(call) = self.calls.get_mut(&call_key) else {
            return false;
        };
        if let Some(i) = call.ring_too.iter().position(|&l| l == leg) {
            call.ring_too.swap_remove(i);
            return true;
        }
        if call.leg == Some(leg)
            && let Some(next) = call.ring_too.pop()
        {
            call.leg = Some(next);
            return true;
        }
        false
    }

    /// `leg` answered for `call_key`: it becomes the caller's leg, and every other phone
    /// ringing for the caller is CANCELled (its agent is free again, unmarked).
    pub(super) fn answered_in_ring(&mut self, now: Instant, call_key: CallKey, leg: LegKey) {
        let Some(call) = self.calls.get_mut(&call_key) else {
            return;
        };
        if call.ring_too.is_empty() {
            return;
        }
        let mut others = std::mem::take(&mut call.ring_too);
        others.extend(call.leg.replace(leg));
        others.retain(|&l| l != leg);
        for other in others {
            if let Some(ringing) = self.legs.get(&other) {
                tracing::info!(
                    agent = %self.agent_name(ringing.agent),
                    "another agent answered: cancelling"
                );
            }
            self.cancel_leg_for_caller(now, other);
        }
    }
}
