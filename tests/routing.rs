//! Routing end to end (docs/behaviour.md §3, §5): a queue's `strategy` and the agents'
//! `tiers` decide which SIPp agent's phone rings.

mod common;

use std::time::Duration;

use common::dialback::{uas, wait_exit};
use common::{Holdfast, Setup, free_udp_port, register_sipp_agent, rtp_sink, sipp};

fn setup(rtp_base: u16, queue_lines: &str, agents: &[(&str, &str)]) -> Setup {
    let mut setup = Setup::new(rtp_base);
    let mut extra = format!(
        "[[queue]]\nname = \"support\"\nwrapup = 0\n{queue_lines}\n\
         [[route]]\nnumber = \"*\"\nqueue = \"support\"\n"
    );
    for (user, lines) in agents {
        extra.push_str(&format!(
            "\n[[agent]]\nuser = \"{user}\"\npassword = \"{user}-secret\"\n{lines}\n"
        ));
    }
    setup.extra = extra;
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup
}

/// Registers `user`'s SIPp phone (answering `calls` calls) and returns it.
fn phone(holdfast: &Holdfast, user: &str, calls: usize) -> std::process::Child {
    let port = free_udp_port();
    let child = uas("agent.xml", port, calls, &[]);
    register_sipp_agent(holdfast, user, &format!("{user}-secret"), port);
    child
}

/// One caller staying `stay_ms`; returns once it hung up.
fn call(holdfast: &Holdfast, stay_ms: u32) {
    let (_sink, port) = rtp_sink();
    let out = sipp(
        "caller.xml",
        holdfast.sip,
        &[
            "-m",
            "1",
            "-d",
            &stay_ms.to_string(),
            "-key",
            "rtp_port",
            &port.to_string(),
        ],
    );
    assert!(out.status.success(), "caller failed:\n{}", holdfast.log());
}

/// The agents callers were connected to, in order (from the `connect` event lines).
fn connected_agents(holdfast: &Holdfast) -> Vec<String> {
    holdfast
        .log()
        .lines()
        .filter(|l| l.contains("caller connected to agent"))
        .filter_map(|l| {
            // Drop the terminal colour codes around field names and values.
            let mut plain = String::new();
            let mut chars = l.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    chars.by_ref().find(|&c| c == 'm');
                } else {
                    plain.push(c);
                }
            }
            let rest = &plain[plain.find(" agent=")? + " agent=".len()..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            Some(rest[..end].to_owned())
        })
        .collect()
}

/// `linear`: bob registers first (so he has been idle the longest) yet alice, first in the
/// file, takes every call while she is free.
#[test]
fn linear_offers_the_first_agent_in_the_file() {
    let holdfast = Holdfast::start(
        "routing-linear",
        &setup(
            48_000,
            "strategy = \"linear\"",
            &[("alice", ""), ("bob", "")],
        ),
    );
    let mut bob = phone(&holdfast, "bob", 1);
    let mut alice = phone(&holdfast, "alice", 2);
    call(&holdfast, 500);
    call(&holdfast, 500);
    assert!(
        wait_exit(&mut alice, Duration::from_secs(10)),
        "alice took both calls"
    );
    assert_eq!(
        connected_agents(&holdfast),
        ["alice", "alice"],
        "{}",
        holdfast.log()
    );
    let _ = bob.kill();
    let _ = bob.wait();
}

/// Tiers: the tier-2 agent has been idle the longest but is offered a caller only while the
/// tier-1 agent is busy.
#[test]
fn a_tier_two_agent_takes_callers_only_while_tier_one_is_busy() {
    let holdfast = Holdfast::start(
        "routing-tiers",
        &setup(
            49_000,
            "",
            &[("backup", "tiers = { support = 2 }"), ("first", "")],
        ),
    );
    let mut backup = phone(&holdfast, "backup", 1);
    let mut first = phone(&holdfast, "first", 1);
    // The first caller talks 4 s to "first"; a second caller meanwhile goes to "backup".
    let sip = holdfast.sip;
    let long = std::thread::spawn(move || {
        let (_sink, port) = rtp_sink();
        sipp(
            "caller.xml",
            sip,
            &[
                "-m",
                "1",
                "-d",
                "4000",
                "-key",
                "rtp_port",
                &port.to_string(),
            ],
        )
    });
    std::thread::sleep(Duration::from_millis(1500));
    call(&holdfast, 500);
    assert!(long.join().unwrap().status.success(), "{}", holdfast.log());
    assert!(wait_exit(&mut first, Duration::from_secs(10)));
    assert!(wait_exit(&mut backup, Duration::from_secs(10)));
    assert_eq!(
        connected_agents(&holdfast),
        ["first", "backup"],
        "{}",
        holdfast.log()
    );
}

/// `max_wait` and `overflow`: a premium caller nobody takes moves to support after 2 s
/// and is connected to the support agent there.
#[test]
fn a_caller_overflows_to_another_queue_and_is_served_there() {
    let mut setup = Setup::new(53_000);
    setup.extra = "[[queue]]\nname = \"premium\"\nmax_wait = 2\noverflow = \"support\"\n\n\
                   [[queue]]\nname = \"support\"\nwrapup = 0\n\n\
                   [[route]]\nnumber = \"*\"\nqueue = \"premium\"\n\n\
                   [[agent]]\nuser = \"sam\"\npassword = \"sam-secret\"\nqueues = [\"support\"]\n"
        .into();
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    let holdfast = Holdfast::start("routing-overflow", &setup);
    let mut sam = phone(&holdfast, "sam", 1);
    call(&holdfast, 5000);
    assert!(
        wait_exit(&mut sam, Duration::from_secs(10)),
        "{}",
        holdfast.log()
    );
    let log = holdfast.log();
    assert!(log.contains("caller overflowed"), "{log}");
    assert_eq!(connected_agents(&holdfast), ["sam"], "{log}");
    let connect = log
        .lines()
        .find(|l| l.contains("caller connected to agent"))
        .unwrap();
    assert!(connect.contains("support"), "{connect}");
}

/// `when_no_agents = "reject"` over real sockets: `480` while nobody is logged in, a call
/// put through once alice is registered.
#[test]
fn a_queue_nobody_serves_refuses_callers_480() {
    let holdfast = Holdfast::start(
        "routing-no-agents",
        &setup(54_000, "when_no_agents = \"reject\"", &[("alice", "")]),
    );
    let ua = common::RawUa::new("127.0.0.1", holdfast.sip);
    let offer = common::pcmu_offer(9);
    assert_eq!(ua.invite("100", "+15550000001", &offer).code, 480);
    let mut alice = phone(&holdfast, "alice", 1);
    let answered = ua.invite("100", "+15550000002", &offer);
    assert_eq!(answered.code, 200, "{}", holdfast.log());
    assert!(
        holdfast.log().contains("caller connected to agent"),
        "{}",
        holdfast.log()
    );
    let _ = alice.kill();
    let _ = alice.wait();
}

/// Opening hours over real sockets: a queue closed right now answers, plays the closed
/// message (about 6 s with its goodbye) and hangs up: speech first, then no RTP at all,
/// where a caller left holding would hear music on and on.
#[test]
fn outside_its_hours_a_queue_plays_the_closed_message_and_hangs_up() {
    // A one-hour window two hours from now (UTC): closed now, whatever the time.
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        + 2)
        % 24;
    let hours = format!("hours = [\"Mon-Sun {hour:02}:00-{:02}:00\"]", hour + 1);
    let holdfast = Holdfast::start("routing-closed", &setup(55_000, &hours, &[]));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = socket.local_addr().unwrap().port();
    let start = std::time::Instant::now();
    let listener =
        std::thread::spawn(move || common::talking_caller(socket, Duration::from_secs(10), 1000.0));
    let ua = common::RawUa::new("127.0.0.1", holdfast.sip);
    let call = ua.invite("100", "+15550000001", &common::pcmu_offer(rtp));
    assert_eq!(call.code, 200, "{}", holdfast.log());
    let heard = listener.join().unwrap();
    let loud = |from: f32, to: f32| {
        heard
            .iter()
            .filter(|(at, samples)| {
                let t = at.duration_since(start).as_secs_f32();
                let power =
                    samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32;
                t >= from && t < to && power > 1e-4
            })
            .count()
    };
    assert!(loud(0.0, 4.0) > 100, "speech first: {}", loud(0.0, 4.0));
    assert_eq!(loud(8.0, 10.0), 0, "then nothing: the call is over");
    let log = holdfast.log();
    assert!(log.contains("caller overflowed"), "{log}");
    assert!(log.contains("\"because\":\"closed\""), "{log}");
}

/// `ring-all`: three phones ring for one caller; the one that answers takes it and the two
/// others are CANCELled (each SIPp phone's scenario fails unless it got what it expects:
/// the answering one the caller's BYE, the two others a CANCEL).
#[test]
fn ring_all_rings_three_phones_and_cancels_the_two_that_did_not_answer() {
    let holdfast = Holdfast::start(
        "routing-ring-all",
        &setup(
            56_000,
            "strategy = \"ring-all\"\nring_timeout = 20",
            &[("alice", ""), ("bob", ""), ("carol", "")],
        ),
    );
    let ringer = |user: &str| {
        let port = free_udp_port();
        let child = uas("agent_noanswer.xml", port, 1, &[]);
        register_sipp_agent(&holdfast, user, &format!("{user}-secret"), port);
        child
    };
    let mut alice = ringer("alice");
    let mut bob = phone(&holdfast, "bob", 1);
    let mut carol = ringer("carol");
    call(&holdfast, 1000);
    for (name, child) in [
        ("alice", &mut alice),
        ("bob", &mut bob),
        ("carol", &mut carol),
    ] {
        assert!(
            wait_exit(child, Duration::from_secs(10)),
            "{name}'s phone did not end its scenario well:\n{}",
            holdfast.log()
        );
    }
    assert_eq!(connected_agents(&holdfast), ["bob"], "{}", holdfast.log());
    let log = holdfast.log();
    assert_eq!(
        log.matches("another agent answered: cancelling").count(),
        2,
        "{log}"
    );
}

/// `resume_within`: a caller who hangs up and calls again from the same number gets its
/// old place back (ahead of a caller who came after it), once; the next time it queues at
/// the back like anyone.
#[test]
fn a_caller_who_calls_again_within_resume_within_gets_its_place_back_once() {
    let api_port = common::phones::free_tcp_port();
    let mut config = setup(57_000, "resume_within = 60", &[]);
    config.admin = format!("listen = \"127.0.0.1:{api_port}\"\n");
    let holdfast = Holdfast::start("routing-resume", &config);
    let api: std::net::SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let offer = common::pcmu_offer(9);
    let line = || -> Vec<String> {
        common::api::get_json(api, "/api/queues")[0]["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["caller"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let first = common::RawUa::new("127.0.0.1", holdfast.sip);
    let call = first.invite("100", "+15550000001", &offer);
    assert_eq!(call.code, 200, "{}", holdfast.log());
    let second = common::RawUa::new("127.0.0.1", holdfast.sip);
    assert_eq!(second.invite("100", "+15550000002", &offer).code, 200);
    assert_eq!(line(), ["+15550000001", "+15550000002"]);
    // The first caller hangs up, and calls again from another phone line: first again.
    assert_eq!(first.request(&call, "BYE", 2, "").map(|r| r.0), Some(200));
    assert_eq!(line(), ["+15550000002"]);
    let again = common::RawUa::new("127.0.0.1", holdfast.sip);
    let call = again.invite("100", "+15550000001", &offer);
    assert_eq!(call.code, 200);
    assert_eq!(line(), ["+15550000001", "+15550000002"], "its old place");
    assert!(holdfast.log().contains("resume"), "{}", holdfast.log());
    // Once: hanging up and calling again now puts it at the back.
    assert_eq!(again.request(&call, "BYE", 2, "").map(|r| r.0), Some(200));
    let third = common::RawUa::new("127.0.0.1", holdfast.sip);
    assert_eq!(third.invite("100", "+15550000001", &offer).code, 200);
    assert_eq!(line(), ["+15550000002", "+15550000001"]);
}
