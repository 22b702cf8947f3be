//! A worker: one thread, one single-threaded runtime, its own listeners' sockets and its own pools.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::BytesMut;
use floodgate_observe::Metrics;
use tokio::sync::{mpsc, Notify};
use tokio::task::{JoinHandle, LocalSet};

use crate::overload::connections::ConnectionCount;
use crate::server::accept::accept_loop;
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

/// What the gateway tells a worker.
pub enum WorkerCommand {
    /// Start accepting on this socket for the listener `name`, replacing its previous socket if any.
    Listen {
        /// The listener's name; keys its TLS settings in the snapshot.
        name: Arc<str>,
        /// This worker's own `SO_REUSEPORT` socket.
        socket: std::net::TcpListener,
        /// The listener's open connections, shared by every worker's socket for it.
        connections: Arc<ConnectionCount>,
    },
    /// Stop accepting on the listener with this name; open connections continue.
    Close(Arc<str>),
    /// Stop accepting, let open connections finish until the deadline, then stop the worker.
    Shutdown(Instant),
}

/// Per-worker context handed to every connection task.
pub struct WorkerCtx {
    /// Worker index (its metric and balancer slot).
    pub index: usize,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// This worker's upstream connection pools.
    pub pools: Rc<WorkerPools>,
    open_connections: Cell<usize>,
    all_closed: Notify,
    /// Set when the worker starts shutting down.
    pub stop: StopSignal,
    /// Read buffers handed back by connections going idle, for the next that has a request to read.
    read_buffers: RefCell<Vec<BytesMut>>,
    deadline: Cell<Option<Instant>>,
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

    /// Resolves at the shutdown deadline (never, before shutdown starts).
    pub async fn wait_for_deadline(&self) {
        match self.deadline.get() {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    }
}

/// Runs a worker until it is told to shut down. Blocks the calling thread.
pub fn run_worker(
    index: usize,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<WorkerCommand>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = LocalSet::new();
    local.block_on(&runtime, async move {
        let ctx = Rc::new(WorkerCtx {
            index,
            shared,
            pools: Rc::new(WorkerPools::default()),
            open_connections: Cell::new(0),
            all_closed: Notify::new(),
            stop: StopSignal::default(),
            read_buffers: RefCell::new(Vec::new()),
            deadline: Cell::new(None),
        });
        let sweeper = tokio::task::spawn_local(sweep_idle(ctx.clone()));
        let mut accepting: HashMap<Arc<str>, JoinHandle<()>> = HashMap::new();
        let mut deadline = None;
        while let Some(command) = commands.recv().await {
            match command {
                WorkerCommand::Listen {
                    name,
                    socket,
                    connections,
                } => {
                    match tokio::net::TcpListener::from_std(socket) {
                        Ok(listener) => {
                            let task =
                                tokio::task::spawn_local(accept_loop(
                                ctx.clone(),
                                name.clone(),
                                listener,
                                connections,
                            ));
                            if let Some(previous) = accepting.insert(name, task) {
                                previous.abort();
                            }
                        }
                        Err(e) => tracing::error!(worker = index, listener = %name, error = %e, "cannot use listener socket"),
                    }
                }
                WorkerCommand::Close(name) => {
                    if let Some(task) = accepting.remove(&name) {
                        task.abort();
                    }
                }
                WorkerCommand::Shutdown(at) => {
                    deadline = Some(at);
                    break;
                }
            }
        }
        // Stop accepting first, so no new connection arrives while the open ones wind down.
        for (_, task) in accepting.drain() {
            task.abort();
        }
        sweeper.abort();
        let deadline = deadline.unwrap_or_else(Instant::now);
        ctx.deadline.set(Some(deadline));
        ctx.stop.stop();
        let drained = async {
            while ctx.open_connections.get() > 0 {
                let notified = ctx.all_closed.notified();
                if ctx.open_connections.get() == 0 {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout_at(deadline.into(), drained).await.is_err() {
            tracing::warn!(
                worker = index,
                open = ctx.open_connections.get(),
                "shutdown deadline reached with connections still open"
            );
        }
    });
    Ok(())
}

/// Closes idle upstream connections past their idle timeout, so upstreams are not held open forever by an
/// idle gateway. The longest idle timeout of the current snapshot applies to the sweep.
async fn sweep_idle(ctx: Rc<WorkerCtx>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let idle_timeout = ctx.shared.snapshot.load().max_idle_timeout;
        ctx.pools.sweep(idle_timeout);
    }
}
