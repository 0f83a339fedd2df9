//! Call events (docs/behaviour.md §8, like Asterisk's `queue_log`): join, announce, connect, ring
//! no-answer, abandon, complete. Each one is, at the same moment and from the same values,
//! - one log line (`event=<kind>` with call id, queue, caller, agent and waits as fields, so
//!   `--log-format json` gives one JSON object per event),
//! - one row for the durable store ([`Record::Event`], written by the driver), and
//! - one observation for the metrics ([`Observations`]: outcome counters, wait- and
//!   handle-time histograms per queue).
//!
//! Deriving all three from one call keeps the log, the database and `/metrics` from telling
//! different stories.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{B2bua, is_remote};
use crate::queue::QueueId;
use crate::store::{CallEvent, CallEventKind, Record};

/// Upper bounds (seconds) of the wait- and handle-time histogram buckets: from "answered at
/// once" to "an hour", dense where service-level targets usually sit (20–60 s).
pub const TIME_BUCKETS_S: [f64; 12] = [
    5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// A Prometheus-style histogram of durations in seconds with [`TIME_BUCKETS_S`] bounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    pub counts: [u64; TIME_BUCKETS_S.len() + 1],
    /// Sum of all observations, seconds.
    pub sum_s: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&mut self, value: Duration) {
        let s = value.as_secs_f64();
        let bucket = TIME_BUCKETS_S
            .iter()
            .position(|&upper| s <= upper)
            .unwrap_or(TIME_BUCKETS_S.len());
        self.counts[bucket] += 1;
        self.sum_s += s;
        self.count += 1;
    }

    /// Cumulative counts per bound (`le`), ending with `+Inf` = `count`.
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0u64, |acc, &n| {
            *acc += n;
            Some(*acc)
        })
    }
}

/// What the controller has observed since start, per queue name: read by `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// Call events by (queue, event kind word).
    pub events: BTreeMap<(String, &'static str), u64>,
    /// Time from arrival to an agent answering, per queue.
    pub wait_answered: BTreeMap<String, Histogram>,
    /// Time from arrival to hanging up while waiting, per queue.
    pub wait_abandoned: BTreeMap<String, Histogram>,
    /// Agent answer to hang-up, per queue.
    pub handle: BTreeMap<String, Histogram>,
}

/// The facts of one call event; unset fields are `None`.
#[derive(Debug, Clone, Default)]
pub struct EventFacts {
    /// SIP Call-ID of the caller's leg.
    pub call_id: Option<String>,
    /// Queue name.
    pub queue: Option<String>,
    /// The caller's number.
    pub caller: Option<String>,
    /// The agent's user.
    pub agent: Option<String>,
    /// How long the caller had waited.
    pub waited: Option<Duration>,
    /// For `complete`: agent answer to hang-up.
    pub handle: Option<Duration>,
    /// Anything else (position, staffed agents, status code), stored as JSON.
    pub detail: Option<serde_json::Value>,
}

impl B2bua {
    /// Records one call event: log line, store row and metrics observation.
    pub(super) fn call_event(&mut self, now: Instant, kind: CallEventKind, facts: EventFacts) {
        let queue = facts.queue.clone().unwrap_or_default();
        let obs = &mut self.counters.observations;
        *obs.events
            .entry((queue.clone(), kind.as_str()))
            .or_default() += 1;
        match (kind, facts.waited, facts.handle) {
            (CallEventKind::Connect, Some(w), _) => obs
                .wait_answered
                .entry(queue.clone())
                .or_default()
                .observe(w),
            (CallEventKind::Abandon, Some(w), _) => obs
                .wait_abandoned
                .entry(queue.clone())
                .or_default()
                .observe(w),
            (CallEventKind::Complete, _, Some(h)) => {
                obs.handle.entry(queue.clone()).or_default().observe(h)
            }
            _ => {}
        }
        if let Some(figures) = self
            .config
            .queue_index(&queue)
            .and_then(|i| self.service.get_mut(i))
        {
            match (kind, facts.waited, facts.handle) {
                (CallEventKind::Join, ..) => figures.offered(now),
                (CallEventKind::Connect, Some(w), _) => figures.answered(now, w),
                (CallEventKind::Abandon, Some(w), _) => figures.abandoned(now, w),
                (CallEventKind::Complete, _, Some(h)) => figures.handled(now, h),
                _ => {}
            }
        }
        let text = |v: &Option<String>| v.as_deref().unwrap_or("").to_owned();
        tracing::info!(
            event = kind.as_str(),
            call_id = %text(&facts.call_id),
            queue = %text(&facts.queue),
            caller = %text(&facts.caller),
            agent = %text(&facts.agent),
            waited_s = facts.waited.map_or(0.0, |w| w.as_secs_f64()),
            handle_s = facts.handle.map_or(0.0, |h| h.as_secs_f64()),
            detail = %facts.detail.as_ref().map(ToString::to_string).unwrap_or_default(),
            "{}",
            message(kind)
        );
        let mut detail = facts.detail;
        if let Some(handle) = facts.handle {
            let entry = detail.get_or_insert_with(|| serde_json::json!({}));
            if let Some(map) = entry.as_object_mut() {
                map.insert("handle_ms".into(), millis(handle).into());
            }
        }
        self.journal.push_back((
            now,
            Record::Event(CallEvent {
                // The driver stamps wall-clock time when it writes the row.
                ts_ms: 0,
                kind,
                call_id: facts.call_id,
                queue: facts.queue,
                caller: facts.caller,
                agent: facts.agent,
                wait_ms: facts.waited.map(millis),
                detail,
            }),
        ));
    }

    /// What has been observed so far, for `/metrics`.
    pub fn observations(&self) -> &Observations {
        &self.counters.observations
    }
}

impl B2bua {
    /// Queue events are logged; dispatch runs after every input anyway.
    pub(super) fn drain_queue_events(&mut self, now: Instant) {
        while let Some(event) = self.queues.poll_event() {
            tracing::debug!(?event, "queue event");
            self.cluster_queue_event(&event);
            let id = match event {
                crate::queue::QueueEvent::Joined { id, .. }
                | crate::queue::QueueEvent::Left { id, .. } => id,
            };
            if !is_remote(id) {
                self.learn_waits(now, &event);
            }
        }
    }

    /// Agent state changes are logged (one line per change, docs/behaviour.md §8).
    pub(super) fn drain_agent_events(&mut self) {
        while let Some(event) = self.agents.poll_event() {
            tracing::info!(?event, "agent");
            self.cluster_agent_event(&event);
            self.note_agent_event(&event);
        }
    }

    /// Feed the estimator (last 100 per queue, docs/behaviour.md §4) and the durable history.
    pub(super) fn record_handle_time(
        &mut self,
        now: Instant,
        queue: QueueId,
        handle: Duration,
        facts: EventFacts,
    ) {
        if let Some(times) = self.handle_times.get_mut(queue.0) {
            times.record(handle);
        }
        let name = self.config.queues[queue.0].name.clone();
        self.journal.push_back((
            now,
            Record::HandleTime(crate::store::HandleTime {
                queue: name,
                seconds: u32::try_from(handle.as_secs()).unwrap_or(u32::MAX),
                ended_at_ms: 0,
            }),
        ));
        self.call_event(
            now,
            CallEventKind::Complete,
            EventFacts {
                handle: Some(handle),
                ..facts
            },
        );
    }
}

/// The human part of the log line (the fields carry the facts).
fn message(kind: CallEventKind) -> &'static str {
    match kind {
        CallEventKind::Join => "caller joined queue",
        CallEventKind::Announce => "announcement",
        CallEventKind::Connect => "caller connected to agent",
        CallEventKind::RingNoAnswer => "agent did not answer",
        CallEventKind::Abandon => "caller hung up while waiting",
        CallEventKind::CallbackRequested => "callback requested",
        CallEventKind::CallbackDialled => "callback dialled",
        CallEventKind::CallbackCompleted => "callback completed",
        CallEventKind::CallbackFailed => "callback failed",
        CallEventKind::Complete => "call complete",
        CallEventKind::Overflow => "caller overflowed",
        CallEventKind::Resume => "caller resumed its place",
        CallEventKind::MonitorStart => "supervisor joined call",
        CallEventKind::MonitorStop => "supervisor left call",
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_inclusive_and_cumulative() {
        let mut h = Histogram::default();
        h.observe(Duration::from_secs(5));
        h.observe(Duration::from_millis(5001));
        h.observe(Duration::from_secs(7200));
        let cumulative: Vec<u64> = h.cumulative().collect();
        assert_eq!(cumulative[0], 1, "5 s is inside le=5");
        assert_eq!(cumulative[1], 2, "5.001 s is inside le=10");
        assert_eq!(cumulative[TIME_BUCKETS_S.len() - 1], 2);
        assert_eq!(*cumulative.last().unwrap(), 3, "+Inf holds everything");
        assert_eq!(h.count, 3);
        assert!((h.sum_s - 7210.001).abs() < 1e-6);
    }
}
