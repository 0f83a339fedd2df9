//! The physical floor for media-engine benchmarks: N UDP sockets, each sending one 172-byte
//! packet every 20 ms to one destination, sends spread evenly over the period in the same
//! 100 slots × 200 µs shape as the engine, over the same number of threads, with the same
//! syscall (`send_to` on a non-blocking std `UdpSocket`). No RTP state, no epoll, no reads:
//! whatever CPU the engine spends above this is its own overhead.
//!
//! `udp_floor --streams N --dest 127.0.0.1:PORT --seconds S [--threads T]`
//!
//! Prints packets sent, send errors and the CPU time (user + system) used while sending.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const PERIOD: Duration = Duration::from_millis(20);
const SLOTS: u32 = 100;

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
            eprintln!("usage: udp_floor --streams N --dest IP:PORT --seconds S [--threads T]");
            std::process::exit(2)
        })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let streams: usize = arg(&args, "--streams", None);
    let dest: SocketAddr = arg(&args, "--dest", None);
    let seconds: f64 = arg(&args, "--seconds", Some(10.0));
    let threads: usize = arg(&args, "--threads", Some(2));

    let mut groups: Vec<Vec<UdpSocket>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..streams {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind (raise ulimit -n?)");
        s.set_nonblocking(true).expect("non-blocking");
        groups[i % threads].push(s);
    }
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = groups
        .into_iter()
        .map(|sockets| {
            std::thread::spawn(move || {
                // Socket i sends in slot i % SLOTS, like the engine's least-loaded fill.
                let mut slots: Vec<Vec<&UdpSocket>> = (0..SLOTS).map(|_| Vec::new()).collect();
                for (i, s) in sockets.iter().enumerate() {
                    slots[i % SLOTS as usize].push(s);
                }
                let packet = [0x80u8; 172];
                let (mut sent, mut errors) = (0u64, 0u64);
                let mut tick: u32 = 0;
                loop {
                    let due = start + PERIOD * (tick / SLOTS) + PERIOD / SLOTS * (tick % SLOTS);
                    if due >= end {
                        break;
                    }
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    for s in &slots[(tick % SLOTS) as usize] {
                        match s.send_to(&packet, dest) {
                            Ok(_) => sent += 1,
                            Err(_) => errors += 1,
                        }
                    }
                    tick += 1;
                }
                (sent, errors)
            })
        })
        .collect();
    let (mut sent, mut errors) = (0, 0);
    for h in handles {
        let (s, e) = h.join().expect("sender thread");
        sent += s;
        errors += e;
    }
    let cpu = cpu_seconds() - cpu0;
    let wall = start.elapsed().as_secs_f64();
    println!(
        "udp_floor streams={streams} threads={threads} seconds={wall:.2} packets_sent={sent} \
         send_errors={errors} cpu_seconds={cpu:.3} cpu_per_packet_us={:.3}",
        cpu * 1e6 / sent.max(1) as f64
    );
}
