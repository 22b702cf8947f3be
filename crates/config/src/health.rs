//! How an upstream's targets are judged healthy (`upstreams[].health_checks`): ejection on the failures
//! of real requests (Envoy's outlier detection) and the panic threshold.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{FieldError, HumanDuration};

/// Health of an upstream's targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthChecksConfig {
    /// Probes every target in the background and takes one that fails its probes out of service
    /// until it passes them again. Absent: no probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveHealthConfig>,
    /// Ejects a target that fails real requests, for a while (Envoy's outlier detection). Absent: no
    /// target is ever ejected on what requests see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<PassiveHealthConfig>,
    /// When fewer than this percentage of the targets are healthy, requests go to every target, healthy
    /// or not, rather than overloading the few left (Envoy's healthy panic threshold). `0` turns panic
    /// mode off.
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold: u8,
    /// With targets of several `priority` levels: the next level joins the ones before it while
    /// fewer than this percentage of their targets are in service.
    #[serde(default = "default_failover_threshold")]
    pub failover_threshold: u8,
}

impl Default for HealthChecksConfig {
    fn default() -> Self {
        Self {
            active: None,
            passive: None,
            panic_threshold: default_panic_threshold(),
            failover_threshold: default_failover_threshold(),
        }
    }
}

fn default_panic_threshold() -> u8 {
    50
}

fn default_failover_threshold() -> u8 {
    70
}

/// Background probes of every target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveHealthConfig {
    /// What a probe is.
    #[serde(default, rename = "type")]
    pub kind: ProbeKind,
    /// Path an `http` probe asks for.
    #[serde(default = "default_probe_path")]
    pub path: String,
    /// Statuses an `http` probe counts as passed. Default: any 2xx or 3xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u16>,
    /// `Host` (or `:authority`) of an `http` or `grpc` probe. Default: the target's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Header fields an `http` probe sends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The service a `grpc` probe asks about (`""`: the server as a whole).
    #[serde(default)]
    pub service: String,
    /// Time between two probes of one target.
    #[serde(default = "default_probe_interval")]
    pub interval: HumanDuration,
    /// Longest a probe may take (connecting included) before it counts as failed.
    #[serde(default = "default_probe_timeout")]
    pub timeout: HumanDuration,
    /// Probes passed in a row that bring a target back into service.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// Probes failed in a row that take a target out of service.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// A random delay up to this is added to each interval, so probes of many targets (and many
    /// gateways) do not fall on the same instant.
    #[serde(default = "default_probe_jitter")]
    pub jitter: HumanDuration,
}

impl Default for ActiveHealthConfig {
    fn default() -> Self {
        Self {
            kind: ProbeKind::default(),
            path: default_probe_path(),
            statuses: Vec::new(),
            host: None,
            headers: BTreeMap::new(),
            service: String::new(),
            interval: default_probe_interval(),
            timeout: default_probe_timeout(),
            healthy_threshold: default_healthy_threshold(),
            unhealthy_threshold: default_unhealthy_threshold(),
            jitter: default_probe_jitter(),
        }
    }
}

/// What an active probe does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// A `GET` of `path` over the upstream's own protocol and TLS; passed on one of `statuses`.
    #[default]
    Http,
    /// A `grpc.health.v1.Health/Check` call; passed on `SERVING`.
    Grpc,
    /// A TCP connection (and the TLS handshake, for a TLS upstream); passed once it is made.
    Tcp,
}

fn default_probe_path() -> String {
    "/".to_owned()
}

fn default_probe_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_probe_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}

fn default_healthy_threshold() -> u32 {
    2
}

fn default_unhealthy_threshold() -> u32 {
    3
}

fn default_probe_jitter() -> HumanDuration {
    HumanDuration::from_millis(0)
}

impl ActiveHealthConfig {
    /// Whether an `http` probe's `status` counts as passed.
    pub fn passes(&self, status: u16) -> bool {
        if self.statuses.is_empty() {
            (200..400).contains(&status)
        } else {
            self.statuses.contains(&status)
        }
    }

    fn validate_into(&self, at: &str, errors: &mut Vec<FieldError>) {
        if !self.path.starts_with('/') {
            errors.push(FieldError::new(format!("{at}.path"), "must start with /"));
        }
        for (i, status) in self.statuses.iter().enumerate() {
            if !(100..=599).contains(status) {
                errors.push(FieldError::new(
                    format!("{at}.statuses[{i}]"),
                    "must be a status code, 100 to 599",
                ));
            }
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                errors.push(FieldError::new(
                    format!("{at}.headers.{name}"),
                    "is not a valid header field",
                ));
            }
        }
        if self
            .host
            .as_deref()
            .is_some_and(|host| http::HeaderValue::from_str(host).is_err() || host.is_empty())
        {
            errors.push(FieldError::new(format!("{at}.host"), "is not a valid host"));
        }
        for (name, value) in [("interval", self.interval), ("timeout", self.timeout)] {
            value.require_nonzero(format!("{at}.{name}"), errors);
        }
        for (name, value) in [
            ("healthy_threshold", self.healthy_threshold),
            ("unhealthy_threshold", self.unhealthy_threshold),
        ] {
            if value == 0 {
                errors.push(FieldError::new(
                    format!("{at}.{name}"),
                    "must be at least 1",
                ));
            }
        }
    }
}

/// Ejection of targets on the outcomes of real requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PassiveHealthConfig {
    /// Responses with a 5xx status in a row, connection failures, resets and timeouts included, that
    /// eject a target. `0`: never on this count.
    #[serde(default = "default_consecutive")]
    pub consecutive_5xx: u32,
    /// Gateway errors in a row (a connection refused, reset or timed out, or a 502, 503 or 504 from the
    /// target) that eject a target. `0`: never on this count.
    #[serde(default = "default_consecutive")]
    pub consecutive_gateway_errors: u32,
    /// Ejects a target whose share of failed requests over an interval reaches a threshold. Absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<FailureRatioConfig>,
    /// How long a target's first ejection lasts; each further ejection lasts this much longer, up to
    /// `max_ejection_time`.
    #[serde(default = "default_base_ejection_time")]
    pub base_ejection_time: HumanDuration,
    /// Longest one ejection lasts. A target that stays in service this long has its count of ejections
    /// forgotten.
    #[serde(default = "default_max_ejection_time")]
    pub max_ejection_time: HumanDuration,
    /// Most targets ejected at once, as a percentage of the upstream's targets; one target may always
    /// be ejected, whatever the percentage.
    #[serde(default = "default_max_ejected_percent")]
    pub max_ejected_percent: u8,
}

impl Default for PassiveHealthConfig {
    fn default() -> Self {
        Self {
            consecutive_5xx: default_consecutive(),
            consecutive_gateway_errors: default_consecutive(),
            failure_ratio: None,
            base_ejection_time: default_base_ejection_time(),
            max_ejection_time: default_max_ejection_time(),
            max_ejected_percent: default_max_ejected_percent(),
        }
    }
}

fn default_consecutive() -> u32 {
    5
}

fn default_base_ejection_time() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_max_ejection_time() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_max_ejected_percent() -> u8 {
    10
}

/// Ejection on the share of failed requests over an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailureRatioConfig {
    /// Share of failed requests (5xx and gateway errors), above 0 and at most 1, that ejects a target.
    pub threshold: f64,
    /// Fewest requests in an interval for its share to count.
    #[serde(default = "default_minimum_requests")]
    pub minimum_requests: u32,
    /// Length of the interval the share is counted over.
    #[serde(default = "default_ratio_interval")]
    pub interval: HumanDuration,
}

fn default_minimum_requests() -> u32 {
    20
}

fn default_ratio_interval() -> HumanDuration {
    HumanDuration::from_secs(10)
}

impl HealthChecksConfig {
    /// Checks the ranges serde cannot, naming each field under `at` (`upstreams[0].health_checks`).
    pub(crate) fn validate_into(&self, at: &str, errors: &mut Vec<FieldError>) {
        if self.panic_threshold > 100 {
            errors.push(FieldError::new(
                format!("{at}.panic_threshold"),
                "must be a percentage, 0 to 100",
            ));
        }
        if self.failover_threshold > 100 {
            errors.push(FieldError::new(
                format!("{at}.failover_threshold"),
                "must be a percentage, 0 to 100",
            ));
        }
        if let Some(active) = &self.active {
            active.validate_into(&format!("{at}.active"), errors);
        }
        let Some(passive) = &self.passive else {
            return;
        };
        let at = format!("{at}.passive");
        if passive.max_ejected_percent > 100 {
            errors.push(FieldError::new(
                format!("{at}.max_ejected_percent"),
                "must be a percentage, 0 to 100",
            ));
        }
        let (base, max) = (
            passive.base_ejection_time.get(),
            passive.max_ejection_time.get(),
        );
        passive
            .base_ejection_time
            .require_nonzero(format!("{at}.base_ejection_time"), errors);
        if max < base {
            errors.push(FieldError::new(
                format!("{at}.max_ejection_time"),
                "must be at least base_ejection_time",
            ));
        }
        if let Some(ratio) = &passive.failure_ratio {
            if !(ratio.threshold > 0.0 && ratio.threshold <= 1.0) {
                errors.push(FieldError::new(
                    format!("{at}.failure_ratio.threshold"),
                    "must be above 0 and at most 1",
                ));
            }
            if ratio.minimum_requests == 0 {
                errors.push(FieldError::new(
                    format!("{at}.failure_ratio.minimum_requests"),
                    "must be at least 1",
                ));
            }
            ratio
                .interval
                .require_nonzero(format!("{at}.failure_ratio.interval"), errors);
        }
        if passive.consecutive_5xx == 0
            && passive.consecutive_gateway_errors == 0
            && passive.failure_ratio.is_none()
        {
            errors.push(FieldError::new(
                at,
                "ejects nothing: set consecutive_5xx, consecutive_gateway_errors or failure_ratio",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(config: &HealthChecksConfig) -> Vec<String> {
        let mut errors = Vec::new();
        config.validate_into("upstreams[0].health_checks", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let mut config = HealthChecksConfig::default();
        assert!(errors_of(&config).is_empty());
        config.passive = Some(PassiveHealthConfig::default());
        assert!(errors_of(&config).is_empty());
    }

    #[test]
    fn out_of_range_values_name_their_fields() {
        let config = HealthChecksConfig {
            active: None,
            failover_threshold: 70,
            panic_threshold: 101,
            passive: Some(PassiveHealthConfig {
                consecutive_5xx: 0,
                consecutive_gateway_errors: 0,
                failure_ratio: Some(FailureRatioConfig {
                    threshold: 1.5,
                    minimum_requests: 0,
                    interval: HumanDuration::from_secs(0),
                }),
                base_ejection_time: HumanDuration::from_secs(60),
                max_ejection_time: HumanDuration::from_secs(30),
                max_ejected_percent: 200,
            }),
        };
        assert_eq!(
            errors_of(&config),
            [
                "upstreams[0].health_checks.panic_threshold: must be a percentage, 0 to 100",
                "upstreams[0].health_checks.passive.max_ejected_percent: must be a percentage, 0 to 100",
                "upstreams[0].health_checks.passive.max_ejection_time: must be at least base_ejection_time",
                "upstreams[0].health_checks.passive.failure_ratio.threshold: must be above 0 and at most 1",
                "upstreams[0].health_checks.passive.failure_ratio.minimum_requests: must be at least 1",
                "upstreams[0].health_checks.passive.failure_ratio.interval: must be greater than zero",
            ]
        );
    }

    #[test]
    fn bad_probe_settings_name_their_fields() {
        let config = HealthChecksConfig {
            active: Some(ActiveHealthConfig {
                path: "health".to_owned(),
                statuses: vec![700],
                headers: [("bad name".to_owned(), "v".to_owned())].into(),
                interval: HumanDuration::from_secs(0),
                unhealthy_threshold: 0,
                ..ActiveHealthConfig::default()
            }),
            ..HealthChecksConfig::default()
        };
        assert_eq!(
            errors_of(&config),
            [
                "upstreams[0].health_checks.active.path: must start with /",
                "upstreams[0].health_checks.active.statuses[0]: must be a status code, 100 to 599",
                "upstreams[0].health_checks.active.headers.bad name: is not a valid header field",
                "upstreams[0].health_checks.active.interval: must be greater than zero",
                "upstreams[0].health_checks.active.unhealthy_threshold: must be at least 1",
            ]
        );
        let defaults = ActiveHealthConfig::default();
        assert!(defaults.passes(204) && defaults.passes(302) && !defaults.passes(500));
    }

    #[test]
    fn a_passive_check_that_ejects_nothing_is_refused() {
        let config = HealthChecksConfig {
            passive: Some(PassiveHealthConfig {
                consecutive_5xx: 0,
                consecutive_gateway_errors: 0,
                ..PassiveHealthConfig::default()
            }),
            ..HealthChecksConfig::default()
        };
        assert_eq!(
            errors_of(&config),
            ["upstreams[0].health_checks.passive: ejects nothing: set consecutive_5xx, consecutive_gateway_errors or failure_ratio"]
        );
    }
}
