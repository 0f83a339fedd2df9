//! Recording on a shard (`super::super::recording`): a tap on both legs of a bridged call
//! copies each relayed packet's payload into the call's batch, handed to the writer thread
//! once a second. The tap belongs to the legs, not to the bridge: a hold (the bridge ends,
//! music plays) leaves a gap the writer fills with silence, and the recording goes on when
//! the legs are bridged again. It ends when either leg closes.

use std::path::PathBuf;
use std::time::Instant;

use super::Shard;
use crate::media::engine::StreamId;
use crate::media::recording::{Law, Message, Recorder, Side, Tap};

/// A recording on this shard: its batch and the table indices of its two legs.
#[derive(Debug)]
pub(super) struct Recording {
    tap: Tap,
    legs: [usize; 2],
}

/// A stream's part in a recording.
#[derive(Debug, Clone, Copy)]
pub(super) struct TapOn {
    /// The recording (the caller leg's stream id).
    pub key: u64,
    pub side: Side,
}

impl Shard {
    /// Starts recording the call whose caller leg is `caller` and agent leg `agent` into
    /// `path` (continuing a recording either leg was already in is not done: that one ends).
    pub(super) fn record(&mut self, caller: StreamId, agent: StreamId, path: PathBuf) {
        if self.recorder.is_none() {
            tracing::warn!(%caller, "recording asked of an engine without a writer");
            return;
        }
        let (Some(&ic), Some(&ia)) = (self.by_id.get(&caller), self.by_id.get(&agent)) else {
            tracing::warn!(%caller, %agent, "recording of an unknown stream");
            return;
        };
        let key = caller.raw();
        // An earlier recording of either leg ends first: its end must reach the writer
        // before this start (the key may be the same).
        self.end_recording(ic);
        self.end_recording(ia);
        let Some(recorder) = &self.recorder else {
            return;
        };
        if !recorder.send(Message::Start { key, path }) {
            tracing::error!(%caller, "recording writer is not keeping up; this call is not recorded");
            return;
        }
        for (idx, side) in [(ic, Side::Caller), (ia, Side::Agent)] {
            if let Some(Some(stream)) = self.streams.get_mut(idx) {
                stream.tap = Some(TapOn { key, side });
            }
        }
        self.taps.insert(
            key,
            Recording {
                tap: Tap::new(Instant::now()),
                legs: [ic, ia],
            },
        );
    }

    /// Ends the recording stream `idx` is part of, if any: what is batched goes to the
    /// writer, then the end.
    pub(super) fn end_recording(&mut self, idx: usize) {
        let Some(key) = self.tap_key(idx) else {
            return;
        };
        let Some(Recording { mut tap, legs }) = self.taps.remove(&key) else {
            return;
        };
        for leg in legs {
            if let Some(Some(stream)) = self.streams.get_mut(leg) {
                stream.tap = None;
            }
        }
        if let Some(recorder) = &self.recorder {
            let batch = tap.take();
            send_batch(recorder, key, &mut tap, batch);
            // Never waits (the media clock must not): if the writer is that far behind, the
            // file stays valid up to its last append and is finished when the writer stops.
            if !recorder.send(Message::End { key }) {
                tracing::warn!(
                    key,
                    "recording writer is not keeping up: the end of a recording waits for shutdown"
                );
            }
        }
    }

    /// Hands the batch of the recording stream `idx` is part of to the writer (the bridge
    /// pauses: nothing more arrives until it is bridged again).
    pub(super) fn flush_recording(&mut self, idx: usize) {
        let Some(key) = self.tap_key(idx) else {
            return;
        };
        if let (Some(Recording { tap, .. }), Some(recorder)) =
            (self.taps.get_mut(&key), &self.recorder)
        {
            let batch = tap.take();
            send_batch(recorder, key, tap, batch);
        }
    }

    /// The recording stream `idx` is part of.
    fn tap_key(&self, idx: usize) -> Option<u64> {
        Some(self.streams.get(idx)?.as_ref()?.tap?.key)
    }

    /// Ends every recording (the shard stops).
    pub(super) fn end_recordings(&mut self) {
        let tapped: Vec<usize> = (0..self.streams.len())
            .filter(|&i| self.streams[i].as_ref().is_some_and(|s| s.tap.is_some()))
            .collect();
        for idx in tapped {
            self.end_recording(idx);
        }
    }
}

/// Notes one relayed packet in its recording's batch, sending the batch when it is full.
pub(super) fn tap_packet(
    taps: &mut std::collections::HashMap<u64, Recording>,
    recorder: Option<&Recorder>,
    on: TapOn,
    law: Law,
    now: Instant,
    ts: u32,
    payload: &[u8],
) {
    let (Some(Recording { tap, .. }), Some(recorder)) = (taps.get_mut(&on.key), recorder) else {
        return;
    };
    if let Some(batch) = tap.packet(on.side, law, now, ts, payload) {
        send_batch(recorder, on.key, tap, batch);
    }
}

fn send_batch(recorder: &Recorder, key: u64, tap: &mut Tap, batch: Vec<u8>) {
    if batch.is_empty() {
        return;
    }
    if !recorder.send(Message::Audio { key, batch }) && tap.dropped() {
        tracing::warn!(
            key,
            "recording writer is not keeping up (disk too slow?): audio of this call dropped"
        );
    }
}
