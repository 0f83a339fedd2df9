//! End to end with real softphones as agents pressing Hold and Resume mid-call (RFC 3264
//! §8.4): Linphone (`linphonec`) and baresip send a re-INVITE with `a=sendonly` on the
//! dialog holdfast opened to them; holdfast answers it, the caller hears hold music instead
//! of silence or a hang-up, and after Resume both sides hear each other again.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Baresip, Holdfast, Linphone, Setup, dominant, heard_between, sipp, talking_caller};

const AGENT: &str = "[[queue]]\nname = \"support\"\nwrapup = 1\n\n[[route]]\nnumber = \"*\"\n\
queue = \"support\"\npriority = \"normal\"\n\n[[agent]]\nuser = \"alice\"\npassword = \"alice-secret\"\n";

/// The two things a phone under test must do.
trait HoldingPhone {
    fn wait_call(&self, wait: Duration) -> bool;
    fn hold(&mut self) -> bool;
    fn resume(&mut self) -> bool;
    fn log(&self) -> String;
}

impl HoldingPhone for Linphone {
    fn wait_call(&self, wait: Duration) -> bool {
        Linphone::wait_call(self, wait)
    }
    fn hold(&mut self) -> bool {
        Linphone::hold(self)
    }
    fn resume(&mut self) -> bool {
        Linphone::resume(self)
    }
    fn log(&self) -> String {
        Linphone::log(self)
    }
}

impl HoldingPhone for Baresip {
    fn wait_call(&self, wait: Duration) -> bool {
        Baresip::wait_call(self, wait)
    }
    fn hold(&mut self) -> bool {
        Baresip::hold(self)
    }
    fn resume(&mut self) -> bool {
        Baresip::resume(self)
    }
    fn log(&self) -> String {
        Baresip::log(self)
    }
}

/// Whether `tone` dominates at least four in five whole seconds of `samples`: one long
/// window is too narrow a filter for a tone a phone has resampled.
fn mostly_dominant(samples: &[f32], tone: f32, others: &[f32]) -> bool {
    let seconds: Vec<&[f32]> = samples.chunks_exact(8000).collect();
    let hits = seconds.iter().filter(|s| dominant(s, tone, others)).count();
    !seconds.is_empty() && hits * 5 >= seconds.len() * 4
}

/// When the call came up, Hold was pressed and Resume was pressed, and what the caller heard.
struct HoldRun {
    call: Instant,
    hold: Instant,
    resume: Instant,
    heard: common::Heard,
}

/// A SIPp caller that talks 1 kHz reaches the agent's `phone`; the agent holds 4 s into the
/// call and resumes 5 s later; the caller hangs up at 19 s.
fn hold_and_resume(holdfast: &Holdfast, phone: &mut dyn HoldingPhone) -> HoldRun {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = socket.local_addr().unwrap().port().to_string();
    let caller =
        std::thread::spawn(move || talking_caller(socket, Duration::from_secs(21), 1000.0));
    let sip = holdfast.sip;
    let sipp_caller = std::thread::spawn(move || {
        sipp(
            "caller.xml",
            sip,
            &[
                "-s", "100", "-m", "1", "-l", "1", "-d", "19000", "-key", "rtp_port", &rtp_port,
            ],
        )
    });
    assert!(
        phone.wait_call(Duration::from_secs(10)),
        "the agent's phone never got the call:\n{}\nholdfast:\n{}",
        phone.log(),
        holdfast.log()
    );
    let call = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let hold = Instant::now();
    assert!(
        phone.hold(),
        "hold not answered:\n{}\n{}",
        phone.log(),
        holdfast.log()
    );
    std::thread::sleep(Duration::from_secs(5));
    let resume = Instant::now();
    assert!(
        phone.resume(),
        "resume not answered:\n{}\n{}",
        phone.log(),
        holdfast.log()
    );
    let out = sipp_caller.join().unwrap();
    let heard = caller.join().unwrap();
    assert!(
        out.status.success(),
        "the caller's call did not complete (a hold must never hang up):\n{}\nholdfast:\n{}",
        String::from_utf8_lossy(&out.stdout),
        holdfast.log()
    );
    let log = holdfast.log();
    assert!(
        log.contains("agent holds") && log.contains("agent resumes"),
        "{log}"
    );
    HoldRun {
        call,
        hold,
        resume,
        heard,
    }
}

/// What the caller heard: the agent's `tone` before the hold, hold music (not the agent)
/// while held, the agent again after the resume.
fn check_caller(run: &HoldRun, tone: f32) {
    let s = Duration::from_secs(1);
    let before = heard_between(&run.heard, run.call + s, run.hold);
    let during = heard_between(&run.heard, run.hold + s, run.resume);
    let after = heard_between(&run.heard, run.resume + s, run.resume + 8 * s);
    let others = [300.0, 700.0, 1000.0, 2000.0];
    assert!(
        before.len() > 8000 * 2,
        "caller heard {} samples before",
        before.len()
    );
    assert!(
        mostly_dominant(&before, tone, &others),
        "the caller hears the agent before the hold"
    );
    assert!(
        during.len() > 8000 * 3,
        "the caller hears something while held (music), not silence: {} samples",
        during.len()
    );
    assert!(
        !mostly_dominant(&during, tone, &others),
        "while held the caller hears music, not the agent"
    );
    assert!(
        after.len() > 8000 * 5,
        "caller heard {} samples after",
        after.len()
    );
    assert!(
        mostly_dominant(&after, tone, &others),
        "the caller hears the agent again after resume"
    );
}

#[test]
fn a_linphone_agent_holds_and_resumes_with_audio_both_ways_after() {
    // Linphone answers the default challenge with SHA-256.
    let mut setup = Setup::new(44_000);
    setup.extra = AGENT.into();
    let holdfast = Holdfast::start("interop-linphone", &setup);
    let mut phone = Linphone::start("linphone-alice", holdfast.sip, "alice", "alice-secret", 600);
    assert!(
        holdfast.wait_log("Registered { user: \"alice\" }", Duration::from_secs(15)),
        "linphonec registered\nholdfast:\n{}\nlinphone:\n{}",
        holdfast.log(),
        phone.log()
    );
    let run = hold_and_resume(&holdfast, &mut phone);
    check_caller(&run, 600.0);
    // Linphone records nothing while paused and continues after: its recording ends with
    // what it heard after the resume, the caller's 1 kHz.
    let heard = phone.heard();
    assert!(
        heard.len() > 8000 * 6,
        "linphone heard {} samples",
        heard.len()
    );
    let tail = &heard[heard.len() - 8000 * 4..heard.len() - 8000];
    assert!(
        mostly_dominant(tail, 1000.0, &[440.0, 600.0, 1500.0, 2500.0]),
        "after resume the agent hears the caller"
    );
}

#[test]
fn a_baresip_agent_holds_and_resumes() {
    let mut setup = Setup::new(45_000);
    setup.extra = AGENT.into();
    // baresip 1.0 registers on its retry of the default challenge; MD5 alone saves the wait.
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    let holdfast = Holdfast::start("interop-baresip", &setup);
    let mut phone = Baresip::start("baresip-hold", holdfast.sip, "alice", "alice-secret", 1700);
    assert!(
        holdfast.wait_log("Registered { user: \"alice\" }", Duration::from_secs(15)),
        "baresip registered\nholdfast:\n{}\nbaresip:\n{}",
        holdfast.log(),
        phone.log()
    );
    let run = hold_and_resume(&holdfast, &mut phone);
    // baresip 1.0 stops recording at its first hold (see tests/common/phones.rs), so what it
    // hears after the resume cannot be checked here; the Linphone test checks that way.
    check_caller(&run, 1700.0);
    let heard = phone.heard();
    assert!(
        mostly_dominant(&heard[1600..], 1000.0, &[440.0, 700.0, 1700.0, 2500.0]),
        "before the hold the agent heard the caller"
    );
}
