//! One request's way through: checks, routing, then a direct answer or forwarding.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{header, HeaderMap, Method, Request, Response, Uri};

use crate::client_conn::ConnInfo;
use crate::completion::{captured_headers, AccessDetails};
use crate::error::ProxyError;
use crate::forward::{forward, Outcome};
use crate::method_override;
use crate::overload::requests::RequestSlot;
use crate::path_normalize::{normalize, PathRules};
use crate::plugin_phases::{request_phase, response_phase};
use crate::request_body::ClientBody;
use crate::request_id::{generate as generate_request_id, request_id, X_REQUEST_ID};
use crate::request_state::{Client, Session, Unanswered, Used};
use crate::response_body::ResponseBody;
use crate::snapshot::{RouteAction, RouteRuntime, Snapshot};
use crate::underscore_fields;
use crate::worker_ctx::WorkerCtx;
use floodgate_config::{MethodOverride, UnderscoresInHeaders};
use floodgate_observe::Rejection;
use floodgate_trace::{RequestFacts, RequestTrace, Tracer};

/// Serves one request, whichever protocol brought it: never fails; every problem becomes a response.
///
/// Dropped before it returns (the client went away while the request waited), it records the request
/// as a 499 ([`Unanswered`]).
///
/// Written as a function returning an `async move` block rather than an `async fn`: an `async fn` moves
/// each argument into a second slot of its future, and this future is copied whole into its box on every
/// request. The functions it awaits are written the same way for the same reason.
#[allow(clippy::manual_async_fn)] // on purpose, as the doc comment says
pub fn handle(
    ctx: Rc<WorkerCtx>,
    conn: Rc<ConnInfo>,
    mut req: Request<ClientBody>,
) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> {
    async move {
        let started = Instant::now();
        let snapshot = ctx.snapshot();
        // Before anything reads a field, so no rule, route or plugin sees one the listener drops. The
        // rule is compared first: under `allow`, the default, the names are not scanned at all.
        let underscores_refused = conn.underscores != UnderscoresInHeaders::Allow
            && !underscore_fields::apply(req.headers_mut(), conn.underscores);
        let mut seen = FieldsSeen::of(req.headers(), snapshot.tracer.is_some());
        seen.underscores_refused = underscores_refused;
        let request_id = if seen.request_id {
            request_id(req.headers()).0
        } else {
            generate_request_id()
        };
        snapshot.real_ip.remove_header_twins(req.headers_mut());
        let client_ip = snapshot.real_ip.client(conn.client.ip(), req.headers());
        let method = req.method().clone();
        let grpc = seen.content_type
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"));
        let access = snapshot.access_log.as_ref().map(|log| {
            Box::new(AccessDetails {
                log: log.clone(),
                client_ip: Some(client_ip),
                host: request_host(&req).map(str::to_string),
                path: req.uri().path_and_query().map_or_else(
                    || req.uri().path().to_string(),
                    |pq| pq.as_str().to_string(),
                ),
                version: req.version(),
                route: None,
                upstream_addr: None,
                upstream_attempts: 0,
                consumer: None,
                request_id: request_id.clone(),
                captured: captured_headers(log, req.headers()),
                trace_id: None,
            })
        });
        let logged = access.is_some();
        let trace = match &snapshot.tracer {
            None => None,
            Some(tracer) => start_trace(tracer, &req, started, (client_ip, conn.tls), &seen),
        };
        let mut pending = Unanswered::new(snapshot, ctx.index, method, started, access);
        pending.used.upstream.names_target = logged;
        pending.used.upstream.trace = trace;
        let session = Session {
            worker: &ctx,
            conn: &conn,
            client: Client {
                ip: client_ip,
                request_id: &request_id,
                grpc,
            },
            started,
        };
        let result = serve(&session, &pending.snapshot, req, seen, &mut pending.used).await;
        let mut in_flight = None;
        let mut response = match result {
            Ok(outcome) => {
                in_flight = outcome.in_flight;
                outcome.response
            }
            Err(error) => error.response(&request_id, grpc),
        };
        if pending.used.plugins.is_some() {
            response_phase(&mut pending.used, &mut response);
        }
        // Beside the map, not in it: most responses' maps are empty, and would be allocated for it.
        response.body_mut().set_request_id(request_id);
        let status = response.status();
        response
            .body_mut()
            .set_completion(pending.answered(status, in_flight));
        Ok(response)
    }
}

/// Admits a request on this worker under the snapshot's in-flight limit, or refuses it with
/// [`ProxyError::Overloaded`] (a 503) and counts the refusal.
fn admit(ctx: &WorkerCtx, snapshot: &Snapshot) -> Result<RequestSlot, ProxyError> {
    RequestSlot::enter(snapshot.max_requests_in_flight_per_worker).ok_or_else(|| {
        ctx.shared
            .metrics
            .rejected(ctx.index, Rejection::MaxRequestsInFlight);
        ProxyError::Overloaded
    })
}

#[allow(clippy::manual_async_fn)] // an `async fn` would hold its arguments twice (see `handle`)
fn serve<'a>(
    session: &'a Session<'a>,
    snapshot: &'a Snapshot,
    mut req: Request<ClientBody>,
    seen: FieldsSeen,
    used: &'a mut Used,
) -> impl Future<Output = Result<Outcome, ProxyError>> + use<'a> {
    async move {
        let (ctx, conn) = (session.worker, session.conn);
        used.slot = Some(admit(ctx, snapshot)?);
        check_request(&req, conn, &seen, snapshot.max_header_bytes)?;
        let route = {
            // Scoped so the rare owned path is not kept in this future across the forwarding await.
            let routed_path = normalize_target(&mut req, conn.path_rules)?;
            let route = snapshot
                .routes
                .lookup(
                    request_host(&req),
                    routed_path.as_deref().unwrap_or_else(|| req.uri().path()),
                    req.method(),
                    req.headers(),
                )
                .ok_or(ProxyError::NoRoute)?;
            let may_override = seen.method_override
                || req
                    .uri()
                    .query()
                    .is_some_and(method_override::query_may_override);
            if may_override && route.method_override != MethodOverride::Allow {
                enforce_method_override(&mut req, route, snapshot, routed_path.as_deref())?;
            }
            route
        };
        used.route = Some(route.clone());
        if route.plugins.is_some() {
            let answered = request_phase(session, route, &mut req, &mut used.plugins);
            if let Some(delay) = used.plugins.as_ref().and_then(|p| p.delay) {
                // Boxed: the rare wait (`fault-injection`) keeps its timer out of every request's
                // future.
                Box::pin(tokio::time::sleep(delay)).await;
            }
            if let Some(response) = answered {
                return Ok(Outcome {
                    response,
                    in_flight: None,
                });
            }
        }
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
                    in_flight: None,
                })
            }
            RouteAction::Forward(upstream) => {
                if seen.content_length
                    && declared_length(&req).is_some_and(|len| len > route.max_body_bytes)
                {
                    return Err(ProxyError::BodyTooLarge);
                }
                if let Some(to) = used.plugins.as_ref().and_then(|p| p.mirror.as_ref()) {
                    crate::forward::mirror::send_copy(session, snapshot, to, &req, route.timeout);
                }
                // A plugin (`traffic-split`) may send the request to another upstream; validation
                // made sure it exists.
                let upstream = match used.plugins.as_ref().and_then(|p| p.upstream.as_deref()) {
                    Some(id) => snapshot.upstream(id).unwrap_or(upstream),
                    None => upstream,
                };
                forward(
                    session,
                    route,
                    upstream,
                    req,
                    used.plugins.as_deref(),
                    &mut used.upstream,
                )
                .await
            }
        }
    }
}

/// Applies the route's `method_override` rule (out of line: few requests carry such a field).
#[inline(never)]
fn enforce_method_override(
    req: &mut Request<ClientBody>,
    route: &Arc<RouteRuntime>,
    snapshot: &Snapshot,
    routed_path: Option<&str>,
) -> Result<(), ProxyError> {
    let host = request_host(req).map(str::to_owned);
    let path = routed_path.unwrap_or_else(|| req.uri().path()).to_owned();
    method_override::enforce(req, route, &snapshot.routes, host.as_deref(), &path)
}

/// The host a request is for: the URI's authority (HTTP/2, absolute-form HTTP/1.1), else `Host`.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    req.uri().host().or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

/// Starts the trace of `req` (tracing is on). Out of line: most gateways run without tracing, and
/// the handler's future stays as it was for them.
#[inline(never)]
fn start_trace(
    tracer: &Tracer,
    req: &Request<ClientBody>,
    started: Instant,
    (client, tls): (std::net::IpAddr, bool),
    seen: &FieldsSeen,
) -> Option<Box<RequestTrace>> {
    Some(tracer.start(
        req.headers(),
        started,
        &RequestFacts {
            has_context: seen.trace_context,
            uri: req.uri(),
            tls,
            client,
            version: req.version(),
        },
    ))
}

/// The request's declared length, read by the one `Content-Length` parser of the HTTP/1.1 codec (a
/// malformed value never gets this far on HTTP/1.1, and hyper refuses it on HTTP/2).
fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    floodgate_http1::content_length(req.headers())
        .ok()
        .flatten()
}

/// What one pass over a request's fields found: their size, and which of the fields the handler
/// looks up are there at all. Most requests carry a few fields and none of these, and a `HeaderMap`
/// lookup, which hashes the name, costs more than comparing each name once (about 120 instructions
/// a lookup against a few for each name).
struct FieldsSeen {
    /// Names and values, with 4 bytes for each line's `: ` and CRLF.
    bytes: usize,
    content_length: bool,
    content_type: bool,
    request_id: bool,
    /// A method-override field ([`method_override::is_override_name`]).
    method_override: bool,
    /// A trace context field (`traceparent`, `b3`, `x-b3-*`), looked for only when tracing is on.
    trace_context: bool,
    /// A name holds `_` and the listener refuses such requests (set by the caller, not by the scan).
    underscores_refused: bool,
}

impl FieldsSeen {
    fn of(headers: &HeaderMap, traced: bool) -> Self {
        let mut seen = Self {
            bytes: 0,
            content_length: false,
            content_type: false,
            request_id: false,
            method_override: false,
            trace_context: false,
            underscores_refused: false,
        };
        for (name, value) in headers {
            seen.bytes += name.as_str().len() + value.len() + 4;
            if name == header::CONTENT_LENGTH {
                seen.content_length = true;
            } else if name == header::CONTENT_TYPE {
                seen.content_type = true;
            } else if name == X_REQUEST_ID {
                seen.request_id = true;
            } else if method_override::is_override_name(name.as_str().as_bytes()) {
                seen.method_override = true;
            } else if traced && floodgate_trace::context::is_context_name(name) {
                seen.trace_context = true;
            }
        }
        seen
    }
}

/// Checks every protocol's requests share: framing ambiguity (reported by the HTTP/1.1 server), header
/// size, and a target that is a path. The path's spelling is judged by [`normalize`].
fn check_request(
    req: &Request<ClientBody>,
    conn: &ConnInfo,
    seen: &FieldsSeen,
    max_header_bytes: usize,
) -> Result<(), ProxyError> {
    // The connection's flag first: it is rarely set, and reading it costs no lookup.
    if conn.ambiguous_framing.get() && req.headers().contains_key(header::TRANSFER_ENCODING) {
        conn.ambiguous_framing.set(false);
        // RFC 9112 §6.3: such a message may be a smuggling attempt; the gateway refuses it outright
        // (its body was not read, and the connection closes after this answer).
        return Err(ProxyError::AmbiguousLength);
    }
    if seen.bytes > max_header_bytes {
        return Err(ProxyError::HeadersTooLarge);
    }
    if seen.underscores_refused {
        return Err(ProxyError::UnderscoreInFieldName);
    }
    let path = req.uri().path();
    if !path.starts_with('/') && req.method() != Method::OPTIONS {
        return Err(ProxyError::BadRequest);
    }
    Ok(())
}

/// Normalises the request's path. When the listener forwards the normalised path and it differs, the
/// URI is rewritten (query kept) and `None` returned; when it forwards the original, the URI stays and
/// the normalised path to route on is returned. A path that is already normal changes nothing and
/// allocates nothing.
fn normalize_target(
    req: &mut Request<ClientBody>,
    rules: PathRules,
) -> Result<Option<String>, ProxyError> {
    let path = match normalize(req.uri().path(), rules) {
        Ok(Cow::Borrowed(_)) => return Ok(None),
        Ok(Cow::Owned(path)) => path,
        Err(_) => return Err(ProxyError::BadRequest),
    };
    if !rules.forward_normalized {
        return Ok(Some(path));
    }
    let uri = std::mem::take(req.uri_mut());
    *req.uri_mut() = with_path(uri, path)?;
    Ok(None)
}

/// `uri` with its path replaced and its query kept byte for byte; scheme and authority (HTTP/2,
/// absolute-form HTTP/1.1) stay as they were.
fn with_path(uri: Uri, path: String) -> Result<Uri, ProxyError> {
    let path_and_query = match uri.query() {
        None => path,
        Some(query) => {
            let mut joined = path;
            joined.reserve(query.len() + 1);
            joined.push('?');
            joined.push_str(query);
            joined
        }
    };
    let mut parts = uri.into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query).map_err(|_| ProxyError::BadRequest)?);
    Uri::from_parts(parts).map_err(|_| ProxyError::BadRequest)
}
