//! Callbacks scheduled through the admin API (`POST /api/callbacks`, docs/behaviour.md §6):
//! checked here (queue, number against the queue's pattern and deny list), committed by the
//! store (which refuses a second open callback for the same number and queue), kept here
//! until `not_before`, then put into their queue at the back, as a caller arriving then
//! would be, where they are dispatched like any callback (and wait for the queue's opening
//! hours). `DELETE /api/callbacks/{id}` takes one out before an agent is rung for it.
//!
//! ```text
//!  POST ─check─▶ store commit (pending, seq < 0) ─Ok─▶ Scheduled ─not_before─▶ in its queue
//!                                                        │ DELETE               │ DELETE (not offered yet)
//!                                                        ▼                      ▼
//!                                                      failed "cancelled"   failed "cancelled"
//! ```

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::B2bua;
use super::callback::StoreRequest;
use super::callbacks::{Callback, CallbackPhase};
use crate::queue::{EntryId, EntryKind, LeaveReason, Level, QueueId};
use crate::store::{CallEvent, CallEventKind, CallbackId, Record, StoreError};

/// Why the admin API's callback request or cancellation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// No `[[queue]]` of that name.
    #[error("no queue named {0:?}")]
    UnknownQueue(String),
    /// The number does not match the queue's `callback_number_pattern`, or is in its
    /// `callback_deny_prefixes`.
    #[error(
        "number {number:?} is not one queue {queue:?} may call back \
         (callback_number_pattern, callback_deny_prefixes)"
    )]
    NumberRefused {
        /// The number asked for.
        number: String,
        /// The queue.
        queue: String,
    },
    /// An open callback for the same number and queue exists (no double callbacks).
    #[error("callback {0} for this number and queue is still open")]
    AlreadyPending(i64),
    /// No open callback with this id on this node.
    #[error("no open callback {0} on this node")]
    NotFound(i64),
    /// An agent is already being rung for it, or its number is being dialled.
    #[error("callback {0} is being dialled: too late to cancel")]
    Dialling(i64),
    /// The store could not commit.
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for ScheduleError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AlreadyPending(id) => Self::AlreadyPending(id),
            other => Self::Store(other),
        }
    }
}

/// A scheduled callback, committed and not yet in its queue.
#[derive(Debug, Clone)]
struct Pending {
    queue: QueueId,
    level: Level,
    number: String,
    at: Instant,
}

/// The scheduled callbacks not yet in their queues, by id and by due time.
#[derive(Debug, Default)]
pub struct Scheduled {
    by_id: HashMap<CallbackId, Pending>,
    due: BTreeSet<(Instant, CallbackId)>,
}

impl Scheduled {
    fn insert(&mut self, id: CallbackId, pending: Pending) {
        self.due.insert((pending.at, id));
        if let Some(old) = self.by_id.insert(id, pending) {
            self.due.remove(&(old.at, id));
        }
    }

    fn remove(&mut self, id: CallbackId) -> Option<Pending> {
        let pending = self.by_id.remove(&id)?;
        self.due.remove(&(pending.at, id));
        Some(pending)
    }

    fn pop_due(&mut self, now: Instant) -> Option<(CallbackId, Pending)> {
        let &(at, id) = self.due.first().filter(|(at, _)| *at <= now)?;
        self.due.remove(&(at, id));
        Some((id, self.by_id.remove(&id)?))
    }

    /// The next callback due to join its queue.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.first().map(|&(at, _)| at)
    }

    /// How many wait for their time.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// None waits.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

impl B2bua {
    /// Checks a callback asked for through the admin API: the queue exists and may call
    /// `number` back. Returns the queue and the priority level it joins with (the number's
    /// `[[vip]]` priority, else `normal`).
    pub fn check_scheduled(
        &self,
        queue: &str,
        number: &str,
    ) -> Result<(QueueId, Level), ScheduleError> {
        let index = self
            .config
            .queue_index(queue)
            .ok_or_else(|| ScheduleError::UnknownQueue(queue.to_owned()))?;
        if !self.config.queues[index].callback_number_allowed(number) {
            return Err(ScheduleError::NumberRefused {
                number: number.to_owned(),
                queue: queue.to_owned(),
            });
        }
        let level = self
            .config
            .vips
            .iter()
            .find(|v| v.caller == number)
            .and_then(|v| self.config.priority(&v.priority))
            .or_else(|| self.config.priority("normal"))
            .or_else(|| self.config.priorities.values().copied().max())
            .unwrap_or_default();
        Ok((QueueId(index), level))
    }

    /// The store committed a scheduled callback `id` (or it was restored at start-up): it
    /// joins `queue` at `at` (at once when that has passed).
    pub fn callback_scheduled(
        &mut self,
        now: Instant,
        id: CallbackId,
        queue: QueueId,
        level: Level,
        number: String,
        at: Instant,
    ) {
        tracing::info!(
            callback = id.0,
            queue = %self.config.queues[queue.0].name,
            in_s = at.saturating_duration_since(now).as_secs(),
            "callback scheduled"
        );
        self.scheduled.insert(
            id,
            Pending {
                queue,
                level,
                number,
                at,
            },
        );
        self.run_scheduled(now);
        self.process_events(now);
    }

    /// Scheduled callbacks whose time has come join their queues, at the back.
    pub(super) fn run_scheduled(&mut self, now: Instant) {
        while let Some((id, pending)) = self.scheduled.pop_due(now) {
            let entry = EntryId(self.next_key);
            self.next_key += 1;
            let seq = match self.queues.join(
                now,
                pending.queue,
                entry,
                pending.level,
                EntryKind::Callback,
            ) {
                Ok(seq) => seq,
                Err(error) => {
                    // A full queue: try again in a minute rather than lose the promise.
                    tracing::warn!(callback = id.0, %error, "scheduled callback cannot join its queue yet");
                    let at = now + std::time::Duration::from_secs(60);
                    self.scheduled.insert(id, Pending { at, ..pending });
                    continue;
                }
            };
            self.drain_queue_events(now);
            self.callbacks.push(StoreRequest::Joined { id, seq });
            let queue_name = self.config.queues[pending.queue.0].name.clone();
            self.journal.push_back((
                now,
                Record::Event(CallEvent {
                    queue: Some(queue_name.clone()),
                    caller: Some(pending.number.clone()),
                    detail: Some(serde_json::json!({ "scheduled": true })),
                    ..CallEvent::new(0, CallEventKind::Join)
                }),
            ));
            tracing::info!(
                callback = id.0,
                queue = %queue_name,
                seq = seq.0,
                "scheduled callback joined its queue"
            );
            self.callbacks.insert(
                entry,
                Callback::new(id, pending.queue, pending.number, 0),
                None,
            );
        }
    }

    /// `DELETE /api/callbacks/{id}`: takes an open callback of this node out (scheduled, or
    /// waiting in its queue with no agent rung for it yet). Returns its attempt count, for
    /// the `failed` state the driver then makes durable.
    pub fn cancel_callback(&mut self, now: Instant, id: CallbackId) -> Result<u32, ScheduleError> {
        if self.scheduled.remove(id).is_some() {
            tracing::info!(callback = id.0, "scheduled callback cancelled");
            return Ok(0);
        }
        let entry = self
            .callbacks
            .entry_of(id)
            .ok_or(ScheduleError::NotFound(id.0))?;
        let callback = self
            .callbacks
            .get(&entry)
            .ok_or(ScheduleError::NotFound(id.0))?;
        let idle = matches!(
            callback.phase(),
            CallbackPhase::Waiting | CallbackPhase::RetryAt(_)
        );
        if !idle || self.offered.contains(&entry) || self.agents.offered_to(entry).is_some() {
            return Err(ScheduleError::Dialling(id.0));
        }
        let attempts = callback.attempts;
        self.callbacks.remove(entry);
        self.queues.leave(entry, LeaveReason::Removed);
        self.drain_queue_events(now);
        tracing::info!(callback = id.0, "callback cancelled");
        self.process_events(now);
        Ok(attempts)
    }

    /// Scheduled callbacks not yet in their queues.
    pub fn callbacks_scheduled(&self) -> usize {
        self.scheduled.len()
    }
}
