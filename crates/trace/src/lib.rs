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

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method, Uri, Version};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    fn tracer(
        json: serde_json::Value,
    ) -> (
        Tracer,
        tokio::sync::mpsc::Receiver<opentelemetry_sdk::trace::SpanData>,
    ) {
        let mut config = serde_json::json!({ "endpoint": "http://127.0.0.1:4317" });
        config
            .as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        let config: TracingConfig = serde_json::from_value(config).unwrap();
        let (queue, rx) = SpanQueue::for_tests();
        (Tracer::new(&config, queue), rx)
    }

    /// Runs one request through `tracer` and says how many spans it queued.
    fn spans_of(
        (tracer, rx): &mut (
            Tracer,
            tokio::sync::mpsc::Receiver<opentelemetry_sdk::trace::SpanData>,
        ),
        traceparent: Option<&str>,
        attempt: Option<AttemptOutcome>,
        end: Finished<'_>,
    ) -> usize {
        let mut headers = HeaderMap::new();
        if let Some(value) = traceparent {
            headers.insert("traceparent", HeaderValue::from_str(value).unwrap());
        }
        let uri = Uri::from_static("/api/x?q=1");
        let mut trace = tracer.start(
            &headers,
            Instant::now(),
            &RequestFacts {
                has_context: traceparent.is_some(),
                uri: &uri,
                tls: false,
                client: IpAddr::V4(Ipv4Addr::LOCALHOST),
                version: Version::HTTP_11,
            },
        );
        if let Some(outcome) = attempt {
            trace.attempt_started(Instant::now());
            trace.attempt_ended(SocketAddr::from(([10, 0, 0, 1], 80)), outcome);
        }
        tracer.finish(trace, &end);
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    fn ended(status: u16) -> Finished<'static> {
        Finished {
            method: &Method::GET,
            status,
            route: Some("api"),
            rejected_by: None,
            elapsed: Duration::from_millis(5),
        }
    }

    #[test]
    fn the_keep_rules_decide_at_the_end() {
        let mut t = tracer(serde_json::json!({
            "sample_ratio": 0,
            "keep": { "plugin_rejections": ["rate-limit"], "slower_than": "1s" },
        }));
        let ok = Some(AttemptOutcome::Status(200));
        assert_eq!(spans_of(&mut t, None, ok, ended(200)), 0, "ratio 0");
        assert_eq!(
            spans_of(&mut t, None, Some(AttemptOutcome::Status(503)), ended(503)),
            2
        );
        assert_eq!(
            spans_of(&mut t, None, None, ended(500)),
            1,
            "no attempt: one span"
        );
        assert_eq!(
            spans_of(
                &mut t,
                None,
                Some(AttemptOutcome::Failed("connect")),
                ended(200)
            ),
            2,
            "a failed attempt"
        );
        let rejected = |plugin| Finished {
            rejected_by: Some(plugin),
            ..ended(429)
        };
        assert_eq!(spans_of(&mut t, None, None, rejected("rate-limit")), 1);
        assert_eq!(
            spans_of(&mut t, None, None, rejected("cors")),
            0,
            "not named"
        );
        let slow = Finished {
            elapsed: Duration::from_millis(1500),
            ..ended(200)
        };
        assert_eq!(spans_of(&mut t, None, ok, slow), 2);
    }

    #[test]
    fn the_rules_can_be_turned_off() {
        let mut t = tracer(serde_json::json!({
            "sample_ratio": 0,
            "keep": { "server_errors": false, "upstream_errors": false },
        }));
        assert_eq!(
            spans_of(&mut t, None, Some(AttemptOutcome::Status(502)), ended(502)),
            0
        );
        assert_eq!(
            spans_of(
                &mut t,
                None,
                Some(AttemptOutcome::Failed("reset")),
                ended(200)
            ),
            0
        );
    }

    #[test]
    fn the_parents_decision_comes_first() {
        let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let mut none = tracer(serde_json::json!({ "sample_ratio": 0 }));
        assert_eq!(spans_of(&mut none, Some(sampled), None, ended(200)), 1);
        let mut all = tracer(serde_json::json!({ "sample_ratio": 1 }));
        assert_eq!(spans_of(&mut all, Some(unsampled), None, ended(200)), 0);
        assert_eq!(
            spans_of(&mut all, Some(unsampled), None, ended(500)),
            1,
            "but errors"
        );
        assert_eq!(spans_of(&mut all, None, None, ended(200)), 1);
    }
}
