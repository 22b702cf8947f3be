//! [`PluginStats`]: process-wide counters of the plugins, rendered by the metrics endpoint.

use std::sync::atomic::{AtomicI64, AtomicU64};

/// Counters plugins update off the request path or with one atomic add; one per process, handed to
/// every build through [`crate::BuildCtx::stats`], so they keep counting across reloads.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// JWKS documents fetched successfully (`floodgate_jwks_fetches_total{result="ok"}`).
    pub jwks_fetches: AtomicU64,
    /// JWKS fetches that failed (`floodgate_jwks_fetches_total{result="error"}`); the last good key
    /// set stays in use.
    pub jwks_failures: AtomicU64,
    /// Keys the rate limiters track right now, all instances together
    /// (`floodgate_rate_limit_keys`).
    pub rate_limit_keys: AtomicI64,
}
