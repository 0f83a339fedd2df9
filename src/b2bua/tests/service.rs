//! Today's figures and the service level from call events, with a fake clock
//! (docs/behaviour.md §8).

use super::agents::{AGENT, CONFIG_AGENTS, agent_reply, find, register_alice};
use super::*;

#[test]
fn a_scripted_morning_gives_exact_figures() {
    let mut h = Harness::with_config(CONFIG_AGENTS);
    register_alice(&mut h);
    h.take();
    // c1 goes straight to alice, who answers at once: answered within the 20 s target.
    h.deliver(TRUNK, &invite("c1", "+15551230001"));
    let agent_invite = find(&h.take(), "INVITE ").unwrap().1.clone();
    h.deliver(AGENT, &agent_reply(&agent_invite, 200, true));
    let ok = h
        .take()
        .into_iter()
        .find(|(_, t)| status(t) == Some(200) && t.contains("Call-ID: c1\r"))
        .unwrap();
    h.deliver(TRUNK, &in_dialog("ACK", "c1", &to_tag(&ok.1), 1, "a-c1"));
    // c2 and c3 wait; c3 gives up after 5 s (a short abandon), c2 after 30 s.
    let t0 = h.now;
    let (tag2, tag3) = {
        let mut tags = Vec::new();
        for call in ["c2", "c3"] {
            h.deliver(TRUNK, &invite(call, "+15551230009"));
            let ok = h
                .take()
                .into_iter()
                .find(|(_, t)| status(t) == Some(200) && t.contains(&format!("Call-ID: {call}\r")))
                .unwrap();
            let tag = to_tag(&ok.1);
            h.deliver(
                TRUNK,
                &in_dialog("ACK", call, &tag, 1, &format!("a-{call}")),
            );
            tags.push(tag);
        }
        (tags[0].clone(), tags[1].clone())
    };
    h.run_until(t0 + Duration::from_secs(5));
    h.deliver(TRUNK, &in_dialog("BYE", "c3", &tag3, 2, "bye-c3"));
    h.run_until(t0 + Duration::from_secs(30));
    assert_eq!(
        h.b2bua.snapshot(h.now).queues[0].waiting_count,
        1,
        "c2 still waits"
    );
    h.deliver(TRUNK, &in_dialog("BYE", "c2", &tag2, 2, "bye-c2"));
    let sent = h.take();
    assert!(
        sent.iter()
            .any(|(_, t)| status(t) == Some(200) && t.contains("Call-ID: c2\r")),
        "BYE answered"
    );
    let queue = &h.b2bua.snapshot(h.now).queues[0];
    let today = queue.today;
    assert_eq!(
        (today.offered, today.answered, today.answered_within),
        (3, 1, 1)
    );
    assert_eq!((today.abandoned, today.abandoned_within), (2, 1));
    // 1 answered in time ÷ (1 answered + 1 abandoned after 20 s); c3's 5 s does not count.
    assert_eq!(today.service_level, Some(0.5));
    assert_eq!(today.abandon_rate, Some(2.0 / 3.0));
    assert_eq!(today.average_wait_s, Some(0.0));
    assert_eq!(queue.last_15_min, today, "all within the last 15 minutes");
    assert_eq!(queue.service_level_s, 20);
    assert!(!queue.last_hour.is_empty());
    // A new day starts the counts again.
    h.b2bua.new_day();
    assert_eq!(h.b2bua.snapshot(h.now).queues[0].today.offered, 0);
}

/// What the wallboard's snapshot costs with 10 000 callers waiting, against the full one
/// (`cargo test --release --lib wallboard_snapshot_cost -- --ignored --nocapture`).
#[test]
#[ignore = "timing measurement, meaningful in release builds only"]
fn wallboard_snapshot_cost() {
    let config = "[sip]\nlisten = \"127.0.0.1:5060\"\nrtp_ports = \"20000-60000\"\n\
                  max_calls = 20000\n[[trunk]]\nallow = [\"127.0.0.0/8\"]\n[[queue]]\n\
                  name = \"support\"\nmax_len = 20000\ncallback_threshold = 0\n[[route]]\n\
                  number = \"*\"\nqueue = \"support\"\n";
    let mut h = Harness::with_config(config);
    for i in 0..10_000 {
        h.deliver(TRUNK, &invite(&format!("c{i}"), &format!("+1555{i:07}")));
        h.sent.clear();
    }
    assert_eq!(
        h.b2bua.snapshot_first(h.now, 25).queues[0].waiting_count,
        10_000
    );
    let time = |f: &dyn Fn() -> usize| {
        let start = std::time::Instant::now();
        let mut n = 0;
        for _ in 0..20 {
            n += f();
        }
        (start.elapsed() / 20, n)
    };
    let (first, n) = time(&|| h.b2bua.snapshot_first(h.now, 25).queues[0].waiting.len());
    assert_eq!(n, 20 * 25);
    let (all, _) = time(&|| h.b2bua.snapshot(h.now).queues[0].waiting.len());
    eprintln!("10 000 waiting: wallboard snapshot (first 25) {first:?}, full snapshot {all:?}");
}
