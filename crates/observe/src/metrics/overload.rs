//! Counters of what the gateway turned away to protect itself: connections past a connection limit and
//! requests past a worker's in-flight limit, each by the limit that refused it.

use std::sync::atomic::{AtomicU64, Ordering};

use super::exposition::{Kind, TextWriter};
use super::per_worker::{add_own, PerWorker};

/// Which limit turned a connection or a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `limits.max_connections`, across all listeners and workers.
    MaxConnections,
    /// A listener's own `max_connections`.
    ListenerMaxConnections,
    /// `limits.max_requests_in_flight_per_worker`.
    MaxRequestsInFlight,
    /// A connection to a listener with `proxy_protocol` that did not start with a valid PROXY header.
    ProxyProtocol,
}

impl Rejection {
    const ALL: [Rejection; 4] = [
        Rejection::MaxConnections,
        Rejection::ListenerMaxConnections,
        Rejection::MaxRequestsInFlight,
        Rejection::ProxyProtocol,
    ];

    /// The `reason` label: the name of the configuration field that set the limit or the requirement.
    fn reason(self) -> &'static str {
        match self {
            Rejection::MaxConnections => "max_connections",
            Rejection::ListenerMaxConnections => "listener_max_connections",
            Rejection::MaxRequestsInFlight => "max_requests_in_flight_per_worker",
            Rejection::ProxyProtocol => "proxy_protocol",
        }
    }

    fn is_connection(self) -> bool {
        !matches!(self, Rejection::MaxRequestsInFlight)
    }
}

const CONNECTIONS_REJECTED: &str = "floodgate_downstream_connections_rejected_total";
const REQUESTS_REJECTED: &str = "floodgate_requests_rejected_total";

/// One worker's counts, indexed by `Rejection as usize`.
#[derive(Default)]
struct RejectionCell([AtomicU64; 4]);

/// Rejection counters with a slot per worker.
pub(crate) struct OverloadMetrics {
    cells: PerWorker<RejectionCell>,
}

impl OverloadMetrics {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            cells: PerWorker::new(workers),
        }
    }

    /// Counts one rejection on `worker`: only that worker writes its slot.
    pub(crate) fn record(&self, worker: usize, rejection: Rejection) {
        add_own(&self.cells.get(worker).0[rejection as usize], 1);
    }

    fn total(&self, rejection: Rejection) -> u64 {
        self.cells.iter().fold(0u64, |sum, cell| {
            sum.wrapping_add(cell.0[rejection as usize].load(Ordering::Relaxed))
        })
    }

    /// Writes both families, every reason shown, zero included, so an alert can watch a series that
    /// exists before the first rejection.
    pub(crate) fn render(&self, w: &mut TextWriter) {
        w.family(
            CONNECTIONS_REJECTED,
            "Client connections closed before their first request, by the limit or requirement that refused them.",
            Kind::Counter,
        );
        for rejection in Rejection::ALL.into_iter().filter(|r| r.is_connection()) {
            w.sample(
                CONNECTIONS_REJECTED,
                &[("reason", rejection.reason())],
                self.total(rejection),
            );
        }
        w.family(
            REQUESTS_REJECTED,
            "Requests answered 503 at once because a limit was reached, by the limit.",
            Kind::Counter,
        );
        for rejection in Rejection::ALL.into_iter().filter(|r| !r.is_connection()) {
            w.sample(
                REQUESTS_REJECTED,
                &[("reason", rejection.reason())],
                self.total(rejection),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_summed_over_workers_and_shown_at_zero() {
        let metrics = OverloadMetrics::new(2);
        metrics.record(0, Rejection::MaxConnections);
        metrics.record(1, Rejection::MaxConnections);
        metrics.record(1, Rejection::MaxRequestsInFlight);
        let mut w = TextWriter::default();
        metrics.render(&mut w);
        let text = w.finish();
        for line in [
            r#"floodgate_downstream_connections_rejected_total{reason="max_connections"} 2"#,
            r#"floodgate_downstream_connections_rejected_total{reason="listener_max_connections"} 0"#,
            r#"floodgate_downstream_connections_rejected_total{reason="proxy_protocol"} 0"#,
            r#"floodgate_requests_rejected_total{reason="max_requests_in_flight_per_worker"} 1"#,
            "# TYPE floodgate_requests_rejected_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
