//! Spanish: "Usted es el número tres en la cola. El tiempo de espera estimado es de
//! aproximadamente cuatro minutos."
//!
//! Numbers follow Spanish rules: one word up to 29 ("veintinueve"), then tens "y" units
//! ("treinta y cinco"), "cien" alone and "ciento" before more ("ciento cinco"), the
//! hundreds as their own words ("quinientos", "setecientos"). Before a masculine noun
//! ("minuto"), a final "uno" becomes "un" ("un minuto", "veintiún minutos", "treinta y un
//! minutos").

use super::super::script::{MAX_SPOKEN_NUMBER, SENTENCE_GAP, Script, SpokenWait};

/// Clip names of 1–29 (`num-N`), index = number.
const UNITS: [&str; 30] = [
    "", "num-1", "num-2", "num-3", "num-4", "num-5", "num-6", "num-7", "num-8", "num-9", "num-10",
    "num-11", "num-12", "num-13", "num-14", "num-15", "num-16", "num-17", "num-18", "num-19",
    "num-20", "num-21", "num-22", "num-23", "num-24", "num-25", "num-26", "num-27", "num-28",
    "num-29",
];

/// Clip names of the tens from 30 ("treinta"), index = tens digit.
const TENS: [&str; 10] = [
    "", "", "", "num-30", "num-40", "num-50", "num-60", "num-70", "num-80", "num-90",
];

/// Clip names of the hundreds from 200 ("doscientos"), index = hundreds digit.
const HUNDREDS: [&str; 10] = [
    "", "num-100", "num-200", "num-300", "num-400", "num-500", "num-600", "num-700", "num-800",
    "num-900",
];

/// The clips that say `n` (1–999; larger is clamped, 0 says nothing). `masculine`: before
/// a masculine noun, where a final one is "un" / "veintiún".
pub fn number_words(n: u32, masculine: bool) -> Vec<&'static str> {
    let n = n.min(MAX_SPOKEN_NUMBER) as usize;
    let mut words = Vec::with_capacity(4);
    let (hundreds, rest) = (n / 100, n % 100);
    match (hundreds, rest) {
        (0, _) => {}
        (1, 0) => words.push("num-100"),
        (1, _) => words.push("ciento"),
        (h, _) => words.push(HUNDREDS[h]),
    }
    let unit = |u: usize| match (u, masculine) {
        (1, true) => "un",
        (21, true) => "veintiun",
        (u, _) => UNITS[u],
    };
    match rest {
        0 => {}
        1..=29 => words.push(unit(rest)),
        _ => {
            words.push(TENS[rest / 10]);
            if rest % 10 > 0 {
                words.push("y");
                words.push(unit(rest % 10));
            }
        }
    }
    words
}

/// The position sentence and the wait.
pub(in super::super) fn position(
    s: &mut Script,
    position: u32,
    at_least: bool,
    wait: Option<SpokenWait>,
) {
    if position <= 1 && !at_least {
        s.word("usted-es-el-siguiente");
        return;
    }
    if at_least {
        s.word("hay-al-menos");
        s.words(&number_words(position.min(MAX_SPOKEN_NUMBER), false));
        s.word("personas-delante-de-usted");
    } else {
        s.word("usted-es-el-numero");
        s.words(&number_words(position, false));
        s.word("en-la-cola");
    }
    let Some(wait) = wait else {
        return;
    };
    s.pause(SENTENCE_GAP);
    s.word("el-tiempo-de-espera-estimado-es");
    match wait {
        SpokenWait::LessThanAMinute => s.word("menos-de-un-minuto"),
        SpokenWait::About(m) => {
            s.word("de-aproximadamente");
            s.words(&number_words(u32::from(m), true));
            s.word(if m == 1 { "minuto" } else { "minutos" });
        }
        SpokenWait::FiveToTen => s.word("de-5-a-10-minutos"),
        SpokenWait::MoreThanTen => s.word("mas-de-10-minutos"),
    }
}
