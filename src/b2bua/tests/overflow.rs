//! `max_wait` and `overflow` with a fake clock (docs/behaviour.md §3): exact to the
//! millisecond, into another queue at the place the caller's arrival gives it there, or a
//! goodbye and BYE.

use std::time::Duration;

use super::*;
use crate::media::engine::MediaEvent;
use crate::store::{CallEventKind, Record};

const OVERFLOW: &str = r#"
[sip]
listen = "127.0.0.1:5060"
[[trunk]]
allow = ["127.0.0.0/8"]
[[queue]]
name = "premium"
max_wait = 10
overflow = "support"
[[queue]]
name = "support"
max_wait = 20
overflow = "hangup"
[[route]]
number = "100"
queue = "premium"
[[route]]
number = "200"
queue = "support"
"#;

/// A caller dialling `number` (routes: 100 premium, 200 support).
fn dial(h: &mut Harness, call: &str, number: &str) {
    let text = invite(call, "+15551230000").replace("sip:100@", &format!("sip:{number}@"));
    h.deliver(TRUNK, &text);
}

pub(super) fn overflows(h: &mut Harness) -> Vec<serde_json::Value> {
    std::iter::from_fn(|| h.b2bua.poll_record())
        .filter_map(|(_, record)| match record {
            Record::Event(e) if e.kind == CallEventKind::Overflow => e.detail,
            _ => None,
        })
        .collect()
}

#[test]
fn a_caller_overflows_at_max_wait_to_the_place_its_arrival_gives_it() {
    let mut h = Harness::with_config(OVERFLOW);
    let t0 = h.now;
    dial(&mut h, "c1", "200");
    h.run_until(t0 + Duration::from_secs(1));
    dial(&mut h, "c2", "100");
    h.run_until(t0 + Duration::from_secs(3));
    dial(&mut h, "c3", "200");
    let support = h.b2bua.queues().find("support").unwrap();
    let premium = h.b2bua.queues().find("premium").unwrap();
    // One millisecond before its 10 s: still in premium.
    h.run_until(t0 + Duration::from_millis(10_999));
    assert_eq!(
        h.b2bua.queues().queue_of(crate::queue::EntryId(2)),
        Some(premium)
    );
    assert!(overflows(&mut h).is_empty());
    // At 10 s to the millisecond: in support, between c1 (earlier) and c3 (later).
    h.run_until(t0 + Duration::from_secs(11));
    assert_eq!(
        h.b2bua.queues().queue_of(crate::queue::EntryId(2)),
        Some(support)
    );
    assert_eq!(
        (h.position(1), h.position(2), h.position(3)),
        (Some(1), Some(2), Some(3))
    );
    assert_eq!(
        overflows(&mut h),
        [serde_json::json!({ "to": "support", "because": "max_wait" })]
    );
    // support's own max_wait (20 s) counts from the move, for c2; c1 goes at 20 s.
    h.take();
    h.run_until(t0 + Duration::from_secs(20));
    assert_eq!(
        overflows(&mut h),
        [serde_json::json!({ "to": "hangup", "because": "max_wait" })]
    );
    assert!(h.position(2).is_some(), "c2 has until 31 s");
    h.run_until(t0 + Duration::from_secs(23));
    assert_eq!(overflows(&mut h).len(), 1, "c3 at 23 s");
    h.run_until(t0 + Duration::from_millis(30_999));
    assert!(overflows(&mut h).is_empty());
    h.run_until(t0 + Duration::from_secs(31));
    assert_eq!(overflows(&mut h).len(), 1, "c2 at 31 s");
}

#[test]
fn overflow_hangup_says_goodbye_then_hangs_up() {
    let mut h = Harness::with_config(OVERFLOW);
    let t0 = h.now;
    dial(&mut h, "c1", "200");
    let stream = h.media.played[0].0;
    h.take();
    h.run_until(t0 + Duration::from_secs(20));
    assert_eq!(
        overflows(&mut h),
        [serde_json::json!({ "to": "hangup", "because": "max_wait" })]
    );
    assert!(
        h.media.prompts_now.iter().any(|(id, _)| *id == stream),
        "goodbye cuts in at once"
    );
    assert!(
        !h.take().iter().any(|(_, t)| t.starts_with("BYE ")),
        "no BYE before the goodbye ends"
    );
    h.b2bua
        .handle_media_event(h.now, MediaEvent::PromptDone { id: stream });
    h.drain();
    let sent = h.take();
    assert!(sent.iter().any(|(_, t)| t.starts_with("BYE ")), "{sent:?}");
    assert_eq!(h.position(1), None);
}
