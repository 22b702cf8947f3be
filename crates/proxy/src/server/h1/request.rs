//! Reading a request head off an HTTP/1.1 connection into an `http::Request`'s parts.

use std::mem::MaybeUninit;

use arrayvec::ArrayVec;
use bytes::{Bytes, BytesMut};
use http::header;
use http::{Method, Uri, Version};

use crate::codec::{chunked_last, connection_has, content_length, header_map, FieldSpan, Framing};

/// Most header lines a request head may carry.
const MAX_REQUEST_HEADERS: usize = 256;

/// Why a request head was refused before it reached the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not valid HTTP/1.x, a bad `Content-Length`, or a transfer coding other than chunked: 400.
    Malformed,
    /// More header lines than the server takes: 431.
    TooManyHeaders,
}

/// A parsed request head and what the connection needs to know about it.
pub struct RequestHead {
    /// Method, URI, version and headers.
    pub parts: http::request::Parts,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the client lets the connection carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a 100 before it sends the body.
    pub expects_continue: bool,
    /// Both `Content-Length` and `Transfer-Encoding`: refused by the handler, body not read.
    pub ambiguous: bool,
}

/// The headers that shape how a request is read, as found while its head is parsed.
#[derive(Default)]
struct Present {
    content_length: bool,
    transfer_encoding: bool,
    connection: bool,
    expect: bool,
}

impl Present {
    fn note(&mut self, name: &[u8]) {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        match name.len() {
            14 => self.content_length |= is("content-length"),
            17 => self.transfer_encoding |= is("transfer-encoding"),
            10 => self.connection |= is("connection"),
            6 => self.expect |= is("expect"),
            _ => {}
        }
    }
}

/// Parses a request head from the start of `buf`. `Ok(None)`: incomplete, read more. On success the
/// head's bytes are taken off `buf`, which then starts at the body.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_REQUEST_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed),
    };
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::Malformed)?;
    let version = if request.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let base = buf.as_ptr();
    let target = request.path.unwrap_or_default();
    let target_at = target.as_ptr() as usize - base as usize;
    let target_span = target_at..target_at + target.len();
    // Filled only as far as used: zeroing a whole array of spans per request showed up in profiles.
    let mut spans = ArrayVec::<FieldSpan, MAX_REQUEST_HEADERS>::new();
    // Which of the headers that shape the message are present, noted in this pass so the common
    // request (none of them) costs no map lookups below.
    let mut present = Present::default();
    for h in request.headers.iter() {
        present.note(h.name.as_bytes());
        spans.push(FieldSpan::of(h, base));
    }
    let head: Bytes = buf.split_to(head_len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target_span)).map_err(|_| HeadError::Malformed)?;
    // No spare room: the gateway's forwarding headers go beside the map (`headers::Forwarded`), and only
    // an HTTP/2 upstream's request, the rarer path, adds them to it.
    let headers = header_map(&head, &spans, 0).map_err(|_| HeadError::Malformed)?;

    let length = if present.content_length {
        content_length(&headers).map_err(|()| HeadError::Malformed)?
    } else {
        None
    };
    let chunked = if present.transfer_encoding {
        chunked_last(&headers)
    } else {
        None
    };
    let ambiguous = chunked.is_some() && length.is_some();
    let framing = match (chunked, length) {
        // RFC 9112 §6.3: refused by the handler; the connection closes after its answer.
        (Some(_), Some(_)) => Framing::Empty,
        // A transfer coding other than chunked last (or any, in HTTP/1.0) cannot be delimited.
        (Some(true), None) if version == Version::HTTP_11 => Framing::Chunked,
        (Some(_), None) => return Err(HeadError::Malformed),
        (None, Some(0) | None) => Framing::Empty,
        (None, Some(n)) => Framing::Length(n),
    };
    let keep_alive = !ambiguous
        && if version == Version::HTTP_11 {
            !(present.connection && connection_has(&headers, b"close"))
        } else {
            present.connection && connection_has(&headers, b"keep-alive")
        };
    let expects_continue = version == Version::HTTP_11
        && framing != Framing::Empty
        && present.expect
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));

    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(RequestHead {
        parts,
        framing,
        keep_alive,
        expects_continue,
        ambiguous,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request(&mut BytesMut::from(raw.as_bytes()))
    }

    #[test]
    fn parses_a_request_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            &b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET"[..],
        );
        let head = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri, "/a?b=1");
        assert_eq!(head.parts.headers["host"], "x");
        assert_eq!(head.framing, Framing::Length(3));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"abcGET");
    }

    #[test]
    fn framing_and_keep_alive() {
        let framing = |raw: &str| parse(raw).unwrap().unwrap().framing;
        assert_eq!(framing("GET / HTTP/1.1\r\n\r\n"), Framing::Empty);
        assert_eq!(
            framing("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Framing::Empty
        );
        let both =
            parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(both.ambiguous && !both.keep_alive);
        assert_eq!(both.framing, Framing::Empty);

        let keep = |raw: &str| parse(raw).unwrap().unwrap().keep_alive;
        assert!(keep("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(
            parse("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
                .unwrap()
                .unwrap()
                .expects_continue
        );
    }

    #[test]
    fn refusals() {
        for raw in [
            "NOT A REQUEST LINE\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(parse(raw).err(), Some(HeadError::Malformed), "{raw:?}");
        }
        let many: String = (0..=MAX_REQUEST_HEADERS)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
            Some(HeadError::TooManyHeaders)
        );
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }
}
