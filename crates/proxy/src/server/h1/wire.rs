//! The connection as an HTTP/1.1 server's reader and writer share it: the socket, the bytes read but
//! not used, and the deadlines on the client's progress.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

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
    /// The client half-closed after pipelining requests that are still in `buf`: it is done sending,
    /// not gone, and the socket has nothing more to say while they are answered.
    pub(super) read_closed: bool,
    /// Whether the request being served arrived behind another, before that one was answered.
    pub(super) pipelined: bool,
    /// The task waiting to watch the client, woken when the request body has been read (its reader
    /// may run in another task: an HTTP/2 upstream's connection task takes the body).
    pub(super) watcher: Option<Waker>,
}

impl Wire {
    /// Reads more into the buffer, with no deadline of its own (heads and idle waits have theirs).
    pub(super) fn poll_read_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read_size.poll_fill(cx, &mut self.io, &mut self.buf)
    }

    /// Ready when the client has closed or broken the connection, found while its request waits for an
    /// answer. Bytes that arrive meanwhile (a pipelined request) are kept in the buffer for the next
    /// request, up to `keep` bytes; past that the socket is left unread until the answer is written.
    ///
    /// Polled only while the request is waiting; it looks at the socket's readiness before reading, so
    /// a quiet client costs no system call and no buffer space.
    pub(super) fn poll_client_gone(&mut self, cx: &mut Context<'_>, keep: usize) -> Poll<()> {
        loop {
            // While its body is unread the body's reader owns the socket, and a close is its error;
            // the reader wakes this task once the body is done.
            if !self.body_done {
                if !self
                    .watcher
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    self.watcher = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            if self.read_closed || self.buf.len() >= keep {
                return Poll::Pending;
            }
            let ready = match &self.io {
                ClientIo::Plain(tcp) => tcp.poll_read_ready(cx),
                // rustls may hold bytes the socket no longer shows; they are read with the next head.
                ClientIo::Tls(tls) => tls.get_ref().0.poll_read_ready(cx),
            };
            let read = match ready {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => Err(e),
                Poll::Ready(Ok(())) => match self.poll_read_more(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(read) => read,
                },
            };
            match read {
                // A half-close after pipelined requests: the client is done sending and waits for
                // its answers (`printf '…' | nc -N`). Whether the end is seen while the later
                // requests are still buffered or once they are being served depends on timing, so
                // both count.
                Ok(0) if !self.buf.is_empty() || self.pipelined => {
                    self.read_closed = true;
                    return Poll::Pending;
                }
                // A half-close with nothing pending counts as gone, as in nginx: the client can send
                // nothing more, and most that half-close have stopped waiting (docs/security.md).
                Ok(0) | Err(_) => return Poll::Ready(()),
                Ok(_) => {}
            }
        }
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
