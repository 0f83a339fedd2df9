//! The wait estimate in the controller (docs/behaviour.md §4): what the caller hears is what
//! the wallboard shows, and an answered caller's told forecast is learned from and persisted.

use super::agents::{AGENT, CONFIG_AGENTS, agent_reply, find, register_alice};
use super::*;
use crate::store::Record;

fn announced_estimate(h: &mut Harness, call: &str) -> Option<u64> {
    std::iter::from_fn(|| h.b2bua.poll_record())
        .filter_map(|(_, record)| match record {
            Record::Event(e) if e.call_id.as_deref() == Some(call) => e.detail,
            _ => None,
        })
        .find_map(|detail| detail["estimate_s"].as_u64())
}

#[test]
fn the_told_estimate_is_shown_and_learned_from_once_the_caller_is_answered() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut h);
    // c1 rings alice, who answers; c2 waits first in line and c3 second.
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let (_, ring) = find(&h.take(), "INVITE ").expect("INVITE to alice").clone();
    h.deliver(AGENT, &agent_reply(&ring, 200, true));
    h.take();
    h.deliver(TRUNK, &invite("c2", "+15551230002"));
    h.deliver(TRUNK, &invite("c3", "+15551230003"));
    h.run_until(h.now);
    let told = announced_estimate(&mut h, "c3").expect("c3 heard an estimate");
    // One agent 0 s into a call with the 300 s default handle time: two calls ahead of c3.
    assert!(told >= 300, "{told}");
    let shown = h.b2bua.snapshot(h.now).queues[0].waiting[1].estimate_s;
    assert_eq!(shown, told, "the wallboard shows what the caller heard");

    // c2 hangs up; alice finishes c1 and, after wrap-up, is offered c3, who is answered.
    let tag = |h: &Harness, call: &str| {
        let key = h.b2bua.calls.by_call_id(call).expect("a call");
        h.b2bua.calls[&key].dialog.local_tag.clone()
    };
    let c2 = tag(&h, "c2");
    h.deliver(TRUNK, &in_dialog("BYE", "c2", &c2, 2, "z9hG4bK-bye2"));
    // (Within 32 s: the harness does not ACK the callers' 200s, and Timer H would end them.)
    h.now += Duration::from_secs(5);
    let c1 = tag(&h, "c1");
    h.deliver(TRUNK, &in_dialog("BYE", "c1", &c1, 2, "z9hG4bK-bye1"));
    h.take();
    h.run_until(h.now + Duration::from_secs(11));
    let (_, ring) = find(&h.take(), "INVITE ")
        .expect("c3 offered to alice")
        .clone();
    h.deliver(AGENT, &agent_reply(&ring, 200, true));
    let outcomes: Vec<_> = std::iter::from_fn(|| h.b2bua.poll_record())
        .filter_map(|(_, record)| match record {
            Record::EstimateOutcome(o) => Some(o),
            _ => None,
        })
        .collect();
    assert_eq!(outcomes.len(), 1, "c3 only: c2 hung up, c1 never waited");
    assert_eq!(outcomes[0].queue, "support");
    assert_eq!(outcomes[0].quantiles.len(), 8);
    assert!(
        (16_000..=17_000).contains(&outcomes[0].waited_ms),
        "{:?}",
        outcomes[0]
    );
}

#[test]
fn stored_outcomes_come_back_only_when_they_read_back() {
    use crate::store::EstimateOutcome;
    let stored = |quantiles: Vec<f64>| EstimateOutcome {
        queue: "support".into(),
        quantiles,
        waited_ms: 90_000,
    };
    let good = stored(vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]);
    let outcome = crate::b2bua::estimate_outcome(&good).expect("reads back");
    assert_eq!(outcome.waited, Duration::from_secs(90));
    assert_eq!(outcome.forecast.median(), Duration::from_secs(10));
    for bad in [
        vec![1.0; 7],
        vec![5.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0],
        vec![f64::NAN; 8],
    ] {
        assert!(crate::b2bua::estimate_outcome(&stored(bad)).is_none());
    }
    let mut h = Harness::with_config(CONFIG_AGENTS);
    h.b2bua
        .restore_estimate_outcomes("support", std::iter::repeat_n(outcome, 300));
    h.b2bua
        .restore_estimate_outcomes("no such queue", [outcome]);
    // Every caller waited 90 s where the median said 10 s: the quantile learned is above it.
    assert!(h.b2bua.waits[0].calibration.step() > 0);
}

/// Every call takes exactly 10 s (forecasts are exact): alice is on c1, c2 and c3 wait, and
/// c3 has heard "20 s" (the rest of alice's call and c2's call).
fn alice_on_a_call_and_two_waiting() -> Harness {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    h.b2bua
        .restore_handle_times("support", std::iter::repeat_n(Duration::from_secs(10), 30));
    register_alice(&mut h);
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let (_, ring) = find(&h.take(), "INVITE ").expect("INVITE to alice").clone();
    h.deliver(AGENT, &agent_reply(&ring, 200, true));
    h.deliver(TRUNK, &invite("c2", "+15551230002"));
    h.deliver(TRUNK, &invite("c3", "+15551230003"));
    h.run_until(h.now);
    assert_eq!(announced_estimate(&mut h, "c3"), Some(20));
    h
}

#[test]
fn the_wallboard_shows_what_the_caller_heard_last_until_the_next_announcement() {
    let h = alice_on_a_call_and_two_waiting();
    // 8 s later a fresh forecast would say 12 s; the wallboard shows what c3 heard.
    let later = h.b2bua.snapshot(h.now + Duration::from_secs(8));
    assert_eq!(later.queues[0].waiting[1].estimate_s, 20);
}

#[test]
fn announcements_read_the_line_forecast_until_an_agent_changes_or_a_second_passes() {
    let mut h = alice_on_a_call_and_two_waiting();
    let c3 = h.b2bua.calls.by_call_id("c3").expect("c3 waits").entry();
    let queue = crate::queue::QueueId(0);
    let median = |h: &Harness, after_ms: u64| {
        h.b2bua
            .wait_forecast(h.now + Duration::from_millis(after_ms), queue, c3, 2)
            .median()
            .as_millis()
    };
    // Half a second on, nothing changed: the line forecast made for c3's announcement.
    assert_eq!(median(&h, 500), 20_000);
    // A second and a half on it is made again: alice is 1.5 s into her call.
    assert_eq!(median(&h, 1_500), 18_500);
    // alice's caller hangs up at 1.7 s: she rests 10 s, then takes c2 for 10 s. The forecast
    // follows at once, not a second later.
    h.now += Duration::from_millis(1_700);
    let key = h.b2bua.calls.by_call_id("c1").expect("c1");
    let tag = h.b2bua.calls[&key].dialog.local_tag.clone();
    h.deliver(TRUNK, &in_dialog("BYE", "c1", &tag, 2, "z9hG4bK-bye1"));
    h.take();
    assert_eq!(median(&h, 0), 20_000);
    assert_eq!(
        median(&h, 500),
        20_000,
        "read from the line made at the BYE"
    );
}
