//! The client side of the proxy: per-worker connection pools, connecting to targets, and the HTTP/1.1
//! client.

pub mod connect;
pub mod failure;
pub mod http1;
pub mod io;
pub mod pool;

pub use connect::connect;
pub use pool::{Checkin, Conn, WorkerPools};
