//! Call recording end to end (docs/behaviour.md §5, "Recording"): a caller talking a 400 Hz
//! tone bridged to an agent talking 1000 Hz, in a queue with `record = true`. After the
//! call a stereo WAV exists at `<recordings>/<day>/<call-id>.wav` as long as the call, the
//! caller's tone on the left channel and the agent's on the right; the `complete` event
//! names it and `GET /api/recordings` lists it. Killed with `kill -9` mid-call, holdfast
//! leaves a file that reads as a WAV up to about the last second, and the next process,
//! which keeps the call, goes on writing the same file.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::api::get_json;
use common::held::{log_tail, setup, talking_call, wait_admin, wait_until};
use common::{Holdfast, scratch_dir, tone_power};

const RTP_BASE_CALL: u16 = 44_000;
const RTP_BASE_KILL: u16 = 45_000;
const CALLER_TONE: f32 = 400.0;
const AGENT_TONE: f32 = 1000.0;

/// A setup with agent `a1` and a queue that records into a directory of the test's own.
fn recorded_setup(name: &str, rtp_base: u16) -> (common::Setup, std::net::SocketAddr, PathBuf) {
    let (mut setup, api) = setup(name, rtp_base);
    let recordings = scratch_dir(&format!("{name}-recordings"));
    setup.sip_extra = "digest_algorithms = [\"MD5\"]\n".into();
    setup.media_extra = format!("recordings = \"{}\"\n", recordings.display());
    setup.extra = "[[agent]]\nuser = \"a1\"\npassword = \"a1-secret\"\n\n\
                   [[queue]]\nname = \"support\"\nrecord = true\n\n\
                   [[route]]\nnumber = \"*\"\nqueue = \"support\"\n"
        .into();
    (setup, api, recordings)
}

/// A WAV file read back independently of holdfast's writer: its format fields, the frame
/// count its header states, and the left and right channels of those frames.
struct Wav {
    channels: u16,
    rate: u32,
    bits: u16,
    stated_frames: usize,
    left: Vec<f32>,
    right: Vec<f32>,
}

fn read_wav(path: &Path) -> Result<Wav, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 44 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("{}: not a RIFF/WAVE file", path.display()));
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    if &bytes[12..16] != b"fmt " || &bytes[36..40] != b"data" || u16_at(20) != 1 {
        return Err("not a plain PCM WAV (fmt then data)".into());
    }
    let stated = u32_at(40) as usize;
    let data = bytes
        .get(44..44 + stated)
        .ok_or_else(|| format!("the header states {stated} data bytes, the file has fewer"))?;
    let samples: Vec<f32> = data
        .chunks_exact(2)
        .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
        .collect();
    Ok(Wav {
        channels: u16_at(22),
        rate: u32_at(24),
        bits: u16_at(34),
        stated_frames: stated / 4,
        left: samples.iter().step_by(2).copied().collect(),
        right: samples.iter().skip(1).step_by(2).copied().collect(),
    })
}

/// Whether `tone` is at least 10× stronger than `other` in `samples`, with the figures.
fn dominates(samples: &[f32], tone: f32, other: f32) -> Result<(), String> {
    let (p, q) = (
        tone_power(samples, tone, 8000.0),
        tone_power(samples, other, 8000.0),
    );
    if p > 10.0 * q && p > 1_000.0 {
        Ok(())
    } else {
        Err(format!("{tone} Hz: {p:.0}, {other} Hz: {q:.0}"))
    }
}

/// The one recording file under `dir` (any day), once one exists.
fn recording_in(dir: &Path) -> Option<PathBuf> {
    let day = std::fs::read_dir(dir).ok()?.flatten().next()?.path();
    let file = std::fs::read_dir(day).ok()?.flatten().next()?.path();
    Some(file)
}

#[test]
fn a_recorded_call_is_a_stereo_wav_caller_left_agent_right() {
    let (setup, api, recordings) = recorded_setup("recorded", RTP_BASE_CALL);
    let holdfast = Holdfast::start("recorded", &setup);
    wait_admin(api);
    let (_agent, caller) = talking_call(&holdfast, "a1", AGENT_TONE, CALLER_TONE);
    let bridged = Instant::now();
    // The wallboard marks the call as recorded.
    let agents = get_json(api, "/api/agents");
    assert_eq!(agents[0]["recording"], true, "{agents}");
    std::thread::sleep(Duration::from_secs(4));
    let code = caller.ua.request(&caller.call, "BYE", 2, "").map(|r| r.0);
    let talked = bridged.elapsed().as_secs_f32();
    assert_eq!(code, Some(200), "the caller's BYE\n{}", log_tail(&holdfast));
    assert!(
        holdfast.wait_log("recording finished", Duration::from_secs(5)),
        "the recording ends with the call\n{}",
        log_tail(&holdfast)
    );

    let day = std::fs::read_dir(&recordings)
        .unwrap()
        .flatten()
        .next()
        .expect("a day directory")
        .file_name()
        .into_string()
        .unwrap();
    let path = recordings
        .join(&day)
        .join(format!("{}.wav", caller.call.call_id));
    let wav = read_wav(&path).unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&holdfast)));
    assert_eq!((wav.channels, wav.rate, wav.bits), (2, 8000, 16));
    let seconds = wav.stated_frames as f32 / 8000.0;
    assert!(
        (seconds - talked).abs() <= 1.0,
        "the recording lasts {seconds:.2} s, the call {talked:.2} s"
    );
    // A second from the middle of the call, each channel judged on its own.
    let (from, to) = (8_000, 24_000.min(wav.left.len()));
    let mut wrong = Vec::new();
    if let Err(e) = dominates(&wav.left[from..to], CALLER_TONE, AGENT_TONE) {
        wrong.push(format!("left (caller): {e}"));
    }
    if let Err(e) = dominates(&wav.right[from..to], AGENT_TONE, CALLER_TONE) {
        wrong.push(format!("right (agent): {e}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // The complete event names the file; the API lists it.
    let log = common::held::plain(&holdfast.log());
    let complete = log
        .lines()
        .find(|l| l.contains("call complete"))
        .unwrap_or_else(|| panic!("no complete event\n{log}"));
    assert!(
        complete.contains(&format!("{}.wav", caller.call.call_id)),
        "{complete}"
    );
    let listed = get_json(api, &format!("/api/recordings?day={day}"));
    assert_eq!(
        listed[0]["call_id"],
        caller.call.call_id.as_str(),
        "{listed}"
    );
    assert_eq!(
        listed[0]["seconds"],
        (wav.stated_frames / 8000) as u64,
        "{listed}"
    );
    let (status, _) = common::api::http(api, "GET", "/api/recordings?day=../etc", None);
    assert_eq!(status, 400);
}

#[test]
fn kill_9_mid_call_leaves_a_readable_recording_that_the_next_process_continues() {
    let (setup, _api, recordings) = recorded_setup("recorded-kill", RTP_BASE_KILL);
    let mut first = Holdfast::start("recorded-kill", &setup);
    let (_agent, caller) = talking_call(&first, "a1", AGENT_TONE, CALLER_TONE);
    std::thread::sleep(Duration::from_secs(4));
    first.kill9();
    let path = recording_in(&recordings).expect("a recording file");
    let wav = read_wav(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((wav.channels, wav.rate, wav.bits), (2, 8000, 16));
    // Written a second at a time, a quarter of a second held back: at least two of the four
    // seconds are in the file, and what is there is the call.
    assert!(
        wav.stated_frames >= 16_000,
        "{} frames after 4 s of call",
        wav.stated_frames
    );
    let end = wav.left.len();
    dominates(&wav.left[end - 8_000..], CALLER_TONE, AGENT_TONE).expect("left: the caller");
    dominates(&wav.right[end - 8_000..], AGENT_TONE, CALLER_TONE).expect("right: the agent");

    // The call is kept through the restart, and so is its recording: the same file goes on.
    let responder = caller.answer_options(Some(200));
    let second = Holdfast::start("recorded-kill-2", &setup);
    assert!(
        wait_until(Duration::from_secs(10), || {
            common::held::plain(&second.log()).contains("continued=true")
        }),
        "the restored call is recorded again\n{}",
        log_tail(&second)
    );
    std::thread::sleep(Duration::from_secs(3));
    responder.stop();
    let code = caller.ua.request(&caller.call, "BYE", 2, "").map(|r| r.0);
    assert_eq!(code, Some(200), "the caller's BYE\n{}", log_tail(&second));
    assert!(
        second.wait_log("recording finished", Duration::from_secs(5)),
        "{}",
        log_tail(&second)
    );
    let after = read_wav(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(recording_in(&recordings), Some(path), "one file, continued");
    assert!(
        after.stated_frames >= wav.stated_frames + 2 * 8_000,
        "{} frames before the restart, {} after",
        wav.stated_frames,
        after.stated_frames
    );
    let end = after.left.len();
    dominates(
        &after.left[end - 12_000..end - 4_000],
        CALLER_TONE,
        AGENT_TONE,
    )
    .expect("left after the restart: the caller");
    dominates(
        &after.right[end - 12_000..end - 4_000],
        AGENT_TONE,
        CALLER_TONE,
    )
    .expect("right after the restart: the agent");
}
