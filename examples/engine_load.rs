//! Load run of the media engine, the counterpart of `udp_floor`: N streams playing looped
//! music to one destination for S seconds; prints packets, CPU time and send lateness.
//!
//! `engine_load --streams N --dest 127.0.0.1:PORT --seconds S [--shards K] [--srtp 1]
//!  [--bind IP] [--ledger FILE]`
//!
//! `--bind` is the address the streams' sockets are bound to (default `0.0.0.0`; holdfast
//! binds `[sip] public_address`); `--ledger` keeps the media ledger in FILE, as holdfast
//! always does (`[store] data_dir`/rtp.ledger), to see what noting each packet costs.
//!
//! `--srtp 1`: every stream is SRTP (`AES_CM_128_HMAC_SHA1_80`, a key per stream), so the
//! same run with and without it gives the cost of encrypting held callers' music.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use holdfast::media::engine::{EngineConfig, MediaEngine};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a live rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .or(default)
        .unwrap_or_else(|| {
            eprintln!(
                "usage: engine_load --streams N --dest IP:PORT --seconds S [--shards K] \
                 [--srtp 1] [--bind IP] [--ledger FILE]"
            );
            std::process::exit(2)
        })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let streams: usize = arg(&args, "--streams", None);
    let dest: SocketAddr = arg(&args, "--dest", None);
    let seconds: f64 = arg(&args, "--seconds", Some(10.0));
    let shards: usize = arg(&args, "--shards", Some(2));
    let srtp: u8 = arg(&args, "--srtp", Some(0));
    let bind_ip: IpAddr = arg(&args, "--bind", Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    let ledger: Option<std::path::PathBuf> = args
        .iter()
        .any(|a| a == "--ledger")
        .then(|| arg(&args, "--ledger", None));

    let (engine, _events) = MediaEngine::start(EngineConfig {
        bind_ip,
        port_min: 20000,
        port_max: 59999,
        shards,
        pin: false,
        ledger,
    })
    .expect("start engine");
    // Three minutes of "music": 9 000 distinct frames, shared by every stream.
    let music = Bytes::from(
        (0..9000u32)
            .flat_map(|i| [(i % 251) as u8; 160])
            .collect::<Vec<_>>(),
    );
    let mut ids = Vec::with_capacity(streams);
    for _ in 0..streams {
        ids.push(engine.open().expect("open (raise ulimit -n?)").0);
    }
    for (i, &id) in ids.iter().enumerate() {
        if srtp == 1 {
            use holdfast::srtp::{MasterKey, Suite};
            let mut material = [0u8; 30];
            material[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let key = MasterKey::generate(Suite::AesCm128HmacSha1_80, material);
            engine.secure(id, key, key).expect("secure");
        }
        engine.play(id, dest, 0, music.clone()).expect("play");
    }
    // Let every stream start and settle (its socket is connected after its first second,
    // `media::shard::connection`), then measure a steady window.
    std::thread::sleep(Duration::from_millis(1500));
    let before = engine.stats();
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let cpu = cpu_seconds() - cpu0;
    let wall = start.elapsed().as_secs_f64();
    let after = engine.stats();
    let sent = after.packets_sent - before.packets_sent;
    println!(
        "engine streams={streams} srtp={srtp} shards={shards} seconds={wall:.2} packets_sent={sent} \
         send_errors={} skipped_frames={} cpu_seconds={cpu:.3} cpu_per_packet_us={:.3} \
         lateness_p50_us={} p99_us={} max_us={} samples={}",
        after.send_errors - before.send_errors,
        after.skipped_frames - before.skipped_frames,
        cpu * 1e6 / sent.max(1) as f64,
        after.lateness.p50_us,
        after.lateness.p99_us,
        after.lateness.max_us,
        after.lateness.samples,
    );
    engine.shutdown();
}
