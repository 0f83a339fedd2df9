//! Two nodes of a cluster in-process (docs/cluster.md "One queue, every agent"): their
//! changes go through an in-memory log with the store's claim rule, in order, so the tests
//! can hold a node's view back and make claims race.

use std::collections::HashMap;

use super::agents::{AGENT, CONFIG_AGENTS, find, register_alice};
use super::*;
use crate::queue::dispatch::AgentState;
use crate::store::cluster::{Change, Claim, Feed, LogRow};

const UNIX_MS: i64 = 1_800_000_000_000;

/// The store's side: the log and who holds which agent, with the rules of
/// `store::cluster::sql` (a release or state counts only from the holder).
#[derive(Default)]
struct FakeLog {
    rows: Vec<LogRow>,
    holders: HashMap<String, String>,
}

impl FakeLog {
    fn push(&mut self, node: &str, change: Change) {
        let id = self.rows.len() as i64 + 1;
        self.rows.push(LogRow {
            id,
            node: node.into(),
            change,
        });
    }

    fn append(&mut self, node: &str, changes: Vec<Change>) {
        for change in changes {
            match &change {
                Change::Released { user } => {
                    if self.holders.get(user).map(String::as_str) != Some(node) {
                        continue;
                    }
                    self.holders.remove(user);
                }
                Change::Agent { user, .. }
                    if self.holders.get(user).map(String::as_str) != Some(node) =>
                {
                    continue;
                }
                _ => {}
            }
            self.push(node, change);
        }
    }

    fn claim(&mut self, node: &str, user: &str, seq: u64) -> Claim {
        if let Some(holder) = self.holders.get(user) {
            let at = self
                .rows
                .iter()
                .rev()
                .find(|r| matches!(&r.change, Change::Agent { user: u, .. } if u == user))
                .map_or(0, |r| r.id);
            return Claim::Lost {
                holder: holder.clone(),
                at,
            };
        }
        self.holders.insert(user.into(), node.into());
        self.push(
            node,
            Change::Agent {
                user: user.into(),
                state: "ringing".into(),
                seq: Some(seq),
            },
        );
        Claim::Won
    }
}

struct Node {
    name: &'static str,
    h: Harness,
    /// Log rows read so far.
    read: usize,
}

impl Node {
    fn new(name: &'static str, slot: u8) -> Self {
        let mut h = Harness::with_config(CONFIG_AGENTS);
        h.b2bua.set_seq_slot(slot);
        let now = h.now;
        h.b2bua.join_cluster(name, now, UNIX_MS);
        Self { name, h, read: 0 }
    }

    /// Writes this node's changes, then makes its claims; returns the claims' results
    /// without handing them back yet.
    fn write(&mut self, log: &mut FakeLog) -> Vec<(String, Claim)> {
        while let Some(changes) = self.h.b2bua.poll_cluster_changes() {
            log.append(self.name, changes);
        }
        let mut results = Vec::new();
        while let Some((user, seq)) = self.h.b2bua.poll_claim() {
            let claim = log.claim(self.name, &user, seq);
            results.push((user, claim));
        }
        results
    }

    fn answer(&mut self, results: Vec<(String, Claim)>) {
        for (user, claim) in results {
            let now = self.h.now;
            self.h.b2bua.claim_result(now, &user, Ok(claim));
            self.h.drain();
        }
    }

    /// Reads what the other nodes wrote.
    fn read(&mut self, log: &FakeLog) {
        let rows: Vec<LogRow> = log.rows[self.read..]
            .iter()
            .filter(|r| r.node != self.name)
            .cloned()
            .collect();
        self.read = log.rows.len();
        let now = self.h.now;
        self.h.b2bua.apply_cluster(now, UNIX_MS, Feed::Rows(rows));
        self.h.drain();
    }

    fn caller(&mut self, call: &str, number: &str) {
        self.h.deliver(TRUNK, &invite(call, number));
    }

    /// The callers in `support` as this node sees them: (number, node).
    fn line(&self) -> Vec<(String, String)> {
        let snapshot = self.h.b2bua.snapshot(self.h.now);
        snapshot.queues[0]
            .waiting
            .iter()
            .map(|w| (w.caller.clone(), w.node.clone()))
            .collect()
    }

    fn invites_to_alice(&mut self) -> usize {
        self.h
            .take()
            .iter()
            .filter(|(to, text)| text.starts_with("INVITE ") && to.to_string() == AGENT)
            .count()
    }

    fn alice(&self) -> AgentState {
        let agents = self.h.b2bua.agents();
        agents.get(agents.find("alice").unwrap()).unwrap().state()
    }
}

/// Writes and reads until nothing moves: claims are answered at once.
fn settle(nodes: &mut [&mut Node], log: &mut FakeLog) {
    for _ in 0..10 {
        for node in nodes.iter_mut() {
            let results = node.write(log);
            node.answer(results);
        }
        for node in nodes.iter_mut() {
            node.read(log);
        }
    }
}

#[test]
fn positions_count_the_callers_of_every_node_in_arrival_order() {
    let mut log = FakeLog::default();
    let (mut a, mut b) = (Node::new("a", 0), Node::new("b", 1));
    a.caller("a1", "+15550000001");
    b.h.now = a.h.now + Duration::from_millis(5);
    b.caller("b1", "+15550000002");
    a.h.now += Duration::from_millis(10);
    a.caller("a2", "+15550000003");
    settle(&mut [&mut a, &mut b], &mut log);
    let expected = [
        ("+15550000001", "a"),
        ("+15550000002", "b"),
        ("+15550000003", "a"),
    ]
    .map(|(n, node)| (n.to_string(), node.to_string()));
    assert_eq!(a.line(), expected);
    assert_eq!(b.line(), expected);
    assert_eq!(
        (a.h.b2bua.local_waiting(), b.h.b2bua.local_waiting()),
        (2, 1)
    );

    // b1 hangs up: a's second caller moves up to 2 on both nodes.
    let tag = to_tag(
        &b.h.take()
            .iter()
            .find(|(_, t)| t.starts_with("SIP/2.0 200"))
            .unwrap()
            .1,
    );
    b.h.deliver(TRUNK, &in_dialog("BYE", "b1", &tag, 2, "z9hG4bK-bye-b1"));
    settle(&mut [&mut a, &mut b], &mut log);
    assert_eq!(a.line().len(), 2);
    assert_eq!(a.line()[1].0, "+15550000003");
    assert_eq!(b.line(), a.line());
}

#[test]
fn an_agent_registered_on_one_node_takes_the_head_held_by_the_other() {
    let mut log = FakeLog::default();
    let (mut a, mut b) = (Node::new("a", 0), Node::new("b", 1));
    b.caller("b1", "+15550000002");
    settle(&mut [&mut a, &mut b], &mut log);
    register_alice(&mut a.h);
    a.h.take();
    settle(&mut [&mut a, &mut b], &mut log);
    // b claimed alice and rang her at the Contact she registered on a; a rings nobody.
    assert_eq!(b.invites_to_alice(), 1);
    assert_eq!(a.invites_to_alice(), 0);
    assert_eq!(
        (a.alice(), b.alice()),
        (AgentState::Ringing, AgentState::Ringing)
    );
    assert_eq!(log.holders.get("alice").map(String::as_str), Some("b"));
}

#[test]
fn two_nodes_racing_for_one_agent_never_both_ring_it() {
    let mut log = FakeLog::default();
    let (mut a, mut b) = (Node::new("a", 0), Node::new("b", 1));
    register_alice(&mut a.h);
    a.h.take();
    settle(&mut [&mut a, &mut b], &mut log);
    assert_eq!(b.alice(), AgentState::Available, "b knows alice");
    // Each node gets a caller before it has heard of the other's: both claim alice.
    a.caller("a1", "+15550000001");
    b.caller("b1", "+15550000002");
    let (to_a, to_b) = (a.write(&mut log), b.write(&mut log));
    assert_eq!((to_a.len(), to_b.len()), (1, 1), "both claimed");
    a.answer(to_a);
    b.answer(to_b);
    let rings = a.invites_to_alice() + b.invites_to_alice();
    assert_eq!(rings, 1, "only the winner rings alice");
    // The loser holds its caller; once the log is read, both show alice ringing.
    settle(&mut [&mut a, &mut b], &mut log);
    assert_eq!(a.invites_to_alice() + b.invites_to_alice(), 0);
    assert_eq!(
        (a.alice(), b.alice()),
        (AgentState::Ringing, AgentState::Ringing)
    );
    assert_eq!(a.line().len(), 2);
}

#[test]
fn a_node_that_restarts_or_dies_leaves_no_caller_and_no_held_agent_behind() {
    let mut log = FakeLog::default();
    let (mut a, mut b) = (Node::new("a", 0), Node::new("b", 1));
    a.caller("a1", "+15550000001");
    b.caller("b1", "+15550000002");
    settle(&mut [&mut a, &mut b], &mut log);
    b.h.take();
    register_alice(&mut b.h);
    b.h.take();
    settle(&mut [&mut a, &mut b], &mut log);
    // a's caller is the head, so a holds alice (ringing).
    assert_eq!(log.holders.get("alice").map(String::as_str), Some("a"));
    assert_eq!(b.alice(), AgentState::Ringing);
    // a dies; the heartbeat of the store writes its reset.
    log.holders.retain(|_, node| node != "a");
    log.push("a", Change::Reset);
    log.push(
        "a",
        Change::Released {
            user: "alice".into(),
        },
    );
    b.read(&log);
    assert_eq!(b.line().len(), 1, "a's caller left b's replica");
    // alice is free again and takes b's caller.
    let results = b.write(&mut log);
    b.answer(results);
    assert_eq!(b.invites_to_alice(), 1);
}

#[test]
fn a_free_agent_left_to_a_silent_node_takes_a_local_caller_after_the_limit() {
    let mut log = FakeLog::default();
    let (mut a, mut b) = (Node::new("a", 0), Node::new("b", 1));
    a.caller("a1", "+15550000001");
    b.h.now = a.h.now + Duration::from_millis(5);
    b.caller("b1", "+15550000002");
    // a's caller reaches b's replica; a never hears of alice (it is cut off).
    let _ = a.write(&mut log);
    b.read(&log);
    b.h.take();
    register_alice(&mut b.h);
    let _ = b.write(&mut log);
    assert_eq!(
        b.invites_to_alice(),
        0,
        "alice is left to a's caller, ahead"
    );
    let start = b.h.now;
    b.h.run_until(start + crate::b2bua::cluster::ASIDE_LIMIT - Duration::from_millis(1));
    assert!(b.write(&mut log).is_empty());
    b.h.run_until(start + crate::b2bua::cluster::ASIDE_LIMIT);
    let results = b.write(&mut log);
    assert_eq!(results.len(), 1, "b claims alice for its own caller");
    b.answer(results);
    assert_eq!(b.invites_to_alice(), 1);
    let _ = find(&b.h.sent, "INVITE");
}

#[test]
fn a_snapshot_replaces_what_other_nodes_said_and_skips_the_nodes_own_rows() {
    let mut b = Node::new("b", 1);
    let joined = |seq: u64, caller: &str| Change::Joined {
        queue: "support".into(),
        seq,
        level: 1,
        callback: false,
        joined_ms: UNIX_MS,
        caller: caller.into(),
    };
    let registered = Change::Registered {
        user: "alice".into(),
        contact: format!("sip:alice@{AGENT}"),
        source: AGENT.into(),
        path: Vec::new(),
        expires_ms: UNIX_MS + 60_000,
    };
    let now = b.h.now;
    b.h.b2bua.apply_cluster(
        now,
        UNIX_MS,
        Feed::Snapshot {
            head: 7,
            rows: vec![
                ("a".into(), joined(256, "+15550000001")),
                // Left over from before b restarted: not b's any more.
                ("b".into(), joined(257, "+15550000002")),
                ("b".into(), registered.clone()),
            ],
        },
    );
    assert_eq!(b.line(), [("+15550000001".into(), "a".into())]);
    assert_eq!(b.alice(), AgentState::Offline);
    // A later snapshot (the reader reconnected) without a's caller, with alice on a.
    b.h.b2bua.apply_cluster(
        now,
        UNIX_MS,
        Feed::Snapshot {
            head: 9,
            rows: vec![("a".into(), registered.clone())],
        },
    );
    assert!(b.line().is_empty());
    assert_eq!(b.alice(), AgentState::Available);
    // The same state read again (the reader reconnected) changes nothing: alice keeps her
    // place in the idle line.
    let idle = |b: &Node| {
        let agents = b.h.b2bua.agents();
        agents
            .get(agents.find("alice").unwrap())
            .unwrap()
            .idle_since()
    };
    let before = idle(&b);
    let later = now + Duration::from_secs(5);
    b.h.b2bua.apply_cluster(
        later,
        UNIX_MS + 5_000,
        Feed::Snapshot {
            head: 11,
            rows: vec![("a".into(), registered.clone())],
        },
    );
    assert_eq!(idle(&b), before);
    // alice's binding on a lapses: offline here too.
    b.h.run_until(now + Duration::from_secs(61));
    assert_eq!(b.alice(), AgentState::Offline);
}

#[test]
fn a_caller_who_hangs_up_while_the_claim_is_out_leaves_the_agent_free_and_released() {
    let mut log = FakeLog::default();
    let mut a = Node::new("a", 0);
    a.caller("a1", "+15550000001");
    let tag = to_tag(
        &a.h.take()
            .iter()
            .find(|(_, t)| t.starts_with("SIP/2.0 200"))
            .unwrap()
            .1,
    );
    register_alice(&mut a.h);
    a.h.take();
    // a claims alice for a1 ...
    let claims = a.write(&mut log);
    assert_eq!(claims.len(), 1);
    assert_eq!(
        a.alice(),
        AgentState::Ringing,
        "reserved while the claim is out"
    );
    // ... a1 hangs up before the answer comes ...
    a.h.deliver(TRUNK, &in_dialog("BYE", "a1", &tag, 2, "z9hG4bK-bye-a1"));
    // ... the claim was won: alice is not rung, and the claim is given back.
    a.answer(claims);
    assert_eq!(a.invites_to_alice(), 0);
    assert_eq!(a.alice(), AgentState::Available);
    let _ = a.write(&mut log);
    assert_eq!(log.holders.get("alice"), None);
    // The same with a lost claim: alice is not left ringing for a caller who is gone.
    a.caller("a2", "+15550000002");
    let tag = to_tag(
        &a.h.take()
            .iter()
            .find(|(_, t)| t.starts_with("SIP/2.0 200"))
            .unwrap()
            .1,
    );
    let claims = a.write(&mut log);
    assert_eq!(claims.len(), 1);
    a.h.deliver(TRUNK, &in_dialog("BYE", "a2", &tag, 2, "z9hG4bK-bye-a2"));
    a.answer(vec![(
        "alice".into(),
        Claim::Lost {
            holder: "b".into(),
            at: 99,
        },
    )]);
    assert_eq!(
        a.alice(),
        AgentState::Ringing,
        "shown ringing on b until the log says more"
    );
    a.h.b2bua.apply_cluster(
        a.h.now,
        UNIX_MS,
        Feed::Rows(vec![LogRow {
            id: 100,
            node: "b".into(),
            change: Change::Released {
                user: "alice".into(),
            },
        }]),
    );
    assert_eq!(a.alice(), AgentState::Available);
}
