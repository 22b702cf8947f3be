//! Per-upstream failure counters; the timing and connection figures are in `upstream_timing.rs`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::per_worker::PerWorker;

/// One worker's counters for one upstream.
#[derive(Default)]
struct UpstreamCell {
    connect_errors: AtomicU64,
    timeouts: AtomicU64,
    read_timeouts: AtomicU64,
    retries: AtomicU64,
    retry_budget_exhausted: AtomicU64,
    breaker_rejections: [AtomicU64; BREAKER_REASONS.len()],
    mirror: [AtomicU64; MIRROR_RESULTS.len()],
}

/// What became of a mirrored copy, as the `result` label names it.
pub const MIRROR_RESULTS: [&str; 3] = ["answered", "failed", "dropped"];

/// The reasons a circuit breaker turns a request away, as the `reason` label names them.
pub const BREAKER_REASONS: [&str; 5] = [
    "max_connections",
    "max_pending_requests",
    "max_requests",
    "max_retries",
    "open",
];

/// What a resolution of a target's name gave, as the `result` label names it.
pub const DNS_RESULTS: [&str; 5] = ["success", "timeout", "nxdomain", "no_address", "error"];

/// Failure counters of one upstream, from [`Metrics::upstream`](crate::Metrics::upstream).
pub struct UpstreamMetrics {
    cells: PerWorker<UpstreamCell>,
    /// Resolutions of its targets' names by result: counted on the background runtime, never by a
    /// worker, so one set is enough.
    dns: [AtomicU64; DNS_RESULTS.len()],
    /// Connect and first-byte times, and the connections the workers hold.
    pub timing: super::UpstreamTiming,
}

impl UpstreamMetrics {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            cells: PerWorker::new(workers),
            dns: Default::default(),
            timing: super::UpstreamTiming::new(workers),
        }
    }

    /// Counts a failed connection attempt to one of this upstream's targets
    /// (`floodgate_upstream_connect_errors_total`). `worker` past the last worker is clamped.
    pub fn connect_error(&self, worker: usize) {
        self.cells
            .get(worker)
            .connect_errors
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request to this upstream that timed out (`floodgate_upstream_timeouts_total`).
    /// `worker` past the last worker is clamped.
    pub fn timeout(&self, worker: usize) {
        self.cells
            .get(worker)
            .timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a response body from this upstream that stalled past `read_timeout`
    /// (`floodgate_connection_timeouts_total{kind="upstream_read"}`).
    pub fn read_timeout(&self, worker: usize) {
        self.cells
            .get(worker)
            .read_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a retry of a request to this upstream (`floodgate_upstream_retries_total`).
    pub fn retry(&self, worker: usize) {
        self.cells
            .get(worker)
            .retries
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a retry the budget did not allow (`floodgate_upstream_retry_budget_exhausted_total`).
    pub fn retry_budget_exhausted(&self, worker: usize) {
        self.cells
            .get(worker)
            .retry_budget_exhausted
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request the circuit breaker turned away for the reason at `reason` in
    /// [`BREAKER_REASONS`] (`floodgate_upstream_breaker_rejections_total`).
    pub fn breaker_rejected(&self, worker: usize, reason: usize) {
        if let Some(counter) = self.cells.get(worker).breaker_rejections.get(reason) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a copy sent to this upstream as a mirror, by its result at `result` in
    /// [`MIRROR_RESULTS`] (`floodgate_mirror_requests_total`).
    pub fn mirror(&self, worker: usize, result: usize) {
        if let Some(counter) = self.cells.get(worker).mirror.get(result) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a resolution of one of this upstream's target names, by its result `result`, one of
    /// [`DNS_RESULTS`] (`floodgate_dns_resolutions_total`); another name counts as `error`.
    pub fn dns_resolution(&self, result: &str) {
        let index = DNS_RESULTS
            .iter()
            .position(|r| *r == result)
            .unwrap_or(DNS_RESULTS.len() - 1);
        self.dns[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Resolutions by result.
    pub(crate) fn dns_totals(&self) -> [u64; DNS_RESULTS.len()] {
        std::array::from_fn(|i| self.dns[i].load(Ordering::Relaxed))
    }

    /// Mirrored copies by result, summed over workers.
    pub(crate) fn mirror_totals(&self) -> [u64; MIRROR_RESULTS.len()] {
        let mut totals = [0u64; MIRROR_RESULTS.len()];
        for cell in self.cells.iter() {
            for (total, counter) in totals.iter_mut().zip(&cell.mirror) {
                *total = total.wrapping_add(counter.load(Ordering::Relaxed));
            }
        }
        totals
    }

    /// Breaker rejections by reason, summed over workers.
    pub(crate) fn breaker_rejections(&self) -> [u64; BREAKER_REASONS.len()] {
        let mut totals = [0u64; BREAKER_REASONS.len()];
        for cell in self.cells.iter() {
            for (total, counter) in totals.iter_mut().zip(&cell.breaker_rejections) {
                *total = total.wrapping_add(counter.load(Ordering::Relaxed));
            }
        }
        totals
    }

    /// `(retries, retries refused by the budget)` summed over workers.
    pub(crate) fn retry_totals(&self) -> (u64, u64) {
        self.cells
            .iter()
            .fold((0u64, 0u64), |(retries, refused), cell| {
                (
                    retries.wrapping_add(cell.retries.load(Ordering::Relaxed)),
                    refused.wrapping_add(cell.retry_budget_exhausted.load(Ordering::Relaxed)),
                )
            })
    }

    /// Read timeouts summed over workers.
    pub(crate) fn read_timeouts(&self) -> u64 {
        self.cells
            .iter()
            .map(|cell| cell.read_timeouts.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// `(connect_errors, timeouts)` summed over workers.
    pub(crate) fn totals(&self) -> (u64, u64) {
        self.cells
            .iter()
            .fold((0u64, 0u64), |(errors, timeouts), cell| {
                (
                    errors.wrapping_add(cell.connect_errors.load(Ordering::Relaxed)),
                    timeouts.wrapping_add(cell.timeouts.load(Ordering::Relaxed)),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_over_workers() {
        let upstream = UpstreamMetrics::new(2);
        upstream.connect_error(0);
        upstream.connect_error(1);
        upstream.connect_error(5);
        upstream.timeout(1);
        assert_eq!(upstream.totals(), (3, 1));
    }
}
