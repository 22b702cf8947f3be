//! How an upstream answers (its responses by status class, how long it takes to connect and to send
//! its response head) and how many connections each worker holds to it, open and idle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use super::exposition::{Kind, TextWriter};
use super::histogram::{write_histogram, HistogramCell, HistogramSnapshot};
use super::per_worker::{add_own, PerWorker};
use super::route::{status_class_index, STATUS_CLASS_LABELS};
use super::upstream::UpstreamMetrics;

const RESPONSES: &str = "floodgate_upstream_responses_total";
const CONNECT: &str = "floodgate_upstream_connect_duration_seconds";
const HEADER: &str = "floodgate_upstream_header_duration_seconds";
const OPEN: &str = "floodgate_upstream_connections_open";
const IDLE: &str = "floodgate_upstream_connections_idle";

/// One worker's figures for one upstream. The gauges are kept as two counters each (in and out), so
/// a worker only ever adds to its own slot, and a scrape subtracts.
#[derive(Default)]
struct TimingCell {
    responses: [AtomicU64; STATUS_CLASS_LABELS.len()],
    connect: HistogramCell,
    header: HistogramCell,
    opened: AtomicU64,
    closed: AtomicU64,
    idled: AtomicU64,
    woken: AtomicU64,
}

/// Connect and first-byte times of one upstream, and its pooled connections.
pub struct UpstreamTiming {
    cells: PerWorker<TimingCell>,
}

impl UpstreamTiming {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            cells: PerWorker::new(workers),
        }
    }

    /// Observes a connection made on `worker` in `elapsed`: TCP, TLS and the HTTP handshake
    /// (`floodgate_upstream_connect_duration_seconds`).
    pub fn connected(&self, worker: usize, elapsed: Duration) {
        self.cells.get(worker).connect.observe(elapsed);
    }

    /// Observes the time from sending a request to receiving its response head
    /// (`floodgate_upstream_header_duration_seconds`, the time to first byte), and counts the head's
    /// `status` in `floodgate_upstream_responses_total`.
    pub fn answered(&self, worker: usize, elapsed: Duration, status: StatusCode) {
        let cell = self.cells.get(worker);
        cell.header.observe(elapsed);
        add_own(&cell.responses[status_class_index(status)], 1);
    }

    /// A connection opened on `worker` (`floodgate_upstream_connections_open` goes up).
    pub fn connection_opened(&self, worker: usize) {
        add_own(&self.cells.get(worker).opened, 1);
    }

    /// A connection closed on `worker`.
    pub fn connection_closed(&self, worker: usize) {
        add_own(&self.cells.get(worker).closed, 1);
    }

    /// `n` connections went back to `worker`'s pool (`floodgate_upstream_connections_idle` goes up).
    pub fn connections_idle(&self, worker: usize, n: u64) {
        add_own(&self.cells.get(worker).idled, n);
    }

    /// `n` connections left `worker`'s pool: taken for a request, or closed as stale.
    pub fn connections_busy(&self, worker: usize, n: u64) {
        add_own(&self.cells.get(worker).woken, n);
    }

    /// Responses by status class, summed over workers.
    fn responses(&self) -> [u64; STATUS_CLASS_LABELS.len()] {
        let mut totals = [0u64; STATUS_CLASS_LABELS.len()];
        for cell in self.cells.iter() {
            for (total, counter) in totals.iter_mut().zip(&cell.responses) {
                *total = total.wrapping_add(counter.load(Ordering::Relaxed));
            }
        }
        totals
    }

    /// `(connect, header, open, idle)` summed over workers.
    fn snapshot(&self) -> (HistogramSnapshot, HistogramSnapshot, u64, u64) {
        let mut connect = HistogramSnapshot::default();
        let mut header = HistogramSnapshot::default();
        let (mut opened, mut closed, mut idled, mut woken) = (0u64, 0u64, 0u64, 0u64);
        for cell in self.cells.iter() {
            connect.add(&cell.connect);
            header.add(&cell.header);
            opened = opened.wrapping_add(cell.opened.load(Ordering::Relaxed));
            closed = closed.wrapping_add(cell.closed.load(Ordering::Relaxed));
            idled = idled.wrapping_add(cell.idled.load(Ordering::Relaxed));
            woken = woken.wrapping_add(cell.woken.load(Ordering::Relaxed));
        }
        // Relaxed reads of different slots may see a close before its open: never below zero.
        (
            connect,
            header,
            opened.saturating_sub(closed),
            idled.saturating_sub(woken),
        )
    }
}

pub(super) fn render_upstream_timing(
    w: &mut TextWriter,
    upstreams: &[(Arc<str>, Arc<UpstreamMetrics>)],
) {
    w.family(
        RESPONSES,
        "Response heads from an upstream, by status class (retried attempts included).",
        Kind::Counter,
    );
    for (id, m) in upstreams {
        for (class, count) in STATUS_CLASS_LABELS.iter().zip(m.timing.responses()) {
            if count > 0 {
                w.sample(
                    RESPONSES,
                    &[("upstream", id), ("status_class", class)],
                    count,
                );
            }
        }
    }
    let snapshots: Vec<_> = upstreams
        .iter()
        .map(|(id, m)| (&**id, m.timing.snapshot()))
        .collect();
    w.family(
        CONNECT,
        "Time to open a connection to an upstream's target: TCP, TLS and the HTTP handshake.",
        Kind::Histogram,
    );
    for (id, (connect, ..)) in &snapshots {
        write_histogram(w, CONNECT, &[("upstream", id)], connect);
    }
    w.family(
        HEADER,
        "Time from sending a request to an upstream to receiving its response head (time to first byte).",
        Kind::Histogram,
    );
    for (id, (_, header, ..)) in &snapshots {
        write_histogram(w, HEADER, &[("upstream", id)], header);
    }
    w.family(
        OPEN,
        "Connections open to an upstream's targets, busy or idle, over all workers.",
        Kind::Gauge,
    );
    for (id, (_, _, open, _)) in &snapshots {
        w.sample(OPEN, &[("upstream", id)], open);
    }
    w.family(
        IDLE,
        "Connections to an upstream waiting in the pools for a request, over all workers.",
        Kind::Gauge,
    );
    for (id, (_, _, _, idle)) in &snapshots {
        w.sample(IDLE, &[("upstream", id)], idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_ins_minus_outs_over_workers() {
        let timing = UpstreamTiming::new(2);
        timing.connection_opened(0);
        timing.connection_opened(1);
        timing.connection_opened(1);
        timing.connection_closed(0);
        timing.connections_idle(1, 2);
        timing.connections_busy(1, 1);
        timing.connected(0, Duration::from_millis(3));
        timing.answered(1, Duration::from_micros(700), StatusCode::OK);
        timing.answered(1, Duration::from_micros(300), StatusCode::BAD_GATEWAY);
        assert_eq!(timing.responses(), [0, 1, 0, 0, 1]);
        let (connect, header, open, idle) = timing.snapshot();
        assert_eq!((open, idle), (2, 1));
        assert_eq!(connect.count(), 1);
        assert_eq!(header.count(), 2);
        assert_eq!(header.sum_micros(), 1_000);
    }
}
