//! Parsing an HTTP/1.1 request head (RFC 9112 §2-§6) into an `http::Request`'s parts, with the rules that
//! decide how its body is delimited and whether it may be forwarded at all.

use std::mem::MaybeUninit;

use arrayvec::ArrayVec;
use bytes::{Bytes, BytesMut};
use http::header;
use http::{Method, Uri, Version};

use crate::host::{is_valid_authority, same_authority};
use crate::length::{content_length, transfer_coding, CodingError};
use crate::tokens::connection_has;
use crate::{header_map, FieldSpan, Framing};

/// Most header lines a request head may carry.
pub const MAX_REQUEST_HEADERS: usize = 256;

/// Why a request head was refused before it reached the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not valid HTTP/1.x, a bad `Content-Length`, a `Transfer-Encoding` that does not end in one
    /// `chunked` (or any in HTTP/1.0), a missing, repeated or invalid `Host`, or an absolute-form target
    /// with userinfo or an authority other than `Host`'s: 400.
    #[error("malformed request head")]
    Malformed,
    /// More header lines than the server takes: 431.
    #[error("too many header lines")]
    TooManyHeaders,
    /// A transfer coding before `chunked` that floodgate does not decode (`gzip, chunked`): 501.
    #[error("unsupported transfer coding")]
    UnsupportedCoding,
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
    /// The client said it accepts trailers (`TE: trailers`), so a chunked response may carry them.
    pub accepts_trailers: bool,
}

/// The headers that shape how a request is read, as found while its head is parsed.
#[derive(Default)]
struct Present {
    content_length: bool,
    transfer_encoding: bool,
    connection: bool,
    expect: bool,
    te: bool,
    /// How many `Host` lines.
    hosts: u8,
}

impl Present {
    fn note(&mut self, name: &[u8]) {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        match name.len() {
            14 => self.content_length |= is("content-length"),
            17 => self.transfer_encoding |= is("transfer-encoding"),
            10 => self.connection |= is("connection"),
            6 => self.expect |= is("expect"),
            4 => self.hosts = self.hosts.saturating_add(u8::from(is("host"))),
            2 => self.te |= is("te"),
            _ => {}
        }
    }
}

/// Where the head in `buf` ends (the length of the head with its empty line), once that empty line
/// (CRLF or, tolerated as RFC 9112 §2.2 allows, a bare LF) has arrived. `scanned` carries how far
/// earlier calls looked, so a head trickling in a byte at a time is searched once overall, not once
/// per read; it starts at 0 for each head.
pub fn head_complete(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    // Back up over what could be the start of the end marker, split across reads.
    let from = scanned.saturating_sub(3);
    let found = buf[from..].windows(2).enumerate().find_map(|(i, w)| {
        let at = from + i;
        match w {
            b"\n\n" => Some(at + 2),
            b"\n\r" if buf.get(at + 2) == Some(&b'\n') => Some(at + 3),
            _ => None,
        }
    });
    *scanned = buf.len();
    found
}

/// Parses a request head from the start of `buf`. `Ok(None)`: incomplete, read more. On success the
/// head's bytes are taken off `buf`, which then starts at the body.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, RequestError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_REQUEST_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
        Err(_) => return Err(RequestError::Malformed),
    };
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| RequestError::Malformed)?;
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
    // `Host` is checked here, on the bytes httparse found, rather than looked up in the map later.
    let mut host_valid = true;
    let mut host_at = 0..0;
    for h in request.headers.iter() {
        present.note(h.name.as_bytes());
        if h.name.len() == 4 && h.name.eq_ignore_ascii_case("host") {
            host_valid &= is_valid_authority(h.value);
            let at = h.value.as_ptr() as usize - base as usize;
            host_at = at..at + h.value.len();
        }
        spans.push(FieldSpan::of(h, base));
    }
    let head: Bytes = buf.split_to(head_len).freeze();
    let uri =
        Uri::from_maybe_shared(head.slice(target_span)).map_err(|_| RequestError::Malformed)?;
    // No spare room: the gateway's forwarding headers go beside the map (`headers::Forwarded`), and only
    // an HTTP/2 upstream's request, the rarer path, adds them to it.
    let headers = header_map(&head, &spans, 0).map_err(|_| RequestError::Malformed)?;

    if !host_valid {
        return Err(RequestError::Malformed);
    }
    check_host(&uri, &head[host_at], version, present.hosts)?;

    let length = if present.content_length {
        content_length(&headers).map_err(|_| RequestError::Malformed)?
    } else {
        None
    };
    if present.transfer_encoding {
        // RFC 9112 §6.1: HTTP/1.0 has no transfer codings, so one there means faulty framing.
        if version == Version::HTTP_10 {
            return Err(RequestError::Malformed);
        }
        let values = headers.get_all(header::TRANSFER_ENCODING).iter();
        transfer_coding(values.map(http::HeaderValue::as_bytes)).map_err(|e| match e {
            CodingError::Invalid => RequestError::Malformed,
            CodingError::Unsupported => RequestError::UnsupportedCoding,
        })?;
    }
    let ambiguous = present.transfer_encoding && length.is_some();
    let framing = match (present.transfer_encoding, length) {
        // RFC 9112 §6.3: refused by the handler; the connection closes after its answer.
        (true, Some(_)) => Framing::Empty,
        (true, None) => Framing::Chunked,
        (false, Some(0) | None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
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

    let accepts_trailers = present.te
        && headers
            .get_all(header::TE)
            .iter()
            .any(|v| crate::tokens::list_has(v.as_bytes(), b"trailers"));

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
        accepts_trailers,
    }))
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`, a valid authority without userinfo; an
/// absolute-form target has no userinfo either and names the same authority as `Host`. Anything else
/// could be routed by one host and served by another.
fn check_host(uri: &Uri, host: &[u8], version: Version, hosts: u8) -> Result<(), RequestError> {
    match hosts {
        0 if version == Version::HTTP_11 => return Err(RequestError::Malformed),
        0 => {}
        1 => {
            if let Some(authority) = uri.authority() {
                if !same_authority(authority.as_str().as_bytes(), host) {
                    return Err(RequestError::Malformed);
                }
            }
        }
        _ => return Err(RequestError::Malformed),
    }
    if let Some(authority) = uri.authority() {
        if !is_valid_authority(authority.as_str().as_bytes()) {
            return Err(RequestError::Malformed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<RequestHead>, RequestError> {
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
        assert!(!head.accepts_trailers);
        assert_eq!(&buf[..], b"abcGET");
    }

    #[test]
    fn framing_and_keep_alive() {
        let framing = |raw: &str| parse(raw).unwrap().unwrap().framing;
        assert_eq!(framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Framing::Empty);
        assert_eq!(
            framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
            Framing::Empty
        );
        assert_eq!(
            framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"),
            Framing::Length(5)
        );
        let both = parse(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(both.ambiguous && !both.keep_alive);
        assert_eq!(both.framing, Framing::Empty);

        let keep = |raw: &str| parse(raw).unwrap().unwrap().keep_alive;
        assert!(keep("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(!keep(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        ));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        let head = parse(
            "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTE: trailers\r\nContent-Length: 1\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(head.expects_continue && head.accepts_trailers);
    }

    #[test]
    fn refusals() {
        for raw in [
            "NOT A REQUEST LINE\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            // Host: missing, twice, not an authority, with userinfo; absolute-form that disagrees.
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a b/c@d\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x@b.example\r\n\r\n",
            "GET http://x@b.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
            "GET http://x@b.example/ HTTP/1.1\r\nHost: x@b.example\r\n\r\n",
            "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
        ] {
            assert_eq!(parse(raw).err(), Some(RequestError::Malformed), "{raw:?}");
        }
        assert_eq!(
            parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").err(),
            Some(RequestError::UnsupportedCoding)
        );
        let many: String = (0..=MAX_REQUEST_HEADERS)
            .map(|i| format!("x-{i}: v\r\n"))
            .collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(),
            Some(RequestError::TooManyHeaders)
        );
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
    }

    #[test]
    fn host_rules_that_pass() {
        for raw in [
            "GET / HTTP/1.0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
            "GET http://A.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
        ] {
            assert!(parse(raw).unwrap().is_some(), "{raw:?}");
        }
    }

    #[test]
    fn head_completion_is_found_across_reads() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for at in 1..head.len() {
            let mut scanned = 0;
            assert_eq!(head_complete(&head[..at], &mut scanned), None);
            assert_eq!(
                head_complete(head, &mut scanned),
                Some(head.len()),
                "split at {at}"
            );
        }
        let mut scanned = 0;
        assert_eq!(
            head_complete(b"GET / HTTP/1.1\nHost: a\n\nbody", &mut scanned),
            Some(24)
        );
        let mut scanned = 0;
        assert_eq!(
            head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n", &mut scanned),
            None
        );
    }
}
