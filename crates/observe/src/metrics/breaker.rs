//! An upstream's circuit breaker: its state, its transitions, and the requests it turned away.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::exposition::{Kind, TextWriter};

const STATE: &str = "floodgate_upstream_breaker_state";
const TRANSITIONS: &str = "floodgate_upstream_breaker_transitions_total";

/// The states the failure-ratio breaker is in, as the `to` label and the state gauge name them.
const STATES: [&str; 3] = ["closed", "open", "half_open"];

/// One upstream's breaker metrics, from [`Metrics::breaker`](crate::Metrics::breaker). Written on
/// transitions only.
#[derive(Default)]
pub struct BreakerMetrics {
    state: AtomicU8,
    transitions: [AtomicU64; 3],
}

impl BreakerMetrics {
    /// Records a transition into state `to` (0 closed, 1 open, 2 half-open).
    pub fn entered(&self, to: u8) {
        let to = usize::from(to.min(2));
        self.state.store(to as u8, Ordering::Relaxed);
        self.transitions[to].fetch_add(1, Ordering::Relaxed);
    }

    /// Transitions so far into state `to` (0 closed, 1 open, 2 half-open).
    pub fn transitions(&self, to: u8) -> u64 {
        self.transitions[usize::from(to.min(2))].load(Ordering::Relaxed)
    }
}

pub(crate) fn render_breakers(
    w: &mut TextWriter,
    breakers: &[(std::sync::Arc<str>, std::sync::Arc<BreakerMetrics>)],
) {
    w.family(
        STATE,
        "State of an upstream's failure-ratio circuit breaker: 0 closed, 1 open, 2 half-open.",
        Kind::Gauge,
    );
    for (upstream, metrics) in breakers {
        w.sample(
            STATE,
            &[("upstream", upstream)],
            metrics.state.load(Ordering::Relaxed),
        );
    }
    w.family(
        TRANSITIONS,
        "Transitions of an upstream's circuit breaker, by the state entered.",
        Kind::Counter,
    );
    for (upstream, metrics) in breakers {
        for (i, to) in STATES.iter().enumerate() {
            w.sample(
                TRANSITIONS,
                &[("upstream", upstream), ("to", to)],
                metrics.transitions[i].load(Ordering::Relaxed),
            );
        }
    }
}
