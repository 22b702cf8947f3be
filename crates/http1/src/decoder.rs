//! Reading an HTTP/1.1 body off a connection: by length, chunked (RFC 9112 §7.1), or until the peer
//! closes.

use std::io;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Frame, SizeHint};

use crate::chunk::{parse_chunk_line, parse_field_line};
use crate::trailers::is_forbidden_trailer;

/// Longest chunk-size line accepted (the size in hex and any chunk extensions).
pub(crate) const MAX_CHUNK_LINE: usize = 4096;

/// Most bytes of trailer fields accepted after the last chunk.
pub(crate) const MAX_TRAILERS: usize = 64 * 1024;

/// Most trailer fields accepted after the last chunk.
pub(crate) const MAX_TRAILER_FIELDS: usize = 64;

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
    /// How far into the buffer the current line (or trailer section) has been searched already, so a
    /// line that arrives a byte at a time is scanned once, not once per byte. Both offsets stay below the
    /// line and trailer limits, so 32 bits do: decoders are moved with the bodies that hold them.
    scanned: u32,
    /// Where the trailer line being read starts.
    line_start: u32,
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
        Self {
            state,
            scanned: 0,
            line_start: 0,
        }
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
                let Some(line_end) = self.find_line_end(src.buffered(), 0)? else {
                    return self.fill_or_fail(cx, src, MAX_CHUNK_LINE);
                };
                if line_end > MAX_CHUNK_LINE {
                    return Poll::Ready(Err(DecodeError::BadChunk));
                }
                let size = parse_chunk_line(&src.buffered()[..line_end])
                    .map_err(|_| DecodeError::BadChunk)?;
                src.buffered().advance(line_end + 2);
                self.scanned = 0;
                self.state = if size == 0 {
                    State::Trailers
                } else {
                    State::ChunkData(size)
                };
                Poll::Ready(Ok(Step::Again))
            }
            State::ChunkEnd => {
                if src.buffered().len() < 2 {
                    return self.fill_or_fail(cx, src, 2);
                }
                if &src.buffered()[..2] != b"\r\n" {
                    return Poll::Ready(Err(DecodeError::BadChunk));
                }
                src.buffered().advance(2);
                self.state = State::ChunkSize;
                Poll::Ready(Ok(Step::Again))
            }
            State::Trailers => {
                // Line by line, each checked as it is found: the section ends at the first empty line,
                // and not a byte further, so whatever follows (a pipelined request) stays in the buffer.
                loop {
                    let line_start = self.line_start as usize;
                    let Some(line_end) = self.find_line_end(src.buffered(), line_start)? else {
                        return self.fill_or_fail(cx, src, MAX_TRAILERS);
                    };
                    if line_end > MAX_TRAILERS {
                        return Poll::Ready(Err(DecodeError::BadChunk));
                    }
                    if line_end == line_start {
                        let section = src.buffered().split_to(line_end + 2);
                        self.scanned = 0;
                        self.line_start = 0;
                        self.state = State::Done;
                        if line_end == 0 {
                            return Poll::Ready(Ok(Step::End));
                        }
                        let trailers = trailer_map(&section[..line_end])?;
                        return Poll::Ready(Ok(Step::Frame(Frame::trailers(trailers))));
                    }
                    if parse_field_line(&src.buffered()[line_start..line_end]).is_none() {
                        return Poll::Ready(Err(DecodeError::BadChunk));
                    }
                    self.scanned = offset(line_end + 2);
                    self.line_start = offset(line_end + 2);
                }
            }
        }
    }

    /// Where the line starting at `from` ends (the offset of its CR), once its CRLF is in the buffer.
    /// A LF without a CR before it is faulty framing (RFC 9112 §7.1 lines end in CRLF), and so is a CR
    /// that is not followed by LF.
    fn find_line_end(&mut self, buf: &[u8], from: usize) -> Result<Option<usize>, DecodeError> {
        let start = (self.scanned as usize).max(from);
        match buf[start..].iter().position(|b| *b == b'\n' || *b == b'\r') {
            None => {
                self.scanned = offset(buf.len());
                Ok(None)
            }
            Some(at) => {
                let at = start + at;
                match (buf[at], buf.get(at + 1)) {
                    (b'\r', Some(b'\n')) => {
                        self.scanned = offset(at);
                        Ok(Some(at))
                    }
                    (b'\r', None) => {
                        self.scanned = offset(at);
                        Ok(None)
                    }
                    _ => Err(DecodeError::BadChunk),
                }
            }
        }
    }

    /// Needs more bytes for a line or marker: reads them, unless the line's CR can no longer fall at or
    /// before offset `limit`, the bound a complete line is held to. Measured the same way whole or in
    /// pieces, a limit refuses the same bodies however the bytes arrive.
    fn fill_or_fail(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut impl BodySource,
        limit: usize,
    ) -> Poll<Result<Step, DecodeError>> {
        let buf = src.buffered();
        // A CR that ends the buffer may be the line's own; otherwise the CR is still to come.
        let earliest_cr = buf.len() - usize::from(buf.ends_with(b"\r"));
        if earliest_cr > limit {
            return Poll::Ready(Err(DecodeError::BadChunk));
        }
        Poll::Ready(match ready!(src.poll_fill(cx))? {
            0 => Err(DecodeError::Incomplete),
            _ => Ok(Step::Again),
        })
    }
}

/// An offset into a decoder's buffer, which the line limits keep far below 4 GiB.
fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}

/// The trailer fields of `section` (lines already checked, CRLF-separated, without the final empty
/// line), less those that must not be trailers ([`is_forbidden_trailer`]).
fn trailer_map(section: &[u8]) -> Result<HeaderMap, DecodeError> {
    let mut trailers = HeaderMap::new();
    for line in section.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let (name, value) = parse_field_line(line).ok_or(DecodeError::BadChunk)?;
        if trailers.len() >= MAX_TRAILER_FIELDS {
            return Err(DecodeError::BadChunk);
        }
        if is_forbidden_trailer(name) {
            continue;
        }
        let name = http::HeaderName::from_bytes(name).map_err(|_| DecodeError::BadChunk)?;
        let value = http::HeaderValue::from_bytes(value).map_err(|_| DecodeError::BadChunk)?;
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
        let (data, trailers, error, _) = decode_rest(framing, parts);
        (data, trailers, error)
    }

    /// [`decode`], and what is left in the buffer after the body.
    fn decode_rest(
        framing: Framing,
        parts: &[&'static [u8]],
    ) -> (Vec<u8>, Option<HeaderMap>, Option<String>, Vec<u8>) {
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
                Poll::Ready(Some(Err(e))) => {
                    return (data, trailers, Some(e.to_string()), src.buf.to_vec())
                }
                Poll::Ready(None) => return (data, trailers, None, src.buf.to_vec()),
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
    fn a_trailer_section_ends_at_its_empty_line_and_not_a_byte_later() {
        let next: &'static [u8] = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
        for body in [
            &b"1\r\na\r\n0\r\n\r\n"[..],
            b"1\r\na\r\n0\r\nX-T: 1\r\n\r\n",
        ] {
            let whole: &'static [u8] = Box::leak([body, next].concat().into_boxed_slice());
            for at in 0..whole.len() {
                let (data, _, error, rest) =
                    decode_rest(Framing::Chunked, &[&whole[..at], &whole[at..]]);
                assert_eq!((data.as_slice(), error), (&b"a"[..], None), "split at {at}");
                // A pipelined request after the body is left where it is, whole.
                if at < body.len() {
                    assert_eq!(rest, next, "split at {at}");
                }
            }
        }
    }

    #[test]
    fn bare_lf_and_control_bytes_in_chunked_framing_are_errors() {
        for bad in [
            &b"0\r\nX-T: 1\n\nGET / HTTP/1.1\r\n\r\n"[..],
            b"0\r\n\nGET / HTTP/1.1\r\n\r\n",
            b"0\r\nX-T: 1\r\n\n",
            b"0\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            b"5;a\rb\0c\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\r\n0\r\n\r\n",
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\nX-T : 1\r\n\r\n",
            b"0\r\nX-T: 1\x0c\r\n\r\n",
        ] {
            let (_, _, error) = decode(Framing::Chunked, &[bad]);
            assert!(error.is_some(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn line_limits_hold_however_the_bytes_arrive() {
        // A chunk-size line whose CR is at the limit, and one a byte later ("00..01": size 1).
        let size_line = |cr_at: usize| {
            let mut body = vec![b'0'; cr_at - 1];
            body.extend_from_slice(b"1\r\na\r\n0\r\n\r\n");
            (cr_at, &*Box::leak(body.into_boxed_slice()))
        };
        // A trailer section whose closing empty line has its CR at the limit, and a byte later.
        let trailer = |cr_at: usize| {
            let mut body = b"0\r\nX-T: ".to_vec();
            body.resize(3 + cr_at - 2, b'a');
            body.extend_from_slice(b"\r\n\r\n");
            (3 + cr_at, &*Box::leak(body.into_boxed_slice()))
        };
        for ((cr_at, body), fits) in [
            (size_line(MAX_CHUNK_LINE), true),
            (size_line(MAX_CHUNK_LINE + 1), false),
            (trailer(MAX_TRAILERS), true),
            (trailer(MAX_TRAILERS + 1), false),
        ] {
            let (_, _, whole) = decode(Framing::Chunked, &[body]);
            assert_eq!(whole.is_none(), fits, "CR at {cr_at}");
            for at in cr_at - 2..=cr_at + 2 {
                let (_, _, split) = decode(Framing::Chunked, &[&body[..at], &body[at..]]);
                assert_eq!(split, whole, "CR at {cr_at}, split at {at}");
            }
        }
    }

    #[test]
    fn forbidden_trailers_are_dropped() {
        let (data, trailers, error) = decode(
            Framing::Chunked,
            &[b"1\r\na\r\n0\r\nContent-Length: 9\r\nHost: evil\r\nX-Sum: 1\r\n\r\n"],
        );
        assert_eq!((data.as_slice(), error), (&b"a"[..], None));
        let trailers = trailers.unwrap();
        assert_eq!(trailers.len(), 1);
        assert_eq!(trailers["x-sum"], "1");
    }

    #[test]
    fn a_trickled_trailer_section_is_bounded() {
        let mut parts: Vec<&'static [u8]> = vec![b"0\r\n"];
        let piece: &'static [u8] = Box::leak(vec![b'x'; 4096].into_boxed_slice());
        parts.extend(std::iter::repeat_n(piece, MAX_TRAILERS / 4096 + 1));
        let (_, _, error) = decode(Framing::Chunked, &parts);
        assert!(error.is_some());
    }
}
