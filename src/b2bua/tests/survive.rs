//! Calls on the line across a restart (docs/behaviour.md §13), in-process: what one
//! controller keeps is what the next one takes back (place, dialog, RTP port), and the
//! in-dialog OPTIONS after the restart keeps or ends each call.

use super::agents::{AGENT, CONFIG_AGENTS, agent_reply, find, register_alice};
use super::*;
use crate::queue::dispatch::AgentState;
use crate::store::{Kept, KeptKind, Record};

/// The kept rows of `kind` the controller wrote, in order: `(key, state)`.
fn kept_rows(h: &mut Harness, kind: KeptKind) -> Vec<(String, Option<String>)> {
    rows_of(&h.b2bua.records_for_tests(), kind)
}

/// The kept rows of `kind` among `records`, in order: `(key, state)`.
fn rows_of(records: &[Record], kind: KeptKind) -> Vec<(String, Option<String>)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Keep(Kept {
                kind: k,
                key,
                state,
            }) if *k == kind => Some((key.clone(), state.clone())),
            _ => None,
        })
        .collect()
}

/// The kept-call rows the controller wrote, in order: `(Call-ID, state)`.
fn kept(h: &mut Harness) -> Vec<(String, Option<String>)> {
    kept_rows(h, KeptKind::Call)
}

/// A caller answered and holding (ACKed); our tag in its dialog.
fn holding(h: &mut Harness, call: &str, from: &str) -> String {
    h.deliver(TRUNK, &invite(call, from));
    let ok = h
        .take()
        .into_iter()
        .find(|(_, t)| status(t) == Some(200))
        .expect("answered");
    let tag = to_tag(&ok.1);
    h.deliver(TRUNK, &in_dialog("ACK", call, &tag, 1, "ack"));
    tag
}

/// `request`'s response with `code`, headers copied as a UAS does (RFC 3261 §8.2.6).
fn reply(request: &str, code: u16) -> String {
    let copied: Vec<&str> = request
        .lines()
        .filter(|l| {
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                .iter()
                .any(|h| l.starts_with(h))
        })
        .collect();
    format!(
        "SIP/2.0 {code} Whatever\r\n{}\r\nContent-Length: 0\r\n\r\n",
        copied.join("\r\n")
    )
}

/// The restarted controller's requests with `method` for `call`.
fn requests_for<'a>(sent: &'a [(SocketAddr, String)], method: &str, call: &str) -> Vec<&'a str> {
    sent.iter()
        .map(|(_, t)| t.as_str())
        .filter(|t| {
            t.starts_with(&format!("{method} ")) && t.contains(&format!("Call-ID: {call}\r\n"))
        })
        .collect()
}

/// What the next process finds in the store: the last state written per Call-ID.
fn last_states(rows: &[(String, Option<String>)]) -> Vec<String> {
    let mut last: Vec<(String, Option<String>)> = Vec::new();
    for (key, state) in rows {
        last.retain(|(k, _)| k != key);
        last.push((key.clone(), state.clone()));
    }
    last.into_iter().filter_map(|(_, s)| s).collect()
}

#[test]
fn held_callers_come_back_at_their_places_and_the_probe_keeps_or_ends_them() {
    let mut first = Harness::new();
    holding(&mut first, "c1", "+15551230001");
    holding(&mut first, "c2", "+15550009999"); // VIP: ahead of c1
    let tag3 = holding(&mut first, "c3", "+15551230003");
    first.deliver(TRUNK, &in_dialog("BYE", "c3", &tag3, 2, "bye3"));
    let rows = kept(&mut first);
    assert_eq!(
        rows.iter()
            .map(|(k, s)| (k.as_str(), s.is_some()))
            .collect::<Vec<_>>(),
        [("c1", true), ("c2", true), ("c3", true), ("c3", false)],
        "written once holding, deleted when gone"
    );
    assert_eq!((first.position(1), first.position(2)), (Some(2), Some(1)));

    let mut second = Harness::with_seed(CONFIG, 2);
    second.now += Duration::from_secs(3);
    let states = last_states(&rows);
    assert_eq!(states.len(), 2);
    for state in &states {
        second.b2bua.restore_call(second.now, state).unwrap();
    }
    second.b2bua.restore_done(second.now);
    second.drain();
    // Same places, same RTP ports, music again.
    let positions: Vec<Option<usize>> = (1..=4).map(|n| second.position(n)).collect();
    assert_eq!(positions.iter().flatten().count(), 2);
    assert!(positions.contains(&Some(1)) && positions.contains(&Some(2)));
    assert_eq!(
        second
            .media
            .reopened
            .iter()
            .map(|(_, p)| *p)
            .collect::<Vec<_>>(),
        [20000, 20002]
    );
    assert_eq!(second.media.played.len(), 2);
    // Each restored caller is asked whether it is still there.
    let sent = second.take();
    let probe1 = requests_for(&sent, "OPTIONS", "c1");
    let probe2 = requests_for(&sent, "OPTIONS", "c2");
    assert_eq!((probe1.len(), probe2.len()), (1, 1), "{sent:?}");
    assert!(
        probe1[0].contains(";tag=f-c1"),
        "to the caller's tag: {}",
        probe1[0]
    );
    // c2 hung up while we were away: 481 ends it; c1 is there.
    second.deliver(TRUNK, &reply(probe2[0], 481));
    second.deliver(TRUNK, &reply(probe1[0], 200));
    assert_eq!(second.b2bua.queues().waiting(), 1, "c1 stays");
    assert_eq!(second.position(1).or(second.position(2)), Some(1));
    // A restored stream's port is not handed to a new call.
    second.deliver(TRUNK, &invite("c9", "+15551230009"));
    assert!(
        second
            .take()
            .iter()
            .any(|(_, t)| t.contains("m=audio 20004 ")),
        "the next free port"
    );
    let gone = kept(&mut second);
    assert!(gone.contains(&("c2".to_string(), None)), "{gone:?}");
    // c1's dialog is the one it had: its BYE is answered 200, not 481.
    let tag = probe1[0]
        .lines()
        .find(|l| l.starts_with("From:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .unwrap()
        .trim()
        .to_string();
    second.deliver(TRUNK, &in_dialog("BYE", "c1", &tag, 5, "bye1"));
    let codes: Vec<u16> = second
        .take()
        .iter()
        .filter_map(|(_, t)| status(t))
        .collect();
    assert_eq!(codes, [200]);
    assert_eq!(second.b2bua.calls(), 1, "only c9 left");
}

#[test]
fn a_restored_caller_that_never_answers_is_dropped_after_timer_f() {
    let mut first = Harness::new();
    holding(&mut first, "c1", "+15551230001");
    let states = last_states(&kept(&mut first));
    let mut second = Harness::with_seed(CONFIG, 2);
    second.b2bua.restore_call(second.now, &states[0]).unwrap();
    second.b2bua.restore_done(second.now);
    second.drain();
    assert_eq!(second.b2bua.calls(), 1);
    second.run_until(second.now + Duration::from_secs(31));
    assert_eq!(second.b2bua.calls(), 1, "still asking");
    second.run_until(second.now + Duration::from_secs(2));
    assert_eq!(second.b2bua.calls(), 0, "64·T1 without an answer");
    assert_eq!(second.b2bua.queues().waiting(), 0);
}

#[test]
fn a_bridged_call_comes_back_bridged_with_its_agent_busy() {
    let mut first = Harness::with_config(CONFIG_AGENTS);
    holding(&mut first, "c1", "+15551230001");
    register_alice(&mut first);
    let agent_invite = find(&first.take(), "INVITE ")
        .expect("alice rings")
        .1
        .clone();
    first.deliver(AGENT, &agent_reply(&agent_invite, 200, true));
    assert_eq!(first.media.bridged.len(), 1);
    let records = first.b2bua.records_for_tests();
    let rows = |kind| rows_of(&records, kind);
    let states = last_states(&rows(KeptKind::Call));
    assert_eq!(states.len(), 1);
    assert!(states[0].contains("\"user\":\"alice\""), "{}", states[0]);
    let registrations = rows(KeptKind::Registration);
    assert_eq!(registrations.len(), 1, "{registrations:?}");

    // The next process: alice's registration, then the call; alice never registers again.
    let mut second = Harness::with_seed(CONFIG_AGENTS, 2);
    second.now += Duration::from_secs(2);
    let (user, state) = &registrations[0];
    assert!(
        second
            .b2bua
            .restore_registration(second.now, user, state.as_deref().unwrap())
    );
    second.b2bua.restore_call(second.now, &states[0]).unwrap();
    second.b2bua.restore_done(second.now);
    second.drain();
    let reopened: Vec<u16> = second.media.reopened.iter().map(|(_, p)| *p).collect();
    assert_eq!(reopened.len(), 2, "both legs on their ports");
    assert_eq!(second.media.bridged.len(), 1, "relaying again");
    assert!(
        second.media.played.is_empty(),
        "no music for a bridged caller"
    );
    let agents = second.b2bua.agents();
    let alice = agents.get(agents.find("alice").unwrap()).unwrap();
    assert_eq!(alice.state(), AgentState::Busy);
    assert_eq!(second.b2bua.queues().waiting(), 0);
    // Both sides are probed; the agent's BYE ends the call as before.
    let sent = second.take();
    assert!(
        sent.iter()
            .any(|(d, t)| d.to_string() == TRUNK && t.starts_with("OPTIONS "))
    );
    let agent_probe = sent
        .iter()
        .find(|(d, t)| d.to_string() == AGENT && t.starts_with("OPTIONS "))
        .expect("the agent is probed too");
    second.deliver(AGENT, &reply(&agent_probe.1, 200));
    assert_eq!(second.b2bua.calls(), 1);
}

#[test]
fn a_paused_agent_stays_paused_across_a_restart() {
    let mut first = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut first);
    first.b2bua.set_paused(first.now, "alice", true).unwrap();
    let records = first.b2bua.records_for_tests();
    let agent = rows_of(&records, KeptKind::Agent);
    assert_eq!(agent.len(), 1, "{agent:?}");
    let registration = rows_of(&records, KeptKind::Registration);
    let mut second = Harness::with_seed(CONFIG_AGENTS, 2);
    let (user, state) = &registration[0];
    assert!(
        second
            .b2bua
            .restore_registration(second.now, user, state.as_deref().unwrap())
    );
    assert!(
        second
            .b2bua
            .restore_agent(second.now, "alice", agent[0].1.as_deref().unwrap())
    );
    second.b2bua.restore_done(second.now);
    let alice = |h: &Harness| {
        let agents = h.b2bua.agents();
        agents.get(agents.find("alice").unwrap()).unwrap().state()
    };
    assert_eq!(alice(&second), AgentState::Paused);
    // A caller arrives: nobody rings.
    holding(&mut second, "c1", "+15551230001");
    assert!(find(&second.take(), "INVITE ").is_none());
    // Unpaused: the row goes, alice takes the caller.
    second.b2bua.set_paused(second.now, "alice", false).unwrap();
    second.drain();
    assert!(find(&second.take(), "INVITE ").is_some());
    let rows = rows_of(&second.b2bua.records_for_tests(), KeptKind::Agent);
    assert_eq!(rows.last(), Some(&("alice".to_string(), None)));
}
