//! `[[queue]]`: one queue's settings (docs/behaviour.md §12 "Configuration").

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{BridgeMode, Pattern};

/// `[[queue]]`: one named queue and its settings. Times are in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Unique name (required).
    pub name: String,
    /// Seconds between announcements; 0 = only on entry.
    pub announce_every: u64,
    /// Never announce a worse position than the last one.
    pub announce_position_only_down: bool,
    /// Highest position said as a number; above it "there are at least N callers ahead of
    /// you". 0: up to 999.
    pub announce_position_limit: u32,
    /// Whether the caller at the head of the line hears announcements ("you are next").
    pub announce_to_first: bool,
    /// Seconds an announcement (position or message) waits after the last one the same
    /// caller heard; 0: none.
    pub announce_min_gap: u64,
    /// Whether the position is followed by the wait estimate.
    pub announce_wait: bool,
    /// Audio files played in turn every `periodic_every` seconds between position updates
    /// ("did you know you can also reach us at…").
    pub periodic_messages: Vec<PathBuf>,
    /// Seconds between two periodic messages; 0: none.
    pub periodic_every: u64,
    /// An audio file the agent hears when it answers, before the caller is connected (the
    /// caller keeps its ringback or music); `""`: none.
    pub announce_to_agent: PathBuf,
    /// Record the bridged calls of this queue (callbacks too) into `[media] recordings`
    /// (bridge mode `relay` only: a transferred call's audio never passes holdfast).
    pub record: bool,
    /// Estimated wait (seconds) from which a callback is offered; 0 = never.
    pub callback_threshold: u64,
    /// Dial attempts for a callback before it is marked failed.
    pub callback_attempts: u32,
    /// Seconds between callback attempts.
    pub callback_retry_delay: u64,
    /// Caller numbers that may be offered (and dialled for) a callback.
    pub callback_number_pattern: Pattern,
    /// Number prefixes never called back, whatever the pattern says (toll fraud: premium
    /// rate and satellite ranges by default, [`DEFAULT_CALLBACK_DENY_PREFIXES`]). A number
    /// written with `00` for the international prefix is compared as `+`.
    pub callback_deny_prefixes: Vec<String>,
    /// Waiting entries beyond which new callers get `486 Busy Here`.
    pub max_len: u32,
    /// Relay media or transfer with REFER.
    pub bridge: BridgeMode,
    /// Seconds an agent's phone rings before the next agent is tried.
    pub ring_timeout: u64,
    /// Seconds an agent stays unavailable after a call.
    pub wrapup: u64,
    /// Unanswered offers in a row after which an agent is paused.
    pub max_no_answer: u32,
    /// Seconds an agent that let a call ring out (or could not be called) is skipped
    /// before it is offered a call again; it shows as `wrapup` meanwhile. 0: offered again
    /// at once.
    pub no_answer_backoff: u64,
    /// Music for the other party while one side of a bridged call holds (a phone's Hold
    /// key); `false`: silence.
    pub music_on_hold: bool,
    /// Average handle time (seconds) assumed before any call completed.
    pub default_handle_time: u64,
    /// Callers must offer SRTP (`RTP/SAVP` with an SDES key, RFC 4568); a plain RTP offer
    /// gets `488`.
    pub require_srtp: bool,
    /// How the queue picks among its free agents.
    pub strategy: crate::queue::dispatch::Strategy,
    /// Seconds a caller may wait before `overflow`; 0 = no limit.
    pub max_wait: u64,
    /// What happens at `max_wait`: another queue's name (the caller keeps its arrival
    /// order there), `"callback"` (offered at once) or `"hangup"` (goodbye, BYE).
    pub overflow: String,
    /// What happens when no agent of the queue is logged in (registered and unpaused): on
    /// arrival, and to callers already waiting after `no_agents_grace`.
    pub when_no_agents: WhenNoAgents,
    /// Seconds callers already waiting keep waiting after the last agent logged off,
    /// before `when_no_agents` applies to them.
    pub no_agents_grace: u64,
    /// Opening hours, e.g. `["Mon-Fri 08:00-18:00", "Sat 09:00-13:00"]`; empty: always open.
    pub hours: Vec<String>,
    /// The IANA time zone of `hours`.
    pub timezone: String,
    /// Outside hours: `"hangup"` (closed message, BYE), a queue's name, or `"callback"`.
    pub closed: String,
    /// Seconds during which a caller who hung up while waiting gets its place back by
    /// calling again from the same number; 0 = off.
    pub resume_within: u64,
    /// The language its callers hear when their route names none (`en`, `es`, `de`).
    pub language: crate::media::prompts::Language,
    /// The answer-time target of its service level, seconds (docs/behaviour.md §8).
    pub service_level: u64,
    /// The service level it aims at, percent: the wallboard shows it red below.
    pub service_level_goal: u8,
    /// Longest wait, seconds, from which the wallboard shows it amber.
    pub longest_wait_warn: u64,
    /// Longest wait, seconds, from which the wallboard shows it red.
    pub longest_wait_alarm: u64,
}

/// `[[queue]] when_no_agents` (docs/behaviour.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhenNoAgents {
    /// Callers join and wait anyway (Asterisk `joinempty = yes`).
    #[default]
    Join,
    /// A new caller gets `480` before it is answered; a waiting one hears that every agent
    /// is busy, goodbye, and a BYE (Asterisk `joinempty`/`leavewhenempty`).
    Reject,
    /// The queue's `overflow` applies at once (FreeSWITCH `max-wait-time-with-no-agent`).
    Overflow,
}

impl WhenNoAgents {
    /// The name used in the config and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Reject => "reject",
            Self::Overflow => "overflow",
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            announce_every: 30,
            announce_position_only_down: true,
            announce_position_limit: 0,
            announce_to_first: true,
            announce_min_gap: 0,
            announce_wait: true,
            periodic_messages: Vec::new(),
            periodic_every: 0,
            announce_to_agent: PathBuf::new(),
            record: false,
            callback_threshold: 300,
            callback_attempts: 3,
            callback_retry_delay: 120,
            callback_number_pattern: r"^\+?[0-9]{6,15}$".parse().expect("valid regex literal"),
            callback_deny_prefixes: DEFAULT_CALLBACK_DENY_PREFIXES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            max_len: 1000,
            bridge: BridgeMode::Relay,
            ring_timeout: 15,
            wrapup: 10,
            max_no_answer: 3,
            no_answer_backoff: 10,
            music_on_hold: true,
            default_handle_time: 300,
            require_srtp: false,
            strategy: crate::queue::dispatch::Strategy::LongestIdle,
            max_wait: 0,
            overflow: String::new(),
            when_no_agents: WhenNoAgents::Join,
            no_agents_grace: 30,
            hours: Vec::new(),
            timezone: "UTC".into(),
            closed: "hangup".into(),
            resume_within: 0,
            language: crate::media::prompts::Language::En,
            service_level: 20,
            service_level_goal: 80,
            longest_wait_warn: 60,
            longest_wait_alarm: 300,
        }
    }
}

/// Callback numbers refused by default (docs/behaviour.md §6): ranges where a call costs the
/// caller, or pays the called party, far more than a normal call, which is what toll fraud
/// dials. E.164 with `+`:
/// - ITU international premium rate and shared-cost services (`+979`, `+808`), international
///   networks and satellite (`+870` Inmarsat, `+881` GMSS, `+882` and `+883` international
///   networks);
/// - North American premium rate `+1 900` and `+1 976` (also written `1900`, `1976`);
/// - UK premium rate `+44 9` and `+44 871`–`+44 873`; Germany `+49 900` and `+49 137`;
///   France `+33 89`; Italy `+39 89`; Spain `+34 803`, `+34 806`, `+34 807`, `+34 905`;
///   Australia `+61 190`.
///
/// Replace the list with `callback_deny_prefixes` (`[]` turns it off).
pub const DEFAULT_CALLBACK_DENY_PREFIXES: &[&str] = &[
    "+979", "+808", "+870", "+881", "+882", "+883", "+1900", "+1976", "1900", "1976", "+449",
    "+44871", "+44872", "+44873", "+49900", "+49137", "+3389", "+3989", "+34803", "+34806",
    "+34807", "+34905", "+61190",
];

impl QueueConfig {
    /// Whether `number` may be offered and dialled a callback: it matches
    /// `callback_number_pattern` and starts with none of `callback_deny_prefixes`.
    pub fn callback_number_allowed(&self, number: &str) -> bool {
        if !self.callback_number_pattern.is_match(number) {
            return false;
        }
        // `00` is the international prefix in most of the world: compare it as `+`.
        let international = number.strip_prefix("00").map(|rest| format!("+{rest}"));
        let candidates = [Some(number), international.as_deref()];
        !self.callback_deny_prefixes.iter().any(|prefix| {
            candidates
                .iter()
                .flatten()
                .any(|n| n.starts_with(prefix.as_str()))
        })
    }
}
