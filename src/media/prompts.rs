//! Spoken announcements (SPEC §4): the clip pack, composition and the rendered-frame cache.
//!
//! This module owns turning an [`Announcement`] ("you are currently number 3 in the
//! queue…") into the G.711 frames a [`Player`](super::player::Player) plays between two
//! stretches of hold music. Three steps:
//!
//! 1. **Clips**, loaded once at start-up into 8 kHz PCM: the English pack is compiled into
//!    the binary, and a configured `[media] prompts` directory replaces it clip by clip. A
//!    clip is named by its file stem (`about.flac`, or `about.wav` as a user's own
//!    recording), so any format [`audio`] decodes works.
//! 2. **Composition**: [`Announcement::script`] lists the clips and pauses; they are
//!    concatenated into one PCM buffer and encoded with both G.711 laws (ITU-T G.711,
//!    20 ms RTP frames per RFC 3551 §4.5.14).
//! 3. **Cache**: the frames are kept per announcement, so "number 3, about 4 minutes" is
//!    rendered once and then handed to every caller who needs it as a `Bytes` refcount.
//!    The cache holds at most a fixed number of announcements and evicts the oldest first,
//!    which bounds memory even with thousands of distinct positions.
//!
//! Rendering runs on the call controller's thread, never on the media clock: a miss costs
//! one concatenation and two table-driven encodes of a few seconds of audio (tens of
//! microseconds in a release build), a hit a hash lookup.

mod pack;
mod script;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

pub use script::{
    Announcement, DIGIT_GAP, LEAD_IN, MAX_SPOKEN_NUMBER, Part, SENTENCE_GAP, SpokenWait, TAIL,
    WORD_GAP, number_words,
};

use super::audio::{self, AudioError, SAMPLE_RATE};
use super::g711::Law;

/// How many rendered announcements the cache keeps by default. An announcement is a few
/// seconds of audio, about 40 KiB per law, so this is at most some tens of MiB.
pub const DEFAULT_CACHE_CAPACITY: usize = 512;

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

/// One announcement rendered with both G.711 laws: whole 160-byte frames, shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// µ-law frames (PCMU).
    pub pcmu: Bytes,
    /// A-law frames (PCMA).
    pub pcma: Bytes,
}

impl Rendered {
    /// The frames for `law`; cloning the result is a refcount bump.
    pub fn frames(&self, law: Law) -> &Bytes {
        match law {
            Law::Mu => &self.pcmu,
            Law::A => &self.pcma,
        }
    }
}

/// How well the cache is doing, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Renders answered from the cache.
    pub hits: u64,
    /// Renders that had to compose and encode.
    pub misses: u64,
    /// Announcements cached now.
    pub entries: usize,
}

/// The loaded clips and the cache of rendered announcements.
#[derive(Debug)]
pub struct Prompts {
    /// Every clip of the pack by name, mono 8 kHz PCM.
    clips: HashMap<&'static str, Vec<i16>>,
    /// Clips that came from the prompts directory rather than the embedded pack.
    replaced: Vec<&'static str>,
    /// Audio files in the prompts directory whose stem names no clip (likely a typo).
    ignored: Vec<PathBuf>,
    cache: HashMap<Announcement, Rendered>,
    /// Cache keys, oldest first, for eviction.
    order: VecDeque<Announcement>,
    capacity: usize,
    stats: CacheStats,
}

impl Prompts {
    /// The embedded English pack alone.
    pub fn embedded() -> Result<Self, PromptError> {
        Self::build(HashMap::new(), Vec::new())
    }

    /// The embedded pack with every clip found in `dir` replacing the embedded one of the
    /// same name. Files of other types (the manifest, a README) are skipped; audio files
    /// whose stem names no clip are listed by [`Prompts::ignored`].
    pub fn load(dir: &Path) -> Result<Self, PromptError> {
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
            let Some(&(name, _)) = pack::EMBEDDED.iter().find(|(name, _)| *name == stem) else {
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
        Self::build(found, ignored)
    }

    /// Decodes each clip once: from its replacement file if there is one, else embedded.
    fn build(
        replacements: HashMap<&'static str, PathBuf>,
        ignored: Vec<PathBuf>,
    ) -> Result<Self, PromptError> {
        let mut clips = HashMap::with_capacity(pack::EMBEDDED.len());
        let mut replaced = Vec::new();
        for &(name, bytes) in pack::EMBEDDED {
            let pcm = match replacements.get(name) {
                Some(path) => {
                    replaced.push(name);
                    audio::load_pcm8k(path)?
                }
                None => audio::load_pcm8k_from_bytes(bytes.to_vec(), pack::EMBEDDED_EXT)?,
            };
            clips.insert(name, pcm);
        }
        replaced.sort_unstable();
        Ok(Self {
            clips,
            replaced,
            ignored,
            cache: HashMap::new(),
            order: VecDeque::new(),
            capacity: DEFAULT_CACHE_CAPACITY,
            stats: CacheStats::default(),
        })
    }

    /// Sets how many rendered announcements are kept (at least 1), evicting the oldest if
    /// there are more now.
    #[must_use]
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self.evict_to(self.capacity);
        self
    }

    /// Names of the clips replaced from the prompts directory, sorted.
    pub fn replaced(&self) -> &[&'static str] {
        &self.replaced
    }

    /// Audio files in the prompts directory that match no clip name, sorted.
    pub fn ignored(&self) -> &[PathBuf] {
        &self.ignored
    }

    /// Every clip name of the pack (the file stems a user may record).
    pub fn clip_names() -> impl Iterator<Item = &'static str> {
        pack::EMBEDDED.iter().map(|&(name, _)| name)
    }

    /// The decoded PCM of one clip (8 kHz mono), e.g. to compare captured audio against.
    pub fn clip(&self, name: &str) -> Option<&[i16]> {
        self.clips.get(name).map(Vec::as_slice)
    }

    /// The announcement as 8 kHz PCM, composed afresh (not cached).
    pub fn compose(&self, announcement: &Announcement) -> Vec<i16> {
        let parts = announcement.script();
        let len = parts.iter().map(|part| self.part_len(*part)).sum();
        let mut pcm = Vec::with_capacity(len);
        for part in parts {
            match part {
                Part::Clip(name) => pcm.extend_from_slice(self.clip(name).unwrap_or_default()),
                Part::Pause(_) => pcm.resize(pcm.len() + self.part_len(part), 0),
            }
        }
        pcm
    }

    fn part_len(&self, part: Part) -> usize {
        match part {
            Part::Clip(name) => self.clip(name).map_or(0, <[i16]>::len),
            Part::Pause(length) => {
                (length.as_millis() as usize).saturating_mul(SAMPLE_RATE as usize) / 1000
            }
        }
    }

    /// The announcement's frames in both laws: from the cache, or composed, encoded and
    /// cached. Announcements that sound the same share one entry
    /// ([`Announcement::canonical`]).
    pub fn render(&mut self, announcement: &Announcement) -> Rendered {
        let key = announcement.canonical();
        if let Some(rendered) = self.cache.get(&key) {
            self.stats.hits += 1;
            return rendered.clone();
        }
        self.stats.misses += 1;
        let pcm = self.compose(&key);
        let rendered = Rendered {
            pcmu: audio::frames(&pcm, Law::Mu),
            pcma: audio::frames(&pcm, Law::A),
        };
        self.evict_to(self.capacity - 1);
        self.order.push_back(key.clone());
        self.cache.insert(key, rendered.clone());
        rendered
    }

    /// Hits, misses and size of the render cache.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.cache.len(),
            ..self.stats
        }
    }

    fn evict_to(&mut self, len: usize) {
        while self.cache.len() > len {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.cache.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests;
