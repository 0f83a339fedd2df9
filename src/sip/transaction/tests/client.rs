//! Client transaction schedules (RFC 3261 §17.1), one endpoint with hand-fed responses.

use rsip::Method;

use super::*;

fn sent_requests(solo: &Solo, m: Method) -> Vec<u64> {
    solo.times(|msg| method(msg) == Some(m))
}

fn timeouts(solo: &Solo) -> Vec<u64> {
    solo.events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Timeout { .. }))
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn invite_retransmits_with_t1_doubling_and_times_out_at_64_t1() {
    let mut solo = Solo::new();
    let key = solo
        .tx
        .send_request(solo.now, addr(UAS), request("INVITE", "z9hG4bKinv1", "c1"))
        .expect("INVITE has a branch");
    solo.drain();
    solo.run_until(100.0);

    assert_eq!(
        sent_requests(&solo, Method::Invite),
        [0, 500, 1500, 3500, 7500, 15500, 31500]
    );
    assert_eq!(timeouts(&solo), [32000], "Timer B fires at exactly 64·T1");
    assert!(matches!(&solo.events[0].1, Event::Timeout { key: k } if *k == key));
    assert_eq!(solo.tx.len(), 0, "the timed-out transaction is removed");
    assert_eq!(solo.tx.poll_timeout(), None);
    assert_eq!(solo.stats().retransmissions, 6);
    assert_eq!(solo.stats().timeouts, 1);
}

#[test]
fn non_invite_timer_e_doubles_to_t2_then_timer_f_times_out() {
    let mut solo = Solo::new();
    solo.tx
        .send_request(solo.now, addr(UAS), request("OPTIONS", "z9hG4bKopt1", "c2"))
        .expect("OPTIONS has a branch");
    solo.drain();
    solo.run_until(100.0);

    let expected: Vec<u64> = [0, 500, 1500, 3500]
        .into_iter()
        .chain((7500..32000).step_by(4000))
        .collect();
    assert_eq!(sent_requests(&solo, Method::Options), expected);
    assert_eq!(timeouts(&solo), [32000], "Timer F fires at exactly 64·T1");
    assert_eq!(solo.tx.len(), 0);
}

#[test]
fn non_invite_retransmits_every_t2_after_a_provisional() {
    let mut solo = Solo::new();
    let options = request("OPTIONS", "z9hG4bKopt2", "c3");
    solo.tx
        .send_request(solo.now, addr(UAS), options.clone())
        .expect("has a branch");
    solo.drain();
    solo.at(0.2);
    solo.tx
        .handle_response(solo.now, addr(UAS), response(&options, 100))
        .expect("well formed");
    solo.drain();
    solo.run_until(100.0);

    // Timer E was armed for 0.5 s before the 100 arrived; from then on it runs at T2.
    let expected: Vec<u64> = [0].into_iter().chain((500..32000).step_by(4000)).collect();
    assert_eq!(sent_requests(&solo, Method::Options), expected);
    assert_eq!(timeouts(&solo), [32000]);
    assert!(
        matches!(&solo.events[0].1, Event::Response { response, .. } if response.status_code.code() == 100)
    );
}

#[test]
fn invite_final_non_2xx_is_acked_and_retransmissions_re_ack_without_surfacing() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "z9hG4bKinv2", "c4");
    solo.tx
        .send_request(solo.now, addr(UAS), invite.clone())
        .expect("has a branch");
    solo.drain();
    solo.at(0.1);
    let busy = response(&invite, 486);
    solo.tx
        .handle_response(solo.now, addr(UAS), busy.clone())
        .expect("well formed");
    solo.drain();
    solo.at(0.3);
    solo.tx
        .handle_response(solo.now, addr(UAS), busy)
        .expect("well formed");
    solo.drain();

    let acks: Vec<&rsip::Request> = solo
        .sent
        .iter()
        .filter_map(|(_, m)| match m {
            SipMessage::Request(r) if r.method == Method::Ack => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(acks.len(), 2, "one ACK per received 486");
    let ack = acks[0];
    assert_eq!(
        super::super::branch_of(ack).as_deref(),
        Some("z9hG4bKinv2"),
        "same branch as the INVITE"
    );
    assert_eq!(
        ack.cseq_header()
            .expect("has CSeq")
            .typed()
            .expect("parses")
            .method,
        Method::Ack
    );
    assert!(
        ack.to_header()
            .expect("has To")
            .tag()
            .expect("parses")
            .is_some(),
        "To carries the UAS tag"
    );
    assert_eq!(ack.uri, invite.uri);
    let surfaced = solo
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Response { .. }))
        .count();
    assert_eq!(surfaced, 1, "the retransmitted 486 is absorbed");

    solo.run_until(100.0);
    assert_eq!(
        sent_requests(&solo, Method::Invite),
        [0],
        "no retransmission after the final"
    );
    assert!(timeouts(&solo).is_empty());
    assert_eq!(solo.tx.len(), 0, "gone after Timer D");
}

#[test]
fn stray_responses_are_reported_not_matched() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "z9hG4bKinv3", "c5");
    solo.tx
        .send_request(solo.now, addr(UAS), invite.clone())
        .expect("has a branch");
    solo.drain();
    // Same branch, different CSeq method: a different transaction (§17.1.3).
    let mut wrong_method = response(&invite, 200);
    wrong_method
        .headers
        .retain(|h| !matches!(h, Header::CSeq(_)));
    wrong_method.headers.push(Header::CSeq(
        rsip::typed::CSeq {
            seq: 1,
            method: Method::Options,
        }
        .into(),
    ));
    solo.tx
        .handle_response(solo.now, addr(UAS), wrong_method)
        .expect("well formed");
    solo.drain();
    assert!(matches!(solo.events[0].1, Event::StrayResponse { .. }));
    assert_eq!(solo.stats().stray_responses, 1);
    assert_eq!(solo.tx.len(), 1);
}

#[test]
fn requests_without_branch_or_ack_are_refused() {
    let mut solo = Solo::new();
    let mut no_branch = request("OPTIONS", "z9hG4bKx", "c6");
    no_branch.headers.retain(|h| !matches!(h, Header::Via(_)));
    no_branch.headers.push(Header::Via(rsip::headers::Via::new(
        "SIP/2.0/UDP 192.0.2.1:5060",
    )));
    assert_eq!(
        solo.tx.send_request(solo.now, addr(UAS), no_branch),
        Err(super::super::SendError::Message(
            super::super::MessageError::NoBranch
        ))
    );
    assert_eq!(
        solo.tx
            .send_request(solo.now, addr(UAS), request("ACK", "z9hG4bKy", "c6")),
        Err(super::super::SendError::Ack)
    );
    let ok = request("OPTIONS", "z9hG4bKz", "c6");
    solo.tx
        .send_request(solo.now, addr(UAS), ok.clone())
        .expect("first use of the branch");
    assert_eq!(
        solo.tx.send_request(solo.now, addr(UAS), ok),
        Err(super::super::SendError::DuplicateBranch)
    );
    assert_eq!(solo.tx.len(), 1);
}

#[test]
fn time_never_goes_backwards() {
    let mut solo = Solo::new();
    solo.at(10.0);
    solo.tx.handle_timeout(solo.now);
    // An earlier `now` is treated as the latest time seen: Timer E counts from 10 s.
    solo.tx
        .send_request(solo.start, addr(UAS), request("OPTIONS", "z9hG4bKt", "c7"))
        .expect("has a branch");
    assert_eq!(solo.tx.poll_timeout(), Some(solo.start + secs(10.5)));
}

#[test]
fn over_a_connection_requests_are_not_retransmitted_and_timer_k_is_zero() {
    let mut solo = Solo::new();
    solo.tx.set_reliable(addr(UAS), true);
    solo.tx
        .send_request(solo.now, addr(UAS), request("INVITE", "z9hG4bKr1", "r1"))
        .expect("INVITE has a branch");
    let options = request("OPTIONS", "z9hG4bKr2", "r2");
    solo.tx
        .send_request(solo.now, addr(UAS), options.clone())
        .expect("OPTIONS has a branch");
    solo.drain();
    solo.at(1.0);
    solo.tx
        .handle_response(solo.now, addr(UAS), response(&options, 200))
        .expect("a response");
    solo.drain();
    // §17.1.2.2: Timer K is zero over a reliable transport; the OPTIONS is gone at once.
    solo.run_until(1.0);
    assert_eq!(solo.tx.len(), 1, "only the INVITE is left");
    solo.run_until(100.0);
    // §17.1.1.2: Timer A is not set over a reliable transport; Timer B still ends the wait.
    assert_eq!(sent_requests(&solo, Method::Invite), [0]);
    assert_eq!(sent_requests(&solo, Method::Options), [0]);
    assert_eq!(timeouts(&solo), [32000]);
    assert_eq!(solo.stats().retransmissions, 0);
    // A peer that is no longer reached over a connection gets retransmissions again.
    solo.tx.set_reliable(addr(UAS), false);
    solo.tx
        .send_request(solo.now, addr(UAS), request("INVITE", "z9hG4bKr3", "r3"))
        .expect("INVITE has a branch");
    solo.drain();
    solo.run_until(101.0);
    assert_eq!(sent_requests(&solo, Method::Invite).len(), 3);
}

#[test]
fn a_request_over_1300_bytes_goes_over_tcp_and_is_not_retransmitted() {
    let mut solo = Solo::new();
    let mut big = request("OPTIONS", "z9hG4bKbig", "big");
    big.headers
        .push(rsip::Header::Other("X-Pad".into(), "p".repeat(1400)));
    solo.tx
        .send_request(solo.now, addr(UAS), big)
        .expect("a branch");
    solo.drain();
    // §18.1.1: the TU is told to connect, and the transaction behaves as over a connection.
    assert_eq!(solo.tx.poll_stream(), Some(addr(UAS)));
    assert_eq!(solo.tx.poll_stream(), None);
    solo.run_until(40.0);
    assert_eq!(sent_requests(&solo, Method::Options), [0], "no Timer E");
    assert_eq!(timeouts(&solo), [32000], "Timer F still ends it");
    // A small request to the same peer now goes the same way, without retransmissions.
    solo.tx
        .send_request(solo.now, addr(UAS), request("OPTIONS", "z9hG4bKsmall", "s"))
        .expect("a branch");
    solo.drain();
    assert_eq!(solo.tx.poll_stream(), None, "already a stream");
    solo.run_until(80.0);
    assert_eq!(solo.stats().retransmissions, 0);
}
