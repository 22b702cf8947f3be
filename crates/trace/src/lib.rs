//! floodgate's distributed tracing (OpenTelemetry): the trace context read from clients
//! ([`context`]), one server span per request and a client span per upstream attempt
//! ([`RequestTrace`]), and their export over OTLP ([`SpanQueue`]).
//!
//! No SDK tracer runs on the request path. A request carries a small [`RequestTrace`] (ids, times,
//! its attempts); when its response ends the [`Tracer`] decides whether it is kept, which lets the
//! decision look at the outcome (every 5xx, every upstream failure, the plugin rejections and slow
//! requests the operator names, on top of a parent-based ratio), and only a kept request's spans are
//! built and queued.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod context;
mod export;
pub mod fuzzing;
mod request;

use std::sync::Arc;
use std::time::Instant;

use floodgate_config::{TraceKeepConfig, TracePropagation, TracingConfig};
use http::HeaderMap;
use opentelemetry::InstrumentationScope;

pub use export::SpanQueue;
pub use request::{AttemptOutcome, Finished, RequestFacts, RequestTrace};

/// A configuration's tracing: its sampling and keep rules, and the queue its spans go to.
pub struct Tracer {
    ratio: f64,
    keep: TraceKeepConfig,
    accepts_b3: bool,
    queue: Arc<SpanQueue>,
    scope: InstrumentationScope,
}

impl Tracer {
    /// The tracing `config` asks for, its spans going to `queue`.
    pub fn new(config: &TracingConfig, queue: Arc<SpanQueue>) -> Tracer {
        Tracer {
            ratio: config.sample_ratio,
            keep: config.keep.clone(),
            accepts_b3: config.accept.contains(&TracePropagation::B3),
            queue,
            scope: InstrumentationScope::builder("floodgate")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        }
    }

    /// Starts the trace of a request that arrived at `started` with `headers`.
    pub fn start(
        &self,
        headers: &HeaderMap,
        started: Instant,
        facts: &RequestFacts<'_>,
    ) -> Box<RequestTrace> {
        Box::new(RequestTrace::start(self, headers, started, facts))
    }

    /// Ends `trace`: when the request is kept, its spans are queued for export.
    pub fn finish(&self, trace: Box<RequestTrace>, end: &Finished<'_>) {
        let spans = trace.finish(self, end);
        if !spans.is_empty() {
            self.queue.push(spans);
        }
    }

    /// The head decision for a request whose parent did not decide: the configured ratio.
    fn head_sample(&self) -> bool {
        self.ratio >= 1.0 || (self.ratio > 0.0 && fastrand::f64() < self.ratio)
    }
}
