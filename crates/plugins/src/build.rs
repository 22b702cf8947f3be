//! Building the plugins of a configuration once per snapshot: consumers, global plugins, each route's
//! chain, and the `real_ip` rules. What a single plugin's build gets is in `build_ctx.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use floodgate_config::{Config, FieldError};
use http::HeaderName;
use serde_json::Value;

use crate::build_ctx::{BuildCtx, Scope};
use crate::chain::Chain;
use crate::chain::ConsumerPlugins;
use crate::cidr::CidrSet;
use crate::consumer::{Consumer, Consumers};
use crate::real_ip::RealIp;
use crate::registry::{parse_credential, Plugin};
use crate::state::StateStore;
use crate::stats::PluginStats;

/// The plugins of one configuration, ready for a snapshot.
#[derive(Default)]
pub struct PluginSet {
    /// Each route's chain, by the route's index in `routes`; `None` for a route without plugins, and,
    /// when `unchanged_kept`, for a route unchanged since the running plugins (it keeps its chain).
    pub routes: Vec<Option<Arc<Chain>>>,
    /// Whether the routes unchanged since the running plugins keep their chains ([`rebuild_plugins`]
    /// without building everything again); their entries in `routes` are then left empty.
    pub unchanged_kept: bool,
    /// The consumers.
    pub consumers: Arc<Consumers>,
    /// Each consumer's own plugins, by its index.
    pub consumer_plugins: ConsumerPlugins,
    /// The global plugins, sorted by priority.
    pub global: Vec<Arc<Plugin>>,
    /// How the client's address is found.
    pub real_ip: RealIp,
    /// The states the plugins use, to hand to the next build.
    pub states: StateStore,
}

/// The plugins in service and what they were built from, for a build that keeps what is unchanged.
pub struct RunningPlugins<'a> {
    /// The configuration they were built from.
    pub config: &'a Config,
    /// For each route of the configuration being built, its index in `config.routes` when it is
    /// the very same (`floodgate_config::same_items`).
    pub same_routes: &'a [Option<usize>],
    /// Its consumers.
    pub consumers: &'a Arc<Consumers>,
    /// Its consumers' own plugins.
    pub consumer_plugins: &'a ConsumerPlugins,
    /// Its global plugins.
    pub global: &'a [Arc<Plugin>],
    /// How it finds the client's address.
    pub real_ip: &'a RealIp,
    /// Its plugins' states.
    pub states: &'a StateStore,
}

/// Builds the plugins of `config`, a change of the configuration `running` was built from: a route
/// whose configuration is that configuration's (the same `Arc`) keeps its chain (its entry left
/// empty, [`PluginSet::unchanged_kept`]), and its plugins their states; only new routes' chains are
/// built. When global plugins, consumers, the `real_ip`
/// rules or the upstreams' ids changed, which every chain may depend on, everything is built again
/// ([`build_plugins`]).
pub fn rebuild_plugins(
    config: &Config,
    running: &RunningPlugins<'_>,
    runtime: Option<tokio::runtime::Handle>,
    stats: &Arc<PluginStats>,
) -> Result<PluginSet, Vec<FieldError>> {
    let before = running.config;
    let same_consumers = before.consumers.len() == config.consumers.len()
        && before
            .consumers
            .iter()
            .zip(&config.consumers)
            .all(|(a, b)| Arc::ptr_eq(a, b));
    let same_upstream_ids = before.upstreams.len() == config.upstreams.len()
        && before
            .upstreams
            .iter()
            .zip(&config.upstreams)
            .all(|(a, b)| a.id == b.id);
    if !(same_consumers
        && same_upstream_ids
        && before.global_plugins == config.global_plugins
        && before.real_ip == config.real_ip)
    {
        return build_plugins(config, running.states, runtime, stats);
    }
    let mut states = running.states.clone();
    for j in floodgate_config::gone_items(before.routes.len(), running.same_routes) {
        states.forget_scope(&route_scope(&before.routes[j].id));
    }
    let mut errors = Vec::new();
    let consumer_plugin_names = consumer_plugin_names(config);
    let upstream_ids = upstream_ids(config);
    let mut builder = Builder {
        consumer_plugin_names: &consumer_plugin_names,
        upstream_ids: &upstream_ids,
        previous: running.states,
        states: &mut states,
        runtime,
        stats,
        errors: &mut errors,
    };
    let mut routes = Vec::with_capacity(config.routes.len());
    for (i, (route, found)) in config.routes.iter().zip(running.same_routes).enumerate() {
        routes.push(match found {
            Some(_) => None,
            None => builder.route_chain(
                i,
                route,
                running.global,
                running.consumers,
                running.consumer_plugins,
            ),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PluginSet {
        routes,
        consumers: running.consumers.clone(),
        consumer_plugins: running.consumer_plugins.clone(),
        global: running.global.to_vec(),
        real_ip: running.real_ip.clone(),
        states,
        unchanged_kept: true,
    })
}

fn route_scope(id: &str) -> String {
    format!("route:{id}")
}

/// Names of the plugins some consumer carries: a route's or global instance of one of them is
/// replaced for that consumer, which only authentication can tell.
fn consumer_plugin_names(config: &Config) -> std::collections::BTreeSet<&str> {
    config
        .consumers
        .iter()
        .flat_map(|c| c.plugins.keys().map(String::as_str))
        .collect()
}

fn upstream_ids(config: &Config) -> std::collections::BTreeSet<&str> {
    config.upstreams.iter().map(|u| u.id.as_str()).collect()
}

/// Builds every plugin of `config`. `previous` is the state store of the running snapshot (empty for
/// the first), whose states unchanged plugins keep; `runtime` runs background tasks (none when only
/// validating); `stats` are the process's plugin counters. Errors name the field at fault.
pub fn build_plugins(
    config: &Config,
    previous: &StateStore,
    runtime: Option<tokio::runtime::Handle>,
    stats: &Arc<PluginStats>,
) -> Result<PluginSet, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut states = StateStore::new();
    let consumer_plugin_names = consumer_plugin_names(config);
    let upstream_ids = upstream_ids(config);
    let mut builder = Builder {
        consumer_plugin_names: &consumer_plugin_names,
        upstream_ids: &upstream_ids,
        previous,
        states: &mut states,
        runtime,
        stats,
        errors: &mut errors,
    };
    let real_ip = builder.real_ip(config);
    let (consumers, consumer_plugins) = builder.consumers(config);
    let consumers = Arc::new(consumers);
    let global = builder.plugins(
        &config.global_plugins,
        "global_plugins",
        Scope::Global,
        &consumers,
    );
    let mut routes = Vec::with_capacity(config.routes.len());
    for (i, route) in config.routes.iter().enumerate() {
        routes.push(builder.route_chain(i, route, &global, &consumers, &consumer_plugins));
    }
    if !errors.is_empty() {
        // A consumer's credential is checked by every route that uses its plugin: report it once.
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert((e.path.clone(), e.message.clone())));
        return Err(errors);
    }
    Ok(PluginSet {
        routes,
        consumers,
        consumer_plugins,
        global,
        real_ip,
        states,
        unchanged_kept: false,
    })
}

struct Builder<'a> {
    consumer_plugin_names: &'a std::collections::BTreeSet<&'a str>,
    upstream_ids: &'a std::collections::BTreeSet<&'a str>,
    previous: &'a StateStore,
    states: &'a mut StateStore,
    runtime: Option<tokio::runtime::Handle>,
    stats: &'a Arc<PluginStats>,
    errors: &'a mut Vec<FieldError>,
}

impl Builder<'_> {
    /// The chain of the `i`th route: the global plugins its own do not replace, then its own.
    fn route_chain(
        &mut self,
        i: usize,
        route: &floodgate_config::RouteConfig,
        global: &[Arc<Plugin>],
        consumers: &Arc<Consumers>,
        consumer_plugins: &ConsumerPlugins,
    ) -> Option<Arc<Chain>> {
        let own = self.plugins(
            &route.plugins,
            &format!("routes[{i}].plugins"),
            Scope::Route {
                id: &route.id,
                paths: &route.paths,
            },
            consumers,
        );
        let mut chain: Vec<Arc<Plugin>> = global
            .iter()
            .filter(|g| !own.iter().any(|p| p.name() == g.name()))
            .cloned()
            .collect();
        chain.extend(own);
        // A consumer's plugins join only a chain whose authentication plugin named it, so a route
        // without plugins has no chain at all.
        (!chain.is_empty()).then(|| {
            Arc::new(Chain::new(
                route.id.as_str().into(),
                chain,
                route.paths.iter().map(String::as_str),
                consumer_plugins.clone(),
            ))
        })
    }

    fn real_ip(&mut self, config: &Config) -> RealIp {
        let at = "real_ip";
        let mut trusted = Vec::new();
        for (i, text) in config.real_ip.trusted_proxies.iter().enumerate() {
            match CidrSet::parse([text.as_str()]) {
                Ok(_) => trusted.push(text.as_str()),
                Err(e) => self.errors.push(FieldError::new(
                    format!("{at}.trusted_proxies[{i}]"),
                    e.to_string(),
                )),
            }
        }
        let header = match HeaderName::from_bytes(config.real_ip.header.as_bytes()) {
            Ok(name) => name,
            Err(_) => {
                self.errors.push(FieldError::new(
                    format!("{at}.header"),
                    format!("{:?} is not a header name", config.real_ip.header),
                ));
                return RealIp::default();
            }
        };
        match CidrSet::parse(trusted) {
            Ok(set) => RealIp::new(set, header),
            Err(_) => RealIp::default(),
        }
    }

    /// The consumers, and each one's own plugins by its index.
    fn consumers(&mut self, config: &Config) -> (Consumers, ConsumerPlugins) {
        let none = Consumers::default();
        let mut list = Vec::with_capacity(config.consumers.len());
        let mut own = Vec::with_capacity(config.consumers.len());
        for (i, consumer) in config.consumers.iter().enumerate() {
            let at = format!("consumers[{i}]");
            let mut credentials = Vec::new();
            for (name, value) in &consumer.credentials {
                match parse_credential(name, value, &format!("{at}.credentials.{name}")) {
                    Ok(credential) => credentials.push(credential),
                    Err(errors) => self.errors.extend(errors),
                }
            }
            let plugins = self.plugins(
                &consumer.plugins,
                &format!("{at}.plugins"),
                Scope::Consumer { id: &consumer.id },
                &none,
            );
            for plugin in &plugins {
                if plugin.authenticates() {
                    self.errors.push(FieldError::new(
                        format!("{at}.plugins.{}", plugin.name()),
                        "a consumer cannot carry an authentication plugin: it is named by one",
                    ));
                }
            }
            list.push(Arc::new(Consumer::new(
                consumer.id.as_str().into(),
                i,
                credentials,
            )));
            own.push(plugins.into_boxed_slice());
        }
        (Consumers::new(list), own.into())
    }

    /// The plugins of one `plugins:` map, sorted by priority.
    fn plugins(
        &mut self,
        configs: &BTreeMap<String, Value>,
        at: &str,
        scope: Scope<'_>,
        consumers: &Consumers,
    ) -> Vec<Arc<Plugin>> {
        let mut built = Vec::with_capacity(configs.len());
        for (name, value) in configs {
            let scope_key = match scope {
                Scope::Global => "global".to_string(),
                Scope::Route { id, .. } => route_scope(id),
                Scope::Consumer { id } => format!("consumer:{id}"),
            };
            let mut cx = BuildCtx {
                at: format!("{at}.{name}"),
                scope,
                consumers,
                replaced_for_consumers: !matches!(scope, Scope::Consumer { .. })
                    && self.consumer_plugin_names.contains(name.as_str()),
                runtime: self.runtime.clone(),
                stats: self.stats,
                upstream_ids: self.upstream_ids,
                previous: self.previous,
                next: self.states,
                state_key: format!("{scope_key}|{name}|{value}"),
            };
            match Plugin::build(name, value, &mut cx) {
                Ok(plugin) => built.push(Arc::new(plugin)),
                Err(errors) => self.errors.extend(errors),
            }
        }
        built.sort_by_key(|p| std::cmp::Reverse(p.priority()));
        built
    }
}
