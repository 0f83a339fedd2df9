//! A shard's clock: which slot is due, servicing it (music frames out, supervisors' mixes
//! out, held sockets drained), and skipping ahead rather than bursting when far behind.
//! See the parent module for the wheel and the timing.

use std::time::{Duration, Instant};

use super::{
    MAX_BEHIND, POLL_PERIODS, SLOT_NANOS, SLOTS, Shard, Stream, StreamMode, connection, monitor,
    tally,
};
use crate::media::engine::MediaEvent;
use crate::media::inbound::Inbound;
use crate::media::player::PlayerEvent;

impl Shard {
    pub(super) fn due(&self, tick: u64) -> Instant {
        self.epoch + Duration::from_nanos(tick.saturating_mul(SLOT_NANOS))
    }

    /// The latest tick due at or before `now`.
    pub(super) fn tick_at(&self, now: Instant) -> u64 {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos / u128::from(SLOT_NANOS)).unwrap_or(u64::MAX)
    }

    /// The instant of the next non-empty slot, or `None` when the shard has no stream.
    pub(super) fn next_due(&self) -> Option<Instant> {
        if self.by_id.is_empty() {
            return None;
        }
        (self.tick..self.tick + SLOTS as u64)
            .find(|t| !self.wheel[(t % SLOTS as u64) as usize].is_empty())
            .map(|t| self.due(t))
    }

    /// Services the slots that are due, skipping ahead if hopelessly behind.
    ///
    /// Returns after at most one period's worth of slots even if more are due, so that an
    /// overloaded shard (always behind, never by more than `MAX_BEHIND`) still gets back to
    /// its commands: the next wait then has a zero timeout.
    pub(super) fn run_clock(&mut self) {
        let mut now = Instant::now();
        if self.by_id.is_empty() {
            // Idle: keep the cursor at the present so the first stream doesn't replay the past.
            self.tick = self.tick_at(now) + 1;
            return;
        }
        for _ in 0..SLOTS {
            let due = self.due(self.tick);
            if due > now {
                return;
            }
            if now - due > MAX_BEHIND {
                self.skip_to(self.tick_at(now));
                continue;
            }
            self.service_slot(self.tick, due);
            self.tick += 1;
            now = Instant::now();
        }
    }

    /// Sends one frame for every playing stream in the slot of `tick`, and drains the
    /// sockets whose poll turn it is.
    pub(super) fn service_slot(&mut self, tick: u64, due: Instant) {
        let Shard {
            wheel,
            streams,
            packet,
            stats,
            events,
            recv_buf,
            ledger,
            epoch,
            epoch_ms,
            monitors,
            ..
        } = self;
        let slot = &wheel[(tick % SLOTS as u64) as usize];
        if slot.is_empty() {
            return;
        }
        let due_ms = *epoch_ms + due.saturating_duration_since(*epoch).as_millis() as i64;
        let period = tick / SLOTS as u64;
        let mut inbound = Inbound {
            buf: recv_buf,
            stats,
            events,
        };
        let (mut sent, mut errors) = (0, 0);
        for (i, &idx) in slot.iter().enumerate() {
            if let Some(&next) = slot.get(i + 1) {
                prefetch(streams.get(next));
            }
            // Wheel entries always point at a live stream (maintained by `open`/`close`);
            // skip rather than panic if not.
            let Some(Some(stream)) = streams.get_mut(idx) else {
                continue;
            };
            if stream.mode == StreamMode::Play
                && let (Some(player), Some(remote)) = (stream.player.as_mut(), stream.peer.remote)
            {
                let event = player.write_next(packet);
                // Noted before it leaves: a process killed in between costs the next one a
                // sequence number, never a number used twice.
                if let (Some(ledger), Some(record)) = (ledger.as_deref(), stream.record) {
                    ledger.sent(record, &packet[..], remote, stream.peer.latched, due_ms);
                }
                tally(stream.send(&packet[..], remote), &mut sent, &mut errors);
                if event == Some(PlayerEvent::PromptDone) {
                    crate::media::engine::emit(
                        inbound.events,
                        inbound.stats,
                        MediaEvent::PromptDone { id: stream.id },
                    );
                }
            }
            if stream.mode == StreamMode::Monitor
                && let (Some(monitor), Some(remote), Some(pt)) = (
                    monitors.get_mut(&idx),
                    stream.peer.remote,
                    stream.peer.codecs.audio,
                )
                && monitor::next_packet(monitor, pt, packet).is_some()
            {
                tally(stream.send(&packet[..], remote), &mut sent, &mut errors);
            }
            // Streams of one slot take their poll turns in different periods; bridged and
            // supervisor legs are read on readiness instead (their packets must be passed on).
            if (period + idx as u64).is_multiple_of(POLL_PERIODS)
                && !matches!(stream.mode, StreamMode::Relay { .. } | StreamMode::Monitor)
            {
                inbound.drain(stream.id, &stream.socket, &mut stream.peer);
                stream.turns += 1;
                let peer = &stream.peer;
                stream.connect_to(connection::wanted(peer.latched, peer.remote, stream.turns));
            }
        }
        // One clock read per slot, not per packet: every frame of the slot is counted as
        // late as its last, which bounds them all.
        if sent + errors > 0 {
            let late = Instant::now().saturating_duration_since(due);
            stats.lateness.record_n(late, sent + errors);
        }
        stats.packets_sent.add(sent);
        stats.send_errors.add(errors);
    }

    /// Jumps the clock to `target`, accounting every slot tick in `[self.tick, target)` as a
    /// skipped frame of the playing streams in that slot.
    pub(super) fn skip_to(&mut self, target: u64) {
        let from = self.tick;
        let len = target.saturating_sub(from);
        let slots = SLOTS as u64;
        let mut skipped = 0u64;
        for (slot, members) in self.wheel.iter().enumerate() {
            // Occurrences of `slot` among `len` consecutive ticks starting at `from`.
            let offset = (slot as u64 + slots - from % slots) % slots;
            let count = len / slots + u64::from(offset < len % slots);
            if count == 0 {
                continue;
            }
            for &idx in members {
                if let Some(Some(Stream {
                    mode: StreamMode::Play,
                    player: Some(p),
                    ..
                })) = self.streams.get_mut(idx)
                {
                    p.skip(u32::try_from(count).unwrap_or(u32::MAX));
                    skipped += count;
                }
            }
        }
        self.stats.skipped_frames.add(skipped);
        tracing::warn!(
            shard = self.index,
            behind_ms = (len * SLOT_NANOS) / 1_000_000,
            skipped,
            "media shard fell behind; skipped frames instead of bursting"
        );
        self.tick = target;
    }
}

/// Starts loading a stream table entry into the cache while the current stream's `sendto`
/// runs. Between two visits to a stream (20 ms) the kernel's send path and thousands of
/// other streams evict it, and the load misses that followed cost about 9 % of the
/// engine's CPU at 5 000 streams (perf annotate: two missed lines per stream); one
/// syscall (microseconds) is ample time for the prefetch to land.
#[inline]
fn prefetch(entry: Option<&Option<Stream>>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(entry) = entry {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = std::ptr::from_ref(entry).cast::<i8>();
        for offset in (0..size_of::<Option<Stream>>()).step_by(64) {
            // SAFETY: `_mm_prefetch` needs the `sse` target feature, which every x86_64 CPU
            // has (it is in the x86_64 baseline the compiler already assumes). PREFETCHh is a
            // hint with no architectural effect and never faults, whatever the address
            // (Intel SDM vol. 2B, PREFETCHh); here the address is inside a live `&Stream`
            // entry anyway, and nothing is read or written through it.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = entry;
}
