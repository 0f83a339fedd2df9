//! [`Callbacks`]: the table of committed callbacks, each in a [`CallbackPhase`], with the
//! indexes the dial-back needs (the trunk INVITE's client transaction while dialling, the
//! trunk dialog's Call-ID once connected, the retry deadlines, the INVITEs being reconciled
//! after a restart) and the caller-side state of the offer (commits in flight, streams that
//! heard the offer, confirmations playing). Only its methods change a phase, so the indexes
//! always agree with the phases.
//!
//! ```text
//!  Waiting ─agent answered─▶ Recording ─durable─▶ Dialling ─2xx─▶ Completing ─durable─▶ Connected
//!     ▲                         │ store error        │ busy, no answer,               │ BYE
//!     │                         ▼                    ▼ agent left                     ▼ removed
//!     └─ RetryAt(t) ◀───────────┴────────────────────┘ (attempts left; t passes: Waiting)
//!          ▲
//!  restart: Reconciling ──non-2xx final or no final in 64·T1──┘ (2xx: removed, failed)
//! ```

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use super::reconcile::{InviteKey, Reconcile, SettledInvites};
use super::{CallKey, LegKey, StoreRequest};
use crate::media::engine::StreamId;
use crate::queue::{EntryId, QueueId};
use crate::sip::dialog::Dialog;
use crate::sip::transaction::ClientKey;
use crate::store::CallbackId;

/// A dial-back in progress: the agent answered, the caller is being called (or talks).
#[derive(Debug)]
pub struct Attempt {
    /// The answered agent leg (hearing hold music until the caller answers).
    pub agent_leg: LegKey,
    /// Our INVITE to the trunk (kept for the ACK, the dialog and a challenge's resend).
    pub invite: rsip::Request,
    /// Its client transaction: an index key, changed only by [`Callbacks::rekey`].
    client: ClientKey,
    /// The trunk-side RTP stream, beside the agent's.
    pub stream: StreamId,
    /// A digest challenge was answered already (a second one is a failure).
    pub authenticated: bool,
    /// The trunk INVITE has its final response (or timed out): nothing to CANCEL. (While
    /// `Recording`, the INVITE has not left: its transaction does not exist, and a CANCEL
    /// request for it is refused as unknown.)
    pub trunk_final: bool,
    /// Our side of the session, for re-INVITEs from the trunk.
    pub local: super::session::LocalSdp,
    /// The ACK of the trunk's 2xx, once sent: sent again for each retransmitted 2xx.
    pub ack: Option<rsip::Request>,
}

impl Attempt {
    /// A new attempt whose INVITE goes out on `client` (its key, known before it is sent).
    pub fn new(
        agent_leg: LegKey,
        invite: rsip::Request,
        client: ClientKey,
        stream: StreamId,
        local: super::session::LocalSdp,
    ) -> Self {
        Self {
            agent_leg,
            invite,
            client,
            stream,
            authenticated: false,
            trunk_final: false,
            local,
            ack: None,
        }
    }

    /// The trunk INVITE's client transaction.
    pub fn client(&self) -> &ClientKey {
        &self.client
    }
}

/// Where a committed callback is.
#[derive(Debug, Default)]
pub enum CallbackPhase {
    /// In its queue at its place, waiting for an agent (or ringing one).
    #[default]
    Waiting,
    /// An attempt failed; not dispatched again before this instant.
    RetryAt(Instant),
    /// The agent answered and the trunk INVITE is built; the store is making the attempt
    /// (with the INVITE's bytes) durable. Nothing is sent before it answers `Ok`
    /// (docs/behaviour.md §6).
    Recording(Attempt),
    /// The agent answered; the caller's phone is being called through the trunk.
    Dialling(Attempt),
    /// The caller answered (2xx); `completed` is being made durable. Not ACKed yet: the
    /// trunk retransmits the 2xx until it is (RFC 3261 §13.3.1.4).
    Completing {
        /// The attempt that reached the caller.
        attempt: Attempt,
        /// The dialog with the trunk.
        dialog: Box<Dialog>,
        /// The 2xx, with the SDP answer, for the bridge.
        ok: Box<rsip::Response>,
    },
    /// The caller answered: agent and caller talk.
    Connected {
        /// The attempt that reached the caller.
        attempt: Attempt,
        /// The dialog with the trunk.
        dialog: Box<Dialog>,
    },
    /// Restored after a restart while an INVITE recorded before it may still ring: that
    /// INVITE is cancelled and its outcome awaited (`reconcile.rs`). Never dispatched.
    Reconciling(Box<Reconcile>),
}

/// A committed callback waiting in its queue (entry kind [`crate::queue::EntryKind::Callback`]).
#[derive(Debug)]
pub struct Callback {
    /// Its row in the store.
    pub id: CallbackId,
    /// The queue it waits in.
    pub queue: QueueId,
    /// The number to dial: the caller's own, checked against the queue's pattern.
    pub number: String,
    /// Dial attempts made so far.
    pub attempts: u32,
    /// Where it is: changed only through [`Callbacks`].
    phase: CallbackPhase,
}

impl Callback {
    /// A callback in `phase` (`Waiting`, or `RetryAt` when restored mid-delay).
    pub fn new(id: CallbackId, queue: QueueId, number: String, attempts: u32) -> Self {
        Self {
            id,
            queue,
            number,
            attempts,
            phase: CallbackPhase::Waiting,
        }
    }

    /// Where it is.
    pub fn phase(&self) -> &CallbackPhase {
        &self.phase
    }

    /// The attempt in progress (recording, dialling, completing or connected).
    pub fn attempt(&self) -> Option<&Attempt> {
        match &self.phase {
            CallbackPhase::Recording(attempt)
            | CallbackPhase::Dialling(attempt)
            | CallbackPhase::Completing { attempt, .. }
            | CallbackPhase::Connected { attempt, .. } => Some(attempt),
            _ => None,
        }
    }

    fn attempt_mut(&mut self) -> Option<&mut Attempt> {
        match &mut self.phase {
            CallbackPhase::Recording(attempt)
            | CallbackPhase::Dialling(attempt)
            | CallbackPhase::Completing { attempt, .. }
            | CallbackPhase::Connected { attempt, .. } => Some(attempt),
            _ => None,
        }
    }

    /// The trunk dialog, once connected.
    pub fn dialog(&self) -> Option<&Dialog> {
        match &self.phase {
            CallbackPhase::Connected { dialog, .. } => Some(dialog),
            _ => None,
        }
    }
}

/// The controller's callback state.
#[derive(Debug, Default)]
pub struct Callbacks {
    /// Committed callbacks by entry.
    waiting: HashMap<EntryId, Callback>,
    /// Entries whose commit is in flight: not dispatched meanwhile.
    committing: HashSet<EntryId>,
    /// Outbox for the driver.
    requests: VecDeque<StoreRequest>,
    /// Retry deadlines: exactly the callbacks in `RetryAt`.
    retries: BTreeSet<(Instant, EntryId)>,
    /// Held callers who have heard (the start of) an offer, by their stream: the only
    /// streams whose RFC 4733 digits matter.
    offered_streams: HashMap<StreamId, CallKey>,
    /// Callers hearing their last prompt (a callback's confirmation, an overflow's goodbye),
    /// by stream; hung up on its `PromptDone`.
    confirming: HashMap<StreamId, CallKey>,
    /// Trunk INVITEs: exactly the callbacks in `Dialling`, `Completing` or `Connected`.
    trunk_by_client: HashMap<ClientKey, EntryId>,
    /// Trunk dialogs: exactly the callbacks in `Connected`.
    trunk_by_call_id: HashMap<String, EntryId>,
    /// Restored INVITEs by Call-ID and branch: exactly the callbacks in `Reconciling`.
    reconciling: HashMap<InviteKey, EntryId>,
    /// Reconcile deadlines: exactly the callbacks in `Reconciling`, under their deadline.
    reconcile_due: BTreeSet<(Instant, EntryId)>,
    /// Reconciled INVITEs whose final response we ACKed: retransmissions are ACKed again.
    pub settled: SettledInvites,
}

impl Callbacks {
    /// The entry of callback `id` (a scan: for the admin API, not for the hot path).
    pub fn entry_of(&self, id: CallbackId) -> Option<EntryId> {
        self.waiting
            .iter()
            .find(|(_, c)| c.id == id)
            .map(|(entry, _)| *entry)
    }

    /// Queues a durable write for the driver.
    pub fn push(&mut self, request: StoreRequest) {
        self.requests.push_back(request);
    }

    /// The next durable write for the driver.
    pub fn pop_request(&mut self) -> Option<StoreRequest> {
        self.requests.pop_front()
    }

    /// A commit for `entry` is in flight.
    pub fn begin_commit(&mut self, entry: EntryId) {
        self.committing.insert(entry);
    }

    /// The store answered `entry`'s commit; `false` if none was in flight.
    pub fn end_commit(&mut self, entry: EntryId) -> bool {
        self.committing.remove(&entry)
    }

    /// The caller on `stream` has heard the offer start: its digits count from now on.
    pub fn offer_heard(&mut self, stream: StreamId, call: CallKey) {
        self.offered_streams.insert(stream, call);
    }

    /// The caller whose digits on `stream` count.
    pub fn offered_call(&self, stream: StreamId) -> Option<CallKey> {
        self.offered_streams.get(&stream).copied()
    }

    /// The caller on `stream` hears its confirmation, then is hung up.
    pub fn confirming(&mut self, stream: StreamId, call: CallKey) {
        self.confirming.insert(stream, call);
    }

    /// The confirmation on `stream` ended: the caller to hang up.
    pub fn confirmed(&mut self, stream: StreamId) -> Option<CallKey> {
        self.confirming.remove(&stream)
    }

    /// A released call's stream: its digits and prompt ends no longer matter.
    pub fn forget_stream(&mut self, stream: StreamId) {
        self.offered_streams.remove(&stream);
        self.confirming.remove(&stream);
    }

    /// Files a committed callback; `retry_at` puts it straight into `RetryAt`.
    pub fn insert(&mut self, entry: EntryId, mut callback: Callback, retry_at: Option<Instant>) {
        self.remove(entry);
        if let Some(at) = retry_at {
            callback.phase = CallbackPhase::RetryAt(at);
            self.retries.insert((at, entry));
        } else {
            callback.phase = CallbackPhase::Waiting;
        }
        self.waiting.insert(entry, callback);
    }

    /// A callback.
    pub fn get(&self, entry: &EntryId) -> Option<&Callback> {
        self.waiting.get(entry)
    }

    /// A callback, to change what is not indexed (attempts, the attempt's SDP).
    pub fn get_mut(&mut self, entry: &EntryId) -> Option<&mut Callback> {
        self.waiting.get_mut(entry)
    }

    /// Committed callbacks.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Takes a callback out, with its attempt (if any) and every index entry.
    pub fn remove(&mut self, entry: EntryId) -> Option<Callback> {
        let callback = self.waiting.remove(&entry)?;
        self.unindex(entry, &callback.phase);
        Some(callback)
    }

    fn unindex(&mut self, entry: EntryId, phase: &CallbackPhase) {
        match phase {
            CallbackPhase::Waiting | CallbackPhase::Recording(_) => {}
            CallbackPhase::RetryAt(at) => {
                self.retries.remove(&(*at, entry));
            }
            CallbackPhase::Dialling(attempt) | CallbackPhase::Completing { attempt, .. } => {
                self.trunk_by_client.remove(&attempt.client);
            }
            CallbackPhase::Connected { attempt, dialog } => {
                self.trunk_by_client.remove(&attempt.client);
                self.trunk_by_call_id.remove(&dialog.call_id);
            }
            CallbackPhase::Reconciling(reconcile) => {
                self.reconciling.remove(reconcile.key());
                self.reconcile_due.remove(&(reconcile.deadline, entry));
            }
        }
    }

    /// Moves a callback to `phase`, returning the old one (indexes follow).
    fn set_phase(&mut self, entry: EntryId, phase: CallbackPhase) -> Option<CallbackPhase> {
        let callback = self.waiting.get_mut(&entry)?;
        let old = std::mem::replace(&mut callback.phase, phase);
        self.unindex(entry, &old);
        let callback = self.waiting.get(&entry)?;
        match &callback.phase {
            CallbackPhase::Waiting | CallbackPhase::Recording(_) => {}
            CallbackPhase::RetryAt(at) => {
                self.retries.insert((*at, entry));
            }
            CallbackPhase::Dialling(attempt) | CallbackPhase::Completing { attempt, .. } => {
                // Kept while completing: 2xx retransmissions are recognized (and ignored).
                self.trunk_by_client.insert(attempt.client.clone(), entry);
            }
            CallbackPhase::Connected { attempt, dialog } => {
                // Kept: a retransmitted 2xx still finds its attempt and gets its ACK.
                self.trunk_by_client.insert(attempt.client.clone(), entry);
                self.trunk_by_call_id.insert(dialog.call_id.clone(), entry);
            }
            CallbackPhase::Reconciling(reconcile) => {
                self.reconciling.insert(reconcile.key().clone(), entry);
                self.reconcile_due.insert((reconcile.deadline, entry));
            }
        }
        Some(old)
    }

    /// The agent answered: `attempt`'s INVITE waits for its record to be durable.
    pub fn start_recording(&mut self, entry: EntryId, attempt: Attempt) {
        self.set_phase(entry, CallbackPhase::Recording(attempt));
    }

    /// The attempt is durable and its INVITE went out on `client`: `Recording` →
    /// `Dialling`. `false` (no change) in another phase.
    pub fn start_dialling(&mut self, entry: EntryId, client: ClientKey) -> bool {
        match self.set_phase(entry, CallbackPhase::Waiting) {
            Some(CallbackPhase::Recording(mut attempt)) => {
                attempt.client = client;
                self.set_phase(entry, CallbackPhase::Dialling(attempt));
                true
            }
            other => self.put_back(entry, other),
        }
    }

    /// The trunk INVITE is to be re-sent with credentials as `invite` on `client`: back to
    /// `Recording` until that INVITE is durable too.
    pub fn rekey(&mut self, entry: EntryId, client: ClientKey, invite: rsip::Request) {
        match self.set_phase(entry, CallbackPhase::Waiting) {
            Some(CallbackPhase::Dialling(mut attempt)) => {
                attempt.client = client;
                attempt.invite = invite;
                attempt.authenticated = true;
                self.set_phase(entry, CallbackPhase::Recording(attempt));
            }
            other => {
                self.put_back(entry, other);
            }
        }
    }

    /// The caller answered with `ok`: `Dialling` → `Completing`. `false` (no change) in
    /// another phase.
    pub fn completing(&mut self, entry: EntryId, dialog: Dialog, ok: rsip::Response) -> bool {
        match self.set_phase(entry, CallbackPhase::Waiting) {
            Some(CallbackPhase::Dialling(attempt)) => {
                let phase = CallbackPhase::Completing {
                    attempt,
                    dialog: Box::new(dialog),
                    ok: Box::new(ok),
                };
                self.set_phase(entry, phase);
                true
            }
            other => self.put_back(entry, other),
        }
    }

    /// Undoes the `Waiting` a refused transition left: `old` is the phase again. `false`.
    fn put_back(&mut self, entry: EntryId, old: Option<CallbackPhase>) -> bool {
        if let Some(old) = old {
            self.set_phase(entry, old);
        }
        false
    }

    /// `completed` is durable: `Completing` → `Connected`, handing back the 2xx (and the
    /// dialog, to ACK it). `None` (no change) in another phase.
    pub fn connected(&mut self, entry: EntryId) -> Option<rsip::Response> {
        match self.set_phase(entry, CallbackPhase::Waiting)? {
            CallbackPhase::Completing {
                attempt,
                dialog,
                ok,
            } => {
                self.set_phase(entry, CallbackPhase::Connected { attempt, dialog });
                Some(*ok)
            }
            other => {
                self.put_back(entry, Some(other));
                None
            }
        }
    }

    /// Ends the attempt in progress (back to `Waiting`), handing it back with its dialog
    /// (once the caller answered).
    pub fn take_attempt(&mut self, entry: EntryId) -> Option<(Attempt, Option<Dialog>)> {
        match self.set_phase(entry, CallbackPhase::Waiting)? {
            CallbackPhase::Recording(attempt) | CallbackPhase::Dialling(attempt) => {
                Some((attempt, None))
            }
            CallbackPhase::Completing {
                attempt, dialog, ..
            }
            | CallbackPhase::Connected { attempt, dialog } => Some((attempt, Some(*dialog))),
            other => {
                self.set_phase(entry, other);
                None
            }
        }
    }

    /// Files a callback restored mid-dial: its old INVITE is being reconciled.
    pub fn insert_reconciling(&mut self, entry: EntryId, callback: Callback, reconcile: Reconcile) {
        self.insert(entry, callback, None);
        self.set_phase(entry, CallbackPhase::Reconciling(Box::new(reconcile)));
    }

    /// The reconciling callback whose restored INVITE has this Call-ID and branch.
    pub fn by_invite_key(&self, key: &InviteKey) -> Option<EntryId> {
        self.reconciling.get(key).copied()
    }

    /// Ends a reconciliation (back to `Waiting`), handing back what was reconciled.
    pub fn end_reconcile(&mut self, entry: EntryId) -> Option<Reconcile> {
        match self.set_phase(entry, CallbackPhase::Waiting)? {
            CallbackPhase::Reconciling(reconcile) => Some(*reconcile),
            other => {
                self.set_phase(entry, other);
                None
            }
        }
    }

    /// A reconciling callback whose deadline has passed by `now` (still `Reconciling`:
    /// [`Self::end_reconcile`] takes it out).
    pub fn due_reconcile(&self, now: Instant) -> Option<EntryId> {
        self.reconcile_due
            .first()
            .filter(|(at, _)| *at <= now)
            .map(|&(_, entry)| entry)
    }

    /// Not dispatched again before `at`.
    pub fn retry_at(&mut self, entry: EntryId, at: Instant) {
        self.set_phase(entry, CallbackPhase::RetryAt(at));
    }

    /// A callback whose retry delay ran out by `now`, back in `Waiting`.
    pub fn pop_due_retry(&mut self, now: Instant) -> Option<EntryId> {
        let &(at, entry) = self.retries.first().filter(|(at, _)| *at <= now)?;
        self.retries.remove(&(at, entry));
        if let Some(callback) = self.waiting.get_mut(&entry) {
            callback.phase = CallbackPhase::Waiting;
        }
        Some(entry)
    }

    /// The callback whose trunk leg uses `stream`.
    pub fn with_trunk_stream(&self, stream: StreamId) -> Option<EntryId> {
        self.waiting
            .iter()
            .find(|(_, c)| c.attempt().is_some_and(|a| a.stream == stream))
            .map(|(entry, _)| *entry)
    }

    /// The earliest retry or reconcile deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retry = self.retries.first().map(|(at, _)| *at);
        let reconcile = self.reconcile_due.first().map(|(at, _)| *at);
        retry.into_iter().chain(reconcile).min()
    }

    /// The callback whose trunk INVITE (dialling or answered) is this client transaction.
    pub fn by_trunk_client(&self, client: &ClientKey) -> Option<EntryId> {
        self.trunk_by_client.get(client).copied()
    }

    /// The connected callback whose trunk dialog has this Call-ID.
    pub fn by_trunk_call_id(&self, call_id: &str) -> Option<EntryId> {
        self.trunk_by_call_id.get(call_id).copied()
    }

    /// The attempt in progress, to change what is not indexed.
    pub fn attempt_mut(&mut self, entry: EntryId) -> Option<&mut Attempt> {
        self.waiting.get_mut(&entry)?.attempt_mut()
    }

    /// The trunk dialog of a connected callback.
    pub fn dialog_mut(&mut self, entry: EntryId) -> Option<&mut Dialog> {
        match &mut self.waiting.get_mut(&entry)?.phase {
            CallbackPhase::Connected { dialog, .. } => Some(dialog),
            _ => None,
        }
    }

    /// Whether dispatch must pass over `entry` for now: its commit is in flight, its caller is
    /// still on the line hearing the confirmation, it is waiting out a retry delay, an
    /// attempt is in progress or an INVITE from before a restart is being reconciled.
    pub fn holds_back(&self, entry: EntryId, caller_on_line: bool) -> bool {
        self.committing.contains(&entry)
            || self
                .waiting
                .get(&entry)
                .is_some_and(|c| caller_on_line || !matches!(c.phase, CallbackPhase::Waiting))
    }

    /// Panics unless the indexes agree with the phases (debug builds, after every input).
    pub fn check_invariants(&self) {
        let count =
            |f: fn(&CallbackPhase) -> bool| self.waiting.values().filter(|c| f(&c.phase)).count();
        assert_eq!(
            self.retries.len(),
            count(|p| matches!(p, CallbackPhase::RetryAt(_)))
        );
        assert_eq!(
            self.trunk_by_client.len(),
            count(|p| matches!(
                p,
                CallbackPhase::Dialling(_)
                    | CallbackPhase::Completing { .. }
                    | CallbackPhase::Connected { .. }
            ))
        );
        assert_eq!(
            self.trunk_by_call_id.len(),
            count(|p| matches!(p, CallbackPhase::Connected { .. }))
        );
        let reconciling = count(|p| matches!(p, CallbackPhase::Reconciling(_)));
        assert_eq!(self.reconciling.len(), reconciling);
        assert_eq!(self.reconcile_due.len(), reconciling);
        for (entry, callback) in &self.waiting {
            match &callback.phase {
                CallbackPhase::Waiting | CallbackPhase::Recording(_) => {}
                CallbackPhase::RetryAt(at) => assert!(self.retries.contains(&(*at, *entry))),
                CallbackPhase::Dialling(attempt) | CallbackPhase::Completing { attempt, .. } => {
                    assert_eq!(self.trunk_by_client.get(&attempt.client), Some(entry));
                }
                CallbackPhase::Connected { attempt, dialog } => {
                    assert_eq!(self.trunk_by_client.get(&attempt.client), Some(entry));
                    assert_eq!(self.trunk_by_call_id.get(&dialog.call_id), Some(entry));
                }
                CallbackPhase::Reconciling(reconcile) => {
                    assert_eq!(self.reconciling.get(reconcile.key()), Some(entry));
                    assert!(self.reconcile_due.contains(&(reconcile.deadline, *entry)));
                }
            }
        }
    }
}
