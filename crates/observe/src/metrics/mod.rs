//! Prometheus metrics for a thread-per-core proxy.
//!
//! Every metric keeps one cache-line-padded slot of atomics per worker thread. A worker only ever writes its
//! own slot with `Relaxed` increments, so recording takes no lock and never bounces a cache line between
//! cores; a scrape sums the slots. Handles ([`RouteMetrics`], [`UpstreamMetrics`]) are created when a config
//! snapshot is built, off the hot path, and live as long as the process, so counters survive reloads.

mod access_log;
mod breaker;
mod config_source;
mod exposition;
mod histogram;
mod overload;
mod per_worker;
mod plugins;
mod process_stats;
mod registry;
mod route;
mod scrape;
mod targets;
mod timeouts;
mod tls;
mod trace_export;
mod upstream;
mod upstream_timing;

pub use access_log::AccessLogMetrics;
pub use breaker::BreakerMetrics;
pub use config_source::ConfigSourceMetrics;
pub use overload::Rejection;
pub use per_worker::PerWorker;
pub use plugins::{PluginRejections, PluginStats};
pub use registry::Metrics;
pub use route::RouteMetrics;
pub use targets::{EjectionReason, TargetMetrics};
pub use timeouts::{TimeoutKind, TimeoutMetrics};
pub use tls::{TlsFailure, TlsHandshakeMetrics};
pub use trace_export::TracingMetrics;
pub use upstream::UpstreamMetrics;
pub use upstream_timing::UpstreamTiming;
