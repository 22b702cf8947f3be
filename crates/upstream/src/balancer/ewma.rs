//! Peak-EWMA latency by the power of two choices (Finagle's and linkerd2-proxy's balancer).

use std::sync::Arc;

use floodgate_config::TargetConfig;

use super::weights::{two_choices, weights, WeightTable};
use crate::health::Nanos;
use crate::in_flight::{InFlightCounters, InFlightGuard};
use crate::load::{EwmaSettings, TargetLoad};

/// Draws two distinct targets by weight and sends the request to the cheaper one, where a target's
/// cost is its peak-EWMA latency times its requests in flight plus one, per unit of weight. A slow
/// target is avoided as soon as one slow answer is seen (the peak), and tried again as its estimate
/// decays while it is idle; a busy fast one is weighed against an idle slow one by both.
#[derive(Debug)]
pub(crate) struct Ewma {
    table: WeightTable,
    loads: Box<[Arc<TargetLoad>]>,
    in_flight: InFlightCounters,
    settings: EwmaSettings,
}

impl Ewma {
    pub(crate) fn new(
        targets: &[TargetConfig],
        loads: Box<[Arc<TargetLoad>]>,
        settings: EwmaSettings,
    ) -> Self {
        Self {
            table: WeightTable::new(&weights(targets)),
            in_flight: InFlightCounters::new(loads.clone()),
            loads,
            settings,
        }
    }

    pub(crate) fn start(&self, target: usize) -> InFlightGuard {
        self.in_flight.start(target)
    }

    pub(crate) fn in_flight(&self, target: usize) -> usize {
        self.in_flight.get(target)
    }

    /// Counts a round trip to `target` of `rtt_ns`, ending at `ended`.
    pub(crate) fn observe(&self, target: usize, rtt_ns: f64, ended: Nanos) {
        if let Some(load) = self.loads.get(target) {
            load.observe(rtt_ns, ended.0, &self.settings);
        }
    }

    /// `target`'s latency estimate now, in nanoseconds.
    pub(crate) fn rtt_estimate(&self, target: usize) -> Option<f64> {
        let now = Nanos::now().0;
        self.loads
            .get(target)
            .map(|load| load.rtt_estimate(now, &self.settings))
    }

    #[inline]
    pub(crate) fn pick(&self, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        match self.table.len() {
            0 => return None,
            1 => return eligible(0).then_some(0),
            _ => {}
        }
        let now = Nanos::now().0;
        let cheaper = |a: usize, b: usize| {
            if self.cost(b, now) < self.cost(a, now) {
                b
            } else {
                a
            }
        };
        if let Some(target) = two_choices(&self.table, eligible, cheaper) {
            return Some(target);
        }
        let len = self.table.len();
        let offset = fastrand::usize(0..len);
        (0..len)
            .map(|step| (offset + step) % len)
            .filter(|&target| eligible(target))
            .min_by(|&a, &b| self.cost(a, now).total_cmp(&self.cost(b, now)))
    }

    fn cost(&self, target: usize, now_ns: u64) -> f64 {
        let rtt = self.loads[target].rtt_estimate(now_ns, &self.settings);
        let pending = self.in_flight.get(target) as f64 + 1.0;
        rtt * pending / self.table.weight(target) as f64
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixtures::targets;
    use super::*;

    fn balancer(n: usize) -> Ewma {
        let list: Vec<(String, u32)> = (0..n).map(|i| (format!("t{i}:80"), 1)).collect();
        let list: Vec<(&str, u32)> = list.iter().map(|(a, w)| (a.as_str(), *w)).collect();
        Ewma::new(
            &targets(&list),
            (0..n).map(|_| Arc::default()).collect(),
            EwmaSettings::new(Duration::from_secs(10), Duration::from_millis(30)),
        )
    }

    #[test]
    fn a_slow_target_is_avoided_once_seen() {
        let balancer = balancer(3);
        balancer.observe(0, 1e6, Nanos::now());
        balancer.observe(1, 1e6, Nanos::now());
        balancer.observe(2, 100e6, Nanos::now());
        let slow = (0..3000)
            .filter(|_| balancer.pick(&|_| true) == Some(2))
            .count();
        assert_eq!(slow, 0);
    }

    #[test]
    fn requests_in_flight_make_a_fast_target_cost_more() {
        let balancer = balancer(2);
        balancer.observe(0, 1e6, Nanos::now());
        balancer.observe(1, 2e6, Nanos::now());
        let _busy: Vec<_> = (0..5).map(|_| balancer.start(0)).collect();
        assert_eq!(balancer.in_flight(0), 5);
        for _ in 0..100 {
            assert_eq!(balancer.pick(&|_| true), Some(1));
        }
        assert!(balancer.rtt_estimate(1).is_some_and(|rtt| rtt > 1e6));
    }
}
