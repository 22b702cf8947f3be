//! The immutable runtime form of a configuration, built off the request path and swapped in atomically.
//!
//! Everything a request needs is resolved here once: routes compiled, balancers and TLS configs built,
//! certificates loaded, metric handles looked up. A request loads the current snapshot once and keeps it to
//! its end, so a reload never changes a request halfway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floodgate_config::{Config, FieldError, Http2Config, MethodOverride, UnderscoresInHeaders};
use floodgate_observe::{AccessLog, Metrics, RouteMetrics, TlsHandshakeMetrics};
use floodgate_plugins::real_ip::RealIp;
use floodgate_plugins::{
    build_plugins, rebuild_plugins, Chain, ConsumerPlugins, Consumers, Plugin, PluginSet,
    RunningPlugins, StateStore,
};
use floodgate_router::{NextRoute, RouteTable};
use floodgate_trace::Tracer;
use floodgate_upstream::health::HealthStates;
use http::{HeaderValue, StatusCode};
use tokio_rustls::TlsAcceptor;

pub use crate::endpoints::{Endpoints, Target};
use crate::forward::retry::RetryPolicy;
use crate::path_normalize::PathRules;
use crate::tls;
use crate::upstream_runtime::build_upstreams;
pub use crate::upstream_runtime::{NameAnswers, UpstreamRuntime};

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
    /// Tracing, when on: each request's trace starts and ends with it.
    pub tracer: Option<Arc<Tracer>>,
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
    /// The configuration it was built from: the next build keeps what it finds unchanged in it.
    pub config: Arc<Config>,
    /// The global plugins, which routes built again by the next build get.
    pub global_plugins: Vec<Arc<Plugin>>,
    /// Each consumer's own plugins, by the consumer's index.
    pub consumer_plugins: ConsumerPlugins,
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
    /// The tracing its requests get, when the configuration has a `tracing` section.
    pub tracer: Option<Arc<Tracer>>,
}

impl BuildInputs<'static> {
    /// For a build that only validates: nothing carried over, no background tasks, no resolution.
    pub fn validating() -> Self {
        Self {
            previous: None,
            runtime: None,
            names: None,
            check_only: false,
            tracer: None,
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
    /// TLS acceptor, for TLS listeners, and where their handshakes are counted.
    pub tls: Option<(TlsAcceptor, Arc<TlsHandshakeMetrics>)>,
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
    /// Whether its requests are traced (when tracing is on).
    pub traced: bool,
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
    ///
    /// With a previous snapshot, what the configuration has unchanged from the one that snapshot was
    /// built from (the same `Arc`s) is taken from it rather than built again: upstreams, plugin chains,
    /// routes and the route table's untouched parts. A change then costs what it changes.
    pub fn build(
        config: &Config,
        metrics: &Metrics,
        workers: usize,
        access_log: Option<AccessLog>,
        inputs: BuildInputs<'_>,
    ) -> Result<Snapshot, Vec<FieldError>> {
        let mut errors = Vec::new();
        // What the routes' runtimes are made of besides their own configuration and upstream.
        let lender = inputs.previous.filter(|previous| {
            previous.config.limits == config.limits
                && previous.routes.len() == previous.config.routes.len()
        });
        // Which routes are the very ones the running snapshot was built from.
        let same_routes = lender
            .map(|lender| floodgate_config::same_items(&lender.config.routes, &config.routes));
        let plugins = build_plugin_set(config, lender, same_routes.as_deref(), &inputs, metrics)
            .unwrap_or_else(|e| {
                errors.extend(e);
                PluginSet::default()
            });
        let (upstreams, rebuilt_upstreams, broken_upstreams) = build_upstreams(
            config,
            metrics,
            workers,
            inputs.previous.map(|s| &s.upstreams),
            inputs.names,
            &mut errors,
        );
        // Unless one was built again or is gone, every upstream is the very one the previous
        // snapshot's routes forward to.
        let upstreams_changed = rebuilt_upstreams > 0
            || lender.is_none_or(|lender| lender.upstreams.len() != upstreams.len());
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
                        Ok(server) => Some((
                            TlsAcceptor::from(server),
                            metrics.tls_listener(&listener.name),
                        )),
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
        let found = match same_routes {
            Some(same) if plugins.unchanged_kept => same,
            _ => vec![None; config.routes.len()],
        };
        let mut next = Vec::with_capacity(config.routes.len());
        for (i, (route, found)) in config.routes.iter().zip(found).enumerate() {
            // Kept: its configuration, upstream and chain are what its runtime was made of. Its
            // chain is (`unchanged_kept`); its upstream is unless some upstream was built again.
            let kept = found.filter(|&j| {
                !upstreams_changed
                    || lender
                        .and_then(|lender| lender.routes.get(j))
                        .is_some_and(|old| match (&old.action, route.upstream.as_deref()) {
                            (RouteAction::Forward(old), Some(id)) => {
                                upstreams.get(id).is_some_and(|new| Arc::ptr_eq(old, new))
                            }
                            (RouteAction::Respond { .. }, None) => true,
                            _ => false,
                        })
            });
            if let Some(j) = kept {
                if !inputs.check_only {
                    next.push(NextRoute::Kept(j));
                }
                continue;
            }
            let chain = match found {
                // Unchanged but for its upstream: the chain it has (its entry is left empty).
                Some(j) => lender
                    .and_then(|lender| lender.routes.get(j))
                    .and_then(|old| old.plugins.clone()),
                None => plugins.routes.get(i).cloned().flatten(),
            };
            let action = match (&route.upstream, &route.respond) {
                (Some(id), _) => match upstreams.get(id.as_str()) {
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
            next.push(NextRoute::New(
                &**route,
                Arc::new(RouteRuntime {
                    id: route.id.as_str().into(),
                    action,
                    timeout: route.timeout.get(),
                    preserve_host: route.preserve_host,
                    traced: route.tracing,
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
                    plugins: chain,
                    method_override: route.method_override,
                    retries: route.retries.as_ref().map(RetryPolicy::from),
                }),
            ));
        }
        let routes = match lender {
            Some(lender) if !inputs.check_only => lender.routes.rebuild(next),
            _ => RouteTable::build(next.into_iter().filter_map(|route| match route {
                NextRoute::New(config, runtime) => Some((config, runtime)),
                NextRoute::Kept(_) => None,
            })),
        };
        let routes = match routes {
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
            tracer: inputs.tracer.clone(),
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
            upstreams,
            config: Arc::new(config.clone()),
            global_plugins: plugins.global,
            consumer_plugins: plugins.consumer_plugins,
        })
    }
}

/// The plugins of `config`: those of `lender`'s (the running snapshot's) unchanged routes kept,
/// the rest built.
fn build_plugin_set(
    config: &Config,
    lender: Option<&Snapshot>,
    same_routes: Option<&[Option<usize>]>,
    inputs: &BuildInputs<'_>,
    metrics: &Metrics,
) -> Result<PluginSet, Vec<FieldError>> {
    let none = StateStore::new();
    let runtime = inputs.runtime.clone();
    match lender.zip(same_routes) {
        Some((lender, same_routes)) => {
            let running = RunningPlugins {
                config: &lender.config,
                same_routes,
                consumers: &lender.consumers,
                consumer_plugins: &lender.consumer_plugins,
                global: &lender.global_plugins,
                real_ip: &lender.real_ip,
                states: &lender.plugin_states,
            };
            rebuild_plugins(config, &running, runtime, &metrics.plugins)
        }
        None => build_plugins(
            config,
            inputs.previous.map_or(&none, |s| &s.plugin_states),
            runtime,
            &metrics.plugins,
        ),
    }
}

#[cfg(test)]
mod tests;
