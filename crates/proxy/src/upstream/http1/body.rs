//! An upstream response body read straight off its HTTP/1.1 connection, by the task that forwards it.
//!
//! When the body has been read to its end, the connection goes back to its pool at once, from inside
//! the last `poll_frame`, so the next request on this worker can use it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::head::{Framing, MAX_RESPONSE_HEAD};
use super::Http1Conn;
use crate::upstream::pool::Checkin;

/// Longest chunk-size line accepted (the size in hex and any chunk extensions).
const MAX_CHUNK_LINE: usize = 4096;

/// Why an upstream body ended early or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamBodyError {
    /// Reading from the upstream failed.
    #[error("reading the upstream body: {0}")]
    Io(#[from] io::Error),
    /// The upstream closed before the body was complete.
    #[error("upstream closed the connection before the end of the body")]
    Incomplete,
    /// Chunked encoding that does not follow RFC 9112 §7.1.
    #[error("invalid chunked encoding from the upstream")]
    BadChunk,
}

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes of a body with a known length are left.
    Length(u64),
    /// Bytes until the upstream closes.
    UntilClose,
    /// Next: a chunk-size line.
    ChunkSize,
    /// This many bytes of the current chunk are left.
    ChunkData(u64),
    /// Next: the CRLF that ends a chunk's data.
    ChunkEnd,
    /// Next: trailer fields, then the empty line that ends a chunked body.
    Trailers,
    /// The body has ended.
    Done,
}

/// The body of an upstream HTTP/1.1 response.
pub struct UpstreamBody {
    conn: Option<Http1Conn>,
    state: State,
    /// Whether the connection may carry another request once the body ends.
    keep_alive: bool,
    checkin: Option<Checkin>,
}

impl UpstreamBody {
    /// Reads a body delimited by `framing` from `conn`, which starts at the body. When it ends and
    /// `keep_alive` holds, the connection goes back through `checkin`.
    pub fn new(
        conn: Http1Conn,
        framing: Framing,
        keep_alive: bool,
        checkin: Option<Checkin>,
    ) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        let mut body = Self {
            conn: Some(conn),
            state,
            keep_alive,
            checkin,
        };
        if body.state == State::Done {
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
                checkin.put(conn);
            }
        }
    }

    fn done(&mut self) {
        self.state = State::Done;
        self.release();
    }

    /// Reads more bytes into the connection's buffer; `Ok(0)` is end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        conn.poll_fill(cx)
    }

    /// Takes up to `max` buffered bytes of data.
    fn take_data(&mut self, max: u64) -> Bytes {
        let Some(conn) = self.conn.as_mut() else {
            return Bytes::new();
        };
        let n = conn
            .buf
            .len()
            .min(usize::try_from(max).unwrap_or(usize::MAX));
        conn.buf.split_to(n).freeze()
    }

    fn buffered(&self) -> &[u8] {
        self.conn.as_ref().map_or(&[], |c| &c.buf[..])
    }

    fn consume(&mut self, n: usize) {
        if let Some(conn) = self.conn.as_mut() {
            conn.buf.advance(n);
        }
    }

    /// One step of the decoder.
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        match self.state {
            State::Done => Poll::Ready(Step::End),
            State::Length(left) | State::ChunkData(left) => {
                if self.buffered().is_empty() {
                    match ready!(self.poll_fill(cx)) {
                        Ok(0) => return Poll::Ready(Step::Fail(UpstreamBodyError::Incomplete)),
                        Ok(_) => {}
                        Err(e) => return Poll::Ready(Step::Fail(e.into())),
                    }
                }
                let data = self.take_data(left);
                let left = left - data.len() as u64;
                match self.state {
                    State::Length(_) if left == 0 => self.done(),
                    State::Length(_) => self.state = State::Length(left),
                    _ if left == 0 => self.state = State::ChunkEnd,
                    _ => self.state = State::ChunkData(left),
                }
                Poll::Ready(Step::Frame(Frame::data(data)))
            }
            State::UntilClose => {
                if self.buffered().is_empty() {
                    match ready!(self.poll_fill(cx)) {
                        Ok(0) => {
                            self.keep_alive = false;
                            self.done();
                            return Poll::Ready(Step::End);
                        }
                        Ok(_) => {}
                        Err(e) => return Poll::Ready(Step::Fail(e.into())),
                    }
                }
                Poll::Ready(Step::Frame(Frame::data(self.take_data(u64::MAX))))
            }
            State::ChunkSize => {
                let Some(line_end) = find_crlf(self.buffered()) else {
                    return self.fill_or_fail(cx, MAX_CHUNK_LINE);
                };
                let Some(size) = parse_chunk_size(&self.buffered()[..line_end]) else {
                    return Poll::Ready(Step::Fail(UpstreamBodyError::BadChunk));
                };
                self.consume(line_end + 2);
                self.state = if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
                Poll::Ready(Step::Again)
            }
            State::ChunkEnd => {
                if self.buffered().len() < 2 {
                    return self.fill_or_fail(cx, 2);
                }
                if &self.buffered()[..2] != b"\r\n" {
                    return Poll::Ready(Step::Fail(UpstreamBodyError::BadChunk));
                }
                self.consume(2);
                self.state = State::ChunkSize;
                Poll::Ready(Step::Again)
            }
            State::Trailers => {
                if self.buffered().starts_with(b"\r\n") {
                    self.consume(2);
                    self.done();
                    return Poll::Ready(Step::End);
                }
                let Some(end) = find_blank_line(self.buffered()) else {
                    return self.fill_or_fail(cx, MAX_RESPONSE_HEAD);
                };
                let trailers = match parse_trailers(&self.buffered()[..end + 4]) {
                    Ok(trailers) => trailers,
                    Err(e) => return Poll::Ready(Step::Fail(e)),
                };
                self.consume(end + 4);
                self.done();
                Poll::Ready(Step::Frame(Frame::trailers(trailers)))
            }
        }
    }

    /// Needs more bytes for a line or marker: read them, unless `limit` bytes are buffered already.
    fn fill_or_fail(&mut self, cx: &mut Context<'_>, limit: usize) -> Poll<Step> {
        if self.buffered().len() >= limit {
            return Poll::Ready(Step::Fail(UpstreamBodyError::BadChunk));
        }
        Poll::Ready(match ready!(self.poll_fill(cx)) {
            Ok(0) => Step::Fail(UpstreamBodyError::Incomplete),
            Ok(_) => Step::Again,
            Err(e) => Step::Fail(e.into()),
        })
    }
}

/// What one step of the decoder produced.
enum Step {
    /// Progress without a frame: go round again.
    Again,
    /// A frame for the client.
    Frame(Frame<Bytes>),
    /// The body has ended.
    End,
    /// The body cannot be completed.
    Fail(UpstreamBodyError),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        loop {
            match ready!(self.step(cx)) {
                Step::Again => continue,
                Step::Frame(frame) => return Poll::Ready(Some(Ok(frame))),
                Step::End => return Poll::Ready(None),
                Step::Fail(e) => {
                    // A broken body leaves the connection in an unknown state: never reuse it.
                    self.state = State::Done;
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The size on a chunk-size line: hex digits, optionally followed by `;` extensions (ignored).
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        let v = (*d as char).to_digit(16)?;
        Some(n << 4 | u64::from(v))
    })
}

/// Trailer fields, `raw` ending with the blank line.
fn parse_trailers(raw: &[u8]) -> Result<HeaderMap, UpstreamBodyError> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let fields = match httparse::parse_headers(raw, &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => fields,
        _ => return Err(UpstreamBodyError::BadChunk),
    };
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = http::HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| UpstreamBodyError::BadChunk)?;
        let value =
            http::HeaderValue::from_bytes(field.value).map_err(|_| UpstreamBodyError::BadChunk)?;
        trailers.append(name, value);
    }
    Ok(trailers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"FF;name=value"), Some(255));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"zz"), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
        assert_eq!(
            parse_chunk_size(b"1000000000000000"),
            None,
            "past 2^60 is refused"
        );
    }

    #[test]
    fn trailers_parse() {
        let trailers = parse_trailers(b"grpc-status: 0\r\ngrpc-message: ok\r\n\r\n").unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "ok");
        assert!(parse_trailers(b"bad header\r\n\r\n").is_err());
    }
}
