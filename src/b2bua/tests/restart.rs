//! Dial-backs exactly once across a crash (docs/behaviour.md §6), in-process with a fake
//! clock: the attempt is durable before its INVITE leaves, `completed` before the 2xx is
//! ACKed.

use super::agents::{AGENT, agent_reply, find};
use super::callbacks::{
    CONFIG_CALLBACKS, TRUNK_OUT, agent_answers, dial_back_to_agent, requests, states,
};
use super::*;
use crate::queue::EntryId;
use crate::store::{CallbackId, CallbackState, StoreError};

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn to_trunk(sent: &[(SocketAddr, String)], start: &str) -> Vec<String> {
    sent.iter()
        .filter(|(d, t)| d.to_string() == TRUNK_OUT && t.starts_with(start))
        .map(|(_, t)| t.clone())
        .collect()
}

/// The agent has answered; the attempt record is the only thing that happened.
fn agent_answered_unrecorded(h: &mut Harness) -> (AttemptToken, Vec<u8>) {
    let agent_invite = dial_back_to_agent(h);
    h.deliver(AGENT, &agent_reply(&agent_invite, 200, true));
    let reqs = requests(h);
    let [
        StoreRequest::BeginAttempt {
            token,
            id,
            attempts,
            invite,
        },
    ] = reqs.as_slice()
    else {
        panic!("one attempt record expected: {reqs:?}");
    };
    assert_eq!((*id, *attempts), (CallbackId(7), 1));
    (*token, invite.clone())
}

#[test]
fn no_invite_leaves_before_the_attempt_is_recorded() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    let (token, recorded) = agent_answered_unrecorded(&mut h);
    let text = String::from_utf8(recorded.clone()).unwrap();
    assert!(
        text.starts_with("INVITE sip:+15551230001@127.0.0.1:5070 SIP/2.0"),
        "{text}"
    );
    // However long the store takes, nothing is sent to the trunk meanwhile.
    h.run_until(h.now + Duration::from_secs(40));
    assert!(to_trunk(&h.take(), "").is_empty());
    h.b2bua.attempt_recorded(h.now, token, Ok(()));
    h.drain();
    let sent = h.take();
    let invites = to_trunk(&sent, "INVITE ");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].as_bytes(), recorded, "the very bytes recorded");
    // A repeated reply changes nothing.
    h.b2bua.attempt_recorded(h.now, token, Ok(()));
    h.drain();
    assert!(to_trunk(&h.take(), "INVITE ").is_empty());
}

#[test]
fn an_attempt_the_store_refused_is_never_sent_and_is_retried() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    let (token, _) = agent_answered_unrecorded(&mut h);
    h.b2bua
        .attempt_recorded(h.now, token, Err(StoreError::Overloaded));
    h.drain();
    let sent = h.take();
    assert!(to_trunk(&sent, "").is_empty(), "nothing to the trunk");
    let (dest, _) = find(&sent, "BYE ").expect("the agent is released");
    assert_eq!(dest.to_string(), AGENT);
    let reqs = requests(&mut h);
    let [
        StoreRequest::SetState {
            state: CallbackState::Pending,
            attempts: 1,
            next_attempt_at: Some(_),
            error: Some(error),
            ..
        },
    ] = reqs.as_slice()
    else {
        panic!("{reqs:?}");
    };
    assert_eq!(error, "attempt not recorded");
    // A late reply for that attempt sends nothing either.
    h.b2bua.attempt_recorded(h.now, token, Ok(()));
    h.drain();
    h.run_until(h.now + Duration::from_secs(59));
    assert!(to_trunk(&h.take(), "").is_empty());
    // After the retry delay: the agent first, then (recorded) the trunk.
    h.run_until(h.now + Duration::from_secs(2));
    let (_, agent_invite) = find(&h.take(), "INVITE ").expect("second attempt").clone();
    agent_answers(&mut h, &agent_invite);
    assert_eq!(states(&mut h), vec![(CallbackState::Dialling, 2)]);
}

#[test]
fn the_answer_is_acked_and_bridged_only_once_completed_is_durable() {
    for result in [Ok(()), Err(StoreError::Overloaded)] {
        let failed = result.is_err();
        let mut h = Harness::with_config(CONFIG_CALLBACKS);
        let agent_invite = dial_back_to_agent(&mut h);
        let invite = agent_answers(&mut h, &agent_invite);
        h.stored.clear();
        let ok = agent_reply(&invite, 200, true);
        h.deliver(TRUNK_OUT, &ok);
        let reqs = requests(&mut h);
        let [
            StoreRequest::Complete {
                token, attempts, ..
            },
        ] = reqs.as_slice()
        else {
            panic!("{reqs:?}");
        };
        assert_eq!(*attempts, 1);
        assert!(find(&h.take(), "ACK ").is_none(), "not ACKed yet");
        assert!(h.media.bridged.is_empty(), "not bridged yet");
        // The trunk retransmits its 2xx meanwhile (RFC 3261 §13.3.1.4): still no ACK.
        h.run_until(h.now + Duration::from_secs(1));
        h.deliver(TRUNK_OUT, &ok);
        assert!(find(&h.take(), "ACK ").is_none(), "retransmission ignored");
        assert!(requests(&mut h).is_empty(), "one completion only");
        // Durable (or failed to be: the caller is on the line all the same).
        h.b2bua.completion_recorded(h.now, *token, result);
        h.drain();
        let sent = h.take();
        let acks = to_trunk(&sent, "ACK ");
        assert_eq!(acks.len(), 1, "failed = {failed}");
        assert!(acks[0].contains("CSeq: 1 ACK"), "{}", acks[0]);
        assert_eq!(h.media.bridged.len(), 1, "agent ⇄ caller");
        assert!(h.b2bua.queues().get(EntryId(1)).is_none(), "served");
        assert!(requests(&mut h).is_empty(), "`completed` was the one write");
        // A later retransmission gets the same ACK again (§13.2.2.4).
        h.deliver(TRUNK_OUT, &ok);
        assert_eq!(to_trunk(&h.take(), "ACK "), acks);
    }
}

#[test]
fn the_agent_hanging_up_as_the_caller_answers_acks_byes_and_fails() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    let agent_invite = dial_back_to_agent(&mut h);
    let invite = agent_answers(&mut h, &agent_invite);
    h.stored.clear();
    h.deliver(TRUNK_OUT, &agent_reply(&invite, 200, true));
    let reqs = requests(&mut h);
    let [StoreRequest::Complete { token, .. }] = reqs.as_slice() else {
        panic!("{reqs:?}");
    };
    // The agent's BYE, before the completion is durable (dialog: its 2xx's tag "ag1").
    let our_tag = header(&agent_invite, "From:")
        .split(";tag=")
        .nth(1)
        .unwrap()
        .trim();
    let bye = format!(
        "BYE sip:holdfast@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {AGENT};branch=z9hG4bK-abye\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=ag1\r\nTo: <sip:x@127.0.0.1>;tag={our_tag}\r\n\
         {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        header(&agent_invite, "Call-ID:"),
    );
    h.deliver(AGENT, &bye);
    let sent = h.take();
    assert_eq!(
        to_trunk(&sent, "ACK ").len(),
        1,
        "the caller's 2xx is ACKed"
    );
    assert_eq!(to_trunk(&sent, "BYE ").len(), 1, "and hung up");
    assert_eq!(
        requests(&mut h)
            .into_iter()
            .filter_map(|r| match r {
                StoreRequest::SetState { state, error, .. } => Some((state, error)),
                _ => None,
            })
            .collect::<Vec<_>>(),
        vec![(
            CallbackState::Failed,
            Some("agent hung up as the caller answered; not dialled again".into())
        )]
    );
    // The late completion reply bridges nothing.
    h.b2bua.completion_recorded(h.now, *token, Ok(()));
    h.drain();
    assert!(h.media.bridged.is_empty());
    assert_eq!(h.b2bua.callbacks_waiting(), 0);
}
