//! What the transaction layer reports, handed to its handlers (`process_transaction_events`),
//! and requests from trunks and phones once it has absorbed retransmissions: dispatch by
//! method (RFC 3261 §8.2, `405` with `Allow` for known methods we do not serve), dialog
//! matching (§12.2.2, `481` for unknown dialogs, `500` for an old CSeq), ACK, BYE from either
//! side (§15) and CANCEL (§9.2). re-INVITE and UPDATE are in `session`.

use std::net::SocketAddr;
use std::time::Instant;

use super::{B2bua, CallKey, CallState, push_other};
use crate::queue::LeaveReason;
use crate::sip::message;
use crate::sip::transaction::{Event, ServerKey};

impl B2bua {
    /// Hands every event the transaction layer has to its handler.
    pub(super) fn process_transaction_events(&mut self, now: Instant) {
        while let Some(event) = self.sip.transactions.poll_event() {
            match event {
                Event::Request {
                    key,
                    request,
                    source,
                } => self.on_request(now, key, request, source),
                Event::Ack { request, .. } => self.on_ack(&request),
                Event::Cancel {
                    key,
                    invite,
                    request,
                    ..
                } => self.on_cancel(now, key, invite, request),
                Event::AckTimeout { key } => {
                    if let Some(call) = self.calls.by_invite(&key) {
                        tracing::warn!(call = call.0, "no ACK for our 200 OK: hanging up");
                        self.hang_up(now, call, LeaveReason::Abandoned);
                    }
                }
                // Responses to INVITEs we sent to agents drive their legs; responses to
                // our BYEs need no action (the call was released when the BYE was sent).
                Event::Response { key, response } => {
                    let code = response.status_code.code();
                    if self.on_refresh_response(now, &key, Some(&response))
                        || self.on_probe_response(now, &key, Some(code))
                    {
                        continue;
                    }
                    if !self.on_refer_response(now, &key, Some(code)) {
                        self.on_leg_response(now, &key, response);
                    }
                }
                Event::Timeout { key } => {
                    if self.on_refresh_response(now, &key, None)
                        || self.on_probe_response(now, &key, None)
                    {
                        continue;
                    }
                    if !self.on_refer_response(now, &key, None) {
                        self.on_leg_timeout(now, &key);
                    }
                }
                Event::StrayResponse { response, source } => {
                    self.on_stray_response(now, response, source);
                }
            }
        }
    }

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        key: ServerKey,
        request: rsip::Request,
        source: SocketAddr,
    ) {
        let to_tag = message::to_tag(&request);
        match request.method {
            rsip::Method::Invite if to_tag.is_none() => {
                self.on_new_invite(now, key, request, source)
            }
            rsip::Method::Invite | rsip::Method::Update => {
                self.on_session_change(now, key, request)
            }
            rsip::Method::Bye => self.on_bye(now, key, request),
            rsip::Method::Register => {
                let verified = self
                    .registration
                    .verified
                    .take()
                    .filter(|(verified, ..)| *verified == key)
                    .map(|(_, user, algorithm)| (user, algorithm));
                self.on_register(now, key, request, source, verified)
            }
            rsip::Method::Notify => self.on_notify(now, key, request),
            rsip::Method::Options => {
                let mut response = message::response(&request, 200, None);
                push_other(&mut response, "Allow", message::ALLOWED_METHODS);
                push_other(&mut response, "Accept", "application/sdp");
                self.respond(now, &key, response);
            }
            rsip::Method::Info => {
                let call = self.dialog_of(&request);
                let code = if self.find_dialog(&request).is_some() {
                    200
                } else {
                    481
                };
                self.reply(now, &key, &request, code);
                // docs/behaviour.md §6: DTMF by SIP INFO counts like RFC 4733.
                let content_type = message::header_value(&request, "Content-Type");
                if let (Some(call), Some(content_type)) = (call, content_type)
                    && let Some(digit) =
                        crate::media::dtmf::parse_info_dtmf(content_type, &request.body)
                {
                    self.on_digit(now, call, digit);
                }
            }
            // A CANCEL the transaction layer could not match (§9.2).
            rsip::Method::Cancel => self.reply(now, &key, &request, 481),
            rsip::Method::Ack => {}
            _ if to_tag.is_some() && self.find_dialog(&request).is_none() => {
                self.reply(now, &key, &request, 481)
            }
            _ => {
                let mut response = message::response(&request, 405, None);
                push_other(&mut response, "Allow", message::ALLOWED_METHODS);
                self.respond(now, &key, response);
            }
        }
    }

    /// The call whose dialog `request` belongs to, if any (§12.2.2).
    pub(super) fn dialog_of(&self, request: &rsip::Request) -> Option<CallKey> {
        let call_id = message::call_id(request)?;
        let key = self.calls.by_call_id(call_id)?;
        let call = self.calls.get(&key)?;
        call.dialog.matches_request(request).then_some(key)
    }

    pub(super) fn on_ack(&mut self, request: &rsip::Request) {
        if let Some(key) = self.dialog_of(request)
            && let Some(call) = self.calls.get_mut(&key)
            && call.state == CallState::Answered
        {
            call.state = CallState::Confirmed;
            self.keep(key);
        }
    }

    pub(super) fn on_bye(&mut self, now: Instant, key: ServerKey, request: rsip::Request) {
        if let Some(leg) = self.leg_of(&request) {
            // The agent hung up: end its leg, then hang up the caller (docs/behaviour.md §5).
            self.reply(now, &key, &request, 200);
            let call = self.legs.get(&leg).map(|l| l.call);
            self.end_leg(now, leg, false);
            if let Some(call) = call {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.leg = None;
                }
                self.hang_up(now, call, LeaveReason::Removed);
            }
            return;
        }
        if let Some(entry) = self.trunk_leg_of(&request) {
            // A called-back caller hung up.
            self.reply(now, &key, &request, 200);
            return self.trunk_hung_up(now, entry);
        }
        let Some(call) = self.dialog_of(&request) else {
            return self.reply(now, &key, &request, 481);
        };
        self.reply(now, &key, &request, 200);
        self.release(now, call, LeaveReason::Abandoned);
    }

    /// RFC 3261 §9.2: the CANCEL itself always gets `200`; the INVITE gets `487` if it has
    /// no final response yet. A caller is unanswered only while a free agent's phone rings
    /// for it; a CANCEL that finds the INVITE answered has no effect (the caller BYEs).
    pub(super) fn on_cancel(
        &mut self,
        now: Instant,
        key: ServerKey,
        invite: ServerKey,
        cancel: rsip::Request,
    ) {
        self.reply(now, &key, &cancel, 200);
        let Some(call) = self.calls.by_invite(&invite) else {
            return;
        };
        let Some(pending) = self.calls.get_mut(&call).and_then(|c| c.state.answer()) else {
            tracing::debug!("CANCEL after the final response: no effect (§9.2)");
            return;
        };
        let Some(local_tag) = self.calls.get(&call).map(|c| c.dialog.local_tag.clone()) else {
            return;
        };
        let terminated = message::with_to_tag(message::response(&pending, 487, None), &local_tag);
        self.respond(now, &invite, terminated);
        tracing::info!(
            event = "cancel",
            call = call.0,
            "caller gave up before answer"
        );
        self.release(now, call, LeaveReason::Abandoned);
    }

    /// Answer `request` on transaction `key` with a bare status `code`.
    pub(super) fn reply(
        &mut self,
        now: Instant,
        key: &ServerKey,
        request: &rsip::Request,
        code: u16,
    ) {
        let response = message::response(request, code, None);
        self.respond(now, key, response);
    }

    /// Send a response through its server transaction. Failing here means the transaction
    /// is already gone or final (a duplicate answer): nothing to send, but worth a log line.
    pub(super) fn respond(&mut self, now: Instant, key: &ServerKey, response: rsip::Response) {
        if let Err(error) = self.sip.transactions.respond(now, key, response) {
            tracing::warn!(%error, "response not sent");
        }
    }
}
