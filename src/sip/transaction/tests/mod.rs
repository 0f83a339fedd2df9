//! Deterministic tests: a fake clock that jumps to the next deadline, two endpoints wired
//! in-process through real serialization, and selective datagram loss.

mod client;
mod pair;
mod scale;
mod server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::prelude::*;
use rsip::{Header, SipMessage};

use super::{Event, Stats, TimerConfig, Transactions, Transmit};

pub(super) const UAC: &str = "192.0.2.1:5060";
pub(super) const UAS: &str = "192.0.2.2:5060";

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test addresses are valid")
}

pub(super) fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Whole milliseconds of `at` since `start`, so schedules compare exactly.
pub(super) fn ms(start: Instant, at: Instant) -> u64 {
    (at - start).as_millis() as u64
}

/// A request from the UAC at `UAC` with the given method, branch and Call-ID.
pub(super) fn request(method: &str, branch: &str, call_id: &str) -> rsip::Request {
    let text = format!(
        "{method} sip:queue@192.0.2.2:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:caller@192.0.2.1>;tag=from-{call_id}\r\n\
         To: <sip:queue@192.0.2.2>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:caller@192.0.2.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_str()).expect("test request parses")
}

/// A response to `request` as a UAS would build it (§8.2.6), with a To tag unless 100.
pub(super) fn response(request: &rsip::Request, code: u16) -> rsip::Response {
    let mut headers: rsip::Headers = Default::default();
    for header in request.headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone())
            }
            Header::To(to) if code > 100 => {
                let to = to
                    .clone()
                    .with_tag(rsip::param::Tag::new("uas-tag"))
                    .expect("test To parses");
                headers.push(Header::To(to));
            }
            Header::To(_) => headers.push(header.clone()),
            _ => {}
        }
    }
    headers.push(Header::ContentLength(Default::default()));
    rsip::Response {
        status_code: code.into(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The ACK a UAC core sends for a 2xx (§13.2.2.4): a new branch, CSeq number of the INVITE.
pub(super) fn ack_for_2xx(invite: &rsip::Request, ok: &rsip::Response) -> rsip::Request {
    let call_id = invite
        .call_id_header()
        .expect("test INVITE has Call-ID")
        .value()
        .to_owned();
    let mut ack = request("ACK", &super::new_branch(), &call_id);
    ack.headers.retain(|h| !matches!(h, Header::To(_)));
    ack.headers
        .push(Header::To(ok.to_header().expect("test 2xx has To").clone()));
    ack
}

pub(super) fn parse(transmit: &Transmit) -> SipMessage {
    SipMessage::try_from(transmit.payload.clone()).expect("every transmit re-parses")
}

pub(super) fn status(message: &SipMessage) -> Option<u16> {
    match message {
        SipMessage::Response(r) => Some(r.status_code.code()),
        SipMessage::Request(_) => None,
    }
}

pub(super) fn method(message: &SipMessage) -> Option<rsip::Method> {
    match message {
        SipMessage::Request(r) => Some(r.method),
        SipMessage::Response(_) => None,
    }
}

/// One endpoint driven alone: messages are fed by hand, transmits collected with their time.
pub(super) struct Solo {
    pub start: Instant,
    pub now: Instant,
    pub tx: Transactions,
    pub sent: Vec<(u64, SipMessage)>,
    pub events: Vec<(u64, Event)>,
}

impl Solo {
    pub fn new() -> Self {
        let start = Instant::now();
        Self {
            start,
            now: start,
            tx: Transactions::new(TimerConfig::default()),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn at(&mut self, s: f64) {
        self.now = self.start + secs(s);
    }

    pub fn drain(&mut self) {
        let t = ms(self.start, self.now);
        while let Some(transmit) = self.tx.poll_transmit() {
            self.sent.push((t, parse(&transmit)));
        }
        while let Some(event) = self.tx.poll_event() {
            self.events.push((t, event));
        }
    }

    /// Jumps to each deadline up to `until` seconds, running timers and collecting outputs.
    pub fn run_until(&mut self, until: f64) {
        let limit = self.start + secs(until);
        while let Some(next) = self.tx.poll_timeout() {
            if next > limit {
                break;
            }
            self.now = next;
            self.tx.handle_timeout(next);
            self.drain();
        }
        self.now = self.now.max(limit);
    }

    pub fn request(&mut self, request: rsip::Request) {
        self.tx
            .handle_request(self.now, addr(UAC), request)
            .expect("test request is well formed");
        self.drain();
    }

    pub fn stats(&self) -> &Stats {
        self.tx.stats()
    }

    /// Send times (ms) of transmits for which `pick` holds.
    pub fn times(&self, pick: impl Fn(&SipMessage) -> bool) -> Vec<u64> {
        self.sent
            .iter()
            .filter(|(_, m)| pick(m))
            .map(|(t, _)| *t)
            .collect()
    }
}
