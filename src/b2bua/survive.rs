//! Calls that outlive the process (docs/behaviour.md §13): what is kept of a caller on the
//! line, and how a restarted holdfast takes it back.
//!
//! ```text
//!  ACK (holding) / bridged / re-INVITE / overflow / offer heard ──▶ marked
//!  end of the input ──▶ one `Keep` record per marked call: its state as JSON (store thread,
//!                       batched with the call events)
//!  release ──▶ the row is deleted
//!  start-up ──▶ restore_call: the dialog, the queue place (same sequence number, level and
//!               join time), the RTP stream on its old port (the media ledger continues
//!               SSRC and sequence), music and announcements; a bridged call's agent leg
//!               and the relay; then an in-dialog OPTIONS asks whether the caller is still
//!               there: 481, 408 or no answer (Timer F, 32 s) ends the call
//! ```
//!
//! What is not kept: calls not answered yet (the trunk still has their INVITE transaction
//! and gives up on it), SRTP calls (their keys are not written to disk), calls whose
//! signalling runs over a connection that dies with the process, and REFER transfers in
//! progress.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::call::{Call, CallState, NewCall};
use super::leg::{LegFor, LegState, NewLeg};
use super::session::LocalSdp;
use super::{B2bua, CallKey, CallTimer, LegKey};
use crate::queue::dispatch::AgentId;
use crate::queue::{EntryKind, LeaveReason, Level, QueueId, Seq};
use crate::sip::dialog::Dialog;
use crate::sip::sdp::Answer;
use crate::sip::transaction::{ClientKey, ServerKey};
use crate::store::{Kept, KeptKind, Record};

/// How far our CSeq moves on in a restored dialog: past every request the process before
/// may have sent since the state was written (refreshes, probes, a BYE).
const CSEQ_SKIP: u32 = 1000;

/// The controller's side of surviving a restart: calls whose kept state changed during the
/// current input, and the liveness probes in flight.
#[derive(Debug, Default)]
pub(super) struct Survival {
    dirty: BTreeSet<CallKey>,
    /// Agents whose pause or wrap-up changed.
    agents: BTreeSet<AgentId>,
    probes: HashMap<ClientKey, CallKey>,
}

/// A caller on the line, as written to the store.
#[derive(Debug, Serialize, Deserialize)]
struct KeptCall {
    dialog: Dialog,
    signalling: SocketAddr,
    caller: String,
    /// The queue it waits in, or was taken from by its agent.
    queue: String,
    /// Its place while waiting.
    place: Option<KeptPlace>,
    /// When the INVITE arrived (announcements run on from it), Unix ms.
    started_ms: i64,
    media: Answer,
    local: LocalSdp,
    caller_holds: bool,
    session: Option<KeptSession>,
    offer_from_ms: Option<i64>,
    /// The agent it talks to.
    agent: Option<KeptLeg>,
    /// The language it hears (kept by a process from before languages: English).
    #[serde(default)]
    language: crate::media::prompts::Language,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeptPlace {
    seq: u64,
    level: Level,
    joined_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeptSession {
    interval_secs: u64,
    we_refresh: bool,
    peer_allows_update: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeptLeg {
    user: String,
    dialog: Dialog,
    destination: SocketAddr,
    local: LocalSdp,
    remote: Option<SocketAddr>,
    holds: bool,
    talking_since_ms: Option<i64>,
    /// The file the call is recorded into: the next process continues it.
    #[serde(default)]
    recording: Option<std::path::PathBuf>,
}

/// Why a kept call could not be taken back.
#[derive(Debug, thiserror::Error)]
pub enum RestoreCallError {
    /// The JSON is not a kept call.
    #[error("kept state unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// Its queue is no longer configured.
    #[error("queue {0:?} is not configured")]
    UnknownQueue(String),
    /// Its agent is no longer configured.
    #[error("agent {0:?} is not configured")]
    UnknownAgent(String),
    /// A call with its Call-ID is on the line already.
    #[error("a call with this Call-ID is on the line already")]
    Duplicate,
    /// Its place could not be taken.
    #[error("queue place refused: {0}")]
    Place(#[from] crate::queue::JoinError),
}

/// What stands for the INVITE of a restored dialog, which is long answered: only its
/// method and target, never sent or answered again.
fn placeholder_invite(dialog: &Dialog) -> rsip::Request {
    rsip::Request {
        method: rsip::Method::Invite,
        uri: dialog.remote_target.clone(),
        version: rsip::Version::V2,
        headers: Default::default(),
        body: Vec::new(),
    }
}

impl Survival {
    /// The kept state of `key` may have changed: it is written at the end of this input.
    pub(super) fn mark(&mut self, key: CallKey) {
        self.dirty.insert(key);
    }

    /// The kept state of `agent` may have changed.
    pub(super) fn mark_agent(&mut self, agent: AgentId) {
        self.agents.insert(agent);
    }
}

impl B2bua {
    /// The kept state of `key` may have changed: it is written at the end of this input.
    pub(super) fn keep(&mut self, key: CallKey) {
        self.survival.mark(key);
    }

    /// Writes (or deletes) the kept state of every call and agent marked during this input.
    pub(super) fn write_kept(&mut self, now: Instant) {
        for agent in std::mem::take(&mut self.survival.agents) {
            self.write_kept_agent(now, agent);
        }
        if self.survival.dirty.is_empty() {
            return;
        }
        for key in std::mem::take(&mut self.survival.dirty) {
            let state = self.kept_state(key);
            let Some(call) = self.calls.get_mut(&key) else {
                continue;
            };
            if state.is_none() && !call.kept {
                continue;
            }
            call.kept = state.is_some();
            let record = Record::Keep(Kept {
                kind: KeptKind::Call,
                key: call.dialog.call_id.clone(),
                state,
            });
            self.journal.push_back((now, record));
        }
    }

    /// A call leaves: its kept row goes too.
    pub(super) fn forget_kept(&mut self, now: Instant, call: &Call) {
        self.survival.dirty.remove(&call.key);
        if call.kept {
            let record = Record::Keep(Kept {
                kind: KeptKind::Call,
                key: call.dialog.call_id.clone(),
                state: None,
            });
            self.journal.push_back((now, record));
        }
    }

    /// Whether a peer is reached over a connection that dies with the process.
    fn over_lost_connection(&self, peer: SocketAddr) -> bool {
        self.flow(peer).is_some() && !self.sip.pinned.contains(&peer)
    }

    /// The JSON state of a call worth keeping; `None` for one that cannot be taken back.
    fn kept_state(&self, key: CallKey) -> Option<String> {
        if !self.config.store.keep_calls {
            return None;
        }
        let call = self.calls.get(&key)?;
        if call.media.srtp.is_some()
            || call.transfer.is_some()
            || self.over_lost_connection(call.signalling)
        {
            return None;
        }
        let (queue, place, agent) = match call.state {
            CallState::Confirmed => {
                let (queue, entry) = self.queues.get(call.entry())?;
                if entry.kind != EntryKind::Caller {
                    return None;
                }
                let place = KeptPlace {
                    seq: entry.seq.0,
                    level: entry.level,
                    joined_ms: self.unix_ms_at(entry.joined_at),
                };
                (queue, Some(place), None)
            }
            CallState::Bridged => {
                let leg = self.legs.get(&call.leg?)?;
                let LegState::Answered {
                    dialog,
                    talking_since,
                } = leg.state()
                else {
                    return None;
                };
                if leg.local.keys.is_some() || self.over_lost_connection(leg.destination) {
                    return None;
                }
                let kept = KeptLeg {
                    user: self.agents.get(leg.agent)?.user().to_owned(),
                    dialog: (**dialog).clone(),
                    destination: leg.destination,
                    local: leg.local.clone(),
                    remote: leg.remote,
                    holds: leg.holds,
                    talking_since_ms: talking_since.map(|at| self.unix_ms_at(at)),
                    recording: leg.recording.clone(),
                };
                (leg.queue, None, Some(kept))
            }
            CallState::Early { .. } | CallState::Answered => return None,
        };
        let kept = KeptCall {
            dialog: call.dialog.clone(),
            signalling: call.signalling,
            caller: call.caller.clone(),
            queue: self.config.queues.get(queue.0)?.name.clone(),
            place,
            started_ms: self.unix_ms_at(call.started),
            media: call.media,
            local: call.local.clone(),
            caller_holds: call.caller_holds,
            language: call.language,
            session: call.session.as_ref().map(|s| KeptSession {
                interval_secs: s.interval.as_secs(),
                we_refresh: s.we_refresh,
                peer_allows_update: s.peer_allows_update,
            }),
            offer_from_ms: call.offer_from.map(|at| self.unix_ms_at(at)),
            agent,
        };
        serde_json::to_string(&kept).ok()
    }

    /// The instant a Unix-ms time of the process before stands for, on this clock.
    fn instant_of(&self, now: Instant, unix_ms: i64) -> Instant {
        let ago = self.unix_ms_at(now).saturating_sub(unix_ms);
        let ago = Duration::from_millis(u64::try_from(ago).unwrap_or(0));
        now.checked_sub(ago).unwrap_or(now)
    }

    /// Takes back a call kept by the process before (`state`, as [`B2bua::kept_state`]
    /// wrote it): same dialog, same place, its RTP stream continued on its old port, and
    /// an in-dialog OPTIONS to learn whether the caller is still there. Call it after the
    /// wall clock is set, the callbacks and the registrations are restored; then
    /// [`B2bua::restore_done`].
    pub fn restore_call(&mut self, now: Instant, state: &str) -> Result<(), RestoreCallError> {
        let mut kept: KeptCall = serde_json::from_str(state)?;
        // Restored registrations make their agents registered (not dispatched yet).
        self.process_registrar_events(now);
        self.drain_agent_events();
        let queue = self
            .config
            .queue_index(&kept.queue)
            .map(QueueId)
            .ok_or_else(|| RestoreCallError::UnknownQueue(kept.queue.clone()))?;
        if self.calls.by_call_id(&kept.dialog.call_id).is_some() {
            return Err(RestoreCallError::Duplicate);
        }
        let agent = match &kept.agent {
            Some(leg) => Some(
                self.agents
                    .find(&leg.user)
                    .ok_or_else(|| RestoreCallError::UnknownAgent(leg.user.clone()))?,
            ),
            None => None,
        };
        let key = CallKey(self.next_key);
        self.next_key += 1;
        if let Some(place) = &kept.place {
            self.cluster_take_over(Seq(place.seq));
            self.queues.join_with_seq(
                self.instant_of(now, place.joined_ms),
                queue,
                key.entry(),
                place.level,
                Seq(place.seq),
                EntryKind::Caller,
            )?;
        }
        let stream = self.media.reopen(kept.local.port, None);
        kept.dialog.skip_local_cseq(CSEQ_SKIP);
        let call_id = kept.dialog.call_id.clone();
        let invite = placeholder_invite(&kept.dialog);
        let mut call = Call::new(NewCall {
            key,
            dialog: kept.dialog,
            invite_key: ServerKey::restored(&call_id),
            invite,
            signalling: kept.signalling,
            caller: kept.caller.clone(),
            queue,
            stream,
            media: kept.media,
            local: kept.local,
            // Only an unanswered call needs its first answer.
            answer_sdp: String::new(),
            started: self.instant_of(now, kept.started_ms),
        });
        call.state = CallState::Confirmed;
        call.caller_holds = kept.caller_holds;
        call.language = kept.language;
        call.offer_from = kept.offer_from_ms.map(|ms| self.instant_of(now, ms));
        call.kept = true;
        if kept.place.is_none() {
            call.queue = None;
        }
        let session = kept.session.map(|s| super::timers::SessionTimer {
            interval: Duration::from_secs(s.interval_secs),
            we_refresh: s.we_refresh,
            refreshing: None,
            peer_allows_update: s.peer_allows_update,
        });
        let session_due = session.as_ref().map(|s| {
            if s.we_refresh {
                now + s.interval / 2
            } else {
                now + s.interval
            }
        });
        call.session = session;
        let (started, offer_from, media) = (call.started, call.offer_from, call.media);
        if !self.calls.insert(call) {
            return Err(RestoreCallError::Duplicate);
        }
        self.calls.schedule(key, CallTimer::Session, session_due);
        if offer_from.is_some() {
            self.callbacks.offer_heard(stream, key);
        }
        match (kept.agent, agent) {
            (Some(leg), Some(agent)) => {
                self.restore_leg(now, key, queue, agent, leg, stream, media);
            }
            _ => {
                let music = self.audio.music.for_codec(media.codec);
                self.media
                    .play(stream, media.remote, media.payload_type, music);
                self.media
                    .set_telephone_event(stream, media.telephone_event);
                if kept.caller_holds {
                    self.apply_hold_media(key);
                }
                self.resume_announcements(now, key, queue, started);
            }
        }
        self.drain_queue_events(now);
        self.probe(now, key);
        tracing::info!(
            call_id = %call_id,
            queue = %kept.queue,
            position = ?self.queues.position(key.entry()),
            bridged = self.calls.get(&key).is_some_and(|c| c.leg.is_some()),
            "held call restored"
        );
        Ok(())
    }

    /// Everything kept is back: dispatch runs (free agents take waiting callers) and what
    /// the restores changed is written.
    pub fn restore_done(&mut self, now: Instant) {
        self.process_registrar_events(now);
        self.process_events(now);
    }

    /// A restored caller's announcements go on at the rhythm they had: the next one falls
    /// where `announce_every` would have put it counting from the call's start.
    fn resume_announcements(&mut self, now: Instant, key: CallKey, queue: QueueId, from: Instant) {
        let config = &self.config.queues[queue.0];
        let schedule = super::announce::AnnounceSchedule::resumed(
            from,
            now,
            config.announce_every,
            config.announce_position_only_down,
        )
        .with_options(super::announce::options(config), from, now);
        let at = schedule.poll_timeout();
        if let Some(call) = self.calls.get_mut(&key) {
            call.announce = Some(schedule);
        }
        self.calls.schedule(key, CallTimer::Announce, at);
        self.start_max_wait(now, key, queue);
    }

    /// Takes back the agent leg of a restored bridged call and relays again.
    #[allow(clippy::too_many_arguments)]
    fn restore_leg(
        &mut self,
        now: Instant,
        key: CallKey,
        queue: QueueId,
        agent: AgentId,
        mut kept: KeptLeg,
        caller_stream: crate::media::engine::StreamId,
        media: Answer,
    ) {
        let leg_key = LegKey(self.next_key);
        self.next_key += 1;
        let agent_stream = self.media.reopen(kept.local.port, Some(caller_stream));
        kept.dialog.skip_local_cseq(CSEQ_SKIP);
        let call_id = kept.dialog.call_id.clone();
        self.legs.insert(NewLeg {
            key: leg_key,
            agent,
            purpose: LegFor::Caller(key),
            call: key,
            queue,
            invite: placeholder_invite(&kept.dialog),
            client: ClientKey::restored(&call_id),
            destination: kept.destination,
            stream: agent_stream,
            ring_deadline: now,
            local: kept.local,
        });
        let talking_since = kept.talking_since_ms.map(|ms| self.instant_of(now, ms));
        self.legs.answered(leg_key, kept.dialog, talking_since);
        if let Some(leg) = self.legs.get_mut(&leg_key) {
            leg.remote = kept.remote;
            leg.holds = kept.holds;
            leg.recording = kept.recording.take();
        }
        if let Some(call) = self.calls.get_mut(&key) {
            call.leg = Some(leg_key);
            call.state = CallState::Bridged;
        }
        // The agent is busy on this call, as it was.
        let _ = self.agents.ringing(now, agent, key.entry());
        let _ = self.agents.answered(now, agent);
        self.drain_agent_events();
        let agent_remote = kept.remote.unwrap_or(kept.destination);
        self.media
            .connect(agent_stream, agent_remote, media.payload_type);
        self.media
            .connect(caller_stream, media.remote, media.payload_type);
        self.media
            .set_telephone_event(caller_stream, media.telephone_event);
        self.media.bridge(caller_stream, agent_stream);
        if let Some(call_id) = self.calls.get(&key).map(|c| c.dialog.call_id.clone()) {
            self.start_recording(now, leg_key, caller_stream, &call_id);
        }
        self.probe_leg(now, leg_key);
    }

    /// Asks a restored caller whether its dialog still exists (RFC 3261 §11: OPTIONS in
    /// the dialog; a `481` says the caller hung up while we were away).
    fn probe(&mut self, now: Instant, key: CallKey) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let request = call.dialog.request(
            rsip::Method::Options,
            &self.sip.sent_by,
            &self.sip.ids.branch(),
        );
        let to = call.signalling;
        self.send_probe(now, to, request, key);
    }

    /// Sends a liveness probe whose answer decides about call `key`.
    fn send_probe(&mut self, now: Instant, to: SocketAddr, request: rsip::Request, key: CallKey) {
        match self.sip.transactions.send_request(now, to, request) {
            Ok(client) => {
                self.survival.probes.insert(client, key);
            }
            Err(error) => tracing::warn!(%error, "probe of a restored dialog not sent"),
        }
    }

    /// Asks a restored agent leg whether its dialog still exists; the answer is read as
    /// the caller's (the call ends when either side is gone).
    fn probe_leg(&mut self, now: Instant, leg_key: LegKey) {
        let Some(leg) = self.legs.get_mut(&leg_key) else {
            return;
        };
        let (call, destination) = (leg.call, leg.destination);
        let Some(dialog) = leg.dialog_mut() else {
            return;
        };
        let request = dialog.request(
            rsip::Method::Options,
            &self.sip.sent_by,
            &self.sip.ids.branch(),
        );
        self.send_probe(now, destination, request, call);
    }

    /// The answer to (or the timeout of, `None`) a liveness probe; `false` when `client`
    /// is not one. A dialog the peer no longer knows (`481`), a request timeout (`408`) or
    /// no answer at all end the call; any other final answer means the peer is there.
    pub(super) fn on_probe_response(
        &mut self,
        now: Instant,
        client: &ClientKey,
        code: Option<u16>,
    ) -> bool {
        let Some(&key) = self.survival.probes.get(client) else {
            return false;
        };
        if matches!(code, Some(100..=199)) {
            return true;
        }
        self.survival.probes.remove(client);
        if matches!(code, None | Some(408) | Some(481)) {
            if let Some(call) = self.calls.get(&key) {
                tracing::info!(
                    call_id = %call.dialog.call_id,
                    status = ?code,
                    "restored call gone"
                );
            }
            self.hang_up(now, key, LeaveReason::Abandoned);
        }
        true
    }
}
