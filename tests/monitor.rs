//! Supervisors monitoring calls end to end (docs/behaviour.md §5, "Listening, whispering,
//! barging"): a caller talking 400 Hz is bridged to an agent talking 1000 Hz; supervisor
//! `sue`, a baresip phone registered with its password and talking 1700 Hz, dials
//! `*50a1`, then `*51a1`, then `*52a1`. Listening she hears both tones and nobody hears
//! her; whispering the agent hears her and the caller does not; barging both do. Each
//! start and stop is a call event, and the wallboard shows who monitors the call.

mod common;

use std::time::{Duration, Instant};

use common::api::get_json;
use common::held::{log_tail, setup, sleep_until, talking_call, wait_admin, wait_until};
use common::{Baresip, Holdfast, tone_power};

const RTP_BASE: u16 = 46_000;
const CALLER_TONE: f32 = 400.0;
const AGENT_TONE: f32 = 1000.0;
const SUPERVISOR_TONE: u32 = 1700;

/// The power of each of `tones` in `samples`, relative to the strongest of them.
fn shares(samples: &[f32], tones: &[f32]) -> Vec<f32> {
    let powers: Vec<f32> = tones
        .iter()
        .map(|&f| tone_power(samples, f, 8000.0))
        .collect();
    let top = powers.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
    powers.iter().map(|p| p / top).collect()
}

/// Checks which of the three tones `who` heard in `samples`: each heard one carries at
/// least 5 % of the strongest's power, each other one under 0.5 %.
fn heard(who: &str, samples: &[f32], expected: [bool; 3], wrong: &mut Vec<String>) {
    let tones = [CALLER_TONE, AGENT_TONE, SUPERVISOR_TONE as f32];
    if samples.len() < 4_000 {
        wrong.push(format!("{who}: only {} samples heard", samples.len()));
        return;
    }
    let shares = shares(samples, &tones);
    eprintln!("{who}: shares of 400/1000/1700 Hz {shares:.4?}");
    for ((tone, share), expect) in tones.iter().zip(&shares).zip(expected) {
        let ok = if expect {
            *share >= 0.05
        } else {
            *share < 0.005
        };
        if !ok {
            wrong.push(format!(
                "{who}: {tone} Hz {} (shares of 400/1000/1700 Hz: {shares:.4?})",
                if expect { "missing" } else { "heard" }
            ));
        }
    }
}

#[test]
fn a_supervisor_listens_whispers_and_barges() {
    let (mut setup, api) = setup("monitor", RTP_BASE);
    // SIPp and baresip 1.0 register with MD5 only.
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.extra = "[[agent]]\nuser = \"a1\"\npassword = \"a1-secret\"\n\n\
                   [[supervisor]]\nuser = \"sue\"\npassword = \"sue-secret\"\n\n\
                   [[queue]]\nname = \"support\"\n\n\
                   [[route]]\nnumber = \"*\"\nqueue = \"support\"\n"
        .into();
    let holdfast = Holdfast::start("monitor", &setup);
    wait_admin(api);
    let mut sue = Baresip::start(
        "baresip-sue",
        holdfast.sip,
        "sue",
        "sue-secret",
        SUPERVISOR_TONE,
    );
    assert!(
        holdfast.wait_log("Registered { user: \"sue\" }", Duration::from_secs(20)),
        "the supervisor registers\n{}",
        log_tail(&holdfast)
    );
    let (agent, caller) = talking_call(&holdfast, "a1", AGENT_TONE, CALLER_TONE);

    let mut wrong = Vec::new();
    // (code, mode, does the agent hear sue, does the caller)
    for (code, mode, to_agent, to_caller) in [
        ("*50", "listen", false, false),
        ("*51", "whisper", true, false),
        ("*52", "barge", true, true),
    ] {
        let before = sue.heard().len();
        let calls = sue.events("CALL_ESTABLISHED");
        let target = format!("sip:{code}a1@{}", holdfast.sip);
        assert!(
            matches!(sue.command("dial", &target), Some((true, _))),
            "{}",
            sue.log()
        );
        assert!(
            wait_until(Duration::from_secs(10), || sue.events("CALL_ESTABLISHED")
                > calls),
            "{mode}: holdfast answers the supervisor\n{}\n{}",
            log_tail(&holdfast),
            sue.log()
        );
        // The wallboard shows it.
        let agents = get_json(api, "/api/agents");
        if agents[0]["monitored_by"] != "sue" || agents[0]["monitor_mode"] != mode {
            wrong.push(format!("{mode}: the agents' view says {agents}"));
        }
        let from = Instant::now() + Duration::from_millis(800);
        let to = from + Duration::from_millis(1500);
        sleep_until(to + Duration::from_millis(200));
        let closed = sue.events("CALL_CLOSED");
        assert!(sue.hangup(), "{}", sue.log());
        assert!(
            wait_until(Duration::from_secs(5), || sue.events("CALL_CLOSED")
                > closed),
            "{}",
            sue.log()
        );
        std::thread::sleep(Duration::from_millis(300));
        let sue_heard = sue.heard();
        // The supervisor's own recording of this call, less its first and last half second.
        let hers = sue_heard.get(before + 4_000..sue_heard.len().saturating_sub(4_000));
        heard(
            &format!("{mode}: sue"),
            hers.unwrap_or_default(),
            [true, true, false],
            &mut wrong,
        );
        heard(
            &format!("{mode}: the agent"),
            &agent.rtp.heard_between(from, to),
            [true, false, to_agent],
            &mut wrong,
        );
        heard(
            &format!("{mode}: the caller"),
            &caller.rtp.heard_between(from, to),
            [false, true, to_caller],
            &mut wrong,
        );
    }
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        log_tail(&holdfast)
    );

    let log = common::held::plain(&holdfast.log());
    let joined = log.matches("supervisor joined call").count();
    let left = log.matches("supervisor left call").count();
    assert_eq!((joined, left), (3, 3), "{log}");
    let agents = get_json(api, "/api/agents");
    assert!(agents[0]["monitored_by"].is_null(), "{agents}");
    // The call itself goes on, untouched.
    let code = caller.ua.request(&caller.call, "BYE", 2, "").map(|r| r.0);
    assert_eq!(code, Some(200), "{}", log_tail(&holdfast));
}
