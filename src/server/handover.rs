//! A graceful upgrade (docs/behaviour.md §13): a new `holdfast serve` started on the same
//! data directory as a running one takes over from it, and the callers on the line hear a
//! gap of a few tens of milliseconds.
//!
//! ```text
//!  running process                         new process
//!  listens on <data_dir>/holdfast.sock     loads music and clips (the slow part)
//!                     ◀── "take over <sip>" connects to holdfast.sock
//!  stops reading SIP; closes its TCP, TLS
//!  and admin listeners; writes what is
//!  kept; closes its store; RTP still plays
//!                             "ready" ──▶  opens the store, takes back every kept call
//!                                          (all the controller's work, no media yet)
//!                               ◀── "go"
//!  stops its media shards (RTP stops, the
//!  ledger is final); sends its SIP UDP
//!  socket (SCM_RIGHTS) and exits       ──▶ takes the socket (datagrams queued in it
//!                                          meanwhile are not lost), reads the ledger,
//!                                          binds the RTP ports: RTP goes on; once the old
//!                                          process is gone, binds TCP, TLS and admin
//! ```
//!
//! The callers' gap is only the second step: stopping one engine, starting the other and
//! binding the ports. If the new process dies before its "go", the old one stops its media
//! and exits after [`WAIT`]: its calls are kept, and the next start takes them back as
//! after a crash.
//!
//! RTP ports are not handed over: the old process closes them when its shards stop and the
//! new one binds them again (UDP has no lingering state), so a caller's packets that arrive
//! in the gap are lost, as they would be in any gap.

use std::io::{self, BufRead, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The control socket's file name in `[store] data_dir`.
pub const SOCKET_FILE: &str = "holdfast.sock";

/// What a new process asks, followed by the SIP address it is configured for and a newline.
const REQUEST: &str = "take over ";
/// The old process has stopped SIP and closed its store.
const READY: &[u8] = b"ready\n";
/// The new process is ready to send: the old one stops its media and hands over.
const GO: &[u8] = b"go\n";

/// How long a new process waits for the old one to hand over and to exit.
const WAIT: Duration = Duration::from_secs(10);

/// The running process being taken over from, between the two steps of the handover: it
/// has stopped reading SIP and written everything kept (its store is closed), and its media
/// still plays. [`Predecessor::finish`] stops its media and takes its SIP socket.
#[derive(Debug)]
pub struct Predecessor {
    stream: UnixStream,
}

impl Predecessor {
    /// Grows this process's descriptor table to hold `count` more descriptors now, while
    /// the old process still plays: the kernel grows it in steps, each waiting for an RCU
    /// grace period (milliseconds), which would otherwise fall inside the callers' gap as
    /// the RTP sockets arrive.
    /// (2 064 sockets arrived in 50 ms without this, in 2 ms with it, on this kind of
    /// machine.)
    pub fn make_room(&self, count: usize) {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct we own on the stack.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return;
        }
        // The highest descriptor number allowed is one below the limit.
        let highest = usize::try_from(limit.rlim_cur.saturating_sub(1)).unwrap_or(usize::MAX);
        let hint = libc::c_int::try_from(count.min(highest)).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_DUPFD on our own open descriptor returns a new one numbered `hint` or
        // above (or -1), which grows the table to hold it; it is closed at once and owned by
        // nothing else. The table keeps its size.
        unsafe {
            let fd = libc::fcntl(self.stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, hint);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    }

    /// The second step: the old process stops its media (the ledger is final) and hands
    /// over its SIP UDP socket, bound to the configured address, and its RTP sockets, still
    /// bound to their ports (nothing to close and bind again).
    pub fn finish(mut self) -> io::Result<Taken> {
        self.stream.write_all(GO)?;
        let (fds, said) = receive_fds(&self.stream)?;
        let Some(sip) = fds.into_iter().next() else {
            return Err(io::Error::other(format!(
                "the running process handed over no SIP socket: {}",
                String::from_utf8_lossy(&said).trim()
            )));
        };
        let sip = std::net::UdpSocket::from(sip);
        sip.set_nonblocking(true)?;
        let mut rtp = Vec::new();
        loop {
            let (fds, said) = receive_fds(&self.stream)?;
            rtp.extend(fds.into_iter().map(std::net::UdpSocket::from));
            if said == LAST {
                break;
            }
        }
        Ok(Taken {
            sip,
            rtp,
            gone: Gone(self.stream),
        })
    }
}

/// What the second step hands over.
#[derive(Debug)]
pub struct Taken {
    /// The SIP UDP socket.
    pub sip: std::net::UdpSocket,
    /// The RTP sockets, bound to their ports.
    pub rtp: Vec<std::net::UdpSocket>,
    /// The connection to the old process, which closes when it has exited.
    pub gone: Gone,
}

/// The connection to the process taken over from, which closes when it has exited.
#[derive(Debug)]
pub struct Gone(UnixStream);

impl Gone {
    /// Returns once the process taken over from has exited (its listeners are free), or
    /// after [`WAIT`].
    pub fn wait(mut self) {
        let mut rest = Vec::new();
        let _ = self.0.read_to_end(&mut rest);
    }
}

/// A new process configured for SIP on `sip`: the first step of taking over from the
/// process running on `dir`, if there is one (`None`: nobody listens on the control
/// socket). Returns once the old process is ready: SIP stopped, store written and closed.
/// A process listening elsewhere refuses, and keeps running.
pub fn take_over(dir: &Path, sip: SocketAddr) -> io::Result<Option<Predecessor>> {
    let (path, _dir) = socket_path(dir)?;
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    tracing::info!(socket = %path.display(), "a holdfast runs on this data directory: taking over");
    stream.set_read_timeout(Some(WAIT))?;
    stream.write_all(format!("{REQUEST}{sip}\n").as_bytes())?;
    let mut answer = String::new();
    io::BufReader::new(&stream)
        .take(512)
        .read_line(&mut answer)?;
    if answer.as_bytes() != READY {
        return Err(io::Error::other(format!(
            "the running process did not hand over: {}",
            answer.trim()
        )));
    }
    Ok(Some(Predecessor { stream }))
}

/// Longest socket path the kernel takes (`sun_path` is 108 bytes with its terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// The path to name the control socket by: `<dir>/holdfast.sock`, or, when that is too long
/// for a socket address (unix(7)), the same file through `/proc/self/fd/<dir>/`, with the
/// directory kept open as long as the path is used.
fn socket_path(dir: &Path) -> io::Result<(std::path::PathBuf, Option<std::fs::File>)> {
    let path = dir.join(SOCKET_FILE);
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((path, None));
    }
    let opened = std::fs::File::open(dir)?;
    let short = Path::new("/proc/self/fd")
        .join(opened.as_raw_fd().to_string())
        .join(SOCKET_FILE);
    Ok((short, Some(opened)))
}

/// The running process's end: the control socket.
#[derive(Debug)]
pub struct Control {
    listener: tokio::net::UnixListener,
}

impl Control {
    /// Listens on `<dir>/holdfast.sock`, replacing a file left by a process before.
    pub fn bind(dir: &Path) -> io::Result<Control> {
        let (path, _dir) = socket_path(dir)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(&path)?;
        Ok(Control { listener })
    }

    /// The next request to take over: the connection and the SIP address the new process
    /// is configured for.
    pub async fn next(&self) -> (UnixStream, String) {
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            let mut line = String::new();
            let read = stream
                .set_nonblocking(false)
                .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(1))))
                .and_then(|()| {
                    std::io::BufReader::new(&stream)
                        .take(256)
                        .read_line(&mut line)
                });
            if read.is_ok()
                && let Some(sip) = line.strip_prefix(REQUEST)
            {
                return (stream, sip.trim().to_owned());
            }
        }
    }
}

/// The old process's first step is done: the new one may read the store.
pub fn ready(mut stream: &UnixStream) -> io::Result<()> {
    stream.write_all(READY)
}

/// Waits (at most [`WAIT`]) for the new process to ask for the second step; `false` when it
/// did not.
pub fn await_go(stream: &UnixStream) -> bool {
    let mut line = String::new();
    let _ = stream.set_read_timeout(Some(WAIT));
    io::BufReader::new(stream)
        .take(16)
        .read_line(&mut line)
        .is_ok()
        && line.as_bytes() == GO
}

/// Hands `sip` over to the new process on `stream`, then the `rtp` sockets.
pub fn hand_over(stream: &UnixStream, sip: RawFd, rtp: &[RawFd]) -> io::Result<()> {
    send_fds(stream, b"sip", &[sip])?;
    let mut batches = rtp.chunks(MAX_FDS).peekable();
    if batches.peek().is_none() {
        return send_fds(stream, LAST, &[]);
    }
    while let Some(batch) = batches.next() {
        let tag = if batches.peek().is_none() {
            LAST
        } else {
            b"rtp"
        };
        send_fds(stream, tag, batch)?;
    }
    Ok(())
}

/// The payload of the last message of a handover.
const LAST: &[u8] = b"last";

/// Tells the new process on `stream` why it may not take over.
pub fn refuse(mut stream: &UnixStream, why: &str) {
    let _ = stream.write_all(why.as_bytes());
}

/// Descriptors in one message (the kernel takes at most 253, `SCM_MAX_FD`).
const MAX_FDS: usize = 250;

/// The control buffer, in 8-byte words: room for [`MAX_FDS`] descriptors and the header.
const CONTROL_WORDS: usize = (MAX_FDS * 4 + 64) / 8;

/// `sendmsg` with the descriptors `fds` as `SCM_RIGHTS` (unix(7)) and `payload` as data.
fn send_fds(stream: &UnixStream, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if fds.len() > MAX_FDS || payload.is_empty() {
        return Err(io::Error::other("bad descriptor message"));
    }
    let data_len = std::mem::size_of_val(fds);
    // u64 words: the control buffer must be aligned for `cmsghdr`.
    let mut control = [0u64; CONTROL_WORDS];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
    assert!(space <= std::mem::size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if fds.is_empty() {
        // SAFETY: every pointer in `msg` is valid for the call (the payload and `iov`).
        let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        return if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        };
    }
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` describes `control`, which has room for one header and `data_len`
    // bytes (checked above), so CMSG_FIRSTHDR is non-null and CMSG_DATA points inside
    // `control`; the descriptors are copied byte-wise (no alignment assumed).
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(header), data_len);
    }
    // SAFETY: every pointer in `msg` is valid for the call (the payload, `iov`, `control`).
    let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `recvmsg` of one message sent by [`send_fds`]: its descriptors (close-on-exec) and data.
fn receive_fds(stream: &UnixStream) -> io::Result<(Vec<OwnedFd>, Vec<u8>)> {
    let mut payload = [0u8; 64];
    let mut control = [0u64; CONTROL_WORDS];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `payload` and `control`, both live and writable.
    let received = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    if received == 0 {
        return Err(io::Error::other(
            "the running process closed the control socket",
        ));
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` and set `msg_controllen`; CMSG_FIRSTHDR and
    // CMSG_NXTHDR walk only inside it. Each SCM_RIGHTS descriptor is new in this process's
    // table and owned by nothing else, so wrapping it in an `OwnedFd` is sound.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header);
                let len = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let mut fd: RawFd = 0;
                    std::ptr::copy_nonoverlapping(
                        data.add(i * std::mem::size_of::<RawFd>()),
                        (&mut fd as *mut RawFd).cast::<u8>(),
                        std::mem::size_of::<RawFd>(),
                    );
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            header = libc::CMSG_NXTHDR(&msg, header);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("descriptors truncated"));
    }
    Ok((fds, payload[..received as usize].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_handed_over_receives_what_was_sent_to_the_original() {
        let (a, b) = UnixStream::pair().unwrap();
        let original = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = original.local_addr().unwrap();
        hand_over(&a, original.as_raw_fd(), &[]).unwrap();
        drop(original);
        let (fds, payload) = receive_fds(&b).unwrap();
        assert_eq!(payload, b"sip");
        let (none, last) = receive_fds(&b).unwrap();
        assert!(none.is_empty());
        assert_eq!(last, LAST);
        let taken = std::net::UdpSocket::from(fds.into_iter().next().unwrap());
        assert_eq!(taken.local_addr().unwrap(), addr);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"INVITE", addr).unwrap();
        let mut buf = [0u8; 16];
        taken
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let (n, _) = taken.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"INVITE");
    }

    #[test]
    fn the_two_steps_hand_the_socket_over_once_the_new_process_says_go() {
        let dir = std::env::temp_dir().join(format!("holdfast-steps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(dir.join(SOCKET_FILE)).unwrap();
        let original = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = original.local_addr().unwrap();
        // More RTP sockets than one message carries.
        let rtp: Vec<std::net::UdpSocket> = (0..260)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = rtp.iter().map(|s| s.local_addr().unwrap().port()).collect();
        let old = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            io::BufReader::new(&stream).read_line(&mut line).unwrap();
            assert_eq!(line, "take over 127.0.0.1:5060\n");
            ready(&stream).unwrap();
            assert!(await_go(&stream));
            let fds: Vec<RawFd> = rtp.iter().map(AsRawFd::as_raw_fd).collect();
            hand_over(&stream, original.as_raw_fd(), &fds).unwrap();
        });
        let sip: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let predecessor = take_over(&dir, sip).unwrap().expect("a running process");
        let taken = predecessor.finish().unwrap();
        assert_eq!(taken.sip.local_addr().unwrap(), addr);
        let got: Vec<u16> = taken
            .rtp
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_eq!(got, ports, "every RTP socket, in order");
        old.join().unwrap();
        taken.gone.wait();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_data_directory_too_long_for_a_socket_address_still_has_a_control_socket() {
        let dir = std::env::temp_dir()
            .join(format!("holdfast-long-{}", std::process::id()))
            .join("a-directory-name-long-enough-to-push-the-socket-path-past-what-sun-path-holds");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(dir.join(SOCKET_FILE).as_os_str().len() > SUN_PATH_MAX);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let control = Control::bind(&dir).unwrap();
        assert!(
            dir.join(SOCKET_FILE).exists(),
            "the socket file is in the directory"
        );
        drop(control);
        let sip: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        // Nobody listens any more: no process to take over from, and no error.
        assert!(take_over(&dir, sip).unwrap().is_none());
        std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    }

    #[test]
    fn nobody_to_take_over_from_is_no_error() {
        let dir = std::env::temp_dir().join(format!("holdfast-handover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sip: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert!(take_over(&dir, sip).unwrap().is_none());
        // A stale socket file (its process gone) is not a process either.
        let stale = std::os::unix::net::UnixListener::bind(dir.join(SOCKET_FILE)).unwrap();
        drop(stale);
        assert!(take_over(&dir, sip).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
