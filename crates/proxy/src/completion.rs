//! What happens when a request is done: its metrics and its access log line, recorded once, when the
//! response body ends or is dropped, so streaming responses are timed to their last byte.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use floodgate_observe::{AccessLog, AccessLogEntry, RouteMetrics};
use http::{HeaderValue, Method, StatusCode, Version};

use crate::snapshot::RouteRuntime;
use crate::worker_ctx::HeldSnapshot;

/// Bookkeeping for one request, run on drop.
pub struct Completion {
    /// Worker that served the request (its metric slot).
    pub worker: usize,
    /// The snapshot the request was served under: the unmatched bucket's metrics when it has no route.
    pub snapshot: Rc<HeldSnapshot>,
    /// The matched route: its metrics, and its chain's `log` phase. Moved here, not cloned in parts:
    /// each clone of a shared count writes a cache line the other workers write too.
    pub route: Option<Arc<RouteRuntime>>,
    /// Request method.
    pub method: Method,
    /// Response status.
    pub status: StatusCode,
    /// When the request arrived.
    pub started: Instant,
    /// Body bytes sent to the client, when known.
    pub bytes_sent: Option<u64>,
    /// Held until the response ends so `least_request` counts the request as in flight.
    pub in_flight: Option<floodgate_upstream::InFlightGuard>,
    /// Counts the request against its worker's in-flight limit until the response ends.
    pub slot: Option<crate::overload::requests::RequestSlot>,
    /// Present only when the access log is on, so requests pay for its strings only then.
    pub access: Option<Box<AccessDetails>>,
    /// The plugins' context of a route with plugins: the chain's `log` phase runs on it here.
    pub plugins: Option<Box<floodgate_plugins::RequestCtx>>,
    /// The request's trace, ended here, when tracing is on.
    pub trace: Option<Box<floodgate_trace::RequestTrace>>,
}

/// The parts of an access log line that only the access log needs.
pub struct AccessDetails {
    /// Where to send the line.
    pub log: AccessLog,
    /// Client address.
    pub client_ip: Option<IpAddr>,
    /// Host the client asked for.
    pub host: Option<String>,
    /// Path and query.
    pub path: String,
    /// HTTP version of the client connection.
    pub version: Version,
    /// Matched route id.
    pub route: Option<Arc<str>>,
    /// Target address used.
    pub upstream_addr: Option<Arc<str>>,
    /// Attempts at the upstream.
    pub upstream_attempts: u32,
    /// The consumer an authentication plugin identified.
    pub consumer: Option<Arc<str>>,
    /// The request id.
    pub request_id: HeaderValue,
    /// The request fields the log's format names, in [`AccessLog::captured_headers`]' order.
    pub captured: Vec<Option<HeaderValue>>,
    /// The request's trace id, when tracing is on.
    pub trace_id: Option<String>,
}

/// Copies the request fields `log`'s format names (none for JSON, which allocates nothing).
pub fn captured_headers(log: &AccessLog, headers: &http::HeaderMap) -> Vec<Option<HeaderValue>> {
    log.captured_headers()
        .iter()
        .map(|name| headers.get(name).cloned())
        .collect()
}

impl Drop for Completion {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed();
        if let Some(trace) = self.trace.take() {
            self.end_trace(trace, elapsed);
        }
        let chain = self.route.as_ref().and_then(|r| r.plugins.as_ref());
        if let (Some(chain), Some(ctx)) = (chain, self.plugins.take()) {
            // The `log` phase. Called on the chain here, not through `plugin_phases`, which sits
            // above this module (it builds responses that carry a completion).
            chain.finish(ctx, self.status);
        }
        let metrics: &RouteMetrics = match &self.route {
            Some(route) => &route.metrics,
            None => &self.snapshot.unmatched,
        };
        metrics.record(
            self.worker,
            (&self.method, self.status),
            elapsed,
            self.bytes_sent.unwrap_or(0),
        );
        let logged = self
            .access
            .take()
            .filter(|d| d.log.keeps(self.status.as_u16()));
        if let Some(details) = logged {
            let details = *details;
            details.log.log(AccessLogEntry {
                timestamp: SystemTime::now(),
                client_ip: details.client_ip,
                method: self.method.clone(),
                host: details.host,
                path: details.path,
                protocol: details.version,
                status: self.status.as_u16(),
                route: details.route,
                upstream_addr: details.upstream_addr,
                upstream_attempts: details.upstream_attempts,
                consumer: details.consumer,
                duration: elapsed,
                request_id: details.request_id.to_str().unwrap_or("").to_string(),
                bytes_sent: self.bytes_sent,
                captured: details.captured,
                trace_id: details.trace_id,
            });
        }
    }
}

impl Completion {
    /// Hands the request's trace to the snapshot's tracer, which keeps it or not now that the
    /// outcome is known.
    #[inline(never)]
    fn end_trace(&self, trace: Box<floodgate_trace::RequestTrace>, elapsed: std::time::Duration) {
        let Some(tracer) = &self.snapshot.tracer else {
            return;
        };
        let rejected_by = self
            .plugins
            .as_ref()
            .and_then(|ctx| ctx.rejection.as_ref())
            .map(|r| r.plugin);
        tracer.finish(
            trace,
            &floodgate_trace::Finished {
                method: &self.method,
                status: self.status.as_u16(),
                route: self.route.as_ref().map(|r| &*r.id),
                rejected_by,
                elapsed,
            },
        );
    }
}
