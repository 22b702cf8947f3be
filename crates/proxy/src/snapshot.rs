//! The immutable runtime form of a configuration, built off the request path and swapped in atomically.
//!
//! Everything a request needs is resolved here once: routes compiled, balancers and TLS configs built,
//! certificates loaded, metric handles looked up. A request loads the current snapshot once and keeps it to
//! its end, so a reload never changes a request halfway.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floodgate_config::{
    Config, FieldError, Http2Config, KeepaliveConfig, MethodOverride, TargetConfig,
    UnderscoresInHeaders, UpstreamConfig, UpstreamProtocol,
};
use floodgate_dns::Hosts;
use floodgate_observe::{AccessLog, Metrics, PerWorker, RouteMetrics, UpstreamMetrics};
use floodgate_plugins::real_ip::RealIp;
use floodgate_plugins::{build_plugins, Chain, Consumers, StateStore};
use floodgate_router::RouteTable;
use floodgate_upstream::breaker::CircuitBreaker;
use floodgate_upstream::health::HealthStates;
use http::{HeaderValue, StatusCode};
use tokio_rustls::TlsAcceptor;

pub use crate::endpoints::{Endpoints, EndpointsCell, Target};
use crate::forward::retry::{RetryBudget, RetryPolicy};
use crate::path_normalize::PathRules;
use crate::tls;

/// One configuration, ready for the request path.
pub struct Snapshot {
    /// Compiled routes.
    pub routes: RouteTable<Arc<RouteRuntime>>,
    /// Listeners by name (names are unique; addresses need not be, with port 0).
    pub listeners: HashMap<Arc<str>, ListenerRuntime>,
    /// Largest header block, in bytes.
    pub max_header_bytes: usize,
    /// How long the gateway waits on clients.
    pub client_timeouts: ClientTimeouts,
    /// Metrics of requests that matched no route.
    pub unmatched: Arc<RouteMetrics>,
    /// The access log, when on.
    pub access_log: Option<AccessLog>,
    /// Longest idle timeout of any upstream, for the idle connection sweep.
    pub max_idle_timeout: Duration,
    /// Client connections the gateway keeps open at once (`0`: no limit).
    pub max_connections: u64,
    /// Requests one worker serves at once (`0`: no limit).
    pub max_requests_in_flight_per_worker: u64,
    /// The HTTP/2 server's limits and timers, applied to each new connection.
    pub http2: Http2Config,
    /// How a request's client address is found (`real_ip`).
    pub real_ip: RealIp,
    /// The consumers authentication plugins identify.
    pub consumers: Arc<Consumers>,
    /// The plugins' states, handed to the next snapshot's build so unchanged plugins keep them.
    pub plugin_states: StateStore,
    /// The upstreams, by id.
    pub upstreams: HashMap<Arc<str>, Arc<UpstreamRuntime>>,
}

/// What building a snapshot needs besides the configuration.
pub struct BuildInputs<'a> {
    /// The running snapshot (`None` for the first): its plugins' states and its targets' health are
    /// carried over to what the new one keeps.
    pub previous: Option<&'a Snapshot>,
    /// Where plugins start background tasks (key fetches); `None` when only validating.
    pub runtime: Option<tokio::runtime::Handle>,
    /// The addresses of each upstream's target names as last resolved, by upstream id; `None`
    /// when only validating (name targets then have no addresses).
    pub names: Option<&'a NameAnswers>,
    /// Only checking a configuration [`Config::validate`] has passed: the routes' references are
    /// checked, but their runtimes and the route table (whose errors that validation reports) are
    /// not built, nor the routes' metrics made. The snapshot has no routes.
    pub check_only: bool,
}

/// Each upstream's hosts with their last answers, and which answer of the upstream's names they
/// are, by upstream id.
pub type NameAnswers = HashMap<Arc<str>, (Hosts, u64)>;

impl BuildInputs<'static> {
    /// For a build that only validates: nothing carried over, no background tasks, no resolution.
    pub fn validating() -> Self {
        Self {
            previous: None,
            runtime: None,
            names: None,
            check_only: false,
        }
    }

    /// [`BuildInputs::validating`] with `check_only`: what a configuration `Config::validate` passed
    /// needs checked besides, at a fraction of a build's cost.
    pub fn checking() -> Self {
        Self {
            check_only: true,
            ..Self::validating()
        }
    }
}

/// How long the gateway waits on a client at each stage (`timeouts` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct ClientTimeouts {
    /// For a whole request head.
    pub header: Duration,
    /// Between keep-alive requests.
    pub keepalive: Duration,
    /// Between two reads of a request body.
    pub body: Duration,
    /// Between two writes of a response.
    pub send: Duration,
}

/// A listener's per-snapshot settings; looked up per connection so certificates and path rules change
/// on reload.
pub struct ListenerRuntime {
    /// TLS acceptor, for TLS listeners.
    pub tls: Option<TlsAcceptor>,
    /// How its requests' paths are normalised.
    pub path_rules: PathRules,
    /// Client connections this listener keeps open at once (`0`: no limit of its own).
    pub max_connections: u64,
    /// Whether each connection starts with a PROXY protocol header naming the client.
    pub proxy_protocol: bool,
    /// What its requests' fields named with `_` become.
    pub underscores: UnderscoresInHeaders,
}

/// A route ready to serve.
pub struct RouteRuntime {
    /// Route id.
    pub id: Arc<str>,
    /// What to do with a matching request.
    pub action: RouteAction,
    /// Longest wait for the upstream's response headers.
    pub timeout: Duration,
    /// Keep the client's Host header (else the target's address).
    pub preserve_host: bool,
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Protocols a client may upgrade to (lowercase; never `h2c`).
    pub upgrades: Box<[Box<[u8]>]>,
    /// This route's metrics.
    pub metrics: Arc<RouteMetrics>,
    /// The route's plugin chain; `None` when it has no plugins (and pays nothing for them).
    pub plugins: Option<Arc<Chain>>,
    /// What happens to a method-override field naming a method routed elsewhere.
    pub method_override: MethodOverride,
    /// When a failed attempt is tried again; `None`: never.
    pub retries: Option<RetryPolicy>,
}

/// What a route does.
pub enum RouteAction {
    /// Answer with a fixed response.
    Respond {
        /// Status.
        status: StatusCode,
        /// Content type.
        content_type: HeaderValue,
        /// Body.
        body: Bytes,
    },
    /// Forward to an upstream.
    Forward(Arc<UpstreamRuntime>),
}

/// An upstream ready to serve.
pub struct UpstreamRuntime {
    /// Upstream id.
    pub id: Arc<str>,
    /// Its targets with their balancer and health: loaded once per forwarded request, and, for an
    /// upstream with names, swapped when a name's addresses change, without a new snapshot.
    pub endpoints: EndpointsCell,
    /// The configuration the endpoints are built from again when a name's addresses change.
    pub config: UpstreamConfig,
    /// Worker threads, which per-worker balancer state is sized for.
    pub workers: usize,
    /// Configured protocol (None: HTTP/1.1 in cleartext, ALPN with TLS).
    pub protocol: Option<UpstreamProtocol>,
    /// TLS client config, when the upstream uses TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Connect (TCP + TLS) timeout.
    pub connect_timeout: Duration,
    /// Longest wait between two reads of a response body.
    pub read_timeout: Duration,
    /// Per-worker connection limit per target.
    pub max_connections_per_target: Option<u32>,
    /// Idle connection reuse.
    pub keepalive: KeepaliveConfig,
    /// This upstream's metrics.
    pub metrics: Arc<UpstreamMetrics>,
    /// Requests and retries in flight, for the routes' retry budgets.
    pub retry_budget: RetryBudget,
    /// The upstream's circuit breaker, when it has one.
    pub breaker: Option<Arc<CircuitBreaker>>,
    /// Copies waiting on this upstream as a mirror (`proxy-mirror`), per worker.
    pub mirror_slots: PerWorker<AtomicU32>,
}

impl UpstreamRuntime {
    /// Replaces the endpoints with those of `hosts`, answer `generation` of the upstream's names.
    /// A target the new set still has keeps its health, load and latency; the metric series of
    /// those it no longer has are dropped, so the scrape lists only targets in use.
    pub fn refresh_endpoints(&self, hosts: &Hosts, generation: u64, metrics: &Metrics) {
        let previous = self.endpoints.load().health.states();
        self.rebuild(&self.config, hosts, generation, &previous, metrics);
    }

    /// Replaces the targets of an upstream with `discovery` by the registry's `targets`. A target the
    /// upstream (or `previous`, the snapshot before, for a new snapshot's upstream) already had keeps its
    /// health, load and latency.
    pub fn replace_targets(
        &self,
        targets: Vec<TargetConfig>,
        previous: Option<&HealthStates>,
        metrics: &Metrics,
    ) {
        let mut states = self.endpoints.load().health.states();
        if let Some(previous) = previous {
            for (key, state) in previous {
                states.entry(key.clone()).or_insert_with(|| state.clone());
            }
        }
        let config = UpstreamConfig {
            targets,
            ..self.config.clone()
        };
        let generation = self.endpoints.load().generation + 1;
        self.rebuild(&config, &Hosts::new(), generation, &states, metrics);
    }

    fn rebuild(
        &self,
        config: &UpstreamConfig,
        hosts: &Hosts,
        generation: u64,
        previous: &HealthStates,
        metrics: &Metrics,
    ) {
        let mut next = HealthStates::new();
        let endpoints = Endpoints::build(
            config,
            hosts,
            generation,
            previous,
            &mut next,
            metrics,
            self.workers,
        );
        self.endpoints.store(endpoints);
        let kept: std::collections::HashSet<&str> = next.keys().map(|(_, a)| &**a).collect();
        metrics.retain_targets(|upstream, address| upstream != &*self.id || kept.contains(address));
    }
}

impl Snapshot {
    /// The upstream with this id.
    pub fn upstream(&self, id: &str) -> Option<&Arc<UpstreamRuntime>> {
        self.upstreams.get(id)
    }

    /// Every target's health as the upstreams' endpoints hold it now (names resolved since the
    /// build included): what the next snapshot's build keeps of each target it still has.
    pub fn health_states(&self) -> HealthStates {
        self.upstreams
            .values()
            .flat_map(|upstream| upstream.endpoints.load().health.states())
            .collect()
    }

    /// Builds a snapshot from a validated configuration. Errors name the field at fault (certificates that
    /// cannot be read, keys that do not match).
    pub fn build(
        config: &Config,
        metrics: &Metrics,
        workers: usize,
        access_log: Option<AccessLog>,
        inputs: BuildInputs<'_>,
    ) -> Result<Snapshot, Vec<FieldError>> {
        let mut errors = Vec::new();
        let none = StateStore::new();
        let previous_health = inputs
            .previous
            .map_or_else(HealthStates::new, Snapshot::health_states);
        let mut health_states = HealthStates::new();
        let no_hosts = (Hosts::new(), 0);
        let plugins = match build_plugins(
            config,
            inputs.previous.map_or(&none, |s| &s.plugin_states),
            inputs.runtime,
            &metrics.plugins,
        ) {
            Ok(set) => set,
            Err(plugin_errors) => {
                errors.extend(plugin_errors);
                Default::default()
            }
        };
        let mut upstreams = HashMap::new();
        let mut broken_upstreams = Vec::new();
        for (i, upstream) in config.upstreams.iter().enumerate() {
            let (hosts, generation) = inputs
                .names
                .and_then(|names| names.get(upstream.id.as_str()))
                .unwrap_or(&no_hosts);
            let endpoints = Endpoints::build(
                upstream,
                hosts,
                *generation,
                &previous_health,
                &mut health_states,
                metrics,
                workers,
            );
            // A breaker with unchanged settings keeps its state (and its counts of what is in
            // flight); one with new settings starts closed.
            let breaker = upstream.circuit_breaker.as_ref().map(|config| {
                let kept = inputs
                    .previous
                    .and_then(|s| s.upstream(&upstream.id))
                    .and_then(|u| u.breaker.clone())
                    .filter(|b| b.config() == config);
                kept.unwrap_or_else(|| {
                    Arc::new(CircuitBreaker::new(
                        &upstream.id,
                        config,
                        workers,
                        metrics.breaker(&upstream.id),
                    ))
                })
            });
            match build_upstream(upstream, i, metrics, workers, endpoints, breaker) {
                Ok(runtime) => {
                    upstreams.insert(upstream.id.clone(), Arc::new(runtime));
                }
                Err(e) => {
                    errors.push(e);
                    broken_upstreams.push(upstream.id.as_str());
                }
            }
        }
        let served = tls::server::served_certificates(&config.certificates).unwrap_or_else(|e| {
            errors.extend(e);
            Vec::new()
        });
        let mut listeners = HashMap::new();
        for (i, listener) in config.listeners.iter().enumerate() {
            let tls = match &listener.tls {
                None => None,
                Some(tls) => {
                    match tls::server::server_config(tls, &served, &format!("listeners[{i}].tls")) {
                        Ok(server) => Some(TlsAcceptor::from(server)),
                        Err((path, message)) => {
                            errors.push(FieldError::new(path, message));
                            None
                        }
                    }
                }
            };
            let name: Arc<str> = listener.name.as_str().into();
            listeners.insert(
                name,
                ListenerRuntime {
                    tls,
                    path_rules: PathRules::from(&listener.path_normalization),
                    max_connections: listener.max_connections,
                    proxy_protocol: listener.proxy_protocol,
                    underscores: listener.underscores_in_headers,
                },
            );
        }
        let mut runtimes = Vec::with_capacity(config.routes.len());
        for (i, route) in config.routes.iter().enumerate() {
            let action = match (&route.upstream, &route.respond) {
                (Some(id), _) => match upstreams.get(id) {
                    Some(upstream) => RouteAction::Forward(upstream.clone()),
                    // Already reported at the upstream itself.
                    None if broken_upstreams.contains(&id.as_str()) => continue,
                    None => {
                        errors.push(FieldError::new(
                            format!("routes[{i}].upstream"),
                            format!("no upstream with id {id:?}"),
                        ));
                        continue;
                    }
                },
                (None, Some(respond)) => RouteAction::Respond {
                    status: StatusCode::from_u16(respond.status).unwrap_or(StatusCode::OK),
                    content_type: HeaderValue::from_str(&respond.content_type)
                        .unwrap_or(HeaderValue::from_static("text/plain")),
                    body: Bytes::from(respond.body.clone()),
                },
                (None, None) => continue,
            };
            if inputs.check_only {
                continue;
            }
            runtimes.push((
                &**route,
                Arc::new(RouteRuntime {
                    id: route.id.as_str().into(),
                    action,
                    timeout: route.timeout.get(),
                    preserve_host: route.preserve_host,
                    max_body_bytes: route
                        .max_body_bytes
                        .unwrap_or(config.limits.max_body_bytes)
                        .get(),
                    upgrades: route
                        .upgrades
                        .iter()
                        .map(|p| p.to_ascii_lowercase().into_bytes().into_boxed_slice())
                        .filter(|p| **p != *b"h2c")
                        .collect(),
                    metrics: metrics.route(&route.id),
                    plugins: plugins.routes.get(i).cloned().flatten(),
                    method_override: route.method_override,
                    retries: route.retries.as_ref().map(RetryPolicy::from),
                }),
            ));
        }
        let routes = match RouteTable::build(runtimes) {
            Ok(table) => table,
            Err(e) => {
                errors.push(FieldError::new("routes", e.to_string()));
                return Err(errors);
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Snapshot {
            routes,
            listeners,
            max_header_bytes: config.limits.max_header_bytes.get() as usize,
            client_timeouts: ClientTimeouts {
                header: config.timeouts.client_header.get(),
                keepalive: config.timeouts.client_keepalive.get(),
                body: config.timeouts.client_body.get(),
                send: config.timeouts.client_send.get(),
            },
            unmatched: metrics.unmatched(),
            access_log,
            max_idle_timeout: config
                .upstreams
                .iter()
                .map(|u| u.keepalive.idle_timeout.get())
                .max()
                .unwrap_or(Duration::from_secs(60)),
            max_connections: config.limits.max_connections,
            max_requests_in_flight_per_worker: config.limits.max_requests_in_flight_per_worker,
            http2: config.http2.clone(),
            real_ip: plugins.real_ip,
            consumers: plugins.consumers,
            plugin_states: plugins.states,
            upstreams: upstreams
                .into_iter()
                .map(|(id, upstream)| (Arc::from(id.as_str()), upstream))
                .collect(),
        })
    }
}

fn build_upstream(
    config: &UpstreamConfig,
    index: usize,
    metrics: &Metrics,
    workers: usize,
    endpoints: Endpoints,
    breaker: Option<Arc<CircuitBreaker>>,
) -> Result<UpstreamRuntime, FieldError> {
    let tls = match &config.tls {
        None => None,
        Some(tls) => Some(
            tls::client::client_config(tls, config.protocol, &format!("upstreams[{index}].tls"))
                .map_err(|(path, message)| FieldError::new(path, message))?,
        ),
    };
    Ok(UpstreamRuntime {
        id: config.id.as_str().into(),
        endpoints: EndpointsCell::new(
            endpoints,
            config.discovery.is_some() || !crate::endpoints::hosts_of(config).is_empty(),
        ),
        config: config.clone(),
        workers,
        protocol: config.protocol,
        tls,
        connect_timeout: config.connect_timeout.get(),
        read_timeout: config.read_timeout.get(),
        max_connections_per_target: config.max_connections_per_target,
        keepalive: config.keepalive.clone(),
        metrics: metrics.upstream(&config.id),
        retry_budget: RetryBudget::new(workers),
        breaker,
        mirror_slots: PerWorker::new(workers),
    })
}
