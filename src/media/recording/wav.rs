//! The WAV container of a recording: RIFF/WAVE, one `fmt ` chunk (PCM, 2 channels, 8 kHz,
//! 16-bit) and one `data` chunk, in a fixed 44-byte header. The two size fields are written
//! again after every append, so a file cut off by a crash is a valid WAV up to the last
//! update; anything past the stated size is ignored by readers and overwritten when the
//! recording continues.

/// Bytes before the first sample.
pub const HEADER_LEN: u64 = 44;
/// Channels: caller left, agent right.
pub const CHANNELS: u16 = 2;
/// Samples per second per channel.
pub const RATE: u32 = 8_000;
/// Bytes per stereo frame (two 16-bit samples).
pub const FRAME_BYTES: u64 = 4;

/// The header of a file holding `frames` stereo frames.
#[must_use]
pub fn header(frames: u64) -> [u8; HEADER_LEN as usize] {
    let data = data_len(frames);
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data.saturating_add(36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&CHANNELS.to_le_bytes());
    h[24..28].copy_from_slice(&RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(RATE * FRAME_BYTES as u32).to_le_bytes());
    h[32..34].copy_from_slice(&(FRAME_BYTES as u16).to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data.to_le_bytes());
    h
}

/// The `data` chunk's size for `frames` frames (saturating at the format's 4 GiB limit,
/// about 37 hours of stereo 8 kHz).
fn data_len(frames: u64) -> u32 {
    u32::try_from(frames.saturating_mul(FRAME_BYTES)).unwrap_or(u32::MAX - 36)
}

/// The frames a header written by [`header`] says its file holds, or `None` when `bytes`
/// is not such a header (another format, another program's file).
#[must_use]
pub fn frames_in(bytes: &[u8]) -> Option<u64> {
    let h: &[u8; HEADER_LEN as usize] = bytes.get(..HEADER_LEN as usize)?.try_into().ok()?;
    let data = u32::from_le_bytes(h[40..44].try_into().ok()?);
    (header(u64::from(data) / FRAME_BYTES)[..40] == h[..40])
        .then_some(u64::from(data) / FRAME_BYTES)
}

/// The frames the header of `file` states, when it is a header of ours ([`frames_in`]).
#[must_use]
pub fn frames_of(file: &std::fs::File) -> Option<u64> {
    let mut head = [0u8; HEADER_LEN as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut head, 0).ok()?;
    frames_in(&head)
}

/// Interleaved samples as little-endian bytes, appended to `out`.
pub fn samples_le(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_its_frame_count() {
        for frames in [0, 1, 8_000, 480_000] {
            let h = header(frames);
            assert_eq!(frames_in(&h), Some(frames));
            assert_eq!(&h[0..4], b"RIFF");
            assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 8_000);
            assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 32_000);
        }
    }

    #[test]
    fn another_format_is_not_taken_for_ours() {
        let mut h = header(10);
        h[22] = 1; // mono
        assert_eq!(frames_in(&h), None);
        assert_eq!(frames_in(b"RIFF"), None);
    }
}
