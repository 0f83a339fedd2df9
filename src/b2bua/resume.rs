//! `[[queue]] resume_within` (docs/behaviour.md §3 "Resume"): a caller who hung up while
//! waiting and calls the same queue again from the same number within that many seconds
//! gets the old place back — its sequence number, priority and arrival time — once. Event
//! `resume`. Like FreeSWITCH's `abandoned-resume-allowed`, without its flaw of letting the
//! same place be taken twice: the kept place is handed out once and then forgotten.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::B2bua;
use crate::queue::{Entry, Level, QueueId, Seq};

/// Abandoned places kept at most (the oldest go first beyond this).
const KEPT: usize = 100_000;

/// A place kept for a caller who hung up.
#[derive(Debug, Clone, Copy)]
pub(super) struct KeptPlace {
    pub seq: Seq,
    pub level: Level,
    pub joined_at: Instant,
    left_at: Instant,
}

/// The kept places, by queue and caller number.
#[derive(Debug, Default)]
pub(super) struct Resumes {
    places: HashMap<(QueueId, String), KeptPlace>,
    /// Places already given back once: not kept a second time.
    given_back: HashSet<Seq>,
}

impl B2bua {
    /// A caller who waited in `queue` as `entry` hung up: its place is kept for the
    /// queue's `resume_within`.
    pub(super) fn keep_place(&mut self, now: Instant, queue: QueueId, caller: &str, entry: &Entry) {
        let within = self.config.queues[queue.0].resume_within;
        if within == 0 || caller.is_empty() || self.resumes.given_back.contains(&entry.seq) {
            return;
        }
        let places = &mut self.resumes.places;
        if places.len() >= KEPT {
            let limit = Duration::from_secs(within);
            places.retain(|(q, _), p| {
                now.saturating_duration_since(p.left_at) < limit || *q != queue
            });
            if places.len() >= KEPT {
                return;
            }
        }
        places.insert(
            (queue, caller.to_owned()),
            KeptPlace {
                seq: entry.seq,
                level: entry.level,
                joined_at: entry.joined_at,
                left_at: now,
            },
        );
    }

    /// The place kept for `caller` in `queue`, if it called back in time; handed out once.
    pub(super) fn take_place(
        &mut self,
        now: Instant,
        queue: QueueId,
        caller: &str,
    ) -> Option<KeptPlace> {
        let within = Duration::from_secs(self.config.queues[queue.0].resume_within);
        let place = self.resumes.places.remove(&(queue, caller.to_owned()))?;
        if now.saturating_duration_since(place.left_at) > within {
            return None;
        }
        if self.resumes.given_back.len() >= KEPT {
            self.resumes.given_back.clear();
        }
        self.resumes.given_back.insert(place.seq);
        Some(place)
    }
}
