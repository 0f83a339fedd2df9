//! Callback helpers shared by the callback and cluster tests: SIPp callers who press 1, a
//! trunk that answers the dial-backs and logs them, an agent that takes them.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::{Holdfast, free_udp_port, repo};

/// A SIPp UAS in the background (agent or trunk).
pub fn uas(scenario: &str, port: u16, calls: usize, extra: &[&str]) -> Child {
    // `port` is fixed (holdfast is configured with it); a retry gets a fresh media port.
    super::spawn_sipp(|| {
        let mut command = super::sipp_uas_command(scenario, port, &calls.to_string(), "90s");
        command.args(extra).current_dir(repo());
        (command, ())
    })
    .0
}

/// The trunk: answers `calls` callback INVITEs, talks 1.5 s each, logs what it received.
pub fn trunk(port: u16, calls: usize, log: &Path) -> Child {
    let log = log.display().to_string();
    uas(
        "trunk_callback.xml",
        port,
        calls,
        &["-d", "1500", "-trace_msg", "-message_file", &log],
    )
}

/// A caller who presses 1 (`scenario`: RFC 4733 or INFO) with caller number `number`, and
/// hears the confirmation and holdfast's BYE (the test fails otherwise).
pub fn press_one(holdfast: &Holdfast, scenario: &str, number: &str) -> std::process::Output {
    let out = press_one_within(holdfast, scenario, number, "60s");
    assert!(
        out.status.success(),
        "{scenario} for {number} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    out
}

/// [`press_one`] that gives up after `timeout` (e.g. `"20s"`) and leaves judging the
/// outcome to the test (a refused callback ends with no BYE from holdfast).
pub fn press_one_within(
    holdfast: &Holdfast,
    scenario: &str,
    number: &str,
    timeout: &str,
) -> std::process::Output {
    // The scenario's pcap path is relative to the repository root.
    super::run_sipp(|| {
        let rtp = free_udp_port().to_string();
        let mut command = Command::new("sipp");
        command
            .arg(holdfast.sip.to_string())
            .arg("-sf")
            .arg(repo().join("sipp").join(scenario))
            .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
            .args(["-mp", &rtp, "-s", "100", "-m", "1"])
            .args(["-key", "number", number, "-key", "rtp_port", &rtp])
            .args(["-nostdin", "-timeout", timeout, "-timeout_error"])
            .current_dir(repo());
        command
    })
}

/// The numbers of the INVITEs the trunk received, in order (retransmissions counted once).
pub fn dialled(log: &Path) -> Vec<String> {
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

pub fn wait_exit(child: &mut Child, limit: Duration) -> bool {
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
pub fn callers_press_one(holdfast: &Holdfast, callers: &[(&'static str, &'static str)]) {
    std::thread::scope(|scope| {
        for (i, &(scenario, number)) in callers.iter().enumerate() {
            scope.spawn(move || {
                std::thread::sleep(Duration::from_millis(600 * i as u64));
                press_one(holdfast, scenario, number)
            });
        }
    });
}
