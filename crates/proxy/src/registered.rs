//! The targets of upstreams with `discovery`: what the registry last said, by upstream id, handed to the
//! running snapshot's upstream as it changes and to each new snapshot as it is put in service. Like a
//! name's new addresses, a change rebuilds only that upstream's endpoints (targets that stay keep their
//! health, load, latency and pooled connections); routes and the snapshot are not rebuilt.

use std::collections::HashMap;
use std::sync::Arc;

use floodgate_config::TargetConfig;
use floodgate_observe::Metrics;
use parking_lot::Mutex;
use tokio::runtime::Handle;

use crate::probe::Probes;
use crate::snapshot::Snapshot;
use crate::worker_ctx::Shared;

/// The registered targets of every discovered upstream, and where to put them in service.
pub struct RegisteredTargets {
    targets: Mutex<HashMap<Arc<str>, Vec<TargetConfig>>>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    probes: Arc<Mutex<Probes>>,
    runtime: Option<Handle>,
}

impl RegisteredTargets {
    pub(crate) fn new(
        shared: Arc<Shared>,
        metrics: Arc<Metrics>,
        probes: Arc<Mutex<Probes>>,
        runtime: Option<Handle>,
    ) -> Self {
        Self {
            targets: Mutex::default(),
            shared,
            metrics,
            probes,
            runtime,
        }
    }

    /// The registry's instances of upstream `upstream` are now `targets`: the running upstream takes them
    /// at once. Nothing happens to an upstream without `discovery`.
    pub fn set(&self, upstream: &str, targets: Vec<TargetConfig>) {
        let snapshot = {
            let mut known = self.targets.lock();
            known.insert(upstream.into(), targets.clone());
            // Loaded under the lock: a snapshot put in service after this sees the new targets in
            // `apply_to`, one before it gets them here.
            self.shared.snapshot.load_full()
        };
        self.put(&snapshot, upstream, targets, None);
    }

    /// Gives `snapshot`'s discovered upstreams the targets last registered, keeping the health of
    /// targets `previous` had. Called before a snapshot is put in service, and once more after.
    pub(crate) fn apply_to(&self, snapshot: &Snapshot, previous: Option<&Snapshot>) {
        let known = self.targets.lock().clone();
        let previous = previous.map(Snapshot::health_states);
        for (id, upstream) in &snapshot.upstreams {
            if upstream.config.discovery.is_none() {
                continue;
            }
            let targets = known.get(id).cloned().unwrap_or_default();
            self.put(snapshot, id, targets, previous.as_ref());
        }
    }

    fn put(
        &self,
        snapshot: &Snapshot,
        id: &str,
        targets: Vec<TargetConfig>,
        previous: Option<&floodgate_upstream::health::HealthStates>,
    ) {
        let Some(upstream) = snapshot.upstream(id) else {
            return;
        };
        if upstream.config.discovery.is_none() {
            return;
        }
        upstream.replace_targets(targets, previous, &self.metrics);
        if let (Some(runtime), Some(_)) = (&self.runtime, &upstream.config.health_checks.active) {
            self.probes.lock().follow(upstream, runtime);
        }
    }
}
