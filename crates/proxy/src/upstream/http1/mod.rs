//! floodgate's HTTP/1.1 client for upstream connections.
//!
//! The request's own task writes the request head, streams the body, reads the response head and then,
//! as the client reads it, the response body, all on the connection it checked out of its worker's
//! pool. hyper's client would put a task, a channel and a oneshot between the request and the socket,
//! so every request would cost two extra task wake-ups and a hand-over of each body chunk; on a
//! keep-alive connection to a nearby upstream that was a large share of the gateway's own CPU time.
//! HTTP/2 upstreams, which multiplex many requests over one connection, still use hyper's client.

mod body;
mod send;

use std::io;
use std::task::{Context, Poll};

use bytes::BytesMut;

pub use body::UpstreamBody;
pub use send::{send, SendError};

use super::io::UpstreamIo;
use super::pool::OpenGuard;
use crate::read_size::ReadSize;

/// Bytes asked of the socket by the first read of a response.
const FIRST_READ: usize = 8 * 1024;

/// An HTTP/1.1 connection to a target, between requests or carrying one.
pub struct Http1Conn {
    io: UpstreamIo,
    /// Bytes read from the upstream and not used yet.
    buf: BytesMut,
    /// Requests sent on this connection before the current one.
    served: u64,
    /// How much the next read asks for.
    read_size: ReadSize,
    /// Counts the connection as open in its pool for as long as it lives.
    _open: OpenGuard,
}

impl Http1Conn {
    /// A fresh connection over `io`.
    pub fn new(io: UpstreamIo, open: OpenGuard) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            served: 0,
            read_size: ReadSize::new(FIRST_READ),
            _open: open,
        }
    }

    /// Whether this idle connection can carry another request (see [`UpstreamIo::is_reusable_when_idle`]).
    pub fn is_reusable_when_idle(&mut self) -> bool {
        self.buf.is_empty() && self.io.is_reusable_when_idle()
    }

    /// Hands over the socket and the bytes read past the response head, for a tunnel after a 101.
    pub fn into_parts(self) -> (UpstreamIo, BytesMut) {
        (self.io, self.buf)
    }

    /// Reads more bytes from the upstream into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read_size.poll_fill(cx, &mut self.io, &mut self.buf)
    }

    /// Readies an idle connection for the pool: a buffer grown by a large body is given back (a small
    /// one is kept for the next response), and the next response starts with a small read again.
    pub fn idle(&mut self) {
        if self.buf.capacity() > 2 * FIRST_READ {
            self.buf = BytesMut::new();
        }
        self.read_size.reset();
    }
}
