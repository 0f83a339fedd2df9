//! Load run of RTP relay: N bridged pairs on loopback, both "phones" of every pair sending
//! one 172-byte PCMU packet every 20 ms, for S seconds. Prints the engine threads' CPU time
//! per bridged call and per relayed packet, and the forwarding latency of a probe pair.
//!
//! `relay_load --pairs N --seconds S [--shards K] [--mode relay|music|floor|floor-uring] [--record DIR]
//!  [--monitor M]`
//!
//! `--record DIR` records every bridged call into `DIR/<pair>.wav` (the writer thread's
//! CPU is reported apart from the shards'); `--monitor M` puts a supervisor on the first M
//! calls after the probe, barging (the most mixing: both sides to the supervisor, the
//! supervisor to both sides), its phone talking like the others.
//!
//! `--mode floor` is the relay's floor: the same phones relayed by one thread of our own
//! (connected sockets, epoll, one `recv` and one `send` a packet, no RTP work), named
//! `media-floor` so it is measured like the engine's threads. `--mode floor-uring` is the
//! same through one `io_uring` (multishot receives into provided buffers, batched sends;
//! `support/relay_floor.rs`).
//!
//! `--mode music` is the baseline: 2N streams playing music to 2N phones, the same number
//! of packets sent by the engine per second as N relayed pairs, without the receiving.
//! Only the engine's own threads (`media-*`) are measured (from `/proc/self/task/*/schedstat`),
//! not the phones, which run in this process on their own threads.
//!
//! The probe latency is reported twice: up to the kernel's receive timestamp on the probe's
//! socket (`SIOCGSTAMPNS`; the engine's forwarding delay plus the loopback path), and up to
//! the probe thread reading it (adds the probe thread's own wake-up, which on a busy machine
//! dominates).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "support/relay_floor.rs"]
mod relay_floor;

use bytes::Bytes;
use holdfast::media::engine::{EngineConfig, MediaEngine};
use holdfast::media::mix::MonitorMode;
use holdfast::media::rtp::RtpHeader;

const PERIOD: Duration = Duration::from_millis(20);
const SLOTS: usize = 100;

/// CPU time (ns) of this process's threads whose name starts with `media-`, and of the
/// kernel's `io_uring` workers serving them (`iou-*`, only the floor's ring has any).
fn engine_cpu_ns() -> u64 {
    threads_cpu_ns("media-") + threads_cpu_ns("iou-")
}

/// CPU time (ns) of this process's threads whose name starts with `prefix`.
fn threads_cpu_ns(prefix: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let sched = std::fs::read_to_string(path.join("schedstat")).unwrap_or_default();
        total += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// `SIOCGSTAMPNS` (asm-generic sockios): the receive timestamp of the last datagram read.
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

/// Wall-clock nanoseconds (the clock kernel receive timestamps use).
fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Kernel receive timestamp (wall-clock ns) of the last datagram read from `socket`; the
/// first call only switches timestamping on.
fn last_rx_ns(socket: &UdpSocket) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: SIOCGSTAMPNS writes one timespec through the pointer, which points to a live
    // local; the fd is open for the duration of the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCGSTAMPNS as _, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize] as f64 / 1000.0
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .or(default)
        .unwrap_or_else(|| {
            eprintln!(
                "usage: relay_load --pairs N --seconds S [--shards K] [--mode relay|music|floor|floor-uring] \
                 [--record DIR] [--monitor M]"
            );
            std::process::exit(2)
        })
}

fn phone() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind (raise ulimit -n?)");
    s.set_nonblocking(true).expect("non-blocking");
    s
}

/// A phone: its socket, where it sends, and its own RTP counters.
struct Phone {
    socket: UdpSocket,
    to: Option<SocketAddr>,
    ssrc: u32,
    seq: u16,
    ts: u32,
}

/// Drives `phones` in 100 slots per 20 ms until `end`: each phone, on its slot, drains what
/// it received and sends one packet. Returns packets received.
fn run_phones(mut phones: Vec<Phone>, end: Instant) -> u64 {
    let mut packet = [0x55u8; 172];
    let mut buf = [0u8; 2048];
    let mut received = 0;
    let start = Instant::now();
    let mut tick = 0u64;
    while Instant::now() < end {
        let due = start + PERIOD / SLOTS as u32 * tick as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let slot = (tick % SLOTS as u64) as usize;
        for phone in phones.iter_mut().skip(slot).step_by(SLOTS) {
            while phone.socket.recv_from(&mut buf).is_ok() {
                received += 1;
            }
            if let Some(to) = phone.to {
                let h = RtpHeader::new(0, phone.seq, phone.ts, phone.ssrc, false);
                h.write_fixed((&mut packet[..12]).try_into().expect("12 bytes"));
                let _ = phone.socket.send_to(&packet, to);
                phone.seq = phone.seq.wrapping_add(1);
                phone.ts = phone.ts.wrapping_add(160);
            }
        }
        tick += 1;
    }
    received
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let pairs: usize = arg(&args, "--pairs", None);
    let seconds: f64 = arg(&args, "--seconds", Some(10.0));
    let shards: usize = arg(&args, "--shards", Some(2));
    let mode: String = arg(&args, "--mode", Some("relay".to_string()));
    let relay = match mode.as_str() {
        "relay" | "floor" | "floor-uring" => true,
        "music" => false,
        _ => arg(&args, "--mode?", None),
    };
    let floor = mode.starts_with("floor");
    // `--mode floor` / `floor-uring`: the same phones, relayed by the cheapest relay of our
    // own instead of the engine (`support/relay_floor.rs`).
    let mut floor_sockets: Vec<UdpSocket> = Vec::new();
    let record: Option<std::path::PathBuf> = args
        .iter()
        .any(|a| a == "--record")
        .then(|| arg(&args, "--record", None));
    let monitored: usize = arg(&args, "--monitor", Some(0));

    let (engine, _events) = MediaEngine::start(EngineConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port_min: 20000,
        port_max: 59999,
        shards,
        pin: false,
        ledger: None,
    })
    .expect("start engine");
    let music = Bytes::from(vec![0x55u8; 160 * 50]);
    let mut phones = Vec::new();
    // Pair 0 is the latency probe (relay mode): A sends timestamps, B reads them blocking.
    let mut probe = None;
    for i in 0..pairs {
        let (a, b) = (phone(), phone());
        let to = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        if floor {
            let (fa, fb) = (phone(), phone());
            fa.connect(a.local_addr().unwrap()).unwrap();
            fb.connect(b.local_addr().unwrap()).unwrap();
            let (pa, pb) = (
                fa.local_addr().unwrap().port(),
                fb.local_addr().unwrap().port(),
            );
            floor_sockets.extend([fa, fb]);
            if i == 0 {
                probe = Some((a, b, to(pa).unwrap()));
                continue;
            }
            for (socket, port) in [(a, pa), (b, pb)] {
                phones.push(Phone {
                    socket,
                    to: to(port),
                    ssrc: rand::random(),
                    seq: rand::random(),
                    ts: rand::random(),
                });
            }
            continue;
        }
        let (caller, caller_port) = engine.open().expect("open");
        let (agent, agent_port) = engine.open_beside(caller).expect("open beside");
        if relay {
            engine.connect(caller, a.local_addr().unwrap(), 0).unwrap();
            engine.connect(agent, b.local_addr().unwrap(), 0).unwrap();
            engine.bridge(caller, agent).unwrap();
            if let Some(dir) = &record {
                engine
                    .record(caller, agent, dir.join(format!("{i}.wav")))
                    .unwrap();
            }
            if (1..=monitored).contains(&i) {
                let s = phone();
                let (supervisor, port) = engine.open_beside(caller).expect("open beside");
                engine
                    .connect(supervisor, s.local_addr().unwrap(), 0)
                    .unwrap();
                engine
                    .monitor(supervisor, caller, agent, MonitorMode::Barge)
                    .unwrap();
                phones.push(Phone {
                    socket: s,
                    to: to(port),
                    ssrc: rand::random(),
                    seq: rand::random(),
                    ts: rand::random(),
                });
            }
            if i == 0 {
                probe = Some((a, b, to(caller_port).unwrap()));
                continue;
            }
        } else {
            engine
                .play(caller, a.local_addr().unwrap(), 0, music.clone())
                .unwrap();
            engine
                .play(agent, b.local_addr().unwrap(), 0, music.clone())
                .unwrap();
        }
        for (socket, port) in [(a, caller_port), (b, agent_port)] {
            phones.push(Phone {
                socket,
                to: if relay { to(port) } else { None },
                ssrc: rand::random(),
                seq: rand::random(),
                ts: rand::random(),
            });
        }
    }
    let warmup = Duration::from_secs(1);
    let end = Instant::now() + warmup + Duration::from_secs_f64(seconds);
    let phones_thread = std::thread::spawn(move || run_phones(phones, end));
    // The floor relay runs a second past the phones, so it is still alive (its CPU time
    // still readable) when the window closes; it counts into `floor_relayed` as it goes.
    let floor_relayed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let floor_thread = floor.then(|| {
        let (mode, relayed) = (mode.clone(), floor_relayed.clone());
        let until = end + Duration::from_secs(1);
        std::thread::Builder::new()
            .name("media-floor".into())
            .spawn(move || match mode.as_str() {
                "floor-uring" => relay_floor::uring(&floor_sockets, until, &relayed),
                _ => relay_floor::epoll(&floor_sockets, until, &relayed),
            })
            .expect("spawn the floor relay")
    });
    let floor_count = || floor_relayed.load(std::sync::atomic::Ordering::Relaxed);
    let probe_thread = probe.map(|(a, b, to)| {
        std::thread::spawn(move || {
            let _ = last_rx_ns(&b);
            b.set_nonblocking(false).unwrap();
            b.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let (mut to_kernel, mut to_thread) = (Vec::new(), Vec::new());
            let mut packet = [0x55u8; 172];
            let mut buf = [0u8; 2048];
            let mut seq = 0u16;
            while Instant::now() < end {
                let h = RtpHeader::new(0, seq, u32::from(seq) * 160, 7, false);
                h.write_fixed((&mut packet[..12]).try_into().expect("12 bytes"));
                packet[12..20].copy_from_slice(&realtime_ns().to_be_bytes());
                let _ = a.send_to(&packet, to);
                seq = seq.wrapping_add(1);
                let deadline = Instant::now() + PERIOD;
                while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                    b.set_read_timeout(Some(left.max(Duration::from_micros(50))))
                        .unwrap();
                    let Ok(n) = b.recv(&mut buf) else { break };
                    let now = realtime_ns();
                    if n == 172 {
                        let at = u64::from_be_bytes(buf[12..20].try_into().expect("8 bytes"));
                        to_thread.push(now.saturating_sub(at));
                        if let Some(rx) = last_rx_ns(&b) {
                            to_kernel.push(rx.saturating_sub(at));
                        }
                    }
                }
            }
            (to_kernel, to_thread)
        })
    });

    std::thread::sleep(warmup);
    let (cpu0, writer0, stats0, floor0, t0) = (
        engine_cpu_ns(),
        threads_cpu_ns("recordings"),
        engine.stats(),
        floor_count(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (cpu1, writer1, stats1, floor1, wall) = (
        engine_cpu_ns(),
        threads_cpu_ns("recordings"),
        engine.stats(),
        floor_count(),
        t0.elapsed(),
    );
    let writer = (writer1 - writer0) as f64 / 1e9;
    let received = phones_thread.join().expect("phones");
    if let Some(t) = floor_thread {
        t.join().expect("floor relay");
    }
    let cpu = cpu1.saturating_sub(cpu0) as f64 / 1e9;
    let wall = wall.as_secs_f64();
    let relayed = stats1.packets_relayed - stats0.packets_relayed + (floor1 - floor0);
    let sent = stats1.packets_sent - stats0.packets_sent;
    let out = relayed + sent;
    println!(
        "mode {mode}: {pairs} pairs, {shards} shards, {wall:.1} s: engine CPU {cpu:.2} s \
         ({:.1} % of one core)",
        100.0 * cpu / wall
    );
    println!(
        "  packets out {out} ({:.0}/s; relayed {relayed}, music {sent}), received {}, \
         dropped {}, send errors {}, skipped frames {}",
        out as f64 / wall,
        stats1.packets_received - stats0.packets_received,
        stats1.relay_dropped - stats0.relay_dropped,
        stats1.send_errors - stats0.send_errors,
        stats1.skipped_frames - stats0.skipped_frames,
    );
    println!(
        "  engine CPU per packet out {:.2} µs; per call (2 legs) {:.3} % of a core",
        cpu * 1e6 / out.max(1) as f64,
        100.0 * cpu / wall / pairs as f64
    );
    println!("  phones received {received} packets in total");
    if record.is_some() {
        println!(
            "  recordings writer thread CPU {writer:.2} s ({:.1} % of one core)",
            100.0 * writer / wall
        );
    }
    let mut json = format!(
        "{{\"pairs\":{pairs},\"monitored\":{monitored},\"recorded\":{},\"wall_s\":{wall:.3},\
         \"engine_cpu_s\":{cpu:.4},\"writer_cpu_s\":{writer:.4},\"packets_out\":{out}",
        record.is_some()
    );
    if let Some(t) = probe_thread {
        let (mut to_kernel, mut to_thread) = t.join().expect("probe");
        for (what, l) in [
            ("to kernel rx", &mut to_kernel),
            ("to probe thread", &mut to_thread),
        ] {
            l.sort_unstable();
            if !l.is_empty() {
                println!(
                    "  probe latency {what} (µs): n {} p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}",
                    l.len(),
                    pct(l, 0.5),
                    pct(l, 0.9),
                    pct(l, 0.99),
                    pct(l, 1.0)
                );
                if what == "to kernel rx" {
                    json += &format!(
                        ",\"probe_p50_us\":{:.0},\"probe_p99_us\":{:.0}",
                        pct(l, 0.5),
                        pct(l, 0.99)
                    );
                }
            }
        }
    }
    engine.shutdown();
    println!("json {json}}}");
}
