//! How long an answer is used before its name is asked again.

use std::time::Duration;

use floodgate_config::DnsConfig;

/// The bounds `dns` puts on re-resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlBounds {
    /// Shortest time an answer is used.
    pub min: Duration,
    /// Longest time an answer is used.
    pub max: Duration,
    /// Wait before asking again after a failure.
    pub retry: Duration,
}

impl TtlBounds {
    /// The bounds `config` sets.
    pub fn of(config: &DnsConfig) -> Self {
        Self {
            min: config.min_ttl.get(),
            max: config.max_ttl.get(),
            retry: config.retry_interval.get(),
        }
    }

    /// How long to use an answer whose records are valid for `ttl`: the TTL within the bounds. A TTL
    /// of 0 (RFC 1035: "only for the transaction in progress") would otherwise ask in a loop, and a
    /// day-long TTL would hide a moved service for a day.
    pub fn after_answer(&self, ttl: Duration) -> Duration {
        // `max` before `min`: a configuration whose bounds cross (refused by validation) still
        // gets a wait of at least `min`, never a panic.
        ttl.min(self.max).max(self.min)
    }

    /// How long to wait after a failed resolution: the retry interval, but no longer than an
    /// answer would be used, so a name that comes back is not missed for longer than `max`.
    pub fn after_failure(&self) -> Duration {
        self.retry.min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(min: u64, max: u64, retry: u64) -> TtlBounds {
        TtlBounds {
            min: Duration::from_secs(min),
            max: Duration::from_secs(max),
            retry: Duration::from_secs(retry),
        }
    }

    #[test]
    fn a_ttl_is_used_within_the_bounds() {
        let b = bounds(1, 300, 5);
        assert_eq!(b.after_answer(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            b.after_answer(Duration::from_millis(400)),
            Duration::from_secs(1)
        );
        assert_eq!(
            b.after_answer(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert_eq!(
            b.after_answer(Duration::from_secs(86_400)),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn crossed_bounds_never_panic_and_keep_the_minimum() {
        let b = bounds(10, 5, 5);
        assert_eq!(
            b.after_answer(Duration::from_secs(1)),
            Duration::from_secs(10)
        );
        assert_eq!(
            b.after_answer(Duration::from_secs(100)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn a_failure_is_retried_after_the_interval_but_never_later_than_max() {
        assert_eq!(bounds(1, 300, 5).after_failure(), Duration::from_secs(5));
        assert_eq!(bounds(1, 2, 5).after_failure(), Duration::from_secs(2));
    }
}
