//! Calls to agents (docs/behaviour.md §5, bridge mode `relay`): dispatch, the outbound INVITE leg, ring
//! timeout and CANCEL, the answer that bridges caller and agent through the media relay, and
//! the end of a bridged call from either side.
//!
//! ```text
//!  dispatch ──▶ Ringing ──2xx──▶ Answered (ACK, relay both ways) ──BYE either side──▶ gone
//!                 │  ring_timeout / caller left: CANCEL ──▶ Cancelling ──final──▶ gone
//!                 └─ 486 / 480 / 603 / timeout: no-answer mark, caller keeps its place
//! ```
//! The caller's queue entry stays in the queue (at its place, marked offered) while the
//! agent rings, so a failed ring costs the caller nothing; it leaves only on answer.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::Header;
use rsip::prelude::*;

use super::events::EventFacts;
use super::leg::{LegFor, LegKey, LegState, NewLeg};
use super::{B2bua, CallKey, CallState, CallTimer, push_other};
use crate::queue::dispatch::{AgentId, AgentState, Assignment};
use crate::queue::{EntryId, LeaveReason, QueueId};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::sdp;
use crate::sip::sdp::crypto::CryptoAttr;
use crate::sip::transaction::ClientKey;
use crate::sip::transport::Transport;
use crate::srtp::{MasterKey, Suite};
use crate::store::CallEventKind;

/// Why an agent could not be called (or transferred to); the agent gets a no-answer mark
/// so a broken one is paused after `max_no_answer` instead of being picked forever.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The agent has no registered Contact.
    #[error("agent not registered")]
    NotRegistered,
    /// The agent is not available any more.
    #[error("agent not available")]
    NotAvailable,
    /// The caller (or the callback) is gone.
    #[error("caller gone")]
    CallerGone,
    /// Every RTP port is in use.
    #[error("no RTP port: {0}")]
    NoRtpPort(super::NoFreePort),
    /// The transaction layer refused the request (no usable branch or destination).
    #[error("{method} not sent: {reason}")]
    NotSent {
        /// INVITE or REFER.
        method: &'static str,
        /// Why.
        reason: String,
    },
}

impl B2bua {
    /// Match free agents with waiting callers until no match is left (docs/behaviour.md §5: dispatch
    /// happens the moment either side becomes available, never on a polling loop).
    pub(super) fn dispatch(&mut self, now: Instant) {
        // In a cluster: matches this pass left to other nodes (docs/cluster.md).
        let mut aside = Default::default();
        // Callbacks of a closed queue wait for its opening (never dialled at night).
        let closed = self.closed_queues(now);
        loop {
            // Callbacks committing, confirming or waiting out a retry keep their place
            // without being dispatched.
            let (agents_aside, entries_aside): &(HashSet<AgentId>, HashSet<EntryId>) = &aside;
            let offered = |entry: EntryId| {
                entries_aside.contains(&entry)
                    || self.offered.contains(&entry)
                    || self.closed_callback(&closed, entry)
                    || self
                        .callbacks
                        .holds_back(entry, self.calls.contains_key(&CallKey(entry.0)))
            };
            let Some(assignment) = self
                .agents
                .next_assignment_among(&self.queues, offered, |a| agents_aside.contains(&a))
            else {
                return;
            };
            // Ring-all: the others to ring with the chosen agent, asked before it rings.
            // A cluster rings one agent per caller (each ring needs its own claim), and a
            // callback's dial-back one agent.
            let others = if self.cluster.is_none()
                && self.calls.contains_key(&CallKey(assignment.entry.0))
            {
                self.agents
                    .ring_all_too(&self.queues, assignment, offered, |_| false)
            } else {
                Vec::new()
            };
            if self.cluster_dispatch(now, assignment, &mut aside) {
                continue;
            }
            self.offer(now, assignment);
            self.ring_others(now, assignment, others);
        }
    }

    /// Rings (or transfers to) the agent of `assignment` for its entry.
    pub(super) fn offer(&mut self, now: Instant, assignment: Assignment) {
        self.agents.served(assignment);
        let started = if self.wants_refer(&assignment) {
            self.start_transfer(now, assignment)
        } else {
            self.start_leg(now, assignment, false)
        };
        if let Err(error) = started {
            tracing::warn!(
                agent = %self.agent_name(assignment.agent),
                %error,
                "cannot call agent"
            );
            // Count it as a miss so a broken agent is paused after max_no_answer
            // instead of being picked forever.
            let queue = &self.config.queues[assignment.queue.0];
            let (max, backoff) = (
                queue.max_no_answer,
                Duration::from_secs(queue.no_answer_backoff),
            );
            let _ = self.agents.ringing(now, assignment.agent, assignment.entry);
            let _ = self
                .agents
                .no_answer_then_rest(now, assignment.agent, max, backoff);
            self.drain_agent_events();
        }
    }

    /// The event facts of a caller in `queue` and the agent it rings or talks to.
    pub(super) fn leg_facts(
        &self,
        queue: QueueId,
        agent: Option<AgentId>,
        call: CallKey,
    ) -> EventFacts {
        let call = self.calls.get(&call);
        EventFacts {
            call_id: call.map(|c| c.dialog.call_id.clone()),
            queue: self.config.queues.get(queue.0).map(|q| q.name.clone()),
            caller: call.map(|c| c.caller.clone()),
            agent: agent
                .and_then(|a| self.agents.get(a))
                .map(|a| a.user().to_owned()),
            ..EventFacts::default()
        }
    }

    pub(super) fn agent_name(&self, agent: AgentId) -> String {
        self.agents
            .get(agent)
            .map(|a| a.user().to_string())
            .unwrap_or_default()
    }

    /// Send the INVITE that rings `assignment.agent` for the caller at `assignment.entry`
    /// (`too`: beside the legs already ringing for that caller, ring-all). Every check comes
    /// first; once the INVITE is sent, nothing can fail.
    pub(super) fn start_leg(
        &mut self,
        now: Instant,
        assignment: Assignment,
        too: bool,
    ) -> Result<(), DispatchError> {
        let Assignment {
            agent,
            queue,
            entry,
        } = assignment;
        let call_key = CallKey(entry.0);
        let user = self.agent_name(agent);
        if self.agents.get(agent).map(|a| a.state()) != Some(AgentState::Available) {
            return Err(DispatchError::NotAvailable);
        }
        let (contact, destination, path) = self
            .agent_target(&user)
            .ok_or(DispatchError::NotRegistered)?;
        let purpose = if self.calls.contains_key(&call_key) {
            LegFor::Caller(call_key)
        } else {
            LegFor::Callback(entry)
        };
        let (stream, port, caller, codec) = self.agent_leg_media(call_key)?;
        let queue_config = &self.config.queues[queue.0];
        let ring_timeout = Duration::from_secs(queue_config.ring_timeout);
        let queue_name = queue_config.name.clone();

        let leg_key = LegKey(self.next_key);
        self.next_key += 1;
        let mut local = super::session::LocalSdp::new(port, leg_key.0, codec);
        // A phone registered over TLS is offered SRTP (docs/behaviour.md §5): its signalling
        // is private, so its media should be too.
        if self.sip.flows.get(&destination) == Some(&Transport::Tls) {
            let key = MasterKey::generate(Suite::AesCm128HmacSha1_80, self.sip.ids.key_material());
            local.offered_keys = vec![CryptoAttr { tag: 1, key }];
        }
        let offer_sdp = local.offer(self.config.sip.public_address);
        let invite = self.agent_invite(&contact, &path, &user, &caller, &queue_name, &offer_sdp);
        let client = match self
            .sip
            .transactions
            .send_request(now, destination, invite.clone())
        {
            Ok(client) => client,
            Err(error) => {
                self.media.close(stream);
                return Err(DispatchError::NotSent {
                    method: "INVITE",
                    reason: error.to_string(),
                });
            }
        };
        // Checked above: the agent is available.
        let _ = if too {
            self.agents.ringing_too(now, agent, entry)
        } else {
            self.agents.ringing(now, agent, entry)
        };
        tracing::info!(
            event = "ring",
            agent = %user,
            caller = %caller,
            queue = %queue_name,
            "ringing agent"
        );
        self.offered.insert(entry);
        if let Some(call) = self.calls.get_mut(&call_key) {
            if too {
                call.ring_too.push(leg_key);
            } else {
                call.leg = Some(leg_key);
            }
        }
        self.legs.insert(NewLeg {
            key: leg_key,
            agent,
            purpose,
            call: call_key,
            queue,
            invite,
            client,
            destination,
            stream,
            ring_deadline: now + ring_timeout,
            local,
        });
        Ok(())
    }

    /// Where to send an agent's INVITE: the Contact it registered, at the address the
    /// REGISTER came from when the Contact names another host (NAT) or no IP literal —
    /// holdfast never looks a name up.
    fn agent_target(&self, user: &str) -> Option<(rsip::Uri, SocketAddr, Vec<String>)> {
        // An agent registered on another node of the cluster is reached as that node would.
        let binding = self.agent_binding(user)?;
        let contact: rsip::Uri = binding.contact_uri()?;
        let source = binding.source;
        // Registered through proxies that added Path (RFC 3327 §5.4): the INVITE goes to the
        // first of them with the Path as its Route; the phone's Contact may be unreachable
        // from here. The first Path hop is the proxy the REGISTER came from, unless it names
        // an address of its own.
        if !binding.path.is_empty() {
            let hop = binding.first_hop().unwrap_or(source);
            return Some((contact, hop, binding.path.clone()));
        }
        // Registered over a connection: the phone is reached over that connection (RFC 5626
        // §5.3), whatever its Contact says; the connection may be the only way through its NAT.
        if self.sip.flows.contains_key(&source) {
            return Some((contact, source, Vec::new()));
        }
        let direct = match &contact.host_with_port.host {
            rsip::Host::IpAddr(ip) if *ip == source.ip() => Some(SocketAddr::new(
                *ip,
                contact
                    .host_with_port
                    .port
                    .map(|p| *p.value())
                    .unwrap_or(5060),
            )),
            _ => None,
        };
        Some((contact, direct.unwrap_or(source), Vec::new()))
    }

    /// The INVITE to an agent: the caller's number and name in From so the phone shows who
    /// calls, the queue's name in Subject and X-Holdfast-Queue.
    fn agent_invite(
        &mut self,
        contact: &rsip::Uri,
        path: &[String],
        user: &str,
        caller: &str,
        queue: &str,
        sdp: &str,
    ) -> rsip::Request {
        let host = self.config.sip.public_address;
        let caller_user = if caller.is_empty() {
            "anonymous"
        } else {
            caller
        };
        let display = caller_user.replace(['"', '\\'], "");
        // The stored Path is the preloaded route set (RFC 3327 §5.4, RFC 3261 §8.1.2).
        let mut extra: Vec<Header> = path
            .iter()
            .map(|hop| Header::Route(rsip::headers::Route::new(hop.clone())))
            .collect();
        extra.push(Header::Subject(rsip::headers::Subject::new(format!(
            "Queue: {queue}"
        ))));
        extra.push(Header::Other("X-Holdfast-Queue".into(), queue.into()));
        self.new_invite(
            contact.clone(),
            format!("\"{display}\" <sip:{caller_user}@{host}>"),
            format!("<sip:{user}@{host}>"),
            extra,
            sdp,
        )
    }

    /// A new INVITE from holdfast (to an agent's phone or, for a callback, to the trunk):
    /// fresh branch, tag and Call-ID, CSeq 1, our Contact, `extra` headers, an SDP offer.
    pub(super) fn new_invite(
        &mut self,
        uri: rsip::Uri,
        from: String,
        to: String,
        extra: Vec<Header>,
        sdp: &str,
    ) -> rsip::Request {
        let host = self.config.sip.public_address;
        let mut headers: Vec<Header> = vec![
            message::via(&self.sip.sent_by, &self.sip.ids.branch()),
            Header::MaxForwards(rsip::headers::MaxForwards::new("70")),
            Header::From(rsip::headers::From::new(format!(
                "{from};tag={}",
                self.sip.ids.tag()
            ))),
            Header::To(rsip::headers::To::new(to)),
            Header::CallId(rsip::headers::CallId::new(format!(
                "{}@{host}",
                self.sip.ids.tag()
            ))),
            Header::CSeq(rsip::headers::CSeq::new("1 INVITE")),
            Header::Contact(rsip::headers::Contact::new(self.our_contact())),
        ];
        headers.extend(extra);
        headers.push(Header::Allow(rsip::headers::Allow::new(
            message::ALLOWED_METHODS,
        )));
        let request = rsip::Request {
            method: rsip::Method::Invite,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        message::with_request_body(request, "application/sdp", sdp.as_bytes().to_vec())
    }

    /// A response on an agent leg's INVITE.
    pub(super) fn on_leg_response(
        &mut self,
        now: Instant,
        client: &ClientKey,
        response: rsip::Response,
    ) {
        let Some(leg_key) = self.legs.by_client(client) else {
            let _ = self.on_trunk_response(now, client, response);
            return;
        };
        let code = response.status_code.code();
        match code {
            100..=199 => {}
            200..=299 => self.on_leg_answered(now, leg_key, &response),
            _ => {
                if self
                    .legs
                    .get(&leg_key)
                    .is_some_and(|l| l.state().is_ringing())
                {
                    tracing::info!(code, "agent did not take the call");
                    self.leg_failed(now, leg_key);
                }
                self.forget_leg(leg_key);
            }
        }
    }

    /// The INVITE to an agent got no final response at all (Timer B).
    pub(super) fn on_leg_timeout(&mut self, now: Instant, client: &ClientKey) {
        if let Some(leg_key) = self.legs.by_client(client) {
            if self
                .legs
                .get(&leg_key)
                .is_some_and(|l| l.state().is_ringing())
            {
                self.leg_failed(now, leg_key);
            }
            self.forget_leg(leg_key);
        } else {
            let _ = self.on_trunk_timeout(now, client);
        }
    }

    fn on_leg_answered(&mut self, now: Instant, leg_key: LegKey, ok: &rsip::Response) {
        let Some(leg) = self.legs.get(&leg_key) else {
            return;
        };
        // Every 2xx (retransmissions too) gets an ACK: it is end to end (§13.2.2.4).
        let mut dialog = match Dialog::from_uac(&leg.invite, ok) {
            Ok(dialog) => dialog,
            Err(error) => {
                tracing::warn!(%error, "agent's 2xx unusable");
                return;
            }
        };
        let ack = dialog.ack(&self.sip.sent_by, &self.sip.ids.branch());
        let destination = leg.destination;
        let talking_since = matches!(leg.purpose, LegFor::Caller(_)).then_some(now);
        self.sip.transactions.send_stateless(destination, ack);
        match leg.state() {
            LegState::Answered { .. } => {}
            LegState::Cancelling => {
                // The answer crossed our CANCEL: hang up at once.
                self.sip.bye(now, &mut dialog, destination);
            }
            LegState::Ringing { .. } => {
                let answer = sdp::parse_offer(&ok.body).ok();
                self.legs.answered(leg_key, dialog, talking_since);
                self.bridge(now, leg_key, answer);
            }
        }
    }

    /// The agent answered: connect the two legs (docs/behaviour.md §5: stop the hold media,
    /// relay RTP both ways), take the caller out of the queue, start the handle-time clock.
    fn bridge(&mut self, now: Instant, leg_key: LegKey, agent_sdp: Option<sdp::Offer>) {
        let Some(leg) = self.legs.get_mut(&leg_key) else {
            return;
        };
        if let Some(keys) = agent_keys(&leg.local.offered_keys, agent_sdp.as_ref()) {
            self.media.secure(leg.stream, &keys);
            leg.local.keys = Some(keys);
        }
        if let LegFor::Callback(_) = leg.purpose {
            return self.callback_agent_answered(now, leg_key, agent_sdp);
        }
        let agent_remote = agent_sdp.as_ref().map_or(leg.destination, |o| o.remote);
        leg.remote = Some(agent_remote);
        let (agent, call_key, agent_stream, queue) = (leg.agent, leg.call, leg.stream, leg.queue);
        let Some(call) = self.calls.get(&call_key) else {
            // The caller vanished in the same instant: end the agent's side.
            self.end_leg(now, leg_key, true);
            return;
        };
        let (payload_type, codec) = (call.media.payload_type, call.codec);
        self.answered_in_ring(now, call_key, leg_key);
        let _ = self.agents.answered(now, agent);
        self.drain_agent_events();
        // `announce_to_agent`: the agent hears it first, the caller keeps its ringback or
        // music; the legs are connected when it ends.
        let law = super::callback::law(codec);
        if let Some(frames) = self.audio.prompts.whisper(queue.0, law) {
            let silence = match law {
                crate::media::g711::Law::Mu => 0xFF,
                crate::media::g711::Law::A => 0xD5,
            };
            let silence = bytes::Bytes::from(vec![silence; crate::media::player::FRAME_LEN]);
            self.media
                .play(agent_stream, agent_remote, payload_type, silence);
            self.media.prompt_now(agent_stream, frames);
            self.whispering.insert(agent_stream, leg_key);
            return;
        }
        self.connect_legs(now, leg_key);
    }

    /// The agent answered (and heard `announce_to_agent`, if any): relay the two legs,
    /// answer a caller who was hearing ringback, take it out of the queue (docs/behaviour.md §5).
    pub(super) fn connect_legs(&mut self, now: Instant, leg_key: LegKey) {
        let Some(leg) = self.legs.get(&leg_key) else {
            return;
        };
        let (agent, call_key, agent_stream, queue) = (leg.agent, leg.call, leg.stream, leg.queue);
        let agent_remote = leg.remote.unwrap_or(leg.destination);
        let Some(call) = self.calls.get(&call_key) else {
            self.end_leg(now, leg_key, true);
            return;
        };
        let (caller_stream, caller_media, was_early) =
            (call.stream, call.media, call.state.is_early());
        let call_id = call.dialog.call_id.clone();
        self.media
            .connect(agent_stream, agent_remote, caller_media.payload_type);
        if was_early {
            self.answer_caller(now, call_key);
            self.media.connect(
                caller_stream,
                caller_media.remote,
                caller_media.payload_type,
            );
        }
        self.media.bridge(caller_stream, agent_stream);
        self.start_recording(now, leg_key, caller_stream, &call_id);
        if let Some(call) = self.calls.get_mut(&call_key) {
            call.announce = None;
            self.calls.schedule(call_key, CallTimer::Announce, None);
        }
        let entry = call_key.entry();
        self.offered.remove(&entry);
        self.queues.leave(entry, LeaveReason::Dispatched);
        self.drain_queue_events(now);
        self.keep(call_key);
        if let Some(call) = self.calls.get_mut(&call_key) {
            call.state = CallState::Bridged;
            let waited = now.saturating_duration_since(call.started);
            let mut facts = self.leg_facts(queue, Some(agent), call_key);
            facts.waited = Some(waited);
            self.call_event(now, CallEventKind::Connect, facts);
        }
    }

    /// The agent did not take the call: mark it, put the caller back to waiting (same
    /// place), answer a caller who was still ringing, and try the next agent.
    fn leg_failed(&mut self, now: Instant, leg_key: LegKey) {
        if !self.legs.cancelling(leg_key) {
            return;
        }
        let Some(leg) = self.legs.get(&leg_key) else {
            return;
        };
        let (agent, call_key, queue, stream) = (leg.agent, leg.call, leg.queue, leg.stream);
        self.media.close(stream);
        let queue_config = &self.config.queues[queue.0];
        let (max, backoff) = (
            queue_config.max_no_answer,
            Duration::from_secs(queue_config.no_answer_backoff),
        );
        let _ = self.agents.no_answer_then_rest(now, agent, max, backoff);
        self.drain_agent_events();
        let facts = self.leg_facts(queue, Some(agent), call_key);
        self.call_event(now, CallEventKind::RingNoAnswer, facts);
        if self.leave_ring(call_key, leg_key) {
            // Ring-all: other phones still ring for this caller.
            return;
        }
        self.offered.remove(&call_key.entry());
        if let Some(call) = self.calls.get_mut(&call_key) {
            call.leg = None;
            if call.state.is_early() {
                self.answer_caller(now, call_key);
                self.start_music(now, call_key);
            }
        }
    }

    /// Ring timeouts that have passed: CANCEL (§9.1) and treat as no answer.
    pub(super) fn expire_rings(&mut self, now: Instant) {
        while let Some(leg_key) = self.legs.first_expired(now) {
            let Some(leg) = self.legs.get(&leg_key) else {
                continue;
            };
            let client = leg.client().clone();
            tracing::info!(agent = %self.agent_name(leg.agent), "ring timeout: cancelling");
            let _ = self.sip.transactions.cancel(now, &client);
            // Leaves Ringing, so the deadline is gone and the loop moves on.
            self.leg_failed(now, leg_key);
        }
    }

    /// The caller left while its agent rang: CANCEL the agent, who stays available with
    /// no mark (a ring cancelled is no fault of the agent's).
    pub(super) fn cancel_leg_for_caller(&mut self, now: Instant, leg_key: LegKey) {
        let Some(leg) = self.legs.get(&leg_key) else {
            return;
        };
        match leg.state() {
            LegState::Ringing { .. } => {
                let (client, agent, stream) = (leg.client().clone(), leg.agent, leg.stream);
                self.legs.cancelling(leg_key);
                let _ = self.sip.transactions.cancel(now, &client);
                self.media.close(stream);
                let _ = self.agents.ring_cancelled(now, agent);
                self.drain_agent_events();
            }
            LegState::Answered { .. } => self.end_leg(now, leg_key, true),
            LegState::Cancelling => {}
        }
    }

    /// End an answered agent leg: BYE to the agent when `send_bye`, wrap-up, handle time.
    pub(super) fn end_leg(&mut self, now: Instant, leg_key: LegKey, send_bye: bool) {
        let Some(mut leg) = self.legs.remove(leg_key) else {
            return;
        };
        self.whispering.remove(&leg.stream);
        let talking_since = leg.talking_since();
        let destination = leg.destination;
        if let Some(dialog) = leg.dialog_mut()
            && send_bye
        {
            self.sip.bye(now, dialog, destination);
        }
        self.media.close(leg.stream);
        self.unwatch(now, leg_key);
        let wrapup = Duration::from_secs(self.config.queues[leg.queue.0].wrapup);
        if let Some(answered) = talking_since {
            let handle = now.saturating_duration_since(answered);
            let mut facts = self.leg_facts(leg.queue, Some(leg.agent), leg.call);
            facts.detail = super::recording::detail(leg.recording.as_deref());
            self.record_handle_time(now, leg.queue, handle, facts);
            let _ = self.agents.call_ended(now, leg.agent, wrapup);
        }
        self.drain_agent_events();
        self.callback_agent_leg_ended(now, leg_key, leg.call);
    }

    /// Drop the bookkeeping of a leg that reached its final response without being answered.
    fn forget_leg(&mut self, leg_key: LegKey) {
        if self
            .legs
            .get(&leg_key)
            .is_some_and(|leg| !leg.state().is_answered())
        {
            self.legs.remove(leg_key);
        }
    }

    /// An in-dialog request from an agent's phone, if `request` matches an answered leg.
    pub(super) fn leg_of(&self, request: &rsip::Request) -> Option<LegKey> {
        let call_id = message::call_id(request)?;
        let key = self.legs.by_call_id(call_id)?;
        let dialog = self.legs.get(&key)?.dialog()?;
        dialog.matches_request(request).then_some(key)
    }

    /// Send the deferred 200 OK to a caller who was ringing (Early).
    pub(super) fn answer_caller(&mut self, now: Instant, call_key: CallKey) {
        let contact = self.our_contact();
        let Some(call) = self.calls.get_mut(&call_key) else {
            return;
        };
        let Some(invite) = call.state.answer() else {
            return;
        };
        let body = call.answer_sdp.clone().into_bytes();
        let (key, tag) = (call.invite.clone(), call.dialog.local_tag.clone());
        let mut response =
            message::with_record_route(message::response(&invite, 200, None), &invite);
        push_other(&mut response, "Contact", &contact);
        push_other(&mut response, "Allow", message::ALLOWED_METHODS);
        push_other(&mut response, "Supported", "timer");
        self.session_refreshed(now, call_key, &invite, &mut response);
        let response = message::with_body(response, "application/sdp", body);
        let response = message::with_to_tag(response, &tag);
        self.respond(now, &key, response);
    }
}

/// The SRTP keys of an agent's leg: the key the agent's answer gives, with ours of the same
/// tag (RFC 4568 §7.1.3); `None` when we offered none or the answer is plain RTP (the leg
/// then stays plain: it is what the phone will send).
fn agent_keys(offered: &[CryptoAttr], answer: Option<&sdp::Offer>) -> Option<sdp::SrtpKeys> {
    let answer = answer.filter(|a| a.secure)?;
    let theirs = *answer.crypto.first()?;
    let ours = *offered
        .iter()
        .find(|o| o.tag == theirs.tag && o.key.suite() == theirs.key.suite())?;
    Some(sdp::SrtpKeys { theirs, ours })
}
