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

use crate::tokens::trim_ows;
use crate::{
    content_length_of, encode_chunk_size, encode_field, encode_last_chunk, encode_request,
    head_complete, is_valid_authority, parse_chunk_line, parse_field_line, parse_request,
    parse_response, same_authority, transfer_coding, BodySource, CodingError, DecodeError, Decoder,
    Framing, RequestError,
};

pub mod corpus;
mod grammar;

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
    // The server parses a head once `head_complete` has found its end (after dropping blank lines
    // before it): that must be this head's end, not an earlier or a later one, whichever reads it
    // arrived in.
    let head_len = data.len() - buf.len();
    if !data.starts_with(b"\r") && !data.starts_with(b"\n") {
        let mut scanned = 0;
        assert_eq!(
            head_complete(data, &mut scanned),
            Some(head_len),
            "the head's end"
        );
        let cut = usize::from(data[0]) % head_len;
        let mut scanned = 0;
        assert_eq!(
            head_complete(&data[..cut], &mut scanned),
            None,
            "cut at {cut}"
        );
        assert_eq!(
            head_complete(data, &mut scanned),
            Some(head_len),
            "the head's end, cut at {cut}"
        );
    }
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

/// Response heads: parsing never panics, an accepted head leaves exactly the body in the buffer, passes
/// on no field about this connection, and, written on as the gateway writes it, parses to the same
/// response.
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
        for (name, value) in head.fields.iter() {
            // `TE: trailers` is the one hop-by-hop field deliberately passed on.
            let te_trailers =
                name.eq_ignore_ascii_case(b"te") && value.eq_ignore_ascii_case(b"trailers");
            if head.status.as_u16() != 101 && !te_trailers {
                assert!(
                    !crate::is_hop_by_hop_name(name),
                    "hop-by-hop fields never go on"
                );
            }
        }

        // Written on as the gateway writes a response (status line, the fields passed on, then its
        // own framing line), the head parses to the same status, framing and fields.
        let mut out = format!("HTTP/1.1 {} \r\n", head.status.as_str()).into_bytes();
        head.fields.encode(&mut out, |_| false);
        // A length not passed on as it came (a list, or repeated) is written by the gateway from the
        // body's exact size, as one number: zero too (`Content-Length: 0, 0`), where the message may
        // carry a body, or the client would read to the close.
        let may_have_body = method != Method::HEAD
            && !head.status.is_informational()
            && head.status.as_u16() != 204
            && head.status.as_u16() != 304;
        let exact = match head.framing {
            Framing::Length(n) => Some(n),
            Framing::Empty if may_have_body => Some(0),
            _ => None,
        };
        let length_added = match exact {
            Some(n) if !head.fields.contains("content-length") => {
                out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
                true
            }
            _ => false,
        };
        if head.framing == Framing::Chunked {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let mut again = BytesMut::from(&out[..]);
        let reparsed = match parse_response(&mut again, &method) {
            Ok(Some(reparsed)) => reparsed,
            other => panic!("a forwarded head must parse again: {:?}", other.err()),
        };
        assert!(again.is_empty(), "the encoded head is all head");
        assert_eq!(reparsed.status, head.status);
        assert_eq!(reparsed.framing, head.framing, "the framing");
        assert!(
            reparsed
                .fields
                .iter()
                .filter(|(name, _)| !(length_added && name.eq_ignore_ascii_case(b"content-length")))
                .eq(head.fields.iter()),
            "the fields passed on"
        );
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

/// Chunked bodies against the grammar: the decoder accepts exactly the bodies that a second, independent
/// reading of RFC 9112 §7.1 accepts ([`grammar`]), with the same data, the same trailers kept, and the
/// same bytes left for the next message. Accepting more is how a smuggled request gets past the gateway;
/// accepting less breaks clients that follow the RFC.
pub fn chunked_grammar(data: &[u8]) {
    let decoded = decode(data, &[]);
    match (decoded.error, grammar::chunked_body(data)) {
        (None, Some(body)) => {
            assert_eq!(decoded.data, body.data, "the body's data");
            assert_eq!(decoded.rest, &data[body.len..], "what follows the body");
            let kept = decoded.trailers.as_ref().map_or(0, HeaderMap::len);
            assert_eq!(kept, body.kept_trailers, "the trailers kept");
        }
        (Some(_), None) => {}
        (None, None) => panic!("the decoder accepted a body the grammar refuses"),
        (Some(e), Some(_)) => panic!("the decoder refused a body the grammar accepts: {e}"),
    }
}

/// Chunk-size lines: [`parse_chunk_line`] takes exactly the lines of the grammar, with the same size,
/// and the size line the gateway writes for that size reads back as it.
pub fn chunk_line(data: &[u8]) {
    let parsed = parse_chunk_line(data).ok();
    assert_eq!(parsed, grammar::chunk_line(data), "the line's size");
    if let Some(size) = parsed.filter(|s| *s > 0) {
        let Ok(len) = usize::try_from(size) else {
            return;
        };
        let line = encode_chunk_size(len);
        let line = line.as_bytes();
        assert!(line.ends_with(b"\r\n"));
        assert_eq!(parse_chunk_line(&line[..line.len() - 2]), Ok(size));
    }
}

/// Trailer field lines: [`parse_field_line`] takes exactly the lines of the grammar, splitting them
/// the same way, and a line written from what it returns reads back the same.
pub fn field_line(data: &[u8]) {
    let parsed = parse_field_line(data);
    assert_eq!(parsed, grammar::field_line(data), "name and value");
    if let Some((name, value)) = parsed {
        let mut line = Vec::new();
        encode_field(&mut line, name, value);
        assert_eq!(
            parse_field_line(&line[..line.len() - 2]),
            Some((name, value))
        );
    }
}

/// `Host` values: [`is_valid_authority`] never takes a value that could carry userinfo, a path, a
/// query, a fragment, whitespace or a control byte into routing, every value it takes is a `Host` a
/// request head is accepted with and the `http` crate takes as it is, and an authority always names
/// itself.
pub fn authority(data: &[u8]) {
    if !is_valid_authority(data) {
        return;
    }
    assert!(
        !data
            .iter()
            .any(|b| b"@/?#\\ \"<>^`{|}".contains(b) || b.is_ascii_control() || *b >= 0x80),
        "an authority of a host and a port only"
    );
    assert!(same_authority(data, data));
    // The same value becomes an HTTP/2 upstream's `:authority`: `http` must take it as it is.
    if !data.is_empty() {
        let parsed = http::uri::Authority::try_from(data);
        assert_eq!(
            parsed.as_ref().map(|a| a.as_str().as_bytes()).ok(),
            Some(data),
            "an authority for http too"
        );
    }
    let mut head = b"GET / HTTP/1.1\r\nHost: ".to_vec();
    head.extend_from_slice(data);
    head.extend_from_slice(b"\r\n\r\n");
    let parsed = parse_request(&mut BytesMut::from(&head[..]));
    assert!(
        matches!(parsed, Ok(Some(_))),
        "a valid Host is accepted: {:?}",
        parsed.err()
    );
}

/// The framing fields' values (one per line of the input): `Content-Length` reads as the grammar
/// reads it, and `Transfer-Encoding` is accepted only as one `chunked`, refused as unsupported only
/// when well-formed codings end in `chunked`.
pub fn framing_fields(data: &[u8]) {
    let values = || data.split(|b| *b == b'\n');
    assert_eq!(
        content_length_of(values()).ok(),
        grammar::content_length(values()),
        "Content-Length"
    );
    let codings: Vec<&[u8]> = values()
        .flat_map(|v| v.split(|b| *b == b','))
        .map(trim_ows)
        .filter(|c| !c.is_empty())
        .collect();
    match transfer_coding(values()) {
        Ok(()) => assert!(
            codings.len() == 1 && codings[0].eq_ignore_ascii_case(b"chunked"),
            "one chunked: {codings:?}"
        ),
        Err(CodingError::Unsupported) => assert!(
            codings.len() > 1
                && codings
                    .last()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
                && !codings[..codings.len() - 1]
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(b"chunked")),
            "codings ending in one chunked: {codings:?}"
        ),
        Err(CodingError::Invalid) => {}
    }
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
