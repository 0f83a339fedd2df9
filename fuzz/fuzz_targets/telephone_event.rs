//! Any RFC 4733 payload, in any order and timing: the DTMF receiver never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let mut receiver = holdfast::media::dtmf::DtmfReceiver::default();
    for (i, chunk) in data.chunks(8).enumerate() {
        let ts = u32::from(chunk[0]) << 8;
        let now = start + Duration::from_millis(20 * i as u64);
        let _ = receiver.handle_packet(now, ts, &chunk[1..]);
        while receiver.poll_digit().is_some() {}
    }
});
