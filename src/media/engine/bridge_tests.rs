//! Bridging over real loopback sockets: two "phones" (plain UDP sockets) A (the caller) and
//! B (the agent), and the engine relaying between them.

use super::*;
use crate::media::g711::{alaw_to_linear, linear_to_ulaw};
use crate::media::player::FRAME_LEN;
use crate::media::rtp::RtpHeader;
use bytes::Bytes;
use std::time::{Duration, Instant};

fn engine(port_min: u16) -> (MediaEngine, MediaEvents) {
    MediaEngine::start(EngineConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port_min,
        port_max: port_min + 1999,
        shards: 2,
        pin: false,
        ledger: None,
    })
    .unwrap()
}

fn phone() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    RtpHeader::new(pt, seq, ts, ssrc, marker).write_fixed((&mut p[..12]).try_into().unwrap());
    p.extend_from_slice(payload);
    p
}

/// Next RTP packet on `sock` within `within`.
fn recv(sock: &UdpSocket, within: Duration) -> Option<(RtpHeader, Vec<u8>)> {
    let end = Instant::now() + within;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let (h, payload) = RtpHeader::parse(&buf[..n]).unwrap();
            return Some((h, payload.to_vec()));
        }
    }
    None
}

/// Everything `sock` receives until it stays silent for `quiet`.
fn drain(sock: &UdpSocket, quiet: Duration) -> Vec<(RtpHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(p) = recv(sock, quiet) {
        out.push(p);
    }
    out
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Sends 100 packets from `from` to `to` one at a time (each waits for its relay on
/// `at`), and returns what arrived with the send→receive latencies.
fn ping(
    from: &UdpSocket,
    to: SocketAddr,
    at: &UdpSocket,
    ssrc: u32,
    seq0: u16,
    ts0: u32,
) -> (Vec<(RtpHeader, Vec<u8>)>, Vec<Duration>) {
    let (mut got, mut latencies) = (Vec::new(), Vec::new());
    for i in 0..100u16 {
        let payload = [i as u8; FRAME_LEN];
        let seq = seq0.wrapping_add(i);
        let ts = ts0.wrapping_add(160 * u32::from(i));
        let sent = Instant::now();
        from.send_to(&packet(0, seq, ts, ssrc, i == 0, &payload), to)
            .unwrap();
        if let Some(p) = recv(at, Duration::from_millis(500)) {
            latencies.push(sent.elapsed());
            got.push(p);
        }
    }
    (got, latencies)
}

fn assert_mostly_prompt(latencies: &mut [Duration]) {
    latencies.sort();
    let fast = latencies
        .iter()
        .filter(|l| **l < Duration::from_millis(5))
        .count();
    assert!(
        fast * 10 >= latencies.len() * 8,
        "at least 80 % under 5 ms; median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies.last()
    );
}

#[test]
fn relays_both_ways_continuing_each_legs_stream() {
    let (engine, _events) = engine(39000);
    let (a, b) = (phone(), phone());
    let (caller, caller_port) = engine.open().unwrap();
    engine
        .play(
            caller,
            a.local_addr().unwrap(),
            0,
            Bytes::from(vec![0x55; FRAME_LEN]),
        )
        .unwrap();
    let mut music = vec![recv(&a, Duration::from_secs(1)).expect("music plays")];
    std::thread::sleep(Duration::from_millis(50));
    let (agent, agent_port) = engine.open_beside(caller).unwrap();
    engine.connect(agent, b.local_addr().unwrap(), 0).unwrap();
    engine.bridge(caller, agent).unwrap();
    // The last music packets, then silence: the music stopped at the bridge.
    music.extend(drain(&a, Duration::from_millis(60)));
    assert!(music.len() >= 3, "music for 50 ms before the bridge");
    let last = music.last().expect("music before the bridge").0;
    assert!(
        music
            .iter()
            .all(|(h, p)| h.ssrc == last.ssrc && p[0] == 0x55)
    );
    assert!(wait_until(|| engine.stats().bridges == 1));

    // B → A: the caller hears the agent on the music's RTP stream.
    let (got, mut latencies) = ping(&b, local(agent_port), &a, 0xb0b, 65500, 7_000_000);
    assert_eq!(got.len(), 100, "every packet relayed");
    for (i, (h, payload)) in got.iter().enumerate() {
        assert_eq!(h.ssrc, last.ssrc, "the music's SSRC");
        assert_eq!(
            h.sequence,
            last.sequence.wrapping_add(1 + i as u16),
            "sequence runs on from the music"
        );
        assert_eq!(h.marker, i == 0, "marker on the first relayed packet only");
        assert_eq!(h.payload_type, 0);
        assert_eq!(payload, &vec![i as u8; FRAME_LEN], "payload intact");
        if i > 0 {
            assert_eq!(h.timestamp, got[i - 1].0.timestamp.wrapping_add(160));
        }
    }
    let jump = got[0].0.timestamp.wrapping_sub(last.timestamp);
    assert!(
        (160..160 * 50).contains(&jump),
        "timestamp continues from the music's timeline: +{jump}"
    );
    assert_mostly_prompt(&mut latencies);

    // A → B: the agent hears the caller on the agent leg's own stream.
    let (got, mut latencies) = ping(&a, local(caller_port), &b, 0xa, 10, 0);
    assert_eq!(got.len(), 100);
    let first = got[0].0;
    assert!(first.marker);
    assert_ne!(first.ssrc, 0xa, "the agent leg's SSRC, not the caller's");
    for (i, (h, payload)) in got.iter().enumerate() {
        assert_eq!(h.ssrc, first.ssrc);
        assert_eq!(h.sequence, first.sequence.wrapping_add(i as u16));
        assert_eq!(h.timestamp, first.timestamp.wrapping_add(160 * i as u32));
        assert_eq!(h.marker, i == 0);
        assert_eq!(payload, &vec![i as u8; FRAME_LEN]);
    }
    assert_mostly_prompt(&mut latencies);

    // Counters are published when a wake-up's batch is done, just after its last send.
    assert!(wait_until(|| engine.stats().packets_relayed == 200));
    let stats = engine.stats();
    assert_eq!(stats.relay_dropped, 0);
    assert_eq!(stats.playing, 0, "no music while bridged");
    engine.shutdown();
}

#[test]
fn maps_telephone_events_and_transcodes_between_codecs() {
    let (engine, _events) = engine(41000);
    let (a, b) = (phone(), phone());
    let (caller, _) = engine.open().unwrap();
    let (agent, agent_port) = engine.open_beside(caller).unwrap();
    engine.set_telephone_event(caller, Some(101));
    engine.set_telephone_event(agent, Some(96));
    engine
        .play(
            caller,
            a.local_addr().unwrap(),
            0,
            Bytes::from(vec![0xff; FRAME_LEN]),
        )
        .unwrap();
    engine.connect(agent, b.local_addr().unwrap(), 8).unwrap();
    engine.bridge(caller, agent).unwrap();
    assert!(wait_until(|| engine.stats().bridges == 1));
    drain(&a, Duration::from_millis(60));

    // The agent speaks PCMA; the caller negotiated PCMU.
    let alaw: Vec<u8> = (0..=255u8).collect();
    b.send_to(&packet(8, 1, 160, 5, false, &alaw), local(agent_port))
        .unwrap();
    let (h, payload) = recv(&a, Duration::from_secs(1)).expect("relayed");
    assert_eq!(h.payload_type, 0);
    let expected: Vec<u8> = alaw
        .iter()
        .map(|&x| linear_to_ulaw(alaw_to_linear(x)))
        .collect();
    assert_eq!(payload, expected, "transcoded A-law → µ-law");

    // An RFC 4733 event (digit 5, end bit) with the agent's type 96 arrives as 101.
    let event = [5, 0x8a, 0x03, 0x20];
    b.send_to(&packet(96, 2, 160, 5, false, &event), local(agent_port))
        .unwrap();
    let (h, payload) = recv(&a, Duration::from_secs(1)).expect("event relayed");
    assert_eq!((h.payload_type, payload.as_slice()), (101, &event[..]));

    // G.722 was never negotiated: dropped and counted.
    b.send_to(&packet(9, 3, 320, 5, false, &[1; 160]), local(agent_port))
        .unwrap();
    assert!(wait_until(|| engine.stats().relay_dropped == 1));
    assert!(recv(&a, Duration::from_millis(50)).is_none());
    assert_eq!(engine.stats().telephone_events_received, 1);
    engine.shutdown();
}

#[test]
fn malformed_is_not_forwarded_and_closing_a_leg_ends_the_bridge() {
    let (engine, _events) = engine(43000);
    let (a, b) = (phone(), phone());
    let (caller, caller_port) = engine.open().unwrap();
    engine
        .play(
            caller,
            a.local_addr().unwrap(),
            0,
            Bytes::from(vec![1; FRAME_LEN]),
        )
        .unwrap();
    let (agent, agent_port) = engine.open_beside(caller).unwrap();
    // No destination yet: the caller's packets are dropped until the agent leg learns one.
    engine.bridge(caller, agent).unwrap();
    assert!(wait_until(|| engine.stats().bridges == 1));
    a.send_to(&packet(0, 1, 0, 9, false, &[2; 160]), local(caller_port))
        .unwrap();
    assert!(wait_until(|| engine.stats().relay_dropped == 1));
    engine.connect(agent, b.local_addr().unwrap(), 0).unwrap();

    a.send_to(b"not rtp at all", local(caller_port)).unwrap();
    a.send_to(&[0x80, 0], local(caller_port)).unwrap();
    assert!(wait_until(|| engine.stats().malformed_received == 2));
    // RTCP (RFC 5761 mux) is counted, not forwarded.
    a.send_to(&[0x80, 201, 0, 1, 0, 0, 0, 9], local(caller_port))
        .unwrap();
    a.send_to(&packet(0, 2, 160, 9, false, &[3; 160]), local(caller_port))
        .unwrap();
    let (h, payload) = recv(&b, Duration::from_secs(1)).expect("valid RTP relayed");
    assert_eq!(payload, vec![3; 160]);
    assert!(h.marker);
    assert!(
        recv(&b, Duration::from_millis(50)).is_none(),
        "only that one"
    );
    let relayed_to_a = {
        b.send_to(&packet(0, 7, 0, 4, false, &[4; 160]), local(agent_port))
            .unwrap();
        // Music sent to A before the bridge took hold may still be queued ahead of it.
        loop {
            let (h, payload) = recv(&a, Duration::from_secs(1)).expect("relayed to A");
            if payload == [4; 160] {
                break h;
            }
        }
    };
    drain(&a, Duration::from_millis(30));

    engine.close(agent);
    assert!(wait_until(|| engine.stats().bridges == 0));
    a.send_to(&packet(0, 3, 320, 9, false, &[5; 160]), local(caller_port))
        .unwrap();
    assert!(
        recv(&b, Duration::from_millis(200)).is_none(),
        "bridge gone"
    );
    assert!(
        recv(&a, Duration::from_millis(100)).is_none(),
        "the caller leg is idle, no music"
    );
    assert!(wait_until(|| engine.stats().packets_relayed == 2));
    let stats = engine.stats();
    assert_eq!(stats.malformed_received, 2);
    assert_eq!((stats.streams, stats.playing), (1, 0));

    // Music again: the caller's RTP stream continues after the relayed packet.
    engine
        .play(
            caller,
            a.local_addr().unwrap(),
            0,
            Bytes::from(vec![6; FRAME_LEN]),
        )
        .unwrap();
    let (h, payload) = recv(&a, Duration::from_secs(1)).expect("music again");
    assert_eq!(payload[0], 6);
    assert_eq!(h.ssrc, relayed_to_a.ssrc);
    assert_eq!(h.sequence, relayed_to_a.sequence.wrapping_add(1));
    assert!(h.marker, "a new talkspurt after the relay");
    let dt = h.timestamp.wrapping_sub(relayed_to_a.timestamp);
    assert!((160 * 10..160 * 200).contains(&dt), "time ran on: {dt}");
    engine.shutdown();
}

#[test]
fn bridge_needs_two_streams_on_one_shard() {
    let (engine, _events) = engine(45000);
    let (x, _) = engine.open().unwrap();
    let (y, _) = engine.open().unwrap();
    assert!(matches!(
        engine.bridge(x, y),
        Err(MediaError::NotBeside { .. })
    ));
    assert!(matches!(
        engine.bridge(x, x),
        Err(MediaError::SameStream(_))
    ));
    let (z, _) = engine.open_beside(y).unwrap();
    engine.bridge(y, z).unwrap();
    assert!(wait_until(|| engine.stats().bridges == 1));
    // Re-bridging a leg elsewhere ends its old bridge first.
    let (w, _) = engine.open_beside(y).unwrap();
    engine.bridge(z, w).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(engine.stats().bridges, 1);
    engine.unbridge(w);
    assert!(wait_until(|| engine.stats().bridges == 0));
    engine.shutdown();
}

/// SRTP on one leg (RFC 3711): the caller's music leaves encrypted with our key, what the
/// caller sends is decrypted with its key before it is relayed to the plain agent leg, what
/// the agent sends is encrypted towards the caller, and a forged packet is neither latched to
/// nor relayed.
#[test]
fn an_srtp_leg_relays_to_a_plain_one_decrypting_and_encrypting() {
    use crate::srtp::{MasterKey, SrtpReceiver, SrtpSender, Suite};
    let (engine, mut events) = engine(47000);
    let (a, b) = (phone(), phone());
    let theirs = MasterKey::generate(Suite::AesCm128HmacSha1_80, [1; 30]);
    let ours = MasterKey::generate(Suite::AesCm128HmacSha1_80, [2; 30]);
    let (caller, caller_port) = engine.open().unwrap();
    engine.secure(caller, theirs, ours).unwrap();
    engine
        .play(
            caller,
            a.local_addr().unwrap(),
            0,
            Bytes::from(vec![0x55; FRAME_LEN]),
        )
        .unwrap();
    // The music arrives as SRTP: not readable as it is, readable with our key.
    let mut buf = [0u8; 2048];
    a.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let (n, _) = a.recv_from(&mut buf).expect("music");
    assert_eq!(n, 12 + FRAME_LEN + 10, "an 80-bit tag after the payload");
    assert_ne!(
        &buf[12..12 + FRAME_LEN],
        &[0x55; FRAME_LEN][..],
        "encrypted"
    );
    let mut plain = Vec::new();
    let mut caller_rx = SrtpReceiver::new(&ours);
    caller_rx
        .unprotect(&buf[..n], &mut plain)
        .expect("our key decrypts it");
    assert_eq!(&plain[12..], &[0x55; FRAME_LEN][..]);

    let (agent, agent_port) = engine.open_beside(caller).unwrap();
    engine.connect(agent, b.local_addr().unwrap(), 0).unwrap();
    engine.bridge(caller, agent).unwrap();
    assert!(wait_until(|| engine.stats().bridges == 1));
    let _ = drain(&a, Duration::from_millis(60));

    // A forged packet (wrong key) from elsewhere: dropped, not latched, not relayed.
    let forger = phone();
    let mut forged = Vec::new();
    let wrong = MasterKey::generate(Suite::AesCm128HmacSha1_80, [9; 30]);
    SrtpSender::new(&wrong)
        .protect(
            &packet(0, 1, 0, 0xbad, false, &[0x11; FRAME_LEN]),
            &mut forged,
        )
        .unwrap();
    forger.send_to(&forged, local(caller_port)).unwrap();
    assert!(
        recv(&b, Duration::from_millis(200)).is_none(),
        "forgery not relayed"
    );

    // The caller's SRTP reaches the agent as plain RTP.
    let mut caller_tx = SrtpSender::new(&theirs);
    for seq in 0..5u16 {
        let mut out = Vec::new();
        let rtp = packet(
            0,
            seq,
            u32::from(seq) * 160,
            0xca11,
            seq == 0,
            &[0x22; FRAME_LEN],
        );
        caller_tx.protect(&rtp, &mut out).unwrap();
        a.send_to(&out, local(caller_port)).unwrap();
        let (_, payload) = recv(&b, Duration::from_secs(1)).expect("relayed to the agent");
        assert_eq!(payload, vec![0x22; FRAME_LEN], "decrypted on the way");
    }
    let latched: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|e| match e {
            MediaEvent::Latched { id, from } if id == caller => Some(from),
            _ => None,
        })
        .collect();
    assert_eq!(
        latched,
        vec![a.local_addr().unwrap()],
        "latched to the real caller only"
    );

    // The agent's plain RTP reaches the caller encrypted with our key.
    b.send_to(
        &packet(0, 7, 0, 0xa6e, true, &[0x33; FRAME_LEN]),
        local(agent_port),
    )
    .unwrap();
    let (n, _) = a.recv_from(&mut buf).expect("relayed to the caller");
    plain.clear();
    caller_rx
        .unprotect(&buf[..n], &mut plain)
        .expect("encrypted with our key");
    assert_eq!(&plain[12..], &[0x33; FRAME_LEN][..]);
}
