//! One target's health: whether it is in service, and the counts that eject it. It belongs to the
//! target, not to a configuration snapshot: a reload that keeps the target keeps it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use floodgate_observe::{EjectionReason, TargetMetrics};

use super::clock::Millis;
use super::outlier::OutlierPolicy;

/// What one attempt at a target came to, as outlier detection counts it. Failures that are the
/// client's (a body too large, a client gone) are not reported at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// A response head with this status.
    Status(u16),
    /// No response: the connection was refused, reset or timed out, or the response was not HTTP.
    GatewayFailure,
}

impl AttemptResult {
    fn is_5xx(self) -> bool {
        match self {
            AttemptResult::Status(status) => status >= 500,
            AttemptResult::GatewayFailure => true,
        }
    }

    fn is_gateway_error(self) -> bool {
        match self {
            AttemptResult::Status(status) => matches!(status, 502..=504),
            AttemptResult::GatewayFailure => true,
        }
    }
}

/// The health of one target, shared by every worker and every snapshot that has the target.
///
/// All atomics, all `Relaxed`: each is a count or a time read on its own, and a decision taken on a
/// slightly stale value (one ejection a request late) is harmless. A request that succeeds only reads
/// them unless a count needs resetting, so a healthy target's line is never written per request.
pub struct TargetHealth {
    /// When the ejection ends, in [`Millis`]; 0 while in service.
    ejected_until: AtomicU64,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Ejections so far, which lengthen the next one; forgotten after `max_ejection_time` in service.
    ejections: AtomicU32,
    /// When the last ejection ended (or began, while ejected), in [`Millis`].
    last_change: AtomicU64,
    window_start: AtomicU64,
    window_requests: AtomicU32,
    window_failures: AtomicU32,
    /// Out of service on its active probes: `unhealthy_threshold` failed in a row, and not yet
    /// `healthy_threshold` passed since.
    probed_down: AtomicBool,
    probe_passes: AtomicU32,
    probe_failures: AtomicU32,
    /// When the last probe ended, in [`Millis`] plus one (0: never probed), and whether it passed.
    last_probe: AtomicU64,
    last_probe_passed: AtomicBool,
    /// The target's requests in flight and latency, which its balancers read.
    pub load: Arc<crate::load::TargetLoad>,
    /// When the target (re)joined service, in [`Millis`] plus one, while its slow start may still
    /// run; 0 otherwise.
    joined: AtomicU64,
    metrics: Arc<TargetMetrics>,
}

impl TargetHealth {
    /// A target in service, reporting to `metrics`.
    pub fn new(metrics: Arc<TargetMetrics>) -> Self {
        metrics.set_healthy(true);
        Self {
            ejected_until: AtomicU64::new(0),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            last_change: AtomicU64::new(0),
            window_start: AtomicU64::new(0),
            window_requests: AtomicU32::new(0),
            window_failures: AtomicU32::new(0),
            probed_down: AtomicBool::new(false),
            probe_passes: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            last_probe: AtomicU64::new(0),
            last_probe_passed: AtomicBool::new(false),
            load: Arc::default(),
            joined: AtomicU64::new(0),
            metrics,
        }
    }

    /// Sets the target's `floodgate_upstream_target_healthy` from its state: in service when neither
    /// ejected nor failing its probes. Called after each change of either.
    fn publish_health(&self) {
        self.metrics
            .set_healthy(self.ejected_until.load(Relaxed) == 0 && !self.probed_down.load(Relaxed));
    }

    /// Whether the target is out of service at all, on its probes or ejected (an ejection may have
    /// ended: see [`Self::in_service`]). Two loads: what every pick reads while all is well.
    #[inline]
    pub(crate) fn marked_out(&self) -> bool {
        self.ejected_until.load(Relaxed) != 0 || self.probed_down.load(Relaxed)
    }

    /// Notes that the target (re)joined service at `now`: slow start ramps it from here.
    pub(crate) fn joined_at(&self, now: Millis) {
        self.joined.store(now.0.saturating_add(1), Relaxed);
    }

    /// When the target (re)joined service, while that may still be within a slow start; `None`
    /// once it is known to be past (one load while nothing is ramping).
    #[inline]
    pub(crate) fn joined(&self) -> Option<Millis> {
        match self.joined.load(Relaxed) {
            0 => None,
            at => Some(Millis(at - 1)),
        }
    }

    /// Forgets when the target joined, its slow start being over.
    pub(crate) fn ramped(&self) {
        self.joined.store(0, Relaxed);
    }

    /// Puts a target whose upstream no longer probes it back in service as far as probes go: a
    /// verdict no probe will revisit must not keep it out.
    pub(crate) fn forget_probes(&self) {
        if self.probed_down.swap(false, Relaxed) {
            self.publish_health();
        }
        self.probe_passes.store(0, Relaxed);
        self.probe_failures.store(0, Relaxed);
        self.last_probe.store(0, Relaxed);
    }

    /// Whether the passive check has the target ejected at `now`.
    pub(crate) fn ejected_at(&self, now: Millis) -> bool {
        let until = self.ejected_until.load(Relaxed);
        until != 0 && now.0 < until
    }

    /// Counts one active probe that `passed` (or not), ending at `now`, and moves the target out of
    /// service after `unhealthy` failures in a row or back after `healthy` passes in a row.
    pub fn record_probe(
        &self,
        passed: bool,
        now: Millis,
        (healthy, unhealthy): (u32, u32),
        upstream: &str,
        address: &str,
    ) {
        self.last_probe.store(now.0.saturating_add(1), Relaxed);
        self.last_probe_passed.store(passed, Relaxed);
        // Only the target's one probe task writes these: a plain count of results in a row.
        let (same, other) = if passed {
            (&self.probe_passes, &self.probe_failures)
        } else {
            (&self.probe_failures, &self.probe_passes)
        };
        other.store(0, Relaxed);
        let streak = same.fetch_add(1, Relaxed).saturating_add(1);
        let down = self.probed_down.load(Relaxed);
        if passed && down && streak >= healthy {
            self.probed_down.store(false, Relaxed);
            self.joined_at(now);
            self.publish_health();
            tracing::info!(upstream, target = address, "target passes its probes again");
        } else if !passed && !down && streak >= unhealthy {
            self.probed_down.store(true, Relaxed);
            self.publish_health();
            tracing::warn!(
                upstream,
                target = address,
                failed = streak,
                "target fails its probes"
            );
        }
    }

    /// Whether the target may take requests at `now`; an ejection that has ended is ended here, by the
    /// first pick to see it, with its log line.
    pub(crate) fn in_service(&self, now: Millis, upstream: &str, address: &str) -> bool {
        if self.probed_down.load(Relaxed) {
            return false;
        }
        let until = self.ejected_until.load(Relaxed);
        if until == 0 {
            return true;
        }
        if now.0 < until {
            return false;
        }
        if self
            .ejected_until
            .compare_exchange(until, 0, Relaxed, Relaxed)
            .is_ok()
        {
            self.last_change.store(now.0, Relaxed);
            self.joined_at(now);
            self.consecutive_5xx.store(0, Relaxed);
            self.consecutive_gateway.store(0, Relaxed);
            self.publish_health();
            tracing::info!(upstream, target = address, "target back in service");
        }
        true
    }

    /// Counts one attempt's `result` at `now`, and says why the target should be ejected, if it
    /// should. The caller decides whether the upstream has room for one more ejection.
    pub(crate) fn record(
        &self,
        result: AttemptResult,
        now: Millis,
        policy: &OutlierPolicy,
    ) -> Option<EjectionReason> {
        let mut reason = None;
        if let Some(ratio) = &policy.failure_ratio {
            reason = self.count_in_window(result, now, ratio);
        }
        if result.is_5xx() {
            let n = self.consecutive_5xx.fetch_add(1, Relaxed) + 1;
            if policy.consecutive_5xx != 0 && n >= policy.consecutive_5xx {
                reason = reason.or(Some(EjectionReason::Consecutive5xx));
            }
        } else if self.consecutive_5xx.load(Relaxed) != 0 {
            self.consecutive_5xx.store(0, Relaxed);
        }
        if result.is_gateway_error() {
            let n = self.consecutive_gateway.fetch_add(1, Relaxed) + 1;
            if policy.consecutive_gateway != 0 && n >= policy.consecutive_gateway {
                reason = reason.or(Some(EjectionReason::ConsecutiveGatewayErrors));
            }
        } else if self.consecutive_gateway.load(Relaxed) != 0 {
            self.consecutive_gateway.store(0, Relaxed);
        }
        reason
    }

    /// Counts the attempt in the failure-ratio window; when the window has run its length, judges it
    /// and starts the next.
    fn count_in_window(
        &self,
        result: AttemptResult,
        now: Millis,
        ratio: &super::outlier::FailureRatio,
    ) -> Option<EjectionReason> {
        let start = self.window_start.load(Relaxed);
        let mut reason = None;
        if now.0.saturating_sub(start) >= ratio.interval_ms
            && self
                .window_start
                .compare_exchange(start, now.0, Relaxed, Relaxed)
                .is_ok()
        {
            let requests = self.window_requests.swap(0, Relaxed);
            let failures = self.window_failures.swap(0, Relaxed);
            if requests >= ratio.minimum_requests
                && f64::from(failures) >= ratio.threshold * f64::from(requests)
            {
                reason = Some(EjectionReason::FailureRatio);
            }
        }
        self.window_requests.fetch_add(1, Relaxed);
        if result.is_5xx() {
            self.window_failures.fetch_add(1, Relaxed);
        }
        reason
    }

    /// Takes the target out of service at `now` for `reason`; false when it already was.
    pub(crate) fn eject(
        &self,
        now: Millis,
        policy: &OutlierPolicy,
        reason: EjectionReason,
        upstream: &str,
        address: &str,
    ) -> bool {
        // A target long in service starts its ejection count again.
        if now.0.saturating_sub(self.last_change.load(Relaxed)) >= policy.max_ejection_ms {
            self.ejections.store(0, Relaxed);
        }
        let ejections = self.ejections.load(Relaxed).saturating_add(1);
        let duration = policy
            .base_ejection_ms
            .saturating_mul(u64::from(ejections))
            .min(policy.max_ejection_ms);
        // Never 0, which means "in service".
        let until = now.0.saturating_add(duration).max(1);
        if self
            .ejected_until
            .compare_exchange(0, until, Relaxed, Relaxed)
            .is_err()
        {
            return false;
        }
        self.ejections.store(ejections, Relaxed);
        self.last_change.store(now.0, Relaxed);
        self.window_requests.store(0, Relaxed);
        self.window_failures.store(0, Relaxed);
        self.publish_health();
        self.metrics.ejected(reason);
        tracing::warn!(
            upstream,
            target = address,
            reason = reason.as_str(),
            ejection = ejections,
            seconds = duration as f64 / 1000.0,
            "target ejected"
        );
        true
    }

    /// What `/status/upstreams` shows of the target at `now`.
    pub fn status(&self, now: Millis) -> TargetStatus {
        let until = self.ejected_until.load(Relaxed);
        let last_probe = self.last_probe.load(Relaxed);
        TargetStatus {
            probed_down: self.probed_down.load(Relaxed),
            last_probe: (last_probe != 0).then(|| {
                (
                    now.0.saturating_sub(last_probe - 1),
                    self.last_probe_passed.load(Relaxed),
                )
            }),
            ejected_for_ms: (until != 0 && until > now.0).then(|| until - now.0),
            ejections: self.ejections.load(Relaxed),
            consecutive_5xx: self.consecutive_5xx.load(Relaxed),
            consecutive_gateway_errors: self.consecutive_gateway.load(Relaxed),
        }
    }
}

/// A target's health as the status endpoint shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetStatus {
    /// Whether the target is out of service on its active probes.
    pub probed_down: bool,
    /// How long ago the last probe ended, in milliseconds, and whether it passed; `None` before the
    /// first (or without active probes).
    pub last_probe: Option<(u64, bool)>,
    /// How much longer the target stays ejected; `None` while in service.
    pub ejected_for_ms: Option<u64>,
    /// Ejections so far (forgotten after `max_ejection_time` in service).
    pub ejections: u32,
    /// 5xx responses and gateway failures in a row.
    pub consecutive_5xx: u32,
    /// Gateway errors in a row.
    pub consecutive_gateway_errors: u32,
}
