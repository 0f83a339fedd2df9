//! SRTP receive path (RFC 3711) on arbitrary datagrams: never a panic, nothing forged is
//! accepted (a datagram that was not made with the key fails authentication), and what the
//! sender protects the receiver gets back exactly.
#![no_main]

use holdfast::srtp::{MasterKey, SrtpReceiver, SrtpSender, Suite};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::generate(Suite::AesCm128HmacSha1_80, [7; 30]);
    let mut receiver = SrtpReceiver::new(&key);
    let mut out = Vec::new();
    assert!(receiver.unprotect(data, &mut out).is_err(), "a forgery authenticated");
    let mut sender = SrtpSender::new(&key);
    let mut protected = Vec::new();
    if sender.protect(data, &mut protected).is_ok() {
        let mut back = Vec::new();
        SrtpReceiver::new(&key)
            .unprotect(&protected, &mut back)
            .expect("our own packet authenticates");
        assert_eq!(back, data);
    }
});
