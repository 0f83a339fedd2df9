//! Supervisors monitoring (docs/behaviour.md §5, "Listening, whispering, barging"): only a
//! `[[supervisor]]` with its password may; only an agent on a bridged call can be monitored,
//! by one supervisor at a time; the engine is told to mix on the call's own legs; the end
//! of the call hangs the supervisor up; each start and stop is a call event.

use super::agents::{AGENT, CONFIG_AGENTS, agent_reply, find, register_alice};
use super::codes::dial_as;
use super::*;
use crate::media::mix::MonitorMode;
use crate::store::CallEventKind;

fn config() -> String {
    CONFIG_AGENTS.to_owned() + "[[supervisor]]\nuser = \"sue\"\npassword = \"sue-secret\"\n"
}

fn answered(sent: &[(SocketAddr, String)], call_id: &str) -> Option<u16> {
    sent.iter()
        .filter(|(_, t)| t.contains(&format!("Call-ID: {call_id}\r\n")))
        .filter_map(|(_, t)| status(t))
        .find(|&c| c >= 200)
}

/// A caller bridged to alice (registered first): the caller's 200, to take its tag from.
fn bridged_call(h: &mut Harness) -> String {
    register_alice(h);
    bridged_call_after_register(h)
}

fn events(h: &mut Harness, kind: CallEventKind) -> Vec<serde_json::Value> {
    h.b2bua
        .records_for_tests()
        .into_iter()
        .filter_map(|r| match r {
            Record::Event(e) if e.kind == kind => Some(e.detail.unwrap_or_default()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_supervisor_listens_until_the_call_ends() {
    let mut h = Harness::with_config(&config());
    let ok = bridged_call(&mut h);
    let (caller_stream, agent_stream) = h.media.bridged[0];
    let sent = dial_as(&mut h, "sue", "*50alice", "s1", "sue-secret");
    assert_eq!(answered(&sent, "s1"), Some(200), "{sent:?}");
    let &(supervisor, caller, agent, mode) = h.media.monitored.last().expect("monitoring");
    assert_eq!(
        (caller, agent, mode),
        (caller_stream, agent_stream, MonitorMode::Listen)
    );
    assert_eq!(
        supervisor.shard(),
        agent_stream.shard(),
        "opened beside the call"
    );
    assert_eq!(
        events(&mut h, CallEventKind::MonitorStart),
        [serde_json::json!({"supervisor": "sue", "mode": "listen"})]
    );
    // One supervisor per call.
    let sent = dial_as(&mut h, "sue", "*52alice", "s2", "sue-secret");
    assert_eq!(answered(&sent, "s2"), Some(486), "{sent:?}");
    // The caller hangs up: the agent and the supervisor are hung up.
    let tag = to_tag(&ok);
    h.deliver(TRUNK, &in_dialog("BYE", "c1", &tag, 2, "bye1"));
    let sent = h.take();
    let byes: Vec<&str> = sent
        .iter()
        .filter(|(_, t)| t.starts_with("BYE "))
        .filter_map(|(_, t)| t.lines().find(|l| l.starts_with("Call-ID:")))
        .collect();
    assert!(
        byes.contains(&"Call-ID: s1"),
        "the supervisor is hung up: {byes:?}"
    );
    assert!(h.media.closed.contains(&supervisor));
    assert_eq!(events(&mut h, CallEventKind::MonitorStop).len(), 1);
    assert_eq!(h.b2bua.calls(), 0);
    h.b2bua.check_invariants();
}

#[test]
fn only_a_supervisor_may_and_only_an_agent_on_a_call_can_be_monitored() {
    let mut h = Harness::with_config(&config());
    register_alice(&mut h);
    // alice is free: nothing to listen to.
    let sent = dial_as(&mut h, "sue", "*51alice", "s1", "sue-secret");
    assert_eq!(answered(&sent, "s1"), Some(480), "{sent:?}");
    let sent = dial_as(&mut h, "sue", "*50nobody", "s2", "sue-secret");
    assert_eq!(answered(&sent, "s2"), Some(404), "{sent:?}");
    bridged_call_after_register(&mut h);
    // An agent is not a supervisor, even with its own password.
    let sent = dial_as(&mut h, "alice", "*50alice", "s3", "alice-secret");
    assert_eq!(answered(&sent, "s3"), Some(403), "{sent:?}");
    // The wrong password gets nothing.
    let sent = dial_as(&mut h, "sue", "*50alice", "s4", "guess");
    assert!(!matches!(answered(&sent, "s4"), Some(200)), "{sent:?}");
    assert!(h.media.monitored.is_empty());
    assert!(events(&mut h, CallEventKind::MonitorStart).is_empty());
}

/// A caller bridged to alice, who is registered: the caller's 200.
fn bridged_call_after_register(h: &mut Harness) -> String {
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let sent = h.take();
    let (_, agent_invite) = find(&sent, "INVITE ").expect("INVITE to the agent").clone();
    h.deliver(AGENT, &agent_reply(&agent_invite, 200, true));
    let sent = h.take();
    assert_eq!(h.media.bridged.len(), 1);
    sent.iter()
        .find(|(d, t)| d.to_string() == TRUNK && status(t) == Some(200))
        .expect("the caller is answered")
        .1
        .clone()
}
