//! Mixing for supervisor monitoring (docs/behaviour.md §5, "Listening, whispering, barging"):
//! the few hundred bytes of state and the sample arithmetic a monitored call needs. Only a
//! monitored call pays for it: an unmonitored relay forwards G.711 bytes untouched.
//!
//! ```text
//!  caller ──▶ relay ──▶ agent        listen:  supervisor hears caller + agent
//!    │  ▲          ▲ │               whisper: … and the agent hears caller + supervisor
//!    ▼  │ (barge)  │ ▼               barge:   … and the caller hears agent + supervisor
//!  [caller fifo] [agent fifo] ──mix, on the supervisor's clock slot──▶ supervisor
//!  supervisor ──▶ [to agent fifo] [to caller fifo] ──mixed into the relayed packet
//! ```
//!
//! Each side's frames wait in a [`Fifo`] of a few frames: the supervisor's clock takes one
//! per 20 ms from each, and a relayed packet takes one of the supervisor's. A side that
//! sends nothing is silence; a side that runs ahead loses its oldest frame, so the delay
//! stays under [`FIFO_FRAMES`] × 20 ms.

use super::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
use super::recording::Law;

/// Frames a fifo holds (80 ms at 20 ms a frame).
pub const FIFO_FRAMES: usize = 4;
/// Samples a frame holds at most (40 ms at 8 kHz; longer packets are cut).
pub const FRAME_MAX: usize = 320;

/// What a supervisor does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MonitorMode {
    /// Hears both sides; neither hears the supervisor.
    Listen,
    /// Hears both sides; the agent hears the supervisor, the caller does not.
    Whisper,
    /// Hears both sides; both hear the supervisor.
    Barge,
}

impl MonitorMode {
    /// Its name in events and on the wallboard.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::Whisper => "whisper",
            Self::Barge => "barge",
        }
    }

    /// Whether the agent hears the supervisor.
    #[must_use]
    pub fn to_agent(self) -> bool {
        self != Self::Listen
    }

    /// Whether the caller hears the supervisor.
    #[must_use]
    pub fn to_caller(self) -> bool {
        self == Self::Barge
    }
}

/// A few frames of linear audio, oldest first.
#[derive(Debug, Clone)]
pub struct Fifo {
    frames: [[i16; FRAME_MAX]; FIFO_FRAMES],
    lens: [usize; FIFO_FRAMES],
    head: usize,
    len: usize,
}

impl Default for Fifo {
    fn default() -> Self {
        Self {
            frames: [[0; FRAME_MAX]; FIFO_FRAMES],
            lens: [0; FIFO_FRAMES],
            head: 0,
            len: 0,
        }
    }
}

impl Fifo {
    /// Adds a G.711 payload as a frame, dropping the oldest when full.
    pub fn push(&mut self, law: Law, payload: &[u8]) {
        if self.len == FIFO_FRAMES {
            self.head = (self.head + 1) % FIFO_FRAMES;
            self.len -= 1;
        }
        let slot = (self.head + self.len) % FIFO_FRAMES;
        let n = payload.len().min(FRAME_MAX);
        let decode = decoder(law);
        for (out, &b) in self.frames[slot][..n].iter_mut().zip(payload) {
            *out = decode(b);
        }
        self.lens[slot] = n;
        self.len += 1;
    }

    /// The oldest frame, taken out (`None`: nothing waits, i.e. silence).
    pub fn pop(&mut self) -> Option<&[i16]> {
        if self.len == 0 {
            return None;
        }
        let slot = self.head;
        self.head = (self.head + 1) % FIFO_FRAMES;
        self.len -= 1;
        Some(&self.frames[slot][..self.lens[slot]])
    }

    /// Frames waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn decoder(law: Law) -> fn(u8) -> i16 {
    match law {
        Law::Mu => ulaw_to_linear,
        Law::A => alaw_to_linear,
    }
}

fn encoder(law: Law) -> fn(i16) -> u8 {
    match law {
        Law::Mu => linear_to_ulaw,
        Law::A => linear_to_alaw,
    }
}

/// Mixes `extra` into the G.711 `payload` in place (sample by sample, saturating).
pub fn mix_into(payload: &mut [u8], law: Law, extra: &[i16]) {
    let (decode, encode) = (decoder(law), encoder(law));
    for (b, &s) in payload.iter_mut().zip(extra) {
        *b = encode(decode(*b).saturating_add(s));
    }
}

/// Writes `out.len()` G.711 bytes: the sum of `a` and `b` (missing samples are silence).
pub fn mix_pair(out: &mut [u8], law: Law, a: Option<&[i16]>, b: Option<&[i16]>) {
    let encode = encoder(law);
    let at = |f: Option<&[i16]>, i: usize| f.and_then(|f| f.get(i)).copied().unwrap_or(0);
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = encode(at(a, i).saturating_add(at(b, i)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mu(level: i16) -> u8 {
        linear_to_ulaw(level)
    }

    #[test]
    fn a_fifo_keeps_the_newest_frames_in_order() {
        let mut f = Fifo::default();
        assert!(f.pop().is_none());
        for level in [100, 200, 300, 400, 500] {
            f.push(Law::Mu, &[mu(level); 160]);
        }
        assert_eq!(f.len(), FIFO_FRAMES);
        let first = f.pop().unwrap();
        assert_eq!((first.len(), first[0]), (160, ulaw_to_linear(mu(200))));
        for level in [300, 400, 500] {
            assert_eq!(f.pop().unwrap()[159], ulaw_to_linear(mu(level)));
        }
        assert!(f.is_empty());
        // A-law in, a frame longer than the most is cut.
        f.push(Law::A, &[linear_to_alaw(-1000); 400]);
        assert_eq!(
            f.pop().unwrap(),
            &[alaw_to_linear(linear_to_alaw(-1000)); FRAME_MAX][..]
        );
    }

    #[test]
    fn mixing_adds_and_saturates() {
        let mut payload = [mu(1000); 160];
        mix_into(&mut payload, Law::Mu, &[2000; 160]);
        let heard = ulaw_to_linear(payload[0]);
        assert!((2900..=3100).contains(&heard), "{heard}");
        let mut loud = [mu(30_000); 4];
        mix_into(&mut loud, Law::Mu, &[30_000; 4]);
        assert_eq!(ulaw_to_linear(loud[0]), ulaw_to_linear(mu(i16::MAX)));
        let mut out = [0u8; 160];
        mix_pair(&mut out, Law::A, Some(&[500; 160]), None);
        assert_eq!(out, [linear_to_alaw(500); 160]);
        mix_pair(&mut out, Law::A, None, None);
        assert_eq!(out, [linear_to_alaw(0); 160]);
    }

    #[test]
    fn who_hears_the_supervisor() {
        use MonitorMode::*;
        assert_eq!(
            [Listen, Whisper, Barge].map(MonitorMode::to_agent),
            [false, true, true]
        );
        assert_eq!(
            [Listen, Whisper, Barge].map(MonitorMode::to_caller),
            [false, false, true]
        );
    }
}
