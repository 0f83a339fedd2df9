//! One queue and one set of agents across the nodes of a cluster (docs/cluster.md "One
//! queue, every agent").
//!
//! Every node tells the others what changes on it — a caller joined or left a queue, an
//! agent registered, paused, was claimed, rings, talks, rests or was released — as
//! [`Change`]s appended to one log in PostgreSQL, `cluster_log`, whose ids are contiguous
//! and commit in order (every writer locks the one row of `cluster_head` first). Every node
//! reads the log by id, woken by `LISTEN/NOTIFY`, and applies what the others wrote to its
//! own replica in the pure queue engine, so a position is read locally in O(log n) and no
//! announcement waits for the database. Beside the log the writers keep its sum —
//! `cluster_waiting` (who waits where) and `cluster_agents` (registrations, pauses, which
//! node holds which agent) — which a node reads in one snapshot at start-up, or when it fell
//! behind a log that was pruned, before it reads on from the snapshot's id.
//!
//! A node rings an agent only after **claiming** it: one transaction that sets the agent's
//! `holder` where it is empty. Only one node can win; the others learn from the log that
//! the agent rings elsewhere. The holder releases it when the agent is free again.
//!
//! [`ClusterLink`] runs this on two threads of its own, each with its own connection: a
//! writer (appends, claims, the heartbeat that cleans up after dead nodes) and a reader
//! (snapshot, then the log). [`sql`] has the statements.

mod link;
pub mod sql;

use serde::{Deserialize, Serialize};

pub use link::ClusterLink;

/// How long a log row is kept: a reader further behind than this reads a new snapshot.
pub const LOG_KEPT: std::time::Duration = std::time::Duration::from_secs(600);

/// One thing that changed on a node, as the others apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// An entry joined a queue (or moved to another: the same `seq`).
    Joined {
        /// The queue's name.
        queue: String,
        /// Its sequence number: unique in the cluster, so it names the entry.
        seq: u64,
        /// Its priority level.
        level: u32,
        /// A callback keeping its place (not a caller on the line).
        callback: bool,
        /// When it joined, Unix ms.
        joined_ms: i64,
        /// The caller's number, for the admin API of every node.
        caller: String,
    },
    /// The entry left its queue.
    Left {
        /// Its sequence number.
        seq: u64,
    },
    /// An agent's phone registered (or refreshed) on the writing node.
    Registered {
        /// The agent.
        user: String,
        /// Its Contact URI.
        contact: String,
        /// The address its REGISTER came from.
        source: String,
        /// Its `Path` (RFC 3327): the route to reach it.
        path: Vec<String>,
        /// When the binding lapses, Unix ms.
        expires_ms: i64,
    },
    /// The agent's binding on the writing node ended.
    Unregistered {
        /// The agent.
        user: String,
    },
    /// The agent was paused or unpaused (admin API or too many missed calls).
    Paused {
        /// The agent.
        user: String,
        /// Paused now.
        paused: bool,
    },
    /// The writing node holds the agent, which is in `state` there: `ringing` (for the
    /// entry `seq`), `busy` or `wrapup`. A claim is logged as `ringing`.
    Agent {
        /// The agent.
        user: String,
        /// `ringing`, `busy` or `wrapup`.
        state: String,
        /// The entry it rings for.
        seq: Option<u64>,
    },
    /// The writing node released the agent: it is free for any node again.
    Released {
        /// The agent.
        user: String,
    },
    /// The writing node (re)started or was found dead: forget the entries it had.
    Reset,
}

/// One row of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Its place in the log; contiguous.
    pub id: i64,
    /// The node that wrote it (for a dead node's `Reset`, the dead node).
    pub node: String,
    /// What changed.
    pub change: Change,
}

/// What the reader hands the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// The cluster's state as of log id `head`, as changes by their nodes: forget what
    /// other nodes said before and apply these. Rows after `head` follow.
    Snapshot {
        /// The last log id the snapshot includes.
        head: i64,
        /// The state, as `(node, change)`.
        rows: Vec<(String, Change)>,
    },
    /// Log rows other nodes wrote, in id order.
    Rows(Vec<LogRow>),
    /// This node had been taken for dead (its lease ran out) and is back: the others have
    /// forgotten its entries, so it must tell them again.
    Rejoined,
}

/// How a claim on an agent went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node holds the agent now: ring it.
    Won,
    /// Another node holds it, since log id `at`.
    Lost {
        /// The holder.
        holder: String,
        /// The log id of the holder's claim.
        at: i64,
    },
}

impl Change {
    /// The row's JSON, as stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stored row; `None` for one this build cannot read (written by a newer one).
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_their_json() {
        let changes = [
            Change::Joined {
                queue: "support".into(),
                seq: 42 * 256 + 3,
                level: 1,
                callback: false,
                joined_ms: 1_700_000_000_000,
                caller: "+15551234".into(),
            },
            Change::Left { seq: 7 },
            Change::Registered {
                user: "alice".into(),
                contact: "sip:alice@10.0.0.7:5060".into(),
                source: "10.0.0.7:5060".into(),
                path: vec!["<sip:10.0.0.1;lr>".into()],
                expires_ms: 1,
            },
            Change::Agent {
                user: "alice".into(),
                state: "ringing".into(),
                seq: Some(7),
            },
            Change::Reset,
        ];
        for change in changes {
            let json = change.to_json();
            assert_eq!(Change::from_json(&json), Some(change), "{json}");
        }
        assert_eq!(Change::from_json(r#"{"kind":"teleported"}"#), None);
    }
}
