//! Media engine counters and the send-lateness histogram, readable from any thread.
//!
//! Each shard owns one [`ShardStats`] and is its only writer; the controller and the admin
//! endpoint read snapshots. Because there is a single writer, an update is a relaxed load
//! plus a relaxed store (plain `mov`s on x86), not a locked read-modify-write: the hot loop
//! pays no lock, no contended cache line and no allocation, and readers still see every
//! value eventually (relaxed atomics never tear).
//!
//! Lateness (actual send instant − the stream's scheduled instant) goes into a log-linear
//! histogram of microseconds: 8 sub-buckets per power of two, so any percentile is reported
//! within 12.5 % of the true value, in a fixed array of 232 counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A counter with exactly one writing thread.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning shard thread may call this (single writer): two writers
    /// would lose updates, never corrupt memory.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Sets the value (single writer, as for [`Counter::add`]).
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Sub-buckets per power of two (2^3).
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Values are clamped to 2^30 µs (about 18 minutes).
const MAX_EXP: u32 = 30;
/// Number of buckets: 8 exact ones for 0..8, then 8 per power of two from 2^3 to 2^30.
pub const BUCKETS: usize = SUB + (MAX_EXP as usize - SUB_BITS as usize + 1) * SUB;

fn bucket_of(us: u64) -> usize {
    let us = us.min((1 << (MAX_EXP + 1)) - 1);
    if us < SUB as u64 {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros();
    let sub = ((us >> (msb - SUB_BITS)) as usize) & (SUB - 1);
    (msb - SUB_BITS + 1) as usize * SUB + sub
}

/// Largest value (µs) that falls into `bucket`.
fn bucket_upper(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64;
    }
    let msb = (bucket / SUB) as u32 + SUB_BITS - 1;
    let sub = (bucket % SUB) as u64;
    let lower = (SUB as u64 + sub) << (msb - SUB_BITS);
    lower + (1 << (msb - SUB_BITS)) - 1
}

/// A single-writer histogram of send lateness in microseconds.
#[derive(Debug)]
pub struct LatenessHistogram {
    buckets: [Counter; BUCKETS],
    max: Counter,
    /// Sum of all samples (µs), for the Prometheus histogram's `_sum`.
    sum: Counter,
}

impl Default for LatenessHistogram {
    fn default() -> Self {
        LatenessHistogram {
            buckets: std::array::from_fn(|_| Counter::default()),
            max: Counter::default(),
            sum: Counter::default(),
        }
    }
}

impl LatenessHistogram {
    /// Records `n` sends each `late` after their scheduled instant (owner thread only).
    #[inline]
    pub fn record_n(&self, late: Duration, n: u64) {
        let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(us)].add(n);
        self.sum.add(us.saturating_mul(n));
        if us > self.max.get() {
            self.max.set(us);
        }
    }

    /// Adds this histogram's current counts into `into` (for merging shards).
    pub fn accumulate(&self, into: &mut LatenessCounts) {
        for (acc, b) in into.buckets.iter_mut().zip(&self.buckets) {
            *acc += b.get();
        }
        into.max_us = into.max_us.max(self.max.get());
        into.sum_us = into.sum_us.wrapping_add(self.sum.get());
    }
}

/// A plain snapshot of one or more histograms.
#[derive(Debug, Clone)]
pub struct LatenessCounts {
    buckets: [u64; BUCKETS],
    max_us: u64,
    sum_us: u64,
}

impl Default for LatenessCounts {
    fn default() -> Self {
        LatenessCounts {
            buckets: [0; BUCKETS],
            max_us: 0,
            sum_us: 0,
        }
    }
}

impl LatenessCounts {
    /// Cumulative counts at each of `bounds_us` (a sample counts under the first bound its
    /// whole bucket fits below, so within the 12.5 % bucket resolution), for `/metrics`.
    pub fn cumulative(&self, bounds_us: &[u64]) -> LatenessBuckets {
        let le_us = bounds_us
            .iter()
            .map(|&bound| {
                let n = (0..BUCKETS)
                    .take_while(|&b| bucket_upper(b) <= bound)
                    .map(|b| self.buckets[b])
                    .sum();
                (bound, n)
            })
            .collect();
        LatenessBuckets {
            le_us,
            count: self.buckets.iter().sum(),
            sum_us: self.sum_us,
        }
    }

    /// Summary: sample count, p50, p99 (upper bucket bounds, capped at the max) and max.
    pub fn summary(&self) -> Lateness {
        let samples: u64 = self.buckets.iter().sum();
        let pct = |q: f64| -> u64 {
            if samples == 0 {
                return 0;
            }
            // Rank of the q-quantile sample (1-based), at least 1.
            let rank = ((samples as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, &n) in self.buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return bucket_upper(i).min(self.max_us);
                }
            }
            self.max_us
        };
        Lateness {
            samples,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            max_us: self.max_us,
        }
    }
}

/// Send lateness as a Prometheus-style cumulative histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatenessBuckets {
    /// (upper bound, samples at or below it), bounds ascending.
    pub le_us: Vec<(u64, u64)>,
    /// All samples.
    pub count: u64,
    /// Sum of all samples.
    pub sum_us: u64,
}

/// Bucket bounds (µs) of [`EngineStats::lateness_buckets`]: 20 µs to a whole 20 ms period.
pub const LATENESS_BOUNDS_US: [u64; 10] = [20, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 20_000];

/// Send lateness summary, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lateness {
    /// Number of sends measured.
    pub samples: u64,
    /// Median lateness (upper bound of its bucket, within 12.5 %).
    pub p50_us: u64,
    /// 99th percentile lateness (upper bound of its bucket, within 12.5 %).
    pub p99_us: u64,
    /// Largest lateness seen.
    pub max_us: u64,
}

/// Counters owned by one shard thread.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Streams open on the shard (sockets held).
    pub streams: Counter,
    /// Streams currently sending.
    pub playing: Counter,
    /// RTP packets handed to the kernel.
    pub packets_sent: Counter,
    /// `send_to` failures (e.g. socket buffer full); the frame is dropped, the clock goes on.
    pub send_errors: Counter,
    /// Valid RTP (and RTCP-mux) packets received.
    pub packets_received: Counter,
    /// Inbound datagrams that are not RTP; dropped.
    pub malformed_received: Counter,
    /// Inbound RTP with the stream's telephone-event payload type (RFC 4733).
    pub telephone_events_received: Counter,
    /// Send slots skipped because the shard was more than the catch-up limit behind.
    pub skipped_frames: Counter,
    /// Bridged pairs (each two streams relaying to each other).
    pub bridges: Counter,
    /// RTP packets forwarded from one bridged leg out of the other.
    pub packets_relayed: Counter,
    /// Valid RTP read on a bridged leg but not forwarded: no destination known yet, a
    /// payload type the other leg did not negotiate, or reordered from before a switch.
    pub relay_dropped: Counter,
    /// Events for the controller dropped because its queue was full (it is stalled).
    pub events_dropped: Counter,
    /// Send lateness.
    pub lateness: LatenessHistogram,
}

/// Engine-wide counters, summed over shards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Open streams (sockets held).
    pub streams: u64,
    /// Streams currently sending.
    pub playing: u64,
    /// RTP packets sent.
    pub packets_sent: u64,
    /// Valid RTP/RTCP packets received.
    pub packets_received: u64,
    /// Sends the kernel refused (packet dropped, clock unaffected).
    pub send_errors: u64,
    /// Inbound datagrams that were not RTP (dropped and counted).
    pub malformed_received: u64,
    /// Inbound RFC 4733 telephone-event packets.
    pub telephone_events_received: u64,
    /// Frames skipped because a shard fell more than 100 ms behind.
    pub skipped_frames: u64,
    /// Bridged pairs.
    pub bridges: u64,
    /// RTP packets relayed between bridged legs (sent; not included in `packets_sent`).
    pub packets_relayed: u64,
    /// Valid RTP on bridged legs that could not be forwarded (see [`ShardStats`]).
    pub relay_dropped: u64,
    /// Events for the controller dropped on a full queue.
    pub events_dropped: u64,
    /// Send lateness against each stream's own schedule.
    pub lateness: Lateness,
    /// The same as a cumulative histogram at [`LATENESS_BOUNDS_US`].
    pub lateness_buckets: LatenessBuckets,
}

impl EngineStats {
    /// Sums the counters and merges the lateness histograms of `shards`.
    pub fn sum<'a>(shards: impl IntoIterator<Item = &'a ShardStats>) -> EngineStats {
        let mut out = EngineStats::default();
        let mut lateness = LatenessCounts::default();
        for s in shards {
            out.streams += s.streams.get();
            out.playing += s.playing.get();
            out.packets_sent += s.packets_sent.get();
            out.packets_received += s.packets_received.get();
            out.send_errors += s.send_errors.get();
            out.malformed_received += s.malformed_received.get();
            out.telephone_events_received += s.telephone_events_received.get();
            out.skipped_frames += s.skipped_frames.get();
            out.bridges += s.bridges.get();
            out.packets_relayed += s.packets_relayed.get();
            out.relay_dropped += s.relay_dropped.get();
            out.events_dropped += s.events_dropped.get();
            s.lateness.accumulate(&mut lateness);
        }
        out.lateness = lateness.summary();
        out.lateness_buckets = lateness.cumulative(&LATENESS_BOUNDS_US);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut prev = 0;
        for us in 0..100_000u64 {
            let b = bucket_of(us);
            assert!(b == prev || b == prev + 1, "no gap at {us}");
            assert!(us <= bucket_upper(b), "{us} within bucket {b}");
            assert!(b == 0 || us > bucket_upper(b - 1));
            prev = b;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_within_resolution() {
        let h = LatenessHistogram::default();
        for us in 1..=1000u64 {
            h.record_n(Duration::from_micros(us), 1);
        }
        let mut c = LatenessCounts::default();
        h.accumulate(&mut c);
        let s = c.summary();
        assert_eq!(s.samples, 1000);
        assert_eq!(s.max_us, 1000);
        assert!((500..=563).contains(&s.p50_us), "p50 {}", s.p50_us);
        assert!((990..=1000).contains(&s.p99_us), "p99 {}", s.p99_us);
        assert_eq!(LatenessCounts::default().summary(), Lateness::default());
        let buckets = c.cumulative(&[7, 100, 1000, 2000]);
        assert_eq!(buckets.count, 1000);
        assert_eq!(buckets.sum_us, 500_500);
        assert_eq!(buckets.le_us[0], (7, 7), "exact buckets below 8 µs");
        assert!(
            (88..=100).contains(&buckets.le_us[1].1),
            "{:?}",
            buckets.le_us
        );
        assert_eq!(buckets.le_us[3], (2000, 1000));
    }
}
