//! The relay's floor for `relay_load --mode floor`: the cheapest ways this machine has to
//! receive each phone's packet and send it out of its partner's socket, with no RTP work.
//! Sockets `2k` and `2k + 1` are partners, each `connect()`ed to its phone. Both run until
//! `end` and add the packets they relay to `relayed` after each batch.
//!
//! - [`epoll`]: one thread, level-triggered epoll, each readiness one `recv` and one `send`.
//! - [`uring`]: one thread, one `io_uring`: a multishot receive armed once on every socket
//!   into a ring of provided buffers, each received buffer sent on from the partner by a
//!   `Send` queued with the rest of the batch, one `io_uring_enter` submitting the sends and
//!   waiting for the next completions. No readiness step and no syscall per packet.

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Level-triggered epoll, one `recv` and one `send` a packet.
pub fn epoll(sockets: &[UdpSocket], end: Instant, relayed: &AtomicU64) {
    // SAFETY: epoll_create1 takes no pointers.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epfd >= 0, "epoll_create1");
    for (i, s) in sockets.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: `ev` is a live local; both fds are open.
        let rc = unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        assert_eq!(rc, 0, "epoll_ctl");
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        // SAFETY: `events` is a live buffer of `events.len()` entries.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, 50) };
        let mut batch = 0;
        for ev in &events[..usize::try_from(n).unwrap_or(0)] {
            let i = ev.u64 as usize;
            if let Ok(len) = sockets[i].recv(&mut buf)
                && sockets[i ^ 1].send(&buf[..len]).is_ok()
            {
                batch += 1;
            }
        }
        relayed.fetch_add(batch, Ordering::Relaxed);
    }
    // SAFETY: closing the epoll fd we created.
    unsafe { libc::close(epfd) };
}

/// Provided buffers: count (a power of two) and size (an RTP packet fits many times).
const BUFFERS: u16 = 8192;
const BUFFER_LEN: usize = 512;
const GROUP: u16 = 1;
// The ring is whole pages of 16-byte entries.
const _: () = assert!((BUFFERS as usize * 16).is_multiple_of(4096));
/// `user_data` of a send: this bit set, the buffer id below it. A receive's is the socket.
const SEND: u64 = 1 << 32;

/// A ring of provided buffers registered with the kernel (`IORING_REGISTER_PBUF_RING`):
/// `BUFFERS` 16-byte entries `{addr: u64, len: u32, bid: u16, resv: u16}` in page-aligned
/// memory (the tail is the first entry's `resv`), and the buffers themselves.
struct BufRing {
    pages: Vec<Page>,
    buffers: Vec<u8>,
    tail: u16,
}

#[repr(C, align(4096))]
struct Page([u8; 4096]);

impl BufRing {
    fn new() -> BufRing {
        let mut ring = BufRing {
            pages: (0..usize::from(BUFFERS) * 16 / 4096)
                .map(|_| Page([0; 4096]))
                .collect(),
            buffers: vec![0; usize::from(BUFFERS) * BUFFER_LEN],
            tail: 0,
        };
        for bid in 0..BUFFERS {
            ring.give_back(bid);
        }
        ring.publish();
        ring
    }

    fn base(&mut self) -> *mut u8 {
        self.pages.as_mut_ptr().cast()
    }

    /// Puts buffer `bid` at the ring's tail (seen by the kernel once `publish`ed).
    fn give_back(&mut self, bid: u16) {
        let index = usize::from(self.tail & (BUFFERS - 1));
        let addr = self.buffers[usize::from(bid) * BUFFER_LEN..].as_ptr() as u64;
        // SAFETY: `index < BUFFERS` and the pages hold `BUFFERS` 16-byte entries; only the
        // entry's first 14 bytes (addr, len, bid) are written, never the tail in entry 0's
        // last two. Unaligned writes, so no alignment is assumed.
        unsafe {
            let slot = self.base().add(index * 16);
            slot.cast::<u64>().write_unaligned(addr);
            slot.add(8).cast::<u32>().write_unaligned(BUFFER_LEN as u32);
            slot.add(12).cast::<u16>().write_unaligned(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the buffers given back so far visible to the kernel.
    fn publish(&mut self) {
        // SAFETY: bytes 14..16 of the ring are its tail, a u16 the kernel reads; it is
        // 2-aligned (the ring is page-aligned) and lives as long as `self`.
        let tail = unsafe { &*self.base().add(14).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        &self.buffers[usize::from(bid) * BUFFER_LEN..][..len.min(BUFFER_LEN)]
    }
}

/// Multishot receives into provided buffers, batched sends, one `io_uring_enter` a batch.
pub fn uring(sockets: &[UdpSocket], end: Instant, relayed: &AtomicU64) {
    use io_uring::{IoUring, cqueue, opcode, squeue, types};
    // Declared before the ring, so dropped after it: the kernel never keeps a registered
    // buffer ring past the ring itself, even when a panic unwinds past the unregistering.
    let mut bufs = BufRing::new();
    let entries = (sockets.len() + 1).next_power_of_two().max(64) as u32;
    let mut ring: IoUring = IoUring::builder()
        .setup_cqsize(entries * 4)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
        .expect("io_uring with DEFER_TASKRUN (kernel 6.1 or later)");
    // SAFETY: the ring memory is page-aligned, holds `BUFFERS` entries and outlives its
    // registration: `bufs` is dropped after `ring` (declared first), and closing the ring
    // releases the registration.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(bufs.base() as u64, BUFFERS, GROUP, 0)
            .expect("register the provided-buffer ring (kernel 5.19 or later)");
    }
    let recv = |i: usize| {
        opcode::RecvMulti::new(types::Fd(sockets[i].as_raw_fd()), GROUP)
            .build()
            .user_data(i as u64)
    };
    let mut pending: Vec<squeue::Entry> = (0..sockets.len()).map(recv).collect();
    let timeout = types::Timespec::from(Duration::from_millis(50));
    while Instant::now() < end {
        // Queue what the last batch produced; a full queue is submitted and the rest follow.
        let mut queued = 0;
        while queued < pending.len() {
            let mut sq = ring.submission();
            while queued < pending.len() {
                // SAFETY: a receive names a socket open for the whole run and a buffer
                // group registered above; a send's buffer is a provided buffer the kernel
                // handed us and that is not given back until the send completes.
                if unsafe { sq.push(&pending[queued]) }.is_err() {
                    break;
                }
                queued += 1;
            }
            drop(sq);
            if queued < pending.len() {
                ring.submit().expect("io_uring_enter");
            }
        }
        pending.clear();
        let args = types::SubmitArgs::new().timespec(&timeout);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => panic!("io_uring_enter: {e}"),
        }
        let mut batch = 0;
        for cqe in ring.completion() {
            let data = cqe.user_data();
            if data & SEND != 0 {
                bufs.give_back((data & 0xffff) as u16);
                batch += u64::from(cqe.result() >= 0);
                continue;
            }
            let i = data as usize;
            if let (Ok(len), Some(bid)) = (
                usize::try_from(cqe.result()),
                cqueue::buffer_select(cqe.flags()),
            ) {
                let packet = bufs.buffer(bid, len);
                pending.push(
                    opcode::Send::new(
                        types::Fd(sockets[i ^ 1].as_raw_fd()),
                        packet.as_ptr(),
                        packet.len() as u32,
                    )
                    .build()
                    .user_data(SEND | u64::from(bid)),
                );
            }
            // A multishot receive that stopped (out of buffers, an error) is armed again.
            if !cqueue::more(cqe.flags()) {
                pending.push(recv(i));
            }
        }
        bufs.publish();
        relayed.fetch_add(batch, Ordering::Relaxed);
    }
    let _ = ring.submitter().unregister_buf_ring(GROUP);
}
