//! A worker: one thread, one single-threaded runtime, its own listeners' sockets and its own pools.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify};
use tokio::task::{JoinHandle, LocalSet};

use crate::overload::connections::ConnectionCount;
use crate::server::accept::accept_loop;
use crate::stop::StopSignal;
use crate::upstream::WorkerPools;
use crate::worker_ctx::{Shared, WorkerCtx};

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
            held_snapshot: RefCell::new(None),
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
        ctx.release_replaced_snapshot();
    }
}
