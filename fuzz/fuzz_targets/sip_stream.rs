//! Stream framing (RFC 3261 §18.3) on arbitrary bytes cut into arbitrary reads: never a
//! panic, never more buffered than the limits allow, every message cut out whole and in
//! order, and a 400 built only from what parses.
#![no_main]

use holdfast::sip::stream::{MAX_BODY, MAX_HEADER, StreamFramer, StreamItem, refusal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let step = usize::from(cut).max(1);
    let mut framer = StreamFramer::default();
    let mut delivered = 0usize;
    for chunk in bytes.chunks(step) {
        framer.push(chunk);
        while let Some(item) = framer.next_item() {
            match item {
                Ok(StreamItem::Message(m)) => {
                    assert!(m.len() <= MAX_HEADER + MAX_BODY);
                    delivered += m.len();
                }
                Ok(StreamItem::Ping) => delivered += 4,
                Err((error, header)) => {
                    assert!(header.len() <= MAX_HEADER + 4);
                    let _ = refusal(error, &header);
                }
            }
        }
        assert!(framer.buffered() <= MAX_HEADER + MAX_BODY + step);
    }
    assert!(delivered <= bytes.len());
});
