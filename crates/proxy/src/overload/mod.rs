//! Overload protection: limits that turn connections and requests away early and cheaply, so that a
//! flood degrades the gateway's answers instead of exhausting its memory or file descriptors.
//!
//! - [`connections`]: the global and per-listener connection limits, checked once per accepted socket.
//! - [`requests`]: the per-worker in-flight request limit, checked once per request.

pub mod connections;
pub mod requests;
