//! The request body of an HTTP/1.1 connection, read off the connection by whoever consumes it (the
//! forwarder streaming it upstream), in the connection's own task.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::wire::Wire;
use floodgate_http1::{DecodeError, Decoder, Framing};

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where the answer to `Expect: 100-continue` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continue {
    /// Not asked for, or sent.
    Done,
    /// This many bytes of it written so far.
    Writing(usize),
    /// Written; to be flushed (TLS holds it until then).
    Flushing,
}

/// The body of a request on an HTTP/1.1 connection.
pub struct RequestBodyReader {
    wire: Rc<RefCell<Wire>>,
    decoder: Decoder,
    expect: Continue,
}

impl RequestBodyReader {
    /// The body that follows the head just read from `wire`. With `expects_continue`, `100 Continue`
    /// is written when the body is first read: a request answered without reading its body (a 413, a
    /// 404) never tells the client to send it.
    pub(super) fn new(wire: Rc<RefCell<Wire>>, framing: Framing, expects_continue: bool) -> Self {
        let decoder = Decoder::new(framing);
        {
            let mut wire = wire.borrow_mut();
            wire.body_done = decoder.is_done();
            // A watch armed for an earlier request is over: waking it would only poll this task for
            // nothing.
            wire.watcher = None;
        }
        Self {
            wire,
            expect: if expects_continue && !decoder.is_done() {
                Continue::Writing(0)
            } else {
                Continue::Done
            },
            decoder,
        }
    }

    fn poll_continue(
        &mut self,
        cx: &mut Context<'_>,
        wire: &mut Wire,
    ) -> Poll<std::io::Result<()>> {
        loop {
            match self.expect {
                Continue::Done => return Poll::Ready(Ok(())),
                Continue::Writing(at) if at == CONTINUE.len() => self.expect = Continue::Flushing,
                Continue::Writing(at) => {
                    let n = ready!(Pin::new(&mut wire.io).poll_write(cx, &CONTINUE[at..]))?;
                    if n == 0 {
                        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                    }
                    self.expect = Continue::Writing(at + n);
                }
                Continue::Flushing => {
                    ready!(Pin::new(&mut wire.io).poll_flush(cx))?;
                    self.expect = Continue::Done;
                }
            }
        }
    }
}

impl Body for RequestBodyReader {
    type Data = Bytes;
    type Error = DecodeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, DecodeError>>> {
        let this = self.get_mut();
        let wire = this.wire.clone();
        let mut wire = wire.borrow_mut();
        if let Err(e) = ready!(this.poll_continue(cx, &mut wire)) {
            return Poll::Ready(Some(Err(e.into())));
        }
        let frame = ready!(this.decoder.poll_frame(cx, &mut *wire));
        if this.decoder.is_done() {
            wire.body_done = frame.as_ref().is_none_or(|f| f.is_ok());
            if let Some(watcher) = wire.watcher.take() {
                watcher.wake();
            }
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
