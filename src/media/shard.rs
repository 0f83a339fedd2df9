//! One media shard: a thread that owns a set of RTP streams, their sockets and one clock.
//!
//! This is the hot loop. The 20 ms period is cut into [`SLOTS`] slots of 2 ms; every open
//! stream sits in one slot (the first with room for it, 200 streams a slot, else the least
//! loaded), so a playing stream's send
//! schedule is `epoch + k × 20 ms + slot × 2 ms`: each slot's sends go out in one burst,
//! and the bursts are spread over the period. The shard sleeps in `epoll_pwait2` until the
//! next non-empty slot is due, services that slot's streams, then applies controller
//! commands if the waker fired. Ten slots, not more: every wake-up of a thread costs more
//! than a send on a virtual machine (a timer exit and a context switch), and with 100
//! slots of 200 µs the wake-ups alone made the hold path twice the floor (BENCHMARKS.md);
//! with ten, a slot of 5 000 callers' shard is 500 sends, about 1.5 ms of work, which is
//! the lateness its last packet pays.
//!
//! ```text
//!  wait(next due slot | waker) ─▶ service due slots ─▶ apply commands ─┐
//!        ▲                                                             │
//!        └─────────────────────────────────────────────────────────────┘
//!  service a stream = send its next frame (if playing)
//!                   + every POLL_PERIODS-th period: read what its socket received
//! ```
//!
//! Per packet there is no allocation, lock, channel operation, clock read or log line: the
//! frame comes from shared `Bytes` and is copied into one reused buffer behind the header,
//! counters are single-writer atomics ([`super::stats`]), and send lateness is stamped once
//! per slot (every frame of a slot counted as late as its last). Commands and events cross
//! threads only per call (open, play, prompt, latch, prompt done).
//!
//! Receiving is driven by the clock, not by socket readiness. A socket registered with epoll
//! carries a wait-queue entry, and the kernel then runs the epoll wake-up callback on every
//! packet *sent* (`sock_wfree` → write-space wake-up), which profiles at about 8 % of the
//! engine's CPU for nothing, since nobody waits for write space on UDP. Instead each
//! stream's socket is drained (at most [`super::inbound::READS_PER_POLL`] datagrams, so a
//! flooding peer costs a bounded amount and the kernel drops the excess) every
//! [`POLL_PERIODS`] periods on its own slot: one `recvfrom` returning `EAGAIN` per 200 ms
//! when the peer is silent, and about 10 packets per drain when the caller streams 50
//! packets/s, instead of one readiness event plus a read per packet. The price is up to
//! 200 ms before a latch or an RFC 4733 event is seen, which neither the caller nor the
//! queue can notice. Bridged legs are the exception: relayed audio must not wait for a
//! drain, so while a stream is bridged its socket is registered with the poller and every
//! readiness report forwards what arrived at once (see [`StreamMode::Relay`] and the
//! `bridge` submodule).
//!
//! Each socket is `connect()`ed to where it sends once that drops nothing the stream needs
//! (the `connection` submodule): a send on a connected socket skips the kernel's route
//! lookup, which is the largest single difference between a `sendto` and the cheapest
//! sender (BENCHMARKS.md, "The hold path").
//!
//! A shard that falls more than [`MAX_BEHIND`] behind (the machine stalled, the VM was
//! paused) does not burst to catch up: it skips the missed slots, advancing each playing
//! stream's timestamp (see [`Player::skip`]), and counts them.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::Sender;

use super::engine::{MediaEvent, StreamId};
use super::inbound::Peer;
use super::ledger::{Ledger, Resume};
use super::player::{PACKET_LEN, Player, Prompt};
use super::poller::{Poller, Token, Waker};
use super::recording::Recorder;
use super::rewrite::Rewriter;
use super::secure;
use super::stats::ShardStats;
use crate::srtp::MasterKey;

mod bridge;
mod clock;
mod connection;
mod monitor;
mod record;
mod streams;

/// The packetization period: one 20 ms G.711 frame per packet.
pub const PERIOD: Duration = Duration::from_millis(20);
/// Send slots per period (2 ms each).
pub const SLOTS: usize = 10;
const SLOT_NANOS: u64 = PERIOD.as_nanos() as u64 / SLOTS as u64;
/// How far behind schedule a shard may be before it skips instead of catching up.
pub const MAX_BEHIND: Duration = Duration::from_millis(100);
/// Streams a slot takes before the next slot is used (about 0.7 ms of sends at 3.5 µs
/// each: the lateness of the slot's last packet).
pub const SLOT_FILL: usize = 200;
/// A stream's socket is drained once every this many periods (200 ms).
pub const POLL_PERIODS: u64 = 10;
/// Readiness events taken per wait: the waker plus bridged sockets (more stay pending,
/// level-triggered, for the next wait).
const EVENTS_PER_WAIT: usize = 256;
const WAKER_TOKEN: Token = u64::MAX;

/// A controller command, sent over the shard's channel and followed by a wake-up.
#[derive(Debug)]
pub(crate) enum Command {
    Open {
        id: StreamId,
        socket: UdpSocket,
        /// The RTP stream this port carried before a restart, to continue.
        resume: Option<Resume>,
    },
    Play {
        id: StreamId,
        remote: SocketAddr,
        payload_type: u8,
        music: Bytes,
    },
    Prompt {
        id: StreamId,
        frames: Prompt,
        /// Drop whatever prompt plays or waits and start this one now.
        interrupt: bool,
    },
    TelephoneEvent {
        id: StreamId,
        payload_type: Option<u8>,
    },
    Connect {
        id: StreamId,
        remote: SocketAddr,
        payload_type: u8,
    },
    Bridge {
        a: StreamId,
        b: StreamId,
    },
    Record {
        caller: StreamId,
        agent: StreamId,
        path: std::path::PathBuf,
    },
    Monitor {
        supervisor: StreamId,
        caller: StreamId,
        agent: StreamId,
        mode: super::mix::MonitorMode,
    },
    Unbridge {
        id: StreamId,
    },
    Stop {
        id: StreamId,
    },
    Close {
        id: StreamId,
    },
    /// SRTP from now on: decrypt what arrives with `receive`, encrypt what leaves with `send`.
    Secure {
        id: StreamId,
        receive: MasterKey,
        send: MasterKey,
    },
    Shutdown,
    /// Stop, giving every stream's socket back (a graceful upgrade hands them to the next
    /// process, docs/behaviour.md §13).
    Surrender(std::sync::mpsc::Sender<Vec<UdpSocket>>),
}

/// What a stream does on its clock slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    /// Socket open and drained (latching, counting), nothing sent.
    Idle,
    /// Sending the player's next frame every 20 ms.
    Play,
    /// Bridged to the stream at table index `partner`: every packet read on this leg goes
    /// out of the partner's socket, rewritten onto the partner's own RTP stream (its
    /// [`Rewriter`]), and vice versa. Both legs live on this shard
    /// (`MediaEngine::open_beside`), so relaying is a read and a send inside this loop with
    /// no cross-thread hop; their sockets are registered with the poller (token = table
    /// index) so forwarding happens on readiness, not on the 200 ms drain. Nothing is sent
    /// on the clock.
    Relay {
        /// Table index of the other leg.
        partner: usize,
    },
    /// A supervisor's leg listening to a bridged call of this shard (`monitor`): sent the
    /// mix of both sides on its clock slot, read on readiness (its socket is registered
    /// with the poller like a relay leg's).
    Monitor,
}

#[derive(Debug)]
struct Stream {
    id: StreamId,
    socket: UdpSocket,
    /// Where packets go and what inbound packets mean.
    peer: Peer,
    mode: StreamMode,
    /// Sender state, kept across stop/play so the RTP stream stays one stream.
    player: Option<Player>,
    /// Outbound counters while relaying; kept afterwards so a leg that never played keeps
    /// its SSRC and sequence if bridged (or played) again.
    rewriter: Option<Rewriter>,
    /// When the stream stopped sending, to advance its timestamp on resume.
    stopped_at: Option<Instant>,
    /// (slot, index in that slot's list).
    wheel_pos: (usize, usize),
    /// SRTP: what leaves is encrypted last thing before `sendto`.
    srtp: Option<Box<secure::Outbound>>,
    /// Its record in the ledger (what it last sent, for a restart).
    record: Option<usize>,
    /// The recording it is a side of.
    tap: Option<record::TapOn>,
    /// The supervisor stream (table index) monitoring the call this leg is in.
    watched: Option<usize>,
    /// Where the socket is `connect()`ed (see `connection`).
    connected: Option<SocketAddr>,
    /// Poll turns taken since it opened, its SDP address changed or its music started.
    turns: u64,
}

/// The wall clock in Unix milliseconds.
pub(crate) fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Sends `packet` (RTP) from `socket` to `remote`, encrypted first when the leg is SRTP:
/// `send` when the socket is `connected` there, else `sendto`.
fn send_rtp(
    socket: &UdpSocket,
    connected: Option<SocketAddr>,
    srtp: Option<&mut secure::Outbound>,
    packet: &[u8],
    remote: SocketAddr,
) -> bool {
    let bytes = match srtp {
        None => packet,
        Some(srtp) => match srtp.protect(packet) {
            Ok(bytes) => bytes,
            Err(_) => return false,
        },
    };
    if connected == Some(remote) {
        socket.send(bytes).is_ok()
    } else {
        socket.send_to(bytes, remote).is_ok()
    }
}

impl Stream {
    /// Sends `packet` (RTP) to `remote` from this stream's socket, encrypted when SRTP.
    fn send(&mut self, packet: &[u8], remote: SocketAddr) -> bool {
        send_rtp(
            &self.socket,
            self.connected,
            self.srtp.as_deref_mut(),
            packet,
            remote,
        )
    }
}

/// Counts one send in `sent` or `errors`.
fn tally(ok: bool, sent: &mut u64, errors: &mut u64) {
    if ok {
        *sent += 1;
    } else {
        *errors += 1;
    }
}

pub(crate) struct Shard {
    index: usize,
    commands: Receiver<Command>,
    waker: Arc<Waker>,
    poller: Poller,
    events: Sender<MediaEvent>,
    stats: Arc<ShardStats>,
    /// Stream table; indices are stable while a stream is open.
    streams: Vec<Option<Stream>>,
    free: Vec<usize>,
    by_id: HashMap<StreamId, usize>,
    /// `wheel[slot]` lists the open streams (table indices) serviced at that slot.
    wheel: Vec<Vec<usize>>,
    playing: usize,
    /// Bridged pairs.
    bridges: usize,
    epoch: Instant,
    /// Next slot tick to service; tick `t` is due at `epoch + t × 2 ms`, slot `t % SLOTS`.
    tick: u64,
    packet: [u8; PACKET_LEN],
    recv_buf: Box<[u8; 2048]>,
    /// Where each stream's last packet is kept across a restart (`None` in tests and
    /// tools that run no server).
    ledger: Option<Arc<Ledger>>,
    /// `epoch` in Unix milliseconds, for the ledger's timestamps without a clock read.
    epoch_ms: i64,
    /// Streams a slot takes before the next one is used ([`SLOT_FILL`]; less in tests).
    slot_fill: usize,
    /// The writer thread of recordings (`None` in tests and tools that record nothing).
    recorder: Option<Recorder>,
    /// Recordings of this shard's calls, by key (`record::TapOn`).
    taps: HashMap<u64, record::Recording>,
    /// Supervisors listening, by their stream's table index.
    monitors: HashMap<usize, monitor::Monitor>,
}

impl Shard {
    pub(crate) fn new(
        index: usize,
        commands: Receiver<Command>,
        waker: Arc<Waker>,
        events: Sender<MediaEvent>,
        stats: Arc<ShardStats>,
        ledger: Option<Arc<Ledger>>,
        recorder: Option<Recorder>,
    ) -> io::Result<Shard> {
        let poller = Poller::new(EVENTS_PER_WAIT)?;
        poller.add(&*waker, WAKER_TOKEN)?;
        Ok(Shard {
            index,
            commands,
            waker,
            poller,
            events,
            stats,
            streams: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            wheel: vec![Vec::new(); SLOTS],
            playing: 0,
            bridges: 0,
            epoch: Instant::now(),
            tick: 0,
            packet: [0; PACKET_LEN],
            recv_buf: Box::new([0; 2048]),
            ledger,
            epoch_ms: unix_ms_now(),
            slot_fill: SLOT_FILL,
            recorder,
            taps: HashMap::new(),
            monitors: HashMap::new(),
        })
    }

    /// Runs until a `Shutdown` command or until every controller handle is gone.
    pub(crate) fn run(mut self) {
        tracing::debug!(shard = self.index, "media shard started");
        loop {
            self.run_clock();
            let timeout = self
                .next_due()
                .map(|due| due.saturating_duration_since(Instant::now()));
            let ready = match self.poller.wait(timeout) {
                Ok(n) => n,
                Err(e) => {
                    // Not expected (EBADF/EINVAL would be a bug); don't spin at full speed.
                    tracing::error!(shard = self.index, error = %e, "epoll wait failed");
                    std::thread::sleep(Duration::from_millis(1));
                    0
                }
            };
            // Relayed packets first: they are already on their way to a listener.
            let now = Instant::now();
            let mut woken = false;
            for i in 0..ready {
                match self.poller.token(i) {
                    Some(WAKER_TOKEN) => woken = true,
                    Some(token) => self.ready(token, now),
                    None => {}
                }
            }
            self.run_clock();
            if woken && !self.apply_commands() {
                break;
            }
        }
        self.end_recordings();
        tracing::debug!(shard = self.index, "media shard stopped");
    }

    /// The socket registered under `token` is readable: a relay leg's or a supervisor's.
    fn ready(&mut self, token: Token, now: Instant) {
        let supervisor = usize::try_from(token).ok().filter(|&i| {
            self.streams
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.mode == StreamMode::Monitor)
        });
        match supervisor {
            Some(idx) => self.monitor_ready(idx),
            None => self.relay_ready(token, now),
        }
    }

    /// Applies every queued command. Returns false when the shard must exit.
    fn apply_commands(&mut self) -> bool {
        // Drain the eventfd before the queue: a command sent after this point re-arms it.
        self.waker.drain();
        loop {
            match self.commands.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Ok(Command::Surrender(to)) => {
                    let sockets = self.streams.drain(..).flatten().map(|s| s.socket).collect();
                    let _ = to.send(sockets);
                    return false;
                }
                Ok(cmd) => self.apply(cmd),
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Open { id, socket, resume } => self.open(id, socket, resume),
            Command::Play {
                id,
                remote,
                payload_type,
                music,
            } => self.play(id, remote, payload_type, music),
            Command::Prompt {
                id,
                frames,
                interrupt,
            } => {
                let player = self.stream_mut(id).and_then(|s| s.player.as_mut());
                match player.map(|p| {
                    if interrupt {
                        p.interrupt_with(frames)
                    } else {
                        p.enqueue_prompt(frames)
                    }
                }) {
                    Some(Ok(())) => {}
                    Some(Err(e)) => tracing::warn!(%id, error = %e, "prompt rejected"),
                    None => tracing::warn!(%id, "prompt for a stream that never played"),
                }
            }
            Command::TelephoneEvent { id, payload_type } => {
                if let Some(s) = self.stream_mut(id) {
                    s.peer.codecs.telephone_event = payload_type;
                }
            }
            Command::Connect {
                id,
                remote,
                payload_type,
            } => match self.stream_mut(id) {
                Some(s) => {
                    s.set_sdp_remote(remote);
                    s.peer.codecs.audio = Some(payload_type);
                }
                None => tracing::warn!(%id, "connect on an unknown stream"),
            },
            Command::Secure { id, receive, send } => match self.stream_mut(id) {
                Some(s) => {
                    s.peer.srtp = Some(Box::new(secure::Inbound::new(&receive)));
                    s.srtp = Some(Box::new(secure::Outbound::new(&send)));
                }
                None => tracing::warn!(%id, "SRTP keys for an unknown stream"),
            },
            Command::Bridge { a, b } => self.bridge(a, b),
            Command::Record {
                caller,
                agent,
                path,
            } => self.record(caller, agent, path),
            Command::Monitor {
                supervisor,
                caller,
                agent,
                mode,
            } => self.monitor(supervisor, caller, agent, mode),
            Command::Unbridge { id } => {
                if let Some(&idx) = self.by_id.get(&id) {
                    self.unbridge(idx, Instant::now());
                }
            }
            Command::Stop { id } => self.stop(id),
            Command::Close { id } => self.close(id),
            Command::Shutdown | Command::Surrender(_) => {}
        }
    }

    fn stream_mut(&mut self, id: StreamId) -> Option<&mut Stream> {
        let idx = *self.by_id.get(&id)?;
        self.streams.get_mut(idx)?.as_mut()
    }
}

#[cfg(test)]
mod tests;
