//! German: "Sie sind Nummer dreiundzwanzig in der Warteschlange. Die geschätzte Wartezeit
//! beträgt etwa vier Minuten."
//!
//! Every number from 1 to 99 is one clip, as German writes and says it in one word
//! ("dreiundzwanzig": the unit before the tens); the hundreds ("dreihundert") are one clip
//! each, and a number above 100 is said as the hundreds with the rest joined on without a
//! pause ("dreihundertzwölf"). Before the feminine "Minute", one is "eine".

use super::super::script::{MAX_SPOKEN_NUMBER, SENTENCE_GAP, Script, SpokenWait};

/// Clip names of 0–99 (`num-N`; `num-0` is never said: 0 says nothing), index = number.
const BELOW_HUNDRED: [&str; 100] = [
    "num-0", "num-1", "num-2", "num-3", "num-4", "num-5", "num-6", "num-7", "num-8", "num-9",
    "num-10", "num-11", "num-12", "num-13", "num-14", "num-15", "num-16", "num-17", "num-18",
    "num-19", "num-20", "num-21", "num-22", "num-23", "num-24", "num-25", "num-26", "num-27",
    "num-28", "num-29", "num-30", "num-31", "num-32", "num-33", "num-34", "num-35", "num-36",
    "num-37", "num-38", "num-39", "num-40", "num-41", "num-42", "num-43", "num-44", "num-45",
    "num-46", "num-47", "num-48", "num-49", "num-50", "num-51", "num-52", "num-53", "num-54",
    "num-55", "num-56", "num-57", "num-58", "num-59", "num-60", "num-61", "num-62", "num-63",
    "num-64", "num-65", "num-66", "num-67", "num-68", "num-69", "num-70", "num-71", "num-72",
    "num-73", "num-74", "num-75", "num-76", "num-77", "num-78", "num-79", "num-80", "num-81",
    "num-82", "num-83", "num-84", "num-85", "num-86", "num-87", "num-88", "num-89", "num-90",
    "num-91", "num-92", "num-93", "num-94", "num-95", "num-96", "num-97", "num-98", "num-99",
];

/// Clip names of the hundreds, index = hundreds digit.
const HUNDREDS: [&str; 10] = [
    "", "num-100", "num-200", "num-300", "num-400", "num-500", "num-600", "num-700", "num-800",
    "num-900",
];

/// The clips that say `n` (1–999; larger is clamped, 0 says nothing), as one word: the
/// caller joins them with no pause between.
pub fn number_words(n: u32) -> Vec<&'static str> {
    let n = n.min(MAX_SPOKEN_NUMBER) as usize;
    let mut words = Vec::with_capacity(2);
    if n >= 100 {
        words.push(HUNDREDS[n / 100]);
    }
    if !n.is_multiple_of(100) {
        words.push(BELOW_HUNDRED[n % 100]);
    }
    words
}

/// Says `n` as one word: its clips back to back, no gap.
fn number(s: &mut Script, n: u32) {
    let words = number_words(n);
    if let Some((first, rest)) = words.split_first() {
        s.word(first);
        for &word in rest {
            s.joined(word);
        }
    }
}

/// The position sentence and the wait.
pub(in super::super) fn position(
    s: &mut Script,
    position: u32,
    at_least: bool,
    wait: Option<SpokenWait>,
) {
    if position <= 1 && !at_least {
        s.word("sie-sind-als-naechstes-dran");
        return;
    }
    if at_least {
        s.word("vor-ihnen-warten-mindestens");
        number(s, position.min(MAX_SPOKEN_NUMBER));
        s.word("anrufer");
    } else {
        s.word("sie-sind-nummer");
        number(s, position);
        s.word("in-der-warteschlange");
    }
    let Some(wait) = wait else {
        return;
    };
    s.pause(SENTENCE_GAP);
    s.word("die-geschaetzte-wartezeit-betraegt");
    match wait {
        SpokenWait::LessThanAMinute => s.word("weniger-als-eine-minute"),
        SpokenWait::About(1) => s.words(&["etwa", "eine", "minute"]),
        SpokenWait::About(m) => {
            s.word("etwa");
            number(s, u32::from(m));
            s.word("minuten");
        }
        SpokenWait::FiveToTen => s.word("5-bis-10-minuten"),
        SpokenWait::MoreThanTen => s.word("mehr-als-10-minuten"),
    }
}
