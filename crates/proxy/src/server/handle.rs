//! One request's way through: checks, routing, then a direct answer or forwarding.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;

use crate::body::ResponseBody;
use crate::completion::{AccessDetails, Completion};
use crate::error::ProxyError;
use crate::forward::forward;
use crate::request_id::{request_id, X_REQUEST_ID};
use crate::snapshot::{RouteAction, RouteRuntime, Snapshot};
use crate::worker::WorkerCtx;

/// What is known about the client connection a request arrived on.
pub struct ConnInfo {
    /// The client's address.
    pub client: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// The hyper service function: never fails; every problem becomes a response.
pub async fn handle(
    ctx: Rc<WorkerCtx>,
    conn: Rc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let snapshot = ctx.shared.snapshot.load_full();
    let (request_id, _) = request_id(req.headers());
    let method = req.method().clone();
    let access = snapshot.access_log.as_ref().map(|log| {
        Box::new(AccessDetails {
            log: log.clone(),
            client_ip: Some(conn.client.ip()),
            host: request_host(&req).map(str::to_string),
            path: req.uri().path_and_query().map_or_else(
                || req.uri().path().to_string(),
                |pq| pq.as_str().to_string(),
            ),
            version: req.version(),
            route: None,
            upstream_addr: None,
            request_id: request_id.clone(),
        })
    });
    let mut route_used: Option<Arc<RouteRuntime>> = None;
    let mut upstream_addr = None;
    let mut in_flight = None;
    let result = serve(&ctx, &conn, &snapshot, req, &request_id, &mut route_used).await;
    let mut response = match result {
        Ok(outcome) => {
            upstream_addr = outcome.target;
            in_flight = outcome.in_flight;
            outcome.response
        }
        Err(error) => error.response(&request_id),
    };
    response.headers_mut().insert(&X_REQUEST_ID, request_id);
    let metrics = route_used
        .as_ref()
        .map_or_else(|| snapshot.unmatched.clone(), |r| r.metrics.clone());
    let access = access.map(|mut details| {
        details.route = route_used.as_ref().map(|r| r.id.clone());
        details.upstream_addr = upstream_addr;
        details
    });
    let status = response.status();
    response.body_mut().set_completion(Completion {
        worker: ctx.index,
        metrics,
        method,
        status,
        started,
        bytes_sent: None,
        access,
        in_flight,
    });
    Ok(response)
}

/// A forwarded or directly answered response with what the completion needs to know.
pub struct Outcome {
    /// The response to send.
    pub response: Response<ResponseBody>,
    /// Address of the target used.
    pub target: Option<Arc<str>>,
    /// Kept until the response ends so `least_request` sees the request as in flight.
    pub in_flight: Option<floodgate_upstream::InFlightGuard>,
}

async fn serve(
    ctx: &Rc<WorkerCtx>,
    conn: &ConnInfo,
    snapshot: &Snapshot,
    req: Request<Incoming>,
    request_id: &HeaderValue,
    route_used: &mut Option<Arc<RouteRuntime>>,
) -> Result<Outcome, ProxyError> {
    check_request(&req, snapshot.max_header_bytes)?;
    let route = snapshot
        .routes
        .lookup(
            request_host(&req),
            req.uri().path(),
            req.method(),
            req.headers(),
        )
        .ok_or(ProxyError::NoRoute)?;
    *route_used = Some(route.clone());
    match &route.action {
        RouteAction::Respond {
            status,
            content_type,
            body,
        } => {
            let body = if req.method() == Method::HEAD {
                Bytes::new()
            } else {
                body.clone()
            };
            let mut response = Response::new(ResponseBody::full(body));
            *response.status_mut() = *status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
            Ok(Outcome {
                response,
                target: None,
                in_flight: None,
            })
        }
        RouteAction::Forward(upstream) => {
            if declared_length(&req).is_some_and(|len| len > route.max_body_bytes) {
                return Err(ProxyError::BodyTooLarge);
            }
            forward(ctx, conn, route, upstream, req, request_id).await
        }
    }
}

/// The host a request is for: the URI's authority (HTTP/2, absolute-form HTTP/1.1), else `Host`.
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    req.uri().host().or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Checks hyper leaves to us: framing ambiguity, header size, and path segments that could escape a prefix
/// route once the upstream normalises them.
fn check_request(req: &Request<Incoming>, max_header_bytes: usize) -> Result<(), ProxyError> {
    let headers = req.headers();
    if req.version() <= Version::HTTP_11
        && headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        // RFC 9112 §6.3: such a message may be a smuggling attempt; a proxy must not forward it as is.
        return Err(ProxyError::AmbiguousLength);
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > max_header_bytes {
        return Err(ProxyError::HeadersTooLarge);
    }
    let path = req.uri().path();
    if !path.starts_with('/') && req.method() != Method::OPTIONS {
        return Err(ProxyError::BadRequest);
    }
    if path
        .split('/')
        .any(|segment| segment == ".." || segment == "." || segment.eq_ignore_ascii_case("%2e%2e"))
    {
        return Err(ProxyError::BadRequest);
    }
    Ok(())
}

/// Whether an HTTP/1.1 request asks to switch protocols (WebSocket and the like).
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// The `Host` value for the upstream when the route preserves it: the client's host as sent.
pub fn client_host(req: &Request<Incoming>) -> Option<HeaderValue> {
    match req.uri().authority() {
        Some(authority) => HeaderValue::from_str(authority.as_str()).ok(),
        None => req.headers().get(header::HOST).cloned(),
    }
}
