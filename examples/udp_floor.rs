//! The physical floor for the media benchmarks: the cheapest way this machine can put the
//! same packets on the wire as the engine, with no RTP state at all. N UDP sockets, each
//! sending one 172-byte packet every 20 ms to one destination; the engine's CPU above this
//! is its own overhead.
//!
//! `udp_floor --streams N --dest 127.0.0.1:PORT --seconds S [--mode M] [--threads T]`
//!
//! Modes, cheapest first on the machines measured (BENCHMARKS.md):
//! - `uring` (default): sockets bound to 127.0.0.1 and `connect()`ed, one thread, one
//!   burst per 20 ms: one `io_uring` submission carrying every socket's send, one
//!   `io_uring_enter` for the whole burst.
//! - `burst`: the same sockets, one thread, one burst per 20 ms of `send()`s.
//! - `unconnected`: `burst` with unconnected sockets and `send_to`.
//! - `slots`: the engine's own shape, the old floor: sockets on `0.0.0.0`, unconnected
//!   `send_to`, sends spread over 100 slots of 200 µs on T (2) threads.
//!
//! `sendmmsg` and `UDP_SEGMENT` do not apply: both batch packets of one socket, and here
//! each socket sends one packet per 20 ms.
//!
//! Prints packets sent, send errors and the CPU time (user + system) used while sending.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_millis(20);
const SLOTS: u32 = 100;
const PACKET: [u8; 172] = [0x80; 172];

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
                "usage: udp_floor --streams N --dest IP:PORT --seconds S \
                 [--mode uring|burst|unconnected|slots] [--threads T]"
            );
            std::process::exit(2)
        })
}

fn socket(bind: &str, connect: Option<SocketAddr>) -> UdpSocket {
    let s = UdpSocket::bind(bind).expect("bind (raise ulimit -n?)");
    s.set_nonblocking(true).expect("non-blocking");
    if let Some(to) = connect {
        s.connect(to).expect("connect");
    }
    s
}

/// Sleeps until `due` (at once if it passed).
fn sleep_until(due: Instant) {
    if let Some(left) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(left);
    }
}

/// Calls `burst` once every period from now until `end`; the sends and errors it counted.
fn each_period(end: Instant, mut burst: impl FnMut(&mut u64, &mut u64)) -> (u64, u64) {
    let (mut sent, mut errors) = (0, 0);
    let start = Instant::now();
    for k in 0.. {
        let due = start + PERIOD * k;
        if due >= end {
            break;
        }
        sleep_until(due);
        burst(&mut sent, &mut errors);
    }
    (sent, errors)
}

/// Counts one send in `sent` or `errors`.
fn tally(ok: bool, sent: &mut u64, errors: &mut u64) {
    if ok {
        *sent += 1;
    } else {
        *errors += 1;
    }
}

/// One thread, one burst per period: `send` for each socket (connected or not).
fn bursts(sockets: &[UdpSocket], dest: Option<SocketAddr>, end: Instant) -> (u64, u64) {
    each_period(end, |sent, errors| {
        for s in sockets {
            let ok = match dest {
                Some(to) => s.send_to(&PACKET, to).is_ok(),
                None => s.send(&PACKET).is_ok(),
            };
            tally(ok, sent, errors);
        }
    })
}

/// One thread, one burst per period, all of it one `io_uring` submission of `Send`s on
/// connected sockets; completions are reaped before the next burst.
fn uring_bursts(sockets: &[UdpSocket], end: Instant) -> (u64, u64) {
    use io_uring::{IoUring, opcode, types};
    let entries = sockets.len().next_power_of_two().max(8) as u32;
    let mut ring: IoUring = IoUring::builder()
        .setup_cqsize(entries * 2)
        .build(entries)
        .expect("io_uring (kernel 5.6 or later, not disabled)");
    each_period(end, |sent, errors| {
        {
            let mut sq = ring.submission();
            for s in sockets {
                let send = opcode::Send::new(
                    types::Fd(s.as_raw_fd()),
                    PACKET.as_ptr(),
                    PACKET.len() as u32,
                )
                .build();
                // SAFETY: the buffer is a `'static` constant and the fd is open for the
                // whole run (the sockets outlive the ring's use); the queue has room for
                // every socket (its size is at least their count, and it is emptied by the
                // `submit_and_wait` below before the next burst).
                unsafe {
                    sq.push(&send)
                        .expect("submission queue sized for every socket")
                };
            }
        }
        ring.submit_and_wait(sockets.len()).expect("io_uring_enter");
        for cqe in ring.completion() {
            tally(cqe.result() >= 0, sent, errors);
        }
    })
}

/// The engine's shape: 100 slots of 200 µs, `send_to` from unconnected sockets.
fn slots(sockets: Vec<UdpSocket>, dest: SocketAddr, start: Instant, end: Instant) -> (u64, u64) {
    let mut slots: Vec<Vec<&UdpSocket>> = (0..SLOTS).map(|_| Vec::new()).collect();
    for (i, s) in sockets.iter().enumerate() {
        slots[i % SLOTS as usize].push(s);
    }
    let (mut sent, mut errors) = (0u64, 0u64);
    let mut tick: u32 = 0;
    loop {
        let due = start + PERIOD * (tick / SLOTS) + PERIOD / SLOTS * (tick % SLOTS);
        if due >= end {
            break;
        }
        sleep_until(due);
        for s in &slots[(tick % SLOTS) as usize] {
            match s.send_to(&PACKET, dest) {
                Ok(_) => sent += 1,
                Err(_) => errors += 1,
            }
        }
        tick += 1;
    }
    (sent, errors)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let streams: usize = arg(&args, "--streams", None);
    let dest: SocketAddr = arg(&args, "--dest", None);
    let seconds: f64 = arg(&args, "--seconds", Some(10.0));
    let mode: String = arg(&args, "--mode", Some("uring".to_owned()));
    let threads: usize = arg(&args, "--threads", Some(2));

    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let (sent, errors) = match mode.as_str() {
        "uring" | "burst" | "unconnected" => {
            let connect = (mode != "unconnected").then_some(dest);
            let sockets: Vec<UdpSocket> = (0..streams)
                .map(|_| socket("127.0.0.1:0", connect))
                .collect();
            match mode.as_str() {
                "uring" => uring_bursts(&sockets, end),
                "burst" => bursts(&sockets, None, end),
                _ => bursts(&sockets, Some(dest), end),
            }
        }
        "slots" => {
            let mut groups: Vec<Vec<UdpSocket>> = (0..threads).map(|_| Vec::new()).collect();
            for i in 0..streams {
                groups[i % threads].push(socket("0.0.0.0:0", None));
            }
            let handles: Vec<_> = groups
                .into_iter()
                .map(|g| std::thread::spawn(move || slots(g, dest, start, end)))
                .collect();
            handles.into_iter().fold((0, 0), |(s, e), h| {
                let (s2, e2) = h.join().expect("sender thread");
                (s + s2, e + e2)
            })
        }
        _ => {
            let _: u8 = arg(&args, "--mode?", None);
            return;
        }
    };
    let cpu = cpu_seconds() - cpu0;
    let wall = start.elapsed().as_secs_f64();
    println!(
        "udp_floor mode={mode} streams={streams} seconds={wall:.2} packets_sent={sent} \
         send_errors={errors} cpu_seconds={cpu:.3} cpu_per_packet_us={:.3}",
        cpu * 1e6 / sent.max(1) as f64
    );
}
