//! An order-statistic treap: an ordered map that also answers "how many keys are smaller
//! than this one?" in O(log n) expected time.
//!
//! This is the data structure under [`Queue`](super::Queue) (docs/behaviour.md §3: position queries,
//! joins and leaves must stay cheap with 100 000 waiting entries, "not a sort per query").
//! Each node stores the size of its subtree, so the rank of a key is the sum of the left
//! subtree sizes passed on the way down from the root.
//!
//! Nodes live in one `Vec` arena addressed by `u32` indices with a free list, so a join or a
//! leave allocates nothing once the arena has grown to the queue's high-water mark, and no
//! `Box`/pointer juggling (or `unsafe`) is needed. Heap priorities come from a splitmix64
//! sequence: the shape is balanced in expectation whatever order the keys arrive in, and a
//! fixed seed keeps every run (and every test) reproducible.

use std::cmp::Ordering;

/// Arena index of a node; [`NIL`] is the empty tree.
type Idx = u32;

/// The empty subtree.
const NIL: Idx = u32::MAX;

/// The links of one tree node: its key plus the treap bookkeeping. Values live in a
/// parallel vector so a removed value can be moved out while the link slot waits for reuse.
#[derive(Debug, Clone)]
struct Node<K> {
    key: K,
    left: Idx,
    right: Idx,
    /// Number of nodes in the subtree rooted here, this one included.
    size: u32,
    /// Max-heap priority: a parent's is never below its children's.
    prio: u64,
}

/// An ordered map with O(log n) expected insert, remove, lookup and rank.
#[derive(Debug, Clone)]
pub struct OrderTree<K, V> {
    nodes: Vec<Node<K>>,
    /// `values[i]` belongs to `nodes[i]`; `None` for a slot on the free list.
    values: Vec<Option<V>>,
    free: Vec<Idx>,
    root: Idx,
    rng: u64,
}

impl<K: Ord + Copy, V> Default for OrderTree<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Copy, V> OrderTree<K, V> {
    /// An empty tree.
    pub fn new() -> Self {
        Self {
            nodes: Vec::new(),
            values: Vec::new(),
            free: Vec::new(),
            root: NIL,
            rng: 0x853c_49e6_748f_ea9b,
        }
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    /// Whether the tree holds no key.
    pub fn is_empty(&self) -> bool {
        self.root == NIL
    }

    /// Inserts `key`; gives the value back as `Err` if the key is already present.
    pub fn insert(&mut self, key: K, value: V) -> Result<(), V> {
        if self.find(&key) != NIL {
            return Err(value);
        }
        let prio = self.next_prio();
        let node = Node {
            key,
            left: NIL,
            right: NIL,
            size: 1,
            prio,
        };
        let idx = match self.free.pop() {
            Some(idx) => {
                self.nodes[idx as usize] = node;
                self.values[idx as usize] = Some(value);
                idx
            }
            None => {
                // The arena index must stay below NIL; 4 billion waiting entries would be a
                // broken invariant long before memory ran out.
                let idx = Idx::try_from(self.nodes.len()).expect("fewer than 2^32 - 1 nodes");
                assert!(idx != NIL, "order tree arena full");
                self.nodes.push(node);
                self.values.push(Some(value));
                idx
            }
        };
        // Walk down while the path's priorities beat the new node's; every subtree passed
        // gains one key. The new node takes over the subtree found there, split around it.
        let (mut parent, mut went_left, mut t) = (NIL, false, self.root);
        while t != NIL && self.nodes[t as usize].prio > prio {
            let node = &mut self.nodes[t as usize];
            node.size += 1;
            parent = t;
            went_left = key < node.key;
            t = if went_left { node.left } else { node.right };
        }
        let (less, more) = self.split(t, &key);
        let size = 1 + self.size(less) + self.size(more);
        let node = &mut self.nodes[idx as usize];
        (node.left, node.right, node.size) = (less, more, size);
        self.attach(parent, went_left, idx);
        Ok(())
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        if self.find(key) == NIL {
            return None;
        }
        // The key is present, so every subtree on the way down loses one key.
        let (mut parent, mut went_left, mut t) = (NIL, false, self.root);
        loop {
            let node = &mut self.nodes[t as usize];
            match key.cmp(&node.key) {
                Ordering::Equal => break,
                order => {
                    node.size -= 1;
                    parent = t;
                    went_left = order == Ordering::Less;
                    t = if went_left { node.left } else { node.right };
                }
            }
        }
        let (left, right) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        let merged = self.merge(left, right);
        self.attach(parent, went_left, merged);
        self.free.push(t);
        self.values[t as usize].take()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        match self.find(key) {
            NIL => None,
            idx => self.values[idx as usize].as_ref(),
        }
    }

    /// Mutable access to the value stored under `key` (the key itself cannot change, so the
    /// order stays valid).
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.find(key) {
            NIL => None,
            idx => self.values[idx as usize].as_mut(),
        }
    }

    /// Number of keys strictly smaller than `key`, if `key` is present.
    pub fn rank(&self, key: &K) -> Option<usize> {
        let mut t = self.root;
        let mut before = 0usize;
        while t != NIL {
            let node = &self.nodes[t as usize];
            match key.cmp(&node.key) {
                Ordering::Less => t = node.left,
                Ordering::Greater => {
                    before += self.size(node.left) as usize + 1;
                    t = node.right;
                }
                Ordering::Equal => return Some(before + self.size(node.left) as usize),
            }
        }
        None
    }

    /// The smallest key and its value.
    pub fn first(&self) -> Option<(&K, &V)> {
        let mut t = self.root;
        if t == NIL {
            return None;
        }
        while self.nodes[t as usize].left != NIL {
            t = self.nodes[t as usize].left;
        }
        Some(self.pair(t))
    }

    /// All pairs in ascending key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        let mut iter = Iter {
            tree: self,
            stack: Vec::new(),
        };
        iter.push_left(self.root);
        iter
    }

    fn pair(&self, idx: Idx) -> (&K, &V) {
        let value = self.values[idx as usize]
            .as_ref()
            .expect("a linked node always has its value");
        (&self.nodes[idx as usize].key, value)
    }

    fn size(&self, idx: Idx) -> u32 {
        if idx == NIL {
            0
        } else {
            self.nodes[idx as usize].size
        }
    }

    fn update(&mut self, idx: Idx) {
        let node = &self.nodes[idx as usize];
        let size = 1 + self.size(node.left) + self.size(node.right);
        self.nodes[idx as usize].size = size;
    }

    /// Points `parent`'s left or right link (or the root, for `NIL`) at `child`.
    fn attach(&mut self, parent: Idx, left: bool, child: Idx) {
        if parent == NIL {
            self.root = child;
        } else if left {
            self.nodes[parent as usize].left = child;
        } else {
            self.nodes[parent as usize].right = child;
        }
    }

    fn find(&self, key: &K) -> Idx {
        let mut t = self.root;
        while t != NIL {
            let node = &self.nodes[t as usize];
            match key.cmp(&node.key) {
                Ordering::Less => t = node.left,
                Ordering::Greater => t = node.right,
                Ordering::Equal => return t,
            }
        }
        NIL
    }

    /// splitmix64: cheap, well-distributed, and deterministic.
    fn next_prio(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Splits `t` into (keys < `key`, keys >= `key`).
    fn split(&mut self, t: Idx, key: &K) -> (Idx, Idx) {
        if t == NIL {
            return (NIL, NIL);
        }
        let node = &self.nodes[t as usize];
        if node.key < *key {
            let (l, r) = self.split(node.right, key);
            self.nodes[t as usize].right = l;
            self.update(t);
            (t, r)
        } else {
            let (l, r) = self.split(node.left, key);
            self.nodes[t as usize].left = r;
            self.update(t);
            (l, t)
        }
    }

    /// Joins two trees where every key of `a` is below every key of `b`.
    fn merge(&mut self, a: Idx, b: Idx) -> Idx {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let right = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = right;
            self.update(a);
            a
        } else {
            let left = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = left;
            self.update(b);
            b
        }
    }
}

/// In-order iterator over an [`OrderTree`].
#[derive(Debug)]
pub struct Iter<'a, K, V> {
    tree: &'a OrderTree<K, V>,
    stack: Vec<Idx>,
}

impl<K: Ord + Copy, V> Iter<'_, K, V> {
    fn push_left(&mut self, mut t: Idx) {
        while t != NIL {
            self.stack.push(t);
            t = self.tree.nodes[t as usize].left;
        }
    }
}

impl<'a, K: Ord + Copy, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let t = self.stack.pop()?;
        let tree: &'a OrderTree<K, V> = self.tree;
        self.push_left(tree.nodes[t as usize].right);
        Some(tree.pair(t))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.stack.len(), Some(self.tree.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    /// Checks sizes and the heap property everywhere; returns the subtree size.
    fn check(tree: &OrderTree<u32, u32>, t: Idx) -> u32 {
        if t == NIL {
            return 0;
        }
        let node = &tree.nodes[t as usize];
        for child in [node.left, node.right] {
            if child != NIL {
                assert!(
                    tree.nodes[child as usize].prio <= node.prio,
                    "heap order broken"
                );
            }
        }
        let size = 1 + check(tree, node.left) + check(tree, node.right);
        assert_eq!(size, node.size, "subtree size out of date");
        size
    }

    #[test]
    fn matches_btreemap_under_random_operations() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut tree = OrderTree::new();
        let mut model = BTreeMap::new();
        for step in 0..20_000u32 {
            let key = rng.random_range(0..2_000u32);
            match rng.random_range(0..4) {
                0 | 1 => {
                    let fresh = !model.contains_key(&key);
                    assert_eq!(tree.insert(key, step).is_ok(), fresh);
                    model.entry(key).or_insert(step);
                }
                2 => assert_eq!(tree.remove(&key), model.remove(&key)),
                _ => {
                    let want = model.contains_key(&key).then(|| model.range(..key).count());
                    assert_eq!(tree.rank(&key), want);
                    assert_eq!(tree.get(&key), model.get(&key));
                }
            }
            assert_eq!(tree.len(), model.len());
            assert_eq!(tree.first(), model.iter().next());
            if step % 1_000 == 0 {
                check(&tree, tree.root);
            }
        }
        check(&tree, tree.root);
        assert!(tree.iter().eq(model.iter()));
    }

    #[test]
    fn slots_are_reused_after_remove() {
        let mut tree = OrderTree::new();
        for k in 0..100u32 {
            tree.insert(k, ()).unwrap();
        }
        for k in 0..100u32 {
            tree.remove(&k).unwrap();
        }
        assert!(tree.is_empty());
        for k in 100..200u32 {
            tree.insert(k, ()).unwrap();
        }
        assert_eq!(
            tree.nodes.len(),
            100,
            "the arena should not grow past its high-water mark"
        );
        assert_eq!(tree.rank(&150), Some(50));
    }

    #[test]
    fn sorted_insertion_stays_shallow() {
        // Queue keys arrive in ascending sequence order: the worst case for a plain BST.
        let mut tree = OrderTree::new();
        for k in 0..100_000u32 {
            tree.insert(k, ()).unwrap();
        }
        fn depth(tree: &OrderTree<u32, ()>, t: Idx) -> usize {
            if t == NIL {
                return 0;
            }
            let node = &tree.nodes[t as usize];
            1 + depth(tree, node.left).max(depth(tree, node.right))
        }
        let d = depth(&tree, tree.root);
        // Expected depth of a random treap is about 3·ln n ≈ 35 here; 100 would mean the
        // priorities are not doing their job.
        assert!(d < 100, "depth {d} is not logarithmic");
    }
}
