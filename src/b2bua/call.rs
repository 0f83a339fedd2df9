//! One trunk call as the call controller sees it: its SIP dialog, its queue entry and
//! its media stream, tied together by a [`CallKey`].

use std::net::SocketAddr;
use std::time::Instant;

use crate::media::engine::StreamId;
use crate::queue::{EntryId, QueueId};
use crate::sip::dialog::Dialog;
use crate::sip::sdp::Answer;
use crate::sip::sdp::Codec;
use crate::sip::transaction::ServerKey;

/// holdfast's own handle for a call: stable for its life, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

impl CallKey {
    /// The queue entry id for this call: one entry per call, so the numbers coincide.
    pub fn entry(self) -> EntryId {
        EntryId(self.0)
    }
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Not answered yet: a free agent's phone rings for this caller, who hears ringback
    /// (`180`) rather than music and can still CANCEL (§9.2 → `487`).
    Early,
    /// 200 OK sent, waiting for the caller's ACK (the transaction layer retransmits).
    Answered,
    /// ACK received: the caller is holding and hears music.
    Confirmed,
    /// Talking to an agent through the relay.
    Bridged,
    /// We sent BYE and wait for its response; the call is already out of the queue.
    Ending,
}

/// A caller on the line.
#[derive(Debug)]
pub struct Call {
    /// Our key.
    pub key: CallKey,
    /// The dialog with the trunk.
    pub dialog: Dialog,
    /// The INVITE server transaction, to answer re-sends and match CANCEL.
    pub invite: ServerKey,
    /// The trunk's signalling address (source of the INVITE): in-dialog requests go back
    /// here, never to a resolved Via or Contact host (RFC 3261 §18.2.2, RFC 3581).
    pub signalling: SocketAddr,
    /// Lifecycle state.
    pub state: CallState,
    /// The caller's number (P-Asserted-Identity, else From user) for logs and callbacks.
    pub caller: String,
    /// Queue and entry while waiting.
    pub queue: Option<QueueId>,
    /// The media stream playing hold music.
    pub stream: StreamId,
    /// Negotiated codec.
    pub codec: Codec,
    /// The SDP negotiation with the caller (remote RTP address, payload types).
    pub media: Answer,
    /// The agent leg ringing for or talking to this caller.
    pub leg: Option<super::legs::LegKey>,
    /// Our side of the session: the answer in our 200 OK, and the answers to re-offers
    /// (RFC 3264 §8: the version grows only when the SDP changes).
    pub local: super::session::LocalSdp,
    /// Our answer to the INVITE, sent in the 200 OK.
    pub answer_sdp: String,
    /// The caller pressed Hold (its last offer was `sendonly`/`inactive`).
    pub caller_holds: bool,
    /// RFC 4028 session timer, once the 200 OK set one.
    pub session: Option<super::timers::SessionTimer>,
    /// When the INVITE arrived.
    pub started: Instant,
    /// The INVITE while it is unanswered (Early), to build the deferred 200.
    pub pending_invite: Option<rsip::Request>,
    /// Announcement schedule while holding.
    pub announce: Option<super::announce::AnnounceSchedule>,
    /// The key under which the next announcement sits in the controller's timer set.
    pub announce_at: Option<Instant>,
    /// A REFER transfer in progress (bridge mode `refer`).
    pub transfer: Option<super::refer::Transfer>,
    /// The trunk refused REFER for this call: bridge through the relay.
    pub refer_refused: bool,
    /// From when the caller has heard the callback offer start (SPEC §6: `1` counts from
    /// then on, for as long as the caller waits).
    pub offer_from: Option<Instant>,
}

impl Call {
    /// The queue entry id of this call.
    pub fn entry(&self) -> EntryId {
        self.key.entry()
    }
}
