//! Plugin metrics: requests a plugin answered instead of forwarding (per route, plugin and reason),
//! and the process-wide counters plugins keep ([`PluginStats`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::exposition::{Kind, TextWriter};

const REJECTIONS: &str = "floodgate_plugin_rejections_total";
const JWKS_FETCHES: &str = "floodgate_jwks_fetches_total";
const RATE_LIMIT_KEYS: &str = "floodgate_rate_limit_keys";
const STORE_UNREACHABLE: &str = "floodgate_rate_limit_store_unreachable";
const STORE_OPERATIONS: &str = "floodgate_rate_limit_store_operations_total";
const STORE_SYNCS: &str = "floodgate_rate_limit_store_syncs_total";
const FLEET: &str = "floodgate_rate_limit_fleet_gateways";

/// Distinct (plugin, reason) pairs one route counts separately; a route's chain has a handful of
/// plugins with two or three reasons each. Pairs past it are counted in the last slot's series, so
/// the series stay bounded whatever happens.
const SLOTS: usize = 24;

const FAULT_DELAYS: &str = "floodgate_fault_injection_delays_total";

/// Counters plugins update off the request path or with one atomic add, one set per process, so they
/// keep counting across reloads.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// JWKS documents fetched and applied.
    pub jwks_fetches: AtomicU64,
    /// JWKS fetches that failed; the last good key set stays in use.
    pub jwks_failures: AtomicU64,
    /// Keys the rate limiters and connection limiters track right now, all instances together.
    pub rate_limit_keys: AtomicI64,
    /// Requests `fault-injection` held back (its aborts are plugin rejections).
    pub fault_delays: AtomicU64,
    /// Rate limiters with `policy: redis` that cannot reach their store right now (they follow
    /// their `on_store_failure`).
    pub rate_limit_store_unreachable: AtomicI64,
    /// Commands sent to the rate limiters' store (Redis).
    pub rate_limit_store_operations: AtomicU64,
    /// Syncs with the rate limiters' store that completed.
    pub rate_limit_store_syncs: AtomicU64,
    /// Syncs with the rate limiters' store that failed (unreachable, timed out, refused).
    pub rate_limit_store_sync_failures: AtomicU64,
    /// Gateways the rate limiters' store last counted in the fleet (this one included; 0 before
    /// the first count).
    pub rate_limit_fleet_gateways: AtomicU64,
}

impl PluginStats {
    pub(crate) fn render(&self, w: &mut TextWriter) {
        w.family(
            JWKS_FETCHES,
            "JWKS key set fetches by jwt-auth, by result.",
            Kind::Counter,
        );
        w.sample(
            JWKS_FETCHES,
            &[("result", "error")],
            self.jwks_failures.load(Ordering::Relaxed),
        );
        w.sample(
            JWKS_FETCHES,
            &[("result", "ok")],
            self.jwks_fetches.load(Ordering::Relaxed),
        );
        w.family(
            RATE_LIMIT_KEYS,
            "Keys the rate-limit and limit-conn plugins track right now.",
            Kind::Gauge,
        );
        let keys = self.rate_limit_keys.load(Ordering::Relaxed).max(0);
        w.sample(RATE_LIMIT_KEYS, &[], keys.unsigned_abs());
        w.family(
            STORE_UNREACHABLE,
            "Rate limiters with policy redis that cannot reach their store right now.",
            Kind::Gauge,
        );
        let unreachable = self.rate_limit_store_unreachable.load(Ordering::Relaxed);
        w.sample(STORE_UNREACHABLE, &[], unreachable.max(0).unsigned_abs());
        w.family(
            STORE_OPERATIONS,
            "Commands the rate limiters sent to their store (Redis).",
            Kind::Counter,
        );
        let operations = self.rate_limit_store_operations.load(Ordering::Relaxed);
        w.sample(STORE_OPERATIONS, &[], operations);
        w.family(
            STORE_SYNCS,
            "Syncs of the rate limiters with their store, by result.",
            Kind::Counter,
        );
        let failures = self.rate_limit_store_sync_failures.load(Ordering::Relaxed);
        w.sample(STORE_SYNCS, &[("result", "error")], failures);
        let syncs = self.rate_limit_store_syncs.load(Ordering::Relaxed);
        w.sample(STORE_SYNCS, &[("result", "ok")], syncs);
        w.family(
            FLEET,
            "Gateways the rate limiters' store last counted in the fleet.",
            Kind::Gauge,
        );
        let fleet = self.rate_limit_fleet_gateways.load(Ordering::Relaxed);
        w.sample(FLEET, &[], fleet);
        w.family(
            FAULT_DELAYS,
            "Requests the fault-injection plugin held back before forwarding.",
            Kind::Counter,
        );
        w.sample(FAULT_DELAYS, &[], self.fault_delays.load(Ordering::Relaxed));
    }
}

/// One route's plugin rejections: a fixed set of slots, each claimed once by a (plugin, reason)
/// pair and then counted with an atomic add. No lock: a slot's labels are set once (`OnceLock`).
pub struct PluginRejections {
    slots: [(OnceLock<(&'static str, &'static str)>, AtomicU64); SLOTS],
}

impl Default for PluginRejections {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| (OnceLock::new(), AtomicU64::new(0))),
        }
    }
}

impl PluginRejections {
    /// Counts one request `plugin` answered, for `reason`.
    pub fn count(&self, plugin: &'static str, reason: &'static str) {
        for (labels, count) in &self.slots {
            let (p, r) = *labels.get_or_init(|| (plugin, reason));
            if p == plugin && r == reason {
                count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if let Some((_, count)) = self.slots.last() {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counted pairs and their counts.
    fn totals(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        self.slots.iter().filter_map(|(labels, count)| {
            labels
                .get()
                .map(|(p, r)| (*p, *r, count.load(Ordering::Relaxed)))
        })
    }
}

pub(crate) fn render_rejections(w: &mut TextWriter, routes: &[(Arc<str>, &PluginRejections)]) {
    w.family(
        REJECTIONS,
        "Requests a plugin answered instead of forwarding, by route, plugin and reason.",
        Kind::Counter,
    );
    for (route, rejections) in routes {
        for (plugin, reason, count) in rejections.totals() {
            w.sample(
                REJECTIONS,
                &[("route", route), ("plugin", plugin), ("reason", reason)],
                count,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_counted_apart_and_bounded() {
        let r = PluginRejections::default();
        r.count("jwt-auth", "expired_token");
        r.count("jwt-auth", "expired_token");
        r.count("rate-limit", "rate_limited");
        let got: Vec<_> = r.totals().collect();
        assert_eq!(
            got,
            [
                ("jwt-auth", "expired_token", 2),
                ("rate-limit", "rate_limited", 1)
            ]
        );
        for _ in 0..100 {
            r.count("x", "y");
        }
        assert_eq!(r.totals().count(), 3);
    }
}
