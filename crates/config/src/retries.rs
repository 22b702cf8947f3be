//! Retrying a failed upstream attempt (`routes[].retries`), Envoy's retry policy in its nouns.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ByteSize, FieldError, HumanDuration};

/// Most attempts a route may make for one request.
const MAX_ATTEMPTS: u32 = 10;

/// Largest `buffer_body`: a buffered body is held in memory until the request ends.
const MAX_BUFFER_BODY: u64 = 16 << 20;

/// When and how often a route tries a request again on another target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetriesConfig {
    /// Attempts in all, the first one included (2: one retry), at most 10.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The failures that are tried again.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<RetryOn>,
    /// Response statuses from the upstream that are tried again as well (Envoy's
    /// `retriable_status_codes`), besides those `gateway_error` names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u16>,
    /// Longest wait for one attempt's response head; past it the attempt counts as timed out (and is
    /// tried again under `gateway_error`). Absent: the route's `timeout` bounds every attempt together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<HumanDuration>,
    /// Waits between attempts.
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// Caps retries against the requests in flight, so a failing upstream cannot set off a retry storm.
    #[serde(default)]
    pub budget: RetryBudgetConfig,
    /// Also retry methods that are not idempotent (`POST`, `PATCH`). A request whose body has started
    /// to leave the gateway is never retried unless it was buffered (`buffer_body`), whatever this says.
    #[serde(default)]
    pub non_idempotent: bool,
    /// A request body of at most this many bytes is read whole before the first attempt and kept, so
    /// any attempt can send it again (as nginx's request buffering and Envoy's retry buffer do). A
    /// longer one streams to the first target and is never sent again; `0` buffers nothing. Applies
    /// only to requests the route may retry (see `non_idempotent`). At most 16MiB.
    #[serde(default = "default_buffer_body")]
    pub buffer_body: ByteSize,
    /// A `503` or `429` whose `Retry-After` asks for at most this long is retried after that wait
    /// (instead of the backoff); one asking for longer is passed to the client as it is.
    #[serde(default = "default_retry_after_limit")]
    pub retry_after_limit: HumanDuration,
}

impl Default for RetriesConfig {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            retry_on: default_retry_on(),
            statuses: Vec::new(),
            per_try_timeout: None,
            backoff: BackoffConfig::default(),
            budget: RetryBudgetConfig::default(),
            non_idempotent: false,
            buffer_body: default_buffer_body(),
            retry_after_limit: default_retry_after_limit(),
        }
    }
}

fn default_attempts() -> u32 {
    2
}

fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::ConnectFailure, RetryOn::RefusedStream]
}

fn default_buffer_body() -> ByteSize {
    ByteSize(64 << 10)
}

fn default_retry_after_limit() -> HumanDuration {
    HumanDuration::from_secs(1)
}

/// A failure a route may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// The target could not be connected to (refused, unreachable, connect timeout, TLS handshake):
    /// nothing of the request left the gateway.
    ConnectFailure,
    /// The connection was reset or closed before a whole response head arrived.
    Reset,
    /// The HTTP/2 upstream refused the stream (`REFUSED_STREAM`, or a `GOAWAY` before it): the upstream
    /// did not process it.
    RefusedStream,
    /// A `502`, `503` or `504` from the target, or an attempt past `per_try_timeout`.
    GatewayError,
}

/// Exponential backoff with full jitter between attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// The first retry waits a random time up to this; each later one up to twice the one before.
    #[serde(default = "default_backoff_base")]
    pub base: HumanDuration,
    /// Longest wait before a retry.
    #[serde(default = "default_backoff_max")]
    pub max: HumanDuration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: default_backoff_base(),
            max: default_backoff_max(),
        }
    }
}

fn default_backoff_base() -> HumanDuration {
    HumanDuration::from_millis(25)
}

fn default_backoff_max() -> HumanDuration {
    HumanDuration::from_millis(250)
}

/// The retry budget: retries in flight at most `percent` of the requests in flight to the upstream,
/// but always at least `min_retries` (Envoy's `retry_budget`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// Retries in flight as a percentage of the requests in flight, 0 to 100.
    #[serde(default = "default_budget_percent")]
    pub percent: u8,
    /// Retries in flight allowed whatever the percentage says (so a quiet upstream can still retry).
    #[serde(default = "default_min_retries")]
    pub min_retries: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            percent: default_budget_percent(),
            min_retries: default_min_retries(),
        }
    }
}

fn default_budget_percent() -> u8 {
    20
}

fn default_min_retries() -> u32 {
    3
}

impl RetriesConfig {
    /// Checks the ranges serde cannot, naming each field under `at` (`routes[0].retries`).
    pub(crate) fn validate_into(&self, at: &str, errors: &mut Vec<FieldError>) {
        if !(1..=MAX_ATTEMPTS).contains(&self.attempts) {
            errors.push(FieldError::new(
                format!("{at}.attempts"),
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            ));
        }
        for (i, status) in self.statuses.iter().enumerate() {
            if !(100..=599).contains(status) {
                errors.push(FieldError::new(
                    format!("{at}.statuses[{i}]"),
                    "must be a status code, 100 to 599",
                ));
            }
        }
        if let Some(timeout) = self.per_try_timeout {
            timeout.require_nonzero(format!("{at}.per_try_timeout"), errors);
        }
        if self.backoff.max.get() < self.backoff.base.get() {
            errors.push(FieldError::new(
                format!("{at}.backoff.max"),
                "must be at least backoff.base",
            ));
        }
        if self.buffer_body.get() > MAX_BUFFER_BODY {
            errors.push(FieldError::new(
                format!("{at}.buffer_body"),
                "must be at most 16MiB",
            ));
        }
        if self.budget.percent > 100 {
            errors.push(FieldError::new(
                format!("{at}.budget.percent"),
                "must be a percentage, 0 to 100",
            ));
        }
    }

    /// Whether `status` from the upstream is tried again.
    pub fn retries_status(&self, status: u16) -> bool {
        (matches!(status, 502..=504) && self.retry_on.contains(&RetryOn::GatewayError))
            || self.statuses.contains(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(config: &RetriesConfig) -> Vec<String> {
        let mut errors = Vec::new();
        config.validate_into("routes[0].retries", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert!(errors_of(&RetriesConfig::default()).is_empty());
    }

    #[test]
    fn out_of_range_values_name_their_fields() {
        let config = RetriesConfig {
            attempts: 11,
            statuses: vec![503, 42],
            per_try_timeout: Some(HumanDuration::from_secs(0)),
            backoff: BackoffConfig {
                base: HumanDuration::from_secs(1),
                max: HumanDuration::from_millis(10),
            },
            budget: RetryBudgetConfig {
                percent: 120,
                min_retries: 0,
            },
            buffer_body: ByteSize(MAX_BUFFER_BODY + 1),
            ..RetriesConfig::default()
        };
        assert_eq!(
            errors_of(&config),
            [
                "routes[0].retries.attempts: must be between 1 and 10",
                "routes[0].retries.statuses[1]: must be a status code, 100 to 599",
                "routes[0].retries.per_try_timeout: must be greater than zero",
                "routes[0].retries.backoff.max: must be at least backoff.base",
                "routes[0].retries.buffer_body: must be at most 16MiB",
                "routes[0].retries.budget.percent: must be a percentage, 0 to 100",
            ]
        );
    }

    #[test]
    fn gateway_error_names_502_to_504_and_statuses_add_to_them() {
        let mut config = RetriesConfig::default();
        assert!(!config.retries_status(503));
        config.retry_on.push(RetryOn::GatewayError);
        config.statuses.push(409);
        assert!(config.retries_status(502) && config.retries_status(504));
        assert!(config.retries_status(409));
        assert!(!config.retries_status(500));
    }
}
