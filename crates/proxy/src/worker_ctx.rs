//! What a worker's connections share: the worker's context (its index, pools, stop signal, open
//! connection count and recycled read buffers) and the state every worker shares. The worker's loop
//! itself is in `worker.rs`, above the server that uses this.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use floodgate_observe::Metrics;
use tokio::sync::Notify;

use crate::overload::connections::ConnectionCount;
use crate::snapshot::Snapshot;
use crate::stop::StopSignal;
use crate::upstream::WorkerPools;

/// Read buffers a worker keeps for reuse: 1 MiB at most, at the usual 4 KiB each.
const MAX_KEPT_READ_BUFFERS: usize = 256;

/// State every worker shares: the current snapshot and the metrics registry.
pub struct Shared {
    /// The configuration in force; swapped whole on reload.
    pub snapshot: ArcSwap<Snapshot>,
    /// Process-wide metrics with per-worker slots.
    pub metrics: Arc<Metrics>,
    /// Client connections open on every listener of every worker, for `limits.max_connections`.
    pub connections: Arc<ConnectionCount>,
}

/// Per-worker context handed to every connection task.
pub struct WorkerCtx {
    /// Worker index (its metric and balancer slot).
    pub index: usize,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// This worker's upstream connection pools.
    pub pools: Rc<WorkerPools>,
    /// Connections (and tunnels) open on this worker, for a graceful stop to wait on.
    pub(crate) open_connections: Cell<usize>,
    /// Woken when the last open connection closes.
    pub(crate) all_closed: Notify,
    /// Set when the worker starts shutting down.
    pub stop: StopSignal,
    /// Read buffers handed back by connections going idle, for the next that has a request to read.
    pub(crate) read_buffers: RefCell<Vec<BytesMut>>,
    /// The shutdown deadline, once shutdown has begun.
    pub(crate) deadline: Cell<Option<Instant>>,
    /// The snapshot this worker's requests hold (see [`WorkerCtx::snapshot`]).
    pub(crate) held_snapshot: RefCell<Option<Rc<HeldSnapshot>>>,
}

/// A worker's hold on a snapshot (one count of the shared `Arc`), which its requests share through
/// an `Rc` of the worker's own.
pub struct HeldSnapshot(Arc<Snapshot>);

impl std::ops::Deref for HeldSnapshot {
    type Target = Snapshot;

    fn deref(&self) -> &Snapshot {
        &self.0
    }
}

/// Counts an open connection (or tunnel) for as long as it lives.
pub struct ConnectionGuard(Rc<WorkerCtx>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let open = self.0.open_connections.get().saturating_sub(1);
        self.0.open_connections.set(open);
        if open == 0 {
            self.0.all_closed.notify_waiters();
        }
    }
}

impl WorkerCtx {
    /// Counts a connection until the guard drops.
    pub fn track_connection(self: &Rc<Self>) -> ConnectionGuard {
        self.open_connections.set(self.open_connections.get() + 1);
        ConnectionGuard(self.clone())
    }

    /// A read buffer for a connection that has a request to read: one an idle connection gave back, or
    /// an empty one (which allocates on its first read).
    pub fn read_buffer(&self) -> BytesMut {
        self.read_buffers.borrow_mut().pop().unwrap_or_default()
    }

    /// Takes back the read buffer of a connection going idle. A few are kept, so the next request
    /// read on this worker reuses one instead of allocating (idle connections still hold none); large
    /// ones, grown by bodies, are freed.
    pub fn recycle_read_buffer(&self, mut buf: BytesMut) {
        let mut kept = self.read_buffers.borrow_mut();
        if kept.len() < MAX_KEPT_READ_BUFFERS && (1024..=16 * 1024).contains(&buf.capacity()) {
            buf.clear();
            kept.push(buf);
        }
    }

    /// The snapshot in force, for a request to hold to its end. The worker holds the shared count of
    /// each snapshot once and its requests count on the worker's own `Rc`: the shared count's cache
    /// line would otherwise travel between the workers' cores twice per request.
    pub fn snapshot(&self) -> Rc<HeldSnapshot> {
        let current = self.shared.snapshot.load();
        let mut held = self.held_snapshot.borrow_mut();
        match &*held {
            Some(snapshot) if Arc::ptr_eq(&snapshot.0, &current) => snapshot.clone(),
            _ => {
                let snapshot = Rc::new(HeldSnapshot(arc_swap::Guard::into_inner(current)));
                *held = Some(snapshot.clone());
                snapshot
            }
        }
    }

    /// Lets go of the worker's hold on a snapshot a reload replaced (its requests still in flight keep
    /// their own), so an idle worker does not keep it alive (called by the idle sweep).
    pub fn release_replaced_snapshot(&self) {
        let current = self.shared.snapshot.load();
        let mut held = self.held_snapshot.borrow_mut();
        if held.as_ref().is_some_and(|s| !Arc::ptr_eq(&s.0, &current)) {
            *held = None;
        }
    }

    /// Resolves at the shutdown deadline (never, before shutdown starts).
    pub async fn wait_for_deadline(&self) {
        match self.deadline.get() {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    }
}
