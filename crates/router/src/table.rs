//! The compiled route table: host tiers, each holding a [`PathIndex`], over routes kept in config order.

use std::borrow::Borrow;

use floodgate_config::{PathPattern, RouteConfig};
use http::{HeaderMap, Method};

use crate::candidates::Candidates;
use crate::conditions::{ConditionError, Conditions};
use crate::host::{HostPattern, RequestHost};
use crate::path_index::PathIndex;
use crate::Map;
use crate::RouterError;

/// Routes compiled for lookup, each carrying a value of the caller's choosing.
///
/// Built once per configuration and then only read, so it can be shared between workers behind an `Arc`
/// and swapped whole on reload. See the [crate documentation](crate) for the matching rules.
#[derive(Debug, Clone)]
pub struct RouteTable<T> {
    /// In config order; every other structure refers to routes by index into this.
    routes: Vec<Route<T>>,
    exact_hosts: Map<Box<[u8]>, PathIndex>,
    /// Keyed by the suffix after `*.`.
    wildcard_hosts: Map<Box<[u8]>, PathIndex>,
    any_host: PathIndex,
}

#[derive(Debug, Clone)]
struct Route<T> {
    conditions: Conditions,
    value: T,
}

impl<T> RouteTable<T> {
    /// Compiles routes, in config order, each with the value that [`lookup`](Self::lookup) returns for it
    /// (the proxy attaches its per-route runtime state).
    ///
    /// Accepts owned or borrowed configs: `(RouteConfig, T)` or `(&RouteConfig, T)`. Fails on the first
    /// route with a path, host, method or header that cannot be matched.
    pub fn build<R>(routes: impl IntoIterator<Item = (R, T)>) -> Result<Self, RouterError>
    where
        R: Borrow<RouteConfig>,
    {
        let mut table = RouteTable {
            routes: Vec::new(),
            exact_hosts: Map::default(),
            wildcard_hosts: Map::default(),
            any_host: PathIndex::default(),
        };
        for (config, value) in routes {
            table.add(config.borrow(), value)?;
        }
        let weights: Vec<usize> = table
            .routes
            .iter()
            .map(|route| route.conditions.weight())
            .collect();
        let weight = |route: usize| weights.get(route).copied().unwrap_or_default();
        table
            .exact_hosts
            .values_mut()
            .chain(table.wildcard_hosts.values_mut())
            .chain(std::iter::once(&mut table.any_host))
            .for_each(|index| index.order_by_weight(&weight));
        Ok(table)
    }

    fn add(&mut self, config: &RouteConfig, value: T) -> Result<(), RouterError> {
        let id = || config.id.clone();
        if config.paths.is_empty() {
            return Err(RouterError::NoPaths { route: id() });
        }
        let patterns = config
            .paths
            .iter()
            .enumerate()
            .map(|(index, path)| {
                PathPattern::parse(path).map_err(|reason| RouterError::InvalidPath {
                    route: id(),
                    index,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hosts = config
            .hosts
            .iter()
            .enumerate()
            .map(|(index, host)| {
                HostPattern::parse(host).map_err(|reason| RouterError::InvalidHost {
                    route: id(),
                    index,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let conditions =
            Conditions::parse(&config.methods, &config.headers).map_err(|error| match error {
                ConditionError::Method { index, method } => RouterError::InvalidMethod {
                    route: id(),
                    index,
                    method,
                },
                ConditionError::Header { name, reason } => RouterError::InvalidHeader {
                    route: id(),
                    name,
                    reason,
                },
            })?;

        let route = self.routes.len();
        self.routes.push(Route { conditions, value });
        let register = |index: &mut PathIndex| {
            for pattern in &patterns {
                index.insert(pattern, route);
            }
        };
        if hosts.is_empty() {
            register(&mut self.any_host);
        }
        for host in hosts {
            match host {
                HostPattern::Exact(name) => register(self.exact_hosts.entry(name).or_default()),
                HostPattern::Wildcard(suffix) => {
                    register(self.wildcard_hosts.entry(suffix).or_default())
                }
            }
        }
        Ok(())
    }

    /// Finds the value of the route that serves a request, or `None` when no route matches.
    ///
    /// `host` is the `Host` header or `:authority` as received (port, case and a trailing dot are
    /// ignored), `None` when the request has neither. `path` is the URI path without the query
    /// (`uri.path()`), compared byte for byte as received. Does not allocate.
    pub fn lookup(
        &self,
        host: Option<&str>,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<&T> {
        let head = *method == Method::HEAD;
        let mut accept = |candidates: &Candidates| {
            let matching = |explicit: bool| {
                candidates.iter().find(move |&route| {
                    self.routes.get(route).is_some_and(|r| {
                        !(explicit && r.conditions.head_only_implied())
                            && r.conditions.matches(method, headers)
                    })
                })
            };
            // A route that lists HEAD itself is chosen for a HEAD before one that takes it only as
            // part of GET, among routes of one pattern; a broader pattern never wins this way.
            if head {
                if let Some(route) = matching(true) {
                    return Some(route);
                }
            }
            matching(false)
        };
        // Normalising the host costs a copy; a table without host conditions does not need it.
        let by_host = !self.exact_hosts.is_empty() || !self.wildcard_hosts.is_empty();
        let host = host.filter(|_| by_host).and_then(RequestHost::new);
        let route = host
            .as_ref()
            .and_then(|host| self.find_by_host(host, path, &mut accept))
            .or_else(|| self.any_host.find(path, &mut accept))?;
        self.routes.get(route).map(|route| &route.value)
    }

    /// Tries the exact host, then each wildcard suffix from longest to shortest; the next tier is
    /// tried only when no route in the one before matches.
    fn find_by_host(
        &self,
        host: &RequestHost<'_>,
        path: &str,
        accept: &mut impl FnMut(&Candidates) -> Option<usize>,
    ) -> Option<usize> {
        if let Some(route) = self
            .exact_hosts
            .get(host.name())
            .and_then(|index| index.find(path, accept))
        {
            return Some(route);
        }
        if self.wildcard_hosts.is_empty() {
            return None;
        }
        host.wildcard_suffixes()
            .filter_map(|suffix| self.wildcard_hosts.get(suffix))
            .find_map(|index| index.find(path, accept))
    }

    /// Number of routes in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no routes, so every lookup returns `None`.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests;
