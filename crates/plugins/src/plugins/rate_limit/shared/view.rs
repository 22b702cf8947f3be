//! [`Views`]: what a gateway knows of the other gateways' counts of each key, written by the sync
//! task and read by requests without a lock.
//!
//! One [`View`] per key-table slot (the overflow slot last). The sync task is the only writer of a
//! view; a request reads it under a sequence number (a seqlock): an odd number, or one that changed
//! while the words were read, means a write was under way, and the request reads again. Writes are a
//! few stores every sync interval, so a reader almost never retries.

use std::sync::atomic::{fence, AtomicU64, Ordering};

use once_cell::race::OnceBox;

use super::super::sliding_window::Others;
use crate::key_table::{SlotId, CHUNK};

/// The others' part in a share: 1.0 is `SHARE_ONE`.
pub(crate) const SHARE_ONE: u32 = 1 << 16;

/// The other gateways' counts of one key as of one sync, and this gateway's share of the room.
///
/// Between syncs a gateway does not see what the others admit. It assumes each takes its share of
/// the room that opens, as it does itself: for every request it admits, the others are presumed
/// to admit `(1 - share) / share`. A gateway that extrapolated the others' past rate instead would
/// misjudge them, since they admit when room opens, not steadily: all would rush into the same room,
/// then all hold back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The key's hash (0: the overflow slot's shared counter).
    pub key: u64,
    /// The window the counts were read in.
    pub window: u64,
    /// Admitted by the others in the window before `window`.
    pub previous: u32,
    /// Admitted by the others in `window`, up to the sync.
    pub current: u32,
    /// Admitted by this gateway in `window` up to the sync.
    pub mine: u32,
    /// This gateway's share of the fleet's admissions, in `1 / SHARE_ONE` (at least one over the
    /// fleet's size, so a gateway whose traffic grows gets room at once).
    pub share: u32,
}

impl Seen {
    /// The others' counts for a request in window `number`, this gateway having admitted
    /// `mine_previous` and `mine_current` in it and the window before.
    pub(crate) fn others(&self, number: u64, mine_previous: u64, mine_current: u64) -> Others {
        let share = u64::from(self.share.clamp(1, SHARE_ONE));
        // The others' presumed admissions alongside `mine` of this gateway's.
        let alongside = |mine: u64| {
            let n = u128::from(mine) * u128::from(u64::from(SHARE_ONE) - share);
            u64::try_from(n.div_ceil(u128::from(share))).unwrap_or(u64::MAX)
        };
        let (previous, current) = (u64::from(self.previous), u64::from(self.current));
        let mine_since = |mine: u64| mine.saturating_sub(u64::from(self.mine));
        if number == self.window {
            Others {
                previous,
                current: current.saturating_add(alongside(mine_since(mine_current))),
            }
        } else if number == self.window + 1 {
            Others {
                previous: current.saturating_add(alongside(mine_since(mine_previous))),
                current: alongside(mine_current),
            }
        } else {
            Others::NONE
        }
    }
}

/// One slot's view.
#[derive(Default)]
pub(crate) struct View {
    sequence: AtomicU64,
    key: AtomicU64,
    window: AtomicU64,
    /// `previous << 32 | current`.
    counts: AtomicU64,
    /// `mine << 32 | share`.
    mine_share: AtomicU64,
    /// The last window a request for this slot's key came in, so a gateway that admits nothing (the
    /// others took the room) still reads the counts. Outside the sequence: it is one word.
    requested_in: AtomicU64,
}

impl View {
    /// The last [`Seen`] written, read consistently.
    pub(crate) fn read(&self) -> Seen {
        loop {
            let before = self.sequence.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let seen = Seen {
                key: self.key.load(Ordering::Relaxed),
                window: self.window.load(Ordering::Relaxed),
                previous: 0,
                current: 0,
                mine: 0,
                share: 0,
            };
            let counts = self.counts.load(Ordering::Relaxed);
            let mine_share = self.mine_share.load(Ordering::Relaxed);
            let seen = Seen {
                previous: (counts >> 32) as u32,
                current: counts as u32,
                mine: (mine_share >> 32) as u32,
                share: mine_share as u32,
                ..seen
            };
            // Orders the loads above before the check below (the reader's half of the seqlock).
            fence(Ordering::Acquire);
            if self.sequence.load(Ordering::Relaxed) == before {
                return seen;
            }
        }
    }

    /// Replaces the view; only the sync task writes.
    pub(crate) fn write(&self, seen: &Seen) {
        let sequence = self.sequence.load(Ordering::Relaxed);
        self.sequence.store(sequence + 1, Ordering::Relaxed);
        // Orders the odd sequence before the stores below (the writer's half of the seqlock).
        fence(Ordering::Release);
        self.key.store(seen.key, Ordering::Relaxed);
        self.window.store(seen.window, Ordering::Relaxed);
        let counts = (u64::from(seen.previous) << 32) | u64::from(seen.current);
        self.counts.store(counts, Ordering::Relaxed);
        let mine_share = (u64::from(seen.mine) << 32) | u64::from(seen.share);
        self.mine_share.store(mine_share, Ordering::Relaxed);
        self.sequence.store(sequence + 2, Ordering::Release);
    }

    /// Notes a request for the key in `window`.
    pub(crate) fn requested(&self, window: u64) {
        // Written once per window, not per request: the line stays shared between cores.
        if self.requested_in.load(Ordering::Relaxed) != window {
            self.requested_in.store(window, Ordering::Relaxed);
        }
    }

    /// The last window a request came in.
    pub(crate) fn requested_in(&self) -> u64 {
        self.requested_in.load(Ordering::Relaxed)
    }
}

/// The views of a key table's slots, allocated in chunks on first use as the table's are.
pub(crate) struct Views {
    chunks: Box<[OnceBox<Box<[View]>>]>,
    chunk_len: usize,
    overflow: View,
}

impl Views {
    /// Views for a table of `capacity` slots.
    pub(crate) fn new(capacity: usize) -> Self {
        let chunk_len = capacity.clamp(1, CHUNK);
        let chunks = (0..capacity.div_ceil(chunk_len))
            .map(|_| OnceBox::new())
            .collect();
        Self {
            chunks,
            chunk_len,
            overflow: View::default(),
        }
    }

    /// The view of slot `id`.
    pub(crate) fn get(&self, id: SlotId) -> &View {
        let SlotId::Own(index) = id else {
            return &self.overflow;
        };
        let chunk = &self.chunks[index / self.chunk_len];
        let views =
            chunk.get_or_init(|| Box::new((0..self.chunk_len).map(|_| View::default()).collect()));
        &views[index % self.chunk_len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> Seen {
        Seen {
            key: 7,
            window: 10,
            previous: 300,
            current: 100,
            mine: 40,
            share: SHARE_ONE / 4,
        }
    }

    #[test]
    fn the_others_are_presumed_to_take_their_share_alongside() {
        // 10 admitted here since the sync, with a quarter share: the others took 30 meanwhile.
        let others = seen().others(10, 0, 50);
        assert_eq!(
            others,
            Others {
                previous: 300,
                current: 130
            }
        );
        assert_eq!(seen().others(10, 0, 40).current, 100);
    }

    #[test]
    fn the_next_window_inherits_the_presumed_count_as_its_previous() {
        assert_eq!(
            seen().others(11, 60, 2),
            Others {
                previous: 160,
                current: 6
            }
        );
        assert_eq!(seen().others(12, 0, 0), Others::NONE);
    }

    #[test]
    fn a_view_reads_back_what_was_written() {
        let views = Views::new(4096);
        let view = views.get(SlotId::Own(3000));
        assert_eq!(view.read(), Seen::default());
        view.write(&seen());
        assert_eq!(view.read(), seen());
        assert_eq!(views.get(SlotId::Overflow).read(), Seen::default());
        view.requested(11);
        assert_eq!(view.requested_in(), 11);
    }
}
