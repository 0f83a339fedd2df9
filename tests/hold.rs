//! End to end over loopback: SIPp trunk callers are answered, queued, and hear hold music
//! over RTP (docs/behaviour.md §2, §4). The RTP is received by the test itself and checked per SSRC.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::held::{Recorder, wait_until};
use common::{Holdfast, RawUa, Setup, body, collect_rtp, pcmu_offer, rtp_sink, sipp};

/// 50 concurrent callers hold for 10 s: every INVITE gets 200, every caller receives music
/// at 50 packets/s with continuous sequence numbers and timestamps, and every BYE gets 200.
#[test]
fn fifty_callers_hear_hold_music() {
    fifty_callers("hold50", Setup::new(30_000));
}

/// The same on one media shard.
#[test]
fn fifty_callers_hear_hold_music_on_one_shard() {
    let mut setup = Setup::new(33_000);
    setup.media_extra = "shards = 1\n".into();
    fifty_callers("hold50-1", setup);
}

/// The same on three shards pinned to cores (more shards than this machine's cores go round
/// them): each shard says where it was pinned.
#[test]
fn fifty_callers_hear_hold_music_on_three_pinned_shards() {
    let mut setup = Setup::new(34_000);
    setup.media_extra = "shards = 3\npin_shards = true\n".into();
    let holdfast = fifty_callers("hold50-3", setup);
    let log = holdfast.log();
    let pinned = log
        .lines()
        .filter(|l| l.contains("media shard pinned"))
        .count();
    assert_eq!(pinned, 3, "each of three shards pinned once:\n{log}");
}

fn fifty_callers(name: &str, setup: Setup) -> Holdfast {
    let holdfast = Holdfast::start(name, &setup);
    let (sink, rtp_port) = rtp_sink();
    let rtp_port = rtp_port.to_string();
    let receiver = std::thread::spawn(move || collect_rtp(&sink, Duration::from_secs(14)));
    let out = sipp(
        "caller.xml",
        holdfast.sip,
        &[
            "-s", "100", "-m", "50", "-l", "50", "-r", "50", "-d", "10000", "-key", "rtp_port",
            &rtp_port,
        ],
    );
    let streams = receiver.join().expect("RTP receiver");
    assert!(
        out.status.success(),
        "SIPp reported failed calls:\n{}\n{}\nholdfast log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        holdfast.log()
    );
    assert_eq!(streams.len(), 50, "one RTP stream (SSRC) per caller");
    for (ssrc, s) in &streams {
        // 10 s at 50 packets/s, give or take the call set-up and tear-down moments.
        assert!(
            (460..=540).contains(&s.packets),
            "SSRC {ssrc:08x}: {} packets in a 10 s stay",
            s.packets
        );
        assert_eq!(
            s.seq_breaks, 0,
            "SSRC {ssrc:08x}: sequence must be continuous"
        );
        assert_eq!(
            s.ts_breaks, 0,
            "SSRC {ssrc:08x}: timestamp must step by 160"
        );
        assert!(
            s.first_marked,
            "SSRC {ssrc:08x}: marker on the first packet"
        );
        assert_eq!(
            s.markers, 1,
            "SSRC {ssrc:08x}: marker only on the first packet"
        );
        assert_eq!(s.payload_type, 0, "PCMU was offered first");
        assert_eq!(s.odd_sizes, 0, "20 ms G.711 frames are 160 bytes");
        assert!(
            s.loud_bytes > u64::from(s.packets) * 40,
            "SSRC {ssrc:08x}: the music must not be silence ({} loud bytes)",
            s.loud_bytes
        );
    }
    holdfast
}

/// A PCMA-only offer is answered with PCMA and the music arrives A-law encoded.
#[test]
fn pcma_only_caller_gets_alaw() {
    let holdfast = Holdfast::start("pcma", &Setup::new(31_000));
    let (sink, rtp_port) = rtp_sink();
    let rtp_port = rtp_port.to_string();
    let receiver = std::thread::spawn(move || collect_rtp(&sink, Duration::from_secs(4)));
    let out = sipp(
        "caller_pcma.xml",
        holdfast.sip,
        &[
            "-s", "100", "-m", "2", "-l", "2", "-d", "2000", "-key", "rtp_port", &rtp_port,
        ],
    );
    let streams = receiver.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(streams.len(), 2);
    for s in streams.values() {
        assert_eq!(s.payload_type, 8, "PCMA answered");
        assert!(s.packets >= 80, "{} packets", s.packets);
        assert!(s.loud_bytes > u64::from(s.packets) * 40);
    }
}

/// A trunk that sends every header in compact form is understood.
#[test]
fn compact_header_caller_is_answered() {
    let holdfast = Holdfast::start("compact", &Setup::new(32_000));
    let (sink, rtp_port) = rtp_sink();
    let rtp_port = rtp_port.to_string();
    let receiver = std::thread::spawn(move || collect_rtp(&sink, Duration::from_secs(3)));
    let out = sipp(
        "caller_compact.xml",
        holdfast.sip,
        &[
            "-s", "100", "-m", "3", "-l", "3", "-d", "1500", "-key", "rtp_port", &rtp_port,
        ],
    );
    let streams = receiver.join().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    assert_eq!(streams.len(), 3);
}

/// A caller whose SDP names one port but whose RTP comes from another (behind a NAT), and
/// only after seconds of silence: by then holdfast's socket for the call is connected to
/// the SDP address (docs/behaviour.md §4), and its open turn still latches the real source,
/// which then hears the music, the same RTP stream; the SDP address hears no more.
#[test]
fn a_caller_talking_late_from_behind_a_nat_is_latched() {
    let holdfast = Holdfast::start("late-nat", &Setup::new(35_000));
    let sdp_side = Recorder::start();
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let call = ua.invite("100", "+15550100001", &pcmu_offer(sdp_side.port));
    assert_eq!(call.code, 200, "{}\n{}", call.response, holdfast.log());
    let answer_port: u16 = body(&call.response)
        .lines()
        .find_map(|l| l.strip_prefix("m=audio ")?.split(' ').next()?.parse().ok())
        .expect("m=audio in the answer");
    assert!(
        wait_until(Duration::from_secs(5), || sdp_side.packets().len() >= 50),
        "music to the SDP address first"
    );
    // Past the settling second: the call's socket is connected to the SDP address now.
    std::thread::sleep(Duration::from_secs(2));
    let nat = Recorder::talking(400.0);
    nat.talk_to(SocketAddr::from(([127, 0, 0, 1], answer_port)));
    assert!(
        wait_until(Duration::from_secs(8), || nat.packets().len() >= 25),
        "music at the caller's real address\n{}",
        holdfast.log()
    );
    let at_sdp = sdp_side.packets().len();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        sdp_side.packets().len() <= at_sdp + 1,
        "the SDP address hears no more"
    );
    assert_eq!(
        nat.packets()[0].ssrc,
        sdp_side.packets()[0].ssrc,
        "one RTP stream"
    );
}
