//! The gateway as a whole: its workers, its listeners, and reloading both from a new configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use floodgate_config::{AccessLogConfig, Config, FieldError, TracingConfig};
use floodgate_observe::{AccessLog, Metrics};
use floodgate_trace::{SpanQueue, Tracer};
use tokio::sync::mpsc;

use crate::background::Background;
use crate::discovery::Discovery;
use crate::listener::bind_reuseport;
use crate::overload::connections::ConnectionCount;
use crate::probe::Probes;
use crate::registered::RegisteredTargets;
use crate::retired::Retired;
use crate::snapshot::{BuildInputs, Snapshot};
use crate::worker::{run_worker, WorkerCommand};
use crate::worker_ctx::Shared;

/// Why the gateway could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration has problems that only show when building it (certificates, keys).
    #[error("{}", render(.0))]
    Invalid(Vec<FieldError>),
    /// A listener's address could not be bound.
    #[error("{path}: cannot listen on {address}: {source}")]
    Bind {
        /// The listener's field path.
        path: String,
        /// Its address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start worker: {0}")]
    Worker(std::io::Error),
}

fn render(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

struct Worker {
    commands: mpsc::UnboundedSender<WorkerCommand>,
    thread: JoinHandle<()>,
}

/// A listener the gateway is accepting on.
#[derive(Debug, Clone)]
pub struct BoundListener {
    /// Listener name from the configuration.
    pub name: String,
    /// The address as configured.
    pub config_addr: SocketAddr,
    /// The address actually bound (differs from the configured one when that has port 0).
    pub local_addr: SocketAddr,
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    workers: Vec<Worker>,
    /// Listeners by name: names are unique, addresses need not be (port 0).
    listeners: HashMap<String, BoundListener>,
    /// Open connections by listener name, kept across reloads (and address changes) for as long as the
    /// listener is configured, so its `max_connections` counts the connections it already has.
    listener_connections: HashMap<String, Arc<ConnectionCount>>,
    /// The access log open and the settings it was opened with: a reload with the same settings keeps it.
    access_log: Option<(AccessLogConfig, AccessLog)>,
    /// The span exporter running and the tracing settings it was started with: a reload that keeps
    /// them keeps its queue and connection.
    tracing: Option<(TracingConfig, Arc<SpanQueue>)>,
    /// Runs the plugins' background tasks, the active health probes and the resolution of names.
    background: Background,
    /// The active health probes running; shared with `discovery`, whose new answers they follow.
    probes: Arc<parking_lot::Mutex<Probes>>,
    /// The tasks following the upstreams' target names.
    discovery: Discovery,
    /// The targets the registry gives upstreams with `discovery`.
    registered: Arc<RegisteredTargets>,
    /// Replaced snapshots, dropped off the workers once no request holds them.
    retired: Arc<Retired>,
}

impl Gateway {
    /// Builds the first snapshot, binds every listener and starts the workers.
    pub fn start(config: &Config, metrics: Arc<Metrics>) -> Result<Gateway, GatewayError> {
        let worker_count = config.worker_count();
        let access_log = open_access_log(config, None, &metrics)?;
        let background = Background::start().map_err(GatewayError::Worker)?;
        let tracing = start_tracing(config, None, background.handle().as_ref(), &metrics)?;
        let probes = Arc::new(parking_lot::Mutex::new(Probes::default()));
        let mut discovery = Discovery::new(metrics.clone(), probes.clone());
        let plan = discovery.plan(config, background.handle().as_ref());
        let snapshot = Snapshot::build(
            config,
            &metrics,
            worker_count,
            access_log.as_ref().map(|(_, log)| log.clone()),
            BuildInputs {
                previous: None,
                runtime: background.handle(),
                names: Some(&plan.answers),
                check_only: false,
                tracer: tracer_of(tracing.as_ref()),
            },
        )
        .map_err(GatewayError::Invalid)?;
        forget_removed_targets(&metrics, &snapshot);
        if let Some(runtime) = background.handle() {
            discovery.commit(plan, &snapshot, &runtime);
            probes.lock().apply(config, &snapshot, &runtime);
        }
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics: metrics.clone(),
            connections: Arc::default(),
        });
        let retired = Arc::new(Retired::default());
        if let Some(runtime) = background.handle() {
            retired.start(&runtime);
        }
        let registered = Arc::new(RegisteredTargets::new(
            shared.clone(),
            metrics,
            probes.clone(),
            background.handle(),
        ));
        let mut workers = Vec::with_capacity(worker_count);
        for index in 0..worker_count {
            let (commands, receiver) = mpsc::unbounded_channel();
            let worker_shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("floodgate-worker-{index}"))
                .spawn(move || {
                    if let Err(e) = run_worker(index, worker_shared, receiver) {
                        tracing::error!(worker = index, error = %e, "worker failed to start");
                    }
                })
                .map_err(GatewayError::Worker)?;
            workers.push(Worker { commands, thread });
        }
        let mut gateway = Gateway {
            shared,
            workers,
            listeners: HashMap::new(),
            listener_connections: HashMap::new(),
            access_log,
            tracing,
            background,
            probes,
            discovery,
            registered,
            retired,
        };
        gateway.apply_listeners(config)?;
        Ok(gateway)
    }

    /// Applies a new configuration: builds its snapshot and binds any new listener first, and only when all
    /// of that succeeded swaps the snapshot in and closes removed listeners. On error nothing changes.
    /// Open connections, in-flight requests and tunnels are never touched.
    pub fn reload(&mut self, config: &Config) -> Result<(), GatewayError> {
        if config.worker_count() != self.workers.len() {
            tracing::warn!(
                running = self.workers.len(),
                configured = config.worker_count(),
                "changing the number of workers needs a restart; keeping the running count"
            );
        }
        let access_log = open_access_log(config, self.access_log.as_ref(), &self.shared.metrics)?;
        let tracing = start_tracing(
            config,
            self.tracing.as_ref(),
            self.background.handle().as_ref(),
            &self.shared.metrics,
        )?;
        let plan = self
            .discovery
            .plan(config, self.background.handle().as_ref());
        let running = self.shared.snapshot.load();
        let snapshot = Snapshot::build(
            config,
            &self.shared.metrics,
            self.workers.len(),
            access_log.as_ref().map(|(_, log)| log.clone()),
            BuildInputs {
                previous: Some(&running),
                runtime: self.background.handle(),
                names: Some(&plan.answers),
                check_only: false,
                tracer: tracer_of(tracing.as_ref()),
            },
        )
        .map_err(GatewayError::Invalid)?;
        self.registered.apply_to(&snapshot, Some(&running));
        drop(running);
        let new_sockets = self.bind_new(config)?;
        forget_removed_targets(&self.shared.metrics, &snapshot);
        if let Some(runtime) = self.background.handle() {
            self.discovery.commit(plan, &snapshot, &runtime);
            self.probes.lock().apply(config, &snapshot, &runtime);
        }
        let snapshot = Arc::new(snapshot);
        let replaced = self.shared.snapshot.swap(snapshot.clone());
        self.retired.retire(replaced);
        // A registry change that arrived while the snapshot was built went to the one before.
        self.registered.apply_to(&snapshot, None);
        self.access_log = access_log;
        self.tracing = tracing;
        let removed: Vec<String> = self
            .listeners
            .keys()
            .filter(|name| !config.listeners.iter().any(|l| &l.name == *name))
            .cloned()
            .collect();
        for name in removed {
            let key: Arc<str> = name.as_str().into();
            for worker in &self.workers {
                let _ = worker.commands.send(WorkerCommand::Close(key.clone()));
            }
            self.listeners.remove(&name);
            self.listener_connections.remove(&name);
            tracing::info!(listener = %name, "listener closed");
        }
        // A listener whose address changed gets its new sockets here; the worker drops the old ones.
        self.hand_out(new_sockets);
        Ok(())
    }

    /// Has the access log open its file again (SIGUSR1, after logrotate moved it).
    pub fn reopen_access_log(&self) {
        if let Some((_, log)) = &self.access_log {
            log.reopen();
        }
    }

    /// A source of `GET /status/upstreams`' JSON for the admin listener: each call reads the
    /// configuration in service at that time.
    pub fn upstream_status_source(&self) -> impl Fn() -> String + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || crate::status::upstream_status(&shared.snapshot.load()).to_string()
    }

    /// The snapshot in service at each call: what a check of a changed configuration compares it
    /// with, so that it checks the change, not the whole ([`BuildInputs::previous`]).
    pub fn running_snapshot(&self) -> impl Fn() -> Arc<Snapshot> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.snapshot.load_full()
    }

    /// Where the registry's instances of upstreams with `discovery` are handed to the gateway.
    pub fn registered_targets(&self) -> Arc<RegisteredTargets> {
        self.registered.clone()
    }

    /// The listeners being served.
    pub fn listeners(&self) -> Vec<BoundListener> {
        self.listeners.values().cloned().collect()
    }

    /// The bound address of the listener with this name.
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.get(name).map(|l| l.local_addr)
    }

    /// Stops accepting, lets open connections finish for up to `grace`, then stops the workers. Blocks until
    /// every worker has stopped.
    pub fn shutdown(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for worker in &self.workers {
            let _ = worker.commands.send(WorkerCommand::Shutdown(deadline));
        }
        for worker in self.workers {
            let _ = worker.thread.join();
        }
    }

    fn apply_listeners(&mut self, config: &Config) -> Result<(), GatewayError> {
        let sockets = self.bind_new(config)?;
        self.hand_out(sockets);
        Ok(())
    }

    /// Binds every configured listener that is new or whose address changed. All or nothing: on error the
    /// sockets bound so far are dropped (closed).
    ///
    /// Listener sockets carry `SO_REUSEPORT`, so the kernel would let a second listener of this gateway bind
    /// a port another one already holds and then split connections between the two, TLS and cleartext alike.
    /// Fixed ports are bound before port 0 ones (the kernel never hands out a port that is bound), and a new
    /// listener on the address a kept one holds is refused.
    fn bind_new(&self, config: &Config) -> Result<Vec<NewListener>, GatewayError> {
        // A configured listener whose address is unchanged keeps its sockets; the others are bound.
        let (kept, mut wanted): (Vec<_>, Vec<_>) = configured_addresses(config)
            .into_iter()
            .partition(|(addr, name, _)| {
                self.listeners
                    .get(name)
                    .is_some_and(|current| current.config_addr == *addr)
            });
        let kept: Vec<&BoundListener> = kept
            .iter()
            .filter_map(|(_, name, _)| self.listeners.get(name))
            .collect();
        wanted.sort_by_key(|(addr, _, _)| addr.port() == 0);
        let mut bound: Vec<NewListener> = Vec::new();
        for (addr, name, path) in wanted {
            let holder = kept
                .iter()
                .map(|l| (l.name.as_str(), l.local_addr))
                .chain(bound.iter().map(|l| (l.name.as_str(), l.local_addr)))
                .find(|(_, local)| *local == addr);
            if let Some((holder, _)) = holder {
                return Err(GatewayError::Bind {
                    path,
                    address: addr,
                    source: std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        format!("listener {holder:?} is bound to it"),
                    ),
                });
            }
            let (sockets, local_addr) =
                bind_reuseport(addr, self.workers.len()).map_err(|source| GatewayError::Bind {
                    path,
                    address: addr,
                    source,
                })?;
            bound.push(NewListener {
                config_addr: addr,
                name,
                local_addr,
                sockets,
            });
        }
        Ok(bound)
    }

    fn hand_out(&mut self, new: Vec<NewListener>) {
        for listener in new {
            let key: Arc<str> = listener.name.as_str().into();
            let connections = self
                .listener_connections
                .entry(listener.name.clone())
                .or_default()
                .clone();
            for (worker, socket) in self.workers.iter().zip(listener.sockets) {
                let _ = worker.commands.send(WorkerCommand::Listen {
                    name: key.clone(),
                    socket,
                    connections: connections.clone(),
                });
            }
            tracing::info!(name = %listener.name, address = %listener.local_addr, "listening");
            self.listeners.insert(
                listener.name.clone(),
                BoundListener {
                    name: listener.name,
                    config_addr: listener.config_addr,
                    local_addr: listener.local_addr,
                },
            );
        }
    }
}

struct NewListener {
    config_addr: SocketAddr,
    name: String,
    local_addr: SocketAddr,
    sockets: Vec<std::net::TcpListener>,
}

fn configured_addresses(config: &Config) -> Vec<(SocketAddr, String, String)> {
    config
        .listeners
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            l.address
                .parse()
                .ok()
                .map(|addr| (addr, l.name.clone(), format!("listeners[{i}].address")))
        })
        .collect()
}

/// Starts the span exporter `config.tracing` asks for on the background runtime, reusing the running
/// one when the settings did not change.
fn start_tracing(
    config: &Config,
    current: Option<&(TracingConfig, Arc<SpanQueue>)>,
    runtime: Option<&tokio::runtime::Handle>,
    metrics: &Metrics,
) -> Result<Option<(TracingConfig, Arc<SpanQueue>)>, GatewayError> {
    let Some(settings) = &config.tracing else {
        return Ok(None);
    };
    if let Some((running, queue)) = current {
        if running == settings {
            return Ok(Some((running.clone(), queue.clone())));
        }
    }
    let invalid =
        |message: String| GatewayError::Invalid(vec![FieldError::new("tracing.endpoint", message)]);
    let runtime = runtime.ok_or_else(|| invalid("no runtime to export spans on".to_owned()))?;
    SpanQueue::start(settings, runtime, metrics.tracing.clone())
        .map(|queue| Some((settings.clone(), queue)))
        .map_err(invalid)
}

/// The tracer of a snapshot, its spans going to the running exporter (there is one exactly when the
/// configuration has a `tracing` section).
fn tracer_of(tracing: Option<&(TracingConfig, Arc<SpanQueue>)>) -> Option<Arc<Tracer>> {
    tracing.map(|(settings, queue)| Arc::new(Tracer::new(settings, queue.clone())))
}

/// Opens the access log, reusing the open one when its settings did not change. A changed format or
/// ratio on the same path opens a second writer on the file; the first finishes its queue and closes
/// once the snapshots holding it are gone.
fn open_access_log(
    config: &Config,
    current: Option<&(AccessLogConfig, AccessLog)>,
    metrics: &Metrics,
) -> Result<Option<(AccessLogConfig, AccessLog)>, GatewayError> {
    let Some(access_log) = &config.access_log else {
        return Ok(None);
    };
    if let Some((settings, log)) = current {
        if settings == access_log {
            return Ok(Some((settings.clone(), log.clone())));
        }
    }
    AccessLog::open(access_log, metrics.access_log.clone())
        .map(|log| Some((access_log.clone(), log)))
        .map_err(|e| {
            GatewayError::Invalid(vec![FieldError::new(
                "access_log.path",
                format!("cannot open {:?}: {e}", access_log.path),
            )])
        })
}

/// Drops the health series of targets `snapshot` no longer has, so the scrape lists only configured
/// targets.
fn forget_removed_targets(metrics: &Metrics, snapshot: &Snapshot) {
    let states = snapshot.health_states();
    let kept: std::collections::HashSet<(&str, &str)> = states
        .keys()
        .map(|(upstream, address)| (&**upstream, &**address))
        .collect();
    metrics.retain_targets(|upstream, address| kept.contains(&(upstream, address)));
}
