//! The passive check's settings in the form the request path reads them.

use floodgate_config::PassiveHealthConfig;

/// `health_checks.passive`, with its times in milliseconds.
#[derive(Debug, Clone)]
pub(crate) struct OutlierPolicy {
    /// 5xx in a row that eject; 0: never.
    pub consecutive_5xx: u32,
    /// Gateway errors in a row that eject; 0: never.
    pub consecutive_gateway: u32,
    pub failure_ratio: Option<FailureRatio>,
    pub base_ejection_ms: u64,
    pub max_ejection_ms: u64,
    pub max_ejected_percent: u8,
}

/// `failure_ratio`, with its interval in milliseconds.
#[derive(Debug, Clone)]
pub(crate) struct FailureRatio {
    pub threshold: f64,
    pub minimum_requests: u32,
    pub interval_ms: u64,
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl From<&PassiveHealthConfig> for OutlierPolicy {
    fn from(config: &PassiveHealthConfig) -> Self {
        Self {
            consecutive_5xx: config.consecutive_5xx,
            consecutive_gateway: config.consecutive_gateway_errors,
            failure_ratio: config.failure_ratio.as_ref().map(|ratio| FailureRatio {
                threshold: ratio.threshold,
                minimum_requests: ratio.minimum_requests,
                interval_ms: millis(ratio.interval.get()),
            }),
            base_ejection_ms: millis(config.base_ejection_time.get()),
            max_ejection_ms: millis(config.max_ejection_time.get()),
            max_ejected_percent: config.max_ejected_percent,
        }
    }
}

impl OutlierPolicy {
    /// Most of `targets` targets that may be ejected at once: the percentage, but always at least one.
    pub(crate) fn max_ejected(&self, targets: usize) -> usize {
        (targets * usize::from(self.max_ejected_percent) / 100).max(1)
    }
}
