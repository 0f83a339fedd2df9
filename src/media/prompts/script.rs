//! What each announcement says: an [`Announcement`] → a sequence of clip names and pauses.
//!
//! Pure and allocation-light; [`super::Prompts`] turns the sequence into audio. The pauses
//! live here rather than in the clips so a replacement recording with more or less silence
//! around it still lands on the same rhythm.

use std::time::Duration;

pub use super::lang::Language;

/// The spoken form of a wait estimate (docs/behaviour.md §4 "Spoken wait, rounded UP, never down").
///
/// The queue engine's `WaitBucket` has the same shape; the two are kept apart because the
/// media layer knows nothing of queues, and the call controller maps one onto the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpokenWait {
    /// "less than a minute."
    LessThanAMinute,
    /// "about m minute(s)." with m from 1 to 999 (holdfast's buckets only use 1–4).
    About(u16),
    /// "5 to 10 minutes."
    FiveToTen,
    /// "more than 10 minutes."
    MoreThanTen,
}

/// Something holdfast says to a caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Announcement {
    /// "You are currently number 3 in the queue. Estimated wait time is about 4 minutes."
    ///
    /// Position 1 (and 0, which a 1-based position never is) says "You are next in the
    /// queue." and no estimate: the next free agent takes this caller, so any estimate
    /// would only be stale. Positions above 999 say "There are at least nine hundred and
    /// ninety nine callers ahead of you." followed by the estimate: the clip pack counts to
    /// 999, and that sentence is true for every position from 1000 on.
    Position {
        /// 1-based position in the queue.
        position: u32,
        /// The estimate, already bucketed.
        wait: SpokenWait,
    },
    /// [`Announcement::Position`] with a queue's announcement options: above `limit` the
    /// position is said as "There are at least `limit` callers ahead of you."
    /// (`announce_position_limit`), and without a `wait` no estimate follows
    /// (`announce_wait = false`).
    Place {
        /// 1-based position in the queue.
        position: u32,
        /// Highest position said as a number (at most [`MAX_SPOKEN_NUMBER`]).
        limit: u32,
        /// The estimate, or `None` to say the position alone.
        wait: Option<SpokenWait>,
    },
    /// "All of our agents are busy. Please hold."
    AllAgentsBusy,
    /// "Would you like us to call you back when an agent is available? You will not lose
    /// your place in line. Press 1 for a callback."
    CallbackOffer,
    /// "We will call you back at 5 5 5 0 1 0 0. Goodbye." Only the ASCII digits of
    /// `digits` are read, one by one; anything else (`+`, spaces, dashes) is skipped.
    CallbackConfirm {
        /// The number to read back, as the caller's own call presented it.
        digits: String,
    },
    /// "Goodbye."
    Goodbye,
    /// "We are closed right now. Please call again during our opening hours. Goodbye."
    Closed,
    /// To an agent who dialled the pause code: "You are paused. No calls will be offered
    /// to you."
    AgentPaused,
    /// To an agent who dialled the unpause code: "You are available. Calls will be offered
    /// to you again."
    AgentAvailable,
}

/// Highest number the clip pack can say.
pub const MAX_SPOKEN_NUMBER: u32 = 999;

/// Silence before the first word, so the cut from music to speech is not abrupt.
pub const LEAD_IN: Duration = Duration::from_millis(150);
/// Silence between words of one sentence (each clip also carries 20 ms at either end).
pub const WORD_GAP: Duration = Duration::from_millis(40);
/// Silence between the digits of a number read back digit by digit.
pub const DIGIT_GAP: Duration = Duration::from_millis(120);
/// Silence between sentences.
pub const SENTENCE_GAP: Duration = Duration::from_millis(350);
/// Silence after the last word, before the music resumes.
pub const TAIL: Duration = Duration::from_millis(300);

/// One step of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Play the clip with this name (its file stem in the pack).
    Clip(&'static str),
    /// Play silence for this long.
    Pause(Duration),
}

impl Announcement {
    /// A normal form in which announcements that sound the same compare equal (every position ≤ 1 is "you are next", whatever the wait; every position above 999
    /// is "at least 999 ahead").
    pub fn canonical(&self) -> Announcement {
        match *self {
            Self::Position { position, .. } if position <= 1 => Self::Position {
                position: 1,
                wait: SpokenWait::LessThanAMinute,
            },
            Self::Position { position, wait } if position > MAX_SPOKEN_NUMBER => Self::Position {
                position: MAX_SPOKEN_NUMBER + 1,
                wait,
            },
            Self::CallbackConfirm { ref digits } => Self::CallbackConfirm {
                digits: digits.chars().filter(char::is_ascii_digit).collect(),
            },
            ref other => other.clone(),
        }
    }

    /// The clips and pauses that say this announcement in English, in order.
    pub fn script(&self) -> Vec<Part> {
        self.script_in(Language::En)
    }

    /// The clips and pauses that say this announcement in `language`, in order. Only the
    /// position sentence is composed by each language's own rules (numbers, word order,
    /// gender); every other announcement is one clip per sentence, under the same names
    /// in every pack.
    pub fn script_in(&self, language: Language) -> Vec<Part> {
        let mut s = Script::default();
        s.pause(LEAD_IN);
        match self {
            Self::Position { position, wait } => {
                place(&mut s, language, *position, MAX_SPOKEN_NUMBER, Some(*wait));
            }
            Self::Place {
                position,
                limit,
                wait,
            } => place(&mut s, language, *position, *limit, *wait),
            Self::AllAgentsBusy => {
                s.word("all-agents-busy");
                s.pause(SENTENCE_GAP);
                s.word("please-hold");
            }
            Self::CallbackOffer => s.word("callback-offer"),
            Self::CallbackConfirm { digits } => {
                s.word("callback-confirm");
                let mut first = true;
                for digit in digits.bytes().filter(u8::is_ascii_digit) {
                    if !first {
                        s.pause(DIGIT_GAP);
                    }
                    first = false;
                    s.word(DIGITS[usize::from(digit - b'0')]);
                }
                s.pause(SENTENCE_GAP);
                s.word("goodbye");
            }
            Self::Goodbye => s.word("goodbye"),
            Self::Closed => {
                s.word("closed");
                s.pause(SENTENCE_GAP);
                s.word("goodbye");
            }
            Self::AgentPaused => s.word("agent-paused"),
            Self::AgentAvailable => s.word("agent-available"),
        }
        s.pause(TAIL);
        s.parts
    }
}

/// The position sentence in `language` (at most `limit` as a number, "at least `limit`
/// ahead" above it), then the wait when there is one. Position 1 hears "you are next" alone.
fn place(s: &mut Script, language: Language, position: u32, limit: u32, wait: Option<SpokenWait>) {
    let limit = limit.clamp(1, MAX_SPOKEN_NUMBER);
    let (position, at_least) = match position {
        p if p <= 1 => (1, false),
        p if p > limit => (limit, true),
        p => (p, false),
    };
    let wait = wait.filter(|_| position > 1 || at_least);
    match language {
        Language::En => english_position(s, position, at_least, wait),
        Language::Es => super::lang::es::position(s, position, at_least, wait),
        Language::De => super::lang::de::position(s, position, at_least, wait),
    }
}

/// "You are currently number 3 in the queue. Estimated wait time is about 4 minutes."
fn english_position(s: &mut Script, position: u32, at_least: bool, wait: Option<SpokenWait>) {
    if position <= 1 && !at_least {
        s.word("you-are-next-in-the-queue");
        return;
    }
    if at_least {
        s.word("there-are-at-least");
        s.number(position);
        s.word("callers-ahead-of-you");
    } else {
        s.word("you-are-currently-number");
        s.number(position);
        s.word("in-the-queue");
    }
    if let Some(wait) = wait {
        s.pause(SENTENCE_GAP);
        s.word("estimated-wait-time-is");
        s.wait(wait);
    }
}

/// Builds a part list, putting [`WORD_GAP`] between two clips unless a pause is already
/// there.
#[derive(Default)]
pub(super) struct Script {
    parts: Vec<Part>,
}

impl Script {
    /// The next word, after a short gap.
    pub(super) fn word(&mut self, clip: &'static str) {
        if let Some(Part::Clip(_)) = self.parts.last() {
            self.parts.push(Part::Pause(WORD_GAP));
        }
        self.parts.push(Part::Clip(clip));
    }

    /// Words, each after a short gap.
    pub(super) fn words(&mut self, clips: &[&'static str]) {
        for &clip in clips {
            self.word(clip);
        }
    }

    /// The next clip right after the last one, no gap: the parts of one word.
    pub(super) fn joined(&mut self, clip: &'static str) {
        self.parts.push(Part::Clip(clip));
    }

    /// A silence.
    pub(super) fn pause(&mut self, length: Duration) {
        self.parts.push(Part::Pause(length));
    }

    fn number(&mut self, n: u32) {
        for word in number_words(n) {
            self.word(word);
        }
    }

    fn wait(&mut self, wait: SpokenWait) {
        match wait {
            SpokenWait::LessThanAMinute => self.word("less-than-a-minute"),
            SpokenWait::About(m) => {
                self.word("about");
                self.number(u32::from(m));
                self.word(if m == 1 { "minute" } else { "minutes" });
            }
            SpokenWait::FiveToTen => self.word("5-to-10-minutes"),
            SpokenWait::MoreThanTen => self.word("more-than-10-minutes"),
        }
    }
}

/// Clip names of the digits read back one by one (`digit-0` says "zero").
pub const DIGITS: [&str; 10] = [
    "digit-0", "digit-1", "digit-2", "digit-3", "digit-4", "digit-5", "digit-6", "digit-7",
    "digit-8", "digit-9",
];

const ONES: [&str; 20] = [
    "",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];

const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// The clip names that say `n` in British-style English ("three hundred and twelve",
/// "one hundred", "twenty one"). Numbers above [`MAX_SPOKEN_NUMBER`] are clamped to it and
/// 0 gives no words: callers of this function only ever pass 1–999.
pub fn number_words(n: u32) -> Vec<&'static str> {
    let n = n.min(MAX_SPOKEN_NUMBER) as usize;
    let mut words = Vec::with_capacity(5);
    let (hundreds, rest) = (n / 100, n % 100);
    if hundreds > 0 {
        words.push(ONES[hundreds]);
        words.push("hundred");
        if rest > 0 {
            words.push("and");
        }
    }
    if rest >= 20 {
        words.push(TENS[rest / 10]);
        if rest % 10 > 0 {
            words.push(ONES[rest % 10]);
        }
    } else if rest > 0 {
        words.push(ONES[rest]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spoken(n: u32) -> String {
        number_words(n).join(" ")
    }

    fn clips(announcement: &Announcement) -> Vec<&'static str> {
        announcement
            .script()
            .into_iter()
            .filter_map(|part| match part {
                Part::Clip(name) => Some(name),
                Part::Pause(_) => None,
            })
            .collect()
    }

    #[test]
    fn number_words_compose_one_to_999() {
        assert_eq!(spoken(1), "one");
        assert_eq!(spoken(13), "thirteen");
        assert_eq!(spoken(20), "twenty");
        assert_eq!(spoken(21), "twenty one");
        assert_eq!(spoken(99), "ninety nine");
        assert_eq!(spoken(100), "one hundred");
        assert_eq!(spoken(105), "one hundred and five");
        assert_eq!(spoken(110), "one hundred and ten");
        assert_eq!(spoken(140), "one hundred and forty");
        assert_eq!(spoken(312), "three hundred and twelve");
        assert_eq!(spoken(999), "nine hundred and ninety nine");
        assert_eq!(spoken(5000), "nine hundred and ninety nine");
        assert!(number_words(0).is_empty());
    }

    #[test]
    fn every_number_has_words_and_no_empty_clip() {
        for n in 1..=MAX_SPOKEN_NUMBER {
            let words = number_words(n);
            assert!(!words.is_empty() && words.len() <= 5, "{n}: {words:?}");
            assert!(words.iter().all(|w| !w.is_empty()), "{n}: {words:?}");
        }
    }

    #[test]
    fn position_announcement_reads_number_and_wait() {
        let a = Announcement::Position {
            position: 3,
            wait: SpokenWait::About(4),
        };
        assert_eq!(
            clips(&a),
            [
                "you-are-currently-number",
                "three",
                "in-the-queue",
                "estimated-wait-time-is",
                "about",
                "four",
                "minutes"
            ]
        );
        let one_minute = Announcement::Position {
            position: 2,
            wait: SpokenWait::About(1),
        };
        assert_eq!(clips(&one_minute)[4..], ["about", "one", "minute"]);
    }

    #[test]
    fn head_of_line_hears_you_are_next_without_estimate() {
        for position in [0, 1] {
            let a = Announcement::Position {
                position,
                wait: SpokenWait::MoreThanTen,
            };
            assert_eq!(clips(&a), ["you-are-next-in-the-queue"]);
        }
    }

    #[test]
    fn positions_beyond_the_pack_say_at_least_999() {
        let a = Announcement::Position {
            position: 1000,
            wait: SpokenWait::MoreThanTen,
        };
        assert_eq!(
            clips(&a),
            [
                "there-are-at-least",
                "nine",
                "hundred",
                "and",
                "ninety",
                "nine",
                "callers-ahead-of-you",
                "estimated-wait-time-is",
                "more-than-10-minutes"
            ]
        );
        let far = Announcement::Position {
            position: 50_000,
            wait: SpokenWait::MoreThanTen,
        };
        assert_eq!(far.canonical(), a.canonical());
        assert_eq!(far.script(), a.script());
    }

    #[test]
    fn callback_confirm_reads_digits_only() {
        let a = Announcement::CallbackConfirm {
            digits: "+1 555-0100".into(),
        };
        assert_eq!(
            clips(&a),
            [
                "callback-confirm",
                "digit-1",
                "digit-5",
                "digit-5",
                "digit-5",
                "digit-0",
                "digit-1",
                "digit-0",
                "digit-0",
                "goodbye"
            ]
        );
        assert_eq!(
            a.canonical(),
            Announcement::CallbackConfirm {
                digits: "15550100".into()
            }
        );
    }

    #[test]
    fn pauses_separate_words_and_frame_the_announcement() {
        let parts = Announcement::AllAgentsBusy.script();
        assert_eq!(
            parts,
            [
                Part::Pause(LEAD_IN),
                Part::Clip("all-agents-busy"),
                Part::Pause(SENTENCE_GAP),
                Part::Clip("please-hold"),
                Part::Pause(TAIL),
            ]
        );
        // No two clips are ever adjacent without a pause.
        let parts = Announcement::Position {
            position: 312,
            wait: SpokenWait::FiveToTen,
        }
        .script();
        for pair in parts.windows(2) {
            assert!(!matches!(pair, [Part::Clip(_), Part::Clip(_)]), "{parts:?}");
        }
    }

    #[test]
    fn canonical_merges_only_announcements_that_sound_the_same() {
        let next = |wait| Announcement::Position { position: 1, wait };
        assert_eq!(
            next(SpokenWait::FiveToTen).canonical(),
            next(SpokenWait::About(2)).canonical()
        );
        let third = |wait| Announcement::Position { position: 3, wait };
        assert_ne!(
            third(SpokenWait::FiveToTen).canonical(),
            third(SpokenWait::About(2)).canonical()
        );
    }
}
