//! HTTP/1.1 message heads on the upstream side of the gateway: the request head written, the response
//! head parsed.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};

use crate::length::{content_length_of, transfer_coding};
use crate::tokens::{is_hop_by_hop_name, list_has, named_by_connection};
use crate::{encode_field, FieldSpan, Framing, RawFields};

/// Most header lines an upstream response head may carry.
pub const MAX_RESPONSE_HEADERS: usize = 128;

/// Largest response head accepted from an upstream, in bytes.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why an upstream response head could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResponseError {
    /// Not valid HTTP/1.x.
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    /// Longer than [`MAX_RESPONSE_HEAD`].
    #[error("response head larger than {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    /// `Content-Length` that is not a number, or several that disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// A `Transfer-Encoding` other than one `chunked`: the gateway would have to pass on a body in a
    /// coding the client was not told of (nginx answers 502 too).
    #[error("unsupported Transfer-Encoding")]
    BadTransferEncoding,
    /// `101 Switching Protocols` to a request that did not ask to upgrade.
    #[error("101 Switching Protocols to a request that did not ask for an upgrade")]
    UnaskedUpgrade,
}

/// Writes the head of an HTTP/1.1 request into `out`: the request line, `Host` (always first, and
/// instead of any `Host` in `headers`), the other headers but those `replaced` picks, the lines `extra`
/// writes (the gateway's own), then `framing`, the message's one `Content-Length` or
/// `Transfer-Encoding` line when it has a body. The client's own framing headers are never copied: the
/// body goes on framed as the gateway read it, whatever the client declared (RFC 9112 §6.3).
#[allow(clippy::too_many_arguments)] // each is one part of the head, in the order they are written
pub fn encode_request(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    host: &[u8],
    headers: &HeaderMap,
    replaced: impl Fn(&header::HeaderName) -> bool,
    extra: impl FnOnce(&mut Vec<u8>),
    framing: Option<&[u8]>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        let framing_field = name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING;
        if name != header::HOST && !framing_field && !replaced(name) {
            encode_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    extra(out);
    if let Some(framing) = framing {
        out.extend_from_slice(framing);
    }
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: StatusCode,
    /// The header fields to pass on, as the bytes they arrived in: those about this connection only
    /// (RFC 9110 §7.6.1) are already left out, except in a `101 Switching Protocols`.
    pub fields: RawFields,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request once this response is read to its end.
    pub keep_alive: bool,
}

/// Parses a response head from the start of `buf`. `Ok(None)`: incomplete, read more. On success the
/// head's bytes are taken off `buf`, which then starts at the body.
pub fn parse_response(
    buf: &mut BytesMut,
    request_method: &Method,
) -> Result<Option<ResponseHead>, ResponseError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots,
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(ResponseError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooLarge),
        Err(e) => return Err(ResponseError::Malformed(e)),
    };
    if head_len > MAX_RESPONSE_HEAD {
        return Err(ResponseError::TooLarge);
    }
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .map_err(|_| ResponseError::Malformed(httparse::Error::Status))?;
    let version = if response.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let fields = &*response.headers;
    // One pass notes which of the fields that frame the message or name others are there: most
    // responses have a length and perhaps `Connection: keep-alive`, and each lookup below would
    // otherwise scan every field again.
    let mut noted = Noted::default();
    for field in fields {
        noted.note(field);
    }
    let values = |present: bool, name: &'static str| {
        fields
            .iter()
            .filter(move |h| present && h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let framing = framing(
        status,
        request_method,
        values(noted.transfer_encoding, "transfer-encoding"),
        values(noted.content_lengths > 0, "content-length"),
    )?;
    let transfer_coded = noted.transfer_encoding;
    let connection = || values(noted.connection, "connection");
    // RFC 9112 §6.1: a transfer coding in an HTTP/1.0 message is faulty framing; read this one
    // message, then close.
    let keep_alive = framing != Framing::UntilClose
        && !(transfer_coded && version == Version::HTTP_10)
        && if version == Version::HTTP_11 {
            !connection().any(|v| list_has(v, b"close"))
        } else {
            connection().any(|v| list_has(v, b"keep-alive"))
        };

    // Which fields go on. A 101 keeps them all: the tunnel's headers are sorted out on a map.
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let connection_names = connection().any(|v| named_by_connection(v, false).next().is_some());
    // A length sent as a list or on several lines goes on once, as one number (RFC 9110 §8.6): the
    // first line when it is a plain number, else the writer's own from the body's size.
    let mut lengths_seen = 0u32;
    let mut passed_on = |field: &httparse::Header<'_>| {
        let name = field.name.as_bytes();
        if switching {
            return true;
        }
        if noted.content_lengths > 0 && name.eq_ignore_ascii_case(b"content-length") {
            // RFC 9112 §6.3: a length next to a transfer coding is wrong, and must not be passed on.
            lengths_seen += 1;
            return !(transfer_coded || lengths_seen > 1 || field.value.contains(&b','));
        }
        if is_hop_by_hop_name(name) {
            // `TE: trailers` is the one hop-by-hop field kept (see `remove_hop_by_hop`).
            return name.eq_ignore_ascii_case(b"te")
                && field.value.eq_ignore_ascii_case(b"trailers");
        }
        !(connection_names
            && connection()
                .flat_map(|v| named_by_connection(v, false))
                .any(|named| named.eq_ignore_ascii_case(name)))
    };
    // Offsets, so the buffer can be frozen and each field read from it as a slice.
    let base = buf.as_ptr();
    let spans: Vec<FieldSpan> = fields
        .iter()
        .filter(|field| passed_on(field))
        .map(|field| FieldSpan::of(field, base))
        .collect();
    let head: Bytes = buf.split_to(head_len).freeze();
    Ok(Some(ResponseHead {
        status,
        fields: RawFields::new(head, spans),
        framing,
        keep_alive,
    }))
}

/// The fields of a response head that frame it or name others, as one pass over its fields finds them.
#[derive(Default)]
struct Noted {
    transfer_encoding: bool,
    content_lengths: u32,
    connection: bool,
}

impl Noted {
    fn note(&mut self, field: &httparse::Header<'_>) {
        let is = |known: &str| field.name.eq_ignore_ascii_case(known);
        match field.name.len() {
            17 => self.transfer_encoding |= is("transfer-encoding"),
            14 => self.content_lengths += u32::from(is("content-length")),
            10 => self.connection |= is("connection"),
            _ => {}
        }
    }
}

/// RFC 9112 §6.3: how the body of this response is delimited, from its `Transfer-Encoding` and
/// `Content-Length` values.
fn framing<'a>(
    status: StatusCode,
    method: &Method,
    transfer_encoding: impl Iterator<Item = &'a [u8]>,
    content_length: impl Iterator<Item = &'a [u8]>,
) -> Result<Framing, ResponseError> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    let mut transfer_encoding = transfer_encoding.peekable();
    if transfer_encoding.peek().is_some() {
        transfer_coding(transfer_encoding).map_err(|_| ResponseError::BadTransferEncoding)?;
        return Ok(Framing::Chunked);
    }
    Ok(
        match content_length_of(content_length).map_err(|_| ResponseError::BadContentLength)? {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(raw: &str, method: Method) -> Result<Option<ResponseHead>, ResponseError> {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_response(&mut buf, &method)
    }

    #[test]
    fn parses_status_headers_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello"[..],
        );
        let head = parse_response(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(5));
        assert!(head.keep_alive);
        let values: Vec<_> = head.fields.values("x-a").collect();
        assert_eq!(values, [b"1", b"2"]);
        assert_eq!(&buf[..], b"hello");
    }

    #[test]
    fn fields_about_the_connection_are_not_passed_on() {
        let names = |raw: &str| {
            let head = parse(raw, Method::GET).unwrap().unwrap();
            let names: Vec<String> = head
                .fields
                .iter()
                .map(|(name, _)| String::from_utf8_lossy(name).into_owned())
                .collect();
            names
        };
        assert_eq!(
            names(
                "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\n\
                 Keep-Alive: timeout=5\r\nProxy-Connection: x\r\nUpgrade: h2c\r\nTE: gzip\r\n\
                 Server: up\r\nContent-Length: 2\r\n\r\n"
            ),
            ["Server", "Content-Length"]
        );
        // A transfer coding makes any length wrong: neither goes on (the gateway frames the body).
        assert_eq!(
            names("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nTE: trailers\r\n\r\n"),
            ["TE"]
        );
        // One length, once: a repeated or listed value goes on as one number or not at all.
        assert_eq!(
            names("HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\n"),
            ["Content-Length"]
        );
        assert!(names("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n").is_empty());
        // A 101 keeps everything: the tunnel's headers are sorted out later.
        assert_eq!(
            names("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
            ["Connection", "Upgrade"]
        );
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Le", Method::GET)
            .unwrap()
            .is_none());
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Method::GET,
                Framing::Chunked,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", Method::GET, Framing::UntilClose),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n",
                Method::GET,
                Framing::Length(7),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                Method::GET,
                Framing::Empty,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
                Method::HEAD,
                Framing::Empty,
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                Method::GET,
                Framing::Empty,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                Method::GET,
                Framing::Empty,
            ),
        ];
        for (raw, method, want) in cases {
            assert_eq!(
                parse(raw, method).unwrap().unwrap().framing,
                want,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn bad_lengths_and_heads_are_errors() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 7, 8\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert_eq!(
                parse(raw, Method::GET).unwrap_err(),
                ResponseError::BadContentLength,
                "{raw:?}"
            );
        }
        for raw in [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n",
        ] {
            assert_eq!(
                parse(raw, Method::GET).unwrap_err(),
                ResponseError::BadTransferEncoding,
                "{raw:?}"
            );
        }
        assert!(matches!(
            parse("HTP/1.1 200 OK\r\n\r\n", Method::GET),
            Err(ResponseError::Malformed(_))
        ));
        let huge = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\n",
            "a".repeat(MAX_RESPONSE_HEAD)
        );
        assert_eq!(
            parse(&huge, Method::GET).unwrap_err(),
            ResponseError::TooLarge
        );
        let many: String = (0..=MAX_RESPONSE_HEADERS)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(
            parse(&many, Method::GET).unwrap_err(),
            ResponseError::TooLarge
        );
    }

    #[test]
    fn keep_alive_by_version_and_connection_header() {
        let reusable = |raw: &str| parse(raw, Method::GET).unwrap().unwrap().keep_alive;
        assert!(reusable("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(!reusable(
            "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!reusable("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(reusable(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(
            !reusable(
                "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            "a transfer coding in HTTP/1.0 is faulty framing: one message, then close"
        );
        assert!(
            !reusable("HTTP/1.1 200 OK\r\n\r\n"),
            "a body until close ends the connection"
        );
    }

    #[test]
    fn request_head_encoding() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.insert(header::HOST, HeaderValue::from_static("client.example"));
        headers.append("x-a", HeaderValue::from_static("2"));
        // The client's framing and its own copy of a replaced header never go on.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-replaced", HeaderValue::from_static("theirs"));
        let mut out = Vec::new();
        let framing = b"transfer-encoding: chunked\r\n";
        encode_request(
            &mut out,
            &Method::POST,
            "/p?q=1",
            b"up.example",
            &headers,
            |name| name == "x-replaced",
            |out| out.extend_from_slice(b"x-replaced: ours\r\n"),
            Some(framing),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nhost: up.example\r\nx-a: 1\r\nx-a: 2\r\n\
             x-replaced: ours\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }
}
