//! The receive side of a media stream: draining its socket, recognising RTP, symmetric RTP.
//!
//! A shard calls [`Inbound::drain`] for a stream on that stream's poll turn (see
//! [`super::shard`] for why receiving is clock-driven). Each datagram is classified:
//!
//! - RTCP multiplexed on the RTP port (RFC 5761 §4): counted, nothing else;
//! - not RTP (RFC 3550 §5.1 parse fails: STUN, garbage, truncated): counted as malformed and
//!   dropped, never fatal;
//! - RTP: counted; the first one latches the stream's destination to its source address
//!   (symmetric RTP, RFC 4961: a caller behind NAT receives where it sends from) and reports
//!   [`MediaEvent::Latched`] once; later sources never move it again;
//! - RTP with the negotiated telephone-event payload type (RFC 4733): counted and fed to the
//!   stream's [`DtmfReceiver`], which reports each key press once as [`MediaEvent::Dtmf`]
//!   (retransmitted end packets and long-event segments are not reported again). An event
//!   whose end packets were all lost is reported on the drain after the receiver's timeout.
//!
//! At most [`READS_PER_POLL`] datagrams are read per drain so a flooding peer costs a bounded
//! amount per turn; the kernel drops what does not fit the socket's receive buffer.
//!
//! A bridged leg is read on socket readiness instead (see `super::shard::bridge`), through
//! the same classification ([`Inbound::accept`]), which also hands back the RTP header and
//! where the payload sits so the packet can be forwarded in place.

use std::net::{SocketAddr, UdpSocket};
use std::ops::Range;

use tokio::sync::mpsc::Sender;

use std::time::Instant;

use super::dtmf::DtmfReceiver;
use super::engine::{MediaEvent, StreamId};
use super::rewrite::LegCodecs;
use super::rtp::{RtpHeader, is_rtcp_mux};
use super::stats::ShardStats;

/// Datagrams read from one socket per drain: 10 expected from a 50 packet/s peer every
/// 200 ms, with margin for bursts.
pub const READS_PER_POLL: usize = 24;

/// Where a stream's packets go and what its inbound packets mean.
#[derive(Debug, Default)]
pub(crate) struct Peer {
    /// Destination: the SDP address, replaced by the latched source.
    pub(crate) remote: Option<SocketAddr>,
    /// Set by the first valid inbound RTP packet.
    pub(crate) latched: bool,
    /// Negotiated payload types: audio (from play/connect) and RFC 4733 telephone-event.
    pub(crate) codecs: LegCodecs,
    /// RFC 4733 receiver state; touched only by telephone-event packets and by a drain while
    /// an event is open, so the audio path pays nothing for it.
    pub(crate) dtmf: DtmfReceiver,
    /// SRTP: what arrives is authenticated and decrypted before anything reads it.
    pub(crate) srtp: Option<Box<crate::media::secure::Inbound>>,
}

impl Peer {
    /// Uses the address from SDP unless RTP already arrived from somewhere (the latched
    /// source wins: it is where the peer really is).
    pub(crate) fn set_sdp_remote(&mut self, remote: SocketAddr) {
        if !self.latched {
            self.remote = Some(remote);
        }
    }
}

/// The shard state the receive path borrows: one reused buffer, the counters, the events.
pub(crate) struct Inbound<'a> {
    pub(crate) buf: &'a mut [u8; 2048],
    pub(crate) stats: &'a ShardStats,
    pub(crate) events: &'a Sender<MediaEvent>,
}

impl Inbound<'_> {
    /// Reads up to [`READS_PER_POLL`] datagrams from `socket` (non-blocking) and applies
    /// them to stream `id`'s `peer`.
    pub(crate) fn drain(&mut self, id: StreamId, socket: &UdpSocket, peer: &mut Peer) {
        for _ in 0..READS_PER_POLL {
            let (len, from) = match socket.recv_from(&mut self.buf[..]) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // An ICMP error reported on a connected socket (ECONNREFUSED and the like)
                // comes before the datagrams queued behind it: read on (the turn's cap
                // still bounds the loop).
                Err(_) => continue,
            };
            self.accept(id, peer, len, from);
        }
        // A key press whose end packets were all lost is reported once nothing came for the
        // receiver's timeout; only streams with an open event read the clock here.
        if let Some(deadline) = peer.dtmf.poll_timeout() {
            let now = Instant::now();
            if now >= deadline {
                peer.dtmf.handle_timeout(now);
                self.report_digits(id, peer);
            }
        }
    }

    /// Sends every completed key press of `peer` as a [`MediaEvent::Dtmf`].
    fn report_digits(&mut self, id: StreamId, peer: &mut Peer) {
        while let Some(digit) = peer.dtmf.poll_digit() {
            super::engine::emit(
                self.events,
                self.stats,
                MediaEvent::Dtmf {
                    id,
                    digit: digit.digit,
                },
            );
        }
    }

    /// Classifies the datagram of `len` bytes in the buffer, received from `from` on stream
    /// `id` (counting, latching; see the module docs). For RTP, returns its header and the
    /// byte range of its payload in the buffer (after CSRCs and extension, before padding);
    /// RTCP and malformed datagrams return `None`.
    pub(crate) fn accept(
        &mut self,
        id: StreamId,
        peer: &mut Peer,
        len: usize,
        from: SocketAddr,
    ) -> Option<(RtpHeader, Range<usize>)> {
        if is_rtcp_mux(&self.buf[..len]) {
            self.stats.packets_received.add(1);
            return None;
        }
        let len = match peer.srtp.as_mut() {
            None => len,
            Some(srtp) => match srtp.unprotect(&mut self.buf[..], len) {
                Some(len) => len,
                // Forged, damaged or replayed: dropped before it is latched to or heard.
                None => {
                    self.stats.malformed_received.add(1);
                    return None;
                }
            },
        };
        let datagram = &self.buf[..len];
        let Ok((header, payload)) = RtpHeader::parse(datagram) else {
            self.stats.malformed_received.add(1);
            return None;
        };
        let end = len - usize::from(header.padding);
        let payload = end - payload.len()..end;
        self.stats.packets_received.add(1);
        if Some(header.payload_type) == peer.codecs.telephone_event {
            self.stats.telephone_events_received.add(1);
            // A malformed payload changes nothing (it is counted as received RTP only).
            if peer
                .dtmf
                .handle_packet(Instant::now(), header.timestamp, &self.buf[payload.clone()])
                .is_ok()
            {
                self.report_digits(id, peer);
            }
        }
        // A source of port 0 or an unspecified address cannot be sent to (a replayed
        // capture, a spoofed packet): it is heard but never latched.
        if !peer.latched && from.port() != 0 && !from.ip().is_unspecified() {
            peer.latched = true;
            peer.remote = Some(from);
            super::engine::emit(self.events, self.stats, MediaEvent::Latched { id, from });
        }
        Some((header, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct Rig {
        socket: UdpSocket,
        sender: UdpSocket,
        stats: ShardStats,
        events_tx: Sender<MediaEvent>,
        events: tokio::sync::mpsc::Receiver<MediaEvent>,
        buf: [u8; 2048],
    }

    fn rig() -> Rig {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let (events_tx, events) = tokio::sync::mpsc::channel(64);
        Rig {
            socket,
            sender: UdpSocket::bind("127.0.0.1:0").unwrap(),
            stats: ShardStats::default(),
            events_tx,
            events,
            buf: [0; 2048],
        }
    }

    impl Rig {
        fn send(&self, datagrams: &[&[u8]]) {
            for d in datagrams {
                self.sender
                    .send_to(d, self.socket.local_addr().unwrap())
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }

        fn drain(&mut self, peer: &mut Peer) {
            Inbound {
                buf: &mut self.buf,
                stats: &self.stats,
                events: &self.events_tx,
            }
            .drain(StreamId::for_tests(9), &self.socket, peer);
        }
    }

    fn rtp(pt: u8) -> [u8; 12] {
        let mut p = [0u8; 12];
        RtpHeader::new(pt, 1, 2, 3, false).write_fixed(&mut p);
        p
    }

    #[test]
    fn flooding_peer_is_drained_in_bounded_batches() {
        let mut rig = rig();
        let junk: Vec<&[u8]> = vec![b"not rtp"; READS_PER_POLL * 2 + 3];
        rig.send(&junk);
        let mut peer = Peer::default();
        rig.drain(&mut peer);
        assert_eq!(rig.stats.malformed_received.get(), READS_PER_POLL as u64);
        rig.drain(&mut peer);
        rig.drain(&mut peer);
        assert_eq!(
            rig.stats.malformed_received.get(),
            2 * READS_PER_POLL as u64 + 3
        );
        assert!(
            peer.remote.is_none() && !peer.latched,
            "junk neither latches nor counts as RTP"
        );
    }

    #[test]
    fn a_source_of_port_zero_is_never_latched() {
        let mut rig = rig();
        let sdp: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mut peer = Peer::default();
        peer.set_sdp_remote(sdp);
        let packet = rtp(0);
        for from in ["127.0.0.1:0", "0.0.0.0:5004"] {
            rig.buf[..packet.len()].copy_from_slice(&packet);
            let heard = Inbound {
                buf: &mut rig.buf,
                stats: &rig.stats,
                events: &rig.events_tx,
            }
            .accept(
                StreamId::for_tests(9),
                &mut peer,
                packet.len(),
                from.parse().unwrap(),
            );
            assert!(heard.is_some(), "still RTP, still heard");
            assert!(!peer.latched, "{from} latched");
            assert_eq!(peer.remote, Some(sdp));
        }
        assert!(rig.events.try_recv().is_err(), "no Latched event");
    }

    #[test]
    fn first_rtp_latches_once_rtcp_does_not() {
        let mut rig = rig();
        let sdp: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mut peer = Peer::default();
        peer.codecs.telephone_event = Some(101);
        peer.set_sdp_remote(sdp);
        // A receiver report (RFC 5761 mux) first: counted, no latch.
        rig.send(&[&[0x80, 201, 0x00, 0x01, 0, 0, 0, 1]]);
        rig.drain(&mut peer);
        assert_eq!(peer.remote, Some(sdp));
        assert_eq!(rig.stats.packets_received.get(), 1);

        rig.send(&[&rtp(101), &rtp(0)]);
        rig.drain(&mut peer);
        let from = rig.sender.local_addr().unwrap();
        assert_eq!(peer.remote, Some(from));
        assert!(peer.latched);
        assert_eq!(rig.stats.telephone_events_received.get(), 1);
        assert_eq!(rig.stats.packets_received.get(), 3);
        assert_eq!(
            rig.events.try_recv().ok(),
            Some(MediaEvent::Latched {
                id: StreamId::for_tests(9),
                from
            })
        );
        assert!(rig.events.try_recv().is_err(), "reported once");

        // The payload range skips CSRCs and the extension and leaves the padding out.
        let packet = [
            0xb1, 0x00, 0, 9, 0, 0, 0, 0, 0, 0, 0, 3, // V=2 P X CC=1, PT 0
            1, 2, 3, 4, // CSRC
            0xbe, 0xde, 0, 1, 9, 9, 9, 9, // extension, one word
            0xaa, 0xbb, 0xcc, // payload
            0, 0, 3, // padding
        ];
        rig.send(&[&packet]);
        let len = rig.socket.recv(&mut rig.buf).unwrap();
        let (h, range) = Inbound {
            buf: &mut rig.buf,
            stats: &rig.stats,
            events: &rig.events_tx,
        }
        .accept(StreamId::for_tests(9), &mut peer, len, from)
        .unwrap();
        assert_eq!((h.sequence, h.csrc_count), (9, 1));
        assert_eq!(&rig.buf[range], &[0xaa, 0xbb, 0xcc]);

        // A new SDP address (re-INVITE) does not override the latched source.
        peer.set_sdp_remote(sdp);
        assert_eq!(peer.remote, Some(from));
    }

    fn event(ts: u32, code: u8, end: bool, duration: u16, seq: u16) -> Vec<u8> {
        let mut head = [0u8; 12];
        RtpHeader::new(101, seq, ts, 3, false).write_fixed(&mut head);
        let mut p = head.to_vec();
        p.resize(16, 0);
        p[12] = code;
        p[13] = if end { 0x80 | 10 } else { 10 };
        p[14..16].copy_from_slice(&duration.to_be_bytes());
        p
    }

    #[test]
    fn an_icmp_error_on_a_connected_socket_does_not_end_the_drain() {
        let mut rig = rig();
        // The stream's socket is connected to a port that then closes: its next send draws
        // an ICMP port unreachable, which the socket reports (ECONNREFUSED) before anything
        // queued after it.
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = gone.local_addr().unwrap();
        rig.socket.connect(port).unwrap();
        drop(gone);
        rig.socket.send(&rtp(0)).unwrap();
        std::thread::sleep(Duration::from_millis(10));
        // The peer is back on that port and talks.
        let back = UdpSocket::bind(port).unwrap();
        back.send_to(&rtp(0), rig.socket.local_addr().unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(10));
        let mut peer = Peer::default();
        rig.drain(&mut peer);
        assert_eq!(rig.stats.packets_received.get(), 1, "read past the error");
        assert!(peer.latched);
    }

    #[test]
    fn telephone_events_become_one_digit_per_key_press() {
        let mut rig = rig();
        let mut peer = Peer::default();
        peer.codecs.telephone_event = Some(101);
        // Key 1: three updates, then the end packet sent three times (RFC 4733 §2.5.1.4);
        // then key 5 whose end packets are all lost, ended by the next key (#).
        let packets = [
            event(1000, 1, false, 160, 1),
            event(1000, 1, false, 320, 2),
            event(1000, 1, false, 480, 3),
            event(1000, 1, true, 640, 4),
            event(1000, 1, true, 640, 5),
            event(1000, 1, true, 640, 6),
            event(3000, 5, false, 160, 7),
            event(5000, 11, true, 160, 8),
        ];
        let refs: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
        rig.send(&refs);
        rig.drain(&mut peer);
        let digits: Vec<char> = std::iter::from_fn(|| rig.events.try_recv().ok())
            .filter_map(|e| match e {
                MediaEvent::Dtmf { digit, .. } => Some(digit),
                _ => None,
            })
            .collect();
        assert_eq!(digits, vec!['1', '5', '#']);
        assert_eq!(rig.stats.telephone_events_received.get(), 8);
    }

    #[test]
    fn a_key_press_without_end_packets_is_reported_after_the_timeout() {
        let mut rig = rig();
        let mut peer = Peer::default();
        peer.codecs.telephone_event = Some(101);
        rig.send(&[&event(1000, 1, false, 160, 1)]);
        rig.drain(&mut peer);
        assert!(rig.events.try_recv().is_ok(), "latched");
        assert!(
            rig.events.try_recv().is_err(),
            "no digit while the key is held"
        );
        std::thread::sleep(crate::media::dtmf::DEFAULT_END_TIMEOUT);
        rig.drain(&mut peer);
        assert_eq!(
            rig.events.try_recv().ok(),
            Some(MediaEvent::Dtmf {
                id: StreamId::for_tests(9),
                digit: '1'
            })
        );
    }
}
