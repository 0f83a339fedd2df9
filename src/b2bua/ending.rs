//! The end of a trunk call (docs/behaviour.md §2.6): BYE to the caller, then everything it
//! held released: its agent legs, its queue place (kept for `resume_within` when it
//! abandoned), its media, its kept record, and the `abandon` event.

use std::time::Instant;

use super::events::EventFacts;
use super::{B2bua, CallKey, CallState, LegKey};
use crate::queue::LeaveReason;
use crate::store::CallEventKind;

impl B2bua {
    /// Hang up a call from our side: BYE to the trunk, then release everything.
    pub(super) fn hang_up(&mut self, now: Instant, key: CallKey, reason: LeaveReason) {
        self.stop_session_timer(key);
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let destination = call.signalling;
        self.sip.bye(now, &mut call.dialog, destination);
        self.release(now, key, reason);
    }

    /// Forget a call: leave its queue, free its media, drop its indexes.
    pub(super) fn release(&mut self, now: Instant, key: CallKey, reason: LeaveReason) {
        // End the agent leg first, while the call is still known, so its `complete` event
        // names the caller.
        if let Some(call) = self.calls.get_mut(&key) {
            let legs: Vec<LegKey> = call
                .leg
                .take()
                .into_iter()
                .chain(call.ring_too.drain(..))
                .collect();
            for leg in legs {
                self.cancel_leg_for_caller(now, leg);
            }
        }
        self.stop_session_timer(key);
        let Some(call) = self.calls.remove(key) else {
            return;
        };
        self.forget_kept(now, &call);
        self.offered.remove(&call.entry());
        if let Some(transfer) = &call.transfer {
            // The caller left mid-transfer: the agent was never really offered the call.
            self.transfers_by_client.remove(&transfer.client);
            let _ = self.agents.ring_cancelled(now, transfer.agent);
        }
        self.media.close(call.stream);
        self.forget_call_streams(call.stream);
        if let Some(watch) = &call.watch {
            self.monitor_ended(now, watch);
        }
        if call.queue.is_some() && self.queues.position(call.entry()).is_some() {
            let left = self.queues.leave(call.entry(), reason);
            if let (Some((queue, entry)), LeaveReason::Abandoned) = (&left, reason) {
                self.keep_place(now, *queue, &call.caller, entry);
            }
            self.drain_queue_events(now);
        }
        // A caller who talked to an agent completed; only one who hung up waiting abandoned.
        let reason = if call.state == CallState::Bridged {
            LeaveReason::Dispatched
        } else {
            reason
        };
        let waited = now.saturating_duration_since(call.started);
        if reason == LeaveReason::Abandoned && !call.service {
            self.counters.stats.calls_abandoned += 1;
            let queue = call.queue.map(|q| self.config.queues[q.0].name.clone());
            self.call_event(
                now,
                CallEventKind::Abandon,
                EventFacts {
                    call_id: Some(call.dialog.call_id.clone()),
                    queue,
                    caller: Some(call.caller.clone()),
                    waited: Some(waited),
                    ..EventFacts::default()
                },
            );
        }
        tracing::debug!(
            event = "leave",
            call_id = %call.dialog.call_id,
            caller = %call.caller,
            ?reason,
            waited_s = waited.as_secs(),
            "call ended"
        );
    }
}
