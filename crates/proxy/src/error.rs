//! Errors on the request path, each mapped to one status code in one place.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::response_body::ResponseBody;
use crate::upstream::failure::FailureClass;
use floodgate_upstream::breaker::BreakerReason;

/// Why a request could not be proxied. Each kind answers with its own status and a short JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The request is malformed: an HTTP/1.1 head that does not parse, a bad `Content-Length` or
    /// transfer coding, a path that cannot be normalised (see `path_normalize`), or a target that is not
    /// a path.
    #[error("bad request")]
    BadRequest,
    /// The request declared both `Content-Length` and `Transfer-Encoding` (request smuggling).
    #[error("content-length and transfer-encoding together")]
    AmbiguousLength,
    /// No route matched.
    #[error("no route matched")]
    NoRoute,
    /// The request body exceeded the route's limit.
    #[error("request body too large")]
    BodyTooLarge,
    /// The request's headers exceeded `limits.max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// Every target of the upstream is at its connection limit.
    #[error("no upstream target available")]
    NoTarget,
    /// The last attempt at the upstream failed: refused, reset or broken, timed out, or answered with
    /// something that is not HTTP.
    #[error("{}", upstream_message(*.0))]
    Upstream(FailureClass),
    /// The upstream did not answer within the route's timeout.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The client stopped sending its body halfway.
    #[error("client request body failed")]
    ClientBody,
    /// The client did not send its request head, or stopped sending its body, within its timeout.
    #[error("request timed out")]
    RequestTimeout,
    /// The request's body has a transfer coding floodgate does not decode (`gzip, chunked`).
    #[error("unsupported transfer coding")]
    UnsupportedTransferCoding,
    /// A method-override field names a method the route would not be chosen for, on a route whose
    /// `method_override` is `reject`.
    #[error("method override not allowed")]
    MethodOverride,
    /// A request field's name holds `_` on a listener that refuses such names.
    #[error("underscore in a header name")]
    UnderscoreInFieldName,
    /// The upstream's circuit breaker turned the request away: a limit was reached, or the circuit is
    /// open.
    #[error("circuit breaker: {}", .0.as_str())]
    CircuitOpen(BreakerReason),
    /// The worker is serving `limits.max_requests_in_flight_per_worker` requests already.
    #[error("gateway overloaded")]
    Overloaded,
}

impl ProxyError {
    /// The status code this error answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ProxyError::BadRequest
            | ProxyError::AmbiguousLength
            | ProxyError::ClientBody
            | ProxyError::MethodOverride
            | ProxyError::UnderscoreInFieldName => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::NoTarget | ProxyError::Overloaded | ProxyError::CircuitOpen(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Upstream(FailureClass::ConnectTimeout | FailureClass::Timeout)
            | ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            ProxyError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The error response. gRPC clients (`content-type: application/grpc*`) get a trailers-only gRPC answer,
    /// HTTP 200 with `grpc-status`, which they can read, as Envoy does; everyone else gets
    /// `{"error": "...", "request_id": "..."}`.
    pub fn response(self, request_id: &HeaderValue, grpc: bool) -> Response<ResponseBody> {
        error_response(
            self.status(),
            &self.to_string(),
            HeaderMap::new(),
            request_id,
            grpc,
        )
    }
}

/// The error body's text for a failed upstream attempt: what the client may know of it.
fn upstream_message(class: FailureClass) -> &'static str {
    match class {
        FailureClass::ConnectTimeout | FailureClass::Timeout => "upstream timed out",
        FailureClass::BadResponse => "invalid upstream response",
        _ => "upstream connection failed",
    }
}

/// The gateway's error answer with `status` and the fixed text `message`, keeping `headers` (a
/// plugin's `WWW-Authenticate`, `Retry-After`): for a gRPC client a trailers-only gRPC answer (HTTP 200
/// with `grpc-status` and `grpc-message`), for everyone else `{"error": "...", "request_id": "..."}`.
/// The one shape of every error floodgate sends, its own and its plugins'.
pub fn error_response(
    status: StatusCode,
    message: &str,
    mut headers: HeaderMap,
    request_id: &HeaderValue,
    grpc: bool,
) -> Response<ResponseBody> {
    if grpc {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from_static(grpc_status(status)));
        if let Ok(message) = HeaderValue::from_str(message) {
            headers.insert("grpc-message", message);
        }
        let mut response = Response::new(ResponseBody::full(Bytes::new()));
        *response.headers_mut() = headers;
        return response;
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // The request id is either generated by us or checked to be a plain token (see request_id.rs), so it
    // needs no JSON escaping; messages are fixed strings.
    let id = request_id.to_str().unwrap_or("");
    let body = format!("{{\"error\":\"{message}\",\"request_id\":\"{id}\"}}\n");
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The gRPC status code for an HTTP status, per gRPC's HTTP-to-gRPC status mapping
/// (grpc/doc/http-grpc-status-mapping.md); other errors are INTERNAL (13).
fn grpc_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "16",
        403 => "7",
        404 => "12",
        429 | 502..=504 => "14",
        _ => "13",
    }
}
