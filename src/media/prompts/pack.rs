//! The English clip pack compiled into the binary, so `holdfast` speaks with no files
//! around it. The list mirrors `media/prompts/en/manifest.tsv` (a test keeps them equal);
//! `media/make-prompts.sh` renders the files.

/// Embeds `media/prompts/en/<name>.flac` for each name.
macro_rules! pack {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../../media/prompts/en/", $name, ".flac")))),*]
    };
}

/// File extension of the embedded clips, the format hint for the decoder.
pub(super) const EMBEDDED_EXT: &str = "flac";

/// `(clip name, FLAC bytes)` for every clip of the English pack.
pub(super) const EMBEDDED: &[(&str, &[u8])] = pack![
    "you-are-currently-number",
    "in-the-queue",
    "you-are-next-in-the-queue",
    "there-are-at-least",
    "callers-ahead-of-you",
    "estimated-wait-time-is",
    "less-than-a-minute",
    "about",
    "minute",
    "minutes",
    "5-to-10-minutes",
    "more-than-10-minutes",
    "all-agents-busy",
    "please-hold",
    "callback-offer",
    "callback-confirm",
    "goodbye",
    "closed",
    "agent-paused",
    "agent-available",
    "hundred",
    "and",
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
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "digit-0",
    "digit-1",
    "digit-2",
    "digit-3",
    "digit-4",
    "digit-5",
    "digit-6",
    "digit-7",
    "digit-8",
    "digit-9",
];
