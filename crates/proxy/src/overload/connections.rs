//! Connection limits: counts of open client connections shared by every worker, checked as each socket
//! is accepted.
//!
//! A count is one atomic per connection, not per request; it is shared across cores because a limit on
//! the process's connections must see every worker's. The counts outlive reloads (the gateway keeps them,
//! not the snapshot), so a lowered limit applies to connections already open.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Open connections counted against one limit: the whole gateway's, or one listener's.
#[derive(Debug, Default)]
pub struct ConnectionCount(AtomicU64);

impl ConnectionCount {
    /// Counts one more connection unless `limit` are already open (`0` is no limit). The connection is
    /// uncounted when the returned value is dropped.
    pub fn try_open(self: &Arc<Self>, limit: u64) -> Option<OpenConnection> {
        let before = self.0.fetch_add(1, Ordering::Relaxed);
        if limit != 0 && before >= limit {
            self.0.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(OpenConnection(self.clone()))
    }

    /// Connections counted now.
    #[cfg(test)]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One connection counted in a [`ConnectionCount`] for as long as it lives.
#[derive(Debug)]
pub struct OpenConnection(Arc<ConnectionCount>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_past_the_limit_is_refused_until_one_closes() {
        let count = Arc::new(ConnectionCount::default());
        let open: Vec<_> = (0..3).map(|_| count.try_open(3)).collect();
        assert!(open.iter().all(Option::is_some));
        assert!(count.try_open(3).is_none());
        assert_eq!(count.get(), 3, "a refused connection is not counted");
        drop(open);
        assert_eq!(count.get(), 0);
        assert!(count.try_open(3).is_some());
    }

    #[test]
    fn zero_is_no_limit_but_still_counts() {
        let count = Arc::new(ConnectionCount::default());
        let open: Vec<_> = (0..100).filter_map(|_| count.try_open(0)).collect();
        assert_eq!(open.len(), 100);
        assert_eq!(count.get(), 100);
        // A limit set later (on reload) sees the connections already open.
        assert!(count.try_open(100).is_none());
    }
}
