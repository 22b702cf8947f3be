//! What a target's load looks like to the balancers: its requests in flight and its peak-EWMA
//! latency. Both belong to the target, not to a snapshot, so a reload keeps them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The shared allocation behind one target's in-flight count.
///
/// The count is the `Arc`'s strong count minus the balancer's own reference: starting a request clones
/// the `Arc` (one atomic add) and dropping the guard releases it (one atomic sub). A separate
/// `AtomicUsize` inside would cost a second atomic per start and per end for the same information.
/// The 128-byte alignment gives each target's count a cache line of its own, since every worker
/// writes every target's count.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Slot;

/// One target's load.
#[derive(Debug)]
pub struct TargetLoad {
    /// The target's in-flight count (see `in_flight.rs`).
    pub(crate) in_flight: Arc<Slot>,
    /// Peak-EWMA round-trip estimate in nanoseconds, as `f64` bits.
    rtt_ns: AtomicU64,
    /// When `rtt_ns` was last updated, in nanoseconds on the health clock; 0: never (the default
    /// estimate applies).
    updated_ns: AtomicU64,
    /// The smoothed utilization the target reports (0 to 1), as `f64` bits.
    utilization: AtomicU64,
    /// When the last report came, in nanoseconds on the health clock; 0: never.
    reported_ns: AtomicU64,
}

impl Default for TargetLoad {
    fn default() -> Self {
        Self {
            in_flight: Arc::new(Slot),
            rtt_ns: AtomicU64::new(0f64.to_bits()),
            updated_ns: AtomicU64::new(0),
            utilization: AtomicU64::new(0f64.to_bits()),
            reported_ns: AtomicU64::new(0),
        }
    }
}

/// How the peak-EWMA estimate moves (`upstreams[].ewma`).
#[derive(Debug, Clone, Copy)]
pub struct EwmaSettings {
    /// The estimate's time constant: an observation `decay` old weighs 1/e of a fresh one, and an
    /// idle target's estimate sinks toward 0 over about this long, so it is tried again.
    pub decay_ns: f64,
    /// The estimate of a target never observed.
    pub default_rtt_ns: f64,
}

impl EwmaSettings {
    /// From durations.
    pub fn new(decay: Duration, default_rtt: Duration) -> Self {
        Self {
            decay_ns: decay.as_nanos() as f64,
            default_rtt_ns: default_rtt.as_nanos() as f64,
        }
    }
}

impl TargetLoad {
    /// The smoothed utilization the target reported (0 before any report).
    pub fn utilization(&self) -> f64 {
        f64::from_bits(self.utilization.load(Relaxed))
    }

    /// Counts a load report of `reported` (0 to 1) arriving at `now_ns`: the estimate moves toward it
    /// by `1 - e^(-elapsed / period)`, never more than half way in one report.
    pub fn report_utilization(&self, reported: f64, now_ns: u64, period_ns: f64) {
        let reported = reported.clamp(0.0, 1.0);
        let last = self.reported_ns.swap(now_ns.max(1), Relaxed);
        let elapsed = if last == 0 {
            period_ns
        } else {
            now_ns.saturating_sub(last) as f64
        };
        let step = (1.0 - (-elapsed / period_ns).exp()).min(0.5);
        let current = self.utilization();
        let next = current + (reported - current) * step;
        self.utilization.store(next.to_bits(), Relaxed);
    }

    /// Requests in flight to the target, all workers and snapshots together.
    pub fn in_flight(&self) -> usize {
        Arc::strong_count(&self.in_flight).saturating_sub(1)
    }

    /// The latency estimate at `now_ns`, decayed toward 0 since its last update (Finagle's and
    /// tower's peak EWMA read it the same way).
    pub fn rtt_estimate(&self, now_ns: u64, settings: &EwmaSettings) -> f64 {
        let updated = self.updated_ns.load(Relaxed);
        if updated == 0 {
            return settings.default_rtt_ns;
        }
        let rtt = f64::from_bits(self.rtt_ns.load(Relaxed));
        let elapsed = now_ns.saturating_sub(updated) as f64;
        rtt * (-elapsed / settings.decay_ns).exp()
    }

    /// Counts an observed round trip of `rtt_ns` ending at `now_ns`: a slower one than the last
    /// estimate replaces it at once (the peak); a faster one moves it by how long ago the last
    /// observation was (tower's and Finagle's update, one `exp` per observation).
    pub fn observe(&self, rtt_ns: f64, now_ns: u64, settings: &EwmaSettings) {
        let updated = self.updated_ns.load(Relaxed);
        let previous = if updated == 0 {
            settings.default_rtt_ns
        } else {
            f64::from_bits(self.rtt_ns.load(Relaxed))
        };
        let next = if rtt_ns > previous {
            rtt_ns
        } else {
            let elapsed = now_ns.saturating_sub(updated) as f64;
            let decay = (-elapsed / settings.decay_ns).exp();
            previous * decay + rtt_ns * (1.0 - decay)
        };
        // Two workers observing at once may each write theirs: the estimate stays one of the two,
        // which is as good.
        self.rtt_ns.store(next.to_bits(), Relaxed);
        self.updated_ns.store(now_ns.max(1), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: f64 = 1_000_000.0;

    fn settings() -> EwmaSettings {
        EwmaSettings::new(Duration::from_secs(10), Duration::from_millis(30))
    }

    #[test]
    fn a_slow_answer_is_taken_at_once_and_fast_ones_bring_it_down() {
        let load = TargetLoad::default();
        let s = settings();
        assert_eq!(load.rtt_estimate(5, &s), 30.0 * MS);
        load.observe(100.0 * MS, 1_000, &s);
        assert!((load.rtt_estimate(1_000, &s) - 100.0 * MS).abs() < 1.0);
        // Fast answers a second apart pull it down, a little each.
        let mut now = 1_000u64;
        for _ in 0..5 {
            now += 1_000_000_000;
            load.observe(1.0 * MS, now, &s);
        }
        let estimate = load.rtt_estimate(now, &s);
        assert!(
            estimate < 100.0 * MS * 0.7 && estimate > 1.0 * MS,
            "{estimate}"
        );
    }

    #[test]
    fn one_report_moves_the_utilization_at_most_half_way() {
        let load = TargetLoad::default();
        let period = 1e9;
        load.report_utilization(1.0, 5_000_000_000, period);
        assert!((load.utilization() - 0.5).abs() < 1e-9);
        // A report right after another barely moves it.
        load.report_utilization(0.0, 5_001_000_000, period);
        assert!(load.utilization() > 0.49);
        // Reports over a few periods get there.
        let mut now = 5_001_000_000u64;
        for _ in 0..10 {
            now += 1_000_000_000;
            load.report_utilization(0.9, now, period);
        }
        assert!(
            (load.utilization() - 0.9).abs() < 0.01,
            "{}",
            load.utilization()
        );
    }

    #[test]
    fn an_idle_estimate_sinks_toward_zero() {
        let load = TargetLoad::default();
        let s = settings();
        load.observe(100.0 * MS, 1, &s);
        let later = load.rtt_estimate(1 + 30_000_000_000, &s);
        assert!(later < 100.0 * MS * 0.06, "{later}");
    }
}
