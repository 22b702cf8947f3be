//! When a failed attempt is tried again (`routes[].retries`), how long to wait first, and the budget
//! that keeps retries from multiplying an upstream's trouble.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use floodgate_config::{RetriesConfig, RetryOn};
use floodgate_observe::PerWorker;
use http::StatusCode;

use crate::upstream::failure::FailureClass;

/// A route's retry policy, in the form the request path reads it.
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    retry_on: RetryConditions,
    statuses: Box<[u16]>,
    /// Longest wait for one attempt's response head.
    pub per_try_timeout: Option<Duration>,
    backoff_base: Duration,
    backoff_max: Duration,
    budget_percent: u32,
    min_retries: u32,
    non_idempotent: bool,
    /// Largest request body read whole before the first attempt, so a retry can send it again.
    pub buffer_body: u64,
    retry_after_limit: Duration,
}

#[derive(Default)]
struct RetryConditions {
    connect_failure: bool,
    reset: bool,
    refused_stream: bool,
    gateway_error: bool,
}

/// What the last attempt came to, as the policy judges it.
pub enum Tried {
    /// A response with this status and these fields.
    Status(StatusCode, Option<Duration>),
    /// No response.
    Failed(FailureClass),
}

impl From<&RetriesConfig> for RetryPolicy {
    fn from(config: &RetriesConfig) -> Self {
        let mut retry_on = RetryConditions::default();
        for condition in &config.retry_on {
            match condition {
                RetryOn::ConnectFailure => retry_on.connect_failure = true,
                RetryOn::Reset => retry_on.reset = true,
                RetryOn::RefusedStream => retry_on.refused_stream = true,
                RetryOn::GatewayError => retry_on.gateway_error = true,
            }
        }
        Self {
            attempts: config.attempts,
            retry_on,
            statuses: config.statuses.clone().into_boxed_slice(),
            per_try_timeout: config.per_try_timeout.map(|t| t.get()),
            backoff_base: config.backoff.base.get(),
            backoff_max: config.backoff.max.get(),
            budget_percent: u32::from(config.budget.percent),
            min_retries: config.budget.min_retries,
            non_idempotent: config.non_idempotent,
            buffer_body: config.buffer_body.get(),
            retry_after_limit: config.retry_after_limit.get(),
        }
    }
}

impl RetryPolicy {
    /// Whether a request of this method may be tried again at all.
    pub fn allows_method(&self, method: &http::Method) -> bool {
        self.non_idempotent || method.is_idempotent()
    }

    /// How long to wait before trying `tried` again as retry number `retry` (1 for the first), or
    /// `None` when the policy does not try it again.
    pub fn wait_before_retry(&self, tried: &Tried, retry: u32) -> Option<Duration> {
        match tried {
            Tried::Failed(class) => {
                let retried = match class {
                    FailureClass::Connect
                    | FailureClass::ConnectTimeout
                    | FailureClass::Handshake => self.retry_on.connect_failure,
                    FailureClass::Reset | FailureClass::BadResponse => self.retry_on.reset,
                    FailureClass::RefusedStream => {
                        self.retry_on.refused_stream || self.retry_on.reset
                    }
                    FailureClass::Timeout => self.retry_on.gateway_error,
                };
                retried.then(|| self.backoff(retry))
            }
            Tried::Status(status, retry_after) => {
                let code = status.as_u16();
                let listed = (self.retry_on.gateway_error && matches!(code, 502..=504))
                    || self.statuses.contains(&code);
                if !listed {
                    return None;
                }
                match retry_after {
                    // Asked to wait longer than the route will: the client gets the answer as it is.
                    Some(wait) if *wait > self.retry_after_limit => None,
                    Some(wait) => Some(*wait),
                    None => Some(self.backoff(retry)),
                }
            }
        }
    }

    /// Exponential backoff with full jitter: a random wait up to `base * 2^(retry-1)`, capped at `max`.
    fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .backoff_base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.backoff_max);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }

    /// Whether one more retry fits the budget, given this worker's `active` requests and `retrying`
    /// retries in flight to the upstream.
    pub fn budget_allows(&self, active: u32, retrying: u32) -> bool {
        let share = active.saturating_mul(self.budget_percent) / 100;
        retrying < share.max(self.min_retries)
    }
}

/// The delay a `503` or `429` asks for in its `Retry-After` `value`, when given in seconds (RFC 9110
/// §10.2.3). A date is not read: such a response is retried after the backoff, as one without the field.
pub fn retry_after(status: StatusCode, value: Option<&[u8]>) -> Option<Duration> {
    if status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let value = std::str::from_utf8(value?).ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// Requests and retries in flight to one upstream, per worker: the retry budget's counts. Each worker
/// writes only its own slot, so counting costs no shared cache line.
pub struct RetryBudget {
    slots: PerWorker<BudgetSlot>,
}

/// One worker's counts.
#[derive(Default)]
struct BudgetSlot {
    active: AtomicU32,
    retrying: AtomicU32,
}

impl RetryBudget {
    /// Counts for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            slots: PerWorker::new(workers),
        }
    }

    fn slot(&self, worker: usize) -> &BudgetSlot {
        self.slots.get(worker)
    }

    /// Counts a request to the upstream as active on `worker` until the guard is dropped.
    pub fn active(&self, worker: usize) -> InFlight<'_> {
        let counter = &self.slot(worker).active;
        counter.fetch_add(1, Relaxed);
        InFlight(counter)
    }

    /// Counts a retry in flight on `worker`, if `policy`'s budget has room for it.
    pub fn try_retry<'a>(&'a self, worker: usize, policy: &RetryPolicy) -> Option<InFlight<'a>> {
        let slot = self.slot(worker);
        if !policy.budget_allows(slot.active.load(Relaxed), slot.retrying.load(Relaxed)) {
            return None;
        }
        slot.retrying.fetch_add(1, Relaxed);
        Some(InFlight(&slot.retrying))
    }
}

/// One count in a [`RetryBudget`], given back when dropped.
pub struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_config::HumanDuration;

    fn policy(config: RetriesConfig) -> RetryPolicy {
        RetryPolicy::from(&config)
    }

    #[test]
    fn only_the_listed_failures_and_statuses_are_retried() {
        let default = policy(RetriesConfig::default());
        assert!(default
            .wait_before_retry(&Tried::Failed(FailureClass::Connect), 1)
            .is_some());
        assert!(default
            .wait_before_retry(&Tried::Failed(FailureClass::Reset), 1)
            .is_none());
        assert!(default
            .wait_before_retry(&Tried::Status(StatusCode::BAD_GATEWAY, None), 1)
            .is_none());
        let wide = policy(RetriesConfig {
            retry_on: vec![RetryOn::Reset, RetryOn::GatewayError],
            statuses: vec![409],
            ..RetriesConfig::default()
        });
        for status in [502, 503, 504, 409] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(wide
                .wait_before_retry(&Tried::Status(status, None), 1)
                .is_some());
        }
        assert!(wide
            .wait_before_retry(&Tried::Status(StatusCode::INTERNAL_SERVER_ERROR, None), 1)
            .is_none());
        assert!(wide
            .wait_before_retry(&Tried::Failed(FailureClass::Timeout), 1)
            .is_some());
        assert!(wide
            .wait_before_retry(&Tried::Failed(FailureClass::Connect), 1)
            .is_none());
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_under_its_cap() {
        let p = policy(RetriesConfig {
            backoff: floodgate_config::BackoffConfig {
                base: HumanDuration::from_millis(10),
                max: HumanDuration::from_millis(30),
            },
            ..RetriesConfig::default()
        });
        for retry in 1..8 {
            for _ in 0..50 {
                let wait = p.backoff(retry);
                let cap = Duration::from_millis((10u64 << (retry - 1)).min(30));
                assert!(wait <= cap, "retry {retry}: {wait:?} > {cap:?}");
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_within_its_limit() {
        let p = policy(RetriesConfig {
            retry_on: vec![RetryOn::GatewayError],
            retry_after_limit: HumanDuration::from_secs(2),
            ..RetriesConfig::default()
        });
        let asked = retry_after(StatusCode::SERVICE_UNAVAILABLE, Some(b"1"));
        assert_eq!(asked, Some(Duration::from_secs(1)));
        let tried = Tried::Status(StatusCode::SERVICE_UNAVAILABLE, asked);
        assert_eq!(p.wait_before_retry(&tried, 1), Some(Duration::from_secs(1)));
        let asked = retry_after(StatusCode::SERVICE_UNAVAILABLE, Some(b" 5 "));
        let tried = Tried::Status(StatusCode::SERVICE_UNAVAILABLE, asked);
        assert_eq!(p.wait_before_retry(&tried, 1), None);
        assert_eq!(retry_after(StatusCode::BAD_GATEWAY, Some(b"1")), None);
        let date = b"Fri, 31 Dec 1999 23:59:59 GMT";
        assert_eq!(
            retry_after(StatusCode::SERVICE_UNAVAILABLE, Some(date)),
            None
        );
    }

    #[test]
    fn the_budget_is_a_share_of_active_requests_with_a_floor() {
        let p = policy(RetriesConfig::default());
        let budget = RetryBudget::new(1);
        let active: Vec<_> = (0..30).map(|_| budget.active(0)).collect();
        // 20% of 30 is 6.
        let retries: Vec<_> = (0..10).filter_map(|_| budget.try_retry(0, &p)).collect();
        assert_eq!(retries.len(), 6);
        drop(retries);
        drop(active);
        // Nothing active: the floor of 3 still allows retries.
        let floor: Vec<_> = (0..10).filter_map(|_| budget.try_retry(0, &p)).collect();
        assert_eq!(floor.len(), 3);
    }
}
