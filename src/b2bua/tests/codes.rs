//! Feature codes from an agent's phone (`[codes]`, docs/behaviour.md §5): `*46` pauses and
//! `*47` unpauses the agent that dials it, once its INVITE is authenticated like its
//! REGISTER; it hears a confirmation and holdfast hangs up. Nothing of a caller happens.

use super::agents::{AGENT, CONFIG_AGENTS, md5_hex, param, register_alice};
use super::*;
use crate::media::engine::MediaEvent;
use crate::queue::dispatch::AgentState;

/// An INVITE from alice's phone to `code`, with `authorization` when given.
fn code_invite(code: &str, call: &str, cseq: u32, authorization: Option<&str>) -> String {
    code_invite_from("alice", code, call, cseq, authorization)
}

/// An INVITE from `user`'s phone (at [`AGENT`]) to `code`, with `authorization` when given.
pub(super) fn code_invite_from(
    user: &str,
    code: &str,
    call: &str,
    cseq: u32,
    authorization: Option<&str>,
) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 7100 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:{code}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bK-{call}-{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=f-{call}\r\n\
         To: <sip:{code}@127.0.0.1:5060>\r\nCall-ID: {call}\r\nCSeq: {cseq} INVITE\r\n\
         Contact: <sip:{user}@{AGENT}>\r\n{auth}Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// Dials `code` as alice with `password`: the challenge, then the answer to it. Returns
/// what holdfast sent after the answer.
fn dial(h: &mut Harness, code: &str, call: &str, password: &str) -> Vec<(SocketAddr, String)> {
    dial_as(h, "alice", code, call, password)
}

/// Dials `code` as `user` with `password`: the challenge, then the answer to it. Returns
/// what holdfast sent after the answer.
pub(super) fn dial_as(
    h: &mut Harness,
    user: &str,
    code: &str,
    call: &str,
    password: &str,
) -> Vec<(SocketAddr, String)> {
    h.take();
    h.deliver(AGENT, &code_invite_from(user, code, call, 1, None));
    let sent = h.take();
    let challenge = sent
        .iter()
        .find(|(_, t)| status(t) == Some(401))
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("a 401 challenge first: {sent:?}"));
    let header = challenge
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .unwrap();
    let (realm, nonce) = (param(header, "realm"), param(header, "nonce"));
    let uri = format!("sip:{code}@127.0.0.1:5060");
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("INVITE:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:00000001:c1:auth:{ha2}"));
    let auth = format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c1\""
    );
    h.deliver(AGENT, &code_invite_from(user, code, call, 2, Some(&auth)));
    h.take()
}

fn alice(h: &Harness) -> AgentState {
    let agents = h.b2bua.agents();
    agents.get(agents.find("alice").unwrap()).unwrap().state()
}

#[test]
fn star_46_pauses_with_a_confirmation_and_star_47_unpauses() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut h);
    assert_eq!(alice(&h), AgentState::Available);
    let sent = dial(&mut h, "*46", "p1", "alice-secret");
    let ok = sent
        .iter()
        .find(|(d, t)| d.to_string() == AGENT && status(t) == Some(200))
        .unwrap_or_else(|| panic!("answered: {sent:?}"));
    assert!(ok.1.contains("application/sdp"));
    assert_eq!(alice(&h), AgentState::Paused);
    let (stream, _) = *h.media.prompts_now.last().expect("the confirmation plays");
    assert_eq!(h.position(1), None, "no queue entry");
    // The confirmation ends: holdfast hangs up.
    h.b2bua
        .handle_media_event(h.now, MediaEvent::PromptDone { id: stream });
    h.drain();
    let bye = h
        .take()
        .into_iter()
        .find(|(_, t)| t.starts_with("BYE "))
        .expect("BYE after the confirmation");
    assert_eq!(bye.0.to_string(), AGENT);
    assert_eq!(h.b2bua.calls(), 0);
    // A caller now waits: paused alice is not rung.
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    assert!(
        !h.take()
            .iter()
            .any(|(d, t)| d.to_string() == AGENT && t.starts_with("INVITE "))
    );
    // *47: available again, and the waiting caller rings her at once.
    let sent = dial(&mut h, "*47", "p2", "alice-secret");
    assert!(
        sent.iter()
            .any(|(d, t)| d.to_string() == AGENT && t.starts_with("INVITE sip:alice")),
        "{sent:?}"
    );
    assert_eq!(alice(&h), AgentState::Ringing);
    let stats = h.b2bua.stats();
    assert_eq!(stats.calls_abandoned, 0);
    h.b2bua.check_invariants();
}

#[test]
fn a_code_needs_the_agents_password_and_changes_nothing_without_it() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut h);
    let sent = dial(&mut h, "*46", "p1", "wrong");
    assert!(
        sent.iter()
            .any(|(_, t)| matches!(status(t), Some(401 | 403))),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|(_, t)| status(t) == Some(200)));
    assert_eq!(alice(&h), AgentState::Available);
    assert_eq!(h.b2bua.calls(), 0);
    // Codes can be turned off: then *46 is an ordinary number (routed like any caller's).
    let config = CONFIG_AGENTS.replace("[[route]]", "[codes]\npause = \"\"\n[[route]]");
    let mut h = Harness::with_config(&config);
    register_alice(&mut h);
    h.take();
    h.deliver(AGENT, &code_invite("*46", "p2", 1, None));
    assert!(!h.take().iter().any(|(_, t)| status(t) == Some(401)));
}
