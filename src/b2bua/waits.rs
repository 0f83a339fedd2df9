//! The wait estimate callers hear, the wallboard shows and the callback offer compares
//! (docs/behaviour.md §4): the queue's [`forecast`] from what the controller knows this
//! instant, told at the quantile the queue's [`Calibration`] has learned, and what the queue
//! learns from each caller who leaves it.
//!
//! Per queue this keeps: the calibration (fed the forecast a caller was first told and its
//! real wait once answered; persisted like handle times), the recent arrivals per priority
//! level (how fast better-priority callers come to overtake), and the recent departures
//! (waits and hang-ups: the abandon rate per second of waiting).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::B2bua;
use crate::queue::calibration::{self, Calibration};
use crate::queue::forecast::{
    Forecast, HandleModel, LineForecast, LineOutlook, REPLAY_DEPTH, forecast_line,
};
use crate::queue::{EntryId, EntryKind, LeaveReason, Level, QueueEvent, QueueId};
use crate::store::{EstimateOutcome, Record};

/// A persisted outcome back as the calibration's; `None` for a row that does not read back
/// (a hand-edited file).
pub fn estimate_outcome(stored: &EstimateOutcome) -> Option<calibration::Outcome> {
    Some(calibration::Outcome {
        forecast: Forecast::from_quantiles(&stored.quantiles)?,
        waited: Duration::from_millis(stored.waited_ms),
    })
}

/// Arrivals remembered per priority level, for the overtaking rate.
const ARRIVALS_KEPT: usize = 100;
/// Departures remembered, for the abandon rate.
const DEPARTURES_KEPT: usize = 200;
/// How long a line's forecast is read from before it is replayed again, if nothing it was
/// made from has changed.
const LINE_FRESH: Duration = Duration::from_secs(1);

/// One line's forecast and what it was made from (docs/behaviour.md §4).
#[derive(Debug)]
struct LineCache {
    made: Instant,
    /// [`crate::queue::Agents::changes`] then.
    agents: u64,
    /// Which of the first places were callbacks.
    callbacks: u64,
    forecast: LineForecast,
}

impl LineCache {
    /// Whether this still answers for the caller at `position` at `now`.
    fn holds(&self, now: Instant, agents: u64, callbacks: u64, position: usize) -> bool {
        now.saturating_duration_since(self.made) < LINE_FRESH
            && now >= self.made
            && self.agents == agents
            && self.callbacks == callbacks
            && (position <= self.forecast.depth() || self.forecast.depth() == REPLAY_DEPTH)
    }
}

/// What one queue has learned about its waits.
#[derive(Debug, Default)]
pub struct QueueWaits {
    /// Which quantile is told.
    pub calibration: Calibration,
    /// Recent join times per level, oldest first.
    arrivals: HashMap<Level, VecDeque<Instant>>,
    /// Recent departures: seconds waited, and whether the caller hung up.
    departures: VecDeque<(f64, bool)>,
    /// The forecast each waiting entry was first told, and when.
    told: HashMap<EntryId, (Instant, Forecast)>,
    /// The estimate each waiting entry heard last: what the wallboard and API show, so a
    /// snapshot every second does not forecast every waiting caller again.
    last_told: HashMap<EntryId, Duration>,
    /// The line's forecast per priority level of the asking caller (the overtakers differ),
    /// made by the first announcement that needs it and read by the next ones. A cache: the
    /// snapshot reads estimates through `&self`.
    lines: RefCell<HashMap<Level, LineCache>>,
}

impl QueueWaits {
    /// Callers per second arriving at a level better than `level` lately.
    fn overtaking_rate(&self, now: Instant, level: Level) -> f64 {
        self.arrivals
            .iter()
            .filter(|(l, _)| **l < level)
            .map(|(_, times)| match times.front() {
                Some(&oldest) if times.len() > 1 => {
                    let span = now.saturating_duration_since(oldest).as_secs_f64();
                    if span > 0.0 {
                        times.len() as f64 / span
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            })
            .sum()
    }

    /// Hang-ups per second of waiting among the recent departures.
    fn abandon_rate(&self) -> f64 {
        let waited: f64 = self.departures.iter().map(|(w, _)| w).sum();
        let abandons = self.departures.iter().filter(|(_, a)| *a).count();
        if waited > 0.0 {
            abandons as f64 / waited
        } else {
            0.0
        }
    }
}

impl B2bua {
    /// The forecast of the wait of `entry`, at `position` of `queue`, at `now`: read from the
    /// line's forecast, made again first if anything it was made from changed.
    pub(super) fn wait_forecast(
        &self,
        now: Instant,
        queue: QueueId,
        entry: EntryId,
        position: usize,
    ) -> Forecast {
        let waits = &self.waits[queue.0];
        let level = self.queues.get(entry).map_or(Level::MAX, |(_, e)| e.level);
        let line = self.queues.queue(queue);
        // Which of the places replayed one by one are callbacks, and how deep to replay.
        let (mut callbacks, mut depth) = (0u64, 0);
        for (place, e) in line
            .into_iter()
            .flat_map(|q| q.iter())
            .take(REPLAY_DEPTH)
            .enumerate()
        {
            if e.kind == EntryKind::Callback {
                callbacks |= 1 << place;
            }
            depth = place + 1;
        }
        let changes = self.agents.changes();
        let mut lines = waits.lines.borrow_mut();
        if let Some(cached) = lines.get(&level)
            && cached.holds(now, changes, callbacks, position)
        {
            return cached.forecast.at(position);
        }
        let agents = self.agents.outlook(queue, now);
        let forecast = forecast_line(
            &LineOutlook {
                agents: &agents,
                depth: depth.max(position.min(REPLAY_DEPTH)),
                callbacks,
                abandon_rate: waits.abandon_rate(),
                overtaking_rate: waits.overtaking_rate(now, level),
            },
            &HandleModel::new(&self.handle_times[queue.0]),
        );
        let at = forecast.at(position);
        lines.insert(
            level,
            LineCache {
                made: now,
                agents: changes,
                callbacks,
                forecast,
            },
        );
        at
    }

    /// The estimate shown for `entry` (wallboard, API): the one it heard last, or, for an
    /// entry that has heard none yet (a callback keeping its place), a forecast now.
    pub(super) fn wait_estimate(
        &self,
        now: Instant,
        queue: QueueId,
        entry: EntryId,
        position: usize,
    ) -> Duration {
        let waits = &self.waits[queue.0];
        waits.last_told.get(&entry).copied().unwrap_or_else(|| {
            waits
                .calibration
                .estimate(&self.wait_forecast(now, queue, entry, position))
        })
    }

    /// The estimate announced to `entry` at `position`. It is what the wallboard shows from
    /// now on, and the first one told at position 2 or later (position 1 hears "you are
    /// next", no estimate) is remembered, to learn from once the caller is answered.
    pub(super) fn tell_wait(
        &mut self,
        now: Instant,
        queue: QueueId,
        entry: EntryId,
        position: usize,
    ) -> Duration {
        let forecast = self.wait_forecast(now, queue, entry, position);
        let waits = &mut self.waits[queue.0];
        if position >= 2 {
            waits.told.entry(entry).or_insert((now, forecast));
        }
        let estimate = waits.calibration.estimate(&forecast);
        waits.last_told.insert(entry, estimate);
        estimate
    }

    /// What the queues say about their callers teaches the estimate: joins (who overtakes
    /// whom), hang-ups (the abandon rate) and answers (the calibration).
    pub(super) fn learn_waits(&mut self, now: Instant, event: &QueueEvent) {
        match *event {
            QueueEvent::Joined { queue, level, .. } => {
                let times = self.waits[queue.0].arrivals.entry(level).or_default();
                if times.len() == ARRIVALS_KEPT {
                    times.pop_front();
                }
                times.push_back(now);
            }
            QueueEvent::Left {
                queue,
                id,
                reason,
                joined,
                kind,
            } => {
                let waits = &mut self.waits[queue.0];
                let told = waits.told.remove(&id);
                waits.last_told.remove(&id);
                if kind != EntryKind::Caller {
                    return;
                }
                let waited = now.saturating_duration_since(joined);
                let abandoned = match reason {
                    LeaveReason::Abandoned => true,
                    LeaveReason::Dispatched => false,
                    // Removed (shutdown, a failure): tells nothing about waits.
                    _ => return,
                };
                if waits.departures.len() == DEPARTURES_KEPT {
                    waits.departures.pop_front();
                }
                waits
                    .departures
                    .push_back((waited.as_secs_f64(), abandoned));
                if let (false, Some((told_at, forecast))) = (abandoned, told) {
                    let outcome = calibration::Outcome {
                        forecast,
                        waited: now.saturating_duration_since(told_at),
                    };
                    waits.calibration.record(outcome);
                    let record = EstimateOutcome {
                        queue: self.config.queues[queue.0].name.clone(),
                        quantiles: outcome.forecast.quantiles().to_vec(),
                        waited_ms: u64::try_from(outcome.waited.as_millis()).unwrap_or(u64::MAX),
                    };
                    self.journal
                        .push_back((now, Record::EstimateOutcome(record)));
                }
            }
        }
    }

    /// Puts back the outcomes a queue learned from before a restart (oldest first).
    pub fn restore_estimate_outcomes(
        &mut self,
        queue: &str,
        outcomes: impl IntoIterator<Item = calibration::Outcome>,
    ) {
        if let Some(index) = self.config.queue_index(queue) {
            for outcome in outcomes {
                self.waits[index].calibration.record(outcome);
            }
        }
    }
}
