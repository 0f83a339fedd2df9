//! RFC 4733 decoder tests: real packet captures (from SIPp's pcap set), loss, retransmitted
//! ends, long events, reordering, malformed payloads, a seeded fuzz run, and INFO bodies.

use super::*;
use crate::media::rtp::RtpHeader;

/// One RTP packet from a capture: arrival offset from the first packet, header, payload.
struct Captured {
    at: Duration,
    header: RtpHeader,
    payload: Vec<u8>,
}

/// A minimal classic-pcap reader (microsecond or nanosecond, either byte order) for
/// Ethernet or raw IPv4 captures of UDP/RTP.
fn read_pcap(data: &[u8]) -> Vec<Captured> {
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let (le, nanos) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        other => panic!("not a pcap file: magic {other:#x}"),
    };
    let u32_at = |b: &[u8], i: usize| {
        let bytes: [u8; 4] = b[i..i + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        }
    };
    let link = u32_at(data, 20);
    let mut out = Vec::new();
    let mut first = None;
    let mut off = 24;
    while off + 16 <= data.len() {
        let secs = u64::from(u32_at(data, off));
        let frac = u64::from(u32_at(data, off + 4));
        let incl = u32_at(data, off + 8) as usize;
        let frame = &data[off + 16..off + 16 + incl];
        off += 16 + incl;
        let t = Duration::from_secs(secs)
            + Duration::from_nanos(if nanos { frac } else { frac * 1000 });
        let ip = match link {
            1 => &frame[14..], // Ethernet II
            101 | 228 => frame,
            other => panic!("unsupported link type {other}"),
        };
        assert_eq!(ip[0] >> 4, 4, "IPv4 only");
        assert_eq!(ip[9], 17, "UDP only");
        let udp = &ip[usize::from(ip[0] & 0x0F) * 4..];
        let (header, payload) = RtpHeader::parse(&udp[8..]).unwrap();
        let first = *first.get_or_insert(t);
        out.push(Captured {
            at: t - first,
            header,
            payload: payload.to_vec(),
        });
    }
    out
}

/// The SIPp captures: one key press each, named after the key.
const CAPTURES: [(&[u8], char); 4] = [
    (include_bytes!("../../../tests/data/dtmf_2833_0.pcap"), '0'),
    (include_bytes!("../../../tests/data/dtmf_2833_1.pcap"), '1'),
    (
        include_bytes!("../../../tests/data/dtmf_2833_star.pcap"),
        '*',
    ),
    (
        include_bytes!("../../../tests/data/dtmf_2833_pound.pcap"),
        '#',
    ),
];

fn drain(rx: &mut DtmfReceiver) -> Vec<Digit> {
    std::iter::from_fn(|| rx.poll_digit()).collect()
}

/// Block bytes for an event.
fn block(event: u8, end: bool, duration: u16) -> [u8; 4] {
    let d = duration.to_be_bytes();
    [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
}

#[test]
fn parse_fields_and_r_bit() {
    let ev = TelephoneEvent::parse(&[0x0b, 0x8a, 0x08, 0xc0]).unwrap();
    assert_eq!(
        ev,
        TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 0x08c0
        }
    );
    assert_eq!(ev.digit(), Some('#'));
    // The R bit is ignored on receipt.
    let r = TelephoneEvent::parse(&[0x01, 0x40 | 7, 0, 160]).unwrap();
    assert_eq!((r.end, r.volume, r.duration), (false, 7, 160));
    // Packed blocks: the last is the packet's event.
    let mut packed = block(3, true, 800).to_vec();
    packed.extend_from_slice(&block(4, false, 160));
    assert_eq!(TelephoneEvent::parse(&packed).unwrap().event, 4);
}

#[test]
fn malformed_payloads_are_errors() {
    assert_eq!(TelephoneEvent::parse(&[]), Err(DtmfError::Empty));
    for len in [1, 2, 3, 5, 7] {
        assert_eq!(
            TelephoneEvent::parse(&vec![0; len]),
            Err(DtmfError::BadLength(len))
        );
    }
    let mut rx = DtmfReceiver::default();
    let t0 = Instant::now();
    assert!(rx.handle_packet(t0, 100, &[1, 0x80]).is_err());
    assert_eq!(rx.poll_timeout(), None, "a rejected packet changes nothing");
    assert!(rx.poll_digit().is_none());
}

#[test]
fn event_codes_map_to_keys() {
    let keys: String = (0..16).filter_map(event_digit).collect();
    assert_eq!(keys, "0123456789*#ABCD");
    assert!((16..=255).all(|c| event_digit(c).is_none()));
}

#[test]
fn sipp_captures_give_one_digit_each() {
    for (pcap, key) in CAPTURES {
        let packets = read_pcap(pcap);
        let ends = packets
            .iter()
            .filter(|p| TelephoneEvent::parse(&p.payload).unwrap().end)
            .count();
        assert_eq!(ends, 3, "the capture carries the triple end packet");
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::default();
        for p in &packets {
            rx.handle_packet(t0 + p.at, p.header.timestamp, &p.payload)
                .unwrap();
        }
        let last = TelephoneEvent::parse(&packets.last().unwrap().payload).unwrap();
        let digits = drain(&mut rx);
        assert_eq!(digits.len(), 1, "{key}: exactly once despite three ends");
        assert_eq!(digits[0].digit, key);
        assert_eq!(digits[0].end, DigitEnd::EndBit);
        assert_eq!(digits[0].timestamp, packets[0].header.timestamp);
        assert_eq!(digits[0].duration, u32::from(last.duration));
        assert_eq!(rx.poll_timeout(), None, "nothing left open");
    }
}

/// All captures in one stream, 200 ms apart (each lasts about 140 ms), timestamps rebased so
/// each press starts later than the last.
fn sequence(drop_ends: bool) -> Vec<(Duration, u32, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, (pcap, _)) in CAPTURES.iter().enumerate() {
        let packets = read_pcap(pcap);
        let base_ts = packets[0].header.timestamp;
        for p in packets {
            if drop_ends && TelephoneEvent::parse(&p.payload).unwrap().end {
                continue;
            }
            let ts = p.header.timestamp - base_ts + i as u32 * 1600 + 1000;
            out.push((Duration::from_millis(200 * i as u64) + p.at, ts, p.payload));
        }
    }
    out
}

#[test]
fn consecutive_presses_in_order() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::default();
    for (at, ts, payload) in sequence(false) {
        rx.handle_packet(t0 + at, ts, &payload).unwrap();
    }
    let keys: String = drain(&mut rx).iter().map(|d| d.digit).collect();
    let expected: String = CAPTURES.iter().map(|(_, k)| *k).collect();
    assert_eq!(keys, expected);
}

#[test]
fn lost_end_packets_reported_at_next_event_and_timeout() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::default();
    let mut last_at = Duration::ZERO;
    for (at, ts, payload) in sequence(true) {
        rx.handle_packet(t0 + at, ts, &payload).unwrap();
        last_at = at;
    }
    let before = drain(&mut rx);
    let ends: Vec<DigitEnd> = before.iter().map(|d| d.end).collect();
    assert_eq!(ends, vec![DigitEnd::NextEvent; CAPTURES.len() - 1]);
    // The last press has no successor: it waits for the timeout, not a moment less.
    let deadline = rx.poll_timeout().expect("last event still open");
    assert_eq!(deadline, t0 + last_at + DEFAULT_END_TIMEOUT);
    rx.handle_timeout(deadline - Duration::from_millis(1));
    assert!(rx.poll_digit().is_none());
    rx.handle_timeout(deadline);
    let last = rx.poll_digit().expect("reported on timeout");
    assert_eq!(last.digit, CAPTURES[CAPTURES.len() - 1].1);
    assert_eq!(last.end, DigitEnd::Timeout);
    assert_eq!(rx.poll_timeout(), None);
    // A late end packet of the same event is not a second press.
    rx.handle_packet(deadline, last.timestamp, &block(11, true, 2240))
        .unwrap();
    assert!(rx.poll_digit().is_none());
}

#[test]
fn end_only_event_and_stragglers() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::default();
    // Every packet but the ends of key 1 was lost.
    for _ in 0..3 {
        rx.handle_packet(t0, 5000, &block(1, true, 800)).unwrap();
    }
    // Key 2 starts; then a reordered update of key 1 arrives late.
    rx.handle_packet(t0, 6000, &block(2, false, 160)).unwrap();
    rx.handle_packet(t0, 5000, &block(1, false, 640)).unwrap();
    rx.handle_packet(t0, 6000, &block(2, true, 480)).unwrap();
    let got: Vec<(char, u32, DigitEnd)> = drain(&mut rx)
        .iter()
        .map(|d| (d.digit, d.duration, d.end))
        .collect();
    assert_eq!(
        got,
        vec![('1', 800, DigitEnd::EndBit), ('2', 480, DigitEnd::EndBit)]
    );
}

#[test]
fn long_event_segments_are_one_press() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::default();
    let start = u32::MAX - 1000; // the segments also wrap the 32-bit timestamp
    rx.handle_packet(t0, start, &block(5, false, 30_000))
        .unwrap();
    rx.handle_packet(t0, start, &block(5, false, 0xFFFF))
        .unwrap();
    let second = start.wrapping_add(0xFFFF);
    rx.handle_packet(t0, second, &block(5, false, 400)).unwrap();
    assert!(
        rx.poll_digit().is_none(),
        "a continuation is not a new press"
    );
    rx.handle_packet(t0, second, &block(5, true, 1200)).unwrap();
    let d = rx.poll_digit().unwrap();
    assert_eq!((d.digit, d.timestamp), ('5', start));
    assert_eq!(d.duration, 0xFFFF + 1200);
    assert!(rx.poll_digit().is_none());
}

#[test]
fn non_dtmf_events_end_presses_but_are_not_digits() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::default();
    rx.handle_packet(t0, 100, &block(9, false, 160)).unwrap();
    rx.handle_packet(t0, 900, &block(16, true, 800)).unwrap(); // flash
    let got: Vec<char> = drain(&mut rx).iter().map(|d| d.digit).collect();
    assert_eq!(got, vec!['9']);
}

#[test]
fn time_going_backwards_is_ignored() {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::default();
    rx.handle_packet(t0 + Duration::from_secs(2), 100, &block(3, false, 160))
        .unwrap();
    rx.handle_timeout(t0);
    assert!(rx.poll_digit().is_none());
    assert_eq!(
        rx.poll_timeout(),
        Some(t0 + Duration::from_secs(2) + DEFAULT_END_TIMEOUT)
    );
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn fuzz_never_panics_and_never_reports_twice() {
    for seed in 1..=20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(Duration::from_millis(50));
        let mut ts: u32 = rng.next() as u32;
        let mut last_reported: Option<u32> = None;
        for step in 0..5_000u64 {
            let len = (rng.next() % 13) as usize;
            let mut payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if len >= 4 && rng.next().is_multiple_of(2) {
                payload[len - 4] %= 20; // mostly DTMF codes
            }
            match rng.next() % 8 {
                0 => ts = rng.next() as u32,
                1 | 2 => ts = ts.wrapping_add((rng.next() % 4000) as u32),
                3 => ts = ts.wrapping_sub((rng.next() % 4000) as u32),
                _ => {}
            }
            let now = t0 + Duration::from_millis(step * (rng.next() % 40));
            let result = rx.handle_packet(now, ts, &payload);
            assert_eq!(
                result.is_ok(),
                len > 0 && len.is_multiple_of(4),
                "len {len}"
            );
            if rng.next().is_multiple_of(10) {
                rx.handle_timeout(now);
            }
            while let Some(d) = rx.poll_digit() {
                assert!(matches!(d.digit, '0'..='9' | '*' | '#' | 'A'..='D'));
                assert_ne!(last_reported, Some(d.timestamp), "reported twice");
                last_reported = Some(d.timestamp);
            }
        }
    }
}

#[test]
fn info_bodies() {
    let relay = "application/dtmf-relay";
    assert_eq!(
        parse_info_dtmf(relay, b"Signal=1\r\nDuration=160\r\n"),
        Some('1')
    );
    assert_eq!(
        parse_info_dtmf(relay, b"Duration=250\nSignal= #\n"),
        Some('#')
    );
    assert_eq!(
        parse_info_dtmf("Application/DTMF-Relay; charset=utf-8", b"signal=*"),
        Some('*')
    );
    assert_eq!(parse_info_dtmf(relay, b"Signal=11\r\n"), Some('#'));
    assert_eq!(parse_info_dtmf(relay, b"Signal=d"), Some('D'));
    assert_eq!(parse_info_dtmf("application/dtmf", b"5\r\n"), Some('5'));
    assert_eq!(parse_info_dtmf("application/dtmf", b"10"), Some('*'));
    // Not a key, not DTMF, or not text.
    assert_eq!(parse_info_dtmf(relay, b"Signal=E"), None);
    assert_eq!(parse_info_dtmf(relay, b"Signal=16"), None);
    assert_eq!(parse_info_dtmf(relay, b"Signal=12345"), None);
    assert_eq!(parse_info_dtmf(relay, b"Duration=160"), None);
    assert_eq!(parse_info_dtmf(relay, b""), None);
    assert_eq!(parse_info_dtmf(relay, b"Signal=\xff"), None);
    assert_eq!(parse_info_dtmf("application/sdp", b"1"), None);
    assert_eq!(parse_info_dtmf("application/dtmf", b"12"), Some('A'));
    assert_eq!(parse_info_dtmf("application/dtmf", b"1 2"), None);
}
