//! [`Status`]: whether a shared limiter reaches its store, and the fleet's size it last saw.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::stats::PluginStats;

/// Whether a shared limiter reaches its store; read by every request, written by its sync task.
pub(crate) struct Status {
    reachable: AtomicBool,
    /// Gateways seen in the store lately (this one included); 1 until the first heartbeat.
    fleet: AtomicU64,
    stats: Arc<PluginStats>,
}

impl Status {
    pub(crate) fn new(stats: Arc<PluginStats>) -> Self {
        Self {
            reachable: AtomicBool::new(true),
            fleet: AtomicU64::new(1),
            stats,
        }
    }

    /// Whether the last sync reached the store (true before the first).
    pub(crate) fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// This gateway's share of `limit` while the store is away: `limit / fleet`, rounded up, at
    /// least 1.
    pub(crate) fn local_share(&self, limit: u64) -> u64 {
        let fleet = self.fleet.load(Ordering::Relaxed).max(1);
        limit.div_ceil(fleet).max(1)
    }

    /// The gateways the store last counted.
    pub(crate) fn fleet(&self) -> u64 {
        self.fleet.load(Ordering::Relaxed)
    }

    pub(crate) fn set_fleet(&self, gateways: u64) {
        self.fleet.store(gateways.max(1), Ordering::Relaxed);
        self.stats
            .rate_limit_fleet_gateways
            .store(gateways, Ordering::Relaxed);
    }

    /// Records a sync that reached the store; true when it had been unreachable.
    pub(crate) fn synced(&self) -> bool {
        self.stats
            .rate_limit_store_syncs
            .fetch_add(1, Ordering::Relaxed);
        let was_reachable = self.reachable.swap(true, Ordering::Relaxed);
        if !was_reachable {
            self.stats
                .rate_limit_store_unreachable
                .fetch_sub(1, Ordering::Relaxed);
        }
        !was_reachable
    }

    /// Records a sync that failed; true when the store had been reachable.
    pub(crate) fn failed(&self) -> bool {
        self.stats
            .rate_limit_store_sync_failures
            .fetch_add(1, Ordering::Relaxed);
        let was_reachable = self.reachable.swap(false, Ordering::Relaxed);
        if was_reachable {
            self.stats
                .rate_limit_store_unreachable
                .fetch_add(1, Ordering::Relaxed);
        }
        was_reachable
    }

    /// Counts commands sent to the store.
    pub(crate) fn sent(&self, commands: usize) {
        let commands = u64::try_from(commands).unwrap_or(u64::MAX);
        self.stats
            .rate_limit_store_operations
            .fetch_add(commands, Ordering::Relaxed);
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        if !self.reachable() {
            self.stats
                .rate_limit_store_unreachable
                .fetch_sub(1, Ordering::Relaxed);
        }
    }
}
