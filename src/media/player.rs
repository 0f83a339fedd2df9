//! Per-stream sender state: one RTP stream's header counters and a cursor over shared frames.
//!
//! A [`Player`] owns what RFC 3550 §5.1 asks of a sender: a random SSRC, a random initial
//! sequence number and timestamp, sequence +1 and timestamp +160 per 20 ms G.711 frame, and
//! the marker bit on the first packet only (RFC 3551 §4.1: the stream is one talkspurt). The
//! counters run continuously for the whole call: music and prompts are one stream, so a
//! receiver's jitter buffer never sees a discontinuity when an announcement starts or ends.
//!
//! The audio is not owned: music and prompts are `bytes::Bytes` of pre-encoded 160-byte frames
//! shared by every call (a clone is a refcount). The player keeps byte offsets into them.
//! Music loops; [`Player::enqueue_prompt`] pauses the music, plays the prompt frames, then
//! resumes the music at the frame where it paused and reports [`PlayerEvent::PromptDone`].
//!
//! A [`Prompt`] is a list of such shared pieces played back to back (one clip per word, one
//! slice of shared silence per pause), never one buffer per call: "you are number 4 123"
//! costs a caller a few hundred bytes of refcounts however long it takes to say, which is
//! what keeps memory per held caller flat when thousands hear different numbers at once.
//!
//! Each stream starts at music frame 0 rather than a random offset: callers expect hold music
//! to start from its beginning, and a random offset buys nothing for the engine (every stream
//! reads the same shared bytes either way; calls arrive at different times, so their cursors
//! spread out on their own).
//!
//! [`Player::write_next`] is the per-packet hot path: header plus a 160-byte `memcpy` into a
//! caller-provided buffer. It allocates nothing and takes no lock.

use std::collections::VecDeque;

use bytes::Bytes;
use rand::Rng;

use super::rtp::{RTP_HEADER_LEN, RtpHeader};

/// Bytes of one 20 ms G.711 frame (8 kHz, 8 bits per sample).
pub const FRAME_LEN: usize = 160;

/// RTP timestamp increment per frame: 160 samples at the 8 kHz G.711 clock.
pub const FRAME_SAMPLES: u32 = 160;

/// Size of one outgoing RTP packet: fixed header plus one frame.
pub const PACKET_LEN: usize = RTP_HEADER_LEN + FRAME_LEN;

/// Why a buffer cannot be used as a sequence of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramesError {
    /// No frame at all: nothing to loop or play.
    #[error("no audio frames")]
    Empty,
    /// The length is not a whole number of 160-byte frames.
    #[error("{len} bytes is not a whole number of 160-byte frames")]
    NotWholeFrames {
        /// Length of the buffer.
        len: usize,
    },
}

/// Checks that `frames` holds one or more whole 160-byte frames and returns how many.
pub fn frame_count(frames: &[u8]) -> Result<usize, FramesError> {
    if frames.is_empty() {
        Err(FramesError::Empty)
    } else if !frames.len().is_multiple_of(FRAME_LEN) {
        Err(FramesError::NotWholeFrames { len: frames.len() })
    } else {
        Ok(frames.len() / FRAME_LEN)
    }
}

/// Audio to play once, as pieces of shared frames played back to back.
///
/// Every piece is a non-empty whole number of frames (checked by [`Prompt::push`]), so the
/// player's hot path never checks lengths. Cloning costs one small allocation and a refcount
/// per piece; the audio itself is never copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    pieces: Vec<Bytes>,
    frames: usize,
}

impl Prompt {
    /// A prompt of one piece.
    pub fn from_frames(frames: Bytes) -> Result<Self, FramesError> {
        let mut prompt = Prompt::default();
        prompt.push(frames)?;
        Ok(prompt)
    }

    /// Appends a piece: one or more whole frames.
    pub fn push(&mut self, frames: Bytes) -> Result<(), FramesError> {
        self.frames += frame_count(&frames)?;
        self.pieces.push(frames);
        Ok(())
    }

    /// Appends every piece of `other` (already checked).
    pub fn append(&mut self, other: &Prompt) {
        self.pieces.extend(other.pieces.iter().cloned());
        self.frames += other.frames;
    }

    /// How many 20 ms frames it plays.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Whether it plays nothing.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// How long it plays.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_millis(20 * self.frames as u64)
    }

    /// The shared pieces, in playing order.
    pub fn pieces(&self) -> &[Bytes] {
        &self.pieces
    }

    /// All frames in one buffer: what a receiver hears, byte for byte (for comparisons; the
    /// player never needs it).
    pub fn to_bytes(&self) -> Bytes {
        self.pieces.concat().into()
    }
}

/// Something the controller should learn about a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerEvent {
    /// The last frame of the oldest queued prompt was just written; the music (or the next
    /// prompt) follows.
    PromptDone,
}

/// One RTP stream's sender state and audio cursor.
#[derive(Debug, Clone)]
pub struct Player {
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    /// True until the first packet is written (marker bit).
    first: bool,
    music: Bytes,
    /// Byte offset of the next music frame; always a multiple of `FRAME_LEN` below `music.len()`.
    music_pos: usize,
    /// Queued prompts, oldest first; none empty, every piece whole frames.
    prompts: VecDeque<Prompt>,
    /// Index of the playing piece of `prompts.front()`.
    prompt_piece: usize,
    /// That piece itself (a refcount), empty when no prompt plays: the per-packet path
    /// then reads only this struct and the shared audio, never the queue's heap memory,
    /// which is cold by the time the stream's next turn comes 20 ms later.
    piece: Bytes,
    /// Byte offset of the next frame in `piece`; same invariant as `music_pos`.
    prompt_pos: usize,
}

impl Player {
    /// A player with random SSRC, initial sequence and timestamp (RFC 3550 §5.1), starting at
    /// music frame 0.
    pub fn new(payload_type: u8, music: Bytes, rng: &mut impl Rng) -> Result<Self, FramesError> {
        Self::with_initial(
            payload_type,
            music,
            rng.random(),
            rng.random(),
            rng.random(),
        )
    }

    /// A player with the given SSRC and initial counters (tests, or a restarted stream).
    pub fn with_initial(
        payload_type: u8,
        music: Bytes,
        ssrc: u32,
        sequence: u16,
        timestamp: u32,
    ) -> Result<Self, FramesError> {
        frame_count(&music)?;
        Ok(Player {
            payload_type: payload_type & 0x7f,
            ssrc,
            sequence,
            timestamp,
            first: true,
            music,
            music_pos: 0,
            prompts: VecDeque::new(),
            prompt_piece: 0,
            piece: Bytes::new(),
            prompt_pos: 0,
        })
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Timestamp the next packet will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Index of the music frame that plays next once no prompt is pending.
    pub fn music_frame(&self) -> usize {
        self.music_pos / FRAME_LEN
    }

    /// Whether a prompt is playing or queued (the music is paused).
    pub fn is_prompting(&self) -> bool {
        !self.prompts.is_empty()
    }

    /// Replaces the music (e.g. a re-INVITE changed the codec) and restarts it at frame 0.
    /// SSRC, sequence and timestamp continue: it is still the same stream.
    pub fn set_music(&mut self, payload_type: u8, music: Bytes) -> Result<(), FramesError> {
        frame_count(&music)?;
        self.payload_type = payload_type & 0x7f;
        self.music = music;
        self.music_pos = 0;
        Ok(())
    }

    /// Queues an announcement: after any prompts already queued, the music pauses, these
    /// frames play, and the music resumes where it paused.
    pub fn enqueue_prompt(&mut self, prompt: Prompt) -> Result<(), FramesError> {
        if prompt.is_empty() {
            return Err(FramesError::Empty);
        }
        if self.prompts.is_empty() {
            self.piece = prompt.pieces[0].clone();
        }
        self.prompts.push_back(prompt);
        Ok(())
    }

    /// Drops every queued prompt, cutting the one playing short mid-frame-run, and starts
    /// `prompt` with the next packet. The dropped prompts report no `PromptDone`.
    pub fn interrupt_with(&mut self, prompt: Prompt) -> Result<(), FramesError> {
        if prompt.is_empty() {
            return Err(FramesError::Empty);
        }
        self.prompts.clear();
        self.prompt_piece = 0;
        self.prompt_pos = 0;
        self.piece = Bytes::new();
        self.enqueue_prompt(prompt)
    }

    /// Writes the next packet (header + frame) into `out` and advances the stream.
    ///
    /// Returns [`PlayerEvent::PromptDone`] when this packet carried a prompt's last frame.
    #[inline]
    pub fn write_next(&mut self, out: &mut [u8; PACKET_LEN]) -> Option<PlayerEvent> {
        let header = RtpHeader::new(
            self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
            self.first,
        );
        let (head, body) = out.split_at_mut(RTP_HEADER_LEN);
        let head: &mut [u8; RTP_HEADER_LEN] = head
            .try_into()
            .expect("split_at_mut(RTP_HEADER_LEN) of a PACKET_LEN array");
        header.write_fixed(head);
        self.first = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES);

        // Slicing cannot go out of bounds: both offsets are multiples of FRAME_LEN strictly
        // below their buffer's length, which is a non-zero multiple of FRAME_LEN (checked by
        // `frame_count` on every way in); `piece` is a piece of a queued prompt or empty.
        if !self.piece.is_empty() {
            body.copy_from_slice(&self.piece[self.prompt_pos..self.prompt_pos + FRAME_LEN]);
            self.prompt_pos += FRAME_LEN;
            if self.prompt_pos == self.piece.len() {
                return self.next_piece();
            }
        } else {
            body.copy_from_slice(&self.music[self.music_pos..self.music_pos + FRAME_LEN]);
            self.music_pos += FRAME_LEN;
            if self.music_pos == self.music.len() {
                self.music_pos = 0;
            }
        }
        None
    }

    /// Moves on from a finished piece: to the next piece of the prompt, or to the next
    /// prompt (reporting this one done), or back to the music.
    fn next_piece(&mut self) -> Option<PlayerEvent> {
        self.prompt_pos = 0;
        self.prompt_piece += 1;
        let front = self.prompts.front()?;
        if let Some(piece) = front.pieces.get(self.prompt_piece) {
            self.piece = piece.clone();
            return None;
        }
        self.prompts.pop_front();
        self.prompt_piece = 0;
        self.piece = self
            .prompts
            .front()
            .map(|next| next.pieces[0].clone())
            .unwrap_or_default();
        Some(PlayerEvent::PromptDone)
    }

    /// Continues the stream from counters advanced by someone else: while the stream was
    /// bridged, relayed packets went out on this SSRC (see `super::rewrite`), so music that
    /// resumes must carry the sequence after the last relayed packet and the timestamp of
    /// the relay's timeline. The next packet carries the marker bit: a new talkspurt from a
    /// new source (RFC 3551 §4.1).
    pub fn continue_at(&mut self, sequence: u16, timestamp: u32) {
        self.sequence = sequence;
        self.timestamp = timestamp;
        self.first = true;
    }

    /// Accounts for `frames` send slots that were skipped because the engine fell behind: the
    /// timestamp advances with real time (the receiver plays silence for the gap, RFC 3550
    /// §5.1), the sequence does not (nothing was lost in the network) and the audio resumes
    /// where it stopped.
    pub fn skip(&mut self, frames: u32) {
        self.timestamp = self
            .timestamp
            .wrapping_add(frames.wrapping_mul(FRAME_SAMPLES));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// `n` frames where every byte of frame `i` is `base + i`.
    fn frames(n: u8, base: u8) -> Bytes {
        let mut v = Vec::new();
        for i in 0..n {
            v.extend(std::iter::repeat_n(base + i, FRAME_LEN));
        }
        Bytes::from(v)
    }

    /// Writes one packet and returns (header, frame byte, event).
    fn step(p: &mut Player) -> (RtpHeader, u8, Option<PlayerEvent>) {
        let mut buf = [0u8; PACKET_LEN];
        let ev = p.write_next(&mut buf);
        let (h, payload) = RtpHeader::parse(&buf).unwrap();
        assert_eq!(payload.len(), FRAME_LEN);
        assert!(
            payload.iter().all(|&b| b == payload[0]),
            "frame copied whole"
        );
        (h, payload[0], ev)
    }

    #[test]
    fn continuous_across_music_loop_and_counter_wrap() {
        // Start just below both wraps so the u16/u32 roll-over is exercised too.
        let mut p = Player::with_initial(0, frames(3, 10), 0xdead, 0xfffe, u32::MAX - 159).unwrap();
        let mut prev: Option<RtpHeader> = None;
        let mut seen = Vec::new();
        for i in 0..10 {
            let (h, byte, ev) = step(&mut p);
            assert_eq!(ev, None);
            assert_eq!(h.ssrc, 0xdead);
            assert_eq!(h.payload_type, 0);
            assert_eq!(h.marker, i == 0, "marker on the first packet only");
            if let Some(prev) = prev {
                assert_eq!(h.sequence, prev.sequence.wrapping_add(1));
                assert_eq!(h.timestamp, prev.timestamp.wrapping_add(160));
            }
            prev = Some(h);
            seen.push(byte);
        }
        assert_eq!(seen, [10, 11, 12, 10, 11, 12, 10, 11, 12, 10]);
    }

    #[test]
    fn prompt_pauses_music_and_resumes_at_paused_frame() {
        let mut p = Player::with_initial(8, frames(4, 0), 1, 100, 1000).unwrap();
        let mut out = Vec::new();
        for _ in 0..2 {
            out.push(step(&mut p));
        }
        assert_eq!(p.music_frame(), 2);
        let mut two_pieces = Prompt::from_frames(frames(1, 200)).unwrap();
        two_pieces.push(frames(1, 201)).unwrap();
        assert_eq!(two_pieces.frames(), 2);
        p.enqueue_prompt(two_pieces).unwrap();
        p.enqueue_prompt(Prompt::from_frames(frames(1, 250)).unwrap())
            .unwrap();
        assert!(p.is_prompting());
        for _ in 0..7 {
            out.push(step(&mut p));
        }
        let bytes: Vec<u8> = out.iter().map(|o| o.1).collect();
        assert_eq!(bytes, [0, 1, 200, 201, 250, 2, 3, 0, 1]);
        let events: Vec<bool> = out.iter().map(|o| o.2.is_some()).collect();
        assert_eq!(
            events,
            [false, false, false, true, true, false, false, false, false]
        );
        assert!(!p.is_prompting());
        for (i, (h, _, _)) in out.iter().enumerate() {
            assert_eq!(h.sequence, 100 + i as u16);
            assert_eq!(h.timestamp, 1000 + 160 * i as u32);
            assert_eq!(h.marker, i == 0);
            assert_eq!(h.payload_type, 8);
        }
    }

    #[test]
    fn interrupt_cuts_the_playing_prompt_and_drops_the_queue() {
        let mut p = Player::with_initial(0, frames(4, 0), 1, 0, 0).unwrap();
        let mut offer = Prompt::from_frames(frames(3, 100)).unwrap();
        offer.push(frames(2, 110)).unwrap();
        p.enqueue_prompt(offer).unwrap();
        p.enqueue_prompt(Prompt::from_frames(frames(1, 150)).unwrap())
            .unwrap();
        let mut out = vec![step(&mut p), step(&mut p)];
        // The key press: the confirmation starts with the very next packet.
        p.interrupt_with(Prompt::from_frames(frames(2, 200)).unwrap())
            .unwrap();
        for _ in 0..4 {
            out.push(step(&mut p));
        }
        let bytes: Vec<u8> = out.iter().map(|o| o.1).collect();
        assert_eq!(bytes, [100, 101, 200, 201, 0, 1]);
        let done: Vec<bool> = out.iter().map(|o| o.2.is_some()).collect();
        assert_eq!(done, [false, false, false, true, false, false]);
        assert_eq!(p.interrupt_with(Prompt::default()), Err(FramesError::Empty));
    }

    #[test]
    fn random_initial_state_depends_on_rng() {
        let a = Player::new(0, frames(1, 0), &mut StdRng::seed_from_u64(1)).unwrap();
        let b = Player::new(0, frames(1, 0), &mut StdRng::seed_from_u64(2)).unwrap();
        let a2 = Player::new(0, frames(1, 0), &mut StdRng::seed_from_u64(1)).unwrap();
        assert_ne!(
            (a.ssrc(), a.next_sequence(), a.next_timestamp()),
            (b.ssrc(), b.next_sequence(), b.next_timestamp())
        );
        assert_eq!(a.ssrc(), a2.ssrc());
    }

    #[test]
    fn rejects_partial_or_empty_frames() {
        assert_eq!(
            Player::with_initial(0, Bytes::new(), 0, 0, 0).unwrap_err(),
            FramesError::Empty
        );
        let mut p = Player::with_initial(0, frames(1, 0), 0, 0, 0).unwrap();
        assert_eq!(
            Prompt::from_frames(Bytes::from(vec![0u8; 161])),
            Err(FramesError::NotWholeFrames { len: 161 })
        );
        assert_eq!(Prompt::from_frames(Bytes::new()), Err(FramesError::Empty));
        assert_eq!(p.enqueue_prompt(Prompt::default()), Err(FramesError::Empty));
        assert!(!p.is_prompting());
    }

    #[test]
    fn skip_advances_timestamp_only_and_set_music_keeps_counters() {
        let mut p = Player::with_initial(0, frames(2, 0), 7, 10, 0).unwrap();
        step(&mut p);
        p.skip(5);
        let (h, byte, _) = step(&mut p);
        assert_eq!((h.sequence, h.timestamp, byte), (11, 160 * 6, 1));
        p.set_music(8, frames(2, 50)).unwrap();
        let (h, byte, _) = step(&mut p);
        assert_eq!(
            (h.sequence, h.timestamp, byte, h.payload_type),
            (12, 160 * 7, 50, 8)
        );
        assert!(!h.marker);
        p.continue_at(500, 99_999);
        let (h, byte, _) = step(&mut p);
        assert_eq!(
            (h.ssrc, h.sequence, h.timestamp, h.marker, byte),
            (7, 500, 99_999, true, 51),
            "same SSRC, given counters, marker, music where it was"
        );
    }
}
