//! An upstream's circuit breaker (`upstreams[].circuit_breaker`): Envoy's thresholds, and a breaker on
//! the failure ratio that opens, half-opens with a probe budget, and closes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{FieldError, HumanDuration};

/// Limits that answer 503 at once rather than pile more onto a struggling upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    /// Most connections open to the upstream's targets at once, all workers together. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Most requests waiting for a new connection to be made at once. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Most requests in flight to the upstream at once. Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Most retries in flight to the upstream at once (on top of each route's retry budget). Absent:
    /// no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Opens the circuit when the share of failed requests over a window reaches a threshold. Absent:
    /// the circuit never opens on failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_ratio: Option<BreakerRatioConfig>,
}

/// The failure-ratio breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerRatioConfig {
    /// Share of failed requests (5xx and gateway failures), above 0 and at most 1, that opens the
    /// circuit.
    pub threshold: f64,
    /// Fewest requests in a window for its share to count.
    #[serde(default = "default_minimum_requests")]
    pub minimum_requests: u32,
    /// Length of the window the share is counted over.
    #[serde(default = "default_window")]
    pub window: HumanDuration,
    /// How long the circuit stays open before letting probe requests through (half-open).
    #[serde(default = "default_open_time")]
    pub open_time: HumanDuration,
    /// Requests let through while half-open; when all of them succeed the circuit closes, and one
    /// failure opens it again.
    #[serde(default = "default_half_open_requests")]
    pub half_open_requests: u32,
}

fn default_minimum_requests() -> u32 {
    20
}

fn default_window() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_open_time() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_half_open_requests() -> u32 {
    5
}

impl CircuitBreakerConfig {
    /// Checks the ranges serde cannot, naming each field under `at` (`upstreams[0].circuit_breaker`).
    pub(crate) fn validate_into(&self, at: &str, errors: &mut Vec<FieldError>) {
        for (name, limit) in [
            ("max_connections", self.max_connections),
            ("max_pending_requests", self.max_pending_requests),
            ("max_requests", self.max_requests),
        ] {
            if limit == Some(0) {
                errors.push(FieldError::new(
                    format!("{at}.{name}"),
                    "must be at least 1 (omit it for no limit)",
                ));
            }
        }
        let Some(ratio) = &self.failure_ratio else {
            return;
        };
        let at = format!("{at}.failure_ratio");
        if !(ratio.threshold > 0.0 && ratio.threshold <= 1.0) {
            errors.push(FieldError::new(
                format!("{at}.threshold"),
                "must be above 0 and at most 1",
            ));
        }
        for (name, value) in [
            ("minimum_requests", ratio.minimum_requests),
            ("half_open_requests", ratio.half_open_requests),
        ] {
            if value == 0 {
                errors.push(FieldError::new(
                    format!("{at}.{name}"),
                    "must be at least 1",
                ));
            }
        }
        for (name, value) in [("window", ratio.window), ("open_time", ratio.open_time)] {
            value.require_nonzero(format!("{at}.{name}"), errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_name_their_fields() {
        let config = CircuitBreakerConfig {
            max_requests: Some(0),
            failure_ratio: Some(BreakerRatioConfig {
                threshold: 0.0,
                minimum_requests: 0,
                window: HumanDuration::from_secs(0),
                open_time: HumanDuration::from_secs(1),
                half_open_requests: 1,
            }),
            ..CircuitBreakerConfig::default()
        };
        let mut errors = Vec::new();
        config.validate_into("upstreams[1].circuit_breaker", &mut errors);
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "upstreams[1].circuit_breaker.max_requests: must be at least 1 (omit it for no limit)",
                "upstreams[1].circuit_breaker.failure_ratio.threshold: must be above 0 and at most 1",
                "upstreams[1].circuit_breaker.failure_ratio.minimum_requests: must be at least 1",
                "upstreams[1].circuit_breaker.failure_ratio.window: must be greater than zero",
            ]
        );
    }
}
