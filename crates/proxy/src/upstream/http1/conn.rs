//! One HTTP/1.1 connection to a target: its socket, the bytes read and not used, and the deadline on
//! a response body's progress.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use floodgate_observe::UpstreamMetrics;

use crate::deadline::ProgressDeadline;
use crate::read_size::ReadSize;
use crate::snapshot::UpstreamRuntime;
use crate::upstream::io::UpstreamIo;
use crate::upstream::pool::OpenGuard;

/// Bytes asked of the socket by the first read of a response.
const FIRST_READ: usize = 8 * 1024;

/// An HTTP/1.1 connection to a target, between requests or carrying one.
pub struct Http1Conn {
    pub(super) io: UpstreamIo,
    /// Bytes read from the upstream and not used yet.
    pub(super) buf: BytesMut,
    /// Requests sent on this connection before the current one.
    pub(super) served: u64,
    /// How much the next read asks for.
    pub(super) read_size: ReadSize,
    /// How long a response body may stall between two reads, and where a stall is counted. Boxed: it is
    /// made once per connection, and inline it would add to every move of the connection (out of the
    /// pool, into the response body and back), which happen on every request.
    read_timeout: Box<ReadTimeout>,
    /// Counts the connection as open in its pool for as long as it lives.
    open: OpenGuard,
}

/// The upstream's `read_timeout`, its deadline on this connection, and where a body that stalls past it
/// is counted.
pub struct ReadTimeout {
    deadline: ProgressDeadline,
    metrics: Arc<UpstreamMetrics>,
    worker: usize,
}

impl ReadTimeout {
    /// `upstream`'s read timeout, counted for `worker`.
    pub fn of(upstream: &UpstreamRuntime, worker: usize) -> Box<Self> {
        Box::new(Self {
            deadline: ProgressDeadline::new(upstream.read_timeout),
            metrics: upstream.metrics.clone(),
            worker,
        })
    }
}

impl Http1Conn {
    /// A fresh connection over `io`.
    pub fn new(io: UpstreamIo, open: OpenGuard, read_timeout: Box<ReadTimeout>) -> Self {
        Self {
            io,
            buf: BytesMut::new(),
            served: 0,
            read_size: ReadSize::new(FIRST_READ),
            read_timeout,
            open,
        }
    }

    /// The key of the pool this connection goes back to.
    pub(crate) fn pool_key(&self) -> &Arc<str> {
        self.open.pool_key()
    }

    /// Whether this idle connection can carry another request (see [`UpstreamIo::is_reusable_when_idle`]).
    pub fn is_reusable_when_idle(&mut self) -> bool {
        self.buf.is_empty() && self.io.is_reusable_when_idle()
    }

    /// Hands over the socket and the bytes read past the response head, for a tunnel after a 101.
    pub fn into_parts(self) -> (UpstreamIo, BytesMut) {
        (self.io, self.buf)
    }

    /// Reads more of a response body, failing with `TimedOut` when the upstream sends nothing for
    /// longer than its `read_timeout`.
    pub(super) fn poll_fill_body(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Self {
            read_size,
            io,
            buf,
            read_timeout,
            ..
        } = self;
        let read = read_timeout
            .deadline
            .poll(cx, |cx| read_size.poll_fill(cx, io, buf));
        if let Poll::Ready(Err(e)) = &read {
            if e.kind() == io::ErrorKind::TimedOut {
                read_timeout.metrics.read_timeout(read_timeout.worker);
            }
        }
        read
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
