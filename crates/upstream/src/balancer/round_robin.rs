//! Smooth weighted round robin, precomputed once and walked by each worker with its own cursor.

use std::sync::atomic::{AtomicUsize, Ordering};

use floodgate_config::TargetConfig;

use super::rejected::RejectedTargets;
use super::weights::{reduce_by_gcd, scale_to, weights};
use crate::cache_padded::CachePadded;

/// Longest precomputed sequence. Weights whose (gcd-reduced) sum exceeds it are scaled down
/// proportionally: 4096 entries of 4 bytes fit in L1/L2 and keep the split exact to within 1/4096.
const MAX_SEQUENCE: u64 = 4096;

/// nginx's smooth weighted round robin (`ngx_http_upstream_get_peer` in
/// `src/http/ngx_http_upstream_round_robin.c`, since nginx 1.3.1): weights {5, 1, 1} give
/// a a b a c a a rather than a a a a a b c, so a heavy target never receives a burst of consecutive
/// requests. nginx recomputes the choice on every request under a lock shared by its workers; the
/// sequence only depends on the weights, so it is computed once here and each worker walks it with its
/// own cursor, which needs neither a lock nor a shared cache line.
#[derive(Debug)]
pub(crate) struct RoundRobin {
    /// Target indexes in smooth WRR order; one full pass gives each target its (reduced) weight.
    sequence: Box<[u32]>,
    /// Next position in `sequence`, one per worker. Each is written only by its own worker.
    cursors: Box<[CachePadded<AtomicUsize>]>,
    targets: usize,
}

impl RoundRobin {
    pub(crate) fn new(targets: &[TargetConfig], workers: usize) -> Self {
        let mut weights = weights(targets);
        reduce_by_gcd(&mut weights);
        scale_to(&mut weights, MAX_SEQUENCE);
        let sequence = smooth_sequence(&weights);
        // Workers start spread over the sequence: had they all started at 0, the first request of every
        // worker after a reload would go to the same (heaviest) target.
        let workers = workers.max(1);
        let cursors = (0..workers)
            .map(|worker| CachePadded(AtomicUsize::new(worker * sequence.len() / workers)))
            .collect();
        Self {
            sequence: sequence.into_boxed_slice(),
            cursors,
            targets: targets.len(),
        }
    }

    /// The next eligible target in `worker`'s walk of the sequence.
    ///
    /// An ineligible entry is skipped and the cursor moves past the entry actually used, so a pass over the
    /// sequence still gives the remaining targets their weights relative to one another.
    #[inline]
    pub(crate) fn pick(&self, worker: usize, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.sequence.len();
        // A worker index beyond the configured count shares a slot rather than failing: the walk stays
        // correct, only the no-contention property is lost for it.
        let cursor = match self.cursors.get(worker) {
            Some(cursor) => cursor,
            None => self.cursors.get(worker % self.cursors.len().max(1))?,
        };
        // Only this worker writes its cursor, so a plain load and store suffice: no read-modify-write.
        let start = cursor.load(Ordering::Relaxed);
        let start = if start < len { start } else { 0 };
        let mut rejected = RejectedTargets::default();
        for step in 0..len {
            // Wrap by subtraction: a division per pick costs more than the rest of the walk.
            let position = start + step;
            let position = if position >= len {
                position - len
            } else {
                position
            };
            let Some(&target) = self.sequence.get(position) else {
                break;
            };
            let target = target as usize;
            if rejected.contains(target) {
                continue;
            }
            if eligible(target) {
                let next = position + 1;
                cursor.store(if next == len { 0 } else { next }, Ordering::Relaxed);
                return Some(target);
            }
            rejected.insert(target);
            if rejected.all_of(self.targets) {
                break;
            }
        }
        None
    }
}

/// The smooth WRR order for `weights`: at each step every target's current weight grows by its weight,
/// the target with the highest current weight is chosen (the first one on a tie, as in nginx) and its
/// current weight drops by the total. After `sum(weights)` steps every current weight is back to zero, so
/// the sequence repeats exactly.
fn smooth_sequence(weights: &[u64]) -> Vec<u32> {
    // Equal weights (all 1 after gcd reduction) give plain rotation; computing it directly avoids the
    // quadratic loop below for upstreams with thousands of targets.
    if weights.iter().all(|&w| w == 1) {
        return (0..weights.len()).map(index_u32).collect();
    }
    let weights: Vec<i64> = weights
        .iter()
        .map(|&w| i64::try_from(w).unwrap_or(i64::MAX))
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut sequence = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        let mut best_current = i64::MIN;
        for (i, (current, &weight)) in current.iter_mut().zip(&weights).enumerate() {
            *current += weight;
            if *current > best_current {
                best = i;
                best_current = *current;
            }
        }
        if let Some(chosen) = current.get_mut(best) {
            *chosen -= total;
        }
        sequence.push(index_u32(best));
    }
    sequence
}

fn index_u32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::targets;
    use super::*;

    fn walk(balancer: &RoundRobin, worker: usize, picks: usize) -> Vec<usize> {
        (0..picks)
            .map(|_| balancer.pick(worker, &|_| true).unwrap())
            .collect()
    }

    #[test]
    fn sequence_for_5_1_1_matches_nginx() {
        let balancer = RoundRobin::new(&targets(&[("a:80", 5), ("b:80", 1), ("c:80", 1)]), 1);
        // nginx's documented order for weights 5, 1, 1: a a b a c a a, then again.
        let (a, b, c) = (0, 1, 2);
        assert_eq!(
            walk(&balancer, 0, 14),
            [a, a, b, a, c, a, a, a, a, b, a, c, a, a]
        );
    }

    #[test]
    fn weights_are_reduced_by_their_gcd() {
        let reduced = RoundRobin::new(&targets(&[("a:80", 500), ("b:80", 100), ("c:80", 100)]), 1);
        assert_eq!(&*reduced.sequence, [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn equal_weights_rotate() {
        let balancer = RoundRobin::new(&targets(&[("a:80", 3), ("b:80", 3), ("c:80", 3)]), 1);
        assert_eq!(walk(&balancer, 0, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn long_sequences_are_capped_and_keep_every_target() {
        let balancer = RoundRobin::new(
            &targets(&[("a:80", 10_000), ("b:80", 1), ("c:80", 9_999)]),
            1,
        );
        assert!(balancer.sequence.len() as u64 <= MAX_SEQUENCE);
        let count = |t| balancer.sequence.iter().filter(|&&i| i == t).count();
        assert_eq!(count(1), 1);
        assert!(count(0) >= count(2) && count(2) > 2000, "{}", count(2));
    }

    #[test]
    fn workers_walk_independently() {
        let balancer = RoundRobin::new(&targets(&[("a:80", 5), ("b:80", 1), ("c:80", 1)]), 2);
        let worker_1_first = walk(&balancer, 1, 7);
        // Worker 1 starts part-way into the same sequence, so one pass is a rotation of it.
        assert_eq!(worker_1_first, [0, 2, 0, 0, 0, 0, 1]);
        // Worker 1's picks did not move worker 0's cursor.
        assert_eq!(walk(&balancer, 0, 7), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(walk(&balancer, 1, 7), worker_1_first);
    }

    #[test]
    fn unknown_worker_index_shares_a_cursor_instead_of_failing() {
        let balancer = RoundRobin::new(&targets(&[("a:80", 1), ("b:80", 1)]), 2);
        assert_eq!(walk(&balancer, 2, 3), [0, 1, 0]);
        // Worker 2 used worker 0's cursor.
        assert_eq!(walk(&balancer, 0, 1), [1]);
    }

    #[test]
    fn ineligible_target_is_skipped_and_others_keep_their_ratio() {
        let balancer = RoundRobin::new(&targets(&[("a:80", 5), ("b:80", 1), ("c:80", 1)]), 1);
        let picks: Vec<_> = (0..12)
            .map(|_| balancer.pick(0, &|i| i != 1).unwrap())
            .collect();
        assert_eq!(picks, [0, 0, 0, 2, 0, 0, 0, 0, 0, 2, 0, 0]);
    }

    #[test]
    fn none_when_no_target_is_eligible() {
        let balancer = RoundRobin::new(&targets(&[("a:80", 5), ("b:80", 1), ("c:80", 1)]), 1);
        let asked = std::cell::Cell::new(0);
        let none = balancer.pick(0, &|_| {
            asked.set(asked.get() + 1);
            false
        });
        assert_eq!(none, None);
        // Each target was asked once, not once per sequence entry.
        assert_eq!(asked.get(), 3);
        // The cursor did not move: the next eligible pick starts where the last one left off.
        assert_eq!(walk(&balancer, 0, 3), [0, 0, 1]);
    }

    #[test]
    fn no_targets_means_no_pick() {
        let balancer = RoundRobin::new(&[], 0);
        assert_eq!(balancer.pick(0, &|_| true), None);
    }
}
