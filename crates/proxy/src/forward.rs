//! Forwarding a request to an upstream target and shaping the response on its way back.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use floodgate_http1::{encode_request, ResponseError};
use floodgate_plugins::{RequestCtx, UpstreamRequest};
use floodgate_upstream::{InFlightGuard, PickContext};
use http::uri::{PathAndQuery, Scheme};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body as _;

use crate::client_conn::ConnInfo;
use crate::error::ProxyError;
use crate::headers::{
    clean_request_fields, client_host, is_upgrade, remove_hop_by_hop, scan, Forwarded,
};
use crate::request_body::{ClientBody, RequestBody, RequestBodyError};
use crate::response_body::ResponseBody;
use crate::rewind::Rewind;
use crate::snapshot::{RouteRuntime, Target, UpstreamRuntime};
use crate::upstream::http1::{self, Http1Conn, UpstreamBody};
use crate::upstream::io::UpstreamTunnel;
use crate::upstream::{connect, Checkin, Conn};
use crate::worker_ctx::WorkerCtx;

/// Picks a target, sends the request (on a pooled connection when one is ready), and returns the upstream's
/// response with its body streaming through. The route's timeout runs from `started`, when the request
/// arrived, until the response head.
///
/// Not an `async fn`, which would hold `req` twice in its future (see `handle`).
#[allow(clippy::too_many_arguments)] // each is one piece of the request's context, borrowed
#[allow(clippy::manual_async_fn)]
// an `async fn` would hold its arguments twice (see `handle`)
// Inlined into the handler so its future is built in place in the handler's: called, it returns that
// future by value, and moving it costs a copy of a few kilobytes per request (measured: about 300
// instructions per request with callgrind).
#[inline(always)]
pub fn forward<'a>(
    ctx: &'a Rc<WorkerCtx>,
    conn: &'a ConnInfo,
    route: &'a RouteRuntime,
    upstream: &'a Arc<UpstreamRuntime>,
    req: Request<ClientBody>,
    request_id: &'a HeaderValue,
    started: Instant,
    plugins: Option<&RequestCtx>,
    target_used: &'a mut Option<Arc<str>>,
) -> impl Future<Output = Result<Outcome, ProxyError>> + use<'a> {
    // Everything before sending is synchronous and done here, before the future exists: the future then
    // holds the request only in its outgoing form (it is built, moved and boxed once per request).
    let prepared = prepare(
        ctx,
        conn,
        route,
        upstream,
        req,
        request_id,
        plugins,
        target_used,
    );
    async move {
        let (target, in_flight, outgoing) = prepared?;
        let mut timer = conn.request_timer(started + route.timeout);
        let answer = {
            let mut exchange = pin!(exchange(ctx, upstream, target, outgoing, started));
            poll_fn(|cx| match exchange.as_mut().poll(cx) {
                Poll::Ready(result) => Poll::Ready(Some(result)),
                Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
            })
            .await
        };
        conn.keep_timer(timer);
        let answer = match answer {
            Some(result) => result?,
            None => {
                upstream.metrics.timeout(ctx.index);
                return Err(ProxyError::UpstreamTimeout);
            }
        };
        let response = match answer {
            Answer::Response(response) => response,
            Answer::Upgraded(upgraded) => {
                let (mut parts, upstream_io) = *upgraded;
                // The HTTP/1.1 connection joins its side to this one once it has written the 101.
                *conn.pending_upgrade.borrow_mut() = Some(upstream_io);
                remove_hop_by_hop(&mut parts.headers, true);
                return Ok(Outcome {
                    response: Response::from_parts(parts, ResponseBody::full(Bytes::new())),
                    in_flight: Some(in_flight),
                });
            }
        };
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers, false);
        // The client's connection has its own version; an HTTP/1.0 upstream must not turn it into HTTP/1.0.
        parts.version = http::Version::HTTP_11;
        Ok(Outcome {
            response: Response::from_parts(parts, body),
            in_flight: Some(in_flight),
        })
    }
}

/// A forwarded or directly answered response with what the completion needs to know.
pub struct Outcome {
    /// The response to send.
    pub response: Response<ResponseBody>,
    /// Kept until the response ends so `least_request` sees the request as in flight.
    pub in_flight: Option<floodgate_upstream::InFlightGuard>,
}

/// Picks the target and shapes the request for it: hop-by-hop headers out, the gateway's forwarding
/// headers beside the map, `Host`, the body wrapped in its size limit. Inlined, so what it returns is
/// built where `forward` keeps it rather than copied there.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // each is one piece of the request's context, borrowed
fn prepare<'a>(
    ctx: &Rc<WorkerCtx>,
    conn: &'a ConnInfo,
    route: &RouteRuntime,
    upstream: &'a UpstreamRuntime,
    req: Request<ClientBody>,
    request_id: &'a HeaderValue,
    plugins: Option<&RequestCtx>,
    target_used: &mut Option<Arc<str>>,
) -> Result<(&'a Target, InFlightGuard, Outgoing<'a>), ProxyError> {
    let pools = &ctx.pools;
    let pick = PickContext {
        worker: ctx.index,
        headers: req.headers(),
        path: req.uri().path(),
        client_ip: Some(conn.client.ip()),
    };
    let index = upstream
        .balancer
        .pick(&pick, |i| {
            upstream.targets.get(i).is_some_and(|t| {
                pools.has_capacity(&t.pool_key, upstream.max_connections_per_target)
            })
        })
        .ok_or(ProxyError::NoTarget)?;
    let target = upstream.targets.get(index).ok_or(ProxyError::NoTarget)?;
    *target_used = Some(target.address.clone());
    let in_flight = upstream.balancer.start(index);

    // An upgrade is tunnelled only for a protocol the route allows, and only when the request has no
    // body: the upgraded connection carries the new protocol straight after the head, so a body would
    // be neither forwarded nor skippable. Any other upgrade request is forwarded as a plain one, its
    // `Upgrade` and body going on as read (RFC 9110 §7.8 lets a server ignore `Upgrade`).
    let names = scan(req.headers());
    let upgrade = names.upgrade()
        && is_upgrade(&req)
        && req.body().is_end_stream()
        && upgrade_allowed(req.headers(), &route.upgrades);
    let host_in = client_host(&req);
    let (mut parts, body) = req.into_parts();
    let (prior_forwarded_for, expect) = (names.forwarded_for, names.expect);
    clean_request_fields(&mut parts.headers, names, upgrade);
    // The server answers `Expect: 100-continue` when the body is first read; the upstream gets the body
    // straight away and must not wait for a 100 of its own.
    if expect {
        parts.headers.remove(header::EXPECT);
    }
    let forwarded = Forwarded {
        client: &conn.client_ip_value,
        // Scanned after the plugins' `request` phase; the `upstream_request` phase cannot set one (the
        // `headers` plugin refuses the fields the gateway writes).
        prior: prior_forwarded_for,
        tls: conn.tls,
        host: host_in.clone(),
        request_id,
    };
    let mut host = match (route.preserve_host, host_in) {
        (true, Some(host)) => host,
        _ => target.authority.clone(),
    };
    let body = if upgrade {
        RequestBody::empty()
    } else {
        RequestBody::new(body, route.max_body_bytes)
    };
    let mut path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if let (Some(chain), Some(plugins)) = (&route.plugins, plugins) {
        chain.upstream_request(
            &mut UpstreamRequest {
                method: &parts.method,
                headers: &mut parts.headers,
                path: &mut path,
                host: &mut host,
            },
            plugins,
        );
    }
    let outgoing = Outgoing {
        parts,
        body,
        upgrade,
        host,
        path,
        forwarded: Some(forwarded),
    };
    Ok((target, in_flight, outgoing))
}

/// A request on its way to the upstream, the same whichever connection carries it.
struct Outgoing<'a> {
    parts: http::request::Parts,
    body: RequestBody,
    upgrade: bool,
    /// `Host` (HTTP/1.1) or `:authority` (HTTP/2) for the upstream.
    host: HeaderValue,
    path: PathAndQuery,
    /// The gateway's forwarding headers, until they are written into the head or put in the map.
    forwarded: Option<Forwarded<'a>>,
}

/// The upstream's answer.
enum Answer {
    /// A response, its body streaming from the upstream.
    Response(Response<ResponseBody>),
    /// `101 Switching Protocols`: the head, and the upstream's side of the tunnel. Boxed: the rare
    /// answer, which would otherwise make every request's answer as large as a tunnel.
    Upgraded(Box<(http::response::Parts, UpstreamTunnel)>),
}

/// Sends on a pooled connection, or on a new one when none is ready or the pooled one turned out to be
/// closed before it could carry the request (see [`http1::SendError`] for when that is safe to tell).
#[allow(clippy::manual_async_fn)] // an `async fn` would hold its arguments twice (see `handle`)
fn exchange<'a>(
    ctx: &'a Rc<WorkerCtx>,
    upstream: &'a UpstreamRuntime,
    target: &'a Target,
    mut outgoing: Outgoing<'a>,
    now: Instant,
) -> impl Future<Output = Result<Answer, ProxyError>> + use<'a> {
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
                    match send_h1(ctx, upstream, target, conn, &mut outgoing, &mut encoded).await {
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
                    match Box::pin(send_h2(sender, outgoing, upstream.tls.is_some())).await {
                        Ok(answer) => return Ok(answer),
                        Err((error, Some(returned))) => {
                            tracing::debug!(target = %target.address, %error, "pooled connection was closed, retrying");
                            outgoing = returned;
                        }
                        Err((error, None)) => return Err(h2_error(upstream, &error)),
                    }
                }
                None => {}
            }
        }
        // Boxed: connecting (TCP, TLS, handshakes) is the rare path, and inline it would make every request's
        // future, and so every connection's memory, several kilobytes larger.
        match Box::pin(connect(upstream, target, &ctx.pools, ctx.index)).await? {
            Conn::H1(conn) => send_h1(ctx, upstream, target, conn, &mut outgoing, &mut encoded)
                .await
                .map_err(|e| h1_error(upstream, e)),
            Conn::H2(sender) => {
                if outgoing.upgrade {
                    // WebSocket over HTTP/2 (RFC 8441) is not spoken upstream: send such a request as a plain one.
                    remove_hop_by_hop(&mut outgoing.parts.headers, false);
                }
                Box::pin(send_h2(sender, outgoing, upstream.tls.is_some()))
                    .await
                    .map_err(|(error, _)| h2_error(upstream, &error))
            }
        }
    }
}

/// One request on an HTTP/1.1 connection with floodgate's own client (see `upstream/http1`).
async fn send_h1(
    ctx: &Rc<WorkerCtx>,
    upstream: &UpstreamRuntime,
    target: &Target,
    mut conn: Http1Conn,
    outgoing: &mut Outgoing<'_>,
    encoded: &mut Option<(Vec<u8>, bool)>,
) -> Result<Answer, http1::SendError> {
    let (head, chunked) = encoded.get_or_insert_with(|| encode_h1(outgoing));
    let method = &outgoing.parts.method;
    let head = http1::send(&mut conn, head, &mut outgoing.body, *chunked, method).await?;
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
    let checkin = Checkin::new(
        ctx.pools.clone(),
        target.pool_key.clone(),
        upstream.keepalive.max_idle_per_target,
    );
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
    encode_request(
        &mut head,
        method,
        outgoing.path.as_str(),
        outgoing.host.as_bytes(),
        headers,
        |name| forwarded.is_some() && Forwarded::replaces(name),
        |out| {
            if let Some(forwarded) = forwarded {
                forwarded.encode(out, headers);
            }
        },
        framing,
    );
    (head, chunked)
}

/// Whether every protocol an `Upgrade` header asks for (`websocket`, `foo/2`) is one of `allowed`.
fn upgrade_allowed(headers: &http::HeaderMap, allowed: &[Box<[u8]>]) -> bool {
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

type H2Failure<'a> = (hyper::Error, Option<Outgoing<'a>>);

/// One request on a shared HTTP/2 connection (hyper's client). Callers box it, to keep its state (about
/// 1 KiB) out of the futures of HTTP/1.1 requests.
async fn send_h2(
    mut sender: hyper::client::conn::http2::SendRequest<RequestBody>,
    outgoing: Outgoing<'_>,
    tls: bool,
) -> Result<Answer, H2Failure<'_>> {
    let Outgoing {
        mut parts,
        body,
        upgrade,
        host,
        path,
        forwarded,
    } = outgoing;
    // Into the map once: a request handed back for a retry already has them.
    if let Some(forwarded) = forwarded {
        forwarded.apply(&mut parts.headers);
    }
    let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
    // HTTP/2 carries the host as :authority, built from the absolute URI.
    let uri = Uri::builder()
        .scheme(scheme)
        .authority(host.as_bytes())
        .path_and_query(path.clone())
        .build();
    parts.uri = uri.unwrap_or_else(|_| Uri::from(path.clone()));
    parts.version = http::Version::HTTP_2;
    parts.headers.remove(header::HOST);
    // hyper's client writes the body's own length when it knows it; the client's value (`5, 5`, or one
    // for a body that was cut) never goes on.
    parts.headers.remove(header::CONTENT_LENGTH);
    match sender
        .try_send_request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => Ok(Answer::Response(response.map(ResponseBody::h2))),
        Err(mut e) => {
            let returned = e.take_message().map(|request| {
                let (parts, body) = request.into_parts();
                Outgoing {
                    parts,
                    body,
                    upgrade,
                    host,
                    path,
                    forwarded: None,
                }
            });
            Err((e.into_error(), returned))
        }
    }
}

/// The gateway's answer to a failed HTTP/1.1 exchange: the client's fault (body too large, client
/// gone) or the upstream's.
fn h1_error(upstream: &UpstreamRuntime, error: http1::SendError) -> ProxyError {
    match error {
        http1::SendError::Body(e) => body_error(&e),
        e => {
            tracing::debug!(upstream = %upstream.id, error = %e, "upstream request failed");
            ProxyError::UpstreamConnect
        }
    }
}

/// Tells a client-side failure (body too large, client gone) from an upstream one.
fn h2_error(upstream: &UpstreamRuntime, error: &hyper::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(body) = e.downcast_ref::<RequestBodyError>() {
            return body_error(body);
        }
        source = e.source();
    }
    tracing::debug!(upstream = %upstream.id, %error, "upstream request failed");
    ProxyError::UpstreamConnect
}

fn body_error(error: &RequestBodyError) -> ProxyError {
    match error {
        RequestBodyError::TooLarge(_) => ProxyError::BodyTooLarge,
        RequestBodyError::Client(e) if crate::deadline::is_timeout(&**e) => {
            ProxyError::RequestTimeout
        }
        RequestBodyError::Client(_) => ProxyError::ClientBody,
    }
}
