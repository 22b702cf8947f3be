//! Where the proxy runs a route's plugin chain: the `request` phase after routing, the `response`
//! phase on whatever answers (the upstream, a plugin, an error). The `upstream_request` phase runs
//! in `forward.rs` as the request is shaped, the `log` phase in `completion.rs`.

use bytes::Bytes;
use floodgate_plugins::{Answer, RequestCtx, RequestHead, ResponseHead, ResponseHeaders};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use crate::request_body::ClientBody;
use crate::request_state::{Client, Used};
use crate::response_body::ResponseBody;
use crate::snapshot::RouteRuntime;

/// Runs the `request` phase of `route`'s chain: returns the request (its header fields possibly
/// changed) to go on with, or the response of the plugin that answered it. The plugins' context is
/// left in `plugins` for the later phases.
///
/// Kept out of line, as is [`response_phase`]: inlined, its locals would grow the handler's future,
/// which every request copies whether its route has plugins or not.
#[inline(never)]
pub fn request_phase(
    worker: usize,
    tls: bool,
    route: &RouteRuntime,
    req: Request<ClientBody>,
    client: &Client<'_>,
    plugins: &mut Option<Box<RequestCtx>>,
) -> Result<Request<ClientBody>, Box<Response<ResponseBody>>> {
    let Some(chain) = &route.plugins else {
        return Ok(req);
    };
    let mut ctx = chain.start(
        client.ip,
        client.request_id.clone(),
        worker,
        tls,
        req.uri().path(),
    );
    let mut req = req;
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
    let Some(answer) = answer else {
        return Ok(req);
    };
    if let Some(rejected) = rejection {
        route
            .metrics
            .plugin_rejections
            .count(rejected.plugin, rejected.reason);
    }
    Err(Box::new(answer_response(
        answer,
        client.request_id,
        req.method(),
        client.grpc,
    )))
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
    // Status, the upstream's raw fields and the added ones are taken out for the phase and put back, so the view can
    // borrow them beside the header map without taking the response apart.
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

/// The response for a plugin's answer. An error answer gets the gateway's JSON error body, or for a
/// gRPC client the trailers-only gRPC answer with the status gRPC maps the HTTP status to.
fn answer_response(
    answer: Answer,
    request_id: &HeaderValue,
    method: &Method,
    grpc: bool,
) -> Response<ResponseBody> {
    let Answer {
        status,
        mut headers,
        body,
        error,
        ..
    } = answer;
    let body = match error {
        Some(message) if grpc => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from_static(grpc_status(status)));
            headers.insert("grpc-message", HeaderValue::from_static(message));
            let mut response = Response::new(ResponseBody::full(Bytes::new()));
            *response.headers_mut() = headers;
            return response;
        }
        Some(message) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // The request id is generated or checked to be a plain token (request_id.rs) and messages
            // are fixed text, so neither needs JSON escaping.
            let id = request_id.to_str().unwrap_or("");
            Bytes::from(format!(
                "{{\"error\":\"{message}\",\"request_id\":\"{id}\"}}\n"
            ))
        }
        None => body,
    };
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// gRPC's mapping of HTTP statuses (grpc/doc/http-grpc-status-mapping.md).
fn grpc_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "13",
        401 => "16",
        403 => "7",
        404 => "12",
        429 | 502..=504 => "14",
        _ => "2",
    }
}
