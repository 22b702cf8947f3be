//! Remembering, within one pick, which targets the proxy has already rejected.

/// Targets this set can remember; beyond it a walk simply asks `eligible` again.
const CAPACITY: usize = 256;

/// A fixed-size bit set of rejected target indexes, kept on the stack for the length of one pick.
///
/// Round robin and the hash ring both walk a sequence in which each target appears many times. Without
/// this set, a pick where every target is at its connection limit would call `eligible` once per entry
/// (up to 4096 or 65536 times) before giving up; with it, the walk skips repeats without asking and stops
/// as soon as every target has said no.
#[derive(Debug, Default)]
pub(crate) struct RejectedTargets {
    bits: [u64; CAPACITY / 64],
    count: usize,
}

impl RejectedTargets {
    /// Whether `target` has been rejected already (always false beyond the capacity).
    #[inline]
    pub(crate) fn contains(&self, target: usize) -> bool {
        self.bits
            .get(target / 64)
            .is_some_and(|word| word & (1 << (target % 64)) != 0)
    }

    /// Records that `target` was rejected.
    #[inline]
    pub(crate) fn insert(&mut self, target: usize) {
        if let Some(word) = self.bits.get_mut(target / 64) {
            let bit = 1 << (target % 64);
            if *word & bit == 0 {
                *word |= bit;
                self.count += 1;
            }
        }
    }

    /// Whether all of `targets` targets have been rejected, so walking further is pointless.
    #[inline]
    pub(crate) fn all_of(&self, targets: usize) -> bool {
        targets <= CAPACITY && self.count >= targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_target_once() {
        let mut rejected = RejectedTargets::default();
        rejected.insert(3);
        rejected.insert(3);
        rejected.insert(200);
        assert!(rejected.contains(3) && rejected.contains(200) && !rejected.contains(4));
        assert!(!rejected.all_of(3));
        rejected.insert(0);
        assert!(rejected.all_of(3));
    }

    #[test]
    fn beyond_capacity_nothing_is_remembered() {
        let mut rejected = RejectedTargets::default();
        rejected.insert(CAPACITY);
        assert!(!rejected.contains(CAPACITY));
        assert!(!rejected.all_of(CAPACITY + 1));
    }
}
