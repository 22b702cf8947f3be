//! Spotting requests that declare both `Content-Length` and `Transfer-Encoding`.
//!
//! hyper follows RFC 9112 §6.3 for such a request: `Transfer-Encoding` wins, `Content-Length` is dropped
//! before the request reaches us, and the connection closes after the response. That is safe, but the
//! request may be a smuggling probe, and the gateway's contract is to refuse it with 400. Since hyper hides
//! that the header was there, the connection's bytes are looked at on their way in: a read that starts with
//! a request line has its head scanned for both header names. The scan stops at the end of the head, so it
//! costs a few line splits per request, and the service refuses the request when hyper also saw a
//! `Transfer-Encoding` header on it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

pin_project_lite::pin_project! {
    /// A client connection whose request heads are checked for conflicting framing headers.
    pub struct FramingInspector<I> {
        #[pin]
        inner: I,
        ambiguous: Arc<AtomicBool>,
    }
}

impl<I> FramingInspector<I> {
    /// Wraps `inner`; `ambiguous` is set when a head with both headers passes by.
    pub fn new(inner: I, ambiguous: Arc<AtomicBool>) -> Self {
        Self { inner, ambiguous }
    }

    /// The connection inside.
    pub fn into_inner(self) -> I {
        self.inner
    }
}

impl<I: AsyncRead> AsyncRead for FramingInspector<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if result.is_ready() && head_declares_both_lengths(&buf.filled()[before..]) {
            this.ambiguous.store(true, Ordering::Relaxed);
        }
        result
    }
}

crate::server::delegate_async_write!(FramingInspector);

/// Whether `bytes` start with a request head that has both `Content-Length` and `Transfer-Encoding`.
fn head_declares_both_lengths(bytes: &[u8]) -> bool {
    // Request lines start with an uppercase method; bodies, TLS records and HTTP/2 frames rarely do, and
    // stop the scan at the first byte.
    if !bytes.first().is_some_and(u8::is_ascii_uppercase) {
        return false;
    }
    let (mut length, mut encoding) = (false, false);
    for line in bytes.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        length |= starts_with_ignore_case(line, b"content-length:");
        encoding |= starts_with_ignore_case(line, b"transfer-encoding:");
    }
    length && encoding
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::head_declares_both_lengths;

    #[test]
    fn finds_both_headers_in_either_order_and_case() {
        assert!(head_declares_both_lengths(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ));
        assert!(head_declares_both_lengths(
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 4\r\n\r\n"
        ));
    }

    #[test]
    fn ignores_single_headers_bodies_and_binary() {
        assert!(!head_declares_both_lengths(
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"
        ));
        assert!(!head_declares_both_lengths(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nContent-Length: 1\r\n"
        ));
        assert!(!head_declares_both_lengths(b"\x16\x03\x01\x02\x00"));
        assert!(!head_declares_both_lengths(b""));
    }
}
