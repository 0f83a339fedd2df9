//! The SIP transaction layer (RFC 3261 §17, with RFC 6026's corrections for 2xx), over UDP.
//!
//! [`Transactions`] owns every client and server transaction of one endpoint. It is sans-IO
//! (quinn-proto style): the driver feeds it parsed messages with their source address and the
//! current time, then drains [`Transactions::poll_transmit`] and [`Transactions::poll_event`]
//! and sleeps until [`Transactions::poll_timeout`]. It never reads the clock or touches a socket.
//!
//! What this layer does for the transaction user (TU, the dialog layer):
//! - absorbs request and response retransmissions, re-sending the last response or the ACK
//!   where the state machines of §17.1 and §17.2 say so;
//! - answers every new INVITE with `100 Trying` at once;
//! - retransmits requests (Timers A, E), final responses (Timer G, including the 2xx until its
//!   ACK arrives) and gives up on Timers B, F, H and L with an event;
//! - generates the ACK for non-2xx finals (§17.1.1.3) and builds CANCELs (§9.1); both
//!   builders are public for a TU that must answer for an INVITE it sent before a restart;
//! - matches requests to server transactions (§17.2.3), responses to client transactions
//!   (§17.1.3), CANCEL to the INVITE it cancels (§9.2) and the 2xx ACK to its INVITE;
//! - removes terminated transactions, so memory follows live transactions only.
//!
//! Responses of a server transaction go to the source address of its request: the driver has
//! already applied `received`/`rport` (RFC 3581), and this layer never resolves a Via host.

mod client;
mod error;
mod key;
mod server;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use rsip::Method;

use client::{CancelDecision, ClientTx};
pub use client::{ack_for, cancel_for};
pub use error::{CancelError, MessageError, RespondError, SendError};
use key::DialogAckKey;
pub use key::{ClientKey, ServerKey, branch_of, new_branch};
use server::{AckOutcome, ServerTx};
pub use timers::{Timer, TimerConfig};
use timers::{TimerQueue, TimerTable, TxId};

/// The largest request sent over UDP (RFC 3261 §18.1.1: the path MTU, 1500 unless known,
/// less 200 bytes); a larger one goes over TCP ([`Transactions::poll_stream`]).
pub const MAX_UDP_REQUEST: usize = 1300;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The serialized SIP message.
    pub payload: Bytes,
}

/// What the transaction layer tells its user.
#[derive(Clone, Debug)]
pub enum Event {
    /// A new request created a server transaction; answer it with [`Transactions::respond`].
    Request {
        /// The server transaction to respond through.
        key: ServerKey,
        /// The request as received.
        request: rsip::Request,
        /// Its source address (responses go there).
        source: SocketAddr,
    },
    /// A CANCEL matching a live INVITE server transaction (§9.2). The TU answers the CANCEL
    /// (`key`, usually 200) and the INVITE (`invite`, 487); if the INVITE already has a final
    /// response, that second `respond` returns [`RespondError::AlreadyFinal`], as §9.2 intends.
    Cancel {
        /// The CANCEL's own server transaction.
        key: ServerKey,
        /// The INVITE server transaction it cancels.
        invite: ServerKey,
        /// The CANCEL request.
        request: rsip::Request,
        /// Its source address.
        source: SocketAddr,
    },
    /// An ACK for a 2xx (end-to-end, §13.2.2.4), or any ACK that matched no transaction.
    Ack {
        /// The INVITE server transaction whose 2xx this ACK acknowledges, when known; its 2xx
        /// retransmissions have stopped.
        invite: Option<ServerKey>,
        /// The ACK request.
        request: rsip::Request,
        /// Its source address.
        source: SocketAddr,
    },
    /// A response for a client transaction: every provisional, the first final, and (INVITE)
    /// every 2xx retransmission so the TU can re-send its ACK (RFC 6026 §8.4).
    Response {
        /// The client transaction.
        key: ClientKey,
        /// The response.
        response: rsip::Response,
    },
    /// A response that matched no client transaction (§17.1.3 says drop it; the TU may log it).
    StrayResponse {
        /// The response.
        response: rsip::Response,
        /// Its source address.
        source: SocketAddr,
    },
    /// A client transaction got no final response in time (Timer B or F). The transaction is gone.
    Timeout {
        /// The client transaction.
        key: ClientKey,
    },
    /// A server INVITE transaction never received the ACK for its final response (Timer H for
    /// 300–699, Timer L for 2xx). The transaction is gone.
    AckTimeout {
        /// The server transaction.
        key: ServerKey,
    },
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Server transactions created.
    pub server_transactions: u64,
    /// Client transactions created.
    pub client_transactions: u64,
    /// Messages re-sent: timer-driven retransmissions and responses/ACKs re-sent on a peer's
    /// retransmission.
    pub retransmissions: u64,
    /// Retransmitted requests, responses and ACKs absorbed instead of surfaced.
    pub absorbed: u64,
    /// Timers B, F, H and L that fired without an answer.
    pub timeouts: u64,
    /// Responses that matched no client transaction.
    pub stray_responses: u64,
}

/// Everything the state machines produce, shared by all transactions.
#[derive(Debug, Default)]
struct Outputs {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Destinations a request had to go to over TCP (§18.1.1), for the TU to connect.
    streams: VecDeque<SocketAddr>,
}

impl Outputs {
    fn send(&mut self, destination: SocketAddr, payload: Bytes) {
        self.transmits.push_back(Transmit {
            destination,
            payload,
        });
    }
}

/// What a state machine needs for one step.
struct Ctx<'a> {
    now: Instant,
    config: &'a TimerConfig,
    out: &'a mut Outputs,
    /// The peer of the transaction being created is reached over a reliable transport (TCP,
    /// TLS): no retransmissions, and Timers D, I, J, K are zero (§17.1.1.2, §17.1.2.2,
    /// §17.2.1, §17.2.2).
    reliable: bool,
}

#[derive(Debug)]
enum Tx {
    Server(ServerTx),
    Client(ClientTx),
}

impl Tx {
    fn timers(&self) -> &TimerTable {
        match self {
            Tx::Server(tx) => &tx.timers,
            Tx::Client(tx) => &tx.timers,
        }
    }

    fn timers_mut(&mut self) -> &mut TimerTable {
        match self {
            Tx::Server(tx) => &mut tx.timers,
            Tx::Client(tx) => &mut tx.timers,
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Tx::Server(tx) => tx.is_terminated(),
            Tx::Client(tx) => tx.is_terminated(),
        }
    }

    fn reliable(&self) -> bool {
        match self {
            Tx::Server(tx) => tx.reliable,
            Tx::Client(tx) => tx.reliable,
        }
    }
}

/// All transactions of one SIP endpoint; see the module docs.
#[derive(Debug)]
pub struct Transactions {
    config: TimerConfig,
    /// The latest time seen; time never goes backwards inside the machine.
    now: Option<Instant>,
    next_id: TxId,
    /// Boxed: a transaction (with its stored request and response) is far larger than a
    /// pointer, and at 1 000 calls/s the table holds ~60 000 of them (Timers J and L keep
    /// answered ones 32 s). Growing a table of unboxed values moved them all and stalled
    /// the controller for 60–80 ms, long enough for the SIP socket to overflow.
    txs: HashMap<TxId, Box<Tx>>,
    servers: HashMap<ServerKey, TxId>,
    clients: HashMap<ClientKey, TxId>,
    /// INVITE server transactions by (Call-ID, CSeq number, From tag), to match the 2xx ACK.
    dialog_acks: HashMap<DialogAckKey, TxId>,
    /// Live server transactions per source address, so the TU can cap each source's share.
    per_source: HashMap<IpAddr, u32>,
    /// Peers reached over a connection (TCP, TLS): their transactions never retransmit.
    reliable: HashSet<SocketAddr>,
    timers: TimerQueue,
    out: Outputs,
}

impl Transactions {
    /// An endpoint with no transactions, using the given timer values.
    pub fn new(config: TimerConfig) -> Self {
        Self {
            config,
            now: None,
            next_id: 0,
            txs: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            dialog_acks: HashMap::new(),
            per_source: HashMap::new(),
            reliable: HashSet::new(),
            timers: TimerQueue::default(),
            out: Outputs::default(),
        }
    }

    /// Whether `peer` is reached over a connection (TCP, TLS): transactions created with it
    /// from now on do not retransmit and end without lingering (RFC 3261 §17). The TU says so
    /// when a connection opens and again when it closes.
    pub fn set_reliable(&mut self, peer: SocketAddr, reliable: bool) {
        if reliable {
            self.reliable.insert(peer);
        } else {
            self.reliable.remove(&peer);
        }
    }

    /// A destination that a request was too large to send over UDP to (RFC 3261 §18.1.1:
    /// over 1300 bytes, [`MAX_UDP_REQUEST`]): the request is queued for it as for a peer
    /// reached over a connection, and the TU must open a TCP connection to it (and say the
    /// request's transport is TCP). Transactions with it no longer retransmit.
    pub fn poll_stream(&mut self) -> Option<SocketAddr> {
        self.out.streams.pop_front()
    }

    /// A request arrived from `source`.
    ///
    /// Retransmissions of a known server transaction are absorbed (re-sending the last response
    /// where the state machine says so). A new request creates a server transaction and is
    /// surfaced as [`Event::Request`] (a new INVITE also gets `100 Trying` at once), or as
    /// [`Event::Cancel`] for a CANCEL matching a live INVITE transaction; a CANCEL matching none
    /// is surfaced as a plain request so the TU can answer 481. The ACK of a non-2xx final is
    /// absorbed; any other ACK is surfaced as [`Event::Ack`].
    pub fn handle_request(
        &mut self,
        now: Instant,
        source: SocketAddr,
        request: rsip::Request,
    ) -> Result<(), MessageError> {
        let now = self.clock(now);
        let key = ServerKey::of(&request)?;
        if request.method == Method::Ack {
            self.handle_ack(now, key, source, request);
            return Ok(());
        }
        if let Some(&id) = self.servers.get(&key) {
            self.update(now, id, |tx, ctx| {
                if let Tx::Server(tx) = tx {
                    tx.on_retransmit(source, ctx);
                }
            });
            return Ok(());
        }
        // Parse everything fallible before creating any state.
        let ack_key = match request.method {
            Method::Invite => Some(DialogAckKey::of(&request)?),
            _ => None,
        };
        let id = self.allocate_id();
        let mut ctx = Ctx {
            now,
            config: &self.config,
            out: &mut self.out,
            reliable: self.reliable.contains(&source),
        };
        let mut tx = ServerTx::new(key.clone(), &request, source, &mut ctx);
        if let Some(ack_key) = &ack_key {
            self.dialog_acks.insert(ack_key.clone(), id);
        }
        tx.ack_key = ack_key;
        self.insert(id, Tx::Server(tx));
        self.servers.insert(key.clone(), id);
        *self.per_source.entry(source.ip()).or_default() += 1;
        self.out.stats.server_transactions += 1;

        let invite = key.with_method(Method::Invite);
        let event = if request.method == Method::Cancel && self.servers.contains_key(&invite) {
            Event::Cancel {
                key,
                invite,
                request,
                source,
            }
        } else {
            Event::Request {
                key,
                request,
                source,
            }
        };
        self.out.events.push_back(event);
        Ok(())
    }

    fn handle_ack(
        &mut self,
        now: Instant,
        key: ServerKey,
        source: SocketAddr,
        request: rsip::Request,
    ) {
        // Same branch: the ACK of a non-2xx final (or an RFC 2543 peer's ACK of anything).
        let (id, by_dialog) = match self.servers.get(&key) {
            Some(&id) => (Some(id), false),
            // A new branch: the ACK of a 2xx, found through the dialog identifiers.
            None => (
                DialogAckKey::of(&request)
                    .ok()
                    .and_then(|k| self.dialog_acks.get(&k).copied()),
                true,
            ),
        };
        let matched = id.and_then(|id| {
            self.update(now, id, |tx, ctx| match tx {
                Tx::Server(tx) => (tx.on_ack(by_dialog, ctx), tx.key.clone()),
                Tx::Client(_) => (AckOutcome::Ignored, key.clone()),
            })
        });
        let invite = match matched {
            Some((AckOutcome::Absorbed | AckOutcome::Ignored, _)) if !by_dialog => return,
            Some((AckOutcome::Surface, invite)) => Some(invite),
            _ => None,
        };
        self.out.events.push_back(Event::Ack {
            invite,
            request,
            source,
        });
    }

    /// A response arrived from `source`. It is matched to a client transaction by top Via branch
    /// and CSeq method (§17.1.3) and surfaced as [`Event::Response`] unless it is an absorbed
    /// retransmission; for an INVITE non-2xx final the ACK is sent here. A response matching no
    /// transaction becomes [`Event::StrayResponse`].
    pub fn handle_response(
        &mut self,
        now: Instant,
        source: SocketAddr,
        response: rsip::Response,
    ) -> Result<(), MessageError> {
        let now = self.clock(now);
        let key = ClientKey::of_response(&response)?;
        let Some(&id) = self.clients.get(&key) else {
            self.out.stats.stray_responses += 1;
            self.out
                .events
                .push_back(Event::StrayResponse { response, source });
            return Ok(());
        };
        let send_cancel = self.update(now, id, |tx, ctx| match tx {
            Tx::Client(tx) => tx.on_response(response, ctx),
            Tx::Server(_) => false,
        });
        if send_cancel == Some(true) {
            self.send_cancel(now, id);
        }
        Ok(())
    }

    /// The TU answers the server transaction `key`.
    ///
    /// INVITE: 1xx keeps it proceeding; 2xx is retransmitted (T1 doubling, capped at T2) until
    /// the ACK arrives, with [`Event::AckTimeout`] after 64·T1 without one; 300–699 likewise
    /// until the ACK, which is absorbed. Non-INVITE: the final is re-sent for each request
    /// retransmission during Timer J.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &ServerKey,
        response: rsip::Response,
    ) -> Result<(), RespondError> {
        let now = self.clock(now);
        let id = *self
            .servers
            .get(key)
            .ok_or(RespondError::UnknownTransaction)?;
        self.update(now, id, |tx, ctx| match tx {
            Tx::Server(tx) => tx.respond(&response, ctx),
            Tx::Client(_) => Err(RespondError::UnknownTransaction),
        })
        .unwrap_or(Err(RespondError::UnknownTransaction))
    }

    /// Sends `request` to `destination` as a new client transaction and returns its key.
    ///
    /// The request must carry a top Via with a unique branch (see [`new_branch`]). INVITE is
    /// retransmitted on Timer A and gives up on Timer B; other methods on Timers E and F. Either
    /// way a timeout is reported as [`Event::Timeout`].
    pub fn send_request(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        request: rsip::Request,
    ) -> Result<ClientKey, SendError> {
        let now = self.clock(now);
        if request.method == Method::Ack {
            return Err(SendError::Ack);
        }
        let key = ClientKey::of_request(&request)?;
        if self.clients.contains_key(&key) {
            return Err(SendError::DuplicateBranch);
        }
        let id = self.allocate_id();
        let mut ctx = Ctx {
            now,
            config: &self.config,
            out: &mut self.out,
            reliable: self.reliable.contains(&destination),
        };
        let tx = ClientTx::new(key.clone(), destination, request, &mut ctx);
        if tx.reliable {
            self.reliable.insert(destination);
        }
        self.insert(id, Tx::Client(tx));
        self.clients.insert(key.clone(), id);
        self.out.stats.client_transactions += 1;
        Ok(key)
    }

    /// Cancels the INVITE client transaction `key` (§9.1) and returns the key the CANCEL's own
    /// transaction has (its 200 arrives as an [`Event::Response`] under that key). The CANCEL is
    /// sent now if a provisional was received, otherwise when the first one arrives; if a final
    /// arrives first, nothing is sent.
    pub fn cancel(&mut self, now: Instant, key: &ClientKey) -> Result<ClientKey, CancelError> {
        let now = self.clock(now);
        let id = *self
            .clients
            .get(key)
            .ok_or(CancelError::UnknownTransaction)?;
        let decision = self
            .update(now, id, |tx, _| match tx {
                Tx::Client(tx) => tx.request_cancel(),
                Tx::Server(_) => CancelDecision::NotInvite,
            })
            .ok_or(CancelError::UnknownTransaction)?;
        match decision {
            CancelDecision::SendNow => self.send_cancel(now, id),
            CancelDecision::Deferred => {}
            CancelDecision::AlreadyRequested => return Err(CancelError::AlreadyRequested),
            CancelDecision::NotInvite => return Err(CancelError::NotInvite),
            CancelDecision::AlreadyFinal => return Err(CancelError::AlreadyFinal),
        }
        Ok(key.with_method(Method::Cancel))
    }

    fn send_cancel(&mut self, now: Instant, invite: TxId) {
        let built = self.update(now, invite, |tx, ctx| match tx {
            Tx::Client(tx) => Some((tx.cancel_sent(ctx), tx.destination)),
            Tx::Server(_) => None,
        });
        if let Some(Some((cancel, destination))) = built {
            // Cannot fail: the CANCEL carries the INVITE's top Via (with its branch) and CSeq
            // number, and the INVITE's transaction key proved both parse. A second CANCEL for
            // the same INVITE is prevented by the client state machine.
            let _ = self.send_request(now, destination, cancel);
        }
    }

    /// Queues a message outside any transaction: the ACK for a 2xx, or a stateless response.
    pub fn send_stateless(
        &mut self,
        destination: SocketAddr,
        message: impl Into<rsip::SipMessage>,
    ) {
        let payload = match message.into() {
            rsip::SipMessage::Request(request) => crate::sip::message::encode_request(&request),
            rsip::SipMessage::Response(response) => crate::sip::message::encode_response(&response),
        };
        self.out.send(destination, payload);
    }

    /// Runs every timer due at `now`, in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        while let Some((id, timer)) = self.timers.pop_due(now) {
            if let Some(tx) = self.txs.get_mut(&id) {
                // The queue entry is gone; clear the table slot to match before the step.
                tx.timers_mut().stop(timer);
                self.update(now, id, |tx, ctx| match tx {
                    Tx::Server(tx) => tx.on_timer(timer, ctx),
                    Tx::Client(tx) => tx.on_timer(timer, ctx),
                });
            }
        }
    }

    /// The next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event for the TU.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// Whether [`Self::poll_event`] has something (the TU loops until it has not).
    pub fn has_events(&self) -> bool {
        !self.out.events.is_empty()
    }

    /// The earliest timer deadline over all transactions; `O(log n)`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Live transactions, client and server.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Live server transactions.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    /// Live server transactions for requests from `ip`.
    pub fn servers_from(&self, ip: IpAddr) -> u32 {
        self.per_source.get(&ip).copied().unwrap_or(0)
    }

    /// Whether a request with `key` would be a retransmission (a live server transaction has
    /// it), or a CANCEL of a live INVITE transaction: either way it needs the transaction layer.
    pub fn matches_server(&self, key: &ServerKey) -> bool {
        self.servers.contains_key(key)
            || (key.method() == Method::Cancel
                && self.servers.contains_key(&key.with_method(Method::Invite)))
    }

    /// Client transactions still waiting for their final response. A graceful stop waits
    /// for these (e.g. our BYEs), not for transactions that merely linger to absorb
    /// retransmissions (Timers D, J, K).
    pub fn awaiting_final(&self) -> usize {
        self.txs
            .values()
            .filter(|tx| matches!(tx.as_ref(), Tx::Client(c) if c.awaits_final()))
            .count()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &Stats {
        &self.out.stats
    }

    fn clock(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |seen| seen.max(now));
        self.now = Some(now);
        now
    }

    fn allocate_id(&mut self) -> TxId {
        self.next_id += 1;
        self.next_id
    }

    fn insert(&mut self, id: TxId, tx: Tx) {
        self.timers.sync(id, &TimerTable::default(), tx.timers());
        self.txs.insert(id, Box::new(tx));
    }

    /// Runs one step of transaction `id`, then brings the timer queue in line with its table and
    /// removes it if it terminated. `None` if there is no such transaction.
    fn update<R>(
        &mut self,
        now: Instant,
        id: TxId,
        step: impl FnOnce(&mut Tx, &mut Ctx) -> R,
    ) -> Option<R> {
        let tx = self.txs.get_mut(&id)?;
        let before = *tx.timers();
        let mut ctx = Ctx {
            now,
            config: &self.config,
            out: &mut self.out,
            reliable: tx.reliable(),
        };
        let result = step(tx, &mut ctx);
        if !tx.is_terminated() {
            self.timers.sync(id, &before, tx.timers());
            return Some(result);
        }
        self.timers.remove_all(id, &before);
        match self.txs.remove(&id).map(|tx| *tx) {
            Some(Tx::Server(tx)) => {
                self.servers.remove(&tx.key);
                if let Some(n) = self.per_source.get_mut(&tx.source.ip()) {
                    *n -= 1;
                    if *n == 0 {
                        self.per_source.remove(&tx.source.ip());
                    }
                }
                // Another INVITE with the same dialog identifiers may have replaced our entry.
                if let Some(ack_key) = tx.ack_key
                    && self.dialog_acks.get(&ack_key) == Some(&id)
                {
                    self.dialog_acks.remove(&ack_key);
                }
            }
            Some(Tx::Client(tx)) => {
                self.clients.remove(&tx.key);
            }
            None => {}
        }
        self.shrink();
        Some(result)
    }

    /// Gives memory back after a surge: a table down to a quarter of its capacity is shrunk
    /// to fit. Each shrink at least halves the capacity, so the rehashing costs O(1) per
    /// removed transaction, amortized.
    fn shrink(&mut self) {
        /// Tables this small are never worth shrinking.
        const FLOOR: usize = 1024;
        fn fit<K: Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
            if map.capacity() > FLOOR && map.len() < map.capacity() / 4 {
                map.shrink_to_fit();
            }
        }
        fit(&mut self.txs);
        fit(&mut self.servers);
        fit(&mut self.clients);
        fit(&mut self.dialog_acks);
        fit(&mut self.per_source);
    }
}
