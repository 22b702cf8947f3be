//! The server side of the proxy: accepting connections, TLS, and serving HTTP/1.1 and HTTP/2 on them.

pub mod accept;
pub mod framing;
pub mod handle;
pub mod http1;
pub mod rewind;
pub mod tunnel;
