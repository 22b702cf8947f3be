//! Weighted random choice.

use floodgate_config::TargetConfig;

use super::weights::{weights, WeightTable};

/// Weighted draws before giving up on chance and scanning: with a few targets at their connection limit a
/// redraw almost always succeeds, and the scan bounds the cost when most of the weight is ineligible.
const DRAWS: usize = 4;

/// Picks each target with probability proportional to its weight. Stateless apart from the calling
/// thread's own `fastrand` generator, so workers share nothing at all.
#[derive(Debug)]
pub(crate) struct WeightedRandom {
    table: WeightTable,
}

impl WeightedRandom {
    pub(crate) fn new(targets: &[TargetConfig]) -> Self {
        Self {
            table: WeightTable::new(&weights(targets)),
        }
    }

    #[inline]
    pub(crate) fn pick(&self, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        let mut last = self.table.sample()?;
        for _ in 1..DRAWS {
            if eligible(last) {
                return Some(last);
            }
            last = self.table.sample()?;
        }
        // Scan onward from the last draw rather than from target 0, so the fallback does not always
        // favour the first eligible target in config order.
        let len = self.table.len();
        (0..len)
            .map(|step| (last + step) % len)
            .find(|&target| eligible(target))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::targets;
    use super::*;

    #[test]
    fn picks_in_proportion_to_weights() {
        fastrand::seed(42);
        let balancer = WeightedRandom::new(&targets(&[("a:80", 1), ("b:80", 2), ("c:80", 7)]));
        let mut counts = [0usize; 3];
        for _ in 0..100_000 {
            counts[balancer.pick(&|_| true).unwrap()] += 1;
        }
        // Expected 10k, 20k and 70k; the tolerance is many standard deviations wide.
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        assert!((18_500..21_500).contains(&counts[1]), "{counts:?}");
        assert!((68_000..72_000).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn ineligible_targets_are_skipped() {
        fastrand::seed(7);
        let balancer = WeightedRandom::new(&targets(&[("a:80", 1), ("b:80", 1), ("c:80", 1)]));
        let mut counts = [0usize; 3];
        for _ in 0..3_000 {
            counts[balancer.pick(&|i| i != 0).unwrap()] += 1;
        }
        assert_eq!(counts[0], 0);
        assert!(counts[1] > 1_000 && counts[2] > 1_000, "{counts:?}");
    }

    #[test]
    fn a_light_target_is_found_when_the_heavy_ones_are_ineligible() {
        fastrand::seed(3);
        let balancer =
            WeightedRandom::new(&targets(&[("a:80", 10_000), ("b:80", 10_000), ("c:80", 1)]));
        for _ in 0..100 {
            assert_eq!(balancer.pick(&|i| i == 2), Some(2));
        }
    }

    #[test]
    fn none_when_no_target_is_eligible() {
        let balancer = WeightedRandom::new(&targets(&[("a:80", 1), ("b:80", 3)]));
        assert_eq!(balancer.pick(&|_| false), None);
        assert_eq!(WeightedRandom::new(&[]).pick(&|_| true), None);
    }
}
