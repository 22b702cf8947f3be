//! floodgate's observability: Prometheus metrics recorded lock-free from the worker threads, the access
//! log written by a background thread, and the process-wide `tracing` subscriber.
//!
//! This crate records and renders; it does not serve. The admin crate exposes [`Metrics::render`] on
//! `/metrics`, and the proxy decides when to record, which worker it is, and whether an access log is
//! configured. Nothing here does I/O on the request path: metrics are per-worker atomics, and access-log
//! entries are handed to a bounded channel that never blocks the caller.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod access_log;
pub mod fuzzing;
mod logging;
mod metrics;

pub use access_log::{AccessLog, AccessLogEntry};
pub use logging::init_logging;
pub use metrics::{
    AccessLogMetrics, BreakerMetrics, ConfigSourceMetrics, EjectionReason, Metrics, PerWorker,
    PluginRejections, PluginStats, Rejection, RouteMetrics, TargetMetrics, TimeoutKind,
    TimeoutMetrics, TlsFailure, TlsHandshakeMetrics, TracingMetrics, UpstreamMetrics,
    UpstreamTiming,
};
