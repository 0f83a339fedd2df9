//! Server transaction behaviour (RFC 3261 §17.2, RFC 6026), one endpoint with hand-fed requests.

use rsip::Method;

use super::super::{RespondError, ServerKey};
use super::*;

fn statuses(solo: &Solo) -> Vec<(u64, u16)> {
    solo.sent
        .iter()
        .filter_map(|(t, m)| status(m).map(|s| (*t, s)))
        .collect()
}

fn times_of(solo: &Solo, code: u16) -> Vec<u64> {
    solo.times(|m| status(m) == Some(code))
}

fn surfaced_key(solo: &Solo) -> ServerKey {
    solo.events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Request { key, .. } => Some(key.clone()),
            _ => None,
        })
        .expect("a request was surfaced")
}

fn ack_timeouts(solo: &Solo) -> Vec<u64> {
    solo.events
        .iter()
        .filter(|(_, e)| matches!(e, Event::AckTimeout { .. }))
        .map(|(t, _)| *t)
        .collect()
}

/// 2xx and non-2xx finals are re-sent at T1, 2·T1, ... capped at T2, starting `from` ms.
fn g_schedule(from: u64, until: u64) -> Vec<u64> {
    let mut times = vec![from];
    let (mut at, mut interval) = (from, 500);
    loop {
        at += interval;
        if at >= until {
            return times;
        }
        times.push(at);
        interval = (interval * 2).min(4000);
    }
}

#[test]
fn invite_gets_100_at_once_and_retransmissions_replay_the_last_provisional() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "z9hG4bKs1", "s1");
    solo.request(invite.clone());
    assert_eq!(statuses(&solo), [(0, 100)], "100 Trying at once");
    let trying = match &solo.sent[0].1 {
        SipMessage::Response(r) => r.clone(),
        SipMessage::Request(_) => panic!("sent a request"),
    };
    assert_eq!(
        trying.call_id_header().expect("copied"),
        invite.call_id_header().expect("present")
    );
    assert_eq!(
        super::super::key::top_via(&trying),
        super::super::key::top_via(&invite)
    );
    assert!(
        trying
            .to_header()
            .expect("copied")
            .tag()
            .expect("parses")
            .is_none()
    );

    solo.at(0.3);
    solo.request(invite.clone());
    let key = surfaced_key(&solo);
    solo.at(0.4);
    solo.tx
        .respond(solo.now, &key, response(&invite, 180))
        .expect("live transaction");
    solo.drain();
    solo.at(0.6);
    solo.request(invite.clone());

    assert_eq!(
        statuses(&solo),
        [(0, 100), (300, 100), (400, 180), (600, 180)]
    );
    let surfaced = solo
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Request { .. }))
        .count();
    assert_eq!(surfaced, 1, "retransmissions are absorbed");
    assert_eq!(solo.stats().absorbed, 2);
}

#[test]
fn invite_2xx_is_retransmitted_until_the_ack_then_stops() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "z9hG4bKs2", "s2");
    solo.request(invite.clone());
    let key = surfaced_key(&solo);
    solo.at(1.0);
    let ok = response(&invite, 200);
    solo.tx
        .respond(solo.now, &key, ok.clone())
        .expect("live transaction");
    solo.drain();
    solo.run_until(10.0);
    solo.request(ack_for_2xx(&invite, &ok));
    solo.run_until(100.0);

    assert_eq!(times_of(&solo, 200), g_schedule(1000, 10_000));
    assert_eq!(times_of(&solo, 200), [1000, 1500, 2500, 4500, 8500]);
    let acks: Vec<_> = solo
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Ack { invite, .. } => Some(invite.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        acks,
        [Some(key)],
        "the 2xx ACK is surfaced and tied to its INVITE"
    );
    assert!(ack_timeouts(&solo).is_empty());
    assert_eq!(solo.tx.len(), 0, "gone after Timer L");
}

#[test]
fn invite_2xx_without_ack_gives_up_at_64_t1() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "z9hG4bKs3", "s3");
    solo.request(invite.clone());
    let key = surfaced_key(&solo);
    solo.at(2.0);
    solo.tx
        .respond(solo.now, &key, response(&invite, 200))
        .expect("live transaction");
    solo.drain();
    solo.run_until(100.0);

    assert_eq!(times_of(&solo, 200), g_schedule(2000, 34_000));
    assert_eq!(
        ack_timeouts(&solo),
        [34_000],
        "Timer L: 64·T1 after the 2xx"
    );
    assert_eq!(solo.tx.len(), 0);
    assert_eq!(
        solo.tx.respond(solo.now, &key, response(&invite, 200)),
        Err(RespondError::UnknownTransaction)
    );
}

#[test]
fn invite_486_is_retransmitted_until_the_ack_which_is_absorbed() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "z9hG4bKs4", "s4");
    solo.request(invite.clone());
    let key = surfaced_key(&solo);
    let busy = response(&invite, 486);
    solo.tx
        .respond(solo.now, &key, busy.clone())
        .expect("live transaction");
    solo.drain();
    assert_eq!(
        solo.tx.respond(solo.now, &key, response(&invite, 200)),
        Err(RespondError::AlreadyFinal)
    );
    solo.run_until(5.0);
    // The non-2xx ACK: same branch as the INVITE, To from the 486 (§17.1.1.3).
    let mut ack = request("ACK", "z9hG4bKs4", "s4");
    ack.headers.retain(|h| !matches!(h, Header::To(_)));
    ack.headers
        .push(Header::To(busy.to_header().expect("has To").clone()));
    solo.request(ack.clone());
    solo.at(5.5);
    solo.request(ack);
    solo.at(6.0);
    solo.request(invite.clone());
    assert_eq!(solo.tx.len(), 1, "Confirmed until Timer I");
    solo.run_until(100.0);

    assert_eq!(times_of(&solo, 486), [0, 500, 1500, 3500]);
    assert!(
        solo.events
            .iter()
            .all(|(_, e)| !matches!(e, Event::Ack { .. })),
        "ACK absorbed"
    );
    assert!(ack_timeouts(&solo).is_empty());
    assert_eq!(solo.tx.len(), 0, "gone after Timer I");
}

#[test]
fn invite_486_without_ack_times_out_on_timer_h() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "z9hG4bKs5", "s5");
    solo.request(invite.clone());
    let key = surfaced_key(&solo);
    solo.tx
        .respond(solo.now, &key, response(&invite, 486))
        .expect("live transaction");
    solo.drain();
    solo.run_until(100.0);

    assert_eq!(times_of(&solo, 486), g_schedule(0, 32_000));
    assert_eq!(times_of(&solo, 486).last(), Some(&31_500));
    assert_eq!(ack_timeouts(&solo), [32_000]);
    assert_eq!(solo.tx.len(), 0);
}

#[test]
fn non_invite_final_is_replayed_for_retransmissions_until_timer_j() {
    let mut solo = Solo::new();
    let options = request("OPTIONS", "z9hG4bKs6", "s6");
    solo.request(options.clone());
    assert!(solo.sent.is_empty(), "no automatic 100 for non-INVITE");
    solo.at(0.5);
    solo.request(options.clone());
    assert!(solo.sent.is_empty(), "Trying absorbs silently");
    let key = surfaced_key(&solo);
    solo.at(1.0);
    solo.tx
        .respond(solo.now, &key, response(&options, 200))
        .expect("live transaction");
    solo.drain();
    solo.at(2.0);
    solo.request(options.clone());
    solo.at(20.0);
    solo.request(options.clone());

    assert_eq!(times_of(&solo, 200), [1000, 2000, 20_000]);
    let first = solo.sent[0].1.to_string();
    assert!(
        solo.sent.iter().all(|(_, m)| m.to_string() == first),
        "the same final each time"
    );
    let surfaced = solo
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Request { .. }))
        .count();
    assert_eq!(surfaced, 1);

    solo.run_until(32.9);
    assert_eq!(solo.tx.len(), 1);
    solo.run_until(33.0);
    assert_eq!(solo.tx.len(), 0, "Timer J: 64·T1 after the final");
    assert_eq!(solo.tx.poll_timeout(), None);
}

#[test]
fn rfc2543_requests_without_magic_cookie_still_match() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "old-style-1", "s7");
    solo.request(invite.clone());
    solo.request(invite.clone());
    let key = surfaced_key(&solo);
    assert_eq!(
        solo.events.len(),
        1,
        "retransmission matched by Call-ID/CSeq/From tag/Via"
    );
    let busy = response(&invite, 603);
    solo.tx
        .respond(solo.now, &key, busy.clone())
        .expect("live transaction");
    let mut ack = invite.clone();
    ack.method = Method::Ack;
    ack.headers
        .retain(|h| !matches!(h, Header::To(_) | Header::CSeq(_)));
    ack.headers
        .push(Header::To(busy.to_header().expect("has To").clone()));
    ack.headers.push(Header::CSeq(
        rsip::typed::CSeq {
            seq: 1,
            method: Method::Ack,
        }
        .into(),
    ));
    solo.request(ack);
    assert_eq!(solo.events.len(), 1, "ACK of the 603 absorbed");
    solo.run_until(100.0);
    assert_eq!(times_of(&solo, 603), [0], "ACK stopped Timer G");
    assert_eq!(solo.tx.len(), 0);
}

#[test]
fn bad_status_and_unmatched_cancel_are_handled() {
    let mut solo = Solo::new();
    let invite = request("INVITE", "z9hG4bKs8", "s8");
    solo.request(invite.clone());
    let key = surfaced_key(&solo);
    let mut weird = response(&invite, 200);
    weird.status_code = rsip::StatusCode::Other(99, "Odd".into());
    assert_eq!(
        solo.tx.respond(solo.now, &key, weird),
        Err(RespondError::InvalidStatus(99))
    );

    // A CANCEL for an unknown INVITE is a plain request: the TU answers 481.
    solo.request(request("CANCEL", "z9hG4bKnone", "s9"));
    assert!(
        matches!(&solo.events.last().expect("surfaced").1, Event::Request { request, .. } if request.method == Method::Cancel)
    );
}

#[test]
fn a_retransmission_from_a_new_source_gets_the_reply_there() {
    // RFC 3581: responses go to where the request came from. A client whose NAT binding
    // moved (or a torture tester reusing a branch from another socket) must still hear us.
    let mut tx = Transactions::new(TimerConfig::default());
    let now = Instant::now();
    let options = request("OPTIONS", "z9hG4bKmove", "move");
    tx.handle_request(now, addr(UAC), options.clone()).unwrap();
    let Some(Event::Request { key, .. }) = tx.poll_event() else {
        panic!("request surfaced");
    };
    tx.respond(now, &key, response(&options, 200)).unwrap();
    let first = tx.poll_transmit().expect("the 200");
    assert_eq!(first.destination, addr(UAC));
    let moved = addr("127.0.0.1:6099");
    tx.handle_request(now, moved, options).unwrap();
    let again = tx.poll_transmit().expect("the replayed 200");
    assert_eq!(again.destination, moved);
    assert_eq!(again.payload, first.payload);
    assert!(tx.poll_event().is_none(), "absorbed, not surfaced");
}

#[test]
fn over_a_connection_a_non_invite_final_ends_its_transaction_at_once() {
    let mut solo = Solo::new();
    solo.tx.set_reliable(addr(UAC), true);
    let options = request("OPTIONS", "z9hG4bKr6", "r6");
    solo.request(options.clone());
    let key = surfaced_key(&solo);
    solo.tx
        .respond(solo.now, &key, response(&options, 200))
        .expect("live transaction");
    solo.drain();
    // §17.2.2: Timer J is zero over a reliable transport.
    solo.run_until(0.0);
    assert_eq!(solo.tx.len(), 0);
    assert_eq!(times_of(&solo, 200), [0]);
}
