//! G.711 companding: µ-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8).
//!
//! This module owns the sample codec used for every byte of audio holdfast sends: ITU-T
//! Recommendation G.711 (11/88), with the RTP payload names of RFC 3551 §4.5.14. The
//! algorithms are the classic public-domain Sun Microsystems `g711.c` ones, taking and
//! returning 16-bit linear PCM (µ-law works on the top 14 bits, A-law on the top 13).
//!
//! Both directions are table driven. Decoding is a 256-entry lookup. Encoding looks up a
//! table indexed by the bits the companding law actually uses (16 Ki entries for µ-law,
//! 8 Ki for A-law, one byte each), so a sample costs a shift and a load. All four tables are
//! computed at compile time from the reference segment-search algorithm below, which stays
//! the single source of truth and is what the tests compare the tables against. A quick
//! measurement (`table_encode_is_not_slower`, release build) found the table about ten times
//! faster than the segment search (under half a nanosecond per sample); the tables cost
//! 24 KiB of read-only data and no start-up time.

/// Which G.711 companding law a stream uses, as negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, RTP payload type 0 (`PCMU/8000`), used in North America and Japan.
    Mu,
    /// A-law, RTP payload type 8 (`PCMA/8000`), used in most of the rest of the world.
    A,
}

impl Law {
    /// Encodes 16-bit linear PCM into a new buffer of G.711 bytes, one byte per sample.
    #[must_use]
    pub fn encode(&self, pcm: &[i16]) -> Vec<u8> {
        let mut out = Vec::with_capacity(pcm.len());
        match self {
            Law::Mu => encode_ulaw(pcm, &mut out),
            Law::A => encode_alaw(pcm, &mut out),
        }
        out
    }

    /// Decodes G.711 bytes into a new buffer of 16-bit linear PCM.
    #[must_use]
    pub fn decode(&self, bytes: &[u8]) -> Vec<i16> {
        let mut out = Vec::with_capacity(bytes.len());
        match self {
            Law::Mu => decode_ulaw(bytes, &mut out),
            Law::A => decode_alaw(bytes, &mut out),
        }
        out
    }

    /// The byte that encodes linear zero: 0xFF for µ-law, 0xD5 for A-law.
    ///
    /// Used to pad the last frame of a clip; it decodes to exact silence (µ-law) or the
    /// smallest positive step (A-law has no zero code), both inaudible.
    #[must_use]
    pub const fn silence_byte(&self) -> u8 {
        match self {
            Law::Mu => 0xFF,
            Law::A => 0xD5,
        }
    }

    /// Encodes one linear sample with this law.
    #[must_use]
    pub fn encode_sample(&self, sample: i16) -> u8 {
        match self {
            Law::Mu => linear_to_ulaw(sample),
            Law::A => linear_to_alaw(sample),
        }
    }

    /// Decodes one G.711 byte with this law.
    #[must_use]
    pub fn decode_sample(&self, byte: u8) -> i16 {
        match self {
            Law::Mu => ulaw_to_linear(byte),
            Law::A => alaw_to_linear(byte),
        }
    }
}

/// µ-law bias added to the magnitude before the segment search (0x84 in the 16-bit domain).
const ULAW_BIAS: i32 = 0x84;
/// Largest 14-bit µ-law magnitude before the bias is added; G.711 clips above it.
const ULAW_CLIP: i32 = 8159;
/// Upper end of each µ-law segment, in the biased 14-bit domain.
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper end of each A-law segment, in the 13-bit domain.
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// Index of the first segment whose upper end is at least `value` (8 if none is).
const fn segment(value: i32, ends: &[i32; 8]) -> i32 {
    let mut seg = 0;
    while seg < 8 {
        if value <= ends[seg] {
            return seg as i32;
        }
        seg += 1;
    }
    8
}

/// Reference µ-law encoder (Sun `linear2ulaw`) on a 16-bit sample.
const fn ulaw_reference(sample: i16) -> u8 {
    // Only the top 14 bits take part in µ-law.
    let mut pcm = (sample as i32) >> 2;
    let mask = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    if pcm > ULAW_CLIP {
        pcm = ULAW_CLIP;
    }
    pcm += ULAW_BIAS >> 2;
    let seg = segment(pcm, &SEG_UEND);
    // The clipped, biased magnitude can reach 0x2000, one past the last segment: that is
    // the full-scale code.
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let code = (seg << 4) | ((pcm >> (seg + 1)) & 0xF);
    (code ^ mask) as u8
}

/// Reference A-law encoder (Sun `linear2alaw`) on a 16-bit sample.
const fn alaw_reference(sample: i16) -> u8 {
    // Only the top 13 bits take part in A-law.
    let mut pcm = (sample as i32) >> 3;
    // A-law transmits with even bits inverted (XOR 0x55); the sign bit is set for positive.
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &SEG_AEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let quant = if seg < 2 { pcm >> 1 } else { pcm >> seg } & 0xF;
    (((seg << 4) | quant) ^ mask) as u8
}

/// Reference µ-law decoder (Sun `ulaw2linear`), 16-bit output.
const fn ulaw_decode_reference(byte: u8) -> i16 {
    let u = !byte as i32;
    let t = (((u & 0xF) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

/// Reference A-law decoder (Sun `alaw2linear`), 16-bit output.
const fn alaw_decode_reference(byte: u8) -> i16 {
    let a = (byte ^ 0x55) as i32;
    let mut t = (a & 0xF) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// µ-law encode table, indexed by the top 14 bits of the sample (`sample >> 2`).
static ULAW_ENCODE: [u8; 1 << 14] = {
    let mut table = [0u8; 1 << 14];
    let mut i = 0;
    while i < table.len() {
        // Index i holds the 14-bit two's-complement value; rebuild a 16-bit sample with it.
        table[i] = ulaw_reference(((i as u16) << 2) as i16);
        i += 1;
    }
    table
};

/// A-law encode table, indexed by the top 13 bits of the sample (`sample >> 3`).
static ALAW_ENCODE: [u8; 1 << 13] = {
    let mut table = [0u8; 1 << 13];
    let mut i = 0;
    while i < table.len() {
        table[i] = alaw_reference(((i as u16) << 3) as i16);
        i += 1;
    }
    table
};

/// µ-law decode table, one entry per byte.
static ULAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_reference(i as u8);
        i += 1;
    }
    table
};

/// A-law decode table, one entry per byte.
static ALAW_DECODE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_reference(i as u8);
        i += 1;
    }
    table
};

/// Encodes one 16-bit linear sample to µ-law.
#[inline]
#[must_use]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // `as u16 >> 2` keeps the 14 significant bits as an index below 1 << 14.
    ULAW_ENCODE[(sample as u16 >> 2) as usize]
}

/// Decodes one µ-law byte to 16-bit linear PCM (range ±32 124).
#[inline]
#[must_use]
pub fn ulaw_to_linear(byte: u8) -> i16 {
    ULAW_DECODE[byte as usize]
}

/// Encodes one 16-bit linear sample to A-law.
#[inline]
#[must_use]
pub fn linear_to_alaw(sample: i16) -> u8 {
    ALAW_ENCODE[(sample as u16 >> 3) as usize]
}

/// Decodes one A-law byte to 16-bit linear PCM (range ±32 256).
#[inline]
#[must_use]
pub fn alaw_to_linear(byte: u8) -> i16 {
    ALAW_DECODE[byte as usize]
}

/// Appends the µ-law encoding of `pcm` to `out`.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
}

/// Appends the A-law encoding of `pcm` to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
}

/// Appends the linear decoding of the µ-law bytes `bytes` to `out`.
pub fn decode_ulaw(bytes: &[u8], out: &mut Vec<i16>) {
    out.extend(bytes.iter().map(|&b| ulaw_to_linear(b)));
}

/// Appends the linear decoding of the A-law bytes `bytes` to `out`.
pub fn decode_alaw(bytes: &[u8], out: &mut Vec<i16>) {
    out.extend(bytes.iter().map(|&b| alaw_to_linear(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_samples() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    #[test]
    fn tables_match_reference_algorithm() {
        for s in all_samples() {
            assert_eq!(linear_to_ulaw(s), ulaw_reference(s), "µ-law {s}");
            assert_eq!(linear_to_alaw(s), alaw_reference(s), "A-law {s}");
        }
        for b in 0..=255u8 {
            assert_eq!(ulaw_to_linear(b), ulaw_decode_reference(b));
            assert_eq!(alaw_to_linear(b), alaw_decode_reference(b));
        }
    }

    #[test]
    fn known_vectors() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(Law::Mu.silence_byte(), linear_to_ulaw(0));
        assert_eq!(Law::A.silence_byte(), linear_to_alaw(0));
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        // Full scale: µ-law 0x80/0x00, A-law 0xAA/0x2A (G.711 Tables 2a/2b).
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        // A mid-range value from the µ-law table: 1000 lies in segment 3 (step 64).
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(ulaw_to_linear(0xCE), 988);
    }

    /// Distance between neighbouring decoded values of the segment holding `byte`.
    fn step(byte: u8, law: Law) -> i32 {
        let seg = i32::from((byte & 0x70) >> 4);
        match law {
            Law::Mu => 8 << seg,
            Law::A => 16 << (seg - 1).max(0),
        }
    }

    #[test]
    fn round_trip_error_is_bounded_by_the_segment_step() {
        for law in [Law::Mu, Law::A] {
            for s in all_samples() {
                let code = law.encode_sample(s);
                let back = i32::from(law.decode_sample(code));
                let err = (i32::from(s) - back).abs();
                let step = step(code ^ if law == Law::A { 0x55 } else { 0xFF }, law);
                let top = i32::from(law.decode_sample(law.encode_sample(i16::MAX)));
                // µ-law drops the two low bits with an arithmetic shift before taking the
                // magnitude, so negative samples can land up to 3 further off; A-law's
                // one's-complement magnitude keeps both signs centred.
                let slack = if law == Law::Mu { 3 } else { 0 };
                if i32::from(s).abs() <= top {
                    // Inside the coded range the decoder returns the middle of the
                    // quantisation interval, so the error is at most half a step.
                    assert!(
                        err <= step / 2 + slack,
                        "{law:?} {s} -> {code:#x} -> {back}"
                    );
                } else {
                    // Beyond the top level G.711 clips, still within one step.
                    assert!(err <= step + slack, "{law:?} clip {s} -> {back}");
                }
                // Sign is preserved (values near zero may map to either zero code).
                if s.unsigned_abs() > 16 {
                    assert_eq!(s.signum(), (back as i16).signum(), "{law:?} {s}");
                }
            }
        }
    }

    #[test]
    fn encoding_is_monotonic() {
        for law in [Law::Mu, Law::A] {
            let mut last = i16::MIN;
            for s in all_samples() {
                let d = law.decode_sample(law.encode_sample(s));
                assert!(d >= last, "{law:?} not monotonic at {s}");
                last = d;
            }
        }
    }

    #[test]
    fn decode_encode_decode_is_identity() {
        for law in [Law::Mu, Law::A] {
            for b in 0..=255u8 {
                let d = law.decode_sample(b);
                assert_eq!(law.decode_sample(law.encode_sample(d)), d, "{law:?} {b:#x}");
            }
        }
    }

    #[test]
    fn slice_helpers_agree_with_scalar_functions() {
        let pcm: Vec<i16> = (0..1000).map(|i| (i * 65 - 32_000) as i16).collect();
        for law in [Law::Mu, Law::A] {
            let bytes = law.encode(&pcm);
            assert_eq!(bytes.len(), pcm.len());
            let decoded = law.decode(&bytes);
            for ((&s, &b), &d) in pcm.iter().zip(&bytes).zip(&decoded) {
                assert_eq!(b, law.encode_sample(s));
                assert_eq!(d, law.decode_sample(b));
            }
        }
        let mut out = vec![0xAB];
        encode_ulaw(&[0, 0], &mut out);
        assert_eq!(out, [0xAB, 0xFF, 0xFF], "appends, keeps existing bytes");
    }

    /// Measures table lookup against the segment search it replaced; run with
    /// `cargo test --release -- --ignored --nocapture table_encode`.
    #[test]
    #[ignore = "timing measurement, only meaningful in release"]
    fn table_encode_is_not_slower() {
        use std::hint::black_box;
        use std::time::Instant;
        let pcm: Vec<i16> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as i16)
            .collect();
        let t = Instant::now();
        let mut sum = 0u64;
        for _ in 0..20 {
            sum += black_box(&pcm)
                .iter()
                .map(|&s| u64::from(ulaw_reference(s)))
                .sum::<u64>();
        }
        let search = t.elapsed();
        let t = Instant::now();
        for _ in 0..20 {
            sum += black_box(&pcm)
                .iter()
                .map(|&s| u64::from(linear_to_ulaw(s)))
                .sum::<u64>();
        }
        let table = t.elapsed();
        println!("segment search {search:?}, table {table:?} for 20 M samples ({sum})");
        assert!(table <= search);
    }
}
