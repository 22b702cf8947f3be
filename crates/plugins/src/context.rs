//! [`RequestCtx`]: what the plugins of one request share, from its `request` phase to its `log` phase.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;

use crate::consumer::Consumer;
use crate::params::PathParams;

/// Which plugin answered a request instead of forwarding it, and why (metric labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The plugin's name.
    pub plugin: &'static str,
    /// The answer's reason.
    pub reason: &'static str,
    /// Whether it refused credentials the request presented ([`crate::Answer::credentials_refused`]).
    pub credentials_refused: bool,
}

/// The per-request context of a route with plugins. Made once per request (boxed, so routes without
/// plugins carry one pointer), kept until the response ends, then given to the `log` phase.
pub struct RequestCtx {
    /// The client's address as the gateway believes it: the connection's peer, or the address taken
    /// from `X-Forwarded-For` or the PROXY protocol under the `real_ip` rules.
    pub client_ip: IpAddr,
    /// The matched route's id.
    pub route: Arc<str>,
    /// The request's id (`X-Request-Id`).
    pub request_id: HeaderValue,
    /// The worker serving the request (index of per-worker state).
    pub worker: usize,
    /// Whether the client's connection is TLS.
    pub tls: bool,
    /// The consumer an authentication plugin identified.
    pub consumer: Option<Arc<Consumer>>,
    /// The route path's `{param}` values.
    pub params: PathParams,
    /// Fields a `request` phase asked to set on the response, whatever answers it (the upstream, a
    /// plugin or an error): rate-limit headers, CORS fields. Set (replacing the upstream's) before the
    /// `response` phases run.
    pub response_headers: crate::heads::AddedFields,
    /// Which plugin answered the request, if one did.
    pub rejection: Option<Rejection>,
    /// Concurrency slots the request holds until it ends (`limit-conn`).
    pub held: Vec<crate::key_table::Held>,
    /// How long the proxy holds the request after its `request` phase, before it forwards or answers
    /// it (`fault-injection`).
    pub delay: Option<std::time::Duration>,
    /// The upstream (its id) the request goes to instead of the route's (`traffic-split`).
    pub upstream: Option<Arc<str>>,
    /// Where a copy of the request goes (`proxy-mirror`).
    pub mirror: Option<MirrorTo>,
}

/// A shadow upstream a copy of the request goes to, its answer dropped.
#[derive(Debug, Clone)]
pub struct MirrorTo {
    /// The upstream's id.
    pub upstream: Arc<str>,
    /// Most copies each worker has waiting on it at once.
    pub max_in_flight: u32,
}

impl RequestCtx {
    /// The consumer's id, if one was identified.
    pub fn consumer_id(&self) -> Option<&Arc<str>> {
        self.consumer.as_ref().map(|c| &c.id)
    }
}
