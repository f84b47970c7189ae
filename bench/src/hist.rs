//! A log-linear latency histogram in the manner of HdrHistogram.
//!
//! Values (nanoseconds) below 128 are counted exactly; above, every power of
//! two is split into 64 equal sub-buckets, so a recorded value is known to
//! within 1/64 (1.6 %) of itself, at any magnitude, in a fixed 9 KB of
//! counters. Recording is an index computation and an increment: cheap enough
//! for a load generator to do for every message. Each client task keeps its
//! own histogram and the scenario merges them at the end, so the hot path
//! shares nothing.
//!
//! Quantiles are reported as the highest value of the bucket they fall in
//! (HdrHistogram's convention): they never understate a latency.

use std::time::Duration;

/// log2 of the sub-bucket count of the first (exact) range.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const HALF: u64 = SUB / 2;
/// Values are clamped below 2^MAX_BITS ns (about 18 minutes).
const MAX_BITS: u32 = 40;
const BUCKETS: usize = (SUB + (MAX_BITS - SUB_BITS) as u64 * HALF) as usize;

#[derive(Clone)]
pub struct Histogram {
    /// Empty until the first value is recorded, so a client task that never
    /// records (most receivers) costs no memory.
    counts: Vec<u32>,
    total: u64,
    max: u64,
    min: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let v = v.min((1 << MAX_BITS) - 1);
    let top_bit = 63 - v.leading_zeros();
    let shift = top_bit - (SUB_BITS - 1);
    let sub = v >> shift; // in [HALF, SUB)
    (SUB + u64::from(shift - 1) * HALF + (sub - HALF)) as usize
}

/// The largest value that falls into bucket `i`.
fn highest(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = (i - SUB) / HALF + 1;
    let sub = (i - SUB) % HALF + HALF;
    ((sub + 1) << shift) - 1
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: Vec::new(),
            total: 0,
            max: 0,
            min: u64::MAX,
        }
    }

    pub fn record_ns(&mut self, ns: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        let slot = &mut self.counts[index(ns)];
        *slot = slot.saturating_add(1);
        self.total += 1;
        self.max = self.max.max(ns);
        self.min = self.min.min(ns);
    }

    pub fn record(&mut self, d: Duration) {
        self.record_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max_ns(&self) -> u64 {
        self.max
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.min = self.min.min(other.min);
    }

    /// The value at quantile `q` (0.0..=1.0), in nanoseconds; 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u64::from(c);
            if seen >= rank {
                // Never report more than the largest value actually seen.
                return highest(i).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_and_are_ordered() {
        let mut last = 0;
        for v in (0..5000u64).chain((1..MAX_BITS).map(|b| (1u64 << b) + 12345)) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(
                highest(i) >= v.min((1 << MAX_BITS) - 1),
                "{v} above its bucket"
            );
            assert!(i >= last || v < 5000, "indexes grow with values");
            last = i;
        }
        for i in 1..BUCKETS {
            assert!(highest(i) > highest(i - 1));
            assert_eq!(index(highest(i)), i);
        }
    }

    #[test]
    fn quantiles_are_within_the_stated_precision() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record_ns(v * 1000); // 1 µs .. 100 ms, uniform
        }
        for (q, want) in [
            (0.5, 50_000_000.0),
            (0.99, 99_000_000.0),
            (0.999, 99_900_000.0),
        ] {
            let got = h.quantile_ns(q) as f64;
            assert!(
                (got - want).abs() / want < 1.0 / 60.0,
                "q{q}: {got} vs {want}"
            );
            assert!(got >= want, "quantiles never understate");
        }
        assert_eq!(h.quantile_ns(1.0), 100_000_000);
        assert_eq!(h.count(), 100_000);
    }

    #[test]
    fn merging_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record_ns(10);
        b.record_ns(1_000_000);
        b.record_ns(3);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max_ns(), 1_000_000);
        assert_eq!(a.quantile_ns(0.0), 3);
        assert_eq!(Histogram::new().quantile_ns(0.99), 0);
    }
}
