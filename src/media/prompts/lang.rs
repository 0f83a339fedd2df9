//! The languages holdfast speaks (docs/behaviour.md §4): English, Spanish and German, each a
//! clip pack of its own (`media/prompts/<language>/`) and its own rules for saying a
//! position and a wait. The sentences that are one clip each (the callback offer, the
//! closed message…) have the same clip names in every pack.

pub mod de;
pub mod es;

use serde::{Deserialize, Serialize};

/// A language of the prompts (`[[route]] language`, `[[queue]] language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English (the default).
    #[default]
    En,
    /// Spanish.
    Es,
    /// German.
    De,
}

impl Language {
    /// Every language, in a fixed order.
    pub const ALL: [Language; 3] = [Language::En, Language::Es, Language::De];

    /// Its code in the configuration and the name of its pack's directory.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
            Self::De => "de",
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests;
