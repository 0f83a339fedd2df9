//! Callbacks in-process with a fake clock (docs/behaviour.md §6): the offer, `1`, commit before
//! confirmation, the agent-first dial-back through the trunk, retries, failure, recovery order.

use super::agents::{AGENT, agent_reply, find, register_alice};
use super::*;
use crate::media::engine::MediaEvent;
use crate::queue::{EntryId, EntryKind, Seq};
use crate::store::{CallbackId, CallbackRecord, CallbackRequest, CallbackState, StoreError};

pub(super) const CONFIG_CALLBACKS: &str = r#"
[sip]
listen = "127.0.0.1:5060"
digest_algorithms = ["MD5"]
[[trunk]]
allow = ["127.0.0.0/8"]
address = "127.0.0.1:5070"
username = "holdfast"
password = "trunk-secret"
[[queue]]
name = "support"
callback_threshold = 1
default_handle_time = 600
callback_attempts = 2
callback_retry_delay = 60
[[route]]
number = "*"
queue = "support"
[[agent]]
user = "alice"
password = "alice-secret"
"#;

pub(super) const TRUNK_OUT: &str = "127.0.0.1:5070";

fn stream_of(h: &Harness, call: u64) -> StreamId {
    h.b2bua.calls[&CallKey(call)].stream
}

fn press(h: &mut Harness, call: u64, digit: char) {
    let id = stream_of(h, call);
    h.b2bua
        .handle_media_event(h.now, MediaEvent::Dtmf { id, digit });
    h.drain();
}

pub(super) fn requests(h: &mut Harness) -> Vec<StoreRequest> {
    std::iter::from_fn(|| h.b2bua.poll_store_request()).collect()
}

/// Answers every store request the controller has made as a working store does (`Ok` for
/// attempt records and completions; commits are answered by the tests themselves), keeping
/// them in `h.stored`.
pub(super) fn store_answers(h: &mut Harness) {
    loop {
        let pending = requests(h);
        if pending.is_empty() {
            return;
        }
        for request in pending {
            match &request {
                StoreRequest::BeginAttempt { token, .. } => {
                    h.b2bua.attempt_recorded(h.now, *token, Ok(()));
                }
                StoreRequest::Complete { token, .. } => {
                    h.b2bua.completion_recorded(h.now, *token, Ok(()));
                }
                StoreRequest::Commit { .. }
                | StoreRequest::SetState { .. }
                | StoreRequest::Joined { .. } => {}
            }
            h.stored.push(request);
            h.drain();
        }
    }
}

/// A caller joins, hears the entry announcement (with the offer when it applies).
fn join(h: &mut Harness, call: &str, number: &str) {
    h.deliver(TRUNK, &invite(call, number));
    h.run_until(h.now);
}

fn offer_from(h: &Harness, call: u64) -> Option<Instant> {
    h.b2bua.calls[&CallKey(call)].offer_from
}

/// Caller 1 presses 1 after the offer and the store commits it as callback `id`.
fn commit_callback(h: &mut Harness, id: i64) {
    let at = offer_from(h, 1).expect("offer played");
    h.run_until(at);
    press(h, 1, '1');
    let token = match requests(h).as_slice() {
        [StoreRequest::Commit { token, .. }] => *token,
        other => panic!("one commit expected: {other:?}"),
    };
    h.b2bua.callback_committed(h.now, token, Ok(CallbackId(id)));
    h.drain();
}

#[test]
fn offer_needs_the_threshold_and_a_valid_number() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    join(&mut h, "c1", "+15551230001");
    join(&mut h, "c2", "anonymous");
    assert!(
        offer_from(&h, 1).is_some(),
        "600 s estimate ≥ 1 s threshold"
    );
    assert!(offer_from(&h, 2).is_none(), "number fails the pattern");

    let never = CONFIG_CALLBACKS.replace("callback_threshold = 1", "callback_threshold = 0");
    let mut h = Harness::with_config(&never);
    join(&mut h, "c1", "+15551230001");
    assert!(offer_from(&h, 1).is_none(), "0 = never");

    let high = CONFIG_CALLBACKS.replace("callback_threshold = 1", "callback_threshold = 601");
    let mut h = Harness::with_config(&high);
    join(&mut h, "c1", "+15551230001");
    assert!(offer_from(&h, 1).is_none(), "600 s estimate < 601 s");
    let plain = h.media.prompts[0].1;
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    join(&mut h, "c1", "+15551230001");
    let with_offer = h.media.prompts[0].1;
    assert!(
        with_offer > plain,
        "the offer is appended: {with_offer} > {plain}"
    );
    // The offer starts when the position announcement has played (8 bytes per ms).
    let start = offer_from(&h, 1).unwrap();
    assert_eq!(
        start.duration_since(h.now),
        Duration::from_millis(plain as u64 / 8)
    );
}

#[test]
fn premium_rate_numbers_and_untrusted_asserted_identities_get_no_offer() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    join(&mut h, "c1", "+19005550100");
    assert!(
        offer_from(&h, 1).is_none(),
        "+1 900 is in the default deny list"
    );
    // P-Asserted-Identity names the caller only when the trunk is trusted to assert it.
    let with_pai = |call: &str| {
        invite(call, "anonymous").replacen(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nP-Asserted-Identity: <sip:+15551230002@127.0.0.1>\r\n",
            1,
        )
    };
    h.deliver(TRUNK, &with_pai("c2"));
    h.run_until(h.now);
    assert_eq!(h.b2bua.calls[&CallKey(2)].caller, "+15551230002");
    assert!(offer_from(&h, 2).is_some());
    let untrusted = CONFIG_CALLBACKS.replace(
        "password = \"trunk-secret\"\n",
        "password = \"trunk-secret\"\ntrust_asserted_identity = false\n",
    );
    let mut h = Harness::with_config(&untrusted);
    h.deliver(TRUNK, &with_pai("c1"));
    h.run_until(h.now);
    assert_eq!(h.b2bua.calls[&CallKey(1)].caller, "anonymous");
    assert!(offer_from(&h, 1).is_none());
}

#[test]
fn one_before_the_offer_is_ignored_and_commit_comes_before_confirmation() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    join(&mut h, "c1", "+15551230001");
    h.take();
    press(&mut h, 1, '1');
    assert!(requests(&mut h).is_empty(), "offer not heard yet");
    h.run_until(offer_from(&h, 1).unwrap());
    press(&mut h, 1, '2');
    assert!(requests(&mut h).is_empty(), "only 1 counts");
    let prompts = h.media.prompts.len();
    press(&mut h, 1, '1');
    let reqs = requests(&mut h);
    let [StoreRequest::Commit { token, request, .. }] = reqs.as_slice() else {
        panic!("{reqs:?}");
    };
    assert_eq!(request.number, "+15551230001");
    assert_eq!(request.queue, "support");
    assert_eq!(request.seq, Seq(0));
    press(&mut h, 1, '1');
    assert!(requests(&mut h).is_empty(), "one commit per caller");
    assert_eq!(
        h.media.prompts.len(),
        prompts,
        "nothing promised before the store answered"
    );
    h.b2bua.callback_committed(h.now, *token, Ok(CallbackId(7)));
    h.drain();
    assert_eq!(
        h.media.prompts.len(),
        prompts,
        "no prompt queued behind the offer"
    );
    assert_eq!(
        h.media.prompts_now.len(),
        1,
        "the confirmation cuts in at once (the key may come mid-offer)"
    );
    assert!(h.take().iter().all(|(_, t)| !t.starts_with("BYE ")));
    let stream = stream_of(&h, 1);
    h.b2bua
        .handle_media_event(h.now, MediaEvent::PromptDone { id: stream });
    h.drain();
    let bye = find(&h.take(), "BYE ")
        .cloned()
        .expect("BYE after the prompt");
    assert_eq!(bye.0.to_string(), TRUNK);
    assert_eq!(h.b2bua.calls(), 0);
    let (_, entry) = h.b2bua.queues().get(EntryId(1)).expect("still queued");
    assert_eq!((entry.kind, entry.seq), (EntryKind::Callback, Seq(0)));
}

#[test]
fn a_failed_commit_promises_nothing_and_the_caller_keeps_holding() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    join(&mut h, "c1", "+15551230001");
    h.run_until(offer_from(&h, 1).unwrap());
    press(&mut h, 1, '1');
    let prompts = h.media.prompts.len();
    let token = CallKey(1);
    assert_eq!(requests(&mut h).len(), 1);
    h.b2bua
        .callback_committed(h.now, token, Err(StoreError::Overloaded));
    h.drain();
    assert!(h.take().iter().all(|(_, t)| !t.starts_with("BYE ")));
    assert_eq!(h.b2bua.calls(), 1);
    let (_, entry) = h.b2bua.queues().get(EntryId(1)).unwrap();
    assert_eq!(entry.kind, EntryKind::Caller);
    // Holding again: the next announcement (not a confirmation) plays, and 1 works again.
    h.run_until(h.now);
    assert_eq!(h.media.prompts.len(), prompts + 1);
    h.run_until(offer_from(&h, 1).unwrap());
    press(&mut h, 1, '1');
    assert_eq!(requests(&mut h).len(), 1);
}

#[test]
fn sip_info_dtmf_counts_like_rfc_4733() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    join(&mut h, "c1", "+15551230001");
    let tag = to_tag(
        &h.take()
            .iter()
            .find(|(_, t)| status(t) == Some(200))
            .unwrap()
            .1,
    );
    h.run_until(offer_from(&h, 1).unwrap());
    let body = "Signal=1\r\nDuration=160\r\n";
    let info = in_dialog("INFO", "c1", &tag, 2, "info1").replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/dtmf-relay\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    h.deliver(TRUNK, &info);
    assert_eq!(status(&h.take()[0].1), Some(200));
    assert!(matches!(
        requests(&mut h).as_slice(),
        [StoreRequest::Commit { .. }]
    ));
}

/// Commit caller 1's callback, let it hang up, register alice: she is rung first.
pub(super) fn dial_back_to_agent(h: &mut Harness) -> String {
    join(h, "c1", "+15551230001");
    commit_callback(h, 7);
    let stream = stream_of(h, 1);
    h.b2bua
        .handle_media_event(h.now, MediaEvent::PromptDone { id: stream });
    h.drain();
    h.take();
    register_alice(h);
    let sent = h.take();
    let (dest, invite) = find(&sent, "INVITE ").expect("agent rung first");
    assert_eq!(dest.to_string(), AGENT);
    assert!(invite.contains("+15551230001"), "{invite}");
    invite.clone()
}

/// The agent answers; once the attempt is recorded, the trunk is called for the caller's
/// number.
pub(super) fn agent_answers(h: &mut Harness, agent_invite: &str) -> String {
    agent_answers_for(h, agent_invite, "+15551230001")
}

fn agent_answers_for(h: &mut Harness, agent_invite: &str, number: &str) -> String {
    h.deliver(AGENT, &agent_reply(agent_invite, 200, true));
    assert!(
        h.sent.iter().all(|(d, _)| d.to_string() != TRUNK_OUT),
        "nothing to the trunk before the attempt is recorded"
    );
    store_answers(h);
    let sent = h.take();
    let (dest, trunk_invite) = sent
        .iter()
        .find(|(d, t)| t.starts_with("INVITE ") && d.to_string() == TRUNK_OUT)
        .expect("INVITE to the trunk after the agent answered");
    assert_eq!(dest.to_string(), TRUNK_OUT);
    assert!(
        trunk_invite.starts_with(&format!("INVITE sip:{number}@127.0.0.1:5070 SIP/2.0")),
        "{trunk_invite}"
    );
    trunk_invite.clone()
}

/// The callback states written since the last look (an attempt record is `dialling`, a
/// completion `completed`), answering what waits for an answer.
pub(super) fn states(h: &mut Harness) -> Vec<(CallbackState, u32)> {
    store_answers(h);
    std::mem::take(&mut h.stored)
        .into_iter()
        .filter_map(|r| match r {
            StoreRequest::SetState {
                state, attempts, ..
            } => Some((state, attempts)),
            StoreRequest::BeginAttempt { attempts, .. } => {
                Some((CallbackState::Dialling, attempts))
            }
            StoreRequest::Complete { attempts, .. } => Some((CallbackState::Completed, attempts)),
            StoreRequest::Commit { .. } | StoreRequest::Joined { .. } => None,
        })
        .collect()
}

#[test]
fn dial_back_rings_the_agent_first_then_bridges_the_caller() {
    // Recorded like any bridged call of its queue.
    let config = CONFIG_CALLBACKS.replace(
        "callback_retry_delay = 60",
        "callback_retry_delay = 60\nrecord = true",
    );
    let mut h = Harness::with_config(&config);
    let agent_invite = dial_back_to_agent(&mut h);
    let trunk_invite = agent_answers(&mut h, &agent_invite);
    assert_eq!(states(&mut h), vec![(CallbackState::Dialling, 1)]);
    // The trunk challenges; holdfast answers with the trunk's credentials.
    let challenge = agent_reply(&trunk_invite, 407, false).replace(
        "Content-Length: 0",
        "Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"abc\", qop=\"auth\"\r\nContent-Length: 0",
    );
    h.deliver(TRUNK_OUT, &challenge);
    assert!(
        find(&h.sent, "INVITE ").is_none(),
        "the INVITE with credentials is recorded first"
    );
    assert_eq!(states(&mut h), vec![(CallbackState::Dialling, 1)]);
    let sent = h.take();
    let (_, retry) = find(&sent, "INVITE ").expect("INVITE again with credentials");
    assert!(
        retry.contains("Proxy-Authorization: Digest username=\"holdfast\""),
        "{retry}"
    );
    assert!(retry.contains("CSeq: 2 INVITE"), "{retry}");
    let retry = retry.clone();
    h.deliver(TRUNK_OUT, &agent_reply(&retry, 200, true));
    assert_eq!(states(&mut h), vec![(CallbackState::Completed, 1)]);
    let sent = h.take();
    assert!(find(&sent, "ACK ").is_some(), "2xx ACKed");
    assert_eq!(h.media.bridged.len(), 1, "agent ⇄ caller");
    let (agent_stream, caller_stream) = h.media.bridged[0];
    let (caller, agent, path) = h.media.recorded.last().expect("recorded").clone();
    assert_eq!(
        (caller, agent),
        (caller_stream, agent_stream),
        "caller left, agent right"
    );
    let call_id = retry
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: "))
        .unwrap();
    assert!(path.starts_with("data/recordings"), "{path:?}");
    assert!(path.ends_with(format!("{call_id}.wav")), "{path:?}");
    assert!(h.b2bua.queues().get(EntryId(1)).is_none(), "served");
    // The called-back caller hangs up: the agent gets a BYE.
    let bye = retry
        .replace(
            "INVITE sip:+15551230001@127.0.0.1:5070",
            "BYE sip:holdfast@127.0.0.1:5060",
        )
        .replace("CSeq: 2 INVITE", "CSeq: 1 BYE");
    let bye = swap_from_to(&bye);
    let bye = bye.split("\r\n\r\n").next().unwrap().replace(
        &format!(
            "Content-Length: {}",
            retry.split("\r\n\r\n").nth(1).unwrap().len()
        ),
        "Content-Length: 0",
    ) + "\r\n\r\n";
    h.deliver(TRUNK_OUT, &bye);
    let sent = h.take();
    assert!(
        sent.iter()
            .any(|(d, t)| d.to_string() == TRUNK_OUT && status(t) == Some(200))
    );
    let (dest, _) = find(&sent, "BYE ").expect("BYE to the agent");
    assert_eq!(dest.to_string(), AGENT);
    assert_eq!(h.b2bua.callbacks_waiting(), 0);
}

/// Our INVITE turned into a request from the far end: From and To swap, the To gets the
/// tag the replies used ("ag1").
fn swap_from_to(text: &str) -> String {
    let from = text.lines().find(|l| l.starts_with("From:")).unwrap();
    let to = text.lines().find(|l| l.starts_with("To:")).unwrap();
    let new_from = format!("From:{};tag=ag1", &to[3..]);
    let new_to = format!("To:{}", &from[5..]);
    text.replace(from, "@@FROM@@")
        .replace(to, &new_to)
        .replace("@@FROM@@", &new_from)
}

#[test]
fn busy_caller_is_retried_after_the_delay_then_failed() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    let agent_invite = dial_back_to_agent(&mut h);
    let trunk_invite = agent_answers(&mut h, &agent_invite);
    h.deliver(TRUNK_OUT, &agent_reply(&trunk_invite, 486, false));
    let sent = h.take();
    let (dest, _) = find(&sent, "BYE ").expect("the agent is released");
    assert_eq!(dest.to_string(), AGENT);
    assert_eq!(
        states(&mut h),
        vec![(CallbackState::Dialling, 1), (CallbackState::Pending, 1)]
    );
    let (_, entry) = h.b2bua.queues().get(EntryId(1)).expect("keeps its place");
    assert_eq!(entry.seq, Seq(0));
    // Not before the retry delay (60 s), although alice is free.
    let t0 = h.now;
    h.run_until(t0 + Duration::from_secs(59));
    assert!(find(&h.take(), "INVITE ").is_none(), "too early");
    h.run_until(t0 + Duration::from_secs(61));
    let sent = h.take();
    let (dest, agent_invite) = find(&sent, "INVITE ").expect("second attempt").clone();
    assert_eq!(dest.to_string(), AGENT);
    let trunk_invite = agent_answers(&mut h, &agent_invite);
    h.deliver(TRUNK_OUT, &agent_reply(&trunk_invite, 486, false));
    h.take();
    assert_eq!(
        states(&mut h),
        vec![(CallbackState::Dialling, 2), (CallbackState::Failed, 2)]
    );
    assert!(
        h.b2bua.queues().get(EntryId(1)).is_none(),
        "out of the queue"
    );
    assert_eq!(h.b2bua.callbacks_waiting(), 0);
}

#[test]
fn restored_callbacks_are_dialled_in_their_original_order() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    let record = |id: i64, seq: u64, number: &str, state| CallbackRecord {
        id: CallbackId(id),
        request: CallbackRequest {
            queue: "support".into(),
            level: 5,
            seq: Seq(seq),
            number: number.into(),
            requested_at_ms: 0,
        },
        state,
        attempts: 1,
        next_attempt_at_ms: None,
        last_error: None,
        updated_at_ms: 0,
        attempt_invite: None,
        scheduled: false,
    };
    // As the store returns them (seq order), one of them cut short mid-dial.
    for r in [
        record(1, 3, "+15550000003", CallbackState::Pending),
        record(2, 9, "+15550000009", CallbackState::Dialling),
    ] {
        h.b2bua.restore_callback(h.now, &r, None).unwrap();
    }
    let gone = CallbackRecord {
        request: CallbackRequest {
            queue: "gone".into(),
            ..record(3, 4, "+15550000004", CallbackState::Pending).request
        },
        ..record(3, 4, "+15550000004", CallbackState::Pending)
    };
    assert!(matches!(
        h.b2bua.restore_callback(h.now, &gone, None),
        Err(RestoreError::UnknownQueue(_))
    ));
    h.b2bua.advance_seq(Seq(10));
    // A new caller queues behind them.
    join(&mut h, "c9", "+15551239999");
    let new_entry = h
        .b2bua
        .queues()
        .iter()
        .flat_map(|(_, q)| q.iter())
        .map(|e| e.seq)
        .max();
    assert_eq!(new_entry, Some(Seq(10)));
    h.take();
    register_alice(&mut h);
    let first = find(&h.take(), "INVITE ").unwrap().1.clone();
    assert!(first.contains("+15550000003"), "lowest seq first: {first}");
    agent_answers_for(&mut h, &first, "+15550000003");
    assert_eq!(states(&mut h), vec![(CallbackState::Dialling, 2)]);
}
