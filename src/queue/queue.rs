//! One waiting line: entries ordered by (priority level, sequence number) (docs/behaviour.md §3).
//!
//! Lower levels are served first; inside a level the order is strictly FIFO by the global
//! sequence number assigned at join, never by timestamp (two callers can join within the same
//! clock tick, and a recovered callback must land back exactly where it was). The position a
//! caller hears is 1 + the number of entries ahead of it, callback entries included.
//!
//! The entries live in an [`OrderTree`] keyed by `(level, seq)`, with a hash map from
//! [`EntryId`] to that key, so join, leave and position are all O(log n).

use std::collections::HashMap;
use std::time::Instant;

use super::tree::{self, OrderTree};
use super::{EntryId, Level, Seq};

/// What a waiting entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A caller on the line, hearing hold music.
    Caller,
    /// A caller who hung up after asking to be called back; keeps the place in line.
    Callback,
}

/// One waiting entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Identifier chosen by the user of the engine (the call controller).
    pub id: EntryId,
    /// Priority level; lower is served first.
    pub level: Level,
    /// Global join order; breaks ties inside a level.
    pub seq: Seq,
    /// When the entry first joined (kept across a caller → callback change).
    pub joined_at: Instant,
    /// Caller on the line, or callback that keeps its place.
    pub kind: EntryKind,
}

impl Entry {
    /// Time spent waiting so far; zero if `now` is before the join (clocks never go back).
    pub fn waited(&self, now: Instant) -> std::time::Duration {
        now.saturating_duration_since(self.joined_at)
    }

    fn key(&self) -> Key {
        (self.level, self.seq)
    }
}

/// Dispatch order: level first, then sequence.
type Key = (Level, Seq);

/// Why an entry could not join a queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// An entry with this id is already waiting (ids must be unique across all queues).
    #[error("entry {0:?} is already waiting")]
    DuplicateId(EntryId),
    /// Another entry already holds this (level, sequence) place.
    #[error("sequence number {0:?} is already taken at this level")]
    SeqTaken(Seq),
    /// The queue holds `max_len` entries already (the caller gets `486 Busy Here`).
    #[error("queue is full ({0} entries)")]
    Full(usize),
    /// The queue id does not name a queue of this set.
    #[error("no such queue")]
    UnknownQueue,
}

/// One named queue of waiting entries.
#[derive(Debug, Clone)]
pub struct Queue {
    name: String,
    max_len: usize,
    tree: OrderTree<Key, Entry>,
    keys: HashMap<EntryId, Key>,
}

impl Queue {
    /// An empty queue that refuses ordinary joins once it holds `max_len` entries.
    pub fn new(name: impl Into<String>, max_len: usize) -> Self {
        Self {
            name: name.into(),
            max_len,
            tree: OrderTree::new(),
            keys: HashMap::new(),
        }
    }

    /// The queue's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The most entries an ordinary join accepts.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Number of waiting entries, callbacks included.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whole seconds the longest-waiting entry has waited at `now` (0 when empty). Not
    /// always the head's: a higher priority overtakes earlier callers.
    pub fn longest_wait_s(&self, now: Instant) -> u64 {
        self.iter()
            .map(|e| e.waited(now).as_secs())
            .max()
            .unwrap_or(0)
    }

    /// Whether nobody is waiting.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Whether an ordinary join would be refused as full.
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_len
    }

    /// Inserts an entry with a sequence number already chosen, ignoring `max_len`; returns
    /// its position. [`Queues`](super::Queues) assigns the numbers and enforces the limit;
    /// this is also how a recovered callback is put back at its original place.
    pub fn join_with_seq(
        &mut self,
        now: Instant,
        id: EntryId,
        level: Level,
        seq: Seq,
        kind: EntryKind,
    ) -> Result<usize, JoinError> {
        if self.keys.contains_key(&id) {
            return Err(JoinError::DuplicateId(id));
        }
        let entry = Entry {
            id,
            level,
            seq,
            joined_at: now,
            kind,
        };
        let key = entry.key();
        self.tree
            .insert(key, entry)
            .map_err(|_| JoinError::SeqTaken(seq))?;
        self.keys.insert(id, key);
        Ok(self.tree.rank(&key).expect("just inserted") + 1)
    }

    /// Removes an entry wherever it stands.
    pub fn leave(&mut self, id: EntryId) -> Option<Entry> {
        let key = self.keys.remove(&id)?;
        let entry = self.tree.remove(&key);
        debug_assert!(entry.is_some(), "id map and tree disagree");
        entry
    }

    /// 1-based position: 1 + the number of entries ahead in dispatch order.
    pub fn position(&self, id: EntryId) -> Option<usize> {
        let key = self.keys.get(&id)?;
        self.tree.rank(key).map(|rank| rank + 1)
    }

    /// The entry that an agent would take next.
    pub fn head(&self) -> Option<&Entry> {
        self.tree.first().map(|(_, entry)| entry)
    }

    /// Removes and returns the head entry.
    pub fn pop_head(&mut self) -> Option<Entry> {
        let id = self.head()?.id;
        self.leave(id)
    }

    /// The entry with this id, if it waits here.
    pub fn get(&self, id: EntryId) -> Option<&Entry> {
        self.tree.get(self.keys.get(&id)?)
    }

    /// Whether the entry waits here.
    pub fn contains(&self, id: EntryId) -> bool {
        self.keys.contains_key(&id)
    }

    /// Changes what an entry stands for (a caller pressing 1 becomes a callback) without
    /// moving it; returns the previous kind.
    pub fn set_kind(&mut self, id: EntryId, kind: EntryKind) -> Option<EntryKind> {
        let entry = self.tree.get_mut(self.keys.get(&id)?)?;
        Some(std::mem::replace(&mut entry.kind, kind))
    }

    /// Entries in dispatch order (the n-th item has position n + 1).
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.tree.iter(),
        }
    }
}

/// Entries of a [`Queue`] in dispatch order.
#[derive(Debug)]
pub struct Iter<'a> {
    inner: tree::Iter<'a, Key, Entry>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        self.inner.next().map(|(_, entry)| entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    const VIP: Level = 0;
    const NORMAL: Level = 5;

    /// Naive model: a Vec kept sorted by (level, seq) by linear insertion.
    #[derive(Default)]
    struct Model(Vec<(Level, Seq, EntryId)>);

    impl Model {
        fn join(&mut self, level: Level, seq: Seq, id: EntryId) {
            let at = self
                .0
                .iter()
                .take_while(|e| (e.0, e.1) < (level, seq))
                .count();
            self.0.insert(at, (level, seq, id));
        }
        fn leave(&mut self, id: EntryId) -> bool {
            let before = self.0.len();
            self.0.retain(|e| e.2 != id);
            before != self.0.len()
        }
        fn position(&self, id: EntryId) -> Option<usize> {
            self.0.iter().position(|e| e.2 == id).map(|p| p + 1)
        }
    }

    fn ids(queue: &Queue) -> Vec<u64> {
        queue.iter().map(|e| e.id.0).collect()
    }

    #[test]
    fn vip_ahead_and_fifo_inside_a_level() {
        let now = Instant::now();
        let mut q = Queue::new("support", 100);
        // N1 N2 V1 N3 V2 join in this order; ids: N = 1.., V = 11..
        let joins = [(1, NORMAL), (2, NORMAL), (11, VIP), (3, NORMAL), (12, VIP)];
        for (seq, (id, level)) in joins.into_iter().enumerate() {
            q.join_with_seq(now, EntryId(id), level, Seq(seq as u64), EntryKind::Caller)
                .unwrap();
        }
        assert_eq!(ids(&q), [11, 12, 1, 2, 3]);
        assert_eq!(q.position(EntryId(1)), Some(3));
        assert_eq!(q.head().map(|e| e.id), Some(EntryId(11)));

        q.leave(EntryId(11)).unwrap();
        assert_eq!(q.position(EntryId(1)), Some(2));
        assert_eq!(q.position(EntryId(12)), Some(1));
        assert_eq!(q.position(EntryId(3)), Some(4));
        assert_eq!(q.position(EntryId(11)), None);
        assert_eq!(q.leave(EntryId(11)), None);

        assert_eq!(q.pop_head().map(|e| e.id), Some(EntryId(12)));
        assert_eq!(ids(&q), [1, 2, 3]);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn recovered_seq_lands_at_its_original_place() {
        let now = Instant::now();
        let mut q = Queue::new("support", 100);
        for seq in [10, 20, 30, 40] {
            q.join_with_seq(now, EntryId(seq), NORMAL, Seq(seq), EntryKind::Caller)
                .unwrap();
        }
        // A callback that originally joined between 20 and 30 comes back after a restart.
        let pos = q
            .join_with_seq(now, EntryId(25), NORMAL, Seq(25), EntryKind::Callback)
            .unwrap();
        assert_eq!(pos, 3);
        assert_eq!(ids(&q), [10, 20, 25, 30, 40]);
        assert_eq!(q.get(EntryId(25)).unwrap().kind, EntryKind::Callback);
        // The same place cannot be taken twice, nor the same id.
        assert_eq!(
            q.join_with_seq(now, EntryId(99), NORMAL, Seq(25), EntryKind::Caller),
            Err(JoinError::SeqTaken(Seq(25)))
        );
        assert_eq!(
            q.join_with_seq(now, EntryId(25), VIP, Seq(1), EntryKind::Caller),
            Err(JoinError::DuplicateId(EntryId(25)))
        );
        assert_eq!(q.len(), 5);
    }

    #[test]
    fn set_kind_keeps_the_place() {
        let now = Instant::now();
        let mut q = Queue::new("support", 100);
        for seq in 0..3 {
            q.join_with_seq(now, EntryId(seq), NORMAL, Seq(seq), EntryKind::Caller)
                .unwrap();
        }
        assert_eq!(
            q.set_kind(EntryId(1), EntryKind::Callback),
            Some(EntryKind::Caller)
        );
        assert_eq!(q.position(EntryId(1)), Some(2));
        assert_eq!(q.get(EntryId(1)).unwrap().kind, EntryKind::Callback);
        assert_eq!(q.set_kind(EntryId(7), EntryKind::Callback), None);
    }

    #[test]
    fn random_operations_match_a_naive_model() {
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut q = Queue::new("q", usize::MAX);
        let mut model = Model::default();
        let mut next_seq = 0u64;
        for _ in 0..5_000 {
            let id = EntryId(rng.random_range(0..300));
            match rng.random_range(0..3) {
                0 => {
                    let level = [0, 5, 10][rng.random_range(0..3)];
                    let seq = Seq(next_seq);
                    next_seq += 1;
                    let joined = q.join_with_seq(now, id, level, seq, EntryKind::Caller);
                    if model.position(id).is_some() {
                        assert_eq!(joined, Err(JoinError::DuplicateId(id)));
                    } else {
                        model.join(level, seq, id);
                        assert_eq!(joined, Ok(model.position(id).unwrap()));
                    }
                }
                1 => assert_eq!(q.leave(id).is_some(), model.leave(id)),
                _ => assert_eq!(q.position(id), model.position(id)),
            }
            assert_eq!(q.len(), model.0.len());
            assert_eq!(q.head().map(|e| e.id), model.0.first().map(|e| e.2));
        }
        let want: Vec<u64> = model.0.iter().map(|e| e.2.0).collect();
        assert_eq!(ids(&q), want);
    }

    #[test]
    fn hundred_thousand_entries_stay_cheap() {
        // Debug build, whole test well under a second: only possible without O(n) per op.
        let started = Instant::now();
        let now = started;
        let n = 100_000u64;
        let mut rng = StdRng::seed_from_u64(42);
        let mut q = Queue::new("big", usize::MAX);
        let mut levels = Vec::with_capacity(n as usize);
        for i in 0..n {
            // About one in ten is a VIP, so VIPs join behind many normal callers.
            let level = if rng.random_range(0..10) == 0 {
                VIP
            } else {
                NORMAL
            };
            levels.push(level);
            q.join_with_seq(now, EntryId(i), level, Seq(i), EntryKind::Caller)
                .unwrap();
        }
        // Model: rank by (level, seq) without a per-query sort: count per level prefix.
        let vips = levels.iter().filter(|&&l| l == VIP).count();
        let mut seen = [0usize; 2];
        for (i, &level) in levels.iter().enumerate() {
            let slot = usize::from(level != VIP);
            let want = if level == VIP {
                seen[0] + 1
            } else {
                vips + seen[1] + 1
            };
            seen[slot] += 1;
            assert_eq!(q.position(EntryId(i as u64)), Some(want));
        }
        // Leave half in random order, then compare every remaining position with the model.
        let mut order: Vec<u64> = (0..n).collect();
        order.shuffle(&mut rng);
        let (gone, stay) = order.split_at(n as usize / 2);
        for &id in gone {
            assert!(q.leave(EntryId(id)).is_some());
        }
        let mut stay = stay.to_vec();
        stay.sort_by_key(|&id| (levels[id as usize], id));
        for (rank, &id) in stay.iter().enumerate() {
            assert_eq!(q.position(EntryId(id)), Some(rank + 1));
        }
        assert_eq!(q.len(), stay.len());
        let elapsed = started.elapsed();
        assert!(
            elapsed.as_secs_f64() < 3.0,
            "100k joins/positions/leaves took {elapsed:?}"
        );
    }

    /// Release-mode micro-timing: `cargo test --release -- --ignored --nocapture timing`.
    #[test]
    #[ignore = "timing report, run in release"]
    fn timing_at_hundred_thousand() {
        let now = Instant::now();
        let n = 100_000u64;
        let mut q = Queue::new("big", usize::MAX);
        let t = Instant::now();
        for i in 0..n {
            q.join_with_seq(now, EntryId(i), (i % 3) as Level, Seq(i), EntryKind::Caller)
                .unwrap();
        }
        let join = t.elapsed() / n as u32;
        let t = Instant::now();
        let mut sum = 0;
        for i in 0..n {
            sum += q.position(EntryId(i)).unwrap();
        }
        let position = t.elapsed() / n as u32;
        let mut order: Vec<u64> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(1));
        let t = Instant::now();
        for &i in &order {
            q.leave(EntryId(i)).unwrap();
        }
        let leave = t.elapsed() / n as u32;
        println!("per op at 100k: join {join:?}, position {position:?}, leave {leave:?} ({sum})");
    }
}
