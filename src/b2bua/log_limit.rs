//! Log lines for refusals, rate-limited: a flood of refused requests writes one line per
//! interval with the count of those it stood for, not one line per packet (docs/behaviour.md §9).
//! Sans-IO: fed `now`.

use std::time::{Duration, Instant};

/// How often one kind of refusal may be logged.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// One kind of log line, allowed at most once per [`LOG_EVERY`].
#[derive(Debug, Default, Clone)]
pub struct LogLimit {
    next: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// Whether to write the line now. `Some(n)`: yes, and `n` lines like it were suppressed
    /// since the last one written; `None`: suppress it (it is counted).
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.suppressed += 1;
            return None;
        }
        self.next = Some(now + LOG_EVERY);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_it_stands_for() {
        let t0 = Instant::now();
        let mut limit = LogLimit::default();
        assert_eq!(limit.allow(t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(limit.allow(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(limit.allow(t0 + LOG_EVERY), Some(1000));
        assert_eq!(limit.allow(t0 + LOG_EVERY), None);
    }
}
