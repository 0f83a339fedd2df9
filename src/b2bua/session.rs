//! Changes to an established session from the far end: re-INVITE (RFC 3261 §14) and UPDATE
//! (RFC 3311) on any dialog holdfast is in (a trunk caller, an agent's phone, a called-back
//! caller), hold and resume (RFC 3264 §8.4) and their effect on the media.
//!
//! Every such request is answered with our SDP for the offered direction (RFC 3264 §6.1:
//! `recvonly` to `sendonly`, `inactive` to `inactive`), the same RTP port and codec, and a
//! session version that grows only when the SDP changes (§8). A request without SDP (a bare
//! session refresh) is answered with our current description, as an offer for a re-INVITE
//! (the ACK carries the answer) and with no body for an UPDATE.
//!
//! A party that holds is not a party that left: nobody is hung up. What the other side hears
//! while one side of a bridged call holds:
//!
//! ```text
//!  caller holds   agent holds   caller hears           agent hears
//!  no             no            the agent (relay)      the caller (relay)
//!  no             yes           music¹                 —
//!  yes            no            —                      music¹
//!  yes            yes           —                      —
//! ```
//! ¹ hold music when the queue's `music_on_hold` is on, else silence. A caller who holds while
//! still waiting in the queue stops hearing music until it resumes; its place is kept.
//! On a callback's legs the request is answered the same way and the media left as it is.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{B2bua, CallKey, CallState, LegKey, push_other};
use crate::queue::EntryId;
use crate::sip::message;
use crate::sip::sdp::crypto::CryptoAttr;
use crate::sip::sdp::{self, Answer, Codec, Direction, Offer};
use crate::sip::transaction::ServerKey;

/// Our side of one dialog's session description: what re-INVITEs and UPDATEs are answered
/// with. The codec never changes within a call (the relay is set up for it). Kept across a
/// restart without SRTP keys (docs/behaviour.md §13).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LocalSdp {
    /// Our RTP port for this leg.
    pub port: u16,
    /// `o=` session id, fixed for the dialog.
    session_id: u64,
    /// `o=` version, grows with every change (RFC 3264 §8).
    version: u64,
    /// The codec of the leg.
    pub codec: Codec,
    /// Our last answer (`None`: only our offer has been sent so far).
    last: Option<Answer>,
    /// The last description we sent, to tell whether a new one changed (RFC 3264 §8).
    last_sent: String,
    /// The SRTP keys we offer (an agent's leg with SRTP); empty: RTP.
    #[serde(skip)]
    pub offered_keys: Vec<CryptoAttr>,
    /// The SRTP keys the media was given, kept for every later answer in the dialog.
    #[serde(skip)]
    pub keys: Option<sdp::SrtpKeys>,
}

impl LocalSdp {
    /// A description for a new leg on `port`.
    pub fn new(port: u16, session_id: u64, codec: Codec) -> Self {
        Self {
            port,
            session_id,
            version: session_id,
            codec,
            last: None,
            last_sent: String::new(),
            offered_keys: Vec::new(),
            keys: None,
        }
    }

    /// Renders `answer` (or our offer), with a new version if it differs from what we sent
    /// last, and remembers it as sent.
    fn send(&mut self, ip: IpAddr, answer: Option<Answer>) -> String {
        let render = |version| match answer {
            Some(answer) => sdp::render_answer(&answer, ip, self.port, self.session_id, version),
            None => sdp::render_offer(
                &[self.codec],
                &self.offered_keys,
                ip,
                self.port,
                self.session_id,
                version,
            ),
        };
        let mut text = render(self.version);
        if !self.last_sent.is_empty() && text != self.last_sent {
            self.version += 1;
            text = render(self.version);
        }
        self.last_sent.clone_from(&text);
        self.last = answer.or(self.last);
        text
    }

    /// Our first answer (to an initial INVITE).
    pub fn first_answer(&mut self, ip: IpAddr, answer: Answer) -> String {
        self.send(ip, Some(answer))
    }

    /// The description as last sent, unchanged (a session refresh's re-INVITE, §8).
    pub fn current(&mut self, ip: IpAddr) -> String {
        if self.last_sent.is_empty() {
            return self.offer(ip);
        }
        self.last_sent.clone()
    }

    /// Our offer (to an agent, or in a 200 OK to an offerless re-INVITE): the leg's codec,
    /// sending and receiving.
    pub fn offer(&mut self, ip: IpAddr) -> String {
        let resumed = self.last.map(|answer| Answer {
            direction: Direction::SendRecv,
            ..answer
        });
        self.send(ip, resumed)
    }

    /// Our answer to a new offer in the dialog, or `None` when the offer no longer includes
    /// the leg's codec (answered `488`; the session goes on unchanged, RFC 3311 §5.2).
    pub fn answer(&mut self, ip: IpAddr, offer: &Offer) -> Option<(Answer, String)> {
        let payload_type = offer
            .formats
            .iter()
            .copied()
            .find(|&pt| offer.codec_of(pt) == Some(self.codec))?;
        let answer = Answer {
            codec: self.codec,
            payload_type,
            telephone_event: offer.telephone_event,
            remote: offer.remote,
            direction: offer.direction.answer(),
            // The keys stay those of the call: the media is keyed once (a peer that offers a
            // new key in a re-INVITE is answered with ours, and keeps being decrypted with
            // the key it gave first).
            srtp: self.keys.or(self.last.and_then(|a| a.srtp)),
        };
        Some((answer, self.send(ip, Some(answer))))
    }
}

/// Whether an offer puts its sender on hold: it will not receive (`sendonly`, `inactive`),
/// or the RFC 2543 way, a connection address of `0.0.0.0` (RFC 3264 §8.4).
pub fn offer_holds(offer: &Offer) -> bool {
    matches!(offer.direction, Direction::SendOnly | Direction::Inactive)
        || offer.remote.ip().is_unspecified()
}

/// Which of our dialogs an in-dialog request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DialogRef {
    /// A trunk caller's dialog (holdfast is the UAS).
    Call(CallKey),
    /// An agent leg (holdfast is the UAC), for a caller or a callback.
    Leg(LegKey),
    /// A callback's dialog with the called-back caller.
    Trunk(EntryId),
}

impl B2bua {
    /// The dialog `request` belongs to, whichever kind it is (§12.2.2).
    pub(super) fn find_dialog(&self, request: &rsip::Request) -> Option<DialogRef> {
        self.dialog_of(request)
            .map(DialogRef::Call)
            .or_else(|| self.leg_of(request).map(DialogRef::Leg))
            .or_else(|| self.trunk_leg_of(request).map(DialogRef::Trunk))
    }

    /// A re-INVITE or an UPDATE: check the CSeq, answer the offer, apply hold or resume.
    pub(super) fn on_session_change(
        &mut self,
        now: Instant,
        key: ServerKey,
        request: rsip::Request,
    ) {
        let Some(dialog) = self.find_dialog(&request) else {
            return self.reply(now, &key, &request, 481);
        };
        let seq = message::cseq(&request).map(|(seq, _)| seq).unwrap_or(0);
        let is_invite = request.method == rsip::Method::Invite;
        if !self.accept_in_dialog(dialog, seq, &request) {
            return self.reply(now, &key, &request, 500);
        }
        if is_invite && self.refresh_pending(dialog) {
            // §14.2: our own re-INVITE is still open on this dialog.
            return self.reply(now, &key, &request, 491);
        }
        let offer = if request.body.is_empty() {
            None
        } else {
            match sdp::parse_offer(&request.body) {
                Ok(offer) => Some(offer),
                Err(error) => {
                    tracing::info!(%error, "re-offer refused");
                    return self.reply(now, &key, &request, error.status_code());
                }
            }
        };
        let ip = self.config.sip.public_address;
        let body = match (self.local_sdp(dialog), offer.as_ref()) {
            (None, _) => None,
            (Some(local), Some(offer)) => match local.answer(ip, offer) {
                Some((_, text)) => Some(text),
                None => return self.reply(now, &key, &request, 488),
            },
            (Some(local), None) if is_invite => Some(local.offer(ip)),
            (Some(_), None) => None,
        };
        let mut response = message::response(&request, 200, None);
        push_other(&mut response, "Contact", &self.our_contact());
        push_other(&mut response, "Allow", message::ALLOWED_METHODS);
        if let DialogRef::Call(call) = dialog {
            self.session_refreshed(now, call, &request, &mut response);
        } else if let Some(expires) = message::header_value(&request, "Session-Expires") {
            // RFC 4028 §9 for our UAC legs: the phone asked, it refreshes.
            let interval = expires.split(';').next().unwrap_or("").trim().to_owned();
            push_other(
                &mut response,
                "Session-Expires",
                &format!("{interval};refresher=uac"),
            );
            push_other(&mut response, "Require", "timer");
        }
        let response = match body {
            Some(body) => message::with_body(response, "application/sdp", body.into_bytes()),
            None => response,
        };
        self.respond(now, &key, response);
        if let Some(offer) = offer {
            self.apply_offer(dialog, &offer);
        }
        // The dialog and the session changed: what is kept for a restart follows.
        match dialog {
            DialogRef::Call(call) => self.keep(call),
            DialogRef::Leg(leg) => {
                if let Some(call) = self.legs.get(&leg).map(|l| l.call) {
                    self.keep(call);
                }
            }
            DialogRef::Trunk(_) => {}
        }
    }

    /// `Contact` of every request and dialog-creating response holdfast sends.
    pub(super) fn our_contact(&self) -> String {
        message::contact(&self.sip.sent_by)
    }

    /// Target refresh and CSeq order (§12.2.2) for the dialog's side of `request`.
    fn accept_in_dialog(&mut self, dialog: DialogRef, seq: u32, request: &rsip::Request) -> bool {
        let dialog = match dialog {
            DialogRef::Call(call) => self.calls.get_mut(&call).map(|c| &mut c.dialog),
            DialogRef::Leg(leg) => self.legs.get_mut(&leg).and_then(|l| l.dialog_mut()),
            DialogRef::Trunk(entry) => self.trunk_dialog_mut(entry),
        };
        let Some(dialog) = dialog else {
            return false;
        };
        if !dialog.accept_remote_cseq(seq, &request.method) {
            return false;
        }
        dialog.refresh_target(request);
        true
    }

    /// Our description of the dialog's media, where we keep one.
    fn local_sdp(&mut self, dialog: DialogRef) -> Option<&mut LocalSdp> {
        match dialog {
            DialogRef::Call(call) => self.calls.get_mut(&call).map(|c| &mut c.local),
            DialogRef::Leg(leg) => self.legs.get_mut(&leg).map(|l| &mut l.local),
            DialogRef::Trunk(entry) => self.trunk_local_sdp(entry),
        }
    }

    /// Records what the far end now sends and receives, and sets the media to match.
    fn apply_offer(&mut self, dialog: DialogRef, offer: &Offer) {
        let holds = offer_holds(offer);
        let call_key = match dialog {
            DialogRef::Call(call_key) => {
                let Some(call) = self.calls.get_mut(&call_key) else {
                    return;
                };
                if holds != call.caller_holds {
                    tracing::info!(
                        event = if holds { "hold" } else { "resume" },
                        call_id = %call.dialog.call_id,
                        "caller {}",
                        if holds { "holds" } else { "resumes" }
                    );
                }
                call.caller_holds = holds;
                if !offer.remote.ip().is_unspecified() {
                    call.media.remote = offer.remote;
                    self.media
                        .connect(call.stream, offer.remote, call.media.payload_type);
                }
                call_key
            }
            DialogRef::Leg(leg_key) => {
                let Some(leg) = self.legs.get_mut(&leg_key) else {
                    return;
                };
                if holds != leg.holds {
                    tracing::info!(
                        event = if holds { "hold" } else { "resume" },
                        agent = leg.agent.0,
                        "agent {}",
                        if holds { "holds" } else { "resumes" }
                    );
                }
                leg.holds = holds;
                if !offer.remote.ip().is_unspecified() {
                    leg.remote = Some(offer.remote);
                    let pt = leg.local.codec.payload_type();
                    self.media.connect(leg.stream, offer.remote, pt);
                }
                match leg.purpose {
                    super::LegFor::Caller(call) => call,
                    super::LegFor::Callback(_) => return,
                }
            }
            DialogRef::Trunk(_) => return,
        };
        self.apply_hold_media(call_key);
    }

    /// Sets a caller's media from who holds (the table in the module docs).
    pub(super) fn apply_hold_media(&mut self, call_key: CallKey) {
        let Some(call) = self.calls.get(&call_key) else {
            return;
        };
        let caller = (
            call.stream,
            call.media.remote,
            call.media.payload_type,
            call.codec,
        );
        let caller_holds = call.caller_holds;
        let music_on_hold = call
            .queue
            .or(call.leg.and_then(|l| self.legs.get(&l)).map(|l| l.queue))
            .is_none_or(|q| self.config.queues[q.0].music_on_hold);
        match call.state {
            CallState::Bridged => {
                let Some(leg) = call
                    .leg
                    .and_then(|l| self.legs.get(&l))
                    .filter(|l| l.state().is_answered())
                else {
                    return;
                };
                let agent = (
                    leg.stream,
                    leg.remote.unwrap_or(leg.destination),
                    leg.local.codec.payload_type(),
                    leg.local.codec,
                );
                match (caller_holds, leg.holds) {
                    (false, false) => self.media.bridge(caller.0, agent.0),
                    (false, true) => self.music_or_silence(caller, music_on_hold),
                    (true, false) => self.music_or_silence(agent, music_on_hold),
                    (true, true) => {
                        self.media.stop(caller.0);
                        self.media.stop(agent.0);
                    }
                }
            }
            CallState::Answered | CallState::Confirmed if caller_holds => self.media.stop(caller.0),
            CallState::Answered | CallState::Confirmed => self.music_or_silence(caller, true),
            CallState::Early { .. } => {}
        }
    }

    /// Hold music to one leg (which ends a bridge it is in), or silence.
    fn music_or_silence(
        &mut self,
        (stream, remote, pt, codec): (crate::media::engine::StreamId, SocketAddr, u8, Codec),
        music: bool,
    ) {
        if music {
            let frames = self.audio.music.for_codec(codec);
            self.media.play(stream, remote, pt, frames);
        } else {
            self.media.stop(stream);
        }
    }
}
