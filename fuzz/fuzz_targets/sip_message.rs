//! Any datagram: parsing never panics, and an error's reply (if any) parses as a response.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match holdfast::sip::message::parse(data) {
        Ok(message) => {
            let bytes = match message {
                rsip::SipMessage::Request(r) => holdfast::sip::message::encode_request(&r),
                rsip::SipMessage::Response(r) => holdfast::sip::message::encode_response(&r),
            };
            let _ = holdfast::sip::message::parse(&bytes);
        }
        Err(error) => {
            if let Some(reply) = error.reply() {
                assert!(holdfast::sip::message::parse(&reply).is_ok());
            }
        }
    }
});
