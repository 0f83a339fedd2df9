//! Any datagram on an RTP port: the header parser never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = holdfast::media::rtp::RtpHeader::parse(data);
});
