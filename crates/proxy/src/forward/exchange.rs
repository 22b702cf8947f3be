//! One attempt at one target: send the request (on a pooled connection when one is ready) and read
//! the response head, with a typed outcome.

use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use floodgate_http1::{encode_request, ResponseError};
use floodgate_upstream::breaker::BreakerReason;
use http::uri::Scheme;
use http::{header, Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;

use super::Outgoing;
use crate::error::ProxyError;
use crate::headers::{remove_hop_by_hop, Forwarded};
use crate::request_body::{RequestBody, RequestBodyError};
use crate::response_body::ResponseBody;
use crate::rewind::Rewind;
use crate::snapshot::{Target, UpstreamRuntime};
use crate::upstream::failure::{AttemptFailure, FailureClass};
use crate::upstream::http1::{self, Http1Conn, UpstreamBody};
use crate::upstream::io::UpstreamTunnel;
use crate::upstream::{connect, Checkin, Conn};
use crate::worker_ctx::WorkerCtx;
use floodgate_observe::UpstreamTiming;

/// The upstream's answer.
pub(super) enum Answer {
    /// A response, its body streaming from the upstream.
    Response(Response<ResponseBody>),
    /// `101 Switching Protocols`: the head, and the upstream's side of the tunnel. Boxed: the rare
    /// answer, which would otherwise make every request's answer as large as a tunnel.
    Upgraded(Box<(http::response::Parts, UpstreamTunnel)>),
}

impl Answer {
    /// The answer's status.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Answer::Response(response) => response.status(),
            Answer::Upgraded(upgraded) => upgraded.0.status,
        }
    }
}

/// Why an attempt got no answer: the gateway's side (the client's body, a circuit breaker limit), or
/// the upstream's.
pub(super) enum ExchangeError {
    /// The client's body failed or was too large, or the circuit breaker had no room for a new
    /// connection: the answer is the gateway's own, and the target is not to blame.
    Local(ProxyError),
    /// The target failed.
    Upstream(AttemptFailure),
}

/// Sends on a pooled connection, or on a new one when none is ready or the pooled one turned out to be
/// closed before it could carry the request (see [`http1::SendError`] for when that is safe to tell).
/// When an HTTP/2 connection does not hand the request back, `outgoing` is left spent.
#[allow(clippy::manual_async_fn)] // an `async fn` would hold its arguments twice (see `handle`)
pub(super) fn exchange<'a, 'o>(
    ctx: &'a Rc<WorkerCtx>,
    upstream: &'a UpstreamRuntime,
    target: &'a Target,
    outgoing: &'a mut Outgoing<'o>,
    now: Instant,
) -> impl Future<Output = Result<Answer, ExchangeError>> + use<'a, 'o> {
    async move {
        // Encoded once, for the pooled connection and, if that fails, the fresh one.
        let mut encoded = None;
        // An upgraded connection becomes the tunnel, so it must be a fresh one that no pool knows.
        if !outgoing.upgrade {
            match ctx
                .pools
                .checkout(&target.pool_key, upstream.keepalive.idle_timeout.get(), now)
            {
                Some(Conn::H1(conn)) => {
                    match send_h1(ctx, upstream, conn, outgoing, (&mut encoded, now)).await {
                        Ok(answer) => return Ok(answer),
                        Err(http1::SendError::Upstream {
                            error,
                            retryable: true,
                        }) => {
                            tracing::debug!(target = %target.address, %error, "pooled connection was closed, retrying");
                        }
                        Err(e) => return Err(h1_error(upstream, e)),
                    }
                }
                Some(Conn::H2(sender)) => {
                    let timing = FirstByte::new(ctx, upstream, now);
                    match Box::pin(send_h2(sender, outgoing, upstream.tls.is_some(), timing)).await
                    {
                        Ok(answer) => return Ok(answer),
                        Err((error, true)) => {
                            tracing::debug!(target = %target.address, %error, "pooled connection was closed, retrying");
                        }
                        Err((error, false)) => return Err(h2_error(upstream, error)),
                    }
                }
                None => {}
            }
        }
        // Boxed: connecting (TCP, TLS, handshakes) is the rare path, and inline it would make every request's
        // future, and so every connection's memory, several kilobytes larger.
        // A new connection takes a place among the breaker's pending requests while it is made, and
        // one among its connections for as long as it lives.
        let (pending, permit) = match &upstream.breaker {
            None => (None, None),
            Some(breaker) => {
                let pending = breaker.pending(ctx.index).ok_or(ExchangeError::Local(
                    ProxyError::CircuitOpen(BreakerReason::MaxPendingRequests),
                ))?;
                let permit = breaker.connection(ctx.index).ok_or(ExchangeError::Local(
                    ProxyError::CircuitOpen(BreakerReason::MaxConnections),
                ))?;
                (Some(pending), Some(permit))
            }
        };
        let conn = Box::pin(connect(upstream, target, &ctx.pools, ctx.index, permit))
            .await
            .map_err(ExchangeError::Upstream)?;
        drop(pending);
        let sent = Instant::now();
        match conn {
            Conn::H1(conn) => send_h1(ctx, upstream, conn, outgoing, (&mut encoded, sent))
                .await
                .map_err(|e| h1_error(upstream, e)),
            Conn::H2(sender) => {
                if outgoing.upgrade {
                    // WebSocket over HTTP/2 (RFC 8441) is not spoken upstream: send such a request as a plain one.
                    remove_hop_by_hop(&mut outgoing.parts.headers, false);
                }
                let timing = FirstByte::new(ctx, upstream, sent);
                Box::pin(send_h2(sender, outgoing, upstream.tls.is_some(), timing))
                    .await
                    .map_err(|(error, _)| h2_error(upstream, error))
            }
        }
    }
}

/// Where and from when an attempt's time to first byte is measured: from `sent`, when the request
/// started out on its connection, to the arrival of its response head.
struct FirstByte<'a> {
    timing: &'a UpstreamTiming,
    worker: usize,
    sent: Instant,
}

impl<'a> FirstByte<'a> {
    fn new(ctx: &WorkerCtx, upstream: &'a UpstreamRuntime, sent: Instant) -> Self {
        Self {
            timing: &upstream.metrics.timing,
            worker: ctx.index,
            sent,
        }
    }

    /// The response head is in, with `status`.
    fn arrived(&self, status: StatusCode) {
        self.timing
            .answered(self.worker, self.sent.elapsed(), status);
    }
}

/// One request on an HTTP/1.1 connection with floodgate's own client (see `upstream/http1`).
async fn send_h1(
    ctx: &Rc<WorkerCtx>,
    upstream: &UpstreamRuntime,
    mut conn: Http1Conn,
    outgoing: &mut Outgoing<'_>,
    (encoded, sent): (&mut Option<(Vec<u8>, bool)>, Instant),
) -> Result<Answer, http1::SendError> {
    let (head, chunked) = encoded.get_or_insert_with(|| encode_h1(outgoing));
    let method = &outgoing.parts.method;
    let head = http1::send(&mut conn, head, &mut outgoing.body, *chunked, method).await?;
    FirstByte::new(ctx, upstream, sent).arrived(head.status);
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        if !outgoing.upgrade {
            return Err(http1::SendError::BadResponse(ResponseError::UnaskedUpgrade));
        }
        let (mut parts, ()) = Response::new(()).into_parts();
        parts.status = head.status;
        head.fields.append_to(&mut parts.headers);
        let (io, rest) = conn.into_parts();
        return Ok(Answer::Upgraded(Box::new((
            parts,
            Rewind::new(io, rest.freeze()),
        ))));
    }
    let checkin = Checkin::new(ctx.pools.clone(), upstream.keepalive.max_idle_per_target);
    let body = UpstreamBody::new(conn, head.framing, head.keep_alive, checkin);
    // The upstream's fields travel with the body as bytes; the map holds what the gateway adds.
    let mut response = Response::new(ResponseBody::h1(body, head.fields));
    *response.status_mut() = head.status;
    Ok(Answer::Response(response))
}

/// The request head for an HTTP/1.1 upstream, and whether the body goes chunked.
///
/// The framing line comes from the body as the gateway reads it, never from the client's headers: a
/// body read by `Content-Length` goes on with that one length, a chunked one (or an HTTP/2 stream of
/// unknown length) chunked, and a request without a body says nothing, or `Content-Length: 0` for the
/// methods whose body means something (as hyper's client does). So the upstream reads exactly the bytes
/// the gateway sends, whatever the client declared (RFC 9112 §6.3).
fn encode_h1(outgoing: &Outgoing<'_>) -> (Vec<u8>, bool) {
    let headers = &outgoing.parts.headers;
    let body = &outgoing.body;
    let method = &outgoing.parts.method;
    let mut length_line = arrayvec::ArrayString::<40>::new();
    let (framing, chunked): (Option<&[u8]>, bool) = if body.is_end_stream() {
        let payload = *method == Method::POST || *method == Method::PUT || *method == Method::PATCH;
        (payload.then_some(b"content-length: 0\r\n"), false)
    } else if let Some(n) = body.size_hint().exact() {
        // 16 + 20 digits + CRLF always fit.
        let _ = std::fmt::write(&mut length_line, format_args!("content-length: {n}\r\n"));
        (Some(length_line.as_bytes()), false)
    } else {
        (Some(b"transfer-encoding: chunked\r\n"), true)
    };
    let mut head = Vec::with_capacity(384 + headers.len() * 32);
    let forwarded = outgoing.forwarded.as_ref();
    let trace = outgoing.trace.as_ref();
    encode_request(
        &mut head,
        method,
        outgoing.path.as_str(),
        outgoing.host.as_bytes(),
        headers,
        |name| {
            (forwarded.is_some() && Forwarded::replaces(name))
                || trace.is_some_and(|t| t.replaces(name))
        },
        |out| {
            if let Some(forwarded) = forwarded {
                forwarded.encode(out, headers);
            }
            if let Some(trace) = trace {
                out.extend_from_slice(b"traceparent: ");
                out.extend_from_slice(trace.traceparent().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        },
        framing,
    );
    (head, chunked)
}

/// One request on a shared HTTP/2 connection (hyper's client). Callers box it, to keep its state (about
/// 1 KiB) out of the futures of HTTP/1.1 requests. On failure, whether the request came back unsent
/// (then `outgoing` holds it again; otherwise `outgoing` is left spent).
async fn send_h2(
    mut sender: hyper::client::conn::http2::SendRequest<RequestBody>,
    outgoing: &mut Outgoing<'_>,
    tls: bool,
    first_byte: FirstByte<'_>,
) -> Result<Answer, (hyper::Error, bool)> {
    // Into the map once: a request handed back for a retry already has them.
    if let Some(forwarded) = outgoing.forwarded.take() {
        forwarded.apply(&mut outgoing.parts.headers);
    }
    // Each attempt's own, replacing the one before.
    if let Some(trace) = &outgoing.trace {
        trace.apply(&mut outgoing.parts.headers);
    }
    // hyper keeps a request it sent, and a stream refused after that (`REFUSED_STREAM`) is one the
    // upstream did not process; an attempt abandoned at its `per_try_timeout` keeps it too. A copy of
    // the head of a request that can go again stays behind, so the route can try it elsewhere.
    let keep = outgoing.may_retry && outgoing.resendable();
    let mut parts = if keep {
        outgoing.parts.clone()
    } else {
        outgoing.take_parts()
    };
    let body = std::mem::replace(&mut outgoing.body, RequestBody::empty());
    let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
    // HTTP/2 carries the host as :authority, built from the absolute URI.
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(outgoing.host.as_bytes())
        .path_and_query(outgoing.path.clone())
        .build();
    let uri = uri.unwrap_or_else(|_| Uri::from(outgoing.path.clone()));
    let original_uri = std::mem::replace(&mut parts.uri, uri);
    let original_version = std::mem::replace(&mut parts.version, http::Version::HTTP_2);
    let host = parts.headers.remove(header::HOST);
    // hyper's client writes the body's own length when it knows it; the client's value (`5, 5`, or one
    // for a body that was cut) never goes on.
    let length = parts.headers.remove(header::CONTENT_LENGTH);
    match sender
        .try_send_request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => {
            first_byte.arrived(response.status());
            Ok(Answer::Response(response.map(ResponseBody::h2)))
        }
        Err(mut e) => {
            let returned = e.take_message().map(|request| {
                let (mut parts, body) = request.into_parts();
                parts.uri = original_uri;
                parts.version = original_version;
                if let Some(host) = host {
                    parts.headers.insert(header::HOST, host);
                }
                if let Some(length) = length {
                    parts.headers.insert(header::CONTENT_LENGTH, length);
                }
                outgoing.parts = parts;
                outgoing.body = body;
            });
            if returned.is_none() && !keep {
                outgoing.spent = true;
            }
            Err((e.into_error(), returned.is_some()))
        }
    }
}

/// The typed outcome of a failed HTTP/1.1 exchange: the client's fault (body too large, client gone)
/// or the upstream's.
fn h1_error(upstream: &UpstreamRuntime, error: http1::SendError) -> ExchangeError {
    let class = match &error {
        http1::SendError::Body(e) => return ExchangeError::Local(body_error(e)),
        http1::SendError::Upstream { error, .. }
            if error.kind() == std::io::ErrorKind::TimedOut =>
        {
            FailureClass::Timeout
        }
        http1::SendError::Upstream { .. } => FailureClass::Reset,
        http1::SendError::BadResponse(_) => FailureClass::BadResponse,
    };
    tracing::debug!(upstream = %upstream.id, %error, "upstream request failed");
    ExchangeError::Upstream(AttemptFailure::new(class, error))
}

/// The typed outcome of a failed HTTP/2 exchange: a client-side failure (body too large, client
/// gone), a refused stream, or a broken one.
fn h2_error(upstream: &UpstreamRuntime, error: hyper::Error) -> ExchangeError {
    let mut class = FailureClass::Reset;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(body) = e.downcast_ref::<RequestBodyError>() {
            return ExchangeError::Local(body_error(body));
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                class = FailureClass::RefusedStream;
            }
        }
        source = e.source();
    }
    tracing::debug!(upstream = %upstream.id, %error, "upstream request failed");
    ExchangeError::Upstream(AttemptFailure::new(class, error))
}

pub(super) fn body_error(error: &RequestBodyError) -> ProxyError {
    match error {
        RequestBodyError::TooLarge(_) => ProxyError::BodyTooLarge,
        RequestBodyError::Client(e) if crate::deadline::is_timeout(&**e) => {
            ProxyError::RequestTimeout
        }
        RequestBodyError::Client(_) => ProxyError::ClientBody,
    }
}

/// Whether every protocol an `Upgrade` header asks for (`websocket`, `foo/2`) is one of `allowed`.
pub(super) fn upgrade_allowed(headers: &http::HeaderMap, allowed: &[Box<[u8]>]) -> bool {
    let mut asked = headers
        .get_all(header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|p| {
            p.split(|b| *b == b'/')
                .next()
                .unwrap_or_default()
                .trim_ascii()
        })
        .filter(|p| !p.is_empty())
        .peekable();
    asked.peek().is_some() && asked.all(|p| allowed.iter().any(|a| a.eq_ignore_ascii_case(p)))
}
