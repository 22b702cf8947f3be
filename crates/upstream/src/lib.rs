//! floodgate's upstream side: the targets of an upstream and how each request picks one.
//!
//! A [`LoadBalancer`] is built once per configuration snapshot from an already validated
//! [`floodgate_config::UpstreamConfig`] and shared by every worker thread. Its [`LoadBalancer::pick`]
//! runs on the request hot path, so it takes no locks, allocates nothing and does no I/O: per-worker state
//! lives in cache-padded atomics and everything else is precomputed when the balancer is built.
//!
//! This crate does not open connections, resolve names or probe health: the proxy owns the sockets,
//! hands the balancer and the health a name's resolved addresses as targets, and tells the balancer
//! which targets may be used through the `eligible` closure it passes to `pick`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod balancer;
pub mod breaker;
mod cache_padded;
pub mod health;
mod in_flight;
pub mod load;

pub use balancer::{LoadBalancer, PickContext};
pub use in_flight::InFlightGuard;
