//! The wallboard's last hour (docs/behaviour.md §8): every 10 s, per queue, how many callers
//! wait and the longest wait, kept for an hour (360 points per queue, a few KiB), so a
//! wallboard opened now draws the last hour at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::B2bua;
use crate::queue::QueueId;

/// How often a point is taken.
pub const EVERY: Duration = Duration::from_secs(10);
/// Points kept: an hour's.
const POINTS: usize = 360;

/// Per queue, `[waiting, longest wait s]` every [`EVERY`], oldest first.
#[derive(Debug, Default)]
pub struct History {
    queues: Vec<VecDeque<[u64; 2]>>,
    last: Option<Instant>,
}

impl History {
    /// The points of `queue`, oldest first.
    pub fn of(&self, queue: QueueId) -> Vec<[u64; 2]> {
        self.queues
            .get(queue.0)
            .map(|points| points.iter().copied().collect())
            .unwrap_or_default()
    }

    /// When the next point is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.last.map(|last| last + EVERY)
    }
}

impl B2bua {
    /// Takes a point of every queue if one is due (after every input; the first point at
    /// the first input, then every [`EVERY`] on the timer).
    pub(super) fn sample_history(&mut self, now: Instant) {
        if self.history.last.is_some_and(|last| now < last + EVERY) {
            return;
        }
        self.history.last = Some(now);
        let queues: Vec<[u64; 2]> = self
            .queues
            .iter()
            .map(|(_, queue)| [queue.len() as u64, queue.longest_wait_s(now)])
            .collect();
        let history = &mut self.history.queues;
        history.resize_with(queues.len(), VecDeque::new);
        for (points, point) in history.iter_mut().zip(queues) {
            if points.len() == POINTS {
                points.pop_front();
            }
            points.push_back(point);
        }
    }
}
