//! The controller in-process: real SIP bytes in, real SIP bytes out, a fake clock and a
//! recording media plane (ARCHITECTURE.md "Testing").

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::config;
use crate::media::engine::StreamId;

mod agents;
mod callbacks;
mod cluster;
mod codes;
mod hold;
mod hours;
mod logins;
mod monitor;
mod no_agents;
mod overflow;
mod restart;
mod resume;
mod ring_all;
mod scheduled;
mod screen;
mod service;
mod survive;
mod waits;

/// What the controller asked of the media plane, recorded from its outbox.
#[derive(Default)]
struct FakeMedia {
    open: Vec<StreamId>,
    /// Streams opened on their old port for restored calls, and the port.
    reopened: Vec<(StreamId, u16)>,
    played: Vec<(StreamId, SocketAddr, u8, usize)>,
    closed: Vec<StreamId>,
    connected: Vec<(StreamId, SocketAddr, u8)>,
    bridged: Vec<(StreamId, StreamId)>,
    prompts: Vec<(StreamId, usize)>,
    /// Prompts that cut in at once (`prompt_now`).
    prompts_now: Vec<(StreamId, usize)>,
    stopped: Vec<StreamId>,
    telephone_events: Vec<(StreamId, Option<u8>)>,
    /// Streams made SRTP.
    secured: Vec<StreamId>,
    /// Calls monitored: (supervisor leg, caller leg, agent leg, mode).
    monitored: Vec<(StreamId, StreamId, StreamId, crate::media::mix::MonitorMode)>,
    /// Calls recorded: (caller leg, agent leg, file).
    recorded: Vec<(StreamId, StreamId, std::path::PathBuf)>,
}

impl FakeMedia {
    fn record(&mut self, command: MediaCommand) {
        let bytes = |frames: &crate::media::player::Prompt| {
            frames.frames() * crate::media::player::FRAME_LEN
        };
        match command {
            MediaCommand::Open {
                id,
                port,
                resume: true,
            } => self.reopened.push((id, port)),
            MediaCommand::Open { id, .. } => self.open.push(id),
            MediaCommand::Play {
                id,
                remote,
                pt,
                music,
            } => self.played.push((id, remote, pt, music.len())),
            MediaCommand::Connect { id, remote, pt } => self.connected.push((id, remote, pt)),
            MediaCommand::Bridge { a, b } => self.bridged.push((a, b)),
            MediaCommand::Prompt {
                id,
                frames,
                at_once: false,
            } => self.prompts.push((id, bytes(&frames))),
            MediaCommand::Prompt { id, frames, .. } => self.prompts_now.push((id, bytes(&frames))),
            MediaCommand::TelephoneEvent { id, pt } => self.telephone_events.push((id, pt)),
            MediaCommand::Stop { id } => self.stopped.push(id),
            MediaCommand::Close { id } => self.closed.push(id),
            MediaCommand::Secure { id, .. } => self.secured.push(id),
            MediaCommand::Record {
                caller,
                agent,
                path,
            } => self.recorded.push((caller, agent, path)),
            MediaCommand::Monitor {
                supervisor,
                caller,
                agent,
                mode,
            } => self.monitored.push((supervisor, caller, agent, mode)),
            MediaCommand::Reserve { .. } => {}
        }
    }
}

const CONFIG: &str = r#"
[sip]
listen = "127.0.0.1:5060"
[[trunk]]
allow = ["127.0.0.0/8"]
[[queue]]
name = "support"
max_len = 3
[[route]]
number = "*"
queue = "support"
[[vip]]
caller = "+15550009999"
"#;

const TRUNK: &str = "127.0.0.1:5080";

struct Harness {
    b2bua: B2bua,
    media: FakeMedia,
    now: Instant,
    sent: Vec<(SocketAddr, String)>,
    /// Store requests a test has answered (or looked at), in order.
    stored: Vec<StoreRequest>,
}

impl B2bua {
    /// Every record the controller wrote so far, drained.
    fn records_for_tests(&mut self) -> Vec<Record> {
        std::iter::from_fn(|| self.poll_record())
            .map(|(_, r)| r)
            .collect()
    }
}

impl Harness {
    fn new() -> Self {
        Self::with_config(CONFIG)
    }

    fn with_config(text: &str) -> Self {
        Self::with_seed(text, 1)
    }

    /// With another seed: a restarted process makes other tags, branches and Call-IDs.
    fn with_seed(text: &str, seed: u64) -> Self {
        let config = config::from_str(text, "test.toml").expect("test config is valid");
        let now = Instant::now();
        let music = HoldMusic {
            pcmu: Bytes::from(vec![0xFF; 1600]),
            pcma: Bytes::from(vec![0xD5; 1600]),
        };
        let mut harness = Self {
            b2bua: B2bua::new(
                config,
                music,
                crate::media::prompts::Prompts::embedded().expect("the built-in clip pack loads"),
                now,
                seed,
            ),
            media: FakeMedia::default(),
            now,
            sent: Vec::new(),
            stored: Vec::new(),
        };
        // Bind the first RTP ports, as the driver does at start-up.
        harness.drain();
        harness
    }

    fn deliver(&mut self, from: &str, text: &str) {
        self.b2bua
            .handle_datagram(self.now, from.parse().unwrap(), text.as_bytes());
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(command) = self.b2bua.poll_media() {
            match command {
                // Every port binds in the harness.
                MediaCommand::Reserve { port } => self.b2bua.handle_media_event(
                    self.now,
                    crate::media::engine::MediaEvent::Reserved { port, bound: true },
                ),
                command => self.media.record(command),
            }
        }
        while let Some(t) = self.b2bua.poll_transmit() {
            self.sent.push((
                t.destination,
                String::from_utf8_lossy(&t.payload).to_string(),
            ));
        }
    }

    /// Jump the clock to each deadline up to `until`.
    fn run_until(&mut self, until: Instant) {
        while let Some(deadline) = self.b2bua.poll_timeout() {
            if deadline > until {
                break;
            }
            self.now = self.now.max(deadline);
            self.b2bua.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    fn take(&mut self) -> Vec<(SocketAddr, String)> {
        std::mem::take(&mut self.sent)
    }

    fn position(&self, n: u64) -> Option<usize> {
        self.b2bua.queues().position(crate::queue::EntryId(n))
    }
}

fn invite(call: &str, from_user: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 7000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
               a=rtpmap:101 telephone-event/8000\r\n";
    format!(
        "INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{call}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{from_user}@127.0.0.1>;tag=f-{call}\r\n\
         To: <sip:100@127.0.0.1:5060>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:c@{TRUNK}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn status(text: &str) -> Option<u16> {
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

fn to_tag(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with("To:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .unwrap()
        .trim()
        .to_string()
}

fn in_dialog(method: &str, call: &str, tag: &str, cseq: u32, branch: &str) -> String {
    format!(
        "{method} sip:holdfast@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {TRUNK};branch=z9hG4bK-{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+15551230000@127.0.0.1>;tag=f-{call}\r\n\
         To: <sip:100@127.0.0.1:5060>;tag={tag}\r\nCall-ID: {call}\r\nCSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn invite_is_answered_queued_and_played_music() {
    let mut h = Harness::new();
    h.deliver(TRUNK, &invite("c1", "+15551230000"));
    let sent = h.take();
    let codes: Vec<u16> = sent.iter().filter_map(|(_, t)| status(t)).collect();
    assert_eq!(codes, vec![100, 200], "100 Trying at once, then the answer");
    assert!(
        sent.iter().all(|(d, _)| d.to_string() == TRUNK),
        "replies go to the source"
    );
    let ok = &sent[1].1;
    assert!(ok.contains("Content-Type: application/sdp"), "{ok}");
    assert!(ok.contains("m=audio 20000 RTP/AVP 0 101"), "{ok}");
    let media = &h.media;
    assert_eq!(media.played.len(), 1);
    let (_, remote, pt, len) = media.played[0];
    assert_eq!(remote, "127.0.0.1:7000".parse().unwrap());
    assert_eq!((pt, len), (0, 1600), "PCMU music");
    assert_eq!(h.position(1), Some(1));
    assert_eq!(h.b2bua.stats().calls_answered, 1);
}

#[test]
fn vip_caller_goes_ahead_and_full_queue_is_busy() {
    let mut h = Harness::new();
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    h.deliver(TRUNK, &invite("c2", "+15551230002"));
    h.deliver(TRUNK, &invite("c3", "+15550009999")); // [[vip]]
    assert_eq!(h.position(3), Some(1), "VIP first");
    assert_eq!(h.position(1), Some(2));
    assert_eq!(h.position(2), Some(3));
    h.take();
    h.deliver(TRUNK, &invite("c4", "+15551230004"));
    let codes: Vec<u16> = h.take().iter().filter_map(|(_, t)| status(t)).collect();
    assert_eq!(codes, vec![100, 486], "max_len = 3");
    assert_eq!(h.b2bua.stats().rejected.get(&486), Some(&1));
}

#[test]
fn bye_leaves_the_queue_and_frees_media() {
    let mut h = Harness::new();
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    h.deliver(TRUNK, &invite("c2", "+15551230002"));
    let tag = to_tag(&h.take()[1].1);
    h.deliver(TRUNK, &in_dialog("ACK", "c1", &tag, 1, "ack1"));
    h.deliver(TRUNK, &in_dialog("BYE", "c1", &tag, 2, "bye1"));
    let sent = h.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(status(&sent[0].1), Some(200));
    assert_eq!(h.media.closed.len(), 1);
    assert_eq!(h.position(1), None);
    assert_eq!(h.position(2), Some(1), "the next caller moves up");
    assert_eq!(h.b2bua.stats().calls_abandoned, 1);
    // A second BYE for the same dialog finds nothing (§12.2.2) — but as a retransmission
    // with the same branch it is absorbed and the 200 is repeated instead.
    h.deliver(TRUNK, &in_dialog("BYE", "c1", &tag, 2, "bye1"));
    assert_eq!(status(&h.take()[0].1), Some(200));
    h.deliver(TRUNK, &in_dialog("BYE", "c1", &tag, 3, "bye2"));
    assert_eq!(status(&h.take()[0].1), Some(481));
}

#[test]
fn missing_ack_gives_up_at_64_t1_and_hangs_up() {
    let mut h = Harness::new();
    let start = h.now;
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    h.take();
    h.run_until(start + Duration::from_secs(40));
    let sent = h.take();
    let oks = sent.iter().filter(|(_, t)| status(t) == Some(200)).count();
    assert!(oks >= 5, "2xx retransmitted until Timer L: {oks}");
    let bye = sent
        .iter()
        .find(|(_, t)| t.starts_with("BYE "))
        .expect("BYE after the ACK timeout");
    assert_eq!(bye.0.to_string(), TRUNK);
    assert!(
        bye.1.starts_with("BYE sip:c@127.0.0.1:5080 SIP/2.0"),
        "{}",
        bye.1
    );
    assert_eq!(h.position(1), None);
    assert_eq!(h.media.closed.len(), 1);
}

#[test]
fn shutdown_hangs_up_everyone_and_refuses_new_calls() {
    let mut h = Harness::new();
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    h.deliver(TRUNK, &invite("c2", "+15551230002"));
    h.take();
    h.b2bua.shutdown(h.now);
    h.drain();
    let byes = h
        .take()
        .iter()
        .filter(|(_, t)| t.starts_with("BYE "))
        .count();
    assert_eq!(byes, 2);
    assert_eq!(h.b2bua.calls(), 0);
    h.deliver(TRUNK, &invite("c3", "+15551230003"));
    let codes: Vec<u16> = h.take().iter().filter_map(|(_, t)| status(t)).collect();
    assert_eq!(
        codes,
        vec![503],
        "refused statelessly: no 100 Trying, no state"
    );
}

#[test]
fn garbage_is_answered_400_or_dropped_never_panics() {
    let mut h = Harness::new();
    h.deliver(TRUNK, "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-x\r\n\
        From: <sip:a@h>;tag=1\r\nTo: <sip:100@h>\r\nCall-ID: g1\r\nCSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\n");
    let sent = h.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(status(&sent[0].1), Some(400), "{}", sent[0].1);
    // Without From, To and Call-ID no valid response can be made: dropped.
    h.deliver(TRUNK, "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-x\r\nContent-Length: 5\r\n\r\n");
    assert!(h.take().is_empty());
    h.deliver(TRUNK, "\u{0}\u{1}garbage");
    assert!(h.take().is_empty());
    assert_eq!(h.b2bua.stats().parse_errors, 3);
    assert_eq!(h.b2bua.stats().dropped, 2);
}

#[test]
fn held_callers_hear_their_position_on_entry_and_every_interval() {
    let mut h = Harness::new();
    let start = h.now;
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    h.deliver(TRUNK, &invite("c2", "+15551230002"));
    h.run_until(start);
    let prompts = h.media.prompts.clone();
    assert_eq!(prompts.len(), 2, "one entry announcement per caller");
    assert!(prompts.iter().all(|(_, len)| *len > 0 && len % 160 == 0));
    // Position 1 ("you are next") and position 2 (with an estimate) are different phrases.
    assert_ne!(prompts[0].1, prompts[1].1);
    h.run_until(start + Duration::from_secs(29));
    assert_eq!(h.media.prompts.len(), 2, "nothing before announce_every");
    h.run_until(start + Duration::from_secs(31));
    assert_eq!(
        h.media.prompts.len(),
        4,
        "again after announce_every (30 s)"
    );
}
