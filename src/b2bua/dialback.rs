//! Callbacks, the dial-back (docs/behaviour.md §6): agent first, then the caller through the trunk, then
//! the bridge; retries that keep the place; every state change persisted.
//!
//! ```text
//!  callback entry at the head + free agent
//!    └─▶ ring the agent (legs.rs, as for a caller) ──no answer──▶ next agent, same place
//!          └─ answers: hold music to the agent, state `dialling`, attempts + 1,
//!             INVITE sip:<number>@<trunk address> (401/407 answered once with the
//!             trunk's credentials)
//!               ├─ 2xx: ACK, relay agent ⇄ caller, entry leaves the queue, `completed`
//!               └─ busy / no answer / error / agent hung up: BYE the agent (free at once,
//!                  no wrap-up), then `pending` with a retry time (place kept) or, after
//!                  `callback_attempts`, `failed` and out of the queue
//! ```
//! **Completed** means: the caller answered the callback INVITE and was bridged to the
//! agent. It is persisted at that moment, so a crash during the conversation does not call
//! the caller a second time.
//!
//! Security (docs/behaviour.md §6): the only number ever dialled is a [`super::callback::Callback`]'s,
//! which comes from the caller's own call (or the store it was committed to) and is checked
//! against the queue's `callback_number_pattern` again right before dialling.

use std::time::{Duration, Instant};

use rsip::Header;
use rsip::prelude::*;

use super::LegKey;
use super::callbacks::Attempt;
use super::{B2bua, CallKey};
use crate::media::engine::StreamId;
use crate::queue::{EntryId, LeaveReason};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::sdp::{self, Codec};
use crate::sip::transaction::ClientKey;
use crate::store::{CallEvent, CallEventKind, CallbackState, Record};

impl B2bua {
    /// The RTP stream, caller identity and codec for a new agent leg: beside the caller's
    /// stream for a caller on the line, a fresh stream for a callback (nobody on the line yet).
    pub(super) fn agent_leg_media(
        &mut self,
        call_key: CallKey,
    ) -> Result<(StreamId, u16, String, Codec), super::DispatchError> {
        use super::DispatchError;
        if let Some(call) = self.calls.get(&call_key) {
            let (caller, codec) = (call.caller.clone(), call.codec);
            let (stream, port) = self
                .media
                .open_beside(call.stream)
                .map_err(DispatchError::NoRtpPort)?;
            return Ok((stream, port, caller, codec));
        }
        let number = self
            .callbacks
            .get(&call_key.entry())
            .ok_or(DispatchError::CallerGone)?
            .number
            .clone();
        let (stream, port) = self.media.open().map_err(DispatchError::NoRtpPort)?;
        Ok((stream, port, number, Codec::Pcmu))
    }

    /// The agent answered a callback: keep it on hold music and call the caller.
    pub(super) fn callback_agent_answered(
        &mut self,
        now: Instant,
        leg_key: LegKey,
        agent_sdp: Option<sdp::Offer>,
    ) {
        let Some(leg) = self.legs.get_mut(&leg_key) else {
            return;
        };
        let (agent, entry, agent_stream, queue) =
            (leg.agent, leg.call.entry(), leg.stream, leg.queue);
        let agent_remote = agent_sdp.map(|o| o.remote).unwrap_or(leg.destination);
        leg.remote = Some(agent_remote);
        let _ = self.agents.answered(now, agent);
        self.drain_agent_events();
        // We offered the agent PCMU only (agent_leg_media), so that is what it receives.
        self.media.play(
            agent_stream,
            agent_remote,
            Codec::Pcmu.payload_type(),
            self.audio.music.for_codec(Codec::Pcmu),
        );
        let config = &self.config.queues[queue.0];
        let (pattern_ok, max) = (
            self.callbacks
                .get(&entry)
                .is_some_and(|c| config.callback_number_allowed(&c.number)),
            config.callback_attempts,
        );
        let Some(trunk) = self.config.trunks.first().cloned() else {
            tracing::error!("callback: no [[trunk]] configured to dial through");
            return self.finish_callback(now, entry, leg_key, CallbackState::Failed, "no trunk");
        };
        if !pattern_ok {
            tracing::warn!(entry = entry.0, "callback number refused by the pattern");
            return self.finish_callback(
                now,
                entry,
                leg_key,
                CallbackState::Failed,
                "number refused",
            );
        }
        let Some(callback) = self.callbacks.get_mut(&entry) else {
            return;
        };
        callback.attempts += 1;
        let (id, attempts, number) = (callback.id, callback.attempts, callback.number.clone());
        let (stream, port) = match self.media.open_beside(agent_stream) {
            Ok(opened) => opened,
            Err(_) => return self.attempt_failed(now, entry, leg_key, "no RTP port", max),
        };
        let offer = sdp::render_offer(
            &[Codec::Pcmu, Codec::Pcma],
            self.config.sip.public_address,
            port,
            entry.0,
            entry.0,
        );
        // The codec is the trunk's pick, known from its answer.
        let local = super::session::LocalSdp::new(port, entry.0, Codec::Pcmu);
        let invite = self.trunk_invite(&number, trunk.address, &offer);
        let client = match self
            .sip
            .transactions
            .send_request(now, trunk.address, invite.clone())
        {
            Ok(client) => client,
            Err(_) => {
                self.media.close(stream);
                return self.attempt_failed(now, entry, leg_key, "INVITE not sent", max);
            }
        };
        self.callbacks
            .start_dialling(entry, Attempt::new(leg_key, invite, client, stream, local));
        self.callbacks.push(super::StoreRequest::SetState {
            id,
            state: CallbackState::Dialling,
            attempts,
            next_attempt_at: None,
            error: None,
        });
        self.callback_event(now, CallEventKind::CallbackDialled, queue, &number);
        tracing::info!(event = "callback_dial", callback = id.0, %number, attempts, "dialling caller");
    }

    /// The INVITE to the caller through the trunk (docs/behaviour.md §6: `sip:<number>@<trunk address>`).
    fn trunk_invite(
        &mut self,
        number: &str,
        trunk: std::net::SocketAddr,
        sdp: &str,
    ) -> rsip::Request {
        let host = self.config.sip.public_address;
        let uri = format!("sip:{number}@{trunk}");
        self.new_invite(
            rsip::Uri::try_from(uri.as_str()).unwrap_or_default(),
            format!("<sip:holdfast@{host}>"),
            format!("<{uri}>"),
            Vec::new(),
            sdp,
        )
    }

    /// A response to a trunk INVITE; `false` if `client` is not one.
    pub(super) fn on_trunk_response(
        &mut self,
        now: Instant,
        client: &ClientKey,
        response: rsip::Response,
    ) -> bool {
        let Some(entry) = self.callbacks.by_trunk_client(client) else {
            return false;
        };
        let code = response.status_code.code();
        match code {
            100..=199 => {}
            200..=299 => self.trunk_answered(now, entry, &response),
            401 | 407 if self.answer_challenge(now, entry, &response, code) => {}
            _ => {
                if let Some(attempt) = self.callbacks.attempt_mut(entry) {
                    attempt.trunk_final = true;
                }
                let reason = format!("trunk answered {code}");
                self.trunk_failed(now, entry, &reason);
            }
        }
        true
    }

    /// The trunk INVITE got no final response (Timer B); `false` if `client` is not one.
    pub(super) fn on_trunk_timeout(&mut self, now: Instant, client: &ClientKey) -> bool {
        let Some(entry) = self.callbacks.by_trunk_client(client) else {
            return false;
        };
        if let Some(attempt) = self.callbacks.attempt_mut(entry) {
            attempt.trunk_final = true;
        }
        self.trunk_failed(now, entry, "no answer from the trunk");
        true
    }

    /// Re-sends the INVITE with credentials (RFC 3261 §22.2) once; `false` when no
    /// credentials are configured, the challenge was answered before, or it is unreadable.
    fn answer_challenge(
        &mut self,
        now: Instant,
        entry: EntryId,
        response: &rsip::Response,
        code: u16,
    ) -> bool {
        let Some(trunk) = self.config.trunks.first().cloned() else {
            return false;
        };
        let (challenge_name, answer_name) = if code == 401 {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let Some(attempt) = self.callbacks.get(&entry).and_then(|c| c.attempt()) else {
            return false;
        };
        if trunk.username.is_empty() || attempt.authenticated {
            return false;
        }
        let Some(challenge) = message::header_value(response, challenge_name) else {
            return false;
        };
        let uri = attempt.invite.uri.to_string();
        let Some(credentials) = crate::sip::auth::digest_credentials(
            challenge,
            "INVITE",
            &uri,
            &trunk.username,
            &trunk.password,
            &self.sip.ids.tag(),
        ) else {
            return false;
        };
        let cseq = message::cseq(&attempt.invite).map_or(1, |(n, _)| n) + 1;
        let mut headers: Vec<Header> =
            vec![message::via(&self.sip.sent_by, &self.sip.ids.branch())];
        headers.extend(
            attempt
                .invite
                .headers
                .iter()
                .filter(|h| !matches!(h, Header::Via(_) | Header::CSeq(_)))
                .cloned(),
        );
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{cseq} INVITE"
        ))));
        headers.push(Header::Other(answer_name.into(), credentials));
        let mut invite = attempt.invite.clone();
        invite.headers = headers.into();
        let Ok(new_client) = self
            .sip
            .transactions
            .send_request(now, trunk.address, invite.clone())
        else {
            return false;
        };
        self.callbacks.rekey(entry, new_client, invite);
        tracing::debug!(entry = entry.0, "trunk challenge answered");
        true
    }

    /// The caller picked up: ACK, bridge with the agent, persist `completed`.
    fn trunk_answered(&mut self, now: Instant, entry: EntryId, ok: &rsip::Response) {
        let sent_by = self.sip.sent_by.clone();
        let trunk = self.config.trunks.first().map(|t| t.address);
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        let Some(attempt) = callback.attempt() else {
            return;
        };
        let Ok(mut dialog) = Dialog::from_uac(&attempt.invite, ok) else {
            tracing::warn!("trunk's 2xx unusable");
            return;
        };
        // Every 2xx (retransmissions too) gets an ACK (§13.2.2.4).
        let ack = dialog.ack(&sent_by, &self.sip.ids.branch());
        if let Some(trunk) = trunk {
            self.sip.transactions.send_stateless(trunk, ack);
        }
        let (agent_leg, stream, id, attempts, queue) = (
            attempt.agent_leg,
            attempt.stream,
            callback.id,
            callback.attempts,
            callback.queue,
        );
        let number = callback.number.clone();
        if !self.callbacks.connected(entry, dialog) {
            return; // a retransmission: connected already
        }
        let answer = sdp::parse_offer(&ok.body).ok();
        if let Some(answer) = &answer {
            let (pt, codec) = answer
                .formats
                .iter()
                .find_map(|&pt| answer.codec_of(pt).map(|codec| (pt, codec)))
                .unwrap_or((0, Codec::Pcmu));
            if let Some(attempt) = self.callbacks.attempt_mut(entry) {
                attempt.local.codec = codec;
            }
            self.media.connect(stream, answer.remote, pt);
            self.media
                .set_telephone_event(stream, answer.telephone_event);
        }
        let Some(leg) = self.legs.get_mut(&agent_leg) else {
            return;
        };
        // Handle time starts now: the conversation (docs/behaviour.md §5), not the agent's wait.
        leg.start_talking(now);
        let agent_stream = leg.stream;
        self.media.bridge(agent_stream, stream);
        self.offered.remove(&entry);
        self.queues.leave(entry, LeaveReason::Dispatched);
        self.drain_queue_events();
        self.callbacks.push(super::StoreRequest::SetState {
            id,
            state: CallbackState::Completed,
            attempts,
            next_attempt_at: None,
            error: None,
        });
        self.callback_event(now, CallEventKind::CallbackCompleted, queue, &number);
        tracing::info!(event = "callback_connect", callback = id.0, %number, "caller bridged to agent");
    }

    /// A trunk leg's RTP port could not be bound: that attempt failed.
    pub(super) fn callback_stream_lost(&mut self, now: Instant, stream: StreamId) {
        if let Some(entry) = self.callbacks.with_trunk_stream(stream) {
            self.trunk_failed(now, entry, "no RTP port");
        }
    }

    /// The trunk refused or never answered: release the agent, then retry or give up.
    fn trunk_failed(&mut self, now: Instant, entry: EntryId, reason: &str) {
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        let Some(leg) = callback.attempt().map(|a| a.agent_leg) else {
            return;
        };
        let max = self.config.queues[callback.queue.0].callback_attempts;
        self.attempt_failed(now, entry, leg, reason, max);
    }

    /// An attempt that did not reach the caller: hang up the agent (free at once, no wrap-up:
    /// it talked to nobody) and schedule the next attempt, or fail the callback.
    fn attempt_failed(
        &mut self,
        now: Instant,
        entry: EntryId,
        leg: LegKey,
        reason: &str,
        max: u32,
    ) {
        let attempts = self.callbacks.get(&entry).map_or(0, |c| c.attempts);
        if attempts >= max.max(1) {
            return self.finish_callback(now, entry, leg, CallbackState::Failed, reason);
        }
        self.release_attempt(now, entry, leg);
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        let delay = Duration::from_secs(self.config.queues[callback.queue.0].callback_retry_delay);
        let at = now + delay;
        let id = callback.id;
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

    /// The end of a callback without a conversation: `failed` (out of the queue).
    fn finish_callback(
        &mut self,
        now: Instant,
        entry: EntryId,
        leg: LegKey,
        state: CallbackState,
        reason: &str,
    ) {
        self.release_attempt(now, entry, leg);
        let Some(callback) = self.callbacks.remove(entry) else {
            return;
        };
        self.queues.leave(entry, LeaveReason::Removed);
        self.drain_queue_events();
        self.callbacks.push(super::StoreRequest::SetState {
            id: callback.id,
            state,
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

    /// Tear down an unanswered attempt: the trunk side (CANCEL if still ringing), then the
    /// agent (BYE, available again without wrap-up).
    fn release_attempt(&mut self, now: Instant, entry: EntryId, leg: LegKey) {
        if let Some((attempt, _)) = self.callbacks.take_attempt(entry) {
            if !attempt.trunk_final {
                let _ = self.sip.transactions.cancel(now, attempt.client());
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
    /// too (after the bridge: BYE; before it: the attempt failed).
    pub(super) fn callback_agent_leg_ended(&mut self, now: Instant, leg: LegKey, call: CallKey) {
        let entry = call.entry();
        let Some(callback) = self
            .callbacks
            .get(&entry)
            .filter(|c| c.attempt().is_some_and(|a| a.agent_leg == leg))
        else {
            return;
        };
        if callback.dialog().is_some() {
            self.end_trunk_leg(now, entry, true);
        } else {
            // The agent hung up while the caller's phone rang. The leg is gone already, so
            // release_attempt's end_leg is a no-op; the agent is freed by it all the same.
            self.trunk_failed(now, entry, "agent hung up before the caller answered");
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

    fn callback_event(
        &mut self,
        now: Instant,
        kind: CallEventKind,
        queue: crate::queue::QueueId,
        number: &str,
    ) {
        self.journal.push_back((
            now,
            Record::Event(CallEvent {
                queue: Some(self.config.queues[queue.0].name.clone()),
                caller: Some(number.to_string()),
                ..CallEvent::new(0, kind)
            }),
        ));
    }
}
