//! Durable state: callbacks, handle-time history and call events (docs/behaviour.md §6–§7).
//!
//! This module owns what must survive a crash or `kill -9`:
//! - **callbacks**: a caller who pressed 1 keeps its place (queue, priority level and the
//!   global sequence number [`Seq`]) and its state `pending → dialling → completed | failed`,
//!   with attempts and the next retry time;
//! - **handle times** per queue, so the wait estimate (docs/behaviour.md §4) starts warm after a restart;
//! - **call events** (join, announce, connect, abandon, callback …), like Asterisk's
//!   `queue_log`;
//! - the **sequence high-water mark**, so entries created after a restart queue behind every
//!   number handed out before.
//!
//! [`Store`] is the backend trait; [`SqliteStore`] is the embedded default (one file,
//! `holdfast.db`, in `data_dir`); [`PostgresStore`] is the backend several nodes share
//! (docs/cluster.md), with a lease per node and callbacks owned by a node. [`StoreHandle`] runs any backend on its own thread so the call
//! controller never waits for an fsync; see its docs for the exact durability guarantees.
//!
//! Times are Unix milliseconds (`i64`), given by the caller: the store never reads the clock
//! for domain data. Only the `updated_at` audit column is stamped by SQLite itself.
//!
//! Imports: only the queue's value types ([`Seq`], [`Level`]); nothing of SIP or media.

pub mod cluster;
mod handle;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

pub use handle::{CHANNEL_CAPACITY, Reply, StoreHandle, StoreThread};
pub use postgres::{HEARTBEAT, LEASE, MAX_NODES, PG_SCHEMA_VERSION, PostgresStore};
pub use sqlite::{DB_FILE, ESTIMATE_OUTCOMES_KEPT, HANDLE_TIMES_KEPT, SCHEMA_VERSION, SqliteStore};

use crate::queue::{Level, Seq};

/// Row id of a committed callback; stable for the life of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallbackId(pub i64);

/// Where a callback is in its life (docs/behaviour.md §6).
///
/// ```text
///  pending ──(agent reserved, caller dialled)──▶ dialling ──(bridged)──▶ completed
///     ▲                                             │
///     └────────(busy / no answer, attempts left)────┤
///                                                   └──(attempts used up)──▶ failed
/// ```
/// `pending` and `dialling` are both reloaded at start-up: a dial-back cut short by a crash
/// is never lost. A `dialling` one carries the INVITE it sent (`attempt_invite`), which the
/// restart cancels before anything is dialled again. `completed` is written before the
/// caller's answer is acknowledged and is never dialled again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackState {
    /// Committed, waiting for its turn (or for its retry time).
    Pending,
    /// An agent is reserved and the caller's number is being called.
    Dialling,
    /// The caller was reached and bridged to an agent.
    Completed,
    /// Every attempt failed; kept for the record, never dialled again.
    Failed,
}

impl CallbackState {
    /// The word stored in the database and shown by the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Dialling => "dialling",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses [`CallbackState::as_str`] back.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "dialling" => Self::Dialling,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether the callback still has to be dialled (reloaded at start-up).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Dialling)
    }
}

/// What is committed when a caller presses 1: everything needed to put the entry back at its
/// place and to dial the caller, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    /// Queue name from the config (names are stable across restarts, ids are not).
    pub queue: String,
    /// Priority level the caller had.
    pub level: Level,
    /// The caller's place in arrival order; the callback keeps it.
    pub seq: Seq,
    /// The number to call back, already checked against `callback_number_pattern`.
    pub number: String,
    /// When the caller pressed 1, Unix ms.
    pub requested_at_ms: i64,
}

/// A callback scheduled through the admin API (`POST /api/callbacks`, docs/behaviour.md §6):
/// committed now, it joins its queue at `not_before_ms` and takes its place then. Until it
/// joined, its stored `seq` is a negative placeholder (so it raises no high-water mark), and
/// `next_attempt_at` holds `not_before_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRequest {
    /// Queue name from the config.
    pub queue: String,
    /// Priority level it joins with.
    pub level: Level,
    /// The number to call, already checked against `callback_number_pattern`.
    pub number: String,
    /// When the API was asked, Unix ms.
    pub requested_at_ms: i64,
    /// When it joins its queue, Unix ms.
    pub not_before_ms: i64,
}

/// A stored callback with its current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecord {
    /// Row id.
    pub id: CallbackId,
    /// The request as committed.
    pub request: CallbackRequest,
    /// Current state.
    pub state: CallbackState,
    /// Dial-back attempts made so far.
    pub attempts: u32,
    /// Not before this time (Unix ms) is the next attempt due; `None` = as soon as possible.
    pub next_attempt_at_ms: Option<i64>,
    /// Why the last attempt failed, for the admin API.
    pub last_error: Option<String>,
    /// When the row last changed, Unix ms (stamped by the database).
    pub updated_at_ms: i64,
    /// The wire bytes of the trunk INVITE of the attempt in progress: set with `dialling`
    /// before the INVITE is sent ([`Store::begin_attempt`]), cleared by every other state.
    pub attempt_invite: Option<Vec<u8>>,
    /// Scheduled and not yet in its queue ([`ScheduledRequest`]): it joins at
    /// `next_attempt_at_ms`, and `request.seq` means nothing yet (0).
    pub scheduled: bool,
}

/// The kinds of call event written to the log table (docs/behaviour.md §8), like `queue_log` verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallEventKind {
    /// A caller entered a queue.
    Join,
    /// A position/estimate announcement was played.
    Announce,
    /// A caller was connected to an agent.
    Connect,
    /// An agent did not answer in time (or rejected); the caller keeps its place.
    RingNoAnswer,
    /// A caller hung up while waiting.
    Abandon,
    /// A caller pressed 1 and the callback was committed.
    CallbackRequested,
    /// A callback's number was dialled.
    CallbackDialled,
    /// A callback reached the caller and was bridged.
    CallbackCompleted,
    /// A callback ran out of attempts.
    CallbackFailed,
    /// A connected call ended.
    Complete,
    /// A caller reached the queue's `max_wait` and overflowed (`detail`: to what).
    Overflow,
    /// A caller who had hung up called again in time and got its old place back.
    Resume,
    /// A supervisor began listening to, whispering to or barging into a call (`detail`:
    /// supervisor and mode).
    MonitorStart,
    /// That supervisor left the call (or the call ended).
    MonitorStop,
}

impl CallEventKind {
    /// Every kind, for parsing.
    pub const ALL: [Self; 14] = [
        Self::Join,
        Self::Announce,
        Self::Connect,
        Self::RingNoAnswer,
        Self::Abandon,
        Self::CallbackRequested,
        Self::CallbackDialled,
        Self::CallbackCompleted,
        Self::CallbackFailed,
        Self::Complete,
        Self::Overflow,
        Self::Resume,
        Self::MonitorStart,
        Self::MonitorStop,
    ];

    /// Parses [`CallEventKind::as_str`] back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The word stored in the `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Announce => "announce",
            Self::Connect => "connect",
            Self::RingNoAnswer => "ring_no_answer",
            Self::Abandon => "abandon",
            Self::CallbackRequested => "callback_requested",
            Self::CallbackDialled => "callback_dialled",
            Self::CallbackCompleted => "callback_completed",
            Self::CallbackFailed => "callback_failed",
            Self::Complete => "complete",
            Self::Overflow => "overflow",
            Self::Resume => "resume",
            Self::MonitorStart => "monitor_start",
            Self::MonitorStop => "monitor_stop",
        }
    }
}

/// One line of the call-event log. Optional fields are stored as SQL `NULL`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallEvent {
    /// When it happened, Unix ms.
    pub ts_ms: i64,
    /// What happened.
    pub kind: CallEventKind,
    /// SIP Call-ID of the caller's leg.
    pub call_id: Option<String>,
    /// Queue name.
    pub queue: Option<String>,
    /// Caller number or URI.
    pub caller: Option<String>,
    /// Agent name.
    pub agent: Option<String>,
    /// How long the caller had waited, in ms.
    pub wait_ms: Option<u64>,
    /// Anything else, as a JSON value (stored as JSON text).
    pub detail: Option<serde_json::Value>,
}

impl CallEvent {
    /// An event with only a time and a kind; fill the other fields as needed.
    pub fn new(ts_ms: i64, kind: CallEventKind) -> Self {
        Self {
            ts_ms,
            kind,
            call_id: None,
            queue: None,
            caller: None,
            agent: None,
            wait_ms: None,
            detail: None,
        }
    }
}

/// A completed call's handle time for the estimator of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleTime {
    /// Queue name.
    pub queue: String,
    /// Agent answer to hang-up, whole seconds.
    pub seconds: u32,
    /// When the call ended, Unix ms.
    pub ended_at_ms: i64,
}

/// A fire-and-forget write; a batch of them is applied in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Append to the call-event log.
    Event(CallEvent),
    /// Append to the handle-time history (older ones beyond the kept count are pruned).
    HandleTime(HandleTime),
    /// Append to a queue's estimate outcomes (older ones beyond [`ESTIMATE_OUTCOMES_KEPT`]
    /// are pruned).
    EstimateOutcome(EstimateOutcome),
    /// Keep (or, with `state: None`, forget) what a restarted process picks up again.
    Keep(Kept),
}

/// What a restarted holdfast picks up again (docs/behaviour.md §13): calls on the line,
/// agents' registrations and states. One row per `(kind, key)`, its state an opaque JSON
/// text the controller writes and reads; on a shared store, rows are the node's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// What the row is.
    pub kind: KeptKind,
    /// Which one (a Call-ID, an agent's user).
    pub key: String,
    /// Its state; `None` deletes the row.
    pub state: Option<String>,
}

/// The kinds of [`Kept`] rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeptKind {
    /// A caller on the line: held or bridged.
    Call,
    /// An agent's registration.
    Registration,
    /// An agent's pause and wrap-up.
    Agent,
}

impl KeptKind {
    /// The word stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Registration => "registration",
            Self::Agent => "agent",
        }
    }
}

/// One answered caller's wait forecast and real wait, which the wait estimate learns its
/// quantile from (docs/behaviour.md §4).
#[derive(Debug, Clone, PartialEq)]
pub struct EstimateOutcome {
    /// Queue name.
    pub queue: String,
    /// The forecast's quantiles, seconds, lowest first.
    pub quantiles: Vec<f64>,
    /// How long the caller really waited after it was told, ms.
    pub waited_ms: u64,
}

/// What a node publishes with each lease renewal (docs/cluster.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Its SIP address.
    pub sip: String,
    /// Caller calls in progress (held or bridged).
    pub calls: usize,
    /// Entries waiting in its queues (callers and callbacks).
    pub waiting: usize,
    /// Agents registered with it.
    pub agents: usize,
}

/// One node of a cluster, as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRecord {
    /// `[cluster] node`.
    pub name: String,
    /// Its sequence slot.
    pub slot: i16,
    /// Whether its lease still runs.
    pub alive: bool,
    /// When its lease ends (or ended), Unix ms.
    pub lease_until_ms: i64,
    /// When it last started, Unix ms.
    pub started_at_ms: i64,
    /// Its SIP address.
    pub sip: String,
    /// Caller calls in progress at its last renewal.
    pub calls: u32,
    /// Entries waiting in its queues at its last renewal.
    pub waiting: u32,
    /// Agents registered with it at its last renewal.
    pub agents: u32,
    /// Pending or dialling callbacks it owns now.
    pub open_callbacks: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database file was written by a newer holdfast; refusing to touch it.
    #[error(
        "database schema version {found} is newer than this holdfast knows ({known}); \
         upgrade holdfast or point data_dir elsewhere"
    )]
    NewerSchema {
        /// `PRAGMA user_version` in the file.
        found: i64,
        /// The newest version this build can migrate to.
        known: i64,
    },
    /// SQLite refused to switch to write-ahead logging (e.g. a network file system).
    #[error("database refused WAL mode (journal_mode is {0})")]
    NoWal(String),
    /// A value does not fit the column (e.g. a sequence number above `i64::MAX`).
    #[error("{what} {value} does not fit in the database")]
    OutOfRange {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A different callback already holds this sequence number (a broken invariant upstream).
    #[error("sequence number {0} already belongs to another callback")]
    SeqTaken(u64),
    /// No callback with this id.
    #[error("no callback with id {0}")]
    UnknownCallback(i64),
    /// A stored row could not be read back (hand-edited or corrupt file).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The store thread's queue is full (the disk has stalled); nothing was written.
    #[error("store is overloaded; request not queued")]
    Overloaded,
    /// The store thread has stopped (its backend failed to start or the handle was closed).
    #[error("store thread has stopped")]
    Closed,
    /// Any SQLite error (I/O, full disk, locked beyond the busy timeout, corrupt file).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL error (server unreachable, connection lost, a statement refused).
    #[error("postgres: {0}")]
    Postgres(String),
    /// The callback now belongs to another node, which adopted it while this one was out of
    /// touch with the store; this node must not dial it.
    #[error("callback {id} was taken over by node {node}")]
    Adopted {
        /// The callback.
        id: i64,
        /// Its owner now.
        node: String,
    },
    /// Every node slot is taken.
    #[error("the cluster already has {0} nodes")]
    ClusterFull(i16),
    /// A scheduled callback was refused: the number already has an open callback (pending
    /// or dialling) for that queue.
    #[error("callback {0} for this number and queue is still open")]
    AlreadyPending(i64),
}

/// A durable backend. Every method returns only after its transaction is committed with the
/// backend's full durability (for SQLite: the WAL is fsynced, `synchronous=FULL`).
pub trait Store {
    /// Commits a callback request and returns its id; idempotent for the same `seq` and
    /// content (a retried commit returns the first id). Also raises the sequence high-water
    /// mark past `seq` in the same transaction.
    fn commit_callback(&mut self, request: &CallbackRequest) -> Result<CallbackId, StoreError>;

    /// Commits a scheduled callback ([`ScheduledRequest`]) as `pending`, not yet in its
    /// queue; refused with [`StoreError::AlreadyPending`] while the number has an open
    /// callback for that queue (no double callbacks).
    fn schedule_callback(&mut self, request: &ScheduledRequest) -> Result<CallbackId, StoreError>;

    /// A scheduled callback joined its queue with `seq`: its place from now on. Raises the
    /// sequence high-water mark past `seq` in the same transaction.
    fn set_callback_seq(&mut self, id: CallbackId, seq: Seq) -> Result<(), StoreError>;

    /// Moves a callback to `state` with its attempt count, next retry time and last error,
    /// clearing any recorded attempt INVITE.
    fn set_callback_state(
        &mut self,
        id: CallbackId,
        state: CallbackState,
        attempts: u32,
        next_attempt_at_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Records a dial-back attempt before its INVITE leaves (docs/behaviour.md §6): state
    /// `dialling`, `attempts`, and the INVITE's wire bytes, in one durable transaction. A
    /// restart finds the bytes and cancels that INVITE instead of dialling blind.
    fn begin_attempt(
        &mut self,
        id: CallbackId,
        attempts: u32,
        invite: &[u8],
    ) -> Result<(), StoreError>;

    /// Every `pending` or `dialling` callback, in `seq` order: what recovery reloads.
    fn pending_callbacks(&mut self) -> Result<Vec<CallbackRecord>, StoreError>;

    /// The newest `limit` callbacks in any state, newest first (admin API).
    fn recent_callbacks(&mut self, limit: usize) -> Result<Vec<CallbackRecord>, StoreError>;

    /// Applies fire-and-forget writes in order, in one transaction.
    fn record_batch(&mut self, records: &[Record]) -> Result<(), StoreError>;

    /// Appends one handle time.
    fn record_handle_time(
        &mut self,
        queue: &str,
        seconds: u32,
        ended_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.record_batch(&[Record::HandleTime(HandleTime {
            queue: queue.to_owned(),
            seconds,
            ended_at_ms,
        })])
    }

    /// The last `limit` handle times of `queue`, oldest first.
    fn recent_handle_times(&mut self, queue: &str, limit: usize) -> Result<Vec<u32>, StoreError>;

    /// The last `limit` estimate outcomes of `queue`, oldest first.
    fn recent_estimate_outcomes(
        &mut self,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<EstimateOutcome>, StoreError>;

    /// Appends one call event.
    fn record_event(&mut self, event: &CallEvent) -> Result<(), StoreError> {
        self.record_batch(&[Record::Event(event.clone())])
    }

    /// The newest `limit` call events, newest first.
    fn recent_events(&mut self, limit: usize) -> Result<Vec<CallEvent>, StoreError>;

    /// Every call event from `from_ms` (included) to `to_ms` (excluded), oldest first: a
    /// report's input (`holdfast report`, `GET /api/report`).
    fn events_between(&mut self, from_ms: i64, to_ms: i64) -> Result<Vec<CallEvent>, StoreError>;

    /// The lowest sequence number no entry has had yet (0 on a fresh database).
    fn seq_high_water(&mut self) -> Result<Seq, StoreError>;

    /// Every kept row of `kind` (this node's, on a shared store): `(key, state)`.
    fn kept(&mut self, kind: KeptKind) -> Result<Vec<(String, String)>, StoreError>;

    /// Raises the high-water mark to `seq`; a lower value is ignored (it never goes back).
    fn set_seq_high_water(&mut self, seq: Seq) -> Result<(), StoreError>;

    /// A shared store: renews this node's lease (publishing `status` for the other nodes'
    /// admin API) and takes over the open callbacks of nodes whose lease ran out, returning
    /// them in `seq` order (each goes to exactly one node). A store of one node has nothing
    /// to do.
    fn renew_lease(&mut self, status: &NodeStatus) -> Result<Vec<CallbackRecord>, StoreError> {
        let _ = status;
        Ok(Vec::new())
    }

    /// A shared store: every node of the cluster, as last renewed. A store of one node: none.
    fn cluster_nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        Ok(Vec::new())
    }
}
