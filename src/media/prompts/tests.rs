use std::collections::HashSet;
use std::time::Instant;

use super::*;

fn embedded() -> Prompts {
    Prompts::embedded().expect("the embedded pack decodes")
}

fn position(position: u32, wait: SpokenWait) -> Announcement {
    Announcement::Position { position, wait }
}

/// Every announcement shape, with every number and digit the pack must be able to say.
fn all_announcements() -> Vec<Announcement> {
    let waits = [
        SpokenWait::LessThanAMinute,
        SpokenWait::About(1),
        SpokenWait::About(4),
        SpokenWait::FiveToTen,
        SpokenWait::MoreThanTen,
    ];
    let mut all: Vec<_> = (0..=1001)
        .flat_map(|p| waits.map(|w| position(p, w)))
        .collect();
    all.extend([
        Announcement::AllAgentsBusy,
        Announcement::CallbackOffer,
        Announcement::Goodbye,
        Announcement::Closed,
        Announcement::AgentPaused,
        Announcement::AgentAvailable,
        Announcement::CallbackConfirm {
            digits: "+0123456789".into(),
        },
    ]);
    all
}

/// A 16-bit mono PCM WAV file.
fn wav(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A fresh empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("holdfast-prompts-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir is writable");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn manifest_and_embedded_pack_list_the_same_clips() {
    let manifest = include_str!("../../../media/prompts/en/manifest.tsv");
    let mut lines = manifest.lines();
    assert_eq!(lines.next(), Some("file\ttext"));
    let listed: Vec<&str> = lines
        .map(|line| {
            let (file, text) = line.split_once('\t').expect("two columns");
            assert!(!text.is_empty(), "{file} has no text");
            file.strip_suffix(".flac").expect("pack clips are FLAC")
        })
        .collect();
    let embedded: Vec<&str> = Prompts::clip_names().collect();
    assert_eq!(listed, embedded);
    assert_eq!(
        embedded.iter().collect::<HashSet<_>>().len(),
        embedded.len()
    );
}

#[test]
fn every_scripted_clip_exists_and_every_clip_is_used() {
    let names: HashSet<&str> = Prompts::clip_names().collect();
    let mut used = HashSet::new();
    for announcement in all_announcements() {
        for part in announcement.script() {
            if let Part::Clip(name) = part {
                assert!(
                    names.contains(name),
                    "{announcement:?} needs missing {name}"
                );
                used.insert(name);
            }
        }
    }
    let unused: Vec<_> = names.difference(&used).collect();
    assert!(unused.is_empty(), "clips no announcement says: {unused:?}");
}

#[test]
fn embedded_clips_are_short_audible_speech() {
    for language in Language::ALL {
        let prompts = Prompts::embedded_in(language).expect("the embedded pack decodes");
        for name in Prompts::clip_names_in(language) {
            let pcm = prompts.clip(name).expect("every clip is loaded");
            let seconds = pcm.len() as f64 / f64::from(audio::SAMPLE_RATE);
            assert!(
                (0.2..10.0).contains(&seconds),
                "{language} {name}: {seconds} s"
            );
            let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
            assert!(peak > 8_000, "{language} {name}: peak {peak} is too quiet");
        }
        assert!(prompts.replaced().is_empty());
    }
}

#[test]
fn composition_concatenates_whole_frame_clips_and_pauses() {
    let prompts = embedded();
    let a = position(312, SpokenWait::About(2));
    let pcm = prompts.compose(&a);
    let mut expected = Vec::new();
    for part in a.script() {
        match part {
            Part::Clip(name) => {
                expected.extend_from_slice(prompts.clip(name).unwrap());
                expected.resize(expected.len().div_ceil(160) * 160, 0);
            }
            Part::Pause(d) => {
                let frames = (d.as_millis() as usize + 10) / 20;
                expected.resize(expected.len() + frames * 160, 0);
            }
        }
    }
    assert_eq!(pcm, expected);
    assert_eq!(pcm.len() % 160, 0);
    // Lead-in silence (150 ms rounds to 8 frames), then the first clip exactly.
    let lead = 8 * 160;
    assert!(pcm[..lead].iter().all(|&s| s == 0));
    let first = prompts.clip("you-are-currently-number").unwrap();
    assert_eq!(&pcm[lead..lead + first.len()], first);
}

#[test]
fn rendered_frames_decode_back_to_the_composition() {
    let prompts = embedded();
    for a in [
        position(3, SpokenWait::About(4)),
        position(4_123, SpokenWait::MoreThanTen),
        Announcement::CallbackConfirm {
            digits: "0123456789".into(),
        },
    ] {
        let pcm = prompts.compose(&a);
        for law in [Law::Mu, Law::A] {
            let frames = prompts.render(&a, law).to_bytes();
            assert_eq!(frames.len(), pcm.len(), "{a:?}");
            let decoded = law.decode(&frames);
            for (i, (&got, &want)) in decoded.iter().zip(&pcm).enumerate() {
                // G.711 keeps about 12 bits of a 16-bit sample: the error grows with amplitude.
                let tolerance = (i32::from(want).abs() / 16).max(64);
                assert!(
                    (i32::from(got) - i32::from(want)).abs() <= tolerance,
                    "{law:?} sample {i}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn rendering_shares_the_pack_and_copies_no_audio() {
    let prompts = embedded();
    let a = position(847, SpokenWait::About(4));
    let first = prompts.render(&a, Law::Mu);
    let second = prompts.render(&position(848, SpokenWait::About(4)), Law::Mu);
    // Every piece points into a buffer encoded once at load time, so two callers hearing
    // different numbers share all of their audio.
    let pieces: HashSet<*const u8> = first
        .pieces()
        .iter()
        .chain(second.pieces())
        .map(|piece| piece.as_ptr())
        .collect();
    let loaded: HashSet<*const u8> = Prompts::clip_names()
        .flat_map(|name| prompts.clips[name].frames.iter().map(|f| f.as_ptr()))
        .chain(prompts.silence.iter().map(|s| s.as_ptr()))
        .collect();
    assert!(pieces.is_subset(&loaded));
    assert_eq!(first.frames() * 160, prompts.compose(&a).len());
    // Long pauses are several slices of the shared silence.
    let pause = std::time::Duration::from_millis(20 * (SILENCE_FRAMES as u64 * 2 + 3));
    assert_eq!(pause_frames(pause), SILENCE_FRAMES * 2 + 3);
}

#[test]
fn directory_replaces_clips_by_stem() {
    let dir = TempDir::new("replace");
    let tone: Vec<i16> = (0..4000)
        .map(|i| ((i as f64 * 0.3).sin() * 10_000.0) as i16)
        .collect();
    std::fs::write(dir.0.join("about.wav"), wav(8000, &tone)).unwrap();
    std::fs::write(dir.0.join("abuot.wav"), wav(8000, &tone)).unwrap();
    std::fs::write(dir.0.join("manifest.tsv"), "file\ttext\n").unwrap();
    let prompts = Prompts::load(&dir.0).expect("directory loads");
    assert_eq!(prompts.clip("about"), Some(tone.as_slice()));
    assert_eq!(prompts.replaced(), ["about"]);
    assert_eq!(prompts.ignored(), [dir.0.join("abuot.wav")]);
    // Clips not replaced keep the embedded voice.
    assert_eq!(prompts.clip("minutes"), embedded().clip("minutes"));
    // The replacement is what the announcement plays.
    let pcm = prompts.compose(&position(2, SpokenWait::About(3)));
    assert!(pcm.windows(tone.len()).any(|w| w == tone.as_slice()));
}

#[test]
fn shipped_directory_loads_like_the_embedded_pack() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("media/prompts/en");
    let loaded = Prompts::load(&dir).expect("shipped pack loads");
    let built_in = embedded();
    assert_eq!(loaded.replaced().len(), Prompts::clip_names().count());
    for name in Prompts::clip_names() {
        assert_eq!(loaded.clip(name), built_in.clip(name), "{name}");
    }
}

#[test]
fn two_recordings_of_one_clip_are_refused() {
    let dir = TempDir::new("ambiguous");
    std::fs::write(dir.0.join("goodbye.wav"), wav(8000, &[1000; 800])).unwrap();
    std::fs::write(dir.0.join("goodbye.mp3"), wav(8000, &[1000; 800])).unwrap();
    let error = Prompts::load(&dir.0).unwrap_err();
    assert!(
        matches!(&error, PromptError::Ambiguous { clip, .. } if clip == "goodbye"),
        "{error}"
    );
}

#[test]
fn broken_or_missing_files_are_errors() {
    let dir = TempDir::new("broken");
    std::fs::write(dir.0.join("goodbye.wav"), b"not audio at all").unwrap();
    assert!(matches!(Prompts::load(&dir.0), Err(PromptError::Audio(_))));
    let missing = dir.0.join("no-such-dir");
    assert!(matches!(
        Prompts::load(&missing),
        Err(PromptError::Directory { .. })
    ));
}

/// Rendering cost; run with
/// `cargo test --release --lib prompts::tests::render_timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing measurement, meaningful in release builds only"]
fn render_timing() {
    let start = Instant::now();
    let prompts = embedded();
    println!("embedded pack decoded and encoded in {:?}", start.elapsed());
    let announcements: Vec<_> = (2..=999)
        .map(|p| position(p, SpokenWait::FiveToTen))
        .collect();
    let start = Instant::now();
    for a in &announcements {
        std::hint::black_box(prompts.render(a, Law::Mu));
    }
    let each = start.elapsed() / announcements.len() as u32;
    println!("render {each:?} per announcement");
    assert!(each < std::time::Duration::from_millis(1));
}
