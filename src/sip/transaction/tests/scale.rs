//! Many concurrent transactions: the timer queue stays exact and a timeout only runs what is due.

use std::time::Duration;

use rsip::Method;

use super::*;

const N: u64 = 10_000;

#[test]
fn ten_thousand_transactions_keep_poll_timeout_exact() {
    let start = Instant::now();
    let at = |i: u64| start + Duration::from_micros(10 * i);
    let mut tx = Transactions::new(TimerConfig::default());
    let mut requests = Vec::new();
    let mut server_keys = Vec::new();
    // Even i: an OPTIONS client transaction (Timers E, F). Odd i: an INVITE server transaction
    // answered 486 (Timers G, H). Each arms its first retransmission at at(i) + T1.
    for i in 0..N {
        let r = request(
            if i % 2 == 0 { "OPTIONS" } else { "INVITE" },
            &format!("z9hG4bK{i}"),
            &format!("scale-{i}"),
        );
        if i % 2 == 0 {
            tx.send_request(at(i), addr(UAS), r.clone())
                .expect("has a branch");
        } else {
            tx.handle_request(at(i), addr(UAC), r.clone())
                .expect("well formed");
            let Some(Event::Request { key, .. }) = tx.poll_event() else {
                panic!("INVITE surfaced")
            };
            tx.respond(at(i), &key, response(&r, 486)).expect("live");
            server_keys.push(key);
        }
        requests.push(r);
    }
    while tx.poll_transmit().is_some() {}
    assert_eq!(tx.len(), N as usize);
    assert_eq!(tx.poll_timeout(), Some(at(0) + secs(0.5)));

    // Finish transaction 0 (a final response) and 1 (the ACK): their retransmission timers go.
    let now = at(N);
    tx.handle_response(now, addr(UAS), response(&requests[0], 200))
        .expect("well formed");
    let mut ack = requests[1].clone();
    ack.method = Method::Ack;
    tx.handle_request(now, addr(UAC), ack).expect("well formed");
    assert!(matches!(tx.poll_event(), Some(Event::Response { .. })));
    assert!(tx.poll_event().is_none(), "the 486 ACK is absorbed");
    assert_eq!(tx.poll_timeout(), Some(at(2) + secs(0.5)));

    // Only i = 2..=9 are due: four OPTIONS and four 486 retransmissions, nothing else.
    tx.handle_timeout(at(9) + secs(0.5) + Duration::from_micros(5));
    let sent: Vec<SipMessage> = std::iter::from_fn(|| tx.poll_transmit())
        .map(|t| parse(&t))
        .collect();
    assert_eq!(
        sent.iter()
            .filter(|m| method(m) == Some(Method::Options))
            .count(),
        4
    );
    assert_eq!(sent.iter().filter(|m| status(m) == Some(486)).count(), 4);
    assert_eq!(sent.len(), 8);
    assert_eq!(tx.stats().retransmissions, 8);
    assert_eq!(tx.poll_timeout(), Some(at(10) + secs(0.5)));

    // Far past 64·T1: every open transaction retransmits once more (the eight above have their
    // next one due too), then times out; the two finished ones were removed by Timers K and I.
    tx.handle_timeout(start + secs(40.0));
    let mut resent = 0;
    while tx.poll_transmit().is_some() {
        resent += 1;
    }
    assert_eq!(resent, N - 2);
    let (mut timeouts, mut ack_timeouts) = (0, 0);
    while let Some(event) = tx.poll_event() {
        match event {
            Event::Timeout { .. } => timeouts += 1,
            Event::AckTimeout { key } => {
                assert!(server_keys.contains(&key));
                ack_timeouts += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((timeouts, ack_timeouts), (N / 2 - 1, N / 2 - 1));
    assert_eq!(tx.stats().timeouts, N - 2);
    assert_eq!(tx.len(), 0, "memory follows live transactions only");
    assert_eq!(tx.poll_timeout(), None);
    assert_eq!(tx.timers.len(), 0);
    assert!(tx.servers.is_empty() && tx.clients.is_empty() && tx.dialog_acks.is_empty());
}
