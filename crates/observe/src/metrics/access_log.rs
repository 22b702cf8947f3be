//! The access log's own health: lines it had to drop because its writer fell behind.

use std::sync::atomic::{AtomicU64, Ordering};

use super::exposition::{Kind, TextWriter};

const DROPPED: &str = "floodgate_access_log_dropped_total";

/// Counts shared by every access log the process opens (a reload may open a new one), so the counter
/// never goes back.
#[derive(Default)]
pub struct AccessLogMetrics {
    dropped: AtomicU64,
}

impl AccessLogMetrics {
    /// Counts a line discarded because the writer's queue was full or the log was closed.
    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Lines discarded so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(super) fn render(&self, w: &mut TextWriter) {
        w.family(
            DROPPED,
            "Access log lines discarded because the writer fell behind (the log never blocks a request).",
            Kind::Counter,
        );
        w.sample(DROPPED, &[], self.dropped());
    }
}

#[cfg(test)]
mod tests {
    use crate::Metrics;

    #[test]
    fn dropped_lines_are_a_counter_from_zero() {
        let metrics = Metrics::new(1);
        assert!(metrics
            .render()
            .contains("# TYPE floodgate_access_log_dropped_total counter\nfloodgate_access_log_dropped_total 0\n"));
        metrics.access_log.count_dropped();
        metrics.access_log.count_dropped();
        assert!(metrics
            .render()
            .contains("\nfloodgate_access_log_dropped_total 2\n"));
    }
}
