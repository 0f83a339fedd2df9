//! Placing each side's RTP payloads on one timeline (pure; the writer thread drives it).
//!
//! A recording is two mono tracks, caller and agent, that must line up in time: what the
//! agent said while the caller said nothing sits beside the caller's silence, and a side
//! that stopped sending for a second (hold, a lost burst) leaves a second of silence, not a
//! shift of everything after it. Each packet carries its arrival time (µs since the
//! recording began) and its RTP timestamp. A packet is placed where its timestamp says,
//! counted on from the side's previous packet, as long as that agrees with its arrival
//! within [`SLACK`]: jitter does not move audio about, while a sender that jumped
//! (a new stream, a clock reset, a long gap) is placed by arrival instead.
//!
//! Frames are handed on [`HOLD`] behind the newest sample of either side, so a side whose
//! packets arrive a little later than the other's still lands beside it; memory per call is
//! bounded by that hold plus one batch (see `super::writer`), and a long silence is handed
//! on as a count, never as a buffer of zeros.

use crate::media::g711::{alaw_to_linear, ulaw_to_linear};

/// Samples per millisecond at 8 kHz.
const PER_MS: u64 = 8;
/// How far a packet's timestamp may disagree with its arrival before arrival wins (0.5 s).
pub const SLACK: u64 = 4_000;
/// Frames kept back from the newest sample for the later side to fill (0.25 s).
pub const HOLD: u64 = 2_000;
/// The most frames buffered ahead of what was handed on (5 s).
const MAX_SPAN: u64 = 40_000;

/// Which channel a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller: left channel.
    Caller = 0,
    /// The agent: right channel.
    Agent = 1,
}

/// How a payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// G.711 μ-law (PCMU).
    Mu,
    /// G.711 A-law (PCMA).
    A,
}

/// Where assembled audio goes.
pub trait Sink {
    /// Interleaved stereo frames (left, right, left, right…).
    fn frames(&mut self, interleaved: &[i16]);
    /// `frames` stereo frames of silence.
    fn silence(&mut self, frames: u64);
}

#[derive(Debug, Default)]
struct Track {
    /// Samples from the assembler's `base` on.
    samples: Vec<i16>,
    /// The previous packet's RTP timestamp and where its first sample was placed.
    anchor: Option<(u32, u64)>,
}

/// The two tracks of one recording.
#[derive(Debug, Default)]
pub struct Assembler {
    /// Timeline position (samples since the recording began) of `samples[0]` in each track:
    /// everything before it has been handed on.
    base: u64,
    tracks: [Track; 2],
}

impl Assembler {
    /// An assembler whose timeline starts at sample 0.
    #[must_use]
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Places one packet's payload: `at_us` after the recording began, RTP timestamp `ts`.
    /// Hands on frames to `sink` when the buffered span would grow past its bound.
    pub fn push(
        &mut self,
        side: Side,
        at_us: u64,
        ts: u32,
        law: Law,
        payload: &[u8],
        sink: &mut impl Sink,
    ) {
        let n = payload.len() as u64;
        // Arrival marks the end of the packet's audio, roughly: it was sent once captured.
        let by_arrival = (at_us * PER_MS / 1_000).saturating_sub(n);
        let track = &mut self.tracks[side as usize];
        let start = match track.anchor {
            Some((ts0, pos0)) => {
                // Signed distance in the 32-bit timestamp space (RFC 3550 §5.1: it wraps).
                let by_ts = pos0 as i64 + i64::from(ts.wrapping_sub(ts0) as i32);
                if by_ts >= 0 && by_ts.abs_diff(by_arrival as i64) <= SLACK {
                    by_ts as u64
                } else {
                    by_arrival
                }
            }
            None => by_arrival,
        };
        track.anchor = Some((ts, start));
        let end = start + n;
        if end > self.base + MAX_SPAN {
            self.hand_on(end.saturating_sub(MAX_SPAN), sink);
        }
        if end <= self.base {
            return; // Too late: that part of the timeline is written.
        }
        let track = &mut self.tracks[side as usize];
        let skip = self.base.saturating_sub(start);
        let from = (start + skip - self.base) as usize;
        let to = (end - self.base) as usize;
        if track.samples.len() < to {
            track.samples.resize(to, 0);
        }
        let decode = match law {
            Law::Mu => ulaw_to_linear,
            Law::A => alaw_to_linear,
        };
        for (slot, &byte) in track.samples[from..to]
            .iter_mut()
            .zip(&payload[skip as usize..])
        {
            *slot = decode(byte);
        }
    }

    /// Hands on every frame older than [`HOLD`] behind the newest sample.
    pub fn settle(&mut self, sink: &mut impl Sink) {
        let newest = self.base + self.span();
        self.hand_on(newest.saturating_sub(HOLD), sink);
    }

    /// Hands on everything (the recording ends).
    pub fn finish(&mut self, sink: &mut impl Sink) {
        let newest = self.base + self.span();
        self.hand_on(newest, sink);
    }

    /// Frames handed on so far.
    #[must_use]
    pub fn handed_on(&self) -> u64 {
        self.base
    }

    fn span(&self) -> u64 {
        self.tracks
            .iter()
            .map(|t| t.samples.len() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Hands on the timeline up to `upto` (frames beyond either track's samples are silence).
    fn hand_on(&mut self, upto: u64, sink: &mut impl Sink) {
        if upto <= self.base {
            return;
        }
        let count = (upto - self.base) as usize;
        let have = self.span().min(count as u64) as usize;
        if have > 0 {
            let mut interleaved = Vec::with_capacity(have * 2);
            for i in 0..have {
                for track in &self.tracks {
                    interleaved.push(track.samples.get(i).copied().unwrap_or(0));
                }
            }
            sink.frames(&interleaved);
        }
        if count > have {
            sink.silence((count - have) as u64);
        }
        for track in &mut self.tracks {
            track.samples.drain(..have.min(track.samples.len()));
        }
        self.base = upto;
    }
}

#[cfg(test)]
#[path = "assemble_tests.rs"]
mod tests;
