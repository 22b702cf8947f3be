//! Reading an HTTP/1.1 body off a connection: by length, chunked (RFC 9112 §7.1), or until the peer
//! closes.

use std::io;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Frame, SizeHint};

/// Longest chunk-size line accepted (the size in hex and any chunk extensions).
const MAX_CHUNK_LINE: usize = 4096;

/// Most bytes of trailer fields accepted after the last chunk.
const MAX_TRAILERS: usize = 64 * 1024;

/// How a message body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the peer closes the connection (responses only).
    UntilClose,
}

/// Why a body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Reading from the connection failed.
    #[error("reading the body: {0}")]
    Io(#[from] io::Error),
    /// The peer closed before the body was complete.
    #[error("connection closed before the end of the body")]
    Incomplete,
    /// Chunked encoding that does not follow RFC 9112 §7.1.
    #[error("invalid chunked encoding")]
    BadChunk,
}

/// Where the bytes of a body come from: a connection's buffer, refilled from its socket.
pub trait BodySource {
    /// Bytes read and not used yet.
    fn buffered(&mut self) -> &mut BytesMut;
    /// Reads more into the buffer; `Ok(0)` at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>>;
}

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes of a body with a known length are left.
    Length(u64),
    /// Bytes until the peer closes.
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

/// What one step of the decoder produced.
enum Step {
    /// Progress without a frame: go round again.
    Again,
    /// A frame.
    Frame(Frame<Bytes>),
    /// The body has ended.
    End,
}

/// Decodes one body; the caller owns the connection and lends it to each call.
#[derive(Debug)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    /// A decoder for a body delimited by `framing`.
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        };
        Self { state }
    }

    /// Whether the body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body ends only when the peer closes.
    pub fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// What is known of the remaining length.
    pub fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }

    /// The next frame of the body, `None` at its end. After an error the body is over (`is_done`) and
    /// the connection is in an unknown state.
    pub fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut impl BodySource,
    ) -> Poll<Option<Result<Frame<Bytes>, DecodeError>>> {
        loop {
            match ready!(self.step(cx, src)) {
                Ok(Step::Again) => continue,
                Ok(Step::Frame(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(Step::End) => return Poll::Ready(None),
                Err(e) => {
                    self.state = State::Done;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn step(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut impl BodySource,
    ) -> Poll<Result<Step, DecodeError>> {
        match self.state {
            State::Done => Poll::Ready(Ok(Step::End)),
            State::Length(left) | State::ChunkData(left) => {
                if src.buffered().is_empty() && ready!(src.poll_fill(cx))? == 0 {
                    return Poll::Ready(Err(DecodeError::Incomplete));
                }
                let buf = src.buffered();
                let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let data = buf.split_to(n).freeze();
                let left = left - n as u64;
                self.state = match self.state {
                    State::Length(_) if left == 0 => State::Done,
                    State::Length(_) => State::Length(left),
                    _ if left == 0 => State::ChunkEnd,
                    _ => State::ChunkData(left),
                };
                Poll::Ready(Ok(Step::Frame(Frame::data(data))))
            }
            State::UntilClose => {
                if src.buffered().is_empty() && ready!(src.poll_fill(cx))? == 0 {
                    self.state = State::Done;
                    return Poll::Ready(Ok(Step::End));
                }
                let data = src.buffered().split().freeze();
                Poll::Ready(Ok(Step::Frame(Frame::data(data))))
            }
            State::ChunkSize => {
                let Some(line_end) = find(src.buffered(), b"\r\n") else {
                    return fill_or_fail(cx, src, MAX_CHUNK_LINE);
                };
                let size =
                    parse_chunk_size(&src.buffered()[..line_end]).ok_or(DecodeError::BadChunk)?;
                src.buffered().advance(line_end + 2);
                self.state = if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
                Poll::Ready(Ok(Step::Again))
            }
            State::ChunkEnd => {
                if src.buffered().len() < 2 {
                    return fill_or_fail(cx, src, 2);
                }
                if &src.buffered()[..2] != b"\r\n" {
                    return Poll::Ready(Err(DecodeError::BadChunk));
                }
                src.buffered().advance(2);
                self.state = State::ChunkSize;
                Poll::Ready(Ok(Step::Again))
            }
            State::Trailers => {
                if src.buffered().starts_with(b"\r\n") {
                    src.buffered().advance(2);
                    self.state = State::Done;
                    return Poll::Ready(Ok(Step::End));
                }
                let Some(end) = find(src.buffered(), b"\r\n\r\n") else {
                    return fill_or_fail(cx, src, MAX_TRAILERS);
                };
                let trailers = parse_trailers(&src.buffered()[..end + 4])?;
                src.buffered().advance(end + 4);
                self.state = State::Done;
                Poll::Ready(Ok(Step::Frame(Frame::trailers(trailers))))
            }
        }
    }
}

/// Needs more bytes for a line or marker: reads them, unless `limit` bytes are buffered already.
fn fill_or_fail(
    cx: &mut Context<'_>,
    src: &mut impl BodySource,
    limit: usize,
) -> Poll<Result<Step, DecodeError>> {
    if src.buffered().len() >= limit {
        return Poll::Ready(Err(DecodeError::BadChunk));
    }
    Poll::Ready(match ready!(src.poll_fill(cx))? {
        0 => Err(DecodeError::Incomplete),
        _ => Ok(Step::Again),
    })
}

fn find(buf: &[u8], marker: &[u8]) -> Option<usize> {
    buf.windows(marker.len()).position(|w| w == marker)
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
fn parse_trailers(raw: &[u8]) -> Result<HeaderMap, DecodeError> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let fields = match httparse::parse_headers(raw, &mut slots) {
        Ok(httparse::Status::Complete((_, fields))) => fields,
        _ => return Err(DecodeError::BadChunk),
    };
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = http::HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| DecodeError::BadChunk)?;
        let value =
            http::HeaderValue::from_bytes(field.value).map_err(|_| DecodeError::BadChunk)?;
        trailers.append(name, value);
    }
    Ok(trailers)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;

    use super::*;

    /// A source that hands out `parts` one per fill, as separate reads would.
    struct Parts {
        buf: BytesMut,
        parts: Vec<&'static [u8]>,
    }

    impl BodySource for Parts {
        fn buffered(&mut self) -> &mut BytesMut {
            &mut self.buf
        }
        fn poll_fill(&mut self, _: &mut Context<'_>) -> Poll<io::Result<usize>> {
            // A real read returns no bytes only at the end of the stream.
            self.parts.retain(|p| !p.is_empty());
            if self.parts.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let part = self.parts.remove(0);
            self.buf.extend_from_slice(part);
            Poll::Ready(Ok(part.len()))
        }
    }

    /// Decodes all of `parts`: the data, the trailers, and the error if it failed.
    fn decode(
        framing: Framing,
        parts: &[&'static [u8]],
    ) -> (Vec<u8>, Option<HeaderMap>, Option<String>) {
        let mut src = Parts {
            buf: BytesMut::new(),
            parts: parts.to_vec(),
        };
        let mut decoder = Decoder::new(framing);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (mut data, mut trailers) = (Vec::new(), None);
        loop {
            match Pin::new(&mut decoder)
                .get_mut()
                .poll_frame(&mut cx, &mut src)
            {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(bytes) => data.extend_from_slice(&bytes),
                    Err(frame) => trailers = frame.into_trailers().ok(),
                },
                Poll::Ready(Some(Err(e))) => return (data, trailers, Some(e.to_string())),
                Poll::Ready(None) => return (data, trailers, None),
                Poll::Pending => unreachable!("the test source is always ready"),
            }
        }
    }

    #[test]
    fn chunked_bodies_split_anywhere_decode_the_same() {
        let whole: &'static [u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 42\r\n\r\n";
        for at in 0..whole.len() {
            let (data, trailers, error) = decode(Framing::Chunked, &[&whole[..at], &whole[at..]]);
            assert_eq!(error, None, "split at {at}");
            assert_eq!(data, b"hello world", "split at {at}");
            assert_eq!(trailers.unwrap()["x-sum"], "42", "split at {at}");
        }
    }

    #[test]
    fn broken_bodies_are_errors() {
        for (framing, parts) in [
            (Framing::Chunked, &[&b"zz\r\n"[..]][..]),
            (Framing::Chunked, &[&b"3\r\nabcXY"[..]]),
            (Framing::Chunked, &[&b"3\r\nab"[..]]),
            (Framing::Chunked, &[&b"0\r\nbad header\r\n\r\n"[..]]),
            (Framing::Length(10), &[&b"short"[..]]),
        ] {
            let (_, _, error) = decode(framing, parts);
            assert!(error.is_some(), "{framing:?} {parts:?}");
        }
        let long_line: &'static [u8] = Box::leak(vec![b'1'; MAX_CHUNK_LINE + 1].into_boxed_slice());
        assert!(decode(Framing::Chunked, &[long_line]).2.is_some());
    }

    #[test]
    fn length_and_until_close() {
        let (data, _, error) = decode(Framing::Length(5), &[b"he", b"llo"]);
        assert_eq!((data.as_slice(), error), (&b"hello"[..], None));
        let (data, _, error) = decode(Framing::UntilClose, &[b"all ", b"of it"]);
        assert_eq!((data.as_slice(), error), (&b"all of it"[..], None));
        let (data, _, error) = decode(Framing::Empty, &[b"ignored"]);
        assert_eq!((data.as_slice(), error), (&b""[..], None));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"FF;name=value"), Some(255));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"-1"), None);
        assert_eq!(
            parse_chunk_size(b"1000000000000000"),
            None,
            "past 2^60 is refused"
        );
    }
}
