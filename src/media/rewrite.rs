//! RTP header rewriting for bridged legs: what a relayed packet looks like on the way out.
//!
//! When a caller is bridged to an agent, holdfast stays in the media path and forwards each
//! packet received on one leg out of the other leg's socket. Each leg's far end must keep
//! seeing ONE RTP stream (RFC 3550 §5.1): the caller heard hold music from holdfast's SSRC,
//! so the agent's voice must arrive with that same SSRC, the sequence number running on +1
//! from the last music packet and the timestamp running on from the music's timeline. This
//! module owns that mapping, sans-IO (fed `now`, never touching a socket):
//!
//! - [`Rewriter`]: one leg's outbound counters. On the first packet from a source (and again
//!   if the source changes its SSRC, e.g. after a re-INVITE) it fixes two offsets: the
//!   sequence offset so the packet carries the leg's next sequence number, and the timestamp
//!   offset so it carries the leg's timeline projected to `now` (8 000 samples per second
//!   since the last packet sent). Later packets keep the source's own spacing (`in + offset`),
//!   so losses, reordering, silence suppression and RFC 4733 event timestamps pass through
//!   unchanged. The first packet after such a switch carries the marker bit: RFC 3551 §4.1
//!   uses it for the first packet of a talkspurt, which tells the receiver's jitter buffer
//!   to resynchronise instead of treating the jump as lateness.
//! - [`map_payload`]: the payload type on the other leg. Telephone events (RFC 4733 §2.1,
//!   a dynamic type negotiated per leg: 101 on one side may be 96 on the other) are mapped;
//!   G.711 µ-law and A-law (RFC 3551 §4.5.14, static types 0 and 8) are transcoded sample by
//!   sample through the linear value when the legs differ; comfort noise (RFC 3389, static
//!   type 13) passes. Anything else is forwarded only if the other leg negotiated the same
//!   payload type, and dropped otherwise: a receiver cannot decode a codec it did not agree
//!   to.

use std::time::Instant;

use super::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
use super::rtp::RtpHeader;

/// G.711 µ-law (PCMU), RFC 3551 §6.
pub const PT_PCMU: u8 = 0;
/// G.711 A-law (PCMA), RFC 3551 §6.
pub const PT_PCMA: u8 = 8;
/// Comfort noise (RFC 3389), RFC 3551 §6.
pub const PT_CN: u8 = 13;
/// RTP clock rate of every payload holdfast relays (G.711, CN, telephone-event at 8 kHz).
const SAMPLES_PER_SECOND: u64 = 8000;

/// The payload types one leg's far end negotiated (from its SDP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegCodecs {
    /// The audio payload type the far end receives (0 = PCMU, 8 = PCMA), if known.
    pub audio: Option<u8>,
    /// The RFC 4733 telephone-event payload type, if negotiated.
    pub telephone_event: Option<u8>,
}

/// What to do with a payload on its way from one leg to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Send the payload as is, with this payload type.
    As(u8),
    /// Transcode every byte, then send with this payload type.
    Transcode {
        /// Outbound payload type.
        payload_type: u8,
        /// Direction of the G.711 conversion.
        direction: G711Convert,
    },
}

/// A G.711 law conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711Convert {
    /// µ-law in, A-law out.
    MuToA,
    /// A-law in, µ-law out.
    AToMu,
}

impl G711Convert {
    /// Converts `payload` in place (each byte through its 16-bit linear value; both steps
    /// are table lookups).
    pub fn apply(self, payload: &mut [u8]) {
        match self {
            G711Convert::MuToA => {
                for b in payload {
                    *b = linear_to_alaw(ulaw_to_linear(*b));
                }
            }
            G711Convert::AToMu => {
                for b in payload {
                    *b = linear_to_ulaw(alaw_to_linear(*b));
                }
            }
        }
    }
}

/// Decides how a packet of payload type `pt` received on leg `from` goes out on leg `to`;
/// `None`: drop it (the other leg did not negotiate anything it could decode).
pub fn map_payload(pt: u8, from: &LegCodecs, to: &LegCodecs) -> Option<Forward> {
    if from.telephone_event == Some(pt) {
        return to.telephone_event.map(Forward::As);
    }
    if pt == PT_CN {
        return Some(Forward::As(PT_CN));
    }
    match (pt, to.audio) {
        (PT_PCMU, Some(PT_PCMA)) => Some(Forward::Transcode {
            payload_type: PT_PCMA,
            direction: G711Convert::MuToA,
        }),
        (PT_PCMA, Some(PT_PCMU)) => Some(Forward::Transcode {
            payload_type: PT_PCMU,
            direction: G711Convert::AToMu,
        }),
        // The other leg's audio type not known yet: G.711 passes as is (static types mean
        // the same everywhere); a dynamic type cannot be checked, so it is dropped.
        (PT_PCMU | PT_PCMA, None) => Some(Forward::As(pt)),
        (pt, Some(audio)) if pt == audio => Some(Forward::As(pt)),
        _ => None,
    }
}

/// The stream the rewriter is currently mapping.
#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    /// Outbound sequence of this source's first packet: anything older is dropped.
    first_seq: u16,
}

/// One leg's outbound RTP counters while it relays (see the module docs).
#[derive(Debug, Clone)]
pub struct Rewriter {
    ssrc: u32,
    /// Sequence number after the newest packet sent.
    next_seq: u16,
    /// The outbound timeline: timestamp `anchor_ts` at instant `anchor_at`.
    anchor_ts: u32,
    anchor_at: Instant,
    source: Option<Source>,
}

impl Rewriter {
    /// Continues an RTP stream: SSRC `ssrc`, next sequence `next_seq`, and timestamp
    /// `timestamp` at instant `at` (the timeline then runs at 8 kHz).
    pub fn new(ssrc: u32, next_seq: u16, timestamp: u32, at: Instant) -> Rewriter {
        Rewriter {
            ssrc,
            next_seq,
            anchor_ts: timestamp,
            anchor_at: at,
            source: None,
        }
    }

    /// The outbound SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number a packet from a new source would carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_seq
    }

    /// The outbound timeline at `now`: the last timestamp sent (or the starting one) plus
    /// the samples elapsed since.
    pub fn timestamp_at(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.anchor_at);
        let samples = elapsed.as_nanos() * u128::from(SAMPLES_PER_SECOND) / 1_000_000_000;
        // Truncation is the wrap-around the RTP timestamp has anyway (RFC 3550 §5.1).
        self.anchor_ts.wrapping_add(samples as u32)
    }

    /// Forgets the current source: the next packet re-anchors (and carries the marker),
    /// e.g. when the leg is bridged again.
    pub fn restart(&mut self, now: Instant) {
        self.anchor_ts = self.timestamp_at(now);
        self.anchor_at = now;
        self.source = None;
    }

    /// The header to send for inbound `header` at `now`: this leg's SSRC, sequence and
    /// timestamp mapped onto its own stream, marker set on a source switch, payload type
    /// copied (the caller sets the mapped one). `None`: the packet is older than the
    /// source switch (reordered across it) and would collide with numbers already sent.
    pub fn rewrite(&mut self, now: Instant, header: &RtpHeader) -> Option<RtpHeader> {
        let mut marker = header.marker;
        let source = match self.source {
            Some(s) if s.ssrc == header.ssrc => s,
            _ => {
                let ts = self.timestamp_at(now);
                let s = Source {
                    ssrc: header.ssrc,
                    seq_offset: self.next_seq.wrapping_sub(header.sequence),
                    ts_offset: ts.wrapping_sub(header.timestamp),
                    first_seq: self.next_seq,
                };
                self.source = Some(s);
                marker = true;
                s
            }
        };
        let seq = header.sequence.wrapping_add(source.seq_offset);
        if (seq.wrapping_sub(source.first_seq) as i16) < 0 {
            return None;
        }
        let ts = header.timestamp.wrapping_add(source.ts_offset);
        // Track the newest packet so a later switch continues after it.
        if (seq.wrapping_sub(self.next_seq) as i16) >= 0 {
            self.next_seq = seq.wrapping_add(1);
        }
        if (ts.wrapping_sub(self.anchor_ts) as i32) > 0 {
            self.anchor_ts = ts;
            self.anchor_at = now;
        }
        Some(RtpHeader::new(
            header.payload_type,
            seq,
            ts,
            self.ssrc,
            marker,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn inbound(seq: u16, ts: u32, ssrc: u32) -> RtpHeader {
        RtpHeader::new(0, seq, ts, ssrc, false)
    }

    #[test]
    fn continues_the_leg_stream_and_keeps_source_spacing() {
        let t0 = Instant::now();
        // The leg's music stopped with next sequence 65534, timestamp 1000 due at t0.
        let mut rw = Rewriter::new(0xcafe, 65534, 1000, t0);
        let at = t0 + Duration::from_millis(30);
        let first = rw.rewrite(at, &inbound(500, 77_000, 9)).unwrap();
        assert_eq!(
            (first.ssrc, first.sequence, first.timestamp, first.marker),
            (0xcafe, 65534, 1000 + 240, true),
            "30 ms of timeline (240 samples) since the anchor"
        );
        // A lost packet (501) stays a gap; sequence wraps; timestamps keep the source's
        // spacing, including a silence-suppression jump.
        let h = rw
            .rewrite(at + Duration::from_millis(40), &inbound(502, 77_320, 9))
            .unwrap();
        assert_eq!((h.sequence, h.timestamp, h.marker), (0, 1240 + 320, false));
        let h = rw
            .rewrite(at + Duration::from_secs(1), &inbound(503, 85_320, 9))
            .unwrap();
        assert_eq!((h.sequence, h.timestamp), (1, 1240 + 8320));
        // The late 501 still maps into place; a packet from before the switch is dropped.
        let late = rw.rewrite(at, &inbound(501, 77_160, 9)).unwrap();
        assert_eq!(late.sequence, 65535);
        assert_eq!(rw.rewrite(at, &inbound(499, 76_840, 9)), None);
        assert_eq!(rw.next_sequence(), 2);
    }

    #[test]
    fn source_ssrc_change_reanchors_with_marker() {
        let t0 = Instant::now();
        let mut rw = Rewriter::new(1, 10, 0, t0);
        rw.rewrite(t0, &inbound(100, 5000, 7)).unwrap();
        let last = rw
            .rewrite(t0 + Duration::from_millis(20), &inbound(101, 5160, 7))
            .unwrap();
        // The peer restarts its stream with new random counters 100 ms later.
        let now = t0 + Duration::from_millis(120);
        let h = rw.rewrite(now, &inbound(40_000, 9, 8)).unwrap();
        assert_eq!(h.ssrc, 1);
        assert_eq!(h.sequence, last.sequence + 1);
        assert_eq!(
            h.timestamp,
            last.timestamp + 800,
            "100 ms after the last one"
        );
        assert!(h.marker);
        // restart() forces a re-anchor even for the same source.
        rw.restart(now + Duration::from_millis(20));
        let h2 = rw
            .rewrite(now + Duration::from_millis(20), &inbound(40_001, 169, 8))
            .unwrap();
        assert_eq!(
            (h2.sequence, h2.timestamp, h2.marker),
            (h.sequence + 1, h.timestamp + 160, true)
        );
        assert_eq!(
            rw.timestamp_at(now + Duration::from_millis(60)),
            h2.timestamp + 320
        );
    }

    #[test]
    fn maps_payload_types_between_legs() {
        let caller = LegCodecs {
            audio: Some(PT_PCMU),
            telephone_event: Some(101),
        };
        let agent = LegCodecs {
            audio: Some(PT_PCMA),
            telephone_event: Some(96),
        };
        let agent_mu = LegCodecs {
            audio: Some(PT_PCMU),
            telephone_event: None,
        };
        assert_eq!(map_payload(101, &caller, &agent), Some(Forward::As(96)));
        assert_eq!(map_payload(96, &agent, &caller), Some(Forward::As(101)));
        assert_eq!(map_payload(101, &caller, &agent_mu), None, "no DTMF there");
        assert_eq!(
            map_payload(PT_PCMU, &caller, &agent),
            Some(Forward::Transcode {
                payload_type: PT_PCMA,
                direction: G711Convert::MuToA
            })
        );
        assert_eq!(
            map_payload(PT_PCMU, &caller, &agent_mu),
            Some(Forward::As(PT_PCMU))
        );
        assert_eq!(
            map_payload(PT_CN, &agent, &caller),
            Some(Forward::As(PT_CN))
        );
        assert_eq!(
            map_payload(9, &agent, &caller),
            None,
            "G.722 not negotiated"
        );
        let unknown = LegCodecs::default();
        assert_eq!(
            map_payload(PT_PCMA, &agent, &unknown),
            Some(Forward::As(PT_PCMA))
        );
        assert_eq!(map_payload(97, &agent, &unknown), None);
    }

    #[test]
    fn transcodes_g711_through_linear() {
        let mut payload: Vec<u8> = (0..=255).collect();
        G711Convert::MuToA.apply(&mut payload);
        for (b, &a) in (0..=255u8).zip(&payload) {
            let (mu, a_lin) = (i32::from(ulaw_to_linear(b)), i32::from(alaw_to_linear(a)));
            // A-law has 13 bits of resolution: the error is at most half a step of its
            // segment (≤ 512 at the top, ≤ 8 near zero) relative to the µ-law value.
            assert!(
                (mu - a_lin).abs() <= (mu.abs() / 32).max(16),
                "{b}: {mu} vs {a_lin}"
            );
        }
        // Silence stays silence both ways.
        let mut silence = [0xffu8; 4];
        G711Convert::MuToA.apply(&mut silence);
        assert!(silence.iter().all(|&b| alaw_to_linear(b).abs() <= 8));
        G711Convert::AToMu.apply(&mut silence);
        assert!(silence.iter().all(|&b| ulaw_to_linear(b).abs() <= 8));
    }
}
