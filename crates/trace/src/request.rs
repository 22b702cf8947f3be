//! One request's trace: started when it arrives, an attempt span per upstream attempt, and, when its
//! response has ended, the decision to keep it and the spans built for the exporter.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, Method, Uri, Version};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::context::{self, AttemptContext};
use crate::Tracer;

/// What the request was, for the server span's attributes (OpenTelemetry's HTTP semantic
/// conventions).
pub struct RequestFacts<'a> {
    /// Whether its fields may hold a trace context (`traceparent`, `b3`, `x-b3-*`): when they cannot,
    /// nothing is looked up.
    pub has_context: bool,
    /// Its URI as received: a clone shares its bytes, so no path is copied unless the request is kept.
    pub uri: &'a Uri,
    /// Whether it came over TLS.
    pub tls: bool,
    /// The client's address.
    pub client: IpAddr,
    /// The HTTP version the client spoke.
    pub version: Version,
}

/// An upstream attempt's span.
struct Attempt {
    span_id: u64,
    start: Duration,
    end: Option<Duration>,
    target: Option<SocketAddr>,
    outcome: Option<AttemptOutcome>,
}

/// How an upstream attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The upstream answered with this status.
    Status(u16),
    /// The attempt failed before an answer, for this reason (`connect`, `timeout`, `reset`...).
    Failed(&'static str),
}

/// A request's trace, from its arrival to the end of its response.
///
/// What a request pays for it when it is not kept: this box, its ids, and the `traceparent` of each
/// attempt. Wall-clock times, names and attributes are made only for a kept request, when it ends.
pub struct RequestTrace {
    trace_id: u128,
    span_id: u64,
    parent: Option<u64>,
    sampled: bool,
    started: Instant,
    uri: Uri,
    tls: bool,
    client: IpAddr,
    version: Version,
    /// Most requests make one attempt: it is kept inline, the others in a list made for them.
    first: Option<Attempt>,
    more: Vec<Attempt>,
}

/// How the request ended, for the keep decision and the server span.
pub struct Finished<'a> {
    /// The request's method.
    pub method: &'a Method,
    /// The status sent to the client.
    pub status: u16,
    /// The matched route's id.
    pub route: Option<&'a str>,
    /// The plugin that answered instead of forwarding, if one did.
    pub rejected_by: Option<&'a str>,
    /// From arrival to the end of the response.
    pub elapsed: Duration,
}

impl RequestTrace {
    #[inline(always)] // built in its box, not on the stack and copied there
    pub(crate) fn start(
        tracer: &Tracer,
        headers: &HeaderMap,
        started: Instant,
        facts: &RequestFacts<'_>,
    ) -> RequestTrace {
        let parent = if facts.has_context {
            context::parent(headers, tracer.accepts_b3)
        } else {
            None
        };
        let (trace_id, parent_span, sampled) = match parent {
            Some(parent) => (
                parent.trace_id,
                Some(parent.span_id),
                parent.sampled.unwrap_or_else(|| tracer.head_sample()),
            ),
            None => (new_trace_id(), None, tracer.head_sample()),
        };
        RequestTrace {
            trace_id,
            span_id: new_span_id(),
            parent: parent_span,
            sampled,
            started,
            uri: facts.uri.clone(),
            tls: facts.tls,
            client: facts.client,
            version: facts.version,
            first: None,
            more: Vec::new(),
        }
    }

    /// The trace's id, as 32 lower-case hex digits (for the access log).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// Starts an upstream attempt's span, sent at `sent_at`, and gives the `traceparent` to send with
    /// it (the attempt is the upstream's parent).
    pub fn attempt_started(&mut self, sent_at: Instant) -> AttemptContext {
        let span_id = new_span_id();
        let attempt = Attempt {
            span_id,
            start: sent_at.saturating_duration_since(self.started),
            end: None,
            target: None,
            outcome: None,
        };
        if self.first.is_none() {
            self.first = Some(attempt);
        } else {
            self.more.push(attempt);
        }
        AttemptContext::new(self.trace_id, span_id, self.sampled)
    }

    fn attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.first.iter().chain(&self.more)
    }

    /// Whether the client's trace is continued: its `tracestate` then goes upstream with it; a
    /// `tracestate` without a valid parent belongs to no trace and is not passed on.
    pub fn continued(&self) -> bool {
        self.parent.is_some()
    }

    /// Ends the attempt started last: sent to `target`, it ended with `outcome`.
    pub fn attempt_ended(&mut self, target: SocketAddr, outcome: AttemptOutcome) {
        let now = self.started.elapsed();
        let last = match self.more.last_mut() {
            Some(last) => Some(last),
            None => self.first.as_mut(),
        };
        if let Some(attempt) = last.filter(|a| a.end.is_none()) {
            attempt.end = Some(now);
            attempt.target = Some(target);
            attempt.outcome = Some(outcome);
        }
    }

    /// Whether the request is kept: sampled at its start, or matched by a `keep` rule now.
    fn kept(&self, tracer: &Tracer, end: &Finished<'_>) -> bool {
        let keep = &tracer.keep;
        self.sampled
            || (keep.server_errors && end.status >= 500)
            || (keep.upstream_errors
                && self
                    .attempts()
                    .any(|a| matches!(a.outcome, Some(AttemptOutcome::Failed(_)) | None)))
            || end
                .rejected_by
                .is_some_and(|plugin| keep.plugin_rejections.iter().any(|p| p == plugin))
            || keep
                .slower_than
                .is_some_and(|limit| end.elapsed > limit.get())
    }

    /// The spans of a kept request: the server span, then one per attempt. Empty when it is not kept.
    pub(crate) fn finish(self, tracer: &Tracer, end: &Finished<'_>) -> Vec<SpanData> {
        if !self.kept(tracer, end) {
            return Vec::new();
        }
        let trace_id = TraceId::from(self.trace_id);
        // A span kept by a rule is exported as sampled: the collector keeps what it receives.
        let flags = TraceFlags::SAMPLED;
        let state = TraceState::NONE;
        // The wall clock is read once, for a kept request only: its start is now less its duration.
        let wall_start = SystemTime::now()
            .checked_sub(end.elapsed)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let at = |offset: Duration| wall_start + offset;
        let mut spans = Vec::with_capacity(2 + self.more.len());
        let name = match end.route {
            Some(route) => format!("{} {route}", end.method),
            None => end.method.to_string(),
        };
        let mut attributes = vec![
            KeyValue::new("http.request.method", end.method.to_string()),
            // An authority-form target (CONNECT) has no path.
            KeyValue::new(
                "url.path",
                match self.uri.path() {
                    "" => "/".to_owned(),
                    path => path.to_owned(),
                },
            ),
            KeyValue::new("url.scheme", if self.tls { "https" } else { "http" }),
            KeyValue::new("http.response.status_code", i64::from(end.status)),
            KeyValue::new("client.address", self.client.to_string()),
            KeyValue::new("network.protocol.version", protocol_version(self.version)),
        ];
        if let Some(query) = self.uri.query() {
            attributes.push(KeyValue::new("url.query", query.to_owned()));
        }
        // HTTP/2's `:authority`; an HTTP/1.1 request's `Host` is not copied for the span (a lookup
        // per request), its route says where it went.
        if let Some(authority) = self.uri.authority() {
            attributes.push(KeyValue::new(
                "server.address",
                authority.as_str().to_owned(),
            ));
        }
        if let Some(route) = end.route {
            attributes.push(KeyValue::new("http.route", route.to_owned()));
        }
        if let Some(plugin) = end.rejected_by {
            attributes.push(KeyValue::new("floodgate.rejected_by", plugin.to_owned()));
        }
        let status = if end.status >= 500 {
            Status::error(format!("answered {}", end.status))
        } else {
            Status::Unset
        };
        spans.push(span(
            SpanContext::new(
                trace_id,
                SpanId::from(self.span_id),
                flags,
                false,
                state.clone(),
            ),
            (
                self.parent.map_or(SpanId::INVALID, SpanId::from),
                self.parent.is_some(),
            ),
            SpanKind::Server,
            name,
            (wall_start, at(end.elapsed)),
            attributes,
            status,
            tracer,
        ));
        for (n, attempt) in self.attempts().enumerate() {
            let mut attributes = vec![
                KeyValue::new("http.request.method", end.method.to_string()),
                // OpenTelemetry's count of resends: 0 for the first attempt.
                KeyValue::new("http.request.resend_count", n as i64),
            ];
            if let Some(target) = attempt.target {
                attributes.push(KeyValue::new("server.address", target.ip().to_string()));
                attributes.push(KeyValue::new("server.port", i64::from(target.port())));
            }
            let status = match attempt.outcome {
                Some(AttemptOutcome::Status(code)) => {
                    attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
                    if code >= 500 {
                        Status::error(format!("answered {code}"))
                    } else {
                        Status::Unset
                    }
                }
                Some(AttemptOutcome::Failed(reason)) => {
                    attributes.push(KeyValue::new("error.type", reason));
                    Status::error(reason)
                }
                None => Status::error("abandoned"),
            };
            spans.push(span(
                SpanContext::new(
                    trace_id,
                    SpanId::from(attempt.span_id),
                    flags,
                    false,
                    state.clone(),
                ),
                (SpanId::from(self.span_id), false),
                SpanKind::Client,
                format!("{} upstream", end.method),
                (at(attempt.start), at(attempt.end.unwrap_or(end.elapsed))),
                attributes,
                status,
                tracer,
            ));
        }
        spans
    }
}

#[allow(clippy::too_many_arguments)] // one call per kind of span, each naming every field
fn span(
    context: SpanContext,
    (parent, parent_remote): (SpanId, bool),
    kind: SpanKind,
    name: String,
    (start, end): (SystemTime, SystemTime),
    attributes: Vec<KeyValue>,
    status: Status,
    tracer: &Tracer,
) -> SpanData {
    SpanData {
        span_context: context,
        parent_span_id: parent,
        parent_span_is_remote: parent_remote,
        span_kind: kind,
        name: Cow::Owned(name),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: tracer.scope.clone(),
    }
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "0.9",
    }
}

/// A random trace id, never 0 (W3C: all zeros is invalid).
fn new_trace_id() -> u128 {
    (u128::from(fastrand::u64(..)) << 64) | u128::from(fastrand::u64(1..))
}

/// A random span id, never 0.
fn new_span_id() -> u64 {
    fastrand::u64(1..)
}
