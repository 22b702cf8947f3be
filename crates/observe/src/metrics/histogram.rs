//! Duration histograms (requests, upstream connects and first bytes, configuration applies): fixed
//! buckets, counted per worker, made cumulative at scrape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::per_worker::add_own;

/// Number of finite buckets; one more counts observations above the last bound (`+Inf`).
const FINITE_BUCKETS: usize = 14;

/// Upper bounds in nanoseconds. Prometheus' `le` is inclusive, so an observation lands in the first bucket
/// whose bound is >= it. Nanoseconds, not the microseconds of the sum, so that 500.4 us is not counted as
/// <= 0.0005 s.
const BOUNDS_NANOS: [u64; FINITE_BUCKETS] = [
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
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The `le` label of each bucket, `+Inf` last, written as fixed strings so a scrape formats no floats.
pub(crate) const BUCKET_LABELS: [&str; FINITE_BUCKETS + 1] = [
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
    "2.5", "5", "10", "+Inf",
];

/// One worker's counts, written by that worker only. Buckets are not cumulative here: an observation
/// touches one bucket and the sum, and the scrape does the running total.
#[derive(Default)]
pub(crate) struct HistogramCell {
    buckets: [AtomicU64; FINITE_BUCKETS + 1],
    /// Sum of observations in whole microseconds: an integer so it can be an atomic add; u64 microseconds
    /// overflow after about 584,000 years of accumulated latency.
    sum_micros: AtomicU64,
}

impl HistogramCell {
    /// Counts one observation.
    pub(crate) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // In 0..=FINITE_BUCKETS: the +Inf slot when no finite bound holds it.
        let bucket = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        add_own(&self.buckets[bucket], 1);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        add_own(&self.sum_micros, micros);
    }
}

/// Counts summed over workers, as read at one scrape.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistogramSnapshot {
    /// Per-bucket (not cumulative) counts, `+Inf` overflow last.
    buckets: [u64; FINITE_BUCKETS + 1],
    sum_micros: u64,
}

impl HistogramSnapshot {
    /// Adds one worker's counts. Relaxed loads may see a sum and buckets from slightly different moments;
    /// Prometheus clients accept the same skew.
    pub(crate) fn add(&mut self, cell: &HistogramCell) {
        for (total, bucket) in self.buckets.iter_mut().zip(&cell.buckets) {
            *total = total.wrapping_add(bucket.load(Ordering::Relaxed));
        }
        self.sum_micros = self
            .sum_micros
            .wrapping_add(cell.sum_micros.load(Ordering::Relaxed));
    }

    /// Cumulative counts per `le` bound, in the order of [`BUCKET_LABELS`]; the last is the total count.
    pub(crate) fn cumulative(&self) -> [u64; FINITE_BUCKETS + 1] {
        let mut running = 0u64;
        self.buckets.map(|count| {
            running = running.wrapping_add(count);
            running
        })
    }

    /// Number of observations.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().fold(0, |acc, c| acc.wrapping_add(*c))
    }

    /// Sum of observations, in microseconds.
    pub(crate) fn sum_micros(&self) -> u64 {
        self.sum_micros
    }
}

/// Writes one histogram's series, each with `labels`: the cumulative `_bucket`s, `_sum` in seconds and
/// `_count`. Nothing for a histogram that has counted nothing, so an idle label set adds no lines.
pub(crate) fn write_histogram(
    w: &mut super::exposition::TextWriter,
    name: &str,
    labels: &[(&str, &str)],
    histogram: &HistogramSnapshot,
) {
    if histogram.count() == 0 {
        return;
    }
    let mut with_le: Vec<(&str, &str)> = labels.to_vec();
    with_le.push(("le", ""));
    let bucket_name = format!("{name}_bucket");
    for (le, cumulative) in BUCKET_LABELS.iter().zip(histogram.cumulative()) {
        if let Some(last) = with_le.last_mut() {
            *last = ("le", le);
        }
        w.sample(&bucket_name, &with_le, cumulative);
    }
    let micros = histogram.sum_micros();
    w.sample(
        &format!("{name}_sum"),
        labels,
        super::exposition::Seconds { micros },
    );
    w.sample(&format!("{name}_count"), labels, histogram.count());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_of(observations: &[Duration]) -> HistogramSnapshot {
        let cell = HistogramCell::default();
        for d in observations {
            cell.observe(*d);
        }
        let mut snap = HistogramSnapshot::default();
        snap.add(&cell);
        snap
    }

    #[test]
    fn bounds_are_inclusive() {
        let snap = snapshot_of(&[Duration::from_micros(500)]);
        assert_eq!(snap.cumulative()[0], 1);
    }

    #[test]
    fn just_above_a_bound_goes_to_the_next_bucket() {
        let snap = snapshot_of(&[Duration::from_nanos(500_001)]);
        assert_eq!(snap.cumulative()[0], 0);
        assert_eq!(snap.cumulative()[1], 1);
    }

    #[test]
    fn cumulative_buckets_count_everything_at_or_below_each_bound() {
        let snap = snapshot_of(&[
            Duration::from_micros(100),   // <= 0.0005
            Duration::from_millis(3),     // <= 0.005
            Duration::from_millis(3),     // <= 0.005
            Duration::from_millis(700),   // <= 1
            Duration::from_secs(11),      // +Inf only
            Duration::from_secs(100_000), // +Inf only
        ]);
        assert_eq!(
            snap.cumulative(),
            [1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 6]
        );
        assert_eq!(snap.count(), 6);
        assert_eq!(
            snap.sum_micros(),
            100 + 3_000 + 3_000 + 700_000 + 11_000_000 + 100_000_000_000
        );
    }

    #[test]
    fn snapshots_sum_workers() {
        let a = HistogramCell::default();
        let b = HistogramCell::default();
        a.observe(Duration::from_millis(1));
        b.observe(Duration::from_millis(20));
        let mut snap = HistogramSnapshot::default();
        snap.add(&a);
        snap.add(&b);
        assert_eq!(snap.count(), 2);
        assert_eq!(snap.sum_micros(), 21_000);
        assert_eq!(snap.cumulative()[1], 1); // le=0.001
        assert_eq!(snap.cumulative()[5], 2); // le=0.025
    }

    #[test]
    fn absurd_durations_do_not_panic() {
        let snap = snapshot_of(&[Duration::MAX]);
        assert_eq!(snap.cumulative()[FINITE_BUCKETS], 1);
        assert_eq!(snap.cumulative()[FINITE_BUCKETS - 1], 0);
    }
}
