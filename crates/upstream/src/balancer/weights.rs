//! Target weights: reading them from config, shrinking them, and sampling by weight.

use floodgate_config::TargetConfig;

/// The targets' weights, with 0 (which validation rejects) counted as 1 so that no target is silently
/// unreachable and no total is ever zero.
pub(crate) fn weights(targets: &[TargetConfig]) -> Vec<u64> {
    targets.iter().map(|t| u64::from(t.weight.max(1))).collect()
}

/// Divides every weight by their greatest common divisor: weights {500, 100, 100} describe the same
/// split as {5, 1, 1}, and the smaller numbers give a shorter round-robin sequence and hash ring.
pub(crate) fn reduce_by_gcd(weights: &mut [u64]) {
    let divisor = weights.iter().copied().fold(0, gcd);
    if divisor > 1 {
        weights.iter_mut().for_each(|w| *w /= divisor);
    }
}

/// Scales the weights down proportionally when they add up to more than `cap`, keeping each at least 1
/// (so every target stays reachable); the result adds up to at most `cap + weights.len()`.
pub(crate) fn scale_to(weights: &mut [u64], cap: u64) {
    let total: u64 = weights.iter().sum();
    if total > cap {
        weights
            .iter_mut()
            .for_each(|w| *w = (*w * cap / total).max(1));
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Weighted random choice by prefix sums: draw a point in `0..total` and binary-search the target whose
/// range holds it. O(log n) per draw, no allocation, exact proportions.
#[derive(Debug)]
pub(crate) struct WeightTable {
    /// `cumulative[i]` is the sum of the weights of targets `0..=i`.
    cumulative: Box<[u64]>,
}

impl WeightTable {
    pub(crate) fn new(weights: &[u64]) -> Self {
        let cumulative = weights
            .iter()
            .scan(0u64, |sum, w| {
                *sum += w;
                Some(*sum)
            })
            .collect();
        Self { cumulative }
    }

    /// Number of targets.
    pub(crate) fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Weight of `target` (0 for an index out of range).
    pub(crate) fn weight(&self, target: usize) -> u64 {
        let end = self.cumulative.get(target).copied().unwrap_or(0);
        end - self.start_of(target).min(end)
    }

    fn start_of(&self, target: usize) -> u64 {
        match target.checked_sub(1) {
            Some(previous) => self.cumulative.get(previous).copied().unwrap_or(0),
            None => 0,
        }
    }

    fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The target whose range holds `point`, for `point < total`.
    fn owner_of(&self, point: u64) -> usize {
        self.cumulative.partition_point(|&end| end <= point)
    }

    /// A target drawn with probability proportional to its weight; `None` without targets.
    pub(crate) fn sample(&self) -> Option<usize> {
        let total = self.total();
        (total > 0).then(|| self.owner_of(fastrand::u64(0..total)))
    }

    /// A target other than `excluded`, drawn with probability proportional to its weight among the
    /// others; `None` when there is no other target.
    ///
    /// Drawing from the total minus the excluded weight and stepping over its range gives an exact
    /// distribution in one draw, where redrawing until different would loop long behind a heavy target.
    pub(crate) fn sample_excluding(&self, excluded: usize) -> Option<usize> {
        let excluded_weight = self.weight(excluded);
        let total = self.total() - excluded_weight;
        if total == 0 {
            return None;
        }
        let mut point = fastrand::u64(0..total);
        if point >= self.start_of(excluded) {
            point += excluded_weight;
        }
        Some(self.owner_of(point))
    }
}

/// Pairs drawn before a caller scans every target: most of the weight being ineligible is rare, and
/// bounded draws keep a pick O(1) otherwise.
const DRAWS: usize = 4;

/// The power of two choices: draws up to [`DRAWS`] pairs of distinct targets by weight; of a pair
/// where both are eligible, `prefer(first, second)` picks; of a pair where one is, that one. `None`
/// when no pair held an eligible target: the caller then looks at every target.
pub(crate) fn two_choices(
    table: &WeightTable,
    eligible: &impl Fn(usize) -> bool,
    prefer: impl Fn(usize, usize) -> usize,
) -> Option<usize> {
    for _ in 0..DRAWS {
        let first = table.sample()?;
        let second = table.sample_excluding(first)?;
        match (eligible(first), eligible(second)) {
            (true, true) => return Some(prefer(first, second)),
            (true, false) => return Some(first),
            (false, true) => return Some(second),
            (false, false) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcd_reduction_keeps_proportions() {
        let mut w = vec![500, 100, 100];
        reduce_by_gcd(&mut w);
        assert_eq!(w, [5, 1, 1]);
        let mut coprime = vec![3, 2];
        reduce_by_gcd(&mut coprime);
        assert_eq!(coprime, [3, 2]);
    }

    #[test]
    fn scaling_caps_the_total_and_keeps_every_target() {
        let mut w = vec![10_000, 1, 10_000];
        scale_to(&mut w, 4096);
        assert_eq!(w, [2047, 1, 2047]);
        let mut small = vec![5, 1, 1];
        scale_to(&mut small, 4096);
        assert_eq!(small, [5, 1, 1]);
    }

    #[test]
    fn zero_weight_counts_as_one() {
        let targets = super::super::fixtures::targets(&[("a:1", 0), ("b:1", 7)]);
        assert_eq!(weights(&targets), [1, 7]);
    }

    #[test]
    fn table_knows_each_weight() {
        let table = WeightTable::new(&[2, 3, 5]);
        assert_eq!((table.len(), table.total()), (3, 10));
        assert_eq!(
            (0..4).map(|i| table.weight(i)).collect::<Vec<_>>(),
            [2, 3, 5, 0]
        );
        assert_eq!(
            (0..10).map(|p| table.owner_of(p)).collect::<Vec<_>>(),
            [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
        );
    }

    #[test]
    fn sample_excluding_never_returns_the_excluded_target_and_keeps_proportions() {
        fastrand::seed(11);
        let table = WeightTable::new(&[1, 6, 3]);
        let mut counts = [0usize; 3];
        for _ in 0..40_000 {
            let target = table.sample_excluding(1).unwrap();
            counts[target] += 1;
        }
        assert_eq!(counts[1], 0);
        // Targets 0 and 2 share 40k draws 1:3.
        assert!((9_000..11_000).contains(&counts[0]), "{counts:?}");
        assert!((29_000..31_000).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn nothing_to_sample_is_none() {
        let empty = WeightTable::new(&[]);
        assert_eq!(empty.sample(), None);
        assert_eq!(empty.sample_excluding(0), None);
        assert_eq!(WeightTable::new(&[4]).sample_excluding(0), None);
    }
}
