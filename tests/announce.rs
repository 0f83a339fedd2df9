//! End to end: a held caller's RTP is captured and decoded; the entry announcement is the
//! rendered clip audio, music follows, and the next announcement comes after
//! `announce_every` (docs/behaviour.md §4).

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Holdfast, RawUa, Setup, pcmu_offer};
use holdfast::media::g711::Law;
use holdfast::media::prompts::{Announcement, Prompts, SpokenWait};

/// Where `needle` starts in `haystack`, from `from` on.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    (from..haystack.len().saturating_sub(needle.len()) + 1)
        .find(|&i| haystack[i..i + needle.len()] == *needle)
}

#[test]
fn entry_announcement_then_music_then_the_next_announcement() {
    let mut setup = Setup::new(35_500);
    // No callback offer (tests/callbacks.rs covers it): the announcement alone, then music.
    setup.extra = "[[queue]]\nname = \"support\"\nannounce_every = 6\ncallback_threshold = 0\n\n\
                   [[route]]\nnumber = \"*\"\nqueue = \"support\"\npriority = \"normal\"\n"
        .into();
    let holdfast = Holdfast::start("announce", &setup);
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let port = rtp.local_addr().unwrap().port();
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let call = ua.invite("100", "+15551230001", &pcmu_offer(port));
    assert_eq!(call.code, 200, "{}", call.response);

    // 9 s of what the caller hears, as one byte stream of PCMU payloads.
    let mut heard = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while start.elapsed() < Duration::from_secs(9) {
        if let Ok((len, _)) = rtp.recv_from(&mut buf)
            && len > 12
        {
            heard.extend_from_slice(&buf[12..len]);
        }
    }
    assert_eq!(ua.request(&call, "BYE", 2, "").unwrap().0, 200);

    // The only caller is at position 1: "You are next in the queue."
    let prompts = Prompts::embedded().unwrap();
    let expected = prompts
        .render(
            &Announcement::Position {
                position: 1,
                wait: SpokenWait::LessThanAMinute,
            },
            Law::Mu,
        )
        .to_bytes();
    let first = find(&heard, &expected, 0).expect("the entry announcement, byte for byte");
    assert!(first < 8 * 160, "it starts at once (byte {first})");
    // Music follows it: the hold music's first frames, as shared by every call.
    let config = holdfast::config::from_str(
        &std::fs::read_to_string(holdfast.dir.join("holdfast.toml")).unwrap(),
        "holdfast.toml",
    )
    .unwrap();
    let music = holdfast::server::load_music(&config).unwrap().pcmu;
    // The music may have started a frame or two before the prompt command reached the
    // media thread; it resumes exactly where it paused (the `first` bytes already played).
    assert_eq!(
        &heard[..first],
        &music[..first],
        "only music before the announcement"
    );
    let after = first + expected.len();
    assert_eq!(
        &heard[after..after + 1600],
        &music[first..first + 1600],
        "music resumes where it paused, right after the announcement"
    );
    // The next announcement comes announce_every (6 s) later, give or take a frame.
    let second = find(&heard, &expected, after).expect("a second announcement");
    let gap_s = (second - first) as f64 / 8000.0;
    assert!(
        (5.9..6.3).contains(&gap_s),
        "second announcement after {gap_s:.2} s"
    );
}
