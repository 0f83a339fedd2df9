//! End to end over loopback with real agents' phones (docs/behaviour.md §1, §3, §5): a baresip softphone
//! registers with Digest auth and is bridged to a SIPp caller with RTP relayed both ways;
//! SIPp agents show premium-before-regular dispatch and a caller cancelling while the agent
//! rings.

mod common;

use std::time::Duration;

use common::{Baresip, Holdfast, Setup, dominant, sipp};

const ONE_QUEUE: &str = "[[queue]]\nname = \"support\"\nwrapup = 1\n\n\
[[route]]\nnumber = \"*\"\nqueue = \"support\"\npriority = \"normal\"\n";

/// SIPp's agent scenarios authenticate with MD5 only and do not retry, so these tests
/// offer MD5 alone; the baresip test keeps the default challenge.
fn setup(rtp_base: u16, extra: String) -> Setup {
    let mut setup = Setup::new(rtp_base);
    setup.extra = extra;
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup
}

#[test]
fn baresip_agent_is_bridged_to_the_caller_with_audio_both_ways() {
    let mut default_challenge = setup(
        38_000,
        ONE_QUEUE.to_string() + "\n[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n",
    );
    default_challenge.sip_extra.clear();
    let holdfast = Holdfast::start("agent-baresip", &default_challenge);
    let phone = Baresip::start("baresip-alice", holdfast.sip, "alice", "alice-secret", 440);
    // The default challenge (SHA-256, then MD5): baresip 1.0 gives up on it, and on its
    // retry (about 30-60 s later) is offered MD5 alone and registers.
    assert!(
        holdfast.wait_log("Registered { user: \"alice\" }", Duration::from_secs(100)),
        "baresip registered with digest auth\nholdfast:\n{}\nbaresip:\n{}",
        holdfast.log(),
        phone.log()
    );
    let (out, heard_by_caller) = common::one_talking_call(&holdfast);
    assert!(
        out.status.success(),
        "SIPp caller failed:\n{}\nholdfast:\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    assert!(
        holdfast.log().contains("caller connected to agent"),
        "{}",
        holdfast.log()
    );
    // The caller went straight to the free agent: everything it heard is the agent's 440 Hz.
    assert!(
        heard_by_caller.len() > 8000 * 3,
        "caller heard {} samples",
        heard_by_caller.len()
    );
    assert!(
        dominant(
            &heard_by_caller[1600..],
            440.0,
            &[300.0, 700.0, 1000.0, 2000.0]
        ),
        "the caller hears the agent's tone"
    );
    // baresip hung up when the caller's BYE was relayed, and recorded the caller's 1 kHz.
    std::thread::sleep(Duration::from_millis(500));
    let heard_by_agent = phone.heard();
    assert!(
        heard_by_agent.len() > 8000 * 3,
        "agent heard {} samples\n{}",
        heard_by_agent.len(),
        phone.log()
    );
    assert!(
        dominant(
            &heard_by_agent[1600..],
            1000.0,
            &[440.0, 700.0, 1500.0, 2500.0]
        ),
        "the agent hears the caller's tone"
    );
    assert!(phone.log().contains("terminated"), "{}", phone.log());
}

const TWO_QUEUES: &str = "[[queue]]\nname = \"premium\"\nwrapup = 1\n\n\
[[queue]]\nname = \"support\"\nwrapup = 1\n\n\
[[route]]\nnumber = \"200\"\nqueue = \"premium\"\npriority = \"normal\"\n\n\
[[route]]\nnumber = \"100\"\nqueue = \"support\"\npriority = \"normal\"\n\n\
[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\nqueues = [\"premium\", \"support\"]\n";

#[test]
fn premium_callers_are_connected_before_earlier_regular_ones() {
    let holdfast = Holdfast::start("premium-first", &setup(39_000, TWO_QUEUES.to_string()));
    let mut agent = common::sipp_agent(&holdfast, "agent.xml", "3");
    let (sink, port) = common::rtp_sink();
    let port = port.to_string();
    let call = |number: &'static str, delay_ms: u64, stay: &'static str| {
        let (sip, port) = (holdfast.sip, port.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(delay_ms));
            sipp(
                "caller.xml",
                sip,
                &[
                    "-s", number, "-m", "1", "-d", stay, "-key", "rtp_port", &port,
                ],
            )
        })
    };
    // The first caller takes the agent for 3 s; meanwhile a regular caller, then a premium
    // caller queue up. When the agent frees up (after 1 s of wrap-up), premium goes first
    // and talks 5 s; the regular caller, still waiting, is connected after that.
    let first = call("100", 0, "3000");
    let regular = call("100", 800, "12000");
    let premium = call("200", 1600, "5000");
    for (name, handle) in [("first", first), ("regular", regular), ("premium", premium)] {
        let out = handle.join().unwrap();
        assert!(
            out.status.success(),
            "{name} caller failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            holdfast.log()
        );
    }
    drop(sink);
    let _ = agent.wait();
    let log = holdfast.log();
    let connects: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("caller connected to agent"))
        .collect();
    assert_eq!(connects.len(), 3, "{log}");
    assert!(
        connects[1].contains("premium"),
        "premium second:\n{}",
        connects.join("\n")
    );
    assert!(
        connects[2].contains("support"),
        "regular last:\n{}",
        connects.join("\n")
    );
}

#[test]
fn caller_cancelling_while_the_agent_rings_gets_487() {
    let holdfast = Holdfast::start(
        "cancel",
        &setup(
            36_500,
            ONE_QUEUE.to_string() + "\n[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n",
        ),
    );
    let mut agent = common::sipp_agent(&holdfast, "agent_noanswer.xml", "1");
    let out = sipp(
        "caller_cancel.xml",
        holdfast.sip,
        &["-s", "100", "-m", "1", "-key", "rtp_port", "9"],
    );
    assert!(
        out.status.success(),
        "CANCEL flow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    let status = agent.wait().unwrap();
    assert!(
        status.success(),
        "the agent's INVITE was cancelled (agent scenario completed)"
    );
    assert!(holdfast.log().contains("caller gave up before answer"));
}

const REFER_QUEUE: &str = "[[queue]]\nname = \"support\"\nbridge = \"refer\"\nwrapup = 1\n\n\
[[route]]\nnumber = \"*\"\nqueue = \"support\"\npriority = \"normal\"\n\n\
[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n";

/// Start a trunk scenario in the background and wait until its caller is holding.
fn waiting_caller(
    holdfast: &Holdfast,
    scenario: &'static str,
    extra: &'static [&'static str],
) -> std::thread::JoinHandle<std::process::Output> {
    let sip = holdfast.sip;
    let handle = std::thread::spawn(move || {
        let mut args = vec!["-s", "100", "-m", "1", "-key", "rtp_port", "9"];
        args.extend_from_slice(extra);
        sipp(scenario, sip, &args)
    });
    assert!(
        holdfast.wait_log("caller joined queue", Duration::from_secs(10)),
        "{}",
        holdfast.log()
    );
    handle
}

#[test]
fn refer_mode_transfers_the_caller_through_the_trunk() {
    let holdfast = Holdfast::start("refer", &setup(34_500, REFER_QUEUE.to_string()));
    let trunk = waiting_caller(&holdfast, "trunk_refer.xml", &[]);
    let mut agent = common::sipp_agent(&holdfast, "agent.xml", "1");
    let out = trunk.join().unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert!(
        out.status.success(),
        "REFER/NOTIFY flow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    let log = holdfast.log();
    assert!(log.contains("transferring caller to agent"), "{log}");
    assert!(log.contains("caller transferred to agent"), "{log}");
}

#[test]
fn refer_refused_by_the_trunk_falls_back_to_the_relay() {
    let holdfast = Holdfast::start("refer-refused", &setup(33_500, REFER_QUEUE.to_string()));
    let trunk = waiting_caller(&holdfast, "trunk_refer_reject.xml", &["-d", "2000"]);
    let mut agent = common::sipp_agent(&holdfast, "agent.xml", "1");
    let out = trunk.join().unwrap();
    assert!(
        out.status.success(),
        "caller failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    let status = agent.wait().unwrap();
    let log = holdfast.log();
    assert!(status.success(), "the agent was called and bridged:\n{log}");
    assert!(log.contains("bridging through the relay instead"), "{log}");
    assert!(log.contains("caller connected to agent"), "{log}");
}

/// `*46` and `*47` from a baresip agent (docs/behaviour.md §5): holdfast challenges the
/// INVITE, baresip answers with alice's credentials, holdfast pauses alice, plays the
/// confirmation (baresip hears speech, not silence) and hangs up; `*47` unpauses her.
#[test]
fn an_agent_pauses_and_unpauses_from_its_phone() {
    let holdfast = Holdfast::start(
        "agent-pause-code",
        &setup(
            37_000,
            ONE_QUEUE.to_string() + "\n[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n",
        ),
    );
    let mut phone = Baresip::start("baresip-pause", holdfast.sip, "alice", "alice-secret", 440);
    assert!(
        holdfast.wait_log("Registered { user: \"alice\" }", Duration::from_secs(20)),
        "{}",
        holdfast.log()
    );
    let plain = |text: String| {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                chars.by_ref().find(|&c| c == 'm');
            } else {
                out.push(c);
            }
        }
        out
    };
    for (code, paused, call) in [("*46", "paused=true", 1), ("*47", "paused=false", 2)] {
        let target = format!("sip:{code}@{}", holdfast.sip);
        assert!(
            matches!(phone.command("dial", &target), Some((true, _))),
            "{}",
            phone.log()
        );
        // holdfast hangs up once the confirmation has played.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while phone.events("CALL_CLOSED") < call && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            phone.events("CALL_CLOSED"),
            call,
            "{code}: the call ended\n{}\n{}",
            phone.log(),
            holdfast.log()
        );
        let log = plain(holdfast.log());
        let changes: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("agent pause changed"))
            .collect();
        assert_eq!(changes.len(), call, "{log}\n{}", phone.log());
        assert!(changes[call - 1].contains(paused), "{}", changes[call - 1]);
        assert!(changes[call - 1].contains("phone"), "{}", changes[call - 1]);
    }
    // What baresip heard: the two confirmations, each some seconds of speech.
    let heard = phone.heard();
    let loud = heard
        .chunks(160)
        .filter(|frame| frame.iter().map(|s| s * s).sum::<f32>() / 160.0 > 1e-4)
        .count();
    assert!(loud > 100, "{loud} loud frames of {}", heard.len() / 160);
}

/// `announce_to_agent` (docs/behaviour.md §5): baresip, answering, first hears the queue's
/// clip (a 700 Hz tone here), then the caller; the caller never hears the clip.
#[test]
fn the_agent_hears_announce_to_agent_before_the_caller_and_the_caller_does_not() {
    let dir = common::scratch_dir("whisper-files");
    let clip = dir.join("premium.wav");
    common::phones::write_tone_wav(&clip, 700, 1);
    let queue = ONE_QUEUE.replace(
        "wrapup = 1\n",
        &format!("wrapup = 1\nannounce_to_agent = \"{}\"\n", clip.display()),
    );
    let holdfast = Holdfast::start(
        "agent-whisper",
        &setup(
            35_000,
            queue + "\n[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n",
        ),
    );
    let phone = Baresip::start(
        "baresip-whisper",
        holdfast.sip,
        "alice",
        "alice-secret",
        440,
    );
    assert!(
        holdfast.wait_log("Registered { user: \"alice\" }", Duration::from_secs(20)),
        "{}",
        holdfast.log()
    );
    let (out, heard_by_caller) = common::one_talking_call(&holdfast);
    assert!(out.status.success(), "{}", holdfast.log());
    assert!(holdfast.log().contains("caller connected to agent"));
    std::thread::sleep(Duration::from_millis(500));
    let heard_by_agent = phone.heard();
    assert!(heard_by_agent.len() > 8000 * 3, "{}", phone.log());
    // The first second the agent hears is the clip, the rest the caller's 1 kHz.
    assert!(
        dominant(&heard_by_agent[400..7200], 700.0, &[440.0, 1000.0]),
        "the agent hears the clip first"
    );
    assert!(
        dominant(&heard_by_agent[16_000..], 1000.0, &[440.0, 700.0]),
        "then the caller"
    );
    let clip_power = common::tone_power(&heard_by_caller, 700.0, 8000.0);
    let agent_power = common::tone_power(&heard_by_caller, 440.0, 8000.0);
    assert!(
        clip_power * 10.0 < agent_power,
        "the caller hears the agent ({agent_power}), not the clip ({clip_power})"
    );
}
