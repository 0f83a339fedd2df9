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
    /// A supervisor dials it followed by an agent's user (`*50alice`) to listen to that
    /// agent's call.
    pub listen: String,
    /// … to whisper to the agent (the caller does not hear it).
    pub whisper: String,
    /// … to barge in (caller and agent both hear the supervisor).
    pub barge: String,
}

impl Default for Codes {
    fn default() -> Self {
        Self {
            pause: "*46".to_owned(),
            unpause: "*47".to_owned(),
            listen: "*50".to_owned(),
            whisper: "*51".to_owned(),
            barge: "*52".to_owned(),
        }
    }
}

/// `[[supervisor]]`: a user who registers like an agent, takes no calls, and may monitor
/// agents' calls with the `listen`, `whisper` and `barge` codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Supervisor {
    /// SIP user name (unique among agents and supervisors).
    pub user: String,
    /// Its Digest password.
    pub password: String,
}

impl Codes {
    /// Every code with its key, for validation.
    pub fn all(&self) -> [(&'static str, &str); 5] {
        [
            ("pause", &self.pause),
            ("unpause", &self.unpause),
            ("listen", &self.listen),
            ("whisper", &self.whisper),
            ("barge", &self.barge),
        ]
    }

    /// The codes dialled with an agent's user after them: key, code, monitoring mode.
    pub fn prefixes(&self) -> [(&'static str, &str, crate::media::mix::MonitorMode); 3] {
        use crate::media::mix::MonitorMode;
        [
            ("listen", &self.listen, MonitorMode::Listen),
            ("whisper", &self.whisper, MonitorMode::Whisper),
            ("barge", &self.barge, MonitorMode::Barge),
        ]
    }

    /// A monitoring code in `dialled`: its mode and the agent's user that follows it.
    pub fn monitor<'a>(
        &self,
        dialled: &'a str,
    ) -> Option<(crate::media::mix::MonitorMode, &'a str)> {
        self.prefixes()
            .into_iter()
            .filter(|(_, code, _)| !code.is_empty())
            .find_map(|(_, code, mode)| {
                let agent = dialled.strip_prefix(code)?;
                (!agent.is_empty()).then_some((mode, agent))
            })
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
