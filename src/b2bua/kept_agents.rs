//! Agents across a restart (docs/behaviour.md §13): each registration is kept as it is
//! made, refreshed or dropped, and each pause and wrap-up as it starts or ends, so a
//! restarted holdfast reaches every phone without waiting for it to register again and
//! offers no caller to an agent who was paused or resting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::B2bua;
use crate::queue::dispatch::{AgentEvent, AgentId, AgentState};
use crate::sip::registrar::Binding;
use crate::store::{Kept, KeptKind, Record};

/// A registration, as written to the store.
#[derive(Debug, Serialize, Deserialize)]
struct KeptBinding {
    contact: String,
    source: SocketAddr,
    expires_ms: i64,
    path: Vec<String>,
}

/// An agent's pause and wrap-up, as written to the store.
#[derive(Debug, Serialize, Deserialize)]
struct KeptAgent {
    paused: bool,
    wrapup_until_ms: Option<i64>,
}

impl B2bua {
    /// `user`'s binding is now `binding` (`None`: gone): the kept row follows. A binding
    /// over a connection is not kept (the connection dies with the process; the phone
    /// registers again over a new one).
    pub(super) fn keep_registration(
        &mut self,
        now: Instant,
        user: &str,
        binding: Option<&Binding>,
    ) {
        let state = binding
            .filter(|b| self.flow(b.source).is_none())
            .and_then(|b| {
                serde_json::to_string(&KeptBinding {
                    contact: b.contact.clone(),
                    source: b.source,
                    expires_ms: self.unix_ms_at(b.expires_at),
                    path: b.path.clone(),
                })
                .ok()
            });
        self.journal.push_back((
            now,
            Record::Keep(Kept {
                kind: KeptKind::Registration,
                key: user.to_owned(),
                state,
            }),
        ));
    }

    /// An agent event: a pause or a wrap-up that starts or ends is written at the end of
    /// the input.
    pub(super) fn note_agent_event(&mut self, event: &AgentEvent) {
        let rests = |s: &AgentState| matches!(s, AgentState::Paused | AgentState::Wrapup);
        if let AgentEvent::StateChanged { agent, from, to } = event
            && (rests(from) || rests(to))
        {
            self.survival.mark_agent(*agent);
        }
    }

    /// Writes the kept state of `agent`: paused, resting until when; the row goes when it
    /// is neither.
    pub(super) fn write_kept_agent(&mut self, now: Instant, agent: AgentId) {
        let Some(record) = self.agents.get(agent) else {
            return;
        };
        let kept = KeptAgent {
            paused: record.is_paused(),
            wrapup_until_ms: self
                .agents
                .wrapup_until(agent)
                .map(|at| self.unix_ms_at(at)),
        };
        let state = (kept.paused || kept.wrapup_until_ms.is_some())
            .then(|| serde_json::to_string(&kept).ok())
            .flatten();
        self.journal.push_back((
            now,
            Record::Keep(Kept {
                kind: KeptKind::Agent,
                key: record.user().to_owned(),
                state,
            }),
        ));
    }

    /// Puts back a registration the process before kept; `false` when it had lapsed or the
    /// agent is no longer configured (its row is then stale). Nothing is dispatched until
    /// [`B2bua::restore_done`].
    pub fn restore_registration(&mut self, now: Instant, user: &str, state: &str) -> bool {
        let Ok(kept) = serde_json::from_str::<KeptBinding>(state) else {
            return false;
        };
        if self.agents.find(user).is_none() {
            return false;
        }
        let left = kept.expires_ms.saturating_sub(self.unix_ms_at(now));
        let Ok(left) = u64::try_from(left) else {
            return false;
        };
        let binding = Binding {
            user: user.to_owned(),
            contact: kept.contact,
            source: kept.source,
            expires_at: now + Duration::from_millis(left),
            path: kept.path,
        };
        let restored = self.registration.registrar.restore(now, binding);
        if restored {
            tracing::info!(agent = user, "registration restored");
        }
        restored
    }

    /// Puts back an agent's pause and wrap-up; `false` when the agent is no longer
    /// configured.
    pub fn restore_agent(&mut self, now: Instant, user: &str, state: &str) -> bool {
        let (Ok(kept), Some(agent)) = (
            serde_json::from_str::<KeptAgent>(state),
            self.agents.find(user),
        ) else {
            return false;
        };
        // Registered first (no dispatch until everything is back, [`B2bua::restore_done`]).
        self.process_registrar_events(now);
        if kept.paused {
            let _ = self.agents.pause(now, agent);
        }
        if let Some(ms) = kept.wrapup_until_ms {
            let left = u64::try_from(ms.saturating_sub(self.unix_ms_at(now))).unwrap_or(0);
            let _ = self
                .agents
                .restore_wrapup(now, agent, now + Duration::from_millis(left));
        }
        tracing::info!(agent = user, paused = kept.paused, "agent state restored");
        self.drain_agent_events();
        true
    }
}
