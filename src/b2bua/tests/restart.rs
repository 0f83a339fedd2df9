//! Dial-backs exactly once across a crash (docs/behaviour.md §6), in-process with a fake
//! clock: the attempt is durable before its INVITE leaves, `completed` before the 2xx is
//! ACKed, and a restart settles the INVITE it finds recorded (CANCEL, then the 487, the 2xx
//! or the deadline) before the callback may be dialled again.

use super::agents::{AGENT, agent_reply, find, register_alice};
use super::callbacks::{
    CONFIG_CALLBACKS, TRUNK_OUT, agent_answers, dial_back_to_agent, requests, states, store_answers,
};
use super::*;
use crate::queue::{EntryId, Seq};
use crate::store::{
    CallEventKind, CallbackId, CallbackRecord, CallbackRequest, CallbackState, Record, StoreError,
};

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

/// Holdfast dialled the caller (the phone rings: 180) and died. Returns the restarted
/// controller, which was handed the stored record, and the INVITE from before.
fn restart_while_ringing(attempts: u32) -> (Harness, String) {
    let mut before = Harness::with_config(CONFIG_CALLBACKS);
    let agent_invite = dial_back_to_agent(&mut before);
    let invite = agent_answers(&mut before, &agent_invite);
    before.deliver(TRUNK_OUT, &agent_reply(&invite, 180, false));
    let recorded = before
        .stored
        .iter()
        .find_map(|r| match r {
            StoreRequest::BeginAttempt { invite, .. } => Some(invite.clone()),
            _ => None,
        })
        .unwrap();
    // kill -9. What the store holds:
    let record = CallbackRecord {
        id: CallbackId(7),
        request: CallbackRequest {
            queue: "support".into(),
            level: 5,
            seq: Seq(0),
            number: "+15551230001".into(),
            requested_at_ms: 0,
        },
        state: CallbackState::Dialling,
        attempts,
        next_attempt_at_ms: None,
        last_error: None,
        updated_at_ms: 0,
        attempt_invite: Some(recorded),
        scheduled: false,
    };
    let mut after = Harness::with_seed(CONFIG_CALLBACKS, 2);
    after
        .b2bua
        .restore_callback(after.now, &record, None)
        .unwrap();
    after.b2bua.advance_seq(Seq(1));
    after.drain();
    // The CANCEL of §9.1, at once, before anything else.
    let sent = after.take();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (dest, cancel) = &sent[0];
    assert_eq!(dest.to_string(), TRUNK_OUT);
    assert!(
        cancel.starts_with("CANCEL sip:+15551230001@127.0.0.1:5070 SIP/2.0"),
        "{cancel}"
    );
    for name in ["Via:", "Call-ID:", "From:", "To:"] {
        assert_eq!(header(cancel, name), header(&invite, name), "{name}");
    }
    assert_eq!(header(cancel, "CSeq:"), "CSeq: 1 CANCEL");
    assert_eq!(after.b2bua.callbacks_waiting(), 1);
    let (_, entry) = after.b2bua.queues().get(EntryId(1)).expect("at its place");
    assert_eq!(entry.seq, Seq(0));
    // An agent is free, but a callback being reconciled is not dialled.
    register_alice(&mut after);
    assert!(find(&after.take(), "INVITE ").is_none(), "not dispatched");
    // The trunk answers the CANCEL; the phone still rang a moment (180 again).
    let ok_cancel = agent_reply(cancel, 200, false);
    after.deliver(TRUNK_OUT, &ok_cancel);
    after.deliver(TRUNK_OUT, &agent_reply(&invite, 180, false));
    assert!(after.take().is_empty());
    assert!(requests(&mut after).is_empty(), "nothing settled yet");
    (after, invite)
}

#[test]
fn a_487_after_a_restart_is_acked_and_the_attempt_retried_or_failed() {
    let (mut h, invite) = restart_while_ringing(1);
    let terminated = agent_reply(&invite, 487, false);
    h.deliver(TRUNK_OUT, &terminated);
    let sent = h.take();
    let acks = to_trunk(&sent, "ACK ");
    assert_eq!(acks.len(), 1, "{sent:?}");
    // §17.1.1.3: the INVITE's Request-URI, top Via, Call-ID and From, the response's To.
    assert!(acks[0].starts_with("ACK sip:+15551230001@127.0.0.1:5070 SIP/2.0"));
    assert_eq!(header(&acks[0], "Via:"), header(&invite, "Via:"));
    assert_eq!(header(&acks[0], "Call-ID:"), header(&invite, "Call-ID:"));
    assert_eq!(header(&acks[0], "To:"), header(&terminated, "To:"));
    assert_eq!(header(&acks[0], "CSeq:"), "CSeq: 1 ACK");
    let reqs = requests(&mut h);
    let [
        StoreRequest::SetState {
            state: CallbackState::Pending,
            attempts: 1,
            next_attempt_at: Some(at),
            error: Some(error),
            ..
        },
    ] = reqs.as_slice()
    else {
        panic!("{reqs:?}");
    };
    assert_eq!(*at, h.now + Duration::from_secs(60));
    assert_eq!(error, "trunk answered 487 after a restart");
    // A retransmitted 487 (our ACK was lost) is ACKed again.
    h.deliver(TRUNK_OUT, &terminated);
    assert_eq!(to_trunk(&h.take(), "ACK "), acks);
    // Dialled again like any failed attempt: after the delay, agent first, new Call-ID.
    h.run_until(h.now + Duration::from_secs(59));
    assert!(find(&h.take(), "INVITE ").is_none(), "not before the delay");
    h.run_until(h.now + Duration::from_secs(2));
    let (_, agent_invite) = find(&h.take(), "INVITE ").expect("agent rung").clone();
    let again = agent_answers(&mut h, &agent_invite);
    assert_ne!(header(&again, "Call-ID:"), header(&invite, "Call-ID:"));
    assert_eq!(states(&mut h), vec![(CallbackState::Dialling, 2)]);

    // With its last attempt used up, the callback fails instead.
    let (mut h, invite) = restart_while_ringing(2);
    h.deliver(TRUNK_OUT, &agent_reply(&invite, 487, false));
    assert_eq!(to_trunk(&h.take(), "ACK ").len(), 1);
    assert_eq!(states(&mut h), vec![(CallbackState::Failed, 2)]);
    assert_eq!(h.b2bua.callbacks_waiting(), 0);
    assert!(h.b2bua.queues().get(EntryId(1)).is_none());
}

#[test]
fn a_caller_who_answered_during_the_restart_is_hung_up_and_never_dialled_again() {
    let (mut h, invite) = restart_while_ringing(1);
    while h.b2bua.poll_record().is_some() {}
    let ok = agent_reply(&invite, 200, true);
    h.deliver(TRUNK_OUT, &ok);
    let sent = h.take();
    let acks = to_trunk(&sent, "ACK ");
    assert_eq!(acks.len(), 1, "{sent:?}");
    assert_eq!(header(&acks[0], "CSeq:"), "CSeq: 1 ACK");
    assert_eq!(header(&acks[0], "Call-ID:"), header(&invite, "Call-ID:"));
    assert!(acks[0].contains(";tag=ag1"), "{}", acks[0]);
    let byes = to_trunk(&sent, "BYE ");
    assert_eq!(byes.len(), 1, "{sent:?}");
    assert_eq!(header(&byes[0], "Call-ID:"), header(&invite, "Call-ID:"));
    assert_eq!(header(&byes[0], "CSeq:"), "CSeq: 2 BYE");
    let reqs = requests(&mut h);
    let [
        StoreRequest::SetState {
            state: CallbackState::Failed,
            attempts: 1,
            error: Some(error),
            ..
        },
    ] = reqs.as_slice()
    else {
        panic!("{reqs:?}");
    };
    assert_eq!(error, "answered during a restart; not dialled again");
    let events: Vec<CallEventKind> = std::iter::from_fn(|| h.b2bua.poll_record())
        .filter_map(|(_, r)| match r {
            Record::Event(e) => Some(e.kind),
            _ => None,
        })
        .collect();
    assert_eq!(events, vec![CallEventKind::CallbackFailed]);
    assert_eq!(h.b2bua.callbacks_waiting(), 0);
    assert!(
        h.b2bua.queues().get(EntryId(1)).is_none(),
        "out of the queue"
    );
    // The 2xx retransmitted (our ACK lost): ACKed again, nothing else.
    h.deliver(TRUNK_OUT, &ok);
    let sent = h.take();
    assert_eq!(to_trunk(&sent, "ACK "), acks);
    assert!(to_trunk(&sent, "BYE ").is_empty());
    // The BYE is answered; for the next ten minutes alice is free and nobody is dialled.
    h.deliver(TRUNK_OUT, &agent_reply(&byes[0], 200, false));
    h.run_until(h.now + Duration::from_secs(600));
    let sent = h.take();
    assert!(find(&sent, "INVITE ").is_none(), "{sent:?}");
    assert!(requests(&mut h).is_empty());
}

#[test]
fn a_restored_invite_without_a_final_response_is_retried_after_64_t1() {
    let (mut h, invite) = restart_while_ringing(1);
    let restarted = h.now;
    h.run_until(restarted + Duration::from_millis(31_900));
    assert!(requests(&mut h).is_empty(), "still settling");
    assert!(find(&h.take(), "INVITE ").is_none());
    h.run_until(restarted + Duration::from_secs(32));
    let reqs = requests(&mut h);
    let [
        StoreRequest::SetState {
            state: CallbackState::Pending,
            attempts: 1,
            error: Some(error),
            ..
        },
    ] = reqs.as_slice()
    else {
        panic!("{reqs:?}");
    };
    assert_eq!(
        error,
        "no final response to the INVITE sent before a restart"
    );
    // A final response that comes after the deadline is not matched to anything.
    h.deliver(TRUNK_OUT, &agent_reply(&invite, 487, false));
    assert!(to_trunk(&h.take(), "ACK ").is_empty());
    h.run_until(h.now + Duration::from_secs(61));
    let (_, agent_invite) = find(&h.take(), "INVITE ").expect("agent rung").clone();
    let again = agent_answers(&mut h, &agent_invite);
    assert_ne!(header(&again, "Call-ID:"), header(&invite, "Call-ID:"));
    store_answers(&mut h);
}
