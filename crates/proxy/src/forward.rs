//! Forwarding a request to an upstream target and shaping the response on its way back.

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use floodgate_upstream::PickContext;
use http::uri::{PathAndQuery, Scheme};
use http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use crate::body::{RequestBody, RequestBodyError, ResponseBody};
use crate::error::ProxyError;
use crate::headers::{add_forwarded, remove_hop_by_hop};
use crate::request_id::X_REQUEST_ID;
use crate::server::handle::{client_host, is_upgrade, ConnInfo, Outcome};
use crate::server::tunnel::tunnel;
use crate::snapshot::{RouteRuntime, Target, UpstreamRuntime};
use crate::upstream::{connect, Conn, Release};
use crate::worker::WorkerCtx;

/// Picks a target, sends the request (on a pooled connection when one is ready), and returns the upstream's
/// response with its body streaming through.
pub async fn forward(
    ctx: &Rc<WorkerCtx>,
    conn: &ConnInfo,
    route: &RouteRuntime,
    upstream: &Arc<UpstreamRuntime>,
    mut req: Request<Incoming>,
    request_id: &HeaderValue,
    target_used: &mut Option<Arc<str>>,
) -> Result<Outcome, ProxyError> {
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

    let upgrade = is_upgrade(&req);
    let client_upgrade = (upgrade && !conn.manual_upgrades).then(|| hyper::upgrade::on(&mut req));
    let host_in = client_host(&req);
    let (mut parts, body) = req.into_parts();
    remove_hop_by_hop(&mut parts.headers, upgrade);
    // hyper already answered `Expect: 100-continue` when the body was first read; the upstream gets the body
    // straight away and must not wait for a 100 of its own.
    parts.headers.remove(header::EXPECT);
    add_forwarded(
        &mut parts.headers,
        &conn.client_ip_value,
        conn.tls,
        host_in.as_ref(),
    );
    parts.headers.insert(&X_REQUEST_ID, request_id.clone());
    let host = match (route.preserve_host, host_in) {
        (true, Some(host)) => host,
        _ => target.authority.clone(),
    };
    let body = if upgrade {
        RequestBody::empty()
    } else {
        RequestBody::new(body, route.max_body_bytes)
    };
    let scheme = if upstream.tls.is_some() {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let request = Request::from_parts(parts, body);
    let exchange = exchange(
        ctx, upstream, target, request, upgrade, &host, &scheme, &path,
    );
    let (mut response, sender) = match tokio::time::timeout(route.timeout, exchange).await {
        Ok(result) => result?,
        Err(_) => {
            upstream.metrics.timeout(ctx.index);
            return Err(ProxyError::UpstreamTimeout);
        }
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS && upgrade {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        match client_upgrade {
            Some(client_upgrade) => {
                tokio::task::spawn_local(tunnel(ctx.clone(), client_upgrade, upstream_upgrade));
            }
            // The connection task takes the client's side once hyper has written the 101.
            None => *conn.pending_upgrade.borrow_mut() = Some(upstream_upgrade),
        }
        let (mut parts, _) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers, true);
        return Ok(Outcome {
            response: Response::from_parts(parts, ResponseBody::full(Bytes::new())),
            in_flight: Some(in_flight),
        });
    }
    let release = sender.map(|s| {
        Release::new(
            pools.clone(),
            target.pool_key.clone(),
            s,
            upstream.keepalive.max_idle_per_target,
        )
    });
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers, false);
    // The client's connection has its own version; an HTTP/1.0 upstream must not turn it into HTTP/1.0.
    parts.version = http::Version::HTTP_11;
    Ok(Outcome {
        response: Response::from_parts(parts, ResponseBody::upstream(body, release)),
        in_flight: Some(in_flight),
    })
}

type Exchanged = (
    Response<Incoming>,
    Option<hyper::client::conn::http1::SendRequest<RequestBody>>,
);

/// Sends on a pooled connection, or on a new one when none is ready or the pooled one turned out to be
/// closed before the request left (hyper hands such a request back untouched, so retrying is safe).
#[allow(clippy::too_many_arguments)]
async fn exchange(
    ctx: &Rc<WorkerCtx>,
    upstream: &UpstreamRuntime,
    target: &Target,
    mut request: Request<RequestBody>,
    upgrade: bool,
    host: &HeaderValue,
    scheme: &Scheme,
    path: &PathAndQuery,
) -> Result<Exchanged, ProxyError> {
    // An upgraded connection becomes the tunnel, so it must be a fresh one that no pool knows.
    if !upgrade {
        if let Some(conn) = ctx
            .pools
            .checkout(&target.pool_key, upstream.keepalive.idle_timeout.get())
        {
            match send(conn, request, host, scheme, path).await {
                Ok(done) => return Ok(done),
                Err((error, Some(returned))) => {
                    tracing::debug!(target = %target.address, %error, "pooled connection was closed, retrying");
                    request = returned;
                }
                Err((error, None)) => return Err(map_send_error(upstream, ctx.index, &error)),
            }
        }
    }
    // Boxed: connecting (TCP, TLS, handshakes) is the rare path, and inline it would make every request's
    // future, and so every connection's memory, several kilobytes larger.
    let conn = Box::pin(connect(upstream, target, &ctx.pools, ctx.index)).await?;
    let conn = match (upgrade, conn) {
        // WebSocket over HTTP/2 (RFC 8441) is not spoken upstream: send such a request as a plain one.
        (true, Conn::H2(h2)) => {
            remove_hop_by_hop(request.headers_mut(), false);
            Conn::H2(h2)
        }
        (_, conn) => conn,
    };
    send(conn, request, host, scheme, path)
        .await
        .map_err(|(error, _)| map_send_error(upstream, ctx.index, &error))
}

type SendFailure = (hyper::Error, Option<Request<RequestBody>>);

async fn send(
    conn: Conn,
    mut request: Request<RequestBody>,
    host: &HeaderValue,
    scheme: &Scheme,
    path: &PathAndQuery,
) -> Result<Exchanged, SendFailure> {
    match conn {
        Conn::H1(mut sender) => {
            // HTTP/1.1 takes the origin form and a Host header.
            *request.uri_mut() = Uri::from(path.clone());
            *request.version_mut() = http::Version::HTTP_11;
            request.headers_mut().insert(header::HOST, host.clone());
            match sender.try_send_request(request).await {
                Ok(response) => Ok((response, Some(sender))),
                Err(mut e) => {
                    let returned = e.take_message();
                    Err((e.into_error(), returned))
                }
            }
        }
        Conn::H2(mut sender) => {
            // HTTP/2 carries the host as :authority, built from the absolute URI.
            let uri = Uri::builder()
                .scheme(scheme.clone())
                .authority(host.as_bytes())
                .path_and_query(path.clone())
                .build();
            match uri {
                Ok(uri) => *request.uri_mut() = uri,
                Err(_) => {
                    *request.uri_mut() = Uri::from(path.clone());
                }
            }
            *request.version_mut() = http::Version::HTTP_2;
            request.headers_mut().remove(header::HOST);
            match sender.try_send_request(request).await {
                Ok(response) => Ok((response, None)),
                Err(mut e) => {
                    let returned = e.take_message();
                    Err((e.into_error(), returned))
                }
            }
        }
    }
}

/// Tells a client-side failure (body too large, client gone) from an upstream one.
fn map_send_error(upstream: &UpstreamRuntime, worker: usize, error: &hyper::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(body_error) = e.downcast_ref::<RequestBodyError>() {
            return match body_error {
                RequestBodyError::TooLarge(_) => ProxyError::BodyTooLarge,
                RequestBodyError::Client(_) => ProxyError::ClientBody,
            };
        }
        source = e.source();
    }
    tracing::debug!(upstream = %upstream.id, %error, "upstream request failed");
    let _ = worker;
    ProxyError::UpstreamConnect
}
