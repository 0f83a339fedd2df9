//! One call to an agent's phone ([`AgentLeg`]) and [`Legs`], the table of them that owns
//! its indexes (by client transaction of the INVITE, by dialog Call-ID once answered) and
//! the ring deadlines. The behaviour around legs is in `legs` (callers) and `dialback`
//! (callbacks).
//!
//! ```text
//!  insert ──▶ Ringing { deadline } ──answered──▶ Answered { dialog, talking_since }
//!                 │ cancelling                        │ remove (BYE either side)
//!                 ▼                                   ▼
//!             Cancelling ──final response──▶ remove   gone
//! ```

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use super::CallKey;
use crate::media::engine::StreamId;
use crate::queue::dispatch::AgentId;
use crate::queue::{EntryId, QueueId};
use crate::sip::dialog::Dialog;
use crate::sip::transaction::ClientKey;

/// holdfast's handle for one call to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegKey(pub u64);

/// What a leg is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegFor {
    /// A caller on the line, waiting in a queue.
    Caller(CallKey),
    /// A committed callback: the caller is dialled once the agent answers.
    Callback(EntryId),
}

/// Where an agent leg is, with what each state needs.
#[derive(Debug, Clone)]
pub enum LegState {
    /// INVITE sent, the phone rings until `deadline`.
    Ringing {
        /// When to give up (the queue's `ring_timeout`).
        deadline: Instant,
    },
    /// We gave up (ring timeout, caller left): CANCEL sent, waiting for the final response;
    /// a 2xx that crosses the CANCEL is ACKed and hung up at once.
    Cancelling,
    /// The agent answered.
    Answered {
        /// The dialog with the agent's phone.
        dialog: Box<Dialog>,
        /// When the conversation started (handle time, docs/behaviour.md §5): at once for
        /// a caller on the line, when the called-back caller answers for a callback.
        talking_since: Option<Instant>,
    },
}

impl LegState {
    /// Whether the phone still rings.
    pub fn is_ringing(&self) -> bool {
        matches!(self, Self::Ringing { .. })
    }

    /// Whether the agent answered.
    pub fn is_answered(&self) -> bool {
        matches!(self, Self::Answered { .. })
    }
}

/// One outbound call to an agent's phone.
#[derive(Debug)]
pub struct AgentLeg {
    /// Our key.
    pub key: LegKey,
    /// The agent called.
    pub agent: AgentId,
    /// What the leg is for.
    pub purpose: LegFor,
    /// The caller it is for (for a callback, the key whose entry the callback holds).
    pub call: CallKey,
    /// The queue the caller waits in.
    pub queue: QueueId,
    /// Our INVITE, kept to build the ACK and the dialog.
    pub invite: rsip::Request,
    /// Its client transaction: an index key, fixed for the leg's life.
    client: ClientKey,
    /// The agent's signalling address.
    pub destination: SocketAddr,
    /// The agent-side RTP stream (same media shard as the caller's).
    pub stream: StreamId,
    /// Lifecycle state: changed only through [`Legs`], which keeps the ring deadlines and
    /// the dialog index in step.
    state: LegState,
    /// Our side of the session: the offer we sent, the answers to the phone's re-offers.
    pub local: super::session::LocalSdp,
    /// Where the phone receives RTP (from its SDP), once it answered.
    pub remote: Option<SocketAddr>,
    /// The agent pressed Hold (its last offer was `sendonly`/`inactive`).
    pub holds: bool,
    /// The file the call is recorded into (`[[queue]] record`), once bridged.
    pub recording: Option<std::path::PathBuf>,
}

/// What a new leg is made of.
pub struct NewLeg {
    /// Our key.
    pub key: LegKey,
    /// The agent called.
    pub agent: AgentId,
    /// What it is for.
    pub purpose: LegFor,
    /// The caller's key.
    pub call: CallKey,
    /// The queue.
    pub queue: QueueId,
    /// Our INVITE.
    pub invite: rsip::Request,
    /// Its client transaction.
    pub client: ClientKey,
    /// The agent's signalling address.
    pub destination: SocketAddr,
    /// The agent-side RTP stream.
    pub stream: StreamId,
    /// When to give up ringing.
    pub ring_deadline: Instant,
    /// Our side of the session.
    pub local: super::session::LocalSdp,
}

impl AgentLeg {
    /// Lifecycle state.
    pub fn state(&self) -> &LegState {
        &self.state
    }

    /// The INVITE's client transaction.
    pub fn client(&self) -> &ClientKey {
        &self.client
    }

    /// The dialog with the phone, once answered.
    pub fn dialog(&self) -> Option<&Dialog> {
        match &self.state {
            LegState::Answered { dialog, .. } => Some(dialog),
            _ => None,
        }
    }

    /// The dialog, to send or accept a request in it (its Call-ID never changes).
    pub fn dialog_mut(&mut self) -> Option<&mut Dialog> {
        match &mut self.state {
            LegState::Answered { dialog, .. } => Some(dialog),
            _ => None,
        }
    }

    /// When the conversation started, if it did.
    pub fn talking_since(&self) -> Option<Instant> {
        match self.state {
            LegState::Answered { talking_since, .. } => talking_since,
            _ => None,
        }
    }

    /// The conversation starts now (the called-back caller answered).
    pub fn start_talking(&mut self, now: Instant) {
        if let LegState::Answered { talking_since, .. } = &mut self.state {
            talking_since.get_or_insert(now);
        }
    }
}

/// Every agent leg, with its indexes: a leg is in `by_client` under its INVITE's
/// transaction for its whole life, in `by_call_id` exactly while answered, and in
/// `ring_deadlines` exactly while ringing.
#[derive(Debug, Default)]
pub struct Legs {
    legs: HashMap<LegKey, AgentLeg>,
    by_client: HashMap<ClientKey, LegKey>,
    by_call_id: HashMap<String, LegKey>,
    ring_deadlines: BTreeSet<(Instant, LegKey)>,
}

impl Legs {
    /// Files a new, ringing leg.
    pub fn insert(&mut self, new: NewLeg) {
        let leg = AgentLeg {
            key: new.key,
            agent: new.agent,
            purpose: new.purpose,
            call: new.call,
            queue: new.queue,
            invite: new.invite,
            client: new.client,
            destination: new.destination,
            stream: new.stream,
            state: LegState::Ringing {
                deadline: new.ring_deadline,
            },
            local: new.local,
            remote: None,
            holds: false,
            recording: None,
        };
        self.by_client.insert(leg.client.clone(), leg.key);
        self.ring_deadlines.insert((new.ring_deadline, leg.key));
        self.legs.insert(leg.key, leg);
    }

    /// A leg.
    pub fn get(&self, key: &LegKey) -> Option<&AgentLeg> {
        self.legs.get(key)
    }

    /// A leg, to change what is not indexed.
    pub fn get_mut(&mut self, key: &LegKey) -> Option<&mut AgentLeg> {
        self.legs.get_mut(key)
    }

    /// Every leg.
    pub fn values(&self) -> impl Iterator<Item = &AgentLeg> {
        self.legs.values()
    }

    /// Legs in the table.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    /// No leg.
    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// The leg whose INVITE is this client transaction.
    pub fn by_client(&self, client: &ClientKey) -> Option<LegKey> {
        self.by_client.get(client).copied()
    }

    /// The answered leg whose dialog has this Call-ID.
    pub fn by_call_id(&self, call_id: &str) -> Option<LegKey> {
        self.by_call_id.get(call_id).copied()
    }

    /// Ringing → Answered with the agent's dialog (`talking_since` as given). `false` (and
    /// no change) when the leg is not ringing.
    pub fn answered(
        &mut self,
        key: LegKey,
        dialog: Dialog,
        talking_since: Option<Instant>,
    ) -> bool {
        let Some(leg) = self.legs.get_mut(&key) else {
            return false;
        };
        let LegState::Ringing { deadline } = leg.state else {
            return false;
        };
        self.ring_deadlines.remove(&(deadline, key));
        self.by_call_id.insert(dialog.call_id.clone(), key);
        leg.state = LegState::Answered {
            dialog: Box::new(dialog),
            talking_since,
        };
        true
    }

    /// Ringing → Cancelling (we gave up). `false` when the leg was not ringing.
    pub fn cancelling(&mut self, key: LegKey) -> bool {
        let Some(leg) = self.legs.get_mut(&key) else {
            return false;
        };
        let LegState::Ringing { deadline } = leg.state else {
            return false;
        };
        self.ring_deadlines.remove(&(deadline, key));
        leg.state = LegState::Cancelling;
        true
    }

    /// Takes a leg out with every trace of it in the indexes.
    pub fn remove(&mut self, key: LegKey) -> Option<AgentLeg> {
        let leg = self.legs.remove(&key)?;
        self.by_client.remove(&leg.client);
        match &leg.state {
            LegState::Ringing { deadline } => {
                self.ring_deadlines.remove(&(*deadline, key));
            }
            LegState::Answered { dialog, .. } => {
                self.by_call_id.remove(&dialog.call_id);
            }
            LegState::Cancelling => {}
        }
        Some(leg)
    }

    /// A ringing leg whose deadline passed by `now` (it stays ringing: the caller decides).
    pub fn first_expired(&self, now: Instant) -> Option<LegKey> {
        self.ring_deadlines
            .first()
            .filter(|(at, _)| *at <= now)
            .map(|(_, key)| *key)
    }

    /// The earliest ring deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ring_deadlines.first().map(|(at, _)| *at)
    }

    /// Panics unless the indexes agree with the legs (tests and debug builds run it after
    /// every input).
    pub fn check_invariants(&self) {
        assert_eq!(self.by_client.len(), self.legs.len(), "by_client size");
        let answered = self.legs.values().filter(|l| l.state.is_answered()).count();
        assert_eq!(self.by_call_id.len(), answered, "by_call_id size");
        let ringing = self.legs.values().filter(|l| l.state.is_ringing()).count();
        assert_eq!(self.ring_deadlines.len(), ringing, "ring deadline count");
        for (key, leg) in &self.legs {
            assert_eq!(*key, leg.key, "leg filed under another key");
            assert_eq!(self.by_client.get(&leg.client), Some(key));
            match &leg.state {
                LegState::Ringing { deadline } => {
                    assert!(self.ring_deadlines.contains(&(*deadline, *key)));
                }
                LegState::Answered { dialog, .. } => {
                    assert_eq!(self.by_call_id.get(&dialog.call_id), Some(key));
                }
                LegState::Cancelling => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::Codec;
    use std::time::Duration;

    fn invite(call_id: &str) -> rsip::Request {
        let text = format!(
            "INVITE sip:alice@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-{call_id}\r\n\
             From: <sip:c@127.0.0.1>;tag=hf-{call_id}\r\nTo: <sip:alice@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        rsip::Request::try_from(text.as_str()).unwrap()
    }

    fn ok(call_id: &str) -> rsip::Response {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-{call_id}\r\n\
             From: <sip:c@127.0.0.1>;tag=hf-{call_id}\r\nTo: <sip:alice@127.0.0.1>;tag=ag\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5090>\r\n\
             Content-Length: 0\r\n\r\n"
        );
        rsip::Response::try_from(text.as_str()).unwrap()
    }

    fn new_leg(n: u64, now: Instant) -> NewLeg {
        let call_id = format!("leg-{n}");
        let invite = invite(&call_id);
        NewLeg {
            key: LegKey(n),
            agent: AgentId(0),
            purpose: LegFor::Caller(CallKey(n)),
            call: CallKey(n),
            queue: QueueId(0),
            client: ClientKey::of_request(&invite).unwrap(),
            invite,
            destination: "127.0.0.1:5090".parse().unwrap(),
            stream: StreamId::for_tests(n),
            ring_deadline: now + Duration::from_secs(n),
            local: crate::b2bua::session::LocalSdp::new(20_000, n, Codec::Pcmu),
        }
    }

    #[test]
    fn every_transition_keeps_the_indexes_in_step() {
        let now = Instant::now();
        let mut legs = Legs::default();
        for n in 1..=3 {
            legs.insert(new_leg(n, now));
        }
        legs.check_invariants();
        assert_eq!(legs.poll_timeout(), Some(now + Duration::from_secs(1)));
        assert_eq!(legs.first_expired(now), None);
        assert_eq!(
            legs.first_expired(now + Duration::from_secs(1)),
            Some(LegKey(1))
        );

        // 1 answers: out of the deadlines, into the dialog index.
        let leg = legs.get(&LegKey(1)).unwrap();
        let dialog = Dialog::from_uac(&leg.invite, &ok("leg-1")).unwrap();
        assert!(legs.answered(LegKey(1), dialog.clone(), Some(now)));
        assert!(!legs.answered(LegKey(1), dialog, Some(now)), "only once");
        legs.check_invariants();
        assert_eq!(legs.by_call_id("leg-1"), Some(LegKey(1)));
        assert_eq!(legs.poll_timeout(), Some(now + Duration::from_secs(2)));
        assert_eq!(legs.get(&LegKey(1)).unwrap().talking_since(), Some(now));

        // 2 is given up on; 3 is removed while ringing; 1 is removed answered.
        assert!(legs.cancelling(LegKey(2)));
        assert!(!legs.cancelling(LegKey(2)));
        legs.check_invariants();
        let client = legs.get(&LegKey(3)).unwrap().client().clone();
        assert_eq!(legs.by_client(&client), Some(LegKey(3)));
        assert!(legs.remove(LegKey(3)).is_some());
        assert_eq!(legs.by_client(&client), None);
        assert!(legs.remove(LegKey(1)).is_some());
        assert_eq!(legs.by_call_id("leg-1"), None);
        legs.check_invariants();
        assert_eq!(legs.poll_timeout(), None);
        assert_eq!(legs.len(), 1);
    }

    #[test]
    fn a_callback_leg_starts_talking_when_the_caller_answers() {
        let now = Instant::now();
        let mut legs = Legs::default();
        let mut leg = new_leg(7, now);
        leg.purpose = LegFor::Callback(EntryId(7));
        legs.insert(leg);
        let dialog = Dialog::from_uac(&legs.get(&LegKey(7)).unwrap().invite, &ok("leg-7")).unwrap();
        legs.answered(LegKey(7), dialog, None);
        let leg = legs.get_mut(&LegKey(7)).unwrap();
        assert_eq!(leg.talking_since(), None);
        leg.start_talking(now + Duration::from_secs(9));
        leg.start_talking(now + Duration::from_secs(20));
        assert_eq!(leg.talking_since(), Some(now + Duration::from_secs(9)));
    }
}
