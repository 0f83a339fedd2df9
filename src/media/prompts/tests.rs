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
    let prompts = embedded();
    for name in Prompts::clip_names() {
        let pcm = prompts.clip(name).expect("every clip is loaded");
        let seconds = pcm.len() as f64 / f64::from(SAMPLE_RATE);
        assert!((0.2..10.0).contains(&seconds), "{name}: {seconds} s");
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 8_000, "{name}: peak {peak} is too quiet");
    }
    assert!(prompts.replaced().is_empty());
}

#[test]
fn composition_concatenates_clips_with_pauses() {
    let prompts = embedded();
    let a = position(312, SpokenWait::About(2));
    let pcm = prompts.compose(&a);
    let mut expected = Vec::new();
    for part in a.script() {
        match part {
            Part::Clip(name) => expected.extend_from_slice(prompts.clip(name).unwrap()),
            Part::Pause(d) => expected.resize(expected.len() + d.as_millis() as usize * 8, 0),
        }
    }
    assert_eq!(pcm, expected);
    // Lead-in silence, then the first clip exactly.
    let lead = LEAD_IN.as_millis() as usize * 8;
    assert!(pcm[..lead].iter().all(|&s| s == 0));
    let first = prompts.clip("you-are-currently-number").unwrap();
    assert_eq!(&pcm[lead..lead + first.len()], first);
}

#[test]
fn rendered_frames_decode_back_to_the_composition() {
    let mut prompts = embedded();
    let a = position(3, SpokenWait::About(4));
    let pcm = prompts.compose(&a);
    let rendered = prompts.render(&a);
    for law in [Law::Mu, Law::A] {
        let frames = rendered.frames(law);
        assert_eq!(frames.len() % audio::FRAME_BYTES, 0);
        assert_eq!(frames.len(), pcm.len().div_ceil(audio::FRAME_BYTES) * 160);
        let decoded = law.decode(frames);
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

#[test]
fn cache_renders_each_announcement_once() {
    let mut prompts = embedded();
    let a = position(3, SpokenWait::About(4));
    let first = prompts.render(&a);
    let second = prompts.render(&a);
    // Same shared buffer, not a copy.
    assert_eq!(first.pcmu.as_ptr(), second.pcmu.as_ptr());
    assert_eq!(first.pcma.as_ptr(), second.pcma.as_ptr());
    assert_eq!(
        prompts.stats(),
        CacheStats {
            hits: 1,
            misses: 1,
            entries: 1
        }
    );
    // "You are next" sounds the same whatever the wait: one entry.
    prompts.render(&position(1, SpokenWait::FiveToTen));
    prompts.render(&position(1, SpokenWait::About(2)));
    // A different wait for the same position is a different announcement.
    prompts.render(&position(3, SpokenWait::FiveToTen));
    assert_eq!(
        prompts.stats(),
        CacheStats {
            hits: 2,
            misses: 3,
            entries: 3
        }
    );
}

#[test]
fn cache_evicts_oldest_beyond_capacity() {
    let mut prompts = embedded().with_cache_capacity(2);
    for p in [2, 3, 4] {
        prompts.render(&position(p, SpokenWait::FiveToTen));
    }
    assert_eq!(prompts.stats().entries, 2);
    prompts.render(&position(4, SpokenWait::FiveToTen)); // still cached
    prompts.render(&position(2, SpokenWait::FiveToTen)); // evicted: rendered again
    assert_eq!(prompts.stats().hits, 1);
    assert_eq!(prompts.stats().misses, 4);
    assert_eq!(prompts.stats().entries, 2);
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

/// Rendering cost of an uncached announcement; run with
/// `cargo test --release --lib prompts::tests::render_timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing measurement, meaningful in release builds only"]
fn render_timing() {
    let start = Instant::now();
    let mut prompts = embedded().with_cache_capacity(10_000);
    println!("embedded pack decoded in {:?}", start.elapsed());
    let announcements: Vec<_> = (2..=999)
        .map(|p| position(p, SpokenWait::FiveToTen))
        .collect();
    let start = Instant::now();
    for a in &announcements {
        prompts.render(a);
    }
    let miss = start.elapsed() / announcements.len() as u32;
    let start = Instant::now();
    for a in &announcements {
        prompts.render(a);
    }
    let hit = start.elapsed() / announcements.len() as u32;
    println!("uncached render {miss:?} per announcement, cached {hit:?}");
    assert!(miss < std::time::Duration::from_millis(1));
}
