//! Call recording (docs/behaviour.md §5, "Recording"): one stereo WAV per bridged call of a
//! queue with `record = true`, caller on the left channel, agent on the right, 8 kHz, the two
//! sides aligned in time.
//!
//! ```text
//!  shard (relay) ──tap: copy payload + arrival + RTP ts into the call's batch──┐
//!        once a second per call, one message (never blocks: a full queue drops │
//!        the batch and says so)                                                ▼
//!  writer thread ── assemble (timeline, silence for gaps) ── append PCM ── rewrite header
//! ```
//!
//! The media clock pays one 160-byte copy per relayed packet of a recorded call and one
//! channel send per call per second; decoding, placing and file I/O happen on the writer
//! thread. Memory per call is one batch plus the assembler's hold (well under a second of
//! audio). The header is rewritten after every append, so `kill -9` leaves a file that
//! plays up to its last second or so; a recording that starts again on the same path (a
//! call kept through a restart) continues the file after what its header says it holds.

pub mod assemble;
pub mod files;
pub mod wav;
mod writer;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

pub use assemble::{Law, Side};
pub(crate) use writer::run as run_writer;

/// Batches waiting for the writer, over all calls; beyond it a batch is dropped (and
/// logged) rather than block the media clock.
const QUEUE: usize = 4_096;
/// How much audio a batch collects before it is sent to the writer.
pub const BATCH_EVERY: Duration = Duration::from_secs(1);
/// Bytes in front of each payload in a batch: side, law, payload length (u16), arrival µs
/// (u64), RTP timestamp (u32).
const RECORD_HEAD: usize = 16;

/// A message to the writer thread.
#[derive(Debug)]
pub(crate) enum Message {
    /// A recording begins (or continues, if the file holds one of ours) at `path`.
    Start { key: u64, path: PathBuf },
    /// Packets of a recording, encoded by [`Batch`].
    Audio { key: u64, batch: Vec<u8> },
    /// The recording is over: hand on what is held, close the file.
    End { key: u64 },
}

/// The shards' handle to the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    tx: SyncSender<Message>,
}

impl Recorder {
    /// A recorder and the receiving end its writer thread runs on ([`run_writer`]).
    pub(crate) fn new() -> (Recorder, Receiver<Message>) {
        let (tx, rx) = sync_channel(QUEUE);
        (Recorder { tx }, rx)
    }

    /// Hands `message` to the writer without waiting; false if it was dropped (queue full,
    /// or the writer is gone).
    pub(crate) fn send(&self, message: Message) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

/// One recording as a shard sees it: when it began and the packets not yet sent.
#[derive(Debug)]
pub(crate) struct Tap {
    began: Instant,
    batch: Vec<u8>,
    batch_began: Instant,
    /// Some batch was dropped (logged once).
    dropped: bool,
}

impl Tap {
    pub(crate) fn new(now: Instant) -> Tap {
        Tap {
            began: now,
            batch: Vec::new(),
            batch_began: now,
            dropped: false,
        }
    }

    /// Notes one packet received at `now` (`payload` in `law`, RTP timestamp `ts`); returns
    /// a full batch to send when it is time.
    pub(crate) fn packet(
        &mut self,
        side: Side,
        law: Law,
        now: Instant,
        ts: u32,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let Ok(len) = u16::try_from(payload.len()) else {
            return None;
        };
        if self.batch.is_empty() {
            // About a second of both sides: 100 packets of 160 bytes.
            self.batch.reserve(100 * (RECORD_HEAD + 160));
            self.batch_began = now;
        }
        let at_us = u64::try_from(now.saturating_duration_since(self.began).as_micros())
            .unwrap_or(u64::MAX);
        self.batch.push(side as u8);
        self.batch.push(law as u8);
        self.batch.extend_from_slice(&len.to_le_bytes());
        self.batch.extend_from_slice(&at_us.to_le_bytes());
        self.batch.extend_from_slice(&ts.to_le_bytes());
        self.batch.extend_from_slice(payload);
        (now.saturating_duration_since(self.batch_began) >= BATCH_EVERY).then(|| self.take())
    }

    /// The packets collected so far (the recording ends or pauses).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.batch)
    }

    /// Notes that a batch was dropped; true the first time (to log it once).
    pub(crate) fn dropped(&mut self) -> bool {
        !std::mem::replace(&mut self.dropped, true)
    }
}

/// One packet read back from a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub side: Side,
    pub law: Law,
    pub at_us: u64,
    pub ts: u32,
    pub payload: &'a [u8],
}

/// The packets of a batch, in the order they were noted; stops at anything malformed.
pub(crate) fn packets(batch: &[u8]) -> impl Iterator<Item = Packet<'_>> {
    let mut rest = batch;
    std::iter::from_fn(move || {
        let head = rest.get(..RECORD_HEAD)?;
        let side = match head[0] {
            0 => Side::Caller,
            1 => Side::Agent,
            _ => return None,
        };
        let law = match head[1] {
            0 => Law::Mu,
            1 => Law::A,
            _ => return None,
        };
        let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
        let at_us = u64::from_le_bytes(head[4..12].try_into().ok()?);
        let ts = u32::from_le_bytes(head[12..16].try_into().ok()?);
        let payload = rest.get(RECORD_HEAD..RECORD_HEAD + len)?;
        rest = &rest[RECORD_HEAD + len..];
        Some(Packet {
            side,
            law,
            at_us,
            ts,
            payload,
        })
    })
}

/// The G.711 law of an RTP payload type, when it is one (static types, RFC 3551 §6).
#[must_use]
pub fn law_of(payload_type: u8) -> Option<Law> {
    match payload_type {
        crate::media::rewrite::PT_PCMU => Some(Law::Mu),
        crate::media::rewrite::PT_PCMA => Some(Law::A),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_back_what_was_noted_and_fills_in_a_second() {
        let t0 = Instant::now();
        let mut tap = Tap::new(t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(
            tap.packet(Side::Caller, Law::Mu, at(20), 7, &[1; 160])
                .is_none()
        );
        assert!(
            tap.packet(Side::Agent, Law::A, at(25), 9, &[2; 80])
                .is_none()
        );
        let batch = tap
            .packet(Side::Caller, Law::Mu, at(1_020), 167, &[3; 160])
            .expect("a second after its first packet, the batch is due");
        let read: Vec<_> = packets(&batch).collect();
        assert_eq!(read.len(), 3);
        assert_eq!(
            read[1],
            Packet {
                side: Side::Agent,
                law: Law::A,
                at_us: 25_000,
                ts: 9,
                payload: &[2; 80]
            }
        );
        assert_eq!(read[2].at_us, 1_020_000);
        assert!(tap.take().is_empty());
        // A damaged batch stops where it breaks.
        assert_eq!(packets(&batch[..batch.len() - 1]).count(), 2);
    }
}
