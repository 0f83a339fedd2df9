//! A minimal safe wrapper over Linux `epoll` and `eventfd` for the media shards.
//!
//! Why not `mio`: `mio::Poll` rounds timeouts up to whole milliseconds (`epoll_wait` takes
//! milliseconds). The media clock spreads sends over sub-millisecond slots of the 20 ms
//! period, so a shard must sleep until a deadline with microsecond resolution.
//! `epoll_pwait2` (Linux 5.11) takes a `timespec`; on older kernels this falls back to
//! `epoll_wait` with the timeout rounded up to the next millisecond (sends are then batched
//! per millisecond, still on schedule within ~1 ms).
//!
//! Registrations are level-triggered for input. The shard's [`Waker`] is registered for the
//! shard's life; a stream socket only while its stream is bridged (relay legs need each
//! packet forwarded at once); held streams are drained on the clock (see the shard module for
//! why).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set once `epoll_pwait2` returned `ENOSYS`, so later waits go straight to `epoll_wait`.
static NO_PWAIT2: AtomicBool = AtomicBool::new(false);

/// One readiness report: the token given at registration.
pub type Token = u64;

/// An epoll instance.
#[derive(Debug)]
pub struct Poller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
    /// How many entries of `events` the last wait filled.
    ready: usize,
}

impl Poller {
    /// Creates an epoll instance reporting at most `capacity` events per wait.
    pub fn new(capacity: usize) -> io::Result<Poller> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative return is a new fd that
        // nothing else owns, so OwnedFd may take it.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above: `fd` is a fresh, valid, unowned descriptor.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller {
            epfd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
            ready: 0,
        })
    }

    /// Registers `fd` for input readiness (level-triggered) under `token`.
    pub fn add(&self, fd: &impl AsRawFd, token: Token) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), token)
    }

    /// Removes `fd`'s registration (a bridged socket going back to clock-driven reads, or
    /// about to close: its token must not be reported for a reused table index).
    pub fn delete(&self, fd: &impl AsRawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: Token) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call (the kernel copies
        // it); both fds are open (epfd is owned by self, fd is borrowed from a live socket).
        let rc = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until a registered fd is readable or `timeout` passes (`None`: forever), and
    /// returns how many tokens are ready; read them with [`Poller::token`]. An interrupted
    /// wait reports none.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let cap = libc::c_int::try_from(self.events.len()).unwrap_or(libc::c_int::MAX);
        let ptr = self.events.as_mut_ptr();
        let epfd = self.epfd.as_raw_fd();
        let mut n = -1;
        if !NO_PWAIT2.load(Ordering::Relaxed) {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: t.subsec_nanos().into(),
            });
            let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
            // SAFETY: `ptr` points to `cap` writable epoll_event slots owned by self.events,
            // which is not touched while the call runs; `ts_ptr` is null or points to a live
            // timespec on this stack frame; a null sigmask means "don't change the mask".
            // The raw syscall avoids depending on a glibc recent enough to wrap it.
            n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epfd,
                    ptr,
                    cap,
                    ts_ptr,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            } as libc::c_int;
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
                NO_PWAIT2.store(true, Ordering::Relaxed);
            }
        }
        if NO_PWAIT2.load(Ordering::Relaxed) {
            let ms = timeout.map_or(-1, |t| {
                let ms = t.saturating_add(Duration::from_nanos(999_999)).as_millis();
                libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
            });
            // SAFETY: as above for `ptr` and `cap`.
            n = unsafe { libc::epoll_wait(epfd, ptr, cap, ms) };
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                n = 0;
            } else {
                return Err(err);
            }
        }
        self.ready = usize::try_from(n).unwrap_or(0).min(self.events.len());
        Ok(self.ready)
    }

    /// The token of the `i`-th ready fd of the last [`Poller::wait`] (`i` below its result).
    pub fn token(&self, i: usize) -> Option<Token> {
        self.events[..self.ready].get(i).map(|e| e.u64)
    }
}

/// Wakes a shard blocked in [`Poller::wait`] from another thread (an `eventfd`).
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// Creates a non-blocking eventfd.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: no pointers; a non-negative return is a fresh fd nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh, valid, unowned descriptor.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Makes the eventfd readable. Never blocks: if the counter is saturated the shard is
    /// already due to wake.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an fd owned by self.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Resets the eventfd so the next wait blocks again.
    pub fn drain(&self) {
        let mut buf: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64 from an fd owned by self.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut buf as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

impl AsRawFd for Waker {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Instant;

    #[test]
    fn waits_with_sub_millisecond_timeout_and_reports_tokens() {
        let mut poller = Poller::new(8).unwrap();
        let t = Instant::now();
        assert_eq!(poller.wait(Some(Duration::from_micros(300))).unwrap(), 0);
        assert!(t.elapsed() >= Duration::from_micros(300));

        let waker = Waker::new().unwrap();
        poller.add(&waker, 7).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        poller.add(&sock, 9).unwrap();
        waker.wake();
        sock.send_to(b"x", sock.local_addr().unwrap()).unwrap();
        let mut tokens: Vec<Token> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while tokens.len() < 2 && Instant::now() < deadline {
            let n = poller.wait(Some(Duration::from_millis(100))).unwrap();
            tokens = (0..n).filter_map(|i| poller.token(i)).collect();
        }
        tokens.sort();
        assert_eq!(tokens, [7, 9]);
        waker.drain();
        let mut buf = [0u8; 8];
        sock.recv_from(&mut buf).unwrap();
        let left = poller.wait(Some(Duration::ZERO)).unwrap();
        assert_eq!(left, 0, "drained waker and socket report nothing");
        assert_eq!(poller.token(0), None);

        poller.delete(&sock).unwrap();
        sock.send_to(b"y", sock.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(poller.wait(Some(Duration::ZERO)).unwrap(), 0, "deleted");
        assert!(poller.delete(&sock).is_err(), "not registered any more");
    }
}
