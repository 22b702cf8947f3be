//! Limits of the HTTP/2 server that clients talk to (h2c and h2 over TLS): the settings that bound what
//! one connection may cost, and the timers that close connections nobody uses.
//!
//! The defaults follow what nginx, Envoy and hyper ship with after the 2023 rapid-reset attack
//! (CVE-2023-44487): a modest stream limit, a small budget of streams a client may reset before the
//! server even accepted them, and keep-alive pings so dead peers do not hold connections forever.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ByteSize, FieldError, HumanDuration};

/// The HTTP/2 server's per-connection limits and timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Http2Config {
    /// Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS); more
    /// are refused with REFUSED_STREAM. Default 128.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// Largest decoded header list a request may carry (SETTINGS_MAX_HEADER_LIST_SIZE, counted as RFC 9113
    /// §6.5.2 does: name + value + 32 per field, 1KiB to 1MiB); larger requests get 431 and their stream is
    /// refused. It also bounds the CONTINUATION frames a header block may span. Default 64KiB.
    #[serde(default = "default_max_header_list_size")]
    pub max_header_list_size: ByteSize,
    /// Streams a client may open and reset before the server accepted them, at one time; beyond it the
    /// connection is closed with GOAWAY ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487). Default 20.
    #[serde(default = "default_max_pending_accept_reset_streams")]
    pub max_pending_accept_reset_streams: usize,
    /// Streams the server may reset because the client broke the protocol on them, per connection; beyond
    /// it the connection is closed with GOAWAY ENHANCE_YOUR_CALM (CVE-2025-8671, "MadeYouReset").
    /// Default 256.
    #[serde(default = "default_max_local_error_reset_streams")]
    pub max_local_error_reset_streams: usize,
    /// How often to send a PING to a connection to check that the client is still there; `0s` sends none.
    /// Default 60s.
    #[serde(default = "default_keepalive_interval")]
    pub keepalive_interval: HumanDuration,
    /// How long to wait for the answer to a keep-alive PING before closing the connection. Default 20s.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: HumanDuration,
    /// Close a connection (GOAWAY, then close) that has had no open stream for this long; `0s` never does.
    /// Default 300s.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
}

impl Default for Http2Config {
    fn default() -> Self {
        Self {
            max_concurrent_streams: default_max_concurrent_streams(),
            max_header_list_size: default_max_header_list_size(),
            max_pending_accept_reset_streams: default_max_pending_accept_reset_streams(),
            max_local_error_reset_streams: default_max_local_error_reset_streams(),
            keepalive_interval: default_keepalive_interval(),
            keepalive_timeout: default_keepalive_timeout(),
            idle_timeout: default_idle_timeout(),
        }
    }
}

fn default_max_concurrent_streams() -> u32 {
    128
}

fn default_max_header_list_size() -> ByteSize {
    ByteSize(64 * 1024)
}

fn default_max_pending_accept_reset_streams() -> usize {
    20
}

fn default_max_local_error_reset_streams() -> usize {
    256
}

fn default_keepalive_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_keepalive_timeout() -> HumanDuration {
    HumanDuration::from_secs(20)
}

fn default_idle_timeout() -> HumanDuration {
    HumanDuration::from_secs(300)
}

impl Http2Config {
    /// Adds every problem with these settings to `errors`, with paths under `http2`.
    pub(crate) fn validate_into(&self, errors: &mut Vec<FieldError>) {
        if self.max_concurrent_streams == 0 {
            errors.push(FieldError::new(
                "http2.max_concurrent_streams",
                "must be at least 1",
            ));
        }
        // The upper bound matches `limits.max_header_bytes`: a header list past it is refused anyway.
        if !(1024..=1024 * 1024).contains(&self.max_header_list_size.get()) {
            errors.push(FieldError::new(
                "http2.max_header_list_size",
                "must be between 1KiB and 1MiB",
            ));
        }
        if self.max_pending_accept_reset_streams == 0 {
            errors.push(FieldError::new(
                "http2.max_pending_accept_reset_streams",
                "must be at least 1",
            ));
        }
        if self.max_local_error_reset_streams == 0 {
            errors.push(FieldError::new(
                "http2.max_local_error_reset_streams",
                "must be at least 1",
            ));
        }
        if !self.keepalive_interval.get().is_zero() && self.keepalive_timeout.get().is_zero() {
            errors.push(FieldError::new(
                "http2.keepalive_timeout",
                "must be more than 0s while keepalive_interval is set",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(config: &Http2Config) -> Vec<String> {
        let mut errors = Vec::new();
        config.validate_into(&mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let defaults = Http2Config::default();
        assert!(errors_of(&defaults).is_empty());
        assert_eq!(defaults.max_concurrent_streams, 128);
        assert_eq!(defaults.max_header_list_size.get(), 64 * 1024);
        assert_eq!(defaults.idle_timeout.get().as_secs(), 300);
    }

    #[test]
    fn zero_limits_are_refused_with_their_paths() {
        let config = Http2Config {
            max_concurrent_streams: 0,
            max_header_list_size: ByteSize(10),
            max_pending_accept_reset_streams: 0,
            max_local_error_reset_streams: 0,
            keepalive_timeout: HumanDuration::from_secs(0),
            ..Http2Config::default()
        };
        assert_eq!(
            errors_of(&config),
            [
                "http2.max_concurrent_streams: must be at least 1",
                "http2.max_header_list_size: must be between 1KiB and 1MiB",
                "http2.max_pending_accept_reset_streams: must be at least 1",
                "http2.max_local_error_reset_streams: must be at least 1",
                "http2.keepalive_timeout: must be more than 0s while keepalive_interval is set",
            ]
        );
    }

    #[test]
    fn timers_can_be_switched_off() {
        let config = Http2Config {
            keepalive_interval: HumanDuration::from_secs(0),
            keepalive_timeout: HumanDuration::from_secs(0),
            idle_timeout: HumanDuration::from_secs(0),
            ..Http2Config::default()
        };
        assert!(errors_of(&config).is_empty());
    }
}
