//! One trunk call as the call controller sees it: its SIP dialog, its queue entry and
//! its media stream, tied together by a [`CallKey`]; and [`Calls`], the table of them that
//! owns its indexes (by Call-ID, by INVITE transaction) and its deadline sets (the next
//! announcement, the RFC 4028 session timer).

use std::collections::{BTreeSet, HashMap};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallState {
    /// Not answered yet: a free agent's phone rings for this caller, who hears ringback
    /// (`180`) rather than music and can still CANCEL (§9.2 → `487`). The INVITE is kept
    /// to build the deferred final response.
    Early {
        /// The caller's INVITE.
        invite: Box<rsip::Request>,
    },
    /// 200 OK sent, waiting for the caller's ACK (the transaction layer retransmits).
    Answered,
    /// ACK received: the caller is holding and hears music.
    Confirmed,
    /// Talking to an agent through the relay.
    Bridged,
}

impl CallState {
    /// Not answered yet.
    pub fn is_early(&self) -> bool {
        matches!(self, Self::Early { .. })
    }

    /// Leaves `Early` for `Answered`, handing back the INVITE to answer; `None` (and no
    /// change) in any other state.
    pub fn answer(&mut self) -> Option<rsip::Request> {
        if !self.is_early() {
            return None;
        }
        match std::mem::replace(self, Self::Answered) {
            Self::Early { invite } => Some(*invite),
            _ => None,
        }
    }
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
    pub leg: Option<super::LegKey>,
    /// Ring-all (`strategy = "ring-all"`): the other agent legs ringing for this caller at
    /// the same time as `leg`; the first to answer becomes `leg`, the rest are CANCELled.
    pub ring_too: Vec<super::LegKey>,
    /// An agent's own call to a feature code (`[codes]`): no caller, so no call events.
    pub service: bool,
    /// A supervisor's call (`[codes] listen/whisper/barge`): the agent leg it monitors.
    pub watch: Option<super::monitor::Watch>,
    /// The language the caller hears (its route's, else its queue's).
    pub language: crate::media::prompts::Language,
    /// Our side of the session: the answer in our 200 OK, and the answers to re-offers
    /// (RFC 3264 §8: the version grows only when the SDP changes).
    pub local: super::session::LocalSdp,
    /// Our answer to the INVITE, sent in the 200 OK.
    pub answer_sdp: String,
    /// The caller pressed Hold (its last offer was `sendonly`/`inactive`).
    pub caller_holds: bool,
    /// RFC 4028 session timer, once the 200 OK set one.
    pub session: Option<super::timers::SessionTimer>,
    /// When the session timer is next due: the key in [`Calls`]' set, changed only there.
    session_at: Option<Instant>,
    /// When the INVITE arrived.
    pub started: Instant,
    /// Announcement schedule while holding.
    pub announce: Option<super::announce::AnnounceSchedule>,
    /// When the next announcement is due: the key in [`Calls`]' set, changed only there.
    announce_at: Option<Instant>,
    /// When the queue's `max_wait` runs out: the key in [`Calls`]' set, changed only there.
    max_wait_at: Option<Instant>,
    /// A REFER transfer in progress (bridge mode `refer`).
    pub transfer: Option<super::refer::Transfer>,
    /// The trunk refused REFER for this call: bridge through the relay.
    pub refer_refused: bool,
    /// From when the caller has heard the callback offer start (docs/behaviour.md §6: `1` counts from
    /// then on, for as long as the caller waits).
    pub offer_from: Option<Instant>,
    /// Its state is written to the store for a restart (`survive`).
    pub kept: bool,
}

/// What a new call is made of (everything else starts empty).
pub struct NewCall {
    /// Our key.
    pub key: CallKey,
    /// The dialog with the trunk.
    pub dialog: Dialog,
    /// The INVITE's server transaction.
    pub invite_key: ServerKey,
    /// The INVITE itself, answered later.
    pub invite: rsip::Request,
    /// The trunk's signalling address.
    pub signalling: SocketAddr,
    /// The caller's number.
    pub caller: String,
    /// The queue joined.
    pub queue: QueueId,
    /// The caller's RTP stream.
    pub stream: StreamId,
    /// The SDP negotiation.
    pub media: Answer,
    /// Our side of the session.
    pub local: super::session::LocalSdp,
    /// Our SDP answer.
    pub answer_sdp: String,
    /// When the INVITE arrived.
    pub started: Instant,
}

impl Call {
    /// A call that has just been admitted: early, in its queue, nothing scheduled.
    pub fn new(new: NewCall) -> Self {
        Self {
            key: new.key,
            dialog: new.dialog,
            invite: new.invite_key,
            signalling: new.signalling,
            state: CallState::Early {
                invite: Box::new(new.invite),
            },
            caller: new.caller,
            queue: Some(new.queue),
            stream: new.stream,
            codec: new.media.codec,
            media: new.media,
            leg: None,
            ring_too: Vec::new(),
            service: false,
            watch: None,
            language: crate::media::prompts::Language::En,
            local: new.local,
            answer_sdp: new.answer_sdp,
            caller_holds: false,
            session: None,
            session_at: None,
            started: new.started,
            announce: None,
            announce_at: None,
            max_wait_at: None,
            transfer: None,
            refer_refused: false,
            offer_from: None,
            kept: false,
        }
    }

    /// The queue entry id of this call.
    pub fn entry(&self) -> EntryId {
        self.key.entry()
    }
}

impl std::ops::Index<&CallKey> for Calls {
    type Output = Call;

    /// The call; panics when there is none (for code that just looked it up).
    fn index(&self, key: &CallKey) -> &Call {
        &self.calls[key]
    }
}

/// Which deadline set of [`Calls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallTimer {
    /// The next position announcement.
    Announce,
    /// The RFC 4028 session timer (our refresh, or the caller's last chance).
    Session,
    /// The queue's `max_wait` runs out: the caller overflows (docs/behaviour.md §3).
    MaxWait,
}

/// Every call, with its indexes and deadline sets. Only its methods change them, so they
/// always agree: every call is in `by_call_id` under its dialog's Call-ID and in
/// `by_invite` under its INVITE transaction, and sits in a deadline set exactly when its
/// `announce_at`/`session_at` is set, under that instant.
#[derive(Debug, Default)]
pub struct Calls {
    calls: HashMap<CallKey, Call>,
    by_call_id: HashMap<String, CallKey>,
    by_invite: HashMap<ServerKey, CallKey>,
    announce_due: BTreeSet<(Instant, CallKey)>,
    session_due: BTreeSet<(Instant, CallKey)>,
    max_wait_due: BTreeSet<(Instant, CallKey)>,
}

impl Call {
    /// When the queue's `max_wait` runs out for this caller, if it is counting.
    pub fn max_wait_at(&self) -> Option<Instant> {
        self.max_wait_at
    }
}

impl Calls {
    /// Adds a call and indexes it. A call whose key or Call-ID is taken is refused (`false`):
    /// admission answers such an INVITE `482` first.
    pub fn insert(&mut self, call: Call) -> bool {
        if self.calls.contains_key(&call.key) || self.by_call_id.contains_key(&call.dialog.call_id)
        {
            return false;
        }
        self.by_call_id
            .insert(call.dialog.call_id.clone(), call.key);
        self.by_invite.insert(call.invite.clone(), call.key);
        for (timer, at) in [
            (CallTimer::Announce, call.announce_at),
            (CallTimer::Session, call.session_at),
            (CallTimer::MaxWait, call.max_wait_at),
        ] {
            if let Some(at) = at {
                self.set(timer).insert((at, call.key));
            }
        }
        self.calls.insert(call.key, call);
        true
    }

    /// Removes a call and every trace of it in the indexes and deadline sets.
    pub fn remove(&mut self, key: CallKey) -> Option<Call> {
        let call = self.calls.remove(&key)?;
        self.by_call_id.remove(&call.dialog.call_id);
        self.by_invite.remove(&call.invite);
        if let Some(at) = call.announce_at {
            self.announce_due.remove(&(at, key));
        }
        if let Some(at) = call.session_at {
            self.session_due.remove(&(at, key));
        }
        if let Some(at) = call.max_wait_at {
            self.max_wait_due.remove(&(at, key));
        }
        Some(call)
    }

    /// A call.
    pub fn get(&self, key: &CallKey) -> Option<&Call> {
        self.calls.get(key)
    }

    /// A call, to change what is not indexed.
    pub fn get_mut(&mut self, key: &CallKey) -> Option<&mut Call> {
        self.calls.get_mut(key)
    }

    /// Whether the call exists.
    pub fn contains_key(&self, key: &CallKey) -> bool {
        self.calls.contains_key(key)
    }

    /// Calls up.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// No call up.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Every key (a copy: callers change the table while walking it).
    pub fn keys(&self) -> Vec<CallKey> {
        self.calls.keys().copied().collect()
    }

    /// Every call.
    pub fn values(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    /// The call whose dialog has this Call-ID.
    pub fn by_call_id(&self, call_id: &str) -> Option<CallKey> {
        self.by_call_id.get(call_id).copied()
    }

    /// The call whose INVITE is this server transaction.
    pub fn by_invite(&self, invite: &ServerKey) -> Option<CallKey> {
        self.by_invite.get(invite).copied()
    }

    fn set(&mut self, timer: CallTimer) -> &mut BTreeSet<(Instant, CallKey)> {
        match timer {
            CallTimer::Announce => &mut self.announce_due,
            CallTimer::Session => &mut self.session_due,
            CallTimer::MaxWait => &mut self.max_wait_due,
        }
    }

    /// Sets (or with `None` clears) one of a call's deadlines.
    pub fn schedule(&mut self, key: CallKey, timer: CallTimer, at: Option<Instant>) {
        let Some(call) = self.calls.get_mut(&key) else {
            return;
        };
        let slot = match timer {
            CallTimer::Announce => &mut call.announce_at,
            CallTimer::Session => &mut call.session_at,
            CallTimer::MaxWait => &mut call.max_wait_at,
        };
        let old = std::mem::replace(slot, at);
        let set = self.set(timer);
        if let Some(old) = old {
            set.remove(&(old, key));
        }
        if let Some(at) = at {
            set.insert((at, key));
        }
    }

    /// A call whose `timer` is due by `now`, taken off its set (the call's deadline is then
    /// clear until scheduled again).
    pub fn pop_due(&mut self, timer: CallTimer, now: Instant) -> Option<CallKey> {
        let set = self.set(timer);
        let &(at, key) = set.first().filter(|(at, _)| *at <= now)?;
        set.remove(&(at, key));
        if let Some(call) = self.calls.get_mut(&key) {
            match timer {
                CallTimer::Announce => call.announce_at = None,
                CallTimer::Session => call.session_at = None,
                CallTimer::MaxWait => call.max_wait_at = None,
            }
        }
        Some(key)
    }

    /// The earliest deadline of any call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.announce_due.first(),
            self.session_due.first(),
            self.max_wait_due.first(),
        ]
        .into_iter()
        .flatten()
        .map(|(at, _)| *at)
        .min()
    }

    /// Panics unless the indexes and deadline sets agree with the calls (tests and debug
    /// builds run it after every input).
    pub fn check_invariants(&self) {
        assert_eq!(self.by_call_id.len(), self.calls.len(), "by_call_id size");
        assert_eq!(self.by_invite.len(), self.calls.len(), "by_invite size");
        let announced = self.calls.values().filter(|c| c.announce_at.is_some());
        assert_eq!(
            announced.count(),
            self.announce_due.len(),
            "announce set size"
        );
        let timed = self.calls.values().filter(|c| c.session_at.is_some());
        assert_eq!(timed.count(), self.session_due.len(), "session set size");
        let capped = self.calls.values().filter(|c| c.max_wait_at.is_some());
        assert_eq!(capped.count(), self.max_wait_due.len(), "max-wait set size");
        for (key, call) in &self.calls {
            assert_eq!(*key, call.key, "call filed under another key");
            assert_eq!(self.by_call_id.get(&call.dialog.call_id), Some(key));
            assert_eq!(self.by_invite.get(&call.invite), Some(key));
            if let Some(at) = call.announce_at {
                assert!(self.announce_due.contains(&(at, *key)), "announce deadline");
            }
            if let Some(at) = call.session_at {
                assert!(self.session_due.contains(&(at, *key)), "session deadline");
            }
            if let Some(at) = call.max_wait_at {
                assert!(self.max_wait_due.contains(&(at, *key)), "max-wait deadline");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b2bua::session::LocalSdp;
    use crate::sip::sdp::Direction;
    use std::time::Duration;

    fn call(n: u64, now: Instant) -> Call {
        let text = format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-{n}\r\n\
             From: <sip:a@127.0.0.1>;tag=f{n}\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: call-{n}\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.1:5080>\r\nContent-Length: 0\r\n\r\n"
        );
        let invite = rsip::Request::try_from(text.as_str()).unwrap();
        let media = Answer {
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event: None,
            remote: "127.0.0.1:7000".parse().unwrap(),
            direction: Direction::SendRecv,
            srtp: None,
        };
        Call::new(NewCall {
            key: CallKey(n),
            dialog: Dialog::from_invite(&invite, "hf").unwrap(),
            invite_key: ServerKey::of(&invite).unwrap(),
            invite,
            signalling: "127.0.0.1:5080".parse().unwrap(),
            caller: "a".into(),
            queue: QueueId(0),
            stream: StreamId::for_tests(n),
            media,
            local: LocalSdp::new(20_000, n, Codec::Pcmu),
            answer_sdp: String::new(),
            started: now,
        })
    }

    #[test]
    fn indexes_and_deadlines_follow_every_change() {
        let now = Instant::now();
        let mut calls = Calls::default();
        for n in 1..=3 {
            assert!(calls.insert(call(n, now)));
        }
        assert!(
            !calls.insert(call(2, now)),
            "a key or Call-ID in use is refused"
        );
        calls.check_invariants();
        assert_eq!(calls.by_call_id("call-2"), Some(CallKey(2)));
        let invite = calls[&CallKey(3)].invite.clone();
        assert_eq!(calls.by_invite(&invite), Some(CallKey(3)));

        let (t1, t2) = (now + Duration::from_secs(1), now + Duration::from_secs(2));
        calls.schedule(CallKey(1), CallTimer::Announce, Some(t2));
        calls.schedule(CallKey(1), CallTimer::Announce, Some(t1)); // moved, not added
        calls.schedule(CallKey(2), CallTimer::Session, Some(t2));
        calls.schedule(CallKey(3), CallTimer::Announce, Some(t2));
        calls.check_invariants();
        assert_eq!(calls.poll_timeout(), Some(t1));
        assert_eq!(calls.pop_due(CallTimer::Announce, now), None);
        assert_eq!(calls.pop_due(CallTimer::Announce, t2), Some(CallKey(1)));
        calls.check_invariants();
        assert_eq!(calls.pop_due(CallTimer::Session, t1), None);

        // Removing a call takes its deadlines and index entries with it.
        let gone = calls.remove(CallKey(3)).unwrap();
        assert_eq!(calls.by_invite(&gone.invite), None);
        assert_eq!(calls.by_call_id("call-3"), None);
        calls.remove(CallKey(2));
        calls.check_invariants();
        assert_eq!(calls.poll_timeout(), None);
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn an_early_call_is_answered_once() {
        let mut state = call(1, Instant::now()).state;
        assert!(state.is_early());
        assert!(state.answer().is_some());
        assert_eq!(state, CallState::Answered);
        assert!(state.answer().is_none());
    }
}
