//! Runs a [`Store`] on its own thread so the call controller never waits for an fsync.
//!
//! A commit with `synchronous=FULL` costs an fsync (about a millisecond on an SSD, far more
//! on a busy disk). The controller thread handles every SIP event of every call and must not
//! stall on that, so it talks to the store through [`StoreHandle`], a bounded channel to one
//! store thread:
//!
//! - **Requests** (callback commits, attempts and state changes, reads) are request/response: each
//!   returns a [`Reply`] that resolves only after the backend returned, i.e. for writes after
//!   the transaction is durably committed. Await it, or poll it with [`Reply::try_wait`].
//! - **Records** (call events, handle times) are fire-and-forget: they are queued and written
//!   in batches, one transaction per batch, so a burst of events costs one fsync.
//!
//! # Durability guarantees, precisely
//! 1. `Ok` from a write [`Reply`] means the change is committed and fsynced (for SQLite: WAL +
//!    `synchronous=FULL`). A caller must hear "we will call you back" only after that.
//! 2. Operations are applied in the order they were sent (one channel, one thread). So when a
//!    write `Reply` resolves `Ok`, every record sent before it is committed too (or was
//!    reported lost, see 4).
//! 3. A record that was only *sent* is not durable: a crash before its batch commits loses it.
//!    Events and handle times are statistics; losing the last milliseconds of them is
//!    accepted. Anything that must survive is a request.
//! 4. Nothing blocks the sender. When the channel is full (the disk has stalled for a long
//!    time), a record is dropped and counted ([`StoreHandle::dropped_records`]), and a request
//!    resolves at once to [`StoreError::Overloaded`], so the controller can refuse the callback
//!    instead of promising one it cannot keep.
//! 5. A batch the backend fails to write is logged and counted as dropped; the thread goes on.
//! 6. [`StoreThread::join`] (after every handle is dropped) returns once everything sent has
//!    been applied: graceful shutdown loses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{
    CallEvent, CallbackId, CallbackRecord, CallbackRequest, CallbackState, EstimateOutcome,
    HandleTime, NodeRecord, NodeStatus, Record, Store, StoreError,
};
use crate::queue::Seq;

/// Operations waiting for the store thread before senders see [`StoreError::Overloaded`].
pub const CHANNEL_CAPACITY: usize = 65_536;

/// Most operations taken from the channel per round; records among them share a transaction.
const MAX_BATCH: usize = 1024;

type Tx<T> = oneshot::Sender<Result<T, StoreError>>;

enum Op {
    Record(Record),
    Request(Request),
}

enum Request {
    CommitCallback(CallbackRequest, Tx<CallbackId>),
    ScheduleCallback(super::ScheduledRequest, Tx<CallbackId>),
    SetCallbackSeq(CallbackId, Seq, Tx<()>),
    SetCallbackState {
        id: CallbackId,
        state: CallbackState,
        attempts: u32,
        next_attempt_at_ms: Option<i64>,
        error: Option<String>,
        reply: Tx<()>,
    },
    BeginAttempt {
        id: CallbackId,
        attempts: u32,
        invite: Vec<u8>,
        reply: Tx<()>,
    },
    PendingCallbacks(Tx<Vec<CallbackRecord>>),
    RecentCallbacks(usize, Tx<Vec<CallbackRecord>>),
    RecentHandleTimes(String, usize, Tx<Vec<u32>>),
    RecentEstimateOutcomes(String, usize, Tx<Vec<EstimateOutcome>>),
    RecentEvents(usize, Tx<Vec<CallEvent>>),
    EventsBetween(i64, i64, Tx<Vec<CallEvent>>),
    SeqHighWater(Tx<Seq>),
    Kept(super::KeptKind, Tx<Vec<(String, String)>>),
    SetSeqHighWater(Seq, Tx<()>),
    RenewLease(NodeStatus, Tx<Vec<CallbackRecord>>),
    ClusterNodes(Tx<Vec<NodeRecord>>),
    Flush(Tx<()>),
}

/// The answer to a request, available once the store thread has executed it.
#[derive(Debug)]
#[must_use = "a reply says whether the write is durable"]
pub struct Reply<T>(oneshot::Receiver<Result<T, StoreError>>);

impl<T> Reply<T> {
    /// A reply another thread of the store sends on `rx`.
    pub(crate) fn from_receiver(rx: oneshot::Receiver<Result<T, StoreError>>) -> Self {
        Self(rx)
    }

    fn ready(result: Result<T, StoreError>) -> Self {
        let (tx, rx) = oneshot::channel();
        // The receiver is alive right here, so this send cannot fail.
        let _ = tx.send(result);
        Self(rx)
    }

    /// Waits for the result (async).
    pub async fn wait(self) -> Result<T, StoreError> {
        self.0.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Waits for the result, blocking the thread (start-up, tests; not inside async code).
    pub fn blocking_wait(self) -> Result<T, StoreError> {
        self.0.blocking_recv().unwrap_or(Err(StoreError::Closed))
    }

    /// The result if it is ready, for a controller that polls; `None` while still pending.
    /// After it returned `Some`, it returns `Some(Err(Closed))`.
    pub fn try_wait(&mut self) -> Option<Result<T, StoreError>> {
        match self.0.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(StoreError::Closed)),
        }
    }
}

/// A cheap, cloneable sender to the store thread. See the module docs for guarantees.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    tx: SyncSender<Op>,
    dropped: Arc<AtomicU64>,
}

/// Owns the store thread; [`StoreThread::join`] waits until it has applied everything.
#[derive(Debug)]
pub struct StoreThread {
    thread: JoinHandle<()>,
}

impl StoreThread {
    /// Waits for the thread to finish. It finishes when every [`StoreHandle`] is dropped and
    /// the operations already sent are applied.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!("store thread panicked");
        }
    }
}

impl StoreHandle {
    /// Moves `store` onto a new thread named `holdfast-store`.
    pub fn spawn(store: impl Store + Send + 'static) -> std::io::Result<(Self, StoreThread)> {
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let thread = std::thread::Builder::new()
            .name("holdfast-store".into())
            .spawn(move || run(store, rx, &counter))?;
        Ok((Self { tx, dropped }, StoreThread { thread }))
    }

    /// Records dropped so far (channel full, or their batch failed to commit).
    pub fn dropped_records(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn request<T>(&self, make: impl FnOnce(Tx<T>) -> Request) -> Reply<T> {
        let (tx, rx) = oneshot::channel();
        match self.tx.try_send(Op::Request(make(tx))) {
            Ok(()) => Reply(rx),
            Err(TrySendError::Full(_)) => Reply::ready(Err(StoreError::Overloaded)),
            Err(TrySendError::Disconnected(_)) => Reply::ready(Err(StoreError::Closed)),
        }
    }

    /// Queues any record (fire-and-forget, batched); counted as dropped when the queue is full.
    pub fn record(&self, record: Record) {
        if self.tx.try_send(Op::Record(record)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Commits a callback request; the reply is `Ok` only once it is durable.
    pub fn commit_callback(&self, request: CallbackRequest) -> Reply<CallbackId> {
        self.request(|tx| Request::CommitCallback(request, tx))
    }

    /// Commits a scheduled callback (admin API); the reply is `Ok` only once it is durable.
    pub fn schedule_callback(&self, request: super::ScheduledRequest) -> Reply<CallbackId> {
        self.request(|tx| Request::ScheduleCallback(request, tx))
    }

    /// A scheduled callback joined its queue with `seq`; the reply is `Ok` once durable.
    pub fn set_callback_seq(&self, id: CallbackId, seq: Seq) -> Reply<()> {
        self.request(|tx| Request::SetCallbackSeq(id, seq, tx))
    }

    /// Persists a callback's state change; the reply is `Ok` once durable.
    pub fn set_callback_state(
        &self,
        id: CallbackId,
        state: CallbackState,
        attempts: u32,
        next_attempt_at_ms: Option<i64>,
        error: Option<String>,
    ) -> Reply<()> {
        self.request(|reply| Request::SetCallbackState {
            id,
            state,
            attempts,
            next_attempt_at_ms,
            error,
            reply,
        })
    }

    /// Records a dial-back attempt (`dialling`, its count and its INVITE's bytes) before the
    /// INVITE is sent; the reply is `Ok` once durable.
    pub fn begin_attempt(&self, id: CallbackId, attempts: u32, invite: Vec<u8>) -> Reply<()> {
        self.request(|reply| Request::BeginAttempt {
            id,
            attempts,
            invite,
            reply,
        })
    }

    /// Every open (pending or dialling) callback in `seq` order.
    pub fn pending_callbacks(&self) -> Reply<Vec<CallbackRecord>> {
        self.request(Request::PendingCallbacks)
    }

    /// The newest `limit` callbacks in any state, newest first.
    pub fn recent_callbacks(&self, limit: usize) -> Reply<Vec<CallbackRecord>> {
        self.request(|tx| Request::RecentCallbacks(limit, tx))
    }

    /// The last `limit` handle times of `queue`, oldest first.
    pub fn recent_handle_times(&self, queue: &str, limit: usize) -> Reply<Vec<u32>> {
        let queue = queue.to_owned();
        self.request(|tx| Request::RecentHandleTimes(queue, limit, tx))
    }

    /// The last `limit` estimate outcomes of `queue`, oldest first.
    pub fn recent_estimate_outcomes(
        &self,
        queue: &str,
        limit: usize,
    ) -> Reply<Vec<EstimateOutcome>> {
        let queue = queue.to_owned();
        self.request(|tx| Request::RecentEstimateOutcomes(queue, limit, tx))
    }

    /// The newest `limit` call events, newest first.
    pub fn recent_events(&self, limit: usize) -> Reply<Vec<CallEvent>> {
        self.request(|tx| Request::RecentEvents(limit, tx))
    }

    /// Every call event in `[from_ms, to_ms)`, oldest first.
    pub fn events_between(&self, from_ms: i64, to_ms: i64) -> Reply<Vec<CallEvent>> {
        self.request(|tx| Request::EventsBetween(from_ms, to_ms, tx))
    }

    /// Every kept row of `kind`: `(key, state)` (docs/behaviour.md §13).
    pub fn kept(&self, kind: super::KeptKind) -> Reply<Vec<(String, String)>> {
        self.request(|tx| Request::Kept(kind, tx))
    }

    /// The stored sequence high-water mark.
    pub fn seq_high_water(&self) -> Reply<Seq> {
        self.request(Request::SeqHighWater)
    }

    /// Raises the sequence high-water mark (never lowers it); `Ok` once durable.
    pub fn set_seq_high_water(&self, seq: Seq) -> Reply<()> {
        self.request(|tx| Request::SetSeqHighWater(seq, tx))
    }

    /// Renews this node's lease in a shared store; the reply holds the callbacks of dead
    /// nodes it took over ([`Store::renew_lease`]).
    pub fn renew_lease(&self, status: NodeStatus) -> Reply<Vec<CallbackRecord>> {
        self.request(|tx| Request::RenewLease(status, tx))
    }

    /// Every node of a shared store's cluster ([`Store::cluster_nodes`]).
    pub fn cluster_nodes(&self) -> Reply<Vec<NodeRecord>> {
        self.request(Request::ClusterNodes)
    }

    /// Resolves once every record sent before it is committed (or counted as dropped).
    pub fn flush(&self) -> Reply<()> {
        self.request(Request::Flush)
    }

    /// Queues a call event (fire-and-forget, batched).
    pub fn record_event(&self, event: CallEvent) {
        self.record(Record::Event(event));
    }

    /// Queues a handle time (fire-and-forget, batched).
    pub fn record_handle_time(&self, queue: &str, seconds: u32, ended_at_ms: i64) {
        self.record(Record::HandleTime(HandleTime {
            queue: queue.to_owned(),
            seconds,
            ended_at_ms,
        }));
    }
}

/// The store thread: take what is queued, write the records of a round in one transaction
/// (before any request that follows them, to keep the order), answer requests.
fn run(mut store: impl Store, rx: Receiver<Op>, dropped: &AtomicU64) {
    let mut ops = Vec::with_capacity(MAX_BATCH);
    let mut records = Vec::with_capacity(MAX_BATCH);
    // recv() fails only when every handle is gone and the channel is drained.
    while let Ok(first) = rx.recv() {
        ops.push(first);
        while ops.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        for op in ops.drain(..) {
            match op {
                Op::Record(r) => records.push(r),
                Op::Request(request) => {
                    write_records(&mut store, &mut records, dropped);
                    execute(&mut store, request);
                }
            }
        }
        write_records(&mut store, &mut records, dropped);
    }
}

fn write_records(store: &mut impl Store, records: &mut Vec<Record>, dropped: &AtomicU64) {
    if records.is_empty() {
        return;
    }
    if let Err(e) = store.record_batch(records) {
        tracing::error!(error = %e, lost = records.len(), "cannot write call events");
        dropped.fetch_add(records.len() as u64, Ordering::Relaxed);
    }
    records.clear();
}

fn execute(store: &mut impl Store, request: Request) {
    // A send error means the requester stopped waiting; the write itself has happened.
    match request {
        Request::CommitCallback(req, tx) => {
            let _ = tx.send(store.commit_callback(&req));
        }
        Request::ScheduleCallback(req, tx) => {
            let _ = tx.send(store.schedule_callback(&req));
        }
        Request::SetCallbackSeq(id, seq, tx) => {
            let _ = tx.send(store.set_callback_seq(id, seq));
        }
        Request::SetCallbackState {
            id,
            state,
            attempts,
            next_attempt_at_ms,
            error,
            reply,
        } => {
            let _ = reply.send(store.set_callback_state(
                id,
                state,
                attempts,
                next_attempt_at_ms,
                error.as_deref(),
            ));
        }
        Request::BeginAttempt {
            id,
            attempts,
            invite,
            reply,
        } => {
            let _ = reply.send(store.begin_attempt(id, attempts, &invite));
        }
        Request::PendingCallbacks(tx) => {
            let _ = tx.send(store.pending_callbacks());
        }
        Request::RecentCallbacks(limit, tx) => {
            let _ = tx.send(store.recent_callbacks(limit));
        }
        Request::Kept(kind, tx) => {
            let _ = tx.send(store.kept(kind));
        }
        Request::RecentHandleTimes(queue, limit, tx) => {
            let _ = tx.send(store.recent_handle_times(&queue, limit));
        }
        Request::RecentEstimateOutcomes(queue, limit, tx) => {
            let _ = tx.send(store.recent_estimate_outcomes(&queue, limit));
        }
        Request::RecentEvents(limit, tx) => {
            let _ = tx.send(store.recent_events(limit));
        }
        Request::EventsBetween(from, to, tx) => {
            let _ = tx.send(store.events_between(from, to));
        }
        Request::SeqHighWater(tx) => {
            let _ = tx.send(store.seq_high_water());
        }
        Request::SetSeqHighWater(seq, tx) => {
            let _ = tx.send(store.set_seq_high_water(seq));
        }
        Request::RenewLease(status, tx) => {
            let _ = tx.send(store.renew_lease(&status));
        }
        Request::ClusterNodes(tx) => {
            let _ = tx.send(store.cluster_nodes());
        }
        Request::Flush(tx) => {
            let _ = tx.send(Ok(()));
        }
    }
}
