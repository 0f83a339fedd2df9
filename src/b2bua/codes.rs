//! Feature codes dialled from an agent's phone (`[codes]`, docs/behaviour.md §5): `*46`
//! pauses the agent, `*47` unpauses it, no admin needed. The INVITE is authenticated like
//! the agent's REGISTER (Digest, RFC 3261 §22.2: `401` with a challenge first, the same
//! guessing limits), answered, and the agent hears a short confirmation, then holdfast hangs
//! up. It never enters a queue, and it may come from any address: the agent's password is
//! what lets it in, not the trunk allowlist.

use std::net::SocketAddr;
use std::time::Instant;

use super::callback::law;
use super::{B2bua, push_other};
use crate::media::prompts::Announcement;
use crate::sip::message;
use crate::sip::transaction::ServerKey;

/// What a code does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Pause,
    Unpause,
}

impl B2bua {
    /// A dialog for a phone's own call to a code (its stream beside `beside`, when given),
    /// or `None` once the refusal (`415`, `488`, `503`…) is sent.
    pub(super) fn open_service_dialog(
        &mut self,
        now: Instant,
        key: &ServerKey,
        request: &rsip::Request,
        beside: Option<crate::media::engine::StreamId>,
    ) -> Option<super::inbound::OpenedDialog> {
        match self
            .answer_offer(request)
            .and_then(|answer| self.open_dialog(request, answer, beside))
        {
            Ok(opened) => Some(opened),
            Err(status) => {
                let mut response = message::response(request, status, None);
                if status == 415 {
                    push_other(&mut response, "Accept", "application/sdp");
                }
                let response = message::with_to_tag(response, &self.sip.ids.tag());
                self.respond(now, key, response);
                None
            }
        }
    }

    /// An INVITE whose Request-URI user is one of the `[codes]`: handled here, and `true`;
    /// `false` for any other INVITE (a caller).
    pub(super) fn on_code_invite(
        &mut self,
        now: Instant,
        key: &ServerKey,
        request: &rsip::Request,
        source: SocketAddr,
    ) -> bool {
        let dialled = message::request_uri_user(request).unwrap_or_default();
        let codes = &self.config.codes;
        if let Some((mode, agent)) = codes.monitor(&dialled) {
            let agent = agent.to_owned();
            self.on_monitor_invite(now, key, request, source, mode, &agent);
            return true;
        }
        let code = match dialled.as_str() {
            "" => return false,
            d if d == codes.pause => Code::Pause,
            d if d == codes.unpause => Code::Unpause,
            _ => return false,
        };
        if self.draining {
            self.reply(now, key, request, 503);
            return true;
        }
        let user = match self.authenticate_register(now, request, source) {
            Ok((user, _)) => user,
            Err(response) => {
                let response = message::with_to_tag(response, &self.sip.ids.tag());
                self.respond(now, key, response);
                return true;
            }
        };
        let Some(opened) = self.open_service_dialog(now, key, request, None) else {
            return true;
        };
        let paused = code == Code::Pause;
        if let Err(error) = self.set_paused_by(now, &user, paused, "the agent's phone") {
            // Authenticated users are agents; a broken invariant is still no panic.
            tracing::error!(%error, "pause code from an unknown agent");
        }
        let (call_key, stream) = (opened.key, opened.stream);
        let mut call = opened.into_call(now, key, request, source, user, None);
        call.service = true;
        let codec = call.codec;
        self.calls.insert(call);
        self.answer_caller(now, call_key);
        self.start_music(now, call_key);
        let said = if paused {
            Announcement::AgentPaused
        } else {
            Announcement::AgentAvailable
        };
        let frames =
            self.audio
                .prompts
                .render(crate::media::prompts::Language::En, &said, law(codec));
        self.media.prompt_now(stream, frames);
        // Its end hangs up, as for a callback's confirmation.
        self.callbacks.confirming(stream, call_key);
        true
    }
}
