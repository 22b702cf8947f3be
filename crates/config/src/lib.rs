//! floodgate's configuration: the schema a user writes (YAML file, and later the admin API and etcd keys),
//! its defaults, and a validation pass that reports every error with the path of the field at fault.
//!
//! This crate only describes and checks configuration. It does not open sockets, read certificates or compile
//! routes: the proxy builds its runtime `Snapshot` from a [`Config`] that has passed [`Config::validate`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::disallowed_types, clippy::disallowed_methods)]

mod access_log;
mod admin;
mod breaker;
mod certificate;
mod config_source;
mod consumer;
mod discovery;
mod dns;
mod duration;
mod error;
mod health;
mod http2;
mod listener;
mod load;
mod method_gaps;
mod path_normalization;
mod path_pattern;
mod retries;
mod route;
mod size;
mod timeouts;
mod tracing_config;
mod unchanged;
mod upstream;
mod validate;
mod validate_change;

use std::sync::Arc;

pub use access_log::{
    AccessLogConfig, AccessLogFormat, LogPart, LogTemplate, LogVariable, COMBINED_TEMPLATE,
    COMMON_TEMPLATE,
};
pub use admin::AdminConfig;
pub use breaker::{BreakerRatioConfig, CircuitBreakerConfig};
pub use certificate::CertificateResource;
pub use config_source::{ConfigSource, EtcdSourceConfig, EtcdTlsConfig, SourceKind};
pub use consumer::{ConsumerConfig, RealIpConfig};
pub use discovery::{DiscoveryConfig, EtcdDiscoveryConfig};
pub use dns::{DnsConfig, LookupFamily};
pub use duration::HumanDuration;
pub use error::{ConfigError, FieldError};
pub use health::{
    ActiveHealthConfig, FailureRatioConfig, HealthChecksConfig, PassiveHealthConfig, ProbeKind,
};
pub use http2::Http2Config;
pub use listener::{CertificateConfig, ListenerConfig, ListenerTlsConfig, UnderscoresInHeaders};
pub use load::{
    default_config, parse_item_json, parse_json, parse_yaml, DEFAULT_CONFIG_YAML, TOP_LEVEL_FIELDS,
};
pub use path_normalization::{EscapedSlashes, ForwardPath, PathNormalizationConfig, Semicolons};
pub use path_pattern::{PathPattern, PathSegment};
pub use retries::{BackoffConfig, RetriesConfig, RetryBudgetConfig, RetryOn};
pub use route::{DirectResponse, MethodOverride, RouteConfig};
pub use size::ByteSize;
pub use timeouts::TimeoutsConfig;
pub use tracing_config::{TraceKeepConfig, TracePropagation, TraceProtocol, TracingConfig};
pub use unchanged::{gone_items, same_items};
pub use upstream::{
    Balancer, EwmaConfig, HashOn, KeepaliveConfig, LoadReportsConfig, SlowStartConfig,
    TargetConfig, UpstreamConfig, UpstreamProtocol, UpstreamTlsConfig,
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole configuration of one floodgate process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Number of worker threads, each with its own listeners and upstream pools. Default: number of cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits anyway.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: HumanDuration,
    /// Addresses the gateway accepts client traffic on.
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    /// The admin listener: health, readiness and metrics.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Limits applied to every client request.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// How long the gateway waits on slow or silent clients.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Limits and timers of the HTTP/2 server clients talk to.
    #[serde(default)]
    pub http2: Http2Config,
    /// The access log (JSON or text lines); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogConfig>,
    /// Distributed tracing exported to an OpenTelemetry collector; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
    /// How targets given by host name are resolved.
    #[serde(default)]
    pub dns: DnsConfig,
    /// Groups of targets that routes forward to.
    #[serde(default)]
    pub upstreams: Vec<Arc<UpstreamConfig>>,
    /// Rules that map requests to upstreams.
    #[serde(default)]
    pub routes: Vec<Arc<RouteConfig>>,
    /// Plugins that run on every route (a route's plugin of the same name replaces the global one);
    /// see docs/plugins.md.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub global_plugins: std::collections::BTreeMap<String, serde_json::Value>,
    /// Clients that authentication plugins identify.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<Arc<ConsumerConfig>>,
    /// Certificates given inline, served by every TLS listener for their names (SNI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<Arc<CertificateResource>>,
    /// How the client's address is found behind trusted proxies.
    #[serde(default)]
    pub real_ip: RealIpConfig,
    /// Where routes, upstreams, consumers and global plugins come from: this file (the default) or etcd.
    #[serde(default, skip_serializing_if = "is_file_source")]
    pub config_source: ConfigSource,
}

fn is_file_source(source: &ConfigSource) -> bool {
    *source == ConfigSource::default()
}

fn default_shutdown_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// Limits on what a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest total size of a request's header block (1KiB to 1MiB); larger requests get 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// Largest request body; larger bodies get 413. Routes may lower or raise it.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: ByteSize,
    /// Client connections open at once across all workers and listeners; a new connection past it is
    /// closed as soon as it is accepted. `0`, the default, sets no limit (the file-descriptor limit does).
    #[serde(default)]
    pub max_connections: u64,
    /// Requests one worker serves at once, from their arrival to the end of their response; more get 503
    /// at once. `0` sets no limit. Default 10000.
    #[serde(default = "default_max_requests_in_flight_per_worker")]
    pub max_requests_in_flight_per_worker: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: default_max_header_bytes(),
            max_body_bytes: default_max_body_bytes(),
            max_connections: 0,
            max_requests_in_flight_per_worker: default_max_requests_in_flight_per_worker(),
        }
    }
}

fn default_max_header_bytes() -> ByteSize {
    ByteSize(64 * 1024)
}

fn default_max_body_bytes() -> ByteSize {
    ByteSize(100 * 1024 * 1024)
}

fn default_max_requests_in_flight_per_worker() -> u64 {
    10_000
}

impl Config {
    /// The number of workers to run: the configured value, or the number of cores.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }

    /// The JSON Schema of the configuration file, pretty-printed.
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(Config);
        serde_json::to_string_pretty(&schema).unwrap_or_default()
    }
}
