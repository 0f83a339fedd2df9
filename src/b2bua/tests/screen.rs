//! Screening before the transaction layer (docs/behaviour.md §9): refusals and OPTIONS are
//! answered without state, and the live transactions are capped in all and per source.

use super::agents::{AGENT, CONFIG_AGENTS, register_for};
use super::*;

/// A request `method` from `from` with a fresh branch and Call-ID `n`.
fn request(method: &str, from: &str, n: u32, to_tag: bool) -> String {
    let tag = if to_tag { ";tag=x" } else { "" };
    format!(
        "{method} sip:100@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-f{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:s@{from}>;tag=f{n}\r\nTo: <sip:100@127.0.0.1>{tag}\r\n\
         Call-ID: flood-{n}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn refusals_and_options_keep_no_state_and_answer_retransmissions_alike() {
    let stranger = "127.0.0.9:5099";
    let config = CONFIG_AGENTS.replace("allow = [\"127.0.0.0/8\"]", "allow = [\"127.0.0.5/32\"]");
    let mut h = Harness::with_config(&config);
    let cases = [
        ("INVITE", false, 403),
        ("OPTIONS", false, 200),
        ("BYE", true, 481),
        ("INFO", true, 481),
        ("CANCEL", false, 481),
    ];
    for (n, (method, in_dialog, code)) in cases.into_iter().enumerate() {
        let text = request(method, stranger, n as u32, in_dialog);
        h.deliver(stranger, &text);
        let first = h.take();
        assert_eq!(first.len(), 1, "{method}: one answer, no 100 Trying");
        assert_eq!(status(&first[0].1), Some(code), "{method}: {}", first[0].1);
        assert!(
            first[0].1.contains("To: <sip:100@127.0.0.1>;tag="),
            "{}",
            first[0].1
        );
        // A retransmission is answered again, identically (same derived To tag).
        h.deliver(stranger, &text);
        assert_eq!(h.take()[0].1, first[0].1, "{method}");
    }
    // REGISTER: the challenge and the refusal are stateless too.
    h.deliver(AGENT, &register_for("alice", 1, None, 3600));
    assert_eq!(status(&h.take()[0].1), Some(401));
    h.deliver(AGENT, &register_for("mallory", 1, None, 3600));
    assert_eq!(
        status(&h.take()[0].1),
        Some(401),
        "unknown users are challenged alike"
    );
    assert_eq!(h.b2bua.server_transactions(), 0);
    assert_eq!(h.b2bua.snapshot(h.now).counters.screen.stateless, 12);
}

#[test]
fn a_source_over_its_share_is_dropped_and_a_full_table_answers_503() {
    let config = CONFIG_AGENTS.replace(
        "digest_algorithms = [\"MD5\"]\n",
        "digest_algorithms = [\"MD5\"]\nmax_transactions = 6\nmax_transactions_per_source = 3\n",
    )
    .replace("allow = [\"127.0.0.0/8\"]", "allow = [\"127.0.0.5/32\"]");
    let mut h = Harness::with_config(&config);
    // Requests that go through the transaction layer: SUBSCRIBE (405).
    let noisy = "127.0.0.9:5099";
    for n in 0..5 {
        h.deliver(noisy, &request("SUBSCRIBE", noisy, n, false));
    }
    let answers = h.take();
    assert_eq!(answers.len(), 3, "the fourth and fifth are dropped");
    assert!(answers.iter().all(|(_, t)| status(t) == Some(405)));
    assert_eq!(h.b2bua.server_transactions(), 3);
    // The trunk is exempt from the share, but not from the total.
    let trunk = "127.0.0.5:5080";
    for n in 10..14 {
        h.deliver(trunk, &request("SUBSCRIBE", trunk, n, false));
    }
    let codes: Vec<u16> = h.take().iter().filter_map(|(_, t)| status(t)).collect();
    assert_eq!(codes, vec![405, 405, 405, 503]);
    let screen = h.b2bua.snapshot(h.now).counters.screen;
    assert_eq!((screen.over_source_share, screen.over_capacity), (2, 1));
    // Retransmissions of live transactions still reach them.
    h.deliver(noisy, &request("SUBSCRIBE", noisy, 0, false));
    assert_eq!(status(&h.take()[0].1), Some(405));
    // Timer J ends them (64·T1 = 32 s): room again.
    h.run_until(h.now + Duration::from_secs(33));
    assert_eq!(h.b2bua.server_transactions(), 0);
    h.deliver(noisy, &request("SUBSCRIBE", noisy, 99, false));
    assert_eq!(status(&h.take()[0].1), Some(405));
}
