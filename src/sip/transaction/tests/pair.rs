//! Two endpoints wired in-process through real serialization, with datagram loss: the
//! end-to-end INVITE and CANCEL flows.

use std::collections::HashMap;

use rsip::Method;

use super::super::{ClientKey, ServerKey};
use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// The transaction user of one side: reacts to an event by calling back into its endpoint.
type Tu<'a> = dyn FnMut(&mut Transactions, Instant, &Event) + 'a;

/// Decides whether a datagram sent by a side is lost.
type Loss = Box<dyn FnMut(Side, &SipMessage) -> bool>;

struct Pair {
    start: Instant,
    now: Instant,
    client: Transactions,
    server: Transactions,
    /// Every datagram put on the wire: (ms, sender, message, dropped).
    wire: Vec<(u64, Side, SipMessage, bool)>,
    /// Decides which datagrams are lost.
    lose: Loss,
    client_events: Vec<(u64, Event)>,
    server_events: Vec<(u64, Event)>,
}

impl Pair {
    fn new(lose: impl FnMut(Side, &SipMessage) -> bool + 'static) -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            client: Transactions::new(TimerConfig::default()),
            server: Transactions::new(TimerConfig::default()),
            wire: Vec::new(),
            lose: Box::new(lose),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Moves datagrams both ways until none are queued.
    fn deliver(&mut self) {
        loop {
            let mut moved = false;
            for side in [Side::Client, Side::Server] {
                let (from, to, to_addr, from_addr) = match side {
                    Side::Client => (&mut self.client, &mut self.server, UAS, UAC),
                    Side::Server => (&mut self.server, &mut self.client, UAC, UAS),
                };
                while let Some(transmit) = from.poll_transmit() {
                    moved = true;
                    assert_eq!(
                        transmit.destination,
                        addr(to_addr),
                        "{side:?} sent to the peer"
                    );
                    let message = parse(&transmit);
                    let lost = (self.lose)(side, &message);
                    self.wire
                        .push((ms(self.start, self.now), side, message.clone(), lost));
                    if lost {
                        continue;
                    }
                    let source = addr(from_addr);
                    match message {
                        SipMessage::Request(r) => to.handle_request(self.now, source, r),
                        SipMessage::Response(r) => to.handle_response(self.now, source, r),
                    }
                    .expect("peer messages are well formed");
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs both sides, jumping the clock to the earlier deadline, until nothing is due before
    /// `until` seconds.
    fn run(&mut self, until: f64, client_tu: &mut Tu, server_tu: &mut Tu) {
        let limit = self.start + secs(until);
        loop {
            self.deliver();
            let t = ms(self.start, self.now);
            let mut acted = false;
            while let Some(event) = self.client.poll_event() {
                client_tu(&mut self.client, self.now, &event);
                self.client_events.push((t, event));
                acted = true;
            }
            while let Some(event) = self.server.poll_event() {
                server_tu(&mut self.server, self.now, &event);
                self.server_events.push((t, event));
                acted = true;
            }
            if acted {
                continue;
            }
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(next) if next <= limit => {
                    self.now = next;
                    self.client.handle_timeout(next);
                    self.server.handle_timeout(next);
                }
                _ => return,
            }
        }
    }

    fn on_wire(&self, side: Side, pick: impl Fn(&SipMessage) -> bool) -> Vec<(u64, bool)> {
        self.wire
            .iter()
            .filter(|(_, s, m, _)| *s == side && pick(m))
            .map(|(t, _, _, lost)| (*t, *lost))
            .collect()
    }
}

/// The UAC core: ACKs every 2xx to an INVITE end-to-end (again for each retransmission).
fn ack_every_2xx(invite: rsip::Request) -> impl FnMut(&mut Transactions, Instant, &Event) {
    move |tx, _, event| {
        if let Event::Response { key, response } = event
            && key.method() == Method::Invite
            && response.status_code.code() / 100 == 2
        {
            tx.send_stateless(addr(UAS), ack_for_2xx(&invite, response));
        }
    }
}

/// The UAS core: answers every new INVITE with `code`, and OPTIONS etc. with 200.
fn answer_with(code: u16) -> impl FnMut(&mut Transactions, Instant, &Event) {
    move |tx, now, event| {
        if let Event::Request { key, request, .. } = event {
            let code = if request.method == Method::Invite {
                code
            } else {
                200
            };
            tx.respond(now, key, response(request, code))
                .expect("transaction is live");
        }
    }
}

fn count(events: &[(u64, Event)], pick: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|(_, e)| pick(e)).count()
}

fn is_timeout(e: &Event) -> bool {
    matches!(e, Event::Timeout { .. } | Event::AckTimeout { .. })
}

#[test]
fn call_completes_despite_losing_two_invites_and_the_first_200() {
    let (mut invites_lost, mut oks_lost) = (0, 0);
    let mut pair = Pair::new(move |side, m| match (side, m) {
        (Side::Client, SipMessage::Request(r))
            if r.method == Method::Invite && invites_lost < 2 =>
        {
            invites_lost += 1;
            true
        }
        (Side::Server, m) if status(m) == Some(200) && oks_lost < 1 => {
            oks_lost += 1;
            true
        }
        _ => false,
    });
    let invite = request("INVITE", "z9hG4bKcall1", "p1");
    pair.client
        .send_request(pair.now, addr(UAS), invite.clone())
        .expect("has a branch");
    pair.run(100.0, &mut ack_every_2xx(invite), &mut answer_with(200));

    let invites = pair.on_wire(Side::Client, |m| method(m) == Some(Method::Invite));
    assert_eq!(invites, [(0, true), (500, true), (1500, false)]);
    let oks = pair.on_wire(Side::Server, |m| status(m) == Some(200));
    assert_eq!(
        oks,
        [(1500, true), (2000, false)],
        "2xx re-sent after T1, then the ACK stops it"
    );
    assert_eq!(
        pair.on_wire(Side::Client, |m| method(m) == Some(Method::Ack)),
        [(2000, false)]
    );

    assert_eq!(
        count(&pair.server_events, |e| matches!(e, Event::Request { .. })),
        1
    );
    assert_eq!(
        count(&pair.server_events, |e| matches!(
            e,
            Event::Ack {
                invite: Some(_),
                ..
            }
        )),
        1
    );
    let responses: Vec<u16> = pair
        .client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Response { response, .. } => Some(response.status_code.code()),
            _ => None,
        })
        .collect();
    assert_eq!(responses, [100, 200]);
    assert_eq!(
        count(&pair.client_events, is_timeout) + count(&pair.server_events, is_timeout),
        0
    );
    assert_eq!(
        (pair.client.len(), pair.server.len()),
        (0, 0),
        "all transactions terminated"
    );
}

#[test]
fn lost_ack_is_recovered_by_the_2xx_retransmission() {
    let mut acks_lost = 0;
    let mut pair = Pair::new(move |side, m| {
        let lose = side == Side::Client && method(m) == Some(Method::Ack) && acks_lost < 1;
        acks_lost += usize::from(lose);
        lose
    });
    let invite = request("INVITE", "z9hG4bKcall2", "p2");
    pair.client
        .send_request(pair.now, addr(UAS), invite.clone())
        .expect("has a branch");
    pair.run(100.0, &mut ack_every_2xx(invite), &mut answer_with(200));

    assert_eq!(
        pair.on_wire(Side::Server, |m| status(m) == Some(200)),
        [(0, false), (500, false)]
    );
    assert_eq!(
        pair.on_wire(Side::Client, |m| method(m) == Some(Method::Ack)),
        [(0, true), (500, false)]
    );
    assert_eq!(
        count(
            &pair.client_events,
            |e| matches!(e, Event::Response { response, .. } if response.status_code.code() == 200)
        ),
        2,
        "the 2xx retransmission reaches the TU (RFC 6026)"
    );
    assert_eq!(
        count(&pair.server_events, |e| matches!(e, Event::Ack { .. })),
        1
    );
    assert_eq!(count(&pair.server_events, is_timeout), 0);
}

/// The UAS core of the CANCEL tests: rings on INVITE; on CANCEL answers 200 and 487.
fn ring_then_honour_cancel() -> impl FnMut(&mut Transactions, Instant, &Event) {
    let mut invites: HashMap<ServerKey, rsip::Request> = HashMap::new();
    move |tx, now, event| match event {
        Event::Request { key, request, .. } if request.method == Method::Invite => {
            tx.respond(now, key, response(request, 180)).expect("live");
            invites.insert(key.clone(), request.clone());
        }
        Event::Cancel {
            key,
            invite,
            request,
            ..
        } => {
            tx.respond(now, key, response(request, 200)).expect("live");
            let original = invites.get(invite).expect("the INVITE was seen");
            tx.respond(now, invite, response(original, 487))
                .expect("live");
        }
        _ => {}
    }
}

fn cancel_on_180(
    key: &mut Option<ClientKey>,
) -> impl FnMut(&mut Transactions, Instant, &Event) + '_ {
    move |tx, now, event| {
        if let Event::Response {
            key: invite,
            response,
        } = event
            && response.status_code.code() == 180
        {
            *key = Some(tx.cancel(now, invite).expect("INVITE is proceeding"));
        }
    }
}

#[test]
fn cancel_after_ringing_ends_with_487_and_automatic_ack() {
    let mut pair = Pair::new(|_, _| false);
    let invite = request("INVITE", "z9hG4bKcall3", "p3");
    let invite_key = pair
        .client
        .send_request(pair.now, addr(UAS), invite.clone())
        .expect("has a branch");
    let mut cancel_key = None;
    pair.run(
        100.0,
        &mut cancel_on_180(&mut cancel_key),
        &mut ring_then_honour_cancel(),
    );
    let cancel_key = cancel_key.expect("the client cancelled");
    assert_eq!(
        (cancel_key.method(), cancel_key.branch()),
        (Method::Cancel, invite_key.branch())
    );

    let cancel = pair
        .wire
        .iter()
        .find_map(|(_, _, m, _)| match m {
            SipMessage::Request(r) if r.method == Method::Cancel => Some(r.clone()),
            _ => None,
        })
        .expect("a CANCEL went out");
    assert_eq!(cancel.uri, invite.uri);
    assert_eq!(
        super::super::branch_of(&cancel),
        super::super::branch_of(&invite)
    );
    assert_eq!(
        cancel.call_id_header().expect("has Call-ID"),
        invite.call_id_header().expect("has Call-ID")
    );
    assert_eq!(
        cancel.from_header().expect("has From"),
        invite.from_header().expect("has From")
    );
    assert_eq!(
        cancel.to_header().expect("has To"),
        invite.to_header().expect("has To")
    );
    let cseq = cancel
        .cseq_header()
        .expect("has CSeq")
        .typed()
        .expect("parses");
    assert_eq!((cseq.seq, cseq.method), (1, Method::Cancel));

    let server_invite_key = pair
        .server_events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Request { key, .. } => Some(key.clone()),
            _ => None,
        })
        .expect("INVITE surfaced");
    assert_eq!(
        count(
            &pair.server_events,
            |e| matches!(e, Event::Cancel { invite, .. } if *invite == server_invite_key)
        ),
        1
    );

    let finals: Vec<(Method, u16)> = pair
        .client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Response { key, response } => Some((key.method(), response.status_code.code())),
            _ => None,
        })
        .collect();
    assert_eq!(
        finals,
        [
            (Method::Invite, 100),
            (Method::Invite, 180),
            (Method::Cancel, 200),
            (Method::Invite, 487)
        ]
    );
    // The ACK for the 487 is generated by the client transaction and absorbed by the server's.
    let acks = pair.on_wire(Side::Client, |m| method(m) == Some(Method::Ack));
    assert_eq!(acks.len(), 1);
    assert_eq!(
        count(&pair.server_events, |e| matches!(e, Event::Ack { .. })),
        0
    );
    assert_eq!(
        pair.on_wire(Side::Server, |m| status(m) == Some(487)).len(),
        1,
        "no Timer G re-send: ACKed"
    );
    assert_eq!(
        count(&pair.client_events, is_timeout) + count(&pair.server_events, is_timeout),
        0
    );
    assert_eq!((pair.client.len(), pair.server.len()), (0, 0));
}

#[test]
fn cancel_before_any_provisional_waits_for_the_first_one() {
    let mut pair = Pair::new(|_, _| false);
    let invite = request("INVITE", "z9hG4bKcall4", "p4");
    let key = pair
        .client
        .send_request(pair.now, addr(UAS), invite)
        .expect("has a branch");
    pair.client
        .cancel(pair.now, &key)
        .expect("deferred, not refused");
    assert_eq!(
        pair.client.cancel(pair.now, &key),
        Err(super::super::CancelError::AlreadyRequested)
    );
    pair.run(100.0, &mut |_, _, _| {}, &mut ring_then_honour_cancel());

    let order: Vec<String> = pair
        .wire
        .iter()
        .map(|(_, _, m, _)| match m {
            SipMessage::Request(r) => r.method.to_string(),
            SipMessage::Response(r) => r.status_code.code().to_string(),
        })
        .collect();
    // Nothing goes out on cancel(); the CANCEL follows the first provisional (§9.1), here the
    // automatic 100 Trying, which reaches the client before the server's TU rings.
    assert_eq!(order[..3], ["INVITE", "100", "CANCEL"]);
    assert_eq!(
        count(&pair.server_events, |e| matches!(e, Event::Cancel { .. })),
        1
    );
    assert_eq!((pair.client.len(), pair.server.len()), (0, 0));
}

#[test]
fn cancel_to_a_silent_peer_stops_the_invite_resends() {
    // The phone is gone: nothing it is sent arrives. Giving up (ring timeout) may not send
    // a CANCEL (§9.1) but stops Timer A; Timer B still reports the timeout.
    let mut pair = Pair::new(|side, _| side == Side::Client);
    let invite = request("INVITE", "z9hG4bKdead", "p9");
    let key = pair
        .client
        .send_request(pair.now, addr(UAS), invite)
        .expect("has a branch");
    pair.run(1.2, &mut |_, _, _| {}, &mut |_, _, _| {});
    let sent_before = pair
        .on_wire(Side::Client, |m| method(m) == Some(Method::Invite))
        .len();
    assert_eq!(sent_before, 2, "the INVITE and one Timer A re-send");
    pair.client.cancel(pair.now, &key).expect("deferred");
    pair.run(100.0, &mut |_, _, _| {}, &mut |_, _, _| {});
    assert_eq!(
        pair.on_wire(Side::Client, |m| method(m) == Some(Method::Invite))
            .len(),
        sent_before,
        "no INVITE re-sent after the TU gave up"
    );
    assert!(
        pair.on_wire(Side::Client, |m| method(m) == Some(Method::Cancel))
            .is_empty()
    );
    assert_eq!(count(&pair.client_events, is_timeout), 1, "Timer B");
    assert_eq!(pair.client.len(), 0);
}

#[test]
fn cancel_is_dropped_when_a_final_arrives_first() {
    // Lose the 100 Trying so the client is still "Calling" when the 486 arrives.
    let mut pair = Pair::new(|side, m| side == Side::Server && status(m) == Some(100));
    let invite = request("INVITE", "z9hG4bKcall5", "p5");
    let key = pair
        .client
        .send_request(pair.now, addr(UAS), invite)
        .expect("has a branch");
    pair.client.cancel(pair.now, &key).expect("deferred");
    pair.run(100.0, &mut |_, _, _| {}, &mut answer_with(486));

    assert!(
        pair.on_wire(Side::Client, |m| method(m) == Some(Method::Cancel))
            .is_empty()
    );
    assert_eq!(
        pair.on_wire(Side::Client, |m| method(m) == Some(Method::Ack))
            .len(),
        1
    );
    assert_eq!((pair.client.len(), pair.server.len()), (0, 0));
}
