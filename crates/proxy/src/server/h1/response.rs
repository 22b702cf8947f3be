//! Writing a response on an HTTP/1.1 connection: the head, then the body as it streams, framed by
//! length, chunked, or (for HTTP/1.0 clients) by closing.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, Response, StatusCode, Version};
use http_body::Body;

use super::wire::Wire;
use crate::response_body::ResponseBody;
use crate::write_all::write_all_vectored;
use floodgate_http1::{
    content_length, content_length_of, encode_chunk_size, encode_field, encode_fields,
    encode_last_chunk, Framing,
};

/// How the exchange on the connection ended.
pub enum Written {
    /// The response is complete; `true` when the connection may carry another request.
    Complete(bool),
    /// The response could not be completed (the client went away, or the upstream's body broke off):
    /// close the connection.
    Broken,
}

/// Writes `response`. `head_request`: the request was `HEAD` (no body is sent). `client`: the
/// request's version. `keep_alive`: whether the client and the gateway want the connection kept.
/// `trailers`: the client said it accepts trailers (`TE: trailers`); without that, trailers are dropped
/// (RFC 9110 §6.5.1), since a client that did not ask may not read them as trailers.
///
/// The head is encoded before the returned future exists, so the future holds only the body and the
/// encoded bytes, not the response's header map: it is built once per request, and its size is copied.
pub fn write_response<'a>(
    wire: &'a Rc<RefCell<Wire>>,
    response: Response<ResponseBody>,
    head_request: bool,
    client: Version,
    keep_alive: bool,
    trailers: bool,
) -> impl Future<Output = Written> + use<'a> {
    let (parts, body) = response.into_parts();
    let bodiless = head_request
        || parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let (head, framing, keep) = encode_head(&parts, &body, bodiless, client, keep_alive);
    drop(parts);
    write_body(wire, head, body, bodiless, framing, keep, trailers)
}

/// The response head as bytes, how its body is framed, and whether the connection is kept after it.
fn encode_head(
    parts: &http::response::Parts,
    body: &ResponseBody,
    bodiless: bool,
    client: Version,
    keep_alive: bool,
) -> (Vec<u8>, Framing, bool) {
    let status = parts.status;
    let headers = &parts.headers;
    // The fields kept beside the map (the upstream's, the request id), unless the map has the name.
    let fields = body.fields();
    let [upstream_length, upstream_date] =
        fields.upstream_has([&header::CONTENT_LENGTH, &header::DATE], headers);
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    let mut keep = keep_alive;
    let mut extra: Vec<u8> = Vec::new();
    let declared = match content_length(headers) {
        Ok(None) if upstream_length => content_length_of(fields.upstream.values("content-length")),
        declared => declared,
    };
    let framing = if bodiless {
        Framing::Empty
    } else if let Ok(Some(n)) = declared {
        Framing::Length(n)
    } else if let Some(n) = body.size_hint().exact() {
        encode_field(&mut extra, b"content-length", n.to_string().as_bytes());
        Framing::Length(n)
    } else if client == Version::HTTP_11 {
        extra.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    } else {
        keep = false;
        Framing::UntilClose
    };

    // Sized once: growing it would copy the head and cost an allocation more per response.
    let mut head = Vec::with_capacity(128 + headers.len() * 48 + fields.encoded_len_hint());
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    encode_fields(&mut head, headers);
    fields.encode(&mut head, headers);
    head.extend_from_slice(&extra);
    if !headers.contains_key(header::DATE) && !upstream_date {
        with_date(|date| encode_field(&mut head, b"date", date));
    }
    if !upgrade {
        if !keep {
            head.extend_from_slice(b"connection: close\r\n");
        } else if client == Version::HTTP_10 {
            head.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    head.extend_from_slice(b"\r\n");
    (head, framing, keep)
}

/// Writes `head`, then `body` as it streams (framed by `framing`), sending the head with the first
/// body bytes. Never more than a declared length: a body that runs past it is cut there and the
/// connection closed, as hyper's encoder does, so extra bytes cannot become a next response. Not an
/// `async fn`, which would hold the body twice.
#[allow(clippy::manual_async_fn)]
fn write_body(
    wire: &Rc<RefCell<Wire>>,
    head: Vec<u8>,
    mut body: ResponseBody,
    bodiless: bool,
    framing: Framing,
    keep: bool,
    send_trailers: bool,
) -> impl Future<Output = Written> + use<'_> {
    async move {
        if bodiless {
            drop(body);
            return match write_all(wire, &mut [IoSlice::new(&head)]).await {
                Ok(()) => Written::Complete(keep),
                Err(_) => Written::Broken,
            };
        }

        let chunked = framing == Framing::Chunked;
        let mut pending_head = Some(head);
        let mut sent: u64 = 0;
        let mut ended_chunks = false;
        while !body.is_end_stream() {
            let frame = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
            let frame = match frame {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "response body broke off; closing the connection");
                    return Written::Broken;
                }
            };
            let head = pending_head.take().unwrap_or_default();
            let result = match frame.into_data() {
                Ok(data) if data.is_empty() => {
                    pending_head = Some(head);
                    continue;
                }
                Ok(mut data) => {
                    let overrun = match framing {
                        Framing::Length(n) if sent + data.len() as u64 > n => {
                            data.truncate(usize::try_from(n - sent).unwrap_or(0));
                            true
                        }
                        _ => false,
                    };
                    sent += data.len() as u64;
                    if overrun {
                        tracing::debug!(
                            "response body longer than its length; closing the connection"
                        );
                        let _ =
                            write_all(wire, &mut [IoSlice::new(&head), IoSlice::new(&data)]).await;
                        return Written::Broken;
                    }
                    if chunked {
                        let size = encode_chunk_size(data.len());
                        let mut parts = [
                            IoSlice::new(&head),
                            IoSlice::new(size.as_bytes()),
                            IoSlice::new(&data),
                            IoSlice::new(b"\r\n"),
                        ];
                        write_all(wire, &mut parts).await
                    } else {
                        write_all(wire, &mut [IoSlice::new(&head), IoSlice::new(&data)]).await
                    }
                }
                Err(frame) => {
                    // Trailers end a chunked body; other framings cannot carry them.
                    let Ok(trailers) = frame.into_trailers() else {
                        pending_head = Some(head);
                        continue;
                    };
                    if chunked {
                        let mut last = Vec::with_capacity(64);
                        encode_last_chunk(&mut last, send_trailers.then_some(&trailers));
                        ended_chunks = true;
                        let result =
                            write_all(wire, &mut [IoSlice::new(&head), IoSlice::new(&last)]).await;
                        if result.is_err() {
                            return Written::Broken;
                        }
                        break;
                    }
                    pending_head = Some(head);
                    continue;
                }
            };
            if result.is_err() {
                return Written::Broken;
            }
        }
        let head = pending_head.unwrap_or_default();
        let tail: &[u8] = if chunked && !ended_chunks {
            b"0\r\n\r\n"
        } else {
            b""
        };
        if write_all(wire, &mut [IoSlice::new(&head), IoSlice::new(tail)])
            .await
            .is_err()
        {
            return Written::Broken;
        }
        drop(body);
        match framing {
            // A body shorter than its declared length leaves the client waiting for the rest: close.
            Framing::Length(n) if n != sent => Written::Broken,
            _ => Written::Complete(keep),
        }
    }
}

/// Writes all of `parts` and flushes.
pub async fn write_all(wire: &Rc<RefCell<Wire>>, parts: &mut [IoSlice<'_>]) -> io::Result<()> {
    write_all_vectored(
        |cx, bufs| wire.borrow_mut().poll_write_vectored(cx, bufs),
        parts,
    )
    .await?;
    poll_fn(|cx| wire.borrow_mut().poll_flush(cx)).await
}

thread_local! {
    /// The `Date` value of the current second: formatted once a second per worker, not per response.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Calls `f` with the current `Date` header value (IMF-fixdate).
fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        f(cached.1.as_bytes());
    });
}
