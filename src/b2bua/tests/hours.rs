//! Opening hours with a fake clock (docs/behaviour.md §3 "Hours"): outside them a caller
//! hears the closed message and a BYE, or joins the `closed` queue; a callback is not
//! dialled until the queue opens.

use std::time::Duration;

use super::agents::register_alice;
use super::*;
use crate::media::engine::MediaEvent;
use crate::queue::Seq;
use crate::store::{
    CallEventKind, CallbackId, CallbackRecord, CallbackRequest, CallbackState, Record,
};

const HOURS: &str = r#"
[sip]
listen = "127.0.0.1:5060"
digest_algorithms = ["MD5"]
[[trunk]]
allow = ["127.0.0.0/8"]
address = "127.0.0.1:5070"
[[queue]]
name = "support"
hours = ["Mon-Fri 08:00-18:00"]
timezone = "Europe/Berlin"
closed = "hangup"
[[queue]]
name = "sales"
hours = ["Mon-Fri 08:00-18:00"]
timezone = "Europe/Berlin"
closed = "night"
[[queue]]
name = "night"
[[route]]
number = "100"
queue = "support"
[[route]]
number = "200"
queue = "sales"
[[agent]]
user = "alice"
password = "alice-secret"
queues = ["support"]
"#;

/// Sunday 2026-12-06 10:00 UTC (11:00 in Berlin): closed.
const SUNDAY_MS: i64 = 1_796_551_200_000;
/// Monday 2026-12-07 07:00 UTC: 08:00 in Berlin, the opening.
const MONDAY_OPENING_MS: i64 = SUNDAY_MS + 21 * 3_600_000;

fn events(h: &mut Harness, kind: CallEventKind) -> Vec<serde_json::Value> {
    std::iter::from_fn(|| h.b2bua.poll_record())
        .filter_map(|(_, record)| match record {
            Record::Event(e) if e.kind == kind => Some(e.detail.unwrap_or_default()),
            _ => None,
        })
        .collect()
}

fn sunday() -> Harness {
    let mut h = Harness::with_config(HOURS);
    let now = h.now;
    h.b2bua.set_wall_clock(now, SUNDAY_MS);
    h
}

#[test]
fn outside_hours_the_caller_hears_the_closed_message_then_a_bye() {
    let mut h = sunday();
    register_alice(&mut h);
    h.take();
    h.deliver(TRUNK, &invite("c1", "+15551230000"));
    let sent = h.take();
    assert!(sent.iter().any(|(_, t)| status(t) == Some(200)), "answered");
    assert!(
        !sent
            .iter()
            .any(|(to, t)| t.starts_with("INVITE ") && to.to_string() == super::agents::AGENT),
        "alice is free but the queue is closed"
    );
    assert_eq!(
        events(&mut h, CallEventKind::Overflow),
        [serde_json::json!({ "to": "hangup", "because": "closed" })]
    );
    let stream = h.media.played[0].0;
    assert!(h.media.prompts_now.iter().any(|(id, _)| *id == stream));
    h.b2bua
        .handle_media_event(h.now, MediaEvent::PromptDone { id: stream });
    h.drain();
    assert!(h.take().iter().any(|(_, t)| t.starts_with("BYE ")));
    assert!(!h.b2bua.snapshot(h.now).queues[0].open);
}

#[test]
fn outside_hours_a_queue_can_send_its_callers_to_another() {
    let mut h = sunday();
    let text = invite("c1", "+15551230000").replace("sip:100@", "sip:200@");
    h.deliver(TRUNK, &text);
    let queues = h.b2bua.queues();
    let len = |name: &str| queues.queue(queues.find(name).unwrap()).unwrap().len();
    assert_eq!((len("sales"), len("night")), (0, 1));
}

#[test]
fn a_callback_waits_for_the_opening_and_is_dialled_then() {
    let mut h = sunday();
    let record = CallbackRecord {
        id: CallbackId(1),
        request: CallbackRequest {
            queue: "support".into(),
            level: 5,
            seq: Seq(0),
            number: "+15551230001".into(),
            requested_at_ms: 0,
        },
        state: CallbackState::Pending,
        attempts: 0,
        next_attempt_at_ms: None,
        last_error: None,
        updated_at_ms: 0,
        attempt_invite: None,
        scheduled: false,
    };
    let now = h.now;
    h.b2bua.restore_callback(now, &record, None).unwrap();
    let opening = h.now + Duration::from_millis((MONDAY_OPENING_MS - SUNDAY_MS) as u64);
    h.run_until(opening - Duration::from_secs(60));
    // alice logs in a minute before the opening: still closed.
    register_alice(&mut h);
    h.run_until(opening - Duration::from_millis(1));
    assert!(
        !h.take().iter().any(|(_, t)| t.starts_with("INVITE ")),
        "nothing is dialled while the queue is closed"
    );
    h.run_until(opening);
    assert!(
        h.take().iter().any(|(_, t)| t.starts_with("INVITE ")),
        "the callback is under way at 08:00 Berlin"
    );
}
