//! `[codes]`: what an agent's phone dials to act on holdfast itself (docs/behaviour.md §5),
//! like the feature codes of a PBX. An INVITE from a phone whose Request-URI user is one of
//! these codes is not a caller: it is authenticated as the agent (Digest, like its
//! REGISTER), acted on, answered with a short confirmation and hung up.

use serde::{Deserialize, Serialize};

/// `[codes]`; `""` turns a code off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Codes {
    /// Pause the agent who dials it (no callers offered until unpaused).
    pub pause: String,
    /// Unpause the agent who dials it (callers are offered again at once).
    pub unpause: String,
}

impl Default for Codes {
    fn default() -> Self {
        Self {
            pause: "*46".to_owned(),
            unpause: "*47".to_owned(),
        }
    }
}

impl Codes {
    /// Every code with its key, for validation.
    pub fn all(&self) -> [(&'static str, &str); 2] {
        [("pause", &self.pause), ("unpause", &self.unpause)]
    }

    /// Why `code` cannot be dialled as a Request-URI user, if it cannot.
    pub fn problem(code: &str) -> Option<&'static str> {
        if code.is_empty() {
            return None;
        }
        let dialable = code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'*' | b'#' | b'+' | b'-' | b'.'));
        (!dialable).then_some("must be digits, letters, * or # (a SIP user part)")
    }
}
