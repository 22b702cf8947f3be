//! Per-target health: whether each target is in service, and why targets were ejected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::exposition::{Kind, TextWriter};

const HEALTHY: &str = "floodgate_upstream_target_healthy";
const EJECTIONS: &str = "floodgate_upstream_ejections_total";

/// Why a target was taken out of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectionReason {
    /// Too many 5xx responses (gateway errors included) in a row.
    Consecutive5xx,
    /// Too many gateway errors in a row.
    ConsecutiveGatewayErrors,
    /// Too large a share of failed requests over an interval.
    FailureRatio,
}

impl EjectionReason {
    const ALL: [EjectionReason; 3] = [
        EjectionReason::Consecutive5xx,
        EjectionReason::ConsecutiveGatewayErrors,
        EjectionReason::FailureRatio,
    ];

    /// The `reason` label and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            EjectionReason::Consecutive5xx => "consecutive_5xx",
            EjectionReason::ConsecutiveGatewayErrors => "consecutive_gateway_errors",
            EjectionReason::FailureRatio => "failure_ratio",
        }
    }
}

/// One target's health metrics, from [`Metrics::target`](crate::Metrics::target). Written only when
/// the target's health changes, never per request.
pub struct TargetMetrics {
    healthy: AtomicBool,
    ejections: [AtomicU64; 3],
}

impl Default for TargetMetrics {
    fn default() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            ejections: Default::default(),
        }
    }
}

impl TargetMetrics {
    /// Sets `floodgate_upstream_target_healthy` for this target.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Counts an ejection in `floodgate_upstream_ejections_total{reason}`.
    pub fn ejected(&self, reason: EjectionReason) {
        self.ejections[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the target is in service, as last set.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Ejections so far for `reason`.
    pub fn ejections(&self, reason: EjectionReason) -> u64 {
        self.ejections[reason as usize].load(Ordering::Relaxed)
    }
}

/// The targets of the running configuration, by upstream and address.
pub(crate) type TargetsById = BTreeMap<(Arc<str>, Arc<str>), Arc<TargetMetrics>>;

pub(crate) fn render_targets(w: &mut TextWriter, targets: &TargetsById) {
    w.family(
        HEALTHY,
        "Whether a target is in service (1) or ejected or failing its checks (0).",
        Kind::Gauge,
    );
    for ((upstream, target), metrics) in targets {
        w.sample(
            HEALTHY,
            &[("upstream", upstream), ("target", target)],
            u8::from(metrics.healthy()),
        );
    }
    w.family(
        EJECTIONS,
        "Times a target was ejected on the failures of requests, by reason.",
        Kind::Counter,
    );
    for ((upstream, target), metrics) in targets {
        for reason in EjectionReason::ALL {
            w.sample(
                EJECTIONS,
                &[
                    ("upstream", upstream),
                    ("target", target),
                    ("reason", reason.as_str()),
                ],
                metrics.ejections(reason),
            );
        }
    }
}
