//! Spoken announcements (docs/behaviour.md §4): the clip pack, composition into shared frames.
//!
//! This module owns turning an [`Announcement`] ("you are currently number 3 in the
//! queue…") into the G.711 frames a [`Player`](super::player::Player) plays between two
//! stretches of hold music. Three steps:
//!
//! 1. **Clips**, loaded once at start-up into 8 kHz PCM: the English pack is compiled into
//!    the binary, and a configured `[media] prompts` directory replaces it clip by clip. A
//!    clip is named by its file stem (`about.flac`, or `about.wav` as a user's own
//!    recording), so any format [`audio`] decodes works.
//! 2. **Frames**, also once at start-up: every clip is encoded with both G.711 laws (ITU-T
//!    G.711, 20 ms RTP frames per RFC 3551 §4.5.14), its last frame padded with silence, and
//!    one shared buffer of silence is encoded per law.
//! 3. **Rendering**: [`Announcement::script`] lists the clips and pauses; the
//!    [`Prompt`] is that list of shared buffers (a clip's frames, a slice of the silence),
//!    so rendering copies no audio and a caller hearing "number 4 123" holds a few hundred
//!    bytes of refcounts, not 60 KiB of its own frames. Thousands of callers hearing
//!    thousands of different numbers at once therefore cost no memory per caller beyond
//!    that, and there is no cache to size or evict.
//!
//! Rendering runs on the call controller's thread, never on the media clock: it is one
//! walk over a script of a few dozen parts.

pub mod lang;
mod pack;
mod script;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

pub use lang::Language;
pub use script::{
    Announcement, DIGIT_GAP, LEAD_IN, MAX_SPOKEN_NUMBER, Part, SENTENCE_GAP, SpokenWait, TAIL,
    WORD_GAP, number_words,
};

use super::audio::{self, AudioError};
use super::g711::Law;
use super::player::{FRAME_LEN, Prompt};

/// Frames of silence encoded once per law; longer pauses take several slices of it.
const SILENCE_FRAMES: usize = 25;

/// File extensions looked at in a prompts directory (what [`audio`] decodes).
const AUDIO_EXTENSIONS: [&str; 5] = ["wav", "flac", "ogg", "oga", "mp3"];

/// Why the prompt clips could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The configured prompts directory could not be listed.
    #[error("{dir}: cannot read prompts directory: {source}")]
    Directory {
        /// The directory as configured.
        dir: String,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// Two files in the directory have the stem of the same clip (`about.wav` and
    /// `about.flac`): which one to play would be a guess.
    #[error("{first} and {second}: two recordings of the prompt clip {clip:?}; keep one")]
    Ambiguous {
        /// The clip name.
        clip: String,
        /// One of the files.
        first: String,
        /// The other.
        second: String,
    },
    /// A clip file (a user's or the embedded one) could not be decoded.
    #[error(transparent)]
    Audio(#[from] AudioError),
}

/// One clip of the pack, decoded and encoded.
#[derive(Debug, Clone)]
struct Clip {
    /// Mono 8 kHz PCM as decoded (shared: a copy of the pack copies no audio).
    pcm: std::sync::Arc<[i16]>,
    /// Whole frames, µ-law then A-law, the last one padded with silence.
    frames: [Bytes; 2],
}

/// The loaded clips, encoded, and the shared silence that announcements are made of. A
/// clone shares every clip.
#[derive(Debug, Clone)]
pub struct Prompts {
    /// Every clip of the pack by name.
    clips: HashMap<&'static str, Clip>,
    /// `SILENCE_FRAMES` frames of silence, µ-law then A-law.
    silence: [Bytes; 2],
    /// The language the clips speak, whose rules compose the announcements.
    language: Language,
    /// Clips that came from the prompts directory rather than the embedded pack.
    replaced: Vec<&'static str>,
    /// Audio files in the prompts directory whose stem names no clip (likely a typo).
    ignored: Vec<PathBuf>,
}

/// Index of `law` in the per-law arrays.
fn law_index(law: Law) -> usize {
    match law {
        Law::Mu => 0,
        Law::A => 1,
    }
}

/// Frames a pause lasts: its length rounded to the nearest 20 ms frame, since audio is only
/// ever sent in whole frames.
fn pause_frames(length: std::time::Duration) -> usize {
    (length.as_millis() as usize + 10) / 20
}

impl Prompts {
    /// The embedded English pack alone.
    pub fn embedded() -> Result<Self, PromptError> {
        Self::embedded_in(Language::En)
    }

    /// The embedded pack of `language` alone.
    pub fn embedded_in(language: Language) -> Result<Self, PromptError> {
        Self::build(language, HashMap::new(), Vec::new())
    }

    /// The embedded pack with every clip found in `dir` replacing the embedded one of the
    /// same name. Files of other types (the manifest, a README) are skipped; audio files
    /// whose stem names no clip are listed by [`Prompts::ignored`].
    pub fn load(dir: &Path) -> Result<Self, PromptError> {
        Self::load_in(Language::En, dir)
    }

    /// [`Prompts::load`] for `language`'s pack.
    pub fn load_in(language: Language, dir: &Path) -> Result<Self, PromptError> {
        let listing_error = |source| PromptError::Directory {
            dir: dir.display().to_string(),
            source,
        };
        let mut found: HashMap<&'static str, PathBuf> = HashMap::new();
        let mut ignored = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(listing_error)? {
            let path = entry.map_err(listing_error)?.path();
            let is_audio = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            if !is_audio || !path.is_file() {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let embedded = pack::embedded(language);
            let Some(&(name, _)) = embedded.iter().find(|(name, _)| *name == stem) else {
                ignored.push(path);
                continue;
            };
            if let Some(first) = found.insert(name, path.clone()) {
                return Err(PromptError::Ambiguous {
                    clip: name.to_owned(),
                    first: first.display().to_string(),
                    second: path.display().to_string(),
                });
            }
        }
        ignored.sort();
        Self::build(language, found, ignored)
    }

    /// Decodes each clip once: from its replacement file if there is one, else embedded.
    fn build(
        language: Language,
        replacements: HashMap<&'static str, PathBuf>,
        ignored: Vec<PathBuf>,
    ) -> Result<Self, PromptError> {
        let embedded = pack::embedded(language);
        let mut clips = HashMap::with_capacity(embedded.len());
        let mut replaced = Vec::new();
        for &(name, bytes) in embedded {
            let pcm = match replacements.get(name) {
                Some(path) => {
                    replaced.push(name);
                    audio::load_pcm8k(path)?
                }
                None => audio::load_pcm8k_from_bytes(bytes.to_vec(), pack::EMBEDDED_EXT)?,
            };
            let frames = [audio::frames(&pcm, Law::Mu), audio::frames(&pcm, Law::A)];
            let pcm = pcm.into();
            clips.insert(name, Clip { pcm, frames });
        }
        replaced.sort_unstable();
        let silence = [0; SILENCE_FRAMES * FRAME_LEN];
        Ok(Self {
            clips,
            silence: [
                audio::frames(&silence, Law::Mu),
                audio::frames(&silence, Law::A),
            ],
            language,
            replaced,
            ignored,
        })
    }

    /// The language the clips speak.
    pub fn language(&self) -> Language {
        self.language
    }

    /// Names of the clips replaced from the prompts directory, sorted.
    pub fn replaced(&self) -> &[&'static str] {
        &self.replaced
    }

    /// Audio files in the prompts directory that match no clip name, sorted.
    pub fn ignored(&self) -> &[PathBuf] {
        &self.ignored
    }

    /// Every clip name of the English pack (the file stems a user may record).
    pub fn clip_names() -> impl Iterator<Item = &'static str> {
        Self::clip_names_in(Language::En)
    }

    /// Every clip name of `language`'s pack.
    pub fn clip_names_in(language: Language) -> impl Iterator<Item = &'static str> {
        pack::embedded(language).iter().map(|&(name, _)| name)
    }

    /// The decoded PCM of one clip (8 kHz mono), e.g. to compare captured audio against.
    pub fn clip(&self, name: &str) -> Option<&[i16]> {
        self.clips.get(name).map(|clip| &clip.pcm[..])
    }

    /// The announcement as 8 kHz PCM: exactly what [`Prompts::render`] plays, before
    /// G.711 (each clip padded with silence to whole frames, each pause rounded to whole
    /// frames).
    pub fn compose(&self, announcement: &Announcement) -> Vec<i16> {
        let mut pcm = Vec::new();
        for part in announcement.script_in(self.language) {
            match part {
                Part::Clip(name) => {
                    let clip = self.clip(name).unwrap_or_default();
                    pcm.extend_from_slice(clip);
                    pcm.resize(pcm.len().div_ceil(FRAME_LEN) * FRAME_LEN, 0);
                }
                Part::Pause(length) => pcm.resize(pcm.len() + pause_frames(length) * FRAME_LEN, 0),
            }
        }
        pcm
    }

    /// The announcement's frames in `law`: the clips' and the silence's shared buffers in
    /// playing order (no audio is copied).
    pub fn render(&self, announcement: &Announcement, law: Law) -> Prompt {
        let law = law_index(law);
        let mut prompt = Prompt::default();
        // Both kinds of piece were checked to be whole frames when the pack was encoded, so
        // `push` cannot fail; a zero-length pause is skipped rather than pushed.
        let mut push = |frames: Bytes| {
            if !frames.is_empty() {
                prompt
                    .push(frames)
                    .expect("clips and silence are encoded as whole frames");
            }
        };
        for part in announcement.script_in(self.language) {
            match part {
                Part::Clip(name) => {
                    if let Some(clip) = self.clips.get(name) {
                        push(clip.frames[law].clone());
                    }
                }
                Part::Pause(length) => {
                    let mut left = pause_frames(length);
                    while left > 0 {
                        let take = left.min(SILENCE_FRAMES);
                        push(self.silence[law].slice(..take * FRAME_LEN));
                        left -= take;
                    }
                }
            }
        }
        prompt
    }
}

/// One pack per language a route or queue speaks, English always among them, and the
/// queues' periodic messages: what the controller renders announcements with.
#[derive(Debug)]
pub struct PromptPacks {
    /// English first.
    packs: Vec<Prompts>,
    /// Per queue index, its `periodic_messages`, each encoded µ-law then A-law.
    messages: Vec<Vec<[Bytes; 2]>>,
    /// Per queue index, its `announce_to_agent`, encoded µ-law then A-law.
    whispers: Vec<Option<[Bytes; 2]>>,
}

/// A periodic message file, decoded to 8 kHz and encoded with both laws once.
pub fn load_message(path: &Path) -> Result<[Bytes; 2], PromptError> {
    let pcm = audio::load_pcm8k(path)?;
    Ok([audio::frames(&pcm, Law::Mu), audio::frames(&pcm, Law::A)])
}

impl PromptPacks {
    /// `english` and the other packs (a second pack of a language replaces the first).
    pub fn new(english: Prompts, others: impl IntoIterator<Item = Prompts>) -> Self {
        let mut packs = vec![english];
        for pack in others {
            packs.retain(|p| p.language() != pack.language() || p.language() == Language::En);
            if pack.language() != Language::En {
                packs.push(pack);
            }
        }
        Self {
            packs,
            messages: Vec::new(),
            whispers: Vec::new(),
        }
    }

    /// With the queues' `announce_to_agent` (per queue index).
    pub fn with_whispers(mut self, whispers: Vec<Option<[Bytes; 2]>>) -> Self {
        self.whispers = whispers;
        self
    }

    /// Queue `queue`'s `announce_to_agent` in `law`, if it has one.
    pub fn whisper(&self, queue: usize, law: Law) -> Option<Prompt> {
        clip(self.whispers.get(queue)?.as_ref()?, law)
    }

    /// With the queues' periodic messages (per queue index, in `periodic_messages` order).
    pub fn with_messages(mut self, messages: Vec<Vec<[Bytes; 2]>>) -> Self {
        self.messages = messages;
        self
    }

    /// Message `index` of queue `queue`, in `law`; `None` when it was not loaded.
    pub fn message(&self, queue: usize, index: usize, law: Law) -> Option<Prompt> {
        clip(self.messages.get(queue)?.get(index)?, law)
    }

    /// The pack of `language`, English when it is not loaded.
    pub fn get(&self, language: Language) -> &Prompts {
        self.packs
            .iter()
            .find(|p| p.language() == language)
            .unwrap_or(&self.packs[0])
    }

    /// [`Prompts::render`] in `language`.
    pub fn render(&self, language: Language, announcement: &Announcement, law: Law) -> Prompt {
        self.get(language).render(announcement, law)
    }
}

/// An operator's clip, loaded in both laws ([`load_message`]), as a prompt in `law`.
fn clip(frames: &[Bytes; 2], law: Law) -> Option<Prompt> {
    Prompt::from_frames(frames[law_index(law)].clone()).ok()
}

impl From<Prompts> for PromptPacks {
    fn from(english: Prompts) -> Self {
        Self::new(english, [])
    }
}

#[cfg(test)]
mod tests;
