//! An upstream's circuit breaker: Envoy's thresholds (connections, pending requests, requests and
//! retries in flight) and a breaker on the failure ratio that opens, half-opens with a probe budget,
//! and closes. It belongs to the upstream, not to a snapshot: a reload that keeps the upstream and
//! its breaker settings keeps its state.
//!
//! The counts are per worker (each worker writes its own cache line) and summed when checked: a
//! check reads one line per worker and writes none but its own.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use floodgate_config::CircuitBreakerConfig;
use floodgate_observe::{BreakerMetrics, PerWorker};

use crate::health::Millis;

/// Why the breaker turned a request away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BreakerReason {
    /// `max_connections` reached.
    MaxConnections,
    /// `max_pending_requests` reached.
    MaxPendingRequests,
    /// `max_requests` reached.
    MaxRequests,
    /// `max_retries` reached (the retry is not made; the last answer goes to the client).
    MaxRetries,
    /// The failure-ratio breaker is open (or half-open with its probes in flight).
    Open,
}

impl BreakerReason {
    /// The reason's place in `floodgate_observe`'s list of breaker reasons.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name metrics, logs and the error body use.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerReason::MaxConnections => "max_connections",
            BreakerReason::MaxPendingRequests => "max_pending_requests",
            BreakerReason::MaxRequests => "max_requests",
            BreakerReason::MaxRetries => "max_retries",
            BreakerReason::Open => "open",
        }
    }
}

/// The failure-ratio breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BreakerState {
    /// Requests pass; failures are counted.
    Closed = 0,
    /// Requests are refused until `open_time` has passed.
    Open = 1,
    /// Up to `half_open_requests` probes pass.
    HalfOpen = 2,
}

impl BreakerState {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    /// The name metrics and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// One worker's counts.
#[derive(Default)]
struct Slot {
    connections: AtomicU32,
    pending: AtomicU32,
    requests: AtomicU32,
    retries: AtomicU32,
}

/// Which count a permit holds.
#[derive(Debug, Clone, Copy)]
enum Count {
    Connections,
    Pending,
    Requests,
    Retries,
}

/// One upstream's circuit breaker.
pub struct CircuitBreaker {
    config: CircuitBreakerConfig,
    slots: PerWorker<Slot>,
    state: AtomicU8,
    opened_at: AtomicU64,
    window_start: AtomicU64,
    window_requests: AtomicU32,
    window_failures: AtomicU32,
    probes_started: AtomicU32,
    probes_passed: AtomicU32,
    upstream: std::sync::Arc<str>,
    metrics: std::sync::Arc<BreakerMetrics>,
}

/// A place in one of the breaker's counts, given back when dropped.
#[must_use = "the count is held only while the permit lives"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    worker: usize,
    count: Count,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.breaker
            .counter(self.worker, self.count)
            .fetch_sub(1, Relaxed);
    }
}

/// A connection's place in `max_connections`, owned so it can live as long as the connection.
pub struct ConnectionPermit {
    breaker: std::sync::Arc<CircuitBreaker>,
    worker: usize,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.breaker
            .counter(self.worker, Count::Connections)
            .fetch_sub(1, Relaxed);
    }
}

impl CircuitBreaker {
    /// A closed breaker for upstream `upstream` on a gateway of `workers` workers.
    pub fn new(
        upstream: &str,
        config: &CircuitBreakerConfig,
        workers: usize,
        metrics: std::sync::Arc<BreakerMetrics>,
    ) -> Self {
        Self {
            config: config.clone(),
            slots: PerWorker::new(workers),
            state: AtomicU8::new(0),
            opened_at: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            window_requests: AtomicU32::new(0),
            window_failures: AtomicU32::new(0),
            probes_started: AtomicU32::new(0),
            probes_passed: AtomicU32::new(0),
            upstream: upstream.into(),
            metrics,
        }
    }

    /// The settings this breaker was made with: a reload with other settings makes a new one.
    pub fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    fn counter(&self, worker: usize, count: Count) -> &AtomicU32 {
        Self::field(self.slots.get(worker), count)
    }

    fn field(slot: &Slot, count: Count) -> &AtomicU32 {
        match count {
            Count::Connections => &slot.connections,
            Count::Pending => &slot.pending,
            Count::Requests => &slot.requests,
            Count::Retries => &slot.retries,
        }
    }

    fn total(&self, count: Count) -> u32 {
        self.slots
            .iter()
            .map(|slot| Self::field(slot, count).load(Relaxed))
            .fold(0, u32::saturating_add)
    }

    fn take(&self, worker: usize, count: Count, limit: Option<u32>) -> Option<Permit<'_>> {
        if limit.is_some_and(|limit| self.total(count) >= limit) {
            return None;
        }
        self.counter(worker, count).fetch_add(1, Relaxed);
        Some(Permit {
            breaker: self,
            worker,
            count,
        })
    }

    /// Admits a request on `worker` at `now`, or says why not.
    pub fn admit(&self, worker: usize, now: Millis) -> Result<Permit<'_>, BreakerReason> {
        if let Some(ratio) = &self.config.failure_ratio {
            match BreakerState::from_u8(self.state.load(Relaxed)) {
                BreakerState::Closed => {}
                BreakerState::Open => {
                    let open_ms = millis(ratio.open_time.get());
                    if now.0 < self.opened_at.load(Relaxed).saturating_add(open_ms) {
                        return Err(BreakerReason::Open);
                    }
                    if self.enter(BreakerState::Open, BreakerState::HalfOpen) {
                        self.probes_started.store(0, Relaxed);
                        self.probes_passed.store(0, Relaxed);
                    }
                    self.take_probe(ratio.half_open_requests)?;
                }
                BreakerState::HalfOpen => self.take_probe(ratio.half_open_requests)?,
            }
        }
        self.take(worker, Count::Requests, self.config.max_requests)
            .ok_or(BreakerReason::MaxRequests)
    }

    fn take_probe(&self, budget: u32) -> Result<(), BreakerReason> {
        let started = self.probes_started.fetch_add(1, Relaxed);
        if started >= budget {
            return Err(BreakerReason::Open);
        }
        Ok(())
    }

    /// A place for a request waiting for a new connection, or `None` at `max_pending_requests`.
    pub fn pending(&self, worker: usize) -> Option<Permit<'_>> {
        self.take(worker, Count::Pending, self.config.max_pending_requests)
    }

    /// A place for a retry, or `None` at `max_retries`.
    pub fn retry(&self, worker: usize) -> Option<Permit<'_>> {
        self.take(worker, Count::Retries, self.config.max_retries)
    }

    /// A place for a new connection, held until the connection closes, or `None` at
    /// `max_connections`.
    pub fn connection(self: &std::sync::Arc<Self>, worker: usize) -> Option<ConnectionPermit> {
        let permit = self.take(worker, Count::Connections, self.config.max_connections)?;
        std::mem::forget(permit);
        Some(ConnectionPermit {
            breaker: self.clone(),
            worker,
        })
    }

    /// Counts a request's outcome at `now` (`failed`: a 5xx or a gateway failure) and moves the
    /// failure-ratio breaker on.
    pub fn record(&self, failed: bool, now: Millis) {
        let Some(ratio) = &self.config.failure_ratio else {
            return;
        };
        match BreakerState::from_u8(self.state.load(Relaxed)) {
            BreakerState::Open => {}
            BreakerState::HalfOpen => {
                if failed {
                    if self.enter(BreakerState::HalfOpen, BreakerState::Open) {
                        self.opened_at.store(now.0, Relaxed);
                    }
                } else if self.probes_passed.fetch_add(1, Relaxed) + 1 >= ratio.half_open_requests
                    && self.enter(BreakerState::HalfOpen, BreakerState::Closed)
                {
                    self.reset_window(now);
                }
            }
            BreakerState::Closed => {
                let start = self.window_start.load(Relaxed);
                if now.0.saturating_sub(start) >= millis(ratio.window.get())
                    && self
                        .window_start
                        .compare_exchange(start, now.0, Relaxed, Relaxed)
                        .is_ok()
                {
                    self.window_requests.store(0, Relaxed);
                    self.window_failures.store(0, Relaxed);
                }
                let requests = self.window_requests.fetch_add(1, Relaxed) + 1;
                let failures = if failed {
                    self.window_failures.fetch_add(1, Relaxed) + 1
                } else {
                    self.window_failures.load(Relaxed)
                };
                if failed
                    && requests >= ratio.minimum_requests
                    && f64::from(failures) >= ratio.threshold * f64::from(requests)
                    && self.enter(BreakerState::Closed, BreakerState::Open)
                {
                    self.opened_at.store(now.0, Relaxed);
                }
            }
        }
    }

    fn reset_window(&self, now: Millis) {
        self.window_start.store(now.0, Relaxed);
        self.window_requests.store(0, Relaxed);
        self.window_failures.store(0, Relaxed);
    }

    /// Moves the breaker from `from` to `to`, with its log line and count; false when another
    /// request moved it first.
    fn enter(&self, from: BreakerState, to: BreakerState) -> bool {
        let moved = self
            .state
            .compare_exchange(from as u8, to as u8, Relaxed, Relaxed)
            .is_ok();
        if moved {
            self.metrics.entered(to as u8);
            tracing::warn!(
                upstream = %self.upstream,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker"
            );
        }
        moved
    }

    /// The failure-ratio breaker's state.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Relaxed))
    }

    /// Transitions so far into `state`.
    pub fn transitions(&self, state: BreakerState) -> u64 {
        self.metrics.transitions(state as u8)
    }

    /// Requests in flight, all workers together.
    pub fn requests_in_flight(&self) -> u32 {
        self.total(Count::Requests)
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_config::{BreakerRatioConfig, HumanDuration};

    fn ratio_breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "u",
            &CircuitBreakerConfig {
                failure_ratio: Some(BreakerRatioConfig {
                    threshold: 0.5,
                    minimum_requests: 4,
                    window: HumanDuration::from_secs(10),
                    open_time: HumanDuration::from_secs(5),
                    half_open_requests: 2,
                }),
                ..CircuitBreakerConfig::default()
            },
            2,
            Default::default(),
        )
    }

    #[test]
    fn in_flight_limits_are_summed_over_workers_and_given_back() {
        let breaker = CircuitBreaker::new(
            "u",
            &CircuitBreakerConfig {
                max_requests: Some(2),
                max_retries: Some(1),
                ..CircuitBreakerConfig::default()
            },
            2,
            Default::default(),
        );
        let now = Millis(1);
        let a = breaker.admit(0, now).unwrap();
        let _b = breaker.admit(1, now).unwrap();
        assert_eq!(
            breaker.admit(0, now).err(),
            Some(BreakerReason::MaxRequests)
        );
        drop(a);
        assert!(breaker.admit(1, now).is_ok());
        let retry = breaker.retry(0);
        assert!(retry.is_some());
        assert!(breaker.retry(1).is_none());
        drop(retry);
        assert!(breaker.retry(1).is_some());
        assert_eq!(breaker.requests_in_flight(), 1);
    }

    #[test]
    fn the_ratio_breaker_opens_half_opens_and_closes() {
        let breaker = ratio_breaker();
        let at = Millis;
        for failed in [false, true, false] {
            breaker.record(failed, at(1));
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record(true, at(2));
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.admit(0, at(4_000)).err(), Some(BreakerReason::Open));
        // After open_time: two probes pass, a third waits.
        let p1 = breaker.admit(0, at(5_002)).unwrap();
        let p2 = breaker.admit(1, at(5_002)).unwrap();
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.admit(0, at(5_003)).err(), Some(BreakerReason::Open));
        drop((p1, p2));
        breaker.record(false, at(5_010));
        breaker.record(false, at(5_011));
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.admit(0, at(5_012)).is_ok());
        assert_eq!(breaker.transitions(BreakerState::Open), 1);
        assert_eq!(breaker.transitions(BreakerState::HalfOpen), 1);
        assert_eq!(breaker.transitions(BreakerState::Closed), 1);
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again() {
        let breaker = ratio_breaker();
        for _ in 0..4 {
            breaker.record(true, Millis(1));
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let _probe = breaker.admit(0, Millis(6_000)).unwrap();
        breaker.record(true, Millis(6_001));
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(
            breaker.admit(0, Millis(6_002)).err(),
            Some(BreakerReason::Open)
        );
        assert_eq!(breaker.transitions(BreakerState::Open), 2);
    }

    #[test]
    fn a_window_starts_its_counts_afresh() {
        let breaker = ratio_breaker();
        for _ in 0..3 {
            breaker.record(true, Millis(1));
        }
        // The next window: three old failures are forgotten.
        breaker.record(true, Millis(20_000));
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
