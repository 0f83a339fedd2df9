//! Engine tests over real loopback sockets: music streams, latching, prompts, stop/close.

use super::*;
use crate::media::player::FRAME_LEN;
use crate::media::player::Prompt;
use crate::media::rtp::RtpHeader;
use bytes::Bytes;
use std::collections::HashMap;
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

/// `n` frames where every byte of frame `i` is `base + i`.
fn frames(n: u8, base: u8) -> Bytes {
    Bytes::from(
        (0..n)
            .flat_map(|i| [base + i; FRAME_LEN])
            .collect::<Vec<_>>(),
    )
}

fn receiver() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    s
}

/// Receives RTP on `sock` for `dur`: (header, first payload byte, payload len).
fn collect(sock: &UdpSocket, dur: Duration) -> Vec<(RtpHeader, u8, usize)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + dur;
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let (h, payload) = RtpHeader::parse(&buf[..n]).unwrap();
            assert!(payload.iter().all(|&b| b == payload[0]), "one whole frame");
            out.push((h, payload[0], payload.len()));
        }
    }
    out
}

fn next_event(events: &mut MediaEvents, within: Duration) -> Option<MediaEvent> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(ev) = events.try_recv() {
            return Some(ev);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn rtp(pt: u8, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    let h = RtpHeader::new(pt, seq, 0, 42, false);
    h.write_fixed((&mut p[..12]).try_into().unwrap());
    p
}

#[test]
fn fifty_streams_send_continuous_music_at_50_per_second() {
    let (engine, _events) = engine(31000);
    let rx = receiver();
    let dest = rx.local_addr().unwrap();
    let music = frames(7, 1);
    let mut ports = Vec::new();
    for _ in 0..50 {
        let (id, port) = engine.open().unwrap();
        assert_eq!(port % 2, 0, "RTP on even ports");
        ports.push(port);
        engine.play(id, dest, 0, music.clone()).unwrap();
    }
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 50, "distinct ports");
    let start = Instant::now();
    let got = collect(&rx, Duration::from_millis(1000));
    let elapsed = start.elapsed().as_secs_f64();
    let mut by_ssrc: HashMap<u32, Vec<(RtpHeader, u8, usize)>> = HashMap::new();
    for p in got {
        by_ssrc.entry(p.0.ssrc).or_default().push(p);
    }
    assert_eq!(by_ssrc.len(), 50, "one SSRC per stream");
    for packets in by_ssrc.values() {
        let expected = elapsed * 50.0;
        let n = packets.len() as f64;
        assert!(
            n >= expected * 0.8 && n <= expected * 1.1 + 2.0,
            "{n} packets in {elapsed}s"
        );
        for (i, (h, byte, len)) in packets.iter().enumerate() {
            assert_eq!(*len, FRAME_LEN);
            assert_eq!(h.payload_type, 0);
            assert_eq!(h.marker, i == 0, "marker on the first packet only");
            assert_eq!(
                *byte,
                1 + (i % 7) as u8,
                "music frames in order from frame 0"
            );
            if i > 0 {
                let prev = packets[i - 1].0;
                assert_eq!(h.sequence, prev.sequence.wrapping_add(1));
                assert_eq!(h.timestamp, prev.timestamp.wrapping_add(160));
            }
        }
    }
    // A slot's sends are counted once the slot is done, just after its last send.
    let received = by_ssrc.values().map(Vec::len).sum::<usize>() as u64;
    assert!(wait_until(|| engine.stats().packets_sent >= received));
    let stats = engine.stats();
    assert_eq!((stats.streams, stats.playing), (50, 50));
    assert_eq!(stats.send_errors, 0);
    assert!(stats.lateness.samples > 0 && stats.lateness.p50_us < 20_000);
    engine.shutdown();
}

#[test]
fn latches_to_rtp_source_and_counts_malformed() {
    let (engine, mut events) = engine(33000);
    let a = receiver();
    let b = receiver();
    let (id, port) = engine.open().unwrap();
    engine.set_telephone_event(id, Some(101));
    engine
        .play(id, a.local_addr().unwrap(), 8, frames(3, 10))
        .unwrap();
    let before = collect(&a, Duration::from_millis(100));
    assert!(!before.is_empty(), "sending to the SDP address first");
    let stream_addr = SocketAddr::from(([127, 0, 0, 1], port));

    // Garbage and a STUN-looking datagram: counted, no latch, no crash.
    b.send_to(b"hello", stream_addr).unwrap();
    b.send_to(&[0u8; 20], stream_addr).unwrap();
    // Sockets are drained every 200 ms on the stream's own slot.
    assert!(wait_until(|| engine.stats().malformed_received == 2));
    assert_eq!(events.try_recv().ok(), None);
    assert!(
        !collect(&a, Duration::from_millis(60)).is_empty(),
        "still to A"
    );

    b.send_to(&rtp(101, 1), stream_addr).unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(2)),
        Some(MediaEvent::Latched {
            id,
            from: b.local_addr().unwrap()
        })
    );
    std::thread::sleep(Duration::from_millis(50));
    let _ = collect(&a, Duration::from_millis(30)); // packets in flight before the latch
    let at_b = collect(&b, Duration::from_millis(200));
    assert!(at_b.len() >= 5, "now sending to B: {}", at_b.len());
    assert!(
        collect(&a, Duration::from_millis(100)).is_empty(),
        "A no longer"
    );
    for w in at_b.windows(2) {
        assert_eq!(w[1].0.sequence, w[0].0.sequence.wrapping_add(1));
    }
    assert_eq!(
        at_b[0].0.ssrc, before[0].0.ssrc,
        "same stream after latching"
    );

    // The telephone-event packet (key 0, its end packets never sent) is reported as a key
    // press once the receiver's timeout passes.
    assert_eq!(
        next_event(&mut events, Duration::from_secs(2)),
        Some(MediaEvent::Dtmf { id, digit: '0' })
    );
    // A later source does not re-latch: the latched stream's socket is connected to B, so
    // the kernel does not even hand it A's packet (media::shard::connection).
    a.send_to(&rtp(0, 2), stream_addr).unwrap();
    assert_eq!(next_event(&mut events, Duration::from_millis(450)), None);
    assert!(
        !collect(&b, Duration::from_millis(60)).is_empty(),
        "still to B"
    );
    let stats = engine.stats();
    assert_eq!(stats.packets_received, 1, "A's packet was not read");
    assert_eq!(stats.telephone_events_received, 1);
    assert_eq!(stats.malformed_received, 2);
    engine.shutdown();
}

#[test]
fn prompt_interrupts_music_and_reports_done() {
    let (engine, mut events) = engine(35000);
    let rx = receiver();
    let (id, _) = engine.open().unwrap();
    engine
        .play(id, rx.local_addr().unwrap(), 0, frames(50, 1))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut prompt = Prompt::from_frames(frames(2, 200)).unwrap();
    prompt.push(frames(1, 202)).unwrap();
    engine.prompt(id, prompt).unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(2)),
        Some(MediaEvent::PromptDone { id })
    );
    let got = collect(&rx, Duration::from_millis(100));
    let bytes: Vec<u8> = got.iter().map(|p| p.1).collect();
    let at = bytes.iter().position(|&b| b == 200).expect("prompt played");
    assert_eq!(&bytes[at..at + 3], &[200, 201, 202]);
    assert_eq!(
        bytes[at + 3],
        bytes[at - 1] + 1,
        "music resumes at the paused frame"
    );
    for w in got.windows(2) {
        assert_eq!(w[1].0.sequence, w[0].0.sequence.wrapping_add(1));
        assert_eq!(w[1].0.timestamp, w[0].0.timestamp.wrapping_add(160));
    }
    assert!(engine.prompt(id, Prompt::default()).is_err());
    engine.shutdown();
}

#[test]
fn stop_then_close_frees_the_port() {
    let (engine, _events) = engine(37000);
    let rx = receiver();
    let (id, port) = engine.open().unwrap();
    engine
        .play(id, rx.local_addr().unwrap(), 0, frames(2, 1))
        .unwrap();
    let first = collect(&rx, Duration::from_millis(100));
    assert!(!first.is_empty());
    engine.stop(id);
    std::thread::sleep(Duration::from_millis(50));
    let _ = collect(&rx, Duration::from_millis(30));
    assert!(
        collect(&rx, Duration::from_millis(150)).is_empty(),
        "stopped"
    );
    let stats = engine.stats();
    assert_eq!((stats.streams, stats.playing), (1, 0));
    // Busy port is skipped by the next open.
    let (other, other_port) = engine.open().unwrap();
    assert_ne!(other_port, port);

    // Playing again continues the same RTP stream.
    engine
        .play(id, rx.local_addr().unwrap(), 0, frames(2, 1))
        .unwrap();
    let again = collect(&rx, Duration::from_millis(100));
    let last = first.last().unwrap().0;
    assert_eq!(again[0].0.ssrc, last.ssrc);
    assert!(!again[0].0.marker);
    let gap = again[0].0.sequence.wrapping_sub(last.sequence);
    assert!((1..=10).contains(&gap), "sequence continues, gap {gap}");
    assert!(
        again[0].0.timestamp.wrapping_sub(last.timestamp) >= 160 * 5,
        "time advanced"
    );

    engine.close(id);
    engine.close(other);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(engine.stats().streams, 0);
    UdpSocket::bind(("127.0.0.1", port)).expect("port freed by close");
    engine.shutdown();
    assert!(matches!(
        engine.play(id, rx.local_addr().unwrap(), 0, frames(1, 1)),
        Err(MediaError::ShutDown)
    ));
}

#[test]
fn rejects_bad_config() {
    let bad = |port_min, port_max, shards| {
        MediaEngine::start(EngineConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min,
            port_max,
            shards,
            pin: false,
            ledger: None,
        })
        .is_err()
    };
    assert!(bad(30000, 30010, 0));
    assert!(bad(30001, 30001, 1));
    assert!(bad(30010, 30000, 1));
    assert!(bad(0, 1, 1));
}
