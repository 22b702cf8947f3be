//! The server side of the proxy: accepting connections, TLS, and serving HTTP/1.1 and HTTP/2 on them.

pub mod accept;
pub mod h1;
pub mod h2;
pub mod handle;
pub mod io;
mod tls_failure;
pub mod tunnel;
