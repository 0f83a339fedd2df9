//! `when_no_agents` and `no_agents_grace` with a fake clock (docs/behaviour.md §3): a new
//! caller refused `480` or overflowed at once while nobody serves the queue; callers already
//! waiting sent away when the grace period after the last agent logged off ends, to the
//! millisecond, and not when an agent came back in time.

use std::time::Duration;

use super::agents::register_alice;
use super::overflow::overflows;
use super::*;

const QUEUES: &str = r#"
[sip]
listen = "127.0.0.1:5060"
digest_algorithms = ["MD5"]
[[trunk]]
allow = ["127.0.0.0/8"]
[[queue]]
name = "premium"
when_no_agents = "overflow"
overflow = "support"
[[queue]]
name = "support"
when_no_agents = "reject"
no_agents_grace = 10
[[route]]
number = "100"
queue = "premium"
[[route]]
number = "200"
queue = "support"
[[agent]]
user = "alice"
password = "alice-secret"
queues = ["support"]
"#;

fn dial(h: &mut Harness, call: &str, number: &str) -> Vec<u16> {
    let text = invite(call, "+15551230000").replace("sip:100@", &format!("sip:{number}@"));
    h.deliver(TRUNK, &text);
    h.take().iter().filter_map(|(_, t)| status(t)).collect()
}

#[test]
fn a_new_caller_is_refused_480_while_nobody_serves_the_queue() {
    let mut h = Harness::with_config(QUEUES);
    assert_eq!(dial(&mut h, "c1", "200"), [100, 480]);
    register_alice(&mut h);
    h.take();
    // alice is logged in (and free): the caller goes to her.
    let codes = dial(&mut h, "c2", "200");
    assert!(!codes.contains(&480), "{codes:?}");
    // Paused counts as logged off.
    h.b2bua.set_paused(h.now, "alice", true).unwrap();
    h.take();
    assert_eq!(dial(&mut h, "c3", "200"), [100, 480]);
}

#[test]
fn a_new_caller_overflows_at_once_to_where_its_arrival_puts_it() {
    let mut h = Harness::with_config(QUEUES);
    register_alice(&mut h);
    h.b2bua.set_paused(h.now, "alice", true).unwrap();
    h.take();
    // premium has no agent at all: the caller is answered, then moved to support.
    assert!(dial(&mut h, "c1", "100").contains(&200));
    let queues = h.b2bua.queues();
    let len = |name: &str| queues.queue(queues.find(name).unwrap()).unwrap().len();
    assert_eq!((len("premium"), len("support")), (0, 1));
    assert_eq!(
        overflows(&mut h),
        [serde_json::json!({ "to": "support", "because": "no_agents" })]
    );
}

#[test]
fn waiting_callers_are_sent_away_when_the_grace_ends_unless_an_agent_came_back() {
    let mut h = Harness::with_config(QUEUES);
    register_alice(&mut h);
    h.take();
    dial(&mut h, "c1", "200"); // rings alice
    dial(&mut h, "c2", "200"); // waits
    overflows(&mut h);
    let t0 = h.now;
    // The last agent logs off (pauses): the grace begins; her ringing call goes on.
    h.b2bua.set_paused(t0, "alice", true).unwrap();
    h.run_until(t0 + Duration::from_secs(4));
    // She comes back within the grace, and leaves again: a new grace from then.
    h.b2bua.set_paused(h.now, "alice", false).unwrap();
    let t1 = h.now;
    h.b2bua.set_paused(t1, "alice", true).unwrap();
    h.run_until(t0 + Duration::from_secs(11));
    assert!(overflows(&mut h).is_empty(), "the first grace was ended");
    h.run_until(t1 + Duration::from_millis(9_999));
    assert!(overflows(&mut h).is_empty());
    h.run_until(t1 + Duration::from_secs(10));
    // c2 hears goodbye; c1, whose agent rings, is left alone.
    assert_eq!(
        overflows(&mut h),
        [serde_json::json!({ "to": "hangup", "because": "no_agents" })]
    );
}
