//! This node's side of one queue and one set of agents across a cluster (docs/cluster.md
//! "One queue, every agent"; the log itself: `store::cluster`).
//!
//! - **Replica.** Callers held by other nodes join this node's queues as *remote* entries
//!   (ids with [`REMOTE`] set, named by their cluster-unique sequence number), so every
//!   position and estimate counts the whole cluster. What happens to this node's own
//!   entries, registrations and agents goes out as [`Change`]s.
//! - **Dispatch.** Every node runs the same dispatch over the same replica. A match of a
//!   free agent with a remote entry is that entry's node's to make: this node sets the pair
//!   aside for the rest of its pass, as a single dispatcher would, and goes on. A match with
//!   one of its own entries is claimed in the store first (the agent is reserved here
//!   meanwhile); only a won claim rings the agent. A lost claim marks the agent as held
//!   elsewhere until the log says more.
//! - **Release.** The node that holds an agent releases it once the agent is free again
//!   (available, paused or offline): any node may then claim it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::{B2bua, CallKey};
use crate::queue::dispatch::{AgentEvent, AgentId, AgentState, Assignment};
use crate::queue::{EntryId, EntryKind, LeaveReason, QueueEvent, Seq};
use crate::sip::registrar::Binding;
use crate::store::StoreError;
use crate::store::cluster::{Change, Claim, Feed, LogRow};

/// Set in the id of every remote entry; the rest of the id is its sequence number.
pub const REMOTE: u64 = 1 << 62;

/// How long an agent whose claim could not be made (store unreachable) is left aside.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// How long a free agent is left to another node's caller before this node offers it its
/// own next caller: the other node should have claimed it within milliseconds, unless its
/// caller cannot be offered yet (a callback waiting out a retry) or the node is dead.
pub(super) const ASIDE_LIMIT: Duration = Duration::from_secs(2);

/// Whether `entry` is held by another node.
pub fn is_remote(entry: EntryId) -> bool {
    entry.0 & REMOTE != 0
}

fn remote_entry(seq: u64) -> EntryId {
    EntryId(REMOTE | seq)
}

/// A caller another node holds.
#[derive(Debug, Clone)]
pub struct RemoteEntry {
    /// The node.
    pub node: String,
    /// The caller's number.
    pub caller: String,
}

/// What a snapshot still says: its waiting entries, bound agents and held agents (with
/// their holder).
#[derive(Debug, Default)]
struct Kept {
    seqs: HashSet<u64>,
    bound: HashSet<String>,
    held: HashSet<(String, String)>,
}

/// The replica's bookkeeping and this node's outbox.
#[derive(Debug)]
pub(super) struct Cluster {
    node: String,
    /// The wall clock at one instant: turns the stream's Unix ms into instants.
    anchor: (Instant, i64),
    outbox: Vec<Change>,
    claims: VecDeque<(String, u64)>,
    /// Claims sent, by agent: the match they are for.
    pending: HashMap<AgentId, Assignment>,
    /// Agents whose claim failed, reserved until then.
    retry: BTreeSet<(Instant, AgentId)>,
    /// Agents this node holds in the store.
    held: HashSet<AgentId>,
    /// Remote entries by sequence number.
    remote: HashMap<u64, RemoteEntry>,
    /// This node's entries' sequence numbers.
    local_seqs: HashMap<EntryId, u64>,
    /// The same, by sequence number.
    local_entries: HashMap<u64, EntryId>,
    /// Bindings made on other nodes, by user.
    bindings: HashMap<String, (String, Binding)>,
    /// Agents other nodes hold: the node and the log id that said so.
    holders: HashMap<AgentId, (String, i64)>,
    /// Last log id applied about each agent.
    seen: HashMap<AgentId, i64>,
    /// Free agents left to other nodes' callers: since when, and whether that took too long.
    aside: HashMap<AgentId, (Instant, bool)>,
}

impl Cluster {
    fn instant_of(&self, unix_ms: i64) -> Instant {
        let (at, ms) = self.anchor;
        let delta = Duration::from_millis(unix_ms.abs_diff(ms));
        if unix_ms >= ms {
            at.checked_add(delta).unwrap_or(at)
        } else {
            at.checked_sub(delta).unwrap_or(at)
        }
    }

    fn unix_of(&self, instant: Instant) -> i64 {
        let (at, ms) = self.anchor;
        if instant >= at {
            ms + i64::try_from((instant - at).as_millis()).unwrap_or(0)
        } else {
            ms - i64::try_from((at - instant).as_millis()).unwrap_or(0)
        }
    }

    /// The binding another node made for `user`, if it has not lapsed.
    pub(super) fn binding(&self, user: &str) -> Option<&Binding> {
        self.bindings.get(user).map(|(_, binding)| binding)
    }

    /// The remote entry with this id.
    pub(super) fn remote(&self, entry: EntryId) -> Option<&RemoteEntry> {
        is_remote(entry)
            .then(|| self.remote.get(&(entry.0 & !REMOTE)))
            .flatten()
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        let lapse = self.bindings.values().map(|(_, b)| b.expires_at).min();
        let aside = self
            .aside
            .values()
            .filter(|(_, overdue)| !overdue)
            .map(|(since, _)| *since + ASIDE_LIMIT)
            .min();
        [self.retry.first().map(|&(at, _)| at), lapse, aside]
            .into_iter()
            .flatten()
            .min()
    }
}

impl B2bua {
    /// Makes this controller node `node` of a cluster: from now on it tells the others what
    /// changes here ([`B2bua::poll_cluster_changes`]) and claims agents before ringing them
    /// ([`B2bua::poll_claim`]). `unix_ms` is the wall clock at `now`.
    pub fn join_cluster(&mut self, node: &str, now: Instant, unix_ms: i64) {
        self.cluster = Some(Cluster {
            node: node.to_owned(),
            anchor: (now, unix_ms),
            outbox: Vec::new(),
            claims: VecDeque::new(),
            pending: HashMap::new(),
            retry: BTreeSet::new(),
            held: HashSet::new(),
            remote: HashMap::new(),
            local_seqs: HashMap::new(),
            local_entries: HashMap::new(),
            bindings: HashMap::new(),
            holders: HashMap::new(),
            seen: HashMap::new(),
            aside: HashMap::new(),
        });
    }

    /// This node's changes for the cluster's log, oldest first.
    pub fn poll_cluster_changes(&mut self) -> Option<Vec<Change>> {
        let cluster = self.cluster.as_mut()?;
        if cluster.outbox.is_empty() {
            return None;
        }
        let mut changes = std::mem::take(&mut cluster.outbox);
        // A caller joins before its call is filed: its number is filled in now.
        for change in &mut changes {
            if let Change::Joined { seq, caller, .. } = change
                && caller.is_empty()
                && let Some(&entry) = cluster.local_entries.get(seq)
                && let Some(call) = self.calls.get(&CallKey(entry.0))
            {
                caller.clone_from(&call.caller);
            }
        }
        Some(changes)
    }

    /// The next claim to make: an agent's user and the sequence number of the entry.
    pub fn poll_claim(&mut self) -> Option<(String, u64)> {
        self.cluster.as_mut()?.claims.pop_front()
    }

    /// The binding an agent's phone has here, or else on another node of the cluster.
    pub(super) fn agent_binding(&self, user: &str) -> Option<&Binding> {
        self.registration
            .registrar
            .binding(user)
            .or_else(|| self.cluster.as_ref()?.binding(user))
    }

    /// This node's name when it is one of a cluster's.
    pub fn cluster_node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.node.as_str())
    }

    /// Callers waiting on this node (the queues also hold the other nodes' callers).
    pub fn local_waiting(&self) -> usize {
        self.queues.waiting() - self.cluster.as_ref().map_or(0, |c| c.remote.len())
    }

    /// What other nodes changed, from the cluster's log; `unix_ms` is the wall clock now.
    pub fn apply_cluster(&mut self, now: Instant, unix_ms: i64, feed: Feed) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        cluster.anchor = (now, unix_ms);
        let me = cluster.node.clone();
        match feed {
            Feed::Snapshot { head, rows } => {
                // What the snapshot still says is applied again over what is there; only
                // the rest is forgotten (a wrap-up here must not end because a reader
                // reconnected).
                let mut kept = Kept::default();
                for (node, change) in rows.iter().filter(|(node, _)| *node != me) {
                    match change {
                        Change::Joined { seq, .. } => {
                            kept.seqs.insert(*seq);
                        }
                        Change::Registered { user, .. } => {
                            kept.bound.insert(user.clone());
                        }
                        Change::Agent { user, .. } => {
                            kept.held.insert((user.clone(), node.clone()));
                        }
                        _ => {}
                    }
                }
                self.forget_others(now, &kept);
                let paused: HashSet<String> = rows
                    .iter()
                    .filter_map(|(_, c)| match c {
                        Change::Paused { user, paused: true } => Some(user.clone()),
                        _ => None,
                    })
                    .collect();
                let flips: Vec<(AgentId, bool)> = self
                    .agents
                    .iter()
                    .filter(|(_, a)| a.is_paused() != paused.contains(a.user()))
                    .map(|(id, a)| (id, !a.is_paused()))
                    .collect();
                for (id, pause) in flips {
                    self.set_agent_paused(now, id, pause);
                }
                // This node's own rows describe what it already knows (or, after a
                // restart, what died with the old process).
                for (node, change) in rows.into_iter().filter(|(node, _)| *node != me) {
                    self.apply_change(now, head, &node, change);
                }
            }
            Feed::Rows(rows) => {
                for LogRow { id, node, change } in rows {
                    self.apply_change(now, id, &node, change);
                }
            }
            Feed::Rejoined => self.tell_everything(),
        }
        self.drain_queue_events(now);
        self.process_events(now);
    }

    /// How the claim of `user` went; a won claim rings the agent now.
    pub fn claim_result(&mut self, now: Instant, user: &str, result: Result<Claim, StoreError>) {
        let Some(agent) = self.agents.find(user) else {
            return;
        };
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let Some(assignment) = cluster.pending.remove(&agent) else {
            return;
        };
        // Reserved here for this entry still (a ring timeout or hang-up may have ended it).
        let reserved = self
            .agents
            .get(agent)
            .and_then(|a| a.ringing_entry())
            .is_some_and(|e| e == assignment.entry);
        let still_wanted = reserved && self.queues.get(assignment.entry).is_some();
        let local = self.registration.registrar.binding(user).is_some();
        match result {
            Ok(Claim::Won) => {
                if reserved {
                    let _ = self.agents.ring_cancelled(now, agent);
                }
                if still_wanted {
                    self.offer(now, assignment);
                }
                // What the ring changed here is the claim's own `ringing`: not told again.
                self.drain_agent_events();
                let ringing = self
                    .agents
                    .get(agent)
                    .and_then(|a| a.ringing_entry())
                    .is_some();
                if let Some(cluster) = self.cluster.as_mut() {
                    if ringing {
                        cluster.held.insert(agent);
                    } else {
                        cluster.outbox.push(Change::Released { user: user.into() });
                    }
                }
            }
            Ok(Claim::Lost { holder, at }) => {
                if reserved {
                    let _ = self.agents.ring_cancelled(now, agent);
                }
                tracing::debug!(agent = user, %holder, "agent claimed by another node first");
                if cluster.seen.get(&agent).is_none_or(|&seen| seen < at) {
                    cluster.holders.insert(agent, (holder, at));
                    let _ =
                        self.agents
                            .set_elsewhere(now, agent, Some((AgentState::Ringing, None)));
                }
            }
            // The store cannot be reached: an agent registered here is rung without a
            // claim (no other node can claim it either); others are left aside a second.
            Err(error) if local && still_wanted => {
                tracing::warn!(agent = user, %error, "agent claim not made (store unreachable); ringing it from this node");
                let _ = self.agents.ring_cancelled(now, agent);
                self.offer(now, assignment);
            }
            Err(error) => {
                tracing::warn!(agent = user, %error, "agent claim not made; trying again in a second");
                if still_wanted {
                    cluster.retry.insert((now + CLAIM_RETRY, agent));
                } else if reserved {
                    let _ = self.agents.ring_cancelled(now, agent);
                }
            }
        }
        self.process_events(now);
    }

    /// Dispatch's step for a match in a cluster: `true` when it is done with (set aside
    /// for another node, or claimed first), `false` to ring the agent now.
    pub(super) fn cluster_dispatch(
        &mut self,
        now: Instant,
        assignment: Assignment,
        aside: &mut (HashSet<AgentId>, HashSet<EntryId>),
    ) -> bool {
        let Some(cluster) = self.cluster.as_mut() else {
            return false;
        };
        if is_remote(assignment.entry) {
            let (_, overdue) = *cluster
                .aside
                .entry(assignment.agent)
                .or_insert((now, false));
            if !overdue {
                aside.0.insert(assignment.agent);
            }
            // An agent left waiting too long takes this node's next caller instead.
            aside.1.insert(assignment.entry);
            return true;
        }
        cluster.aside.remove(&assignment.agent);
        if cluster.held.contains(&assignment.agent) {
            return false;
        }
        let (Some(agent), Some((_, entry))) = (
            self.agents.get(assignment.agent),
            self.queues.get(assignment.entry),
        ) else {
            return false;
        };
        let (user, seq) = (agent.user().to_owned(), entry.seq.0);
        // Reserved here while the claim is out: dispatch skips the agent and the entry.
        if self
            .agents
            .ringing(now, assignment.agent, assignment.entry)
            .is_err()
        {
            return true;
        }
        cluster.pending.insert(assignment.agent, assignment);
        cluster.claims.push_back((user, seq));
        true
    }

    /// Ends waits for claims that could not be made, and bindings of other nodes that lapsed.
    pub(super) fn cluster_timeouts(&mut self, now: Instant) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        for (since, overdue) in cluster.aside.values_mut() {
            if *since + ASIDE_LIMIT <= now {
                *overdue = true;
            }
        }
        while let Some(&(at, agent)) = cluster.retry.first() {
            if at > now {
                break;
            }
            cluster.retry.remove(&(at, agent));
            let _ = self.agents.ring_cancelled(now, agent);
        }
        let lapsed: Vec<String> = cluster
            .bindings
            .iter()
            .filter(|(_, (_, b))| b.expires_at <= now)
            .map(|(user, _)| user.clone())
            .collect();
        for user in &lapsed {
            cluster.bindings.remove(user);
        }
        for user in lapsed {
            self.agent_offline_unless_bound(now, &user);
        }
    }

    /// A queue event of this node, told to the others.
    pub(super) fn cluster_queue_event(&mut self, event: &QueueEvent) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        match *event {
            QueueEvent::Joined {
                queue,
                id,
                seq,
                level,
                ..
            } if !is_remote(id) => {
                let Some((_, entry)) = self.queues.get(id) else {
                    return;
                };
                cluster.local_seqs.insert(id, seq.0);
                cluster.local_entries.insert(seq.0, id);
                let caller = self
                    .calls
                    .get(&CallKey(id.0))
                    .map(|c| c.caller.clone())
                    .unwrap_or_default();
                let joined_ms = cluster.unix_of(entry.joined_at);
                cluster.outbox.push(Change::Joined {
                    queue: self.config.queues[queue.0].name.clone(),
                    seq: seq.0,
                    level,
                    callback: entry.kind == EntryKind::Callback,
                    joined_ms,
                    caller,
                });
            }
            QueueEvent::Left { id, .. } if !is_remote(id) => {
                if let Some(seq) = cluster.local_seqs.remove(&id) {
                    cluster.local_entries.remove(&seq);
                    cluster.outbox.push(Change::Left { seq });
                }
            }
            _ => {}
        }
    }

    /// A binding made or refreshed here, told to the others.
    pub(super) fn cluster_registered(&mut self, binding: &Binding) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let expires_ms = cluster.unix_of(binding.expires_at);
        cluster.outbox.push(Change::Registered {
            user: binding.user.clone(),
            contact: binding.contact.clone(),
            source: binding.source.to_string(),
            path: binding.path.clone(),
            expires_ms,
        });
    }

    /// A binding here ended; returns whether the agent is still bound on another node.
    pub(super) fn cluster_unregistered(&mut self, user: &str) -> bool {
        let Some(cluster) = self.cluster.as_mut() else {
            return false;
        };
        cluster
            .outbox
            .push(Change::Unregistered { user: user.into() });
        cluster.bindings.contains_key(user)
    }

    /// Agent changes of agents this node holds, and pauses, told to the others; a held agent
    /// that is free again is released.
    pub(super) fn cluster_agent_event(&mut self, event: &AgentEvent) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let (agent, to) = match *event {
            AgentEvent::StateChanged { agent, to, .. } => {
                if to != AgentState::Available {
                    cluster.aside.remove(&agent);
                }
                (agent, to)
            }
            AgentEvent::AutoPaused { agent, .. } => {
                if let Some(a) = self.agents.get(agent) {
                    cluster.outbox.push(Change::Paused {
                        user: a.user().into(),
                        paused: true,
                    });
                }
                return;
            }
        };
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        if !cluster.held.contains(&agent) {
            return;
        }
        let user = a.user().to_owned();
        let change = match to {
            AgentState::Ringing => Change::Agent {
                user,
                state: to.as_str().into(),
                seq: a
                    .ringing_entry()
                    .and_then(|e| cluster.local_seqs.get(&e).copied()),
            },
            AgentState::Busy | AgentState::Wrapup => Change::Agent {
                user,
                state: to.as_str().into(),
                seq: None,
            },
            AgentState::Available | AgentState::Paused | AgentState::Offline => {
                cluster.held.remove(&agent);
                Change::Released { user }
            }
        };
        cluster.outbox.push(change);
    }

    /// An admin pause or unpause, told to the others.
    pub(super) fn cluster_paused(&mut self, user: &str, paused: bool) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.outbox.push(Change::Paused {
                user: user.into(),
                paused,
            });
        }
    }

    /// A remote entry with sequence number `seq` leaves the replica (this node has just
    /// taken over its callback from a dead node).
    pub(super) fn cluster_take_over(&mut self, seq: Seq) {
        if let Some(cluster) = self.cluster.as_mut()
            && cluster.remote.remove(&seq.0).is_some()
        {
            self.queues.leave(remote_entry(seq.0), LeaveReason::Removed);
        }
    }

    fn set_agent_paused(&mut self, now: Instant, agent: AgentId, paused: bool) -> Option<()> {
        if paused {
            self.agents.pause(now, agent).ok()
        } else {
            self.agents.unpause(now, agent).ok()
        }
    }

    fn agent_offline_unless_bound(&mut self, now: Instant, user: &str) {
        let bound_elsewhere = self
            .cluster
            .as_ref()
            .is_some_and(|c| c.bindings.contains_key(user));
        if self.registration.registrar.binding(user).is_none()
            && !bound_elsewhere
            && let Some(agent) = self.agents.find(user)
        {
            let _ = self.agents.unregistered(now, agent);
        }
    }

    /// Forgets what other nodes said (before a snapshot replaces it).
    fn forget_others(&mut self, now: Instant, kept: &Kept) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let seqs: Vec<u64> = cluster
            .remote
            .keys()
            .copied()
            .filter(|seq| !kept.seqs.contains(seq))
            .collect();
        for seq in &seqs {
            cluster.remote.remove(seq);
        }
        let holders: Vec<AgentId> = cluster
            .holders
            .iter()
            .filter(|&(&agent, (node, _))| {
                let user = self.agents.get(agent).map(|a| a.user().to_owned());
                !user.is_some_and(|u| kept.held.contains(&(u, node.clone())))
            })
            .map(|(&agent, _)| agent)
            .collect();
        for agent in &holders {
            cluster.holders.remove(agent);
        }
        let users: Vec<String> = cluster
            .bindings
            .keys()
            .filter(|user| !kept.bound.contains(*user))
            .cloned()
            .collect();
        for user in &users {
            cluster.bindings.remove(user);
        }
        for seq in seqs {
            self.queues.leave(remote_entry(seq), LeaveReason::Removed);
        }
        for agent in holders {
            let _ = self.agents.set_elsewhere(now, agent, None);
        }
        for user in users {
            self.agent_offline_unless_bound(now, &user);
        }
    }

    /// After this node was taken for dead: its waiting entries and bindings, again.
    fn tell_everything(&mut self) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let mut joins: Vec<QueueEvent> = Vec::new();
        for (queue, q) in self.queues.iter() {
            for entry in q.iter().filter(|e| !is_remote(e.id)) {
                joins.push(QueueEvent::Joined {
                    queue,
                    id: entry.id,
                    position: 0,
                    seq: entry.seq,
                    level: entry.level,
                });
            }
        }
        cluster.held.clear();
        let bindings: Vec<Binding> = self.registration.registrar.bindings().cloned().collect();
        for event in &joins {
            self.cluster_queue_event(event);
        }
        for binding in &bindings {
            self.cluster_registered(binding);
        }
    }

    fn apply_change(&mut self, now: Instant, id: i64, node: &str, change: Change) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        match change {
            Change::Joined {
                queue,
                seq,
                level,
                callback,
                joined_ms,
                caller,
            } => {
                let Some(index) = self.config.queue_index(&queue) else {
                    return;
                };
                let entry = remote_entry(seq);
                if cluster.local_entries.contains_key(&seq) {
                    return;
                }
                if cluster.remote.remove(&seq).is_some() {
                    self.queues.leave(entry, LeaveReason::Removed);
                }
                let joined = cluster.instant_of(joined_ms).min(now);
                let kind = if callback {
                    EntryKind::Callback
                } else {
                    EntryKind::Caller
                };
                cluster.remote.insert(
                    seq,
                    RemoteEntry {
                        node: node.into(),
                        caller,
                    },
                );
                if let Err(error) = self.queues.join_with_seq(
                    joined,
                    crate::queue::QueueId(index),
                    entry,
                    level,
                    Seq(seq),
                    kind,
                ) {
                    tracing::warn!(%error, seq, node, "remote caller not added to the replica");
                    if let Some(c) = self.cluster.as_mut() {
                        c.remote.remove(&seq);
                    }
                }
            }
            Change::Left { seq } => {
                if cluster.remote.get(&seq).is_some_and(|r| r.node == node) {
                    cluster.remote.remove(&seq);
                    self.queues.leave(remote_entry(seq), LeaveReason::Removed);
                }
            }
            Change::Registered {
                user,
                contact,
                source,
                path,
                expires_ms,
            } => {
                let (Some(agent), Ok(source)) = (self.agents.find(&user), source.parse()) else {
                    return;
                };
                let expires_at = cluster.instant_of(expires_ms);
                if expires_at <= now {
                    return;
                }
                let binding = Binding {
                    user: user.clone(),
                    contact,
                    source,
                    expires_at,
                    path,
                };
                cluster.bindings.insert(user, (node.into(), binding));
                let _ = self.agents.registered(now, agent);
            }
            Change::Unregistered { user } => {
                if cluster.bindings.get(&user).is_some_and(|(n, _)| n == node) {
                    cluster.bindings.remove(&user);
                    self.agent_offline_unless_bound(now, &user);
                }
            }
            Change::Paused { user, paused } => {
                if let Some(agent) = self.agents.find(&user) {
                    self.set_agent_paused(now, agent, paused);
                }
            }
            Change::Agent { user, state, seq } => {
                let Some(agent) = self.agents.find(&user) else {
                    return;
                };
                let state = match state.as_str() {
                    "ringing" => AgentState::Ringing,
                    "busy" => AgentState::Busy,
                    _ => AgentState::Wrapup,
                };
                cluster.holders.insert(agent, (node.into(), id));
                cluster.seen.insert(agent, id);
                let _ = self
                    .agents
                    .set_elsewhere(now, agent, Some((state, seq.map(remote_entry))));
            }
            Change::Released { user } => {
                let Some(agent) = self.agents.find(&user) else {
                    return;
                };
                cluster.seen.insert(agent, id);
                if cluster.holders.get(&agent).is_some_and(|(n, _)| n == node) {
                    cluster.holders.remove(&agent);
                    let _ = self.agents.set_elsewhere(now, agent, None);
                }
            }
            Change::Reset => {
                let gone: Vec<u64> = cluster
                    .remote
                    .iter()
                    .filter(|(_, r)| r.node == node)
                    .map(|(&seq, _)| seq)
                    .collect();
                let freed: Vec<AgentId> = cluster
                    .holders
                    .iter()
                    .filter(|(_, (n, _))| n == node)
                    .map(|(&a, _)| a)
                    .collect();
                for seq in gone {
                    cluster.remote.remove(&seq);
                    self.queues.leave(remote_entry(seq), LeaveReason::Removed);
                }
                for agent in freed {
                    cluster.holders.remove(&agent);
                    let _ = self.agents.set_elsewhere(now, agent, None);
                }
            }
        }
    }
}
