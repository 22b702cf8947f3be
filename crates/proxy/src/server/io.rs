//! The byte stream of a client connection: plain TCP or TLS over it.

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection as the HTTP/1.1 server and the tunnels use it.
pub type ClientIo = crate::stream::MaybeTls<TlsStream<TcpStream>>;
