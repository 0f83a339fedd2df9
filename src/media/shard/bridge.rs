//! Bridged legs: relaying RTP both ways between two streams of one shard (docs/behaviour.md §5, bridge
//! mode `relay`: holdfast stays in the media path between caller and agent).
//!
//! ```text
//!  caller phone ──RTP──▶ caller leg socket ─┐      ┌─▶ agent leg socket ──RTP──▶ agent phone
//!                                           │ read │  (agent leg's SSRC/seq/ts, PT mapped)
//!  caller phone ◀──RTP── caller leg socket ◀┘ send └── agent leg socket ◀──RTP── agent phone
//!               (caller leg's SSRC/seq/ts: the hold music's stream continues)
//! ```
//!
//! A packet read on one leg goes out of the OTHER leg's socket to that leg's far end (the
//! latched address, else the SDP address from `play`/`connect`), with a header built by the
//! sending leg's [`Rewriter`] (`super::super::rewrite`): each far end keeps receiving one
//! RTP stream from one SSRC, whatever happens on the other side. Only the fixed header is
//! rewritten in place in the receive buffer, right in front of the payload; CSRCs, header
//! extensions and padding of the source are dropped (they describe the other leg's session),
//! so forwarding is one `recvfrom`, a 12-byte write and one `sendto`, with no copy and no
//! allocation. RTCP arriving on a bridged leg is counted and not forwarded: its SSRCs and
//! report blocks describe the other leg's stream, not the rewritten one.
//!
//! While bridged, both sockets are registered with the shard's poller (token = table index):
//! each readiness report reads ONE datagram and forwards it at once. Level-triggered epoll
//! reports the socket again on the next wait if more is queued, so a burst is still drained
//! and a flooding peer cannot starve the clock; reading until `EAGAIN` instead would cost a
//! second, empty `recvfrom` for almost every packet (a peer sends one per 20 ms), which
//! profiled at about a sixth of the relay's CPU. Registration costs a wake-up callback per packet sent on those
//! sockets (see the shard docs), which relay legs pay only while they relay.
//!
//! Ending a bridge (`unbridge`, `stop`, `play` or `close` on either leg) makes BOTH legs idle:
//! still open, still receiving on the clock, sending nothing. A leg with a player hands the
//! relay's counters back to it, so music played again later continues the same RTP stream.

use super::record::tap_packet;
use super::{Shard, Stream, StreamMode};
use crate::media::engine::StreamId;
use crate::media::inbound::Inbound;
use crate::media::ledger::Ledger;
use crate::media::poller::Token;
use crate::media::recording::law_of;
use crate::media::rewrite::{Forward, LegCodecs, Rewriter, map_payload};
use crate::media::rtp::{RTP_HEADER_LEN, RtpHeader};
use rand::Rng;
use std::ops::Range;
use std::time::Instant;

/// What became of one packet read on a bridged leg.
enum Outcome {
    Sent,
    Dropped,
    SendFailed,
}

impl Shard {
    /// Bridges streams `a` and `b` (both on this shard): whatever either was doing stops
    /// (music, or an earlier bridge, whose partner goes idle), then both relay.
    pub(super) fn bridge(&mut self, a: StreamId, b: StreamId) {
        let now = Instant::now();
        let (Some(&ia), Some(&ib)) = (self.by_id.get(&a), self.by_id.get(&b)) else {
            tracing::warn!(%a, %b, "bridge of an unknown stream");
            return;
        };
        if ia == ib {
            tracing::warn!(%a, "bridge of a stream with itself");
            return;
        }
        self.leave(ia, now);
        self.leave(ib, now);
        let (Some(Some(sa)), Some(Some(sb))) = (self.streams.get(ia), self.streams.get(ib)) else {
            return;
        };
        if let Err(error) = self.poller.add(&sa.socket, ia as Token) {
            tracing::error!(%a, %error, "cannot watch a bridged socket; not bridged");
            return;
        }
        if let Err(error) = self.poller.add(&sb.socket, ib as Token) {
            tracing::error!(%b, %error, "cannot watch a bridged socket; not bridged");
            let _ = self.poller.delete(&sa.socket);
            return;
        }
        for (idx, partner) in [(ia, ib), (ib, ia)] {
            if let Some(Some(stream)) = self.streams.get_mut(idx) {
                start_relay(stream, partner, now);
            }
        }
        self.bridges += 1;
        self.stats.bridges.set(self.bridges as u64);
    }

    /// Ends the bridge stream `idx` is in, if any: both legs become idle, their sockets leave
    /// the poller, players take the relay's counters back.
    pub(super) fn unbridge(&mut self, idx: usize, now: Instant) {
        let Some(Some(Stream {
            mode: StreamMode::Relay { partner },
            ..
        })) = self.streams.get(idx)
        else {
            return;
        };
        let partner = *partner;
        self.flush_recording(idx);
        for i in [idx, partner] {
            let Some(Some(stream)) = self.streams.get_mut(i) else {
                continue;
            };
            if let Err(error) = self.poller.delete(&stream.socket) {
                tracing::warn!(id = %stream.id, %error, "bridged socket was not watched");
            }
            stream.mode = StreamMode::Idle;
            stream.stopped_at = Some(now);
            if let (Some(player), Some(rw)) = (stream.player.as_mut(), stream.rewriter.as_ref()) {
                player.continue_at(rw.next_sequence(), rw.timestamp_at(now));
            }
        }
        self.bridges = self.bridges.saturating_sub(1);
        self.stats.bridges.set(self.bridges as u64);
    }

    /// The socket registered under `token` is readable: forward what it received.
    pub(super) fn relay_ready(&mut self, token: Token, now: Instant) {
        let Shard {
            streams,
            recv_buf,
            stats,
            events,
            ledger,
            epoch,
            epoch_ms,
            taps,
            recorder,
            monitors,
            ..
        } = self;
        let sent_ms = *epoch_ms + now.saturating_duration_since(*epoch).as_millis() as i64;
        let Ok(idx) = usize::try_from(token) else {
            return;
        };
        let partner = match streams.get(idx) {
            Some(Some(Stream {
                mode: StreamMode::Relay { partner },
                ..
            })) => *partner,
            _ => return,
        };
        let Some((src, dst)) = pair_mut(streams, idx, partner) else {
            return;
        };
        let mut inbound = Inbound {
            buf: recv_buf,
            stats,
            events,
        };
        let (mut relayed, mut dropped, mut errors) = (0, 0, 0);
        // WouldBlock (a spurious report) or an error about one datagram (as in `drain`):
        // nothing to forward this time.
        if let Ok((len, from)) = src.socket.recv_from(&mut inbound.buf[..])
            && let Some((header, payload)) = inbound.accept(src.id, &mut src.peer, len, from)
        {
            if let Some(law) = law_of(header.payload_type) {
                // Recorded as the caller or agent said it, before a supervisor's voice.
                if let Some(on) = src.tap {
                    let audio = &inbound.buf[payload.clone()];
                    tap_packet(
                        taps,
                        recorder.as_ref(),
                        on,
                        law,
                        now,
                        header.timestamp,
                        audio,
                    );
                }
                if let Some(watcher) = src.watched {
                    let audio = &mut inbound.buf[payload.clone()];
                    super::monitor::tap(monitors, watcher, idx, law, audio);
                }
            }
            let codecs = src.peer.codecs;
            let ledger = ledger.as_deref().map(|l| (l, sent_ms));
            match forward(inbound.buf, &header, payload, &codecs, dst, now, ledger) {
                Outcome::Sent => relayed += 1,
                Outcome::Dropped => dropped += 1,
                Outcome::SendFailed => errors += 1,
            }
        }
        src.connect_if_latched();
        stats.packets_relayed.add(relayed);
        stats.relay_dropped.add(dropped);
        stats.send_errors.add(errors);
    }
}

/// Puts `stream` in relay mode towards `partner`, with outbound counters that continue its
/// RTP stream: from the player (music), from an earlier relay, or fresh random ones
/// (RFC 3550 §5.1) for a leg that never sent.
fn start_relay(stream: &mut Stream, partner: usize, now: Instant) {
    let rewriter = match (&stream.player, stream.rewriter.take()) {
        // `leave` just stopped the music (or it stopped earlier): the player's next
        // timestamp belongs to the instant it stopped sending.
        (Some(p), _) => Rewriter::new(
            p.ssrc(),
            p.next_sequence(),
            p.next_timestamp(),
            stream.stopped_at.unwrap_or(now),
        ),
        (None, Some(mut rw)) => {
            rw.restart(now);
            rw
        }
        (None, None) => {
            let mut rng = rand::rng();
            Rewriter::new(rng.random(), rng.random(), rng.random(), now)
        }
    };
    stream.rewriter = Some(rewriter);
    stream.mode = StreamMode::Relay { partner };
    stream.stopped_at = None;
    stream.read_on_readiness();
}

/// Rewrites the packet in `buf` (header `header`, payload at `payload`, received on a leg
/// with `from` codecs) onto `dst`'s stream and sends it to `dst`'s far end, noting it in
/// the ledger (at the given Unix milliseconds) when there is one.
fn forward(
    buf: &mut [u8; 2048],
    header: &RtpHeader,
    payload: Range<usize>,
    from: &LegCodecs,
    dst: &mut Stream,
    now: Instant,
    ledger: Option<(&Ledger, i64)>,
) -> Outcome {
    let (Some(remote), Some(rewriter)) = (dst.peer.remote, dst.rewriter.as_mut()) else {
        return Outcome::Dropped;
    };
    let Some(how) = map_payload(header.payload_type, from, &dst.peer.codecs) else {
        return Outcome::Dropped;
    };
    let Some(mut out) = rewriter.rewrite(now, header) else {
        return Outcome::Dropped;
    };
    out.payload_type = match how {
        Forward::As(pt) => pt,
        Forward::Transcode {
            payload_type,
            direction,
        } => {
            direction.apply(&mut buf[payload.clone()]);
            payload_type
        }
    };
    // The parser only returns a payload after the 12-byte fixed header, so the new header
    // fits in front of it, over the old one (and any CSRCs/extension).
    let Some(start) = payload.start.checked_sub(RTP_HEADER_LEN) else {
        return Outcome::Dropped;
    };
    let head: &mut [u8; RTP_HEADER_LEN] = (&mut buf[start..payload.start])
        .try_into()
        .expect("a range of RTP_HEADER_LEN bytes");
    out.write_fixed(head);
    // Noted before it leaves (see `service_slot`).
    if let (Some((ledger, at_ms)), Some(record)) = (ledger, dst.record) {
        ledger.sent(record, &buf[start..], remote, dst.peer.latched, at_ms);
    }
    if super::send_rtp(
        &dst.socket,
        dst.connected,
        dst.srtp.as_deref_mut(),
        &buf[start..payload.end],
        remote,
    ) {
        Outcome::Sent
    } else {
        Outcome::SendFailed
    }
}

/// Mutable references to two distinct live entries of the stream table.
fn pair_mut<T>(table: &mut [Option<T>], i: usize, j: usize) -> Option<(&mut T, &mut T)> {
    if i == j || i.max(j) >= table.len() {
        return None;
    }
    let (lo, hi) = table.split_at_mut(i.max(j));
    let (low, high) = (lo[i.min(j)].as_mut()?, hi[0].as_mut()?);
    Some(if i < j { (low, high) } else { (high, low) })
}
