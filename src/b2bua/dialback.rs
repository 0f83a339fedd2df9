//! Callbacks, the dial-back (docs/behaviour.md §6): agent first, then the caller through the
//! trunk, then the bridge; retries that keep the place; every state change persisted, and the
//! two that decide whether the caller may be called again persisted *before* the SIP that
//! depends on them.
//!
//! ```text
//!  callback entry at the head + free agent
//!    └─▶ ring the agent (legs.rs, as for a caller) ──no answer──▶ next agent, same place
//!          └─ answers: hold music to the agent, attempts + 1, INVITE
//!             sip:<number>@<trunk address> built; BeginAttempt (`dialling` + the INVITE's
//!             bytes) to the store ── error: the attempt failed (below) ──┐
//!               └─ durable: the INVITE is sent (401/407 answered once    │
//!                  with the trunk's credentials; that INVITE is recorded │
//!                  the same way before it is sent)                       │
//!                    ├─ 2xx: Complete (`completed`) to the store; 2xx    │
//!                    │   retransmissions wait; once it replies (even     │
//!                    │   with an error): ACK, relay agent ⇄ caller,      │
//!                    │   entry leaves the queue                          │
//!                    └─ busy / no answer / error / agent hung up ◀───────┘
//!                       BYE the agent (free at once, no wrap-up), then `pending` with a
//!                       retry time (place kept) or, after `callback_attempts`, `failed`
//! ```
//! **Completed** means: the caller answered the callback INVITE and was bridged to the
//! agent. It is durable before the ACK, so a crash during the conversation does not call
//! the caller a second time.
//!
//! **Exactly once across a crash** (`kill -9`). What a restart finds, by where the crash hit:
//! - before the attempt was durable: `pending` (or the previous INVITE, see below); nothing
//!   was sent, the callback is dialled again later;
//! - between the record and the caller's answer: `dialling` with the INVITE. The restart
//!   CANCELs it and settles its outcome (`reconcile.rs`): a non-2xx final or no final in
//!   64·T1 counts as a failed attempt, retried later;
//! - between the 2xx and the durable `completed`: the 2xx was never ACKed, so the trunk
//!   retransmits it (RFC 3261 §13.3.1.4) to the restarted holdfast, which ACKs it, hangs up
//!   with BYE and marks the callback `failed` ("answered during a restart"): it is never
//!   dialled again;
//! - after `completed`: never dialled again.
//!
//! The one edge left: the caller answers and the restart takes longer than the trunk's 32 s
//! of 2xx retransmissions. The trunk then ends the unacknowledged call itself, the restart
//! sees no final response by its deadline, and the caller is dialled once more.
//!
//! Security (docs/behaviour.md §6): the only number ever dialled is a
//! [`super::callbacks::Callback`]'s, which comes from the caller's own call (or the store it was
//! committed to) and is checked against the queue's `callback_number_pattern` again right
//! before dialling.

use std::time::Instant;

use rsip::Header;
use rsip::prelude::*;

use super::callbacks::{Attempt, CallbackPhase};
use super::{AttemptToken, B2bua, CallKey, LegKey};
use crate::media::engine::StreamId;
use crate::queue::{EntryId, LeaveReason};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::sdp::{self, Codec};
use crate::sip::transaction::ClientKey;
use crate::store::{CallEvent, CallEventKind, Record, StoreError};

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

    /// The agent answered a callback: keep it on hold music, build the INVITE to the caller
    /// and have the attempt recorded; the INVITE leaves in [`Self::attempt_recorded`].
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
        let pattern_ok = self
            .callbacks
            .get(&entry)
            .is_some_and(|c| config.callback_number_allowed(&c.number));
        let Some(trunk) = self.config.trunks.first().cloned() else {
            tracing::error!("callback: no [[trunk]] configured to dial through");
            return self.finish_callback(now, entry, leg_key, "no trunk");
        };
        if !pattern_ok {
            tracing::warn!(entry = entry.0, "callback number refused by the pattern");
            return self.finish_callback(now, entry, leg_key, "number refused");
        }
        let Some(callback) = self.callbacks.get_mut(&entry) else {
            return;
        };
        callback.attempts += 1;
        let number = callback.number.clone();
        let (stream, port) = match self.media.open_beside(agent_stream) {
            Ok(opened) => opened,
            Err(_) => return self.attempt_failed(now, entry, leg_key, "no RTP port"),
        };
        let offer = sdp::render_offer(
            &[Codec::Pcmu, Codec::Pcma],
            &[],
            self.config.sip.public_address,
            port,
            entry.0,
            entry.0,
        );
        // The codec is the trunk's pick, known from its answer.
        let local = super::session::LocalSdp::new(port, entry.0, Codec::Pcmu);
        let invite = self.trunk_invite(&number, trunk.address, &offer);
        let Ok(client) = ClientKey::of_request(&invite) else {
            self.media.close(stream);
            return self.attempt_failed(now, entry, leg_key, "INVITE not sent");
        };
        self.record_attempt(entry, leg_key, &invite);
        self.callbacks
            .start_recording(entry, Attempt::new(leg_key, invite, client, stream, local));
    }

    /// Asks the store to record the attempt with `invite` before it is sent (docs/behaviour.md
    /// §6): a restart then knows that INVITE may be ringing, and cancels it.
    fn record_attempt(&mut self, entry: EntryId, leg: LegKey, invite: &rsip::Request) {
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        self.callbacks.push(super::StoreRequest::BeginAttempt {
            token: AttemptToken { entry, leg },
            id: callback.id,
            attempts: callback.attempts,
            invite: message::encode_request(invite).to_vec(),
        });
    }

    /// The store answered a `BeginAttempt` (driver input). Only a durable `Ok` lets the
    /// INVITE leave; after an error that attempt failed, and nothing was sent.
    pub fn attempt_recorded(
        &mut self,
        now: Instant,
        token: AttemptToken,
        result: Result<(), StoreError>,
    ) {
        self.send_recorded_invite(now, token, result);
        self.process_events(now);
    }

    fn send_recorded_invite(
        &mut self,
        now: Instant,
        token: AttemptToken,
        result: Result<(), StoreError>,
    ) {
        let AttemptToken { entry, leg } = token;
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        // A reply that outlived its attempt (the agent hung up meanwhile) changes nothing.
        let CallbackPhase::Recording(attempt) = callback.phase() else {
            return;
        };
        if attempt.agent_leg != leg {
            return;
        }
        let (id, attempts, queue) = (callback.id, callback.attempts, callback.queue);
        let (invite, first) = (attempt.invite.clone(), !attempt.authenticated);
        let number = callback.number.clone();
        if let Err(StoreError::Adopted { node, .. }) = &result {
            self.release_attempt(now, entry, leg);
            return self.give_up_adopted(now, entry, node);
        }
        if let Err(error) = result {
            tracing::error!(%error, callback = id.0, "dial-back attempt not recorded: not dialled");
            return self.attempt_failed(now, entry, leg, "attempt not recorded");
        }
        let Some(trunk) = self.config.trunks.first().map(|t| t.address) else {
            return self.attempt_failed(now, entry, leg, "no trunk");
        };
        match self.sip.transactions.send_request(now, trunk, invite) {
            Ok(client) => {
                self.callbacks.start_dialling(entry, client);
            }
            Err(_) => return self.attempt_failed(now, entry, leg, "INVITE not sent"),
        }
        if first {
            self.callback_event(now, CallEventKind::CallbackDialled, queue, &number);
            tracing::info!(event = "callback_dial", callback = id.0, %number, attempts, "dialling caller");
        }
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
            200..=299 => self.trunk_answered(entry, &response),
            401 | 407 if self.answer_challenge(entry, &response, code) => {}
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

    /// Re-sends the INVITE with credentials (RFC 3261 §22.2) once, after recording it;
    /// `false` when no credentials are configured, the challenge was answered before, or it
    /// is unreadable.
    fn answer_challenge(&mut self, entry: EntryId, response: &rsip::Response, code: u16) -> bool {
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
        let leg = attempt.agent_leg;
        let Ok(new_client) = ClientKey::of_request(&invite) else {
            return false;
        };
        // A new INVITE: recorded like the first before it is sent.
        self.record_attempt(entry, leg, &invite);
        self.callbacks.rekey(entry, new_client, invite);
        tracing::debug!(entry = entry.0, "trunk challenge answered");
        true
    }

    /// The caller picked up. First `completed` is made durable; the ACK and the bridge wait
    /// for it ([`Self::completion_recorded`]), so a crash in between leaves a 2xx without
    /// an ACK, which the trunk retransmits to the restarted holdfast (`reconcile.rs`).
    fn trunk_answered(&mut self, entry: EntryId, ok: &rsip::Response) {
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        match callback.phase() {
            CallbackPhase::Dialling(attempt) => {
                let Ok(dialog) = Dialog::from_uac(&attempt.invite, ok) else {
                    tracing::warn!("trunk's 2xx unusable");
                    return;
                };
                let token = AttemptToken {
                    entry,
                    leg: attempt.agent_leg,
                };
                let (id, attempts) = (callback.id, callback.attempts);
                self.callbacks.completing(entry, dialog, ok.clone());
                self.callbacks.push(super::StoreRequest::Complete {
                    token,
                    id,
                    attempts,
                });
                tracing::debug!(
                    callback = id.0,
                    "caller answered: completion before the ACK"
                );
            }
            // Retransmissions wait for the completion too (the trunk repeats the 2xx until
            // it is ACKed, RFC 3261 §13.3.1.4).
            CallbackPhase::Completing { .. } => {}
            // Our ACK was lost: every 2xx gets one (§13.2.2.4).
            CallbackPhase::Connected { attempt, .. } => {
                if let (Some(ack), Some(trunk)) = (
                    attempt.ack.clone(),
                    self.config.trunks.first().map(|t| t.address),
                ) {
                    self.sip.transactions.send_stateless(trunk, ack);
                }
            }
            _ => {}
        }
    }

    /// The store answered a `Complete` (driver input): ACK the 2xx and bridge the caller to
    /// the agent. After an error too: the caller is on the line (the error is logged).
    pub fn completion_recorded(
        &mut self,
        now: Instant,
        token: AttemptToken,
        result: Result<(), StoreError>,
    ) {
        self.bridge_answered(now, token, result);
        self.process_events(now);
    }

    fn bridge_answered(
        &mut self,
        now: Instant,
        token: AttemptToken,
        result: Result<(), StoreError>,
    ) {
        let AttemptToken { entry, leg } = token;
        let Some(callback) = self.callbacks.get(&entry) else {
            return;
        };
        if callback.attempt().map(|a| a.agent_leg) != Some(leg) {
            return;
        }
        let (id, queue, number) = (callback.id, callback.queue, callback.number.clone());
        if let Err(error) = result {
            // The caller is on the line: bridged all the same.
            tracing::error!(%error, callback = id.0, "callback completion not persisted");
        }
        let Some(ok) = self.callbacks.connected(entry) else {
            return;
        };
        let sent_by = self.sip.sent_by.clone();
        let branch = self.sip.ids.branch();
        let Some(ack) = self
            .callbacks
            .dialog_mut(entry)
            .map(|d| d.ack(&sent_by, &branch))
        else {
            return;
        };
        if let Some(trunk) = self.config.trunks.first().map(|t| t.address) {
            self.sip.transactions.send_stateless(trunk, ack.clone());
        }
        let Some(attempt) = self.callbacks.attempt_mut(entry) else {
            return;
        };
        attempt.ack = Some(ack);
        let stream = attempt.stream;
        if let Ok(answer) = sdp::parse_offer(&ok.body) {
            let (pt, codec) = answer
                .formats
                .iter()
                .find_map(|&pt| answer.codec_of(pt).map(|codec| (pt, codec)))
                .unwrap_or((0, Codec::Pcmu));
            attempt.local.codec = codec;
            self.media.connect(stream, answer.remote, pt);
            self.media
                .set_telephone_event(stream, answer.telephone_event);
        }
        let Some(agent_leg) = self.legs.get_mut(&leg) else {
            return;
        };
        // Handle time starts now: the conversation (docs/behaviour.md §5), not the agent's wait.
        agent_leg.start_talking(now);
        let agent_stream = agent_leg.stream;
        self.media.bridge(agent_stream, stream);
        if let Some(call_id) = self.callbacks.dialog_mut(entry).map(|d| d.call_id.clone()) {
            self.start_recording(now, leg, stream, &call_id);
        }
        self.offered.remove(&entry);
        self.queues.leave(entry, LeaveReason::Dispatched);
        self.drain_queue_events(now);
        self.callback_event(now, CallEventKind::CallbackCompleted, queue, &number);
        tracing::info!(event = "callback_connect", callback = id.0, %number, "caller bridged to agent");
    }

    /// A call event about a callback (docs/behaviour.md §8).
    pub(super) fn callback_event(
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
