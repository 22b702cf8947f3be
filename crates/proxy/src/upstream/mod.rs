//! The client side of the proxy: per-worker connection pools and connecting to targets.

pub mod connect;
pub mod pool;

pub use connect::connect;
pub use pool::{Conn, Release, WorkerPools};
