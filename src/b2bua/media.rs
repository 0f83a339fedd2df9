//! The controller's side of the media seam: it never touches a socket. What it wants of
//! the media plane is a [`MediaCommand`] in an outbox the driver drains with
//! [`super::B2bua::poll_media`] and carries out on the media engine; what comes back (a
//! key press, a prompt's end, a port that could not be bound) is a
//! [`crate::media::engine::MediaEvent`] fed to [`super::B2bua::handle_media_event`].
//!
//! Stream ids and RTP ports are allocated here, purely: streams go to the engine's shards
//! round-robin (a bridge's second leg to its partner's shard, so relaying never crosses
//! threads); ports come from `[sip] rtp_ports`, even ones only (RFC 3550 §11). A port is
//! only handed to a call once the driver has bound it: the plane keeps [`RESERVE`] ports
//! reserved ahead ([`MediaCommand::Reserve`], answered by `MediaEvent::Reserved`), skips
//! ports another process holds, and asks for a closed stream's port again only after every
//! other candidate, so a port is not re-bound while its old socket may still be closing.
//! An SDP answer therefore never names a port that cannot be bound.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;

use crate::config::PortRange;
use crate::media::engine::StreamId;
use crate::media::player::Prompt;

/// One thing for the media engine to do, in order.
#[derive(Debug, Clone)]
pub enum MediaCommand {
    /// Bind `port` and keep the socket for a stream to come; answer with
    /// `MediaEvent::Reserved`.
    Reserve {
        /// An even port of the range.
        port: u16,
    },
    /// Create the stream `id` on its shard with the socket reserved for `port` (or bound
    /// now, when none is).
    Open {
        /// The new stream.
        id: StreamId,
        /// Its even RTP port.
        port: u16,
        /// A call restored after a restart: continue the RTP stream the port carried
        /// (the media ledger, docs/behaviour.md §13).
        resume: bool,
    },
    /// Send the looped `music` frames to `remote` with payload type `pt` (ends a bridge).
    Play {
        /// The stream.
        id: StreamId,
        /// Where to send (unless RTP latched elsewhere).
        remote: SocketAddr,
        /// RTP payload type.
        pt: u8,
        /// Shared G.711 frames.
        music: Bytes,
    },
    /// Set where a leg sends and its payload type, without music.
    Connect {
        /// The stream.
        id: StreamId,
        /// Where to send.
        remote: SocketAddr,
        /// RTP payload type.
        pt: u8,
    },
    /// Make a stream SRTP: decrypt with `receive` (the peer's key), encrypt with `send` (ours).
    Secure {
        /// The stream.
        id: StreamId,
        /// The peer's SDES key.
        receive: crate::srtp::MasterKey,
        /// Ours.
        send: crate::srtp::MasterKey,
    },
    /// Relay RTP both ways between two legs on one shard.
    Bridge {
        /// One leg.
        a: StreamId,
        /// The other.
        b: StreamId,
    },
    /// A supervisor's leg monitors the bridged call of `caller` and `agent` (all three on
    /// one shard), until any of them closes.
    Monitor {
        /// The supervisor's leg.
        supervisor: StreamId,
        /// The caller's leg.
        caller: StreamId,
        /// The agent's leg.
        agent: StreamId,
        /// Listen, whisper or barge.
        mode: crate::media::mix::MonitorMode,
    },
    /// Record a call (caller left, agent right) into `path`, until either leg closes.
    Record {
        /// The caller's leg.
        caller: StreamId,
        /// The agent's leg.
        agent: StreamId,
        /// The WAV file.
        path: std::path::PathBuf,
    },
    /// Play an announcement: queued behind others, or at once cutting them short.
    Prompt {
        /// The stream.
        id: StreamId,
        /// The frames.
        frames: Prompt,
        /// Cut the playing prompt short and drop the queued ones.
        at_once: bool,
    },
    /// The negotiated RFC 4733 payload type of the far end.
    TelephoneEvent {
        /// The stream.
        id: StreamId,
        /// `None`: not negotiated.
        pt: Option<u8>,
    },
    /// Stop sending (music pauses, a bridge ends); the port stays bound.
    Stop {
        /// The stream.
        id: StreamId,
    },
    /// Stop and free the port.
    Close {
        /// The stream.
        id: StreamId,
    },
}

/// Every even port of the range is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("every RTP port in the range is in use")]
pub struct NoFreePort;

/// Ports kept bound ahead of need: enough for a burst of new calls between two turns of
/// the driver's loop.
pub const RESERVE: usize = 64;

/// The media plane as the controller sees it: an outbox and the id and port allocators.
#[derive(Debug)]
pub struct MediaPlane {
    out: VecDeque<MediaCommand>,
    /// Ports not bound by us, in the order they will be asked for.
    candidates: VecDeque<u16>,
    /// Ports the driver reports bound and unused, oldest first.
    reserved: VecDeque<u16>,
    /// Reserve requests not answered yet.
    asked: usize,
    /// Busy answers in a row: past a whole range of them, no more asking until a stream
    /// opens or closes (every port of the range is someone else's).
    misses: usize,
    /// The port of every open stream.
    ports: HashMap<StreamId, u16>,
    /// Open streams per shard: a new stream goes to the least loaded.
    load: Vec<usize>,
    /// Where the search for the least loaded starts, turning, so ties go round-robin.
    next_shard: usize,
    next_serial: u64,
    /// Ports taken back for restored calls while their reserve was in flight: its answer
    /// must not hand them out again.
    reopening: HashSet<u16>,
}

impl MediaPlane {
    /// A plane over the even ports of `ports`, with streams spread over `shards` threads;
    /// its first commands reserve the first ports.
    pub fn new(ports: PortRange, shards: usize) -> Self {
        let first = ports.start() + ports.start() % 2;
        let mut plane = Self {
            out: VecDeque::new(),
            candidates: (first..=ports.end()).step_by(2).collect(),
            reserved: VecDeque::new(),
            asked: 0,
            misses: 0,
            ports: HashMap::new(),
            load: vec![0; shards.max(1)],
            next_shard: 0,
            next_serial: 1,
            reopening: HashSet::new(),
        };
        plane.top_up();
        plane
    }

    /// Asks for more ports until [`RESERVE`] are bound or asked for.
    fn top_up(&mut self) {
        while self.reserved.len() + self.asked < RESERVE {
            let Some(port) = self.candidates.pop_front() else {
                return;
            };
            self.asked += 1;
            self.out.push_back(MediaCommand::Reserve { port });
        }
    }

    /// The driver's answer to a [`MediaCommand::Reserve`]: the port is bound and ready, or
    /// busy (another process holds it: asked for again after every other candidate).
    pub fn reserved(&mut self, port: u16, bound: bool) {
        self.asked = self.asked.saturating_sub(1);
        if self.reopening.remove(&port) {
            // A restored call's: its `Open` takes the socket.
            return;
        }
        if bound {
            self.misses = 0;
            self.reserved.push_back(port);
        } else {
            self.misses += 1;
            self.candidates.push_back(port);
            if self.misses < self.candidates.len() {
                self.top_up();
            }
        }
    }

    fn open_on(&mut self, shard: usize) -> Result<(StreamId, u16), NoFreePort> {
        let Some(port) = self.reserved.pop_front() else {
            // Ask again, so a later call may find a port.
            self.misses = 0;
            self.top_up();
            return Err(NoFreePort);
        };
        Ok((self.file_stream(shard, port, false), port))
    }

    /// A new stream id on `shard` with `port`, counted and opened.
    fn file_stream(&mut self, shard: usize, port: u16, resume: bool) -> StreamId {
        let id = StreamId::new(shard, self.next_serial);
        self.next_serial += 1;
        self.ports.insert(id, port);
        self.load[shard] += 1;
        self.out.push_back(MediaCommand::Open { id, port, resume });
        self.top_up();
        id
    }

    /// The least loaded shard (ties in turn).
    fn least_loaded(&mut self) -> usize {
        let shards = self.load.len();
        let start = self.next_shard % shards;
        let shard = (0..shards)
            .map(|i| (start + i) % shards)
            .min_by_key(|&s| self.load[s])
            .unwrap_or(0);
        self.next_shard = shard + 1;
        shard
    }

    /// A new stream on the least loaded shard (ties in turn), and its port.
    pub fn open(&mut self) -> Result<(StreamId, u16), NoFreePort> {
        let shard = self.least_loaded();
        self.open_on(shard)
    }

    /// A stream for a call restored after a restart, on the port it had (`beside`: the
    /// other leg of its bridge); it continues the RTP stream that port carried. The port
    /// leaves the free lists; if it cannot be bound, the open fails as any other would.
    pub fn reopen(&mut self, port: u16, beside: Option<StreamId>) -> StreamId {
        let shard = match beside {
            Some(other) => other.shard() % self.load.len(),
            None => self.least_loaded(),
        };
        if let Some(i) = self.reserved.iter().position(|&p| p == port) {
            self.reserved.remove(i);
        } else if let Some(i) = self.candidates.iter().position(|&p| p == port) {
            self.candidates.remove(i);
        } else {
            self.reopening.insert(port);
        }
        self.file_stream(shard, port, true)
    }

    /// A new stream on the same shard as `other` (the other leg of a bridge).
    pub fn open_beside(&mut self, other: StreamId) -> Result<(StreamId, u16), NoFreePort> {
        self.open_on(other.shard() % self.load.len())
    }

    /// Open streams on each shard.
    pub fn shard_loads(&self) -> &[usize] {
        &self.load
    }

    fn release(&mut self, id: StreamId) -> Option<u16> {
        let port = self.ports.remove(&id)?;
        if let Some(load) = self.load.get_mut(id.shard()) {
            *load = load.saturating_sub(1);
        }
        Some(port)
    }

    /// Start music on a stream.
    pub fn play(&mut self, id: StreamId, remote: SocketAddr, pt: u8, music: Bytes) {
        self.out.push_back(MediaCommand::Play {
            id,
            remote,
            pt,
            music,
        });
    }

    /// Make stream `id` SRTP with the SDES `keys` of its session (before it plays or connects).
    pub fn secure(&mut self, id: StreamId, keys: &crate::sip::sdp::SrtpKeys) {
        self.out.push_back(MediaCommand::Secure {
            id,
            receive: keys.theirs.key,
            send: keys.ours.key,
        });
    }

    /// Set where a leg sends.
    pub fn connect(&mut self, id: StreamId, remote: SocketAddr, pt: u8) {
        self.out.push_back(MediaCommand::Connect { id, remote, pt });
    }

    /// Relay between two legs.
    pub fn bridge(&mut self, a: StreamId, b: StreamId) {
        self.out.push_back(MediaCommand::Bridge { a, b });
    }

    /// Let `supervisor` monitor the call of legs `caller` and `agent` in `mode`.
    pub fn monitor(
        &mut self,
        supervisor: StreamId,
        caller: StreamId,
        agent: StreamId,
        mode: crate::media::mix::MonitorMode,
    ) {
        self.out.push_back(MediaCommand::Monitor {
            supervisor,
            caller,
            agent,
            mode,
        });
    }

    /// Record the call of legs `caller` and `agent` into `path`.
    pub fn record(&mut self, caller: StreamId, agent: StreamId, path: std::path::PathBuf) {
        self.out.push_back(MediaCommand::Record {
            caller,
            agent,
            path,
        });
    }

    /// Queue an announcement.
    pub fn prompt(&mut self, id: StreamId, frames: Prompt) {
        self.out.push_back(MediaCommand::Prompt {
            id,
            frames,
            at_once: false,
        });
    }

    /// Play an announcement at once, dropping the others.
    pub fn prompt_now(&mut self, id: StreamId, frames: Prompt) {
        self.out.push_back(MediaCommand::Prompt {
            id,
            frames,
            at_once: true,
        });
    }

    /// The far end's RFC 4733 payload type.
    pub fn set_telephone_event(&mut self, id: StreamId, pt: Option<u8>) {
        self.out.push_back(MediaCommand::TelephoneEvent { id, pt });
    }

    /// Stop sending on a stream.
    pub fn stop(&mut self, id: StreamId) {
        self.out.push_back(MediaCommand::Stop { id });
    }

    /// Close a stream; its port becomes a candidate again, last in line.
    pub fn close(&mut self, id: StreamId) {
        if let Some(port) = self.release(id) {
            self.candidates.push_back(port);
            self.out.push_back(MediaCommand::Close { id });
            self.top_up();
        }
    }

    /// The stream an open failed for is gone: its port becomes a candidate again.
    pub fn forget(&mut self, id: StreamId) {
        if let Some(port) = self.release(id) {
            self.candidates.push_back(port);
        }
    }

    /// The next command for the driver.
    pub fn poll(&mut self) -> Option<MediaCommand> {
        self.out.pop_front()
    }

    /// Streams open.
    pub fn open_streams(&self) -> usize {
        self.ports.len()
    }
}

impl super::B2bua {
    /// The next media command for the driver.
    #[must_use]
    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.media.poll()
    }

    /// A stream's port could not be bound (another process holds it): whatever the stream
    /// was for cannot have audio. A caller's call is hung up; a ringing agent leg is
    /// cancelled (the agent gets no mark, the caller keeps its place and is answered if it
    /// was still ringing); a callback's trunk leg counts as a failed attempt.
    pub(super) fn stream_lost(&mut self, now: std::time::Instant, id: StreamId) {
        self.media.forget(id);
        tracing::error!(stream = %id, "RTP stream could not be opened");
        let call = self.calls.values().find(|c| c.stream == id).map(|c| c.key);
        if let Some(call) = call {
            self.hang_up(now, call, crate::queue::LeaveReason::Removed);
            return;
        }
        let leg = self
            .legs
            .values()
            .find(|l| l.stream == id)
            .map(|l| (l.key, l.call));
        if let Some((leg, call)) = leg {
            self.cancel_leg_for_caller(now, leg);
            if self.leave_ring(call, leg) {
                return;
            }
            self.offered.remove(&call.entry());
            if let Some(c) = self.calls.get_mut(&call)
                && c.leg == Some(leg)
            {
                c.leg = None;
                if c.state.is_early() {
                    self.answer_caller(now, call);
                    self.start_music(now, call);
                }
            }
            return;
        }
        self.callback_stream_lost(now, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every reserve request as the driver would, `busy` ports failing.
    fn answer(plane: &mut MediaPlane, busy: &[u16]) -> Vec<MediaCommand> {
        let mut others = Vec::new();
        while let Some(command) = plane.poll() {
            match command {
                MediaCommand::Reserve { port } => plane.reserved(port, !busy.contains(&port)),
                other => others.push(other),
            }
        }
        others
    }

    #[test]
    fn only_bound_ports_are_handed_out_and_streams_spread_over_shards() {
        let mut plane = MediaPlane::new(PortRange::new(20000, 20007).unwrap(), 2);
        assert_eq!(plane.open(), Err(NoFreePort), "nothing bound yet");
        answer(&mut plane, &[20002]);
        // A range that is all someone else's: asked once each, then no more.
        let mut taken = MediaPlane::new(PortRange::new(30000, 30009).unwrap(), 1);
        let mut asked = 0;
        while let Some(MediaCommand::Reserve { port }) = taken.poll() {
            asked += 1;
            taken.reserved(port, false);
        }
        assert_eq!(asked, 5);
        assert_eq!(taken.open(), Err(NoFreePort));
        let (a, pa) = plane.open().unwrap();
        let (b, pb) = plane.open().unwrap();
        let (c, pc) = plane.open_beside(a).unwrap();
        assert_eq!(
            (pa, pb, pc),
            (20000, 20004, 20006),
            "20002 is someone else's"
        );
        assert_ne!(a.shard(), b.shard());
        assert_eq!(a.shard(), c.shard());
        assert_eq!(plane.open(), Err(NoFreePort));
        plane.close(b);
        plane.close(b); // twice: freed once
        // The busy port is asked for again before the one just closed.
        let mut asked = Vec::new();
        while let Some(command) = plane.poll() {
            if let MediaCommand::Reserve { port } = command {
                asked.push(port);
                plane.reserved(port, true);
            }
        }
        assert_eq!(asked, [20002, 20004]);
        assert_eq!(plane.open().map(|(_, p)| p), Ok(20002));
        assert_eq!(plane.open_streams(), 3);
    }

    /// A plane of `shards` shards over `ports` ports (20000 up), the first ones bound.
    fn bound(shards: usize, ports: u16) -> MediaPlane {
        let mut plane = MediaPlane::new(PortRange::new(20000, 20000 + 2 * ports).unwrap(), shards);
        answer(&mut plane, &[]);
        plane
    }

    /// A new stream, its port's replacement bound.
    fn open(plane: &mut MediaPlane) -> StreamId {
        let (id, _) = plane.open().unwrap();
        answer(plane, &[]);
        id
    }

    #[test]
    fn new_streams_go_to_the_least_loaded_shard_and_bridges_stay_on_one() {
        let mut plane = bound(3, 2000);
        let opened: Vec<StreamId> = (0..300).map(|_| open(&mut plane)).collect();
        assert_eq!(plane.shard_loads(), [100, 100, 100], "spread evenly");
        // Shard 0 loses 50 streams: the next 50 all go there, then round-robin again.
        for id in opened.iter().filter(|id| id.shard() == 0).take(50) {
            plane.close(*id);
        }
        answer(&mut plane, &[]);
        for _ in 0..50 {
            assert_eq!(open(&mut plane).shard(), 0);
        }
        let next: Vec<usize> = (0..6).map(|_| open(&mut plane).shard()).collect();
        assert_eq!(plane.shard_loads(), [102, 102, 102]);
        assert_eq!(next.iter().filter(|&&s| s == 1).count(), 2, "{next:?}");

        // A seeded run of holds, bridges and hang-ups: every new call lands on a least loaded
        // shard, and a bridge's second leg beside the first.
        let mut plane = bound(4, 3000);
        let mut calls: Vec<Vec<StreamId>> = Vec::new();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for step in 0..5000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            if rng.is_multiple_of(3) && !calls.is_empty() {
                for id in calls.swap_remove((rng / 3) as usize % calls.len()) {
                    plane.close(id);
                }
            } else if plane.open_streams() + 2 < 3000 {
                let least = *plane.shard_loads().iter().min().unwrap();
                let a = open(&mut plane);
                assert_eq!(plane.shard_loads()[a.shard()], least + 1, "step {step}");
                let mut legs = vec![a];
                if rng.is_multiple_of(2) {
                    let (b, _) = plane.open_beside(a).unwrap();
                    answer(&mut plane, &[]);
                    assert_eq!(b.shard(), a.shard());
                    legs.push(b);
                }
                calls.push(legs);
            }
            answer(&mut plane, &[]);
        }
        let open: usize = calls.iter().map(Vec::len).sum();
        assert_eq!(plane.shard_loads().iter().sum::<usize>(), open);
    }
}
