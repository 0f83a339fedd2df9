//! Callbacks scheduled through the admin API (docs/behaviour.md §6) with a fake clock: checked,
//! kept out of the line until `not_before` to the millisecond, then placed as a caller
//! arriving at that moment would be; restored the same way; cancelled before any agent rings.

use std::time::Duration;

use super::callbacks::{CONFIG_CALLBACKS, requests};
use super::*;
use crate::b2bua::scheduled::ScheduleError;
use crate::queue::{EntryKind, QueueId};
use crate::store::{CallbackId, CallbackRecord, CallbackRequest, CallbackState};

/// Who stands in `support`, in order: `C` a caller, `B` a callback.
fn line(h: &Harness) -> String {
    h.b2bua
        .queues()
        .queue(QueueId(0))
        .unwrap()
        .iter()
        .map(|e| match e.kind {
            EntryKind::Caller => 'C',
            EntryKind::Callback => 'B',
        })
        .collect()
}

/// A caller who arrives, is answered and ACKs (so it stays).
fn caller(h: &mut Harness, call: &str, number: &str) {
    h.take();
    h.deliver(TRUNK, &invite(call, number));
    let sent = h.take();
    let ok = sent
        .iter()
        .find(|(d, t)| d.to_string() == TRUNK && status(t) == Some(200))
        .expect("answered");
    let tag = to_tag(&ok.1);
    h.deliver(
        TRUNK,
        &in_dialog("ACK", call, &tag, 1, &format!("ack-{call}")),
    );
}

fn joined(h: &mut Harness) -> Vec<(i64, u64)> {
    requests(h)
        .into_iter()
        .filter_map(|r| match r {
            StoreRequest::Joined { id, seq } => Some((id.0, seq.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_request_names_a_queue_and_a_number_that_queue_may_call() {
    let h = Harness::with_config(CONFIG_CALLBACKS);
    assert!(matches!(
        h.b2bua.check_scheduled("sales", "+15550002222"),
        Err(ScheduleError::UnknownQueue(q)) if q == "sales"
    ));
    assert!(
        matches!(
            h.b2bua.check_scheduled("support", "+1900555000"),
            Err(ScheduleError::NumberRefused { .. })
        ),
        "premium rate: in the default deny list"
    );
    assert!(matches!(
        h.b2bua.check_scheduled("support", "anonymous"),
        Err(ScheduleError::NumberRefused { .. })
    ));
    let (queue, _) = h.b2bua.check_scheduled("support", "+15550002222").unwrap();
    assert_eq!(queue, QueueId(0));
}

#[test]
fn a_scheduled_callback_joins_at_its_time_behind_who_came_before() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    let t0 = h.now;
    h.b2bua.callback_scheduled(
        t0,
        CallbackId(7),
        QueueId(0),
        5,
        "+15550002222".into(),
        t0 + Duration::from_secs(60),
    );
    caller(&mut h, "c1", "+15551230001");
    h.run_until(t0 + Duration::from_millis(59_999));
    assert_eq!(line(&h), "C", "not in the line before its time");
    assert!(joined(&mut h).is_empty());
    assert_eq!(h.b2bua.callbacks_scheduled(), 1);
    h.run_until(t0 + Duration::from_secs(60));
    assert_eq!(line(&h), "CB", "behind the caller who came first");
    let placed = joined(&mut h);
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].0, 7);
    assert_eq!(h.b2bua.callbacks_scheduled(), 0);
    // A caller arriving after it stands behind it.
    caller(&mut h, "c2", "+15551230002");
    assert_eq!(line(&h), "CBC");
    h.b2bua.check_invariants();
}

#[test]
fn a_restored_scheduled_callback_keeps_its_time_and_one_past_due_joins_at_once() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    let t0 = h.now;
    let record = |id: i64, number: &str| CallbackRecord {
        id: CallbackId(id),
        request: CallbackRequest {
            queue: "support".into(),
            level: 5,
            seq: crate::queue::Seq(0),
            number: number.into(),
            requested_at_ms: 0,
        },
        state: CallbackState::Pending,
        attempts: 0,
        next_attempt_at_ms: Some(0),
        last_error: None,
        updated_at_ms: 0,
        attempt_invite: None,
        scheduled: true,
    };
    h.b2bua
        .restore_callback(
            t0,
            &record(1, "+15550002222"),
            Some(t0 + Duration::from_secs(30)),
        )
        .unwrap();
    h.b2bua
        .restore_callback(t0, &record(2, "+15550003333"), None)
        .unwrap();
    assert_eq!(line(&h), "B", "the past-due one at once");
    assert_eq!(joined(&mut h).iter().map(|j| j.0).collect::<Vec<_>>(), [2]);
    h.run_until(t0 + Duration::from_secs(30));
    assert_eq!(line(&h), "BB");
    assert_eq!(joined(&mut h).iter().map(|j| j.0).collect::<Vec<_>>(), [1]);
}

#[test]
fn a_callback_is_cancelled_scheduled_or_waiting_but_not_once_an_agent_rings() {
    let mut h = Harness::with_config(CONFIG_CALLBACKS);
    let t0 = h.now;
    let schedule = |h: &mut Harness, id: i64, number: &str, at: Instant| {
        h.b2bua
            .callback_scheduled(h.now, CallbackId(id), QueueId(0), 5, number.into(), at);
    };
    schedule(&mut h, 1, "+15550001111", t0 + Duration::from_secs(60));
    schedule(&mut h, 2, "+15550002222", t0);
    assert_eq!(line(&h), "B");
    assert_eq!(h.b2bua.cancel_callback(h.now, CallbackId(1)).unwrap(), 0);
    assert_eq!(h.b2bua.cancel_callback(h.now, CallbackId(2)).unwrap(), 0);
    assert_eq!(line(&h), "", "out of the line");
    h.run_until(t0 + Duration::from_secs(61));
    assert_eq!(line(&h), "", "and never joins");
    assert!(matches!(
        h.b2bua.cancel_callback(h.now, CallbackId(2)),
        Err(ScheduleError::NotFound(2))
    ));
    // An agent rings for it: too late.
    let now = h.now;
    schedule(&mut h, 3, "+15550003333", now);
    super::agents::register_alice(&mut h);
    assert!(matches!(
        h.b2bua.cancel_callback(h.now, CallbackId(3)),
        Err(ScheduleError::Dialling(3))
    ));
    h.b2bua.check_invariants();
}
