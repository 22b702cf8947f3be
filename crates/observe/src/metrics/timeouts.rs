//! Connections closed because a peer was too slow, by which deadline it missed.

use std::sync::atomic::{AtomicU64, Ordering};

use super::per_worker::PerWorker;

/// Which deadline a peer missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    /// A client did not send a whole request head in time (`timeouts.client_header`).
    ClientHeader,
    /// A keep-alive connection stayed idle between requests (`timeouts.client_keepalive`).
    ClientKeepalive,
    /// A client stopped sending its request body (`timeouts.client_body`).
    ClientBody,
    /// A client stopped reading its response (`timeouts.client_send`).
    ClientSend,
    /// An HTTP/2 connection had no open stream for `http2.idle_timeout`.
    Http2Idle,
    /// An HTTP/2 client did not answer a keep-alive PING within `http2.keepalive_timeout`.
    Http2Keepalive,
    /// An upstream stopped sending a response body after its head (`upstreams[].read_timeout`); counted
    /// by the upstream's own metrics ([`UpstreamMetrics::read_timeout`](crate::UpstreamMetrics::read_timeout)).
    UpstreamRead,
}

impl TimeoutKind {
    /// Every kind, in the order of their labels.
    pub const ALL: [TimeoutKind; 7] = [
        TimeoutKind::ClientBody,
        TimeoutKind::ClientHeader,
        TimeoutKind::ClientKeepalive,
        TimeoutKind::ClientSend,
        TimeoutKind::Http2Idle,
        TimeoutKind::Http2Keepalive,
        TimeoutKind::UpstreamRead,
    ];

    /// The `kind` label.
    pub fn label(self) -> &'static str {
        match self {
            TimeoutKind::ClientHeader => "client_header",
            TimeoutKind::ClientKeepalive => "client_keepalive",
            TimeoutKind::ClientBody => "client_body",
            TimeoutKind::ClientSend => "client_send",
            TimeoutKind::Http2Idle => "http2_idle",
            TimeoutKind::Http2Keepalive => "http2_keepalive",
            TimeoutKind::UpstreamRead => "upstream_read",
        }
    }
}

/// Per worker: one counter per [`TimeoutKind`].
#[derive(Default)]
struct TimeoutCell([AtomicU64; 7]);

/// Counts of connections closed by a deadline (`floodgate_connection_timeouts_total{kind}`).
pub struct TimeoutMetrics {
    cells: PerWorker<TimeoutCell>,
}

impl TimeoutMetrics {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            cells: PerWorker::new(workers),
        }
    }

    /// Counts one connection closed on `worker` for missing the `kind` deadline.
    pub fn record(&self, worker: usize, kind: TimeoutKind) {
        let slot = TimeoutKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.cells.get(worker).0[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Each kind with its count summed over workers.
    pub(crate) fn totals(&self) -> [(TimeoutKind, u64); 7] {
        TimeoutKind::ALL.map(|kind| {
            let slot = TimeoutKind::ALL
                .iter()
                .position(|k| *k == kind)
                .unwrap_or(0);
            let total = self
                .cells
                .iter()
                .map(|cell| cell.0[slot].load(Ordering::Relaxed))
                .fold(0u64, u64::wrapping_add);
            (kind, total)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_over_workers() {
        let timeouts = TimeoutMetrics::new(2);
        timeouts.record(0, TimeoutKind::ClientKeepalive);
        timeouts.record(1, TimeoutKind::ClientKeepalive);
        timeouts.record(1, TimeoutKind::UpstreamRead);
        timeouts.record(0, TimeoutKind::Http2Idle);
        let totals = timeouts.totals();
        assert!(totals.contains(&(TimeoutKind::Http2Idle, 1)));
        assert!(totals.contains(&(TimeoutKind::Http2Keepalive, 0)));
        assert!(totals.contains(&(TimeoutKind::ClientKeepalive, 2)));
        assert!(totals.contains(&(TimeoutKind::UpstreamRead, 1)));
        assert!(totals.contains(&(TimeoutKind::ClientSend, 0)));
    }
}
