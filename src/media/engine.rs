//! The media engine: RTP sockets and the 20 ms clock for every stream (RFC 3550 senders).
//!
//! The engine owns all media state. The controller (b2bua) holds a cheap [`MediaEngine`]
//! handle and talks to it with values: it opens a stream (an even RTP port, RFC 3550 §11),
//! tells it to play shared music to an address, inserts prompts, stops and closes it; it
//! hears back [`MediaEvent`]s. Nothing crosses threads per packet.
//!
//! Inside, a small fixed set of shard threads (default 2, one per core) each own their
//! streams and sockets and drive them from one clock (see the `shard` module). Streams are
//! assigned to shards round-robin; [`MediaEngine::open_beside`] puts a stream on the same
//! shard as another one, which is where the two legs of a bridge live.
//!
//! Bridging (docs/behaviour.md §5, bridge mode `relay`): the controller opens the agent leg beside the
//! caller's stream, gives it the agent's SDP address once the 200 OK arrives
//! ([`MediaEngine::connect`]: a destination and payload type, no music), then
//! [`MediaEngine::bridge`]s the two. From then on the caller's music stops and every RTP
//! packet received on either leg is forwarded at once out of the other leg, rewritten so
//! each far end keeps seeing one continuous RTP stream (RFC 3550 §5.1; the first relayed
//! packet carries the marker bit, RFC 3551 §4.1), with telephone-event payload types mapped
//! and PCMU/PCMA transcoded between legs that negotiated different ones.
//!
//! ```text
//!  let (caller, port) = engine.open()?;        // INVITE from the caller
//!  engine.play(caller, caller_sdp, 0, music)?; // hold music
//!  let (agent, port) = engine.open_beside(caller)?;  // offer `port` to the agent
//!  engine.connect(agent, agent_sdp, 0)?;       // the agent's 200 OK
//!  engine.bridge(caller, agent)?;              // talk
//!  engine.close(agent);                        // BYE: the caller leg goes idle
//! ```
//!
//! Symmetric RTP (RFC 4961, and the NAT advice of RFC 7362): the first valid RTP packet that
//! arrives on a stream's socket fixes the address its packets go to, and is reported once as
//! [`MediaEvent::Latched`]; until then packets go to the address from SDP.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc::{Receiver, Sender};

use super::ledger::{Ledger, Resume};
use super::player::FramesError;
use super::poller::Waker;
use super::shard::{Command, Shard};
use super::stats::ShardStats;
pub use super::stats::{EngineStats, Lateness};

/// Where and how the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// Lowest RTP port (inclusive); only even ports are used (RFC 3550 §11).
    pub port_min: u16,
    /// Highest RTP port (inclusive).
    pub port_max: u16,
    /// Number of shard threads (one per core is right; 2 by default).
    pub shards: usize,
    /// Pin each shard thread to one core ([`super::affinity::core_for`]).
    pub pin: bool,
    /// The file where each port's last RTP packet is kept for the next process
    /// ([`super::ledger`]); `None`: nothing is kept.
    pub ledger: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_min: 20000,
            port_max: 29999,
            shards: 2,
            pin: false,
            ledger: None,
        }
    }
}

/// Identifies one RTP stream (one socket) for its whole life. The shard index is encoded in
/// the top 16 bits so commands are routed without a lookup table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(u64);

impl StreamId {
    /// The id of stream number `serial` on `shard`.
    pub fn new(shard: usize, serial: u64) -> StreamId {
        StreamId(((shard as u64) << 48) | (serial & ((1 << 48) - 1)))
    }

    /// The id as one number (a recording's key).
    pub(crate) fn raw(self) -> u64 {
        self.0
    }

    /// The shard (media thread) the stream lives on.
    pub fn shard(self) -> usize {
        (self.0 >> 48) as usize
    }

    /// An id on shard 0, for tests that drive a shard by hand.
    #[cfg(test)]
    pub(crate) fn for_tests(serial: u64) -> StreamId {
        StreamId::new(0, serial)
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rtp-{}-{}", self.shard(), self.0 & ((1 << 48) - 1))
    }
}

/// What the engine reports to the controller.
///
/// DTMF: RFC 4733 packets with the payload type set by [`MediaEngine::set_telephone_event`]
/// are decoded per stream on the shard's read path and reported once per key press as
/// [`MediaEvent::Dtmf`] (held streams are read every 200 ms, so a digit arrives at most
/// that late).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The first valid RTP arrived on the stream from `from`; packets now go there.
    Latched {
        /// The stream.
        id: StreamId,
        /// Source address of that packet.
        from: SocketAddr,
    },
    /// A prompt queued with [`MediaEngine::prompt`] finished playing (one event per prompt,
    /// in queue order).
    PromptDone {
        /// The stream.
        id: StreamId,
    },
    /// The stream's port could not be bound (reported by the driver that carried out the
    /// controller's open, not by a shard).
    OpenFailed {
        /// The stream that does not exist.
        id: StreamId,
    },
    /// A port the controller asked to have reserved was bound (`bound`), or is held by
    /// another process (reported by the driver).
    Reserved {
        /// The port.
        port: u16,
        /// Whether it is bound and kept for a stream.
        bound: bool,
    },
    /// A key press received as RFC 4733 telephone-event, reported once when it ends.
    Dtmf {
        /// The stream.
        id: StreamId,
        /// The key: `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
    },
}

/// The receiving end of the engine's events (use `recv().await` from tokio,
/// `blocking_recv()` from a plain thread).
pub type MediaEvents = Receiver<MediaEvent>;

/// Why a play or prompt command was refused.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The audio is not a non-empty whole number of 160-byte frames.
    #[error("bad audio: {0}")]
    Frames(#[from] FramesError),
    /// The engine was shut down (or the id belongs to another engine).
    #[error("media engine is shut down")]
    ShutDown,
    /// The two legs of a bridge are on different shards: open the second one with
    /// [`MediaEngine::open_beside`].
    #[error("{a} and {b} are not on the same shard")]
    NotBeside {
        /// First leg.
        a: StreamId,
        /// Second leg.
        b: StreamId,
    },
    /// A stream cannot be bridged with itself.
    #[error("{0} cannot be bridged with itself")]
    SameStream(StreamId),
}

/// Commands queued per shard before the sender waits. The controller is the only sender
/// and a shard drains its queue on every wake-up (each send wakes it), so a full queue
/// means the shard is stalled: the controller then waits for it (backpressure) rather than
/// drop a `Close` or a `Bridge`.
const COMMAND_CAPACITY: usize = 65_536;

/// Events queued for the controller. A full queue means the controller is stalled; the
/// event is then dropped and counted (`events_dropped`): a lost `Latched` changes nothing,
/// a lost `Dtmf` is a key press to repeat, a lost `PromptDone` leaves a confirmed callback's
/// caller to hang up themselves.
const EVENT_CAPACITY: usize = 16_384;

/// Sends `event` to the controller without waiting (see [`EVENT_CAPACITY`]).
pub(crate) fn emit(events: &Sender<MediaEvent>, stats: &ShardStats, event: MediaEvent) {
    if let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = events.try_send(event) {
        stats.events_dropped.add(1);
    }
}

struct ShardHandle {
    commands: SyncSender<Command>,
    waker: Arc<Waker>,
    stats: Arc<ShardStats>,
}

struct Inner {
    config: EngineConfig,
    shards: Vec<ShardHandle>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_shard: AtomicUsize,
    next_serial: AtomicU64,
    /// Next candidate port (as an offset into the even ports of the range).
    next_port: AtomicU32,
    shut: AtomicBool,
    /// What the process before sent on each port, taken by [`MediaEngine::reopen`].
    previous: Mutex<HashMap<u16, Resume>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last handle gone without shutdown(): tell the shards to exit (don't join here).
        if !self.shut.swap(true, Ordering::AcqRel) {
            for shard in &self.shards {
                let _ = shard.commands.send(Command::Shutdown);
                shard.waker.wake();
            }
        }
    }
}

/// A cheap, cloneable handle to the media engine. Shard threads run until
/// [`MediaEngine::shutdown`] (or until the last handle is dropped).
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl MediaEngine {
    /// Starts the shard threads. Fails on an empty or inverted port range, zero shards, or if
    /// a thread or epoll instance cannot be created.
    pub fn start(config: EngineConfig) -> io::Result<(MediaEngine, MediaEvents)> {
        if config.shards == 0 || config.shards > usize::from(u16::MAX) {
            return Err(invalid("media shards must be between 1 and 65535"));
        }
        if even_ports(&config) == 0 {
            return Err(invalid("RTP port range holds no even port"));
        }
        let (ledger, previous) = match &config.ledger {
            Some(path) => {
                let (ledger, previous) = Ledger::replace(path, config.port_min, config.port_max)?;
                (Some(Arc::new(ledger)), previous)
            }
            None => (None, HashMap::new()),
        };
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(EVENT_CAPACITY);
        let mut shards = Vec::with_capacity(config.shards);
        let mut threads = Vec::with_capacity(config.shards);
        // The writer of recordings ends when the last shard (its senders) has stopped.
        let (recorder, recordings) = super::recording::Recorder::new();
        let writer = std::thread::Builder::new()
            .name("recordings".into())
            .spawn(move || super::recording::run_writer(recordings))?;
        let cpus = if config.pin {
            super::affinity::allowed_cpus().unwrap_or_else(|error| {
                tracing::warn!(%error, "media shards not pinned: cannot read the CPU mask");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        for index in 0..config.shards {
            let core = super::affinity::core_for(index, config.shards, &cpus);
            let (tx, rx) = mpsc::sync_channel(COMMAND_CAPACITY);
            let waker = Arc::new(Waker::new()?);
            let stats = Arc::new(ShardStats::default());
            let shard = Shard::new(
                index,
                rx,
                waker.clone(),
                events_tx.clone(),
                stats.clone(),
                ledger.clone(),
                Some(recorder.clone()),
            )?;
            let thread = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || {
                    if let Some(core) = core {
                        match super::affinity::pin_current_thread(core) {
                            Ok(()) => tracing::info!(shard = index, core, "media shard pinned"),
                            Err(error) => {
                                tracing::warn!(shard = index, core, %error, "media shard not pinned");
                            }
                        }
                    }
                    shard.run();
                })?;
            threads.push(thread);
            shards.push(ShardHandle {
                commands: tx,
                waker,
                stats,
            });
        }
        drop(recorder);
        threads.push(writer);
        let engine = MediaEngine {
            inner: Arc::new(Inner {
                config,
                shards,
                threads: Mutex::new(threads),
                next_shard: AtomicUsize::new(0),
                next_serial: AtomicU64::new(1),
                next_port: AtomicU32::new(0),
                shut: AtomicBool::new(false),
                previous: Mutex::new(previous),
            }),
        };
        Ok((engine, events_rx))
    }

    /// Binds a fresh even RTP port in the range (skipping busy ones), registers it with the
    /// next shard round-robin, and returns the stream id and port.
    pub fn open(&self) -> io::Result<(StreamId, u16)> {
        let shard = self.inner.next_shard.fetch_add(1, Ordering::Relaxed) % self.inner.shards.len();
        self.open_on(shard)
    }

    /// Like [`MediaEngine::open`], on the same shard as `other`: the other leg of a bridge,
    /// so relaying between them never crosses threads.
    pub fn open_beside(&self, other: StreamId) -> io::Result<(StreamId, u16)> {
        if other.shard() >= self.inner.shards.len() {
            return Err(invalid("stream id from another engine"));
        }
        self.open_on(other.shard())
    }

    fn open_on(&self, shard: usize) -> io::Result<(StreamId, u16)> {
        let socket = self.bind_even_port()?;
        let port = socket.local_addr()?.port();
        let id = StreamId::new(
            shard,
            self.inner.next_serial.fetch_add(1, Ordering::Relaxed),
        );
        self.send(
            id,
            Command::Open {
                id,
                socket,
                resume: None,
            },
        )
        .map_err(|_| io::Error::other("media engine is shut down"))?;
        Ok((id, port))
    }

    /// Binds `port` (non-blocking) for a stream to come: a caller that allocates ports
    /// itself (the call controller, `b2bua::media`) reserves them ahead of need.
    pub fn bind_port(&self, port: u16) -> io::Result<UdpSocket> {
        let socket = UdpSocket::bind(SocketAddr::new(self.inner.config.bind_ip, port))?;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    /// Registers `socket` as stream `id` on the shard `id` names: for a caller that
    /// allocates ids itself.
    pub fn open_with(&self, id: StreamId, socket: UdpSocket) -> io::Result<()> {
        self.open_resuming(id, socket, None)
    }

    /// Registers `socket` as stream `id`, continuing `resume` when there is one.
    fn open_resuming(
        &self,
        id: StreamId,
        socket: UdpSocket,
        resume: Option<Resume>,
    ) -> io::Result<()> {
        if id.shard() >= self.inner.shards.len() {
            return Err(invalid("stream id names no shard of this engine"));
        }
        self.send(id, Command::Open { id, socket, resume })
            .map_err(|_| io::Error::other("media engine is shut down"))
    }

    /// Like [`MediaEngine::open_with`] for a stream restored after a restart: it continues
    /// the RTP stream the previous process sent from this port, as its ledger last saw it
    /// (each port's record is used once). Returns whether there was one to continue.
    pub fn reopen(&self, id: StreamId, socket: UdpSocket) -> io::Result<bool> {
        let port = socket.local_addr()?.port();
        let resume = self
            .inner
            .previous
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&port);
        self.open_resuming(id, socket, resume)?;
        Ok(resume.is_some())
    }

    fn bind_even_port(&self) -> io::Result<UdpSocket> {
        let config = &self.inner.config;
        let count = even_ports(config);
        let first_even = (u32::from(config.port_min) + u32::from(config.port_min) % 2).max(2);
        for _ in 0..count {
            let offset = self.inner.next_port.fetch_add(1, Ordering::Relaxed) % count;
            let port = u16::try_from(first_even + 2 * offset)
                .map_err(|_| invalid("RTP port out of range"))?;
            match UdpSocket::bind(SocketAddr::new(config.bind_ip, port)) {
                Ok(socket) => {
                    socket.set_nonblocking(true)?;
                    return Ok(socket);
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "every even RTP port in the range is busy",
        ))
    }

    /// A snapshot of the counters, summed over shards.
    pub fn stats(&self) -> EngineStats {
        EngineStats::sum(self.inner.shards.iter().map(|s| &*s.stats))
    }

    /// Stops the shards like [`MediaEngine::shutdown`] and returns every open stream's
    /// socket, still bound: a graceful upgrade hands them to the next process, which goes
    /// on without closing and binding them again (docs/behaviour.md §13).
    pub fn surrender(&self) -> Vec<UdpSocket> {
        let mut sockets = Vec::new();
        if !self.inner.shut.swap(true, Ordering::AcqRel) {
            let (tx, rx) = mpsc::channel();
            for shard in &self.inner.shards {
                let _ = shard.commands.send(Command::Surrender(tx.clone()));
                shard.waker.wake();
            }
            drop(tx);
            sockets.extend(rx.iter().flatten());
        }
        self.shutdown();
        sockets
    }

    /// Stops every shard (closing all sockets) and waits for the threads. Idempotent; later
    /// commands are refused or ignored.
    pub fn shutdown(&self) {
        if !self.inner.shut.swap(true, Ordering::AcqRel) {
            for shard in &self.inner.shards {
                let _ = shard.commands.send(Command::Shutdown);
                shard.waker.wake();
            }
        }
        let threads = std::mem::take(
            &mut *self
                .inner
                .threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("media shard thread panicked");
            }
        }
    }

    /// Routes a command to the stream's shard and wakes it.
    fn send(&self, id: StreamId, command: Command) -> Result<(), MediaError> {
        if self.inner.shut.load(Ordering::Acquire) {
            return Err(MediaError::ShutDown);
        }
        let shard = self
            .inner
            .shards
            .get(id.shard())
            .ok_or(MediaError::ShutDown)?;
        shard
            .commands
            .send(command)
            .map_err(|_| MediaError::ShutDown)?;
        shard.waker.wake();
        Ok(())
    }
}

fn even_ports(config: &EngineConfig) -> u32 {
    // Port 0 would mean "any port" to bind(): never a valid RTP port here.
    let lo = (u32::from(config.port_min) + u32::from(config.port_min) % 2).max(2);
    let hi = u32::from(config.port_max);
    if lo > hi { 0 } else { (hi - lo) / 2 + 1 }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

mod commands;

#[cfg(test)]
mod bridge_tests;

#[cfg(test)]
mod tests;
