//! Connected RTP sockets: a stream's UDP socket is `connect(2)`ed to the address it sends
//! to, so each packet is a `send` on a socket whose route the kernel has cached instead of
//! a `sendto` that looks the route up again (≈ 17 % of a held caller's CPU on the reference
//! machine; BENCHMARKS.md, "The hold path").
//!
//! A connected UDP socket only receives datagrams from its peer; the kernel drops the rest.
//! Symmetric RTP (SPEC §4: send to where the caller's RTP comes from once it arrives, else to
//! the SDP address) is kept by connecting only where that drops nothing the stream needs:
//!
//! - **Latched** (RTP arrived; its source is the destination for good, `inbound`): connected
//!   to it. Datagrams from anywhere else could never move the stream, and are now not even
//!   read (nor taken for key presses).
//! - **Not latched, on the clock** (playing or idle, drained on its poll turns): connected to
//!   the SDP address from its [`SETTLE_TURNS`]th poll turn since the address was announced or
//!   the music started (a caller's first RTP, from behind a NAT or not, comes well within that
//!   second), but left unconnected for one poll turn in every [`OPEN_EVERY`]: RTP that starts
//!   later from another address (a caller that was silent, then talks from behind a NAT) is
//!   read and latched within [`OPEN_EVERY`] turns (2 s) instead of at once.
//! - **Not latched, read on readiness** (a bridged leg, a supervisor's leg): unconnected (it
//!   is read as its packets come; the first one, from wherever, must be seen). Once it
//!   latches, it is connected.
//!
//! A socket opened already connected (handed over by the process before) is known as such
//! (`getpeername`) and follows the same rules from there.
//!
//! The state is decided at the stream's poll turn (or a bridged leg's read), and one
//! `connect` per change is all it costs; sends check the remote against the connected
//! address, so a destination that changed (re-INVITE) is sent to with `sendto` until the
//! next turn connects it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use super::Stream;

/// Poll turns (of 200 ms) a stream that has not latched sends unconnected first.
pub(super) const SETTLE_TURNS: u64 = 5;

/// One poll turn in this many leaves a not-latched stream's socket unconnected until the next.
pub(super) const OPEN_EVERY: u64 = 10;

/// Where the socket of a stream drained on the clock should be connected after its poll
/// turn number `turn` (counted from 1 since it opened, its SDP address changed or its music
/// started): see the module docs.
pub(super) fn wanted(latched: bool, remote: Option<SocketAddr>, turn: u64) -> Option<SocketAddr> {
    if latched || (turn >= SETTLE_TURNS && !turn.is_multiple_of(OPEN_EVERY)) {
        remote
    } else {
        None
    }
}

impl Stream {
    /// Connects the socket to `want` (`None`: no peer), if it is not already. A failed
    /// change leaves the socket unconnected as far as sends are concerned (`sendto` works
    /// either way).
    pub(super) fn connect_to(&mut self, want: Option<SocketAddr>) {
        if self.connected == want {
            return;
        }
        let result = match want {
            Some(addr) => self.socket.connect(addr),
            None => disconnect(&self.socket),
        };
        self.connected = match result {
            Ok(()) => want,
            Err(error) => {
                tracing::debug!(id = %self.id, %error, "RTP socket left unconnected");
                let _ = disconnect(&self.socket);
                None
            }
        };
    }

    /// The far end's SDP address, announced or changed: a stream that has not latched settles
    /// again (unconnected for a second), since the far end starts sending only now.
    pub(super) fn set_sdp_remote(&mut self, remote: SocketAddr) {
        if !self.peer.latched && self.peer.remote != Some(remote) {
            self.turns = 0;
        }
        self.peer.set_sdp_remote(remote);
    }

    /// The stream is read as its packets come from now on (bridged, or a supervisor's):
    /// until it latches, from anywhere.
    pub(super) fn read_on_readiness(&mut self) {
        if !self.peer.latched {
            self.connect_to(None);
        }
    }

    /// After a read on readiness: once latched, only that source matters.
    pub(super) fn connect_if_latched(&mut self) {
        if self.peer.latched && self.connected != self.peer.remote {
            self.connect_to(self.peer.remote);
        }
    }
}

/// Dissolves a UDP socket's association: `connect(2)` to an address whose family is
/// `AF_UNSPEC` (connect(2): "connectionless sockets may dissolve the association"). A socket
/// bound to an explicit address and port, as every RTP socket is (the engine binds ports out
/// of its range), keeps both; one bound to port 0 would give its port back.
fn disconnect(socket: &UdpSocket) -> io::Result<()> {
    // SAFETY: `sockaddr` is a plain C struct for which all-zero is a valid value.
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: the fd is open for the call (borrowed from `socket`), `addr` is a live local
    // and the length passed is its size; connect(2) only reads it.
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &addr,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latched_streams_connect_at_once_others_after_settling_with_open_turns() {
        let sdp: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        for turn in 1..40 {
            assert_eq!(
                wanted(true, Some(sdp), turn),
                Some(sdp),
                "latched, turn {turn}"
            );
        }
        let turns: Vec<bool> = (1..=21)
            .map(|turn| wanted(false, Some(sdp), turn).is_some())
            .collect();
        let mut expected = vec![false; 4];
        expected.extend([true; 5]);
        expected.push(false); // turn 10: open
        expected.extend([true; 9]);
        expected.push(false); // turn 20: open
        expected.push(true);
        assert_eq!(turns, expected);
        assert_eq!(wanted(false, None, 7), None, "nowhere to connect to");
    }

    #[test]
    fn a_disconnected_socket_keeps_its_port_and_hears_anyone_again() {
        // Bound to an explicit port, as the engine binds every RTP socket (a socket bound to
        // port 0 gives its port back when disconnected).
        let a = (38_500..38_600)
            .find_map(|port| UdpSocket::bind(("127.0.0.1", port)).ok())
            .unwrap();
        let (peer, other) = (
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        let port = a.local_addr().unwrap();
        a.connect(peer.local_addr().unwrap()).unwrap();
        a.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .unwrap();
        other.send_to(b"dropped", port).unwrap();
        peer.send_to(b"peer", port).unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"peer"[..], peer.local_addr().unwrap())
        );
        disconnect(&a).unwrap();
        assert_eq!(a.local_addr().unwrap(), port, "still bound where it was");
        assert!(a.peer_addr().is_err(), "no peer");
        other.send_to(b"other", port).unwrap();
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"other"[..], other.local_addr().unwrap())
        );
    }
}
