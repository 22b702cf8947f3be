//! Which targets of an upstream are in service: passive health checks (outlier ejection on the
//! outcomes of real requests, Envoy's model) and the panic threshold.
//!
//! A target's [`TargetHealth`] outlives configuration snapshots: [`UpstreamHealth::new`] takes the
//! running snapshot's states and keeps the one of every target it still has, so a reload forgets
//! nothing a target has shown. Picks read one atomic per candidate while every target is in service;
//! only an upstream with an ejected target reads the clock.

mod clock;
mod outlier;
mod target;

use std::collections::HashMap;
use std::sync::Arc;

use floodgate_config::{TargetConfig, UpstreamConfig};
use floodgate_observe::Metrics;

pub use clock::{Millis, Nanos};
use outlier::OutlierPolicy;
pub use target::{AttemptResult, TargetHealth, TargetStatus};

/// Every target's health by upstream id and address: what a snapshot hands to the next.
pub type HealthStates = HashMap<(Arc<str>, Arc<str>), Arc<TargetHealth>>;

/// The health of one upstream's targets, indexed like its balancer's, for one snapshot.
pub struct UpstreamHealth {
    upstream: Arc<str>,
    addresses: Box<[Arc<str>]>,
    targets: Box<[Arc<TargetHealth>]>,
    /// `None`: no passive check.
    policy: Option<OutlierPolicy>,
    /// Whether active probes run for these targets.
    probed: bool,
    /// Each target's priority level, when they are not all 0.
    priorities: Option<Box<[u32]>>,
    /// The distinct levels, in order: the first takes traffic first.
    levels: Box<[u32]>,
    /// Each target's configured weight.
    weights: Box<[u32]>,
    failover_threshold: u8,
    slow_start: Option<SlowStart>,
    /// `load_reports`: the smoothing period in nanoseconds and the least share a target keeps.
    load_reports: Option<(f64, f64)>,
    panic_threshold: u8,
}

/// `slow_start`, in the form picks read it.
struct SlowStart {
    window_ms: u64,
    aggression: f64,
    min_share: f64,
}

/// What turns a pick of some targets down, part of the time: slow start and load reports. A pick of
/// a target stands with the product of its slow-start share and its headroom next to the upstream's
/// most idle target.
pub struct Admission {
    /// While a target ramps up: the time to judge its share at.
    now: Option<Millis>,
    /// With load reports: the most headroom (1 - utilization) of any target.
    max_headroom: Option<f64>,
}

/// Which targets a pick may choose from.
pub enum Eligible {
    /// Every target (all in service, or the upstream is in panic).
    All,
    /// Only those in service at this time.
    InService(Millis),
    /// Only those of a priority level up to `max_priority`, and of those only the ones in service at
    /// `now` when it is given.
    Levels {
        /// The last priority level that takes traffic.
        max_priority: u32,
        /// When some target is out of service: the time to judge them at.
        now: Option<Millis>,
    },
}

impl UpstreamHealth {
    /// The health of `listed`, `config`'s targets as they are now (a name's resolved addresses in
    /// its place): a target `previous` knows (same upstream id and address) keeps its state; a new
    /// one starts in service. Each state is also added to `next`, for the snapshot after this one.
    pub fn new(
        config: &UpstreamConfig,
        listed: &[TargetConfig],
        previous: &HealthStates,
        next: &mut HealthStates,
        metrics: &Metrics,
    ) -> Self {
        let upstream: Arc<str> = config.id.as_str().into();
        let addresses: Box<[Arc<str>]> = listed
            .iter()
            .map(|t| Arc::from(t.address.as_str()))
            .collect();
        // Targets of the first configuration start at full share; those a reload adds ramp up.
        let reload = !previous.is_empty();
        // Read first, it also starts the health clock, no later than the first upstream using it.
        let now = Millis::now();
        let targets = addresses
            .iter()
            .map(|address| {
                let key = (upstream.clone(), address.clone());
                let state = match previous.get(&key) {
                    Some(state) => state.clone(),
                    None => {
                        let state = Arc::new(TargetHealth::new(metrics.target(&upstream, address)));
                        if reload {
                            state.joined_at(now);
                        }
                        state
                    }
                };
                next.insert(key, state.clone());
                state
            })
            .collect::<Box<[Arc<TargetHealth>]>>();
        if config.health_checks.active.is_none() {
            targets.iter().for_each(|t| t.forget_probes());
        }
        Self {
            upstream,
            addresses,
            targets,
            policy: config
                .health_checks
                .passive
                .as_ref()
                .map(OutlierPolicy::from),
            probed: config.health_checks.active.is_some(),
            priorities: listed
                .iter()
                .any(|t| t.priority != 0)
                .then(|| listed.iter().map(|t| t.priority).collect()),
            weights: listed.iter().map(|t| t.weight.max(1)).collect(),
            levels: {
                let mut levels: Vec<u32> = listed.iter().map(|t| t.priority).collect();
                levels.sort_unstable();
                levels.dedup();
                levels.into_boxed_slice()
            },
            failover_threshold: config.health_checks.failover_threshold,
            load_reports: config.load_reports.map(|r| {
                (
                    r.period.get().as_nanos() as f64,
                    f64::from(r.min_weight_percent) / 100.0,
                )
            }),
            slow_start: config.slow_start.map(|s| SlowStart {
                window_ms: u64::try_from(s.window.get().as_millis()).unwrap_or(u64::MAX),
                aggression: s.aggression,
                min_share: f64::from(s.min_weight_percent) / 100.0,
            }),
            panic_threshold: config.health_checks.panic_threshold,
        }
    }

    /// Whether any check can take a target out of service; when not, a pick need not ask.
    #[inline]
    pub fn is_checked(&self) -> bool {
        self.policy.is_some() || self.probed
    }

    /// Whether the passive check counts attempts; when not, they need not be reported.
    #[inline]
    pub fn is_passive(&self) -> bool {
        self.policy.is_some()
    }

    /// The upstream's id, and the address and health of target `index`, for its probes.
    pub fn target(&self, index: usize) -> Option<(&Arc<str>, &Arc<str>, &Arc<TargetHealth>)> {
        Some((
            &self.upstream,
            self.addresses.get(index)?,
            self.targets.get(index)?,
        ))
    }

    /// Whether target `index` may take requests at `now` (see [`TargetHealth::in_service`]).
    fn in_service(&self, index: usize, now: Millis) -> bool {
        self.targets
            .get(index)
            .is_some_and(|t| t.in_service(now, &self.upstream, &self.addresses[index]))
    }

    /// Whether `in_service` of the targets are too few: below the panic threshold, every target
    /// takes traffic.
    fn in_panic(&self, in_service: usize) -> bool {
        in_service * 100 < usize::from(self.panic_threshold) * self.targets.len()
    }

    /// Which targets the next pick may choose from. Costs one load per target while all are in
    /// service; reads the clock only when one is ejected.
    #[inline]
    pub fn eligible(&self) -> Eligible {
        if let Some(priorities) = &self.priorities {
            return self.eligible_levels(priorities);
        }
        if !self.is_checked() || !self.targets.iter().any(|t| t.marked_out()) {
            return Eligible::All;
        }
        self.eligible_at(Millis::now())
    }

    /// [`Self::eligible`] with priority levels: the first level, and each next one while the levels
    /// taken so far have fewer than `failover_threshold` of their targets in service; every target
    /// below the panic threshold.
    fn eligible_levels(&self, priorities: &[u32]) -> Eligible {
        let now =
            (self.is_checked() && self.targets.iter().any(|t| t.marked_out())).then(Millis::now);
        let in_service = |i: usize| now.is_none_or(|now| self.in_service(i, now));
        let total = self.targets.len();
        if self.in_panic((0..total).filter(|&i| in_service(i)).count()) {
            return Eligible::All;
        }
        let (mut taken, mut healthy) = (0usize, 0usize);
        let mut max_priority = self.levels.last().copied().unwrap_or(0);
        for &level in self.levels.iter() {
            for i in (0..total).filter(|&i| priorities[i] == level) {
                taken += 1;
                healthy += usize::from(in_service(i));
            }
            if healthy * 100 >= usize::from(self.failover_threshold) * taken {
                max_priority = level;
                break;
            }
        }
        Eligible::Levels { max_priority, now }
    }

    /// [`Self::eligible`] with a target ejected: counts those in service at `now` and goes into panic
    /// below the threshold.
    #[cold]
    fn eligible_at(&self, now: Millis) -> Eligible {
        let in_service = (0..self.targets.len())
            .filter(|&i| self.in_service(i, now))
            .count();
        if self.in_panic(in_service) {
            return Eligible::All;
        }
        Eligible::InService(now)
    }

    /// Whether target `index` may be picked under `eligible`.
    #[inline]
    pub fn allows(&self, eligible: &Eligible, index: usize) -> bool {
        match eligible {
            Eligible::All => true,
            Eligible::InService(now) => self.in_service(index, *now),
            Eligible::Levels { max_priority, now } => {
                self.priority(index) <= *max_priority
                    && index < self.targets.len()
                    && now.is_none_or(|now| self.in_service(index, now))
            }
        }
    }

    /// Counts one attempt at target `index` that ended with `result` at `now`, and ejects the
    /// target when the passive check says so and the upstream has room for one more ejection.
    #[inline]
    pub fn report(&self, index: usize, result: AttemptResult, now: Millis) {
        let (Some(policy), Some(target)) = (&self.policy, self.targets.get(index)) else {
            return;
        };
        let Some(reason) = target.record(result, now, policy) else {
            return;
        };
        let ejected = self.targets.iter().filter(|t| t.ejected_at(now)).count();
        if ejected >= policy.max_ejected(self.targets.len()) {
            return;
        }
        target.eject(now, policy, reason, &self.upstream, &self.addresses[index]);
    }

    /// Each target's load (in flight, latency), indexed like the targets, for the balancer.
    pub fn loads(&self) -> Vec<Arc<crate::load::TargetLoad>> {
        self.targets.iter().map(|t| t.load.clone()).collect()
    }

    /// When some target is in its slow start: the time to judge shares at. One load per target
    /// otherwise, and no clock.
    #[inline]
    fn ramping(&self) -> Option<Millis> {
        self.slow_start.as_ref()?;
        self.targets
            .iter()
            .any(|t| t.joined().is_some())
            .then(Millis::now)
    }

    /// What turns picks down part of the time, if anything does now (`None`: nothing, at the cost
    /// of a field test, or one load per target when slow start is on).
    #[inline]
    pub fn admission(&self) -> Option<Admission> {
        let now = self.ramping();
        let max_headroom = self.max_headroom();
        (now.is_some() || max_headroom.is_some()).then_some(Admission { now, max_headroom })
    }

    /// With load reports: the most headroom of any target (at least the floor).
    fn max_headroom(&self) -> Option<f64> {
        self.load_reports.map(|(_, min)| {
            self.targets
                .iter()
                .map(|t| self.headroom(t, min))
                .fold(min, f64::max)
        })
    }

    fn headroom(&self, target: &TargetHealth, min: f64) -> f64 {
        (1.0 - target.load.utilization()).max(min)
    }

    /// Target `index`'s weight as picks see it at `now`: its configured weight times its slow-start
    /// share so far and its load reports' headroom next to the most idle target's.
    pub fn effective_weight(&self, index: usize, now: Millis) -> f64 {
        let Some(target) = self.targets.get(index) else {
            return 0.0;
        };
        let weight = f64::from(self.weights.get(index).copied().unwrap_or(1));
        let admission = Admission {
            now: Some(now),
            max_headroom: self.max_headroom(),
        };
        weight * self.chance(target, &admission)
    }

    /// The probability a pick of `target` stands under `admission`.
    fn chance(&self, target: &TargetHealth, admission: &Admission) -> f64 {
        let mut chance = 1.0;
        if let (Some(now), Some(slow)) = (admission.now, &self.slow_start) {
            if let Some(joined) = target.joined() {
                let elapsed = now.0.saturating_sub(joined.0);
                if elapsed < slow.window_ms {
                    let progress = elapsed as f64 / slow.window_ms as f64;
                    chance *= progress.powf(1.0 / slow.aggression).max(slow.min_share);
                }
            }
        }
        if let (Some(max), Some((_, min))) = (admission.max_headroom, self.load_reports) {
            chance *= self.headroom(target, min) / max;
        }
        chance
    }

    /// Whether a pick of target `index` stands under `admission`: with the probability of its
    /// slow-start share so far, times its headroom next to the most idle target's, so over many picks
    /// it gets that share of its weight (another target is picked instead).
    pub fn admits(&self, index: usize, admission: &Admission) -> bool {
        let Some(target) = self.targets.get(index) else {
            return true;
        };
        if let (Some(now), Some(slow)) = (admission.now, &self.slow_start) {
            if target
                .joined()
                .is_some_and(|joined| now.0.saturating_sub(joined.0) >= slow.window_ms)
            {
                target.ramped();
            }
        }
        let chance = self.chance(target, admission);
        chance >= 1.0 || fastrand::f64() < chance
    }

    /// Whether the targets' load reports are read.
    #[inline]
    pub fn reads_load_reports(&self) -> bool {
        self.load_reports.is_some()
    }

    /// Counts target `index`'s load report of `utilization` (0 to 1), arriving at `now`.
    pub fn load_report(&self, index: usize, utilization: f64, now: Nanos) {
        if let (Some((period, _)), Some(target)) = (self.load_reports, self.targets.get(index)) {
            target.load.report_utilization(utilization, now.0, period);
        }
    }

    /// Target `index`'s priority level.
    pub fn priority(&self, index: usize) -> u32 {
        self.priorities
            .as_ref()
            .and_then(|p| p.get(index))
            .copied()
            .unwrap_or(0)
    }

    /// Every target's state by upstream id and address: what a new set of targets of this upstream
    /// (a name's new addresses) keeps of each one it still has.
    pub fn states(&self) -> HealthStates {
        self.addresses
            .iter()
            .zip(self.targets.iter())
            .map(|(address, state)| ((self.upstream.clone(), address.clone()), state.clone()))
            .collect()
    }

    /// Each target's address and health at `now`, in configuration order.
    pub fn statuses(&self, now: Millis) -> Vec<(Arc<str>, TargetStatus)> {
        self.addresses
            .iter()
            .cloned()
            .zip(self.targets.iter().map(|t| t.status(now)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
