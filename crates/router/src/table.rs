//! The compiled route table: host tiers, each holding a [`PathIndex`], over routes kept in config order.

use std::borrow::Borrow;
use std::sync::Arc;

use floodgate_config::RouteConfig;
use http::{HeaderMap, Method};

use crate::candidates::{acceptor, Candidates};
use crate::host::{HostPattern, RequestHost};
use crate::path_index::PathIndex;
use crate::route::Route;
use crate::shards::ShardedMap;
use crate::RouterError;

/// The gap between two routes' order keys in a table built whole: routes inserted between them later
/// take keys in the gap, without renumbering the others, until one gap is used up.
const ORDER_STEP: u64 = 1 << 24;

/// Routes compiled for lookup, each carrying a value of the caller's choosing.
///
/// Built once per configuration and then only read, so it can be shared between workers behind an `Arc`
/// and swapped whole on reload. A table for a changed configuration is made from the one before with
/// [`rebuild`](Self::rebuild), sharing all it can with it: a change costs what it touches, not the
/// table. See the [crate documentation](crate) for the matching rules.
#[derive(Debug)]
pub struct RouteTable<T> {
    /// In config order.
    routes: Vec<Arc<Route<T>>>,
    exact_hosts: ShardedMap<Box<[u8]>, PathIndex<T>>,
    /// Keyed by the suffix after `*.`.
    wildcard_hosts: ShardedMap<Box<[u8]>, PathIndex<T>>,
    any_host: PathIndex<T>,
}

/// A route of the configuration a table is [rebuilt](RouteTable::rebuild) for, in config order.
#[derive(Debug)]
pub enum NextRoute<R, T> {
    /// The route at this index, in config order, of the table rebuilt: unchanged, value included.
    Kept(usize),
    /// A route the table did not have (or had with another configuration or value), with its value.
    New(R, T),
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
        let mut table = RouteTable::empty();
        for (i, (config, value)) in routes.into_iter().enumerate() {
            let order = (i as u64 + 1) * ORDER_STEP;
            table.push(Arc::new(Route::compile(config.borrow(), value, order)?));
        }
        Ok(table)
    }

    /// The table for the next configuration, whose routes are `next` in config order: each one of
    /// this table's, kept as it is, or a new one. Routes of this table not kept are gone. Only what
    /// the new and gone routes touch is made again; the rest is shared with this table, which is
    /// left as it was. Kept routes must come in the order they have here (an index this table does
    /// not have is ignored). Fails as [`build`](Self::build) does on a new route.
    pub fn rebuild<R>(
        &self,
        next: impl IntoIterator<Item = NextRoute<R, T>>,
    ) -> Result<Self, RouterError>
    where
        R: Borrow<RouteConfig>,
        T: Clone,
    {
        let next: Vec<NextRoute<R, T>> = next
            .into_iter()
            .filter(|route| !matches!(route, NextRoute::Kept(j) if *j >= self.routes.len()))
            .collect();
        let kept_count = next
            .iter()
            .filter(|route| matches!(route, NextRoute::Kept(_)))
            .count();
        if kept_count * 2 < self.routes.len() {
            // Most routes are gone: building afresh costs less than taking them out one by one.
            return self.renumbered(next);
        }
        let Some(orders) = self.orders_of(&next) else {
            // Out of order, or no room left between two routes: number them all again.
            return self.renumbered(next);
        };
        let mut table = RouteTable {
            routes: Vec::with_capacity(next.len()),
            exact_hosts: self.exact_hosts.clone(),
            wildcard_hosts: self.wildcard_hosts.clone(),
            any_host: self.any_host.clone(),
        };
        let mut kept = vec![false; self.routes.len()];
        let mut added = Vec::new();
        for (route, order) in next.into_iter().zip(orders) {
            match route {
                NextRoute::Kept(j) => {
                    kept[j] = true;
                    table.routes.push(self.routes[j].clone());
                }
                NextRoute::New(config, value) => {
                    let route = Arc::new(Route::compile(config.borrow(), value, order)?);
                    added.push(route.clone());
                    table.routes.push(route);
                }
            }
        }
        for (route, _) in self.routes.iter().zip(&kept).filter(|(_, kept)| !**kept) {
            table.unregister(route);
        }
        for route in &added {
            table.register(route);
        }
        Ok(table)
    }

    /// The order key of each of `next`: a kept route's own, a new one's in the gap between its
    /// neighbours. `None` when kept routes are out of order or a gap is too small.
    fn orders_of<R>(&self, next: &[NextRoute<R, T>]) -> Option<Vec<u64>> {
        // Walking back: the key of the next kept route after each, and how many new routes share
        // the gap before it from there on.
        let mut gaps = vec![(None, 0u64); next.len()];
        let (mut upper, mut run) = (None, 0u64);
        for (i, route) in next.iter().enumerate().rev() {
            match route {
                NextRoute::Kept(j) => {
                    upper = Some(self.routes[*j].order());
                    run = 0;
                }
                NextRoute::New(..) => {
                    run += 1;
                    gaps[i] = (upper, run);
                }
            }
        }
        let mut orders = Vec::with_capacity(next.len());
        let mut last = 0u64;
        for (route, (upper, run)) in next.iter().zip(gaps) {
            let order = match route {
                NextRoute::Kept(j) => self.routes[*j].order(),
                NextRoute::New(..) => {
                    let upper = upper.unwrap_or(last.checked_add(ORDER_STEP * (run + 1))?);
                    last + upper.checked_sub(last)? / (run + 1)
                }
            };
            if order <= last {
                return None;
            }
            last = order;
            orders.push(order);
        }
        Some(orders)
    }

    /// `next` built whole, kept routes renumbered.
    fn renumbered<R>(&self, next: Vec<NextRoute<R, T>>) -> Result<Self, RouterError>
    where
        R: Borrow<RouteConfig>,
        T: Clone,
    {
        let mut table = RouteTable::empty();
        for (i, route) in next.into_iter().enumerate() {
            let order = (i as u64 + 1) * ORDER_STEP;
            table.push(Arc::new(match route {
                NextRoute::Kept(j) => self.routes[j].at_order(order),
                NextRoute::New(config, value) => Route::compile(config.borrow(), value, order)?,
            }));
        }
        Ok(table)
    }

    fn empty() -> Self {
        RouteTable {
            routes: Vec::new(),
            exact_hosts: ShardedMap::default(),
            wildcard_hosts: ShardedMap::default(),
            any_host: PathIndex::default(),
        }
    }

    fn push(&mut self, route: Arc<Route<T>>) {
        self.register(&route);
        self.routes.push(route);
    }

    /// Puts `route` under each of its patterns in each of its host tiers.
    fn register(&mut self, route: &Arc<Route<T>>) {
        let insert = |index: &mut PathIndex<T>| {
            for pattern in &route.patterns {
                index.insert(pattern, route);
            }
        };
        if route.hosts.is_empty() {
            insert(&mut self.any_host);
        }
        for host in &route.hosts {
            match host {
                HostPattern::Exact(name) => insert(self.exact_hosts.entry_or_default(name.clone())),
                HostPattern::Wildcard(suffix) => {
                    insert(self.wildcard_hosts.entry_or_default(suffix.clone()))
                }
            }
        }
    }

    /// Takes `route` out of every place [`register`](Self::register) put it, and drops host tiers
    /// left empty.
    fn unregister(&mut self, route: &Arc<Route<T>>) {
        let remove = |index: &mut PathIndex<T>| {
            for pattern in &route.patterns {
                index.remove(pattern, route);
            }
        };
        if route.hosts.is_empty() {
            remove(&mut self.any_host);
        }
        for host in &route.hosts {
            let (tiers, key) = match host {
                HostPattern::Exact(name) => (&mut self.exact_hosts, name),
                HostPattern::Wildcard(suffix) => (&mut self.wildcard_hosts, suffix),
            };
            if let Some(index) = tiers.get_mut(&**key) {
                remove(index);
                if index.is_empty() {
                    tiers.remove(&**key);
                }
            }
        }
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
        let mut accept = acceptor(|candidates: &Candidates<T>| {
            let matching = |explicit: bool| {
                candidates.iter().find(move |route| {
                    !(explicit && route.conditions.head_only_implied())
                        && route.conditions.matches(method, headers)
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
        });
        // Normalising the host costs a copy; a table without host conditions does not need it.
        let by_host = !self.exact_hosts.is_empty() || !self.wildcard_hosts.is_empty();
        let host = host.filter(|_| by_host).and_then(RequestHost::new);
        let route = host
            .as_ref()
            .and_then(|host| self.find_by_host(host, path, &mut accept))
            .or_else(|| self.any_host.find(path, &mut accept))?;
        Some(&route.value)
    }

    /// Tries the exact host, then each wildcard suffix from longest to shortest; the next tier is
    /// tried only when no route in the one before matches.
    fn find_by_host<'a>(
        &'a self,
        host: &RequestHost<'_>,
        path: &str,
        accept: &mut impl FnMut(&'a Candidates<T>) -> Option<&'a Route<T>>,
    ) -> Option<&'a Route<T>> {
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

    /// The value of the route at `index` in config order.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.routes.get(index).map(|route| &route.value)
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
