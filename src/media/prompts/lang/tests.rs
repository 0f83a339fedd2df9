//! Each language's composition checked against tables written by hand: what the clip
//! names say (from the packs' own manifests) read as the sentence a native speaker expects.

use std::collections::{HashMap, HashSet};

use super::super::{Announcement, Part, Prompts, SpokenWait};
use super::{Language, de, es};

/// Clip name → the words it says, from `language`'s manifest.
fn texts(language: Language) -> HashMap<&'static str, &'static str> {
    let manifest = match language {
        Language::En => include_str!("../../../../media/prompts/en/manifest.tsv"),
        Language::Es => include_str!("../../../../media/prompts/es/manifest.tsv"),
        Language::De => include_str!("../../../../media/prompts/de/manifest.tsv"),
    };
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once('\t'))
        .map(|(file, text)| (file.trim_end_matches(".flac"), text))
        .collect()
}

/// What a script says: the clips' words, a space between words, none inside a joined word.
fn said(language: Language, parts: &[Part]) -> String {
    let texts = texts(language);
    let mut out = String::new();
    let mut gap = false;
    for part in parts {
        match part {
            Part::Clip(name) => {
                if gap && !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(texts.get(name).unwrap_or_else(|| panic!("no clip {name}")));
                gap = false;
            }
            Part::Pause(_) => gap = true,
        }
    }
    out
}

fn spanish(n: u32, masculine: bool) -> String {
    let texts = texts(Language::Es);
    es::number_words(n, masculine)
        .iter()
        .map(|w| texts[w])
        .collect::<Vec<_>>()
        .join(" ")
}

fn german(n: u32) -> String {
    let texts = texts(Language::De);
    de::number_words(n).iter().map(|w| texts[w]).collect()
}

#[test]
fn spanish_numbers_follow_spanish_rules() {
    for (n, words) in [
        (1, "uno"),
        (9, "nueve"),
        (15, "quince"),
        (16, "dieciséis"),
        (20, "veinte"),
        (21, "veintiuno"),
        (22, "veintidós"),
        (29, "veintinueve"),
        (30, "treinta"),
        (31, "treinta y uno"),
        (45, "cuarenta y cinco"),
        (99, "noventa y nueve"),
        (100, "cien"),
        (101, "ciento uno"),
        (115, "ciento quince"),
        (121, "ciento veintiuno"),
        (200, "doscientos"),
        (310, "trescientos diez"),
        (555, "quinientos cincuenta y cinco"),
        (700, "setecientos"),
        (999, "novecientos noventa y nueve"),
    ] {
        assert_eq!(spanish(n, false), words, "{n}");
    }
    // Before a masculine noun ("minuto"): un, veintiún, treinta y un, ciento un.
    for (n, words) in [
        (1, "un"),
        (21, "veintiún"),
        (31, "treinta y un"),
        (101, "ciento un"),
        (4, "cuatro"),
    ] {
        assert_eq!(spanish(n, true), words, "{n}");
    }
}

#[test]
fn german_numbers_are_one_word_with_the_unit_first() {
    for (n, word) in [
        (1, "eins"),
        (12, "zwölf"),
        (17, "siebzehn"),
        (20, "zwanzig"),
        (21, "einundzwanzig"),
        (23, "dreiundzwanzig"),
        (30, "dreißig"),
        (31, "einunddreißig"),
        (66, "sechsundsechzig"),
        (71, "einundsiebzig"),
        (77, "siebenundsiebzig"),
        (100, "einhundert"),
        (101, "einhunderteins"),
        (312, "dreihundertzwölf"),
        (999, "neunhundertneunundneunzig"),
    ] {
        assert_eq!(german(n), word, "{n}");
    }
}

fn position(position: u32, wait: SpokenWait) -> Announcement {
    Announcement::Position { position, wait }
}

#[test]
fn positions_and_waits_read_as_whole_sentences() {
    let cases = [
        (
            Language::Es,
            position(1, SpokenWait::About(3)),
            "Usted es el siguiente en la cola.",
        ),
        (
            Language::Es,
            position(3, SpokenWait::About(1)),
            "Usted es el número tres en la cola. El tiempo de espera estimado es de \
             aproximadamente un minuto.",
        ),
        (
            Language::Es,
            position(21, SpokenWait::About(4)),
            "Usted es el número veintiuno en la cola. El tiempo de espera estimado es de \
             aproximadamente cuatro minutos.",
        ),
        (
            Language::Es,
            position(2, SpokenWait::LessThanAMinute),
            "Usted es el número dos en la cola. El tiempo de espera estimado es de menos de \
             un minuto.",
        ),
        (
            Language::Es,
            position(1500, SpokenWait::MoreThanTen),
            "Hay al menos novecientos noventa y nueve personas delante de usted. El tiempo de \
             espera estimado es de más de diez minutos.",
        ),
        (
            Language::De,
            position(23, SpokenWait::About(1)),
            "Sie sind Nummer dreiundzwanzig in der Warteschlange. Die geschätzte Wartezeit \
             beträgt etwa eine Minute.",
        ),
        (
            Language::De,
            position(4, SpokenWait::About(3)),
            "Sie sind Nummer vier in der Warteschlange. Die geschätzte Wartezeit beträgt etwa \
             drei Minuten.",
        ),
        (
            Language::De,
            position(2, SpokenWait::FiveToTen),
            "Sie sind Nummer zwei in der Warteschlange. Die geschätzte Wartezeit beträgt fünf \
             bis zehn Minuten.",
        ),
        (
            Language::De,
            position(0, SpokenWait::About(2)),
            "Sie sind als Nächstes an der Reihe.",
        ),
        (
            Language::De,
            Announcement::CallbackConfirm {
                digits: "+4930".into(),
            },
            "Wir rufen Sie zurück unter vier neun drei null Auf Wiederhören.",
        ),
    ];
    for (language, announcement, sentence) in cases {
        assert_eq!(
            said(language, &announcement.script_in(language)),
            sentence,
            "{language} {announcement:?}"
        );
    }
}

/// Every announcement shape in every language: each clip it needs is in that language's
/// pack, and each clip of the pack is needed by some announcement.
#[test]
fn every_pack_has_exactly_the_clips_its_language_says() {
    let waits = [
        SpokenWait::LessThanAMinute,
        SpokenWait::About(1),
        SpokenWait::About(2),
        SpokenWait::About(21),
        SpokenWait::FiveToTen,
        SpokenWait::MoreThanTen,
    ];
    let mut all: Vec<Announcement> = (0..=1001)
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
            digits: "0123456789".into(),
        },
    ]);
    for language in Language::ALL {
        let names: HashSet<&str> = Prompts::clip_names_in(language).collect();
        let manifest: HashSet<&str> = texts(language).keys().copied().collect();
        assert_eq!(
            names, manifest,
            "{language}: the embedded list is the manifest"
        );
        let mut used = HashSet::new();
        for announcement in &all {
            for part in announcement.script_in(language) {
                if let Part::Clip(name) = part {
                    assert!(
                        names.contains(name),
                        "{language} {announcement:?}: no {name}"
                    );
                    used.insert(name);
                }
            }
        }
        let unused: Vec<_> = names.difference(&used).collect();
        assert!(
            unused.is_empty(),
            "{language}: clips never said: {unused:?}"
        );
    }
}

#[test]
fn each_pack_renders_in_its_own_language() {
    let spanish = Prompts::embedded_in(Language::Es).unwrap();
    let english = Prompts::embedded().unwrap();
    let announcement = position(3, SpokenWait::About(2));
    let (es_pcm, en_pcm) = (
        spanish.compose(&announcement),
        english.compose(&announcement),
    );
    assert!(!es_pcm.is_empty() && es_pcm != en_pcm);
    // What the Spanish pack renders starts with its own first clip.
    let first = spanish.clip("usted-es-el-numero").unwrap();
    let lead = super::super::pause_frames(super::super::LEAD_IN) * super::super::FRAME_LEN;
    assert_eq!(&es_pcm[lead..lead + first.len()], first);
}
