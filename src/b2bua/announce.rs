//! When a held caller hears an announcement, and what it says (docs/behaviour.md §4 "Announcements").
//!
//! This module owns the per-call schedule (on entry, then every `announce_every` seconds;
//! `0` = only on entry) and the `announce_position_only_down` rule, and maps the queue's
//! [`WaitBucket`] onto the media layer's [`SpokenWait`]: the controller is the one place
//! that knows both layers. Pure: `now` comes in, nothing reads the clock.

use std::time::{Duration, Instant};

use crate::media::prompts::{Announcement, SpokenWait};
use crate::queue::estimate::WaitBucket;

/// The spoken phrase for an estimate bucket.
pub fn spoken(bucket: WaitBucket) -> SpokenWait {
    match bucket {
        WaitBucket::LessThanAMinute => SpokenWait::LessThanAMinute,
        WaitBucket::About(m) => SpokenWait::About(u16::from(m)),
        WaitBucket::FiveToTen => SpokenWait::FiveToTen,
        WaitBucket::MoreThanTen => SpokenWait::MoreThanTen,
    }
}

/// The position announcement for a caller at `position` whose wait estimate is `estimate`
/// (docs/behaviour.md §4), spoken rounded up.
pub fn position_announcement(position: usize, estimate: Duration) -> Announcement {
    let wait = WaitBucket::from_estimate(estimate);
    Announcement::Position {
        position: u32::try_from(position).unwrap_or(u32::MAX),
        wait: spoken(wait),
    }
}

/// [`position_announcement`] with `queue`'s options: `announce_position_limit` and
/// `announce_wait`.
pub fn queue_announcement(
    queue: &crate::config::QueueConfig,
    position: usize,
    estimate: Duration,
) -> Announcement {
    let plain = queue.announce_position_limit == 0 && queue.announce_wait;
    if plain {
        return position_announcement(position, estimate);
    }
    Announcement::Place {
        position: u32::try_from(position).unwrap_or(u32::MAX),
        limit: match queue.announce_position_limit {
            0 => crate::media::prompts::MAX_SPOKEN_NUMBER,
            limit => limit,
        },
        wait: queue
            .announce_wait
            .then(|| spoken(WaitBucket::from_estimate(estimate))),
    }
}

/// The schedule options of `queue`.
pub fn options(queue: &crate::config::QueueConfig) -> AnnounceOptions {
    AnnounceOptions {
        to_first: queue.announce_to_first,
        min_gap: Duration::from_secs(queue.announce_min_gap),
        messages: queue.periodic_messages.len(),
        message_every: (queue.periodic_every > 0)
            .then(|| Duration::from_secs(queue.periodic_every)),
    }
}

/// A queue's announcement options (`[[queue]] announce_to_first`, `announce_min_gap`,
/// `periodic_messages`, `periodic_every`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceOptions {
    /// Whether the caller at position 1 hears its announcements.
    pub to_first: bool,
    /// Least time between two announcements the caller hears.
    pub min_gap: Duration,
    /// How many periodic messages the queue has.
    pub messages: usize,
    /// Time between two periodic messages; `None`: never.
    pub message_every: Option<Duration>,
}

impl Default for AnnounceOptions {
    fn default() -> Self {
        Self {
            to_first: true,
            min_gap: Duration::ZERO,
            messages: 0,
            message_every: None,
        }
    }
}

/// One held caller's announcement timer and the last position it heard, and the timer of
/// its periodic messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceSchedule {
    /// `None` when only the entry announcement is made.
    every: Option<Duration>,
    only_down: bool,
    /// When the next announcement is due; `None` once no more are planned.
    next_at: Option<Instant>,
    /// The position last spoken.
    last_position: Option<usize>,
    options: AnnounceOptions,
    /// When the caller last heard an announcement or a message.
    last_spoken: Option<Instant>,
    /// When the next periodic message is due.
    message_at: Option<Instant>,
    /// Messages played so far (the next is this one, in turn).
    messages_played: usize,
}

impl AnnounceSchedule {
    /// A caller who joined at `now`: the entry announcement is due at once.
    pub fn new(now: Instant, announce_every_secs: u64, position_only_down: bool) -> Self {
        Self {
            every: (announce_every_secs > 0).then(|| Duration::from_secs(announce_every_secs)),
            only_down: position_only_down,
            next_at: Some(now),
            last_position: None,
            options: AnnounceOptions::default(),
            last_spoken: None,
            message_at: None,
            messages_played: 0,
        }
    }

    /// With the queue's `options`, for a caller who started holding at `from`: the first
    /// periodic message `message_every` after `from` (or the first such time after `now`).
    pub fn with_options(mut self, options: AnnounceOptions, from: Instant, now: Instant) -> Self {
        self.options = options;
        self.message_at = options
            .message_every
            .filter(|_| options.messages > 0)
            .map(|every| {
                let periods = now.saturating_duration_since(from).as_nanos() / every.as_nanos() + 1;
                from + every * u32::try_from(periods).unwrap_or(u32::MAX)
            });
        self
    }

    /// The schedule of a caller restored after a restart, who started holding at `from`:
    /// the next announcement falls where the period counted from `from` puts it after
    /// `now` (the entry announcement was made before).
    pub fn resumed(
        from: Instant,
        now: Instant,
        announce_every_secs: u64,
        position_only_down: bool,
    ) -> Self {
        let every = (announce_every_secs > 0).then(|| Duration::from_secs(announce_every_secs));
        let next_at = every.map(|every| {
            let periods = now.saturating_duration_since(from).as_nanos() / every.as_nanos() + 1;
            from + every * u32::try_from(periods).unwrap_or(u32::MAX)
        });
        Self {
            every,
            only_down: position_only_down,
            next_at,
            last_position: None,
            options: AnnounceOptions::default(),
            last_spoken: None,
            message_at: None,
            messages_played: 0,
        }
    }

    /// When the next announcement is due, for the controller's timer.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_at, self.message_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the caller heard something less than `min_gap` before `now`.
    fn too_soon(&self, now: Instant) -> bool {
        self.last_spoken
            .is_some_and(|last| now < last + self.options.min_gap)
    }

    /// At a due time, the periodic message to play now (its index, in turn), if one is due
    /// and the caller has not just heard something (then it comes `min_gap` after that).
    pub fn take_message(&mut self, now: Instant) -> Option<usize> {
        let (Some(due), Some(every)) = (self.message_at, self.options.message_every) else {
            return None;
        };
        if now < due {
            return None;
        }
        if self.too_soon(now) {
            self.message_at = self.last_spoken.map(|last| last + self.options.min_gap);
            return None;
        }
        self.message_at = Some(now + every);
        self.last_spoken = Some(now);
        let index = self.messages_played % self.options.messages.max(1);
        self.messages_played += 1;
        Some(index)
    }

    /// At a due time, decides whether to speak the caller's current `position`, and plans
    /// the next announcement `announce_every` after `now`. Returns the position to announce,
    /// or `None` when nothing is due yet or when `announce_position_only_down` forbids it
    /// (the position got worse, e.g. a VIP joined ahead: saying the old number would be
    /// false, so this round is skipped).
    pub fn on_timeout(&mut self, now: Instant, position: usize) -> Option<usize> {
        if self.next_at.is_none_or(|due| now < due) {
            return None;
        }
        self.next_at = self.every.map(|every| now + every);
        if self.only_down && self.last_position.is_some_and(|last| position > last) {
            return None;
        }
        // `announce_to_first = false`: the caller at the head hears nothing; `min_gap`: a
        // caller who just heard something is not spoken to again this round.
        if (position <= 1 && !self.options.to_first) || self.too_soon(now) {
            return None;
        }
        self.last_position = Some(position);
        self.last_spoken = Some(now);
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_then_every_interval() {
        let t0 = Instant::now();
        let mut s = AnnounceSchedule::new(t0, 30, true);
        assert_eq!(s.poll_timeout(), Some(t0));
        assert_eq!(s.on_timeout(t0, 5), Some(5));
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(s.on_timeout(t0 + Duration::from_secs(29), 4), None);
        assert_eq!(s.on_timeout(t0 + Duration::from_secs(30), 4), Some(4));
    }

    #[test]
    fn a_resumed_schedule_keeps_its_rhythm() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(75);
        let s = AnnounceSchedule::resumed(t0, now, 30, false);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(90)));
        let exact = AnnounceSchedule::resumed(t0, t0 + Duration::from_secs(60), 30, false);
        assert_eq!(exact.poll_timeout(), Some(t0 + Duration::from_secs(90)));
        assert_eq!(
            AnnounceSchedule::resumed(t0, now, 0, false).poll_timeout(),
            None
        );
    }

    #[test]
    fn zero_interval_means_entry_only() {
        let t0 = Instant::now();
        let mut s = AnnounceSchedule::new(t0, 0, false);
        assert_eq!(s.on_timeout(t0, 3), Some(3));
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.on_timeout(t0 + Duration::from_secs(600), 2), None);
    }

    #[test]
    fn worse_position_is_skipped_only_when_configured() {
        let t0 = Instant::now();
        let step = |n: u64| t0 + Duration::from_secs(30 * n);
        let mut down = AnnounceSchedule::new(t0, 30, true);
        let mut any = AnnounceSchedule::new(t0, 30, false);
        for s in [&mut down, &mut any] {
            assert_eq!(s.on_timeout(step(0), 3), Some(3));
        }
        assert_eq!(down.on_timeout(step(1), 4), None);
        assert_eq!(any.on_timeout(step(1), 4), Some(4));
        // Still compared with the last spoken position (3), not the skipped one.
        assert_eq!(down.on_timeout(step(2), 3), Some(3));
        assert_eq!(down.poll_timeout(), Some(step(3)));
    }

    #[test]
    fn announcement_says_the_estimate_rounded_up() {
        let s = Duration::from_secs;
        assert_eq!(
            position_announcement(7, s(720)),
            Announcement::Position {
                position: 7,
                wait: SpokenWait::MoreThanTen,
            }
        );
        assert_eq!(
            position_announcement(2, s(240)),
            Announcement::Position {
                position: 2,
                wait: SpokenWait::About(4),
            }
        );
        assert_eq!(
            position_announcement(4, s(181)),
            Announcement::Position {
                position: 4,
                wait: SpokenWait::About(4), // 181 s → about 4 minutes, never 3
            }
        );
        assert_eq!(spoken(WaitBucket::About(2)), SpokenWait::About(2));
    }

    fn with(options: AnnounceOptions, t0: Instant) -> AnnounceSchedule {
        AnnounceSchedule::new(t0, 30, false).with_options(options, t0, t0)
    }

    #[test]
    fn the_head_of_the_line_can_be_left_in_peace() {
        let t0 = Instant::now();
        let options = AnnounceOptions {
            to_first: false,
            ..AnnounceOptions::default()
        };
        let mut s = with(options, t0);
        assert_eq!(s.on_timeout(t0, 1), None, "position 1: nothing");
        assert_eq!(s.on_timeout(t0 + Duration::from_secs(30), 2), Some(2));
    }

    #[test]
    fn periodic_messages_take_turns_and_keep_the_minimum_gap() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let options = AnnounceOptions {
            to_first: true,
            min_gap: Duration::from_secs(10),
            messages: 2,
            message_every: Some(Duration::from_secs(25)),
        };
        let mut schedule = with(options, t0);
        assert_eq!(schedule.on_timeout(t0, 3), Some(3), "entry announcement");
        assert_eq!(
            schedule.poll_timeout(),
            Some(s(25)),
            "the first message at 25 s"
        );
        assert_eq!(schedule.take_message(s(25)), Some(0));
        // The position is due at 30 s, only 5 s after the message: skipped this round.
        assert_eq!(schedule.on_timeout(s(30), 3), None);
        assert_eq!(
            schedule.take_message(s(50)),
            Some(1),
            "then the second message"
        );
        // At 60 s the position is due again, 10 s after the message: spoken.
        assert_eq!(schedule.on_timeout(s(60), 2), Some(2));
        // The third message (the first again) is due at 75 s: 15 s after, fine.
        assert_eq!(schedule.take_message(s(75)), Some(0));
        // Exactly the gap after an announcement is fine.
        assert_eq!(schedule.on_timeout(s(90), 2), Some(2));
        assert_eq!(schedule.take_message(s(100)), Some(1));
        // A message due less than the gap after an announcement waits for the gap.
        let mut schedule = AnnounceSchedule::new(t0, 20, false).with_options(options, t0, t0);
        assert_eq!(schedule.on_timeout(t0, 3), Some(3));
        assert_eq!(schedule.on_timeout(s(20), 3), Some(3));
        assert_eq!(schedule.take_message(s(25)), None);
        assert_eq!(
            schedule.poll_timeout(),
            Some(s(30)),
            "postponed to 20 s + 10 s"
        );
        assert_eq!(schedule.take_message(s(30)), Some(0));
    }
}
