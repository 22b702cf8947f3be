//! One slot per worker thread, each on its own cache lines.

/// Aligns its content to 128 bytes: x86-64 prefetches cache lines in adjacent pairs and Apple/ARM big cores
/// use 128-byte lines, so 64-byte padding would still let two workers' slots false-share (crossbeam's
/// `CachePadded` makes the same choice).
#[repr(align(128))]
#[derive(Default)]
struct CachePadded<T>(T);

/// A fixed set of per-worker slots, each on cache lines of its own. Worker `i` writes slot `i` only;
/// readers sum all of them. Metrics keep their counts in it, and so do the proxy's per-worker limits.
pub struct PerWorker<T> {
    /// Never empty: [`PerWorker::new`] makes at least one slot, which [`PerWorker::get`] relies on.
    slots: Box<[CachePadded<T>]>,
}

impl<T: Default> PerWorker<T> {
    /// Slots for `workers` workers (at least one, so a misconfigured zero still records).
    pub fn new(workers: usize) -> Self {
        Self {
            slots: (0..workers.max(1))
                .map(|_| CachePadded::default())
                .collect(),
        }
    }
}

impl<T> PerWorker<T> {
    /// The slot of `worker`. An index past the last worker is clamped to the last slot rather than
    /// panicking: that slot may then be shared between threads, and counts added with [`add_own`] to it
    /// may be lost (workers are numbered below the slot count by construction).
    pub fn get(&self, worker: usize) -> &T {
        let last = self.slots.len() - 1;
        &self.slots[worker.min(last)].0
    }

    /// Every slot, for summing at scrape time.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|slot| &slot.0)
    }
}

/// Adds `n` to a counter in the calling worker's own slot. Only that worker writes the slot, so a load
/// and a store count exactly and cost less than a locked read-modify-write on every request; readers on
/// other threads see the count as of one store or another.
pub(crate) fn add_own(counter: &std::sync::atomic::AtomicU64, n: u64) {
    use std::sync::atomic::Ordering::Relaxed;
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn slots_sit_on_separate_cache_lines() {
        let slots = PerWorker::<AtomicU64>::new(4);
        let addrs: Vec<usize> = slots
            .iter()
            .map(|s| s as *const AtomicU64 as usize)
            .collect();
        for pair in addrs.windows(2) {
            assert_eq!(pair[0] % 128, 0);
            assert!(pair[1] - pair[0] >= 128);
        }
    }

    #[test]
    fn out_of_range_worker_is_clamped_not_a_panic() {
        let slots = PerWorker::<AtomicU64>::new(2);
        slots.get(7).fetch_add(1, Ordering::Relaxed);
        slots.get(1).fetch_add(1, Ordering::Relaxed);
        let per_slot: Vec<u64> = slots.iter().map(|s| s.load(Ordering::Relaxed)).collect();
        assert_eq!(per_slot, vec![0, 2]);
    }

    #[test]
    fn zero_workers_still_has_a_slot() {
        let slots = PerWorker::<AtomicU64>::new(0);
        slots.get(0).fetch_add(1, Ordering::Relaxed);
        assert_eq!(slots.iter().count(), 1);
    }
}
