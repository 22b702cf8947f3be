//! [`UpstreamRuntime`]: an upstream ready to serve, and how a snapshot's build makes each one, or
//! takes it as it was from the snapshot before.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use floodgate_config::{
    Config, FieldError, KeepaliveConfig, TargetConfig, UpstreamConfig, UpstreamProtocol,
};
use floodgate_dns::Hosts;
use floodgate_observe::{Metrics, PerWorker, UpstreamMetrics};
use floodgate_upstream::breaker::CircuitBreaker;
use floodgate_upstream::health::HealthStates;

use crate::endpoints::{Endpoints, EndpointsCell};
use crate::forward::retry::RetryBudget;
use crate::tls;

/// An upstream ready to serve.
pub struct UpstreamRuntime {
    /// Upstream id.
    pub id: Arc<str>,
    /// Its targets with their balancer and health: loaded once per forwarded request, and, for an
    /// upstream with names, swapped when a name's addresses change, without a new snapshot.
    pub endpoints: EndpointsCell,
    /// The configuration the endpoints are built from again when a name's addresses change.
    pub config: Arc<UpstreamConfig>,
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
            ..(*self.config).clone()
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

/// Each upstream's hosts with their last answers, and which answer of the upstream's names they
/// are, by upstream id.
pub type NameAnswers = HashMap<Arc<str>, (Hosts, u64)>;

/// The upstreams of `config` by id, with how many were not taken as they were from the previous
/// snapshot (built again or new) and the ids of those that could not be built (reported in `errors`).
///
/// An upstream whose configuration is the previous one's (the same `Arc`) is taken as it is: its
/// endpoints, kept current since by name resolution and the registry, its breaker and its metrics.
/// One built again keeps the health of its targets and, with unchanged settings, its breaker.
///
/// `previous` are the previous snapshot's upstreams (none for the first), `names` each upstream's
/// last answers (none when only validating).
pub(crate) fn build_upstreams<'c>(
    config: &'c Config,
    metrics: &Metrics,
    workers: usize,
    previous: Option<&HashMap<Arc<str>, Arc<UpstreamRuntime>>>,
    names: Option<&NameAnswers>,
    errors: &mut Vec<FieldError>,
) -> (HashMap<Arc<str>, Arc<UpstreamRuntime>>, usize, Vec<&'c str>) {
    let no_hosts = (Hosts::new(), 0);
    let mut upstreams = HashMap::new();
    let mut rebuilt = 0;
    let mut broken = Vec::new();
    for (i, upstream) in config.upstreams.iter().enumerate() {
        let (hosts, generation) = names
            .and_then(|names| names.get(upstream.id.as_str()))
            .unwrap_or(&no_hosts);
        let previous = previous.and_then(|upstreams| upstreams.get(upstream.id.as_str()));
        let has_names = !crate::endpoints::hosts_of(upstream).is_empty();
        let same = previous.filter(|old| {
            Arc::ptr_eq(&old.config, upstream)
                && old.workers == workers
                && (!has_names || old.endpoints.load().generation == *generation)
        });
        if let Some(same) = same {
            upstreams.insert(same.id.clone(), same.clone());
            continue;
        }
        rebuilt += 1;
        let previous_health = previous
            .map(|old| old.endpoints.load().health.states())
            .unwrap_or_default();
        let endpoints = Endpoints::build(
            upstream,
            hosts,
            *generation,
            &previous_health,
            &mut HealthStates::new(),
            metrics,
            workers,
        );
        // A breaker with unchanged settings keeps its state (and its counts of what is in
        // flight); one with new settings starts closed.
        let breaker = upstream.circuit_breaker.as_ref().map(|settings| {
            let kept = previous
                .and_then(|u| u.breaker.clone())
                .filter(|b| b.config() == settings);
            kept.unwrap_or_else(|| {
                Arc::new(CircuitBreaker::new(
                    &upstream.id,
                    settings,
                    workers,
                    metrics.breaker(&upstream.id),
                ))
            })
        });
        match build_upstream(upstream, i, metrics, workers, endpoints, breaker) {
            Ok(runtime) => {
                upstreams.insert(runtime.id.clone(), Arc::new(runtime));
            }
            Err(e) => {
                errors.push(e);
                broken.push(upstream.id.as_str());
            }
        }
    }
    (upstreams, rebuilt, broken)
}

fn build_upstream(
    config: &Arc<UpstreamConfig>,
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
