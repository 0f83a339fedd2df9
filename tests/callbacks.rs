//! End to end callbacks (docs/behaviour.md §6): SIPp callers press 1 (RFC 4733 from the pcap that ships
//! with SIPp, and SIP INFO), hear the confirmation and are hung up; an agent registers and a
//! SIPp "trunk" receives the callback INVITEs for the right numbers, in order, and is bridged
//! to the agent. The crash tests kill holdfast with SIGKILL before any callback is dialled
//! (a restart on the same database dials every one, once, in order) and while the caller's
//! phone rings (the restart cancels that INVITE before the callback is dialled again).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::dialback::{callers_press_one, dialled, trunk, uas, wait_exit};
use common::{Holdfast, Setup, free_udp_port, scratch_dir};

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

/// Registers alice with the agent scenario listening on `agent_port`.
fn register_agent(holdfast: &Holdfast, agent_port: u16) {
    common::register_sipp_agent(holdfast, "alice", "alice-secret", agent_port);
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

/// `[[trunk]] transport = "tcp"`: the dial-back INVITE, its ACK and the BYE reach a trunk
/// that listens on TCP only, over a connection holdfast opens.
#[test]
fn a_callback_reaches_a_trunk_over_tcp() {
    let trunk_port = free_udp_port();
    let mut config = setup(44_500, trunk_port, None);
    config.trunk_extra = "transport = \"tcp\"\n".into();
    let holdfast = Holdfast::start("callback-tcp", &config);
    callers_press_one(&holdfast, &[("caller_press1.xml", "+15551230021")]);
    let trunk_log = holdfast.dir.join("trunk.log");
    let log = trunk_log.display().to_string();
    let mut trunk = uas(
        "trunk_callback.xml",
        trunk_port,
        1,
        &[
            "-d",
            "1500",
            "-trace_msg",
            "-message_file",
            &log,
            "-t",
            "t1",
            "-max_socket",
            "100",
        ],
    );
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 1, &[]);
    register_agent(&holdfast, agent_port);
    assert!(
        wait_exit(&mut trunk, Duration::from_secs(60)),
        "trunk scenario (TCP only) failed; holdfast:\n{}",
        holdfast.log()
    );
    assert!(
        wait_exit(&mut agent, Duration::from_secs(10)),
        "agent scenario failed"
    );
    assert_eq!(dialled(&trunk_log), vec!["+15551230021"]);
    let messages = std::fs::read_to_string(&trunk_log).unwrap_or_default();
    assert!(
        messages.contains("SIP/2.0/TCP"),
        "the INVITE said TCP:\n{messages}"
    );
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

/// One SIP message in a SIPp `-trace_msg` log.
#[derive(Debug)]
struct Traced {
    /// Received by SIPp (else sent).
    received: bool,
    /// The request or status line.
    start: String,
    call_id: String,
    /// The top Via's branch.
    branch: String,
}

/// The messages of a SIPp message trace, in order.
fn trace(log: &Path) -> Vec<Traced> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut messages = Vec::new();
    let mut current: Option<(bool, Vec<&str>)> = None;
    for line in text.lines() {
        let (received, sent) = (
            line.contains("message received"),
            line.contains("message sent"),
        );
        if received || sent {
            messages.extend(current.take());
            current = Some((received, Vec::new()));
        } else if let Some((_, lines)) = &mut current {
            lines.push(line.trim());
        }
    }
    messages.extend(current);
    let value = |lines: &[&str], name: &str| {
        lines
            .iter()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&name.to_ascii_lowercase())
            })
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_default()
    };
    messages
        .into_iter()
        .filter_map(|(received, lines)| {
            let start = lines.iter().find(|l| l.contains("SIP/2.0"))?.to_string();
            let via = value(&lines, "Via:");
            let branch = via
                .split(';')
                .find_map(|p| p.trim().strip_prefix("branch="))
                .unwrap_or_default()
                .to_string();
            Some(Traced {
                received,
                start,
                call_id: value(&lines, "Call-ID:"),
                branch,
            })
        })
        .collect()
}

#[test]
fn a_dial_back_ringing_at_kill_9_is_cancelled_before_it_is_retried() {
    let data = scratch_dir("callback-middial-data");
    let trunk_port = free_udp_port();
    let sip_port = free_udp_port();
    let number = "+15551230021";
    let setup = |data: &Path| {
        let mut setup = setup(43_000, trunk_port, Some(data.to_path_buf()));
        // The restart listens where the first process did: the trunk answers the Via of
        // the INVITE sent before the crash.
        setup.sip_port = Some(sip_port);
        setup
    };
    let mut first = Holdfast::start("callback-middial-1", &setup(&data));
    callers_press_one(&first, &[("caller_press1.xml", number)]);
    // A trunk whose called party rings and never answers, for the INVITE before the crash
    // and the retry after it; it logs every message.
    let trunk_log = first.dir.join("trunk.log");
    let log_path = trunk_log.display().to_string();
    let mut trunk = uas(
        "trunk_ringing.xml",
        trunk_port,
        2,
        &["-trace_msg", "-message_file", &log_path],
    );
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 1, &[]);
    register_agent(&first, agent_port);
    assert!(
        first.wait_log("dialling caller", Duration::from_secs(30)),
        "{}",
        first.log()
    );
    // The caller's phone rings (180): holdfast dies.
    std::thread::sleep(Duration::from_millis(500));
    first.kill9();
    let _ = agent.kill();
    let _ = agent.wait();

    let second = Holdfast::start("callback-middial-2", &setup(&data));
    let log = second.log();
    assert_eq!(log.matches("callback restored").count(), 1, "{log}");
    assert!(
        log.contains("cancelling the INVITE sent before the restart"),
        "{log}"
    );
    // The retry's agent hangs up 2 s after answering, so the trunk sees that INVITE
    // cancelled too and its scenario ends.
    let agent_port = free_udp_port();
    let mut agent = uas("agent_hangup.xml", agent_port, 1, &["-d", "2000"]);
    register_agent(&second, agent_port);
    assert!(
        wait_exit(&mut trunk, Duration::from_secs(60)),
        "trunk scenario failed; holdfast:\n{}\ntrunk:\n{}",
        second.log(),
        std::fs::read_to_string(&trunk_log).unwrap_or_default()
    );
    let _ = agent.kill();
    let _ = agent.wait();

    let messages = trace(&trunk_log);
    let received: Vec<&Traced> = messages.iter().filter(|m| m.received).collect();
    let is = |m: &Traced, method: &str| m.start.starts_with(&format!("{method} "));
    let first_invite = received
        .iter()
        .find(|m| is(m, "INVITE"))
        .expect("the INVITE before the crash");
    assert!(
        first_invite
            .start
            .starts_with(&format!("INVITE sip:{number}@")),
        "{first_invite:?}"
    );
    let call_a = &first_invite.call_id;
    let position = |f: &dyn Fn(&Traced) -> bool| received.iter().position(|m| f(m));
    let cancel_a = position(&|m| is(m, "CANCEL") && &m.call_id == call_a)
        .expect("the INVITE from before the crash is cancelled");
    assert_eq!(
        received[cancel_a].branch, first_invite.branch,
        "the CANCEL names that INVITE's transaction (RFC 3261 §9.1)"
    );
    assert!(
        position(&|m| is(m, "ACK") && &m.call_id == call_a).is_some_and(|ack| ack > cancel_a),
        "its 487 is ACKed: {received:#?}"
    );
    // Never a second INVITE for that call: every INVITE with its Call-ID is a
    // retransmission of the first, and none comes after the CANCEL.
    for (i, m) in received.iter().enumerate() {
        if is(m, "INVITE") && &m.call_id == call_a {
            assert_eq!(m.branch, first_invite.branch, "{received:#?}");
            assert!(i < cancel_a, "{received:#?}");
        }
    }
    // The retry is a new call, and it came only after the CANCEL.
    let retry = position(&|m| is(m, "INVITE") && &m.call_id != call_a).expect("the retry");
    assert!(retry > cancel_a, "{received:#?}");
    assert!(
        received[retry]
            .start
            .starts_with(&format!("INVITE sip:{number}@"))
    );
    let log = second.log();
    assert!(log.contains("trunk answered 487 after a restart"), "{log}");
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

/// `POST /api/callbacks` (docs/behaviour.md §6): the token is required; a bad time, an
/// unknown queue, a number the queue may not call and a second request for the same number
/// are refused with their reason; a scheduled callback is not dialled before `not_before`
/// and is dialled then; `DELETE` cancels another one before its time.
#[test]
fn a_callback_scheduled_through_the_api_is_dialled_at_its_time_and_one_is_cancelled() {
    use common::api::{get_json_with, http_body};
    let trunk_port = free_udp_port();
    let api_port = common::phones::free_tcp_port();
    let mut config = setup(47_000, trunk_port, None);
    config.admin = format!("listen = \"127.0.0.1:{api_port}\"\ntoken = \"sekret\"\n");
    let holdfast = Holdfast::start("callback-scheduled", &config);
    let api: std::net::SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let trunk_log = holdfast.dir.join("trunk.log");
    let mut trunk = trunk(trunk_port, 1, &trunk_log);
    let agent_port = free_udp_port();
    let mut agent = uas("agent.xml", agent_port, 1, &[]);
    register_agent(&holdfast, agent_port);

    let at = |secs: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    };
    let post =
        |token: Option<&str>, body: String| http_body(api, "POST", "/api/callbacks", token, &body);
    let body = |number: &str, queue: &str, when: &str| {
        format!(r#"{{"number": "{number}", "queue": "{queue}", "not_before": "{when}"}}"#)
    };
    let soon = at(4);
    let (code, _) = post(None, body("+15551239999", "support", &soon));
    assert_eq!(code, 401, "the token is required");
    let (code, text) = post(Some("sekret"), body("+15551239999", "support", &soon));
    assert_eq!(code, 201, "{text}");
    let created: serde_json::Value = serde_json::from_str(&text).unwrap();
    let id = created["id"].as_i64().expect("an id");
    let posted = std::time::Instant::now();
    for (why, want, request) in [
        (
            "same number, same queue",
            409,
            body("+15551239999", "support", &at(60)),
        ),
        ("premium rate", 403, body("+19005550000", "support", &soon)),
        ("no such queue", 404, body("+15551237777", "sales", &soon)),
        (
            "not a time",
            400,
            body("+15551237777", "support", "tomorrow"),
        ),
        (
            "too far ahead",
            400,
            body("+15551237777", "support", &at(30 * 86_400)),
        ),
        ("not JSON", 400, "number=+15551237777".to_owned()),
    ] {
        let (code, text) = post(Some("sekret"), request);
        assert_eq!(code, want, "{why}: {text}");
        assert!(text.contains("\"error\""), "{why}: a reason: {text}");
    }
    // Another one an hour ahead, cancelled: never dialled, `failed` with the reason.
    let (code, text) = post(Some("sekret"), body("+15551238888", "support", &at(3600)));
    assert_eq!(code, 201, "{text}");
    let later: serde_json::Value = serde_json::from_str(&text).unwrap();
    let later = later["id"].as_i64().unwrap();
    let path = format!("/api/callbacks/{later}");
    assert_eq!(http_body(api, "DELETE", &path, None, "").0, 401);
    let (code, text) = http_body(api, "DELETE", &path, Some("sekret"), "");
    assert_eq!(code, 200, "{text}");
    assert_eq!(
        http_body(api, "DELETE", &path, Some("sekret"), "").0,
        404,
        "once"
    );
    let listed = get_json_with(api, "/api/callbacks", "sekret");
    let cancelled = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == later)
        .expect("listed");
    assert_eq!(cancelled["state"], "failed");
    assert!(
        cancelled["last_error"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );

    // Not before its time (checked a second before it), then dialled.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(posted.elapsed()));
    assert!(dialled(&trunk_log).is_empty(), "dialled before not_before");
    assert!(
        wait_exit(&mut trunk, Duration::from_secs(60)),
        "trunk scenario failed; holdfast:\n{}",
        holdfast.log()
    );
    assert!(wait_exit(&mut agent, Duration::from_secs(10)));
    assert_eq!(dialled(&trunk_log), ["+15551239999"]);
    let log = holdfast.log();
    assert!(log.contains("scheduled callback joined its queue"), "{log}");
    let done = get_json_with(api, "/api/callbacks", "sekret");
    let done = done
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(done["state"], "completed", "{done}");
}
