//! The connection as an HTTP/1.1 server's reader and writer share it: the socket, the bytes read but
//! not used, and the deadlines on the client's progress.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use floodgate_http1::BodySource;
use floodgate_observe::TimeoutKind;
use tokio::io::AsyncWrite;

use crate::deadline::ProgressDeadline;
use crate::read_size::ReadSize;
use crate::server::io::ClientIo;

/// The connection as its reader and writer share it: the socket and the bytes read but not used.
pub struct Wire {
    pub(super) io: ClientIo,
    pub(super) buf: BytesMut,
    /// Whether the current request's body has been read to its end.
    pub(super) body_done: bool,
    /// How much the next read asks for.
    pub(super) read_size: ReadSize,
    /// How long a request body may stall between two reads (`timeouts.client_body`).
    pub(super) body_deadline: ProgressDeadline,
    /// How long the client may leave response bytes untaken (`timeouts.client_send`).
    pub(super) send_deadline: ProgressDeadline,
    /// The deadline the client missed, once it has; counted when the connection closes.
    pub(super) timed_out: Option<TimeoutKind>,
}

impl Wire {
    /// Reads more into the buffer, with no deadline of its own (heads and idle waits have theirs).
    pub(super) fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read_size.poll_fill(cx, &mut self.io, &mut self.buf)
    }

    /// Writes as much of `parts` as the socket takes, within `timeouts.client_send`.
    pub fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        parts: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Self {
            io, send_deadline, ..
        } = self;
        let written = send_deadline.poll(cx, |cx| Pin::new(io).poll_write_vectored(cx, parts));
        self.note_timeout(&written, TimeoutKind::ClientSend);
        written
    }

    /// Flushes, within `timeouts.client_send`.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self {
            io, send_deadline, ..
        } = self;
        let flushed = send_deadline.poll(cx, |cx| Pin::new(io).poll_flush(cx));
        self.note_timeout(&flushed, TimeoutKind::ClientSend);
        flushed
    }

    fn note_timeout<T>(&mut self, result: &Poll<io::Result<T>>, kind: TimeoutKind) {
        if let Poll::Ready(Err(e)) = result {
            if e.kind() == io::ErrorKind::TimedOut {
                self.timed_out = Some(kind);
            }
        }
    }
}

/// What the request body decoder reads from: the buffer, refilled within `timeouts.client_body`.
impl BodySource for Wire {
    fn buffered(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Self {
            read_size,
            io,
            buf,
            body_deadline,
            ..
        } = self;
        let read = body_deadline.poll(cx, |cx| read_size.poll_fill(cx, io, buf));
        self.note_timeout(&read, TimeoutKind::ClientBody);
        read
    }
}
