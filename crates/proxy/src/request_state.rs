//! What the handler learns about one request as it goes: its session (worker, connection, client,
//! arrival), what it was routed to, and what its completion needs if it ends unanswered. Shared by
//! the handler, forwarding and the plugin phases, below all three.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use floodgate_plugins::RequestCtx;
use floodgate_trace::RequestTrace;
use http::{HeaderValue, Method, StatusCode};

use crate::client_conn::ConnInfo;
use crate::completion::{AccessDetails, Completion};
use crate::overload::requests::RequestSlot;
use crate::snapshot::RouteRuntime;
use crate::worker_ctx::{HeldSnapshot, WorkerCtx};

/// What a request was routed to, filled in as far as it got, for metrics and the access log (also when
/// it failed: a 502's log line names the target that refused, as nginx's `$upstream_addr` does).
#[derive(Default)]
pub struct Used {
    /// The matched route.
    pub route: Option<Arc<RouteRuntime>>,
    /// The target it went to, and how many attempts that took.
    pub upstream: UpstreamUsed,
    /// The request's place under the worker's in-flight limit, held until its response ends.
    pub slot: Option<RequestSlot>,
    /// The plugins' context, when the route has plugins; its `log` phase runs when the response ends.
    pub plugins: Option<Box<RequestCtx>>,
}

/// The upstream target a request went to last, and the attempts it made.
#[derive(Default)]
pub struct UpstreamUsed {
    /// The target of the last attempt, when [`UpstreamUsed::names_target`].
    pub target: Option<Arc<str>>,
    /// Whether the target's address is wanted (by the access log): a copy of it writes a count every
    /// worker shares, which no request should pay for unless it is read.
    pub names_target: bool,
    /// Attempts made (0: the request was not forwarded).
    pub attempts: u32,
    /// The request's trace, when tracing is on: each attempt adds its span.
    pub trace: Option<Box<RequestTrace>>,
}

impl UpstreamUsed {
    /// Notes that an attempt goes to the target at `address`, when the address is wanted.
    pub fn went_to(&mut self, address: &Arc<str>) {
        if self.names_target {
            self.target = Some(address.clone());
        }
    }
}

/// One request's context as every step from the handler down borrows it (Pingora's session): the
/// worker serving it, its connection, its client, and when it arrived. Built once by the handler and
/// lent by reference, so a step takes one argument for all of it, and a new piece of per-request
/// context is one more field here rather than one more parameter on each function.
pub struct Session<'a> {
    /// The worker serving the request.
    pub worker: &'a Rc<WorkerCtx>,
    /// The client connection it came on.
    pub conn: &'a ConnInfo,
    /// Its client, as the handler found it.
    pub client: Client<'a>,
    /// When its head had arrived: the route's timeout runs from here.
    pub started: Instant,
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

/// A request being served, and what its [`Completion`] will need. Dropped before it is
/// [`answered`](Self::answered) (the client went away while the request waited: an HTTP/1.1
/// connection closed, an HTTP/2 stream reset), it records the request as a 499, as nginx does, and
/// runs the plugins' `log` phase, so what the request held (a `limit-conn` slot) is given back and
/// counted, and the access log has its line.
pub struct Unanswered {
    /// The snapshot the request is served under, kept to its end (through its worker's hold).
    pub snapshot: Rc<HeldSnapshot>,
    /// What it was routed to so far.
    pub used: Used,
    worker: usize,
    method: Method,
    started: Instant,
    access: Option<Box<AccessDetails>>,
    answered: bool,
}

impl Unanswered {
    /// A request of `method` that arrived at `started` on worker `worker`, its access log details
    /// when the log is on.
    pub fn new(
        snapshot: Rc<HeldSnapshot>,
        worker: usize,
        method: Method,
        started: Instant,
        access: Option<Box<AccessDetails>>,
    ) -> Self {
        Self {
            snapshot,
            used: Used::default(),
            worker,
            method,
            started,
            access,
            answered: false,
        }
    }

    /// The request's completion, for a response of `status` (holding `in_flight` to its end).
    pub fn answered(
        mut self,
        status: StatusCode,
        in_flight: Option<floodgate_upstream::InFlightGuard>,
    ) -> Completion {
        self.answered = true;
        self.completion(status, in_flight)
    }

    fn completion(
        &mut self,
        status: StatusCode,
        in_flight: Option<floodgate_upstream::InFlightGuard>,
    ) -> Completion {
        let mut used = std::mem::take(&mut self.used);
        // A route left out of tracing drops the trace its request started with.
        if used.route.as_ref().is_some_and(|r| !r.traced) {
            used.upstream.trace = None;
        }
        let access = self.access.take().map(|mut details| {
            details.route = used.route.as_ref().map(|r| r.id.clone());
            details.consumer = used.plugins.as_ref().and_then(|p| p.consumer_id().cloned());
            details.upstream_addr = used.upstream.target;
            details.upstream_attempts = used.upstream.attempts;
            details.trace_id = used.upstream.trace.as_ref().map(|t| t.trace_id_hex());
            details
        });
        Completion {
            worker: self.worker,
            snapshot: self.snapshot.clone(),
            route: used.route,
            method: self.method.clone(),
            status,
            started: self.started,
            bytes_sent: None,
            access,
            in_flight,
            slot: used.slot,
            plugins: used.plugins,
            trace: used.upstream.trace,
        }
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.answered {
            // Recorded as it is dropped: 499, nginx's "client closed request".
            drop(self.completion(CLIENT_CLOSED_REQUEST, None));
        }
    }
}

/// nginx's 499: the client closed the connection before the response was sent.
const CLIENT_CLOSED_REQUEST: StatusCode = match StatusCode::from_u16(499) {
    Ok(status) => status,
    Err(_) => StatusCode::BAD_REQUEST,
};
