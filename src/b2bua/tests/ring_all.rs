//! `strategy = "ring-all"` (docs/behaviour.md §5): every free agent rings, the first answer
//! takes the caller, the other phones get CANCEL; a decline marks only its own agent.

use super::agents::{AGENT, agent_reply, find, register_user};
use super::*;
use crate::queue::dispatch::AgentState;
use crate::store::{CallEventKind, Record};

const RING_ALL: &str = r#"
[sip]
listen = "127.0.0.1:5060"
digest_algorithms = ["MD5"]
[[trunk]]
allow = ["127.0.0.0/8"]
[[queue]]
name = "support"
strategy = "ring-all"
ring_timeout = 15
wrapup = 0
[[route]]
number = "*"
queue = "support"
[[agent]]
user = "alice"
password = "x"
[[agent]]
user = "bob"
password = "x"
[[agent]]
user = "carol"
password = "x"
[[agent]]
user = "backup"
password = "x"
tiers = { support = 2 }
"#;

fn registered(config: &str, users: &[&str]) -> Harness {
    let mut h = Harness::with_config(config);
    for user in users {
        let reply = register_user(&mut h, user, "x");
        assert_eq!(status(&reply), Some(200), "{reply}");
    }
    h
}

/// The INVITEs holdfast sent to agents, by the user in their Request-URI.
/// Each phone answers 180 (holdfast CANCELs only a ringing phone, RFC 3261 §9.1).
fn invites_ringing(h: &mut Harness) -> Vec<(String, String)> {
    let rung = invites(&h.take());
    for (_, invite) in &rung {
        h.deliver(AGENT, &agent_reply(invite, 180, false));
    }
    h.take();
    rung
}

fn invites(sent: &[(SocketAddr, String)]) -> Vec<(String, String)> {
    sent.iter()
        .filter(|(d, t)| d.to_string() == AGENT && t.starts_with("INVITE sip:"))
        .map(|(_, t)| {
            let user = t["INVITE sip:".len()..].split('@').next().unwrap();
            (user.to_owned(), t.clone())
        })
        .collect()
}

fn state(h: &Harness, user: &str) -> AgentState {
    let agents = h.b2bua.agents();
    agents.get(agents.find(user).unwrap()).unwrap().state()
}

fn marks(h: &Harness, user: &str) -> u32 {
    let agents = h.b2bua.agents();
    agents
        .get(agents.find(user).unwrap())
        .unwrap()
        .no_answer_marks()
}

/// The Call-IDs of the CANCELs holdfast sent (once each: a CANCEL is re-sent until answered).
fn cancelled(sent: &[(SocketAddr, String)]) -> Vec<String> {
    let mut ids: Vec<String> = sent
        .iter()
        .filter(|(_, t)| t.starts_with("CANCEL "))
        .map(|(_, t)| call_id_of(t))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn call_id_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap()
        .to_owned()
}

fn connects(h: &mut Harness) -> Vec<Option<String>> {
    std::iter::from_fn(|| h.b2bua.poll_record())
        .filter_map(|(_, record)| match record {
            Record::Event(e) if e.kind == CallEventKind::Connect => Some(e.agent),
            _ => None,
        })
        .collect()
}

#[test]
fn every_free_agent_of_the_first_tier_rings_and_the_first_answer_cancels_the_rest() {
    let mut h = registered(RING_ALL, &["alice", "bob", "carol", "backup"]);
    h.take();
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let rung = invites_ringing(&mut h);
    let mut users: Vec<&str> = rung.iter().map(|(u, _)| u.as_str()).collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "bob", "carol"], "tier 2 stays quiet");
    for user in ["alice", "bob", "carol"] {
        assert_eq!(state(&h, user), AgentState::Ringing, "{user}");
    }
    assert_eq!(state(&h, "backup"), AgentState::Available);
    let invite_of = |user: &str| rung.iter().find(|(u, _)| u == user).unwrap().1.clone();

    // bob declines: bob is marked, the others ring on and the caller hears nothing new.
    h.deliver(AGENT, &agent_reply(&invite_of("bob"), 486, false));
    let sent = h.take();
    assert!(cancelled(&sent).is_empty(), "{sent:?}");
    assert!(
        !sent
            .iter()
            .any(|(d, t)| d.to_string() == TRUNK && status(t) == Some(200)),
        "the caller still rings"
    );
    assert_eq!(marks(&h, "bob"), 1);
    assert_eq!(state(&h, "alice"), AgentState::Ringing);
    assert_eq!(state(&h, "carol"), AgentState::Ringing);

    // carol answers: alice alone gets CANCEL, unmarked and free again.
    h.deliver(AGENT, &agent_reply(&invite_of("carol"), 200, true));
    let sent = h.take();
    assert_eq!(
        cancelled(&sent),
        [call_id_of(&invite_of("alice"))],
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|(d, t)| d.to_string() == TRUNK && status(t) == Some(200)),
        "the caller is answered"
    );
    assert_eq!(state(&h, "carol"), AgentState::Busy);
    assert_eq!(state(&h, "alice"), AgentState::Available);
    assert_eq!(
        marks(&h, "alice"),
        0,
        "a ring cancelled is no fault of alice's"
    );
    assert_eq!(connects(&mut h), [Some("carol".to_owned())]);
    assert_eq!(h.position(1), None, "out of the queue");
    h.b2bua.check_invariants();

    // alice's answer crosses the CANCEL: ACKed and hung up, the caller stays with carol.
    h.deliver(AGENT, &agent_reply(&invite_of("alice"), 200, true));
    let sent = h.take();
    assert!(find(&sent, "ACK ").is_some(), "{sent:?}");
    let bye = find(&sent, "BYE ").expect("BYE to alice's phone");
    assert_eq!(call_id_of(&bye.1), call_id_of(&invite_of("alice")));
    assert_eq!(connects(&mut h), Vec::<Option<String>>::new());
    assert_eq!(state(&h, "alice"), AgentState::Available);
    h.b2bua.check_invariants();
}

#[test]
fn a_caller_goes_back_to_waiting_only_when_the_last_phone_gives_up() {
    let mut h = registered(RING_ALL, &["alice", "bob"]);
    h.take();
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let rung = invites_ringing(&mut h);
    assert_eq!(rung.len(), 2);
    h.deliver(AGENT, &agent_reply(&rung[0].1, 486, false));
    assert!(
        !h.take()
            .iter()
            .any(|(d, t)| d.to_string() == TRUNK && status(t) == Some(200))
    );
    // The other phone rings out: CANCEL at ring_timeout, then the caller is held at its
    // place (answered, music).
    h.run_until(h.now + Duration::from_secs(16));
    let sent = h.take();
    assert_eq!(cancelled(&sent), [call_id_of(&rung[1].1)]);
    assert!(
        sent.iter()
            .any(|(d, t)| d.to_string() == TRUNK && status(t) == Some(200))
    );
    assert_eq!(h.position(1), Some(1));
    assert_eq!(h.media.played.len(), 1, "hold music");
    h.b2bua.check_invariants();
}

#[test]
fn a_caller_who_hangs_up_cancels_every_ringing_phone() {
    let mut h = registered(RING_ALL, &["alice", "bob", "carol"]);
    h.take();
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let rung = invites_ringing(&mut h);
    assert_eq!(rung.len(), 3);
    let cancel = invite("c1", "+15551230001")
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.deliver(TRUNK, &cancel);
    let got = cancelled(&h.take());
    let mut want: Vec<String> = rung.iter().map(|(_, t)| call_id_of(t)).collect();
    want.sort();
    assert_eq!(got, want);
    for user in ["alice", "bob", "carol"] {
        assert_eq!(state(&h, user), AgentState::Available, "{user}");
        assert_eq!(marks(&h, user), 0);
    }
    h.b2bua.check_invariants();
}

#[test]
fn two_callers_share_the_free_agents_in_turn() {
    // The first caller rings everyone; a second caller waits until the phones are free.
    let mut h = registered(RING_ALL, &["alice", "bob"]);
    h.take();
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let rung = invites_ringing(&mut h);
    assert_eq!(rung.len(), 2);
    h.deliver(TRUNK, &invite("c2", "+15551230002"));
    assert!(invites(&h.take()).is_empty(), "nobody left to ring for c2");
    // alice answers c1: bob is CANCELled and at once rings for c2.
    h.deliver(AGENT, &agent_reply(&rung[0].1, 200, true));
    let sent = h.take();
    assert_eq!(cancelled(&sent).len(), 1);
    let next = invites(&sent);
    assert_eq!(next.len(), 1, "{sent:?}");
    assert_eq!(next[0].0, rung[1].0);
    h.b2bua.check_invariants();
}
