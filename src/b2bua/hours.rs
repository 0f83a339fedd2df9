//! `[[queue]] hours`, `timezone` and `closed` (docs/behaviour.md §3 "Hours"): a caller who
//! arrives outside a queue's hours is sent to the `closed` queue, hears the closed message
//! and a BYE, or is offered a callback; a callback waiting in a closed queue is not dialled
//! until the queue opens (never at night). Callers already holding when a queue closes keep
//! their place and are served. The wall clock comes from the driver
//! ([`B2bua::set_wall_clock`]); the schedules are pure (`queue::hours`).

use std::time::{Duration, Instant};

use super::{B2bua, CallKey};
use crate::queue::hours::Schedule;
use crate::queue::{EntryId, EntryKind, QueueId};

impl B2bua {
    /// Each queue's schedule, in configuration order (validation has checked them).
    pub(super) fn schedules(config: &crate::config::Config) -> Vec<Schedule> {
        config
            .queues
            .iter()
            .map(|q| {
                Schedule::parse(&q.hours, &q.timezone).unwrap_or_else(|_| {
                    Schedule::parse(&[], "UTC").expect("UTC and no hours always parse")
                })
            })
            .collect()
    }

    /// The wall clock at `now` (Unix ms): the driver sets it at start and keeps it in step.
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: i64) {
        self.wall = (now, unix_ms);
        self.hours_change = self.next_hours_change(now);
    }

    pub(super) fn unix_ms_at(&self, now: Instant) -> i64 {
        let (at, ms) = self.wall;
        let since = i64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(0);
        ms + since
    }

    /// Whether `queue` is outside its hours at `now`.
    pub fn is_closed(&self, queue: QueueId, now: Instant) -> bool {
        self.schedules
            .get(queue.0)
            .is_some_and(|s| !s.is_open(self.unix_ms_at(now)))
    }

    /// Which queues are closed at `now`; empty when no queue has hours.
    pub(super) fn closed_queues(&self, now: Instant) -> Vec<bool> {
        if self.schedules.iter().all(Schedule::is_always_open) {
            return Vec::new();
        }
        (0..self.schedules.len())
            .map(|i| self.is_closed(QueueId(i), now))
            .collect()
    }

    /// Whether dispatch must pass over `entry` because it is a callback of a closed queue.
    pub(super) fn closed_callback(&self, closed: &[bool], entry: EntryId) -> bool {
        !closed.is_empty()
            && self
                .queues
                .get(entry)
                .is_some_and(|(q, e)| e.kind == EntryKind::Callback && closed[q.0])
    }

    /// The queue a new caller for `queue` joins: its `closed` queue when it is closed and
    /// names one, else itself.
    pub(super) fn queue_when_closed(&self, queue: usize, now: Instant) -> usize {
        if !self.is_closed(QueueId(queue), now) {
            return queue;
        }
        self.config
            .queue_index(&self.config.queues[queue].closed)
            .unwrap_or(queue)
    }

    /// What a caller who just joined a closed queue gets instead of waiting: `"hangup"` or
    /// `"callback"`; `None` when the queue is open (or sent it elsewhere already).
    pub(super) fn closed_action(&self, now: Instant, call_key: CallKey) -> Option<&'static str> {
        let queue = self.calls.get(&call_key)?.queue?;
        if !self.is_closed(queue, now) {
            return None;
        }
        match self.config.queues[queue.0].closed.as_str() {
            "callback" => Some("callback"),
            "hangup" => Some("hangup"),
            _ => None,
        }
    }

    /// When a queue next opens or closes.
    fn next_hours_change(&self, now: Instant) -> Option<Instant> {
        let unix = self.unix_ms_at(now);
        let next = self
            .schedules
            .iter()
            .filter_map(|s| s.next_change(unix))
            .min()?;
        let wait = u64::try_from(next - unix).unwrap_or(0);
        Some(now + Duration::from_millis(wait))
    }

    /// The next opening or closing, for the driver's timer.
    pub(super) fn hours_timeout(&self) -> Option<Instant> {
        self.hours_change
    }

    /// A queue opened or closed: the next change is looked up, and dispatch runs (callbacks
    /// kept for the opening are dialled).
    pub(super) fn run_hours(&mut self, now: Instant) {
        if self.hours_change.is_some_and(|at| at <= now) {
            for (i, q) in self.config.queues.iter().enumerate() {
                if !self.schedules[i].is_always_open() {
                    let open = !self.is_closed(QueueId(i), now);
                    tracing::info!(queue = %q.name, open, "opening hours");
                }
            }
            self.hours_change = self.next_hours_change(now + Duration::from_millis(1));
        }
    }
}
