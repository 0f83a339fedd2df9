//! End to end over loopback: admission (docs/behaviour.md §2) and dialog handling (RFC 3261 §12, §15)
//! with a raw UDP user agent, so every status code is checked exactly.

mod common;

use common::{RawUa, Setup, body, header, pcmu_offer, sdp_offer};
use std::time::Duration;

const QUEUES: &str = "[[queue]]\nname = \"support\"\nmax_len = 1\n\n\
[[route]]\nnumber = \"100\"\nqueue = \"support\"\npriority = \"normal\"\n";

#[test]
fn admission_codes() {
    let mut setup = Setup::new(33_000);
    setup.extra = QUEUES.to_string();
    setup.max_calls = 2;
    let holdfast = common::Holdfast::start("admission", &setup);
    let ua = RawUa::new("127.0.0.1", holdfast.sip);

    // Unknown number → 404.
    assert_eq!(
        ua.invite("999", "+15550000001", &pcmu_offer(40_000)).code,
        404
    );
    // No common codec (G.729 only) → 488.
    let g729 = sdp_offer(40_000, "18", "a=rtpmap:18 G729/8000\r\n");
    assert_eq!(ua.invite("100", "+15550000001", &g729).code, 488);
    // The first caller is queued and answered with an SDP answer naming PCMU and
    // telephone-event.
    let first = ua.invite("100", "+15550000001", &pcmu_offer(40_000));
    assert_eq!(first.code, 200, "{}", first.response);
    let answer = body(&first.response);
    assert!(answer.contains("m=audio "), "{answer}");
    assert!(answer.contains("a=rtpmap:0 PCMU/8000"), "{answer}");
    assert!(answer.contains("telephone-event/8000"), "{answer}");
    assert!(!first.to_tag.is_empty(), "2xx carries a To tag");
    // The queue holds one: the next caller is busy.
    assert_eq!(
        ua.invite("100", "+15550000002", &pcmu_offer(40_002)).code,
        486
    );
    // re-INVITE in the dialog: 200 with the same SDP.
    let (code, text) = ua
        .request(&first, "INVITE", 2, &pcmu_offer(40_000))
        .unwrap();
    assert_eq!(code, 200);
    assert_eq!(body(&text), answer, "re-INVITE answered with the same SDP");
    // In-dialog request for an unknown dialog → 481.
    let mut ghost = first.clone();
    ghost.call_id = "no-such-call@test".into();
    assert_eq!(ua.request(&ghost, "BYE", 3, "").unwrap().0, 481);
    // OPTIONS in the dialog → 200; INFO → 200.
    assert_eq!(ua.request(&first, "OPTIONS", 4, "").unwrap().0, 200);
    assert_eq!(ua.request(&first, "INFO", 5, "").unwrap().0, 200);
    // BYE → 200, and the place in the queue is free again.
    assert_eq!(ua.request(&first, "BYE", 6, "").unwrap().0, 200);
    let again = ua.invite("100", "+15550000003", &pcmu_offer(40_004));
    assert_eq!(again.code, 200, "queue has room after the BYE");
    assert_eq!(ua.request(&again, "BYE", 2, "").unwrap().0, 200);
}

#[test]
fn max_calls_answers_503_with_retry_after() {
    let mut setup = Setup::new(34_000);
    setup.max_calls = 1;
    let holdfast = common::Holdfast::start("maxcalls", &setup);
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let first = ua.invite("100", "+15550000001", &pcmu_offer(40_000));
    assert_eq!(first.code, 200);
    let second = ua.invite("100", "+15550000002", &pcmu_offer(40_002));
    assert_eq!(second.code, 503);
    assert!(
        header(&second.response, "Retry-After").is_some(),
        "{}",
        second.response
    );
    assert_eq!(ua.request(&first, "BYE", 2, "").unwrap().0, 200);
}

#[test]
fn only_trunk_sources_may_call() {
    let mut setup = Setup::new(35_000);
    setup.trunk_allow = "127.0.0.5/32".into();
    let holdfast = common::Holdfast::start("forbidden", &setup);
    let stranger = RawUa::new("127.0.0.1", holdfast.sip);
    assert_eq!(
        stranger
            .invite("100", "+15550000001", &pcmu_offer(40_000))
            .code,
        403
    );
    let trunk = RawUa::new("127.0.0.5", holdfast.sip);
    let call = trunk.invite("100", "+15550000001", &pcmu_offer(40_000));
    assert_eq!(call.code, 200, "{}", call.response);
    assert_eq!(trunk.request(&call, "BYE", 2, "").unwrap().0, 200);
}

#[test]
fn unknown_method_is_501_and_cancel_without_invite_is_481() {
    let holdfast = common::Holdfast::start("methods", &Setup::new(36_000));
    let ua = RawUa::new("127.0.0.1", holdfast.sip);
    let local = ua.local;
    let target = holdfast.sip;
    ua.send(&format!(
        "FROBNICATE sip:x@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-frob\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{local}>;tag=1\r\nTo: <sip:x@{target}>\r\n\
         Call-ID: frob@test\r\nCSeq: 1 FROBNICATE\r\nContent-Length: 0\r\n\r\n"
    ));
    let reply = ua
        .wait_final("FROBNICATE", Duration::from_secs(2))
        .expect("a reply");
    assert!(reply.starts_with("SIP/2.0 501"), "{reply}");
    ua.send(&format!(
        "CANCEL sip:x@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-nothing\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@{local}>;tag=1\r\nTo: <sip:x@{target}>\r\n\
         Call-ID: cancel@test\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
    ));
    let reply = ua
        .wait_final("CANCEL", Duration::from_secs(2))
        .expect("a reply");
    assert!(reply.starts_with("SIP/2.0 481"), "{reply}");
}
