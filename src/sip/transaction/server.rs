//! Server transactions: INVITE (RFC 3261 §17.2.1 with RFC 6026's "Accepted" state) and
//! non-INVITE (§17.2.2), over UDP.
//!
//! ```text
//!  INVITE server                           non-INVITE server
//!  new INVITE: send 100 Trying             new request
//!        |                                       |
//!   Proceeding --1xx from TU: send          Trying --1xx from TU--> Proceeding
//!    |      |                                  |                       |
//!   2xx    300-699: send, G=T1, H=64·T1        final from TU: send, J=64·T1
//!    |      v                                  v
//!    |   Completed --ACK--> Confirmed       Completed --Timer J--> Terminated
//!    |      | Timer H: AckTimeout  | Timer I=T4
//!    v      v                      v
//!   Accepted: 2xx re-sent on Timer G until the ACK, Timer L=64·T1 --> Terminated
//! ```
//!
//! Unlike a pure RFC 6026 transaction, the "Accepted" state here also owns the 2xx
//! retransmissions (T1 doubling, capped at T2) that §13.3.1.4 gives the UAS core, so that the
//! layer above never has to run timers: it sees the ACK as an event, or an `AckTimeout`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rsip::{Header, Method, StatusCodeKind};

use super::key::DialogAckKey;
use super::timers::{Timer, TimerTable};
use super::{Ctx, Event, RespondError, ServerKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Non-INVITE only: nothing sent yet.
    Trying,
    /// A provisional response was sent (INVITE: at least the automatic 100 Trying).
    Proceeding,
    /// A final response was sent (INVITE: 300–699) and is re-sent on request retransmissions.
    Completed,
    /// INVITE only: a 2xx was sent (RFC 6026).
    Accepted,
    /// INVITE only: the ACK for a non-2xx final arrived; absorbing ACK retransmissions.
    Confirmed,
    Terminated,
}

/// What an ACK matched against this transaction means for the layer above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AckOutcome {
    /// The ACK of a non-2xx final (or a retransmission of it): hop-by-hop, not surfaced.
    Absorbed,
    /// The ACK of our 2xx: end-to-end, surfaced to the TU.
    Surface,
    /// The transaction is in no state to take an ACK; dropped.
    Ignored,
}

/// One server transaction.
#[derive(Debug)]
pub(super) struct ServerTx {
    pub(super) key: ServerKey,
    invite: bool,
    state: State,
    /// Where responses go: the request's source address, never a resolved Via host.
    pub(super) source: SocketAddr,
    last_response: Option<Bytes>,
    /// The current Timer G interval.
    interval: Duration,
    acked: bool,
    /// INVITE only: this transaction's entry in the 2xx-ACK index, removed with it.
    pub(super) ack_key: Option<DialogAckKey>,
    pub(super) timers: TimerTable,
    /// Over a connection: no Timer G for a non-2xx, Timers I and J zero.
    pub(super) reliable: bool,
}

impl ServerTx {
    /// Creates the transaction for a new request. A new INVITE is answered with `100 Trying` at
    /// once (holdfast does not wait the 200 ms §17.2.1 allows).
    pub(super) fn new(
        key: ServerKey,
        request: &rsip::Request,
        source: SocketAddr,
        ctx: &mut Ctx,
    ) -> Self {
        let invite = request.method == Method::Invite;
        let mut tx = Self {
            key,
            invite,
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            source,
            last_response: None,
            interval: ctx.config.t1,
            acked: false,
            ack_key: None,
            timers: TimerTable::default(),
            reliable: ctx.reliable,
        };
        if invite {
            let trying = crate::sip::message::encode_response(&trying(request));
            ctx.out.send(source, trying.clone());
            tx.last_response = Some(trying);
        }
        tx
    }

    pub(super) fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// The TU sends a response through this transaction.
    pub(super) fn respond(
        &mut self,
        response: &rsip::Response,
        ctx: &mut Ctx,
    ) -> Result<(), RespondError> {
        let kind = match response.status_code.kind() {
            StatusCodeKind::Other => {
                return Err(RespondError::InvalidStatus(response.status_code.code()));
            }
            kind => kind,
        };
        let provisional = kind == StatusCodeKind::Provisional;
        let success = kind == StatusCodeKind::Successful;
        match self.state {
            State::Trying | State::Proceeding => {}
            // The TU may re-send its 2xx itself (§13.3.1.4); RFC 6026 lets it through.
            State::Accepted if success => {}
            _ => return Err(RespondError::AlreadyFinal),
        }
        let bytes = crate::sip::message::encode_response(response);
        ctx.out.send(self.source, bytes.clone());
        self.last_response = Some(bytes);
        let now = ctx.now;
        match (self.invite, provisional, success) {
            (_, true, _) => self.state = State::Proceeding,
            (true, false, true) => {
                if self.state != State::Accepted {
                    self.state = State::Accepted;
                    self.interval = ctx.config.t1;
                    self.timers.set(Timer::G, now + self.interval);
                    self.timers.set(Timer::L, now + ctx.config.timeout());
                }
            }
            (true, false, false) => {
                self.state = State::Completed;
                self.interval = ctx.config.t1;
                if !self.reliable {
                    self.timers.set(Timer::G, now + self.interval);
                }
                self.timers.set(Timer::H, now + ctx.config.timeout());
            }
            (false, false, _) => {
                self.state = State::Completed;
                let linger = if self.reliable {
                    Duration::ZERO
                } else {
                    ctx.config.timeout()
                };
                self.timers.set(Timer::J, now + linger);
            }
        }
        Ok(())
    }

    /// A retransmission of the request that created the transaction arrived: re-send the last
    /// response if the state machine says so; never surfaced. Responses follow the latest
    /// source (§18.2.2 with RFC 3581): a client whose NAT binding moved still hears us.
    pub(super) fn on_retransmit(&mut self, source: SocketAddr, ctx: &mut Ctx) {
        ctx.out.stats.absorbed += 1;
        self.source = source;
        let resend = match self.state {
            State::Proceeding | State::Completed | State::Accepted => self.last_response.clone(),
            State::Trying | State::Confirmed | State::Terminated => None,
        };
        if let Some(bytes) = resend {
            ctx.out.stats.retransmissions += 1;
            ctx.out.send(self.source, bytes);
        }
    }

    /// An ACK matched this transaction by its own key (same branch: the ACK of a non-2xx, or an
    /// RFC 2543 peer's ACK), or by dialog identifiers (`by_dialog`: the ACK of our 2xx).
    pub(super) fn on_ack(&mut self, by_dialog: bool, ctx: &mut Ctx) -> AckOutcome {
        match self.state {
            State::Completed if !by_dialog => {
                self.state = State::Confirmed;
                self.timers.stop(Timer::G);
                self.timers.stop(Timer::H);
                let linger = if self.reliable {
                    Duration::ZERO
                } else {
                    ctx.config.t4
                };
                self.timers.set(Timer::I, ctx.now + linger);
                ctx.out.stats.absorbed += 1;
                AckOutcome::Absorbed
            }
            State::Confirmed if !by_dialog => {
                ctx.out.stats.absorbed += 1;
                AckOutcome::Absorbed
            }
            State::Accepted => {
                // Stay in Accepted until Timer L so INVITE retransmissions are still absorbed.
                self.acked = true;
                self.timers.stop(Timer::G);
                AckOutcome::Surface
            }
            _ => AckOutcome::Ignored,
        }
    }

    pub(super) fn on_timer(&mut self, timer: Timer, ctx: &mut Ctx) {
        match (timer, self.state) {
            (Timer::G, State::Completed) | (Timer::G, State::Accepted) if !self.acked => {
                if let Some(bytes) = self.last_response.clone() {
                    ctx.out.stats.retransmissions += 1;
                    ctx.out.send(self.source, bytes);
                }
                self.interval = (self.interval * 2).min(ctx.config.t2);
                self.timers.set(Timer::G, ctx.now + self.interval);
            }
            (Timer::H, State::Completed) => {
                ctx.out.stats.timeouts += 1;
                ctx.out.events.push_back(Event::AckTimeout {
                    key: self.key.clone(),
                });
                self.terminate();
            }
            (Timer::L, State::Accepted) => {
                if !self.acked {
                    ctx.out.stats.timeouts += 1;
                    ctx.out.events.push_back(Event::AckTimeout {
                        key: self.key.clone(),
                    });
                }
                self.terminate();
            }
            (Timer::I, State::Confirmed) | (Timer::J, State::Completed) => self.terminate(),
            _ => {}
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.stop_all();
    }
}

/// The `100 Trying` for a request (§8.2.6): Via, From, To (no tag added), Call-ID and CSeq copied.
fn trying(request: &rsip::Request) -> rsip::Response {
    let mut headers: rsip::Headers = Default::default();
    for header in request.headers.iter() {
        if matches!(
            header,
            Header::Via(_)
                | Header::From(_)
                | Header::To(_)
                | Header::CallId(_)
                | Header::CSeq(_)
                | Header::Timestamp(_)
        ) {
            headers.push(header.clone());
        }
    }
    headers.push(Header::ContentLength(Default::default()));
    rsip::Response {
        status_code: rsip::StatusCode::Trying,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}
