//! The trace context an attempt hands its upstream.

use floodgate_trace::context::{AttemptContext, Traceparent, TRACEPARENT, TRACESTATE};

/// The trace context an attempt gives its upstream: `traceparent` naming the attempt as the parent,
/// written by the gateway in place of the client's; the client's `tracestate` goes along only when
/// its trace is continued.
///
/// Kept as the attempt's ids rather than the 55 bytes of its value: it rides in every outgoing request,
/// and a larger one costs every request (traced or not) a copy each time it moves.
#[derive(Clone, Copy)]
pub(super) struct TraceHead {
    pub(super) context: AttemptContext,
    pub(super) continued: bool,
}

impl TraceHead {
    /// Whether the request's own field `name` gives way to this context.
    pub(super) fn replaces(&self, name: &http::HeaderName) -> bool {
        *name == TRACEPARENT || (!self.continued && *name == TRACESTATE)
    }

    /// The `traceparent` value.
    pub(super) fn traceparent(&self) -> Traceparent {
        self.context.traceparent()
    }

    /// Puts the context in a request's field map (HTTP/2, whose fields go through one).
    pub(super) fn apply(&self, headers: &mut http::HeaderMap) {
        headers.insert(TRACEPARENT, self.traceparent().to_header_value());
        if !self.continued {
            headers.remove(TRACESTATE);
        }
    }
}
