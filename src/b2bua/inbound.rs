//! Admission of a new trunk call (docs/behaviour.md §2): who may call, where the call goes, whether the
//! codecs meet, whether there is room, and the answer that puts the caller on hold.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::events::EventFacts;
use super::{B2bua, Call, CallKey, NewCall, push_other};
use crate::queue::{EntryKind, QueueId};
use crate::sip::dialog::Dialog;
use crate::sip::message;
use crate::sip::sdp;
use crate::sip::transaction::ServerKey;
use crate::store::CallEventKind;

use super::screen::RETRY_AFTER_S;

/// What [`B2bua::open_dialog`] made for a new INVITE, before it becomes a [`Call`].
pub(super) struct OpenedDialog {
    pub key: CallKey,
    pub dialog: Dialog,
    pub stream: crate::media::engine::StreamId,
    pub answer: sdp::Answer,
    pub local: super::session::LocalSdp,
    pub answer_sdp: String,
}

impl OpenedDialog {
    /// The call, waiting in `queue` (`None`: not a caller of any queue).
    pub fn into_call(
        self,
        now: Instant,
        key: &ServerKey,
        request: &rsip::Request,
        source: SocketAddr,
        caller: String,
        queue: Option<QueueId>,
    ) -> Call {
        let mut call = Call::new(NewCall {
            key: self.key,
            dialog: self.dialog,
            invite_key: key.clone(),
            invite: request.clone(),
            signalling: source,
            caller,
            queue: queue.unwrap_or(QueueId(0)),
            stream: self.stream,
            media: self.answer,
            local: self.local,
            answer_sdp: self.answer_sdp,
            started: now,
        });
        call.queue = queue;
        call
    }
}

impl B2bua {
    pub(super) fn on_new_invite(
        &mut self,
        now: Instant,
        key: ServerKey,
        request: rsip::Request,
        source: SocketAddr,
    ) {
        if self.on_code_invite(now, &key, &request, source) {
            return;
        }
        match self.admit(now, &key, &request, source) {
            Ok(call) => {
                let call_key = call.key;
                let facts = EventFacts {
                    call_id: Some(call.dialog.call_id.clone()),
                    queue: Some(self.queue_name(&call)),
                    caller: Some(call.caller.clone()),
                    detail: Some(serde_json::json!({
                        "position": self.position(&call).unwrap_or(0),
                    })),
                    ..EventFacts::default()
                };
                self.call_event(now, CallEventKind::Join, facts);
                self.counters.stats.calls_answered += 1;
                // Cannot be refused: admission checked the key and the Call-ID are free.
                self.calls.insert(call);
                // docs/behaviour.md §2.3: if an agent is free right now the caller goes straight to it
                // and hears ringback until the agent answers; otherwise answer and hold. A
                // closed queue's caller hears the closed message or the callback offer.
                let closed = self.closed_action(now, call_key);
                if closed.is_none() {
                    self.dispatch(now);
                }
                let ringing = self.calls.get(&call_key).is_some_and(|c| c.leg.is_some());
                if ringing {
                    self.send_ringing(now, call_key, &key, &request);
                } else {
                    self.answer_caller(now, call_key);
                    self.start_music(now, call_key);
                    match (closed, self.calls.get(&call_key).and_then(|c| c.queue)) {
                        (Some(action), Some(queue)) => {
                            self.overflow(now, call_key, queue, action, "closed");
                        }
                        _ => self.overflow_on_arrival(now, call_key),
                    }
                }
            }
            Err(code) => {
                *self.counters.stats.rejected.entry(code).or_default() += 1;
                tracing::info!(
                    event = "reject",
                    code,
                    %source,
                    call_id = message::call_id(&request).unwrap_or_default(),
                    "INVITE refused"
                );
                let mut response = message::response(&request, code, None);
                match code {
                    503 => push_other(&mut response, "Retry-After", &RETRY_AFTER_S.to_string()),
                    // RFC 4028 §6: a session interval below ours.
                    422 => push_other(&mut response, "Min-SE", &self.config.sip.min_se.to_string()),
                    415 => push_other(&mut response, "Accept", "application/sdp"),
                    _ => {}
                }
                let response = message::with_to_tag(response, &self.sip.ids.tag());
                self.respond(now, &key, response);
            }
        }
    }

    /// Every check of docs/behaviour.md §2 in order; `Err` is the status code to refuse with.
    fn admit(
        &mut self,
        now: Instant,
        key: &ServerKey,
        request: &rsip::Request,
        source: SocketAddr,
    ) -> Result<Call, u16> {
        if !self.config.is_trunk_source(source.ip()) {
            return Err(403);
        }
        if self.draining || self.calls.len() >= self.config.sip.max_calls as usize {
            return Err(503);
        }
        let caller = caller_number(request, self.config.trusts_asserted_identity(source.ip()));
        let dialled = message::request_uri_user(request).unwrap_or_default();
        let (queue_index, level) = self.config.route(&dialled, &caller).ok_or(404u16)?;
        // Outside its hours a queue may send its callers to another (`closed`).
        let queue_index = self.queue_when_closed(queue_index, now);
        super::timers::negotiate(
            request,
            self.config.sip.session_expires,
            self.config.sip.min_se,
        )
        .map_err(|_| 422u16)?;
        let answer = self.answer_offer(request)?;
        if answer.srtp.is_none() && self.config.queues[queue_index].require_srtp {
            return Err(488);
        }
        if self
            .queues
            .queue(QueueId(queue_index))
            .is_none_or(|q| q.is_full())
        {
            return Err(486);
        }
        if self.refused_for_no_agents(QueueId(queue_index)) {
            return Err(480);
        }
        let queue_id = QueueId(queue_index);
        let opened = self.open_dialog(request, answer, None)?;
        let call_key = opened.key;
        // A caller who hung up a moment ago gets its old place back (`resume_within`).
        let joined = match self.take_place(now, queue_id, &caller) {
            Some(place) => {
                self.call_event(
                    now,
                    CallEventKind::Resume,
                    EventFacts {
                        call_id: Some(opened.dialog.call_id.clone()),
                        queue: Some(self.config.queues[queue_id.0].name.clone()),
                        caller: Some(caller.clone()),
                        waited: Some(now.saturating_duration_since(place.joined_at)),
                        ..EventFacts::default()
                    },
                );
                self.queues.join_with_seq(
                    place.joined_at,
                    queue_id,
                    call_key.entry(),
                    place.level.min(level),
                    place.seq,
                    EntryKind::Caller,
                )
            }
            None => self
                .queues
                .join(now, queue_id, call_key.entry(), level, EntryKind::Caller)
                .map(|_| ()),
        };
        if let Err(error) = joined {
            // Checked above; a failure here is a broken invariant, but the caller must
            // still hear something honest rather than music for a queue it is not in.
            tracing::error!(%error, "queue join failed after admission");
        }
        self.drain_queue_events(now);
        let mut call = opened.into_call(now, key, request, source, caller, Some(queue_id));
        call.language = self.config.language(&dialled);
        Ok(call)
    }

    /// The SDP answer to an INVITE's offer: a codec both sides have, SRTP keys when the
    /// offer is secure (docs/behaviour.md §2.2); `Err` the status to refuse with.
    pub(super) fn answer_offer(&mut self, request: &rsip::Request) -> Result<sdp::Answer, u16> {
        check_media_types(request)?;
        let offer = sdp::parse_offer(&request.body).map_err(|_| 488u16)?;
        let mut answer = sdp::negotiate(&offer).map_err(|_| 488u16)?;
        answer.srtp = sdp::answer_keys(&offer, self.sip.ids.key_material()).map_err(|_| 488u16)?;
        Ok(answer)
    }

    /// Our side of a new dialog with the INVITE's sender: the dialog, a new call key, an RTP
    /// stream (secured when the answer has keys) and our SDP answer.
    pub(super) fn open_dialog(
        &mut self,
        request: &rsip::Request,
        answer: sdp::Answer,
        beside: Option<crate::media::engine::StreamId>,
    ) -> Result<OpenedDialog, u16> {
        let local_tag = self.sip.ids.tag();
        let dialog = Dialog::from_invite(request, &local_tag).map_err(|_| 400u16)?;
        if self.calls.by_call_id(&dialog.call_id).is_some() {
            // A second dialog-creating INVITE with a Call-ID in use: a fork or a loop
            // reaching us twice (RFC 3261 §8.2.2.2).
            return Err(482);
        }
        let opened = match beside {
            Some(other) => self.media.open_beside(other),
            None => self.media.open(),
        };
        let (stream, rtp_port) = opened.map_err(|error| {
            tracing::error!(%error, "no RTP port for a new call");
            503u16
        })?;
        if let Some(keys) = &answer.srtp {
            self.media.secure(stream, keys);
        }
        let public_ip: IpAddr = self.config.sip.public_address;
        let session_id = self.next_key;
        let mut local = super::session::LocalSdp::new(rtp_port, session_id, answer.codec);
        let answer_sdp = local.first_answer(public_ip, answer);
        let key = CallKey(self.next_key);
        self.next_key += 1;
        Ok(OpenedDialog {
            key,
            dialog,
            stream,
            answer,
            local,
            answer_sdp,
        })
    }

    /// `180 Ringing` with our tag: the caller hears ringback while an agent's phone rings.
    fn send_ringing(
        &mut self,
        now: Instant,
        call_key: CallKey,
        key: &ServerKey,
        request: &rsip::Request,
    ) {
        let Some(call) = self.calls.get(&call_key) else {
            return;
        };
        let ringing = message::with_to_tag(
            message::with_record_route(message::response(request, 180, None), request),
            &call.dialog.local_tag,
        );
        self.respond(now, key, ringing);
    }

    fn queue_name(&self, call: &Call) -> String {
        call.queue
            .and_then(|q| self.queues.queue(q))
            .map(|q| q.name().to_string())
            .unwrap_or_default()
    }

    fn position(&self, call: &Call) -> Option<usize> {
        call.queue?;
        self.queues.position(call.entry())
    }
}

/// The caller's number (docs/behaviour.md §6): the user of P-Asserted-Identity (RFC 3325) when
/// present and `trusted` (it came from a trunk that asserts identities), else the From user.
pub(crate) fn caller_number(request: &rsip::Request, trusted: bool) -> String {
    trusted
        .then(|| message::header_user(request, "P-Asserted-Identity"))
        .flatten()
        .or_else(|| message::from_user(request))
        .unwrap_or_default()
}

/// RFC 3261 §8.2.3 and §21.4.7: we only speak `application/sdp`. A body of another type is
/// `415`; an `Accept` that excludes SDP leaves us no way to answer, so `406`.
fn check_media_types(request: &rsip::Request) -> Result<(), u16> {
    let is_sdp_range = |range: &str| {
        let range = range.split(';').next().unwrap_or("").trim();
        ["application/sdp", "application/*", "*/*"]
            .iter()
            .any(|ok| range.eq_ignore_ascii_case(ok))
    };
    if !request.body.is_empty()
        && let Some(content_type) = message::header_value(request, "Content-Type")
        && !content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/sdp")
    {
        return Err(415);
    }
    if let Some(accept) = message::header_value(request, "Accept")
        && !accept.trim().is_empty()
        && !accept.split(',').any(is_sdp_range)
    {
        return Err(406);
    }
    Ok(())
}
