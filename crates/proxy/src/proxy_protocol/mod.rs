//! The PROXY protocol, versions 1 and 2 (HAProxy's specification): the header an L4 load balancer puts
//! in front of a connection to name the client it accepted the connection from.
//!
//! The header is taken off the socket exactly, not a byte past its end, so TLS and the HTTP version
//! sniffing find the rest of the connection as the client sent it, with no replay wrapper. That way of
//! reading is why the parser is written here instead of taken from a crate: the crates parse a buffer and
//! leave the caller to find out how many bytes to take, and the grammar itself is small.

mod parse;
mod read;

use std::net::SocketAddr;

use floodgate_observe::{Rejection, TimeoutKind};
use tokio::net::TcpStream;
use tokio::time::Instant;

use self::read::{read_header, ReadError};
use crate::worker_ctx::WorkerCtx;

/// The client's address on a connection to a listener with `proxy_protocol`: the header's source, or
/// `peer` (the load balancer) when the header names none. `None` when the connection is to be closed;
/// a missed deadline is counted as a `client_header` timeout and a bad or cut-off header as a
/// `proxy_protocol` rejection.
pub async fn client_address(
    ctx: &WorkerCtx,
    stream: &mut TcpStream,
    peer: SocketAddr,
    deadline: Instant,
) -> Option<SocketAddr> {
    let error = match read_header(stream, deadline).await {
        Ok(source) => return Some(source.unwrap_or(peer)),
        Err(error) => error,
    };
    let metrics = &ctx.shared.metrics;
    match error {
        ReadError::Timeout => metrics
            .timeouts
            .record(ctx.index, TimeoutKind::ClientHeader),
        ReadError::Invalid(_) | ReadError::Truncated => {
            metrics.rejected(ctx.index, Rejection::ProxyProtocol)
        }
        ReadError::Closed | ReadError::Io(_) => {}
    }
    tracing::debug!(%peer, %error, "connection closed without a valid PROXY protocol header");
    None
}
