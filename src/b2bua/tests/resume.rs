//! `resume_within` with a fake clock (docs/behaviour.md §3 "Resume"): a caller who hung up
//! and calls again from the same number in time gets its old place back, once.

use std::time::Duration;

use super::*;
use crate::store::{CallEventKind, Record};

const RESUME: &str = r#"
[sip]
listen = "127.0.0.1:5060"
[[trunk]]
allow = ["127.0.0.0/8"]
[[queue]]
name = "support"
resume_within = 60
[[route]]
number = "*"
queue = "support"
"#;

/// Calls from `number` as `call` and ACKs our 200; returns its To tag.
fn call(h: &mut Harness, call: &str, number: &str) -> String {
    h.deliver(TRUNK, &invite(call, number));
    let sent = h.take();
    let ok = sent
        .iter()
        .find(|(_, t)| status(t) == Some(200) && t.contains(&format!("Call-ID: {call}\r\n")))
        .unwrap();
    let tag = to_tag(&ok.1);
    h.deliver(
        TRUNK,
        &in_dialog("ACK", call, &tag, 1, &format!("ack-{call}")),
    );
    tag
}

fn hang_up(h: &mut Harness, call: &str, tag: &str) {
    h.deliver(
        TRUNK,
        &in_dialog("BYE", call, tag, 2, &format!("bye-{call}")),
    );
    let sent = h.take();
    assert!(
        sent.iter().any(|(_, t)| status(t) == Some(200)),
        "{call}: {sent:?}"
    );
}

fn line(h: &Harness) -> Vec<String> {
    h.b2bua.snapshot(h.now).queues[0]
        .waiting
        .iter()
        .map(|w| w.caller.clone())
        .collect()
}

fn resumes(h: &mut Harness) -> usize {
    std::iter::from_fn(|| h.b2bua.poll_record())
        .filter(|(_, r)| matches!(r, Record::Event(e) if e.kind == CallEventKind::Resume))
        .count()
}

#[test]
fn a_caller_who_calls_again_in_time_gets_its_place_back_once() {
    let mut h = Harness::with_config(RESUME);
    let t0 = h.now;
    let first = call(&mut h, "c1", "+15550000001");
    call(&mut h, "c2", "+15550000002");
    h.run_until(t0 + Duration::from_secs(10));
    hang_up(&mut h, "c1", &first);
    call(&mut h, "c3", "+15550000003");
    // Back 20 s later: ahead of c2 and c3 again, its wait counted from the first arrival.
    h.run_until(t0 + Duration::from_secs(30));
    let again = call(&mut h, "c1b", "+15550000001");
    assert_eq!(line(&h), ["+15550000001", "+15550000002", "+15550000003"]);
    assert_eq!(h.b2bua.snapshot(h.now).queues[0].waiting[0].waited_s, 30);
    assert_eq!(resumes(&mut h), 1);
    // Once: hanging up and calling again puts it at the back.
    hang_up(&mut h, "c1b", &again);
    call(&mut h, "c1c", "+15550000001");
    assert_eq!(line(&h), ["+15550000002", "+15550000003", "+15550000001"]);
    assert_eq!(resumes(&mut h), 0);
}

#[test]
fn a_caller_who_calls_again_too_late_or_from_another_number_starts_at_the_back() {
    let mut h = Harness::with_config(RESUME);
    let t0 = h.now;
    let first = call(&mut h, "c1", "+15550000001");
    let second = call(&mut h, "c2", "+15550000002");
    call(&mut h, "c3", "+15550000003");
    hang_up(&mut h, "c1", &first);
    hang_up(&mut h, "c2", &second);
    // c2's number after 61 s; c1's place is not for another number.
    h.run_until(t0 + Duration::from_secs(61));
    call(&mut h, "c2b", "+15550000002");
    call(&mut h, "c9", "+15550000009");
    assert_eq!(line(&h), ["+15550000003", "+15550000002", "+15550000009"]);
    assert_eq!(resumes(&mut h), 0);
}
