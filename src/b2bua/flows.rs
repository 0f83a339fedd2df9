//! Peers reached over a connection (TCP, TLS): RFC 5626 flows, as the controller sees them.
//!
//! The driver owns the connections; the controller knows only which peer addresses are
//! connections and over which transport. Messages from a flow are handled like datagrams;
//! messages to a flow say so in their Via and Contact ([`crate::sip::transport::over_flow`])
//! and the driver sends them over the connection; transactions with a flow do not
//! retransmit (RFC 3261 §17). When a connection closes, the flow is forgotten: a phone that
//! registered over it is no longer reached until it registers again (RFC 5626 §5.3).

use std::net::SocketAddr;
use std::time::Instant;

use super::B2bua;
use crate::sip::transaction::Transmit;
use crate::sip::transport::{Transport, over_flow};

impl B2bua {
    /// One whole message read from the connection with `peer` over `transport` (the driver
    /// frames the stream, [`crate::sip::stream`]).
    pub fn handle_stream_message(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        transport: Transport,
        message: &[u8],
    ) {
        if self.sip.flows.insert(peer, transport).is_none() {
            self.sip
                .transactions
                .set_reliable(peer, transport.reliable());
        }
        self.handle_datagram(now, peer, message);
    }

    /// The connection with `peer` closed (either side, or idle). Registrations learned over
    /// it are dropped: nothing reaches that phone until it registers again.
    pub fn connection_closed(&mut self, now: Instant, peer: SocketAddr) {
        if self.sip.pinned.contains(&peer) {
            tracing::debug!(%peer, "trunk connection closed: the next request opens another");
            return;
        }
        if self.sip.flows.remove(&peer).is_none() {
            return;
        }
        self.sip.transactions.set_reliable(peer, false);
        let users = self.registration.registrar.unbind_source(peer);
        for user in users {
            tracing::info!(%user, %peer, "connection closed: the phone must register again");
        }
        self.process_events(now);
    }

    /// Trunks configured with `transport = "tcp"` are flows from the start: requests to them
    /// go over a TCP connection the driver opens (and opens again after it closes).
    pub(super) fn pin_trunk_flows(&mut self) {
        for trunk in &self.config.trunks {
            if trunk.transport == crate::config::TrunkTransport::Tcp {
                self.sip.flows.insert(trunk.address, Transport::Tcp);
                self.sip.pinned.insert(trunk.address);
                self.sip.transactions.set_reliable(trunk.address, true);
            }
        }
    }

    /// Whether `peer` is reached over a connection, and which.
    pub fn flow(&self, peer: SocketAddr) -> Option<Transport> {
        self.sip.flows.get(&peer).copied()
    }

    /// A message as built, made right for the transport its destination is reached over.
    pub(super) fn over_flow(&self, transmit: Transmit) -> Transmit {
        let Some(&transport) = self.sip.flows.get(&transmit.destination) else {
            return transmit;
        };
        let sent_by = match transport {
            Transport::Tls => &self.sip.tls_sent_by,
            Transport::Tcp | Transport::Udp => &self.sip.sent_by,
        };
        Transmit {
            payload: over_flow(&transmit.payload, transport, &self.sip.sent_by, sent_by),
            destination: transmit.destination,
        }
    }
}
