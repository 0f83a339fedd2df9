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
//! shard as another one, which is where the two legs of a bridge will live once RTP relay
//! exists.
//!
//! Symmetric RTP (RFC 4961, and the NAT advice of RFC 7362): the first valid RTP packet that
//! arrives on a stream's socket fixes the address its packets go to, and is reported once as
//! [`MediaEvent::Latched`]; until then packets go to the address from SDP.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::player::{FramesError, frame_count};
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port_min: 20000,
            port_max: 29999,
            shards: 2,
        }
    }
}

/// Identifies one RTP stream (one socket) for its whole life. The shard index is encoded in
/// the top 16 bits so commands are routed without a lookup table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(u64);

impl StreamId {
    fn new(shard: usize, serial: u64) -> StreamId {
        StreamId(((shard as u64) << 48) | (serial & ((1 << 48) - 1)))
    }

    fn shard(self) -> usize {
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
/// DTMF seam: RFC 4733 packets with the payload type set by
/// [`MediaEngine::set_telephone_event`] are counted today
/// ([`EngineStats::telephone_events_received`]); the shard's read path is where they will be
/// decoded into a `Dtmf { id, digit, end }` event.
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
}

/// The receiving end of the engine's events (use `recv().await` from tokio,
/// `blocking_recv()` from a plain thread).
pub type MediaEvents = UnboundedReceiver<MediaEvent>;

/// Why a play or prompt command was refused.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The audio is not a non-empty whole number of 160-byte frames.
    #[error("bad audio: {0}")]
    Frames(#[from] FramesError),
    /// The engine was shut down (or the id belongs to another engine).
    #[error("media engine is shut down")]
    ShutDown,
}

struct ShardHandle {
    commands: Sender<Command>,
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
        let (events_tx, events_rx) = unbounded_channel();
        let mut shards = Vec::with_capacity(config.shards);
        let mut threads = Vec::with_capacity(config.shards);
        for index in 0..config.shards {
            let (tx, rx) = mpsc::channel();
            let waker = Arc::new(Waker::new()?);
            let stats = Arc::new(ShardStats::default());
            let shard = Shard::new(index, rx, waker.clone(), events_tx.clone(), stats.clone())?;
            let thread = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || shard.run())?;
            threads.push(thread);
            shards.push(ShardHandle {
                commands: tx,
                waker,
                stats,
            });
        }
        let engine = MediaEngine {
            inner: Arc::new(Inner {
                config,
                shards,
                threads: Mutex::new(threads),
                next_shard: AtomicUsize::new(0),
                next_serial: AtomicU64::new(1),
                next_port: AtomicU32::new(0),
                shut: AtomicBool::new(false),
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
        self.send(id, Command::Open { id, socket })
            .map_err(|_| io::Error::other("media engine is shut down"))?;
        Ok((id, port))
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

    /// Starts sending `music` (looped 160-byte G.711 frames, shared) to `remote` with payload
    /// type `payload_type`, or to the latched address if RTP already arrived. On a stream that
    /// played before, the RTP stream continues (same SSRC, sequence and timestamp run on) and
    /// the new music starts at its first frame.
    pub fn play(
        &self,
        id: StreamId,
        remote: SocketAddr,
        payload_type: u8,
        music: Bytes,
    ) -> Result<(), MediaError> {
        frame_count(&music)?;
        self.send(
            id,
            Command::Play {
                id,
                remote,
                payload_type,
                music,
            },
        )
    }

    /// Queues an announcement: the music pauses, `frames` play, the music resumes where it
    /// paused, and [`MediaEvent::PromptDone`] follows. Ignored (logged) if the stream never
    /// played.
    pub fn prompt(&self, id: StreamId, frames: Bytes) -> Result<(), MediaError> {
        frame_count(&frames)?;
        self.send(id, Command::Prompt { id, frames })
    }

    /// Sets the negotiated RFC 4733 telephone-event payload type (`None`: not negotiated),
    /// so those inbound packets are recognised.
    pub fn set_telephone_event(&self, id: StreamId, payload_type: Option<u8>) {
        let _ = self.send(id, Command::TelephoneEvent { id, payload_type });
    }

    /// Stops sending; the socket stays open (still receiving) until [`MediaEngine::close`].
    pub fn stop(&self, id: StreamId) {
        let _ = self.send(id, Command::Stop { id });
    }

    /// Stops the stream and frees its socket and port.
    pub fn close(&self, id: StreamId) {
        let _ = self.send(id, Command::Close { id });
    }

    /// A snapshot of the counters, summed over shards.
    pub fn stats(&self) -> EngineStats {
        EngineStats::sum(self.inner.shards.iter().map(|s| &*s.stats))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::player::FRAME_LEN;
    use crate::media::rtp::RtpHeader;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    fn engine(port_min: u16) -> (MediaEngine, MediaEvents) {
        MediaEngine::start(EngineConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min,
            port_max: port_min + 1999,
            shards: 2,
        })
        .unwrap()
    }

    /// `n` frames where every byte of frame `i` is `base + i`.
    fn frames(n: u8, base: u8) -> Bytes {
        Bytes::from(
            (0..n)
                .flat_map(|i| [base + i; FRAME_LEN])
                .collect::<Vec<_>>(),
        )
    }

    fn receiver() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        s
    }

    /// Receives RTP on `sock` for `dur`: (header, first payload byte, payload len).
    fn collect(sock: &UdpSocket, dur: Duration) -> Vec<(RtpHeader, u8, usize)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        let end = Instant::now() + dur;
        while Instant::now() < end {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let (h, payload) = RtpHeader::parse(&buf[..n]).unwrap();
                assert!(payload.iter().all(|&b| b == payload[0]), "one whole frame");
                out.push((h, payload[0], payload.len()));
            }
        }
        out
    }

    fn next_event(events: &mut MediaEvents, within: Duration) -> Option<MediaEvent> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(ev) = events.try_recv() {
                return Some(ev);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    fn rtp(pt: u8, seq: u16) -> [u8; 16] {
        let mut p = [0u8; 16];
        let h = RtpHeader::new(pt, seq, 0, 42, false);
        h.write_fixed((&mut p[..12]).try_into().unwrap());
        p
    }

    #[test]
    fn fifty_streams_send_continuous_music_at_50_per_second() {
        let (engine, _events) = engine(31000);
        let rx = receiver();
        let dest = rx.local_addr().unwrap();
        let music = frames(7, 1);
        let mut ports = Vec::new();
        for _ in 0..50 {
            let (id, port) = engine.open().unwrap();
            assert_eq!(port % 2, 0, "RTP on even ports");
            ports.push(port);
            engine.play(id, dest, 0, music.clone()).unwrap();
        }
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 50, "distinct ports");
        let start = Instant::now();
        let got = collect(&rx, Duration::from_millis(1000));
        let elapsed = start.elapsed().as_secs_f64();
        let mut by_ssrc: HashMap<u32, Vec<(RtpHeader, u8, usize)>> = HashMap::new();
        for p in got {
            by_ssrc.entry(p.0.ssrc).or_default().push(p);
        }
        assert_eq!(by_ssrc.len(), 50, "one SSRC per stream");
        for packets in by_ssrc.values() {
            let expected = elapsed * 50.0;
            let n = packets.len() as f64;
            assert!(
                n >= expected * 0.8 && n <= expected * 1.1 + 2.0,
                "{n} packets in {elapsed}s"
            );
            for (i, (h, byte, len)) in packets.iter().enumerate() {
                assert_eq!(*len, FRAME_LEN);
                assert_eq!(h.payload_type, 0);
                assert_eq!(h.marker, i == 0, "marker on the first packet only");
                assert_eq!(
                    *byte,
                    1 + (i % 7) as u8,
                    "music frames in order from frame 0"
                );
                if i > 0 {
                    let prev = packets[i - 1].0;
                    assert_eq!(h.sequence, prev.sequence.wrapping_add(1));
                    assert_eq!(h.timestamp, prev.timestamp.wrapping_add(160));
                }
            }
        }
        let stats = engine.stats();
        assert_eq!((stats.streams, stats.playing), (50, 50));
        assert!(stats.packets_sent >= by_ssrc.values().map(Vec::len).sum::<usize>() as u64);
        assert_eq!(stats.send_errors, 0);
        assert!(stats.lateness.samples > 0 && stats.lateness.p50_us < 20_000);
        engine.shutdown();
    }

    #[test]
    fn latches_to_rtp_source_and_counts_malformed() {
        let (engine, mut events) = engine(33000);
        let a = receiver();
        let b = receiver();
        let (id, port) = engine.open().unwrap();
        engine.set_telephone_event(id, Some(101));
        engine
            .play(id, a.local_addr().unwrap(), 8, frames(3, 10))
            .unwrap();
        let before = collect(&a, Duration::from_millis(100));
        assert!(!before.is_empty(), "sending to the SDP address first");
        let stream_addr = SocketAddr::from(([127, 0, 0, 1], port));

        // Garbage and a STUN-looking datagram: counted, no latch, no crash.
        b.send_to(b"hello", stream_addr).unwrap();
        b.send_to(&[0u8; 20], stream_addr).unwrap();
        // Sockets are drained every 100 ms on the stream's own slot.
        assert!(wait_until(|| engine.stats().malformed_received == 2));
        assert_eq!(events.try_recv().ok(), None);
        assert!(
            !collect(&a, Duration::from_millis(60)).is_empty(),
            "still to A"
        );

        b.send_to(&rtp(101, 1), stream_addr).unwrap();
        assert_eq!(
            next_event(&mut events, Duration::from_secs(2)),
            Some(MediaEvent::Latched {
                id,
                from: b.local_addr().unwrap()
            })
        );
        std::thread::sleep(Duration::from_millis(50));
        let _ = collect(&a, Duration::from_millis(30)); // packets in flight before the latch
        let at_b = collect(&b, Duration::from_millis(200));
        assert!(at_b.len() >= 5, "now sending to B: {}", at_b.len());
        assert!(
            collect(&a, Duration::from_millis(100)).is_empty(),
            "A no longer"
        );
        for w in at_b.windows(2) {
            assert_eq!(w[1].0.sequence, w[0].0.sequence.wrapping_add(1));
        }
        assert_eq!(
            at_b[0].0.ssrc, before[0].0.ssrc,
            "same stream after latching"
        );

        // A later source does not re-latch; only one event.
        a.send_to(&rtp(0, 2), stream_addr).unwrap();
        assert!(wait_until(|| engine.stats().packets_received == 2));
        assert_eq!(next_event(&mut events, Duration::from_millis(150)), None);
        let stats = engine.stats();
        assert_eq!(stats.packets_received, 2);
        assert_eq!(stats.telephone_events_received, 1);
        assert_eq!(stats.malformed_received, 2);
        engine.shutdown();
    }

    #[test]
    fn prompt_interrupts_music_and_reports_done() {
        let (engine, mut events) = engine(35000);
        let rx = receiver();
        let (id, _) = engine.open().unwrap();
        engine
            .play(id, rx.local_addr().unwrap(), 0, frames(50, 1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        engine.prompt(id, frames(3, 200)).unwrap();
        assert_eq!(
            next_event(&mut events, Duration::from_secs(2)),
            Some(MediaEvent::PromptDone { id })
        );
        let got = collect(&rx, Duration::from_millis(100));
        let bytes: Vec<u8> = got.iter().map(|p| p.1).collect();
        let at = bytes.iter().position(|&b| b == 200).expect("prompt played");
        assert_eq!(&bytes[at..at + 3], &[200, 201, 202]);
        assert_eq!(
            bytes[at + 3],
            bytes[at - 1] + 1,
            "music resumes at the paused frame"
        );
        for w in got.windows(2) {
            assert_eq!(w[1].0.sequence, w[0].0.sequence.wrapping_add(1));
            assert_eq!(w[1].0.timestamp, w[0].0.timestamp.wrapping_add(160));
        }
        assert!(engine.prompt(id, Bytes::from_static(&[0; 100])).is_err());
        engine.shutdown();
    }

    #[test]
    fn stop_then_close_frees_the_port() {
        let (engine, _events) = engine(37000);
        let rx = receiver();
        let (id, port) = engine.open().unwrap();
        engine
            .play(id, rx.local_addr().unwrap(), 0, frames(2, 1))
            .unwrap();
        let first = collect(&rx, Duration::from_millis(100));
        assert!(!first.is_empty());
        engine.stop(id);
        std::thread::sleep(Duration::from_millis(50));
        let _ = collect(&rx, Duration::from_millis(30));
        assert!(
            collect(&rx, Duration::from_millis(150)).is_empty(),
            "stopped"
        );
        let stats = engine.stats();
        assert_eq!((stats.streams, stats.playing), (1, 0));
        // Busy port is skipped by the next open.
        let (other, other_port) = engine.open().unwrap();
        assert_ne!(other_port, port);

        // Playing again continues the same RTP stream.
        engine
            .play(id, rx.local_addr().unwrap(), 0, frames(2, 1))
            .unwrap();
        let again = collect(&rx, Duration::from_millis(100));
        let last = first.last().unwrap().0;
        assert_eq!(again[0].0.ssrc, last.ssrc);
        assert!(!again[0].0.marker);
        let gap = again[0].0.sequence.wrapping_sub(last.sequence);
        assert!((1..=10).contains(&gap), "sequence continues, gap {gap}");
        assert!(
            again[0].0.timestamp.wrapping_sub(last.timestamp) >= 160 * 5,
            "time advanced"
        );

        engine.close(id);
        engine.close(other);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(engine.stats().streams, 0);
        UdpSocket::bind(("127.0.0.1", port)).expect("port freed by close");
        engine.shutdown();
        assert!(matches!(
            engine.play(id, rx.local_addr().unwrap(), 0, frames(1, 1)),
            Err(MediaError::ShutDown)
        ));
    }

    #[test]
    fn rejects_bad_config() {
        let bad = |port_min, port_max, shards| {
            MediaEngine::start(EngineConfig {
                bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port_min,
                port_max,
                shards,
            })
            .is_err()
        };
        assert!(bad(30000, 30010, 0));
        assert!(bad(30001, 30001, 1));
        assert!(bad(30010, 30000, 1));
        assert!(bad(0, 1, 1));
    }
}
