//! HTTP/1.1 message heads on the upstream side: the request head written, the response head parsed.

use std::mem::MaybeUninit;

use arrayvec::ArrayVec;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};

use crate::codec::{
    chunked_last, connection_has, content_length, encode_field, header_map, FieldSpan, Framing,
};

/// Most header lines an upstream response head may carry.
const MAX_RESPONSE_HEADERS: usize = 128;

/// Largest response head accepted from an upstream, in bytes.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why an upstream response head could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    /// Not valid HTTP/1.x.
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    /// Longer than [`MAX_RESPONSE_HEAD`].
    #[error("response head larger than {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    /// `Content-Length` that is not a number, or several that disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// `101 Switching Protocols` to a request that did not ask to upgrade.
    #[error("101 Switching Protocols to a request that did not ask for an upgrade")]
    UnaskedUpgrade,
}

/// Writes the head of an HTTP/1.1 request into `out`: the request line, `Host` (always first, and
/// instead of any `Host` in `headers`), the other headers, then `framing` (a `Content-Length` or
/// `Transfer-Encoding` line of the caller's choosing) when given.
pub fn encode_request(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    host: &[u8],
    headers: &HeaderMap,
    framing: Option<&[u8]>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name != header::HOST {
            encode_field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
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
    /// The header fields, values sharing the bytes they were read into.
    pub headers: HeaderMap,
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
) -> Result<Option<ResponseHead>, HeadError> {
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
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e)),
    };
    if head_len > MAX_RESPONSE_HEAD {
        return Err(HeadError::TooLarge);
    }
    let code = response.code.unwrap_or_default();
    let status =
        StatusCode::from_u16(code).map_err(|_| HeadError::Malformed(httparse::Error::Status))?;
    let version = if response.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Offsets first, so the buffer can be frozen and each name and value read from it as a slice.
    // Filled only as far as used: zeroing a whole array of spans per response showed up in profiles.
    let base = buf.as_ptr();
    // Pushed in place: `collect` built the array elsewhere and copied all of it.
    let mut spans = ArrayVec::<FieldSpan, MAX_RESPONSE_HEADERS>::new();
    for h in response.headers.iter() {
        spans.push(FieldSpan::of(h, base));
    }
    let head: Bytes = buf.split_to(head_len).freeze();
    // Spare room for what the gateway adds to a response (`X-Request-Id`), so the map does not grow.
    let headers = header_map(&head, &spans, 2)
        .map_err(|_| HeadError::Malformed(httparse::Error::HeaderName))?;
    let framing = framing(status, request_method, &headers)?;
    let keep_alive = keep_alive(version, &headers) && framing != Framing::UntilClose;
    Ok(Some(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// RFC 9112 §6.3: how the body of this response is delimited.
fn framing(status: StatusCode, method: &Method, headers: &HeaderMap) -> Result<Framing, HeadError> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(chunked) = chunked_last(headers) {
        return Ok(if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    Ok(
        match content_length(headers).map_err(|()| HeadError::BadContentLength)? {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        },
    )
}

/// Whether the upstream lets the connection carry another request: HTTP/1.1 unless it says `close`,
/// HTTP/1.0 only when it says `keep-alive`.
fn keep_alive(version: Version, headers: &HeaderMap) -> bool {
    if version == Version::HTTP_11 {
        !connection_has(headers, b"close")
    } else {
        connection_has(headers, b"keep-alive")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(raw: &str, method: Method) -> Result<Option<ResponseHead>, HeadError> {
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
        let values: Vec<_> = head.headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&buf[..], b"hello");
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
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Method::GET,
                Framing::Chunked,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Method::GET,
                Framing::Chunked,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Method::GET,
                Framing::UntilClose,
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
                HeadError::BadContentLength,
                "{raw:?}"
            );
        }
        assert!(matches!(
            parse("HTP/1.1 200 OK\r\n\r\n", Method::GET),
            Err(HeadError::Malformed(_))
        ));
        let huge = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\n",
            "a".repeat(MAX_RESPONSE_HEAD)
        );
        assert_eq!(parse(&huge, Method::GET).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..=MAX_RESPONSE_HEADERS)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        let many = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert_eq!(parse(&many, Method::GET).unwrap_err(), HeadError::TooLarge);
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
        let mut out = Vec::new();
        let framing = b"transfer-encoding: chunked\r\n";
        encode_request(
            &mut out,
            &Method::POST,
            "/p?q=1",
            b"up.example",
            &headers,
            Some(framing),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nhost: up.example\r\nx-a: 1\r\nx-a: 2\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
    }
}
