//! A shard's streams coming and going: open (a slot on the clock wheel), music on, off,
//! and close (the port freed). Bridging is in `bridge`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{PERIOD, SLOTS, Shard, Stream, StreamMode};
use crate::media::engine::StreamId;
use crate::media::inbound::Peer;
use crate::media::ledger::Resume;
use crate::media::player::Player;
use crate::media::rewrite::Rewriter;

impl Shard {
    /// Opens stream `id` on `socket`; with `resume`, it continues the RTP stream the port
    /// carried before a restart: same SSRC, the next sequence number, the timestamp on
    /// from the last one by the time that passed, the marker bit on its first packet
    /// (RFC 3550 §5.1), sent to the same peer until RTP arrives from elsewhere.
    pub(super) fn open(&mut self, id: StreamId, socket: UdpSocket, resume: Option<Resume>) {
        let idx = self.free.pop().unwrap_or(self.streams.len());
        // The first slot with room for one more of a burst, else the least loaded: a few
        // callers share one wake-up per period instead of one each in ten slots.
        let slot = (0..SLOTS)
            .find(|&s| self.wheel[s].len() < self.slot_fill)
            .or_else(|| (0..SLOTS).min_by_key(|&s| self.wheel[s].len()))
            .unwrap_or(0);
        let record = match (&self.ledger, socket.local_addr()) {
            (Some(ledger), Ok(local)) => ledger.record(local.port()),
            _ => None,
        };
        if let (Some(ledger), Some(record)) = (&self.ledger, record) {
            ledger.clear(record);
        }
        let mut peer = Peer::default();
        let rewriter = resume.map(|r| {
            if let Some(latched) = r.latched {
                peer.remote = Some(latched);
                peer.latched = true;
            }
            // The last packet's timestamp, at the instant it was sent: the timeline runs
            // on from there through the gap.
            let now = Instant::now();
            let ago = Duration::from_millis(
                u64::try_from(super::unix_ms_now().saturating_sub(r.sent_at_ms)).unwrap_or(0),
            );
            let sent_at = now.checked_sub(ago).unwrap_or(now);
            Rewriter::new(r.ssrc, r.sequence.wrapping_add(1), r.timestamp, sent_at)
        });
        // A socket handed over by the process before may still be connected to its old peer.
        let connected = socket.peer_addr().ok();
        let stream = Stream {
            id,
            socket,
            peer,
            mode: StreamMode::Idle,
            player: None,
            rewriter,
            stopped_at: None,
            wheel_pos: (slot, self.wheel[slot].len()),
            srtp: None,
            record,
            tap: None,
            watched: None,
            connected,
            turns: 0,
        };
        self.wheel[slot].push(idx);
        if idx == self.streams.len() {
            self.streams.push(Some(stream));
        } else {
            self.streams[idx] = Some(stream);
        }
        self.by_id.insert(id, idx);
        self.stats.streams.set(self.by_id.len() as u64);
    }

    pub(super) fn play(
        &mut self,
        id: StreamId,
        remote: SocketAddr,
        payload_type: u8,
        music: Bytes,
    ) {
        let now = Instant::now();
        let Some(&idx) = self.by_id.get(&id) else {
            tracing::warn!(%id, "play on an unknown stream");
            return;
        };
        // Music on a bridged leg ends the bridge (the partner goes idle); on a supervisor's,
        // the monitoring.
        self.unbridge(idx, now);
        self.end_monitor(idx);
        let Some(Some(stream)) = self.streams.get_mut(idx) else {
            return;
        };
        stream.set_sdp_remote(remote);
        if stream.mode != StreamMode::Play {
            // Music starts: the far end has just been answered (see `connection`).
            stream.turns = 0;
        }
        stream.peer.codecs.audio = Some(payload_type);
        let result = match stream.player.as_mut() {
            Some(p) => {
                // Same RTP stream resuming: time passed while stopped, so does the timestamp.
                if let Some(at) = stream.stopped_at.take() {
                    let frames = at.elapsed().as_nanos() / PERIOD.as_nanos();
                    p.skip(u32::try_from(frames).unwrap_or(u32::MAX));
                }
                p.set_music(payload_type, music)
            }
            None => match &stream.rewriter {
                // Relayed before without ever playing: still the same RTP stream.
                Some(rw) => Player::with_initial(
                    payload_type,
                    music,
                    rw.ssrc(),
                    rw.next_sequence(),
                    rw.timestamp_at(now),
                ),
                None => Player::new(payload_type, music, &mut rand::rng()),
            }
            .map(|p| {
                stream.player = Some(p);
            }),
        };
        match result {
            Ok(()) if stream.mode != StreamMode::Play => {
                stream.mode = StreamMode::Play;
                self.playing += 1;
                self.stats.playing.set(self.playing as u64);
            }
            Ok(()) => {}
            Err(e) => tracing::warn!(%id, error = %e, "music rejected"),
        }
    }

    pub(super) fn stop(&mut self, id: StreamId) {
        if let Some(&idx) = self.by_id.get(&id) {
            self.leave(idx, Instant::now());
        }
    }

    /// Makes stream `idx` idle: music stops, a bridge ends (both legs idle).
    pub(super) fn leave(&mut self, idx: usize, now: Instant) {
        let Some(Some(stream)) = self.streams.get_mut(idx) else {
            return;
        };
        match stream.mode {
            StreamMode::Play => {
                stream.mode = StreamMode::Idle;
                stream.stopped_at = Some(now);
                self.playing -= 1;
                self.stats.playing.set(self.playing as u64);
            }
            StreamMode::Relay { .. } => self.unbridge(idx, now),
            StreamMode::Monitor => self.end_monitor(idx),
            StreamMode::Idle => {}
        }
    }

    pub(super) fn close(&mut self, id: StreamId) {
        self.stop(id);
        let Some(idx) = self.by_id.remove(&id) else {
            return;
        };
        self.end_recording(idx);
        if let Some(watcher) = self.streams[idx].as_ref().and_then(|s| s.watched) {
            self.end_monitor(watcher);
        }
        if let Some(stream) = self.streams[idx].take() {
            let (slot, pos) = stream.wheel_pos;
            self.wheel[slot].swap_remove(pos);
            if let Some(&moved) = self.wheel[slot].get(pos)
                && let Some(m) = self.streams[moved].as_mut()
            {
                m.wheel_pos = (slot, pos);
            }
            // Dropping `stream` closes the socket and frees the port.
        }
        self.free.push(idx);
        self.stats.streams.set(self.by_id.len() as u64);
    }
}
