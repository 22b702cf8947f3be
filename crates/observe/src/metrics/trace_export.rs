//! What became of the spans tracing produced: exported, dropped because the queue to the exporter
//! was full, or lost because the collector refused them or did not answer in time.

use std::sync::atomic::{AtomicU64, Ordering};

use super::exposition::{Kind, TextWriter};

const SPANS: &str = "floodgate_tracing_spans_total";

/// Span counts, shared by every exporter the process starts (a reload may start a new one).
#[derive(Default)]
pub struct TracingMetrics {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    in_use: std::sync::atomic::AtomicBool,
}

impl TracingMetrics {
    /// Tracing is configured: the family gets its samples from now on.
    pub fn set_in_use(&self) {
        self.in_use.store(true, Ordering::Relaxed);
    }

    /// `n` spans the collector accepted.
    pub fn exported(&self, n: u64) {
        self.exported.fetch_add(n, Ordering::Relaxed);
    }

    /// A span dropped because the exporter's queue was full (a request never waits for it).
    pub fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` spans of a batch the collector refused or did not take in time.
    pub fn failed(&self, n: u64) {
        self.failed.fetch_add(n, Ordering::Relaxed);
    }

    /// `(exported, dropped, failed)` so far.
    pub fn totals(&self) -> (u64, u64, u64) {
        (
            self.exported.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }

    pub(super) fn render(&self, w: &mut TextWriter) {
        w.family(
            SPANS,
            "Spans tracing produced, by result: exported, dropped (the queue to the collector was full) or failed (the collector refused them or timed out).",
            Kind::Counter,
        );
        if !self.in_use.load(Ordering::Relaxed) {
            return;
        }
        let (exported, dropped, failed) = self.totals();
        w.sample(SPANS, &[("result", "dropped")], dropped);
        w.sample(SPANS, &[("result", "exported")], exported);
        w.sample(SPANS, &[("result", "failed")], failed);
    }
}
