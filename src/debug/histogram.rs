//! Latency histograms: log-bucketed, written by the loop without a lock or an atomic
//! read-modify-write, read from any thread (the monitor's `stats` and `metrics`).
//!
//! ```
//! let el = solo::EventLoop::builder().debug(true).build().unwrap();
//! let h = el.handle();
//! for _ in 0..100 {
//!     h.call_soon(|| {});
//! }
//! h.stop();
//! el.run_forever().unwrap();
//! let stats = el.stats().unwrap();
//! assert_eq!(stats.callback_time.count(), 100);
//! assert!(stats.callback_time.quantile(0.5) <= stats.callback_time.max());
//! ```
//!
//! A value `v` (nanoseconds) goes into one of 496 buckets: below 8 each value has its own;
//! above, each power of two is cut into 8 equal sub-buckets (HdrHistogram's idea with three
//! bits of precision), so a bucket is at most 12.5% wide and a quantile read from it is off by
//! at most that much (the exact maximum is kept separately). Recording is an index computation
//! (a leading-zero count and two shifts) and four relaxed load-and-store pairs: the loop is the
//! only writer, so plain stores suffice, and a reader on another thread sees each counter whole
//! (it may see one bucket incremented before the count, which moves a quantile by one sample).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two (three bits of precision).
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Buckets for all of `u64`: 8 exact ones, then 8 per power of two from 2^3 to 2^63.
pub(super) const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// The bucket of `v`.
#[inline]
fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let p = 63 - v.leading_zeros(); // floor(log2 v) >= SUB_BITS
    let mantissa = (v >> (p - SUB_BITS)) as usize & (SUB - 1);
    SUB + (p - SUB_BITS) as usize * SUB + mantissa
}

/// The smallest value of bucket `i`.
fn lower(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let p = (i - SUB) / SUB + SUB_BITS as usize;
    let mantissa = ((i - SUB) % SUB) as u64;
    (1u64 << p) + (mantissa << (p - SUB_BITS as usize))
}

/// The largest value of bucket `i`.
fn upper(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        u64::MAX
    } else {
        lower(i + 1) - 1
    }
}

/// Adds `n` to a counter that only one thread writes.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// The live histogram, in `DebugShared`: the loop records, anyone reads.
pub(crate) struct AtomicHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl AtomicHistogram {
    pub(crate) fn new() -> AtomicHistogram {
        AtomicHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records one value (ns). Loop thread only.
    #[inline]
    pub(crate) fn record(&self, ns: u64) {
        bump(&self.buckets[index(ns)], 1);
        bump(&self.count, 1);
        bump(&self.sum, ns);
        if ns > self.max.load(Ordering::Relaxed) {
            self.max.store(ns, Ordering::Relaxed);
        }
    }

    /// How many values were recorded (cheaper than a snapshot).
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The sum of the values (ns).
    pub(crate) fn sum_ns(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// The largest value (ns).
    pub(crate) fn max_ns(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// A copy, from any thread.
    pub(crate) fn snapshot(&self) -> Histogram {
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            count: self.count(),
            sum: self.sum_ns(),
            max: self.max_ns(),
        }
    }
}

/// A latency distribution: how many values, their sum and maximum, and quantiles read from
/// log-spaced buckets (at most 12.5% wide). From [`Stats`](super::Stats) in debug mode.
///
/// ```
/// let el = solo::EventLoop::builder().debug(true).build().unwrap();
/// el.run_until_complete(async {}).unwrap();
/// let polls = el.stats().unwrap().poll_time;
/// assert_eq!(polls.count(), 1); // the run_until_complete future, polled once
/// println!("p99 {:?}, max {:?}", polls.quantile(0.99), polls.max());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u64,
    max: u64,
}

impl Histogram {
    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their sum.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum)
    }

    /// The largest value (exact).
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// The mean; zero when empty.
    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.sum.checked_div(self.count).unwrap_or(0))
    }

    /// The value below which a fraction `q` (0.0 to 1.0) of the values lie: the upper end of
    /// the bucket that holds that rank, never above the maximum. Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(upper(i).min(self.max));
            }
        }
        self.max()
    }

    /// The counts per bucket as `(upper bound, count)`, non-empty buckets only, in order.
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (Duration::from_nanos(upper(i)), *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        assert_eq!(index(0), 0);
        assert_eq!(index(7), 7);
        assert_eq!(index(8), 8);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        for i in 0..BUCKETS {
            assert_eq!(index(lower(i)), i, "lower bound of {i}");
            assert_eq!(index(upper(i)), i, "upper bound of {i}");
            if i > SUB {
                // At most 12.5% wide.
                let width = upper(i) - lower(i) + 1;
                assert!(
                    width * 8 <= lower(i),
                    "bucket {i} is {width} wide at {}",
                    lower(i)
                );
            }
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let h = AtomicHistogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000); // 1 µs .. 1 ms
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        assert_eq!(s.max(), Duration::from_micros(1000));
        for (q, exact) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = s.quantile(q).as_nanos() as f64;
            assert!(
                got >= exact && got <= exact * 1.125,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(s.quantile(1.0), s.max());
        assert_eq!(Histogram::default().quantile(0.5), Duration::ZERO);
    }
}
