//! How long the store's transactions take, as lock-free histograms (`/metrics` shows them as
//! `spade_store_transaction_seconds`). Observing is a few relaxed atomic adds: no lock, no
//! allocation, on every transaction of the engine's hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets in seconds: a task transition commits in about a millisecond,
/// so the scale starts at 50 µs; above 5 s a writer is stuck behind another process's lock.
pub const BOUNDS_SECONDS: [f64; 15] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    5.0,
];

/// The same bounds in nanoseconds, so an observation compares integers.
const BOUNDS_NANOS: [u64; 15] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
];

/// Which kind of transaction, on which connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Store::write`: `BEGIN IMMEDIATE` on the writer connection.
    Write,
    /// `Store::read`: a read transaction on the writer connection (the engine's reads).
    Read,
    /// `Store::read_snapshot`: a read transaction on a read-only connection (the HTTP API).
    Snapshot,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Write, Kind::Read, Kind::Snapshot];

    /// `(connection, kind)` label values.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Kind::Write => ("writer", "write"),
            Kind::Read => ("writer", "read"),
            Kind::Snapshot => ("reader", "read"),
        }
    }
}

/// One histogram: a count per bucket (the last one past every bound) and the sum.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NANOS.partition_point(|bound| *bound < nanos);
        if let Some(bucket) = self.buckets.get(i) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Snapshot {
        let mut cumulative = [0; BOUNDS_NANOS.len()];
        let mut total = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            total += bucket.load(Ordering::Relaxed);
            if let Some(c) = cumulative.get_mut(i) {
                *c = total;
            }
        }
        Snapshot {
            cumulative,
            count: total,
            sum_seconds: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        }
    }
}

/// A histogram as Prometheus shows it: cumulative counts per bound of [`BOUNDS_SECONDS`].
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub cumulative: [u64; BOUNDS_SECONDS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

/// The transaction times of one store, one histogram per [`Kind`].
#[derive(Debug, Default)]
pub struct Timings {
    write: Histogram,
    read: Histogram,
    snapshot: Histogram,
}

impl Timings {
    fn of(&self, kind: Kind) -> &Histogram {
        match kind {
            Kind::Write => &self.write,
            Kind::Read => &self.read,
            Kind::Snapshot => &self.snapshot,
        }
    }

    pub fn observe(&self, kind: Kind, took: Duration) {
        self.of(kind).observe(took);
    }

    pub fn snapshot(&self, kind: Kind) -> Snapshot {
        self.of(kind).snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_in_nanoseconds_match_the_bounds_in_seconds() {
        for (s, n) in BOUNDS_SECONDS.iter().zip(BOUNDS_NANOS) {
            assert_eq!(Duration::from_secs_f64(*s).as_nanos(), u128::from(n));
        }
    }

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let t = Timings::default();
        t.observe(Kind::Write, Duration::from_micros(50)); // on the bound: le 0.00005
        t.observe(Kind::Write, Duration::from_micros(700)); // le 0.001
        t.observe(Kind::Write, Duration::from_secs(9)); // past every bound: +Inf only
        let s = t.snapshot(Kind::Write);
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[3], 1);
        assert_eq!(s.cumulative[4], 2);
        assert_eq!(s.cumulative[BOUNDS_SECONDS.len() - 1], 2);
        assert!((s.sum_seconds - 9.00075).abs() < 1e-9, "{}", s.sum_seconds);
        assert_eq!(t.snapshot(Kind::Read).count, 0);
    }
}
