//! Validating a changed configuration at the cost of its change: a configuration made from one that
//! passed [`Config::validate`] by replacing, adding or removing a few resources (an etcd watch event, an
//! admin API write) is checked where it can differ from that one, not resource by resource.
//!
//! A resource shared with the valid configuration (the same `Arc`) is known sound on its own and
//! known not to clash with the others it shared that configuration with. So only the new resources get
//! their own checks, and the checks between resources (unique ids, references, route conflicts) are
//! made between a new resource and the rest. What is left proportional to the configuration's size is a
//! walk comparing pointers and a scan comparing ids and paths, with no allocation per resource.

use std::collections::HashMap;
use std::sync::Arc;

use crate::unchanged::{gone_items, same_items};
use crate::validate::{check_conflicts, validate_certificate, validate_route, RouteIdentity};
use crate::{Config, ConfigError, FieldError, RouteConfig};

/// Past this share of new resources the whole check is as cheap, and simpler.
const MOST_CHANGED: usize = 8;

impl Config {
    /// Checks this configuration, known to be `valid` (which passed [`Config::validate`]) with some
    /// resources replaced, added or removed, and reports the errors [`Config::validate`] would. Settings
    /// other than resources that differ from `valid`'s, or a change to many resources, are checked whole.
    pub fn validate_change(&self, valid: &Config) -> Result<(), ConfigError> {
        if !self.same_settings(valid) {
            return self.validate();
        }
        let upstreams = Fresh::between(&valid.upstreams, &self.upstreams);
        let routes = Fresh::between(&valid.routes, &self.routes);
        let consumers = Fresh::between(&valid.consumers, &self.consumers);
        let certificates = Fresh::between(&valid.certificates, &self.certificates);
        let changed =
            upstreams.new.len() + routes.new.len() + consumers.new.len() + certificates.new.len();
        let size = self.upstreams.len()
            + self.routes.len()
            + self.consumers.len()
            + self.certificates.len();
        if changed * MOST_CHANGED > size.max(MOST_CHANGED) {
            return self.validate();
        }
        let mut errors = Vec::new();
        let upstream_ids = Ids::of(&valid.upstreams, &self.upstreams, &upstreams, |u| &u.id);
        for &i in &upstreams.new {
            upstream_ids.check(i, "upstreams", "upstream", &mut errors);
            self.validate_upstream(i, &self.upstreams[i], &mut errors);
        }
        let has_upstream = |id: &str| self.upstreams.iter().any(|u| u.id == id);
        let gone: Vec<&str> = upstreams
            .gone
            .iter()
            .map(|&g| valid.upstreams[g].id.as_str())
            .filter(|id| !has_upstream(id))
            .collect();
        if !gone.is_empty() {
            // A route that named a removed upstream now names nothing.
            for (i, route) in self.routes.iter().enumerate() {
                match route.upstream.as_deref() {
                    Some(id) if gone.contains(&id) && !routes.new.contains(&i) => {
                        errors.push(FieldError::new(
                            format!("routes[{i}].upstream"),
                            format!("no upstream with id {id:?}"),
                        ))
                    }
                    _ => {}
                }
            }
        }
        let route_ids = Ids::of(&valid.routes, &self.routes, &routes, |r| &r.id);
        for &i in &routes.new {
            route_ids.check(i, "routes", "route", &mut errors);
            validate_route(i, &self.routes[i], has_upstream, &mut errors);
        }
        let moved = routes.moved(&valid.routes, &self.routes);
        self.check_new_routes_conflicts(&moved, &mut errors);
        let consumer_ids = Ids::of(&valid.consumers, &self.consumers, &consumers, |c| &c.id);
        for &i in &consumers.new {
            consumer_ids.check(i, "consumers", "consumer", &mut errors);
        }
        let certificate_ids = Ids::of(
            &valid.certificates,
            &self.certificates,
            &certificates,
            |c| &c.id,
        );
        for &i in &certificates.new {
            certificate_ids.check(i, "certificates", "certificate", &mut errors);
            validate_certificate(i, &self.certificates[i], &mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// Whether every setting but the resources is `other`'s. Written field by field so that a new
    /// field of [`Config`] cannot be forgotten here.
    pub(crate) fn same_settings(&self, other: &Config) -> bool {
        let Config {
            workers,
            shutdown_timeout,
            listeners,
            admin,
            limits,
            timeouts,
            http2,
            access_log,
            tracing,
            dns,
            upstreams: _,
            routes: _,
            global_plugins,
            consumers: _,
            certificates: _,
            real_ip,
            config_source,
        } = self;
        *workers == other.workers
            && *shutdown_timeout == other.shutdown_timeout
            && *listeners == other.listeners
            && *admin == other.admin
            && *limits == other.limits
            && *timeouts == other.timeouts
            && *http2 == other.http2
            && *access_log == other.access_log
            && *tracing == other.tracing
            && *dns == other.dns
            && *global_plugins == other.global_plugins
            && *real_ip == other.real_ip
            && *config_source == other.config_source
    }

    /// Conflicts between the new routes (indices into `routes`) and the others, reported as
    /// [`Config::validate`] reports them: at the later route of a conflicting pair. Only routes that
    /// share a path with a new route can conflict with it, so only those are looked at.
    fn check_new_routes_conflicts(&self, new: &[usize], errors: &mut Vec<FieldError>) {
        if new.is_empty() {
            return;
        }
        let shares_a_path = |i: usize| {
            let route = &self.routes[i];
            new.iter().any(|&n| {
                let other = &self.routes[n];
                route.paths.iter().any(|path| other.paths.contains(path))
            })
        };
        let mut seen: HashMap<RouteIdentity, &str> = HashMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            // Two routes of the valid configuration did not conflict there and do not now, so
            // whatever this finds involves a new route.
            if new.contains(&i) || shares_a_path(i) {
                check_conflicts(i, route, &mut seen, errors);
            }
        }
    }
}

/// The ids of one section, for checking that new items' ids are unique.
struct Ids<'a, T> {
    items: &'a [Arc<T>],
    id: fn(&T) -> &str,
    /// New items whose id is that of an item gone: the section has no id more than before.
    renamed: Vec<usize>,
}

impl<'a, T> Ids<'a, T> {
    fn of(valid: &[Arc<T>], items: &'a [Arc<T>], fresh: &Fresh, id: fn(&T) -> &str) -> Self {
        let mut gone: Vec<&str> = fresh.gone.iter().map(|&g| id(&valid[g])).collect();
        let mut renamed = Vec::new();
        for &i in &fresh.new {
            // Each gone id stands in for one new item only.
            if let Some(at) = gone.iter().position(|g| *g == id(&items[i])) {
                gone.swap_remove(at);
                renamed.push(i);
            }
        }
        Ids { items, id, renamed }
    }

    /// The `i`th item's id, unless empty, is no other item's; reported as [`Config::validate`]
    /// does, at each item whose id an earlier one has. An item that takes the place of a gone one
    /// with its id (a replaced resource) needs no look at the others: the ids of a valid
    /// configuration were unique, and there are no more of its id than there were.
    fn check(&self, i: usize, section: &str, kind: &str, errors: &mut Vec<FieldError>) {
        let own = (self.id)(&self.items[i]);
        if own.is_empty() {
            errors.push(FieldError::new(
                format!("{section}[{i}].id"),
                "must not be empty",
            ));
            return;
        }
        if self.renamed.contains(&i) {
            return;
        }
        let id = self.id;
        // As the whole check has it: every item with an id an earlier item has is at fault.
        let earlier = self.items[..i].iter().any(|item| id(item) == own);
        let later = self
            .items
            .iter()
            .enumerate()
            .skip(i + 1)
            .filter(|(_, item)| id(item) == own)
            .map(|(j, _)| j);
        for at in earlier.then_some(i).into_iter().chain(later) {
            let error = FieldError::new(
                format!("{section}[{at}].id"),
                format!("duplicate {kind} id {own:?}"),
            );
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
    }
}

/// Which items of a section are new since the valid configuration (not the same `Arc` as one of
/// its, as [`same_items`] finds them), and which of its are gone.
#[derive(Debug, Default, PartialEq)]
struct Fresh {
    /// Indices of the new items, ascending.
    new: Vec<usize>,
    /// Indices in the valid configuration of its items gone (or moved, which is checked as gone).
    gone: Vec<usize>,
}

impl Fresh {
    /// The new routes that may route differently from before: all but those that replace a gone
    /// route of the same id with the same hosts, paths, methods and headers (a change of upstream,
    /// plugins or timeouts), which cannot conflict with a route they did not conflict with.
    fn moved(&self, valid: &[Arc<RouteConfig>], routes: &[Arc<RouteConfig>]) -> Vec<usize> {
        let same_place = |a: &RouteConfig, b: &RouteConfig| {
            a.id == b.id
                && a.hosts == b.hosts
                && a.paths == b.paths
                && a.methods == b.methods
                && a.headers == b.headers
        };
        let mut gone: Vec<&RouteConfig> = self.gone.iter().map(|&g| &*valid[g]).collect();
        let mut moved = Vec::new();
        for &i in &self.new {
            match gone.iter().position(|g| same_place(g, &routes[i])) {
                // Each gone route stands in for one new route only.
                Some(at) => drop(gone.swap_remove(at)),
                None => moved.push(i),
            }
        }
        moved
    }

    fn between<T>(valid: &[Arc<T>], next: &[Arc<T>]) -> Fresh {
        let same = same_items(valid, next);
        Fresh {
            new: (0..same.len()).filter(|&i| same[i].is_none()).collect(),
            gone: gone_items(valid.len(), &same),
        }
    }
}

#[cfg(test)]
mod tests;
