//! Keeping an atomic that one thread writes on a cache line no other thread writes.

use std::ops::Deref;

/// A value aligned (and so padded) to 128 bytes.
///
/// 128 rather than 64 because x86-64's spatial prefetcher pulls cache lines in adjacent pairs and
/// Apple and some ARM cores use 128-byte lines; with 64-byte padding two workers' cursors can still
/// invalidate each other. crossbeam-utils' `CachePadded` makes the same choice.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn neighbours_never_share_a_cache_line() {
        let slots = [
            CachePadded(AtomicUsize::new(0)),
            CachePadded(AtomicUsize::new(0)),
        ];
        let first = std::ptr::addr_of!(slots[0]) as usize;
        let second = std::ptr::addr_of!(slots[1]) as usize;
        assert_eq!(first % 128, 0);
        assert!(second - first >= 128);
    }
}
