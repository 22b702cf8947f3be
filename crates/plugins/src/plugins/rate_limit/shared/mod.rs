//! `policy: redis`: one limit for a fleet of gateways, kept without a request ever waiting on the
//! store.
//!
//! Each gateway admits requests from its own counts (the sliding window's packed word in its key
//! table) plus what it knows of the others' ([`view::Views`]). A sync task adds the gateway's new
//! admissions to Redis every `sync_interval`, one `INCRBY` per active key (pipelined: one round
//! trip for all keys), and reads back each key's fleet total: the others' count is the total less
//! its own. Between syncs each gateway takes only its share of the room that opens (its part of
//! the fleet's recent admissions, at least one over the fleet's size), so gateways do not each hand
//! out the same room.
//!
//! Counters live at `{<key_prefix>:<scope>}:<key hash>:<window number>` with window numbers taken
//! from the wall clock (gateways need synchronised clocks, as NTP gives), and expire two windows
//! after theirs. The hash tag keeps one limiter's keys in one Redis Cluster slot, so its batch is
//! one pipeline. Key hashes are SipHash keyed by a secret derived from the store's URL and the key
//! prefix: every gateway of the fleet agrees on a client's key, and a client who knows neither
//! cannot aim keys at one probe window.

mod status;
mod sync;
mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use floodgate_counter_store::RedisConfig;
use serde::Deserialize;

use super::sliding_window::{Others, SlidingWindow};
use super::Verdict;
use crate::key_table::{KeyHasher, KeyTable, SlotId};
use crate::stats::PluginStats;
pub(crate) use status::Status;
use view::Views;

/// What a limiter with `policy: redis` does while its store is unreachable.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreFailure {
    /// Admit every request the limit would have judged.
    FailOpen,
    /// Refuse every request the limit would have judged, with 503.
    FailClosed,
    /// Each gateway holds its share of the limit: the limit divided by the gateways seen in the
    /// store before it went away (default).
    #[default]
    Local,
}

/// The state of a limiter with `policy: redis`, carried across reloads with its configuration.
pub(crate) struct Shared {
    /// This gateway's own counts (a sliding window state per key).
    pub table: Arc<KeyTable>,
    views: Views,
    window: SlidingWindow,
    status: Status,
    settings: Settings,
    started: AtomicBool,
}

/// How a limiter syncs with its store.
#[derive(Clone)]
pub(crate) struct Settings {
    /// The store's connection.
    pub redis: RedisConfig,
    /// How often counts are synced.
    pub sync_interval: Duration,
    /// What to do while the store is unreachable.
    pub on_failure: OnStoreFailure,
    /// `{<key_prefix>:<scope>}`: the start of every counter's name.
    pub namespace: String,
    /// `<namespace>:gateways`: the sorted set of the gateways running this limiter seen lately.
    pub fleet_key: String,
}

impl Shared {
    /// A limiter's state; its sync task starts with [`Self::start`].
    pub(crate) fn new(
        window: SlidingWindow,
        max_keys: usize,
        settings: Settings,
        stats: Arc<PluginStats>,
    ) -> Self {
        let secret = format!(
            "{}\n{}",
            settings.redis.secret_material(),
            settings.namespace
        );
        let hasher = KeyHasher::from_secret(secret.as_bytes());
        let table = Arc::new(KeyTable::with_hasher(max_keys, stats.clone(), hasher));
        Self {
            views: Views::new(table.capacity()),
            table,
            window,
            status: Status::new(stats),
            settings,
            started: AtomicBool::new(false),
        }
    }

    /// Starts the sync task on `runtime` once per state (a reload that keeps the state keeps it).
    pub(crate) fn start(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        if !self.started.swap(true, Ordering::AcqRel) {
            runtime.spawn(sync::run(Arc::downgrade(self)));
        }
    }

    /// Whether requests are refused outright: the store is unreachable and the limiter fails closed.
    pub(crate) fn refuses_all(&self) -> bool {
        !self.status.reachable() && self.settings.on_failure == OnStoreFailure::FailClosed
    }

    /// The verdict for the key hashed to `hash` at `now` (nanoseconds since the Unix epoch),
    /// recorded in the table when admitted.
    pub(crate) fn check(&self, hash: u64, now: u64) -> Verdict {
        let w = &self.window;
        let number = now / w.window_nanos();
        let reachable = self.status.reachable();
        if !reachable && self.settings.on_failure == OnStoreFailure::FailOpen {
            return Verdict {
                allowed: true,
                remaining: w.limit(),
                reset_nanos: 0,
                retry_nanos: 0,
            };
        }
        let limit = if reachable {
            w.limit()
        } else {
            self.status.local_share(w.limit())
        };
        let hash = hash.max(1);
        let idle = |state| w.is_idle(state, now);
        let decide = |slot: SlotId, state: u64| {
            let view = self.views.get(slot);
            view.requested(number);
            if !reachable {
                return w.decide_with(state, now, Others::NONE, limit);
            }
            let seen = view.read();
            let expected = if slot == SlotId::Overflow { 0 } else { hash };
            if seen.key != expected {
                // Not synced yet: what the others admitted is unknown, so this gateway holds its
                // share of the limit until the first sync (a client spreading a new key over the
                // fleet gets the limit once, not once per gateway).
                let share = self.status.local_share(limit);
                return w.decide_with(state, now, Others::NONE, share);
            }
            let (mine_previous, mine_current) = w.own_counts(state, number);
            let others = seen.others(number, mine_previous, mine_current);
            w.decide_with(state, now, others, limit)
        };
        self.table.update_in_slot(hash, idle, decide).1
    }
}

/// Nanoseconds since the Unix epoch: shared limiters number their windows alike on every gateway.
pub(crate) fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
