//! Lock-free counters for metrics: a [`Histogram`] records observations into fixed
//! buckets with atomics, so hot paths (WAL syncs, model batches) record without a lock
//! and without depending on a metrics library; the server reads [`Snapshot`]s when it
//! is scraped.

use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram over fixed upper bounds, plus an unbounded last bucket.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then the overflow bucket.
    counts: Vec<AtomicU64>,
    /// Sum of the observations as f64 bits, updated with a compare-and-swap loop.
    sum_bits: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sum: f64,
    pub count: u64,
    /// `(upper bound, observations in that bucket)`, not cumulative; the last bound is
    /// `f64::MAX`.
    pub buckets: Vec<(f64, u64)>,
}

/// Bounds for durations in seconds: 50 µs to about 3.3 s, doubling.
pub const SECONDS_BOUNDS: &[f64] = &[
    0.00005, 0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512,
    0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768,
];

/// Bounds for small counts (items per batch): powers of two up to 512.
pub const COUNT_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

impl Histogram {
    /// An empty histogram over `bounds`, which must ascend.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let mut old = self.sum_bits.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(old) + value).to_bits();
            match self.sum_bits.compare_exchange_weak(
                old,
                new,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(current) => old = current,
            }
        }
    }

    /// The counts and sum now.
    pub fn snapshot(&self) -> Snapshot {
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(&self.counts)
            .map(|(bound, c)| (bound, c.load(Ordering::Relaxed)))
            .collect();
        Snapshot {
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
            count: buckets.iter().map(|b| b.1).sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets() {
        let h = Histogram::new(COUNT_BOUNDS);
        for v in [1.0, 3.0, 4.0, 1000.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.sum, 1008.0);
        assert_eq!(s.buckets[0], (1.0, 1));
        assert_eq!(s.buckets[1], (2.0, 0));
        assert_eq!(s.buckets[2], (4.0, 2));
        assert_eq!(s.buckets.last(), Some(&(f64::MAX, 1)));
    }
}
