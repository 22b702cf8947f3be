//! Distributed tracing: where spans go (an OpenTelemetry collector over OTLP), which requests are
//! kept, and which trace headers are read from clients.

use serde::{Deserialize, Serialize};

use schemars::JsonSchema;

use crate::{FieldError, HumanDuration};

/// The `tracing` section. Present: every request gets a trace context, its id goes upstream in
/// `traceparent`, and the kept ones are exported. Absent: no request pays for tracing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The collector's OTLP endpoint: `http://host:4317` for gRPC; for HTTP the URL spans are posted
    /// to, `/v1/traces` added when it has no path (`http://host:4318` becomes
    /// `http://host:4318/v1/traces`).
    pub endpoint: String,
    /// `grpc` (the default) or `http` (OTLP/HTTP with protobuf bodies).
    #[serde(default)]
    pub protocol: TraceProtocol,
    /// `service.name` of the spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of requests sampled at their start when the client sent no trace context, from 0 to 1; a
    /// request whose parent was sampled (or not) follows its parent. The rules in `keep` add to it.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// Requests kept whatever the ratio decided, once their response has ended.
    #[serde(default)]
    pub keep: TraceKeepConfig,
    /// Trace headers read from clients besides W3C `traceparent`: `b3` also reads Zipkin's `b3` and
    /// `X-B3-*` fields. Upstreams always get `traceparent` (and `tracestate` as received).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<TracePropagation>,
    /// Spans that may wait for the exporter; past that, spans are dropped and counted, never waited
    /// for.
    #[serde(default = "default_queue_spans")]
    pub queue_spans: usize,
    /// Longest wait for the collector per export; a batch that takes longer is dropped and counted.
    #[serde(default = "default_export_timeout")]
    pub export_timeout: HumanDuration,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TraceProtocol {
    /// OTLP over gRPC.
    #[default]
    Grpc,
    /// OTLP over HTTP, protobuf bodies.
    Http,
}

/// A trace header format read from clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TracePropagation {
    /// Zipkin's B3, single (`b3`) and multiple (`X-B3-TraceId`...) headers.
    B3,
}

/// The error-aware part of sampling, decided when the response ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceKeepConfig {
    /// Keep every request answered 500 or above.
    #[serde(default = "yes")]
    pub server_errors: bool,
    /// Keep every request with an upstream attempt that failed (refused, reset, timed out), even one a
    /// retry then saved.
    #[serde(default = "yes")]
    pub upstream_errors: bool,
    /// Keep requests a plugin of these names answered instead of forwarding (`rate-limit`,
    /// `jwt-auth`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugin_rejections: Vec<String>,
    /// Keep requests that took longer than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slower_than: Option<HumanDuration>,
}

impl Default for TraceKeepConfig {
    fn default() -> Self {
        Self {
            server_errors: true,
            upstream_errors: true,
            plugin_rejections: Vec::new(),
            slower_than: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_service_name() -> String {
    "floodgate".to_owned()
}

fn default_sample_ratio() -> f64 {
    0.01
}

fn default_queue_spans() -> usize {
    8192
}

fn default_export_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

impl TracingConfig {
    pub(crate) fn validate(&self, errors: &mut Vec<FieldError>) {
        match http::Uri::try_from(self.endpoint.as_str()) {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
            // The exporter is built without TLS: a collector is reached in clear text, usually a
            // local agent or sidecar that forwards over TLS.
            Ok(uri) if uri.scheme_str() == Some("https") => errors.push(FieldError::new(
                "tracing.endpoint",
                format!(
                    "{:?}: https is not supported yet; send to a collector or agent on http://",
                    self.endpoint
                ),
            )),
            _ => errors.push(FieldError::new(
                "tracing.endpoint",
                format!(
                    "{:?} is not an http:// URL such as \"http://127.0.0.1:4317\"",
                    self.endpoint
                ),
            )),
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            errors.push(FieldError::new(
                "tracing.sample_ratio",
                format!("must be between 0 and 1, got {}", self.sample_ratio),
            ));
        }
        if self.service_name.is_empty() {
            errors.push(FieldError::new("tracing.service_name", "must not be empty"));
        }
        if !(16..=1_048_576).contains(&self.queue_spans) {
            errors.push(FieldError::new(
                "tracing.queue_spans",
                "must be between 16 and 1048576",
            ));
        }
        self.export_timeout
            .require_nonzero("tracing.export_timeout", errors);
        if let Some(slower) = self.keep.slower_than {
            slower.require_nonzero("tracing.keep.slower_than", errors);
        }
    }

    /// The URL spans are posted to over HTTP: the endpoint, with `/v1/traces` when it has no path.
    pub fn http_traces_url(&self) -> String {
        let trimmed = self.endpoint.trim_end_matches('/');
        match http::Uri::try_from(trimmed) {
            Ok(uri) if uri.path() == "/" || uri.path().is_empty() => format!("{trimmed}/v1/traces"),
            _ => self.endpoint.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> TracingConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults() {
        let config = parse(serde_json::json!({ "endpoint": "http://127.0.0.1:4317" }));
        assert_eq!(config.protocol, TraceProtocol::Grpc);
        assert_eq!(config.sample_ratio, 0.01);
        assert!(config.keep.server_errors && config.keep.upstream_errors);
        assert_eq!(config.service_name, "floodgate");
        let mut errors = Vec::new();
        config.validate(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn mistakes_name_their_field() {
        let config = parse(serde_json::json!({
            "endpoint": "collector:4317",
            "sample_ratio": 2.0,
            "queue_spans": 1,
            "export_timeout": "0s",
            "keep": { "slower_than": "0s" },
        }));
        let mut errors = Vec::new();
        config.validate(&mut errors);
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tracing.endpoint",
                "tracing.sample_ratio",
                "tracing.queue_spans",
                "tracing.export_timeout",
                "tracing.keep.slower_than"
            ]
        );
    }

    #[test]
    fn https_is_refused_until_the_exporter_speaks_tls() {
        let config = parse(serde_json::json!({ "endpoint": "https://c:4317" }));
        let mut errors = Vec::new();
        config.validate(&mut errors);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("https is not supported yet"),
            "{errors:?}"
        );
    }

    #[test]
    fn the_http_url_gets_the_traces_path_when_it_has_none() {
        let url = |endpoint: &str| {
            parse(serde_json::json!({ "endpoint": endpoint, "protocol": "http" })).http_traces_url()
        };
        assert_eq!(url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(url("http://c/otlp/v1/traces"), "http://c/otlp/v1/traces");
    }
}
