//! Per-route request counts, durations and response bytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};

use super::histogram::{HistogramCell, HistogramSnapshot};
use super::per_worker::{add_own, PerWorker};

/// The `method` label values. A fixed set, indexed by [`method_index`], so recording never allocates and a
/// client cannot create unbounded series by sending made-up methods.
pub(crate) const METHOD_LABELS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "OTHER",
];

/// The `status_class` label values, indexed by [`status_class_index`].
pub(crate) const STATUS_CLASS_LABELS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

const METHODS: usize = METHOD_LABELS.len();
const STATUS_CLASSES: usize = STATUS_CLASS_LABELS.len();

fn method_index(method: &Method) -> usize {
    match method.as_str() {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "OPTIONS" => 5,
        "PATCH" => 6,
        "CONNECT" => 7,
        "TRACE" => 8,
        _ => 9,
    }
}

/// `http::StatusCode` admits 100..=999. RFC 9110 §15 defines only five classes, so 6xx..9xx (which only a
/// misbehaving upstream sends) are counted as 5xx: a server-side fault.
pub(crate) fn status_class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, STATUS_CLASSES) - 1
}

/// One worker's counters for one route.
#[derive(Default)]
struct RouteCell {
    requests: [[AtomicU64; STATUS_CLASSES]; METHODS],
    duration: HistogramCell,
    response_body_bytes: AtomicU64,
}

/// Request metrics of one route (or of the requests that matched none), from
/// [`Metrics::route`](crate::Metrics::route) or [`Metrics::unmatched`](crate::Metrics::unmatched).
///
/// Held by the route in the config snapshot, so recording is a field access and three atomic adds.
pub struct RouteMetrics {
    cells: PerWorker<RouteCell>,
    /// Requests the route's plugins answered instead of forwarding.
    pub plugin_rejections: super::plugins::PluginRejections,
}

impl RouteMetrics {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            cells: PerWorker::new(workers),
            plugin_rejections: Default::default(),
        }
    }

    /// Records one finished request on worker `worker` (0-based; an index past the last worker is clamped,
    /// never a panic): counts it under `floodgate_requests_total` by method and status class, observes
    /// `elapsed` in `floodgate_request_duration_seconds` and adds the `body_bytes` it sent to
    /// `floodgate_response_body_bytes_total`. Takes no lock and touches only this worker's slot.
    pub fn record(
        &self,
        worker: usize,
        (method, status): (&Method, StatusCode),
        elapsed: Duration,
        body_bytes: u64,
    ) {
        let cell = self.cells.get(worker);
        add_own(
            &cell.requests[method_index(method)][status_class_index(status)],
            1,
        );
        cell.duration.observe(elapsed);
        add_own(&cell.response_body_bytes, body_bytes);
    }

    /// Sums all workers' slots.
    pub(crate) fn snapshot(&self) -> RouteSnapshot {
        let mut snap = RouteSnapshot::default();
        for cell in self.cells.iter() {
            for (totals, counters) in snap.requests.iter_mut().zip(&cell.requests) {
                for (total, counter) in totals.iter_mut().zip(counters) {
                    *total = total.wrapping_add(counter.load(Ordering::Relaxed));
                }
            }
            snap.duration.add(&cell.duration);
            snap.response_body_bytes = snap
                .response_body_bytes
                .wrapping_add(cell.response_body_bytes.load(Ordering::Relaxed));
        }
        snap
    }
}

/// A route's counts summed over workers at one scrape.
#[derive(Default, Debug)]
pub(crate) struct RouteSnapshot {
    /// Indexed `[method][status class]` like [`METHOD_LABELS`] and [`STATUS_CLASS_LABELS`].
    pub(crate) requests: [[u64; STATUS_CLASSES]; METHODS],
    pub(crate) duration: HistogramSnapshot,
    pub(crate) response_body_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_map_to_their_label() {
        for (i, label) in METHOD_LABELS.iter().enumerate().take(METHODS - 1) {
            let method = Method::from_bytes(label.as_bytes()).unwrap();
            assert_eq!(method_index(&method), i);
        }
        let purge = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(METHOD_LABELS[method_index(&purge)], "OTHER");
    }

    #[test]
    fn status_classes() {
        let class = |code: u16| {
            STATUS_CLASS_LABELS[status_class_index(StatusCode::from_u16(code).unwrap())]
        };
        assert_eq!(class(100), "1xx");
        assert_eq!(class(204), "2xx");
        assert_eq!(class(308), "3xx");
        assert_eq!(class(499), "4xx");
        assert_eq!(class(503), "5xx");
        assert_eq!(class(999), "5xx");
    }

    #[test]
    fn record_sums_over_workers() {
        let route = RouteMetrics::new(2);
        route.record(
            0,
            (&Method::GET, StatusCode::OK),
            Duration::from_millis(1),
            100,
        );
        route.record(
            1,
            (&Method::GET, StatusCode::CREATED),
            Duration::from_millis(2),
            23,
        );
        route.record(
            1,
            (&Method::POST, StatusCode::BAD_GATEWAY),
            Duration::from_millis(3),
            0,
        );
        route.record(
            99,
            (&Method::POST, StatusCode::BAD_GATEWAY),
            Duration::from_millis(4),
            0,
        );
        let snap = route.snapshot();
        assert_eq!(snap.response_body_bytes, 123);
        assert_eq!(snap.requests[0][1], 2);
        assert_eq!(snap.requests[2][4], 2);
        assert_eq!(snap.duration.count(), 4);
        assert_eq!(snap.duration.sum_micros(), 10_000);
    }
}
