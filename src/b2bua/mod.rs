//! The call controller: the one place that joins a SIP dialog, a queue entry and a media
//! stream (DESIGN.md "Who may import whom").
//!
//! Sans-IO like the layers under it: the driver feeds datagrams, timeouts and media events
//! with the current time, then drains [`B2bua::poll_transmit`] and sleeps until
//! [`B2bua::poll_timeout`]. Media is reached through the [`MediaControl`] trait, so tests
//! can run the whole controller in-process with a fake clock and a fake media plane.
//!
//! Inbound call flow (SPEC §2): admission (trunk allowlist → `403`, `max_calls` → `503`,
//! route → `404`, SDP → `488`, full queue → `486`), then `200 OK` with our SDP answer, the
//! caller joins its queue and hears hold music until it hangs up (RFC 3261 §15: BYE).

mod call;
mod inbound;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

pub use call::{Call, CallKey, CallState};

use crate::config::Config;
use crate::media::engine::StreamId;
use crate::queue::{LeaveReason, Queues};
use crate::sip::message;
use crate::sip::sdp::Codec;
use crate::sip::transaction::{Event, ServerKey, TimerConfig, Transactions, Transmit};

/// What the controller needs from the media plane. Implemented by
/// [`crate::media::engine::MediaEngine`]; tests use a recording fake.
pub trait MediaControl {
    /// Bind a fresh RTP port for a new call.
    fn open(&mut self) -> std::io::Result<(StreamId, u16)>;
    /// Start sending the looped `music` frames to `remote` with RTP payload type `pt`.
    fn play(&mut self, id: StreamId, remote: SocketAddr, pt: u8, music: Bytes);
    /// Stop sending and free the port.
    fn close(&mut self, id: StreamId);
}

/// Hold music encoded once per codec at start-up (SPEC §4): every call shares these bytes.
#[derive(Debug, Clone)]
pub struct HoldMusic {
    /// G.711 µ-law frames, 160 bytes each.
    pub pcmu: Bytes,
    /// G.711 A-law frames, 160 bytes each.
    pub pcma: Bytes,
}

impl HoldMusic {
    /// The frames for a negotiated codec.
    pub fn for_codec(&self, codec: Codec) -> Bytes {
        match codec {
            Codec::Pcmu => self.pcmu.clone(),
            Codec::Pcma => self.pcma.clone(),
        }
    }
}

/// Counters the controller keeps for metrics and tests.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Datagrams that did not parse as SIP (replied 4xx/5xx or dropped).
    pub parse_errors: u64,
    /// Of those, dropped without any reply (no routable Via, or a response).
    pub dropped: u64,
    /// Calls admitted into a queue.
    pub calls_answered: u64,
    /// Calls that left the queue by hanging up.
    pub calls_abandoned: u64,
    /// INVITEs refused, by status code.
    pub rejected: BTreeMap<u16, u64>,
}

/// The controller. Generic over the media plane so tests can run it without sockets.
pub struct B2bua<M: MediaControl> {
    config: Config,
    /// `host:port` we put in Via and Contact.
    sent_by: String,
    transactions: Transactions,
    media: M,
    music: HoldMusic,
    queues: Queues,
    calls: HashMap<CallKey, Call>,
    by_call_id: HashMap<String, CallKey>,
    by_invite: HashMap<ServerKey, CallKey>,
    next_key: u64,
    /// Stateless replies (to messages that never became a transaction).
    stateless: VecDeque<Transmit>,
    stats: Stats,
    draining: bool,
}

impl<M: MediaControl> B2bua<M> {
    /// A controller for `config`, sending media through `media`.
    pub fn new(config: Config, media: M, music: HoldMusic) -> Self {
        let port = config.sip.listen.port();
        let sent_by = format!("{}:{}", config.sip.public_address, port);
        let mut queues = Queues::new();
        for queue in &config.queues {
            queues.add_queue(queue.name.clone(), queue.max_len as usize);
        }
        Self {
            config,
            sent_by,
            transactions: Transactions::new(TimerConfig::default()),
            media,
            music,
            queues,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            by_invite: HashMap::new(),
            next_key: 1,
            stateless: VecDeque::new(),
            stats: Stats::default(),
            draining: false,
        }
    }

    /// One UDP datagram arrived from `source`.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        match message::parse(datagram) {
            Ok(rsip::SipMessage::Request(mut request)) => {
                message::stamp_received(&mut request, source);
                if let Err(error) = self.transactions.handle_request(now, source, request) {
                    self.stats.parse_errors += 1;
                    tracing::debug!(%source, %error, "request refused by the transaction layer");
                }
            }
            Ok(rsip::SipMessage::Response(response)) => {
                if let Err(error) = self.transactions.handle_response(now, source, response) {
                    self.stats.dropped += 1;
                    tracing::debug!(%source, %error, "response dropped");
                }
            }
            Err(error) => {
                self.stats.parse_errors += 1;
                match error.reply() {
                    // §18.2.2: the reply goes to the datagram's source, whatever Via says.
                    Some(payload) => {
                        tracing::debug!(%source, %error, "malformed SIP answered");
                        self.stateless.push_back(Transmit {
                            destination: source,
                            payload: payload.into(),
                        });
                    }
                    None => {
                        self.stats.dropped += 1;
                        tracing::debug!(%source, %error, "malformed SIP dropped");
                    }
                }
            }
        }
        self.process_events(now);
    }

    /// The deadline from [`Self::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transactions.handle_timeout(now);
        self.process_events(now);
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.stateless
            .pop_front()
            .or_else(|| self.transactions.poll_transmit())
    }

    /// When [`Self::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.transactions.poll_timeout()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Calls currently up.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// The queues (read-only), for the admin API and tests.
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// Open transactions (finishing retransmissions count too), so a graceful stop can
    /// wait for them.
    pub fn transactions_in_flight(&self) -> usize {
        self.transactions.len()
    }

    /// Graceful stop (SPEC §9): refuse new INVITEs with `503` and hang up every caller
    /// with BYE, so nobody is left listening to a dead line.
    pub fn shutdown(&mut self, now: Instant) {
        self.draining = true;
        let keys: Vec<CallKey> = self.calls.keys().copied().collect();
        for key in keys {
            self.hang_up(now, key, LeaveReason::Removed);
        }
    }

    fn process_events(&mut self, now: Instant) {
        while let Some(event) = self.transactions.poll_event() {
            match event {
                Event::Request {
                    key,
                    request,
                    source,
                } => self.on_request(now, key, request, source),
                Event::Ack { request, .. } => self.on_ack(&request),
                Event::Cancel {
                    key,
                    invite,
                    request,
                    ..
                } => self.on_cancel(now, key, invite, request),
                Event::AckTimeout { key } => {
                    if let Some(call) = self.by_invite.get(&key).copied() {
                        tracing::warn!(call = call.0, "no ACK for our 200 OK: hanging up");
                        self.hang_up(now, call, LeaveReason::Abandoned);
                    }
                }
                // Responses to our BYEs and their timeouts need no action: the call was
                // already released when the BYE was sent.
                Event::Response { .. } | Event::Timeout { .. } => {}
                Event::StrayResponse { source, .. } => {
                    tracing::debug!(%source, "response matching no transaction dropped");
                }
            }
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        key: ServerKey,
        request: rsip::Request,
        source: SocketAddr,
    ) {
        let to_tag = message::to_tag(&request);
        match request.method {
            rsip::Method::Invite if to_tag.is_none() => {
                self.on_new_invite(now, key, request, source)
            }
            rsip::Method::Invite => self.on_reinvite(now, key, request),
            rsip::Method::Bye => self.on_bye(now, key, request),
            rsip::Method::Options => {
                let mut response = message::response(&request, 200, None);
                push_other(&mut response, "Allow", message::ALLOWED_METHODS);
                push_other(&mut response, "Accept", "application/sdp");
                self.respond(now, &key, response);
            }
            rsip::Method::Info => {
                let code = if self.dialog_of(&request).is_some() {
                    200
                } else {
                    481
                };
                self.reply(now, &key, &request, code);
            }
            // A CANCEL the transaction layer could not match (§9.2).
            rsip::Method::Cancel => self.reply(now, &key, &request, 481),
            rsip::Method::Ack => {}
            _ if to_tag.is_some() && self.dialog_of(&request).is_none() => {
                self.reply(now, &key, &request, 481)
            }
            _ => {
                let mut response = message::response(&request, 405, None);
                push_other(&mut response, "Allow", message::ALLOWED_METHODS);
                self.respond(now, &key, response);
            }
        }
    }

    /// The call whose dialog `request` belongs to, if any (§12.2.2).
    fn dialog_of(&self, request: &rsip::Request) -> Option<CallKey> {
        let call_id = message::call_id(request)?;
        let key = *self.by_call_id.get(call_id)?;
        let call = self.calls.get(&key)?;
        let from_tag = message::from_tag(request);
        let to_tag = message::to_tag(request);
        call.dialog
            .matches(call_id, from_tag, to_tag)
            .then_some(key)
    }

    fn on_ack(&mut self, request: &rsip::Request) {
        if let Some(key) = self.dialog_of(request)
            && let Some(call) = self.calls.get_mut(&key)
            && call.state == CallState::Answered
        {
            call.state = CallState::Confirmed;
        }
    }

    fn on_bye(&mut self, now: Instant, key: ServerKey, request: rsip::Request) {
        let Some(call) = self.dialog_of(&request) else {
            return self.reply(now, &key, &request, 481);
        };
        self.reply(now, &key, &request, 200);
        self.release(now, call, LeaveReason::Abandoned);
    }

    /// RFC 3261 §9.2: the CANCEL itself always gets `200`; the INVITE gets `487` if it has
    /// no final response yet. holdfast answers queue calls at once, so a CANCEL usually
    /// finds the INVITE answered and then has no effect: the caller ACKs and BYEs as usual.
    fn on_cancel(
        &mut self,
        now: Instant,
        key: ServerKey,
        invite: ServerKey,
        cancel: rsip::Request,
    ) {
        self.reply(now, &key, &cancel, 200);
        let terminated = message::response(&cancel, 487, None);
        match self.transactions.respond(now, &invite, terminated) {
            Ok(()) => tracing::info!(event = "cancel", "INVITE cancelled before answer"),
            Err(error) => tracing::debug!(%error, "CANCEL after the final response: no effect"),
        }
    }

    fn on_reinvite(&mut self, now: Instant, key: ServerKey, request: rsip::Request) {
        let Some(call_key) = self.dialog_of(&request) else {
            return self.reply(now, &key, &request, 481);
        };
        let call = self
            .calls
            .get_mut(&call_key)
            .expect("dialog_of returned a live call");
        let seq = message::cseq(&request).map(|(seq, _)| seq).unwrap_or(0);
        if !call.dialog.accept_remote_cseq(seq, &request.method) {
            return self.reply(now, &key, &request, 500);
        }
        // Session refresh or hold/unhold: we keep one session, so answer with the same SDP.
        let mut response = message::response(&request, 200, None);
        push_other(
            &mut response,
            "Contact",
            &format!("<sip:holdfast@{}>", self.sent_by),
        );
        let response = message::with_body(
            response,
            "application/sdp",
            call.answer_sdp.clone().into_bytes(),
        );
        self.respond(now, &key, response);
    }

    /// Answer `request` on transaction `key` with a bare status `code`.
    fn reply(&mut self, now: Instant, key: &ServerKey, request: &rsip::Request, code: u16) {
        let response = message::response(request, code, None);
        self.respond(now, key, response);
    }

    /// Send a response through its server transaction. Failing here means the transaction
    /// is already gone or final (a duplicate answer): nothing to send, but worth a log line.
    fn respond(&mut self, now: Instant, key: &ServerKey, response: rsip::Response) {
        if let Err(error) = self.transactions.respond(now, key, response) {
            tracing::warn!(%error, "response not sent");
        }
    }

    /// Hang up a call from our side: BYE to the trunk, then release everything.
    fn hang_up(&mut self, now: Instant, key: CallKey, reason: LeaveReason) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let bye = call
            .dialog
            .request(rsip::Method::Bye, &self.sent_by, &message::new_branch());
        let destination = call.signalling;
        if let Err(error) = self.transactions.send_request(now, destination, bye) {
            tracing::warn!(%error, "BYE not sent");
        }
        self.release(now, key, reason);
    }

    /// Forget a call: leave its queue, free its media, drop its indexes.
    fn release(&mut self, now: Instant, key: CallKey, reason: LeaveReason) {
        let Some(call) = self.calls.remove(&key) else {
            return;
        };
        self.by_call_id.remove(&call.dialog.call_id);
        self.by_invite.remove(&call.invite);
        self.media.close(call.stream);
        if call.queue.is_some() {
            self.queues.leave(call.entry(), reason);
            self.drain_queue_events();
        }
        if reason == LeaveReason::Abandoned {
            self.stats.calls_abandoned += 1;
        }
        tracing::info!(
            event = "leave",
            call_id = %call.dialog.call_id,
            caller = %call.caller,
            ?reason,
            waited_s = now.saturating_duration_since(call.started).as_secs(),
            "call ended"
        );
    }
}

impl<M: MediaControl> B2bua<M> {
    /// Queue events are logged; dispatch will act on them once agents exist.
    fn drain_queue_events(&mut self) {
        while let Some(event) = self.queues.poll_event() {
            tracing::debug!(?event, "queue event");
        }
    }
}

/// Adds an untyped header.
fn push_other(response: &mut rsip::Response, name: &str, value: &str) {
    response
        .headers
        .push(rsip::Header::Other(name.to_string(), value.to_string()));
}

#[cfg(test)]
mod tests;
