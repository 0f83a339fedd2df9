//! A queue's figures for the day and the last 15 minutes (docs/behaviour.md §8): calls
//! offered, answered, abandoned, the service level, the average wait and handle time, the
//! numbers a contact centre is judged by. Pure: fed the call events with `now`.
//!
//! **Service level** = callers answered within the target ÷ (callers answered + callers who
//! abandoned after the target). A caller who hung up before the target (a short abandon)
//! counts neither way: nothing could have answered it in time. `None` until a caller has
//! been answered or has abandoned after the target. Asterisk's `servicelevel` is answered
//! within ÷ answered (abandons ignored), its `SL2` (answered within + abandoned within) ÷
//! (answered + abandoned); both can be computed from the counts reported.

use std::time::{Duration, Instant};

use serde::Serialize;

/// The rolling window, in minutes.
pub const RECENT_MINUTES: u64 = 15;

/// Counts over one stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Callers who joined.
    pub offered: u64,
    /// Callers an agent answered.
    pub answered: u64,
    /// Of those, answered within the target.
    pub answered_within: u64,
    /// Callers who hung up while waiting.
    pub abandoned: u64,
    /// Of those, hung up within the target (short abandons).
    pub abandoned_within: u64,
    /// Total wait of the answered callers, ms.
    pub wait_answered_ms: u64,
    /// Conversations that ended, and their total handle time, ms.
    pub handled: u64,
    /// Their total handle time, ms.
    pub handle_ms: u64,
}

impl Tally {
    /// A caller joined.
    pub fn offer(&mut self) {
        self.offered += 1;
    }

    /// A caller was answered after waiting `waited` (within `target` or not).
    pub fn answer(&mut self, waited: Duration, target: Duration) {
        self.answered += 1;
        self.answered_within += u64::from(waited <= target);
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        self.wait_answered_ms = self.wait_answered_ms.saturating_add(ms);
    }

    /// A caller hung up after waiting `waited`.
    pub fn abandon(&mut self, waited: Duration, target: Duration) {
        self.abandoned += 1;
        self.abandoned_within += u64::from(waited <= target);
    }

    /// A conversation of `handle` ended.
    pub fn handle(&mut self, handle: Duration) {
        self.handled += 1;
        let ms = u64::try_from(handle.as_millis()).unwrap_or(u64::MAX);
        self.handle_ms = self.handle_ms.saturating_add(ms);
    }

    fn add(&mut self, other: &Tally) {
        self.offered += other.offered;
        self.answered += other.answered;
        self.answered_within += other.answered_within;
        self.abandoned += other.abandoned;
        self.abandoned_within += other.abandoned_within;
        self.wait_answered_ms += other.wait_answered_ms;
        self.handled += other.handled;
        self.handle_ms += other.handle_ms;
    }

    /// The service level (module docs), 0 to 1.
    pub fn service_level(&self) -> Option<f64> {
        let counted = self.answered + (self.abandoned - self.abandoned_within);
        (counted > 0).then(|| self.answered_within as f64 / counted as f64)
    }

    /// Abandoned ÷ (answered + abandoned), 0 to 1.
    pub fn abandon_rate(&self) -> Option<f64> {
        let ended = self.answered + self.abandoned;
        (ended > 0).then(|| self.abandoned as f64 / ended as f64)
    }

    /// Mean wait of the answered callers.
    pub fn average_wait(&self) -> Option<Duration> {
        (self.answered > 0).then(|| Duration::from_millis(self.wait_answered_ms / self.answered))
    }

    /// Mean handle time of the conversations that ended.
    pub fn average_handle(&self) -> Option<Duration> {
        (self.handled > 0).then(|| Duration::from_millis(self.handle_ms / self.handled))
    }

    /// The view the admin API, `/metrics` and the wallboard show.
    pub fn view(&self) -> TallyView {
        TallyView {
            offered: self.offered,
            answered: self.answered,
            answered_within: self.answered_within,
            abandoned: self.abandoned,
            abandoned_within: self.abandoned_within,
            abandon_rate: self.abandon_rate(),
            service_level: self.service_level(),
            average_wait_s: self.average_wait().map(|d| d.as_secs_f64()),
            average_handle_s: self.average_handle().map(|d| d.as_secs_f64()),
        }
    }
}

/// [`Tally`] as shown: counts and the figures derived from them (`null` with nothing to
/// derive them from).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TallyView {
    pub offered: u64,
    pub answered: u64,
    pub answered_within: u64,
    pub abandoned: u64,
    pub abandoned_within: u64,
    pub abandon_rate: Option<f64>,
    pub service_level: Option<f64>,
    pub average_wait_s: Option<f64>,
    pub average_handle_s: Option<f64>,
}

/// One queue's figures: today's, and per minute for the rolling window.
#[derive(Debug, Clone)]
pub struct ServiceFigures {
    target: Duration,
    origin: Instant,
    today: Tally,
    /// (minute since `origin`, its tally), for the last [`RECENT_MINUTES`] minutes.
    minutes: [(u64, Tally); RECENT_MINUTES as usize],
}

impl ServiceFigures {
    /// Figures against a `target` answer time, minutes counted from `origin`.
    pub fn new(target: Duration, origin: Instant) -> Self {
        Self {
            target,
            origin,
            today: Tally::default(),
            minutes: [(u64::MAX, Tally::default()); RECENT_MINUTES as usize],
        }
    }

    fn record(&mut self, now: Instant, change: impl Fn(&mut Tally)) {
        change(&mut self.today);
        let minute = now.saturating_duration_since(self.origin).as_secs() / 60;
        let slot = &mut self.minutes[(minute % RECENT_MINUTES) as usize];
        if slot.0 != minute {
            *slot = (minute, Tally::default());
        }
        change(&mut slot.1);
    }

    /// A caller joined.
    pub fn offered(&mut self, now: Instant) {
        self.record(now, Tally::offer);
    }

    /// A caller was answered after waiting `waited`.
    pub fn answered(&mut self, now: Instant, waited: Duration) {
        let target = self.target;
        self.record(now, |t| t.answer(waited, target));
    }

    /// A caller hung up after waiting `waited`.
    pub fn abandoned(&mut self, now: Instant, waited: Duration) {
        let target = self.target;
        self.record(now, |t| t.abandon(waited, target));
    }

    /// A conversation of `handle` ended.
    pub fn handled(&mut self, now: Instant, handle: Duration) {
        self.record(now, |t| t.handle(handle));
    }

    /// A new day: today's counts start again (the rolling window runs on).
    pub fn new_day(&mut self) {
        self.today = Tally::default();
    }

    /// Today's counts.
    pub fn today(&self) -> Tally {
        self.today
    }

    /// The counts of the last [`RECENT_MINUTES`] minutes up to `now` (this minute included).
    pub fn recent(&self, now: Instant) -> Tally {
        let minute = now.saturating_duration_since(self.origin).as_secs() / 60;
        let oldest = minute.saturating_sub(RECENT_MINUTES - 1);
        let mut sum = Tally::default();
        for (m, tally) in &self.minutes {
            if *m != u64::MAX && *m >= oldest && *m <= minute {
                sum.add(tally);
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripted_day_gives_exact_figures() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut f = ServiceFigures::new(Duration::from_secs(20), t0);
        // 10 callers: 5 answered (3 within 20 s), 3 abandoned (1 within 20 s), 2 waiting.
        for s in 0..10 {
            f.offered(at(s));
        }
        for waited in [5, 20, 12, 21, 90] {
            f.answered(at(100), Duration::from_secs(waited));
        }
        for waited in [3, 40, 200] {
            f.abandoned(at(300), Duration::from_secs(waited));
        }
        f.handled(at(400), Duration::from_secs(100));
        f.handled(at(400), Duration::from_secs(300));
        let today = f.today();
        assert_eq!(
            (today.offered, today.answered, today.answered_within),
            (10, 5, 3)
        );
        assert_eq!((today.abandoned, today.abandoned_within), (3, 1));
        // 3 within ÷ (5 answered + 2 abandoned after 20 s).
        assert_eq!(today.service_level(), Some(3.0 / 7.0));
        assert_eq!(today.abandon_rate(), Some(3.0 / 8.0));
        assert_eq!(today.average_wait(), Some(Duration::from_millis(29_600)));
        assert_eq!(today.average_handle(), Some(Duration::from_secs(200)));
        // The last 15 minutes at 20 min: only what happened from minute 6 on (the two calls
        // that ended at 400 s).
        let window = f.recent(at(20 * 60));
        assert_eq!((window.offered, window.answered, window.handled), (0, 0, 2));
        // Later answers land in the window; the morning's do not.
        f.answered(at(20 * 60 + 5), Duration::from_secs(2));
        let recent = f.recent(at(22 * 60));
        assert_eq!((recent.answered, recent.offered, recent.handled), (1, 0, 0));
        assert_eq!(recent.service_level(), Some(1.0));
        f.new_day();
        assert_eq!(f.today(), Tally::default());
        assert_eq!(f.recent(at(22 * 60)).answered, 1, "the window runs on");
        assert_eq!(Tally::default().service_level(), None);
    }

    #[test]
    fn the_window_is_the_last_fifteen_minutes_exactly() {
        let t0 = Instant::now();
        let mut f = ServiceFigures::new(Duration::from_secs(20), t0);
        for minute in 0..40u64 {
            f.offered(t0 + Duration::from_secs(minute * 60 + 30));
        }
        let now = t0 + Duration::from_secs(39 * 60 + 45);
        assert_eq!(f.recent(now).offered, 15, "minutes 25 to 39");
        assert_eq!(f.today().offered, 40);
    }
}
