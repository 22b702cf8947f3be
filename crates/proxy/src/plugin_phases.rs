//! Where the proxy runs a route's plugin chain: `request` after routing, `upstream_request` as the
//! forwarded request is shaped (`forward`), `response` on whatever answers (the upstream, a plugin,
//! an error). A new phase is one more function here and one call where the request reaches it. The
//! one exception is `log`, run when the response has ended by `completion`, which sits below this
//! module (the responses built here carry a completion) and so calls `Chain::finish` itself.

use bytes::Bytes;
use floodgate_plugins::{
    Answer, RequestCtx, RequestHead, ResponseHead, ResponseHeaders, UpstreamRequest,
};
use http::{HeaderValue, Method, Request, Response};

use crate::error::error_response;
use crate::request_body::ClientBody;
use crate::request_state::{Session, Used};
use crate::response_body::ResponseBody;
use crate::snapshot::RouteRuntime;

/// Runs the `request` phase of `route`'s chain on `req` (its header fields possibly changed): returns
/// the response of the plugin that answered it, if one did. The plugins' context is left in `plugins`
/// for the later phases. The request is lent, not moved: moving it in and out cost a copy each way.
///
/// Kept out of line, as is [`response_phase`]: inlined, its locals would grow the handler's future,
/// which every request copies whether its route has plugins or not.
#[inline(never)]
pub fn request_phase(
    session: &Session<'_>,
    route: &RouteRuntime,
    req: &mut Request<ClientBody>,
    plugins: &mut Option<Box<RequestCtx>>,
) -> Option<Response<ResponseBody>> {
    let chain = route.plugins.as_ref()?;
    let client = &session.client;
    let mut ctx = chain.start(
        client.ip,
        client.request_id.clone(),
        session.worker.index,
        session.conn.tls,
        req.uri().path(),
    );
    // The header map is taken out for the phase and put back, so the view can borrow it mutably
    // beside the method and URI without taking the whole request apart (a copy of it each way).
    let mut headers = std::mem::take(req.headers_mut());
    let answer = chain.request(
        &mut RequestHead {
            method: req.method(),
            uri: req.uri(),
            headers: &mut headers,
        },
        &mut ctx,
    );
    *req.headers_mut() = headers;
    let rejection = ctx.rejection;
    *plugins = Some(ctx);
    let answer = answer?;
    if let Some(rejected) = rejection {
        route
            .metrics
            .plugin_rejections
            .count(rejected.plugin, rejected.reason);
    }
    Some(answer_response(
        answer,
        client.request_id,
        req.method(),
        client.grpc,
    ))
}

/// Runs the `response` phase of the route's chain on `response`, whoever answered it.
#[inline(never)]
pub fn response_phase(used: &mut Used, response: &mut Response<ResponseBody>) {
    let (Some(ctx), Some(chain)) = (
        used.plugins.as_deref_mut(),
        used.route.as_ref().and_then(|r| r.plugins.as_ref()),
    ) else {
        return;
    };
    // Status, the upstream's raw fields and the added ones are taken out for the phase and put back,
    // so the view can borrow them beside the header map without taking the response apart.
    let (raw, added) = response.body_mut().plugin_fields_mut();
    let (mut raw, mut added) = (std::mem::take(raw), std::mem::take(added));
    let mut status = response.status();
    chain.response(
        &mut ResponseHead {
            status: &mut status,
            headers: ResponseHeaders::new(response.headers_mut(), &mut added, &mut raw),
        },
        ctx,
    );
    *response.status_mut() = status;
    let (raw_slot, added_slot) = response.body_mut().plugin_fields_mut();
    *raw_slot = raw;
    *added_slot = added;
}

/// Runs the `upstream_request` phase of the route's chain on the request about to be forwarded.
pub fn upstream_request_phase(
    route: &RouteRuntime,
    plugins: Option<&RequestCtx>,
    req: &mut UpstreamRequest<'_>,
) {
    if let (Some(chain), Some(ctx)) = (&route.plugins, plugins) {
        chain.upstream_request(req, ctx);
    }
}

/// The response for a plugin's answer: its own body, or for an error answer the gateway's error
/// response (JSON, or a gRPC answer to a gRPC client), with the answer's header fields either way.
fn answer_response(
    answer: Answer,
    request_id: &HeaderValue,
    method: &Method,
    grpc: bool,
) -> Response<ResponseBody> {
    let Answer {
        status,
        headers,
        body,
        error,
        ..
    } = answer;
    let mut response = match error {
        Some(message) => error_response(status, message, headers, request_id, grpc),
        None => {
            let mut response = Response::new(ResponseBody::full(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
    };
    if method == Method::HEAD {
        *response.body_mut() = ResponseBody::full(Bytes::new());
    }
    response
}
