//! Callbacks, the caller's side (docs/behaviour.md §6): the offer appended to announcements, the key
//! press (RFC 4733 or SIP INFO), the durable commit *before* the confirmation, the goodbye,
//! and putting committed callbacks back into their queues after a restart.
//!
//! ```text
//!  announcement + offer ──(offer heard, "1")──▶ Committing ──store ack──▶ Confirming
//!        (estimate ≥ threshold,                   │ store error:           │ PromptDone
//!         number matches pattern)                 ▼ keep holding, no word  ▼
//!                                              Holding                  BYE; the entry stays
//!                                                                       in the queue as a
//!                                                                       Callback (same seq)
//! ```
//! Sans-IO like the rest of the controller: the commit is a [`StoreRequest`] the driver
//! drains with [`B2bua::poll_store_request`] and answers with [`B2bua::callback_committed`].
//! The dial-back itself lives in `dialback.rs`.

use std::time::Instant;

use super::callbacks::Callback;
use super::{B2bua, CallKey, CallState, CallTimer};
use crate::media::engine::{MediaEvent, StreamId};
use crate::media::g711::Law;
use crate::media::player::Prompt;
use crate::media::prompts::Announcement;
use crate::queue::{EntryId, EntryKind, LeaveReason, QueueId, Seq};
use crate::sip::sdp::Codec;
use crate::store::{
    CallEvent, CallEventKind, CallbackId, CallbackRecord, CallbackRequest, CallbackState, Record,
    StoreError,
};

/// Names one dial-back attempt in a store reply: the callback's queue entry and the agent
/// leg that took it (leg keys are never reused, so a reply that outlived its attempt is
/// recognized and ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptToken {
    /// The callback's queue entry.
    pub entry: EntryId,
    /// The answered agent leg of the attempt.
    pub leg: super::LegKey,
}

/// A durable write the controller needs; the driver runs it on the store and, for a commit,
/// an attempt or a completion, feeds the result back ([`B2bua::callback_committed`],
/// [`B2bua::attempt_recorded`], [`B2bua::completion_recorded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRequest {
    /// Commit a caller's callback request. `request.requested_at_ms` is left 0: the driver
    /// stamps it from `at` (the controller never reads the wall clock).
    Commit {
        /// Hand back to [`B2bua::callback_committed`].
        token: CallKey,
        /// When the caller pressed 1.
        at: Instant,
        /// What to commit.
        request: CallbackRequest,
    },
    /// A scheduled callback joined its queue with `seq` (`scheduled.rs`): persist its place.
    Joined {
        /// The callback.
        id: CallbackId,
        /// Its place in arrival order from now on.
        seq: crate::queue::Seq,
    },
    /// Persist a callback's new state (docs/behaviour.md §6: every step is persisted).
    SetState {
        /// The callback.
        id: CallbackId,
        /// Its new state.
        state: CallbackState,
        /// Dial attempts made so far.
        attempts: u32,
        /// When the next attempt is due, for a pending callback waiting out its retry delay.
        next_attempt_at: Option<Instant>,
        /// Why the last attempt failed.
        error: Option<String>,
    },
    /// Record a dial-back attempt before its INVITE is sent (docs/behaviour.md §6): state
    /// `dialling`, the attempt count and the INVITE's wire bytes, in one transaction. The
    /// INVITE leaves only on an `Ok` reply.
    BeginAttempt {
        /// Hand back to [`B2bua::attempt_recorded`].
        token: AttemptToken,
        /// The callback.
        id: CallbackId,
        /// Dial attempts made so far, this one included.
        attempts: u32,
        /// The trunk INVITE as it will be sent.
        invite: Vec<u8>,
    },
    /// Persist `completed` once the caller answered; the 2xx is ACKed and the caller
    /// bridged only when the reply comes (docs/behaviour.md §6).
    Complete {
        /// Hand back to [`B2bua::completion_recorded`].
        token: AttemptToken,
        /// The callback.
        id: CallbackId,
        /// Dial attempts made, the answered one included.
        attempts: u32,
    },
}

/// Why a stored callback could not be put back into a queue at start-up.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The callback's queue is no longer configured.
    #[error("queue {0:?} no longer exists")]
    UnknownQueue(String),
    /// The number no longer matches the queue's `callback_number_pattern`, or is now in its
    /// `callback_deny_prefixes`.
    #[error("number no longer allowed by callback_number_pattern and callback_deny_prefixes")]
    NumberRefused,
    /// The queue refused the entry (a duplicate id: a broken invariant).
    #[error("{0}")]
    Join(#[from] crate::queue::JoinError),
}

/// The G.711 law of a negotiated codec: which frames a call's prompts are rendered in.
pub(super) fn law(codec: Codec) -> Law {
    match codec {
        Codec::Pcmu => Law::Mu,
        Codec::Pcma => Law::A,
    }
}

impl B2bua {
    /// The next durable write for the driver.
    #[must_use]
    pub fn poll_store_request(&mut self) -> Option<StoreRequest> {
        self.callbacks.pop_request()
    }

    /// Raises the sequence counter past every number handed out before a restart (the
    /// store's high-water mark), so new callers queue behind reloaded callbacks.
    pub fn advance_seq(&mut self, seq: Seq) {
        self.queues.advance_seq(seq);
    }

    /// A new day began (UTC midnight, told by the driver): agents' calls and talk time for
    /// the `fewest-calls` and `least-talk-time` strategies start from zero.
    pub fn new_day(&mut self) {
        self.agents.new_day();
        for figures in &mut self.service {
            figures.new_day();
        }
    }

    /// Makes this node one of a cluster's, with sequence slot `slot` from the store
    /// ([`crate::queue::Queues::set_slot`]); the driver then advances the counter by the wall
    /// clock ([`crate::queue::seq_floor_at`]).
    pub fn set_seq_slot(&mut self, slot: u8) {
        self.queues.set_slot(slot);
    }

    /// Committed callbacks waiting or being dialled.
    pub fn callbacks_waiting(&self) -> usize {
        self.callbacks.len()
    }

    /// Appends the callback offer to a held caller's announcement `frames` when docs/behaviour.md §6
    /// allows it (estimate ≥ `callback_threshold` > 0, number matches the pattern), and
    /// notes from when the caller has heard the offer start: `1` counts from then on.
    pub(super) fn with_callback_offer(
        &mut self,
        now: Instant,
        call_key: CallKey,
        queue: QueueId,
        wait: std::time::Duration,
        mut frames: Prompt,
    ) -> Prompt {
        let config = &self.config.queues[queue.0];
        let Some(call) = self.calls.get_mut(&call_key) else {
            return frames;
        };
        let offer = config.callback_threshold > 0
            && wait.as_secs() >= config.callback_threshold
            && config.callback_number_allowed(&call.caller);
        if !offer {
            return frames;
        }
        let offer =
            self.audio
                .prompts
                .render(call.language, &Announcement::CallbackOffer, law(call.codec));
        let starts = now + frames.duration();
        frames.append(&offer);
        call.offer_from = Some(call.offer_from.map_or(starts, |at| at.min(starts)));
        self.callbacks.offer_heard(call.stream, call_key);
        self.survival.mark(call_key);
        frames
    }

    /// What the media engine reported (driver input).
    pub fn handle_media_event(&mut self, now: Instant, event: MediaEvent) {
        match event {
            // Bookkeeping of the port reserve: nothing else changes.
            MediaEvent::Reserved { port, bound } => return self.media.reserved(port, bound),
            MediaEvent::Dtmf { id, digit } => {
                if let Some(call) = self.callbacks.offered_call(id) {
                    self.on_digit(now, call, digit);
                }
            }
            MediaEvent::PromptDone { id } => {
                if let Some(leg) = self.whispering.remove(&id) {
                    self.connect_legs(now, leg);
                }
                if let Some(call) = self.callbacks.confirmed(id) {
                    tracing::info!(call = call.0, "last prompt played: hanging up");
                    self.hang_up(now, call, LeaveReason::Removed);
                }
            }
            MediaEvent::OpenFailed { id } => self.stream_lost(now, id),
            MediaEvent::Latched { .. } => {}
        }
        self.process_events(now);
    }

    /// A key pressed by a caller (RFC 4733 or SIP INFO). Only `1`, only once the offer has
    /// started playing, only while holding in a queue, only once.
    pub(super) fn on_digit(&mut self, now: Instant, call_key: CallKey, digit: char) {
        let Some(call) = self.calls.get_mut(&call_key) else {
            return;
        };
        tracing::debug!(call = call_key.0, %digit, "DTMF");
        let heard_offer = call.offer_from.is_some_and(|at| now >= at);
        let holding = matches!(call.state, CallState::Confirmed | CallState::Answered);
        let (Some(queue), true, true, '1') = (call.queue, heard_offer, holding, digit) else {
            return;
        };
        if !self.config.queues[queue.0].callback_number_allowed(&call.caller) {
            return;
        }
        let entry = call_key.entry();
        let Some((_, waiting)) = self.queues.get(entry) else {
            return;
        };
        let request = CallbackRequest {
            queue: self.config.queues[queue.0].name.clone(),
            level: waiting.level,
            seq: waiting.seq,
            number: call.caller.clone(),
            requested_at_ms: 0,
        };
        // From here the entry belongs to the callback: releasing the call (the caller hangs
        // up mid-commit) must not take it out of the queue before the store has answered.
        call.queue = None;
        call.announce = None;
        self.calls.schedule(call_key, CallTimer::Announce, None);
        tracing::info!(
            event = "callback_request",
            caller = %request.number,
            queue = %request.queue,
            seq = request.seq.0,
            "caller pressed 1: committing callback"
        );
        self.callbacks.begin_commit(entry);
        self.callbacks.push(StoreRequest::Commit {
            token: call_key,
            at: now,
            request,
        });
    }

    /// The store answered a commit. Only a durable `Ok` lets the caller hear "we will call
    /// you back"; after an error the caller keeps holding and hears nothing false.
    pub fn callback_committed(
        &mut self,
        now: Instant,
        token: CallKey,
        result: Result<CallbackId, StoreError>,
    ) {
        let entry = token.entry();
        if !self.callbacks.end_commit(entry) {
            return;
        }
        let Some(queue) = self.queues.queue_of(entry) else {
            tracing::error!(entry = entry.0, "committed callback lost its queue entry");
            return;
        };
        match result {
            Ok(id) => self.on_committed(now, token, queue, id),
            Err(error) => {
                tracing::error!(%error, call = token.0, "callback commit failed; caller keeps holding");
                match self.calls.get_mut(&token) {
                    Some(call) => {
                        call.queue = Some(queue);
                        self.start_announcements(now, token);
                    }
                    None => {
                        self.queues.leave(entry, LeaveReason::Abandoned);
                        self.drain_queue_events(now);
                    }
                }
            }
        }
        self.process_events(now);
    }

    fn on_committed(&mut self, now: Instant, token: CallKey, queue: QueueId, id: CallbackId) {
        let entry = token.entry();
        self.queues.set_kind(entry, EntryKind::Callback);
        // The caller's place is the callback's now: not a held call to take back.
        self.keep(token);
        let number = self
            .calls
            .get(&token)
            .map(|c| c.caller.clone())
            .unwrap_or_default();
        self.journal.push_back((
            now,
            Record::Event(CallEvent {
                queue: Some(self.config.queues[queue.0].name.clone()),
                caller: Some(number.clone()),
                ..CallEvent::new(0, CallEventKind::CallbackRequested)
            }),
        ));
        self.callbacks
            .insert(entry, Callback::new(id, queue, number.clone(), 0), None);
        if let Some(call) = self.calls.get(&token) {
            let frames = self.audio.prompts.render(
                call.language,
                &Announcement::CallbackConfirm { digits: number },
                law(call.codec),
            );
            let stream = call.stream;
            // The key may come mid-offer: the confirmation cuts in at once, and its end
            // (not the offer's) is the `PromptDone` that hangs up.
            self.media.prompt_now(stream, frames);
            self.callbacks.confirming(stream, token);
            tracing::info!(
                event = "callback_committed",
                callback = id.0,
                "confirmation playing"
            );
        }
    }

    /// Forget a released call's streams (no more digits or prompt ends matter).
    pub(super) fn forget_call_streams(&mut self, stream: StreamId) {
        self.callbacks.forget_stream(stream);
    }

    /// Puts a stored `pending` or `dialling` callback back into its queue at its original
    /// place (start-up recovery, docs/behaviour.md §6). A `dialling` one was cut short by the
    /// crash. With its recorded INVITE, that INVITE may still ring the caller: it is
    /// cancelled and its outcome settled first (`reconcile.rs`), and the attempt counts.
    /// Without one (a file from before the INVITE was recorded), the attempt does not
    /// count and the callback is dialled again.
    pub fn restore_callback(
        &mut self,
        now: Instant,
        record: &CallbackRecord,
        retry_at: Option<Instant>,
    ) -> Result<(), RestoreError> {
        let request = &record.request;
        let index = self
            .config
            .queue_index(&request.queue)
            .ok_or_else(|| RestoreError::UnknownQueue(request.queue.clone()))?;
        if !self.config.queues[index].callback_number_allowed(&request.number) {
            return Err(RestoreError::NumberRefused);
        }
        let queue = QueueId(index);
        if record.scheduled {
            // Scheduled and not in its queue yet: it joins at its time (or now).
            let at = retry_at.unwrap_or(now);
            let number = request.number.clone();
            self.callback_scheduled(now, record.id, queue, request.level, number, at);
            return Ok(());
        }
        let entry = EntryId(self.next_key);
        self.next_key += 1;
        // Taken over from a dead node: its entry in the replica becomes this one.
        self.cluster_take_over(request.seq);
        self.queues.join_with_seq(
            now,
            queue,
            entry,
            request.level,
            request.seq,
            EntryKind::Callback,
        )?;
        self.drain_queue_events(now);
        let reconcile = match (record.state, &record.attempt_invite) {
            (CallbackState::Dialling, Some(bytes)) => self.recorded_invite(now, record.id, bytes),
            _ => None,
        };
        let attempts = match (record.state, &reconcile) {
            (CallbackState::Dialling, None) => record.attempts.saturating_sub(1),
            _ => record.attempts,
        };
        let retry_at = retry_at.filter(|at| *at > now);
        let callback = Callback::new(record.id, queue, request.number.clone(), attempts);
        let reconciling = reconcile.is_some();
        match reconcile {
            Some(reconcile) => self.start_reconcile(now, entry, callback, reconcile),
            None => self.callbacks.insert(entry, callback, retry_at),
        }
        // A free agent takes it at once (one taken over from a dead node arrives while
        // agents are already registered here).
        self.process_events(now);
        tracing::info!(
            callback = record.id.0,
            queue = %request.queue,
            seq = request.seq.0,
            attempts,
            reconciling,
            "callback restored"
        );
        Ok(())
    }

    /// Retry delays that ran out: those callbacks may be dispatched again. Restored INVITEs
    /// past their deadline are settled as unanswered.
    pub(super) fn expire_callback_deadlines(&mut self, now: Instant) {
        while self.callbacks.pop_due_retry(now).is_some() {}
        self.expire_reconciles(now);
    }
}
