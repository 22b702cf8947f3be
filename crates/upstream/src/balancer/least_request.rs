//! Least request by the power of two choices.

use floodgate_config::TargetConfig;

use super::weights::{two_choices, weights, WeightTable};
use std::sync::Arc;

use crate::in_flight::{InFlightCounters, InFlightGuard};
use crate::load::TargetLoad;

/// Power of two choices (Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing", IEEE TPDS
/// 2001): draw two distinct targets by weight and send the request to the less loaded one. Comparing two
/// counters instead of all of them costs O(1) per pick, and its maximum load is exponentially better
/// than one random choice; it also avoids the herd that "always the least loaded" causes when several
/// workers act on the same counts at once. Envoy's and linkerd's least-request balancers work the same way.
///
/// Load is in-flight requests per unit of weight, so a target of weight 3 is "as loaded" as one of weight
/// 1 when it carries three times the requests.
#[derive(Debug)]
pub(crate) struct LeastRequest {
    table: WeightTable,
    in_flight: InFlightCounters,
}

impl LeastRequest {
    pub(crate) fn new(targets: &[TargetConfig], loads: Box<[Arc<TargetLoad>]>) -> Self {
        Self {
            table: WeightTable::new(&weights(targets)),
            in_flight: InFlightCounters::new(loads),
        }
    }

    pub(crate) fn start(&self, target: usize) -> InFlightGuard {
        self.in_flight.start(target)
    }

    pub(crate) fn in_flight(&self, target: usize) -> usize {
        self.in_flight.get(target)
    }

    #[inline]
    pub(crate) fn pick(&self, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        match self.table.len() {
            0 => return None,
            1 => return eligible(0).then_some(0),
            _ => {}
        }
        if let Some(target) = two_choices(&self.table, eligible, |a, b| self.less_loaded(a, b)) {
            return Some(target);
        }
        self.least_loaded_eligible(eligible)
    }

    /// The less loaded of `a` and `b`, `a` on a tie. `a` was drawn first, by weight, so ties (an idle
    /// upstream above all) still split requests in proportion to weight.
    fn less_loaded(&self, a: usize, b: usize) -> usize {
        if self.load_below(b, a) {
            b
        } else {
            a
        }
    }

    /// Whether `a`'s in-flight count per unit of weight is below `b`'s. Cross-multiplied
    /// (`in_flight_a * weight_b < in_flight_b * weight_a`) to stay in integers.
    fn load_below(&self, a: usize, b: usize) -> bool {
        let load = |target: usize, other: usize| {
            self.in_flight.get(target) as u128 * u128::from(self.table.weight(other))
        };
        load(a, b) < load(b, a)
    }

    /// Most of the weight is ineligible: look at every target, starting at a random one so that ties do
    /// not always go to the same target.
    fn least_loaded_eligible(&self, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.table.len();
        let offset = fastrand::usize(0..len);
        (0..len)
            .map(|step| (offset + step) % len)
            .filter(|&target| eligible(target))
            .reduce(|best, target| {
                if self.load_below(target, best) {
                    target
                } else {
                    best
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::targets;
    use super::*;

    fn balancer(list: &[(&str, u32)]) -> LeastRequest {
        LeastRequest::new(
            &targets(list),
            list.iter().map(|_| Arc::default()).collect(),
        )
    }

    #[test]
    fn prefers_the_less_loaded_target() {
        fastrand::seed(1);
        let balancer = balancer(&[("a:80", 1), ("b:80", 1)]);
        let _held: Vec<_> = (0..5).map(|_| balancer.start(0)).collect();
        for _ in 0..1_000 {
            assert_eq!(balancer.pick(&|_| true), Some(1));
        }
    }

    #[test]
    fn the_most_loaded_of_three_is_never_picked() {
        fastrand::seed(2);
        let balancer = balancer(&[("a:80", 1), ("b:80", 1), ("c:80", 1)]);
        let _held = balancer.start(2);
        let mut counts = [0usize; 3];
        for _ in 0..3_000 {
            counts[balancer.pick(&|_| true).unwrap()] += 1;
        }
        // Any pair that includes c has a less loaded partner.
        assert_eq!(counts[2], 0);
        assert!(counts[0] > 1_000 && counts[1] > 1_000, "{counts:?}");
    }

    #[test]
    fn load_is_measured_per_unit_of_weight() {
        fastrand::seed(3);
        let balancer = balancer(&[("a:80", 4), ("b:80", 1)]);
        // a: 2 in flight / weight 4 = 0.5; b: 1 / 1 = 1.
        let _a: Vec<_> = (0..2).map(|_| balancer.start(0)).collect();
        let _b = balancer.start(1);
        for _ in 0..100 {
            assert_eq!(balancer.pick(&|_| true), Some(0));
        }
    }

    #[test]
    fn idle_targets_share_by_weight() {
        fastrand::seed(4);
        let balancer = balancer(&[("a:80", 3), ("b:80", 1)]);
        let mut counts = [0usize; 2];
        for _ in 0..40_000 {
            counts[balancer.pick(&|_| true).unwrap()] += 1;
        }
        assert!((29_000..31_000).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn guard_decrements_on_drop() {
        let balancer = balancer(&[("a:80", 1), ("b:80", 1)]);
        let guard = balancer.start(0);
        let other = balancer.start(0);
        assert_eq!(balancer.in_flight(0), 2);
        drop(guard);
        assert_eq!(balancer.in_flight(0), 1);
        // The guard may end on another thread, as when a response body finishes elsewhere.
        std::thread::spawn(move || drop(other)).join().unwrap();
        assert_eq!(balancer.in_flight(0), 0);
    }

    #[test]
    fn one_target_is_always_that_target() {
        let balancer = balancer(&[("a:80", 9)]);
        let _held = balancer.start(0);
        assert_eq!(balancer.pick(&|_| true), Some(0));
        assert_eq!(balancer.pick(&|_| false), None);
    }

    #[test]
    fn ineligible_targets_are_skipped_even_when_least_loaded() {
        fastrand::seed(5);
        let balancer = balancer(&[("a:80", 1), ("b:80", 1), ("c:80", 1)]);
        let _held: Vec<_> = (0..3).map(|_| balancer.start(1)).collect();
        for _ in 0..300 {
            assert_eq!(balancer.pick(&|i| i == 1), Some(1));
        }
        assert_eq!(balancer.pick(&|_| false), None);
    }
}
