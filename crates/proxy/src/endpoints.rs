//! An upstream's targets as they are now: its address targets as listed, and each of its name
//! targets' resolved addresses in its place, with the balancer and health built over them.
//!
//! The set is swapped whole (arc-swap) when a name's addresses change, so neither the routes nor the
//! snapshot are rebuilt, and a request that loaded it sees one consistent set, whose indexes line
//! up, from its pick to its last attempt. An upstream whose targets are all addresses has nothing to
//! follow: its set is fixed for the snapshot's life and a request reads it without an arc-swap load.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use floodgate_config::{TargetConfig, UpstreamConfig};
use floodgate_dns::Hosts;
use floodgate_observe::Metrics;
use floodgate_upstream::health::{HealthStates, UpstreamHealth};
use floodgate_upstream::LoadBalancer;
use http::HeaderValue;
use rustls::pki_types::ServerName;

use crate::tls;

/// Where an upstream keeps its endpoints.
pub enum EndpointsCell {
    /// Every target is an address: only a reload, which builds a new upstream, changes them.
    Fixed(Arc<Endpoints>),
    /// Some target is a name, whose new answers swap the set.
    Followed(ArcSwap<Endpoints>),
}

/// The endpoints a request loaded, kept for as long as it uses them.
pub enum Current<'a> {
    /// Borrowed from a fixed cell: no load, no count.
    Fixed(&'a Endpoints),
    /// Held from a followed cell: arc-swap's guard, which writes no count shared with the other
    /// workers while the thread has a free slot.
    Followed(Guard<Arc<Endpoints>>),
}

impl Deref for Current<'_> {
    type Target = Endpoints;

    #[inline]
    fn deref(&self) -> &Endpoints {
        match self {
            Current::Fixed(endpoints) => endpoints,
            Current::Followed(guard) => guard,
        }
    }
}

impl EndpointsCell {
    /// A cell for `endpoints`, followed when the upstream has name targets.
    pub fn new(endpoints: Endpoints, followed: bool) -> Self {
        if followed {
            EndpointsCell::Followed(ArcSwap::from_pointee(endpoints))
        } else {
            EndpointsCell::Fixed(Arc::new(endpoints))
        }
    }

    /// The endpoints now.
    #[inline]
    pub fn load(&self) -> Current<'_> {
        match self {
            EndpointsCell::Fixed(endpoints) => Current::Fixed(endpoints),
            EndpointsCell::Followed(cell) => Current::Followed(cell.load()),
        }
    }

    /// The endpoints now, for a task that outlives the request.
    pub fn load_full(&self) -> Arc<Endpoints> {
        match self {
            EndpointsCell::Fixed(endpoints) => endpoints.clone(),
            EndpointsCell::Followed(cell) => cell.load_full(),
        }
    }

    /// Puts `endpoints` in service; a fixed cell has no name to follow and keeps its set.
    pub fn store(&self, endpoints: Endpoints) {
        if let EndpointsCell::Followed(cell) = self {
            cell.store(Arc::new(endpoints));
        }
    }
}

/// One upstream's targets, their balancer and their health.
pub struct Endpoints {
    /// The targets, indexed like the balancer's and the health's.
    pub targets: Vec<Target>,
    /// Picks a target per request.
    pub balancer: LoadBalancer,
    /// Which targets are in service.
    pub health: UpstreamHealth,
    /// Which answer of the upstream's names this set was built from (0: the first the build had),
    /// so an answer that arrives while a reload builds is not lost.
    pub generation: u64,
}

/// One target of an upstream.
pub struct Target {
    /// `ip:port` (a name target's resolved address), as logs, metrics and the status show it.
    pub address: Arc<str>,
    /// Where to connect: never a name, so no connection waits on DNS.
    pub socket_addr: SocketAddr,
    /// The configured `host:port` a resolved target came from; `None` for an address target.
    pub name: Option<Arc<str>>,
    /// `Host` to send when the route does not preserve the client's: the configured `host:port`.
    pub authority: HeaderValue,
    /// Name to verify over TLS: the configured host (or `tls.sni`), never the resolved address.
    pub server_name: Option<ServerName<'static>>,
    /// Key of this target's connection pool. It includes the upstream's protocol and TLS settings so
    /// a reload that changes them does not reuse connections made under the old ones, and a resolved
    /// target's name, since connections to one address made for two names verified different ones.
    pub pool_key: Arc<str>,
}

/// A configured target's host and port: `None` for an IP address, which needs no resolution.
pub fn name_of(address: &str) -> Option<(&str, u16)> {
    if address.parse::<SocketAddr>().is_ok() {
        return None;
    }
    let (host, port) = address.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// The hosts of `config`'s targets that are names, each once.
pub fn hosts_of(config: &UpstreamConfig) -> Vec<Arc<str>> {
    let mut hosts: Vec<Arc<str>> = config
        .targets
        .iter()
        .filter_map(|t| name_of(&t.address).map(|(host, _)| Arc::from(host)))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    hosts
}

impl Endpoints {
    /// `config`'s targets with each name replaced by its addresses in `hosts` (none while a name has
    /// no answer yet). A target `previous` knows (upstream id and address) keeps its health, load
    /// and latency; every state is added to `next`.
    #[allow(clippy::too_many_arguments)] // each is one input of the build, borrowed
    pub fn build(
        config: &UpstreamConfig,
        hosts: &Hosts,
        generation: u64,
        previous: &HealthStates,
        next: &mut HealthStates,
        metrics: &Metrics,
        workers: usize,
    ) -> Endpoints {
        // Everything that changes how a connection is made goes into the pool key.
        let fingerprint = format!("{}|{:?}|{:?}", config.id, config.protocol, config.tls);
        let mut listed = Vec::with_capacity(config.targets.len());
        let mut targets = Vec::with_capacity(config.targets.len());
        // Two names (or a name and an address) may give the same address: it is one server, and
        // one target (the first listed), or its health and pool would be counted twice.
        let mut seen = HashSet::new();
        for target in &config.targets {
            let (addrs, name) = match name_of(&target.address) {
                None => match target.address.parse::<SocketAddr>() {
                    Ok(addr) => (vec![addr], None),
                    // Validation refuses it; nothing to connect to.
                    Err(_) => continue,
                },
                Some((host, port)) => (
                    hosts
                        .get(host)
                        .map_or(&[][..], |records| records.addrs())
                        .iter()
                        .map(|ip: &IpAddr| SocketAddr::new(*ip, port))
                        .collect(),
                    Some(Arc::<str>::from(target.address.as_str())),
                ),
            };
            for addr in addrs {
                if !seen.insert(addr) {
                    continue;
                }
                let address: Arc<str> = addr.to_string().into();
                listed.push(TargetConfig {
                    address: address.to_string(),
                    weight: target.weight,
                    priority: target.priority,
                });
                targets.push(Target {
                    pool_key: match &name {
                        None => format!("{fingerprint}|{address}").into(),
                        Some(name) => format!("{fingerprint}|{name}|{address}").into(),
                    },
                    authority: HeaderValue::from_str(&target.address)
                        .unwrap_or(HeaderValue::from_static("localhost")),
                    server_name: config.tls.as_ref().and_then(|tls| {
                        let host = target
                            .address
                            .rsplit_once(':')
                            .map_or(target.address.as_str(), |(h, _)| h);
                        tls::client::server_name(tls, host)
                    }),
                    address,
                    socket_addr: addr,
                    name: name.clone(),
                });
            }
        }
        let health = UpstreamHealth::new(config, &listed, previous, next, metrics);
        Endpoints {
            balancer: LoadBalancer::with_loads(config, &listed, workers, &health.loads()),
            targets,
            health,
            generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use floodgate_dns::{Answer, HostRecords, TtlBounds};

    use super::*;

    fn upstream(targets: &[&str]) -> UpstreamConfig {
        let yaml = format!(
            "listeners: [{{ name: main, address: \"127.0.0.1:0\" }}]\nupstreams:\n  - id: u\n    targets: [{}]\n",
            targets
                .iter()
                .map(|t| format!("{{ address: \"{t}\" }}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Arc::unwrap_or_clone(
            floodgate_config::parse_yaml(&yaml)
                .unwrap()
                .upstreams
                .remove(0),
        )
    }

    fn hosts(entries: &[(&str, &[&str])]) -> Hosts {
        let bounds = TtlBounds::of(&Default::default());
        entries
            .iter()
            .map(|(host, addrs)| {
                let mut records = HostRecords::unresolved(Instant::now());
                let answer = Answer {
                    addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
                    valid_for: bounds.min,
                };
                records.record(&Ok(answer), &bounds, Instant::now());
                (Arc::from(*host), records)
            })
            .collect()
    }

    fn build(config: &UpstreamConfig, hosts: &Hosts) -> Endpoints {
        let mut next = HealthStates::new();
        Endpoints::build(
            config,
            hosts,
            0,
            &HealthStates::new(),
            &mut next,
            &Metrics::new(1),
            1,
        )
    }

    #[test]
    fn each_address_of_a_name_is_a_target_that_keeps_the_name_for_host() {
        let config = upstream(&["10.0.0.1:80", "api.internal:8080"]);
        assert_eq!(hosts_of(&config), [Arc::from("api.internal")]);
        let endpoints = build(
            &config,
            &hosts(&[("api.internal", &["10.0.0.7", "10.0.0.8"])]),
        );
        let addresses: Vec<&str> = endpoints.targets.iter().map(|t| &*t.address).collect();
        assert_eq!(addresses, ["10.0.0.1:80", "10.0.0.7:8080", "10.0.0.8:8080"]);
        assert_eq!(endpoints.balancer.len(), 3);
        let resolved = &endpoints.targets[1];
        assert_eq!(resolved.authority, "api.internal:8080");
        assert_eq!(resolved.name.as_deref(), Some("api.internal:8080"));
        assert_ne!(resolved.pool_key, endpoints.targets[2].pool_key);
        assert!(endpoints.targets[0].name.is_none());
    }

    #[test]
    fn a_name_without_an_answer_has_no_targets_and_repeats_are_one_target() {
        let config = upstream(&["a.internal:80", "b.internal:80", "10.0.0.1:80"]);
        let endpoints = build(&config, &hosts(&[]));
        assert_eq!(endpoints.targets.len(), 1);
        let endpoints = build(
            &config,
            &hosts(&[
                ("a.internal", &["10.0.0.1"]),
                ("b.internal", &["10.0.0.1", "::1"]),
            ]),
        );
        let addresses: Vec<&str> = endpoints.targets.iter().map(|t| &*t.address).collect();
        assert_eq!(addresses, ["10.0.0.1:80", "[::1]:80"]);
        assert_eq!(endpoints.targets[0].name.as_deref(), Some("a.internal:80"));
    }
}
