//! The properties the fuzz targets check, one function per parser of untrusted bytes. Each takes any
//! input and panics only when a property fails: that panic is the finding.
//!
//! They live in the library, not in the fuzz crate, so that the same checks also run as ordinary tests
//! (over the committed corpus and a bounded number of generated inputs, `tests/fuzz_corpus.rs`), on
//! toolchains without the fuzzer's sanitizers.

use std::io;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Version};

use crate::{
    encode_chunk_size, encode_last_chunk, encode_request, parse_request, parse_response,
    BodySource, DecodeError, Decoder, Framing, RequestError,
};

/// Request heads: parsing never panics; an accepted head says how its body is framed, keeps the body's
/// bytes in the buffer, and, written out again as the gateway writes heads, parses to the same request.
pub fn request_head(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let head = match parse_request(&mut buf) {
        Ok(Some(head)) => head,
        Ok(None) | Err(RequestError::Malformed | RequestError::TooManyHeaders) => return,
        Err(RequestError::UnsupportedCoding) => return,
    };
    assert!(
        data.ends_with(&buf),
        "the body left is the end of the input"
    );
    let parts = &head.parts;
    if parts.version == Version::HTTP_11 {
        assert_eq!(parts.headers.get_all(http::header::HOST).iter().count(), 1);
    }
    if head.ambiguous {
        assert_eq!(
            head.framing,
            Framing::Empty,
            "an ambiguous body is never read"
        );
        assert!(!head.keep_alive);
    }

    // Written again (as the gateway does for an HTTP/1.1 upstream), the head parses to the same message.
    let framing_line = match head.framing {
        Framing::Length(n) => Some(format!("content-length: {n}\r\n")),
        Framing::Chunked => Some("transfer-encoding: chunked\r\n".to_string()),
        Framing::Empty | Framing::UntilClose => None,
    };
    let host = parts
        .headers
        .get(http::header::HOST)
        .map_or(&b"h"[..], |h| h.as_bytes());
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if !target.starts_with('/') {
        return;
    }
    let mut out = Vec::new();
    encode_request(
        &mut out,
        &parts.method,
        target,
        host,
        &parts.headers,
        |_| false,
        |_| {},
        framing_line.as_deref().map(str::as_bytes),
    );
    let mut again = BytesMut::from(&out[..]);
    let reparsed = match parse_request(&mut again) {
        Ok(Some(reparsed)) => reparsed,
        other => panic!("a forwarded head must parse again: {:?}", other.err()),
    };
    assert!(again.is_empty(), "the encoded head is all head");
    assert_eq!(reparsed.parts.method, parts.method);
    assert_eq!(reparsed.framing, head.framing);
    assert_eq!(
        reparsed.parts.uri.path_and_query().map(|p| p.as_str()),
        Some(target)
    );
}

/// Response heads: parsing never panics, and an accepted head leaves exactly the body in the buffer.
pub fn response_head(data: &[u8]) {
    let (method, data) = match data.split_first() {
        Some((b, rest)) if b % 4 == 0 => (Method::HEAD, rest),
        Some((_, rest)) => (Method::GET, rest),
        None => return,
    };
    let mut buf = BytesMut::from(data);
    if let Ok(Some(head)) = parse_response(&mut buf, &method) {
        assert!(
            data.ends_with(&buf),
            "the body left is the end of the input"
        );
        if method == Method::HEAD || head.status.as_u16() == 204 || head.status.as_u16() == 304 {
            assert_eq!(head.framing, Framing::Empty);
        }
        if head.framing == Framing::UntilClose {
            assert!(!head.keep_alive);
        }
        for (name, _) in head.fields.iter() {
            if head.status.as_u16() != 101 {
                assert!(
                    !crate::is_hop_by_hop_name(name),
                    "hop-by-hop fields never go on"
                );
            }
        }
    }
}

/// Chunked bodies: decoding never panics and never reads past its input; whatever way the input is split
/// into reads, the result is the same; and a body that decodes, encoded again as the gateway encodes
/// chunked bodies, decodes to the same data and trailers (encode(decode(x)) keeps the framing's meaning).
pub fn chunked_body(data: &[u8]) {
    let Some((split, data)) = data.split_first() else {
        return;
    };
    let whole = decode(data, &[]);
    let at = usize::from(*split) % (data.len() + 1);
    let split_result = decode(data, &[at]);
    let trickled = decode(&data[..data.len().min(64)], &(1..64).collect::<Vec<_>>());
    assert_eq!(whole, split_result, "split at {at}");
    if data.len() <= 64 {
        assert_eq!(whole, trickled, "a byte at a time");
    }
    let Decoded {
        data: body,
        trailers,
        error: None,
        rest,
    } = whole
    else {
        return;
    };
    assert!(
        data.ends_with(&rest),
        "what follows the body is left as it was"
    );

    let mut encoded = Vec::new();
    if !body.is_empty() {
        encoded.extend_from_slice(encode_chunk_size(body.len()).as_bytes());
        encoded.extend_from_slice(&body);
        encoded.extend_from_slice(b"\r\n");
    }
    encode_last_chunk(&mut encoded, trailers.as_ref());
    let again = decode(&encoded, &[]);
    assert_eq!(again.error, None);
    assert_eq!(again.data, body);
    assert!(again.rest.is_empty());
    let fields = |t: &Option<HeaderMap>| t.as_ref().map_or(0, HeaderMap::len);
    assert_eq!(fields(&again.trailers), fields(&trailers));
}

/// The outcome of decoding one chunked body.
#[derive(Debug, PartialEq)]
struct Decoded {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    error: Option<String>,
    rest: Vec<u8>,
}

/// Decodes `data` as a chunked body delivered in reads that end at the offsets `cuts`.
fn decode(data: &[u8], cuts: &[usize]) -> Decoded {
    let mut src = Reads {
        buf: BytesMut::new(),
        data: Bytes::copy_from_slice(data),
        cuts: cuts.iter().copied().filter(|c| *c < data.len()).collect(),
        at: 0,
    };
    let mut decoder = Decoder::new(Framing::Chunked);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let (mut body, mut trailers) = (Vec::new(), None);
    let error = loop {
        match decoder.poll_frame(&mut cx, &mut src) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(bytes) => body.extend_from_slice(&bytes),
                Err(frame) => trailers = frame.into_trailers().ok(),
            },
            Poll::Ready(Some(Err(e))) => break Some(kind(&e)),
            Poll::Ready(None) => break None,
            Poll::Pending => unreachable!("reads from memory are always ready"),
        }
    };
    let mut rest = src.buf.to_vec();
    rest.extend_from_slice(&src.data[src.at..]);
    // After an error the connection is closed: what is left does not matter.
    if error.is_some() {
        rest.clear();
    }
    Decoded {
        data: body,
        trailers,
        error,
        rest,
    }
}

fn kind(e: &DecodeError) -> String {
    e.to_string()
}

/// Bytes from memory, handed out in reads that end at the given offsets, then all at once.
struct Reads {
    buf: BytesMut,
    data: Bytes,
    cuts: Vec<usize>,
    at: usize,
}

impl BodySource for Reads {
    fn buffered(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn poll_fill(&mut self, _: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let end = self
            .cuts
            .iter()
            .copied()
            .find(|c| *c > self.at)
            .unwrap_or(self.data.len());
        let read = &self.data[self.at..end];
        self.buf.extend_from_slice(read);
        self.at = end;
        Poll::Ready(Ok(read.len()))
    }
}
