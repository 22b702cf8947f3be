//! An upstream response body read straight off its HTTP/1.1 connection, by the task that forwards it.
//!
//! When the body has been read to its end, the connection goes back to its pool at once, from inside
//! the last `poll_frame`, so the next request on this worker can use it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use super::conn::Http1Conn;
use crate::upstream::pool::Checkin;
use floodgate_http1::{BodySource, DecodeError, Decoder, Framing};

/// The body of an upstream HTTP/1.1 response.
pub struct UpstreamBody {
    conn: Option<Http1Conn>,
    decoder: Decoder,
    /// Whether the connection may carry another request once the body ends.
    keep_alive: bool,
    checkin: Option<Checkin>,
}

impl BodySource for Http1Conn {
    fn buffered(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        Http1Conn::poll_fill_body(self, cx)
    }
}

impl UpstreamBody {
    /// Reads a body delimited by `framing` from `conn`, which starts at the body. When it ends and
    /// `keep_alive` holds, the connection goes back through `checkin`.
    pub fn new(conn: Http1Conn, framing: Framing, keep_alive: bool, checkin: Checkin) -> Self {
        let decoder = Decoder::new(framing);
        let mut body = Self {
            keep_alive: keep_alive && !decoder.until_close(),
            conn: Some(conn),
            decoder,
            checkin: Some(checkin),
        };
        if body.decoder.is_done() {
            body.release();
        }
        body
    }

    /// The body is complete: return the connection if it is clean and allowed to carry more.
    fn release(&mut self) {
        let conn = self.conn.take();
        if let (Some(conn), Some(checkin)) = (conn, self.checkin.take()) {
            // Bytes after the end of the response are a broken upstream; such a connection is closed.
            if self.keep_alive && conn.buf.is_empty() {
                let mut conn = conn;
                conn.idle();
                checkin.put(conn);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = DecodeError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, DecodeError>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = std::task::ready!(this.decoder.poll_frame(cx, conn));
        match &frame {
            // A broken body leaves the connection in an unknown state: never reuse it.
            Some(Err(_)) => this.conn = None,
            _ if this.decoder.is_done() => this.release(),
            _ => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        self.decoder.size_hint()
    }
}
