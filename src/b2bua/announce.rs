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

/// One held caller's announcement timer and the last position it heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceSchedule {
    /// `None` when only the entry announcement is made.
    every: Option<Duration>,
    only_down: bool,
    /// When the next announcement is due; `None` once no more are planned.
    next_at: Option<Instant>,
    /// The position last spoken.
    last_position: Option<usize>,
}

impl AnnounceSchedule {
    /// A caller who joined at `now`: the entry announcement is due at once.
    pub fn new(now: Instant, announce_every_secs: u64, position_only_down: bool) -> Self {
        Self {
            every: (announce_every_secs > 0).then(|| Duration::from_secs(announce_every_secs)),
            only_down: position_only_down,
            next_at: Some(now),
            last_position: None,
        }
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
        }
    }

    /// When the next announcement is due, for the controller's timer.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_at
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
        self.last_position = Some(position);
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
}
