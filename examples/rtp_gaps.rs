//! An RTP sink that measures silences: it receives on one UDP port for a while and reports,
//! per SSRC, the longest time between two packets, and across all streams how the sequence
//! numbers went on (`scripts/bench.sh upgrade`, docs/behaviour.md §13).
//!
//! ```text
//! cargo run --release --example rtp_gaps -- --port 46000 --seconds 30 [--json FILE]
//! ```
//!
//! Arrival times are the kernel's receive timestamps (`SO_TIMESTAMPNS`), so a sink that is
//! descheduled for a moment does not see a gap that the network did not have.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// What one SSRC did.
#[derive(Default)]
struct Stream {
    packets: u64,
    last_ns: Option<u64>,
    last_seq: Option<u16>,
    longest_gap_ns: u64,
    /// Sequence steps other than +1 (a jump, a repeat, a step back).
    irregular: u64,
    /// Steps of 0 or backwards: a number sent twice.
    repeated: u64,
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// Receives one datagram into `buf` with its kernel timestamp (ns since the epoch).
fn receive(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, u64)> {
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `buf` and `control`, both live and writable.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    let mut at = None;
    // SAFETY: the kernel filled `control`; the walk stays inside it, and a SCM_TIMESTAMPNS
    // message carries one `timespec` (read unaligned).
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<libc::timespec>());
                at = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    Some((n as usize, at?))
}

fn main() -> std::io::Result<()> {
    let port: u16 = arg("--port", "46000").parse().expect("--port N");
    let seconds: u64 = arg("--seconds", "30").parse().expect("--seconds N");
    let json = arg("--json", "");
    let socket = UdpSocket::bind(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option on our own socket.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_TIMESTAMPNS");
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let Some((n, at)) = receive(&socket, &mut buf) else {
            continue;
        };
        if n < 12 || buf[0] >> 6 != 2 {
            continue;
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let s = streams.entry(ssrc).or_default();
        s.packets += 1;
        if let Some(last) = s.last_ns {
            s.longest_gap_ns = s.longest_gap_ns.max(at.saturating_sub(last));
        }
        if let Some(last) = s.last_seq {
            let step = seq.wrapping_sub(last);
            if step != 1 {
                s.irregular += 1;
            }
            if step == 0 || step > 0x8000 {
                s.repeated += 1;
            }
        }
        s.last_ns = Some(at);
        s.last_seq = Some(seq);
    }
    let mut gaps: Vec<f64> = streams
        .values()
        .filter(|s| s.packets > 10)
        .map(|s| s.longest_gap_ns as f64 / 1e6)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        gaps.get(((gaps.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let report = format!(
        "{{\"streams\": {}, \"packets\": {}, \"longest_gap_ms\": {{\"p50\": {:.1}, \"p99\": {:.1}, \"max\": {:.1}}}, \
         \"irregular_steps\": {}, \"repeated_numbers\": {}}}",
        gaps.len(),
        streams.values().map(|s| s.packets).sum::<u64>(),
        pct(0.5),
        pct(0.99),
        gaps.last().copied().unwrap_or(0.0),
        streams.values().map(|s| s.irregular).sum::<u64>(),
        streams.values().map(|s| s.repeated).sum::<u64>(),
    );
    println!("{report}");
    if !json.is_empty() {
        std::fs::write(json, report)?;
    }
    Ok(())
}
