//! Callbacks, the end of a dial-back attempt (docs/behaviour.md §6 "Retries"): an attempt
//! that reached nobody releases the agent (free at once, no wrap-up) and the trunk leg, then
//! the callback waits out `callback_retry_delay` at its place or, after `callback_attempts`,
//! is `failed`; a caller who answered is never dialled again. Also the bridged trunk leg's
//! dialog and its end. The start of an attempt is in `dialback.rs`.

use std::time::{Duration, Instant};

use super::callbacks::CallbackPhase;
use super::{B2bua, CallKey, LegKey};
use crate::media::engine::StreamId;
use crate::queue::{EntryId, LeaveReason};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::store::{CallEventKind, CallbackState};

impl B2bua {
    /// A trunk leg's RTP port could not be bound: that attempt failed.
    pub(super) fn callback_stream_lost(&mut self, now: Instant, stream: StreamId) {
        if let Some(entry) = self.callbacks.with_trunk_stream(stream) {
            self.trunk_failed(now, entry, "no RTP port");
        }
    }

    /// The trunk refused or never answered, or the attempt broke down: release the agent,
    /// then retry or give up. A caller who answered is never dialled again.
    pub(super) fn trunk_failed(&mut self, now: Instant, entry: EntryId, reason: &str) {
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        let Some(leg) = callback.attempt().map(|a| a.agent_leg) else {
            return;
        };
        match callback.phase() {
            CallbackPhase::Completing { .. } => {
                let reason = format!("{reason} as the caller answered; not dialled again");
                self.finish_callback(now, entry, leg, &reason);
            }
            CallbackPhase::Connected { .. } => {
                self.end_trunk_leg(now, entry, true);
                self.end_leg(now, leg, true);
            }
            _ => self.attempt_failed(now, entry, leg, reason),
        }
    }

    /// An attempt that did not reach the caller: hang up the agent (free at once, no wrap-up:
    /// it talked to nobody) and schedule the next attempt, or fail the callback.
    pub(super) fn attempt_failed(
        &mut self,
        now: Instant,
        entry: EntryId,
        leg: LegKey,
        reason: &str,
    ) {
        self.release_attempt(now, entry, leg);
        self.retry_or_fail(now, entry, reason);
    }

    /// After an attempt that is over and counted: `pending` with a retry time at the same
    /// place, or `failed` once `callback_attempts` are used up.
    pub(super) fn retry_or_fail(&mut self, now: Instant, entry: EntryId, reason: &str) {
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        let config = &self.config.queues[callback.queue.0];
        let (id, attempts) = (callback.id, callback.attempts);
        if attempts >= config.callback_attempts.max(1) {
            return self.fail_callback(now, entry, reason);
        }
        let delay = Duration::from_secs(config.callback_retry_delay);
        let at = now + delay;
        self.callbacks.retry_at(entry, at);
        self.callbacks.push(super::StoreRequest::SetState {
            id,
            state: CallbackState::Pending,
            attempts,
            next_attempt_at: Some(at),
            error: Some(reason.to_string()),
        });
        tracing::info!(
            callback = id.0,
            attempts,
            reason,
            retry_s = delay.as_secs(),
            "callback attempt failed; will retry"
        );
    }

    /// The end of a callback's attempt and of the callback: `failed`.
    pub(super) fn finish_callback(
        &mut self,
        now: Instant,
        entry: EntryId,
        leg: LegKey,
        reason: &str,
    ) {
        self.release_attempt(now, entry, leg);
        self.fail_callback(now, entry, reason);
    }

    /// The end of a callback without a conversation: `failed` (out of the queue, never
    /// dialled again).
    /// The store says another node of the cluster took this callback over while this one
    /// was out of touch with it: it leaves this node's queue, with nothing written (the new
    /// owner dials it; docs/cluster.md).
    pub(super) fn give_up_adopted(&mut self, now: Instant, entry: EntryId, owner: &str) {
        let Some(callback) = self.callbacks.remove(entry) else {
            return;
        };
        self.offered.remove(&entry);
        self.queues.leave(entry, LeaveReason::Removed);
        self.drain_queue_events(now);
        tracing::warn!(
            callback = callback.id.0,
            owner,
            "callback taken over by another node: not dialled here"
        );
    }

    pub(super) fn fail_callback(&mut self, now: Instant, entry: EntryId, reason: &str) {
        let Some(callback) = self.callbacks.remove(entry) else {
            return;
        };
        self.offered.remove(&entry);
        self.queues.leave(entry, LeaveReason::Removed);
        self.drain_queue_events(now);
        self.callbacks.push(super::StoreRequest::SetState {
            id: callback.id,
            state: CallbackState::Failed,
            attempts: callback.attempts,
            next_attempt_at: None,
            error: Some(reason.to_string()),
        });
        self.callback_event(
            now,
            CallEventKind::CallbackFailed,
            callback.queue,
            &callback.number,
        );
        tracing::warn!(
            callback = callback.id.0,
            attempts = callback.attempts,
            reason,
            "callback failed"
        );
    }

    /// Tear down an attempt that reached nobody: the trunk side (CANCEL if still ringing; a
    /// 2xx not yet ACKed gets its ACK and a BYE), then the agent (BYE, available again
    /// without wrap-up).
    pub(super) fn release_attempt(&mut self, now: Instant, entry: EntryId, leg: LegKey) {
        if let Some((attempt, dialog)) = self.callbacks.take_attempt(entry) {
            match dialog {
                Some(mut dialog) => {
                    let ack = dialog.ack(&self.sip.sent_by, &self.sip.ids.branch());
                    if let Some(trunk) = self.config.trunks.first().map(|t| t.address) {
                        self.sip.transactions.send_stateless(trunk, ack);
                        self.sip.bye(now, &mut dialog, trunk);
                    }
                }
                // Not sent yet (recording): no transaction, and the CANCEL is refused.
                None if !attempt.trunk_final => {
                    let _ = self.sip.transactions.cancel(now, attempt.client());
                }
                None => {}
            }
            self.media.close(attempt.stream);
        }
        self.offered.remove(&entry);
        let agent = self.legs.get(&leg).map(|l| l.agent);
        self.end_leg(now, leg, true);
        if let Some(agent) = agent {
            let _ = self.agents.call_ended(now, agent, Duration::ZERO);
            self.drain_agent_events();
        }
    }

    /// Hook from `end_leg`: an agent leg ended. If it served a callback, end the trunk side
    /// too (after the bridge: BYE; as the caller answers: ACK and BYE, `failed`; before it:
    /// the attempt failed).
    pub(super) fn callback_agent_leg_ended(&mut self, now: Instant, leg: LegKey, call: CallKey) {
        let entry = call.entry();
        let Some(callback) = self
            .callbacks
            .get(&entry)
            .filter(|c| c.attempt().is_some_and(|a| a.agent_leg == leg))
        else {
            return;
        };
        // The leg is gone already, so release_attempt's end_leg is a no-op; the agent is
        // freed by it all the same.
        match callback.phase() {
            CallbackPhase::Connected { .. } => self.end_trunk_leg(now, entry, true),
            CallbackPhase::Completing { .. } => self.finish_callback(
                now,
                entry,
                leg,
                "agent hung up as the caller answered; not dialled again",
            ),
            _ => self.trunk_failed(now, entry, "agent hung up before the caller answered"),
        }
    }

    /// The dialog of a callback's call to the trunk, by its queue entry.
    pub(super) fn trunk_dialog_mut(&mut self, entry: EntryId) -> Option<&mut Dialog> {
        self.callbacks.dialog_mut(entry)
    }

    /// Our side of the session of a callback's call to the trunk.
    pub(super) fn trunk_local_sdp(
        &mut self,
        entry: EntryId,
    ) -> Option<&mut super::session::LocalSdp> {
        Some(&mut self.callbacks.attempt_mut(entry)?.local)
    }

    /// An in-dialog request from the trunk on an answered callback.
    pub(super) fn trunk_leg_of(&self, request: &rsip::Request) -> Option<EntryId> {
        let call_id = message::call_id(request)?;
        let entry = self.callbacks.by_trunk_call_id(call_id)?;
        let dialog = self.callbacks.get(&entry)?.dialog()?;
        dialog.matches_request(request).then_some(entry)
    }

    /// The called-back caller hung up: end the agent's side too.
    pub(super) fn trunk_hung_up(&mut self, now: Instant, entry: EntryId) {
        let leg = self
            .callbacks
            .get(&entry)
            .and_then(|c| c.attempt())
            .map(|a| a.agent_leg);
        self.end_trunk_leg(now, entry, false);
        if let Some(leg) = leg {
            self.end_leg(now, leg, true);
        }
    }

    /// Forget a bridged callback's trunk leg (BYE to the trunk when `send_bye`).
    fn end_trunk_leg(&mut self, now: Instant, entry: EntryId, send_bye: bool) {
        let Some((attempt, dialog)) = self.callbacks.take_attempt(entry) else {
            return;
        };
        let Some(callback) = self.callbacks.remove(entry) else {
            return;
        };
        self.media.close(attempt.stream);
        if let Some(mut dialog) = dialog
            && send_bye
            && let Some(trunk) = self.config.trunks.first().map(|t| t.address)
        {
            self.sip.bye(now, &mut dialog, trunk);
        }
        tracing::info!(callback = callback.id.0, "callback call ended");
    }
}
