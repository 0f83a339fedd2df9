//! Supervisors listening to, whispering to and barging into agents' calls (docs/behaviour.md
//! §5, "Listening, whispering, barging"). A `[[supervisor]]` dials `*50<agent>` (listen),
//! `*51<agent>` (whisper) or `*52<agent>` (barge) from a phone registered with its
//! password. The INVITE is authenticated like a `*46` (Digest, the same guessing limits),
//! answered on the call's media shard, and the engine mixes for that call alone
//! (`crate::media::mix`). Hanging up either side ends it; each start and end is a call event.
//!
//! ```text
//!  INVITE *51alice ─▶ 401 ─▶ INVITE (credentials) ─▶ supervisor? ─ no ─▶ 403
//!        alice on a bridged call? ─ no ─▶ 480 · watched already? ─▶ 486 · else 200, monitor
//! ```

use std::net::SocketAddr;
use std::time::Instant;

use super::B2bua;
use super::events::EventFacts;
use super::leg::LegKey;
use crate::media::engine::StreamId;
use crate::media::mix::MonitorMode;
use crate::queue::LeaveReason;
use crate::sip::message;
use crate::sip::transaction::ServerKey;
use crate::store::CallEventKind;

/// What a supervisor's call watches.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The agent leg of the monitored call.
    pub leg: LegKey,
    /// Listen, whisper or barge.
    pub mode: MonitorMode,
    /// The supervisor's user.
    pub supervisor: String,
    /// The monitored call's facts (caller, agent, queue), for the stop event too.
    facts: EventFacts,
}

impl B2bua {
    /// An INVITE to a monitoring code for agent `agent`.
    pub(super) fn on_monitor_invite(
        &mut self,
        now: Instant,
        key: &ServerKey,
        request: &rsip::Request,
        source: SocketAddr,
        mode: MonitorMode,
        agent: &str,
    ) {
        if self.draining {
            return self.reply(now, key, request, 503);
        }
        let user = match self.authenticate_register(now, request, source) {
            Ok((user, _)) => user,
            Err(response) => {
                let response = message::with_to_tag(response, &self.sip.ids.tag());
                return self.respond(now, key, response);
            }
        };
        if !self.config.supervisors.iter().any(|s| s.user == user) {
            tracing::warn!(%user, %agent, "monitoring refused: not a [[supervisor]]");
            return self.reply(now, key, request, 403);
        }
        let Some(agent_id) = self.agents.find(agent) else {
            return self.reply(now, key, request, 404);
        };
        let Some((leg_key, caller_stream, agent_stream)) = self.bridged_leg_of(agent_id) else {
            tracing::info!(%user, %agent, "monitoring refused: the agent is on no bridged call");
            return self.reply(now, key, request, 480);
        };
        if self.watched.contains_key(&leg_key) {
            return self.reply(now, key, request, 486);
        }
        let Some(opened) = self.open_service_dialog(now, key, request, Some(agent_stream)) else {
            return;
        };
        let (call_key, stream) = (opened.key, opened.stream);
        let mut call = opened.into_call(now, key, request, source, user.clone(), None);
        call.service = true;
        let facts = match self.legs.get(&leg_key) {
            Some(leg) => self.leg_facts(leg.queue, Some(leg.agent), leg.call),
            None => EventFacts::default(),
        };
        let watch = Watch {
            leg: leg_key,
            mode,
            supervisor: user,
            facts,
        };
        call.watch = Some(watch.clone());
        let media = call.media;
        self.calls.insert(call);
        self.answer_caller(now, call_key);
        self.media.connect(stream, media.remote, media.payload_type);
        self.media
            .monitor(stream, caller_stream, agent_stream, mode);
        self.watched.insert(leg_key, call_key);
        self.monitor_event(now, CallEventKind::MonitorStart, &watch);
    }

    /// The answered agent leg of `agent`'s bridged call: its key, the caller's stream and
    /// the agent's (a callback's dial-back counts once the caller is on the line).
    fn bridged_leg_of(
        &self,
        agent: crate::queue::dispatch::AgentId,
    ) -> Option<(LegKey, StreamId, StreamId)> {
        self.legs.values().find_map(|leg| {
            if leg.agent != agent || leg.talking_since().is_none() {
                return None;
            }
            let caller = match self.calls.get(&leg.call) {
                Some(call) if call.state == super::CallState::Bridged => Some(call.stream),
                Some(_) => None,
                None => self
                    .callbacks
                    .get(&leg.call.entry())
                    .and_then(|c| c.attempt())
                    .map(|a| a.stream),
            }?;
            Some((leg.key, caller, leg.stream))
        })
    }

    /// The monitored call of agent leg `leg_key` ended: its supervisor is hung up.
    pub(super) fn unwatch(&mut self, now: Instant, leg_key: LegKey) {
        if let Some(call) = self.watched.get(&leg_key).copied() {
            self.hang_up(now, call, LeaveReason::Removed);
        }
    }

    /// A supervisor's call is gone (it hung up, or was hung up).
    pub(super) fn monitor_ended(&mut self, now: Instant, watch: &Watch) {
        self.watched.remove(&watch.leg);
        self.monitor_event(now, CallEventKind::MonitorStop, watch);
    }

    fn monitor_event(&mut self, now: Instant, kind: CallEventKind, watch: &Watch) {
        let detail = serde_json::json!({
            "supervisor": watch.supervisor,
            "mode": watch.mode.as_str(),
        });
        self.call_event(
            now,
            kind,
            EventFacts {
                detail: Some(detail),
                ..watch.facts.clone()
            },
        );
    }

    /// The supervisor and mode monitoring agent leg `leg_key`, if any (the wallboard).
    pub(super) fn watcher_of(&self, leg_key: LegKey) -> Option<&Watch> {
        let call = self.watched.get(&leg_key)?;
        self.calls.get(call)?.watch.as_ref()
    }
}
