//! Agents in-process: REGISTER with Digest, dispatch, the INVITE to the agent, bridging,
//! BYE from either side, ring timeout and CANCEL (docs/behaviour.md §1, §5).

use md5::{Digest, Md5};

use super::*;
use crate::queue::dispatch::AgentState;

pub(super) const AGENT: &str = "127.0.0.1:5090";

pub(super) const CONFIG_AGENTS: &str = r#"
[sip]
listen = "127.0.0.1:5060"
digest_algorithms = ["MD5"]
[[trunk]]
allow = ["127.0.0.0/8"]
[[queue]]
name = "support"
ring_timeout = 15
wrapup = 10
max_no_answer = 2
[[route]]
number = "*"
queue = "support"
[[agent]]
user = "alice"
password = "alice-secret"
"#;

pub(super) fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn register(cseq: u32, authorization: Option<String>, expires: u32) -> String {
    register_for("alice", cseq, authorization, expires)
}

/// A REGISTER for `user` from [`AGENT`].
pub(super) fn register_for(
    user: &str,
    cseq: u32,
    authorization: Option<String>,
    expires: u32,
) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bK-reg{cseq}-{}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=reg1\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{AGENT}>\r\n\
         Expires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n",
        rand::random::<u32>()
    )
}

pub(super) fn param<'a>(header: &'a str, name: &str) -> &'a str {
    let start = header.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let rest = &header[start..];
    &rest[..rest.find('"').unwrap()]
}

/// Register alice with a correct MD5 digest response.
pub(super) fn register_alice(h: &mut Harness) {
    let sent = register_user(h, "alice", "alice-secret");
    assert_eq!(status(&sent), Some(200), "{sent}");
    assert!(sent.contains("expires=3600"), "{sent}");
}

/// A challenge for `user`, answered with MD5 and `password`: the final response's text.
pub(super) fn register_user(h: &mut Harness, user: &str, password: &str) -> String {
    h.deliver(AGENT, &register_for(user, 1, None, 3600));
    let sent = h.take();
    if status(&sent[0].1) != Some(401) {
        return sent[0].1.clone();
    }
    let challenge = sent[0]
        .1
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .expect("a challenge")
        .to_string();
    assert!(challenge.contains("algorithm=MD5"), "{challenge}");
    let (realm, nonce) = (param(&challenge, "realm"), param(&challenge, "nonce"));
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex("REGISTER:sip:127.0.0.1:5060");
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c1:auth:{ha2}"));
    let auth = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1:5060\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c1\""
    );
    h.deliver(AGENT, &register_for(user, 2, Some(auth), 3600));
    let mut sent = h.take().into_iter();
    let last = sent.next().expect("a final response").1;
    // Whatever the registration set off (an INVITE to the agent) stays for the test to see.
    h.sent.extend(sent);
    last
}

fn alice_state(h: &Harness) -> AgentState {
    let agents = h.b2bua.agents();
    agents.get(agents.find("alice").unwrap()).unwrap().state()
}

/// The agent's answer to holdfast's INVITE `invite` (raw text).
pub(super) fn agent_reply(invite: &str, code: u16, sdp: bool) -> String {
    let pick = |name: &str| {
        invite
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    let body = if sdp {
        "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 9000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    } else {
        ""
    };
    let reason = match code {
        180 => "Ringing",
        200 => "OK",
        486 => "Busy Here",
        _ => "Whatever",
    };
    let content_type = if sdp {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "SIP/2.0 {code} {reason}\r\n{}\r\n{}\r\n{};tag=ag1\r\n{}\r\n{}\r\n\
         Contact: <sip:alice@{AGENT}>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        pick("Via:"),
        pick("From:"),
        pick("To:"),
        pick("Call-ID:"),
        pick("CSeq:"),
        body.len()
    )
}

pub(super) fn find<'a>(
    sent: &'a [(SocketAddr, String)],
    start: &str,
) -> Option<&'a (SocketAddr, String)> {
    sent.iter().find(|(_, t)| t.starts_with(start))
}

#[test]
fn a_phone_that_gives_up_on_sha256_is_offered_md5_alone_and_keeps_it() {
    let config = CONFIG_AGENTS.replace("digest_algorithms = [\"MD5\"]\n", "");
    let mut h = Harness::with_config(&config);
    let challenges = |h: &mut Harness| -> Vec<String> {
        h.take()[0]
            .1
            .lines()
            .filter(|l| l.starts_with("WWW-Authenticate:"))
            .map(|l| l.split("algorithm=").nth(1).unwrap().to_string())
            .collect()
    };
    h.deliver(AGENT, &register(1, None, 3600));
    assert_eq!(
        challenges(&mut h),
        ["SHA-256", "MD5"],
        "RFC 8760: preferred first"
    );
    // The phone gave up without answering and starts over: MD5 alone this time.
    h.deliver(AGENT, &register(2, None, 3600));
    assert_eq!(challenges(&mut h), ["MD5"]);
    // It registers with MD5 ...
    register_alice(&mut h);
    // ... and is offered MD5 alone from now on, from anywhere.
    h.deliver("127.0.0.1:5091", &register(9, None, 3600));
    assert_eq!(challenges(&mut h), ["MD5"]);
}

#[test]
fn register_needs_the_right_password() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    assert_eq!(alice_state(&h), AgentState::Offline);
    h.deliver(AGENT, &register(1, None, 3600));
    let challenge = h.take()[0].1.clone();
    let nonce = param(&challenge, "nonce").to_string();
    let wrong = format!(
        "Digest username=\"alice\", realm=\"holdfast\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1:5060\", \
         response=\"00000000000000000000000000000000\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c\""
    );
    h.deliver(AGENT, &register(2, Some(wrong), 3600));
    assert_eq!(status(&h.take()[0].1), Some(403));
    assert_eq!(alice_state(&h), AgentState::Offline);
    register_alice(&mut h);
    assert_eq!(alice_state(&h), AgentState::Available);
}

#[test]
fn caller_goes_straight_to_a_free_agent_and_either_side_can_hang_up() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut h);
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let sent = h.take();
    let codes: Vec<u16> = sent.iter().filter_map(|(_, t)| status(t)).collect();
    assert_eq!(
        codes,
        vec![100, 180],
        "ringback while the agent rings, no answer yet"
    );
    let (dest, agent_invite) = find(&sent, "INVITE ").expect("INVITE to the agent");
    assert_eq!(dest.to_string(), AGENT);
    assert!(agent_invite.starts_with("INVITE sip:alice@127.0.0.1:5090 SIP/2.0"));
    assert!(
        agent_invite.contains("From: \"+15551230001\" <sip:+15551230001@"),
        "{agent_invite}"
    );
    assert!(
        agent_invite.contains("X-Holdfast-Queue: support"),
        "{agent_invite}"
    );
    assert!(agent_invite.contains("m=audio ") && agent_invite.contains(" RTP/AVP 0 101"));
    assert_eq!(alice_state(&h), AgentState::Ringing);
    assert_eq!(
        h.position(1),
        Some(1),
        "the caller keeps its place while the agent rings"
    );

    let agent_invite = agent_invite.clone();
    h.deliver(AGENT, &agent_reply(&agent_invite, 180, false));
    h.deliver(AGENT, &agent_reply(&agent_invite, 200, true));
    let sent = h.take();
    let ack = find(&sent, "ACK ").expect("ACK to the agent's 200");
    assert_eq!(ack.0.to_string(), AGENT);
    assert!(ack.1.contains("CSeq: 1 ACK"));
    let ok = sent
        .iter()
        .find(|(d, t)| d.to_string() == TRUNK && status(t) == Some(200))
        .expect("the caller is answered once the agent answers");
    assert!(ok.1.contains("application/sdp"));
    let media = &h.media;
    assert_eq!(media.bridged.len(), 1, "legs bridged");
    assert!(
        media.played.is_empty(),
        "no hold music for a caller who went straight through"
    );
    assert!(
        media
            .connected
            .iter()
            .any(|(_, remote, _)| remote.to_string() == "127.0.0.1:9000"),
        "agent leg connected to the agent's SDP address"
    );
    assert_eq!(alice_state(&h), AgentState::Busy);
    assert_eq!(h.position(1), None, "out of the queue once connected");

    // The agent hangs up: holdfast answers it and hangs up the caller.
    let tag = to_tag(&ok.1);
    h.deliver(TRUNK, &in_dialog("ACK", "c1", &tag, 1, "ack1"));
    h.now += Duration::from_secs(42);
    let call_id = agent_invite
        .lines()
        .find(|l| l.starts_with("Call-ID:"))
        .unwrap()
        .trim_start_matches("Call-ID:")
        .trim()
        .to_string();
    let our_tag = agent_invite
        .lines()
        .find(|l| l.starts_with("From:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .unwrap()
        .trim()
        .to_string();
    let bye = format!(
        "BYE sip:holdfast@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bK-abye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=ag1\r\nTo: <sip:x@127.0.0.1>;tag={our_tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    h.deliver(AGENT, &bye);
    let sent = h.take();
    assert!(
        sent.iter()
            .any(|(d, t)| d.to_string() == AGENT && status(t) == Some(200))
    );
    let caller_bye = find(&sent, "BYE ").expect("BYE to the caller");
    assert_eq!(caller_bye.0.to_string(), TRUNK);
    assert_eq!(alice_state(&h), AgentState::Wrapup);
    assert_eq!(h.b2bua.calls(), 0);
    h.run_until(h.now + Duration::from_secs(11));
    assert_eq!(alice_state(&h), AgentState::Available, "wrap-up over");
}

#[test]
fn no_answer_puts_the_caller_on_hold_at_its_place_and_marks_the_agent() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut h);
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let agent_invite = find(&h.take(), "INVITE ").unwrap().1.clone();
    h.deliver(AGENT, &agent_reply(&agent_invite, 180, false));
    h.take();
    let start = h.now;
    h.run_until(start + Duration::from_secs(16));
    let sent = h.take();
    assert!(find(&sent, "CANCEL ").is_some(), "ring_timeout → CANCEL");
    let ok = sent
        .iter()
        .find(|(d, t)| d.to_string() == TRUNK && status(t) == Some(200))
        .expect("the ringing caller is answered and held instead");
    assert!(ok.1.contains("application/sdp"));
    assert_eq!(h.media.played.len(), 1, "hold music starts");
    assert_eq!(h.position(1), Some(1), "still first in line");
    let agents = h.b2bua.agents();
    let alice = agents.get(agents.find("alice").unwrap()).unwrap();
    assert_eq!(alice.no_answer_marks(), 1);
}

#[test]
fn a_dead_phone_is_rested_after_its_ring_timeout_and_not_sent_the_invite_again() {
    // The phone is gone: no 100, no 180, nothing.
    let mut h = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut h);
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    h.take();
    let start = h.now;
    h.run_until(start + Duration::from_secs(15));
    let invites = |sent: &[(SocketAddr, String)]| {
        sent.iter()
            .filter(|(d, t)| d.to_string() == AGENT && t.starts_with("INVITE "))
            .count()
    };
    let before = invites(&h.take());
    assert!(before >= 4, "Timer A re-sends while it rings: {before}");
    assert_eq!(
        alice_state(&h),
        AgentState::Wrapup,
        "resting, not offered at once"
    );
    // No CANCEL without a provisional (RFC 3261 §9.1), and no more re-sends either.
    h.run_until(start + Duration::from_secs(24));
    let sent = h.take();
    assert_eq!(invites(&sent), 0, "{sent:#?}");
    assert!(find(&sent, "CANCEL ").is_none());
    assert_eq!(
        alice_state(&h),
        AgentState::Wrapup,
        "no_answer_backoff: 10 s"
    );
    // Rested, it is offered the caller (who kept its place) again.
    h.run_until(start + Duration::from_secs(26));
    assert!(invites(&h.take()) >= 1, "a new INVITE");
    assert_eq!(alice_state(&h), AgentState::Ringing);
    assert_eq!(h.position(1), Some(1));
}

#[test]
fn caller_cancel_while_agent_rings_gets_487_and_cancels_the_agent() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut h);
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let agent_invite = find(&h.take(), "INVITE ").unwrap().1.clone();
    h.deliver(AGENT, &agent_reply(&agent_invite, 180, false));
    h.take();
    let cancel = invite("c1", "+15551230001")
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let cancel = format!(
        "{}Content-Length: 0\r\n\r\n",
        &cancel[..cancel.find("Content-Type").unwrap()]
    );
    h.deliver(TRUNK, &cancel);
    let sent = h.take();
    let to_trunk: Vec<u16> = sent
        .iter()
        .filter(|(d, _)| d.to_string() == TRUNK)
        .filter_map(|(_, t)| status(t))
        .collect();
    assert!(
        to_trunk.contains(&200) && to_trunk.contains(&487),
        "{to_trunk:?}"
    );
    assert!(
        find(&sent, "CANCEL ").is_some(),
        "the agent's INVITE is cancelled: {sent:#?}"
    );
    assert_eq!(
        alice_state(&h),
        AgentState::Available,
        "no mark for a caller who left"
    );
    assert_eq!(h.position(1), None);
    assert_eq!(h.b2bua.calls(), 0);
}
