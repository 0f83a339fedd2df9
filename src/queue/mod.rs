//! The queue domain, pure: who waits where, in which order, and who an agent takes next
//! (docs/behaviour.md §3).
//!
//! [`Queues`] owns every named [`Queue`], the global sequence counter that fixes arrival order,
//! and the dispatch rule: an agent lists its queues by importance and takes the head of the
//! first non-empty one, so a premium queue is drained before the regular one. Nothing here
//! reads the clock or does I/O: `now` is an input and changes come out of
//! [`Queues::poll_event`] for the call controller to act on (announce, log, store).

pub mod calibration;
pub mod dispatch;
pub mod estimate;
pub mod forecast;
pub mod hours;
#[allow(clippy::module_inception)]
// ARCHITECTURE.md "Layout": the queue itself lives in queue/queue.rs.
mod queue;
pub mod service;
pub mod simulate;
mod tree;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

pub use queue::{Entry, EntryKind, Iter, JoinError, Queue};

/// Identifies a waiting entry; chosen by the user of the engine and unique across all queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub u64);

/// Global arrival number: inside one priority level, a lower `Seq` is served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(pub u64);

/// Priority level from `[priorities]`; lower is served first.
pub type Level = u32;

/// Index of a queue inside [`Queues`]; queues added in config order get 0, 1, 2, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub usize);

/// Why an entry left its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The caller hung up while waiting.
    Abandoned,
    /// The entry was handed to an agent (or its callback is being dialled).
    Dispatched,
    /// Taken out for any other reason (admin action, failed callback, shutdown).
    Removed,
}

/// A change in the queues, for the call controller to log, store and announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// An entry joined (or was restored into) a queue.
    Joined {
        /// Where it joined.
        queue: QueueId,
        /// Which entry.
        id: EntryId,
        /// Its position right after joining.
        position: usize,
        /// Its place in arrival order; persist this for a callback.
        seq: Seq,
        /// Its priority level.
        level: Level,
    },
    /// An entry left its queue.
    Left {
        /// Which queue it left.
        queue: QueueId,
        /// Which entry.
        id: EntryId,
        /// Why it left.
        reason: LeaveReason,
        /// When it joined (its wait is from then).
        joined: Instant,
        /// A caller on the line or a callback.
        kind: EntryKind,
    },
}

/// Sequence slots of a cluster: a node's numbers differ from every other node's in
/// `seq % SLOTS` (its slot, given by the store).
pub const SLOTS: u64 = 256;

/// Milliseconds from the Unix epoch to 2020-01-01, where cluster sequence numbers start.
const SEQ_EPOCH_MS: u64 = 1_577_836_800_000;

/// The lowest sequence number a cluster node may hand out at wall-clock time `unix_ms`: the
/// milliseconds since 2020 times [`SLOTS`]. Every node raises its counter to this as time
/// passes, so callers who joined on different nodes are ordered by when they joined (to
/// within the nodes' clock offset); the numbers stay below 2⁵³ until the year 2106, so
/// they are exact in JSON.
pub fn seq_floor_at(unix_ms: u64) -> Seq {
    Seq(unix_ms.saturating_sub(SEQ_EPOCH_MS).saturating_mul(SLOTS))
}

/// All queues of the server, the sequence counter and the dispatch rule.
#[derive(Debug, Default)]
pub struct Queues {
    queues: Vec<Queue>,
    next_seq: u64,
    /// A node of a cluster hands out only numbers `≡ slot (mod SLOTS)` ([`Queues::set_slot`]).
    slot: Option<u8>,
    /// Which queue each waiting entry is in, so callers need only the id.
    location: HashMap<EntryId, QueueId>,
    events: VecDeque<QueueEvent>,
}

impl Queues {
    /// No queues yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an empty queue; ids are handed out in order starting at `QueueId(0)`.
    pub fn add_queue(&mut self, name: impl Into<String>, max_len: usize) -> QueueId {
        self.queues.push(Queue::new(name, max_len));
        QueueId(self.queues.len() - 1)
    }

    /// The queue with this id.
    pub fn queue(&self, queue: QueueId) -> Option<&Queue> {
        self.queues.get(queue.0)
    }

    /// The id of the queue with this name.
    pub fn find(&self, name: &str) -> Option<QueueId> {
        self.queues
            .iter()
            .position(|q| q.name() == name)
            .map(QueueId)
    }

    /// Every queue with its id, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (QueueId, &Queue)> {
        self.queues.iter().enumerate().map(|(i, q)| (QueueId(i), q))
    }

    /// Total waiting entries over all queues.
    pub fn waiting(&self) -> usize {
        self.location.len()
    }

    /// The sequence number the next ordinary join will get (persist it, or let recovered
    /// callbacks push it forward through [`Queues::join_with_seq`]).
    pub fn next_seq(&self) -> Seq {
        Seq(self.next_seq)
    }

    /// Makes future joins take numbers from `seq` on, never going backwards: after a restart
    /// new callers must queue behind every number handed out before. A node of a cluster
    /// takes the first number of its own slot at or after `seq`.
    pub fn advance_seq(&mut self, seq: Seq) {
        self.next_seq = self.next_seq.max(self.align(seq.0));
    }

    /// Makes this node one of a cluster's (docs/cluster.md): the numbers it hands out are
    /// `k × SLOTS + slot`, so no two nodes ever hand out the same one, and numbers of
    /// different nodes interleave in the order the nodes advanced them (the driver advances
    /// every node by the wall clock, [`seq_floor_at`]).
    pub fn set_slot(&mut self, slot: u8) {
        self.slot = Some(slot);
        self.next_seq = self.align(self.next_seq);
    }

    /// The first number this node may hand out at or after `n`.
    fn align(&self, n: u64) -> u64 {
        match self.slot {
            None => n,
            Some(slot) => {
                let slot = u64::from(slot);
                let base = n - n % SLOTS;
                if base + slot >= n {
                    base + slot
                } else {
                    base.saturating_add(SLOTS + slot)
                }
            }
        }
    }

    fn stride(&self) -> u64 {
        if self.slot.is_some() { SLOTS } else { 1 }
    }

    /// A new arrival joins `queue` at the back of its level; returns its sequence number.
    pub fn join(
        &mut self,
        now: Instant,
        queue: QueueId,
        id: EntryId,
        level: Level,
        kind: EntryKind,
    ) -> Result<Seq, JoinError> {
        let q = self.queues.get(queue.0).ok_or(JoinError::UnknownQueue)?;
        if q.is_full() {
            return Err(JoinError::Full(q.max_len()));
        }
        let seq = Seq(self.next_seq);
        self.insert(now, queue, id, level, seq, kind)?;
        self.next_seq += self.stride();
        Ok(seq)
    }

    /// Puts an entry back at an earlier place (a callback reloaded after a restart). It is
    /// accepted even when the queue is full: a committed callback must never be dropped.
    pub fn join_with_seq(
        &mut self,
        now: Instant,
        queue: QueueId,
        id: EntryId,
        level: Level,
        seq: Seq,
        kind: EntryKind,
    ) -> Result<(), JoinError> {
        self.insert(now, queue, id, level, seq, kind)?;
        self.advance_seq(Seq(seq.0.saturating_add(1)));
        Ok(())
    }

    fn insert(
        &mut self,
        now: Instant,
        queue: QueueId,
        id: EntryId,
        level: Level,
        seq: Seq,
        kind: EntryKind,
    ) -> Result<(), JoinError> {
        if self.location.contains_key(&id) {
            return Err(JoinError::DuplicateId(id));
        }
        let q = self
            .queues
            .get_mut(queue.0)
            .ok_or(JoinError::UnknownQueue)?;
        let position = q.join_with_seq(now, id, level, seq, kind)?;
        self.location.insert(id, queue);
        self.events.push_back(QueueEvent::Joined {
            queue,
            id,
            position,
            seq,
            level,
        });
        Ok(())
    }

    /// Takes an entry out of whatever queue it is in.
    pub fn leave(&mut self, id: EntryId, reason: LeaveReason) -> Option<(QueueId, Entry)> {
        let queue = self.location.remove(&id)?;
        let entry = self.queues[queue.0]
            .leave(id)
            .expect("location map and queues agree");
        self.events.push_back(QueueEvent::Left {
            queue,
            id,
            reason,
            joined: entry.joined_at,
            kind: entry.kind,
        });
        Some((queue, entry))
    }

    /// The queue an entry waits in.
    pub fn queue_of(&self, id: EntryId) -> Option<QueueId> {
        self.location.get(&id).copied()
    }

    /// The entry and its queue.
    pub fn get(&self, id: EntryId) -> Option<(QueueId, &Entry)> {
        let queue = self.queue_of(id)?;
        Some((queue, self.queues[queue.0].get(id)?))
    }

    /// 1-based position of the entry inside its queue.
    pub fn position(&self, id: EntryId) -> Option<usize> {
        self.queues[self.queue_of(id)?.0].position(id)
    }

    /// Turns a waiting caller into a callback (or back) without moving it; returns the
    /// previous kind.
    pub fn set_kind(&mut self, id: EntryId, kind: EntryKind) -> Option<EntryKind> {
        let queue = self.queue_of(id)?;
        self.queues[queue.0].set_kind(id, kind)
    }

    /// What an agent that serves `queue_order` (most important first) should take: the head
    /// of the first non-empty queue. Unknown ids in the list are skipped. Nothing is removed;
    /// call [`Queues::leave`] with [`LeaveReason::Dispatched`] once the agent is committed.
    pub fn next_for_agent(&self, queue_order: &[QueueId]) -> Option<(QueueId, EntryId)> {
        queue_order.iter().find_map(|&queue| {
            let head = self.queues.get(queue.0)?.head()?;
            Some((queue, head.id))
        })
    }

    /// The next change to act on, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queues: &mut Queues) -> Vec<QueueEvent> {
        std::iter::from_fn(|| queues.poll_event()).collect()
    }

    #[test]
    fn premium_is_drained_before_support() {
        let now = Instant::now();
        let mut qs = Queues::new();
        let premium = qs.add_queue("premium", 10);
        let support = qs.add_queue("support", 10);
        qs.join(now, support, EntryId(1), 5, EntryKind::Caller)
            .unwrap();
        qs.join(now, premium, EntryId(2), 5, EntryKind::Caller)
            .unwrap();
        qs.join(now, premium, EntryId(3), 5, EntryKind::Caller)
            .unwrap();

        let alice = [premium, support];
        let bob = [support];
        assert_eq!(qs.next_for_agent(&alice), Some((premium, EntryId(2))));
        assert_eq!(qs.next_for_agent(&bob), Some((support, EntryId(1))));

        for id in [2, 3] {
            let (q, _) = qs.leave(EntryId(id), LeaveReason::Dispatched).unwrap();
            assert_eq!(q, premium);
        }
        assert_eq!(qs.next_for_agent(&alice), Some((support, EntryId(1))));
        qs.leave(EntryId(1), LeaveReason::Dispatched).unwrap();
        assert_eq!(qs.next_for_agent(&alice), None);
        assert_eq!(qs.next_for_agent(&[QueueId(9)]), None);
    }

    #[test]
    fn events_report_joins_and_leaves() {
        let now = Instant::now();
        let mut qs = Queues::new();
        let q = qs.add_queue("support", 10);
        let s1 = qs.join(now, q, EntryId(1), 5, EntryKind::Caller).unwrap();
        let s2 = qs.join(now, q, EntryId(2), 0, EntryKind::Caller).unwrap();
        assert!(s2 > s1, "sequence numbers grow");
        qs.leave(EntryId(1), LeaveReason::Abandoned).unwrap();
        assert_eq!(
            drain(&mut qs),
            [
                QueueEvent::Joined {
                    queue: q,
                    id: EntryId(1),
                    position: 1,
                    seq: s1,
                    level: 5
                },
                QueueEvent::Joined {
                    queue: q,
                    id: EntryId(2),
                    position: 1,
                    seq: s2,
                    level: 0
                },
                QueueEvent::Left {
                    queue: q,
                    id: EntryId(1),
                    reason: LeaveReason::Abandoned,
                    joined: now,
                    kind: EntryKind::Caller
                },
            ]
        );
        assert!(qs.leave(EntryId(1), LeaveReason::Removed).is_none());
        assert_eq!(qs.poll_event(), None, "a failed leave emits nothing");
    }

    #[test]
    fn ids_are_unique_across_queues_and_full_queues_refuse() {
        let now = Instant::now();
        let mut qs = Queues::new();
        let a = qs.add_queue("a", 1);
        let b = qs.add_queue("b", 1);
        qs.join(now, a, EntryId(1), 5, EntryKind::Caller).unwrap();
        assert_eq!(
            qs.join(now, b, EntryId(1), 5, EntryKind::Caller),
            Err(JoinError::DuplicateId(EntryId(1)))
        );
        assert_eq!(
            qs.join(now, a, EntryId(2), 5, EntryKind::Caller),
            Err(JoinError::Full(1))
        );
        assert_eq!(
            qs.join(now, QueueId(7), EntryId(3), 5, EntryKind::Caller),
            Err(JoinError::UnknownQueue)
        );
        // A failed join must not burn a sequence number or emit an event.
        let before = qs.next_seq();
        assert_eq!(drain(&mut qs).len(), 1);
        qs.join(now, b, EntryId(2), 5, EntryKind::Caller).unwrap();
        assert_eq!(qs.get(EntryId(2)).unwrap().1.seq, before);
        assert_eq!(qs.waiting(), 2);
    }

    #[test]
    fn restored_callback_keeps_its_place_and_pushes_the_counter() {
        let now = Instant::now();
        let mut qs = Queues::new();
        let q = qs.add_queue("support", 1);
        // After a restart, two callbacks come back from the store (queue full does not matter).
        qs.join_with_seq(now, q, EntryId(10), 5, Seq(40), EntryKind::Callback)
            .unwrap();
        qs.join_with_seq(now, q, EntryId(11), 5, Seq(7), EntryKind::Callback)
            .unwrap();
        assert_eq!(qs.next_seq(), Seq(41));
        assert_eq!(qs.position(EntryId(11)), Some(1));
        assert_eq!(qs.position(EntryId(10)), Some(2));

        let mut qs2 = Queues::new();
        let q2 = qs2.add_queue("support", 10);
        qs2.join_with_seq(now, q2, EntryId(10), 5, Seq(40), EntryKind::Callback)
            .unwrap();
        // A new caller at the same level goes behind the restored callback.
        let seq = qs2
            .join(now, q2, EntryId(12), 5, EntryKind::Caller)
            .unwrap();
        assert_eq!(seq, Seq(41));
        assert_eq!(qs2.position(EntryId(12)), Some(2));
        // A VIP still goes ahead of it.
        qs2.join(now, q2, EntryId(13), 0, EntryKind::Caller)
            .unwrap();
        assert_eq!(qs2.position(EntryId(13)), Some(1));
        assert_eq!(qs2.position(EntryId(10)), Some(2));
    }

    #[test]
    fn set_kind_and_get_go_through_the_location_map() {
        let now = Instant::now();
        let mut qs = Queues::new();
        qs.add_queue("a", 5);
        let b = qs.add_queue("b", 5);
        qs.join(now, b, EntryId(4), 5, EntryKind::Caller).unwrap();
        assert_eq!(qs.find("b"), Some(b));
        assert_eq!(qs.find("c"), None);
        assert_eq!(
            qs.set_kind(EntryId(4), EntryKind::Callback),
            Some(EntryKind::Caller)
        );
        let (queue, entry) = qs.get(EntryId(4)).unwrap();
        assert_eq!((queue, entry.kind), (b, EntryKind::Callback));
        assert_eq!(qs.set_kind(EntryId(5), EntryKind::Callback), None);
    }

    #[test]
    fn cluster_nodes_hand_out_numbers_of_their_own_slot_in_wall_clock_order() {
        let now = Instant::now();
        let (mut a, mut b) = (Queues::new(), Queues::new());
        let (qa, qb) = (a.add_queue("support", 100), b.add_queue("support", 100));
        a.set_slot(0);
        b.set_slot(7);
        // Both advanced by the same clock: 10:00:00.000 and 10:00:00.003.
        let t = 1_764_583_200_000;
        a.advance_seq(seq_floor_at(t));
        b.advance_seq(seq_floor_at(t));
        let a1 = a.join(now, qa, EntryId(1), 5, EntryKind::Caller).unwrap();
        let a2 = a.join(now, qa, EntryId(2), 5, EntryKind::Caller).unwrap();
        let b1 = b.join(now, qb, EntryId(1), 5, EntryKind::Caller).unwrap();
        a.advance_seq(seq_floor_at(t + 3));
        b.advance_seq(seq_floor_at(t + 3));
        let b2 = b.join(now, qb, EntryId(2), 5, EntryKind::Caller).unwrap();
        let a3 = a.join(now, qa, EntryId(3), 5, EntryKind::Caller).unwrap();
        for s in [a1, a2, a3] {
            assert_eq!(s.0 % SLOTS, 0);
        }
        for s in [b1, b2] {
            assert_eq!(s.0 % SLOTS, 7);
        }
        // Same millisecond: a1 < b1 by slot; a2 is one step later. Three ms on, both later.
        assert!(
            a1 < b1 && b1 < a2 && a2 < b2 && a2 < a3,
            "{a1:?} {b1:?} {a2:?} {b2:?} {a3:?}"
        );
        assert_eq!(a3, seq_floor_at(t + 3));
        assert_eq!(b2.0, seq_floor_at(t + 3).0 + 7);
        // An adopted callback from b keeps b's number and pushes a's counter past it.
        a.join_with_seq(
            now,
            qa,
            EntryId(9),
            5,
            Seq(b2.0 + SLOTS),
            EntryKind::Callback,
        )
        .unwrap();
        assert!(a.next_seq() > Seq(b2.0 + SLOTS));
        assert_eq!(a.next_seq().0 % SLOTS, 0);
        // Exact in JSON until 2106.
        assert!(seq_floor_at(4_291_747_200_000).0 < 1 << 53);
    }
}
