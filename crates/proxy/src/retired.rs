//! Snapshots a reload replaced, kept until no request holds them and then dropped on the background
//! thread. Freeing a snapshot frees every route, plugin and upstream it built (thousands of allocations for
//! a large configuration); without this the last worker to let go of it would do that work between two
//! requests.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::runtime::Handle;

use crate::snapshot::Snapshot;

/// How often the retired snapshots are looked at.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// The replaced snapshots not yet dropped.
#[derive(Default)]
pub struct Retired {
    snapshots: Mutex<Vec<Arc<Snapshot>>>,
}

impl Retired {
    /// Starts the sweep on `runtime`; it ends when the last handle to `self` goes.
    pub fn start(self: &Arc<Self>, runtime: &Handle) {
        let retired = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(SWEEP_EVERY).await;
                let Some(retired) = retired.upgrade() else {
                    return;
                };
                retired.sweep();
            }
        });
    }

    /// Keeps `snapshot` until nothing else holds it.
    pub fn retire(&self, snapshot: Arc<Snapshot>) {
        self.snapshots.lock().push(snapshot);
    }

    /// Drops the snapshots no worker or request holds any more.
    fn sweep(&self) {
        let unused: Vec<Arc<Snapshot>> = {
            let mut snapshots = self.snapshots.lock();
            let (unused, held) = snapshots
                .drain(..)
                .partition(|snapshot| Arc::strong_count(snapshot) == 1);
            *snapshots = held;
            unused
        };
        // Dropped here, on the background thread, outside the lock.
        drop(unused);
    }

    /// How many replaced snapshots are still held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.snapshots.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use floodgate_observe::Metrics;

    use super::*;
    use crate::snapshot::BuildInputs;

    fn snapshot() -> Arc<Snapshot> {
        let config = floodgate_config::parse_yaml(
            "listeners: [{ name: a, address: \"127.0.0.1:0\" }]\nroutes: [{ id: r, paths: [\"/\"], respond: { status: 200 } }]\n",
        )
        .unwrap();
        Arc::new(
            Snapshot::build(
                &config,
                &Metrics::new(1),
                1,
                None,
                BuildInputs::validating(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn a_retired_snapshot_is_dropped_only_once_nothing_holds_it() {
        let retired = Retired::default();
        let held_by_a_request = snapshot();
        retired.retire(held_by_a_request.clone());
        retired.retire(snapshot());
        retired.sweep();
        assert_eq!(retired.held(), 1, "the unheld one goes, the held one stays");
        retired.sweep();
        assert_eq!(retired.held(), 1);
        drop(held_by_a_request);
        retired.sweep();
        assert_eq!(retired.held(), 0);
    }
}
