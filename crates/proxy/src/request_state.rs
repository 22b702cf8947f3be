//! What the handler learns about one request as it goes: who its client is, and what it was routed
//! to. Shared by the handler and the plugin phases, below both.

use std::net::IpAddr;
use std::sync::Arc;

use floodgate_plugins::RequestCtx;
use http::HeaderValue;

use crate::overload::requests::RequestSlot;
use crate::snapshot::RouteRuntime;

/// What a request was routed to, filled in as far as it got, for metrics and the access log (also when
/// it failed: a 502's log line names the target that refused, as nginx's `$upstream_addr` does).
#[derive(Default)]
pub struct Used {
    /// The matched route.
    pub route: Option<Arc<RouteRuntime>>,
    /// The target picked.
    pub target: Option<Arc<str>>,
    /// The request's place under the worker's in-flight limit, held until its response ends.
    pub slot: Option<RequestSlot>,
    /// The plugins' context, when the route has plugins; its `log` phase runs when the response ends.
    pub plugins: Option<Box<RequestCtx>>,
}

/// What the handler knows of the request's client before routing.
pub struct Client<'a> {
    /// The client's address under the `real_ip` rules.
    pub ip: IpAddr,
    /// The request's id.
    pub request_id: &'a HeaderValue,
    /// Whether the client speaks gRPC (errors are then gRPC answers).
    pub grpc: bool,
}
