//! The whole call controller fed arbitrary inputs: datagrams from a trunk and from an
//! agent's phone, clock jumps, media events. It must never panic (its debug-build table
//! invariants included: fuzz builds keep debug assertions) and its state must stay
//! bounded: calls within `max_calls`, transactions within what the inputs could open.
//!
//! Input format, repeated: one action byte, then for datagram actions a 2-byte big-endian
//! length and that many bytes. Seeds: `fuzz/seeds/controller` (a call, a registration, a
//! hold with session timers, a key press); run with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run -a controller fuzz/seeds/controller`.
#![no_main]
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use holdfast::b2bua::{B2bua, HoldMusic, MediaCommand};
use holdfast::media::engine::MediaEvent;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[sip]
listen = "127.0.0.1:5060"
rtp_ports = "20000-20199"
max_calls = 8
digest_algorithms = ["MD5"]
[[trunk]]
allow = ["127.0.0.1/32"]
address = "127.0.0.1:5080"
[[queue]]
name = "support"
max_len = 6
callback_threshold = 1
[[route]]
number = "*"
queue = "support"
[[agent]]
user = "alice"
password = "alice-secret"
"#;

/// Parsed and decoded once: a run starts from copies (the clips are shared `Bytes`).
static SETUP: std::sync::OnceLock<(holdfast::config::Config, holdfast::media::prompts::Prompts)> =
    std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let (config, prompts) = SETUP.get_or_init(|| {
        (
            holdfast::config::from_str(CONFIG, "fuzz.toml").expect("valid config"),
            holdfast::media::prompts::Prompts::embedded().expect("clip pack"),
        )
    });
    let (config, prompts) = (config.clone(), prompts.clone());
    let mut now = Instant::now();
    let music = HoldMusic {
        pcmu: Bytes::from(vec![0xFF; 1600]),
        pcma: Bytes::from(vec![0xD5; 1600]),
    };
    let mut b2bua = B2bua::new(config, music, prompts, now, 7);
    let trunk: SocketAddr = "127.0.0.1:5080".parse().unwrap();
    let phone: SocketAddr = "127.0.0.2:5090".parse().unwrap();
    let mut streams = Vec::new();
    let mut inputs = 0usize;
    let mut rest = data;
    drain(&mut b2bua, now, &mut streams);
    while let [action, tail @ ..] = rest {
        rest = tail;
        inputs += 1;
        match action % 6 {
            0 | 1 => {
                let [hi, lo, tail @ ..] = rest else { break };
                let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
                let (datagram, tail) = tail.split_at(len);
                rest = tail;
                let from = if action % 6 == 0 { trunk } else { phone };
                b2bua.handle_datagram(now, from, datagram);
            }
            2 => {
                now += Duration::from_millis(u64::from(*action) * 250);
                b2bua.handle_timeout(now);
            }
            3 | 4 if !streams.is_empty() => {
                let id = streams[usize::from(*action) % streams.len()];
                let event = if action % 6 == 3 {
                    MediaEvent::Dtmf { id, digit: '1' }
                } else {
                    MediaEvent::PromptDone { id }
                };
                b2bua.handle_media_event(now, event);
            }
            _ => {
                let id = streams.get(usize::from(*action) % streams.len().max(1)).copied();
                if let Some(id) = id {
                    b2bua.handle_media_event(now, MediaEvent::OpenFailed { id });
                }
            }
        }
        drain(&mut b2bua, now, &mut streams);
        assert!(b2bua.calls() <= 8, "max_calls holds");
        assert!(
            b2bua.transactions_in_flight() <= 4 * inputs + 16,
            "transactions grow with inputs only"
        );
    }
    b2bua.check_invariants();
});

/// Carries out the controller's output: every port binds, streams are remembered.
fn drain(b2bua: &mut B2bua, now: Instant, streams: &mut Vec<holdfast::media::engine::StreamId>) {
    while b2bua.poll_transmit().is_some() {}
    while let Some(command) = b2bua.poll_media() {
        match command {
            MediaCommand::Reserve { port } => {
                b2bua.handle_media_event(now, MediaEvent::Reserved { port, bound: true })
            }
            MediaCommand::Open { id, .. } => {
                if streams.len() < 64 {
                    streams.push(id);
                }
            }
            _ => {}
        }
    }
    while b2bua.poll_record().is_some() {}
    while b2bua.poll_store_request().is_some() {}
}
