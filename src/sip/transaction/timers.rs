//! Transaction timers as data (RFC 3261 §17, table 4; RFC 6026 §8.4/§8.11 for Timers L and M).
//!
//! Every transaction owns a [`TimerTable`] of deadlines; the endpoint keeps one ordered
//! [`TimerQueue`] over all of them so that the next wake-up is found in `O(log n)` however many
//! transactions are live, and a timeout only visits the transactions that are due.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Identifies one transaction inside [`super::Transactions`]; never reused.
pub(super) type TxId = u64;

/// The RFC 3261 transaction timers (plus RFC 6026's L and M), named as in the RFC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// INVITE client: request retransmission, T1 doubling without cap.
    A,
    /// INVITE client: give up waiting for any response (64·T1).
    B,
    /// INVITE client: wait for response retransmissions after a non-2xx final.
    D,
    /// Non-INVITE client: request retransmission, T1 doubling capped at T2.
    E,
    /// Non-INVITE client: give up waiting for a final response (64·T1).
    F,
    /// INVITE server: final response retransmission, T1 doubling capped at T2.
    G,
    /// INVITE server: give up waiting for the ACK of a non-2xx final (64·T1).
    H,
    /// INVITE server: absorb ACK retransmissions after the ACK (T4).
    I,
    /// Non-INVITE server: absorb request retransmissions after the final (64·T1).
    J,
    /// Non-INVITE client: absorb response retransmissions after the final (T4).
    K,
    /// INVITE server (RFC 6026): stay in "Accepted" after a 2xx (64·T1).
    L,
    /// INVITE client (RFC 6026): stay in "Accepted" to pass 2xx retransmissions on (64·T1).
    M,
}

impl Timer {
    const COUNT: usize = 12;
    const ALL: [Timer; Self::COUNT] = [
        Timer::A,
        Timer::B,
        Timer::D,
        Timer::E,
        Timer::F,
        Timer::G,
        Timer::H,
        Timer::I,
        Timer::J,
        Timer::K,
        Timer::L,
        Timer::M,
    ];
}

/// The RFC 3261 timer base values (§17.1.1.1, table 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; the first retransmission interval (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (default 5 s); Timers I and K on UDP.
    pub t4: Duration,
    /// Timer D: how long an INVITE client absorbs final-response retransmissions (RFC: at least
    /// 32 s on UDP).
    pub timer_d: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_d: Duration::from_secs(32),
        }
    }
}

impl TimerConfig {
    /// 64·T1: the transaction timeout used by Timers B, F, H, J, L and M.
    pub fn timeout(&self) -> Duration {
        self.t1 * 64
    }
}

/// One transaction's deadlines, indexed by [`Timer`]; `Copy` so a snapshot is cheap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TimerTable([Option<Instant>; Timer::COUNT]);

impl TimerTable {
    pub(super) fn set(&mut self, timer: Timer, deadline: Instant) {
        self.0[timer as usize] = Some(deadline);
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.0[timer as usize] = None;
    }

    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer as usize]
    }

    pub(super) fn stop_all(&mut self) {
        self.0 = [None; Timer::COUNT];
    }

    fn iter(&self) -> impl Iterator<Item = (Timer, Instant)> + '_ {
        Timer::ALL
            .iter()
            .filter_map(|&timer| self.get(timer).map(|at| (timer, at)))
    }
}

/// Every armed deadline of every transaction, ordered by time. Entries are kept exact (removed
/// when a timer is stopped or re-armed), so the first entry is always the true next wake-up.
#[derive(Debug, Default)]
pub(super) struct TimerQueue {
    deadlines: BTreeSet<(Instant, TxId, Timer)>,
}

impl TimerQueue {
    /// Brings the queue in line with a transaction whose table changed from `old` to `new`.
    pub(super) fn sync(&mut self, id: TxId, old: &TimerTable, new: &TimerTable) {
        for timer in Timer::ALL {
            let (before, after) = (old.get(timer), new.get(timer));
            if before == after {
                continue;
            }
            if let Some(at) = before {
                self.deadlines.remove(&(at, id, timer));
            }
            if let Some(at) = after {
                self.deadlines.insert((at, id, timer));
            }
        }
    }

    /// Forgets every deadline of a transaction that is going away.
    pub(super) fn remove_all(&mut self, id: TxId, table: &TimerTable) {
        for (timer, at) in table.iter() {
            self.deadlines.remove(&(at, id, timer));
        }
    }

    /// The earliest armed deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _, _)| at)
    }

    /// Removes and returns the earliest deadline if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(TxId, Timer)> {
        let &(at, id, timer) = self.deadlines.first()?;
        if at > now {
            return None;
        }
        self.deadlines.pop_first();
        Some((id, timer))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_tracks_rearm_and_stop_exactly() {
        let base = Instant::now();
        let mut queue = TimerQueue::default();
        let mut table = TimerTable::default();
        let old = table;
        table.set(Timer::A, base + Duration::from_secs(2));
        table.set(Timer::B, base + Duration::from_secs(32));
        queue.sync(7, &old, &table);
        assert_eq!(queue.next(), Some(base + Duration::from_secs(2)));

        let old = table;
        table.set(Timer::A, base + Duration::from_secs(40));
        queue.sync(7, &old, &table);
        assert_eq!(queue.next(), Some(base + Duration::from_secs(32)));
        assert_eq!(queue.len(), 2);

        assert_eq!(queue.pop_due(base + Duration::from_secs(31)), None);
        assert_eq!(
            queue.pop_due(base + Duration::from_secs(32)),
            Some((7, Timer::B))
        );
        table.stop(Timer::B);
        queue.remove_all(7, &table);
        assert_eq!(queue.next(), None);
    }
}
