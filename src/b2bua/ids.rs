//! Every random value the controller makes (tags, branches, the Digest nonce secret) comes
//! from one seeded generator, so a run of the controller is a function of its inputs and
//! its seed: a test or a fuzz case replays exactly. SRTP master keys come from a second
//! generator that production seeds with 256 bits from the OS ([`Ids::seed_keys`]): a key
//! must not be guessable from a 64-bit seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The controller's random source.
#[derive(Debug, Clone)]
pub struct Ids {
    rng: StdRng,
    keys: StdRng,
}

impl Ids {
    /// A source seeded with `seed` (production seeds from the OS at start-up).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            keys: StdRng::seed_from_u64(seed ^ 0x005e_ed0f_5a17),
        }
    }

    /// Seeds the generator of SRTP keys with `seed` (production: 32 bytes from the OS).
    pub fn seed_keys(&mut self, seed: [u8; 32]) {
        self.keys = StdRng::from_seed(seed);
    }

    /// Fresh SRTP master key and salt material (RFC 4568 §6.1: 30 random bytes).
    pub fn key_material(&mut self) -> [u8; crate::srtp::INLINE_LEN] {
        self.keys.random()
    }

    /// A fresh `From`/`To` tag (RFC 3261 §19.3: at least 32 random bits; this has 64).
    pub fn tag(&mut self) -> String {
        format!("{:016x}", self.rng.random::<u64>())
    }

    /// A fresh branch: the magic cookie `z9hG4bK` plus 64 random bits (RFC 3261 §8.1.1.7).
    pub fn branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.rng.random::<u64>())
    }

    /// 32 random bytes (the Digest nonce secret).
    pub fn secret(&mut self) -> [u8; 32] {
        self.rng.random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let (mut a, mut b) = (Ids::new(7), Ids::new(7));
        assert_eq!((a.tag(), a.branch()), (b.tag(), b.branch()));
        assert!(a.branch().starts_with("z9hG4bK"));
        assert_ne!(Ids::new(8).tag(), Ids::new(7).tag());
    }
}
