//! `[[queue]] when_no_agents` and `no_agents_grace` (docs/behaviour.md §3): what happens
//! when no agent of a queue is logged in, meaning registered and not paused (an agent
//! ringing, talking or resting still counts: it will be back).
//!
//! ```text
//!  when_no_agents   a new caller                     callers waiting, no_agents_grace
//!                                                    after the last agent logged off
//!  join             joins and waits                  keep waiting
//!  reject           480 before it is answered        "Goodbye.", BYE
//!  overflow         holds, then `overflow` at once   `overflow` (queue, callback, hangup)
//! ```
//! An agent logging in during the grace period ends it: nobody is sent away. Callbacks
//! already promised keep their place whatever happens.

use std::time::{Duration, Instant};

use super::{B2bua, CallKey};
use crate::config::WhenNoAgents;
use crate::queue::QueueId;

impl B2bua {
    /// Whether a new caller for `queue` is refused `480` before it is answered.
    pub(super) fn refused_for_no_agents(&self, queue: QueueId) -> bool {
        self.config.queues[queue.0].when_no_agents == WhenNoAgents::Reject
            && self.agents.staffed(queue) == 0
    }

    /// A caller that has just started holding in a queue nobody serves, with
    /// `when_no_agents = "overflow"`: the queue's `overflow` at once.
    pub(super) fn overflow_on_arrival(&mut self, now: Instant, call_key: CallKey) {
        let Some(queue) = self.calls.get(&call_key).and_then(|c| c.queue) else {
            return;
        };
        let config = &self.config.queues[queue.0];
        if config.when_no_agents == WhenNoAgents::Overflow && self.agents.staffed(queue) == 0 {
            let target = config.overflow.clone();
            self.overflow(now, call_key, queue, &target, "no_agents");
        }
    }

    /// Starts a queue's grace period when its last agent logs off, ends it when one logs on.
    pub(super) fn watch_staffing(&mut self, now: Instant) {
        for (i, config) in self.config.queues.iter().enumerate() {
            if config.when_no_agents == WhenNoAgents::Join {
                continue;
            }
            let queue = QueueId(i);
            if self.agents.staffed(queue) > 0 {
                self.no_agents.remove(&queue);
            } else {
                let grace = Duration::from_secs(config.no_agents_grace);
                self.no_agents.entry(queue).or_insert((now + grace, false));
            }
        }
    }

    /// The next end of a grace period.
    pub(super) fn no_agents_timeout(&self) -> Option<Instant> {
        self.no_agents
            .values()
            .filter(|(_, done)| !done)
            .map(|(at, _)| *at)
            .min()
    }

    /// Applies `when_no_agents` to the callers still waiting in each queue whose grace
    /// period ran out (callers whose agent rings are left alone).
    pub(super) fn run_no_agents(&mut self, now: Instant) {
        let due: Vec<QueueId> = self
            .no_agents
            .iter_mut()
            .filter(|(_, (at, done))| !*done && *at <= now)
            .map(|(&queue, (_, done))| {
                *done = true;
                queue
            })
            .collect();
        for queue in due {
            let config = &self.config.queues[queue.0];
            let target = match config.when_no_agents {
                WhenNoAgents::Join => continue,
                WhenNoAgents::Reject => "hangup".to_owned(),
                WhenNoAgents::Overflow => config.overflow.clone(),
            };
            let waiting: Vec<CallKey> = self
                .queues
                .queue(queue)
                .into_iter()
                .flat_map(|q| q.iter())
                .map(|e| CallKey(e.id.0))
                .filter(|key| {
                    self.calls.get(key).is_some_and(|c| c.queue == Some(queue))
                        && !self.callbacks.holds_back(key.entry(), true)
                        && self.agents.offered_to(key.entry()).is_none()
                        && !self.offered.contains(&key.entry())
                })
                .collect();
            if !waiting.is_empty() {
                tracing::info!(
                    queue = %config.name,
                    callers = waiting.len(),
                    to = %target,
                    "no agent logged in: sending the waiting callers away"
                );
            }
            for call_key in waiting {
                self.overflow(now, call_key, queue, &target, "no_agents");
            }
        }
    }
}
