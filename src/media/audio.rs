//! Audio file loading: decode → mono → 8 kHz → 16-bit PCM → G.711 frames, once at start-up.
//!
//! This module owns turning an operator's hold-music or prompt file (WAV, FLAC, Ogg/Vorbis or
//! MP3, decoded by symphonia) into the 8 000 Hz mono signal that G.711 carries (ITU-T G.711;
//! RTP clock rate and 20 ms packetisation per RFC 3551 §4.5.14 and §4.2), and then into the
//! pre-encoded 160-byte frames every call shares. All channels are averaged to mono, and any
//! other sample rate goes through rubato's FFT resampler, a windowed-sinc band-limited filter,
//! so content above 4 kHz is removed rather than folded back as aliasing.
//!
//! Nothing here runs per call or per packet; it is start-up work, kept fast enough that a
//! minute of CD-quality stereo loads in a fraction of a second in a release build.

use std::io::{self, Cursor};
use std::path::Path;

use bytes::Bytes;
use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::conv::IntoSample;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::sample::Sample;

use super::g711::Law;

/// The G.711 sample rate, in Hz.
pub const SAMPLE_RATE: u32 = 8_000;

/// Bytes (= samples) in one 20 ms G.711 frame, the RTP packetisation holdfast sends.
pub const FRAME_BYTES: usize = 160;

/// Why an audio file could not be turned into 8 kHz PCM. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file does not exist.
    #[error("{file}: audio file not found")]
    NotFound {
        /// The path as configured.
        file: String,
    },
    /// The file exists but could not be read (permissions, I/O error).
    #[error("{file}: cannot read audio file: {source}")]
    Read {
        /// The path as configured.
        file: String,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The container or codec is not one holdfast decodes (WAV, FLAC, Ogg/Vorbis, MP3).
    #[error("{file}: unsupported audio format: {reason}")]
    Unsupported {
        /// The path as configured, or a description of embedded audio.
        file: String,
        /// What the decoder did not recognise.
        reason: String,
    },
    /// The format was recognised but the data is corrupt or truncated.
    #[error("{file}: cannot decode audio: {reason}")]
    Decode {
        /// The path as configured, or a description of embedded audio.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The file decoded to no samples at all.
    #[error("{file}: audio file contains no samples")]
    Empty {
        /// The path as configured, or a description of embedded audio.
        file: String,
    },
}

/// Loads an audio file as mono 16-bit PCM at 8 000 Hz.
///
/// The extension only hints the format; symphonia also sniffs the content.
pub fn load_pcm8k(path: &Path) -> Result<Vec<i16>, AudioError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            AudioError::NotFound { file: file.clone() }
        } else {
            AudioError::Read {
                file: file.clone(),
                source,
            }
        }
    })?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    load(bytes, ext, &file)
}

/// Loads in-memory audio (e.g. music embedded with `include_bytes!`) as mono 16-bit PCM at
/// 8 000 Hz. `hint_ext` is the file extension it would have on disk (`"flac"`, `"wav"`, …).
pub fn load_pcm8k_from_bytes(bytes: Vec<u8>, hint_ext: &str) -> Result<Vec<i16>, AudioError> {
    load(bytes, hint_ext, &format!("embedded .{hint_ext} audio"))
}

/// Encodes 8 kHz PCM with `law` and pads it with silence to a whole number of 20 ms frames.
///
/// The result is shared by every call playing this clip; frame `i` is
/// `bytes.slice(i * FRAME_BYTES..(i + 1) * FRAME_BYTES)`, a reference-count bump, not a copy.
#[must_use]
pub fn frames(pcm: &[i16], law: Law) -> Bytes {
    let mut out = Vec::with_capacity(pcm.len().div_ceil(FRAME_BYTES) * FRAME_BYTES);
    out.extend_from_slice(&law.encode(pcm));
    out.resize(
        out.len().div_ceil(FRAME_BYTES) * FRAME_BYTES,
        law.silence_byte(),
    );
    Bytes::from(out)
}

/// Decodes, mixes, resamples and quantises; `file` only labels errors.
fn load(bytes: Vec<u8>, ext: &str, file: &str) -> Result<Vec<i16>, AudioError> {
    let (mono, rate) = decode_mono(bytes, ext, file)?;
    if mono.is_empty() {
        return Err(AudioError::Empty {
            file: file.to_owned(),
        });
    }
    let pcm = resample(mono, rate).map_err(|reason| AudioError::Unsupported {
        file: file.to_owned(),
        reason,
    })?;
    Ok(pcm.iter().map(|&x| to_i16(x)).collect())
}

/// Converts a float sample in [-1, 1) to 16-bit, clipping anything the filter overshot.
fn to_i16(x: f32) -> i16 {
    // 32 768 is the scale symphonia uses for i16 → f32, so 16-bit input survives unchanged.
    (x * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// Decodes the first audio track to mono f32 and returns it with its sample rate.
fn decode_mono(bytes: Vec<u8>, ext: &str, file: &str) -> Result<(Vec<f32>, u32), AudioError> {
    let unsupported = |reason: String| AudioError::Unsupported {
        file: file.to_owned(),
        reason,
    };
    let corrupt = |reason: String| AudioError::Decode {
        file: file.to_owned(),
        reason,
    };

    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if !ext.is_empty() {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            // Gapless trims MP3 encoder delay and padding, so a loop has no silent gap.
            &FormatOptions {
                enable_gapless: true,
                ..FormatOptions::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::Unsupported(_) => {
                unsupported(format!("not a recognised audio container ({e})"))
            }
            SymphoniaError::IoError(_) => corrupt(format!("truncated header ({e})")),
            other => corrupt(other.to_string()),
        })?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unsupported("no audio track".to_owned()))?;
    let track_id = track.id;
    let mut rate = track.codec_params.sample_rate;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| unsupported(e.to_string()))?;

    let mut mono = Vec::new();
    let mut skipped: Option<String> = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            // symphonia reports the end of the stream as an unexpected EOF.
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            // A chained Ogg stream or similar: treat the first stream as the whole file.
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(corrupt(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buffer) => {
                let this_rate = buffer.spec().rate;
                match rate {
                    Some(r) if r != this_rate => {
                        return Err(unsupported(format!(
                            "sample rate changes mid-stream ({r} Hz to {this_rate} Hz)"
                        )));
                    }
                    _ => rate = Some(this_rate),
                }
                mix_to_mono(&buffer, &mut mono);
            }
            // One damaged packet (common at the start of MP3s) costs a few milliseconds of
            // sound; keep going and only fail if nothing decodes at all.
            Err(SymphoniaError::DecodeError(e)) => skipped = Some(e.to_owned()),
            Err(e) => return Err(corrupt(e.to_string())),
        }
    }
    if mono.is_empty()
        && let Some(reason) = skipped
    {
        return Err(corrupt(reason));
    }
    let rate = rate
        .filter(|&r| r > 0)
        .ok_or_else(|| unsupported("no sample rate".to_owned()))?;
    Ok((mono, rate))
}

/// Appends the average of all channels of `buffer` to `out`, whatever its sample type.
fn mix_to_mono(buffer: &AudioBufferRef<'_>, out: &mut Vec<f32>) {
    match buffer {
        AudioBufferRef::U8(b) => mix_planes(b, out),
        AudioBufferRef::U16(b) => mix_planes(b, out),
        AudioBufferRef::U24(b) => mix_planes(b, out),
        AudioBufferRef::U32(b) => mix_planes(b, out),
        AudioBufferRef::S8(b) => mix_planes(b, out),
        AudioBufferRef::S16(b) => mix_planes(b, out),
        AudioBufferRef::S24(b) => mix_planes(b, out),
        AudioBufferRef::S32(b) => mix_planes(b, out),
        AudioBufferRef::F32(b) => mix_planes(b, out),
        AudioBufferRef::F64(b) => mix_planes(b, out),
    }
}

fn mix_planes<S: Sample + IntoSample<f32>>(buffer: &AudioBuffer<S>, out: &mut Vec<f32>) {
    let channels = buffer.spec().channels.count();
    if channels == 0 {
        return;
    }
    let start = out.len();
    out.resize(start + buffer.frames(), 0.0);
    let mixed = &mut out[start..];
    // symphonia keeps channels planar, so each pass is a straight run through memory.
    for ch in 0..channels {
        for (sum, &s) in mixed.iter_mut().zip(buffer.chan(ch)) {
            *sum += s.into_sample();
        }
    }
    if channels > 1 {
        let scale = 1.0 / channels as f32;
        mixed.iter_mut().for_each(|s| *s *= scale);
    }
}

/// Smallest FFT output block; longer blocks give the anti-alias filter a narrower transition.
const MIN_FFT_OUT: usize = 512;

/// Resamples mono `input` at `rate` Hz to [`SAMPLE_RATE`], keeping its duration.
fn resample(input: Vec<f32>, rate: u32) -> Result<Vec<f32>, String> {
    if rate == SAMPLE_RATE {
        return Ok(input);
    }
    let (rate_in, rate_out) = (rate as usize, SAMPLE_RATE as usize);
    // The FFT resampler works in blocks of whole rate ratios (e.g. 441 in : 80 out for
    // 44.1 kHz); pick enough of them for a sharp filter, and make that the input chunk.
    let gcd = gcd(rate_in, rate_out);
    let (unit_in, unit_out) = (rate_in / gcd, rate_out / gcd);
    let chunk_in = MIN_FFT_OUT.div_ceil(unit_out) * unit_in;
    let mut resampler =
        FftFixedIn::<f32>::new(rate_in, rate_out, chunk_in, 1, 1).map_err(|e| e.to_string())?;

    let wanted = (input.len() as u64 * rate_out as u64).div_ceil(rate_in as u64) as usize;
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(wanted + delay + resampler.output_frames_max());
    let mut block = resampler.output_buffer_allocate(true);
    let mut rest: &[f32] = &input;
    while rest.len() >= resampler.input_frames_next() {
        let (chunk, tail) = rest.split_at(resampler.input_frames_next());
        let (_, written) = resampler
            .process_into_buffer(&[chunk], &mut block, None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&block[0][..written]);
        rest = tail;
    }
    // Feed the last partial chunk (zero padded), then zeros until the filter's delay has
    // been flushed out and the full duration is available.
    // (rubato rejects an empty partial chunk, so pass `None` when the input divided evenly.)
    let mut tail = (!rest.is_empty()).then_some([rest]);
    while out.len() < wanted + delay {
        let flushed = resampler
            .process_partial(tail.take().as_ref().map(|t| &t[..]), None)
            .map_err(|e| e.to_string())?;
        if flushed[0].is_empty() {
            break;
        }
        out.extend_from_slice(&flushed[0]);
    }
    out.drain(..delay);
    out.truncate(wanted);
    Ok(out)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    /// Writes a 16-bit PCM RIFF/WAVE file: `channels[c][i]` is sample `i` of channel `c`.
    fn wav(rate: u32, channels: &[Vec<i16>]) -> Vec<u8> {
        let n = channels[0].len();
        let ch = channels.len() as u16;
        let data_len = (n * channels.len() * 2) as u32;
        let mut out = Vec::with_capacity(44 + data_len as usize);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // PCM
        out.extend_from_slice(&ch.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(ch) * 2).to_le_bytes());
        out.extend_from_slice(&(ch * 2).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for i in 0..n {
            for c in channels {
                out.extend_from_slice(&c[i].to_le_bytes());
            }
        }
        out
    }

    fn sine(freq: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds).round() as usize;
        (0..n)
            .map(|i| (amplitude * (TAU * freq * i as f64 / f64::from(rate)).sin()).round() as i16)
            .collect()
    }

    /// Amplitude of the `freq` component of 8 kHz `pcm` (Goertzel algorithm).
    fn tone_amplitude(pcm: &[i16], freq: f64) -> f64 {
        let coeff = 2.0 * (TAU * freq / f64::from(SAMPLE_RATE)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &x in pcm {
            let s = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        2.0 * power.max(0.0).sqrt() / pcm.len() as f64
    }

    fn rms(pcm: &[i16]) -> f64 {
        (pcm.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
    }

    /// Checks length (±`tolerance`) and that 1 kHz dominates at about `amplitude`.
    fn assert_1khz(pcm: &[i16], seconds: f64, tolerance: f64, amplitude: f64) {
        let expected = seconds * f64::from(SAMPLE_RATE);
        let len = pcm.len() as f64;
        assert!(
            (len - expected).abs() <= expected * tolerance,
            "length {len}, expected {expected}"
        );
        // Skip the edges, where the filter rings against the start and end of the file.
        let middle = &pcm[pcm.len() / 8..pcm.len() * 7 / 8];
        let at_1k = tone_amplitude(middle, 1000.0);
        assert!(
            (at_1k - amplitude).abs() < amplitude * 0.1,
            "1 kHz amplitude {at_1k}, expected {amplitude}"
        );
        for other in [250.0, 500.0, 1500.0, 2000.0, 3000.0, 3900.0] {
            let a = tone_amplitude(middle, other);
            assert!(
                a < at_1k / 50.0,
                "{other} Hz amplitude {a} vs 1 kHz {at_1k}"
            );
        }
    }

    #[test]
    fn stereo_44k1_wav_is_mixed_and_resampled() {
        let left = sine(1000.0, 44_100, 2.0, 16_000.0);
        let right = left.clone();
        let pcm = load_pcm8k_from_bytes(wav(44_100, &[left, right]), "wav").unwrap();
        assert_1khz(&pcm, 2.0, 0.01, 16_000.0);
    }

    #[test]
    fn mono_16k_wav_is_resampled() {
        let pcm = load_pcm8k_from_bytes(wav(16_000, &[sine(1000.0, 16_000, 1.5, 8_000.0)]), "wav")
            .unwrap();
        assert_1khz(&pcm, 1.5, 0.01, 8_000.0);
    }

    #[test]
    fn channels_are_averaged() {
        // A tone on the left only comes out at half amplitude.
        let left = sine(1000.0, 8_000, 1.0, 20_000.0);
        let right = vec![0; left.len()];
        let pcm = load_pcm8k_from_bytes(wav(8_000, &[left, right]), "wav").unwrap();
        assert_1khz(&pcm, 1.0, 0.0, 10_000.0);
    }

    #[test]
    fn audio_already_at_8k_passes_through_unchanged() {
        let input: Vec<i16> = (0..8_000)
            .map(|i| ((i * 37) % 65_536 - 32_768) as i16)
            .collect();
        let pcm = load_pcm8k_from_bytes(wav(8_000, std::slice::from_ref(&input)), "wav").unwrap();
        assert_eq!(pcm, input);
    }

    #[test]
    fn anti_alias_filter_removes_content_above_4khz() {
        let load = |freq| {
            let tone = sine(freq, 44_100, 1.0, 16_000.0);
            load_pcm8k_from_bytes(wav(44_100, &[tone]), "wav").unwrap()
        };
        let pass = load(1000.0);
        // 5 kHz would fold to 3 kHz if the resampler just picked samples.
        let stop = load(5000.0);
        assert_eq!(pass.len(), stop.len());
        let middle = |p: &[i16]| p[1000..p.len() - 1000].to_vec();
        let (pass_rms, stop_rms) = (rms(&middle(&pass)), rms(&middle(&stop)));
        assert!(
            stop_rms < pass_rms / 300.0,
            "5 kHz leaked: rms {stop_rms} vs 1 kHz rms {pass_rms}"
        );
        assert!(tone_amplitude(&middle(&stop), 3000.0) < 20.0);
    }

    #[test]
    fn loud_input_is_clipped_not_wrapped() {
        // Full-scale square wave: the resampler's Gibbs overshoot must clip at ±32 767.
        let square: Vec<i16> = (0..22_050)
            .map(|i| {
                if (i / 50) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        let pcm = load_pcm8k_from_bytes(wav(22_050, &[square]), "wav").unwrap();
        let peak = pcm.iter().map(|&x| i32::from(x).abs()).max().unwrap();
        assert!(
            peak >= 32_767,
            "overshoot should reach full scale, got {peak}"
        );
        // Wrapping would put large negative values inside positive half-cycles.
        let positive_runs_with_negative = pcm
            .windows(3)
            .filter(|w| w[0] > 30_000 && w[2] > 30_000 && w[1] < 0)
            .count();
        assert_eq!(positive_runs_with_negative, 0);
    }

    #[test]
    fn flac_ogg_and_mp3_decode() {
        // 0.5 s of 1 kHz at half scale, 16 kHz mono, made with
        // `sox -n -r 16000 -c 1 [-b 16|-C 24] tone1k.<ext> synth 0.5 sine 1000 vol 0.5`.
        let cases: [(&[u8], &str, f64); 3] = [
            (include_bytes!("../../tests/data/tone1k.flac"), "flac", 0.01),
            (include_bytes!("../../tests/data/tone1k.ogg"), "ogg", 0.1),
            // This MP3 has no LAME tag, so its ~70 ms of encoder delay and padding cannot
            // be trimmed; allow for it.
            (include_bytes!("../../tests/data/tone1k.mp3"), "mp3", 0.2),
        ];
        for (bytes, ext, tolerance) in cases {
            let pcm =
                load_pcm8k_from_bytes(bytes.to_vec(), ext).unwrap_or_else(|e| panic!("{ext}: {e}"));
            assert_1khz(&pcm, 0.5, tolerance, 16_384.0);
        }
    }

    #[test]
    fn shipped_hold_music_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("media/music/hold.flac");
        let pcm = load_pcm8k(&path).unwrap();
        let seconds = pcm.len() as f64 / f64::from(SAMPLE_RATE);
        assert!((20.0..=120.0).contains(&seconds), "{seconds} s");
        assert!(rms(&pcm) > 1000.0, "music should not be near-silent");
    }

    #[test]
    fn errors_name_the_file_and_reason() {
        let missing = Path::new("no/such/music.flac");
        let err = load_pcm8k(missing).unwrap_err();
        assert!(matches!(err, AudioError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("no/such/music.flac"));

        let err =
            load_pcm8k_from_bytes(b"this is not audio at all".repeat(100), "txt").unwrap_err();
        assert!(matches!(err, AudioError::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().contains("embedded .txt audio"), "{err}");

        let err = load_pcm8k_from_bytes(wav(8_000, &[vec![]]), "wav").unwrap_err();
        assert!(matches!(err, AudioError::Empty { .. }), "{err:?}");

        let mut flac = include_bytes!("../../tests/data/tone1k.flac").to_vec();
        flac.truncate(60);
        let err = load_pcm8k_from_bytes(flac, "flac").unwrap_err();
        assert!(
            matches!(err, AudioError::Decode { .. } | AudioError::Empty { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn frames_are_whole_20ms_packets_padded_with_silence() {
        for law in [Law::Mu, Law::A] {
            let pcm = sine(1000.0, 8_000, 0.0301, 5_000.0); // 241 samples
            let bytes = frames(&pcm, law);
            assert_eq!(bytes.len(), 2 * FRAME_BYTES);
            assert_eq!(&bytes[..pcm.len()], &law.encode(&pcm)[..]);
            assert!(bytes[pcm.len()..].iter().all(|&b| b == law.silence_byte()));
            assert_eq!(frames(&pcm[..160], law).len(), FRAME_BYTES);
            assert!(frames(&[], law).is_empty());
        }
    }

    /// Start-up cost of a minute of CD-quality stereo; run with
    /// `cargo test --release -- --ignored --nocapture load_time`.
    #[test]
    #[ignore = "timing measurement, only meaningful in release"]
    fn load_time() {
        let left = sine(440.0, 44_100, 60.0, 12_000.0);
        let right = sine(660.0, 44_100, 60.0, 12_000.0);
        let bytes = wav(44_100, &[left, right]);
        let t = std::time::Instant::now();
        let pcm = load_pcm8k_from_bytes(bytes, "wav").unwrap();
        println!("60 s 44.1 kHz stereo WAV: {:?}", t.elapsed());
        assert_eq!(pcm.len(), 480_000);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("media/music/hold.flac");
        let t = std::time::Instant::now();
        let pcm = load_pcm8k(&path).unwrap();
        let load = t.elapsed();
        let t = std::time::Instant::now();
        let encoded = frames(&pcm, Law::Mu);
        println!(
            "hold.flac: {:.2} s of audio, loaded in {load:?}, encoded to {} frames in {:?}",
            pcm.len() as f64 / f64::from(SAMPLE_RATE),
            encoded.len() / FRAME_BYTES,
            t.elapsed()
        );
    }
}
