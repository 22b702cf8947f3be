//! Counters a fleet of gateways shares through Redis.
//!
//! [`RedisConfig`] says where the store is (one server, a Sentinel-watched master, or a Cluster;
//! TLS and AUTH through the URL), [`Store::connect`] opens it, and a [`Batch`] of counter updates
//! goes to it as one pipeline: one round trip however many keys it holds. Nothing here knows what
//! the counters count; the rate limiter decides that.

mod batch;
mod config;
mod connection;

pub use batch::{Batch, Command, Replies, Reply};
pub use config::{RedisConfig, RedisTls, SentinelConfig};
pub use connection::Store;

/// Why the store could not be reached or refused a batch.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Connecting, sending or reading failed, or the server answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A file the configuration names (a TLS certificate or key) could not be read.
    #[error("reading {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server answered a command with a value of an unexpected type.
    #[error("redis: unexpected reply to {0}")]
    UnexpectedReply(&'static str),
}
