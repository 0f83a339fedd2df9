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

/// A caller dialling `user` from `number`, answered and held: its SIP user agent, its call
/// and the socket its RTP arrives on.
fn held_call(holdfast: &Holdfast, user: &str, number: &str) -> (RawUa, common::RawCall, UdpSocket) {
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let port = rtp.local_addr().unwrap().port();
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let call = ua.invite(user, number, &pcmu_offer(port));
    assert_eq!(call.code, 200, "{}", call.response);
    (ua, call, rtp)
}

/// "You are next in the queue." (position 1, less than a minute) as PCMU bytes.
fn you_are_next() -> bytes::Bytes {
    Prompts::embedded()
        .unwrap()
        .render(
            &Announcement::Position {
                position: 1,
                wait: SpokenWait::LessThanAMinute,
            },
            Law::Mu,
        )
        .to_bytes()
}

/// `seconds` of what the caller hears on `rtp`, as one byte stream of RTP payloads.
fn capture(rtp: &UdpSocket, seconds: u64) -> Vec<u8> {
    let mut heard = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 2048];
    while start.elapsed() < Duration::from_secs(seconds) {
        if let Ok((len, _)) = rtp.recv_from(&mut buf)
            && len > 12
        {
            heard.extend_from_slice(&buf[12..len]);
        }
    }
    heard
}

#[test]
fn entry_announcement_then_music_then_the_next_announcement() {
    let mut setup = Setup::new(35_500);
    // No callback offer (tests/callbacks.rs covers it): the announcement alone, then music.
    setup.extra = "[[queue]]\nname = \"support\"\nannounce_every = 6\ncallback_threshold = 0\n\n\
                   [[route]]\nnumber = \"*\"\nqueue = \"support\"\npriority = \"normal\"\n"
        .into();
    let holdfast = Holdfast::start("announce", &setup);
    let (ua, call, rtp) = held_call(&holdfast, "100", "+15551230001");

    // 9 s of what the caller hears, as one byte stream of PCMU payloads.
    let heard = capture(&rtp, 9);
    assert_eq!(ua.request(&call, "BYE", 2, "").unwrap().0, 200);

    // The only caller is at position 1: "You are next in the queue."
    let expected = you_are_next();
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

/// `[[route]] language = "es"`: a caller on that route hears the Spanish pack's clips,
/// composed by Spanish rules, byte for byte; a caller on another route of the same queue
/// hears English.
#[test]
fn a_caller_routed_to_spanish_hears_the_spanish_clips() {
    let mut setup = Setup::new(36_200);
    setup.extra = "[[queue]]\nname = \"support\"\ncallback_threshold = 0\n\n\
                   [[route]]\nnumber = \"300\"\nqueue = \"support\"\nlanguage = \"es\"\n\n\
                   [[route]]\nnumber = \"*\"\nqueue = \"support\"\n"
        .into();
    let holdfast = Holdfast::start("announce-es", &setup);
    let listen = |user: &str, number: &str| held_call(&holdfast, user, number);
    // First a caller on the English route, then one on 300 (Spanish) at position 2.
    let (en_ua, en_call, en_rtp) = listen("100", "+15551230001");
    let english = capture(&en_rtp, 4);
    let (es_ua, es_call, es_rtp) = listen("300", "+15551230002");
    let spanish = capture(&es_rtp, 9);
    for (ua, call) in [(&en_ua, &en_call), (&es_ua, &es_call)] {
        assert_eq!(ua.request(call, "BYE", 2, "").unwrap().0, 200);
    }
    let packs = |language| holdfast::media::prompts::Prompts::embedded_in(language).unwrap();
    let es = packs(holdfast::media::prompts::Language::Es);
    let en = packs(holdfast::media::prompts::Language::En);
    let next = Announcement::Position {
        position: 1,
        wait: SpokenWait::LessThanAMinute,
    };
    assert!(find(&english, &en.render(&next, Law::Mu).to_bytes(), 0).is_some());
    // "Usted es el número dos en la cola. El tiempo de espera estimado es de ..." — the
    // sentence up to the wait, whatever the estimate: the position sentence's frames.
    let numero = es.render(
        &Announcement::Position {
            position: 2,
            wait: SpokenWait::MoreThanTen,
        },
        Law::Mu,
    );
    let clip = |name: &str| {
        let pcm = es.clip(name).unwrap();
        holdfast::media::audio::frames(pcm, Law::Mu)
    };
    for name in [
        "usted-es-el-numero",
        "num-2",
        "en-la-cola",
        "el-tiempo-de-espera-estimado-es",
    ] {
        assert!(
            find(&spanish, &clip(name), 0).is_some(),
            "the Spanish caller heard {name}"
        );
        assert!(
            find(&english, &clip(name), 0).is_none(),
            "not the English one"
        );
    }
    assert!(numero.duration() > Duration::from_secs(3));
}

/// Announcement options (docs/behaviour.md §4): with `announce_to_first = false` the caller
/// alone in the line hears no "you are next", and with `periodic_messages` it hears the
/// queue's own message every `periodic_every` seconds, byte for byte.
#[test]
fn the_head_of_the_line_hears_the_periodic_message_and_no_position() {
    let dir = common::scratch_dir("announce-messages-files");
    let message = dir.join("web.wav");
    common::phones::write_tone_wav(&message, 700, 1);
    let mut setup = Setup::new(36_400);
    setup.extra = format!(
        "[[queue]]\nname = \"support\"\nannounce_every = 2\ncallback_threshold = 0\n\
         announce_to_first = false\nperiodic_messages = [\"{}\"]\nperiodic_every = 3\n\n\
         [[route]]\nnumber = \"*\"\nqueue = \"support\"\n",
        message.display()
    );
    let holdfast = Holdfast::start("announce-messages", &setup);
    let (ua, call, rtp) = held_call(&holdfast, "100", "+15551230001");
    let heard = capture(&rtp, 7);
    assert_eq!(ua.request(&call, "BYE", 2, "").unwrap().0, 200);
    let next = you_are_next();
    assert!(find(&heard, &next, 0).is_none(), "no \"you are next\"");
    let frames = holdfast::media::prompts::load_message(&message).unwrap()[0].clone();
    let first = find(&heard, &frames, 0).expect("the periodic message, byte for byte");
    let at_s = first as f64 / 8000.0;
    assert!((2.8..3.4).contains(&at_s), "first message at {at_s:.2} s");
    assert!(
        find(&heard, &frames, first + frames.len()).is_some(),
        "and again 3 s later"
    );
}
