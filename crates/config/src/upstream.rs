//! Upstream configuration: groups of targets, how to pick one, and how to talk to it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{CircuitBreakerConfig, HealthChecksConfig, HumanDuration};

/// A group of interchangeable targets that routes forward to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Unique id that routes refer to.
    pub id: String,
    /// The servers of this upstream; empty with `discovery`.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Where the targets are discovered instead: the instances registered in etcd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<crate::DiscoveryConfig>,
    /// How a target is chosen for each request.
    #[serde(default)]
    pub balancer: Balancer,
    /// What `consistent_hash` hashes on; required with that balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    /// The header or cookie name when `hash_on` is `header` or `cookie`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
    /// Protocol to the targets. Default: `http1` in cleartext; with `tls`, ALPN picks `h2` or `http/1.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<UpstreamProtocol>,
    /// Connect to the targets over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTlsConfig>,
    /// Longest time to establish a connection (TCP and TLS) to a target; 504 after that.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Longest wait between two reads of a response body once its head has arrived; past it the
    /// upstream connection and the client's are closed (the client has its head already).
    #[serde(default = "default_read_timeout")]
    pub read_timeout: HumanDuration,
    /// Most connections each worker opens to one target; when every target is at its limit the request
    /// gets 503. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_target: Option<u32>,
    /// Idle connection reuse.
    #[serde(default)]
    pub keepalive: KeepaliveConfig,
    /// How the targets are judged healthy, and what happens when too few are.
    #[serde(default)]
    pub health_checks: HealthChecksConfig,
    /// How the `ewma` balancer's latency estimate moves.
    #[serde(default)]
    pub ewma: EwmaConfig,
    /// Shifts traffic by the load the targets report in ORCA's `endpoint-load-metrics` response
    /// field. Absent: reports are not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_reports: Option<LoadReportsConfig>,
    /// Ramps a target added by a reload, or back in service after an ejection or failed probes, up
    /// to its full share over a window. Absent: full share at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStartConfig>,
    /// Limits past which requests get 503 at once, and the breaker that opens on failures. Absent:
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerConfig>,
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_read_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

/// Adaptive weights from the targets' load reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadReportsConfig {
    /// The smoothing's time constant: reports arriving this far apart move a target's estimate about
    /// two thirds of the way to the new value, closer ones less; no one report moves it more than half
    /// way.
    #[serde(default = "default_report_period")]
    pub period: HumanDuration,
    /// The least share a target keeps, as a percentage of its weight, however loaded it says it is.
    #[serde(default = "default_report_min_weight")]
    pub min_weight_percent: u8,
}

fn default_report_period() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_report_min_weight() -> u8 {
    10
}

/// Slow start (Envoy's `slow_start_config`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowStartConfig {
    /// How long a target takes to reach its full share.
    pub window: HumanDuration,
    /// How the share grows over the window: 1 is linear, above 1 faster at first, below 1 slower.
    /// The share is `(time in service / window) ^ (1 / aggression)`.
    #[serde(default = "default_aggression")]
    pub aggression: f64,
    /// The share a target starts at, as a percentage of its full share.
    #[serde(default = "default_min_weight_percent")]
    pub min_weight_percent: u8,
}

fn default_aggression() -> f64 {
    1.0
}

fn default_min_weight_percent() -> u8 {
    10
}

/// The `ewma` balancer's latency estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EwmaConfig {
    /// The estimate's time constant: an observation this old weighs 1/e of a fresh one, and an idle
    /// target's estimate sinks toward 0 over about this long, so it is tried again.
    #[serde(default = "default_ewma_decay")]
    pub decay: HumanDuration,
    /// The estimate of a target not yet observed.
    #[serde(default = "default_ewma_rtt")]
    pub default_rtt: HumanDuration,
}

impl Default for EwmaConfig {
    fn default() -> Self {
        Self {
            decay: default_ewma_decay(),
            default_rtt: default_ewma_rtt(),
        }
    }
}

fn default_ewma_decay() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_ewma_rtt() -> HumanDuration {
    HumanDuration::from_millis(30)
}

/// One server of an upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `host:port`; the host may be an IP address or a DNS name.
    pub address: String,
    /// Relative share of requests (1 to 10000).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Its priority level: 0 (the default) is the first; a higher level gets traffic only while the
    /// levels before it have too few targets in service (`health_checks.failover_threshold`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn default_weight() -> u32 {
    1
}

/// How a target is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Smooth weighted round robin (nginx's algorithm).
    #[default]
    RoundRobin,
    /// Weighted random choice.
    Random,
    /// Power of two choices on in-flight requests per unit of weight.
    LeastRequest,
    /// Power of two choices on peak-EWMA latency times requests in flight, per unit of weight
    /// (Finagle's and linkerd2-proxy's balancer).
    Ewma,
    /// Ketama consistent hashing on `hash_on`; a request without the key falls back to round robin.
    ConsistentHash,
}

/// The request property consistent hashing uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// The value of the request header named by `hash_key`.
    Header,
    /// The value of the cookie named by `hash_key`.
    Cookie,
    /// The client's IP address.
    ClientIp,
    /// The request path (without query).
    Path,
}

/// Protocol spoken to the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (with TLS, ALPN offers only `http/1.1`).
    Http1,
    /// HTTP/2: prior knowledge (h2c) in cleartext, ALPN `h2` with TLS. Needed for gRPC.
    #[serde(alias = "h2c", alias = "http2_prior_knowledge")]
    Http2,
}

/// TLS to the targets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM file of CA certificates to verify targets against; default: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Server name to send and verify; default: the target's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Accept any certificate. For tests only: it turns TLS into encryption without authentication.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Reuse of idle upstream connections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepaliveConfig {
    /// How long an idle connection is kept before it is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Most idle connections each worker keeps per target.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_target: usize,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        Self {
            idle_timeout: default_idle_timeout(),
            max_idle_per_target: default_max_idle(),
        }
    }
}

fn default_idle_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_max_idle() -> usize {
    128
}
