//! RTP fixed header: parse and write (RFC 3550 §5.1).
//!
//! This module owns the wire format of the RTP header and nothing else. Parsing is pure over
//! `&[u8]`: it validates the version, skips the CSRC list (§5.1 `CC`) and the header
//! extension (§5.3.1), strips padding (§5.1 `P`), and hands back the header fields with the
//! payload slice. Bad input is an [`RtpError`], never a panic, so it can be fed anything a
//! peer sends (and fuzzed).
//!
//! Writing is the hot path of the media engine: [`RtpHeader::write_fixed`] fills the 12-byte
//! fixed header into a caller-provided array. It never allocates and cannot fail, because the
//! headers holdfast sends carry no CSRCs, no extension and no padding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

/// The only RTP version in use (RFC 3550 §5.1 `V`).
pub const RTP_VERSION: u8 = 2;

/// Length of the fixed RTP header, without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;

/// Why a datagram is not a well-formed RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("packet of {len} bytes is shorter than the 12-byte RTP header")]
    TooShort {
        /// Length of the datagram.
        len: usize,
    },
    /// The version field is not 2 (e.g. STUN, or garbage).
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// The CSRC count announces more identifiers than the packet holds.
    #[error("CSRC list of {count} entries runs past the end of the packet")]
    CsrcTruncated {
        /// The CC field.
        count: u8,
    },
    /// The X bit is set but the extension header or its body runs past the end.
    #[error("header extension runs past the end of the packet")]
    ExtensionTruncated,
    /// The P bit is set but the padding count is zero or larger than the payload.
    #[error("padding count {count} invalid for a payload of {available} bytes")]
    BadPadding {
        /// The last octet of the packet.
        count: u8,
        /// Bytes between the end of the header and the end of the packet.
        available: usize,
    },
}

/// The fields of an RTP header that holdfast uses.
///
/// `csrc_count`, `extension_profile` and `padding` describe what the parser skipped; a header
/// built for sending has none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// M bit: for audio, the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// PT, 7 bits: 0 = PCMU, 8 = PCMA, dynamic (96–127) e.g. telephone-event.
    pub payload_type: u8,
    /// Sequence number, +1 per packet, random start.
    pub sequence: u16,
    /// Sampling-instant timestamp, +160 per 20 ms G.711 frame, random start.
    pub timestamp: u32,
    /// Synchronization source identifier, random per stream.
    pub ssrc: u32,
    /// Number of CSRC identifiers skipped by the parser.
    pub csrc_count: u8,
    /// Profile-defined 16 bits of the header extension, if the X bit was set.
    pub extension_profile: Option<u16>,
    /// Padding bytes stripped from the end of the payload (0 if the P bit was clear).
    pub padding: u8,
}

impl RtpHeader {
    /// A header for sending: no CSRC, no extension, no padding.
    pub fn new(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32, marker: bool) -> Self {
        RtpHeader {
            marker,
            payload_type: payload_type & 0x7f,
            sequence,
            timestamp,
            ssrc,
            csrc_count: 0,
            extension_profile: None,
            padding: 0,
        }
    }

    /// Parses an RTP packet, returning its header and payload (padding removed).
    pub fn parse(packet: &[u8]) -> Result<(RtpHeader, &[u8]), RtpError> {
        if packet.len() < RTP_HEADER_LEN {
            return Err(RtpError::TooShort { len: packet.len() });
        }
        let b0 = packet[0];
        let version = b0 >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0f;
        let mut offset = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if offset > packet.len() {
            return Err(RtpError::CsrcTruncated { count: csrc_count });
        }
        let mut extension_profile = None;
        if has_extension {
            // §5.3.1: 16-bit profile field, 16-bit length in 32-bit words, then the body.
            let ext = packet
                .get(offset..offset + 4)
                .ok_or(RtpError::ExtensionTruncated)?;
            extension_profile = Some(u16::from_be_bytes([ext[0], ext[1]]));
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            offset += 4 + 4 * words;
            if offset > packet.len() {
                return Err(RtpError::ExtensionTruncated);
            }
        }
        let mut end = packet.len();
        let mut padding = 0;
        if has_padding {
            let available = end - offset;
            let count = packet[end - 1];
            if count == 0 || usize::from(count) > available {
                return Err(RtpError::BadPadding { count, available });
            }
            padding = count;
            end -= usize::from(count);
        }
        let header = RtpHeader {
            marker: packet[1] & 0x80 != 0,
            payload_type: packet[1] & 0x7f,
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            csrc_count,
            extension_profile,
            padding,
        };
        Ok((header, &packet[offset..end]))
    }

    /// Writes the 12-byte fixed header (V=2, no P/X/CC) into `out`.
    ///
    /// The CSRC, extension and padding fields of `self` are ignored: holdfast never sends them.
    #[inline]
    pub fn write_fixed(&self, out: &mut [u8; RTP_HEADER_LEN]) {
        out[0] = RTP_VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// Whether a datagram on an RTP port is RTCP multiplexed onto it (RFC 5761 §4: the second
/// octet, which is M+PT for RTP, falls in 192–223 for RTCP packet types SR..APP and friends).
pub fn is_rtcp_mux(packet: &[u8]) -> bool {
    packet.len() >= 2 && packet[0] >> 6 == RTP_VERSION && (192..=223).contains(&packet[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCMU packet as captured from a softphone: V=2, M=1, PT=0, seq 0x1234,
    /// ts 0xdeadbeef, SSRC 0x01020304, 4 payload bytes.
    const PCMU: [u8; 16] = [
        0x80, 0x80, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0xff, 0xfe, 0x7f,
        0x00,
    ];

    #[test]
    fn parses_captured_pcmu_packet() {
        let (h, payload) = RtpHeader::parse(&PCMU).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 0);
        assert_eq!(h.sequence, 0x1234);
        assert_eq!(h.timestamp, 0xdead_beef);
        assert_eq!(h.ssrc, 0x0102_0304);
        assert_eq!(h.csrc_count, 0);
        assert_eq!(h.extension_profile, None);
        assert_eq!(payload, &[0xff, 0xfe, 0x7f, 0x00]);
    }

    #[test]
    fn parses_telephone_event_with_csrc_extension_and_padding() {
        // V=2 P=1 X=1 CC=1; PT 101; one CSRC; extension profile 0xbede with 1 word;
        // 4-byte RFC 4733 payload (digit 1, E=0, volume 10, duration 160); 2 padding bytes.
        let packet = [
            0xb1, 0x65, 0x00, 0x07, 0x00, 0x00, 0x03, 0x20, 0xaa, 0xbb, 0xcc, 0xdd, // fixed
            0x11, 0x22, 0x33, 0x44, // CSRC
            0xbe, 0xde, 0x00, 0x01, 0x10, 0xff, 0x00, 0x00, // extension
            0x01, 0x0a, 0x00, 0xa0, // payload
            0x00, 0x02, // padding, count = 2
        ];
        let (h, payload) = RtpHeader::parse(&packet).unwrap();
        assert!(!h.marker);
        assert_eq!(h.payload_type, 101);
        assert_eq!(h.sequence, 7);
        assert_eq!(h.timestamp, 800);
        assert_eq!(h.ssrc, 0xaabb_ccdd);
        assert_eq!(h.csrc_count, 1);
        assert_eq!(h.extension_profile, Some(0xbede));
        assert_eq!(h.padding, 2);
        assert_eq!(payload, &[0x01, 0x0a, 0x00, 0xa0]);
    }

    #[test]
    fn write_then_parse_round_trips() {
        for (pt, seq, ts, ssrc, marker) in [
            (0u8, 0u16, 0u32, 0u32, true),
            (8, 0xffff, 0xffff_ffff, 0xffff_ffff, false),
            (127, 0x8000, 0x1234_5678, 0x9abc_def0, true),
        ] {
            let h = RtpHeader::new(pt, seq, ts, ssrc, marker);
            let mut buf = [0u8; RTP_HEADER_LEN];
            h.write_fixed(&mut buf);
            let (parsed, payload) = RtpHeader::parse(&buf).unwrap();
            assert_eq!(parsed, h);
            assert!(payload.is_empty());
        }
    }

    #[test]
    fn writes_exact_captured_bytes() {
        let mut buf = [0u8; RTP_HEADER_LEN];
        RtpHeader::new(0, 0x1234, 0xdead_beef, 0x0102_0304, true).write_fixed(&mut buf);
        assert_eq!(buf, PCMU[..12]);
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(RtpHeader::parse(&[]), Err(RtpError::TooShort { len: 0 }));
        assert_eq!(
            RtpHeader::parse(&PCMU[..11]),
            Err(RtpError::TooShort { len: 11 })
        );
        // STUN binding request starts with 0x00 0x01: version 0.
        let mut stun = PCMU;
        stun[0] = 0x00;
        assert_eq!(RtpHeader::parse(&stun), Err(RtpError::BadVersion(0)));
        let mut v1 = PCMU;
        v1[0] = 0x40;
        assert_eq!(RtpHeader::parse(&v1), Err(RtpError::BadVersion(1)));
        // CC = 2 needs 8 more bytes, only 4 present.
        let mut csrc = PCMU;
        csrc[0] = 0x82;
        assert_eq!(
            RtpHeader::parse(&csrc),
            Err(RtpError::CsrcTruncated { count: 2 })
        );
        // X set: the payload bytes read as an extension header announcing 1 word that is absent.
        let mut ext = PCMU;
        ext[0] = 0x90;
        ext[14] = 0x00;
        ext[15] = 0x01;
        assert_eq!(RtpHeader::parse(&ext), Err(RtpError::ExtensionTruncated));
        let mut ext_short = PCMU.to_vec();
        ext_short[0] = 0x90;
        ext_short.truncate(14);
        assert_eq!(
            RtpHeader::parse(&ext_short),
            Err(RtpError::ExtensionTruncated)
        );
        // P set with count 0, and with a count larger than the payload.
        let mut pad0 = PCMU;
        pad0[0] = 0xa0;
        assert_eq!(
            RtpHeader::parse(&pad0),
            Err(RtpError::BadPadding {
                count: 0,
                available: 4
            })
        );
        let mut pad_big = PCMU;
        pad_big[0] = 0xa0;
        pad_big[15] = 5;
        assert_eq!(
            RtpHeader::parse(&pad_big),
            Err(RtpError::BadPadding {
                count: 5,
                available: 4
            })
        );
    }

    #[test]
    fn recognises_rtcp_mux() {
        // Receiver report: V=2, RC=0, PT=201.
        assert!(is_rtcp_mux(&[0x80, 201, 0x00, 0x01]));
        assert!(!is_rtcp_mux(&PCMU));
        assert!(!is_rtcp_mux(&[0x80]));
    }
}
