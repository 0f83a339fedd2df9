//! End to end callbacks (docs/behaviour.md §6): SIPp callers press 1 (RFC 4733 from the pcap that ships
//! with SIPp, and SIP INFO), hear the confirmation and are hung up; an agent registers and a
//! SIPp "trunk" receives the callback INVITEs for the right numbers, in order, and is bridged
//! to the agent. The crash test kills holdfast with SIGKILL before any callback is dialled
//! and shows that a restart on the same database dials every one, once, in order.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{Holdfast, Setup, free_udp_port, repo, scratch_dir};

/// One queue that offers callbacks to everyone (1 s threshold against a 600 s default
/// handle time), retries quickly, and the agent alice.
const CALLBACK_QUEUE: &str = "[[queue]]\nname = \"support\"\ncallback_threshold = 1\n\
default_handle_time = 600\nwrapup = 0\ncallback_retry_delay = 2\n\n\
[[route]]\nnumber = \"*\"\nqueue = \"support\"\n\n\
[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n";

fn setup(rtp_base: u16, trunk_port: u16, data_dir: Option<PathBuf>) -> Setup {
    let mut setup = Setup::new(rtp_base);
    setup.extra = CALLBACK_QUEUE.into();
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.trunk_address = format!("127.0.0.1:{trunk_port}");
    setup.data_dir = data_dir;
    setup
}

/// A SIPp UAS in the background (agent or trunk).
fn uas(scenario: &str, port: u16, calls: usize, extra: &[&str]) -> Child {
    // `port` is fixed (holdfast is configured with it); a retry gets a fresh media port.
    common::spawn_sipp(|| {
        let mut command = common::sipp_uas_command(scenario, port, &calls.to_string(), "90s");
        command.args(extra).current_dir(repo());
        (command, ())
    })
    .0
}

/// The trunk: answers `calls` callback INVITEs, talks 1.5 s each, logs what it received.
fn trunk(port: u16, calls: usize, log: &Path) -> Child {
    let log = log.display().to_string();
    uas(
        "trunk_callback.xml",
        port,
        calls,
        &["-d", "1500", "-trace_msg", "-message_file", &log],
    )
}

/// Registers alice with the agent scenario listening on `agent_port`.
fn register_agent(holdfast: &Holdfast, agent_port: u16) {
    common::register_sipp_agent(holdfast, "alice", "alice-secret", agent_port);
}

/// A caller who presses 1 (`scenario`: RFC 4733 or INFO) with caller number `number`.
fn press_one(holdfast: &Holdfast, scenario: &str, number: &str) -> std::process::Output {
    // The scenario's pcap path is relative to the repository root.
    let out = common::run_sipp(|| {
        let rtp = free_udp_port().to_string();
        let mut command = Command::new("sipp");
        command
            .arg(holdfast.sip.to_string())
            .arg("-sf")
            .arg(repo().join("sipp").join(scenario))
            .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
            .args(["-mp", &rtp, "-s", "100", "-m", "1"])
            .args(["-key", "number", number, "-key", "rtp_port", &rtp])
            .args(["-nostdin", "-timeout", "60s", "-timeout_error"])
            .current_dir(repo());
        command
    });
    assert!(
        out.status.success(),
        "{scenario} for {number} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    out
}

/// The numbers of the INVITEs the trunk received, in order (retransmissions counted once).
fn dialled(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut seen = Vec::new();
    let mut numbers = Vec::new();
    for message in text.split("message received").skip(1) {
        let Some(line) = message.lines().find(|l| l.starts_with("INVITE sip:")) else {
            continue;
        };
        let call_id = message
            .lines()
            .find(|l| l.starts_with("Call-ID:"))
            .unwrap_or_default()
            .to_string();
        if seen.contains(&call_id) {
            continue;
        }
        seen.push(call_id);
        let number = line["INVITE sip:".len()..].split('@').next().unwrap();
        numbers.push(number.to_string());
    }
    numbers
}

fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Callers started `stagger` apart (so their places are known), each pressing 1.
fn callers_press_one(holdfast: &Holdfast, callers: &[(&'static str, &'static str)]) {
    std::thread::scope(|scope| {
        for (i, &(scenario, number)) in callers.iter().enumerate() {
            scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(600 * i as u64));
                press_one(holdfast, scenario, number)
            });
        }
    });
}

#[test]
fn callers_press_one_hang_up_and_are_called_back_through_the_trunk() {
    let trunk_port = free_udp_port();
    let holdfast = Holdfast::start("callback-e2e", &setup(41_000, trunk_port, None));
    callers_press_one(
        &holdfast,
        &[
            ("caller_press1.xml", "+15551230001"),
            ("caller_press1_info.xml", "+15551230002"),
        ],
    );
    let log = holdfast.log();
    assert_eq!(log.matches("callback_committed").count(), 2, "{log}");
    // Nobody is dialled while no agent is there (agent first).
    let trunk_log = holdfast.dir.join("trunk.log");
    let mut trunk = trunk(trunk_port, 2, &trunk_log);
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 2, &[]);
    register_agent(&holdfast, agent_port);
    assert!(
        wait_exit(&mut trunk, Duration::from_secs(60)),
        "trunk scenario failed; holdfast:\n{}",
        holdfast.log()
    );
    assert!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        "agent scenario failed"
    );
    assert_eq!(
        dialled(&trunk_log),
        vec!["+15551230001", "+15551230002"],
        "the callers' own numbers, in their order"
    );
    let log = holdfast.log();
    assert_eq!(log.matches("caller bridged to agent").count(), 2, "{log}");
}

#[test]
fn callbacks_survive_kill_9_and_are_dialled_once_in_order() {
    let data = scratch_dir("callback-crash-data");
    let trunk_port = free_udp_port();
    let numbers = ["+15551230011", "+15551230012", "+15551230013"];
    let mut first = Holdfast::start(
        "callback-crash-1",
        &setup(42_000, trunk_port, Some(data.clone())),
    );
    callers_press_one(
        &first,
        &[
            ("caller_press1.xml", numbers[0]),
            ("caller_press1_info.xml", numbers[1]),
            ("caller_press1.xml", numbers[2]),
        ],
    );
    first.kill9();

    let second = Holdfast::start(
        "callback-crash-2",
        &setup(42_000, trunk_port, Some(data.clone())),
    );
    assert_eq!(
        second.log().matches("callback restored").count(),
        3,
        "{}",
        second.log()
    );
    let trunk_log = second.dir.join("trunk.log");
    let mut trunk = trunk(trunk_port, 3, &trunk_log);
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 3, &[]);
    register_agent(&second, agent_port);
    assert!(
        wait_exit(&mut trunk, Duration::from_secs(60)),
        "trunk scenario failed; holdfast:\n{}",
        second.log()
    );
    assert!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        "agent scenario failed"
    );
    assert_eq!(
        dialled(&trunk_log),
        numbers,
        "none lost, in the original order"
    );
    drop(second);

    // Completed callbacks are never dialled again.
    let third = Holdfast::start("callback-crash-3", &setup(42_000, trunk_port, Some(data)));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        third.log().matches("callback restored").count(),
        0,
        "{}",
        third.log()
    );
}

#[test]
fn a_dial_back_cut_short_by_kill_9_is_retried_after_restart() {
    let data = scratch_dir("callback-middial-data");
    let trunk_port = free_udp_port();
    let number = "+15551230021";
    let mut first = Holdfast::start(
        "callback-middial-1",
        &setup(43_000, trunk_port, Some(data.clone())),
    );
    callers_press_one(&first, &[("caller_press1.xml", number)]);
    // A trunk that receives the INVITE and never answers: holdfast is killed mid-dial.
    let silent_trunk = std::net::UdpSocket::bind(("127.0.0.1", trunk_port)).unwrap();
    silent_trunk
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 1, &[]);
    register_agent(&first, agent_port);
    let mut buf = [0u8; 4096];
    let (len, _) = silent_trunk
        .recv_from(&mut buf)
        .expect("the callback INVITE");
    let invite = String::from_utf8_lossy(&buf[..len]).to_string();
    assert!(
        invite.starts_with(&format!("INVITE sip:{number}@")),
        "{invite}"
    );
    first.kill9();
    let _ = agent.kill();
    let _ = agent.wait();
    drop(silent_trunk);

    let second = Holdfast::start("callback-middial-2", &setup(43_000, trunk_port, Some(data)));
    assert_eq!(
        second.log().matches("callback restored").count(),
        1,
        "{}",
        second.log()
    );
    let trunk_log = second.dir.join("trunk.log");
    let mut trunk = trunk(trunk_port, 1, &trunk_log);
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 1, &[]);
    register_agent(&second, agent_port);
    assert!(
        wait_exit(&mut trunk, Duration::from_secs(60)),
        "trunk scenario failed; holdfast:\n{}",
        second.log()
    );
    assert!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        "agent scenario failed"
    );
    assert_eq!(dialled(&trunk_log), vec![number], "retried, not lost");
}

#[test]
fn callbacks_are_still_pending_after_a_graceful_stop() {
    let data = scratch_dir("callback-sigterm-data");
    let trunk_port = free_udp_port();
    let mut first = Holdfast::start(
        "callback-sigterm-1",
        &setup(43_000, trunk_port, Some(data.clone())),
    );
    callers_press_one(
        &first,
        &[
            ("caller_press1.xml", "+15551230021"),
            ("caller_press1_info.xml", "+15551230022"),
        ],
    );
    let status = first.terminate();
    assert_eq!(status.code(), Some(0), "graceful stop exits 0");
    // The promise outlives the stop: both come back, at their places.
    let second = Holdfast::start("callback-sigterm-2", &setup(43_000, trunk_port, Some(data)));
    assert_eq!(
        second.log().matches("callback restored").count(),
        2,
        "{}",
        second.log()
    );
}
