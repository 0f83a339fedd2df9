//! Client transactions: INVITE (RFC 3261 §17.1.1 with RFC 6026's "Accepted" state) and
//! non-INVITE (§17.1.2), over UDP, plus the CANCEL rules of §9.1.
//!
//! ```text
//!  INVITE client                              non-INVITE client
//!  send: A=T1 (doubling), B=64·T1             send: E=T1 (doubling, cap T2), F=64·T1
//!    |                                          |
//!  Calling --1xx--> Proceeding                Trying --1xx--> Proceeding (E every T2)
//!    |  Timer B: Timeout   |                    |  Timer F: Timeout   |
//!    +--------+------------+                    +--------+------------+
//!     2xx     | 300-699: send ACK, D                   final: K=T4
//!     v       v                                        v
//!  Accepted  Completed (re-ACK on retransmits)       Completed --Timer K--> Terminated
//!  (M=64·T1)  --Timer D--> Terminated
//! ```
//!
//! A CANCEL requested before any provisional is held back until the first 1xx (§9.1). Once a
//! CANCEL is sent, Timer B is re-armed so that an INVITE whose server never sends the final
//! response still ends after 64·T1 (§9.1, last paragraph).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rsip::prelude::*;
use rsip::{Header, Method, StatusCodeKind};

use super::timers::{Timer, TimerTable};
use super::{ClientKey, Ctx, Event};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// "Calling" for INVITE, "Trying" for non-INVITE: retransmitting, no response yet.
    Calling,
    Proceeding,
    Completed,
    /// INVITE only: a 2xx arrived (RFC 6026); 2xx retransmissions are passed on.
    Accepted,
    Terminated,
}

/// Where the CANCEL of an INVITE client transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cancel {
    NotRequested,
    /// Requested before any provisional: sent when the first 1xx arrives.
    Pending,
    Sent,
}

/// What `cancel()` on this transaction decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CancelDecision {
    SendNow,
    Deferred,
    AlreadyRequested,
    NotInvite,
    AlreadyFinal,
}

/// One client transaction.
#[derive(Debug)]
pub(super) struct ClientTx {
    pub(super) key: ClientKey,
    invite: bool,
    state: State,
    pub(super) destination: SocketAddr,
    request: rsip::Request,
    bytes: Bytes,
    /// The current Timer A / Timer E interval.
    interval: Duration,
    cancel: Cancel,
    /// The ACK of a non-2xx final, re-sent for each retransmission of that final.
    ack: Option<Bytes>,
    pub(super) timers: TimerTable,
    /// Over a connection: no retransmissions, Timers D and K zero.
    pub(super) reliable: bool,
}

impl ClientTx {
    /// Sends `request` and arms the retransmission and timeout timers.
    pub(super) fn new(
        key: ClientKey,
        destination: SocketAddr,
        request: rsip::Request,
        ctx: &mut Ctx,
    ) -> Self {
        let invite = request.method == Method::Invite;
        let bytes = crate::sip::message::encode_request(&request);
        // §18.1.1: a request larger than the path allows over UDP goes over TCP.
        if !ctx.reliable && bytes.len() > super::MAX_UDP_REQUEST {
            ctx.reliable = true;
            ctx.out.streams.push_back(destination);
        }
        ctx.out.send(destination, bytes.clone());
        let mut timers = TimerTable::default();
        let (retransmit, timeout) = if invite {
            (Timer::A, Timer::B)
        } else {
            (Timer::E, Timer::F)
        };
        if !ctx.reliable {
            timers.set(retransmit, ctx.now + ctx.config.t1);
        }
        timers.set(timeout, ctx.now + ctx.config.timeout());
        Self {
            key,
            invite,
            state: State::Calling,
            destination,
            request,
            bytes,
            interval: ctx.config.t1,
            cancel: Cancel::NotRequested,
            ack: None,
            timers,
            reliable: ctx.reliable,
        }
    }

    pub(super) fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// Whether no final response has arrived yet (the request is still being retransmitted
    /// or is proceeding); Completed/Accepted only absorb retransmissions.
    pub(super) fn awaits_final(&self) -> bool {
        matches!(self.state, State::Calling | State::Proceeding)
    }

    /// Handles a response matched to this transaction. Returns `true` when a deferred CANCEL
    /// must go out now (the first provisional arrived).
    pub(super) fn on_response(&mut self, response: rsip::Response, ctx: &mut Ctx) -> bool {
        let kind = response.status_code.kind();
        let now = ctx.now;
        match (self.state, kind) {
            (_, StatusCodeKind::Other) => {
                ctx.out.stats.stray_responses += 1;
                false
            }
            (State::Calling | State::Proceeding, StatusCodeKind::Provisional) => {
                let first = self.state == State::Calling;
                self.state = State::Proceeding;
                let send_cancel = first && self.cancel == Cancel::Pending;
                if self.invite {
                    // §17.1.1.2: no more retransmissions once a provisional arrived; the INVITE
                    // now lives until a final (or until 64·T1 after a CANCEL).
                    self.timers.stop(Timer::A);
                    self.timers.stop(Timer::B);
                }
                self.surface(response, ctx);
                send_cancel
            }
            (State::Calling | State::Proceeding, StatusCodeKind::Successful) if self.invite => {
                self.state = State::Accepted;
                self.cancel = Cancel::NotRequested;
                self.timers.stop_all();
                self.timers.set(Timer::M, now + ctx.config.timeout());
                self.surface(response, ctx);
                false
            }
            (State::Calling | State::Proceeding, _) if self.invite => {
                self.state = State::Completed;
                self.cancel = Cancel::NotRequested;
                let ack = crate::sip::message::encode_request(&ack_for(&self.request, &response));
                ctx.out.send(self.destination, ack.clone());
                self.ack = Some(ack);
                self.timers.stop_all();
                let linger = if self.reliable {
                    Duration::ZERO
                } else {
                    ctx.config.timer_d
                };
                self.timers.set(Timer::D, now + linger);
                self.surface(response, ctx);
                false
            }
            (State::Calling | State::Proceeding, _) => {
                self.state = State::Completed;
                self.timers.stop_all();
                let linger = if self.reliable {
                    Duration::ZERO
                } else {
                    ctx.config.t4
                };
                self.timers.set(Timer::K, now + linger);
                self.surface(response, ctx);
                false
            }
            // RFC 6026 §8.4: every 2xx in Accepted goes to the TU, which re-sends its ACK.
            (State::Accepted, StatusCodeKind::Successful) => {
                self.surface(response, ctx);
                false
            }
            (State::Completed, _) if self.invite && kind != StatusCodeKind::Provisional => {
                // A retransmitted non-2xx final: our ACK was lost; send it again (§17.1.1.2).
                if let Some(ack) = self.ack.clone() {
                    ctx.out.stats.retransmissions += 1;
                    ctx.out.send(self.destination, ack);
                }
                ctx.out.stats.absorbed += 1;
                false
            }
            _ => {
                ctx.out.stats.absorbed += 1;
                false
            }
        }
    }

    fn surface(&self, response: rsip::Response, ctx: &mut Ctx) {
        ctx.out.events.push_back(Event::Response {
            key: self.key.clone(),
            response,
        });
    }

    /// The TU wants this INVITE cancelled.
    pub(super) fn request_cancel(&mut self) -> CancelDecision {
        if !self.invite {
            return CancelDecision::NotInvite;
        }
        match (self.state, self.cancel) {
            (State::Completed | State::Accepted | State::Terminated, _) => {
                CancelDecision::AlreadyFinal
            }
            (_, Cancel::Pending | Cancel::Sent) => CancelDecision::AlreadyRequested,
            (State::Calling, Cancel::NotRequested) => {
                // §9.1: no CANCEL before a provisional response. The TU has given up, so
                // stop re-sending the INVITE too: a phone that is gone would otherwise get
                // it for the rest of Timer B. A late provisional still triggers the CANCEL
                // and a late 2xx is still ACKed and hung up; Timer B ends the wait.
                self.cancel = Cancel::Pending;
                self.timers.stop(Timer::A);
                CancelDecision::Deferred
            }
            (State::Proceeding, Cancel::NotRequested) => CancelDecision::SendNow,
        }
    }

    /// Records that the CANCEL goes out now and returns it (§9.1). Re-arms Timer B: without a
    /// final response 64·T1 after the CANCEL, the INVITE transaction gives up.
    pub(super) fn cancel_sent(&mut self, ctx: &mut Ctx) -> rsip::Request {
        self.cancel = Cancel::Sent;
        self.timers.set(Timer::B, ctx.now + ctx.config.timeout());
        cancel_for(&self.request)
    }

    pub(super) fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx) {
        match (timer, self.state) {
            (Timer::A, State::Calling) => {
                self.retransmit(ctx);
                self.interval *= 2;
                self.timers.set(Timer::A, ctx.now + self.interval);
            }
            (Timer::E, State::Calling | State::Proceeding) => {
                self.retransmit(ctx);
                self.interval = if self.state == State::Calling {
                    (self.interval * 2).min(ctx.config.t2)
                } else {
                    ctx.config.t2
                };
                self.timers.set(Timer::E, ctx.now + self.interval);
            }
            (Timer::B | Timer::F, State::Calling | State::Proceeding) => {
                ctx.out.stats.timeouts += 1;
                ctx.out.events.push_back(Event::Timeout {
                    key: self.key.clone(),
                });
                self.terminate();
            }
            (Timer::D, State::Completed)
            | (Timer::K, State::Completed)
            | (Timer::M, State::Accepted) => self.terminate(),
            _ => {}
        }
    }

    fn retransmit(&self, ctx: &mut Ctx) {
        ctx.out.stats.retransmissions += 1;
        ctx.out.send(self.destination, self.bytes.clone());
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.stop_all();
    }
}

/// Headers every request built from the original INVITE keeps: Call-ID, From, the top Via and
/// Route (§9.1, §17.1.1.3). Returns them in the original order, Via first.
fn copied_headers(invite: &rsip::Request, keep_to: bool) -> rsip::Headers {
    let mut headers: rsip::Headers = Default::default();
    // Only the top Via: the first Via header line, cut to its first value.
    if let Ok(via) = super::key::top_via(invite) {
        headers.push(Header::Via(rsip::headers::Via::new(via)));
    }
    for header in invite.headers.iter() {
        match header {
            Header::From(_) | Header::CallId(_) | Header::Route(_) => headers.push(header.clone()),
            Header::To(_) if keep_to => headers.push(header.clone()),
            _ => {}
        }
    }
    headers
}

fn finish(method: Method, invite: &rsip::Request, mut headers: rsip::Headers) -> rsip::Request {
    let seq = super::key::cseq(invite)
        .map(|(seq, _)| seq)
        .unwrap_or_default();
    headers.push(Header::CSeq(rsip::typed::CSeq { seq, method }.into()));
    headers.push(Header::MaxForwards(Default::default()));
    headers.push(Header::ContentLength(Default::default()));
    rsip::Request {
        method,
        uri: invite.uri.clone(),
        version: invite.version.clone(),
        headers,
        body: Vec::new(),
    }
}

/// The CANCEL for an INVITE (§9.1): same Request-URI, Call-ID, To, From, top Via and Route,
/// the INVITE's CSeq number with method CANCEL.
pub fn cancel_for(invite: &rsip::Request) -> rsip::Request {
    finish(Method::Cancel, invite, copied_headers(invite, true))
}

/// The ACK for a non-2xx final (§17.1.1.3): as the CANCEL, but with the response's To (which
/// carries the UAS tag).
pub fn ack_for(invite: &rsip::Request, response: &rsip::Response) -> rsip::Request {
    let mut headers = copied_headers(invite, false);
    match response.to_header() {
        Ok(to) => headers.push(Header::To(to.clone())),
        Err(_) => {
            if let Ok(to) = invite.to_header() {
                headers.push(Header::To(to.clone()));
            }
        }
    }
    finish(Method::Ack, invite, headers)
}
