//! Calls on the line survive holdfast itself (docs/behaviour.md §3, §4, §5, §9, §13).
//!
//! After `kill -9`, holdfast is started again with the same config, data directory and SIP
//! port. Every caller that was waiting is back on hold at its place: the music comes from
//! the same RTP port with the same SSRC, the sequence number going on and the timestamp
//! jumped by the outage (RFC 3550 §5.1), the marker bit on the first packet after the gap;
//! each is asked with an in-dialog OPTIONS whether its phone still knows the call, and one
//! that answers `481` (or never answers) leaves the line. Bridged calls come back talking
//! both ways, their agents still registered. A graceful upgrade (a second process started
//! on the same config takes over from the running one) hands every caller over with a gap
//! in the music under 100 ms. SIPp plays most callers; raw UDP callers and agents' phones
//! of the test's own (`common::held`) record every RTP packet and answer holdfast's
//! requests as a UA does.

mod common;

use std::process::Output;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Holdfast;
use common::held::{
    AgentPhone, Probe, RESUME_WITHIN, Recorder, Request, Responder, Restart, TONE_WINDOW, branch,
    by_ssrc, check_handover, check_handovers, check_resumed, check_step, check_tone, difference,
    exit_status, line, line_empties, log_tail, plain, resumed, setup, sipp_callers, sipp_succeeded,
    sleep_until, wait_admin, wait_until, without,
};

/// RTP ranges above the ephemeral ports (32768–60999): no other socket can take a restored
/// call's port while holdfast is down (or between two processes).
const RTP_BASE: u16 = 61_000;
const RTP_BASE_TIMER_F: u16 = 62_000;
const RTP_BASE_UPGRADE: u16 = 63_000;
const RTP_BASE_BRIDGED: u16 = 64_000;
/// SIPp runs, each with its own RTP sink, and the callers each places.
const SIPP_RUNS: usize = 4;
const SIPP_CALLS: usize = 48;
/// Raw callers of the test's own.
const PROBES: usize = 8;
/// How long the SIPp callers hold before they hang up (their `-d`).
const HOLD: Duration = Duration::from_secs(20);
/// How long holdfast stays dead.
const OUTAGE: Duration = Duration::from_secs(1);
/// Timer F (64 × T1): a non-INVITE transaction without an answer gives up after it.
const TIMER_F: Duration = Duration::from_secs(32);
/// The SIPp callers of the upgrade test (with the probes, 200 callers).
const UPGRADE_SIPP_CALLS: usize = 192;
/// The longest gap in the music a caller may hear when a new process takes over.
const HANDOVER_GAP: Duration = Duration::from_millis(100);
/// Bridged calls, one per agent, and the tones each side talks.
const AGENTS: usize = 5;
const CALLER_TONE: f32 = 400.0;
const AGENT_TONE: f32 = 1000.0;

/// 200 callers hold (192 from SIPp, 8 probes of the test's own), with no agent, when
/// holdfast is killed with SIGKILL; a second holdfast starts a second later with the same
/// config, data directory and SIP port. It restores every one of them (one `held call
/// restored` each): each probe hears its music again within 2 s from the same RTP port
/// (the one in the SDP answer) with the same SSRC, the sequence number going on, the marker
/// bit on the first packet after the gap and the timestamp jumped by the gap; so does every
/// SIPp caller's stream. Each probe is asked with an in-dialog OPTIONS; the one whose phone
/// answers `481` (its caller hung up during the outage) leaves the line at once and its
/// music stops (`restored call gone`), and the others keep their places: the admin API lists
/// the same line as before the kill, without it. The probes then hang up (`200`; `481` for
/// the one that is gone) and SIPp's callers hang up at the end of their hold, every call a
/// success.
#[test]
fn held_callers_survive_kill_9_with_their_rtp_stream_and_place() {
    let (setup, api) = setup("survive", RTP_BASE);
    let mut first = Holdfast::start("survive-1", &setup);
    wait_admin(api);

    // Half the probes call first, then SIPp's callers, then the other half: probes stand at
    // the front of the line and at its back.
    let mut probes: Vec<Probe> = (0..PROBES / 2).map(|n| Probe::dial(&first, n)).collect();
    let sinks: Vec<Recorder> = (0..SIPP_RUNS).map(|_| Recorder::start()).collect();
    let sipp_started = Instant::now();
    let runs: Vec<JoinHandle<Output>> = sinks
        .iter()
        .map(|sink| sipp_callers(first.sip, sink.port, SIPP_CALLS, HOLD))
        .collect();
    let sipp_in = PROBES / 2 + SIPP_RUNS * SIPP_CALLS;
    assert!(
        wait_until(Duration::from_secs(20), || line(api).len() == sipp_in),
        "SIPp's callers did not all get in: {} waiting\n{}",
        line(api).len(),
        log_tail(&first)
    );
    probes.extend((PROBES / 2..PROBES).map(|n| Probe::dial(&first, n)));

    // Everyone is in line and has heard at least half a second of music.
    let all = PROBES + SIPP_RUNS * SIPP_CALLS;
    let hearing = wait_until(Duration::from_secs(10), || {
        probes.iter().all(|p| p.rtp.streams_heard(25) == 1)
            && sinks.iter().all(|s| s.streams_heard(25) == SIPP_CALLS)
    });
    assert!(
        hearing,
        "not every caller hears music\n{}",
        log_tail(&first)
    );
    let before = line(api);
    assert_eq!(before.len(), all, "{}", log_tail(&first));
    assert!(
        before.iter().enumerate().all(|(i, w)| w.1 == i as u64 + 1),
        "positions 1 to {all}: {before:?}"
    );
    for probe in &probes {
        assert!(
            before.iter().any(|w| w.0 == probe.call.call_id),
            "probe {} is not in line",
            probe.call.call_id
        );
    }
    // SIPp's callers must all still hold when the checks after the restart are done.
    assert!(
        sipp_started.elapsed() + Duration::from_secs(10) < HOLD,
        "getting {all} callers in took {:?}: too slow for a {HOLD:?} hold",
        sipp_started.elapsed()
    );

    // The second probe's caller hangs up while holdfast is down: its phone answers the
    // OPTIONS after the restart with 481. Every other phone answers 200.
    let gone = 1;
    first.kill9();
    let responders: Vec<Responder> = probes
        .iter()
        .enumerate()
        .map(|(i, p)| p.answer_options(Some(if i == gone { 481 } else { 200 })))
        .collect();
    std::thread::sleep(OUTAGE);
    let began = Instant::now();
    let second = Holdfast::start("survive-2", &setup);
    let restart = Restart {
        began,
        ready: Instant::now(),
    };
    wait_admin(api);

    // The same line without the caller who hung up, at once.
    let expected = without(&before, &probes[gone].call.call_id);
    let in_place = wait_until(Duration::from_secs(5), || line(api) == expected);
    let settled = Instant::now();
    assert!(
        in_place,
        "the line after the restart: {}\n{}",
        difference(&expected, &line(api)),
        log_tail(&second)
    );
    assert!(
        second.wait_log("restored call gone", Duration::from_secs(2)),
        "{}",
        log_tail(&second)
    );
    let restored = || second.log().matches("held call restored").count();
    assert!(
        wait_until(Duration::from_secs(5), || restored() >= all),
        "{} of {all} calls restored\n{}",
        restored(),
        log_tail(&second)
    );

    // Three seconds of music after the restart, then the recordings are judged.
    sleep_until(restart.ready + Duration::from_secs(3));
    let requests: Vec<Vec<Request>> = responders.into_iter().map(Responder::stop).collect();
    let mut wrong = Vec::new();
    for (i, (probe, requests)) in probes.iter().zip(&requests).enumerate() {
        let name = format!("probe {i}");
        let options = probe.options(&name, requests, &mut wrong);
        if let Some(asked) = options.first()
            && asked.at.saturating_duration_since(restart.ready) > RESUME_WITHIN
        {
            wrong.push(format!(
                "{name}: first OPTIONS {:?} after the restart",
                asked.at.duration_since(restart.ready)
            ));
        }
        if i != gone
            && let Err(e) = check_resumed(&probe.rtp.packets(), &restart, Some(probe.answer_port))
        {
            wrong.push(format!("{name}: {e}"));
        }
    }
    let late = probes[gone]
        .rtp
        .packets()
        .iter()
        .filter(|p| p.at > settled + Duration::from_millis(500))
        .count();
    if late > 0 {
        wrong.push(format!(
            "probe {gone} answered 481 and left the line, yet {late} RTP packets came after"
        ));
    }
    let mut streams = 0;
    for (run, sink) in sinks.iter().enumerate() {
        for (ssrc, packets) in by_ssrc(&sink.packets()) {
            if packets[0].at >= restart.began {
                wrong.push(format!(
                    "SIPp run {run}: a new stream {ssrc:08x} after the restart"
                ));
                continue;
            }
            streams += 1;
            if let Err(e) = check_resumed(&packets, &restart, None) {
                wrong.push(format!("SIPp run {run}, SSRC {ssrc:08x}: {e}"));
            }
        }
    }
    if streams != SIPP_RUNS * SIPP_CALLS {
        wrong.push(format!(
            "{streams} SIPp streams before the kill, {} calls",
            SIPP_RUNS * SIPP_CALLS
        ));
    }
    assert!(
        wrong.is_empty(),
        "{} problems after the restart:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        log_tail(&second)
    );
    assert!(
        sipp_started.elapsed() < HOLD,
        "the checks ended {:?} after SIPp started: its callers may have hung up already",
        sipp_started.elapsed()
    );
    let log = second.log();
    assert_eq!(
        log.matches("held call restored").count(),
        all,
        "one per caller held at the kill\n{}",
        log_tail(&second)
    );
    assert_eq!(
        log.matches("restored call gone").count(),
        1,
        "{}",
        log_tail(&second)
    );

    // The probes hang up: the restored dialogs answer 200, the gone one 481.
    for (i, probe) in probes.iter().enumerate() {
        let code = probe.ua.request(&probe.call, "BYE", 2, "").map(|r| r.0);
        let want = if i == gone { 481 } else { 200 };
        assert_eq!(code, Some(want), "probe {i}'s BYE\n{}", log_tail(&second));
    }
    assert_eq!(
        line(api).len(),
        SIPP_RUNS * SIPP_CALLS,
        "only SIPp's callers are left"
    );

    // SIPp's callers hang up at the end of their hold: every BYE answered 200 and every
    // OPTIONS answered by SIPp, so every call is a success.
    for run in runs {
        sipp_succeeded(run, &second);
    }
    line_empties(api);
}

/// A restored caller whose phone never answers the OPTIONS after the restart (it is gone
/// and nothing says so) keeps its place and its music while holdfast retransmits that one
/// OPTIONS (RFC 3261 §17.1.2); at Timer F, 32 s after it was first sent, the caller leaves
/// the line (`restored call gone`), its music stops, and its BYE gets `481`. The caller
/// behind it, whose phone answered, moves up and hangs up with a `200`.
#[test]
fn a_caller_who_never_answers_the_probe_is_removed_after_timer_f() {
    let (setup, api) = setup("timer-f", RTP_BASE_TIMER_F);
    let mut first = Holdfast::start("timer-f-1", &setup);
    wait_admin(api);
    let silent = Probe::dial(&first, 0);
    let answering = Probe::dial(&first, 1);
    let hearing = wait_until(Duration::from_secs(5), || {
        silent.rtp.streams_heard(25) == 1 && answering.rtp.streams_heard(25) == 1
    });
    assert!(hearing, "{}", first.log());
    let before = line(api);
    assert_eq!(
        before,
        [
            (silent.call.call_id.clone(), 1),
            (answering.call.call_id.clone(), 2)
        ]
    );

    first.kill9();
    let responders = [
        silent.answer_options(None),
        answering.answer_options(Some(200)),
    ];
    std::thread::sleep(OUTAGE);
    let began = Instant::now();
    let second = Holdfast::start("timer-f-2", &setup);
    let restart = Restart {
        began,
        ready: Instant::now(),
    };
    wait_admin(api);
    assert!(
        wait_until(Duration::from_secs(5), || {
            second.log().matches("held call restored").count() == 2
        }),
        "{}",
        second.log()
    );

    // The silent caller keeps its place until Timer F fires.
    let left = wait_until(TIMER_F + Duration::from_secs(8), || {
        !line(api).iter().any(|w| w.0 == silent.call.call_id)
    });
    let left_at = Instant::now();
    assert!(left, "the silent caller never left\n{}", second.log());
    // A second more of music for the caller who stays.
    std::thread::sleep(Duration::from_secs(1));
    let [silent_requests, answering_requests] = responders.map(Responder::stop);

    let mut wrong = Vec::new();
    let options = silent.options("the silent probe", &silent_requests, &mut wrong);
    answering.options("the answering probe", &answering_requests, &mut wrong);
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), second.log());
    let sent = options[0].at;
    assert!(
        sent.saturating_duration_since(restart.ready) <= RESUME_WITHIN,
        "the OPTIONS came {:?} after the restart",
        sent.duration_since(restart.ready)
    );
    // One transaction, retransmitted (Timer E: 0.5 s doubling to 4 s), then given up.
    assert!(
        options
            .iter()
            .all(|r| branch(&r.text) == branch(&options[0].text)),
        "one OPTIONS transaction, retransmitted"
    );
    assert!(
        options.len() >= 5,
        "{} OPTIONS in {TIMER_F:?}: retransmissions expected",
        options.len()
    );
    let waited = left_at.duration_since(sent);
    assert!(
        (TIMER_F - Duration::from_secs(1)..=TIMER_F + Duration::from_secs(3)).contains(&waited),
        "the silent caller left {waited:?} after the first OPTIONS (Timer F is {TIMER_F:?})"
    );

    for (name, probe) in [("silent", &silent), ("answering", &answering)] {
        if let Err(e) = check_resumed(&probe.rtp.packets(), &restart, Some(probe.answer_port)) {
            panic!("the {name} probe: {e}\n{}", second.log());
        }
    }
    let late = silent
        .rtp
        .packets()
        .iter()
        .filter(|p| p.at > left_at + Duration::from_millis(500))
        .count();
    assert_eq!(late, 0, "RTP to the silent caller after it left the line");
    let log = second.log();
    assert_eq!(log.matches("restored call gone").count(), 1, "{log}");
    assert_eq!(line(api), [(answering.call.call_id.clone(), 1)]);

    assert_eq!(
        silent.ua.request(&silent.call, "BYE", 2, "").map(|r| r.0),
        Some(481)
    );
    assert_eq!(
        answering
            .ua
            .request(&answering.call, "BYE", 2, "")
            .map(|r| r.0),
        Some(200)
    );
    assert!(line(api).is_empty());
}

/// 50 callers hold (42 from SIPp, 8 probes) when a second holdfast is started with the same
/// config: it asks the running one to take over (`data_dir/holdfast.sock`), which hands its
/// SIP socket over and exits 0 (`a new process takes over`, `handed over; holdfast
/// stopped`); the new one (`taking over`) restores every call (one `held call restored`
/// each) and asks each caller with an in-dialog OPTIONS, as after a crash. What a caller
/// hears of the handover is the longest silence between two consecutive RTP packets around
/// it: under 100 ms for every probe, whose stream stays one SSRC from one port with the
/// sequence number going on (+1 to +3 at each step, none received twice). The line is the
/// same, the probes' BYEs get `200` from the new process, and every SIPp call succeeds.
#[test]
fn a_graceful_upgrade_hands_the_callers_over_with_a_gap_under_100_ms() {
    let (setup, api) = setup("upgrade", RTP_BASE_UPGRADE);
    let mut first = Holdfast::start("upgrade-1", &setup);
    wait_admin(api);
    let mut probes: Vec<Probe> = (0..PROBES / 2).map(|n| Probe::dial(&first, n)).collect();
    let sink = Recorder::start();
    let sipp_started = Instant::now();
    let run = sipp_callers(first.sip, sink.port, UPGRADE_SIPP_CALLS, HOLD);
    let (all, sipp_in) = (PROBES + UPGRADE_SIPP_CALLS, PROBES / 2 + UPGRADE_SIPP_CALLS);
    assert!(
        wait_until(Duration::from_secs(20), || line(api).len() == sipp_in),
        "SIPp's callers did not all get in\n{}",
        log_tail(&first)
    );
    probes.extend((PROBES / 2..PROBES).map(|n| Probe::dial(&first, n)));
    let hearing = wait_until(Duration::from_secs(10), || {
        probes.iter().all(|p| p.rtp.streams_heard(25) == 1)
            && sink.streams_heard(25) == UPGRADE_SIPP_CALLS
    });
    assert!(
        hearing,
        "not every caller hears music\n{}",
        log_tail(&first)
    );
    let before = line(api);
    assert_eq!(before.len(), all, "{}", log_tail(&first));

    let responders: Vec<Responder> = probes.iter().map(|p| p.answer_options(Some(200))).collect();
    let began = Instant::now();
    let second = Holdfast::start("upgrade-2", &setup);
    // Its readiness check may have been answered by the old process before the handover:
    // the handover is over once the old one has exited and the new one restored the calls.
    let status = exit_status(first.pid(), Duration::from_secs(10));
    assert!(
        status == Some(0) && !first.alive(),
        "the old process: exit status {status:?}\n{}",
        log_tail(&first)
    );
    assert!(
        second.wait_log("held calls restored", Duration::from_secs(10)),
        "{}",
        log_tail(&second)
    );
    let handed = Instant::now();
    wait_admin(api);
    assert!(
        wait_until(Duration::from_secs(5), || line(api) == before),
        "the line after the handover: {}\n{}",
        difference(&before, &line(api)),
        log_tail(&second)
    );

    // Two seconds of music after the handover, then the recordings are judged.
    let until = handed + Duration::from_secs(2);
    sleep_until(until + Duration::from_millis(300));
    let requests: Vec<Vec<Request>> = responders.into_iter().map(Responder::stop).collect();
    let mut wrong = Vec::new();
    // The gap: the longest time between two consecutive RTP packets a probe received from
    // the second start until two seconds after the handover, i.e. the silence its caller
    // heard while one process handed over to the other.
    for (i, (probe, requests)) in probes.iter().zip(&requests).enumerate() {
        let name = format!("probe {i}");
        probe.options(&name, requests, &mut wrong);
        match check_handover(&probe.rtp.packets(), began, until) {
            Ok(gap) => {
                println!("{name}: longest gap {gap:?}");
                if gap > HANDOVER_GAP {
                    wrong.push(format!("{name}: a gap of {gap:?} in the music"));
                }
            }
            Err(e) => wrong.push(format!("{name}: {e}")),
        }
    }
    // SIPp's streams go on as well; their gaps are shown, the probes' are the measure.
    let sipp = check_handovers(
        &sink.packets(),
        UPGRADE_SIPP_CALLS,
        began,
        until,
        &mut wrong,
    );
    println!("SIPp's streams: longest gap {sipp:?}");
    assert!(
        wrong.is_empty(),
        "{} problems across the handover:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        log_tail(&second)
    );
    assert!(
        sipp_started.elapsed() < HOLD,
        "the checks ended {:?} after SIPp started: its callers may have hung up already",
        sipp_started.elapsed()
    );
    let (old_log, log) = (first.log(), second.log());
    let logged = old_log.contains("a new process takes over")
        && old_log.contains("handed over; holdfast stopped")
        && log.contains("taking over")
        && log.matches("held call restored").count() == all
        && !log.contains("restored call gone");
    assert!(logged, "{}\n{}", log_tail(&first), log_tail(&second));

    for (i, probe) in probes.iter().enumerate() {
        let code = probe.ua.request(&probe.call, "BYE", 2, "").map(|r| r.0);
        assert_eq!(code, Some(200), "probe {i}'s BYE\n{}", log_tail(&second));
    }
    sipp_succeeded(run, &second);
    line_empties(api);
}

/// Five callers each talk to an agent through holdfast's relay (the callers' 400 Hz tone
/// heard by the agents, the agents' 1000 Hz by the callers) when holdfast is killed with
/// SIGKILL and started again a second later. The agents' registrations come back from the
/// store (`registration restored`: no phone registers again) and so do the calls (`held
/// call restored`, `bridged=true`); both sides are asked with an in-dialog OPTIONS, and
/// within 2 s each side hears the other's tone again, the callers' stream going on with its
/// SSRC and sequence number. The callers then hang up (`200`) and holdfast sends each agent
/// a BYE.
#[test]
fn bridged_calls_survive_kill_9_and_talk_again_both_ways() {
    let (mut setup, _) = setup("bridged", RTP_BASE_BRIDGED);
    // SIPp registers the agents with MD5 only.
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.extra = (1..=AGENTS)
        .map(|n| format!("[[agent]]\nuser = \"a{n}\"\npassword = \"a{n}-secret\"\n\n"))
        .collect::<String>()
        + "[[queue]]\nname = \"support\"\n\n[[route]]\nnumber = \"*\"\nqueue = \"support\"\n";
    let mut first = Holdfast::start("bridged-1", &setup);
    let agents: Vec<AgentPhone> = (1..=AGENTS)
        .map(|n| AgentPhone::register(&first, &format!("a{n}"), AGENT_TONE))
        .collect();
    // Every agent is free: each caller goes straight to one, which answers at once.
    let callers: Vec<Probe> = (0..AGENTS)
        .map(|n| Probe::dial_talking(&first, n, CALLER_TONE))
        .collect();
    let one_call_each = || agents.iter().all(|a| a.calls().len() == 1);
    assert!(
        wait_until(Duration::from_secs(5), one_call_each),
        "each agent answers one call\n{}",
        log_tail(&first)
    );
    let talking = Instant::now() + Duration::from_millis(300);
    sleep_until(talking + TONE_WINDOW);
    let mut wrong = Vec::new();
    for (i, caller) in callers.iter().enumerate() {
        if let Err(e) = check_tone(&caller.rtp, talking, AGENT_TONE, CALLER_TONE) {
            wrong.push(format!("caller {i} before the kill: {e}"));
        }
    }
    for agent in &agents {
        if let Err(e) = check_tone(&agent.rtp, talking, CALLER_TONE, AGENT_TONE) {
            wrong.push(format!("agent {} before the kill: {e}", agent.user));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        log_tail(&first)
    );

    first.kill9();
    let responders: Vec<Responder> = callers
        .iter()
        .map(|c| c.answer_options(Some(200)))
        .collect();
    std::thread::sleep(OUTAGE);
    let began = Instant::now();
    let second = Holdfast::start("bridged-2", &setup);
    let restart = Restart {
        began,
        ready: Instant::now(),
    };
    // Each side's first packet back comes within RESUME_WITHIN; a TONE_WINDOW from it is
    // judged.
    sleep_until(restart.ready + RESUME_WITHIN + TONE_WINDOW + Duration::from_millis(200));
    let requests: Vec<Vec<Request>> = responders.into_iter().map(Responder::stop).collect();
    for (i, (caller, requests)) in callers.iter().zip(&requests).enumerate() {
        let name = format!("caller {i}");
        caller.options(&name, requests, &mut wrong);
        let back = resumed(&caller.rtp.packets(), &restart).and_then(|(last, next)| {
            check_step(&last, &next)?;
            check_tone(&caller.rtp, next.at, AGENT_TONE, CALLER_TONE)
        });
        if let Err(e) = back {
            wrong.push(format!("{name} after the restart: {e}"));
        }
    }
    for agent in &agents {
        if agent.in_dialog("OPTIONS", began) == 0 {
            wrong.push(format!("agent {}: no in-dialog OPTIONS", agent.user));
        }
        let back = resumed(&agent.rtp.packets(), &restart)
            .and_then(|(_, next)| check_tone(&agent.rtp, next.at, CALLER_TONE, AGENT_TONE));
        if let Err(e) = back {
            wrong.push(format!("agent {} after the restart: {e}", agent.user));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} problems after the restart:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        log_tail(&second)
    );

    for (i, caller) in callers.iter().enumerate() {
        let code = caller.ua.request(&caller.call, "BYE", 2, "").map(|r| r.0);
        assert_eq!(code, Some(200), "caller {i}'s BYE\n{}", log_tail(&second));
    }
    let hung_up = || agents.iter().all(|a| a.in_dialog("BYE", began) > 0);
    assert!(
        wait_until(Duration::from_secs(3), hung_up) && one_call_each(),
        "holdfast hangs up each agent, and calls none again\n{}",
        log_tail(&second)
    );
    let log = plain(&second.log());
    let restored: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("held call restored"))
        .collect();
    assert!(
        restored.len() == AGENTS && restored.iter().all(|l| l.contains("bridged=true")),
        "{AGENTS} bridged calls restored:\n{}",
        restored.join("\n")
    );
    assert_eq!(
        log.matches("registration restored").count(),
        AGENTS,
        "{}",
        log_tail(&second)
    );
    assert!(!log.contains("restored call gone"), "{}", log_tail(&second));
}
