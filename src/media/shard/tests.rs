//! Shard tests driven by hand from the test thread: the wheel, skipping, polling turns.

use super::*;
use crate::media::player::FRAME_LEN;
use crate::media::rtp::RtpHeader;
use std::sync::mpsc;

struct Rig {
    shard: Shard,
    rx: UdpSocket,
    _events: tokio::sync::mpsc::Receiver<MediaEvent>,
}

/// A shard driven by hand from the test thread (no shard thread).
fn rig() -> Rig {
    let (_tx, commands) = mpsc::channel();
    let (events, _events) = tokio::sync::mpsc::channel(64);
    let waker = Arc::new(Waker::new().unwrap());
    let mut shard = Shard::new(0, commands, waker, events, Arc::default(), None, None).unwrap();
    // Leave room to wind the clock back in tests.
    shard.epoch -= Duration::from_secs(10);
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_nonblocking(true).unwrap();
    Rig { shard, rx, _events }
}

/// A rig whose slots take `fill` streams before the next is used.
fn rig_with_fill(fill: usize) -> Rig {
    let mut rig = rig();
    rig.shard.slot_fill = fill;
    rig
}

fn add_playing(rig: &mut Rig, serial: u64) -> StreamId {
    add_playing_with(rig, serial, UdpSocket::bind("127.0.0.1:0").unwrap())
}

/// A stream on `socket`, playing to the rig's receiver.
fn add_playing_with(rig: &mut Rig, serial: u64, socket: UdpSocket) -> StreamId {
    let id = StreamId::for_tests(serial);
    socket.set_nonblocking(true).unwrap();
    rig.shard.apply(Command::Open {
        id,
        socket,
        resume: None,
    });
    rig.shard.apply(Command::Play {
        id,
        remote: rig.rx.local_addr().unwrap(),
        payload_type: 0,
        music: Bytes::from(vec![7u8; FRAME_LEN]),
    });
    id
}

fn drain(rx: &UdpSocket) -> Vec<RtpHeader> {
    std::thread::sleep(Duration::from_millis(20));
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while let Ok((n, _)) = rx.recv_from(&mut buf) {
        out.push(RtpHeader::parse(&buf[..n]).unwrap().0);
    }
    out
}

#[test]
fn wheel_spreads_streams_and_keeps_positions_on_removal() {
    // A few streams share the first slot (one wake-up per period for all of them).
    let mut rig = rig();
    for i in 0..5 {
        add_playing(&mut rig, 100 + i);
    }
    assert_eq!(rig.shard.wheel[0].len(), 5);
    // Slots fill in order up to `slot_fill`, then the least loaded takes the next.
    let mut rig = rig_with_fill(2);
    let ids: Vec<StreamId> = (0..(2 * SLOTS as u64 + 3))
        .map(|i| add_playing(&mut rig, i))
        .collect();
    let lens: Vec<usize> = rig.shard.wheel.iter().map(Vec::len).collect();
    assert!(
        lens.iter().all(|&l| l == 2 || l == 3),
        "evenly spread: {lens:?}"
    );
    assert_eq!(lens.iter().sum::<usize>(), ids.len());
    for &id in ids.iter().step_by(3) {
        rig.shard.apply(Command::Stop { id });
    }
    for &id in ids.iter().skip(1).step_by(4) {
        rig.shard.apply(Command::Close { id });
    }
    let closed = ids.iter().skip(1).step_by(4).count();
    let (mut in_wheel, mut playing) = (0, 0);
    for (slot, members) in rig.shard.wheel.iter().enumerate() {
        for (pos, &idx) in members.iter().enumerate() {
            let s = rig.shard.streams[idx].as_ref().unwrap();
            assert_eq!(s.wheel_pos, (slot, pos), "back-pointer of {}", s.id);
            in_wheel += 1;
            playing += usize::from(s.mode == StreamMode::Play);
        }
    }
    assert_eq!(
        in_wheel,
        ids.len() - closed,
        "stopped streams stay (drained)"
    );
    let stopped_or_closed = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0 || i % 4 == 1)
        .count();
    assert_eq!(playing, ids.len() - stopped_or_closed);
    assert_eq!(rig.shard.playing, playing);
    assert_eq!(rig.shard.stats.playing.get(), playing as u64);
    assert_eq!(rig.shard.stats.streams.get(), (ids.len() - closed) as u64);
    // A freed table entry is reused and the stream lands in the first slot with room.
    add_playing(&mut rig, 1000);
    assert_eq!(rig.shard.streams.len(), ids.len());
}

#[test]
fn falling_far_behind_skips_instead_of_bursting() {
    let mut rig = rig();
    for i in 0..4 {
        add_playing(&mut rig, i);
    }
    // One period due at once: every stream sends (about) once, on its own slot.
    rig.shard.tick = rig.shard.tick_at(Instant::now()) - (SLOTS as u64 - 1);
    rig.shard.run_clock();
    let first = drain(&rig.rx);
    assert!((4..=8).contains(&first.len()), "{} packets", first.len());
    let sent = rig.shard.stats.packets_sent.get();

    // Pretend the shard stalled for 500 ms (25 periods) before now: counted from the
    // present, not from where the clock stopped, so the time `drain` slept (and any delay of
    // a loaded machine) is not counted as part of the stall.
    rig.shard.tick = rig.shard.tick_at(Instant::now()) - 25 * SLOTS as u64;
    rig.shard.run_clock();
    let after = drain(&rig.rx);
    assert!(after.len() <= 4, "no burst: {} packets", after.len());
    let skipped = rig.shard.stats.skipped_frames.get();
    assert!((4 * 24..=4 * 26).contains(&skipped), "skipped {skipped}");
    assert_eq!(
        rig.shard.stats.packets_sent.get(),
        sent + after.len() as u64
    );
    for h in &after {
        let prev = first.iter().rev().find(|p| p.ssrc == h.ssrc).unwrap();
        assert_eq!(h.sequence, prev.sequence.wrapping_add(1), "no packet lost");
        let dt = h.timestamp.wrapping_sub(prev.timestamp);
        assert!(dt >= 160 * 25, "timestamp follows real time: {dt}");
    }
}

#[test]
fn an_overloaded_clock_still_returns_to_its_commands() {
    let mut rig = rig();
    add_playing(&mut rig, 1);
    // 80 ms behind: under the skip limit, more than one period to catch up.
    let start = rig.shard.tick_at(Instant::now()) - 4 * SLOTS as u64;
    rig.shard.tick = start;
    rig.shard.run_clock();
    assert_eq!(rig.shard.tick, start + SLOTS as u64, "one period per call");
    assert_eq!(rig.shard.stats.skipped_frames.get(), 0);
    assert_eq!(drain(&rig.rx).len(), 1);
}

#[test]
fn every_stream_is_drained_once_per_poll_cycle() {
    let mut rig = rig();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut ports = Vec::new();
    for i in 0..20 {
        let id = add_playing(&mut rig, i);
        let idx = rig.shard.by_id[&id];
        ports.push(
            rig.shard.streams[idx]
                .as_ref()
                .unwrap()
                .socket
                .local_addr()
                .unwrap(),
        );
    }
    for port in &ports {
        peer.send_to(&[0u8; 3], port).unwrap();
    }
    // Service POLL_PERIODS whole periods by hand, without waiting for real time.
    poll_turn(&mut rig);
    assert_eq!(rig.shard.stats.malformed_received.get(), 20);
    assert_eq!(
        rig.shard.stats.packets_sent.get(),
        20 * POLL_PERIODS,
        "one frame per stream per period"
    );
}

#[test]
fn a_leg_recorded_again_ends_its_recording_before_the_new_one_starts() {
    use crate::media::recording::{Message, Recorder};
    let (recorder, messages) = Recorder::new();
    let mut rig = rig();
    rig.shard.recorder = Some(recorder);
    let (caller, agent) = (add_playing(&mut rig, 1), add_playing(&mut rig, 2));
    for name in ["a.wav", "b.wav"] {
        rig.shard.apply(Command::Record {
            caller,
            agent,
            path: name.into(),
        });
    }
    rig.shard.apply(Command::Close { id: agent });
    let seen: Vec<String> = messages
        .try_iter()
        .map(|m| match m {
            Message::Start { path, .. } => format!("start {}", path.display()),
            Message::Audio { .. } => "audio".to_owned(),
            Message::End { .. } => "end".to_owned(),
        })
        .collect();
    assert_eq!(seen, ["start a.wav", "end", "start b.wav", "end"]);
    // Both legs are free of it: closing the caller now ends nothing more.
    rig.shard.apply(Command::Close { id: caller });
    assert!(messages.try_iter().next().is_none());
    assert!(rig.shard.taps.is_empty());
}

/// A playing stream on a socket bound to an explicit port, as the engine binds them (see
/// `connection::disconnect`).
fn add_playing_on_port(rig: &mut Rig, serial: u64, ports: std::ops::Range<u16>) -> StreamId {
    let socket = ports
        .into_iter()
        .find_map(|port| UdpSocket::bind(("127.0.0.1", port)).ok())
        .unwrap();
    add_playing_with(rig, serial, socket)
}

/// Services one whole poll cycle (POLL_PERIODS periods) by hand, after letting what was
/// sent arrive: every stream takes one poll turn.
fn poll_turn(rig: &mut Rig) {
    std::thread::sleep(Duration::from_millis(10));
    let base = rig.shard.tick_at(Instant::now()) / (POLL_PERIODS * SLOTS as u64);
    let base = base * POLL_PERIODS * SLOTS as u64;
    for t in base..base + POLL_PERIODS * SLOTS as u64 {
        rig.shard.service_slot(t, Instant::now());
    }
}

fn stream(rig: &Rig, id: StreamId) -> &Stream {
    rig.shard.streams[rig.shard.by_id[&id]].as_ref().unwrap()
}

#[test]
fn a_held_socket_is_connected_once_settled_and_still_latches_a_caller_from_elsewhere() {
    use super::connection::{OPEN_EVERY, SETTLE_TURNS};
    let mut rig = rig();
    let sdp = rig.rx.local_addr().unwrap();
    let id = add_playing_on_port(&mut rig, 1, 38_600..38_700);
    let port = stream(&rig, id).socket.local_addr().unwrap();
    for _ in 1..SETTLE_TURNS {
        poll_turn(&mut rig);
        assert_eq!(stream(&rig, id).connected, None, "settling");
    }
    poll_turn(&mut rig);
    assert_eq!(stream(&rig, id).connected, Some(sdp));
    assert_eq!(stream(&rig, id).socket.peer_addr().unwrap(), sdp);
    assert_eq!(stream(&rig, id).socket.local_addr().unwrap(), port);

    // RTP from behind a NAT (another address than the SDP one) while connected: the kernel
    // drops it; after the next open turn the caller's RTP is read and latched.
    let nat = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = |seq: u16| {
        let mut p = [0u8; 172];
        RtpHeader::new(0, seq, 0, 9, false).write_fixed((&mut p[..12]).try_into().unwrap());
        p
    };
    let mut turn = SETTLE_TURNS;
    while !turn.is_multiple_of(OPEN_EVERY) {
        nat.send_to(&rtp(turn as u16), port).unwrap();
        poll_turn(&mut rig);
        turn += 1;
        assert!(!stream(&rig, id).peer.latched, "turn {turn}: not read");
    }
    assert_eq!(stream(&rig, id).connected, None, "open turn {turn}");
    assert_eq!(rig.shard.stats.packets_received.get(), 0);
    nat.send_to(&rtp(99), port).unwrap();
    poll_turn(&mut rig);
    let s = stream(&rig, id);
    assert!(s.peer.latched);
    assert_eq!(s.peer.remote, nat.local_addr().ok());
    assert_eq!(
        s.connected,
        nat.local_addr().ok(),
        "connected to the latched source"
    );
    assert_eq!(rig.shard.stats.packets_received.get(), 1);
    // Music now goes to the caller's real address, over the connected socket.
    let _ = drain(&rig.rx);
    poll_turn(&mut rig);
    nat.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    assert!(
        nat.recv_from(&mut buf).is_ok(),
        "music at the latched address"
    );
    assert!(drain(&rig.rx).is_empty(), "none to the SDP address");
}

#[test]
fn a_bridged_leg_that_has_not_latched_hears_from_anywhere() {
    let mut rig = rig();
    let caller = add_playing_on_port(&mut rig, 1, 38_700..38_800);
    let agent = add_playing_on_port(&mut rig, 2, 38_800..38_900);
    for _ in 0..super::connection::SETTLE_TURNS {
        poll_turn(&mut rig);
    }
    assert!(stream(&rig, caller).connected.is_some());
    rig.shard.apply(Command::Bridge {
        a: caller,
        b: agent,
    });
    assert_eq!(stream(&rig, caller).connected, None);
    assert_eq!(stream(&rig, agent).connected, None);
    assert!(stream(&rig, caller).socket.peer_addr().is_err());
    // The caller's first RTP, from an address SDP never named, is read, latched and relayed;
    // from then on the leg's socket is connected to it.
    let nat = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = stream(&rig, caller).socket.local_addr().unwrap();
    let mut packet = [0u8; 172];
    RtpHeader::new(0, 1, 0, 9, false).write_fixed((&mut packet[..12]).try_into().unwrap());
    nat.send_to(&packet, port).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let idx = rig.shard.by_id[&caller];
    rig.shard.relay_ready(idx as Token, Instant::now());
    let s = stream(&rig, caller);
    assert!(s.peer.latched);
    assert_eq!(s.connected, nat.local_addr().ok());
    assert_eq!(s.socket.peer_addr().ok(), nat.local_addr().ok());
    assert_eq!(rig.shard.stats.packets_relayed.get(), 1);
}

#[test]
fn a_socket_opened_connected_or_given_a_new_sdp_address_settles_again() {
    let mut rig = rig();
    // A socket handed over still connected to the last process's peer.
    let old_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let socket = (38_900..39_000)
        .find_map(|port| UdpSocket::bind(("127.0.0.1", port)).ok())
        .unwrap();
    socket.connect(old_peer.local_addr().unwrap()).unwrap();
    let id = add_playing_with(&mut rig, 1, socket);
    assert_eq!(stream(&rig, id).connected, old_peer.local_addr().ok());
    poll_turn(&mut rig);
    assert_eq!(stream(&rig, id).connected, None, "settling, open to anyone");
    assert!(stream(&rig, id).socket.peer_addr().is_err());
    for _ in 1..super::connection::SETTLE_TURNS {
        poll_turn(&mut rig);
    }
    let sdp = rig.rx.local_addr().unwrap();
    assert_eq!(stream(&rig, id).connected, Some(sdp));
    // A re-INVITE names another address: the stream settles again before connecting.
    let moved = UdpSocket::bind("127.0.0.1:0").unwrap();
    rig.shard.apply(Command::Connect {
        id,
        remote: moved.local_addr().unwrap(),
        payload_type: 0,
    });
    poll_turn(&mut rig);
    assert_eq!(stream(&rig, id).connected, None);
    for _ in 1..super::connection::SETTLE_TURNS {
        poll_turn(&mut rig);
    }
    assert_eq!(stream(&rig, id).connected, moved.local_addr().ok());
}
