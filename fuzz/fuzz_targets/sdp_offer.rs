//! Any SDP body: the offer parser and negotiation never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = holdfast::sip::sdp::parse_offer(data) {
        let _ = holdfast::sip::sdp::negotiate(&offer);
    }
});
