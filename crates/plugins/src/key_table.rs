//! [`KeyTable`]: a fixed-capacity, lock-free table of one 64-bit state word per key, shared by every
//! worker of the process.
//!
//! Open addressing over atomic slots. A slot is two words: the key's 64-bit hash (0: never used) and
//! the state the limiter keeps for it (a GCRA arrival time, a packed window counter, a connection
//! count). A key's slot is found by probing at most [`PROBES`] slots from its hash's position. Slots
//! are never emptied once taken, so a key is always found before the first empty slot of its window;
//! when a window has no empty slot, a slot whose state is idle (its limiter back to "full", so
//! forgetting it changes no verdict) is reclaimed for the new key; when none is idle either, the key
//! shares the table's single overflow slot with every other key that found no room.
//!
//! Memory: 16 bytes per slot, the slot count being `max_keys` rounded up to a power of two, allocated
//! in chunks of [`CHUNK`] slots the first time a key hashes into them (a table a handful of keys use
//! costs a few chunks, not its capacity).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use once_cell::race::OnceBox;

use crate::stats::PluginStats;

/// How many slots from a key's home position are searched for it, for room, or for an idle slot
/// (four cache lines).
pub(crate) const PROBES: usize = 16;
/// Slots allocated together (16 KiB).
pub(crate) const CHUNK: usize = 1024;
/// A state no limiter produces: the slot is being handed to another key.
const RECLAIMING: u64 = u64::MAX;
/// How often a request re-reads a slot another thread is handing over before giving up on it.
const SPINS: usize = 256;
/// The largest capacity accepted (`max_keys`): 2^26 slots, 1 GiB.
pub(crate) const MAX_SLOTS: usize = 1 << 26;

#[derive(Default)]
struct Slot {
    key: AtomicU64,
    state: AtomicU64,
}

/// Which slot a key's state lives in, to come back to it (a held connection slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SlotId {
    /// A slot of its own.
    Own(usize),
    /// The overflow slot shared by keys that found no room.
    Overflow,
}

/// The keyed state of one limiter instance; carried across reloads while its configuration is unchanged.
pub(crate) struct KeyTable {
    chunks: Box<[OnceBox<Box<[Slot]>>]>,
    chunk_len: usize,
    mask: usize,
    overflow: Slot,
    hasher: KeyHasher,
    /// Slots ever taken (they are reused, never emptied), mirrored in `stats.rate_limit_keys`.
    used: AtomicU64,
    stats: Arc<PluginStats>,
}

impl KeyTable {
    /// A table of at least `max_keys` slots (rounded up to a power of two, at most [`MAX_SLOTS`]).
    pub(crate) fn new(max_keys: usize, stats: Arc<PluginStats>) -> Self {
        // Randomly keyed SipHash: clients choose header values and addresses, and must not be able
        // to aim many keys at one probe window.
        Self::with_hasher(max_keys, stats, KeyHasher::random())
    }

    /// A table whose keys are hashed by `hasher` (one a fleet of gateways shares, for counters
    /// they sync by hash).
    pub(crate) fn with_hasher(max_keys: usize, stats: Arc<PluginStats>, hasher: KeyHasher) -> Self {
        let slots = max_keys.clamp(1, MAX_SLOTS).next_power_of_two();
        let chunk_len = slots.min(CHUNK);
        let chunks = (0..slots / chunk_len).map(|_| OnceBox::new()).collect();
        Self {
            chunks,
            chunk_len,
            mask: slots - 1,
            overflow: Slot::default(),
            hasher,
            used: AtomicU64::new(0),
            stats,
        }
    }

    /// The table's hasher: a key's hash is its identity here.
    pub(crate) fn hasher(&self) -> &KeyHasher {
        &self.hasher
    }

    /// How many slots the table has.
    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Slots taken so far.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Applies `decide` to the state of key `hash` atomically: `decide(state)` returns the new state
    /// (or `None` to leave it as it is) and a verdict, and is called again if another thread changed
    /// the state meanwhile. `idle(state)` says whether a state may be forgotten; a fresh key's state
    /// is 0. Returns where the state lives and the verdict.
    pub(crate) fn update<R>(
        &self,
        hash: u64,
        idle: impl Fn(u64) -> bool,
        mut decide: impl FnMut(u64) -> (Option<u64>, R),
    ) -> (SlotId, R) {
        self.update_in_slot(hash, idle, |_, state| decide(state))
    }

    /// [`Self::update`], telling `decide` which slot the state is in (for what is kept beside it).
    pub(crate) fn update_in_slot<R>(
        &self,
        hash: u64,
        idle: impl Fn(u64) -> bool,
        mut decide: impl FnMut(SlotId, u64) -> (Option<u64>, R),
    ) -> (SlotId, R) {
        // 0 marks an unused slot.
        let hash = hash.max(1);
        let mut spins = 0;
        loop {
            let (id, reclaimed) = self.locate(hash, &idle);
            let slot = self.slot(id);
            if reclaimed {
                // The slot is this key's and shut to everyone else (RECLAIMING) until this store.
                // Storing the state after this request, rather than 0, means an update the old key
                // prepared on its idle state (often 0) cannot succeed on it.
                let (next, verdict) = decide(id, 0);
                slot.state.store(next.unwrap_or(0), Ordering::Release);
                return (id, verdict);
            }
            loop {
                let state = slot.state.load(Ordering::Acquire);
                let owned = id == SlotId::Overflow || slot.key.load(Ordering::Acquire) == hash;
                if state == RECLAIMING || !owned {
                    break;
                }
                let (next, verdict) = decide(id, state);
                let Some(next) = next else {
                    return (id, verdict);
                };
                if slot
                    .state
                    .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return (id, verdict);
                }
            }
            // The slot is being handed over (to this key or away from it): a few stores away from done.
            spins += 1;
            if spins >= SPINS {
                return self.update_overflow(|state| decide(SlotId::Overflow, state));
            }
            std::hint::spin_loop();
        }
    }

    /// Subtracts one from the state of slot `id` (a connection count).
    pub(crate) fn release(&self, id: SlotId) {
        // A slot with a count above zero is never idle, so it still belongs to the key that took it.
        let _ = self
            .slot(id)
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Calls `visit` with the slot, key hash and state of every slot a key has taken, the overflow
    /// slot last (its key hash 0). Chunks no key hashed into are skipped, not allocated.
    pub(crate) fn for_each_taken(&self, mut visit: impl FnMut(SlotId, u64, u64)) {
        for (number, chunk) in self.chunks.iter().enumerate() {
            let Some(slots) = chunk.get() else { continue };
            for (offset, slot) in slots.iter().enumerate() {
                let key = slot.key.load(Ordering::Acquire);
                let state = slot.state.load(Ordering::Acquire);
                if key != 0 && state != RECLAIMING {
                    visit(SlotId::Own(number * self.chunk_len + offset), key, state);
                }
            }
        }
        visit(
            SlotId::Overflow,
            0,
            self.overflow.state.load(Ordering::Acquire),
        );
    }

    /// The state word of slot `id`.
    #[cfg(test)]
    pub(crate) fn state(&self, id: SlotId) -> u64 {
        self.slot(id).state.load(Ordering::Acquire)
    }

    fn update_overflow<R>(&self, mut decide: impl FnMut(u64) -> (Option<u64>, R)) -> (SlotId, R) {
        let state = &self.overflow.state;
        loop {
            let current = state.load(Ordering::Acquire);
            let (next, verdict) = decide(current);
            let Some(next) = next else {
                return (SlotId::Overflow, verdict);
            };
            if state
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return (SlotId::Overflow, verdict);
            }
        }
    }

    /// The slot of `hash`: its own, a newly taken one, a reclaimed idle one, or the overflow slot;
    /// `true` with a reclaimed slot, whose state (RECLAIMING) the caller must set.
    fn locate(&self, hash: u64, idle: &impl Fn(u64) -> bool) -> (SlotId, bool) {
        let home = hash as usize;
        let mut reclaimable = None;
        for probe in 0..PROBES.min(self.capacity()) {
            let index = home.wrapping_add(probe) & self.mask;
            let slot = self.slot(SlotId::Own(index));
            let key = slot.key.load(Ordering::Acquire);
            if key == hash {
                return (SlotId::Own(index), false);
            }
            if key == 0 {
                // Every inserter of a key scans the same slots in the same order, so two racing to
                // insert it meet at this first empty slot and one finds the other's key here.
                match slot
                    .key
                    .compare_exchange(0, hash, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        self.used.fetch_add(1, Ordering::Relaxed);
                        self.stats.rate_limit_keys.fetch_add(1, Ordering::Relaxed);
                        return (SlotId::Own(index), false);
                    }
                    Err(other) if other == hash => return (SlotId::Own(index), false),
                    Err(_) => continue,
                }
            }
            if reclaimable.is_none() {
                let state = slot.state.load(Ordering::Acquire);
                if state != RECLAIMING && idle(state) {
                    reclaimable = Some((index, state));
                }
            }
        }
        if let Some((index, state)) = reclaimable {
            let slot = self.slot(SlotId::Own(index));
            // Taking the state first shuts out the old key's updates: they see RECLAIMING, or fail
            // their exchange and then see the new key.
            if slot
                .state
                .compare_exchange(state, RECLAIMING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slot.key.store(hash, Ordering::Release);
                return (SlotId::Own(index), true);
            }
        }
        (SlotId::Overflow, false)
    }

    fn slot(&self, id: SlotId) -> &Slot {
        let SlotId::Own(index) = id else {
            return &self.overflow;
        };
        let chunk = &self.chunks[index / self.chunk_len];
        // Racing first users may both build a chunk; one wins and the other's is dropped. No lock.
        let slots =
            chunk.get_or_init(|| Box::new((0..self.chunk_len).map(|_| Slot::default()).collect()));
        &slots[index % self.chunk_len]
    }
}

impl Drop for KeyTable {
    fn drop(&mut self) {
        let used = i64::try_from(self.used()).unwrap_or(i64::MAX);
        self.stats
            .rate_limit_keys
            .fetch_sub(used, Ordering::Relaxed);
    }
}

/// The keyed SipHash-1-3 a table hashes its keys with.
#[derive(Debug, Clone)]
pub(crate) struct KeyHasher {
    keys: (u64, u64),
}

impl KeyHasher {
    /// Keys from the operating system's randomness (through the standard library's `RandomState`).
    pub(crate) fn random() -> Self {
        let random = RandomState::new();
        Self {
            keys: (random.hash_one(0x6b31_u64), random.hash_one(0x6b32_u64)),
        }
    }

    /// Keys derived from `secret`: every process given the same secret hashes a key alike.
    pub(crate) fn from_secret(secret: &[u8]) -> Self {
        let derive = |label: u64| {
            let mut h = siphasher::sip::SipHasher13::new_with_keys(label, !label);
            std::hash::Hasher::write(&mut h, secret);
            std::hash::Hasher::finish(&h)
        };
        Self {
            keys: (derive(0x666c_6f6f_6467_6174), derive(0x6b65_7920_7461_626c)),
        }
    }
}

impl BuildHasher for KeyHasher {
    type Hasher = siphasher::sip::SipHasher13;

    fn build_hasher(&self) -> Self::Hasher {
        siphasher::sip::SipHasher13::new_with_keys(self.keys.0, self.keys.1)
    }
}

/// A concurrency slot a request holds until it ends; dropping it gives the slot back.
pub struct Held {
    table: Arc<KeyTable>,
    slot: SlotId,
}

impl Held {
    /// Holds `slot` of `table` until dropped.
    pub(crate) fn new(table: Arc<KeyTable>, slot: SlotId) -> Self {
        Self { table, slot }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.table.release(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_keys: usize) -> (KeyTable, Arc<PluginStats>) {
        let stats = Arc::new(PluginStats::default());
        (KeyTable::new(max_keys, stats.clone()), stats)
    }

    /// A counter that admits up to 3 and is idle at 0.
    fn count(table: &KeyTable, hash: u64) -> (SlotId, bool) {
        table.update(
            hash,
            |s| s == 0,
            |s| {
                if s < 3 {
                    (Some(s + 1), true)
                } else {
                    (None, false)
                }
            },
        )
    }

    #[test]
    fn each_key_has_its_own_state_and_the_gauge_follows_slots_taken() {
        let (t, stats) = table(64);
        assert_eq!(t.capacity(), 64);
        for _ in 0..3 {
            assert!(count(&t, 7).1);
        }
        assert!(!count(&t, 7).1);
        assert!(count(&t, 8).1);
        assert_eq!(t.used(), 2);
        assert_eq!(stats.rate_limit_keys.load(Ordering::Relaxed), 2);
        drop(t);
        assert_eq!(stats.rate_limit_keys.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_table_reclaims_an_idle_slot() {
        let (t, _) = table(4);
        // Keys 1..=4 fill the table (all hash into its one probe window).
        let ids: Vec<SlotId> = (1..=4).map(|k| count(&t, k).0).collect();
        assert!(ids.iter().all(|id| matches!(id, SlotId::Own(_))));
        // Key 2's connection ends: its slot is idle and goes to key 9, which starts fresh.
        t.release(ids[1]);
        assert_eq!(t.state(ids[1]), 0);
        let (id, allowed) = count(&t, 9);
        assert_eq!(id, ids[1]);
        assert!(allowed);
        assert_eq!(t.state(id), 1);
        assert_eq!(t.used(), 4, "a reclaimed slot is not a new one");
    }

    #[test]
    fn a_full_table_without_idle_slots_shares_the_overflow_slot() {
        let (t, _) = table(2);
        count(&t, 1);
        count(&t, 2);
        // Keys 3 and 4 find no room: they share one budget of 3.
        assert_eq!(count(&t, 3), (SlotId::Overflow, true));
        assert_eq!(count(&t, 4), (SlotId::Overflow, true));
        assert_eq!(count(&t, 3), (SlotId::Overflow, true));
        assert_eq!(count(&t, 4), (SlotId::Overflow, false));
        // The tracked keys are untouched by it.
        assert!(count(&t, 1).1);
    }

    #[test]
    fn chunks_are_allocated_when_first_used() {
        let (t, _) = table(1 << 20);
        assert_eq!(t.chunks.len(), (1 << 20) / CHUNK);
        count(&t, 12345);
        let allocated = t.chunks.iter().filter(|c| c.get().is_some()).count();
        assert!(allocated <= 2, "{allocated} chunks for one key");
    }

    #[test]
    fn racing_threads_share_one_slot_per_key() {
        let (t, _) = table(1024);
        let t = Arc::new(t);
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let t = t.clone();
                    s.spawn(move || (0..1000).filter(|_| count(&t, 42).1).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        assert_eq!(admitted, 3);
        assert_eq!(t.used(), 1);
    }

    #[test]
    fn keys_churning_through_a_small_table_leave_every_count_balanced() {
        // Connection-count style: taken and given back, so slots keep going idle and being
        // reclaimed by other keys while threads race on them.
        let (t, _) = table(4);
        let t = Arc::new(t);
        std::thread::scope(|s| {
            for thread in 0..4u64 {
                let t = t.clone();
                s.spawn(move || {
                    let mut key = thread;
                    for _ in 0..20_000 {
                        key = key
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let (id, taken) = t.update(
                            (key >> 58) + 1,
                            |n| n == 0,
                            |n| {
                                if n < 1000 {
                                    (Some(n + 1), true)
                                } else {
                                    (None, false)
                                }
                            },
                        );
                        assert!(taken);
                        t.release(id);
                    }
                });
            }
        });
        for index in 0..t.capacity() {
            assert_eq!(t.state(SlotId::Own(index)), 0, "slot {index}");
        }
        assert_eq!(t.state(SlotId::Overflow), 0);
        assert_eq!(t.used(), 4);
    }
}
